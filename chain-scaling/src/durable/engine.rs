//! [`Durable`]: named chains run link by link over a checkpoint store.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chain_core::{Error, ErrorKind, HasExtensions, Link, Result};
use futures_util::future::{Either, select};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::now_ms;
use super::store::{Checkpoint, CheckpointStore, ExecutionRecord, ExecutionStatus, Revision};

/// The key that makes a link's external effects happen once: the execution
/// and the link's index, the same every time that link of that execution
/// runs, whichever worker runs it. A link reads it from its context's
/// extensions and sends it with its calls (an `Idempotency-Key` header, a
/// unique column), so a link retried after a crash takes effect once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey {
    execution: Arc<str>,
    link: usize,
}

impl IdempotencyKey {
    /// The execution's id.
    pub fn execution(&self) -> &str {
        &self.execution
    }

    /// The link's index in its chain.
    pub fn link(&self) -> usize {
        self.link
    }
}

/// `{execution}/{link}`: what to send as the key.
impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.execution, self.link)
    }
}

/// A durable timer: set by a link on the context it returns, it makes the
/// execution wait before going on. The wait is stored with the execution
/// (which no worker holds meanwhile), so it survives the restart of every
/// worker, and the execution is claimed again once the time has come.
///
/// - [`Wake::after`]: the next link runs no sooner than the delay.
/// - [`Wake::again_after`]: the same link runs again no sooner than the
///   delay, on the context it returned: "check the payment again in an
///   hour". It keeps its [`IdempotencyKey`].
///
/// ```
/// use std::time::Duration;
/// use chain_core::Context;
/// use chain_scaling::durable::Wake;
///
/// async fn check_payment(ctx: Context) -> chain_core::Result<Context> {
///     let settled = false; // asked of the payment provider
///     if settled {
///         return Ok(ctx.with("settled", true));
///     }
///     Ok(ctx.with_ext(Wake::again_after(Duration::from_secs(3600))))
/// }
/// ```
///
/// The wait is measured on the workers' clocks (milliseconds since the
/// Unix epoch), so it is as exact as their clocks agree; a woken execution
/// is picked up at the next look at the store, within one
/// [`poll_interval`](Durable::poll_interval).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wake {
    delay: Duration,
    again: bool,
}

impl Wake {
    /// Go on to the next link no sooner than `delay` from now.
    pub fn after(delay: Duration) -> Self {
        Self {
            delay,
            again: false,
        }
    }

    /// Run this link again no sooner than `delay` from now.
    pub fn again_after(delay: Duration) -> Self {
        Self { delay, again: true }
    }

    /// How long the execution waits.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// Whether the same link runs again when it wakes.
    pub fn is_again(&self) -> bool {
        self.again
    }
}

/// A named chain whose links are checkpointed one by one. Workers run an
/// execution with the code of the chain registered under its name, so the
/// name, and each link's place in it, are its identity across deploys.
pub struct DurableChain<C> {
    name: Cow<'static, str>,
    links: Vec<(Cow<'static, str>, Box<dyn Link<C>>)>,
}

impl<C: Send + 'static> DurableChain<C> {
    /// An empty chain named `name`.
    pub fn named(name: impl Into<Cow<'static, str>>) -> Self {
        Self {
            name: name.into(),
            links: Vec::new(),
        }
    }

    /// Appends a link named `name`.
    #[must_use]
    pub fn link(mut self, name: impl Into<Cow<'static, str>>, link: impl Link<C>) -> Self {
        self.links.push((name.into(), Box::new(link)));
        self
    }

    /// Appends a durable sleep named `name`: the execution waits `delay`
    /// (stored, so through any restart) before the next link runs.
    #[must_use]
    pub fn sleep(self, name: impl Into<Cow<'static, str>>, delay: Duration) -> Self
    where
        C: HasExtensions + Send + Sync,
    {
        self.link(name, move |mut ctx: C| async move {
            ctx.extensions_mut().insert(Wake::after(delay));
            Ok(ctx)
        })
    }

    /// The chain's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of links.
    pub fn len(&self) -> usize {
        self.links.len()
    }

    /// Whether it has no links.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }
}

impl<C> fmt::Debug for DurableChain<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableChain")
            .field("name", &self.name)
            .field(
                "links",
                &self.links.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Durable executions of registered chains over a [`CheckpointStore`].
///
/// [`start`](Self::start) persists an execution's input; workers
/// ([`work`](Self::work), or [`run_one`](Self::run_one) at a time) claim
/// runnable executions under a lease, run their links from the next one,
/// and after each link write the context and the next index in one
/// compare-and-swap. A worker that dies leaves its lease to run out;
/// another then resumes at the link after the last one written.
///
/// # The guarantee
///
/// Links run at least once: a link that was running when its worker died
/// (or whose checkpoint was not written) runs again on another worker.
/// A link that finished and was checkpointed never runs again. Effects
/// happen exactly once when a link sends its [`IdempotencyKey`] to the
/// services it changes and they deduplicate on it.
///
/// Compared with the alternatives:
///
/// - Temporal's activities are also at least once, retried by a server
///   that keeps the workflow's event history; here the history is one row
///   per execution in a store you already run, with no server to operate,
///   and no deterministic replay of workflow code (progress is the
///   checkpointed context, not a replayed history).
/// - Restate journals each call of a handler and replays the journal to
///   resume; here the unit of progress is a whole link, so a link's calls
///   are not journaled one by one: a link that makes several calls should
///   make each idempotent, or be split into several links.
/// - The JetStream event bus redelivers a whole event when its handler
///   dies, so every link of the chain runs again; here only the link that
///   was running does.
///
/// The context is stored as JSON: any `C` that serializes works. Its
/// typed extensions (secrets, the idempotency key) are not stored; a link
/// that needs one after a resume must rebuild it.
pub struct Durable<C> {
    store: Arc<dyn CheckpointStore>,
    chains: HashMap<String, Arc<DurableChain<C>>>,
    names: Vec<String>,
    lease: Duration,
    poll: Duration,
}

impl<C> Durable<C>
where
    C: Serialize + DeserializeOwned + HasExtensions + Send + 'static,
{
    /// Executions kept in `store`, with a 30 s lease and 100 ms between
    /// looks at the store when idle.
    pub fn new(store: impl CheckpointStore) -> Self {
        Self {
            store: Arc::new(store),
            chains: HashMap::new(),
            names: Vec::new(),
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(100),
        }
    }

    /// Runs executions of `chain` (by its name) on this instance's workers.
    ///
    /// # Errors
    ///
    /// A [`Conflict`](ErrorKind::Conflict) error if a chain of that name is
    /// registered already.
    pub fn register(mut self, chain: DurableChain<C>) -> Result<Self> {
        let name = chain.name().to_owned();
        if self.chains.contains_key(&name) {
            return Err(Error::conflict(format!(
                "durable chain `{name}` is registered twice"
            )));
        }
        self.names.push(name.clone());
        self.chains.insert(name, Arc::new(chain));
        Ok(self)
    }

    /// How long a worker's claim lasts without renewal: a dead worker's
    /// executions resume after about this long. Renewed every third of it
    /// while a link runs.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(30));
        self
    }

    /// How long an idle worker, or [`result`](Self::result), waits between
    /// looks at the store.
    #[must_use]
    pub fn poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll.max(Duration::from_millis(1));
        self
    }

    /// Starts execution `id` of chain `chain` on `ctx`, persisting its
    /// input. Starting an id that exists returns that execution, whatever
    /// `ctx` is: a start is safe to repeat.
    ///
    /// # Errors
    ///
    /// [`NotFound`](ErrorKind::NotFound) for a chain this instance has not
    /// registered, [`Validation`](ErrorKind::Validation) for a context
    /// that does not serialize, or the store's failures.
    pub async fn start(&self, id: &str, chain: &str, ctx: C) -> Result<ExecutionRecord> {
        if !self.chains.contains_key(chain) {
            return Err(Error::not_found(format!("no durable chain `{chain}`")));
        }
        let context = serde_json::to_value(&ctx).map_err(|error| {
            Error::validation(format!(
                "the context of execution `{id}` does not serialize"
            ))
            .with_source(error)
        })?;
        let (record, _) = self
            .store
            .create(ExecutionRecord::new(id, chain, context, now_ms()))
            .await?;
        Ok(record)
    }

    /// Execution `id` as stored: where it stands.
    ///
    /// # Errors
    ///
    /// The store's failures.
    pub async fn status(&self, id: &str) -> Result<Option<ExecutionRecord>> {
        Ok(self.store.get(id).await?.map(|(record, _)| record))
    }

    /// Executions with `status` (or all), oldest first.
    ///
    /// # Errors
    ///
    /// The store's failures.
    pub async fn list(&self, status: Option<ExecutionStatus>) -> Result<Vec<ExecutionRecord>> {
        self.store.list(status).await
    }

    /// Waits for execution `id` to finish: its result, or its error.
    ///
    /// # Errors
    ///
    /// The failed link's error (kind [`Internal`](ErrorKind::Internal),
    /// message as stored), [`NotFound`](ErrorKind::NotFound) for an unknown
    /// id, or the store's failures.
    pub async fn result(&self, id: &str) -> Result<C> {
        loop {
            let (record, _) = self
                .store
                .get(id)
                .await?
                .ok_or_else(|| Error::not_found(format!("no durable execution `{id}`")))?;
            match record.status {
                ExecutionStatus::Completed => {
                    return serde_json::from_value(record.context).map_err(|error| {
                        Error::internal(format!("the result of `{id}` does not deserialize"))
                            .with_source(error)
                    });
                }
                ExecutionStatus::Failed => {
                    return Err(Error::internal(format!(
                        "durable execution `{id}` failed at link #{}: {}",
                        record.next_link,
                        record.error.unwrap_or_default()
                    )));
                }
                ExecutionStatus::Pending | ExecutionStatus::Running => {
                    tokio::time::sleep(self.poll).await;
                }
            }
        }
    }

    /// Makes failed execution `id` runnable again from the link that
    /// failed; whether it was failed.
    ///
    /// # Errors
    ///
    /// [`NotFound`](ErrorKind::NotFound) for an unknown id, or the store's
    /// failures.
    pub async fn retry(&self, id: &str) -> Result<bool> {
        self.store.retry(id, now_ms()).await
    }

    /// Runs executions as `worker` until `stop` completes; between
    /// executions it looks at the store every poll interval.
    ///
    /// # Errors
    ///
    /// The store's failures (a lost lease is not one: the execution is
    /// left to its new owner).
    pub async fn work(
        &self,
        worker: &str,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        let mut stop = std::pin::pin!(stop);
        loop {
            let ran = {
                let run = std::pin::pin!(self.run_one(worker));
                match select(run, stop.as_mut()).await {
                    Either::Left((ran, _)) => ran?,
                    Either::Right(((), _)) => return Ok(()),
                }
            };
            if !ran {
                let idle = std::pin::pin!(tokio::time::sleep(self.poll));
                if let Either::Right(((), _)) = select(idle, stop.as_mut()).await {
                    return Ok(());
                }
            }
        }
    }

    /// Claims one runnable execution as `worker` and runs it until it
    /// finishes, fails or its lease is lost; whether there was one.
    ///
    /// # Errors
    ///
    /// The store's failures.
    pub async fn run_one(&self, worker: &str) -> Result<bool> {
        let now = now_ms();
        let Some((record, revision)) = self
            .store
            .claim(worker, &self.names, now, now + self.lease_ms())
            .await?
        else {
            return Ok(false);
        };
        match self.run(worker, record, revision).await {
            Err(error) if error.kind() == ErrorKind::Conflict => {
                tracing::info!(%error, worker, "abandoned an execution whose lease was taken over");
                Ok(true)
            }
            other => other.map(|()| true),
        }
    }

    fn lease_ms(&self) -> u64 {
        u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX)
    }

    async fn run(
        &self,
        worker: &str,
        record: ExecutionRecord,
        mut revision: Revision,
    ) -> Result<()> {
        let id = record.id.clone();
        let Some(chain) = self.chains.get(&record.chain) else {
            return Err(Error::internal(format!(
                "claimed an unknown chain `{}`",
                record.chain
            )));
        };
        let key: Arc<str> = Arc::from(id.as_str());
        // The context as last checkpointed: what a failing link is retried
        // from.
        let mut saved = record.context;
        let mut ctx: C = match serde_json::from_value(saved.clone()) {
            Ok(ctx) => ctx,
            Err(error) => {
                let message = format!("the stored context does not deserialize: {error}");
                return self
                    .finish(
                        &id,
                        revision,
                        worker,
                        ExecutionStatus::Failed,
                        record.next_link,
                        saved,
                        Some(message),
                    )
                    .await;
            }
        };
        for index in record.next_link..chain.links.len() {
            let (_, link) = &chain.links[index];
            ctx.extensions_mut().insert(IdempotencyKey {
                execution: Arc::clone(&key),
                link: index,
            });
            let outcome = {
                let current = AtomicU64::new(revision.0);
                let call = std::pin::pin!(link.call(ctx));
                let renewing = std::pin::pin!(self.keep_lease(&id, &current, worker));
                let outcome = match select(call, renewing).await {
                    Either::Left((outcome, _)) => outcome,
                    // The lease went to another worker: stop here.
                    Either::Right((lost, _)) => return Err(lost),
                };
                revision = Revision(current.load(Ordering::Acquire));
                outcome
            };
            match outcome {
                Ok(mut next) => {
                    next.extensions_mut().remove::<IdempotencyKey>();
                    let wake = next.extensions_mut().remove::<Wake>();
                    saved = serde_json::to_value(&next).map_err(|error| {
                        Error::internal(format!(
                            "the context after link #{index} of `{id}` does not serialize"
                        ))
                        .with_source(error)
                    })?;
                    if let Some(wake) = wake
                        && (wake.again || index + 1 < chain.links.len())
                    {
                        // Released to wait: pending, with the time it may
                        // be claimed again where a lease's end would be.
                        // Rounded up, and one more millisecond for the
                        // clock's truncation to whole milliseconds: never
                        // sooner than asked.
                        let delay = u64::try_from(wake.delay.as_micros().div_ceil(1000))
                            .unwrap_or(u64::MAX)
                            .saturating_add(1);
                        self.store
                            .checkpoint(
                                &id,
                                revision,
                                worker,
                                Checkpoint {
                                    status: ExecutionStatus::Pending,
                                    next_link: if wake.again { index } else { index + 1 },
                                    context: saved,
                                    error: None,
                                    lease_until_ms: Some(now_ms().saturating_add(delay)),
                                },
                            )
                            .await?;
                        return Ok(());
                    }
                    let done = index + 1 == chain.links.len();
                    if done {
                        return self
                            .finish(
                                &id,
                                revision,
                                worker,
                                ExecutionStatus::Completed,
                                index + 1,
                                saved,
                                None,
                            )
                            .await;
                    }
                    revision = self
                        .store
                        .checkpoint(
                            &id,
                            revision,
                            worker,
                            Checkpoint {
                                status: ExecutionStatus::Running,
                                next_link: index + 1,
                                context: saved.clone(),
                                error: None,
                                lease_until_ms: Some(now_ms() + self.lease_ms()),
                            },
                        )
                        .await?;
                    ctx = next;
                }
                Err(error) => {
                    let message = format!("{error:#}");
                    return self
                        .finish(
                            &id,
                            revision,
                            worker,
                            ExecutionStatus::Failed,
                            index,
                            saved,
                            Some(message),
                        )
                        .await;
                }
            }
        }
        // A chain with no links left to run (none at all, say).
        self.finish(
            &id,
            revision,
            worker,
            ExecutionStatus::Completed,
            chain.links.len(),
            saved,
            None,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)] // one checkpoint's fields
    async fn finish(
        &self,
        id: &str,
        revision: Revision,
        worker: &str,
        status: ExecutionStatus,
        next_link: usize,
        context: Value,
        error: Option<String>,
    ) -> Result<()> {
        self.store
            .checkpoint(
                id,
                revision,
                worker,
                Checkpoint {
                    status,
                    next_link,
                    context,
                    error,
                    lease_until_ms: None,
                },
            )
            .await
            .map(drop)
    }

    /// Renews the lease every third of its length while a link runs,
    /// keeping in `revision` the revision to write at next; returns only
    /// when the lease is lost (or the store fails).
    async fn keep_lease(&self, id: &str, revision: &AtomicU64, worker: &str) -> Error {
        loop {
            tokio::time::sleep(self.lease / 3).await;
            let current = Revision(revision.load(Ordering::Acquire));
            match self
                .store
                .renew(id, current, worker, now_ms() + self.lease_ms())
                .await
            {
                Ok(next) => revision.store(next.0, Ordering::Release),
                Err(error) => return error,
            }
        }
    }
}

impl<C> fmt::Debug for Durable<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Durable")
            .field("chains", &self.names)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

//! The resource pool: bounds how many chains run at once, queues or
//! rejects the excess, runs CPU-bound work on a bounded set of blocking
//! threads, and measures every execution.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chain_core::{
    BoxFuture, Chain, Context, Error, ErrorKind, Link, MergePolicy, Parallel, Result,
};
use serde::Serialize;
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::report::{PerformanceReport, Recommendations, ResourceUtilization};
use super::stats::{ExecutionStats, Recorder};

/// Where a chain runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// On the async runtime, concurrently with everything else: for links
    /// that wait on I/O.
    Async,
    /// On one of the pool's blocking threads: for CPU-bound links, which
    /// would otherwise stall the runtime's workers.
    ///
    /// There is no process pool: in Python one exists only to
    /// escape the global interpreter lock. Rust threads run in parallel on
    /// every core, so a bounded thread pool gives the same parallelism
    /// without pickling contexts across processes.
    Blocking,
}

impl Mode {
    fn index(self) -> usize {
        match self {
            Mode::Async => 0,
            Mode::Blocking => 1,
        }
    }

    /// The mode's name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Async => "async",
            Mode::Blocking => "blocking",
        }
    }
}

/// What happens to a chain arriving when `max_concurrent_chains` are
/// running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Wait for a slot, with at most this many waiting; beyond that the
    /// chain is rejected.
    Queue(usize),
    /// Reject at once.
    Reject,
}

/// The pool's limits.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    name: Cow<'static, str>,
    max_concurrent_chains: usize,
    blocking_threads: usize,
    overflow: Overflow,
    slow_average: Duration,
}

impl Default for PoolSettings {
    /// 10 chains at once, 4 blocking threads, up to 100 waiting.
    fn default() -> Self {
        PoolSettings {
            name: Cow::Borrowed("pool"),
            max_concurrent_chains: 10,
            blocking_threads: 4,
            overflow: Overflow::Queue(100),
            slow_average: Duration::from_secs(5),
        }
    }
}

impl PoolSettings {
    /// The defaults, named for errors and reports.
    pub fn named(name: impl Into<Cow<'static, str>>) -> Self {
        PoolSettings {
            name: name.into(),
            ..PoolSettings::default()
        }
    }

    /// How many chains may run at once (at least one).
    pub fn max_concurrent_chains(mut self, chains: usize) -> Self {
        self.max_concurrent_chains = chains.max(1);
        self
    }

    /// How many blocking threads run [`Mode::Blocking`] work at once (at
    /// least one).
    pub fn blocking_threads(mut self, threads: usize) -> Self {
        self.blocking_threads = threads.max(1);
        self
    }

    /// What happens to the excess.
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// The average duration above which the report recommends breaking a
    /// chain down (5 s by default).
    pub fn slow_average(mut self, threshold: Duration) -> Self {
        self.slow_average = threshold;
        self
    }
}

/// Bounds, queues and measures chain executions. Cheap to clone: clones
/// share the limits and the statistics.
///
/// ```
/// use chain_core::{Chain, Context};
/// use chain_scaling::parallel::{Mode, PoolSettings, ResourcePool};
///
/// fn sum_of_squares(ctx: Context) -> chain_core::Result<Context> {
///     let total: u64 = (0..100_000u64).map(|i| i * i).sum();
///     Ok(ctx.with("squares", total))
/// }
///
/// fn sum_of_cubes(ctx: Context) -> chain_core::Result<Context> {
///     let total: u64 = (0..50_000u64).map(|i| i * i * i).sum();
///     Ok(ctx.with("cubes", total))
/// }
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> chain_core::Result<()> {
/// let pool = ResourcePool::new(PoolSettings::named("cpu").blocking_threads(2));
/// let both = Chain::named("math").link(pool.fan_out(
///     Mode::Blocking,
///     [
///         Chain::named("squares").link_sync(sum_of_squares),
///         Chain::named("cubes").link_sync(sum_of_cubes),
///     ],
/// ));
/// let out = both.execute(Context::new()).await?;
/// assert!(out.contains_key("squares") && out.contains_key("cubes"));
/// assert_eq!(pool.stats(Mode::Blocking).count, 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ResourcePool {
    inner: Arc<Inner>,
}

struct Inner {
    settings: PoolSettings,
    running: Arc<Semaphore>,
    blocking: Arc<Semaphore>,
    waiting: AtomicUsize,
    rejected: AtomicU64,
    recorders: [Recorder; 2],
}

impl ResourcePool {
    /// A pool with these limits.
    pub fn new(settings: PoolSettings) -> Self {
        ResourcePool {
            inner: Arc::new(Inner {
                running: Arc::new(Semaphore::new(settings.max_concurrent_chains)),
                blocking: Arc::new(Semaphore::new(settings.blocking_threads)),
                waiting: AtomicUsize::new(0),
                rejected: AtomicU64::new(0),
                recorders: Default::default(),
                settings,
            }),
        }
    }

    /// Runs `chain` on `ctx` in `mode` once a slot is free, and records
    /// how long it took. A full pool rejects with
    /// [`ErrorKind::Rejected`] naming the pool and its limits.
    pub async fn execute<C: Send + 'static>(
        &self,
        mode: Mode,
        chain: &Chain<C>,
        ctx: C,
    ) -> Result<C> {
        let arrived = Instant::now();
        let _slot = self.admit().await?;
        let started = Instant::now();
        let (outcome, work) = match mode {
            Mode::Async => {
                let outcome = chain.execute(ctx).await;
                (outcome, started.elapsed())
            }
            Mode::Blocking => self.run_blocking(chain.clone(), ctx).await,
        };
        self.inner.recorders[mode.index()].record(
            started.elapsed(),
            started - arrived,
            outcome.is_err(),
            work,
        );
        outcome
    }

    /// A link that runs `branches` concurrently in `mode` on copies of its
    /// context, as one execution of this pool, and merges their changes in
    /// branch order (conflicting writes are an error unless
    /// [`FanOut::merge_policy`] says otherwise). A failing branch's error
    /// names it.
    pub fn fan_out(&self, mode: Mode, branches: impl IntoIterator<Item = Chain>) -> FanOut {
        self.fan_out_into(Parallel::new(), mode, branches)
    }

    /// [`fan_out`](Self::fan_out) for any context type: `merge` combines
    /// the input and the branches' outputs (in branch order) into the
    /// step's output, as [`Parallel::merging`] does.
    pub fn fan_out_merging<C, F>(
        &self,
        mode: Mode,
        branches: impl IntoIterator<Item = Chain<C>>,
        merge: F,
    ) -> FanOut<C>
    where
        C: Clone + Send + 'static,
        F: Fn(C, Vec<C>) -> Result<C> + Send + Sync + 'static,
    {
        self.fan_out_into(Parallel::merging(merge), mode, branches)
    }

    fn fan_out_into<C: Clone + Send + 'static>(
        &self,
        parallel: Parallel<C>,
        mode: Mode,
        branches: impl IntoIterator<Item = Chain<C>>,
    ) -> FanOut<C> {
        let pool = self.clone();
        let parallel = branches.into_iter().fold(parallel, |parallel, chain| {
            parallel.branch(PooledBranch {
                pool: pool.clone(),
                mode,
                chain,
            })
        });
        FanOut {
            pool,
            mode,
            parallel,
        }
    }

    /// The measured statistics of one mode.
    pub fn stats(&self, mode: Mode) -> ExecutionStats {
        self.inner.recorders[mode.index()].snapshot()
    }

    /// The performance report: statistics per mode, the pool's
    /// limits and use, and recommendations computed from them.
    pub fn report(&self) -> PerformanceReport {
        let inner = &self.inner;
        let settings = &inner.settings;
        let metrics = [Mode::Async, Mode::Blocking]
            .into_iter()
            .map(|mode| (mode, self.stats(mode)))
            .filter(|(_, stats)| stats.count > 0)
            .collect();
        let utilization = ResourceUtilization {
            max_concurrent_chains: settings.max_concurrent_chains,
            blocking_threads: settings.blocking_threads,
            queue_limit: match settings.overflow {
                Overflow::Queue(limit) => limit,
                Overflow::Reject => 0,
            },
            running: settings.max_concurrent_chains - inner.running.available_permits(),
            waiting: inner.waiting.load(Ordering::Relaxed),
            rejected: inner.rejected.load(Ordering::Relaxed),
        };
        PerformanceReport::new(
            settings.name.to_string(),
            metrics,
            utilization,
            Recommendations {
                slow_average: settings.slow_average,
            },
        )
    }

    async fn admit(&self) -> Result<OwnedSemaphorePermit> {
        let inner = &self.inner;
        if let Ok(slot) = Arc::clone(&inner.running).try_acquire_owned() {
            return Ok(slot);
        }
        let queue_limit = match inner.settings.overflow {
            Overflow::Reject => 0,
            Overflow::Queue(limit) => limit,
        };
        let waiting = inner.waiting.fetch_add(1, Ordering::AcqRel);
        let _leave = Waiting(&inner.waiting);
        if waiting >= queue_limit {
            inner.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(Error::new(
                ErrorKind::Rejected,
                format!(
                    "resource pool `{}` is full: {} chains running and {} waiting (the limit)",
                    inner.settings.name, inner.settings.max_concurrent_chains, queue_limit
                ),
            ));
        }
        Arc::clone(&inner.running)
            .acquire_owned()
            .await
            .map_err(Error::internal_from)
    }

    /// Runs a chain on a blocking thread, at most `blocking_threads` at
    /// once. The thread drives the chain's future itself, so links may be
    /// synchronous CPU work or async code alike. Also returns how long the
    /// chain ran on the thread.
    async fn run_blocking<C: Send + 'static>(
        &self,
        chain: Chain<C>,
        ctx: C,
    ) -> (Result<C>, Duration) {
        match self.hand_to_thread(chain, ctx).await {
            Ok((outcome, work)) => (outcome, work),
            Err(error) => (Err(error), Duration::ZERO),
        }
    }

    async fn hand_to_thread<C: Send + 'static>(
        &self,
        chain: Chain<C>,
        ctx: C,
    ) -> Result<(Result<C>, Duration)> {
        let runtime = Handle::try_current().map_err(Error::internal_from)?;
        let thread = Arc::clone(&self.inner.blocking)
            .acquire_owned()
            .await
            .map_err(Error::internal_from)?;
        let name = chain.name().to_owned();
        tokio::task::spawn_blocking(move || {
            let _thread = thread;
            let started = Instant::now();
            let outcome = runtime.block_on(chain.execute(ctx));
            (outcome, started.elapsed())
        })
        .await
        .map_err(|error| {
            Error::new(
                ErrorKind::Internal,
                format!("chain `{name}` on a blocking thread did not finish: {error}"),
            )
        })
    }
}

/// Leaves the wait queue however the wait ends (slot, rejection or the
/// caller dropping the future).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Branches run concurrently under a [`ResourcePool`]; see
/// [`ResourcePool::fan_out`].
pub struct FanOut<C = Context> {
    pool: ResourcePool,
    mode: Mode,
    parallel: Parallel<C>,
}

impl<C> Clone for FanOut<C> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            mode: self.mode,
            parallel: self.parallel.clone(),
        }
    }
}

impl FanOut<Context> {
    /// How conflicting writes of two branches are resolved.
    pub fn merge_policy(mut self, policy: MergePolicy) -> Self {
        self.parallel = self.parallel.merge_policy(policy);
        self
    }
}

impl<C: Clone + Send + 'static> Link<C> for FanOut<C> {
    fn call(&self, ctx: C) -> BoxFuture<'_, Result<C>> {
        Box::pin(async move {
            let arrived = Instant::now();
            let _slot = self.pool.admit().await?;
            let started = Instant::now();
            let outcome = self.parallel.call(ctx).await;
            let took = started.elapsed();
            self.pool.inner.recorders[self.mode.index()].record(
                took,
                started - arrived,
                outcome.is_err(),
                took,
            );
            outcome
        })
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Owned(format!("fan_out_{}", self.mode.as_str()))
    }
}

/// One branch of a fan-out: in blocking mode it runs on a blocking thread.
struct PooledBranch<C> {
    pool: ResourcePool,
    mode: Mode,
    chain: Chain<C>,
}

impl<C: Send + 'static> Link<C> for PooledBranch<C> {
    fn call(&self, ctx: C) -> BoxFuture<'_, Result<C>> {
        match self.mode {
            Mode::Async => Box::pin(self.chain.execute(ctx)),
            Mode::Blocking => {
                Box::pin(async move { self.pool.run_blocking(self.chain.clone(), ctx).await.0 })
            }
        }
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Owned(self.chain.name().to_owned())
    }
}

impl fmt::Debug for ResourcePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourcePool")
            .field("settings", &self.inner.settings)
            .field("waiting", &self.inner.waiting.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<C> fmt::Debug for FanOut<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FanOut")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

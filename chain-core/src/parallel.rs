//! [`Parallel`]: branches run concurrently on copies of a [`Context`] and
//! merged back deterministically.

use std::borrow::Cow;
use std::fmt;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;

use indexmap::IndexMap;
use indexmap::map::Entry;
use serde_json::Value;

use crate::chain::{Chain, catch_panics, panic_error};
use crate::context::{Context, Key};
use crate::describe::{LinkDescription, LinkKind};
use crate::error::{Error, ErrorKind, Result};
use crate::link::{BoxFuture, Link};

/// What to do when two branches write different values to one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MergePolicy {
    /// Fail the step with a [`Conflict`](ErrorKind::Conflict) error naming
    /// the field and both branches.
    #[default]
    Strict,
    /// Keep the value of the earliest branch (in branch order).
    FirstWins,
    /// Keep the value of the latest branch (in branch order).
    LastWins,
}

/// Branches that run concurrently, each on its own clone of the context;
/// their changes are merged in branch order.
///
/// A branch's changes are the fields it added, changed or removed relative
/// to the input context. Changes to different fields always merge; equal
/// changes to one field merge too; different values for one field follow
/// the [`MergePolicy`]. The merged context keeps the input's typed
/// extensions; extensions added inside branches are dropped.
///
/// The branches run on the calling task (concurrently, not on other
/// threads); CPU-bound fan-out belongs to `chain-scaling`. The first branch
/// to fail cancels the others and fails the step, and its error names the
/// branch.
///
/// ```
/// use chain_core::{Chain, Context, Parallel};
///
/// async fn fetch_user(ctx: Context) -> chain_core::Result<Context> {
///     Ok(ctx.with("user", "ada"))
/// }
/// async fn fetch_orders(ctx: Context) -> chain_core::Result<Context> {
///     Ok(ctx.with("orders", 3))
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> chain_core::Result<()> {
/// let chain = Chain::new().parallel(Parallel::new().branch(fetch_user).branch(fetch_orders));
/// let out = chain.execute(Context::new().with("id", 7)).await?;
/// assert_eq!(out.keys().collect::<Vec<_>>(), ["id", "user", "orders"]);
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct Parallel {
    branches: Vec<Branch>,
    policy: MergePolicy,
}

#[derive(Clone)]
struct Branch {
    name: Arc<str>,
    link: Arc<dyn Link<Context>>,
}

impl Parallel {
    /// No branches yet; with none, the step passes the context through.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a branch.
    #[must_use]
    pub fn branch(mut self, link: impl Link<Context>) -> Self {
        self.branches.push(Branch {
            name: Arc::from(link.name().as_ref()),
            link: Arc::new(link),
        });
        self
    }

    /// Sets how conflicting writes are resolved (default
    /// [`MergePolicy::Strict`]).
    #[must_use]
    pub fn merge_policy(mut self, policy: MergePolicy) -> Self {
        self.policy = policy;
        self
    }

    async fn run(&self, ctx: Context) -> Result<Context> {
        let mut pending: Vec<Option<BoxFuture<'_, Result<Context>>>> = self
            .branches
            .iter()
            .map(|branch| {
                let copy = ctx.clone();
                let future: BoxFuture<'_, Result<Context>> = Box::pin(async move {
                    catch_panics(async move { branch.link.call(copy).await })
                        .await
                        .unwrap_or_else(|payload| Err(panic_error("link", payload)))
                });
                Some(future)
            })
            .collect();
        let mut outputs: Vec<Option<Context>> = vec![None; self.branches.len()];
        let mut remaining = pending.len();
        poll_fn(|cx| {
            for (index, slot) in pending.iter_mut().enumerate() {
                let Some(future) = slot else { continue };
                if let Poll::Ready(outcome) = future.as_mut().poll(cx) {
                    *slot = None;
                    remaining -= 1;
                    match outcome {
                        Ok(output) => outputs[index] = Some(output),
                        Err(error) => return Poll::Ready(Err(self.branch_error(index, error))),
                    }
                }
            }
            if remaining == 0 {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        })
        .await?;
        drop(pending);
        merge(
            ctx,
            outputs.into_iter().flatten(),
            &self.branches,
            self.policy,
        )
    }

    fn branch_error(&self, index: usize, error: Error) -> Error {
        let name = &self.branches[index].name;
        Error::new(
            error.kind(),
            format!("parallel branch #{index} `{name}` failed"),
        )
        .with_source(error)
    }
}

/// Applies each branch's changes to `base`, in branch order.
fn merge(
    mut base: Context,
    outputs: impl Iterator<Item = Context>,
    branches: &[Branch],
    policy: MergePolicy,
) -> Result<Context> {
    let mut changes: IndexMap<Key, (usize, Option<Value>)> = IndexMap::new();
    for (index, output) in outputs.enumerate() {
        let removed: Vec<Key> = base
            .keys()
            .filter(|key| !output.contains_key(key))
            .map(|key| Key::Owned(key.to_owned()))
            .collect();
        let written = output
            .into_fields()
            .filter(|(key, value)| base.get_value(key) != Some(value))
            .map(|(key, value)| (key, Some(value)));
        for (key, value) in written.chain(removed.into_iter().map(|key| (key, None))) {
            match changes.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert((index, value));
                }
                Entry::Occupied(mut slot) => {
                    let (first, previous) = slot.get();
                    if *previous == value {
                        continue;
                    }
                    match policy {
                        MergePolicy::FirstWins => {}
                        MergePolicy::LastWins => {
                            slot.insert((index, value));
                        }
                        MergePolicy::Strict => {
                            return Err(Error::new(
                                ErrorKind::Conflict,
                                format!(
                                    "parallel branches #{first} `{}` and #{index} `{}` wrote different values to field `{}`",
                                    branches[*first].name,
                                    branches[index].name,
                                    slot.key()
                                ),
                            ));
                        }
                    }
                }
            }
        }
    }
    for (key, (_, value)) in changes {
        match value {
            Some(value) => {
                base.insert(key, value);
            }
            None => {
                base.remove(&key);
            }
        }
    }
    Ok(base)
}

impl Link<Context> for Parallel {
    fn call(&self, ctx: Context) -> BoxFuture<'_, Result<Context>> {
        Box::pin(self.run(ctx))
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("parallel")
    }

    fn kind(&self) -> LinkKind {
        LinkKind::Parallel {
            branches: self
                .branches
                .iter()
                .enumerate()
                .map(|(index, branch)| LinkDescription {
                    index,
                    name: branch.name.to_string(),
                    kind: branch.link.kind(),
                    conditional: false,
                    around: Vec::new(),
                    on_error: None,
                })
                .collect(),
        }
    }
}

impl fmt::Debug for Parallel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parallel")
            .field(
                "branches",
                &self.branches.iter().map(|b| &*b.name).collect::<Vec<_>>(),
            )
            .field("policy", &self.policy)
            .finish()
    }
}

impl<L: Link<Context>, const N: usize> From<[L; N]> for Parallel {
    fn from(links: [L; N]) -> Self {
        links.into_iter().fold(Self::new(), Self::branch)
    }
}

impl<L: Link<Context>> From<Vec<L>> for Parallel {
    fn from(links: Vec<L>) -> Self {
        links.into_iter().fold(Self::new(), Self::branch)
    }
}

impl Chain<Context> {
    /// Appends a step running branches concurrently on clones of the
    /// context and merging their changes in branch order; see [`Parallel`].
    ///
    /// ```
    /// use chain_core::{Chain, Context};
    ///
    /// // Branches of one type can come as an array; chains are one type.
    /// let chain = Chain::new().parallel([
    ///     Chain::named("a").link_sync(|ctx: Context| Ok(ctx.with("a", 1))),
    ///     Chain::named("b").link_sync(|ctx: Context| Ok(ctx.with("b", 2))),
    /// ]);
    /// # let _ = chain;
    /// ```
    #[must_use]
    pub fn parallel(self, branches: impl Into<Parallel>) -> Self {
        self.link(branches.into())
    }
}

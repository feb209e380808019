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
/// For [`Context`] ([`Parallel::new`]) the merge is built in: a branch's changes are the fields it added, changed or removed relative
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
///
/// # Typed contexts
///
/// A struct of your own has no fields to diff, so you say how the branches
/// combine with [`Parallel::merging`]: a function of the input and the
/// branches' outputs, in branch order.
///
/// ```
/// use chain_core::{Chain, Parallel};
///
/// #[derive(Clone, Default)]
/// struct Quote { user: Option<String>, price: Option<u32> }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> chain_core::Result<()> {
/// let both = Parallel::merging(|mut quote: Quote, outputs: Vec<Quote>| {
///     for output in outputs {
///         quote.user = quote.user.or(output.user);
///         quote.price = quote.price.or(output.price);
///     }
///     Ok(quote)
/// })
/// .branch(|mut q: Quote| async move { q.user = Some("ada".into()); Ok(q) })
/// .branch(|mut q: Quote| async move { q.price = Some(42); Ok(q) });
/// let quote = Chain::new().parallel(both).execute(Quote::default()).await?;
/// assert_eq!((quote.user.as_deref(), quote.price), (Some("ada"), Some(42)));
/// # Ok(()) }
/// ```
pub struct Parallel<C = Context> {
    branches: Vec<Arc<dyn Link<C>>>,
    /// The branches' names, in branch order (errors name the branch).
    names: Vec<Arc<str>>,
    merge: Merge<C>,
    /// The built-in merge's policy, for `Context`.
    policy: Option<MergePolicy>,
}

type Merge<C> = Arc<dyn Fn(C, Vec<C>, &[Arc<str>]) -> Result<C> + Send + Sync>;

impl<C> Clone for Parallel<C> {
    fn clone(&self) -> Self {
        Self {
            branches: self.branches.clone(),
            names: self.names.clone(),
            merge: Arc::clone(&self.merge),
            policy: self.policy,
        }
    }
}

impl Default for Parallel<Context> {
    fn default() -> Self {
        Self::new()
    }
}

impl Parallel<Context> {
    /// No branches yet; with none, the step passes the context through.
    /// Changes merge field by field under [`MergePolicy::Strict`].
    pub fn new() -> Self {
        Self::with_policy(MergePolicy::Strict)
    }

    fn with_policy(policy: MergePolicy) -> Self {
        Self {
            branches: Vec::new(),
            names: Vec::new(),
            merge: Arc::new(move |base, outputs, names| merge(base, outputs, names, policy)),
            policy: Some(policy),
        }
    }

    /// Sets how conflicting writes are resolved (default
    /// [`MergePolicy::Strict`]).
    #[must_use]
    pub fn merge_policy(self, policy: MergePolicy) -> Self {
        Self {
            branches: self.branches,
            names: self.names,
            ..Self::with_policy(policy)
        }
    }
}

impl<C: Clone + Send + 'static> Parallel<C> {
    /// No branches yet, combined by `merge`: it receives the input context
    /// and the branches' outputs in branch order, and returns the step's
    /// output (or an error, which fails the step).
    pub fn merging<F>(merge: F) -> Self
    where
        F: Fn(C, Vec<C>) -> Result<C> + Send + Sync + 'static,
    {
        Self {
            branches: Vec::new(),
            names: Vec::new(),
            merge: Arc::new(move |base, outputs, _names| merge(base, outputs)),
            policy: None,
        }
    }

    /// Adds a branch.
    #[must_use]
    pub fn branch(mut self, link: impl Link<C>) -> Self {
        self.names.push(Arc::from(link.name().as_ref()));
        self.branches.push(Arc::new(link));
        self
    }

    async fn run(&self, ctx: C) -> Result<C> {
        if self.branches.is_empty() {
            return Ok(ctx);
        }
        let mut pending: Vec<Option<BoxFuture<'_, Result<C>>>> = self
            .branches
            .iter()
            .map(|branch| {
                let copy = ctx.clone();
                let future: BoxFuture<'_, Result<C>> = Box::pin(async move {
                    catch_panics(async move { branch.call(copy).await })
                        .await
                        .unwrap_or_else(|payload| Err(panic_error("link", payload)))
                });
                Some(future)
            })
            .collect();
        let mut outputs: Vec<Option<C>> = std::iter::repeat_with(|| None)
            .take(self.branches.len())
            .collect();
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
        (self.merge)(ctx, outputs.into_iter().flatten().collect(), &self.names)
    }

    fn branch_error(&self, index: usize, error: Error) -> Error {
        let name = &self.names[index];
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
    outputs: Vec<Context>,
    names: &[Arc<str>],
    policy: MergePolicy,
) -> Result<Context> {
    let mut changes: IndexMap<Key, (usize, Option<Value>)> = IndexMap::new();
    for (index, output) in outputs.into_iter().enumerate() {
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
                                    names[*first],
                                    names[index],
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

impl<C: Clone + Send + 'static> Link<C> for Parallel<C> {
    fn call(&self, ctx: C) -> BoxFuture<'_, Result<C>> {
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
                .zip(&self.names)
                .enumerate()
                .map(|(index, (branch, name))| LinkDescription {
                    index,
                    name: name.to_string(),
                    kind: branch.kind(),
                    conditional: false,
                    around: Vec::new(),
                    on_error: None,
                })
                .collect(),
        }
    }
}

impl<C> fmt::Debug for Parallel<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parallel")
            .field(
                "branches",
                &self.names.iter().map(|name| &**name).collect::<Vec<_>>(),
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

impl<C: Clone + Send + 'static> Chain<C> {
    /// Appends a step running branches concurrently on clones of the
    /// context and merging their outputs in branch order; see [`Parallel`]
    /// (for a typed context, build it with [`Parallel::merging`]).
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
    pub fn parallel(self, branches: impl Into<Parallel<C>>) -> Self {
        self.link(branches.into())
    }
}

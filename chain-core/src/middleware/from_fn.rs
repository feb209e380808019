use std::borrow::Cow;
use std::fmt;
use std::future::Future;

use super::{Middleware, Next};
use crate::error::Result;
use crate::link::{BoxFuture, short_type_name};

/// Middleware from an async function or closure `(ctx, next) -> Result<ctx>`.
///
/// ```
/// use chain_core::{middleware::from_fn, Chain, Context, Error};
///
/// // Short-circuits unless the context carries a user.
/// let require_user = from_fn(|ctx: Context, next| async move {
///     if !ctx.contains_key("user") {
///         return Err(Error::unauthorized("no user"));
///     }
///     next.run(ctx).await
/// });
/// let chain = Chain::new().around(require_user).link(|ctx: Context| async move { Ok(ctx) });
/// # let _ = chain;
/// ```
pub fn from_fn<C, F, Fut>(f: F) -> FromFn<F>
where
    F: Fn(C, Next<C>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<C>> + Send + 'static,
{
    FromFn {
        name: Cow::Borrowed(short_type_name::<F>()),
        f,
    }
}

/// Middleware made by [`from_fn`].
#[derive(Clone)]
pub struct FromFn<F> {
    name: Cow<'static, str>,
    f: F,
}

impl<F> FromFn<F> {
    /// Names the middleware, for [`Chain::inspect`](crate::Chain::inspect)
    /// and diagrams.
    #[must_use]
    pub fn named(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }
}

impl<F> fmt::Debug for FromFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromFn").field("name", &self.name).finish()
    }
}

impl<C, F, Fut> Middleware<C> for FromFn<F>
where
    F: Fn(C, Next<C>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<C>> + Send + 'static,
{
    fn call(&self, ctx: C, next: Next<C>) -> BoxFuture<'_, Result<C>> {
        Box::pin((self.f)(ctx, next))
    }

    fn name(&self) -> Cow<'static, str> {
        self.name.clone()
    }
}

/// Middleware from an async function that also receives a clone of `state`:
/// `(state, ctx, next) -> Result<ctx>`, as axum's `from_fn_with_state`.
///
/// The middleware keeps `state` and hands each call its own clone, so the
/// closure needs no `move` of a captured clone and no second clone inside
/// for its future. Keep the state cheap to clone: an `Arc`, a pool handle,
/// a client.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use chain_core::{middleware::from_fn_with_state, Chain, Context};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> chain_core::Result<()> {
/// let requests = Arc::new(AtomicU64::new(0));
/// let count = from_fn_with_state(Arc::clone(&requests), |requests: Arc<AtomicU64>, ctx: Context, next| async move {
///     requests.fetch_add(1, Ordering::Relaxed);
///     next.run(ctx).await
/// });
/// let chain = Chain::new().around(count).link_sync(Ok).link_sync(Ok);
/// chain.execute(Context::new()).await?;
/// chain.execute(Context::new()).await?;
/// assert_eq!(requests.load(Ordering::Relaxed), 2);
/// # Ok(()) }
/// ```
pub fn from_fn_with_state<S, C, F, Fut>(state: S, f: F) -> FromFnWithState<S, F>
where
    S: Clone + Send + Sync + 'static,
    F: Fn(S, C, Next<C>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<C>> + Send + 'static,
{
    FromFnWithState {
        name: Cow::Borrowed(short_type_name::<F>()),
        state,
        f,
    }
}

/// Middleware made by [`from_fn_with_state`].
#[derive(Clone)]
pub struct FromFnWithState<S, F> {
    name: Cow<'static, str>,
    state: S,
    f: F,
}

impl<S, F> FromFnWithState<S, F> {
    /// Names the middleware, for [`Chain::inspect`](crate::Chain::inspect)
    /// and diagrams.
    #[must_use]
    pub fn named(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }
}

impl<S, F> fmt::Debug for FromFnWithState<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromFnWithState")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<S, C, F, Fut> Middleware<C> for FromFnWithState<S, F>
where
    S: Clone + Send + Sync + 'static,
    F: Fn(S, C, Next<C>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<C>> + Send + 'static,
{
    fn call(&self, ctx: C, next: Next<C>) -> BoxFuture<'_, Result<C>> {
        Box::pin((self.f)(self.state.clone(), ctx, next))
    }

    fn name(&self) -> Cow<'static, str> {
        self.name.clone()
    }
}

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
/// let chain = Chain::new().around_each(require_user).link(|ctx: Context| async move { Ok(ctx) });
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

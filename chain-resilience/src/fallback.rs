//! [`Fallback`]: a substitute result when a link fails.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use chain_core::{BoxFuture, Error, ErrorKind, Link, Middleware, Next, Result};

type Handler<C> = Arc<dyn Fn(Error, C) -> BoxFuture<'static, Result<C>> + Send + Sync>;
type Predicate = Arc<dyn Fn(&Error) -> bool + Send + Sync>;

/// When the guarded link fails with a matching error, runs a fallback link
/// on the context the guarded link received, or returns a fixed value.
///
/// By default every error matches except client errors (validation,
/// unauthorized, forbidden, not found) and panics: those say the request
/// or the code is wrong, and a substitute answer would hide it. A
/// circuit-open rejection matches, which is the usual reason to have a
/// fallback.
///
/// ```
/// use chain_core::{Chain, Context, Error, Step};
/// use chain_resilience::Fallback;
///
/// async fn live_prices(_ctx: Context) -> chain_core::Result<Context> {
///     Err(Error::unavailable("pricing service down"))
/// }
/// async fn cached_prices(ctx: Context) -> chain_core::Result<Context> {
///     Ok(ctx.with("price", 9.99).with("price_source", "cache"))
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> chain_core::Result<()> {
/// let chain = Chain::new().step(Step::new(live_prices).around(Fallback::link(cached_prices)));
/// let out = chain.execute(Context::new().with("sku", "A1")).await?;
/// assert_eq!(out.get::<String>("price_source")?.as_deref(), Some("cache"));
/// # Ok(()) }
/// ```
pub struct Fallback<C> {
    handler: Handler<C>,
    matches: Predicate,
    name: Cow<'static, str>,
}

impl<C> Clone for Fallback<C> {
    fn clone(&self) -> Self {
        Self {
            handler: Arc::clone(&self.handler),
            matches: Arc::clone(&self.matches),
            name: self.name.clone(),
        }
    }
}

fn default_match(error: &Error) -> bool {
    !error.kind().is_client_error() && error.kind() != ErrorKind::Panicked
}

impl<C: Send + 'static> Fallback<C> {
    /// Runs `link` on the guarded link's input when it fails.
    pub fn link(link: impl Link<C>) -> Self {
        let name = Cow::Owned(format!("fallback({})", link.name()));
        let link = Arc::new(link);
        Self::from_handler(name, move |_error, ctx| {
            let link = Arc::clone(&link);
            async move { link.call(ctx).await }
        })
    }

    /// Calls `handler` with the error and the guarded link's input.
    pub fn from_handler<F, Fut>(name: impl Into<Cow<'static, str>>, handler: F) -> Self
    where
        F: Fn(Error, C) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<C>> + Send + 'static,
    {
        Self {
            handler: Arc::new(move |error, ctx| Box::pin(handler(error, ctx))),
            matches: Arc::new(default_match),
            name: name.into(),
        }
    }

    /// Uses the fallback only for errors for which `predicate` holds.
    #[must_use]
    pub fn when<P>(mut self, predicate: P) -> Self
    where
        P: Fn(&Error) -> bool + Send + Sync + 'static,
    {
        self.matches = Arc::new(predicate);
        self
    }

    /// Runs `future`; if it fails with a matching error, runs the fallback
    /// on `input`.
    ///
    /// # Errors
    ///
    /// A non-matching error of `future`, or the fallback's error.
    pub async fn call(&self, input: C, future: impl Future<Output = Result<C>>) -> Result<C> {
        match future.await {
            Err(error) if (self.matches)(&error) => (self.handler)(error, input).await,
            outcome => outcome,
        }
    }
}

impl<C: Clone + Send + Sync + 'static> Fallback<C> {
    /// Returns a copy of `value` when the guarded link fails.
    pub fn value(value: C) -> Self {
        Self::from_handler("fallback(value)", move |_error, _ctx| {
            let value = value.clone();
            async move { Ok(value) }
        })
    }
}

impl<C> fmt::Debug for Fallback<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fallback")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Keeps a copy of the link's input for the fallback, so it needs a
/// `Clone` context.
impl<C: Clone + Send + Sync + 'static> Middleware<C> for Fallback<C> {
    fn call(&self, ctx: C, next: Next<C>) -> BoxFuture<'_, Result<C>> {
        let input = ctx.clone();
        Box::pin(Fallback::call(self, input, next.run(ctx)))
    }

    fn name(&self) -> Cow<'static, str> {
        self.name.clone()
    }
}

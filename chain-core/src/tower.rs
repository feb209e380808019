//! tower interop: a [`Chain`] is a `tower::Service`, and a tower service is
//! a [`Link`].

use std::borrow::Cow;
use std::fmt;
use std::future::poll_fn;
use std::task::{Context as TaskContext, Poll};

use tower_service::Service;

use crate::chain::Chain;
use crate::error::{BoxError, Error, ErrorKind, Result};
use crate::link::{BoxFuture, Link, short_type_name};

/// A chain serves requests of its context type, so it sits inside axum,
/// hyper or tonic and under any tower layer. It is always ready.
///
/// ```
/// use chain_core::{Chain, Context};
/// use tower::ServiceExt;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> chain_core::Result<()> {
/// let chain = Chain::new().link_sync(|ctx: Context| Ok(ctx.with("served", true)));
/// let out = chain.oneshot(Context::new()).await?;
/// assert!(out.contains_key("served"));
/// # Ok(()) }
/// ```
impl<C: Send + 'static> Service<C> for Chain<C> {
    type Response = C;
    type Error = Error;
    type Future = BoxFuture<'static, Result<C>>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, ctx: C) -> Self::Future {
        let chain = self.clone();
        Box::pin(async move { chain.execute(ctx).await })
    }
}

/// A tower service used as a link; made by [`service`].
#[derive(Clone)]
pub struct ServiceLink<S> {
    name: Cow<'static, str>,
    service: S,
}

/// Turns a tower `Service<C, Response = C>` into a link, so tower layers
/// (timeouts, rate limits, load shedding) and existing services plug into a
/// chain.
///
/// Each call clones the service, waits for readiness and calls it. A service
/// error that is a chain [`Error`] comes through unchanged; any other becomes
/// an [`Internal`](ErrorKind::Internal) error with the original as source.
///
/// ```
/// use chain_core::{tower::service, Chain, Context, Error};
/// use tower::service_fn;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> chain_core::Result<()> {
/// let svc = service_fn(|ctx: Context| async move { Ok::<_, Error>(ctx.with("via", "tower")) });
/// let chain = Chain::new().link(service(svc).named("tower_step"));
/// let out = chain.execute(Context::new()).await?;
/// assert_eq!(out.get::<String>("via")?.as_deref(), Some("tower"));
/// # Ok(()) }
/// ```
pub fn service<S>(service: S) -> ServiceLink<S> {
    ServiceLink {
        name: Cow::Borrowed(short_type_name::<S>()),
        service,
    }
}

impl<S> ServiceLink<S> {
    /// Names the link.
    #[must_use]
    pub fn named(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.service
    }

    /// The wrapped service, unwrapped.
    pub fn into_inner(self) -> S {
        self.service
    }
}

impl<S> fmt::Debug for ServiceLink<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceLink")
            .field("name", &self.name)
            .finish()
    }
}

impl<C, S> Link<C> for ServiceLink<S>
where
    C: Send + 'static,
    S: Service<C, Response = C> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    fn call(&self, ctx: C) -> BoxFuture<'_, Result<C>> {
        let mut service = self.service.clone();
        Box::pin(async move {
            poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(|error| Error::from_source(ErrorKind::Unavailable, error))?;
            service
                .call(ctx)
                .await
                .map_err(|error| Error::from_source(ErrorKind::Internal, error))
        })
    }

    fn name(&self) -> Cow<'static, str> {
        self.name.clone()
    }
}

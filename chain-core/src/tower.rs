//! tower interop: a [`Chain`] is a `tower::Service`, and a tower service is
//! a [`Link`].

use std::borrow::Cow;
use std::fmt;
use std::future::poll_fn;
use std::sync::{Mutex, PoisonError};
use std::task::{Context as TaskContext, Poll};

use tower_service::Service;

use crate::chain::Chain;
use crate::error::{BoxError, Error, ErrorKind, Result};
use crate::link::{BoxFuture, Link, short_type_name};

/// A chain serves requests of its context type, so tower layers
/// (timeouts, concurrency limits, load shedding) wrap it like any service.
/// It is always ready.
///
/// This service takes a context, not an HTTP request, and fails with
/// [`Error`], so it does not go into axum's `route_service` as it is: the
/// `axum` feature's [`ChainRoute`](crate::axum::ChainRoute) serves a chain
/// from HTTP requests, and its errors as problem responses.
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
pub struct ServiceLink<S> {
    name: Cow<'static, str>,
    // A mutex makes the link `Sync` for services that are only `Send`;
    // it is held just long enough to clone the service.
    service: Mutex<S>,
}

impl<S: Clone> Clone for ServiceLink<S> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            service: Mutex::new(self.fresh()),
        }
    }
}

/// Turns a tower `Service<C, Response = C>` into a link, so tower layers
/// (timeouts, rate limits, load shedding) and existing services plug into a
/// chain.
///
/// The service needs to be `Clone + Send` but not `Sync`: a
/// `BoxCloneService` works. It is kept behind a mutex held only while it is
/// cloned, as axum does with such services.
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
        service: Mutex::new(service),
    }
}

impl<S> ServiceLink<S> {
    /// Names the link.
    #[must_use]
    pub fn named(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// The wrapped service, unwrapped.
    pub fn into_inner(self) -> S {
        self.service
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl<S: Clone> ServiceLink<S> {
    /// A clone of the service for one call.
    fn fresh(&self) -> S {
        self.service
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
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
    S: Service<C, Response = C> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    fn call(&self, ctx: C) -> BoxFuture<'_, Result<C>> {
        let mut service = self.fresh();
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

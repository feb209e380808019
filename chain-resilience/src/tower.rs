//! tower interop (feature `tower`): a [`Pipeline`] is a tower `Layer`, so
//! every policy wraps any tower service; a [`Fallback`] is a `Layer` of its
//! own for services whose request and response are the context type.
//!
//! Each policy converts into a one-policy pipeline (`Pipeline::from(breaker)`),
//! so a single layer type covers them all. The wrapped service is cloned per
//! attempt (as tower's own retry does) and asked for readiness before each
//! call; its errors become [`Internal`](chain_core::ErrorKind::Internal)
//! chain errors unless they already are chain errors.

use std::fmt;
use std::future::poll_fn;
use std::task::{Context as TaskContext, Poll};

use chain_core::{BoxError, BoxFuture, Error, Result};
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    Bulkhead, CircuitBreaker, Fallback, Pipeline, RateLimiter, Retry, Timeout, TimeoutScope,
};

/// ```
/// use std::time::Duration;
/// use chain_resilience::{Backoff, Pipeline, Retry};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> chain_core::Result<()> {
/// let service = ServiceBuilder::new()
///     .layer(Pipeline::from(Retry::new(3).backoff(Backoff::Constant(Duration::from_millis(1)))))
///     .service(service_fn(|name: String| async move { Ok::<_, std::io::Error>(format!("hello {name}")) }));
/// assert_eq!(service.oneshot("ada".to_owned()).await?, "hello ada");
/// # Ok(()) }
/// ```
impl<S> Layer<S> for Pipeline {
    type Service = PipelineService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PipelineService {
            pipeline: self.clone(),
            inner,
        }
    }
}

/// A tower service under a [`Pipeline`]; made by its `Layer`.
#[derive(Clone)]
pub struct PipelineService<S> {
    pipeline: Pipeline,
    inner: S,
}

impl<S> PipelineService<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> fmt::Debug for PipelineService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineService")
            .field("pipeline", &self.pipeline.order())
            .finish_non_exhaustive()
    }
}

impl<S, Request> Service<Request> for PipelineService<S>
where
    S: Service<Request> + Clone + Send + Sync + 'static,
    S::Future: Send,
    S::Response: Send,
    S::Error: Into<BoxError>,
    Request: Clone + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = Error;
    type Future = BoxFuture<'static, Result<S::Response>>;

    /// Always ready: readiness of the wrapped service is awaited per
    /// attempt, on a clone, so a retry can wait for it too.
    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let pipeline = self.pipeline.clone();
        let inner = self.inner.clone();
        Box::pin(async move {
            pipeline
                .call(|| {
                    let mut service = inner.clone();
                    let request = request.clone();
                    async move {
                        poll_fn(|cx| service.poll_ready(cx))
                            .await
                            .map_err(Error::internal_from)?;
                        service.call(request).await.map_err(Error::internal_from)
                    }
                })
                .await
        })
    }
}

impl From<CircuitBreaker> for Pipeline {
    fn from(breaker: CircuitBreaker) -> Self {
        Pipeline::new().circuit_breaker(breaker)
    }
}

impl From<Retry> for Pipeline {
    fn from(retry: Retry) -> Self {
        Pipeline::new().retry(retry)
    }
}

impl From<Timeout> for Pipeline {
    fn from(timeout: Timeout) -> Self {
        match timeout.scope() {
            TimeoutScope::Attempt => Pipeline::new().attempt_timeout(timeout.limit()),
            TimeoutScope::Total => Pipeline::new().total_timeout(timeout.limit()),
        }
    }
}

impl From<Bulkhead> for Pipeline {
    fn from(bulkhead: Bulkhead) -> Self {
        Pipeline::new().bulkhead(bulkhead)
    }
}

impl From<RateLimiter> for Pipeline {
    fn from(limiter: RateLimiter) -> Self {
        Pipeline::new().rate_limiter(limiter)
    }
}

/// A fallback around a tower service whose request and response are both
/// the context type, like a chain's.
impl<S, C> Layer<S> for Fallback<C> {
    type Service = FallbackService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        FallbackService {
            fallback: self.clone(),
            inner,
        }
    }
}

/// A tower service with a [`Fallback`]; made by its `Layer`.
pub struct FallbackService<S, C> {
    fallback: Fallback<C>,
    inner: S,
}

impl<S: Clone, C> Clone for FallbackService<S, C> {
    fn clone(&self) -> Self {
        Self {
            fallback: self.fallback.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<S, C> fmt::Debug for FallbackService<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackService")
            .field("fallback", &self.fallback)
            .finish_non_exhaustive()
    }
}

impl<S, C> Service<C> for FallbackService<S, C>
where
    S: Service<C, Response = C> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    C: Clone + Send + 'static,
{
    type Response = C;
    type Error = Error;
    type Future = BoxFuture<'static, Result<C>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<()>> {
        self.inner.poll_ready(cx).map_err(Error::internal_from)
    }

    fn call(&mut self, request: C) -> Self::Future {
        let fallback = self.fallback.clone();
        let input = request.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            fallback
                .call(input, async move {
                    response.await.map_err(Error::internal_from)
                })
                .await
        })
    }
}

//! [`Pipeline`]: the resilience policies composed in the standard order.

use std::borrow::Cow;
use std::future::Future;

use chain_core::{BoxFuture, Middleware, Next, Result};
use std::time::Duration;

use crate::{Bulkhead, CircuitBreaker, RateLimiter, Retry, Timeout};

/// The policies a link needs, composed in the standard order whatever the
/// order they were given in. From the outside in:
///
/// 1. **rate limiter**: refuse excess traffic before it costs anything;
/// 2. **bulkhead**: cap the calls in flight;
/// 3. **total timeout**: bound the whole call, retries and waits included;
/// 4. **retry**: try again after transient failures;
/// 5. **circuit breaker**: inside the retry, so each attempt counts and an
///    open circuit stops the retries (rejections are not retried);
/// 6. **attempt timeout**: bound each attempt, so one hung attempt does not
///    use up the total.
///
/// This is the order of Polly and resilience4j. The common mistakes it rules
/// out: a breaker outside the retry sees one failure where the dependency
/// saw several; a single timeout outside the retry leaves no time for a
/// retry after a hung attempt; a timeout inside the breaker but outside the
/// retry turns slow dependencies into retry storms.
///
/// ```
/// use std::time::Duration;
/// use chain_core::{Chain, Context, Error, Step};
/// use chain_resilience::{Backoff, CircuitBreaker, CircuitBreakerConfig, Pipeline, Retry};
///
/// async fn fetch_stock(_ctx: Context) -> chain_core::Result<Context> {
///     Err(Error::unavailable("inventory down"))
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let breaker = CircuitBreaker::new("inventory", CircuitBreakerConfig::consecutive_failures(3, Duration::from_secs(30)));
/// let resilient = Pipeline::new()
///     .attempt_timeout(Duration::from_millis(200))
///     .retry(Retry::new(5).backoff(Backoff::Constant(Duration::from_millis(1))))
///     .circuit_breaker(breaker.clone())
///     .total_timeout(Duration::from_secs(2));
/// let chain = Chain::new().step(Step::new(fetch_stock).around(resilient));
///
/// let err = chain.execute(Context::new()).await.unwrap_err();
/// // Three attempts opened the breaker; the fourth was rejected, and
/// // rejections are not retried.
/// assert!(err.is_rejected());
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Pipeline {
    rate_limiter: Option<RateLimiter>,
    bulkhead: Option<Bulkhead>,
    total_timeout: Option<Timeout>,
    retry: Option<Retry>,
    circuit_breaker: Option<CircuitBreaker>,
    attempt_timeout: Option<Timeout>,
}

impl Pipeline {
    /// No policies yet: calls pass straight through.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the rate limiter.
    #[must_use]
    pub fn rate_limiter(mut self, limiter: RateLimiter) -> Self {
        self.rate_limiter = Some(limiter);
        self
    }

    /// Sets the bulkhead.
    #[must_use]
    pub fn bulkhead(mut self, bulkhead: Bulkhead) -> Self {
        self.bulkhead = Some(bulkhead);
        self
    }

    /// Limits the whole call, retries and their waits included, to `limit`.
    #[must_use]
    pub fn total_timeout(mut self, limit: Duration) -> Self {
        self.total_timeout = Some(Timeout::total(limit));
        self
    }

    /// Sets the retry policy.
    #[must_use]
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Sets the circuit breaker.
    #[must_use]
    pub fn circuit_breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.circuit_breaker = Some(breaker);
        self
    }

    /// Limits each attempt to `limit`; a retry gets a fresh `limit`.
    #[must_use]
    pub fn attempt_timeout(mut self, limit: Duration) -> Self {
        self.attempt_timeout = Some(Timeout::attempt(limit));
        self
    }

    /// The policies in the order they apply, outermost first.
    pub fn order(&self) -> Vec<&'static str> {
        [
            self.rate_limiter.as_ref().map(|_| "rate_limiter"),
            self.bulkhead.as_ref().map(|_| "bulkhead"),
            self.total_timeout.as_ref().map(|_| "total_timeout"),
            self.retry.as_ref().map(|_| "retry"),
            self.circuit_breaker.as_ref().map(|_| "circuit_breaker"),
            self.attempt_timeout.as_ref().map(|_| "attempt_timeout"),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Runs the futures `attempt` makes under every policy; `attempt` is
    /// called once per try.
    ///
    /// # Errors
    ///
    /// A policy's rejection or timeout, or the last attempt's error.
    pub async fn call<T, F, Fut>(&self, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        if let Some(limiter) = &self.rate_limiter {
            limiter.check()?;
        }
        let _slot = match &self.bulkhead {
            Some(bulkhead) => Some(bulkhead.acquire().await?),
            None => None,
        };
        let one_attempt = || {
            let future = attempt();
            async move {
                let timed = within(self.attempt_timeout.as_ref(), future);
                match &self.circuit_breaker {
                    Some(breaker) => breaker.call(timed).await,
                    None => timed.await,
                }
            }
        };
        let retried = async {
            match &self.retry {
                Some(retry) => retry.call(one_attempt).await,
                None => {
                    let mut once = one_attempt;
                    once().await
                }
            }
        };
        within(self.total_timeout.as_ref(), retried).await
    }
}

async fn within<T>(
    timeout: Option<&Timeout>,
    future: impl Future<Output = Result<T>>,
) -> Result<T> {
    match timeout {
        Some(timeout) => timeout.call(future).await,
        None => future.await,
    }
}

/// Retrying needs a copy of the link's input per attempt, so the context
/// must be `Clone`.
impl<C: Clone + Send + Sync + 'static> Middleware<C> for Pipeline {
    fn call(&self, ctx: C, next: Next<C>) -> BoxFuture<'_, Result<C>> {
        Box::pin(Pipeline::call(self, move || next.clone().run(ctx.clone())))
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Owned(format!("pipeline({})", self.order().join(" > ")))
    }
}

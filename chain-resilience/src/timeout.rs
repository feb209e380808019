//! [`Timeout`]: a time limit on one attempt or on a whole call.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use chain_core::{BoxFuture, Error, Middleware, Next, Result};

/// Which limit a [`Timeout`] enforces; named in its error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeoutScope {
    /// One attempt: inside a retry, each attempt gets the full limit.
    Attempt,
    /// The whole call, retries and backoff included.
    Total,
}

impl TimeoutScope {
    fn as_str(self) -> &'static str {
        match self {
            Self::Attempt => "attempt",
            Self::Total => "total",
        }
    }
}

/// The source of a timeout error: which limit fired and how long it was.
/// Reach it with `error.downcast_source::<Elapsed>()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{} timeout of {limit:?} elapsed", scope.as_str())]
pub struct Elapsed {
    /// The limit that fired.
    pub scope: TimeoutScope,
    /// Its length.
    pub limit: Duration,
}

/// A time limit. When it fires, the guarded future is dropped (which
/// cancels it) and the call fails with a
/// [`Timeout`](chain_core::ErrorKind::Timeout) error whose source is an
/// [`Elapsed`] naming the limit.
///
/// Needs a tokio runtime with the time driver enabled.
///
/// ```
/// use std::time::Duration;
/// use chain_resilience::{Elapsed, Timeout, TimeoutScope};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let limit = Timeout::attempt(Duration::from_millis(10));
/// let err = limit.call(std::future::pending::<chain_core::Result<()>>()).await.unwrap_err();
/// assert!(err.is_timeout());
/// assert_eq!(err.downcast_source::<Elapsed>().unwrap().scope, TimeoutScope::Attempt);
/// # }
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Timeout {
    limit: Duration,
    scope: TimeoutScope,
}

impl Timeout {
    /// A limit on each attempt.
    pub fn attempt(limit: Duration) -> Self {
        Self {
            limit,
            scope: TimeoutScope::Attempt,
        }
    }

    /// A limit on the whole call.
    pub fn total(limit: Duration) -> Self {
        Self {
            limit,
            scope: TimeoutScope::Total,
        }
    }

    /// The limit.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// Which limit this is.
    pub fn scope(&self) -> TimeoutScope {
        self.scope
    }

    /// Runs `future` under the limit.
    ///
    /// # Errors
    ///
    /// A [`Timeout`](chain_core::ErrorKind::Timeout) error when the limit
    /// fires first, or the future's own error.
    pub async fn call<T>(&self, future: impl Future<Output = Result<T>>) -> Result<T> {
        match tokio::time::timeout(self.limit, future).await {
            Ok(outcome) => outcome,
            Err(_) => Err(self.error()),
        }
    }

    fn error(&self) -> Error {
        let message = match self.scope {
            TimeoutScope::Attempt => "attempt timed out",
            TimeoutScope::Total => "total timeout elapsed",
        };
        Error::timeout(message).with_source(Elapsed {
            scope: self.scope,
            limit: self.limit,
        })
    }
}

impl fmt::Debug for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("limit", &self.limit)
            .field("scope", &self.scope)
            .finish()
    }
}

impl<C: Send + 'static> Middleware<C> for Timeout {
    fn call(&self, ctx: C, next: Next<C>) -> BoxFuture<'_, Result<C>> {
        Box::pin(Timeout::call(self, next.run(ctx)))
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Owned(format!(
            "timeout({}, {:?})",
            self.scope.as_str(),
            self.limit
        ))
    }
}

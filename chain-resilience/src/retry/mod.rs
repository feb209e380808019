//! [`Retry`]: run a call again after transient failures, with backoff,
//! jitter, a deadline and a budget.

mod budget;

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chain_core::{BoxFuture, Error, ErrorKind, Middleware, Next, Result};
use tokio::time::Instant;

pub use budget::RetryBudget;

/// How the wait between attempts grows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backoff {
    /// The same wait every time.
    Constant(Duration),
    /// `initial`, then `initial + step`, `initial + 2 * step`, ...
    Linear {
        /// The first wait.
        initial: Duration,
        /// Added for each further retry.
        step: Duration,
    },
    /// `initial`, then `initial * multiplier`, `initial * multiplier²`, ...
    Exponential {
        /// The first wait.
        initial: Duration,
        /// The growth factor (at least 1).
        multiplier: f64,
    },
}

impl Backoff {
    fn initial(self) -> Duration {
        match self {
            Self::Constant(wait) => wait,
            Self::Linear { initial, .. } | Self::Exponential { initial, .. } => initial,
        }
    }

    /// The wait before retry number `retry` (1 for the first retry).
    fn wait(self, retry: u32) -> Duration {
        let steps = retry.saturating_sub(1);
        match self {
            Self::Constant(wait) => wait,
            Self::Linear { initial, step } => initial.saturating_add(step.saturating_mul(steps)),
            Self::Exponential {
                initial,
                multiplier,
            } => {
                let factor = multiplier.max(1.0).powi(steps.min(1024) as i32);
                Duration::try_from_secs_f64(initial.as_secs_f64() * factor).unwrap_or(Duration::MAX)
            }
        }
    }
}

/// Randomness added to the waits, so that clients that failed together do
/// not retry together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// Waits exactly as the backoff says.
    #[default]
    None,
    /// A uniformly random wait between zero and the backoff's wait.
    Full,
    /// AWS's "decorrelated jitter": a random wait between the initial wait
    /// and three times the previous one, capped.
    Decorrelated,
}

type RetryPredicate = Arc<dyn Fn(&Error) -> bool + Send + Sync>;

/// Retries a failing call.
///
/// By default: 3 attempts in all, exponential backoff from 100 ms doubling
/// up to 10 s, full jitter (kept when another [`Backoff`] is chosen), and only errors that may be transient are
/// retried: never circuit-open and other rejections, validation,
/// unauthorized, forbidden, not found or panics. A retry is also skipped
/// when its wait would pass the deadline or the [`RetryBudget`] is spent;
/// the last error is returned.
///
/// Retrying a chain step runs it again on a copy of its input, so as
/// middleware it needs a context that is `Clone`.
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use chain_core::Error;
/// use chain_resilience::{Backoff, Retry};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> chain_core::Result<()> {
/// let attempts = AtomicU32::new(0);
/// let retry = Retry::new(5).backoff(Backoff::Constant(Duration::from_millis(1)));
/// let value = retry
///     .call(|| async {
///         if attempts.fetch_add(1, Ordering::SeqCst) < 2 {
///             return Err(Error::unavailable("flaky"));
///         }
///         Ok(42)
///     })
///     .await?;
/// assert_eq!((value, attempts.load(Ordering::SeqCst)), (42, 3));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Retry {
    max_attempts: u32,
    backoff: Backoff,
    max_wait: Duration,
    jitter: Jitter,
    deadline: Option<Duration>,
    retry_if: RetryPredicate,
    budget: Option<RetryBudget>,
}

impl Default for Retry {
    fn default() -> Self {
        Self::new(3)
    }
}

/// Whether an error may go away on its own.
fn is_transient(error: &Error) -> bool {
    !error.kind().is_client_error()
        && !matches!(error.kind(), ErrorKind::Rejected | ErrorKind::Panicked)
}

impl Retry {
    /// At most `max_attempts` attempts in all (at least 1), with the
    /// defaults above.
    pub fn new(max_attempts: u32) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            backoff: Backoff::Exponential {
                initial: Duration::from_millis(100),
                multiplier: 2.0,
            },
            max_wait: Duration::from_secs(10),
            jitter: Jitter::Full,
            deadline: None,
            retry_if: Arc::new(is_transient),
            budget: None,
        }
    }

    /// Sets how the waits grow. The jitter stays as it was (full jitter
    /// unless [`jitter`](Self::jitter) changed it), so each wait is a random
    /// time up to the backoff's; call `.jitter(Jitter::None)` for exact
    /// waits.
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Caps every wait.
    #[must_use]
    pub fn max_wait(mut self, cap: Duration) -> Self {
        self.max_wait = cap;
        self
    }

    /// Sets the jitter.
    #[must_use]
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// No retry starts whose wait would end later than `deadline` after the
    /// first attempt started.
    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Retries only errors for which `predicate` holds.
    #[must_use]
    pub fn retry_if<P>(mut self, predicate: P) -> Self
    where
        P: Fn(&Error) -> bool + Send + Sync + 'static,
    {
        self.retry_if = Arc::new(predicate);
        self
    }

    /// Spends retries from `budget`, which may be shared by many retry
    /// policies.
    #[must_use]
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The wait before retry number `retry`, after waiting `previous`.
    fn wait(&self, retry: u32, previous: Duration) -> Duration {
        let planned = self.backoff.wait(retry).min(self.max_wait);
        match self.jitter {
            Jitter::None => planned,
            Jitter::Full => random_between(Duration::ZERO, planned),
            Jitter::Decorrelated => {
                let floor = self.backoff.initial().min(self.max_wait);
                let ceiling = previous.saturating_mul(3).clamp(floor, self.max_wait);
                random_between(floor, ceiling)
            }
        }
    }

    /// Calls `attempt` until it succeeds, a non-retryable error comes, or
    /// attempts, deadline or budget run out.
    ///
    /// # Errors
    ///
    /// The last attempt's error.
    pub async fn call<T, F, Fut>(&self, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let started = Instant::now();
        if let Some(budget) = &self.budget {
            budget.deposit();
        }
        let mut previous = self.backoff.initial();
        let mut attempts = 1;
        loop {
            let error = match attempt().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            if attempts >= self.max_attempts || !(self.retry_if)(&error) {
                return Err(error);
            }
            let wait = self.wait(attempts, previous);
            if let Some(deadline) = self.deadline
                && started.elapsed().saturating_add(wait) >= deadline
            {
                return Err(error);
            }
            if let Some(budget) = &self.budget
                && !budget.try_withdraw()
            {
                return Err(error);
            }
            tokio::time::sleep(wait).await;
            previous = wait;
            attempts += 1;
        }
    }
}

fn random_between(low: Duration, high: Duration) -> Duration {
    if high <= low {
        return low;
    }
    let span = u64::try_from((high - low).as_nanos()).unwrap_or(u64::MAX);
    low + Duration::from_nanos(fastrand::u64(0..=span))
}

impl fmt::Debug for Retry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .field("max_wait", &self.max_wait)
            .field("jitter", &self.jitter)
            .field("deadline", &self.deadline)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

/// Runs the wrapped link again on a copy of its input context.
impl<C: Clone + Send + Sync + 'static> Middleware<C> for Retry {
    fn call(&self, ctx: C, next: Next<C>) -> BoxFuture<'_, Result<C>> {
        Box::pin(Retry::call(self, move || next.clone().run(ctx.clone())))
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Owned(format!("retry({})", self.max_attempts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoffs_grow_as_documented() {
        let ms = Duration::from_millis;
        let waits = |backoff: Backoff| (1..=4).map(|n| backoff.wait(n)).collect::<Vec<_>>();
        assert_eq!(waits(Backoff::Constant(ms(5))), [ms(5); 4]);
        assert_eq!(
            waits(Backoff::Linear {
                initial: ms(10),
                step: ms(5)
            }),
            [ms(10), ms(15), ms(20), ms(25)]
        );
        assert_eq!(
            waits(Backoff::Exponential {
                initial: ms(10),
                multiplier: 3.0
            }),
            [ms(10), ms(30), ms(90), ms(270)]
        );
    }

    #[test]
    fn waits_are_capped_and_jitter_stays_in_range() {
        let retry = Retry::new(10)
            .backoff(Backoff::Exponential {
                initial: Duration::from_millis(100),
                multiplier: 10.0,
            })
            .max_wait(Duration::from_secs(1))
            .jitter(Jitter::None);
        assert_eq!(retry.wait(5, Duration::ZERO), Duration::from_secs(1));

        let full = retry.clone().jitter(Jitter::Full);
        let decorrelated = retry.jitter(Jitter::Decorrelated);
        for _ in 0..1000 {
            assert!(full.wait(2, Duration::ZERO) <= Duration::from_secs(1));
            let wait = decorrelated.wait(2, Duration::from_millis(200));
            assert!(
                wait >= Duration::from_millis(100) && wait <= Duration::from_millis(600),
                "{wait:?}"
            );
        }
    }

    /// Choosing a backoff does not silently turn the default full jitter off:
    /// clients that failed together would otherwise retry in lockstep.
    #[test]
    fn a_backoff_keeps_the_jitter_unless_it_is_turned_off() {
        let ms = Duration::from_millis;
        let jittered = Retry::new(3).backoff(Backoff::Constant(ms(100)));
        let waits: Vec<Duration> = (0..200).map(|_| jittered.wait(1, ms(100))).collect();
        assert!(waits.iter().all(|wait| *wait <= ms(100)));
        assert!(waits.iter().any(|wait| *wait < ms(90)), "{waits:?}");

        let exact = Retry::new(3)
            .backoff(Backoff::Constant(ms(100)))
            .jitter(Jitter::None);
        assert!((0..200).all(|_| exact.wait(1, ms(100)) == ms(100)));
        // The order of the two calls does not matter.
        let exact = Retry::new(3)
            .jitter(Jitter::None)
            .backoff(Backoff::Constant(ms(100)));
        assert_eq!(exact.wait(1, ms(100)), ms(100));
    }

    #[test]
    fn only_transient_errors_are_retried_by_default() {
        for error in [
            Error::unavailable("x"),
            Error::timeout("x"),
            Error::internal("x"),
        ] {
            assert!(is_transient(&error), "{error}");
        }
        for error in [
            Error::rejected("circuit open"),
            Error::validation("x"),
            Error::unauthorized("x"),
            Error::forbidden("x"),
            Error::not_found("x"),
        ] {
            assert!(!is_transient(&error), "{error}");
        }
    }
}

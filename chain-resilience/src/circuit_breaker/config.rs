use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chain_core::Error;

/// Which recent calls the failure and slow-call rates are computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlidingWindow {
    /// The last `n` calls (a ring buffer).
    Count(u32),
    /// The calls of the last `n` seconds (one bucket per second).
    Time(u32),
}

/// Decides whether an error counts as a failure of the guarded dependency.
pub type FailurePredicate = Arc<dyn Fn(&Error) -> bool + Send + Sync>;

/// Settings of a [`CircuitBreaker`](super::CircuitBreaker).
///
/// The defaults are resilience4j's, except that errors of client kinds
/// (validation, unauthorized, forbidden, not found) do not count as
/// failures: they say the request was bad, not that the dependency is.
///
/// | setting | default |
/// |---|---|
/// | window | last 100 calls |
/// | minimum calls before rates are evaluated | 100 |
/// | failure-rate threshold | 50% |
/// | slow-call duration / rate threshold | off / 100% |
/// | wait in open state | 60 s, no backoff |
/// | permitted calls in half-open state | 10 |
///
/// ```
/// use std::time::Duration;
/// use chain_resilience::{CircuitBreakerConfig, SlidingWindow};
///
/// let config = CircuitBreakerConfig::default()
///     .window(SlidingWindow::Time(30))
///     .minimum_calls(20)
///     .failure_rate_threshold(25.0)
///     .slow_calls(Duration::from_millis(500), 80.0)
///     .wait_in_open(Duration::from_secs(5))
///     .open_backoff(2.0, Duration::from_secs(300))
///     .half_open_permits(3);
/// # let _ = config;
/// ```
#[derive(Clone)]
pub struct CircuitBreakerConfig {
    pub(crate) window: SlidingWindow,
    pub(crate) minimum_calls: u32,
    pub(crate) failure_rate_threshold: f64,
    pub(crate) slow_call_duration: Option<Duration>,
    pub(crate) slow_call_rate_threshold: f64,
    pub(crate) wait_in_open: Duration,
    pub(crate) backoff_multiplier: f64,
    pub(crate) max_wait_in_open: Duration,
    pub(crate) half_open_permits: u32,
    pub(crate) is_failure: FailurePredicate,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        Self {
            window: SlidingWindow::Count(100),
            minimum_calls: 100,
            failure_rate_threshold: 50.0,
            slow_call_duration: None,
            slow_call_rate_threshold: 100.0,
            wait_in_open: Duration::from_secs(60),
            backoff_multiplier: 1.0,
            max_wait_in_open: Duration::from_secs(60),
            half_open_permits: 10,
            is_failure: Arc::new(|error: &Error| !error.kind().is_client_error()),
        }
    }
}

impl CircuitBreakerConfig {
    /// The classic policy: open after `failures` consecutive failures, for
    /// `open_for`, then let one probe through.
    ///
    /// Consecutive failures are a count window of `failures` calls that must
    /// all fail: a success in between pushes a failure out of the window.
    pub fn consecutive_failures(failures: u32, open_for: Duration) -> Self {
        Self::default()
            .window(SlidingWindow::Count(failures))
            .minimum_calls(failures)
            .failure_rate_threshold(100.0)
            .wait_in_open(open_for)
            .half_open_permits(1)
    }

    /// Sets the sliding window. Sizes below 1 are raised to 1.
    #[must_use]
    pub fn window(mut self, window: SlidingWindow) -> Self {
        self.window = match window {
            SlidingWindow::Count(n) => SlidingWindow::Count(n.max(1)),
            SlidingWindow::Time(n) => SlidingWindow::Time(n.max(1)),
        };
        self
    }

    /// Calls needed in the window before rates are evaluated (at least 1).
    #[must_use]
    pub fn minimum_calls(mut self, calls: u32) -> Self {
        self.minimum_calls = calls.max(1);
        self
    }

    /// Failure rate, in percent, at or above which the circuit opens.
    /// Clamped to `0.0..=100.0`.
    #[must_use]
    pub fn failure_rate_threshold(mut self, percent: f64) -> Self {
        self.failure_rate_threshold = clamp_percent(percent);
        self
    }

    /// Counts calls slower than `duration` as slow, and opens the circuit
    /// when the slow-call rate reaches `rate_percent`. Costs two clock reads
    /// per call, which is why it is off by default.
    #[must_use]
    pub fn slow_calls(mut self, duration: Duration, rate_percent: f64) -> Self {
        self.slow_call_duration = Some(duration);
        self.slow_call_rate_threshold = clamp_percent(rate_percent);
        self
    }

    /// How long the circuit stays open before letting probes through.
    #[must_use]
    pub fn wait_in_open(mut self, wait: Duration) -> Self {
        self.wait_in_open = wait;
        self.max_wait_in_open = self.max_wait_in_open.max(wait);
        self
    }

    /// Multiplies the open wait by `multiplier` each time a half-open probe
    /// fails and the circuit opens again, up to `max`. Reset when the circuit
    /// closes.
    #[must_use]
    pub fn open_backoff(mut self, multiplier: f64, max: Duration) -> Self {
        self.backoff_multiplier = if multiplier.is_finite() {
            multiplier.max(1.0)
        } else {
            1.0
        };
        self.max_wait_in_open = max.max(self.wait_in_open);
        self
    }

    /// Calls admitted in the half-open state; their failure rate decides
    /// between closing and opening again (at least 1).
    #[must_use]
    pub fn half_open_permits(mut self, permits: u32) -> Self {
        self.half_open_permits = permits.max(1);
        self
    }

    /// Decides which errors count as failures; others count as successes.
    #[must_use]
    pub fn record_failure_if<P>(mut self, predicate: P) -> Self
    where
        P: Fn(&Error) -> bool + Send + Sync + 'static,
    {
        self.is_failure = Arc::new(predicate);
        self
    }

    /// The wait in the open state after `reopened` consecutive re-openings.
    pub(crate) fn open_wait(&self, reopened: u32) -> Duration {
        let factor = self.backoff_multiplier.powi(reopened.min(64) as i32);
        let wait = self.wait_in_open.as_secs_f64() * factor;
        Duration::try_from_secs_f64(wait)
            .unwrap_or(self.max_wait_in_open)
            .min(self.max_wait_in_open)
    }
}

fn clamp_percent(percent: f64) -> f64 {
    if percent.is_nan() {
        100.0
    } else {
        percent.clamp(0.0, 100.0)
    }
}

impl fmt::Debug for CircuitBreakerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerConfig")
            .field("window", &self.window)
            .field("minimum_calls", &self.minimum_calls)
            .field("failure_rate_threshold", &self.failure_rate_threshold)
            .field("slow_call_duration", &self.slow_call_duration)
            .field("slow_call_rate_threshold", &self.slow_call_rate_threshold)
            .field("wait_in_open", &self.wait_in_open)
            .field("backoff_multiplier", &self.backoff_multiplier)
            .field("max_wait_in_open", &self.max_wait_in_open)
            .field("half_open_permits", &self.half_open_permits)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_multiplies_and_caps_the_open_wait() {
        let config = CircuitBreakerConfig::default()
            .wait_in_open(Duration::from_secs(1))
            .open_backoff(2.0, Duration::from_secs(5));
        let waits: Vec<u64> = (0..5).map(|n| config.open_wait(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 5, 5]);
    }

    #[test]
    fn without_backoff_the_wait_is_constant() {
        let config = CircuitBreakerConfig::default().wait_in_open(Duration::from_secs(3));
        assert_eq!(config.open_wait(0), config.open_wait(10));
    }

    #[test]
    fn client_errors_are_not_failures_by_default() {
        let config = CircuitBreakerConfig::default();
        assert!(!(config.is_failure)(&Error::validation("bad input")));
        assert!((config.is_failure)(&Error::unavailable("down")));
        assert!((config.is_failure)(&Error::timeout("slow")));
    }
}

//! The process's resident memory, sampled into a bounded history, with a
//! limit that stream processing obeys by lowering its concurrency.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chain_core::{BoxFuture, Middleware, Next};
use serde::Serialize;

use crate::sync::lock;

/// How many samples the history keeps.
const HISTORY: usize = 256;

/// Samples resident memory (RSS) and says when it is above the limit.
/// Cheap to clone: clones share the history.
///
/// ```
/// use chain_scaling::stream::MemoryMonitor;
///
/// let monitor = MemoryMonitor::new(512 * 1024 * 1024);
/// let rss = monitor.sample().expect("Linux, macOS and Windows report RSS");
/// assert!(rss > 0);
/// assert_eq!(monitor.report().peak_bytes, rss);
/// ```
#[derive(Clone)]
pub struct MemoryMonitor {
    inner: Arc<Inner>,
}

struct Inner {
    limit_bytes: u64,
    interval: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    history: VecDeque<u64>,
    samples: u64,
    peak: u64,
    /// The lowest sample (0 before the first).
    min: u64,
    /// Executions measured around ([`MemoryMonitor::around_executions`]).
    executions: u64,
    /// The sum of their changes in RSS.
    change_total: i64,
    last_sample: Option<Instant>,
    throttled: u64,
    lowest_concurrency: Option<usize>,
}

/// How the peak compares with the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryGrade {
    /// Nothing sampled yet.
    Unknown,
    /// The peak stayed under half the limit.
    Good,
    /// The peak reached half the limit, but not three quarters.
    Fair,
    /// The peak reached three quarters of the limit, without passing it.
    NeedsOptimization,
    /// The peak passed the limit.
    OverLimit,
}

impl MemoryGrade {
    /// The grade's name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Good => "good",
            Self::Fair => "fair",
            Self::NeedsOptimization => "needs_optimization",
            Self::OverLimit => "over_limit",
        }
    }

    /// The grade of `peak_bytes` against `limit_bytes`.
    pub fn of(peak_bytes: u64, limit_bytes: u64) -> Self {
        let share = peak_bytes as f64 / limit_bytes.max(1) as f64;
        match share {
            _ if peak_bytes == 0 => Self::Unknown,
            share if share > 1.0 => Self::OverLimit,
            share if share >= 0.75 => Self::NeedsOptimization,
            share if share >= 0.5 => Self::Fair,
            _ => Self::Good,
        }
    }
}

impl fmt::Display for MemoryGrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the monitor saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MemoryReport {
    /// The configured limit.
    pub limit_bytes: u64,
    /// Samples taken.
    pub samples: u64,
    /// The highest RSS sampled.
    pub peak_bytes: u64,
    /// The lowest RSS sampled.
    pub min_bytes: u64,
    /// Chain executions measured by [`MemoryMonitor::around_executions`].
    pub executions: u64,
    /// Their average change in RSS, from just before to just after each
    /// (negative when executions free more than they keep).
    pub average_change_per_execution_bytes: i64,
    /// The peak graded against the limit.
    pub grade: MemoryGrade,
    /// The average over the recent history (up to 256 samples).
    pub average_bytes: u64,
    /// The latest sample.
    pub current_bytes: u64,
    /// How many times processing lowered its concurrency because RSS was
    /// above the limit.
    pub throttled: u64,
    /// The lowest concurrency processing went down to, if it throttled.
    pub lowest_concurrency: Option<usize>,
}

impl MemoryMonitor {
    /// Watches for RSS above `limit_bytes`, sampling at most every 50 ms
    /// when asked through [`sample_if_due`](Self::sample_if_due).
    pub fn new(limit_bytes: u64) -> Self {
        MemoryMonitor {
            inner: Arc::new(Inner {
                limit_bytes,
                interval: Duration::from_millis(50),
                state: Mutex::default(),
            }),
        }
    }

    /// Sets the shortest time between samples taken by
    /// [`sample_if_due`](Self::sample_if_due).
    pub fn with_interval(self, interval: Duration) -> Self {
        MemoryMonitor {
            inner: Arc::new(Inner {
                limit_bytes: self.inner.limit_bytes,
                interval,
                state: Mutex::default(),
            }),
        }
    }

    /// The limit.
    pub fn limit_bytes(&self) -> u64 {
        self.inner.limit_bytes
    }

    /// Reads RSS now and records it; `None` where the platform does not
    /// tell.
    pub fn sample(&self) -> Option<u64> {
        let rss = chain_core::stats::resident_memory_bytes()?;
        let mut state = self.lock();
        if state.history.len() == HISTORY {
            state.history.pop_front();
        }
        state.history.push_back(rss);
        state.samples += 1;
        state.peak = state.peak.max(rss);
        state.min = if state.min == 0 {
            rss
        } else {
            state.min.min(rss)
        };
        state.last_sample = Some(Instant::now());
        Some(rss)
    }

    /// Samples if the interval has passed since the last sample.
    pub fn sample_if_due(&self) -> Option<u64> {
        let due = self
            .lock()
            .last_sample
            .is_none_or(|last| last.elapsed() >= self.inner.interval);
        if due { self.sample() } else { None }
    }

    /// Records that processing lowered its concurrency to `concurrency`.
    pub(crate) fn record_throttle(&self, rss: u64, concurrency: usize) {
        let mut state = self.lock();
        state.throttled += 1;
        state.lowest_concurrency = Some(
            state
                .lowest_concurrency
                .map_or(concurrency, |lowest| lowest.min(concurrency)),
        );
        tracing::warn!(
            rss_bytes = rss,
            limit_bytes = self.inner.limit_bytes,
            concurrency,
            "memory above the limit; lowering stream concurrency"
        );
    }

    /// Middleware that samples RSS just before and just after each
    /// execution of the chain it wraps (`chain.around(...)`), for the
    /// report's change per execution: two reads of the process's memory
    /// per execution (a few microseconds on Linux), so meant for chains
    /// that do real work per execution, not for a hot path of nanoseconds.
    pub fn around_executions(&self) -> ExecutionMemory {
        ExecutionMemory {
            monitor: self.clone(),
        }
    }

    fn record_execution(&self, before: u64, after: u64) {
        let change =
            i64::try_from(after).unwrap_or(i64::MAX) - i64::try_from(before).unwrap_or(i64::MAX);
        let mut state = self.lock();
        state.executions += 1;
        state.change_total = state.change_total.saturating_add(change);
    }

    /// Peak, minimum, average, change per execution, grade and throttling
    /// so far.
    pub fn report(&self) -> MemoryReport {
        let state = self.lock();
        let recent = state.history.len() as u64;
        let average = state.history.iter().sum::<u64>().checked_div(recent);
        MemoryReport {
            limit_bytes: self.inner.limit_bytes,
            samples: state.samples,
            peak_bytes: state.peak,
            min_bytes: state.min,
            executions: state.executions,
            average_change_per_execution_bytes: state
                .change_total
                .checked_div(i64::try_from(state.executions).unwrap_or(i64::MAX))
                .unwrap_or(0),
            grade: MemoryGrade::of(state.peak, self.inner.limit_bytes),
            average_bytes: average.unwrap_or(0),
            current_bytes: state.history.back().copied().unwrap_or(0),
            throttled: state.throttled,
            lowest_concurrency: state.lowest_concurrency,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.inner.state)
    }
}

/// Measures each execution's change in RSS; made by
/// [`MemoryMonitor::around_executions`].
#[derive(Debug, Clone)]
pub struct ExecutionMemory {
    monitor: MemoryMonitor,
}

impl<C: Send + 'static> Middleware<C> for ExecutionMemory {
    fn call(&self, ctx: C, next: Next<C>) -> BoxFuture<'_, chain_core::Result<C>> {
        Box::pin(async move {
            let before = self.monitor.sample();
            let outcome = next.run(ctx).await;
            if let (Some(before), Some(after)) = (before, self.monitor.sample()) {
                self.monitor.record_execution(before, after);
            }
            outcome
        })
    }

    fn name(&self) -> std::borrow::Cow<'static, str> {
        "memory".into()
    }
}

impl fmt::Debug for MemoryMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryMonitor")
            .field("report", &self.report())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_peak_average_and_a_bounded_history() {
        let monitor = MemoryMonitor::new(u64::MAX).with_interval(Duration::from_secs(3600));
        let first = monitor.sample().unwrap();
        // Touch 32 MB so RSS grows measurably.
        let ballast = vec![1u8; 32 * 1024 * 1024];
        let second = monitor.sample().unwrap();
        assert!(second >= first + 30 * 1024 * 1024, "{first} -> {second}");
        drop(ballast);
        assert_eq!(monitor.sample_if_due(), None, "not due within the interval");
        for _ in 0..HISTORY {
            monitor.sample();
        }
        let report = monitor.report();
        assert_eq!(report.samples, 2 + HISTORY as u64);
        assert!(report.peak_bytes >= second);
        assert!(report.average_bytes > 0 && report.average_bytes <= report.peak_bytes);
        assert_eq!(report.throttled, 0);
    }
}

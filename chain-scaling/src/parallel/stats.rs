//! Execution statistics measured per mode: all-time count, total, min and
//! max, and a window of recent durations for the 99th percentile.

use std::sync::Mutex;
use std::time::Duration;

use chain_core::stats::RecentDurations;
use serde::Serialize;

use crate::sync::lock;

/// How many recent durations the percentile is computed from.
const WINDOW: usize = 1024;

/// Measured durations of one execution mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct ExecutionStats {
    /// Executions finished (successes and failures).
    pub count: u64,
    /// Of those, how many failed.
    pub failures: u64,
    /// Sum of their durations.
    #[serde(with = "micros")]
    pub total: Duration,
    /// `total / count`.
    #[serde(with = "micros")]
    pub average: Duration,
    /// The shortest.
    #[serde(with = "micros")]
    pub min: Duration,
    /// The longest.
    #[serde(with = "micros")]
    pub max: Duration,
    /// The 99th percentile of the last 1,024.
    #[serde(with = "micros")]
    pub p99: Duration,
    /// The longest wait for a slot in the pool.
    #[serde(with = "micros")]
    pub max_wait: Duration,
    /// The average time the chain itself ran: in blocking mode, on its
    /// thread, without the hand-off to and from it.
    #[serde(with = "micros")]
    pub average_work: Duration,
}

#[derive(Debug, Default)]
pub(crate) struct Recorder {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    count: u64,
    failures: u64,
    total: Duration,
    min: Option<Duration>,
    max: Duration,
    max_wait: Duration,
    work: Duration,
    recent: RecentDurations,
}

impl Default for State {
    fn default() -> Self {
        Self {
            count: 0,
            failures: 0,
            total: Duration::ZERO,
            min: None,
            max: Duration::ZERO,
            max_wait: Duration::ZERO,
            work: Duration::ZERO,
            recent: RecentDurations::new(WINDOW),
        }
    }
}

impl Recorder {
    /// One execution: its duration, how long it waited for a slot, whether
    /// it failed, and how much of `took` was the chain's own work.
    pub(crate) fn record(&self, took: Duration, waited: Duration, failed: bool, work: Duration) {
        let mut state = lock(&self.state);
        state.count += 1;
        state.work += work;
        state.failures += u64::from(failed);
        state.total += took;
        state.min = Some(state.min.map_or(took, |min| min.min(took)));
        state.max = state.max.max(took);
        state.max_wait = state.max_wait.max(waited);
        state.recent.push(took);
    }

    pub(crate) fn snapshot(&self) -> ExecutionStats {
        let state = lock(&self.state);
        let p99 = state
            .recent
            .percentiles()
            .percentile(0.99)
            .unwrap_or_default();
        let count = u32::try_from(state.count).unwrap_or(u32::MAX);
        ExecutionStats {
            count: state.count,
            failures: state.failures,
            total: state.total,
            average: state.total.checked_div(count).unwrap_or_default(),
            min: state.min.unwrap_or_default(),
            max: state.max,
            p99,
            max_wait: state.max_wait,
            average_work: state.work.checked_div(count).unwrap_or_default(),
        }
    }
}

/// Durations as fractional microseconds in JSON reports.
mod micros {
    use std::time::Duration;

    use serde::Serializer;

    pub(super) fn serialize<S: Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(value.as_secs_f64() * 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_durations_and_the_99th_percentile() {
        let recorder = Recorder::default();
        for ms in 1..=100 {
            recorder.record(
                Duration::from_millis(ms),
                Duration::ZERO,
                ms == 100,
                Duration::from_millis(ms),
            );
        }
        let stats = recorder.snapshot();
        assert_eq!(stats.count, 100);
        assert_eq!(stats.failures, 1);
        assert_eq!(stats.min, Duration::from_millis(1));
        assert_eq!(stats.max, Duration::from_millis(100));
        assert_eq!(stats.average, Duration::from_micros(50_500));
        assert_eq!(stats.p99, Duration::from_millis(99));
        assert_eq!(ExecutionStats::default(), Recorder::default().snapshot());
    }
}

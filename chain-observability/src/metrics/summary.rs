//! Per-chain performance summaries and health, over a bounded window of
//! recent executions.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chain_core::stats::Percentiles;
use serde::Serialize;

/// One finished execution, as the summary keeps it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Execution {
    pub(crate) finished: Instant,
    pub(crate) duration: Duration,
    pub(crate) success: bool,
}

/// The recent executions of one chain, oldest first, at most `capacity`.
#[derive(Debug)]
pub(crate) struct History {
    capacity: usize,
    executions: VecDeque<Execution>,
}

impl History {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            executions: VecDeque::new(),
        }
    }

    pub(crate) fn push(&mut self, execution: Execution) {
        if self.executions.len() == self.capacity {
            self.executions.pop_front();
        }
        self.executions.push_back(execution);
    }

    pub(crate) fn summary(&self) -> Option<PerformanceSummary> {
        summarize(self.executions.iter())
    }

    pub(crate) fn executions(&self) -> std::collections::vec_deque::Iter<'_, Execution> {
        self.executions.iter()
    }

    pub(crate) fn recent(&self, since: Instant) -> impl Iterator<Item = &Execution> {
        self.executions.iter().filter(move |e| e.finished >= since)
    }
}

/// The summary of `executions`, or `None` if there are none.
pub(crate) fn summarize<'a>(
    executions: impl Iterator<Item = &'a Execution> + Clone,
) -> Option<PerformanceSummary> {
    let total = executions.clone().count();
    if total == 0 {
        return None;
    }
    let successes = executions.clone().filter(|e| e.success).count();
    let durations = Percentiles::new(executions.map(|e| e.duration));
    Some(PerformanceSummary {
        total,
        successes,
        failures: total - successes,
        success_rate: successes as f64 / total as f64,
        average: durations.mean().unwrap_or_default(),
        min: durations.min().unwrap_or_default(),
        max: durations.max().unwrap_or_default(),
        p95: durations.percentile(0.95).unwrap_or_default(),
        p99: durations.percentile(0.99).unwrap_or_default(),
    })
}

/// How a chain performed over its recent executions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerformanceSummary {
    /// Executions in the window.
    pub total: usize,
    /// Of which succeeded.
    pub successes: usize,
    /// Of which failed.
    pub failures: usize,
    /// `successes / total`.
    pub success_rate: f64,
    /// Average duration.
    pub average: Duration,
    /// Shortest duration.
    pub min: Duration,
    /// Longest duration.
    pub max: Duration,
    /// 95th percentile duration.
    pub p95: Duration,
    /// 99th percentile duration.
    pub p99: Duration,
}

/// The rules that turn recent executions into a [`Health`], by default:
/// over the last 5 minutes, more than 10% errors is unhealthy, an average
/// above 30 s is degraded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthThresholds {
    /// How far back executions count.
    pub window: Duration,
    /// Error rate (0 to 1) above which the chain is unhealthy.
    pub max_error_rate: f64,
    /// Average duration above which the chain is degraded.
    pub max_average: Duration,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(300),
            max_error_rate: 0.1,
            max_average: Duration::from_secs(30),
        }
    }
}

/// The health verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// No executions in the window.
    Unknown,
    /// Within every threshold.
    Healthy,
    /// Too slow on average.
    Degraded,
    /// Too many errors.
    Unhealthy,
}

/// Health with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    /// The verdict.
    pub status: HealthStatus,
    /// Why, in words.
    pub message: String,
    /// Executions in the window.
    pub recent_executions: usize,
    /// Error rate over them (0 to 1).
    pub error_rate: f64,
    /// Their average duration.
    pub average: Duration,
}

impl HealthThresholds {
    pub(crate) fn judge<'a>(&self, recent: impl Iterator<Item = &'a Execution>) -> Health {
        let (count, errors, total) = recent
            .fold((0_usize, 0_usize, Duration::ZERO), |(n, e, d), x| {
                (n + 1, e + usize::from(!x.success), d + x.duration)
            });
        if count == 0 {
            return Health {
                status: HealthStatus::Unknown,
                message: "no recent executions to evaluate health".to_owned(),
                recent_executions: 0,
                error_rate: 0.0,
                average: Duration::ZERO,
            };
        }
        let error_rate = errors as f64 / count as f64;
        let average = total / count as u32;
        let (status, message) = if error_rate > self.max_error_rate {
            (
                HealthStatus::Unhealthy,
                format!("high error rate: {:.1}%", error_rate * 100.0),
            )
        } else if average > self.max_average {
            (
                HealthStatus::Degraded,
                format!("high average duration: {average:.2?}"),
            )
        } else {
            (
                HealthStatus::Healthy,
                "all systems operating normally".to_owned(),
            )
        };
        Health {
            status,
            message,
            recent_executions: count,
            error_rate,
            average,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn execution(ms: u64, success: bool) -> Execution {
        Execution {
            finished: Instant::now(),
            duration: Duration::from_millis(ms),
            success,
        }
    }

    #[test]
    fn summary_over_a_bounded_window() {
        let mut history = History::new(100);
        for ms in 1..=150 {
            history.push(execution(ms, ms % 10 != 0));
        }
        let summary = history.summary().unwrap();
        assert_eq!(summary.total, 100, "only the last 100 are kept");
        assert_eq!((summary.successes, summary.failures), (90, 10));
        assert_eq!(summary.min, Duration::from_millis(51));
        assert_eq!(summary.max, Duration::from_millis(150));
        assert_eq!(summary.p95, Duration::from_millis(145));
        assert_eq!(summary.p99, Duration::from_millis(149));
        assert_eq!(summary.average, Duration::from_micros(100_500));
    }

    #[test]
    fn health_follows_the_default_rules() {
        let rules = HealthThresholds::default();
        let judge = |executions: &[Execution]| rules.judge(executions.iter()).status;
        assert_eq!(judge(&[]), HealthStatus::Unknown);
        assert_eq!(judge(&[execution(10, true); 10]), HealthStatus::Healthy);
        let mut some_errors = vec![execution(10, true); 9];
        some_errors.push(execution(10, false));
        assert_eq!(
            judge(&some_errors),
            HealthStatus::Healthy,
            "exactly 10% is not above 10%"
        );
        some_errors.push(execution(10, false));
        assert_eq!(judge(&some_errors), HealthStatus::Unhealthy);
        assert_eq!(judge(&[execution(31_000, true)]), HealthStatus::Degraded);
    }
}

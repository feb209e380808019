//! The performance report, with recommendations computed from the
//! measured statistics rather than from simulated numbers.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::{ExecutionStats, Mode};

/// The pool's limits and current use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ResourceUtilization {
    /// The configured bound on chains running at once.
    pub max_concurrent_chains: usize,
    /// The configured number of blocking threads.
    pub blocking_threads: usize,
    /// How many may wait for a slot (0: none, the excess is rejected).
    pub queue_limit: usize,
    /// Chains running now.
    pub running: usize,
    /// Chains waiting now.
    pub waiting: usize,
    /// Chains rejected since the pool was created.
    pub rejected: u64,
}

/// Statistics per mode, the pool's use, and what to do about them.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct PerformanceReport {
    /// The pool's name.
    pub pool: String,
    /// Statistics of each mode that ran at least once.
    pub metrics: BTreeMap<Mode, ExecutionStats>,
    /// Limits and use.
    pub resource_utilization: ResourceUtilization,
    /// Advice derived from the above; empty when nothing stands out.
    pub recommendations: Vec<String>,
}

pub(crate) struct Recommendations {
    pub(crate) slow_average: Duration,
}

/// Percentiles from fewer samples say little.
const MIN_SAMPLES: u64 = 20;

impl PerformanceReport {
    pub(crate) fn new(
        pool: String,
        metrics: BTreeMap<Mode, ExecutionStats>,
        resource_utilization: ResourceUtilization,
        rules: Recommendations,
    ) -> Self {
        let mut recommendations = Vec::new();
        for (mode, stats) in &metrics {
            let mode = mode.as_str();
            if stats.average > rules.slow_average {
                recommendations.push(format!(
                    "{mode}: chains take {:?} on average; break them down or optimize their links",
                    stats.average
                ));
            }
            if stats.count >= MIN_SAMPLES && stats.p99 > stats.average * 3 {
                recommendations.push(format!(
                    "{mode}: high variability, p99 {:?} is over 3x the average {:?}; investigate the outliers",
                    stats.p99, stats.average
                ));
            }
            if stats.max_wait > stats.average && stats.max_wait > Duration::from_millis(1) {
                recommendations.push(format!(
                    "{mode}: chains waited up to {:?} for a slot, longer than they run on average; the pool is saturated",
                    stats.max_wait
                ));
            }
            if stats.count > 0 && stats.failures * 20 > stats.count {
                recommendations.push(format!(
                    "{mode}: {} of {} executions failed",
                    stats.failures, stats.count
                ));
            }
        }
        // The hand-off to a thread and back is the difference between the
        // total and the work on the thread; measured, not assumed, so the
        // advice holds on a loaded machine too.
        if let Some(blocking) = metrics.get(&Mode::Blocking)
            && blocking.count >= MIN_SAMPLES
            && blocking.average_work * 2 < blocking.average.saturating_sub(blocking.average_work)
        {
            recommendations.push(format!(
                "blocking: chains run {:?} on average but the hand-off to a thread costs {:?}; run them in async mode",
                blocking.average_work,
                blocking.average.saturating_sub(blocking.average_work)
            ));
        }
        if resource_utilization.rejected > 0 {
            recommendations.push(format!(
                "{} chains were rejected: raise max_concurrent_chains or the queue limit, or add capacity",
                resource_utilization.rejected
            ));
        }
        PerformanceReport {
            pool,
            metrics,
            resource_utilization,
            recommendations,
        }
    }
}

impl fmt::Display for PerformanceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Performance report for pool `{}`", self.pool)?;
        for (mode, stats) in &self.metrics {
            writeln!(
                f,
                "  {}: {} runs, avg {:?}, min {:?}, max {:?}, p99 {:?}, failures {}",
                mode.as_str(),
                stats.count,
                stats.average,
                stats.min,
                stats.max,
                stats.p99,
                stats.failures
            )?;
        }
        let use_ = &self.resource_utilization;
        writeln!(
            f,
            "  limits: {} chains at once, {} blocking threads, {} may wait; now {} running, {} waiting; {} rejected",
            use_.max_concurrent_chains,
            use_.blocking_threads,
            use_.queue_limit,
            use_.running,
            use_.waiting,
            use_.rejected
        )?;
        for recommendation in &self.recommendations {
            writeln!(f, "  - {recommendation}")?;
        }
        Ok(())
    }
}

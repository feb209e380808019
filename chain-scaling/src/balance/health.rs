//! Node health: passive outlier ejection and active checks.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

/// Passive outlier detection, as Envoy's: after `consecutive_failures` in a
/// row a node is ejected for `base_ejection` times the number of times it
/// has been ejected (capped at `max_ejection`), and never more than
/// `max_ejected_percent` of the nodes at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutlierDetection {
    /// Failures in a row that eject a node.
    pub consecutive_failures: u32,
    /// The first ejection's length.
    pub base_ejection: Duration,
    /// The longest ejection.
    pub max_ejection: Duration,
    /// Most nodes ejected at once, in percent (at least one node may be).
    pub max_ejected_percent: u32,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            max_ejected_percent: 10,
        }
    }
}

/// A process-wide monotonic origin, so ejection deadlines fit in an atomic.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

pub(crate) fn now_nanos() -> u64 {
    u64::try_from(origin().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// `at` in nanoseconds since the origin, without reading the clock (0 for
/// an instant before it).
pub(crate) fn nanos_since_origin(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(origin()).as_nanos()).unwrap_or(u64::MAX)
}

/// A node's health, shared by the balancer, outlier detection and checks.
#[derive(Debug)]
pub(crate) struct Health {
    /// What active checks last concluded (healthy until told otherwise).
    checked_healthy: AtomicBool,
    check_streak: AtomicU32,
    consecutive_failures: AtomicU32,
    ejected_until: AtomicU64,
    ejections: AtomicU32,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            checked_healthy: AtomicBool::new(true),
            check_streak: AtomicU32::new(0),
            consecutive_failures: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
        }
    }
}

impl Health {
    pub(crate) fn is_ejected(&self, now: u64) -> bool {
        self.ejected_until.load(Ordering::Acquire) > now
    }

    pub(crate) fn is_checked_healthy(&self) -> bool {
        self.checked_healthy.load(Ordering::Acquire)
    }

    /// Whether the node takes calls; reads the clock (through `now`) only
    /// if the node was ever ejected.
    pub(crate) fn is_available(&self, now: impl FnOnce() -> u64) -> bool {
        if !self.is_checked_healthy() {
            return false;
        }
        let until = self.ejected_until.load(Ordering::Acquire);
        until == 0 || until <= now()
    }

    pub(crate) fn ejections(&self) -> u32 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// Counts a call's outcome; returns whether the node reached the
    /// ejection threshold.
    pub(crate) fn observe(&self, success: bool, policy: &OutlierDetection) -> bool {
        if success {
            self.consecutive_failures.store(0, Ordering::Relaxed);
            return false;
        }
        self.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1 >= policy.consecutive_failures
    }

    pub(crate) fn eject(&self, policy: &OutlierDetection, now: u64) {
        let times = self.ejections.fetch_add(1, Ordering::AcqRel) + 1;
        let length = policy
            .base_ejection
            .saturating_mul(times)
            .min(policy.max_ejection);
        let until = now.saturating_add(u64::try_from(length.as_nanos()).unwrap_or(u64::MAX));
        self.ejected_until.store(until, Ordering::Release);
        self.consecutive_failures.store(0, Ordering::Relaxed);
    }

    /// Records an active check; flips the verdict after `threshold` results
    /// in a row that disagree with it.
    pub(crate) fn check(&self, healthy: bool, healthy_threshold: u32, unhealthy_threshold: u32) {
        if healthy == self.is_checked_healthy() {
            self.check_streak.store(0, Ordering::Relaxed);
            return;
        }
        let streak = self.check_streak.fetch_add(1, Ordering::AcqRel) + 1;
        let needed = if healthy {
            healthy_threshold
        } else {
            unhealthy_threshold
        };
        if streak >= needed.max(1) {
            self.checked_healthy.store(healthy, Ordering::Release);
            self.check_streak.store(0, Ordering::Relaxed);
        }
    }
}

/// Active health checks: `check` runs for every node each `interval`, all
/// nodes' checks at once, each cut off after `interval` (a check that has
/// not answered by the next round has failed, and holds up no other); a
/// node is marked unhealthy after `unhealthy_threshold` failed checks in a
/// row and healthy again after `healthy_threshold` passed ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthCheckSettings {
    /// Time between rounds, and the longest a check may take.
    pub interval: Duration,
    /// Passed checks in a row that restore a node.
    pub healthy_threshold: u32,
    /// Failed checks in a row that take a node out.
    pub unhealthy_threshold: u32,
}

impl Default for HealthCheckSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        }
    }
}

/// One node in a [`ClusterStatus`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeStatus {
    /// The node.
    pub id: String,
    /// Passing its active checks.
    pub healthy: bool,
    /// Ejected by outlier detection right now.
    pub ejected: bool,
    /// Times it has been ejected.
    pub ejections: u32,
    /// Calls running on it.
    pub in_flight: u32,
    /// Calls it completed.
    pub served: u64,
    /// Of which succeeded.
    pub successes: u64,
    /// Of which failed.
    pub failures: u64,
    /// When its last call started.
    pub last_request: Option<SystemTime>,
    /// Its connection limit (0: none).
    pub max_connections: u32,
    /// Its latency moving average.
    pub latency: Duration,
    /// Its weight.
    pub weight: u32,
}

/// The cluster's status: its nodes' health, load and latency.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterStatus {
    /// How the balancer picks nodes.
    pub strategy: super::Strategy,
    /// Whether an [`AutoScaler`](super::AutoScaler) manages the pool.
    pub auto_scaling: bool,
    /// Nodes in the pool.
    pub total_nodes: usize,
    /// Nodes taking calls (healthy and not ejected).
    pub healthy_nodes: usize,
    /// Nodes failing their checks or ejected.
    pub unhealthy_nodes: usize,
    /// Calls running across the pool.
    pub in_flight: u32,
    /// The sum of the nodes' connection limits; `None` if some node has
    /// none.
    pub capacity: Option<u64>,
    /// `in_flight / capacity`, when there is a capacity.
    pub utilization: Option<f64>,
    /// Each node.
    pub nodes: Vec<NodeStatus>,
}

/// Stops the active health checks when dropped.
#[derive(Debug)]
pub struct HealthChecks {
    pub(crate) task: tokio::task::JoinHandle<()>,
    pub(crate) _stop: Arc<()>,
}

impl Drop for HealthChecks {
    fn drop(&mut self) {
        self.task.abort();
    }
}

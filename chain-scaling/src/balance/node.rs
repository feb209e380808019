use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use chain_core::Chain;

use super::health::Health;

/// One backend a [`LoadBalancer`](super::LoadBalancer) sends work to: a
/// chain (for instance one whose links call a remote service), with an id,
/// a weight and a connection limit.
pub struct Node<C> {
    id: Arc<str>,
    weight: u32,
    max_connections: u32,
    chain: Chain<C>,
    in_flight: AtomicU32,
    /// Exponentially weighted moving average of latency, in nanoseconds,
    /// stored as `f64` bits.
    latency_ewma: AtomicU64,
    /// Completed calls, for statistics.
    served: AtomicU64,
    pub(crate) health: Health,
}

/// Weight of an EWMA sample: about the last 10 calls dominate.
const EWMA_ALPHA: f64 = 0.1;

impl<C: Send + 'static> Node<C> {
    /// A node of weight 1 and no connection limit.
    pub fn new(id: impl Into<Arc<str>>, chain: Chain<C>) -> Self {
        Self {
            id: id.into(),
            weight: 1,
            max_connections: 0,
            chain,
            in_flight: AtomicU32::new(0),
            latency_ewma: AtomicU64::new(0_f64.to_bits()),
            served: AtomicU64::new(0),
            health: Health::default(),
        }
    }

    /// Sets the weight (at least 1) for weighted strategies.
    #[must_use]
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight.max(1);
        self
    }

    /// At most this many calls at once; 0 means no limit.
    #[must_use]
    pub fn max_connections(mut self, limit: u32) -> Self {
        self.max_connections = limit;
        self
    }
}

impl<C: Send + 'static> Node<C> {
    /// Runs the node's chain on `ctx` for a health check, outside the
    /// balancer's counts: whether it succeeded.
    pub(crate) async fn probe(&self, ctx: C) -> bool {
        self.chain.execute(ctx).await.is_ok()
    }
}

impl<C> Node<C> {
    /// The node's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The node's weight.
    pub fn get_weight(&self) -> u32 {
        self.weight
    }

    /// Calls running on the node now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Calls the node completed (successes and errors).
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// The moving average of the node's latency.
    pub fn latency(&self) -> Duration {
        Duration::from_nanos(f64::from_bits(self.latency_ewma.load(Ordering::Relaxed)) as u64)
    }

    pub(crate) fn chain(&self) -> &Chain<C> {
        &self.chain
    }

    /// The load p2c compares: latency times queue depth, as tower's PeakEwma.
    pub(crate) fn load(&self) -> f64 {
        let latency = f64::from_bits(self.latency_ewma.load(Ordering::Relaxed)).max(1.0);
        latency * f64::from(self.in_flight.load(Ordering::Relaxed) + 1)
    }

    /// Takes a connection unless the node is full.
    pub(crate) fn try_acquire(&self) -> Option<InFlight<'_, C>> {
        if self.max_connections == 0 {
            self.in_flight.fetch_add(1, Ordering::AcqRel);
            return Some(InFlight { node: self });
        }
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_connections).then_some(n + 1)
            })
            .ok()
            .map(|_| InFlight { node: self })
    }

    fn record(&self, latency: Duration) {
        self.served.fetch_add(1, Ordering::Relaxed);
        let sample = latency.as_nanos() as f64;
        let _ = self
            .latency_ewma
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let old = f64::from_bits(bits);
                let new = if old == 0.0 {
                    sample
                } else {
                    old + EWMA_ALPHA * (sample - old)
                };
                Some(new.to_bits())
            });
    }
}

/// A call's connection on a node: released when dropped, whether the call
/// succeeded, failed or was cancelled, so in-flight counts stay exact.
pub(crate) struct InFlight<'a, C> {
    node: &'a Node<C>,
}

impl<'a, C> InFlight<'a, C> {
    pub(crate) fn finish(self, latency: Duration) -> &'a Node<C> {
        self.node.record(latency);
        self.node
    }
}

impl<C> Drop for InFlight<'_, C> {
    fn drop(&mut self) {
        self.node.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<C> fmt::Debug for Node<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("weight", &self.weight)
            .field("max_connections", &self.max_connections)
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use chain_core::Chain;

use super::health::{Health, nanos_since_origin, now_nanos};

/// One backend a [`LoadBalancer`](super::LoadBalancer) sends work to: a
/// chain (for instance one whose links call a remote service), with an id,
/// a weight and a connection limit.
///
/// By default a node has no connection limit. The Python cookbook's
/// default of 100 is a guess about a machine nobody has measured: too low
/// and a healthy node rejects work it could do, too high and it is no
/// limit at all. Set [`max_connections`](Self::max_connections) to what
/// the node was measured to carry (a remote service's worker count, a
/// database's pool size); until then the balancer's in-flight counts and
/// least-connections or power-of-two-choices strategies already keep load
/// off a slow node.
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
    /// Of which succeeded.
    succeeded: AtomicU64,
    /// When the last call started, in nanoseconds since the process's
    /// monotonic origin plus one (0: never).
    last_request: AtomicU64,
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
            succeeded: AtomicU64::new(0),
            last_request: AtomicU64::new(0),
            health: Health::default(),
        }
    }

    /// Sets the weight (at least 1) for weighted strategies.
    #[must_use]
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight.max(1);
        self
    }

    /// At most this many calls at once; 0 (the default) means no limit;
    /// see the type's docs for why.
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

    /// Its connection limit; 0 means none.
    pub fn get_max_connections(&self) -> u32 {
        self.max_connections
    }

    /// Calls the node completed (successes and errors).
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Calls the node completed successfully.
    pub fn successes(&self) -> u64 {
        self.succeeded.load(Ordering::Relaxed)
    }

    /// Calls the node completed with an error (cancelled calls are not
    /// counted: they did not complete).
    pub fn failures(&self) -> u64 {
        self.served().saturating_sub(self.successes())
    }

    /// When the node's last call started, if it has had one.
    pub fn last_request(&self) -> Option<SystemTime> {
        let at = self.last_request.load(Ordering::Relaxed).checked_sub(1)?;
        let ago = Duration::from_nanos(now_nanos().saturating_sub(at));
        SystemTime::now().checked_sub(ago)
    }

    /// The moving average of the node's latency.
    pub fn latency(&self) -> Duration {
        Duration::from_nanos(f64::from_bits(self.latency_ewma.load(Ordering::Relaxed)) as u64)
    }

    pub(crate) fn shared_id(&self) -> &Arc<str> {
        &self.id
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

    fn record(&self, started: Instant, latency: Duration, success: bool) {
        self.last_request.fetch_max(
            nanos_since_origin(started).saturating_add(1),
            Ordering::Relaxed,
        );
        if success {
            self.succeeded.fetch_add(1, Ordering::Relaxed);
        }
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
    /// Records a completed call that started at `started`.
    pub(crate) fn finish(self, started: Instant, success: bool) -> &'a Node<C> {
        self.node.record(started, started.elapsed(), success);
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

//! State every subscription and transport of one bus shares: the redelivery
//! policy, the counters, the store and which event types anyone observes.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;

use super::EventStore;
use crossbeam_utils::CachePadded;

/// How often and how patiently a failing handler is retried.
///
/// Delivery `n` that fails is followed by delivery `n + 1` after
/// `initial_backoff * 2^(n-1)`, capped at `max_backoff`, until
/// `max_deliveries`; then the event is dead-lettered. Client errors
/// (validation, unauthorized, forbidden, not found) are dead-lettered at
/// once: the same input would fail the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redelivery {
    pub(crate) max_deliveries: u32,
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
}

impl Default for Redelivery {
    /// Three deliveries, 100 ms then 200 ms apart, capped at 10 s.
    fn default() -> Self {
        Redelivery {
            max_deliveries: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl Redelivery {
    /// At most `max_deliveries` deliveries (at least one) with the default
    /// backoff.
    pub fn new(max_deliveries: u32) -> Self {
        Redelivery {
            max_deliveries: max_deliveries.max(1),
            ..Redelivery::default()
        }
    }

    /// Sets the first backoff and the cap.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// The most deliveries an event gets per subscription.
    pub fn max_deliveries(&self) -> u32 {
        self.max_deliveries
    }

    /// The wait after failed delivery number `delivery` (1-based).
    pub fn backoff(&self, delivery: u32) -> Duration {
        let doublings = delivery.saturating_sub(1).min(31);
        self.initial_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff)
    }
}

/// When `{type}_completed` and `{type}_failed` events are built and
/// published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUps {
    /// When the store would record them or a subscription here handles
    /// their type: the default in process, where nothing else can see
    /// them, and serializing a result per event is the largest cost of a
    /// trivial handler.
    WhenObserved,
    /// Always: the default on a shared transport, whose subscriptions in
    /// other processes this one cannot know.
    Always,
    /// Never: outcomes are read from the stats, the dead-letter queue and
    /// the store only.
    Never,
}

/// A counter bumped on hot paths: relaxed, because readers want totals,
/// not ordering with other memory, and padded, so the publisher's counter
/// and the workers' do not invalidate each other.
#[derive(Debug, Default)]
pub(crate) struct Counter(CachePadded<AtomicU64>);

impl Counter {
    pub(crate) fn increment(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) published: Counter,
    pub(crate) unrouted: Counter,
    pub(crate) completed: Counter,
    pub(crate) redelivered: Counter,
    pub(crate) dead_lettered: Counter,
}

/// Totals since the bus started, in this process.
///
/// Each delivery (one event to one subscription) ends exactly once as
/// `completed` or `dead_lettered`; `redelivered` counts failed deliveries
/// that were retried. An event with no subscription is `unrouted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BusStats {
    /// Events accepted by `publish`/`try_publish` (follow-ups excluded).
    pub published: u64,
    /// Accepted events that no subscription handles.
    pub unrouted: u64,
    /// Deliveries whose chain succeeded.
    pub completed: u64,
    /// Failed deliveries that were retried.
    pub redelivered: u64,
    /// Deliveries that ended in the dead-letter queue.
    pub dead_lettered: u64,
}

pub(crate) struct Shared {
    pub(crate) redelivery: Redelivery,
    pub(crate) stats: Counters,
    pub(crate) store: Option<Arc<dyn EventStore>>,
    /// Types with a subscription in this process.
    observed: ArcSwap<HashSet<Box<str>, foldhash::fast::RandomState>>,
    follow_ups: FollowUps,
}

impl Shared {
    pub(crate) fn new(
        redelivery: Redelivery,
        store: Option<Arc<dyn EventStore>>,
        follow_ups: FollowUps,
    ) -> Self {
        Shared {
            redelivery,
            stats: Counters::default(),
            store,
            observed: ArcSwap::from_pointee(HashSet::default()),
            follow_ups,
        }
    }

    /// Whether an event of this type would be seen by anyone. Follow-ups
    /// nobody can see are not built: serializing a result per event is the
    /// largest cost of a trivial handler.
    pub(crate) fn observes(&self, event_type: &str) -> bool {
        match self.follow_ups {
            FollowUps::Always => true,
            FollowUps::Never => false,
            FollowUps::WhenObserved => self.store.is_some() || self.has_subscription(event_type),
        }
    }

    pub(crate) fn has_subscription(&self, event_type: &str) -> bool {
        self.observed.load().contains(event_type)
    }

    pub(crate) fn observe(&self, event_type: &str) {
        self.observed.rcu(|types| {
            let mut types = HashSet::clone(types);
            types.insert(event_type.into());
            types
        });
    }

    pub(crate) fn stats(&self) -> BusStats {
        let counters = &self.stats;
        BusStats {
            published: counters.published.get(),
            unrouted: counters.unrouted.get(),
            completed: counters.completed.get(),
            redelivered: counters.redelivered.get(),
            dead_lettered: counters.dead_lettered.get(),
        }
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("redelivery", &self.redelivery)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let policy =
            Redelivery::new(10).with_backoff(Duration::from_millis(10), Duration::from_millis(35));
        assert_eq!(policy.backoff(1), Duration::from_millis(10));
        assert_eq!(policy.backoff(2), Duration::from_millis(20));
        assert_eq!(policy.backoff(3), Duration::from_millis(35));
        assert_eq!(policy.backoff(40), Duration::from_millis(35));
        assert_eq!(Redelivery::new(0).max_deliveries(), 1);
    }
}

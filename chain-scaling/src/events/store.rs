//! Event history: every event published or produced by a handler, in order.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use super::Event;
use crate::sync::lock;

/// Append-only event history.
///
/// The bus appends each accepted event and each `_completed`/`_failed`
/// event its handlers produce. Appending happens on the publish path, so
/// implementations must be quick and must not block on I/O: a durable store
/// should hand events to a background writer.
pub trait EventStore: Send + Sync + 'static {
    /// Records an event.
    fn append(&self, event: Arc<Event>);
    /// The recorded events with this correlation id, oldest first.
    fn by_correlation_id(&self, correlation_id: &str) -> Vec<Arc<Event>>;
    /// The recorded events of this type, oldest first.
    fn by_type(&self, event_type: &str) -> Vec<Arc<Event>>;
    /// How many events are held.
    fn len(&self) -> usize;
    /// Whether none are held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The default store: the most recent `capacity` events in memory.
///
/// Bounded because an unbounded history is a memory leak in a long-running
/// service; [`evicted`](Self::evicted)
/// counts what fell off the end so the bound is visible.
///
/// ```
/// use std::sync::Arc;
/// use chain_scaling::events::{Event, EventStore, MemoryEventStore};
/// use serde_json::json;
///
/// let store = MemoryEventStore::new(2);
/// for n in 0..3 {
///     store.append(Arc::new(Event::new("tick", json!(n)).with_correlation_id("c")));
/// }
/// assert_eq!(store.len(), 2);
/// assert_eq!(store.evicted(), 1);
/// assert_eq!(store.by_correlation_id("c")[0].payload, json!(1));
/// ```
pub struct MemoryEventStore {
    capacity: usize,
    history: Mutex<History>,
}

#[derive(Default)]
struct History {
    events: VecDeque<Arc<Event>>,
    evicted: u64,
}

impl MemoryEventStore {
    /// Holds at most `capacity` events (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        MemoryEventStore {
            capacity,
            history: Mutex::new(History {
                events: VecDeque::with_capacity(capacity.min(4096)),
                evicted: 0,
            }),
        }
    }

    /// How many events were dropped to stay within capacity.
    pub fn evicted(&self) -> u64 {
        self.lock().evicted
    }

    /// All held events, oldest first.
    pub fn all(&self) -> Vec<Arc<Event>> {
        self.lock().events.iter().cloned().collect()
    }

    fn lock(&self) -> MutexGuard<'_, History> {
        lock(&self.history)
    }

    /// Sorted by creation time: a handler's follow-up can be appended a
    /// moment before the event it answers, whose publisher appends it only
    /// once the transport accepted it.
    fn matching(&self, keep: impl Fn(&Event) -> bool) -> Vec<Arc<Event>> {
        let mut events: Vec<_> = self
            .lock()
            .events
            .iter()
            .filter(|event| keep(event))
            .cloned()
            .collect();
        events.sort_by_key(|event| event.timestamp);
        events
    }
}

impl EventStore for MemoryEventStore {
    fn append(&self, event: Arc<Event>) {
        let mut history = self.lock();
        if history.events.len() == self.capacity {
            history.events.pop_front();
            history.evicted += 1;
        }
        history.events.push_back(event);
    }

    fn by_correlation_id(&self, correlation_id: &str) -> Vec<Arc<Event>> {
        self.matching(|event| event.correlation_id == correlation_id)
    }

    fn by_type(&self, event_type: &str) -> Vec<Arc<Event>> {
        self.matching(|event| event.event_type == event_type)
    }

    fn len(&self) -> usize {
        self.lock().events.len()
    }
}

impl fmt::Debug for MemoryEventStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let history = self.lock();
        f.debug_struct("MemoryEventStore")
            .field("capacity", &self.capacity)
            .field("len", &history.events.len())
            .field("evicted", &history.evicted)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn queries_by_type_and_correlation_in_order() {
        let store = MemoryEventStore::new(10);
        store.append(Arc::new(Event::new("a", json!(1)).with_correlation_id("x")));
        store.append(Arc::new(Event::new("b", json!(2)).with_correlation_id("x")));
        store.append(Arc::new(Event::new("a", json!(3)).with_correlation_id("y")));
        let payloads = |events: Vec<Arc<Event>>| -> Vec<_> {
            events.iter().map(|e| e.payload.clone()).collect()
        };
        assert_eq!(payloads(store.by_type("a")), vec![json!(1), json!(3)]);
        assert_eq!(
            payloads(store.by_correlation_id("x")),
            vec![json!(1), json!(2)]
        );
        assert!(store.by_type("c").is_empty());
        assert_eq!(store.evicted(), 0);
    }
}

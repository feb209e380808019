//! The bus users hold: subscribe chains, publish events, shut down.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};

use chain_core::Chain;
use uuid::Uuid;

use super::event::validate_event_type;
use super::shared::Shared;
use super::{
    BusStats, DeadLetterQueue, Event, EventBusError, EventStore, FollowUps, InProcess,
    MemoryEventStore, Redelivery, Routed, Subscription, Transport,
};
use crate::sync::lock;

/// Routes events to the chains subscribed to their type.
///
/// Cheap to clone: clones share the subscriptions, queue and workers.
///
/// ```
/// use chain_core::{Chain, Context, Result};
/// use chain_scaling::events::{Event, EventBus};
/// use serde_json::json;
///
/// async fn greet(ctx: Context) -> Result<Context> {
///     let name: String = ctx.require("event_data")?;
///     Ok(ctx.with("greeting", format!("hello {name}")))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bus = EventBus::new()?;
/// bus.subscribe("user_joined", Chain::named("greeter").link(greet)).await?;
/// bus.publish(Event::new("user_joined", json!("ada"))).await?;
/// bus.shutdown().await; // drains: the event is handled before this returns
/// assert_eq!(bus.stats().completed, 1);
/// let completed = bus.store().unwrap().by_type("user_joined_completed");
/// assert_eq!(completed[0].payload["result"]["greeting"], "hello ada");
/// # Ok(())
/// # }
/// ```
pub struct EventBus<T: Transport = InProcess> {
    shared: Arc<Shared>,
    transport: Arc<T>,
    names: Arc<Mutex<HashSet<SubscriptionKey>>>,
}

/// An event type and a subscription name.
type SubscriptionKey = (Box<str>, Box<str>);

/// Configures an [`EventBus`].
#[derive(Debug, Clone)]
pub struct EventBusBuilder {
    capacity: usize,
    workers: usize,
    redelivery: Redelivery,
    store: Option<Arc<dyn EventStore>>,
    follow_ups: Option<FollowUps>,
}

impl fmt::Debug for dyn EventStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStore")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// The default store keeps this many events.
pub const DEFAULT_STORE_CAPACITY: usize = 10_000;

impl Default for EventBusBuilder {
    fn default() -> Self {
        EventBusBuilder {
            capacity: 1024,
            workers: std::thread::available_parallelism().map_or(2, usize::from),
            redelivery: Redelivery::default(),
            store: Some(Arc::new(MemoryEventStore::new(DEFAULT_STORE_CAPACITY))),
            follow_ups: None,
        }
    }
}

impl EventBusBuilder {
    /// In process: how many published events may wait (default 1024).
    pub fn capacity(mut self, events: usize) -> Self {
        self.capacity = events;
        self
    }

    /// In process: how many worker tasks handle events (default: one per
    /// core).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// How failing handlers are retried before dead-lettering.
    pub fn redelivery(mut self, redelivery: Redelivery) -> Self {
        self.redelivery = redelivery;
        self
    }

    /// Records history in `store` instead of the default
    /// [`MemoryEventStore`] of [`DEFAULT_STORE_CAPACITY`] events.
    pub fn store(mut self, store: impl EventStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Keeps no history. Follow-up events are then built only for types
    /// someone subscribed to.
    pub fn without_store(mut self) -> Self {
        self.store = None;
        self
    }

    /// When follow-up events are published; by default
    /// [`FollowUps::WhenObserved`] in process and [`FollowUps::Always`] on
    /// a shared transport.
    pub fn follow_ups(mut self, follow_ups: FollowUps) -> Self {
        self.follow_ups = Some(follow_ups);
        self
    }

    /// Builds the in-process bus; its workers start on the current tokio
    /// runtime.
    pub fn build(self) -> Result<EventBus<InProcess>, EventBusError> {
        let transport = InProcess::new(self.capacity, self.workers)?;
        Ok(self.build_with(transport))
    }

    /// Builds a bus on another transport (its own configuration replaces
    /// `capacity` and `workers`).
    pub fn build_with<T: Transport>(self, transport: T) -> EventBus<T> {
        let follow_ups = self.follow_ups.unwrap_or(if transport.is_shared() {
            FollowUps::Always
        } else {
            FollowUps::WhenObserved
        });
        let shared = Shared::new(self.redelivery, self.store, follow_ups);
        EventBus {
            shared: Arc::new(shared),
            transport: Arc::new(transport),
            names: Arc::default(),
        }
    }
}

impl EventBus<InProcess> {
    /// An in-process bus with the defaults; see [`EventBus::builder`].
    pub fn new() -> Result<Self, EventBusError> {
        EventBusBuilder::default().build()
    }

    /// Events whose handlers failed for the last time.
    pub fn dead_letters(&self) -> &DeadLetterQueue {
        self.transport.dead_letters()
    }
}

impl EventBus {
    /// Configures a bus.
    pub fn builder() -> EventBusBuilder {
        EventBusBuilder::default()
    }
}

impl<T: Transport> EventBus<T> {
    /// Subscribes `chain` to events of `event_type` under the chain's name.
    /// Several chains may subscribe to one type; each gets every event.
    pub async fn subscribe(
        &self,
        event_type: impl Into<Cow<'static, str>>,
        chain: Chain,
    ) -> Result<(), EventBusError> {
        let name = chain.name().to_owned();
        self.subscribe_as(event_type, name, chain).await
    }

    /// Subscribes `chain` under `name`, which must be unique for the type:
    /// on a shared transport it names the work queue that every process
    /// running this subscription shares.
    pub async fn subscribe_as(
        &self,
        event_type: impl Into<Cow<'static, str>>,
        name: impl Into<Cow<'static, str>>,
        chain: Chain,
    ) -> Result<(), EventBusError> {
        let event_type = event_type.into();
        let name = name.into();
        validate_event_type(&event_type)?;
        validate_event_type(&name).map_err(|_| EventBusError::InvalidSubscriptionName {
            name: name.to_string(),
        })?;
        let key = (Box::from(event_type.as_ref()), Box::from(name.as_ref()));
        if !lock(&self.names).insert(key) {
            return Err(EventBusError::DuplicateSubscription {
                event_type: event_type.into_owned(),
                name: name.into_owned(),
            });
        }
        self.shared.observe(&event_type);
        let subscription = Subscription::new(event_type, name, chain, Arc::clone(&self.shared));
        self.transport.attach(subscription).await
    }

    /// Publishes an event, waiting while the queue is full. A critical
    /// event is handled before this returns. Returns the event's id.
    pub async fn publish(&self, event: Event) -> Result<Uuid, EventBusError> {
        validate_event_type(&event.event_type)?;
        let event = Arc::new(event);
        // Recorded the moment the transport takes it: a critical event is
        // handled inside this future, which the caller may drop.
        let record = |routed| {
            self.accepted(Arc::clone(&event), routed);
        };
        self.transport
            .publish_then(Arc::clone(&event), &record)
            .await?;
        Ok(event.id)
    }

    /// Publishes several events in order and returns their ids once every
    /// one is accepted: on [`JetStream`](super::JetStream), acknowledged by
    /// the server. Unlike a loop over [`publish`](Self::publish), a
    /// transport that waits for acknowledgements keeps many publishes in
    /// flight at once (up to 256 on JetStream), which multiplies the
    /// throughput of one publisher.
    ///
    /// # Errors
    ///
    /// An invalid event type anywhere in `events` is refused before any
    /// event is published. A transport error ends the call: the events
    /// before the one that failed were accepted, later ones may or may not
    /// have been. Publishing the same events again is safe on JetStream,
    /// which drops a repeated event id within its duplicate window.
    pub async fn publish_all(
        &self,
        events: impl IntoIterator<Item = Event>,
    ) -> Result<Vec<Uuid>, EventBusError> {
        let events: Vec<Arc<Event>> = events.into_iter().map(Arc::new).collect();
        for event in &events {
            validate_event_type(&event.event_type)?;
        }
        let record = |index: usize, routed| {
            self.accepted(Arc::clone(&events[index]), routed);
        };
        self.transport.publish_many_then(&events, &record).await?;
        Ok(events.iter().map(|event| event.id).collect())
    }

    /// Publishes an event only if there is room now.
    pub fn try_publish(&self, event: Event) -> Result<Uuid, EventBusError> {
        validate_event_type(&event.event_type)?;
        let event = Arc::new(event);
        let routed = self.transport.try_publish(Arc::clone(&event))?;
        Ok(self.accepted(event, routed))
    }

    /// Refuses new events, then waits until every accepted one is handled.
    pub async fn shutdown(&self) {
        self.transport.shutdown().await;
    }

    /// Totals since the bus started.
    pub fn stats(&self) -> BusStats {
        self.shared.stats()
    }

    /// The history, unless built [`without_store`](EventBusBuilder::without_store).
    pub fn store(&self) -> Option<&dyn EventStore> {
        self.shared.store.as_deref()
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    fn accepted(&self, event: Arc<Event>, routed: Routed) -> Uuid {
        let stats = &self.shared.stats;
        stats.published.increment();
        if routed == Routed::No {
            stats.unrouted.increment();
        }
        let id = event.id;
        if let Some(store) = &self.shared.store {
            store.append(event);
        }
        id
    }
}

impl<T: Transport> Clone for EventBus<T> {
    fn clone(&self) -> Self {
        EventBus {
            shared: Arc::clone(&self.shared),
            transport: Arc::clone(&self.transport),
            names: Arc::clone(&self.names),
        }
    }
}

impl<T: Transport + fmt::Debug> fmt::Debug for EventBus<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBus")
            .field("transport", &self.transport)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

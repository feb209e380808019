//! The default transport: a bounded priority queue served by worker tasks.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use crossbeam_queue::SegQueue;
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::room::Room;
use super::{
    DeadLetter, DeadLetterQueue, Event, EventBusError, Outcome, Priority, Routed, Subscription,
    Transport,
};
use crossbeam_utils::CachePadded;

use crate::sync::lock;

/// Events queued in memory and handled by worker tasks of this process.
///
/// - Queued deliveries are served highest priority first, FIFO within a
///   priority. A [`Priority::Critical`] event skips the queue: the
///   publisher runs its subscriptions before `publish` returns.
/// - The queue holds at most `capacity` published events: `publish` waits
///   for room and `try_publish` fails with [`EventBusError::Full`].
///   Follow-up events and redeliveries belong to events already admitted,
///   so they never wait: a worker blocked on a full queue it must drain
///   itself would deadlock.
/// - `shutdown` refuses new events and returns once every admitted
///   delivery has completed or been dead-lettered, redeliveries included.
///
/// Built by [`EventBus::builder`](super::EventBus::builder).
pub struct InProcess {
    inner: Arc<Inner>,
}

struct Inner {
    routes: ArcSwap<Routes>,
    lanes: Lanes,
    work: Notify,
    /// Workers waiting for work: publishers wake one only when some wait,
    /// sparing a wake-up per event while all are busy.
    idle: CachePadded<AtomicUsize>,
    room: Room,
    /// Deliveries admitted and not yet ended, including those waiting for
    /// a redelivery. Raised before the room's closed flag is checked, so shutdown never
    /// misses a delivery admitted concurrently.
    pending: CachePadded<AtomicUsize>,
    drained: Notify,
    runtime: Handle,
    workers: Mutex<Vec<JoinHandle<()>>>,
    dead_letters: DeadLetterQueue,
    /// Handled events on their way back to a publisher to be freed; see
    /// [`Inner::recycle`].
    spent: SegQueue<Arc<Event>>,
}

/// Recycled events a publish frees: more than the one event each publish
/// adds, so the backlog shrinks while publishers are active.
const SPENT_FREED_PER_PUBLISH: usize = 2;

/// Subscriptions by event type.
type Routes = HashMap<Box<str>, Arc<[Subscription]>, foldhash::fast::RandomState>;

/// One lock-free queue per priority; index 0 (critical) stays empty
/// because critical events run inline, but keeping it lets
/// `Priority::lane` index directly.
#[derive(Default)]
struct Lanes([SegQueue<Delivery>; 4]);

/// One event to one subscription.
struct Delivery {
    event: Arc<Event>,
    subscriptions: Arc<[Subscription]>,
    subscription: usize,
    number: u32,
    slot: Slot,
}

/// The queue slot a published event holds until its last delivery ends.
enum Slot {
    /// Follow-ups take none: they belong to an admitted event.
    None,
    /// The event's only delivery holds it.
    Owned,
    /// Shared by the deliveries of an event with several subscriptions;
    /// the last one to end gives it back.
    Shared(Arc<()>),
}

impl InProcess {
    /// A queue of `capacity` events (at least one) served by `workers`
    /// tasks (at least one) on the current tokio runtime.
    pub fn new(capacity: usize, workers: usize) -> Result<Self, EventBusError> {
        let runtime = Handle::try_current().map_err(|_| EventBusError::NoRuntime)?;
        let capacity = capacity.max(1);
        let inner = Arc::new(Inner {
            routes: ArcSwap::from_pointee(Routes::default()),
            lanes: Lanes::default(),
            work: Notify::new(),
            idle: CachePadded::new(AtomicUsize::new(0)),
            room: Room::new(capacity),
            pending: CachePadded::new(AtomicUsize::new(0)),
            drained: Notify::new(),
            runtime: runtime.clone(),
            workers: Mutex::new(Vec::new()),
            dead_letters: DeadLetterQueue::default(),
            spent: SegQueue::new(),
        });
        let handles = (0..workers.max(1))
            .map(|_| runtime.spawn(Arc::clone(&inner).work()))
            .collect();
        *lock(&inner.workers) = handles;
        Ok(InProcess { inner })
    }

    /// Events whose handlers failed for the last time.
    pub fn dead_letters(&self) -> &DeadLetterQueue {
        &self.inner.dead_letters
    }

    /// Deliveries admitted and not yet ended.
    pub fn pending(&self) -> usize {
        self.inner.pending.load(Ordering::Acquire)
    }

    /// The queue's capacity in events.
    pub fn capacity(&self) -> usize {
        self.inner.room.capacity()
    }

    /// Queues a published event that holds a slot.
    fn admit(
        &self,
        event: Arc<Event>,
        subscriptions: Arc<[Subscription]>,
    ) -> Result<Routed, EventBusError> {
        let inner = &self.inner;
        if let Err(closed) = inner.begin(subscriptions.len()) {
            inner.room.release();
            return Err(closed);
        }
        inner.enqueue(event, subscriptions, true);
        Ok(Routed::Yes)
    }
}

impl Transport for InProcess {
    fn name(&self) -> &'static str {
        "in-process"
    }

    async fn attach(&self, subscription: Subscription) -> Result<(), EventBusError> {
        self.inner.routes.rcu(|routes| {
            let mut routes = Routes::clone(routes);
            let entry = routes
                .entry(subscription.event_type().into())
                .or_insert_with(|| Arc::from([]));
            let mut subscriptions = entry.to_vec();
            subscriptions.push(subscription.clone());
            *entry = Arc::from(subscriptions);
            routes
        });
        Ok(())
    }

    async fn publish(&self, event: Arc<Event>) -> Result<Routed, EventBusError> {
        self.publish_then(event, &|_| {}).await
    }

    async fn publish_then(
        &self,
        event: Arc<Event>,
        accepted: &(dyn Fn(Routed) + Send + Sync),
    ) -> Result<Routed, EventBusError> {
        let inner = &self.inner;
        if event.priority == Priority::Critical {
            return inner.handle_inline(event, accepted).await;
        }
        let Some(subscriptions) = inner.route(&event.event_type) else {
            accepted(Routed::No);
            return Ok(Routed::No);
        };
        inner.room.take().await?;
        let routed = self.admit(event, subscriptions)?;
        accepted(routed);
        inner.free_spent(SPENT_FREED_PER_PUBLISH);
        Ok(routed)
    }

    fn try_publish(&self, event: Arc<Event>) -> Result<Routed, EventBusError> {
        let inner = &self.inner;
        if event.priority == Priority::Critical {
            return Err(EventBusError::Unsupported {
                operation: "try_publish of a critical event (it runs inline; use publish)",
                transport: "in-process",
            });
        }
        let Some(subscriptions) = inner.route(&event.event_type) else {
            return Ok(Routed::No);
        };
        inner.room.try_take()?;
        let routed = self.admit(event, subscriptions);
        inner.free_spent(SPENT_FREED_PER_PUBLISH);
        routed
    }

    async fn shutdown(&self) {
        let inner = &self.inner;
        inner.room.close();
        loop {
            let drained = inner.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if inner.pending.load(Ordering::SeqCst) == 0 {
                break;
            }
            drained.await;
        }
        inner.work.notify_waiters();
        let workers = std::mem::take(&mut *lock(&inner.workers));
        for worker in workers {
            if let Err(error) = worker.await {
                tracing::error!(%error, "event bus worker ended abnormally");
            }
        }
        inner.free_spent(usize::MAX);
    }
}

impl Inner {
    fn route(&self, event_type: &str) -> Option<Arc<[Subscription]>> {
        self.routes.load().get(event_type).cloned()
    }

    /// Counts `deliveries` as pending unless the bus is closed.
    fn begin(&self, deliveries: usize) -> Result<(), EventBusError> {
        self.pending.fetch_add(deliveries, Ordering::SeqCst);
        if self.room.is_closed() {
            for _ in 0..deliveries {
                self.finish();
            }
            return Err(EventBusError::Closed);
        }
        Ok(())
    }

    fn end(&self, slot: Slot) {
        match slot {
            Slot::None => {}
            Slot::Owned => self.room.release(),
            Slot::Shared(shared) => {
                if Arc::into_inner(shared).is_some() {
                    self.room.release();
                }
            }
        }
        self.finish();
    }

    fn finish(&self) {
        if self.pending.fetch_sub(1, Ordering::SeqCst) == 1 && self.room.is_closed() {
            self.drained.notify_waiters();
        }
    }

    fn enqueue(&self, event: Arc<Event>, subscriptions: Arc<[Subscription]>, holds_slot: bool) {
        let lane = &self.lanes.0[event.priority.lane()];
        let count = subscriptions.len();
        let shared = (holds_slot && count > 1).then(|| Arc::new(()));
        for subscription in 0..count {
            let slot = match &shared {
                Some(shared) => Slot::Shared(Arc::clone(shared)),
                None if holds_slot => Slot::Owned,
                None => Slot::None,
            };
            lane.push(Delivery {
                event: Arc::clone(&event),
                subscriptions: Arc::clone(&subscriptions),
                subscription,
                number: 1,
                slot,
            });
        }
        self.wake(count);
    }

    /// Wakes up to `deliveries` idle workers. A worker counts itself idle
    /// before its last look at the queue, and the queue is pushed before
    /// this reads the count, so either the worker sees the delivery or
    /// this sees the worker.
    fn wake(&self, deliveries: usize) {
        let idle = self.idle.load(Ordering::SeqCst);
        for _ in 0..deliveries.min(idle) {
            self.work.notify_one();
        }
    }

    fn requeue(&self, delivery: Delivery) {
        self.lanes.0[delivery.event.priority.lane()].push(delivery);
        self.wake(1);
    }

    /// Follow-ups belong to an admitted delivery that is still pending, so
    /// the bus cannot drain before they are counted.
    fn enqueue_follow_up(&self, event: Arc<Event>) {
        if let Some(subscriptions) = self.route(&event.event_type) {
            self.pending
                .fetch_add(subscriptions.len(), Ordering::SeqCst);
            self.enqueue(event, subscriptions, false);
        }
    }

    fn pop(&self) -> Option<Delivery> {
        self.lanes.0.iter().find_map(SegQueue::pop)
    }

    async fn work(self: Arc<Self>) {
        loop {
            let notified = self.work.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(delivery) = self.pop() {
                self.run(delivery).await;
                continue;
            }
            self.idle.fetch_add(1, Ordering::SeqCst);
            if let Some(delivery) = self.pop() {
                self.idle.fetch_sub(1, Ordering::SeqCst);
                self.run(delivery).await;
                continue;
            }
            // No publisher may come to free what is left: free it before
            // sleeping, when no allocator lock is contended.
            self.free_spent(usize::MAX);
            if self.room.is_closed() && self.pending.load(Ordering::SeqCst) == 0 {
                self.idle.fetch_sub(1, Ordering::SeqCst);
                return;
            }
            notified.await;
            self.idle.fetch_sub(1, Ordering::SeqCst);
        }
    }

    async fn run(self: &Arc<Self>, delivery: Delivery) {
        let subscription = &delivery.subscriptions[delivery.subscription];
        let handled = subscription.handle(&delivery.event, delivery.number).await;
        if let Some(follow_up) = handled.follow_up {
            self.enqueue_follow_up(follow_up);
        }
        match handled.outcome {
            Outcome::Completed => {
                self.end(delivery.slot);
                self.recycle(delivery.event);
            }
            Outcome::Redeliver { after, .. } => {
                let inner = Arc::clone(self);
                self.runtime.spawn(async move {
                    tokio::time::sleep(after).await;
                    inner.requeue(Delivery {
                        number: delivery.number + 1,
                        ..delivery
                    });
                });
            }
            Outcome::DeadLetter { error } => {
                self.dead_letters.push(DeadLetter {
                    event: Arc::clone(&delivery.event),
                    subscription: subscription.name().to_owned(),
                    deliveries: delivery.number,
                    error,
                });
                self.end(delivery.slot);
                self.recycle(delivery.event);
            }
        }
    }

    /// Hands a handled event back to be freed by the next publish rather
    /// than here. Events are allocated on publishers' threads; freed on a
    /// worker's, each free goes back to the publisher's allocator arena
    /// under its lock, which glibc's allocator then contends on every
    /// event (the profile showed a fifth of the time in its futex waits).
    /// Only the last holder recycles: a clone kept by the history or
    /// another subscription's delivery frees the event wherever it drops.
    fn recycle(&self, event: Arc<Event>) {
        if Arc::strong_count(&event) == 1 {
            self.spent.push(event);
        }
    }

    /// Frees up to `limit` recycled events on this thread.
    fn free_spent(&self, limit: usize) {
        for _ in 0..limit {
            if self.spent.pop().is_none() {
                break;
            }
        }
    }

    /// Runs every subscription of a critical event now, retries included.
    ///
    /// The caller may drop this future (a timeout, a client gone). Every
    /// delivery was counted as pending when the event was accepted, so the
    /// deliveries not finished then (the one interrupted, at its delivery
    /// number, and those not started) go to the workers instead: each still
    /// runs or is dead-lettered, and shutdown still drains.
    async fn handle_inline(
        &self,
        event: Arc<Event>,
        accepted: &(dyn Fn(Routed) + Send + Sync),
    ) -> Result<Routed, EventBusError> {
        let Some(subscriptions) = self.route(&event.event_type) else {
            accepted(Routed::No);
            return Ok(Routed::No);
        };
        self.begin(subscriptions.len())?;
        accepted(Routed::Yes);
        let mut progress = InlineProgress {
            inner: self,
            event,
            subscriptions,
            next: 0,
            number: 1,
        };
        while progress.next < progress.subscriptions.len() {
            let subscription = &progress.subscriptions[progress.next];
            loop {
                let handled = subscription.handle(&progress.event, progress.number).await;
                if let Some(follow_up) = handled.follow_up {
                    self.enqueue_follow_up(follow_up);
                }
                match handled.outcome {
                    Outcome::Completed => break,
                    Outcome::Redeliver { after, .. } => {
                        progress.number += 1;
                        tokio::time::sleep(after).await;
                    }
                    Outcome::DeadLetter { error } => {
                        self.dead_letters.push(DeadLetter {
                            event: Arc::clone(&progress.event),
                            subscription: subscription.name().to_owned(),
                            deliveries: progress.number,
                            error,
                        });
                        break;
                    }
                }
            }
            progress.next += 1;
            progress.number = 1;
            self.finish();
        }
        Ok(Routed::Yes)
    }
}

/// Where an inline (critical) delivery stands; dropped before the end, it
/// hands the unfinished deliveries to the workers.
struct InlineProgress<'a> {
    inner: &'a Inner,
    event: Arc<Event>,
    subscriptions: Arc<[Subscription]>,
    /// The subscription being handled (those before it are finished).
    next: usize,
    /// Its delivery number.
    number: u32,
}

impl Drop for InlineProgress<'_> {
    fn drop(&mut self) {
        let remaining = self.subscriptions.len().saturating_sub(self.next);
        if remaining == 0 {
            return;
        }
        let lane = &self.inner.lanes.0[self.event.priority.lane()];
        for subscription in self.next..self.subscriptions.len() {
            lane.push(Delivery {
                event: Arc::clone(&self.event),
                subscriptions: Arc::clone(&self.subscriptions),
                subscription,
                number: if subscription == self.next {
                    self.number
                } else {
                    1
                },
                // Critical events hold no queue slot; their deliveries are
                // already counted as pending.
                slot: Slot::None,
            });
        }
        self.inner.wake(remaining);
    }
}

impl fmt::Debug for InProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcess")
            .field("capacity", &self.capacity())
            .field("pending", &self.pending())
            .field("closed", &self.inner.room.is_closed())
            .finish_non_exhaustive()
    }
}

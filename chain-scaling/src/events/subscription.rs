//! A chain subscribed to an event type, and what handling one delivery of
//! an event to it produced. Transports call [`Subscription::handle`] and act
//! on the [`Handled`] it returns.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chain_core::{Chain, Context, Error};
use serde_json::json;

use super::event::{COMPLETED_SUFFIX, FAILED_SUFFIX};
use super::shared::Shared;
use super::{Event, Priority};

/// One chain subscribed to one event type under a name unique for that type.
///
/// The name identifies the subscription across processes: on NATS it names
/// the durable consumer that every worker running this subscription shares.
#[derive(Clone)]
pub struct Subscription {
    inner: Arc<Inner>,
}

struct Inner {
    event_type: Cow<'static, str>,
    /// `{type}_completed` and `{type}_failed`, built once rather than per
    /// delivery.
    completed_type: Box<str>,
    failed_type: Box<str>,
    name: Cow<'static, str>,
    chain: Chain,
    shared: Arc<Shared>,
}

/// What a transport must do with a delivery after the chain ran.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// The chain succeeded: acknowledge.
    Completed,
    /// The chain failed and deliveries remain: deliver again after `after`.
    Redeliver {
        /// The backoff before the next delivery.
        after: Duration,
        /// The chain's error.
        error: Error,
    },
    /// The chain failed for the last time (or with an error that another
    /// delivery cannot fix): move the event to the dead-letter queue.
    DeadLetter {
        /// The chain's last error.
        error: Error,
    },
}

/// The result of handling one delivery.
#[derive(Debug)]
pub struct Handled {
    /// What to do with the delivery.
    pub outcome: Outcome,
    /// The `{type}_completed` or `{type}_failed` event to publish, when
    /// anyone can observe it.
    pub follow_up: Option<Arc<Event>>,
}

impl Subscription {
    pub(crate) fn new(
        event_type: Cow<'static, str>,
        name: Cow<'static, str>,
        chain: Chain,
        shared: Arc<Shared>,
    ) -> Self {
        Subscription {
            inner: Arc::new(Inner {
                completed_type: format!("{event_type}{COMPLETED_SUFFIX}").into(),
                failed_type: format!("{event_type}{FAILED_SUFFIX}").into(),
                event_type,
                name,
                chain,
                shared,
            }),
        }
    }

    /// The event type this subscription handles.
    pub fn event_type(&self) -> &str {
        &self.inner.event_type
    }

    /// The subscription's name (the chain's name unless given).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// How many deliveries an event gets before it is dead-lettered.
    pub fn max_deliveries(&self) -> u32 {
        self.inner.shared.redelivery.max_deliveries
    }

    /// Runs the chain on delivery number `delivery` (1 for the first) of
    /// `event` and decides what happens next.
    ///
    /// The chain's context holds `event_data` (the payload),
    /// `correlation_id`, `timestamp` (RFC 3339), `event_id` and `delivery`
    /// (1 for the first; with `event_id`, what an idempotent handler needs),
    /// and the whole event as the extension `Arc<Event>` (type, priority,
    /// source).
    pub async fn handle(&self, event: &Arc<Event>, delivery: u32) -> Handled {
        let inner = &*self.inner;
        let ctx = handler_context(event, delivery);
        match inner.chain.execute(ctx).await {
            Ok(result) => {
                inner.shared.stats.completed.increment();
                let follow_up = self.follow_up_completed(event, result);
                Handled {
                    outcome: Outcome::Completed,
                    follow_up,
                }
            }
            Err(error) => {
                let policy = &inner.shared.redelivery;
                if delivery < policy.max_deliveries && !error.kind().is_client_error() {
                    inner.shared.stats.redelivered.increment();
                    Handled {
                        outcome: Outcome::Redeliver {
                            after: policy.backoff(delivery),
                            error,
                        },
                        follow_up: None,
                    }
                } else {
                    inner.shared.stats.dead_lettered.increment();
                    let follow_up = self.follow_up_failed(event, &error, delivery);
                    Handled {
                        outcome: Outcome::DeadLetter { error },
                        follow_up,
                    }
                }
            }
        }
    }

    /// Gives up on delivery number `delivery` of `event` without running
    /// the chain (a transport found it delivered too often without an
    /// outcome): counts it as dead-lettered and returns its `{type}_failed`
    /// report, so observers learn of it as of any other dead letter.
    #[cfg(feature = "nats")]
    pub(crate) fn give_up(&self, event: &Event, reason: &str, delivery: u32) -> Option<Arc<Event>> {
        self.inner.shared.stats.dead_lettered.increment();
        self.follow_up_failed(event, &Error::unavailable(reason.to_owned()), delivery)
    }

    fn follow_up_completed(&self, event: &Event, result: Context) -> Option<Arc<Event>> {
        let event_type = &self.inner.completed_type;
        if event.is_report() || !self.inner.shared.observes(event_type) {
            return None;
        }
        // Moved, not cloned: the context is done with, and the payload it
        // carries as `event_data` may be large.
        let mut result = result.into_json();
        strip_delivery_fields(&mut result);
        let payload = json!({
            "original_event_id": event.id,
            "subscription": self.name(),
            "result": result,
        });
        Some(
            self.record(
                Event::new(event_type.to_string(), payload)
                    .with_correlation_id(event.correlation_id.clone())
                    .with_source(self.name().to_owned()),
            ),
        )
    }

    fn follow_up_failed(
        &self,
        event: &Event,
        error: &Error,
        deliveries: u32,
    ) -> Option<Arc<Event>> {
        let event_type = &self.inner.failed_type;
        if event.is_failure_report() || !self.inner.shared.observes(event_type) {
            return None;
        }
        let payload = json!({
            "original_event_id": event.id,
            "subscription": self.name(),
            "error": format!("{error:#}"),
            "error_kind": error.kind().as_str(),
            "deliveries": deliveries,
            "event_data": event.payload,
        });
        Some(
            self.record(
                Event::new(event_type.to_string(), payload)
                    .with_priority(Priority::High)
                    .with_correlation_id(event.correlation_id.clone())
                    .with_source(self.name().to_owned()),
            ),
        )
    }

    fn record(&self, event: Event) -> Arc<Event> {
        let event = Arc::new(event);
        if let Some(store) = &self.inner.shared.store {
            store.append(Arc::clone(&event));
        }
        event
    }
}

/// The fields the bus puts into a handler's context; they describe the
/// delivery, not the result, so `_completed` events leave them out.
const DELIVERY_FIELDS: [&str; 5] = [
    "event_data",
    "correlation_id",
    "timestamp",
    "event_id",
    "delivery",
];

/// Only what handlers commonly read goes in as JSON: each field costs an
/// allocation per delivery, and the rest is one `ext` away.
fn handler_context(event: &Arc<Event>, delivery: u32) -> Context {
    let mut ctx = Context::with_capacity(DELIVERY_FIELDS.len() + 4);
    ctx.insert("event_data", event.payload.clone());
    ctx.insert("correlation_id", event.correlation_id.as_str());
    ctx.insert("timestamp", event.timestamp_rfc3339());
    ctx.insert("event_id", event.id.to_string());
    ctx.insert("delivery", delivery);
    ctx.insert_ext(Arc::clone(event));
    ctx
}

fn strip_delivery_fields(result: &mut serde_json::Value) {
    if let Some(fields) = result.as_object_mut() {
        for key in DELIVERY_FIELDS {
            fields.remove(key);
        }
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("event_type", &self.inner.event_type)
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}

//! What can go wrong when publishing, subscribing or shutting down.

use std::borrow::Cow;

use chain_core::BoxError;

/// An event bus operation failed. Handler failures are not errors of the
/// bus: they are redelivered, dead-lettered and reported as `_failed` events.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventBusError {
    /// The event type cannot name a queue, subject or consumer.
    #[error("invalid event type {event_type:?}: use 1 to 128 ASCII letters, digits, '_' or '-'")]
    InvalidEventType {
        /// The rejected type.
        event_type: String,
    },
    /// The subscription name cannot name a consumer.
    #[error(
        "invalid subscription name {name:?}: use 1 to 128 ASCII letters, digits, '_' or '-' (name the chain with Chain::named or use subscribe_as)"
    )]
    InvalidSubscriptionName {
        /// The rejected name.
        name: String,
    },
    /// `try_publish` found the queue full.
    #[error(
        "event bus queue is full ({capacity} events); publish waits for room, try_publish does not"
    )]
    Full {
        /// The queue's capacity in events.
        capacity: usize,
    },
    /// The bus is shutting down or shut down and accepts no new events.
    #[error("event bus is shut down and accepts no new events")]
    Closed,
    /// A subscription with this name already exists for the event type.
    #[error(
        "a subscription named {name:?} already exists for {event_type:?}; give each chain its own name with Chain::named or subscribe_as"
    )]
    DuplicateSubscription {
        /// The event type.
        event_type: String,
        /// The subscription's name.
        name: String,
    },
    /// No tokio runtime is running where the bus was built.
    #[error("the event bus starts its workers on tokio: build it inside a tokio runtime")]
    NoRuntime,
    /// The transport does not offer this operation.
    #[error("{operation} is not supported by the {transport} transport")]
    Unsupported {
        /// What was asked.
        operation: &'static str,
        /// Which transport.
        transport: &'static str,
    },
    /// An event could not be encoded for the transport.
    #[error("event {event_id} could not be encoded")]
    Encode {
        /// The event's id.
        event_id: uuid::Uuid,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The transport failed (connection, stream or consumer).
    #[error("transport failed to {operation}")]
    Transport {
        /// What it was doing, e.g. `create consumer orders__billing`.
        operation: Cow<'static, str>,
        /// The transport's error.
        #[source]
        source: BoxError,
    },
}

impl EventBusError {
    #[cfg(feature = "nats")]
    pub(crate) fn transport(
        operation: impl Into<Cow<'static, str>>,
        source: impl Into<BoxError>,
    ) -> Self {
        EventBusError::Transport {
            operation: operation.into(),
            source: source.into(),
        }
    }
}

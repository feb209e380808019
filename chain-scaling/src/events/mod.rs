//! Event-driven chains: publish [`Event`]s, and every chain subscribed to
//! an event's type handles it.
//!
//! - [`EventBus`] with the default [`InProcess`] transport: a bounded
//!   priority queue served by worker tasks. Priorities really order work
//!   (sorting one event's handlers by that event's own priority, as the
//!   Python cookbook does, orders nothing); critical events are handled before `publish`
//!   returns; a full queue makes `publish` wait and `try_publish` fail.
//! - Every delivery ends as completed or dead-lettered: failing handlers
//!   are redelivered with backoff ([`Redelivery`]) and then moved to the
//!   [`DeadLetterQueue`] with their last error. On success the bus
//!   publishes `{type}_completed` with the result; after the last failure,
//!   `{type}_failed` at High priority (never for a `_failed` event, and
//!   no `_completed` for a handled report).
//! - An [`EventStore`] keeps the history, queryable by type and by
//!   correlation id ([`MemoryEventStore`], bounded, by default).
//! - Feature `nats`: the `JetStream` transport persists events in a NATS
//!   JetStream stream and shares each subscription's work among any number
//!   of processes on any number of machines.

mod bus;
mod dead_letter;
mod error;
mod event;
mod in_process;
#[cfg(feature = "nats")]
pub(crate) mod jetstream;
mod room;
mod shared;
mod store;
mod subscription;
mod transport;

pub use bus::{DEFAULT_STORE_CAPACITY, EventBus, EventBusBuilder};
pub use dead_letter::{DeadLetter, DeadLetterQueue};
pub use error::EventBusError;
pub use event::{Event, Priority};
pub use in_process::InProcess;
#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub use jetstream::{
    ConnectionReport, DLQ_DELIVERIES_HEADER, DLQ_ERROR_HEADER, DLQ_SUBSCRIPTION_HEADER, JetStream,
    JetStreamConfig, consumer_name, redact_credentials,
};
pub use shared::{BusStats, FollowUps, Redelivery};
pub use store::{EventStore, MemoryEventStore};
pub use subscription::{Handled, Outcome, Subscription};
pub use transport::{Routed, Transport};

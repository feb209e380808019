//! How events travel from publishers to the subscriptions that handle them.

use std::future::Future;
use std::sync::Arc;

use super::{Event, EventBusError, Subscription};

/// Whether an accepted event will reach a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routed {
    /// At least one subscription will receive it (or, on a shared
    /// transport, may: subscriptions elsewhere are not known here).
    Yes,
    /// No subscription exists for its type.
    No,
}

/// Moves events from publishers to subscriptions.
///
/// The bus validates and records events, then hands them to its transport;
/// the transport queues them, runs [`Subscription::handle`] for every
/// delivery, and acts on the outcome: acknowledge, deliver again after the
/// backoff, or dead-letter. It also publishes the follow-up events that
/// handling returns.
///
/// Two implementations ship: [`InProcess`](super::InProcess), the default,
/// and `JetStream` (feature `nats`), which spreads the work over any number
/// of processes and machines.
pub trait Transport: Send + Sync + 'static {
    /// A short name for errors and logs.
    fn name(&self) -> &'static str;

    /// Starts delivering events of `subscription.event_type()` to it.
    fn attach(
        &self,
        subscription: Subscription,
    ) -> impl Future<Output = Result<(), EventBusError>> + Send;

    /// Accepts an event, waiting while the transport is full. Returns
    /// whether any subscription will receive it.
    fn publish(
        &self,
        event: Arc<Event>,
    ) -> impl Future<Output = Result<Routed, EventBusError>> + Send;

    /// As [`publish`](Self::publish), calling `accepted` the moment the
    /// transport has taken the event: before it handles the event inline
    /// (a critical event in process), so the bus records an accepted event
    /// even when the caller drops this future half-way. The default calls
    /// `accepted` once `publish` returns.
    fn publish_then<'a>(
        &'a self,
        event: Arc<Event>,
        accepted: &'a (dyn Fn(Routed) + Send + Sync),
    ) -> impl Future<Output = Result<Routed, EventBusError>> + Send + 'a {
        async move {
            let routed = self.publish(event).await?;
            accepted(routed);
            Ok(routed)
        }
    }

    /// Accepts `events` in order, calling `accepted` with each one's index
    /// the moment the transport has taken it. Resolves once every event is
    /// accepted, or with the first error; the events before it were
    /// accepted, later ones may or may not have been. A transport that
    /// waits for a remote acknowledgement keeps many outstanding at once
    /// rather than one. The default publishes one after the other.
    fn publish_many_then<'a>(
        &'a self,
        events: &'a [Arc<Event>],
        accepted: &'a (dyn Fn(usize, Routed) + Send + Sync),
    ) -> impl Future<Output = Result<(), EventBusError>> + Send + 'a {
        async move {
            for (index, event) in events.iter().enumerate() {
                let one = move |routed| accepted(index, routed);
                self.publish_then(Arc::clone(event), &one).await?;
            }
            Ok(())
        }
    }

    /// Accepts an event only if there is room now.
    fn try_publish(&self, event: Arc<Event>) -> Result<Routed, EventBusError>;

    /// Stops accepting events and resolves once every accepted delivery
    /// has ended (completed or dead-lettered) or, for a durable transport,
    /// is safely left for another worker.
    fn shutdown(&self) -> impl Future<Output = ()> + Send;

    /// Whether other processes share this transport, so follow-up events
    /// must be published even when nothing in this process observes them.
    fn is_shared(&self) -> bool {
        false
    }
}

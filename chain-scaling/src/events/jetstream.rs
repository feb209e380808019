//! The NATS JetStream transport: events persist in a stream, and each
//! subscription is a durable pull consumer that every process running it
//! shares, so work spreads over any number of machines and survives any
//! one of them dying.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::pull::{self, BatchConfig};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{self, StorageType};
use async_nats::jetstream::{self, AckKind, Message};
use async_nats::{ConnectOptions, HeaderMap, StatusCode};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinHandle;

use super::{Event, EventBusError, Outcome, Routed, Subscription, Transport};
use crate::sync::lock;

/// Header naming the subscription that dead-lettered a message.
pub const DLQ_SUBSCRIPTION_HEADER: &str = "Modulink-Subscription";
/// Header carrying the last error of a dead-lettered message.
pub const DLQ_ERROR_HEADER: &str = "Modulink-Error";
/// Header carrying how many deliveries a dead-lettered message had.
pub const DLQ_DELIVERIES_HEADER: &str = "Modulink-Deliveries";

/// Where and how the JetStream transport runs.
///
/// Events of type `T` are published on `{subject_prefix}.T`; dead letters
/// of subscription `S` on `{subject_prefix}.T.dlq` (in the same stream, so
/// they persist, can be replayed, and are bounded by the same limits). A
/// subscription `S` to `T` is the durable consumer named by
/// [`consumer_name`].
///
/// # Retention
///
/// The stream keeps events (and dead letters) for 7 days and at most
/// 1 GiB by default, dropping the oldest first; set both with
/// [`retention`](Self::retention). Without limits a stream grows until the
/// server's storage is full. The limits apply when the stream is created;
/// an existing stream keeps the limits it was created with.
///
/// # Where a new subscription starts
///
/// A subscription seen for the first time starts at events published from
/// then on: a new or renamed subscription does not handle the whole
/// history again (re-sending every past email, say). To handle what the
/// stream still holds, opt in with [`replay_history`](Self::replay_history).
#[derive(Clone)]
pub struct JetStreamConfig {
    url: String,
    stream: String,
    subject_prefix: String,
    ack_wait: Duration,
    concurrency: usize,
    memory_storage: bool,
    connection_name: Option<String>,
    max_age: Duration,
    max_bytes: i64,
    replay_history: bool,
    replicas: usize,
    max_in_flight: Option<usize>,
}

/// The server URLs `urls` (one, or several separated by commas) with any
/// user and password, or token, replaced by `***`, for logs and messages:
/// a NATS URL may carry credentials (`nats://user:pass@host:4222`).
/// `JetStreamConfig`'s `Debug` and the transport's errors show URLs this
/// way.
///
/// ```
/// use chain_scaling::events::redact_credentials;
///
/// assert_eq!(
///     redact_credentials("nats://alice:s3cr3t@10.0.0.1:4222,nats://10.0.0.2:4222"),
///     "nats://***@10.0.0.1:4222,nats://10.0.0.2:4222"
/// );
/// ```
pub fn redact_credentials(urls: &str) -> String {
    servers(urls)
        .into_iter()
        .map(|url| match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}***{}", &url[..scheme + 3], &url[at..])
            }
            (None, Some(at)) => format!("***{}", &url[at..]),
            _ => url.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl std::fmt::Debug for JetStreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamConfig")
            .field("url", &redact_credentials(&self.url))
            .field("stream", &self.stream)
            .field("subject_prefix", &self.subject_prefix)
            .field("ack_wait", &self.ack_wait)
            .field("concurrency", &self.concurrency)
            .field("memory_storage", &self.memory_storage)
            .field("connection_name", &self.connection_name)
            .field("max_age", &self.max_age)
            .field("max_bytes", &self.max_bytes)
            .field("replay_history", &self.replay_history)
            .field("replicas", &self.replicas)
            .field("max_in_flight", &self.max_in_flight)
            .finish()
    }
}

/// The durable consumer of subscription `name` to `event_type`:
/// `{length of event_type}-{event_type}-{name}`. The length makes the
/// mapping injective: event types and names may both contain `-` and `_`,
/// so joining them with any separator alone would give (`a__b`, `c`) and
/// (`a`, `b__c`) one consumer, and one subscription the other's events.
pub fn consumer_name(event_type: &str, name: &str) -> String {
    format!("{}-{event_type}-{name}", event_type.len())
}

impl JetStreamConfig {
    /// The server at `url` (e.g. `nats://127.0.0.1:4222`), stream
    /// `MODULINK_EVENTS`, subjects `modulink.events.>`.
    ///
    /// For a cluster, list its servers separated by commas
    /// (`nats://10.0.0.1:4222,nats://10.0.0.2:4222,nats://10.0.0.3:4222`):
    /// the client connects to one of them and, when that one is lost, to
    /// another. Servers that the cluster announces are added to the list.
    pub fn new(url: impl Into<String>) -> Self {
        JetStreamConfig {
            url: url.into(),
            stream: "MODULINK_EVENTS".to_owned(),
            subject_prefix: "modulink.events".to_owned(),
            ack_wait: Duration::from_secs(30),
            concurrency: std::thread::available_parallelism().map_or(2, usize::from) * 4,
            memory_storage: false,
            connection_name: None,
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 1 << 30,
            replay_history: false,
            replicas: 1,
            max_in_flight: None,
        }
    }

    /// How many deliveries of one subscription may be unacknowledged at
    /// once across every process that shares it (the durable consumer's
    /// `max_ack_pending`): when it is reached the server delivers nothing
    /// more until some are acknowledged. Default four times
    /// [`concurrency`](Self::concurrency), which suits a few processes;
    /// with many, set it to at least the sum of their concurrency, or the
    /// added workers wait. Applies when the consumer is created.
    pub fn max_in_flight(mut self, deliveries: usize) -> Self {
        self.max_in_flight = Some(deliveries.max(1));
        self
    }

    /// How many servers of a cluster keep a copy of the stream (and of its
    /// consumers' state): 1 by default. With 3, the stream has a leader
    /// and two followers, every publish is stored by a majority before it
    /// is acknowledged, and the loss of one server loses nothing: a
    /// follower takes over as leader. Applies when the stream is created;
    /// at most the number of servers in the cluster.
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas.max(1);
        self
    }

    /// How long the stream keeps events and dead letters, and how many
    /// bytes at most (the oldest go first). Default 7 days and 1 GiB.
    /// `Duration::ZERO` or a size of 0 lifts that limit.
    pub fn retention(mut self, max_age: Duration, max_bytes: u64) -> Self {
        self.max_age = max_age;
        self.max_bytes = if max_bytes == 0 {
            -1
        } else {
            i64::try_from(max_bytes).unwrap_or(i64::MAX)
        };
        self
    }

    /// New subscriptions start at the oldest event the stream still holds
    /// instead of at events published from now on.
    pub fn replay_history(mut self) -> Self {
        self.replay_history = true;
        self
    }

    /// The stream's name.
    pub fn stream(mut self, name: impl Into<String>) -> Self {
        self.stream = name.into();
        self
    }

    /// The prefix of every subject.
    pub fn subject_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.subject_prefix = prefix.into();
        self
    }

    /// How long a delivery may go unacknowledged before the server gives
    /// it to another worker (default 30 s). A worker that dies mid-event
    /// delays that event by this much. A handler slower than this keeps its
    /// message: progress acknowledgements are sent every third of it while
    /// the handler runs, and messages are pulled only when a handler is
    /// free to take them, so none waits here while its clock runs.
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    /// How many deliveries of one subscription this process handles at
    /// once (default four per core).
    pub fn concurrency(mut self, handlers: usize) -> Self {
        self.concurrency = handlers.max(1);
        self
    }

    /// Keeps the stream in the server's memory instead of on disk (tests
    /// and caches; a server restart loses it).
    pub fn memory_storage(mut self) -> Self {
        self.memory_storage = true;
        self
    }

    /// The client name shown by the server's monitoring.
    pub fn connection_name(mut self, name: impl Into<String>) -> Self {
        self.connection_name = Some(name.into());
        self
    }

    fn subject(&self, event_type: &str) -> String {
        format!("{}.{event_type}", self.subject_prefix)
    }

    /// The subject where dead letters of `event_type` go.
    pub fn dead_letter_subject(&self, event_type: &str) -> String {
        format!("{}.{event_type}.dlq", self.subject_prefix)
    }
}

/// The connection as last reported by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionReport {
    /// Whether the client is connected now.
    pub connected: bool,
    /// How many times the connection was lost.
    pub disconnects: u64,
    /// How many times it was re-established after a loss.
    pub reconnects: u64,
}

/// The NATS JetStream transport (feature `nats`).
///
/// - `publish` returns once the server has stored the event; each publish
///   carries `Nats-Msg-Id` (the event id), so a retried publish is stored
///   once.
/// - Each subscription is a durable pull consumer: any number of processes
///   subscribing the same chain name share its work. A message is acked
///   only after its chain succeeded, nak'd with the backoff on failure,
///   and moved to the `.dlq` subject after the last delivery. A message
///   whose worker died is redelivered to another after `ack_wait`; one
///   delivered more often than allowed without an outcome (its workers
///   keep dying) is dead-lettered unread.
/// - Retention is bounded (7 days, 1 GiB by default) and a new
///   subscription starts at new events; see [`JetStreamConfig`].
/// - A lost connection is retried with backoff (100 ms doubling to 5 s, for
///   ever) and reported through `tracing` and [`JetStream::connection`].
/// - Priorities travel with events but JetStream delivers in stream order;
///   `Critical` is not handled inline.
pub struct JetStream {
    config: JetStreamConfig,
    client: async_nats::Client,
    context: jetstream::Context,
    stream: stream::Stream,
    connection: Arc<ConnectionCounters>,
    stopping: Arc<Stopping>,
    consumers: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Debug)]
struct ConnectionCounters {
    disconnects: AtomicU64,
    reconnects: AtomicU64,
    changes: watch::Sender<ConnectionReport>,
}

impl ConnectionCounters {
    fn publish_change(&self, connected: bool) {
        self.changes.send_replace(ConnectionReport {
            connected,
            disconnects: self.disconnects.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
        });
    }
}

/// Tells consume loops to stop pulling.
#[derive(Debug, Default)]
struct Stopping {
    stopped: AtomicBool,
    notify: Notify,
}

impl Stopping {
    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.stopped.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

impl JetStream {
    /// Connects and creates the stream if missing. An unreachable server is
    /// an error here; once connected, losses are retried for ever.
    pub async fn connect(config: JetStreamConfig) -> Result<Self, EventBusError> {
        let (changes, _) = watch::channel(ConnectionReport {
            connected: false,
            disconnects: 0,
            reconnects: 0,
        });
        let connection = Arc::new(ConnectionCounters {
            disconnects: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            changes,
        });
        let counters = Arc::clone(&connection);
        let mut options = ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(None)
            .reconnect_delay_callback(reconnect_delay)
            .event_callback(move |event| {
                let counters = Arc::clone(&counters);
                async move { report(&counters, event) }
            });
        if let Some(name) = &config.connection_name {
            options = options.name(name);
        }
        let client = options
            .connect(servers(&config.url))
            .await
            .map_err(|error| {
                // Named without its credentials: errors reach logs.
                EventBusError::transport(
                    format!("connect to {}", redact_credentials(&config.url)),
                    error,
                )
            })?;
        connection
            .publish_change(client.connection_state() == async_nats::connection::State::Connected);
        let context = jetstream::new(client.clone());
        let stream = context
            .get_or_create_stream(stream::Config {
                name: config.stream.clone(),
                subjects: vec![format!("{}.>", config.subject_prefix)],
                storage: if config.memory_storage {
                    StorageType::Memory
                } else {
                    StorageType::File
                },
                duplicate_window: Duration::from_secs(120),
                max_age: config.max_age,
                max_bytes: config.max_bytes,
                discard: stream::DiscardPolicy::Old,
                num_replicas: config.replicas,
                ..stream::Config::default()
            })
            .await
            .map_err(|error| {
                EventBusError::transport(format!("create stream {}", config.stream), error)
            })?;
        Ok(JetStream {
            config,
            client,
            context,
            stream,
            connection,
            stopping: Arc::default(),
            consumers: Mutex::default(),
        })
    }

    /// The connection's state and history.
    pub fn connection(&self) -> ConnectionReport {
        ConnectionReport {
            connected: self.client.connection_state() == async_nats::connection::State::Connected,
            disconnects: self.connection.disconnects.load(Ordering::Relaxed),
            reconnects: self.connection.reconnects.load(Ordering::Relaxed),
        }
    }

    /// Every change of the connection, as it is reported: wait on it
    /// rather than polling [`connection`](Self::connection).
    pub fn connection_changes(&self) -> watch::Receiver<ConnectionReport> {
        self.connection.changes.subscribe()
    }

    /// The configuration.
    pub fn config(&self) -> &JetStreamConfig {
        &self.config
    }
    /// Events of `event_type` that subscription `subscription` has not
    /// finished: waiting on the server plus delivered and not yet
    /// acknowledged, read from its durable consumer. The signal to scale
    /// the workers of that subscription on.
    ///
    /// # Errors
    ///
    /// [`EventBusError::Transport`] when the consumer cannot be read (it
    /// does not exist until a worker subscribes, or the server is down).
    pub async fn backlog(
        &self,
        event_type: &str,
        subscription: &str,
    ) -> Result<u64, EventBusError> {
        let name = consumer_name(event_type, subscription);
        let mut consumer: PullConsumer =
            self.stream.get_consumer(&name).await.map_err(|error| {
                EventBusError::transport(format!("read consumer {name}"), error)
            })?;
        let info = consumer
            .info()
            .await
            .map_err(|error| EventBusError::transport(format!("read consumer {name}"), error))?;
        Ok(info
            .num_pending
            .saturating_add(u64::try_from(info.num_ack_pending).unwrap_or(u64::MAX)))
    }

    /// The underlying client, e.g. to read the dead-letter subjects.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    async fn consumer(&self, subscription: &Subscription) -> Result<PullConsumer, EventBusError> {
        let name = consumer_name(subscription.event_type(), subscription.name());
        let config = pull::Config {
            durable_name: Some(name.clone()),
            filter_subject: self.config.subject(subscription.event_type()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.config.ack_wait,
            deliver_policy: if self.config.replay_history {
                DeliverPolicy::All
            } else {
                DeliverPolicy::New
            },
            // Unlimited: the transport dead-letters after the bus's own
            // limit, so a message is never dropped by the server unseen.
            max_deliver: -1,
            max_ack_pending: i64::try_from(
                self.config
                    .max_in_flight
                    .unwrap_or(self.config.concurrency * 4),
            )
            .unwrap_or(i64::MAX),
            ..pull::Config::default()
        };
        self.stream
            .get_or_create_consumer(&name, config)
            .await
            .map_err(|error| EventBusError::transport(format!("create consumer {name}"), error))
    }
}

/// The servers of `urls`, one URL or several separated by commas.
pub(crate) fn servers(urls: &str) -> Vec<&str> {
    urls.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .collect()
}

/// 100 ms doubling to 5 s.
pub(crate) fn reconnect_delay(attempts: usize) -> Duration {
    let doublings = attempts.saturating_sub(1).min(6) as u32;
    Duration::from_millis(100 * 2u64.pow(doublings)).min(Duration::from_secs(5))
}

fn report(counters: &ConnectionCounters, event: async_nats::Event) {
    match event {
        async_nats::Event::Disconnected => {
            counters.disconnects.fetch_add(1, Ordering::Relaxed);
            counters.publish_change(false);
            tracing::warn!("NATS connection lost; reconnecting with backoff");
        }
        async_nats::Event::Connected => {
            if counters.disconnects.load(Ordering::Relaxed) > 0 {
                counters.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            counters.publish_change(true);
            tracing::info!("NATS connection established");
        }
        other => tracing::warn!(event = %other, "NATS client event"),
    }
}

impl Transport for JetStream {
    fn name(&self) -> &'static str {
        "nats-jetstream"
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn attach(&self, subscription: Subscription) -> Result<(), EventBusError> {
        let consumer = self.consumer(&subscription).await?;
        let worker = ConsumeLoop {
            subscription,
            consumer,
            context: self.context.clone(),
            config: self.config.clone(),
            handlers: Arc::new(Semaphore::new(self.config.concurrency)),
            stopping: Arc::clone(&self.stopping),
            running: RunningSet::default(),
        };
        let handle = tokio::spawn(worker.run());
        lock(&self.consumers).push(handle);
        Ok(())
    }

    async fn publish(&self, event: Arc<Event>) -> Result<Routed, EventBusError> {
        if self.stopping.stopped.load(Ordering::SeqCst) {
            return Err(EventBusError::Closed);
        }
        publish_event(&self.context, &self.config, &event).await?;
        Ok(Routed::Yes)
    }

    /// Sends up to 256 publishes (`PUBLISH_WINDOW`) before awaiting the oldest
    /// acknowledgement, so one publisher is not held to one round trip per
    /// event; each event still counts as accepted only once the server has
    /// acknowledged (stored) it.
    async fn publish_many_then<'a>(
        &'a self,
        events: &'a [Arc<Event>],
        accepted: &'a (dyn Fn(usize, Routed) + Send + Sync),
    ) -> Result<(), EventBusError> {
        let mut pending = std::collections::VecDeque::with_capacity(PUBLISH_WINDOW);
        for (index, event) in events.iter().enumerate() {
            if self.stopping.stopped.load(Ordering::SeqCst) {
                return Err(EventBusError::Closed);
            }
            if pending.len() == PUBLISH_WINDOW
                && let Some(oldest) = pending.pop_front()
            {
                await_ack(oldest, accepted).await?;
            }
            let ack = send_event(&self.context, &self.config, event).await?;
            pending.push_back((index, event.id, ack));
        }
        while let Some(oldest) = pending.pop_front() {
            await_ack(oldest, accepted).await?;
        }
        Ok(())
    }

    fn try_publish(&self, _event: Arc<Event>) -> Result<Routed, EventBusError> {
        Err(EventBusError::Unsupported {
            operation: "try_publish (the server's acknowledgement is awaited; use publish)",
            transport: "nats-jetstream",
        })
    }

    /// Stops pulling, hands back what was pulled but not started (nak
    /// without delay, so other workers take it at once), waits for the
    /// handlers running, and flushes their acknowledgements.
    async fn shutdown(&self) {
        self.stopping.stop();
        let consumers = std::mem::take(&mut *lock(&self.consumers));
        for consumer in consumers {
            if let Err(error) = consumer.await {
                tracing::error!(%error, "JetStream consume loop ended abnormally");
            }
        }
        if let Err(error) = self.client.flush().await {
            tracing::warn!(%error, "flushing NATS acknowledgements at shutdown failed");
        }
    }
}

/// How many publishes [`EventBus::publish_all`](super::EventBus::publish_all)
/// keeps awaiting their acknowledgement at once: enough to cover the round
/// trip to the server many times over, few enough that a failure leaves a
/// bounded number of events in doubt.
pub(crate) const PUBLISH_WINDOW: usize = 256;

/// Awaits one pipelined publish's acknowledgement and records it.
async fn await_ack(
    (index, id, ack): (usize, uuid::Uuid, jetstream::context::PublishAckFuture),
    accepted: &(dyn Fn(usize, Routed) + Send + Sync),
) -> Result<(), EventBusError> {
    ack.await.map_err(|error| publish_failed(id, error))?;
    accepted(index, Routed::Yes);
    Ok(())
}

/// The error of a publish that was not sent or not acknowledged.
fn publish_failed(
    id: uuid::Uuid,
    error: impl std::error::Error + Send + Sync + 'static,
) -> EventBusError {
    EventBusError::transport(format!("publish event {id}"), error)
}

/// Sends an event and returns the future of the server's acknowledgement.
async fn send_event(
    context: &jetstream::Context,
    config: &JetStreamConfig,
    event: &Event,
) -> Result<jetstream::context::PublishAckFuture, EventBusError> {
    let payload = serde_json::to_vec(event).map_err(|source| EventBusError::Encode {
        event_id: event.id,
        source,
    })?;
    // The priority travels in the JSON only: no reader needs it before
    // decoding, and each header is parsed by the server on every publish.
    let publish = PublishMessage::build()
        .payload(Bytes::from(payload))
        .message_id(event.id.to_string());
    context
        .send_publish(config.subject(&event.event_type), publish)
        .await
        .map_err(|error| publish_failed(event.id, error))
}

/// Publishes and waits for the server's acknowledgement.
async fn publish_event(
    context: &jetstream::Context,
    config: &JetStreamConfig,
    event: &Event,
) -> Result<(), EventBusError> {
    send_event(context, config, event)
        .await?
        .await
        .map_err(|error| publish_failed(event.id, error))?;
    Ok(())
}

/// Pulls one subscription's messages and runs them, at most `concurrency`
/// at a time.
struct ConsumeLoop {
    subscription: Subscription,
    consumer: PullConsumer,
    context: jetstream::Context,
    config: JetStreamConfig,
    handlers: Arc<Semaphore>,
    stopping: Arc<Stopping>,
    running: RunningSet,
}

impl ConsumeLoop {
    /// Pulls only as many messages as there are free handlers, so no
    /// message waits in this process for a handler while its `ack_wait`
    /// runs out (it would be given to another worker and run twice).
    ///
    /// Pull requests share one inbox for the loop's life and overlap: the
    /// next is sent as soon as enough handlers are free, not after the
    /// previous one is filled, so deliveries never pause for a round trip
    /// and no subscription is made per batch.
    async fn run(self) {
        let this = Arc::new(self);
        let mut failures = 0u32;
        while !this.stopping.stopped.load(Ordering::SeqCst) {
            match this.pull(&mut failures).await {
                Pulled::Stopped => break,
                Pulled::Interrupted => this.pause(failures).await,
            }
        }
        // Wait for running handlers: every permit back means every handler
        // has acked, nak'd or dead-lettered its message.
        let all = u32::try_from(this.config.concurrency).unwrap_or(u32::MAX);
        if let Ok(permits) = this.handlers.acquire_many(all).await {
            permits.forget();
        }
    }

    /// One pulling session on a fresh inbox, until stopped or interrupted
    /// (the subscription or a pull request failed; `failures` counts them
    /// in a row). Every handler slot it took is given back when it ends.
    async fn pull(self: &Arc<Self>, failures: &mut u32) -> Pulled {
        let client = self.context.client();
        let inbox = async_nats::Subject::from(client.new_inbox());
        let mut deliveries = match client.subscribe(inbox.clone()).await {
            Ok(subscriber) => subscriber,
            Err(error) => {
                *failures += 1;
                tracing::warn!(
                    %error,
                    subscription = self.subscription.name(),
                    "subscribing to pull from JetStream failed; retrying"
                );
                return Pulled::Interrupted;
            }
        };
        let mut requests = Requests::new(Arc::clone(&self.handlers));
        let mut inline = InlineFirst::default();
        // Free handlers are asked for together once there are half of them,
        // or at once when nothing is asked for: a pull asks for at least
        // half the handlers, so while messages flow the next pull is on its
        // way before the last ones arrive, and a process holds at most
        // three of the consumer's `max_waiting` pull requests.
        let ask_at = (self.config.concurrency / 2).max(1);
        let consumer = &self.consumer.cached_info().config;
        let largest_pull = largest_pull(consumer);
        // Likewise a pull that would wait longer than the consumer allows.
        let expires = if consumer.max_expires.is_zero() {
            PULL_EXPIRES
        } else {
            PULL_EXPIRES.min(consumer.max_expires)
        };
        let pulled = loop {
            requests.take_free_handlers();
            if requests.unasked > 0 && (requests.outstanding() == 0 || requests.unasked >= ask_at) {
                // The server refuses outright, and would for ever, a pull
                // for more than the consumer's limit per request: ask in
                // pieces it accepts.
                let asking = requests.unasked.min(largest_pull);
                let batch = BatchConfig {
                    batch: asking,
                    expires: Some(expires),
                    ..BatchConfig::default()
                };
                if let Err(error) = self.consumer.request_batch(batch, inbox.clone()).await {
                    *failures += 1;
                    tracing::warn!(
                        %error,
                        subscription = self.subscription.name(),
                        "a JetStream pull request failed; retrying"
                    );
                    break Pulled::Interrupted;
                }
                requests.asked(asking);
            }
            // Nothing asked for and no handler free: only a handler
            // finishing can move this loop on (or stopping).
            let idle = requests.outstanding() == 0 && requests.unasked == 0;
            let lost_at = requests.lost_at();
            tokio::select! {
                biased;
                () = self.stopping.wait() => break Pulled::Stopped,
                delivery = deliveries.next() => {
                    let Some(delivery) = delivery else {
                        *failures += 1;
                        break Pulled::Interrupted;
                    };
                    match delivery.status.unwrap_or(StatusCode::OK) {
                        StatusCode::OK => {
                            *failures = 0;
                            let message = Message { message: delivery, context: self.context.clone() };
                            let Some(slot) = requests.delivered() else {
                                // The server sent more than asked: give it back.
                                nak_now(&message).await;
                                continue;
                            };
                            let handler = Arc::clone(self);
                            inline.run(async move {
                                handler.handle(message).await;
                                drop(slot);
                            });
                        }
                        StatusCode::IDLE_HEARTBEAT => {}
                        status @ (StatusCode::TIMEOUT | StatusCode::REQUEST_TERMINATED) => {
                            let reason = delivery.description.as_deref().unwrap_or("");
                            if status == StatusCode::REQUEST_TERMINATED && !request_ended_normally(reason) {
                                // A request refused (limits) or a consumer gone:
                                // start over after a pause.
                                *failures += 1;
                                tracing::warn!(
                                    reason,
                                    subscription = self.subscription.name(),
                                    "JetStream refused a pull request; retrying"
                                );
                                break Pulled::Interrupted;
                            }
                            // The oldest request expired, or its server
                            // stepped down: it brings nothing more (its
                            // messages came before this status).
                            requests.ended();
                        }
                        status => {
                            *failures += 1;
                            tracing::warn!(
                                %status,
                                description = ?delivery.description,
                                subscription = self.subscription.name(),
                                "JetStream pull interrupted; resuming"
                            );
                            break Pulled::Interrupted;
                        }
                    }
                }
                permit = self.handlers.acquire(), if idle => match permit {
                    Ok(permit) => {
                        permit.forget();
                        requests.unasked += 1;
                    }
                    Err(_) => break Pulled::Stopped,
                },
                () = sleep_until_some(lost_at) => {
                    // No answer long after the request expired: it was lost
                    // with a connection or a server. Its handlers are free
                    // again; a message it brings later is handed back.
                    requests.ended();
                }
            }
        };
        // Messages delivered but not started go back at once, so other
        // workers take them now rather than after `ack_wait`.
        while let Some(Some(delivery)) = deliveries.next().now_or_never() {
            if delivery
                .status
                .is_none_or(|status| status == StatusCode::OK)
            {
                nak_now(&Message {
                    message: delivery,
                    context: self.context.clone(),
                })
                .await;
            }
        }
        if let Err(error) = deliveries.unsubscribe().await {
            tracing::debug!(%error, "leaving the pull inbox failed");
        }
        pulled
    }

    async fn pause(&self, failures: u32) {
        let delay = reconnect_delay(failures as usize);
        tokio::select! {
            () = self.stopping.wait() => {}
            () = tokio::time::sleep(delay) => {}
        }
    }

    async fn handle(&self, message: Message) {
        // The delivery count and stream sequence are parsed from the reply
        // subject, once.
        let (delivered, sequence) = message.info().map_or((1, None), |info| {
            (
                u32::try_from(info.delivered).unwrap_or(u32::MAX),
                Some(info.stream_sequence),
            )
        });
        let event: Event = match serde_json::from_slice(&message.payload) {
            Ok(event) => event,
            Err(error) => {
                let reason = format!("malformed event: {error}");
                self.dead_letter(&message, &reason, delivered).await;
                return;
            }
        };
        // A message still being handled here came back (progress acks were
        // lost, say): it is neither run twice nor dead-lettered while its
        // handler runs; the running handler keeps it.
        let Some(_running) = Running::start(&self.running, sequence) else {
            self.ack(&message, AckKind::Progress).await;
            return;
        };
        if delivered > self.subscription.max_deliveries() {
            let reason = format!(
                "delivered {delivered} times without an outcome (its workers stopped mid-event)"
            );
            // Reported like any other dead letter: observers of
            // `{type}_failed` must not miss the events given up unread.
            if let Some(report) = self.subscription.give_up(&event, &reason, delivered)
                && let Err(error) = self.publish_report(&message, &report).await
            {
                tracing::warn!(%error, event_id = %event.id, "publishing a dead letter's report failed; redelivering");
                self.ack(&message, AckKind::Nak(Some(Duration::from_secs(1))))
                    .await;
                return;
            }
            self.dead_letter(&message, &reason, delivered).await;
            return;
        }
        let event = Arc::new(event);
        // A handler slower than `ack_wait` keeps its message: progress
        // acknowledgements restart the server's clock while it runs.
        // Biased: a handler that finishes at once never starts the timer.
        let handled = tokio::select! {
            biased;
            handled = self.subscription.handle(&event, delivered) => handled,
            () = keep_in_progress(&message, self.config.ack_wait) => unreachable!("runs until dropped"),
        };
        if let Some(follow_up) = &handled.follow_up
            && let Err(error) = self.publish_report(&message, follow_up).await
        {
            // Without its follow-up the outcome is not complete: let the
            // event come back rather than lose the report.
            tracing::warn!(%error, event_id = %event.id, "publishing a follow-up failed; redelivering");
            self.ack(&message, AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
            return;
        }
        match handled.outcome {
            Outcome::Completed => self.ack(&message, AckKind::Ack).await,
            Outcome::Redeliver { after, .. } => self.ack(&message, AckKind::Nak(Some(after))).await,
            Outcome::DeadLetter { error } => {
                self.dead_letter(&message, &format!("{error:#}"), delivered)
                    .await;
            }
        }
    }

    /// Publishes the report of `message`'s outcome, trying again with
    /// backoff (100 ms doubling to 2 s) for up to `ack_wait` while the
    /// message is kept in progress. A cluster electing a new stream leader
    /// refuses publishes for a few seconds; handing the message back at
    /// the first refusal would run its chain again for each one, and
    /// dead-letter an event whose chain succeeded. The report keeps its id,
    /// so a publish that was stored but not acknowledged is stored once.
    ///
    /// Boxed, like [`dead_letter`](Self::dead_letter): its retries would
    /// otherwise make every handler's future (boxed per message, and moved
    /// into a task when it waits) several times larger.
    fn publish_report<'a>(
        &'a self,
        message: &'a Message,
        report: &'a Event,
    ) -> BoxFuture<'a, Result<(), EventBusError>> {
        Box::pin(async move {
            let retrying = async {
                let started = tokio::time::Instant::now();
                let mut delay = Duration::from_millis(100);
                loop {
                    match publish_event(&self.context, &self.config, report).await {
                        Ok(()) => return Ok(()),
                        Err(error) if started.elapsed() + delay >= self.config.ack_wait => {
                            return Err(error);
                        }
                        Err(error) => {
                            tracing::debug!(%error, "publishing a report failed; trying again");
                            tokio::time::sleep(delay).await;
                            delay = (delay * 2).min(Duration::from_secs(2));
                        }
                    }
                }
            };
            tokio::select! {
                biased;
                published = retrying => published,
                () = keep_in_progress(message, self.config.ack_wait) => unreachable!("runs until dropped"),
            }
        })
    }

    /// Copies the message to the `.dlq` subject, then terminates it. If the
    /// copy fails the message is nak'd instead, so it is never lost.
    fn dead_letter<'a>(
        &'a self,
        message: &'a Message,
        reason: &'a str,
        deliveries: u32,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let event_type = self.subscription.event_type();
            let subject = self.config.dead_letter_subject(event_type);
            let mut headers = HeaderMap::new();
            headers.insert(DLQ_SUBSCRIPTION_HEADER, self.subscription.name());
            headers.insert(DLQ_ERROR_HEADER, single_line(reason).as_str());
            headers.insert(DLQ_DELIVERIES_HEADER, deliveries.to_string().as_str());
            let sequence = message.info().map(|info| info.stream_sequence).unwrap_or(0);
            let publish = PublishMessage::build()
                .payload(message.payload.clone())
                .headers(headers)
                .message_id(format!("dlq-{}-{sequence}", self.subscription.name()));
            let stored = match self.context.send_publish(subject, publish).await {
                Ok(ack) => ack.await.map(drop).map_err(async_nats::Error::from),
                Err(error) => Err(error.into()),
            };
            match stored {
                Ok(()) => {
                    tracing::warn!(
                        subscription = self.subscription.name(),
                        event_type,
                        deliveries,
                        reason,
                        "event dead-lettered"
                    );
                    self.ack(message, AckKind::Term).await;
                }
                Err(error) => {
                    tracing::error!(%error, "dead-lettering failed; the message will come back");
                    self.ack(message, AckKind::Nak(Some(Duration::from_secs(1))))
                        .await;
                }
            }
        })
    }

    async fn ack(&self, message: &Message, kind: AckKind) {
        if let Err(error) = message.ack_with(kind).await {
            // The server redelivers after `ack_wait`: at least once.
            tracing::warn!(%error, "acknowledging a JetStream message failed");
        }
    }
}

/// How long one pull waits for messages before asking again.
const PULL_EXPIRES: Duration = Duration::from_secs(1);

/// How long after its expiry a pull request with no answer counts as lost.
const PULL_LOST_AFTER: Duration = Duration::from_secs(5);

/// How long handlers may run inline, on their first poll, on average (a
/// moving average over the last eight or so) before the consume loop
/// spawns them instead.
const INLINE_BUDGET: Duration = Duration::from_micros(20);

/// How long the consume loop spawns every handler once the average is
/// over [`INLINE_BUDGET`], before it tries one inline again.
const SPAWN_SPELL: Duration = Duration::from_secs(1);

/// Runs each handler's first poll in the consume loop, and spawns it as a
/// task only if it did not finish there.
///
/// A task per message costs an allocation, a copy of the handler's state
/// and, on a multi-threaded runtime, usually a wake-up of another thread:
/// more than a short chain's own work (a third of a JetStream consumer's
/// throughput, measured). Most handlers either finish at once or soon
/// wait on I/O, and are then spawned with their parallelism intact.
/// Handlers that compute for long before their first wait would hold the
/// loop and run one after another, so while their first polls average
/// more than [`INLINE_BUDGET`] every handler is spawned, spread over the
/// runtime's threads. The average is taken over wall-clock time, so one
/// poll cut short by the OS counts for at most four times the budget: a
/// stray preemption does not switch the loop.
#[derive(Default)]
struct InlineFirst {
    /// Moving average of the first polls' time, in nanoseconds.
    average_ns: u64,
    spawn_until: Option<tokio::time::Instant>,
}

impl InlineFirst {
    fn run(&mut self, handler: impl Future<Output = ()> + Send + 'static) {
        let now = tokio::time::Instant::now();
        if self.spawn_until.is_some_and(|until| now < until) {
            tokio::spawn(handler);
            return;
        }
        let mut handler = Box::pin(handler);
        // A panic past the chain's own panic guard must not end the consume
        // loop: as in a spawned task, it ends this handler only (its slot
        // comes back as it unwinds; the message returns after `ack_wait`).
        let first_poll = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            (&mut handler).now_or_never()
        }));
        let budget = INLINE_BUDGET.as_nanos() as u64;
        let took = u64::try_from(now.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.average_ns = (self.average_ns * 7 + took.min(4 * budget)) / 8;
        if self.average_ns > budget {
            self.spawn_until = Some(now + SPAWN_SPELL);
            // One cheap poll after the spell brings it back under.
            self.average_ns = budget;
        }
        match first_poll {
            Ok(Some(())) => {}
            Ok(None) => {
                tokio::spawn(handler);
            }
            Err(_) => tracing::error!("a JetStream handler panicked"),
        }
    }
}

/// The most messages one pull request may ask for: the consumer's limit
/// per request (a larger pull is refused) or its limit of unacknowledged
/// deliveries (no more can be in flight), whichever is lower. The consumer
/// may have been created with other limits than this process's
/// configuration: an existing consumer keeps its own.
fn largest_pull(config: &jetstream::consumer::Config) -> usize {
    [config.max_ack_pending, config.max_batch]
        .into_iter()
        .filter_map(|limit| usize::try_from(limit).ok().filter(|&limit| limit > 0))
        .min()
        .unwrap_or(usize::MAX)
}

/// How one pulling session ended.
enum Pulled {
    Stopped,
    Interrupted,
}

/// Whether a 409 status ends one request only (its server stepped down or
/// shut down), rather than refusing requests like it (limits exceeded, the
/// consumer deleted or push based).
fn request_ended_normally(reason: &str) -> bool {
    reason.contains("Leadership Change") || reason.contains("Server Shutdown")
}

/// Resolves at `deadline`, or never.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The pull requests of one session, oldest first, and the handler slots
/// they hold. The server fills requests in the order they came and, all
/// having one expiry, ends them in that order too, so a message or an
/// end-of-request status belongs to the oldest one.
///
/// A slot is a semaphore permit taken from `handlers` and forgotten; it is
/// given back when its handler ends, when its request ends undelivered,
/// and for every slot still held when the session ends.
struct Requests {
    handlers: Arc<Semaphore>,
    /// Slots taken and not yet asked for.
    unasked: usize,
    /// Per request sent: when, and how many messages it still may bring.
    sent: std::collections::VecDeque<(tokio::time::Instant, usize)>,
}

impl Requests {
    fn new(handlers: Arc<Semaphore>) -> Self {
        Requests {
            handlers,
            unasked: 0,
            sent: std::collections::VecDeque::new(),
        }
    }

    /// Takes every free handler slot.
    fn take_free_handlers(&mut self) {
        let free = self.handlers.available_permits();
        if free > 0
            && let Ok(permits) = self
                .handlers
                .try_acquire_many(u32::try_from(free).unwrap_or(u32::MAX))
        {
            self.unasked += permits.num_permits();
            permits.forget();
        }
    }

    /// Messages the requests sent may still bring.
    fn outstanding(&self) -> usize {
        self.sent.iter().map(|(_, left)| left).sum()
    }

    /// `count` of the unasked slots were just asked for in one request.
    fn asked(&mut self, count: usize) {
        let count = count.min(self.unasked);
        self.unasked -= count;
        self.sent.push_back((tokio::time::Instant::now(), count));
    }

    /// A message arrived: its slot, or `None` if nothing was asked for.
    fn delivered(&mut self) -> Option<HandlerSlot> {
        let (_, left) = self.sent.front_mut()?;
        *left -= 1;
        if *left == 0 {
            self.sent.pop_front();
        }
        Some(HandlerSlot(Arc::clone(&self.handlers)))
    }

    /// The oldest request ended: the slots of the messages it did not
    /// bring are free again.
    fn ended(&mut self) {
        if let Some((_, left)) = self.sent.pop_front() {
            self.handlers.add_permits(left);
        }
    }

    /// When the oldest request counts as lost if no answer came.
    fn lost_at(&self) -> Option<tokio::time::Instant> {
        self.sent
            .front()
            .map(|(sent, _)| *sent + PULL_EXPIRES + PULL_LOST_AFTER)
    }
}

impl Drop for Requests {
    fn drop(&mut self) {
        self.handlers.add_permits(self.unasked + self.outstanding());
    }
}

/// A handler slot, given back when dropped.
struct HandlerSlot(Arc<Semaphore>);

impl Drop for HandlerSlot {
    fn drop(&mut self) {
        self.0.add_permits(1);
    }
}

async fn nak_now(message: &Message) {
    if let Err(error) = message.ack_with(AckKind::Nak(None)).await {
        tracing::warn!(%error, "handing a message back failed; it returns after ack_wait");
    }
}

/// Sends a progress acknowledgement every third of `ack_wait`, for as long
/// as it is polled.
async fn keep_in_progress(message: &Message, ack_wait: Duration) {
    let period = (ack_wait / 3).max(Duration::from_millis(10));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(error) = message.ack_with(AckKind::Progress).await {
            tracing::warn!(%error, "a progress acknowledgement failed; the message may be redelivered");
        }
    }
}

/// The stream sequences of the messages being handled in this process.
type RunningSet = Arc<Mutex<std::collections::HashSet<u64>>>;

/// One message's place in the [`RunningSet`], given back when dropped.
struct Running {
    set: RunningSet,
    sequence: Option<u64>,
}

impl Running {
    /// `None` if the message is being handled already.
    fn start(set: &RunningSet, sequence: Option<u64>) -> Option<Self> {
        if let Some(sequence) = sequence
            && !lock(set).insert(sequence)
        {
            return None;
        }
        Some(Self {
            set: Arc::clone(set),
            sequence,
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(sequence) = self.sequence {
            lock(&self.set).remove(&sequence);
        }
    }
}

/// Header values cannot hold line breaks.
fn single_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

impl std::fmt::Debug for JetStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStream")
            .field("config", &self.config)
            .field("connection", &self.connection())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_requests_hold_handler_slots_until_delivered_ended_or_dropped() {
        let handlers = Arc::new(Semaphore::new(8));
        let mut requests = Requests::new(Arc::clone(&handlers));
        // Nothing asked: a message that comes anyway has no slot.
        assert!(requests.delivered().is_none());
        requests.take_free_handlers();
        assert_eq!((requests.unasked, handlers.available_permits()), (8, 0));
        requests.asked(8);
        assert_eq!((requests.unasked, requests.outstanding()), (0, 8));
        let slots: Vec<_> = (0..3).map(|_| requests.delivered().unwrap()).collect();
        assert_eq!(requests.outstanding(), 5);
        drop(slots);
        assert_eq!(handlers.available_permits(), 3, "handlers that ended");
        requests.take_free_handlers();
        requests.asked(3);
        assert_eq!(requests.outstanding(), 8);
        // The oldest request (5 left) expires: its slots are free again,
        // the newer one keeps its own.
        requests.ended();
        assert_eq!(
            (requests.outstanding(), handlers.available_permits()),
            (3, 5)
        );
        let running = requests.delivered().unwrap();
        drop(requests);
        assert_eq!(
            handlers.available_permits(),
            7,
            "a session's slots come back when it ends"
        );
        drop(running);
        assert_eq!(handlers.available_permits(), 8);
    }

    #[test]
    fn a_pull_asks_for_no_more_than_the_consumer_accepts() {
        let limits = |max_ack_pending, max_batch| jetstream::consumer::Config {
            max_ack_pending,
            max_batch,
            ..jetstream::consumer::Config::default()
        };
        assert_eq!(largest_pull(&limits(4, 0)), 4);
        assert_eq!(largest_pull(&limits(100, 10)), 10);
        assert_eq!(largest_pull(&limits(-1, 0)), usize::MAX);
        let mut requests = Requests::new(Arc::new(Semaphore::new(8)));
        requests.take_free_handlers();
        requests.asked(3);
        assert_eq!((requests.unasked, requests.outstanding()), (5, 3));
    }

    #[test]
    fn debug_output_never_shows_credentials_in_urls() {
        let config = JetStreamConfig::new(
            "nats://alice:s3cr3t@10.0.0.1:4222, nats://tok3n@10.0.0.2:4222,nats://10.0.0.3:4222",
        );
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("alice"),
            "{shown}"
        );
        assert!(!shown.contains("tok3n"), "{shown}");
        assert!(
            shown
                .contains("nats://***@10.0.0.1:4222,nats://***@10.0.0.2:4222,nats://10.0.0.3:4222"),
            "{shown}"
        );
    }
}

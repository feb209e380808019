//! NATS JetStream, publish to handled: the event bus's JetStream transport
//! against hand-written async-nats code doing the same work (JSON event
//! with `Nats-Msg-Id`, publish acknowledged by the server, durable pull
//! consumer, decode, ack). Both publish from eight tasks at once, each
//! awaiting every acknowledgement before its next publish (the bus's
//! `publish`, the naive hand-written loop) or keeping up to 256
//! outstanding (the bus's `publish_all`, and a hand-written window).
//!
//! Starts its own `nats-server` (Debian package `nats-server`) with
//! JetStream on a free port. Run with
//! `cargo bench -p chain-scaling --features nats --bench events_nats`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, pull};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{self, StorageType};
use bytes::Bytes;
use chain_core::{Chain, Context};
use chain_scaling::events::{Event, EventBus, FollowUps, JetStream, JetStreamConfig, Redelivery};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use done::Done;
use futures_util::StreamExt;
use serde_json::json;
use tokio::runtime::Runtime;

#[path = "support/done.rs"]
mod done;
#[path = "support/nats_server.rs"]
mod nats_server;
use nats_server::Server;

const EVENTS: u64 = 5_000;
const PUBLISHERS: u64 = 8;

fn event(n: u64) -> Event {
    Event::new("tick", json!({ "n": n }))
}

async fn publish_all<F, Fut>(publish: F)
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let tasks: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let publish = publish.clone();
            tokio::spawn(async move {
                for n in (p..EVENTS).step_by(PUBLISHERS as usize) {
                    publish(n).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap_or_else(|error| panic!("{error}"));
    }
}

/// Each of the publishing tasks gets its share of the event numbers at once.
async fn publish_shares<F, Fut>(publish: F)
where
    F: Fn(Vec<u64>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let tasks: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let share = (p..EVENTS).step_by(PUBLISHERS as usize).collect();
            tokio::spawn(publish.clone()(share))
        })
        .collect();
    for task in tasks {
        task.await.unwrap_or_else(|error| panic!("{error}"));
    }
}

/// How the bus publishes: one `publish` awaited after another, or each
/// task's share in one pipelined `publish_all`.
#[derive(Clone, Copy)]
enum Publishing {
    OneByOne,
    Pipelined,
}

fn bus_throughput(
    runtime: &Runtime,
    url: &str,
    iterations: u64,
    publishing: Publishing,
) -> Duration {
    runtime.block_on(async {
        let name = format!("BUS{}", fastrand::u64(..));
        // 256 handlers: as many deliveries in flight as the hand-written
        // consumer's 256 unacknowledged messages (`max_ack_pending`).
        let config = JetStreamConfig::new(url)
            .stream(&name)
            .subject_prefix(name.to_lowercase())
            .memory_storage()
            .concurrency(256);
        let transport = JetStream::connect(config)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let bus = EventBus::builder()
            .without_store()
            .follow_ups(FollowUps::Never)
            .redelivery(Redelivery::default())
            .build_with(transport);
        let done = Arc::new(Done::default());
        let counter = Arc::clone(&done);
        let chain = Chain::named("count").link_sync(move |ctx: Context| {
            counter.record();
            Ok(ctx)
        });
        bus.subscribe("tick", chain)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let start = Instant::now();
        for iteration in 0..iterations {
            let publisher = bus.clone();
            match publishing {
                Publishing::OneByOne => {
                    publish_all(move |n| {
                        let bus = publisher.clone();
                        async move {
                            bus.publish(event(n))
                                .await
                                .unwrap_or_else(|e| panic!("{e}"));
                        }
                    })
                    .await
                }
                Publishing::Pipelined => {
                    publish_shares(move |share| {
                        let bus = publisher.clone();
                        async move {
                            bus.publish_all(share.into_iter().map(event))
                                .await
                                .unwrap_or_else(|e| panic!("{e}"));
                        }
                    })
                    .await
                }
            }
            done.wait_for((iteration + 1) * EVENTS).await;
        }
        let elapsed = start.elapsed();
        bus.shutdown().await;
        // Memory-stored streams left behind would fill the server's
        // JetStream memory over a run's many iterations.
        async_nats::jetstream::new(bus.transport().client().clone())
            .delete_stream(&name)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        elapsed
    })
}

/// The bus's pipelining window, for the pipelined hand-written baseline.
const WINDOW: usize = 256;

fn raw_message(event: &Event) -> PublishMessage {
    let payload = serde_json::to_vec(event).unwrap_or_else(|e| panic!("{e}"));
    PublishMessage::build()
        .payload(Bytes::from(payload))
        .message_id(event.id.to_string())
}

fn raw_throughput(
    runtime: &Runtime,
    url: &str,
    iterations: u64,
    publishing: Publishing,
) -> Duration {
    runtime.block_on(async {
        let name = format!("RAW{}", fastrand::u64(..));
        let prefix = name.to_lowercase();
        let client = async_nats::connect(url)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let context = async_nats::jetstream::new(client);
        let stream = context
            .get_or_create_stream(stream::Config {
                name: name.clone(),
                subjects: vec![format!("{prefix}.>")],
                storage: StorageType::Memory,
                ..stream::Config::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let consumer = stream
            .get_or_create_consumer(
                "count",
                pull::Config {
                    durable_name: Some("count".to_owned()),
                    filter_subject: format!("{prefix}.tick"),
                    ack_policy: AckPolicy::Explicit,
                    max_ack_pending: 256,
                    ..pull::Config::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let done = Arc::new(Done::default());
        let counter = Arc::clone(&done);
        let consume = tokio::spawn(async move {
            let mut messages = consumer.messages().await.unwrap_or_else(|e| panic!("{e}"));
            while let Some(Ok(message)) = messages.next().await {
                let event: Event =
                    serde_json::from_slice(&message.payload).unwrap_or_else(|e| panic!("{e}"));
                std::hint::black_box(event);
                message.ack().await.unwrap_or_else(|e| panic!("{e}"));
                counter.record();
            }
        });
        let subject = format!("{prefix}.tick");
        let start = Instant::now();
        for iteration in 0..iterations {
            let context = context.clone();
            let subject = subject.clone();
            match publishing {
                // Each publish's acknowledgement awaited before the next.
                Publishing::OneByOne => {
                    publish_all(move |n| {
                        let context = context.clone();
                        let subject = subject.clone();
                        async move {
                            context
                                .send_publish(subject, raw_message(&event(n)))
                                .await
                                .unwrap_or_else(|e| panic!("{e}"))
                                .await
                                .unwrap_or_else(|e| panic!("{e}"));
                        }
                    })
                    .await
                }
                // Up to WINDOW acknowledgements outstanding per task, the
                // oldest awaited when the window is full.
                Publishing::Pipelined => {
                    publish_shares(move |share| {
                        let context = context.clone();
                        let subject = subject.clone();
                        async move {
                            let mut pending = std::collections::VecDeque::with_capacity(WINDOW);
                            for n in share {
                                if pending.len() == WINDOW
                                    && let Some(ack) = pending.pop_front()
                                {
                                    let ack: async_nats::jetstream::context::PublishAckFuture = ack;
                                    ack.await.unwrap_or_else(|e| panic!("{e}"));
                                }
                                let ack = context
                                    .send_publish(subject.clone(), raw_message(&event(n)))
                                    .await
                                    .unwrap_or_else(|e| panic!("{e}"));
                                pending.push_back(ack);
                            }
                            for ack in pending {
                                ack.await.unwrap_or_else(|e| panic!("{e}"));
                            }
                        }
                    })
                    .await
                }
            }
            done.wait_for((iteration + 1) * EVENTS).await;
        }
        let elapsed = start.elapsed();
        consume.abort();
        context
            .delete_stream(&name)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        elapsed
    })
}

/// The four measurements run in this many rounds, one after the other in
/// each round, so a machine whose speed drifts (a shared VM, the server
/// sharing its CPUs) slows a bus measurement and its baseline alike, and
/// the report can show how much the ratios move between rounds.
/// `MODULINK_BENCH_ROUNDS` overrides it.
const ROUNDS: u32 = 3;

fn throughput(c: &mut Criterion) {
    let server = Server::start("nats");
    let url = server.url();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|error| panic!("{error}"));
    let rounds = std::env::var("MODULINK_BENCH_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(ROUNDS);
    let mut group = c.benchmark_group("nats_publish_to_handled");
    group.throughput(Throughput::Elements(EVENTS));
    for round in 1..=rounds {
        for (name, publishing) in [
            ("one_by_one", Publishing::OneByOne),
            ("pipelined", Publishing::Pipelined),
        ] {
            group.bench_function(format!("round{round}/event_bus_jetstream_{name}"), |b| {
                b.iter_custom(|iterations| bus_throughput(&runtime, &url, iterations, publishing))
            });
            group.bench_function(format!("round{round}/raw_async_nats_{name}"), |b| {
                b.iter_custom(|iterations| raw_throughput(&runtime, &url, iterations, publishing))
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = throughput
}
criterion_main!(benches);

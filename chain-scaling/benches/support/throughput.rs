//! The in-process event bus's throughput, shared by the `events` benchmark
//! (the system allocator) and `events_mimalloc` (the same code on
//! mimalloc): publish to handled for a trivial chain, the bus against a
//! hand-written tokio mpsc fan-out to the same number of workers running
//! the same chain (the limit: no priorities, history, redelivery or
//! accounting); and the cost per handling as subscriptions to one event
//! type grow.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chain_core::{Chain, Context};
use chain_scaling::events::{Event, EventBus};
use criterion::{BenchmarkId, Criterion, Throughput};
use serde_json::json;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

use crate::done::Done;

const EVENTS: u64 = 20_000;
const WORKERS: usize = 2;
const CAPACITY: usize = 1024;

fn counting_chain(done: Arc<Done>) -> Chain {
    Chain::named("count").link_sync(move |ctx: Context| {
        done.record();
        Ok(ctx)
    })
}

fn event(n: u64) -> Event {
    Event::new("tick", json!({ "n": n }))
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|error| panic!("{error}"))
}

fn bus_throughput(runtime: &Runtime, iterations: u64) -> Duration {
    bus_throughput_with(runtime, iterations, 1)
}

/// `subscriptions` chains subscribed to the one event type, each handling
/// every event: `iterations × EVENTS / subscriptions` events published, so
/// the handlings per iteration stay at `EVENTS`.
fn bus_throughput_with(runtime: &Runtime, iterations: u64, subscriptions: u64) -> Duration {
    runtime.block_on(async {
        let done = Arc::new(Done::default());
        let bus = EventBus::builder()
            .workers(WORKERS)
            .capacity(CAPACITY)
            .without_store()
            .build()
            .unwrap_or_else(|error| panic!("{error}"));
        for index in 0..subscriptions {
            bus.subscribe_as(
                "tick",
                format!("count-{index}"),
                counting_chain(Arc::clone(&done)),
            )
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        }
        let published = iterations * EVENTS / subscriptions;
        let start = Instant::now();
        for n in 0..published {
            bus.publish(event(n))
                .await
                .unwrap_or_else(|error| panic!("{error}"));
        }
        done.wait_for(published * subscriptions).await;
        let elapsed = start.elapsed();
        bus.shutdown().await;
        elapsed
    })
}

fn mpsc_throughput(runtime: &Runtime, iterations: u64) -> Duration {
    runtime.block_on(async {
        let done = Arc::new(Done::default());
        let chain = counting_chain(Arc::clone(&done));
        let senders: Vec<_> = (0..WORKERS)
            .map(|_| {
                let (sender, mut receiver) = mpsc::channel::<Arc<Event>>(CAPACITY / WORKERS);
                let chain = chain.clone();
                tokio::spawn(async move {
                    while let Some(event) = receiver.recv().await {
                        let ctx = Context::new().with("event_data", event.payload.clone());
                        if let Err(error) = chain.execute(ctx).await {
                            panic!("{error}");
                        }
                    }
                });
                sender
            })
            .collect();
        let total = iterations * EVENTS;
        let start = Instant::now();
        for n in 0..total {
            let sender = &senders[n as usize % WORKERS];
            if sender.send(Arc::new(event(n))).await.is_err() {
                panic!("worker stopped");
            }
        }
        done.wait_for(total).await;
        start.elapsed()
    })
}

/// The settings of the publish-to-handled comparison: 20,000 events per
/// iteration, so fewer, longer samples.
pub(crate) fn comparison_config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
}

/// Publish to handled, the bus against the mpsc fan-out, in a group named
/// for the allocator the benchmark binary uses.
pub(crate) fn throughput(c: &mut Criterion, group: &str) {
    let runtime = runtime();
    let mut group = c.benchmark_group(group);
    group.throughput(Throughput::Elements(EVENTS));
    group.bench_function(BenchmarkId::new("event_bus", WORKERS), |b| {
        b.iter_custom(|iterations| bus_throughput(&runtime, iterations))
    });
    group.bench_function(BenchmarkId::new("raw_mpsc_fan_out", WORKERS), |b| {
        b.iter_custom(|iterations| mpsc_throughput(&runtime, iterations))
    });
    group.finish();
}

/// Cost per handling as the subscriptions to one event type grow.
// `events_mimalloc` runs only the comparison.
#[allow(dead_code)]
pub(crate) fn subscriptions_per_type(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("events_subscriptions_per_type");
    group.throughput(Throughput::Elements(EVENTS));
    for subscriptions in [1, 2, 5, 10, 20, 50, 100] {
        group.bench_function(BenchmarkId::from_parameter(subscriptions), |b| {
            b.iter_custom(|iterations| bus_throughput_with(&runtime, iterations, subscriptions))
        });
    }
    group.finish();
}

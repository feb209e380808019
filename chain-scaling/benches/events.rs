//! In-process event throughput, publish to handled, for a trivial chain:
//! the bus against a hand-written tokio mpsc fan-out to the same number of
//! workers running the same chain (the limit: no priorities, history,
//! redelivery or accounting).
//!
//! Run with `cargo bench -p chain-scaling --bench events`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chain_core::{Chain, Context};
use chain_scaling::events::{Event, EventBus};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use done::Done;
use serde_json::json;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

/// Both sides allocate on the publisher's thread and free on the workers';
/// glibc's allocator serializes that on an arena lock, which would measure
/// the allocator rather than the queues.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "support/done.rs"]
mod done;

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
    runtime.block_on(async {
        let done = Arc::new(Done::default());
        let bus = EventBus::builder()
            .workers(WORKERS)
            .capacity(CAPACITY)
            .without_store()
            .build()
            .unwrap_or_else(|error| panic!("{error}"));
        bus.subscribe("tick", counting_chain(Arc::clone(&done)))
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        let total = iterations * EVENTS;
        let start = Instant::now();
        for n in 0..total {
            bus.publish(event(n))
                .await
                .unwrap_or_else(|error| panic!("{error}"));
        }
        done.wait_for(total).await;
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

fn throughput(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("events_publish_to_handled");
    group.throughput(Throughput::Elements(EVENTS));
    group.bench_function(BenchmarkId::new("event_bus", WORKERS), |b| {
        b.iter_custom(|iterations| bus_throughput(&runtime, iterations))
    });
    group.bench_function(BenchmarkId::new("raw_mpsc_fan_out", WORKERS), |b| {
        b.iter_custom(|iterations| mpsc_throughput(&runtime, iterations))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    targets = throughput
}
criterion_main!(benches);

//! What instrumenting a chain with `ChainMetrics` or a `Tracer` costs, side
//! by side with the same chain uninstrumented; tracing both with no
//! subscriber (the tracer's own work) and with a `fmt` subscriber.
//!
//! Run with `cargo bench -p chain-observability --bench instrumentation`.

use std::hint::black_box;

use bench_support::run_now;
use chain_core::{Chain, Context, Result};
use chain_observability::{ChainMetrics, SpanStore, Tracer};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use prometheus::Registry;

#[derive(Default)]
struct Order {
    steps: u64,
}

async fn step(mut order: Order) -> Result<Order> {
    order.steps = black_box(order.steps + 1);
    Ok(order)
}

fn ten_links() -> Chain<Order> {
    (0..10).fold(Chain::named("bench"), |chain, _| chain.link(step))
}

fn metrics_overhead(c: &mut Criterion) {
    let plain = ten_links();
    let registry = Registry::new();
    let metrics = ChainMetrics::new(&registry).unwrap_or_else(|error| panic!("{error}"));
    let instrumented = metrics.instrument(ten_links());
    let mut group = c.benchmark_group("metrics_10_links");
    group.bench_function("uninstrumented", |b| {
        b.iter(|| run_now(plain.execute(black_box(Order::default()))))
    });
    group.bench_function("instrumented", |b| {
        b.iter(|| run_now(instrumented.execute(black_box(Order::default()))))
    });
    group.finish();
}

async fn pass(ctx: Context) -> Result<Context> {
    Ok(black_box(ctx))
}

fn ten_context_links() -> Chain {
    (0..10).fold(Chain::named("bench"), |chain, _| chain.link(pass))
}

/// Tracing needs the dynamic context (it reads fields and keeps the trace
/// position as an extension). Benchmarked with no `tracing` subscriber
/// installed, so what is measured is the tracer's own work, and with
/// `tracing-subscriber`'s `fmt` layer writing to a sink, as a service has
/// one: sampled spans are recorded in its registry and their fields
/// formatted.
fn tracing_overhead(c: &mut Criterion) {
    let mut group = c.benchmark_group("tracing_10_links");
    bench_tracer(&mut group);
    let stored = Tracer::new()
        .store(SpanStore::new(10_000))
        .instrument(ten_context_links());
    group.bench_function("sampling_on_with_store", |b| {
        b.iter(|| run_now(stored.execute(black_box(Context::new()))))
    });
    group.finish();

    let subscriber = tracing_subscriber::fmt()
        .with_writer(std::io::sink)
        .finish();
    let mut group = c.benchmark_group("tracing_10_links_fmt_subscriber");
    tracing::subscriber::with_default(subscriber, || bench_tracer(&mut group));
    group.finish();
}

/// Ten pass-through links untraced, traced with sampling off and on.
fn bench_tracer(group: &mut BenchmarkGroup<'_, WallTime>) {
    let plain = ten_context_links();
    let off = Tracer::new()
        .sample_ratio(0.0)
        .instrument(ten_context_links());
    let on = Tracer::new().instrument(ten_context_links());
    for (name, chain) in [
        ("untraced", &plain),
        ("sampling_off", &off),
        ("sampling_on", &on),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| run_now(chain.execute(black_box(Context::new()))))
        });
    }
}

criterion_group! {
    name = benches;
    config = bench_support::criterion();
    targets = metrics_overhead, tracing_overhead
}
criterion_main!(benches);

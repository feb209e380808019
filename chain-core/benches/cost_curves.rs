//! How a chain's cost grows, for the curves in `BENCHMARKS.md`:
//!
//! - `chain_length/N`: one execution of N trivial async links on a typed
//!   context (each link a type-erased future), N from 1 to 10,000;
//! - `context_size/N`: ten links, each reading one field and inserting
//!   another, on a `Context` that already holds N fields, N from 1 to
//!   10,000 (the context is cloned outside the measurement);
//! - `concurrent_executions/N`: N tasks on a two-thread tokio runtime, each
//!   executing one ten-link chain that yields to the scheduler once, N
//!   from 1 to 10,000 (criterion's time is for all N; the report divides).
//!
//! Run with `cargo bench -p chain-core --bench cost_curves`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bench_support::run_now;
use chain_core::{Chain, Context, Result};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// 1 to 10,000 in steps of about half a decade.
const SIZES: [usize; 9] = [1, 3, 10, 30, 100, 300, 1_000, 3_000, 10_000];

async fn bump(n: u64) -> Result<u64> {
    Ok(black_box(n + 1))
}

fn chain_length(c: &mut Criterion) {
    let mut group = c.benchmark_group("chain_length");
    for links in SIZES {
        let chain = (0..links).fold(Chain::<u64>::new(), |chain, _| chain.link(bump));
        group.throughput(Throughput::Elements(links as u64));
        group.bench_with_input(BenchmarkId::from_parameter(links), &chain, |b, chain| {
            b.iter(|| run_now(chain.execute(black_box(0))))
        });
    }
    group.finish();
}

const KEYS: [&str; 10] = ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"];

fn read_and_insert(chain: Chain, index: usize) -> Chain {
    chain.link(move |mut ctx: Context| async move {
        let read = ctx.get_value("field_0").is_some();
        ctx.insert(KEYS[index], read);
        Ok(ctx)
    })
}

fn context_size(c: &mut Criterion) {
    let chain = (0..10).fold(Chain::named("ten"), read_and_insert);
    let mut group = c.benchmark_group("context_size");
    for fields in SIZES {
        let full = (0..fields).fold(Context::new(), |ctx, n| ctx.with(format!("field_{n}"), n));
        group.bench_with_input(BenchmarkId::from_parameter(fields), &full, |b, full| {
            b.iter_batched(
                || full.clone(),
                |ctx| run_now(chain.execute(ctx)),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn concurrent_executions(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap_or_else(|error| panic!("{error}"));
    let chain = (0..10).fold(Chain::<u64>::named("ten"), |chain, index| {
        if index == 5 {
            chain.link(|n: u64| async move {
                tokio::task::yield_now().await;
                Ok(n + 1)
            })
        } else {
            chain.link(bump)
        }
    });
    let mut group = c.benchmark_group("concurrent_executions");
    for tasks in SIZES {
        group.throughput(Throughput::Elements(tasks as u64));
        group.bench_with_input(BenchmarkId::from_parameter(tasks), &tasks, |b, &tasks| {
            b.iter_custom(|iterations| {
                runtime.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iterations {
                        let handles: Vec<_> = (0..tasks)
                            .map(|n| {
                                let chain = chain.clone();
                                tokio::spawn(async move { chain.execute(n as u64).await })
                            })
                            .collect();
                        for handle in handles {
                            let outcome = handle.await.unwrap_or_else(|error| panic!("{error}"));
                            black_box(outcome.unwrap_or_else(|error| panic!("{error}")));
                        }
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = bench_support::criterion()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = chain_length, context_size, concurrent_executions
}
criterion_main!(benches);

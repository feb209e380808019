//! A breaker-guarded no-op call against an unguarded one and against
//! failsafe-rs, on one thread and on two threads sharing one breaker.
//!
//! Run with `cargo bench -p chain-resilience --bench circuit_breaker`.

use std::hint::black_box;
use std::time::Duration;

use bench_support::{contended, run_now};
use chain_resilience::{CircuitBreaker, CircuitBreakerConfig};
use criterion::{Criterion, criterion_group, criterion_main};
use failsafe::{CircuitBreaker as _, Config, backoff, failure_policy};

fn no_op() -> Result<u64, ()> {
    Ok(black_box(1))
}

fn guarded_call(c: &mut Criterion) {
    let ours = CircuitBreaker::new("bench", CircuitBreakerConfig::default());
    let failsafe_default = Config::new().build();
    let failsafe_consecutive = Config::new()
        .failure_policy(failure_policy::consecutive_failures(
            5,
            backoff::constant(Duration::from_secs(60)),
        ))
        .build();

    for threads in [1, 2] {
        let mut group = c.benchmark_group(format!("guarded_no_op_{threads}_thread"));
        group.bench_function("unguarded", |b| {
            b.iter_custom(|iters| {
                contended(threads, iters, || {
                    let _ = black_box(no_op());
                })
            })
        });
        group.bench_function("chain_resilience_permit", |b| {
            b.iter_custom(|iters| {
                contended(threads, iters, || match ours.try_acquire() {
                    Ok(permit) => match black_box(no_op()) {
                        Ok(_) => permit.success(),
                        Err(()) => permit.ignore(),
                    },
                    Err(error) => drop(black_box(error)),
                })
            })
        });
        group.bench_function("chain_resilience_call", |b| {
            b.iter_custom(|iters| {
                contended(threads, iters, || {
                    let _ = black_box(run_now(ours.call(async { Ok(black_box(1_u64)) })));
                })
            })
        });
        group.bench_function("failsafe_default_policy", |b| {
            b.iter_custom(|iters| {
                contended(threads, iters, || {
                    let _ = black_box(failsafe_default.call(no_op));
                })
            })
        });
        group.bench_function("failsafe_consecutive_failures", |b| {
            b.iter_custom(|iters| {
                contended(threads, iters, || {
                    let _ = black_box(failsafe_consecutive.call(no_op));
                })
            })
        });
        group.finish();
    }
}

fn rejection(c: &mut Criterion) {
    let ours = CircuitBreaker::new("bench", CircuitBreakerConfig::default());
    ours.force_open();
    let mut group = c.benchmark_group("rejected_call");
    group.bench_function("chain_resilience", |b| {
        b.iter(|| black_box(ours.try_acquire().is_err()))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = bench_support::criterion();
    targets = guarded_call, rejection
}
criterion_main!(benches);

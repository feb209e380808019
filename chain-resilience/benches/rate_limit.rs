//! The rate limiter's admission check against governor's, and a full
//! pipeline around a ready call against the bare call.
//!
//! Run with `cargo bench -p chain-resilience --bench rate_limit`.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Duration;

use chain_resilience::{
    Backoff, CircuitBreaker, CircuitBreakerConfig, Pipeline, RateLimiter, Retry,
};
use criterion::{Criterion, criterion_group, criterion_main};
use governor::{Quota, RateLimiter as Governor};

fn admission_check(c: &mut Criterion) {
    let ours = RateLimiter::per_second("bench", u32::MAX).burst(1_000_000);
    let governor =
        Governor::direct(Quota::per_second(NonZeroU32::MAX).allow_burst(NonZeroU32::MAX));
    let keyed_ours = RateLimiter::per_second("bench", u32::MAX).burst(1_000_000);
    let keyed_governor =
        Governor::keyed(Quota::per_second(NonZeroU32::MAX).allow_burst(NonZeroU32::MAX));
    let key = String::from("user-42");

    let mut group = c.benchmark_group("rate_limiter_check");
    group.bench_function("chain_resilience", |b| {
        b.iter(|| black_box(ours.check().is_ok()))
    });
    group.bench_function("governor", |b| {
        b.iter(|| black_box(governor.check().is_ok()))
    });
    group.bench_function("chain_resilience_keyed", |b| {
        b.iter(|| black_box(keyed_ours.check_key(black_box(&key)).is_ok()))
    });
    group.bench_function("governor_keyed", |b| {
        b.iter(|| black_box(keyed_governor.check_key(black_box(&key)).is_ok()))
    });
    group.finish();
}

fn full_pipeline(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap_or_else(|error| panic!("runtime: {error}"));
    let pipeline = Pipeline::new()
        .rate_limiter(RateLimiter::per_second("bench", u32::MAX).burst(1_000_000))
        .total_timeout(Duration::from_secs(10))
        .retry(Retry::new(3).backoff(Backoff::Constant(Duration::from_millis(1))))
        .circuit_breaker(CircuitBreaker::new(
            "bench",
            CircuitBreakerConfig::default(),
        ))
        .attempt_timeout(Duration::from_secs(1));
    let mut group = c.benchmark_group("pipeline_ready_call");
    group.bench_function("bare", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(async { Ok::<_, chain_core::Error>(1_u64) }.await) })
    });
    group.bench_function("full_pipeline", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(pipeline.call(|| async { Ok(1_u64) }).await) })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = bench_support::criterion();
    targets = admission_check, full_pipeline
}
criterion_main!(benches);

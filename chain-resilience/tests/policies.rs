//! Retry, timeouts, bulkhead, fallback, rate limiter and the pipeline,
//! through their public API. Waits run on tokio's paused clock, so backoff
//! and timeouts are exact and instant.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chain_core::{Chain, Context, Error, ErrorKind, Step};
use chain_resilience::{
    Backoff, Bulkhead, CircuitBreaker, CircuitBreakerConfig, Elapsed, Fallback, Jitter, Pipeline,
    RateLimiter, Retry, RetryBudget, Throttled, Timeout, TimeoutScope,
};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// A dependency that fails its first `failures` calls with `error`.
fn flaky(
    failures: u32,
    error: fn() -> Error,
) -> (Arc<AtomicU32>, impl Fn() -> chain_core::Result<u32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    (calls, move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= failures { Err(error()) } else { Ok(n) }
    })
}

fn unavailable() -> Error {
    Error::unavailable("connection refused")
}

/// Exact waits, so the paused clock can check them.
fn constant(ms: u64) -> Retry {
    Retry::new(5)
        .backoff(Backoff::Constant(Duration::from_millis(ms)))
        .jitter(Jitter::None)
}

#[tokio::test(start_paused = true)]
async fn retry_recovers_from_transient_faults() {
    let (calls, dependency) = flaky(2, unavailable);
    let started = Instant::now();
    let value = constant(100).call(|| async { dependency() }).await.unwrap();
    assert_eq!((value, calls.load(Ordering::SeqCst)), (3, 3));
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(200),
        "two waits of 100 ms"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_stops_after_max_attempts_with_the_last_error() {
    let (calls, dependency) = flaky(u32::MAX, unavailable);
    let err = constant(1)
        .call(|| async { dependency() })
        .await
        .unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    assert_eq!(err.kind(), ErrorKind::Unavailable);
}

#[tokio::test(start_paused = true)]
async fn retry_never_retries_rejections_or_client_errors() {
    for error in [
        (|| Error::rejected("circuit open")) as fn() -> Error,
        || Error::validation("bad"),
        || Error::unauthorized("who"),
        || Error::forbidden("no"),
    ] {
        let (calls, dependency) = flaky(u32::MAX, error);
        assert!(constant(1).call(|| async { dependency() }).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn retry_respects_the_deadline() {
    let (calls, dependency) = flaky(u32::MAX, unavailable);
    let retry = Retry::new(100)
        .backoff(Backoff::Constant(Duration::from_secs(1)))
        .jitter(Jitter::None)
        .deadline(Duration::from_millis(2500));
    let started = Instant::now();
    assert!(retry.call(|| async { dependency() }).await.is_err());
    // Attempts at 0 s, 1 s and 2 s; a wait to 3 s would pass the deadline.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(started.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn exponential_backoff_waits_grow() {
    let (_, dependency) = flaky(3, unavailable);
    let retry = Retry::new(4)
        .backoff(Backoff::Exponential {
            initial: Duration::from_millis(10),
            multiplier: 3.0,
        })
        .jitter(Jitter::None);
    let started = Instant::now();
    retry.call(|| async { dependency() }).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(10 + 30 + 90));
}

#[tokio::test(start_paused = true)]
async fn the_budget_caps_retries_at_a_fraction_of_traffic() {
    let budget = RetryBudget::new(Duration::from_secs(10), 0.5, 0);
    let retry = Retry::new(3)
        .backoff(Backoff::Constant(Duration::ZERO))
        .budget(budget);
    let (calls, dependency) = flaky(u32::MAX, unavailable);
    for _ in 0..10 {
        assert!(retry.call(|| async { dependency() }).await.is_err());
    }
    // 10 calls, and retries limited to half of them: 5, not 20.
    assert_eq!(calls.load(Ordering::SeqCst), 15);
}

#[tokio::test(start_paused = true)]
async fn retry_as_middleware_reruns_the_link_on_its_input() {
    let (calls, dependency) = flaky(2, unavailable);
    let chain = Chain::new()
        .link_sync(|ctx: Context| Ok(ctx.with("prepared", true)))
        .step(
            Step::sync(move |ctx: Context| {
                assert!(
                    !ctx.contains_key("attempt_marker"),
                    "each attempt starts from the input"
                );
                let n = dependency()?;
                Ok(ctx.with("attempt_marker", n))
            })
            .around(constant(1)),
        );
    let out = chain.execute(Context::new()).await.unwrap();
    assert_eq!(out.get::<u32>("attempt_marker").unwrap(), Some(3));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

struct SignalOnDrop(Option<oneshot::Sender<()>>);

impl Drop for SignalOnDrop {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_timeout_cancels_the_future_and_names_its_limit() {
    let (tx, dropped) = oneshot::channel();
    let err = Timeout::attempt(Duration::from_millis(50))
        .call(async move {
            let _guard = SignalOnDrop(Some(tx));
            std::future::pending::<chain_core::Result<()>>().await
        })
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(
        err.downcast_source::<Elapsed>(),
        Some(&Elapsed {
            scope: TimeoutScope::Attempt,
            limit: Duration::from_millis(50)
        })
    );
    assert_eq!(err.to_string(), "timeout error: attempt timed out");
    dropped.await.expect("the timed-out future was dropped");
}

#[tokio::test(start_paused = true)]
async fn attempt_and_total_timeouts_in_a_pipeline() {
    let attempts = Arc::new(AtomicU32::new(0));
    let counter = attempts.clone();
    let pipeline = Pipeline::new()
        .total_timeout(Duration::from_millis(250))
        .attempt_timeout(Duration::from_millis(100))
        .retry(Retry::new(10).backoff(Backoff::Constant(Duration::ZERO)));
    let started = Instant::now();
    let err = pipeline
        .call(|| {
            counter.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<chain_core::Result<()>>()
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.downcast_source::<Elapsed>().unwrap().scope,
        TimeoutScope::Total
    );
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        3,
        "attempts at 0, 100 and 200 ms"
    );
    assert_eq!(started.elapsed(), Duration::from_millis(250));
}

#[tokio::test(start_paused = true)]
async fn the_bulkhead_caps_concurrency_and_bounds_its_queue() {
    let bulkhead = Bulkhead::new("reports", 2, 1, Duration::from_secs(5));
    let first = bulkhead.acquire().await.unwrap();
    let _second = bulkhead.acquire().await.unwrap();
    assert_eq!(bulkhead.in_flight(), 2);

    let waiter = {
        let bulkhead = bulkhead.clone();
        tokio::spawn(async move { bulkhead.call(async { Ok("ran") }).await })
    };
    tokio::task::yield_now().await;
    assert_eq!(bulkhead.queued(), 1);

    let full = bulkhead.acquire().await.unwrap_err();
    assert!(full.is_rejected());
    let throttled = full.downcast_source::<Throttled>().unwrap();
    assert_eq!(
        (throttled.policy, throttled.retry_after),
        ("bulkhead", Some(Duration::from_secs(5)))
    );

    drop(first);
    assert_eq!(waiter.await.unwrap().unwrap(), "ran");
    assert_eq!(bulkhead.queued(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_bulkhead_waiter_gives_up_after_max_wait() {
    let bulkhead = Bulkhead::new("reports", 1, 5, Duration::from_millis(300));
    let _busy = bulkhead.acquire().await.unwrap();
    let started = Instant::now();
    let err = bulkhead.acquire().await.unwrap_err();
    assert!(err.is_rejected());
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    assert_eq!(bulkhead.queued(), 0, "the queue place is given back");
}

async fn live_price(_ctx: Context) -> chain_core::Result<Context> {
    Err(Error::unavailable("pricing down"))
}

async fn cached_price(ctx: Context) -> chain_core::Result<Context> {
    Ok(ctx.with("price_source", "cache"))
}

#[tokio::test]
async fn fallback_replaces_matching_failures_only() {
    let chain = Chain::new().step(Step::new(live_price).around(Fallback::link(cached_price)));
    let out = chain
        .execute(Context::new().with("sku", "A1"))
        .await
        .unwrap();
    assert_eq!(
        out.get::<String>("price_source").unwrap().as_deref(),
        Some("cache")
    );
    assert_eq!(
        out.get::<String>("sku").unwrap().as_deref(),
        Some("A1"),
        "the fallback saw the link's input"
    );

    let invalid = Chain::new().step(
        Step::new(|_ctx: Context| async { Err::<Context, _>(Error::validation("bad sku")) })
            .around(Fallback::link(cached_price)),
    );
    assert!(
        invalid
            .execute(Context::new())
            .await
            .unwrap_err()
            .is_validation()
    );

    let fixed = Chain::new().step(
        Step::new(live_price).around(
            Fallback::value(Context::new().with("price", 0))
                .when(|e| e.kind() == ErrorKind::Unavailable),
        ),
    );
    assert_eq!(
        fixed
            .execute(Context::new())
            .await
            .unwrap()
            .get::<u32>("price")
            .unwrap(),
        Some(0)
    );
}

#[tokio::test]
async fn fallback_answers_while_the_circuit_is_open() {
    let breaker = CircuitBreaker::new(
        "pricing",
        CircuitBreakerConfig::consecutive_failures(2, Duration::from_secs(60)),
    );
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let chain = Chain::new().step(
        Step::new(move |_ctx: Context| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Err::<Context, _>(Error::unavailable("pricing down")) }
        })
        .around(Fallback::link(cached_price))
        .around(breaker.clone()),
    );
    for _ in 0..5 {
        let out = chain.execute(Context::new()).await.unwrap();
        assert_eq!(
            out.get::<String>("price_source").unwrap().as_deref(),
            Some("cache")
        );
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the open circuit spared the service"
    );
}

#[tokio::test]
async fn the_pipeline_applies_the_standard_order_whatever_the_builder_order() {
    let breaker = CircuitBreaker::new(
        "inventory",
        CircuitBreakerConfig::consecutive_failures(3, Duration::from_secs(30)),
    );
    let pipeline = Pipeline::new()
        .attempt_timeout(Duration::from_secs(1))
        .circuit_breaker(breaker.clone())
        .retry(constant(0))
        .total_timeout(Duration::from_secs(10))
        .bulkhead(Bulkhead::new("inventory", 4, 4, Duration::from_secs(1)))
        .rate_limiter(RateLimiter::per_second("inventory", 1000).burst(10));
    assert_eq!(
        pipeline.order(),
        [
            "rate_limiter",
            "bulkhead",
            "total_timeout",
            "retry",
            "circuit_breaker",
            "attempt_timeout"
        ]
    );

    let (calls, dependency) = flaky(u32::MAX, unavailable);
    let err = pipeline.call(|| async { dependency() }).await.unwrap_err();
    // The breaker sits inside the retry: three attempts reached the service,
    // then the open circuit's rejection ended the retries.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(err.is_rejected());
}

#[tokio::test]
async fn the_rate_limiter_rejects_before_any_attempt() {
    let pipeline = Pipeline::new()
        .rate_limiter(RateLimiter::new("api", 1, Duration::from_secs(3600)))
        .retry(constant(0));
    let (calls, dependency) = flaky(0, unavailable);
    assert!(pipeline.call(|| async { dependency() }).await.is_ok());
    let err = pipeline.call(|| async { dependency() }).await.unwrap_err();
    assert!(err.is_rejected());
    assert!(
        err.downcast_source::<Throttled>()
            .unwrap()
            .retry_after
            .unwrap()
            > Duration::from_secs(3500)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_keyed_rate_limiter_limits_each_user_separately() {
    // Three links behind a once-per-execution limiter spend one token per
    // request, not one per link.
    let chain = Chain::new()
        .around(RateLimiter::new("per_user", 1, Duration::from_secs(3600)).keyed_by("user_id"))
        .link_sync(Ok)
        .link_sync(Ok)
        .link_sync(Ok);
    assert!(
        chain
            .execute(Context::new().with("user_id", "alice"))
            .await
            .is_ok()
    );
    assert!(
        chain
            .execute(Context::new().with("user_id", 42))
            .await
            .is_ok()
    );
    assert!(
        chain
            .execute(Context::new().with("user_id", "alice"))
            .await
            .unwrap_err()
            .is_rejected()
    );
    let missing = chain.execute(Context::new()).await.unwrap_err();
    assert!(missing.is_validation());
    assert!(
        missing.to_string().contains("`user_id` is missing"),
        "{missing}"
    );
}

/// The budget's check and its withdrawal are one atomic step: 64 threads
/// racing for an allowance of one retry get exactly one, round after round.
#[test]
fn a_retry_budget_never_overshoots_under_contention() {
    let threads = 64;
    for round in 0..50 {
        // One call at a ratio of 1.0: an allowance of exactly one retry.
        let budget = RetryBudget::new(Duration::from_secs(10), 1.0, 0);
        budget.deposit();
        let start = std::sync::Arc::new(std::sync::Barrier::new(threads));
        let granted: usize = (0..threads)
            .map(|_| {
                let budget = budget.clone();
                let start = std::sync::Arc::clone(&start);
                std::thread::spawn(move || {
                    start.wait();
                    usize::from(budget.try_withdraw())
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|thread| thread.join().unwrap())
            .sum();
        assert_eq!(granted, 1, "round {round}: {granted} retries granted");
    }
}

/// `retry_if`: errors the predicate refuses end the call at once; the ones
/// it accepts are retried.
#[tokio::test(start_paused = true)]
async fn retry_if_retries_only_the_errors_it_accepts() {
    let retry = Retry::new(4)
        .backoff(Backoff::Constant(Duration::from_millis(1)))
        .retry_if(|error| error.kind() == ErrorKind::Unavailable);
    for (kind, expected_attempts) in [
        (ErrorKind::Unavailable, 4),
        (ErrorKind::Validation, 1),
        (ErrorKind::Timeout, 1),
    ] {
        let attempts = AtomicU32::new(0);
        let error = retry
            .call(|| async {
                attempts.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(Error::new(kind, "failed"))
            })
            .await
            .unwrap_err();
        assert_eq!(error.kind(), kind);
        assert_eq!(
            attempts.load(Ordering::SeqCst),
            expected_attempts,
            "{kind:?}"
        );
    }
}

/// Waiters for a full bulkhead get their slots in the order they came.
#[tokio::test(flavor = "current_thread")]
async fn bulkhead_waiters_are_served_first_come_first_served() {
    let bulkhead = Bulkhead::new("fifo", 1, 16, Duration::from_secs(60));
    let held = bulkhead.acquire().await.unwrap();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for n in 0..8 {
        let waiting = bulkhead.clone();
        let order = Arc::clone(&order);
        waiters.push(tokio::spawn(async move {
            let _slot = waiting.acquire().await.unwrap();
            order.lock().unwrap().push(n);
        }));
        // Each waiter is queued before the next one comes.
        while bulkhead.queued() < n + 1 {
            tokio::task::yield_now().await;
        }
    }
    drop(held);
    for waiter in waiters {
        waiter.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..8).collect::<Vec<_>>());
}

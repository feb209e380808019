//! Circuit breaker behaviour through its public API.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use chain_core::{Chain, Context, Error, ErrorKind};
use chain_resilience::{CircuitBreaker, CircuitBreakerConfig, CircuitOpen, SlidingWindow, State};

const LONG: Duration = Duration::from_secs(3600);

fn config(window: u32, threshold: f64) -> CircuitBreakerConfig {
    CircuitBreakerConfig::default()
        .window(SlidingWindow::Count(window))
        .minimum_calls(window)
        .failure_rate_threshold(threshold)
        .wait_in_open(LONG)
}

async fn fail(breaker: &CircuitBreaker) -> Error {
    breaker
        .call(async { Err::<(), _>(Error::unavailable("down")) })
        .await
        .unwrap_err()
}

async fn succeed(breaker: &CircuitBreaker) {
    breaker.call(async { Ok(()) }).await.unwrap();
}

#[tokio::test]
async fn opens_when_the_failure_rate_reaches_the_threshold() {
    let breaker = CircuitBreaker::new("svc", config(10, 50.0));
    for _ in 0..6 {
        succeed(&breaker).await;
    }
    for _ in 0..4 {
        fail(&breaker).await;
    }
    // 4 failures of 10: below 50%.
    assert_eq!(breaker.state(), State::Closed);
    let metrics = breaker.metrics();
    assert_eq!((metrics.calls, metrics.failures), (10, 4));
    assert_eq!(metrics.failure_rate, Some(40.0));
    // The 11th call pushes out a success: 5 of 10 failed.
    fail(&breaker).await;
    assert_eq!(breaker.state(), State::Open);
}

#[tokio::test]
async fn rates_wait_for_the_minimum_number_of_calls() {
    let breaker = CircuitBreaker::new("svc", config(10, 50.0).minimum_calls(5));
    for _ in 0..4 {
        fail(&breaker).await;
    }
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.metrics().failure_rate, None);
    fail(&breaker).await;
    assert_eq!(breaker.state(), State::Open);
}

#[tokio::test]
async fn an_open_breaker_rejects_without_running_the_call() {
    let breaker = CircuitBreaker::new(
        "inventory",
        config(2, 100.0).wait_in_open(Duration::from_secs(30)),
    );
    fail(&breaker).await;
    fail(&breaker).await;
    assert_eq!(breaker.state(), State::Open);

    let ran = AtomicUsize::new(0);
    let err = breaker
        .call(async {
            ran.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .await
        .unwrap_err();
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(err.kind(), ErrorKind::Rejected);
    assert_eq!(err.message(), "circuit open");
    let open = err.downcast_source::<CircuitOpen>().unwrap();
    assert_eq!(open.breaker(), "inventory");
    let remaining = open.remaining().unwrap();
    assert!(
        remaining <= Duration::from_secs(30) && remaining > Duration::from_secs(25),
        "{remaining:?}"
    );
    assert_eq!(breaker.metrics().rejected, 1);
}

#[tokio::test]
async fn half_open_admits_exactly_the_permitted_probes_then_closes() {
    let breaker = CircuitBreaker::new(
        "svc",
        config(2, 100.0)
            .wait_in_open(Duration::ZERO)
            .half_open_permits(3),
    );
    fail(&breaker).await;
    fail(&breaker).await;
    assert_eq!(breaker.state(), State::Open);

    let probes: Vec<_> = (0..3).map(|_| breaker.try_acquire().unwrap()).collect();
    assert_eq!(breaker.state(), State::HalfOpen);
    let extra = breaker.try_acquire().unwrap_err();
    assert_eq!(extra.kind(), ErrorKind::Rejected);
    assert_eq!(
        extra.downcast_source::<CircuitOpen>().unwrap().remaining(),
        None
    );

    for probe in probes {
        probe.success();
    }
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.metrics().calls, 0, "closing starts a fresh window");
}

#[tokio::test]
async fn failing_probes_reopen_with_backoff() {
    let breaker = CircuitBreaker::new(
        "svc",
        config(1, 100.0)
            .wait_in_open(Duration::from_millis(20))
            .open_backoff(100.0, Duration::from_secs(3600))
            .half_open_permits(1),
    );
    fail(&breaker).await;
    assert!(remaining(&breaker) <= Duration::from_millis(20));

    // Wait for the breaker to admit a probe (polling its state, bounded).
    let probe = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match breaker.try_acquire() {
                Ok(permit) => break permit,
                Err(_) => tokio::task::yield_now().await,
            }
        }
    })
    .await
    .expect("the open wait passes");
    assert_eq!(breaker.state(), State::HalfOpen);
    probe.failure(&Error::unavailable("still down"));

    assert_eq!(breaker.state(), State::Open);
    let backed_off = remaining(&breaker);
    assert!(
        backed_off > Duration::from_millis(1900) && backed_off <= Duration::from_secs(2),
        "the second wait is 100 x 20 ms: {backed_off:?}"
    );
}

fn remaining(breaker: &CircuitBreaker) -> Duration {
    breaker
        .try_acquire()
        .unwrap_err()
        .downcast_source::<CircuitOpen>()
        .unwrap()
        .remaining()
        .unwrap()
}

#[tokio::test]
async fn a_cancelled_probe_does_not_wedge_half_open() {
    let breaker = CircuitBreaker::new(
        "svc",
        config(1, 100.0)
            .wait_in_open(Duration::ZERO)
            .half_open_permits(1),
    );
    fail(&breaker).await;
    assert_eq!(breaker.state(), State::Open);

    // A probe that starts and is dropped before it finishes.
    {
        let mut probe = Box::pin(breaker.call(std::future::pending::<chain_core::Result<()>>()));
        poll_fn(|cx| {
            assert!(probe.as_mut().poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        assert_eq!(breaker.state(), State::HalfOpen);
        assert!(
            breaker.try_acquire().is_err(),
            "the only probe slot is taken"
        );
    }
    // The slot came back: a new probe is admitted and closes the circuit.
    succeed(&breaker).await;
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test]
async fn ignored_and_client_errors_do_not_count_as_failures() {
    let breaker = CircuitBreaker::new("svc", config(2, 100.0));
    for _ in 0..5 {
        let _ = breaker
            .call(async { Err::<(), _>(Error::validation("bad request")) })
            .await;
    }
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.metrics().failures, 0);

    let custom = CircuitBreaker::new(
        "svc",
        config(2, 100.0).record_failure_if(|error| error.kind() == ErrorKind::Timeout),
    );
    for _ in 0..3 {
        fail(&custom).await; // unavailable: not a failure for this predicate
    }
    assert_eq!(custom.state(), State::Closed);
    for _ in 0..2 {
        let _ = custom
            .call(async { Err::<(), _>(Error::timeout("slow")) })
            .await;
    }
    assert_eq!(custom.state(), State::Open);
}

#[tokio::test]
async fn slow_calls_open_the_circuit() {
    let breaker = CircuitBreaker::new("svc", config(3, 100.0).slow_calls(Duration::ZERO, 100.0));
    for _ in 0..3 {
        succeed(&breaker).await; // every call is at least zero long: all slow
    }
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(breaker.metrics().slow_calls, 3);
}

#[tokio::test]
async fn state_changes_are_published() {
    let breaker = CircuitBreaker::new(
        "svc",
        config(1, 100.0)
            .wait_in_open(Duration::ZERO)
            .half_open_permits(1),
    );
    let mut events = breaker.subscribe();
    fail(&breaker).await;
    succeed(&breaker).await;
    breaker.force_open();
    breaker.disable();
    breaker.reset();
    let mut seen = Vec::new();
    while let Ok(change) = events.try_recv() {
        assert_eq!(&*change.breaker, "svc");
        seen.push((change.from, change.to));
    }
    assert_eq!(
        seen,
        [
            (State::Closed, State::Open),
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Closed),
            (State::Closed, State::ForcedOpen),
            (State::ForcedOpen, State::Disabled),
            (State::Disabled, State::Closed),
        ]
    );
}

#[tokio::test]
async fn forced_open_rejects_and_disabled_records_nothing() {
    let breaker = CircuitBreaker::new("svc", config(1, 100.0));
    breaker.force_open();
    let err = breaker.call(async { Ok(()) }).await.unwrap_err();
    assert_eq!(
        err.downcast_source::<CircuitOpen>().unwrap().remaining(),
        None
    );

    breaker.disable();
    for _ in 0..5 {
        fail(&breaker).await;
    }
    assert_eq!(breaker.state(), State::Disabled);
    assert_eq!(breaker.metrics().calls, 0);

    breaker.reset();
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test]
async fn the_seed_policy_is_five_consecutive_failures() {
    let breaker = CircuitBreaker::new(
        "svc",
        CircuitBreakerConfig::consecutive_failures(5, Duration::from_secs(300)),
    );
    for _ in 0..4 {
        fail(&breaker).await;
    }
    succeed(&breaker).await; // a success breaks the run
    for _ in 0..4 {
        fail(&breaker).await;
    }
    assert_eq!(breaker.state(), State::Closed);
    fail(&breaker).await;
    assert_eq!(breaker.state(), State::Open);
    assert!(remaining(&breaker) > Duration::from_secs(299));
}

#[tokio::test]
async fn as_middleware_it_stops_calling_a_failing_link() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let breaker = CircuitBreaker::new("payments", config(3, 100.0));
    let chain = Chain::named("checkout")
        .around_each(breaker.clone())
        .link_sync(move |_ctx: Context| {
            counter.fetch_add(1, Ordering::SeqCst);
            Err(Error::unavailable("payment provider down"))
        });
    for _ in 0..10 {
        let _ = chain.execute(Context::new()).await;
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "the link is not called while the circuit is open"
    );
    let err = chain.execute(Context::new()).await.unwrap_err();
    assert!(err.is_rejected());
    assert_eq!(err.location().unwrap().chain(), "checkout");
    assert_eq!(chain.inspect().around_each, ["circuit_breaker(payments)"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_probes_never_exceed_the_permits() {
    for _ in 0..50 {
        let breaker = CircuitBreaker::new(
            "svc",
            config(1, 100.0)
                .wait_in_open(Duration::ZERO)
                .half_open_permits(4),
        );
        fail(&breaker).await;
        let admitted = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(tokio::sync::Barrier::new(16));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (breaker, admitted, barrier) =
                    (breaker.clone(), admitted.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    if let Ok(permit) = breaker.try_acquire() {
                        admitted.fetch_add(1, Ordering::SeqCst);
                        // Hold the permit until every task has tried.
                        barrier.wait().await;
                        permit.ignore();
                    } else {
                        barrier.wait().await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(admitted.load(Ordering::SeqCst), 4);
    }
}

/// `reset()` racing with calls that record: the window's counts never wrap
/// below zero (a failure counted out after the reset cleared it) and never
/// hold a phantom (a failure counted in after the reset cleared its slot).
/// Checked throughout by a sampler: `failures <= calls <= window size`, and
/// after the last reset the counts match the calls recorded since.
#[test]
fn reset_racing_with_records_keeps_the_window_consistent() {
    for window in [SlidingWindow::Count(8), SlidingWindow::Time(2)] {
        let breaker = CircuitBreaker::new(
            "race",
            CircuitBreakerConfig::default()
                .window(window)
                .minimum_calls(u32::MAX)
                .wait_in_open(LONG),
        );
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut threads = Vec::new();
        for worker in 0..3 {
            let breaker = breaker.clone();
            let stop = Arc::clone(&stop);
            threads.push(std::thread::spawn(move || {
                let mut i = 0_u64;
                while !stop.load(Ordering::Relaxed) {
                    // Opened by a window of failures: the resetter closes it.
                    let Ok(permit) = breaker.try_acquire() else {
                        continue;
                    };
                    if (i + worker).is_multiple_of(2) {
                        permit.failure(&Error::unavailable("down"));
                    } else {
                        permit.success();
                    }
                    i += 1;
                }
            }));
        }
        let resetter = {
            let breaker = breaker.clone();
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    breaker.reset();
                    std::thread::yield_now();
                }
            })
        };
        let started = std::time::Instant::now();
        let mut samples = 0;
        while started.elapsed() < Duration::from_millis(500) {
            let metrics = breaker.metrics();
            assert!(
                metrics.failures <= metrics.calls,
                "{} failures in {} calls",
                metrics.failures,
                metrics.calls
            );
            if let SlidingWindow::Count(size) = window {
                assert!(
                    metrics.calls <= size,
                    "{} calls in a window of {size}",
                    metrics.calls
                );
            }
            samples += 1;
        }
        stop.store(true, Ordering::Relaxed);
        for thread in threads {
            thread.join().unwrap();
        }
        resetter.join().unwrap();
        assert!(samples > 100);

        // Quiet now: a reset empties the window, and what follows counts
        // exactly.
        breaker.reset();
        let metrics = breaker.metrics();
        assert_eq!((metrics.calls, metrics.failures), (0, 0), "{window:?}");
        for _ in 0..3 {
            breaker
                .try_acquire()
                .unwrap()
                .failure(&Error::unavailable("down"));
        }
        breaker.try_acquire().unwrap().success();
        let metrics = breaker.metrics();
        assert_eq!((metrics.calls, metrics.failures), (4, 3), "{window:?}");
    }
}

/// A breaker on a time window counts the calls of the last seconds only:
/// failures spread wider than the window never open it; the same failures
/// inside the window do. On tokio's paused clock.
#[tokio::test(start_paused = true)]
async fn a_time_window_forgets_calls_older_than_the_window() {
    let breaker = CircuitBreaker::new(
        "timed",
        CircuitBreakerConfig::default()
            .window(SlidingWindow::Time(2))
            .minimum_calls(4)
            .failure_rate_threshold(50.0)
            .wait_in_open(LONG),
    );
    // One success and one failure every 3 seconds: a 2-second window never
    // holds four calls.
    for _ in 0..5 {
        succeed(&breaker).await;
        fail(&breaker).await;
        tokio::time::advance(Duration::from_secs(3)).await;
    }
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.metrics().calls, 0, "the window is empty again");

    // Four calls within the window, half of them failed: open.
    succeed(&breaker).await;
    fail(&breaker).await;
    tokio::time::advance(Duration::from_millis(500)).await;
    succeed(&breaker).await;
    fail(&breaker).await;
    assert_eq!(breaker.state(), State::Open);
}

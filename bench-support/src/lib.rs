//! Helpers shared by the workspace's criterion benchmarks (a dev-dependency
//! only; not published).

use std::future::Future;
use std::pin::pin;
use std::sync::Barrier;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::Criterion;

/// The workspace's criterion settings: a second of warm-up and three of
/// measurement, enough for nanosecond-scale figures to settle on this
/// noisy machine without making a full `cargo bench` take an hour.
pub fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

/// Polls a future that completes without waiting, once, with a no-op
/// waker: no async runtime in the measurement.
///
/// # Panics
///
/// If the future is not ready at once: a benchmark that waits measures
/// something else.
pub fn run_now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("benchmark futures never wait"),
    }
}

/// Runs `call` `iters` times on each of `threads` threads at once and
/// returns the wall time, i.e. the time per call as each thread sees it.
pub fn contended(threads: usize, iters: u64, call: impl Fn() + Sync) -> Duration {
    let barrier = Barrier::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        call();
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap_or_default())
            .max()
            .unwrap_or_default()
    })
}

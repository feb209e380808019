//! Per-upstream statistics over a sliding window of recent requests.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use chain_core::stats::Percentiles;
use serde::Serialize;

/// What the router saw of one upstream over a window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[non_exhaustive]
pub struct UpstreamStats {
    /// Requests answered or failed in the window.
    pub requests: u64,
    /// Answers with a 5xx status.
    pub server_errors: u64,
    /// Requests that got no answer (refused, reset, timed out).
    pub connection_errors: u64,
    /// `(server_errors + connection_errors) / requests`, 0 without requests.
    pub error_rate: f64,
    /// Mean time to the response head, in milliseconds.
    pub average_latency_ms: f64,
    /// Standard deviation of the latencies, in milliseconds (how far the
    /// average can be trusted: its standard error is this over √requests).
    pub latency_std_dev_ms: f64,
    /// Median, in milliseconds.
    pub p50_latency_ms: f64,
    /// 99th percentile, in milliseconds.
    pub p99_latency_ms: f64,
}

impl UpstreamStats {
    /// Statistics from their summary: `errors` of `requests` failed, and
    /// the latencies had this mean and standard deviation (percentiles are
    /// set to the mean). For judging a sample measured elsewhere, or a
    /// simulated one, with [`CanaryConfig::judge`](crate::canary::CanaryConfig::judge).
    pub fn from_summary(requests: u64, errors: u64, mean_ms: f64, std_dev_ms: f64) -> Self {
        let errors = errors.min(requests);
        UpstreamStats {
            requests,
            server_errors: errors,
            connection_errors: 0,
            error_rate: if requests == 0 {
                0.0
            } else {
                errors as f64 / requests as f64
            },
            average_latency_ms: mean_ms,
            latency_std_dev_ms: std_dev_ms,
            p50_latency_ms: mean_ms,
            p99_latency_ms: mean_ms,
        }
    }

    /// Failed requests: server errors and connection errors.
    pub fn errors(&self) -> u64 {
        self.server_errors + self.connection_errors
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Answered,
    ServerError,
    ConnectionError,
}

struct Sample {
    at: Instant,
    latency: Duration,
    outcome: Outcome,
}

/// Samples of the last `window`, in shards of at most `capacity` each:
/// every request records one, and event loops on different threads would
/// otherwise contend for one lock and one cache line.
pub(crate) struct Window {
    window: Duration,
    capacity: usize,
    shards: [Shard; SHARDS],
}

const SHARDS: usize = 8;

#[derive(Default)]
#[repr(align(128))]
struct Shard(Mutex<VecDeque<Sample>>);

/// This thread's shard: threads are spread over the shards round robin.
fn shard_index() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    INDEX.with(|index| *index)
}

impl Window {
    pub(crate) fn new(window: Duration, capacity: usize) -> Self {
        Window {
            window,
            capacity: capacity.max(1),
            shards: Default::default(),
        }
    }

    /// Records a request that ended `at` (the caller's clock reading, so a
    /// request costs one).
    pub(crate) fn record(&self, at: Instant, latency: Duration, outcome: Outcome) {
        let now = at;
        let mut samples = self.shards[shard_index()]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while samples.len() >= self.capacity
            || samples
                .front()
                .is_some_and(|oldest| now.duration_since(oldest.at) > self.window)
        {
            samples.pop_front();
        }
        samples.push_back(Sample {
            at: now,
            latency,
            outcome,
        });
    }

    /// Statistics of the samples younger than `over` (at most the window).
    pub(crate) fn stats(&self, over: Duration) -> UpstreamStats {
        let now = Instant::now();
        let mut latencies = Vec::new();
        let (mut server_errors, mut connection_errors) = (0, 0);
        for shard in &self.shards {
            let samples = shard.0.lock().unwrap_or_else(PoisonError::into_inner);
            for sample in samples
                .iter()
                .rev()
                .take_while(|sample| now.duration_since(sample.at) <= over)
            {
                match sample.outcome {
                    Outcome::Answered => {}
                    Outcome::ServerError => server_errors += 1,
                    Outcome::ConnectionError => connection_errors += 1,
                }
                latencies.push(sample.latency);
            }
        }
        let latencies = Percentiles::new(latencies);
        let requests = latencies.len() as u64;
        let millis = |latency: Option<Duration>| latency.map_or(0.0, |l| l.as_secs_f64() * 1e3);
        let mean_ms = millis(latencies.mean());
        let latency_std_dev_ms = latencies.std_dev_secs() * 1e3;
        UpstreamStats {
            requests,
            server_errors,
            connection_errors,
            error_rate: if requests == 0 {
                0.0
            } else {
                (server_errors + connection_errors) as f64 / requests as f64
            },
            average_latency_ms: mean_ms,
            latency_std_dev_ms,
            p50_latency_ms: millis(latencies.percentile(0.5)),
            p99_latency_ms: millis(latencies.percentile(0.99)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_percentiles_of_the_window() {
        let window = Window::new(Duration::from_secs(60), 1_000);
        for ms in 1..=100u64 {
            let outcome = match ms {
                1..=3 => Outcome::ServerError,
                4 => Outcome::ConnectionError,
                _ => Outcome::Answered,
            };
            window.record(Instant::now(), Duration::from_millis(ms), outcome);
        }
        let stats = window.stats(Duration::from_secs(60));
        assert_eq!(stats.requests, 100);
        assert_eq!((stats.server_errors, stats.connection_errors), (3, 1));
        assert!((stats.error_rate - 0.04).abs() < 1e-12);
        assert!((stats.p50_latency_ms - 50.0).abs() < 1e-9);
        assert!((stats.p99_latency_ms - 99.0).abs() < 1e-9);
        assert!((stats.average_latency_ms - 50.5).abs() < 1e-9);
        assert_eq!(window.stats(Duration::ZERO).requests, 0);
    }

    #[test]
    fn capacity_bounds_the_samples() {
        let window = Window::new(Duration::from_secs(60), 10);
        for _ in 0..25 {
            window.record(Instant::now(), Duration::from_millis(1), Outcome::Answered);
        }
        assert_eq!(window.stats(Duration::from_secs(60)).requests, 10);
    }

    #[test]
    fn shards_of_every_thread_are_counted() {
        let window = std::sync::Arc::new(Window::new(Duration::from_secs(60), 1_000));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let window = std::sync::Arc::clone(&window);
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        window.record(
                            Instant::now(),
                            Duration::from_millis(2),
                            Outcome::ServerError,
                        );
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let stats = window.stats(Duration::from_secs(60));
        assert_eq!((stats.requests, stats.server_errors), (100, 100));
    }
}

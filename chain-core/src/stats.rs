//! Latency statistics over a set of recent durations: the one percentile
//! computation the ModuLink crates share (chain summaries, the router's
//! upstream statistics, the orchestrator's service metrics and the resource
//! pool's execution statistics).
//!
//! ```
//! use std::time::Duration;
//! use chain_core::stats::{Percentiles, RecentDurations};
//!
//! let mut recent = RecentDurations::new(3);
//! for ms in [40, 10, 30, 20] {
//!     recent.push(Duration::from_millis(ms));
//! }
//! // Only the last three are kept.
//! let stats = recent.percentiles();
//! assert_eq!(stats.len(), 3);
//! assert_eq!(stats.min(), Some(Duration::from_millis(10)));
//! assert_eq!(stats.percentile(0.5), Some(Duration::from_millis(20)));
//! assert_eq!(stats.mean(), Some(Duration::from_millis(20)));
//! ```

use std::collections::VecDeque;
use std::time::Duration;

/// Sorted durations, for percentiles by the nearest-rank method: the
/// `p`-th percentile is the smallest duration with at least `p` of them at
/// or below it, so it is always one of the measured values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Percentiles {
    sorted: Vec<Duration>,
}

impl Percentiles {
    /// Sorts `durations`.
    pub fn new(durations: impl IntoIterator<Item = Duration>) -> Self {
        let mut sorted: Vec<Duration> = durations.into_iter().collect();
        sorted.sort_unstable();
        Self { sorted }
    }

    /// Number of durations.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The `p`-th percentile (`p` from 0 to 1, clamped), `None` without
    /// durations.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let n = self.sorted.len();
        if n == 0 {
            return None;
        }
        // Nearest rank: ceil(p × n), at least 1, in integers (p in parts
        // per million) so that 0.99 × 1000 is 990 and not 990.0000001.
        let ppm = (p.clamp(0.0, 1.0) * 1e6).round() as u64;
        let rank = usize::try_from((n as u64 * ppm).div_ceil(1_000_000)).unwrap_or(n);
        self.sorted.get(rank.clamp(1, n) - 1).copied()
    }

    /// The shortest.
    pub fn min(&self) -> Option<Duration> {
        self.sorted.first().copied()
    }

    /// The longest.
    pub fn max(&self) -> Option<Duration> {
        self.sorted.last().copied()
    }

    /// Their sum.
    pub fn total(&self) -> Duration {
        self.sorted.iter().sum()
    }

    /// The arithmetic mean.
    pub fn mean(&self) -> Option<Duration> {
        let n = u32::try_from(self.sorted.len()).ok().filter(|n| *n > 0)?;
        self.total().checked_div(n)
    }

    /// The sample standard deviation, in seconds; 0 with fewer than two.
    pub fn std_dev_secs(&self) -> f64 {
        let n = self.sorted.len();
        if n < 2 {
            return 0.0;
        }
        let mean = self.total().as_secs_f64() / n as f64;
        let squares: f64 = self
            .sorted
            .iter()
            .map(|d| (d.as_secs_f64() - mean).powi(2))
            .sum();
        (squares / (n - 1) as f64).sqrt()
    }
}

/// The last `capacity` durations recorded, oldest dropped first.
#[derive(Debug, Clone)]
pub struct RecentDurations {
    capacity: usize,
    ring: VecDeque<Duration>,
}

impl RecentDurations {
    /// Keeps at most `capacity` (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            ring: VecDeque::new(),
        }
    }

    /// Records one, dropping the oldest when full.
    pub fn push(&mut self, duration: Duration) {
        if self.ring.len() == self.capacity {
            self.ring.pop_front();
        }
        self.ring.push_back(duration);
    }

    /// Number kept.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Statistics of the durations kept.
    pub fn percentiles(&self) -> Percentiles {
        Percentiles::new(self.ring.iter().copied())
    }
}

/// The process's resident memory (RSS) in bytes, or `None` where it cannot
/// be read. The one reader the ModuLink crates share (the metrics' memory
/// gauge, the stream processors' memory monitor).
///
/// On Linux it is `VmRSS` of `/proc/self/status`: one short read, where
/// `/proc/self/smaps` (which some crates parse) costs a line per mapping.
/// Elsewhere it asks the operating system through the `memory-stats` crate.
///
/// ```
/// let rss = chain_core::stats::resident_memory_bytes();
/// # #[cfg(target_os = "linux")]
/// assert!(rss.is_some_and(|bytes| bytes > 1 << 20));
/// ```
#[cfg(target_os = "linux")]
pub fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kilobytes.checked_mul(1024)
}

/// The process's resident memory (RSS) in bytes; see the Linux version.
#[cfg(not(target_os = "linux"))]
pub fn resident_memory_bytes() -> Option<u64> {
    memory_stats::memory_stats().and_then(|usage| u64::try_from(usage.physical_mem).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reader other systems use (memory-stats) and /proc agree here,
    /// so the gauge means the same thing on every platform.
    #[test]
    #[cfg(target_os = "linux")]
    fn the_portable_reader_agrees_with_proc() {
        let ballast = vec![1_u8; 32 << 20];
        let proc = resident_memory_bytes().unwrap() as f64;
        let portable = memory_stats::memory_stats().unwrap().physical_mem as f64;
        assert!(ballast.iter().all(|&b| b == 1));
        assert!(proc > f64::from(32 << 20), "{proc}");
        assert!(
            (portable / proc - 1.0).abs() < 0.1,
            "/proc {proc}, memory-stats {portable}"
        );
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nearest_rank_percentiles() {
        let stats = Percentiles::new((1..=100).rev().map(ms));
        assert_eq!(stats.percentile(0.99), Some(ms(99)));
        assert_eq!(stats.percentile(0.5), Some(ms(50)));
        assert_eq!(stats.percentile(0.0), Some(ms(1)));
        assert_eq!(stats.percentile(1.0), Some(ms(100)));
        assert_eq!(stats.percentile(7.0), Some(ms(100)));
        let thousand = Percentiles::new((1..=1000).map(ms));
        assert_eq!(thousand.percentile(0.99), Some(ms(990)));
        assert_eq!(thousand.percentile(0.95), Some(ms(950)));
        let two = Percentiles::new([ms(10), ms(20)]);
        assert_eq!(two.percentile(0.99), Some(ms(20)));
        assert_eq!(two.percentile(0.5), Some(ms(10)));
        assert_eq!(Percentiles::default().percentile(0.5), None);
        assert_eq!(Percentiles::default().mean(), None);
    }

    #[test]
    fn mean_and_standard_deviation() {
        let stats = Percentiles::new([ms(2), ms(4), ms(4), ms(4), ms(5), ms(5), ms(7), ms(9)]);
        assert_eq!(stats.mean(), Some(ms(5)));
        // Sample standard deviation of 2,4,4,4,5,5,7,9 ms: sqrt(32/7) ms.
        assert!((stats.std_dev_secs() * 1e3 - (32.0f64 / 7.0).sqrt()).abs() < 1e-9);
        assert_eq!(Percentiles::new([ms(3)]).std_dev_secs(), 0.0);
    }
}

//! The process's resident memory, read at most once per interval.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Reads resident memory (Linux: `VmRSS` of `/proc/self/status`) and
/// caches it, so executions do not each read a file.
#[derive(Debug)]
pub(crate) struct Sampler {
    origin: Instant,
    interval: u64,
    /// Nanoseconds since `origin` of the last read, plus one (0: never).
    last_read: AtomicU64,
    last_value: AtomicI64,
}

impl Sampler {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            origin: Instant::now(),
            interval: u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX),
            last_read: AtomicU64::new(0),
            last_value: AtomicI64::new(-1),
        }
    }

    /// Resident bytes, fresh or cached; `None` where they cannot be read.
    pub(crate) fn sample(&self) -> Option<i64> {
        let now = u64::try_from(self.origin.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let last = self.last_read.load(Ordering::Acquire);
        let due = last == 0 || now.saturating_sub(last) >= self.interval;
        if due
            && self
                .last_read
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            && let Some(bytes) = resident_bytes()
        {
            self.last_value.store(bytes, Ordering::Release);
        }
        let value = self.last_value.load(Ordering::Acquire);
        (value >= 0).then_some(value)
    }
}

/// The process's resident memory in bytes (chain-core's shared reader).
pub(crate) fn resident_bytes() -> Option<i64> {
    chain_core::stats::resident_memory_bytes().and_then(|bytes| i64::try_from(bytes).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn reads_a_plausible_resident_size() {
        let bytes = resident_bytes().unwrap();
        assert!(bytes > 1 << 20 && bytes < 1 << 40, "{bytes}");
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn caches_between_intervals() {
        let sampler = Sampler::new(Duration::from_secs(3600));
        let first = sampler.sample().unwrap();
        let _ballast = vec![1_u8; 64 << 20];
        assert_eq!(
            sampler.sample(),
            Some(first),
            "no second read within the interval"
        );
    }
}

//! The sliding windows that failure and slow-call rates are computed over,
//! lock-free: recording a call is a few relaxed atomic operations.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use super::config::SlidingWindow;

/// How one call ended, as the window records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success = 1,
    Failure = 2,
    SlowSuccess = 3,
    SlowFailure = 4,
}

impl Outcome {
    pub(crate) fn new(failed: bool, slow: bool) -> Self {
        match (failed, slow) {
            (false, false) => Self::Success,
            (true, false) => Self::Failure,
            (false, true) => Self::SlowSuccess,
            (true, true) => Self::SlowFailure,
        }
    }

    pub(crate) fn is_failure(self) -> bool {
        matches!(self, Self::Failure | Self::SlowFailure)
    }

    pub(crate) fn is_slow(self) -> bool {
        matches!(self, Self::SlowSuccess | Self::SlowFailure)
    }

    /// Whether this outcome could push a rate over its threshold.
    pub(crate) fn is_bad(self) -> bool {
        self != Self::Success
    }

    fn from_slot(slot: u8) -> Option<Self> {
        match slot {
            1 => Some(Self::Success),
            2 => Some(Self::Failure),
            3 => Some(Self::SlowSuccess),
            4 => Some(Self::SlowFailure),
            _ => None,
        }
    }
}

/// Call counts over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Counts {
    pub(crate) calls: u32,
    pub(crate) failures: u32,
    pub(crate) slow: u32,
}

pub(crate) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    pub(crate) fn new(window: SlidingWindow) -> Self {
        match window {
            SlidingWindow::Count(size) => Self::Count(CountWindow::new(size)),
            SlidingWindow::Time(seconds) => Self::Time(TimeWindow::new(seconds)),
        }
    }

    /// Records a call that ended at `second` (used by time windows only).
    pub(crate) fn record(&self, outcome: Outcome, second: u64) {
        match self {
            Self::Count(window) => window.record(outcome),
            Self::Time(window) => window.record(outcome, second),
        }
    }

    pub(crate) fn counts(&self, second: u64) -> Counts {
        match self {
            Self::Count(window) => window.counts(),
            Self::Time(window) => window.counts(second),
        }
    }

    pub(crate) fn reset(&self) {
        match self {
            Self::Count(window) => window.reset(),
            Self::Time(window) => window.reset(),
        }
    }

    /// Whether recording a success would change nothing: a full count
    /// window holding only successes.
    pub(crate) fn absorbs_success(&self) -> bool {
        match self {
            Self::Count(window) => window.is_full_of_successes(),
            Self::Time(_) => false,
        }
    }

    pub(crate) fn needs_clock(&self) -> bool {
        matches!(self, Self::Time(_))
    }
}

/// The last N calls in a ring of one-byte slots, with running counts so a
/// snapshot is three loads.
pub(crate) struct CountWindow {
    slots: Box<[AtomicU8]>,
    cursor: AtomicU64,
    calls: AtomicU32,
    failures: AtomicU32,
    slow: AtomicU32,
}

impl CountWindow {
    fn new(size: u32) -> Self {
        Self {
            slots: (0..size.max(1)).map(|_| AtomicU8::new(0)).collect(),
            cursor: AtomicU64::new(0),
            calls: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            slow: AtomicU32::new(0),
        }
    }

    /// A full window of successes stays one when a success replaces a
    /// success, whichever slot it lands in: such a record can be skipped, so
    /// a healthy breaker costs a few uncontended loads per call.
    fn is_full_of_successes(&self) -> bool {
        self.failures.load(Ordering::Relaxed) == 0
            && self.slow.load(Ordering::Relaxed) == 0
            && self.calls.load(Ordering::Relaxed) as usize == self.slots.len()
    }

    fn record(&self, outcome: Outcome) {
        if outcome == Outcome::Success && self.is_full_of_successes() {
            return;
        }
        let index =
            (self.cursor.fetch_add(1, Ordering::Relaxed) % self.slots.len() as u64) as usize;
        let previous = Outcome::from_slot(self.slots[index].swap(outcome as u8, Ordering::Relaxed));
        if previous == Some(outcome) {
            return;
        }
        match previous {
            None => {
                self.calls.fetch_add(1, Ordering::Relaxed);
            }
            Some(previous) => {
                adjust(&self.failures, previous.is_failure(), false);
                adjust(&self.slow, previous.is_slow(), false);
            }
        }
        adjust(&self.failures, false, outcome.is_failure());
        adjust(&self.slow, false, outcome.is_slow());
    }

    fn counts(&self) -> Counts {
        Counts {
            calls: self.calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            slow: self.slow.load(Ordering::Relaxed),
        }
    }

    fn reset(&self) {
        for slot in &*self.slots {
            slot.store(0, Ordering::Relaxed);
        }
        self.calls.store(0, Ordering::Relaxed);
        self.failures.store(0, Ordering::Relaxed);
        self.slow.store(0, Ordering::Relaxed);
    }
}

/// Moves `counter` by one when a flag goes from `was` to `is`.
fn adjust(counter: &AtomicU32, was: bool, is: bool) {
    match (was, is) {
        (false, true) => {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        (true, false) => {
            counter.fetch_sub(1, Ordering::Relaxed);
        }
        _ => {}
    }
}

/// The calls of the last N seconds, one bucket per second. A bucket is
/// claimed for a new second by whoever records first in it; a call racing
/// that reset may be lost, which only makes the rates slightly approximate.
pub(crate) struct TimeWindow {
    buckets: Box<[Bucket]>,
}

struct Bucket {
    second: AtomicU64,
    calls: AtomicU32,
    failures: AtomicU32,
    slow: AtomicU32,
}

/// A bucket's `second` before it was ever used.
const UNUSED: u64 = u64::MAX;

impl TimeWindow {
    fn new(seconds: u32) -> Self {
        Self {
            buckets: (0..seconds.max(1))
                .map(|_| Bucket {
                    second: AtomicU64::new(UNUSED),
                    calls: AtomicU32::new(0),
                    failures: AtomicU32::new(0),
                    slow: AtomicU32::new(0),
                })
                .collect(),
        }
    }

    fn bucket(&self, second: u64) -> &Bucket {
        &self.buckets[(second % self.buckets.len() as u64) as usize]
    }

    fn record(&self, outcome: Outcome, second: u64) {
        let bucket = self.bucket(second);
        if crate::seconds::claim(&bucket.second, second) {
            bucket.calls.store(0, Ordering::Relaxed);
            bucket.failures.store(0, Ordering::Relaxed);
            bucket.slow.store(0, Ordering::Relaxed);
        }
        bucket.calls.fetch_add(1, Ordering::Relaxed);
        if outcome.is_failure() {
            bucket.failures.fetch_add(1, Ordering::Relaxed);
        }
        if outcome.is_slow() {
            bucket.slow.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn counts(&self, now: u64) -> Counts {
        let oldest = now.saturating_sub(self.buckets.len() as u64 - 1);
        self.buckets
            .iter()
            .filter(|bucket| {
                let second = bucket.second.load(Ordering::Acquire);
                second != UNUSED && (oldest..=now).contains(&second)
            })
            .fold(Counts::default(), |counts, bucket| Counts {
                calls: counts.calls + bucket.calls.load(Ordering::Relaxed),
                failures: counts.failures + bucket.failures.load(Ordering::Relaxed),
                slow: counts.slow + bucket.slow.load(Ordering::Relaxed),
            })
    }

    fn reset(&self) {
        for bucket in &*self.buckets {
            bucket.second.store(UNUSED, Ordering::Release);
            bucket.calls.store(0, Ordering::Relaxed);
            bucket.failures.store(0, Ordering::Relaxed);
            bucket.slow.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_window_keeps_the_last_n_calls() {
        let window = Window::new(SlidingWindow::Count(3));
        window.record(Outcome::Failure, 0);
        window.record(Outcome::Failure, 0);
        assert_eq!(
            window.counts(0),
            Counts {
                calls: 2,
                failures: 2,
                slow: 0
            }
        );
        window.record(Outcome::SlowSuccess, 0);
        window.record(Outcome::Success, 0); // pushes out the first failure
        assert_eq!(
            window.counts(0),
            Counts {
                calls: 3,
                failures: 1,
                slow: 1
            }
        );
        window.record(Outcome::Success, 0);
        window.record(Outcome::Success, 0);
        assert_eq!(
            window.counts(0),
            Counts {
                calls: 3,
                failures: 0,
                slow: 0
            }
        );
        window.reset();
        assert_eq!(window.counts(0), Counts::default());
    }

    #[test]
    fn time_window_forgets_seconds_that_left_it() {
        let window = Window::new(SlidingWindow::Time(3));
        window.record(Outcome::Failure, 10);
        window.record(Outcome::SlowFailure, 11);
        window.record(Outcome::Success, 12);
        assert_eq!(
            window.counts(12),
            Counts {
                calls: 3,
                failures: 2,
                slow: 1
            }
        );
        assert_eq!(
            window.counts(13),
            Counts {
                calls: 2,
                failures: 1,
                slow: 1
            }
        );
        window.record(Outcome::Success, 13); // reuses the bucket of second 10
        assert_eq!(
            window.counts(13),
            Counts {
                calls: 3,
                failures: 1,
                slow: 1
            }
        );
        assert_eq!(window.counts(20), Counts::default());
    }
}

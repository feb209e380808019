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

pub(crate) struct Window {
    kind: Kind,
    gate: Gate,
}

enum Kind {
    Count(CountWindow),
    Time(TimeWindow),
}

/// Lets records run together but never alongside a reset. A record spans
/// several atomic steps (a slot swapped, then counters moved by what it
/// held); a reset landing between them would let the record take a failure
/// out of a counter the reset had zeroed (wrapping it to `u32::MAX`) or add
/// one whose slot the reset had cleared (a phantom failure).
///
/// Records only pay for it on the path that writes (a healthy breaker's
/// absorbed successes never get here); a record arriving during a reset is
/// dropped, as if it had ended just before the reset; a reset waits for the
/// records in flight, which never wait on anything.
struct Gate {
    /// Records in flight, and [`RESETTING`] while a reset runs.
    state: AtomicU32,
}

const RESETTING: u32 = 1 << 31;

impl Gate {
    fn enter(&self) -> bool {
        if self.state.fetch_add(1, Ordering::Acquire) & RESETTING != 0 {
            self.state.fetch_sub(1, Ordering::Release);
            return false;
        }
        true
    }

    fn leave(&self) {
        self.state.fetch_sub(1, Ordering::Release);
    }

    fn exclusive(&self, clear: impl FnOnce()) {
        // One reset at a time.
        let mut spins = 0_u32;
        while self.state.fetch_or(RESETTING, Ordering::Acquire) & RESETTING != 0 {
            backoff(&mut spins);
        }
        // Then the records in flight finish.
        while self.state.load(Ordering::Acquire) & !RESETTING != 0 {
            backoff(&mut spins);
        }
        clear();
        self.state.fetch_and(!RESETTING, Ordering::Release);
    }
}

fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

impl Window {
    pub(crate) fn new(window: SlidingWindow) -> Self {
        let kind = match window {
            SlidingWindow::Count(size) => Kind::Count(CountWindow::new(size)),
            SlidingWindow::Time(seconds) => Kind::Time(TimeWindow::new(seconds)),
        };
        Self {
            kind,
            gate: Gate {
                state: AtomicU32::new(0),
            },
        }
    }

    /// Records a call that ended at `second` (used by time windows only).
    pub(crate) fn record(&self, outcome: Outcome, second: u64) {
        if !self.gate.enter() {
            return;
        }
        match &self.kind {
            Kind::Count(window) => window.record(outcome),
            Kind::Time(window) => window.record(outcome, second),
        }
        self.gate.leave();
    }

    /// The counts, never torn by a reset (a reader waits for one to end),
    /// and never more failures or slow calls than calls.
    pub(crate) fn counts(&self, second: u64) -> Counts {
        let mut spins = 0;
        while !self.gate.enter() {
            backoff(&mut spins);
        }
        let counts = match &self.kind {
            Kind::Count(window) => window.counts(),
            Kind::Time(window) => window.counts(second),
        };
        self.gate.leave();
        // Records move their counters one after another (and a time
        // bucket's first record may zero it under another's increment),
        // so a reader can catch a failure counted before its call.
        Counts {
            failures: counts.failures.min(counts.calls),
            slow: counts.slow.min(counts.calls),
            ..counts
        }
    }

    pub(crate) fn reset(&self) {
        self.gate.exclusive(|| match &self.kind {
            Kind::Count(window) => window.reset(),
            Kind::Time(window) => window.reset(),
        });
    }

    /// Whether recording a success would change nothing: a full count
    /// window holding only successes.
    pub(crate) fn absorbs_success(&self) -> bool {
        match &self.kind {
            Kind::Count(window) => window.is_full_of_successes(),
            Kind::Time(_) => false,
        }
    }

    pub(crate) fn needs_clock(&self) -> bool {
        matches!(self.kind, Kind::Time(_))
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
        // Failures and slow calls first: a record counts its call before
        // them, so these loads never see more of them than calls.
        let failures = self.failures.load(Ordering::Acquire);
        let slow = self.slow.load(Ordering::Acquire);
        Counts {
            calls: self.calls.load(Ordering::Acquire),
            failures,
            slow,
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

    /// After records and resets race, the count window's running counters
    /// are exactly what its slots hold: no counter wrapped below zero, no
    /// phantom failure whose slot a reset cleared.
    #[test]
    fn counters_match_the_slots_after_records_race_resets() {
        let window = std::sync::Arc::new(Window::new(SlidingWindow::Count(4)));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut threads = Vec::new();
        for worker in 0..3_u64 {
            let window = std::sync::Arc::clone(&window);
            let stop = std::sync::Arc::clone(&stop);
            threads.push(std::thread::spawn(move || {
                let mut i = worker;
                while !stop.load(Ordering::Relaxed) {
                    let outcome = [Outcome::Failure, Outcome::Success, Outcome::SlowFailure]
                        [(i % 3) as usize];
                    window.record(outcome, 0);
                    i += 1;
                }
            }));
        }
        for _ in 0..20_000 {
            window.reset();
        }
        stop.store(true, Ordering::Relaxed);
        for thread in threads {
            thread.join().unwrap();
        }
        let Kind::Count(count) = &window.kind else {
            unreachable!()
        };
        let held: Vec<Outcome> = count
            .slots
            .iter()
            .filter_map(|slot| Outcome::from_slot(slot.load(Ordering::Relaxed)))
            .collect();
        let raw = (
            count.calls.load(Ordering::Relaxed),
            count.failures.load(Ordering::Relaxed),
            count.slow.load(Ordering::Relaxed),
        );
        let expected = (
            held.len() as u32,
            held.iter().filter(|o| o.is_failure()).count() as u32,
            held.iter().filter(|o| o.is_slow()).count() as u32,
        );
        assert_eq!(
            raw, expected,
            "counters (calls, failures, slow) against the slots"
        );
    }

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

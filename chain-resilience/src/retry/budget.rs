use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Limits retries to a fraction of recent traffic, so that retries cannot
/// multiply the load on a dependency that is already failing.
///
/// Over the last `window` (counted in whole seconds), retries may number at
/// most `ratio` times the calls made, plus `min_per_second` for each second
/// of the window so that low traffic can still retry. Clones share the
/// budget.
///
/// ```
/// use std::time::Duration;
/// use chain_resilience::RetryBudget;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// // At most one retry per five calls over ten seconds, and none beyond.
/// let budget = RetryBudget::new(Duration::from_secs(10), 0.2, 0);
/// for _ in 0..10 {
///     budget.deposit();
/// }
/// assert!(budget.try_withdraw());
/// assert!(budget.try_withdraw());
/// assert!(!budget.try_withdraw());
/// # }
/// ```
#[derive(Clone)]
pub struct RetryBudget {
    inner: Arc<Inner>,
}

struct Inner {
    ratio: f64,
    min_per_second: u32,
    origin: Instant,
    buckets: Box<[Bucket]>,
}

struct Bucket {
    second: AtomicU64,
    calls: AtomicU32,
    retries: AtomicU32,
}

impl RetryBudget {
    /// A budget over `window` (at least one second).
    pub fn new(window: Duration, ratio: f64, min_per_second: u32) -> Self {
        let seconds = window.as_secs().clamp(1, 3600);
        Self {
            inner: Arc::new(Inner {
                ratio: if ratio.is_finite() {
                    ratio.max(0.0)
                } else {
                    0.0
                },
                min_per_second,
                origin: Instant::now(),
                buckets: (0..seconds)
                    .map(|_| Bucket {
                        second: AtomicU64::new(u64::MAX),
                        calls: AtomicU32::new(0),
                        retries: AtomicU32::new(0),
                    })
                    .collect(),
            }),
        }
    }

    /// Records a call (a first attempt).
    pub fn deposit(&self) {
        self.inner.current().calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one retry from the budget if any is left.
    ///
    /// The check and the withdrawal are one atomic step: retries are only
    /// ever added to the current second's bucket, so the retry is taken by
    /// a compare-and-swap on that bucket's count against the limit computed
    /// with it; concurrent callers cannot all pass the check before any of
    /// them counts.
    pub fn try_withdraw(&self) -> bool {
        let inner = &self.inner;
        let now = inner.now();
        let bucket = inner.bucket(now);
        let window = inner.buckets.len() as f64;
        loop {
            let current = bucket.retries.load(Ordering::Acquire);
            let (calls, others) = inner.totals_besides(now, Some(bucket));
            let allowed = f64::from(calls.saturating_add(bucket.calls.load(Ordering::Relaxed)))
                * inner.ratio
                + f64::from(inner.min_per_second) * window;
            if f64::from(others) + f64::from(current) + 1.0 > allowed {
                return false;
            }
            if bucket
                .retries
                .compare_exchange(current, current + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return true;
            }
        }
    }
}

impl Inner {
    fn now(&self) -> u64 {
        self.origin.elapsed().as_secs()
    }

    fn current(&self) -> &Bucket {
        self.bucket(self.now())
    }

    /// The bucket of `second`, claimed and cleared if it held an older one.
    fn bucket(&self, second: u64) -> &Bucket {
        let bucket = &self.buckets[(second % self.buckets.len() as u64) as usize];
        if crate::seconds::claim(&bucket.second, second) {
            bucket.calls.store(0, Ordering::Relaxed);
            bucket.retries.store(0, Ordering::Relaxed);
        }
        bucket
    }

    /// Calls and retries in the window's buckets, leaving out `skip`.
    fn totals_besides(&self, now: u64, skip: Option<&Bucket>) -> (u32, u32) {
        let oldest = now.saturating_sub(self.buckets.len() as u64 - 1);
        self.buckets
            .iter()
            .filter(|bucket| skip.is_none_or(|skip| !std::ptr::eq(*bucket, skip)))
            .filter(|bucket| (oldest..=now).contains(&bucket.second.load(Ordering::Acquire)))
            .fold((0_u32, 0_u32), |(calls, retries), bucket| {
                (
                    calls.saturating_add(bucket.calls.load(Ordering::Relaxed)),
                    retries.saturating_add(bucket.retries.load(Ordering::Relaxed)),
                )
            })
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (calls, retries) = self.inner.totals_besides(self.inner.now(), None);
        f.debug_struct("RetryBudget")
            .field("ratio", &self.inner.ratio)
            .field("min_per_second", &self.inner.min_per_second)
            .field("window_seconds", &self.inner.buckets.len())
            .field("calls", &calls)
            .field("retries", &retries)
            .finish()
    }
}

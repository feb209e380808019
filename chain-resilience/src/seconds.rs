//! Per-second buckets shared by time-based windows.

use std::sync::atomic::{AtomicU64, Ordering};

/// Moves a bucket's `slot` to `second` if it holds an older one. Returns
/// whether this call moved it, in which case the caller clears the bucket's
/// counts; of racing callers, exactly one gets `true`.
pub(crate) fn claim(slot: &AtomicU64, second: u64) -> bool {
    let seen = slot.load(Ordering::Acquire);
    seen != second
        && slot
            .compare_exchange(seen, second, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
}

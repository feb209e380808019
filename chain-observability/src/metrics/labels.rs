//! The label cardinality guard.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

/// The label value that every value beyond the limit is folded into.
pub const OTHER: &str = "other";

/// Admits at most `limit` distinct values for one label; later new values
/// become [`OTHER`]. Keeps a runaway label (a user id used as a chain name,
/// say) from blowing up Prometheus's memory.
#[derive(Debug)]
pub(crate) struct LabelGuard {
    limit: usize,
    seen: Mutex<HashSet<String>>,
}

impl LabelGuard {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            seen: Mutex::new(HashSet::new()),
        }
    }

    /// The value to use for `value`: itself while the limit allows.
    pub(crate) fn admit(&self, value: &str) -> String {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.contains(value) {
            return value.to_owned();
        }
        if seen.len() < self.limit {
            seen.insert(value.to_owned());
            return value.to_owned();
        }
        OTHER.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_beyond_the_limit_fold_into_other() {
        let guard = LabelGuard::new(2);
        assert_eq!(guard.admit("checkout"), "checkout");
        assert_eq!(guard.admit("signup"), "signup");
        assert_eq!(guard.admit("user-4711"), OTHER);
        assert_eq!(guard.admit("checkout"), "checkout", "known values stay");
    }
}

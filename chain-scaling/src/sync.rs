//! Small synchronization helpers shared by the crate's modules.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, going on if a panic elsewhere poisoned it: every critical
/// section in this crate is a push, a pop, a swap or a few assignments, so
/// nothing is left half-done.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

//! Deliveries whose handler failed for the last time, kept with the error.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use chain_core::Error;

use super::Event;
use crate::sync::lock;

/// An event a subscription could not handle, with the last error.
#[derive(Debug)]
pub struct DeadLetter {
    /// The event.
    pub event: Arc<Event>,
    /// The subscription that failed it.
    pub subscription: String,
    /// How many deliveries were made.
    pub deliveries: u32,
    /// The last delivery's error.
    pub error: Error,
}

/// The in-process dead-letter queue. Unbounded on purpose: dropping a dead
/// letter would lose the event, so the queue keeps every one until
/// [`drain`](Self::drain)ed (watch [`len`](Self::len) in a health check).
#[derive(Default)]
pub struct DeadLetterQueue {
    letters: Mutex<Vec<DeadLetter>>,
}

impl DeadLetterQueue {
    pub(crate) fn push(&self, letter: DeadLetter) {
        tracing::warn!(
            event_id = %letter.event.id,
            event_type = %letter.event.event_type,
            subscription = %letter.subscription,
            deliveries = letter.deliveries,
            error = %letter.error,
            "event dead-lettered"
        );
        self.lock().push(letter);
    }

    /// How many dead letters are waiting.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none are waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes every waiting dead letter, oldest first.
    pub fn drain(&self) -> Vec<DeadLetter> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, Vec<DeadLetter>> {
        lock(&self.letters)
    }
}

impl fmt::Debug for DeadLetterQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetterQueue")
            .field("len", &self.len())
            .finish()
    }
}

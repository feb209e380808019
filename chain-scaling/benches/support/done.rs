//! Counts handled events and wakes the benchmark when it has seen enough,
//! with one wake-up per wait rather than one per event.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

#[derive(Default)]
pub(crate) struct Done {
    handled: AtomicU64,
    target: AtomicU64,
    notify: Notify,
}

impl Done {
    pub(crate) fn record(&self) {
        let handled = self.handled.fetch_add(1, Ordering::AcqRel) + 1;
        if handled == self.target.load(Ordering::Acquire) {
            self.notify.notify_one();
        }
    }

    /// Waits until `target` events in all were handled.
    pub(crate) async fn wait_for(&self, target: u64) {
        self.target.store(target, Ordering::Release);
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.handled.load(Ordering::Acquire) >= target {
                return;
            }
            notified.await;
        }
    }
}

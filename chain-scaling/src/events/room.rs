//! The in-process queue's capacity: slots taken by publishers and given
//! back when an event's last delivery ends. Lock-free while there is room;
//! publishers wait on a `Notify` only when the queue is full.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;

use super::EventBusError;

#[derive(Debug)]
pub(crate) struct Room {
    used: AtomicUsize,
    capacity: usize,
    /// Publishers waiting for a slot; `release` wakes one only when some
    /// wait, so a steady flow never touches the `Notify`.
    waiting: AtomicUsize,
    freed: Notify,
    closed: AtomicBool,
}

impl Room {
    pub(crate) fn new(capacity: usize) -> Self {
        Room {
            used: AtomicUsize::new(0),
            capacity,
            waiting: AtomicUsize::new(0),
            freed: Notify::new(),
            closed: AtomicBool::new(false),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn try_take(&self) -> Result<(), EventBusError> {
        if self.is_closed() {
            return Err(EventBusError::Closed);
        }
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            if used >= self.capacity {
                return Err(EventBusError::Full {
                    capacity: self.capacity,
                });
            }
            match self.used.compare_exchange_weak(
                used,
                used + 1,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(current) => used = current,
            }
        }
    }

    /// Takes a slot, waiting while the queue is full.
    pub(crate) async fn take(&self) -> Result<(), EventBusError> {
        loop {
            match self.try_take() {
                Err(EventBusError::Full { .. }) => {}
                taken => return taken,
            }
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            // Counted as waiting before the last look, and `release` frees
            // before it reads the count: a slot freed in between is either
            // seen here or announced to us.
            self.waiting.fetch_add(1, Ordering::SeqCst);
            let retry = self.try_take();
            if !matches!(retry, Err(EventBusError::Full { .. })) {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                return retry;
            }
            freed.await;
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        }
    }

    pub(crate) fn release(&self) {
        self.used.fetch_sub(1, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.freed.notify_one();
        }
    }

    /// Whether [`close`](Self::close) was called: the bus's one closed flag.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Refuses new slots and wakes every waiting publisher to say so.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_given_back() {
        let room = Room::new(2);
        room.try_take().unwrap();
        room.try_take().unwrap();
        assert!(matches!(
            room.try_take(),
            Err(EventBusError::Full { capacity: 2 })
        ));
        room.release();
        room.try_take().unwrap();
        room.close();
        room.release();
        assert!(matches!(room.try_take(), Err(EventBusError::Closed)));
    }
}

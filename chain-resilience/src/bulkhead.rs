//! [`Bulkhead`]: a cap on concurrent calls, with a bounded wait queue.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chain_core::{BoxFuture, Error, Middleware, Next, Result};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::Throttled;

/// Lets at most `max_concurrent` calls run at once. Further calls wait in a
/// first-come, first-served queue of at most `max_queued`, each for at most
/// `max_wait`; beyond that they are rejected at once with a
/// [`Rejected`](chain_core::ErrorKind::Rejected) error whose source is a
/// [`Throttled`] carrying `max_wait` as the retry-after hint.
///
/// ```
/// use std::time::Duration;
/// use chain_resilience::Bulkhead;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let bulkhead = Bulkhead::new("reports", 1, 0, Duration::from_millis(10));
/// let busy = bulkhead.acquire().await.unwrap();
/// assert!(bulkhead.acquire().await.unwrap_err().is_rejected());
/// drop(busy);
/// assert!(bulkhead.acquire().await.is_ok());
/// # }
/// ```
#[derive(Clone)]
pub struct Bulkhead {
    inner: Arc<Inner>,
}

struct Inner {
    name: Arc<str>,
    slots: Semaphore,
    max_concurrent: usize,
    max_queued: usize,
    queued: AtomicUsize,
    max_wait: Duration,
}

/// A running call's slot in a [`Bulkhead`]; freed when dropped.
#[derive(Debug)]
pub struct BulkheadSlot<'a> {
    _permit: SemaphorePermit<'a>,
}

/// Takes a queue place and gives it back when dropped, also on
/// cancellation.
struct QueuePlace<'a>(&'a AtomicUsize);

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Bulkhead {
    /// A bulkhead named `name` (at least one concurrent call).
    pub fn new(
        name: impl Into<Cow<'static, str>>,
        max_concurrent: usize,
        max_queued: usize,
        max_wait: Duration,
    ) -> Self {
        let max_concurrent = max_concurrent.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            inner: Arc::new(Inner {
                name: Arc::from(name.into().as_ref()),
                slots: Semaphore::new(max_concurrent),
                max_concurrent,
                max_queued,
                queued: AtomicUsize::new(0),
                max_wait,
            }),
        }
    }

    /// Calls running now.
    pub fn in_flight(&self) -> usize {
        self.inner.max_concurrent - self.inner.slots.available_permits()
    }

    /// Calls waiting now.
    pub fn queued(&self) -> usize {
        self.inner.queued.load(Ordering::Acquire)
    }

    fn reject(&self) -> Error {
        Error::rejected("bulkhead full")
            .with_retry_after(self.inner.max_wait)
            .with_source(Throttled {
                policy: "bulkhead",
                name: self.inner.name.to_string(),
                retry_after: Some(self.inner.max_wait),
            })
    }

    /// Waits for a slot, within the queue and wait limits.
    ///
    /// # Errors
    ///
    /// A rejection when the queue is full or the wait runs out.
    pub async fn acquire(&self) -> Result<BulkheadSlot<'_>> {
        let inner = &*self.inner;
        if let Ok(permit) = inner.slots.try_acquire() {
            return Ok(BulkheadSlot { _permit: permit });
        }
        if inner.queued.fetch_add(1, Ordering::AcqRel) >= inner.max_queued {
            inner.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(self.reject());
        }
        let _place = QueuePlace(&inner.queued);
        match tokio::time::timeout(inner.max_wait, inner.slots.acquire()).await {
            Ok(Ok(permit)) => Ok(BulkheadSlot { _permit: permit }),
            Ok(Err(_)) | Err(_) => Err(self.reject()),
        }
    }

    /// Runs `future` in a slot.
    ///
    /// # Errors
    ///
    /// The rejection (without polling `future`), or the future's error.
    pub async fn call<T>(&self, future: impl Future<Output = Result<T>>) -> Result<T> {
        let _slot = self.acquire().await?;
        future.await
    }
}

impl fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("name", &self.inner.name)
            .field("max_concurrent", &self.inner.max_concurrent)
            .field("max_queued", &self.inner.max_queued)
            .field("max_wait", &self.inner.max_wait)
            .field("in_flight", &self.in_flight())
            .field("queued", &self.queued())
            .finish()
    }
}

impl<C: Send + 'static> Middleware<C> for Bulkhead {
    fn call(&self, ctx: C, next: Next<C>) -> BoxFuture<'_, Result<C>> {
        Box::pin(Bulkhead::call(self, next.run(ctx)))
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Owned(format!("bulkhead({})", self.inner.name))
    }
}

//! Running a chain: the step loop, error routing and panic capture.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use super::plain::PlainRun;
use super::{ChainInner, Runner, StepEntry};
use crate::error::{Error, ErrorKind, Result};
use crate::link::BoxFuture;
use crate::middleware::Next;

impl<C: Send + 'static> ChainInner<C> {
    pub(crate) async fn execute(self: &Arc<Self>, ctx: C) -> Result<C> {
        if self.around.is_empty() {
            return self.run_steps_catching(ctx).await;
        }
        catch_panics(Next::for_execution(Arc::clone(self)).run(ctx))
            .await
            .unwrap_or_else(|payload| {
                let what = format!("middleware around chain `{}`", self.name);
                Err(panic_error(&what, payload))
            })
    }

    /// Runs the steps, catching panics once for all of them rather than per
    /// link: the loop records which step is running, so a panic is still
    /// reported at the link that caused it.
    pub(crate) async fn run_steps_catching(self: &Arc<Self>, ctx: C) -> Result<C> {
        let current = AtomicUsize::new(0);
        catch_panics(self.run_steps(ctx, &current))
            .await
            .unwrap_or_else(|payload| {
                let index = current.load(Ordering::Relaxed);
                Err(self.locate_at(panic_error("link", payload), index))
            })
    }

    /// Runs every step in order. The loop is flat, so chains of any length
    /// use constant stack.
    async fn run_steps(self: &Arc<Self>, mut ctx: C, current: &AtomicUsize) -> Result<C> {
        // One clock read per link boundary, shared by all observers.
        let mut boundary = (!self.observers.is_empty()).then(Instant::now);
        for (index, step) in self.steps.iter().enumerate() {
            current.store(index, Ordering::Relaxed);
            if let Some(condition) = &step.condition
                && !condition(&ctx)
            {
                continue;
            }
            let recovery = step.on_error.as_ref().or(self.catch.as_ref());
            let before = recovery.map(|recovery| (recovery.snapshot)(&ctx));
            let mut outcome = match self.around_each.first().or(step.around.first()) {
                Some(middleware) => {
                    middleware
                        .call(ctx, Next::for_link(Arc::clone(self), index))
                        .await
                }
                None => match &step.runner {
                    Runner::Sync(f) => f(ctx),
                    Runner::Async(link) => link.call(ctx).await,
                },
            };
            if let Some(start) = &mut boundary {
                let end = Instant::now();
                let elapsed = end.saturating_duration_since(*start);
                *start = end;
                for observer in &self.observers {
                    observer.on_link(&step.info, elapsed, &mut outcome);
                }
            }
            ctx = match (outcome, recovery, before) {
                (Ok(next), _, _) => next,
                (Err(error), Some(recovery), Some(before)) => {
                    let error = self.locate(error, step, index);
                    (recovery.handler)(error, before)
                        .await
                        .map_err(|error| self.locate(error, step, index))?
                }
                (Err(error), _, _) => return Err(self.locate(error, step, index)),
            };
        }
        Ok(ctx)
    }

    /// [`run_steps_catching`](Self::run_steps_catching) behind a
    /// type-erased future: running the steps may create a `Next` that runs
    /// the steps again, and the erasure keeps that future type (and its
    /// `Send` proof) finite.
    pub(crate) fn run_steps_boxed(self: &Arc<Self>, ctx: C) -> BoxFuture<'_, Result<C>> {
        if self.plain {
            Box::pin(PlainRun::new(self, ctx))
        } else {
            Box::pin(self.run_steps_catching(ctx))
        }
    }

    /// `error` located at step `index`, when there is such a step.
    pub(super) fn locate_at(&self, error: Error, index: usize) -> Error {
        match self.steps.get(index) {
            Some(step) => self.locate(error, step, index),
            None => error,
        }
    }

    fn locate(&self, error: Error, step: &StepEntry<C>, index: usize) -> Error {
        error.locate(&self.name, step.info.name_arc(), index)
    }
}

pin_project_lite::pin_project! {
    /// Polls a future, returning the payload of a panic during any poll. A
    /// struct rather than an `async fn`: an async wrapper would hold the
    /// wrapped future twice in its state (as argument and as pinned local),
    /// and every execution would copy both.
    pub(crate) struct CatchPanics<F> {
        #[pin]
        future: F,
    }
}

/// Polls `future`, returning the payload of a panic during any poll.
pub(crate) fn catch_panics<F: Future>(future: F) -> CatchPanics<F> {
    CatchPanics { future }
}

impl<F: Future> Future for CatchPanics<F> {
    type Output = std::result::Result<F::Output, Box<dyn Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let future = self.project().future;
        match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// The error for a caught panic; `what` names what panicked.
pub(crate) fn panic_error(what: &str, payload: Box<dyn Any + Send>) -> Error {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload");
    Error::new(ErrorKind::Panicked, format!("{what} panicked: {message}"))
}

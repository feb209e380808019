//! Running a chain: the step loop, error routing and panic capture.

use std::any::Any;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use super::{ChainInner, Runner, StepEntry};
use crate::error::{Error, ErrorKind, Result};
use crate::link::BoxFuture;
use crate::middleware::Next;

impl<C: Send + 'static> ChainInner<C> {
    pub(crate) async fn execute(self: &Arc<Self>, ctx: C) -> Result<C> {
        if self.around.is_empty() {
            self.run_steps(ctx).await
        } else {
            catch_panics(Next::for_execution(Arc::clone(self)).run(ctx))
                .await
                .map_err(|error| match error.kind() {
                    ErrorKind::Panicked if error.location().is_none() => Error::new(
                        ErrorKind::Panicked,
                        format!("middleware around chain `{}` panicked: {}", self.name, error.message()),
                    ),
                    _ => error,
                })
        }
    }

    /// Runs every step in order. The loop is flat, so chains of any length
    /// use constant stack.
    pub(crate) async fn run_steps(self: &Arc<Self>, mut ctx: C) -> Result<C> {
        for (index, step) in self.steps.iter().enumerate() {
            if let Some(condition) = &step.condition {
                let holds = catch_unwind(AssertUnwindSafe(|| condition(&ctx)))
                    .map_err(|payload| self.locate(panic_error("condition", payload), step, index))?;
                if !holds {
                    continue;
                }
            }
            let recovery = step.on_error.as_ref().or(self.catch.as_ref());
            let before = recovery.map(|recovery| (recovery.snapshot)(&ctx));
            let outcome = self.run_step(step, index, ctx).await;
            ctx = match (outcome, recovery, before) {
                (Ok(next), _, _) => next,
                (Err(error), Some(recovery), Some(before)) => {
                    let error = self.locate(error, step, index);
                    catch_panics((recovery.handler)(error, before))
                        .await
                        .map_err(|error| self.locate(error, step, index))?
                }
                (Err(error), _, _) => return Err(self.locate(error, step, index)),
            };
        }
        Ok(ctx)
    }

    /// [`run_steps`](Self::run_steps) behind a type-erased future: running
    /// the steps may create a `Next` that runs the steps again, and the
    /// erasure keeps that future type (and its `Send` proof) finite.
    pub(crate) fn run_steps_boxed(self: &Arc<Self>, ctx: C) -> BoxFuture<'_, Result<C>> {
        Box::pin(self.run_steps(ctx))
    }

    async fn run_step(self: &Arc<Self>, step: &StepEntry<C>, index: usize, ctx: C) -> Result<C> {
        if !self.middleware.is_empty() || !step.middleware.is_empty() {
            return catch_panics(Next::for_link(Arc::clone(self), index).run(ctx)).await;
        }
        match &step.runner {
            Runner::Sync(f) => catch_unwind(AssertUnwindSafe(|| f(ctx)))
                .unwrap_or_else(|payload| Err(panic_error("link", payload))),
            Runner::Async(link) => match catch_unwind(AssertUnwindSafe(|| link.call(ctx))) {
                Ok(future) => catch_panics(future).await,
                Err(payload) => Err(panic_error("link", payload)),
            },
        }
    }

    fn locate(&self, error: Error, step: &StepEntry<C>, index: usize) -> Error {
        error.locate(&self.name, step.info.name_arc(), index)
    }
}

/// Polls `future`, turning a panic during any poll into an error.
pub(crate) async fn catch_panics<T>(future: impl Future<Output = Result<T>>) -> Result<T> {
    let mut future = pin!(future);
    poll_fn(
        move |cx| match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(payload) => Poll::Ready(Err(panic_error("link", payload))),
        },
    )
    .await
}

fn panic_error(what: &str, payload: Box<dyn Any + Send>) -> Error {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload");
    Error::new(ErrorKind::Panicked, format!("{what} panicked: {message}"))
}

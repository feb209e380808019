//! Running a plain chain (no middleware, observers, conditions or error
//! routes), which most chains are: a hand-written future instead of the
//! general step loop's nested async functions, whose layers cost more than
//! the loop itself.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use super::{ChainInner, Runner, panic_error};
use crate::error::{Error, ErrorKind, Result};
use crate::link::BoxFuture;

/// The execution of a plain chain: the next step, and either the context
/// between steps or the future of the async link running.
pub(crate) struct PlainRun<'a, C> {
    chain: &'a ChainInner<C>,
    next: usize,
    between: Option<C>,
    running: Option<BoxFuture<'a, Result<C>>>,
}

/// The context is moved from step to step, never pinned in place.
impl<C> Unpin for PlainRun<'_, C> {}

/// What starting steps led to.
enum Started<'a, C> {
    /// An async link's future, to poll.
    Link(BoxFuture<'a, Result<C>>),
    /// No steps left: the chain's result.
    Finished(C),
    /// A sync link failed.
    Failed(Error),
}

impl<'a, C: Send + 'static> PlainRun<'a, C> {
    pub(crate) fn new(chain: &'a ChainInner<C>, ctx: C) -> Self {
        PlainRun {
            chain,
            next: 0,
            between: Some(ctx),
            running: None,
        }
    }

    /// Runs steps from `next` on until an async link starts, the chain
    /// ends or a step fails. Consecutive sync links run in this one loop,
    /// the context in registers, under one panic guard; `next` is left at
    /// the step that started, failed or panicked.
    fn start_steps(&mut self, mut ctx: C) -> Result<Started<'a, C>> {
        let chain = self.chain;
        let next = &mut self.next;
        let started = catch_unwind(AssertUnwindSafe(|| {
            while let Some(step) = chain.steps.get(*next) {
                match &step.runner {
                    Runner::Sync(f) => match f(ctx) {
                        Ok(out) => ctx = out,
                        Err(error) => return Started::Failed(error),
                    },
                    Runner::Async(link) => return Started::Link(link.call(ctx)),
                }
                *next += 1;
            }
            Started::Finished(ctx)
        }));
        started.map_err(|payload| {
            self.chain
                .locate_at(panic_error("link", payload), self.next)
        })
    }
}

impl<C: Send + 'static> Future for PlainRun<'_, C> {
    type Output = Result<C>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Result<C>> {
        let this = self.get_mut();
        loop {
            if let Some(running) = &mut this.running {
                let index = this.next;
                let polled = catch_unwind(AssertUnwindSafe(|| running.as_mut().poll(cx)));
                let ctx = match polled {
                    Ok(Poll::Pending) => return Poll::Pending,
                    Ok(Poll::Ready(Ok(ctx))) => ctx,
                    Ok(Poll::Ready(Err(error))) => {
                        this.running = None;
                        return Poll::Ready(Err(this.chain.locate_at(error, index)));
                    }
                    Err(payload) => {
                        this.running = None;
                        return Poll::Ready(Err(this
                            .chain
                            .locate_at(panic_error("link", payload), index)));
                    }
                };
                this.running = None;
                this.next += 1;
                this.between = Some(ctx);
            }
            let Some(ctx) = this.between.take() else {
                return Poll::Ready(Err(Error::new(
                    ErrorKind::Internal,
                    "a chain execution was polled after it completed",
                )));
            };
            match this.start_steps(ctx) {
                Ok(Started::Link(future)) => this.running = Some(future),
                Ok(Started::Finished(ctx)) => return Poll::Ready(Ok(ctx)),
                Ok(Started::Failed(error)) => {
                    return Poll::Ready(Err(this.chain.locate_at(error, this.next)));
                }
                Err(panicked) => return Poll::Ready(Err(panicked)),
            }
        }
    }
}

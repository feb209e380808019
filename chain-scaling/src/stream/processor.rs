//! A chain applied to every item of a stream, a bounded number at a time.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use chain_core::{Chain, Error, Result};
use futures_util::stream::{FuturesOrdered, FuturesUnordered};
use futures_util::{Stream, StreamExt};

use super::MemoryMonitor;

/// How often, in admitted items, processing asks the monitor for a sample
/// (the monitor itself rate-limits to its interval).
const CHECK_EVERY: u64 = 256;

/// An item the chain failed, with its position in the input.
#[derive(Debug)]
pub struct ItemError {
    /// The item's index in the input, from 0.
    pub index: u64,
    /// The chain's error.
    pub error: Error,
}

type Sink = Arc<dyn Fn(ItemError) + Send + Sync>;

/// Applies a chain to each item of a stream with bounded concurrency.
///
/// At most `concurrency` items are in the chain at once, and no more are
/// read from the input until one finishes: memory stays bounded whatever
/// the input's length, and a slow consumer slows the producer
/// (backpressure). Output is in input order unless
/// [`unordered`](Self::unordered). A failing item ends the output with its
/// error, or goes to an error sink while the rest flows on
/// ([`errors_to`](Self::errors_to)). With a [`MemoryMonitor`], RSS above
/// its limit halves the concurrency (down to 1) and RSS back under 90% of
/// it raises it again, one at a time.
///
/// ```
/// use chain_core::Chain;
/// use chain_scaling::stream::StreamProcessor;
/// use futures_util::{StreamExt, stream};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> chain_core::Result<()> {
/// let double = Chain::<u64>::named("double").link_sync(|n: u64| Ok(n * 2));
/// let out: Vec<u64> = StreamProcessor::new(double)
///     .concurrency(8)
///     .process(stream::iter(1..=5))
///     .map(|item| item.unwrap())
///     .collect()
///     .await;
/// assert_eq!(out, [2, 4, 6, 8, 10]);
/// # Ok(()) }
/// ```
pub struct StreamProcessor<C> {
    chain: Chain<C>,
    concurrency: usize,
    ordered: bool,
    sink: Option<Sink>,
    monitor: Option<MemoryMonitor>,
}

impl<C: Send + 'static> StreamProcessor<C> {
    /// Applies `chain` to one item at a time, in order, failing on the
    /// first error.
    pub fn new(chain: Chain<C>) -> Self {
        StreamProcessor {
            chain,
            concurrency: 1,
            ordered: true,
            sink: None,
            monitor: None,
        }
    }

    /// At most `items` in the chain at once (at least one).
    pub fn concurrency(mut self, items: usize) -> Self {
        self.concurrency = items.max(1);
        self
    }

    /// Yields items as they finish rather than in input order: a slow item
    /// no longer holds back the ones behind it.
    pub fn unordered(mut self) -> Self {
        self.ordered = false;
        self
    }

    /// Sends failed items to `sink` and goes on with the rest.
    pub fn errors_to(mut self, sink: impl Fn(ItemError) + Send + Sync + 'static) -> Self {
        self.sink = Some(Arc::new(sink));
        self
    }

    /// Lowers concurrency while the monitor's RSS is above its limit.
    pub fn memory(mut self, monitor: MemoryMonitor) -> Self {
        self.monitor = Some(monitor);
        self
    }

    /// The output stream: each item's result, in input order unless
    /// unordered.
    pub fn process<S>(&self, input: S) -> Processed<C>
    where
        S: Stream<Item = C> + Send + 'static,
    {
        Processed {
            input: Some(input.boxed()),
            running: if self.ordered {
                Running::Ordered(FuturesOrdered::new())
            } else {
                Running::Unordered(FuturesUnordered::new())
            },
            chain: self.chain.clone(),
            limit: self.concurrency,
            max: self.concurrency,
            admitted: 0,
            failed: false,
            sink: self.sink.clone(),
            monitor: self.monitor.clone(),
        }
    }
}

type ItemFuture<C> = Pin<Box<dyn Future<Output = (u64, Result<C>)> + Send>>;

enum Running<C> {
    Ordered(FuturesOrdered<ItemFuture<C>>),
    Unordered(FuturesUnordered<ItemFuture<C>>),
}

impl<C> Running<C> {
    fn len(&self) -> usize {
        match self {
            Running::Ordered(running) => running.len(),
            Running::Unordered(running) => running.len(),
        }
    }

    fn push(&mut self, future: ItemFuture<C>) {
        match self {
            Running::Ordered(running) => running.push_back(future),
            Running::Unordered(running) => running.push(future),
        }
    }

    fn poll_next(&mut self, cx: &mut TaskContext<'_>) -> Poll<Option<(u64, Result<C>)>> {
        match self {
            Running::Ordered(running) => running.poll_next_unpin(cx),
            Running::Unordered(running) => running.poll_next_unpin(cx),
        }
    }
}

/// The output of [`StreamProcessor::process`].
pub struct Processed<C> {
    input: Option<Pin<Box<dyn Stream<Item = C> + Send>>>,
    running: Running<C>,
    chain: Chain<C>,
    limit: usize,
    max: usize,
    admitted: u64,
    failed: bool,
    sink: Option<Sink>,
    monitor: Option<MemoryMonitor>,
}

impl<C: Send + 'static> Processed<C> {
    /// Reads input while there is room, starting the chain on each item.
    fn admit(&mut self, cx: &mut TaskContext<'_>) {
        while self.running.len() < self.limit {
            let Some(input) = self.input.as_mut() else {
                return;
            };
            match input.poll_next_unpin(cx) {
                Poll::Ready(Some(item)) => {
                    let index = self.admitted;
                    self.admitted += 1;
                    let chain = self.chain.clone();
                    self.running
                        .push(Box::pin(async move { (index, chain.execute(item).await) }));
                    if index.is_multiple_of(CHECK_EVERY) {
                        self.adapt_to_memory();
                    }
                }
                Poll::Ready(None) => self.input = None,
                Poll::Pending => return,
            }
        }
    }

    /// Multiplicative decrease above the limit, additive increase below 90%
    /// of it: memory pressure is relieved fast and throughput returns
    /// gradually.
    fn adapt_to_memory(&mut self) {
        let Some(monitor) = &self.monitor else {
            return;
        };
        let Some(rss) = monitor.sample_if_due() else {
            return;
        };
        let limit = monitor.limit_bytes();
        if rss > limit && self.limit > 1 {
            self.limit = (self.limit / 2).max(1);
            monitor.record_throttle(rss, self.limit);
        } else if rss < limit / 10 * 9 && self.limit < self.max {
            self.limit += 1;
        }
    }

    /// The concurrency in force now (lower than configured while memory is
    /// above the monitor's limit).
    pub fn current_concurrency(&self) -> usize {
        self.limit
    }
}

impl<C: Send + 'static> Stream for Processed<C> {
    type Item = Result<C>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Result<C>>> {
        let this = &mut *self;
        loop {
            if this.failed {
                return Poll::Ready(None);
            }
            this.admit(cx);
            match this.running.poll_next(cx) {
                Poll::Ready(Some((_, Ok(output)))) => return Poll::Ready(Some(Ok(output))),
                Poll::Ready(Some((index, Err(error)))) => match &this.sink {
                    Some(sink) => sink(ItemError { index, error }),
                    None => {
                        this.failed = true;
                        this.input = None;
                        let error =
                            Error::new(error.kind(), format!("stream item #{index} failed"))
                                .with_source(error);
                        return Poll::Ready(Some(Err(error)));
                    }
                },
                Poll::Ready(None) if this.input.is_none() => return Poll::Ready(None),
                // Nothing running and the input not ready: its waker is set.
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<C: Send + 'static> fmt::Debug for StreamProcessor<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamProcessor")
            .field("chain", &self.chain.name())
            .field("concurrency", &self.concurrency)
            .field("ordered", &self.ordered)
            .field("error_sink", &self.sink.is_some())
            .finish_non_exhaustive()
    }
}

impl<C> fmt::Debug for Processed<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Processed")
            .field("admitted", &self.admitted)
            .field("running", &self.running.len())
            .field("concurrency", &self.limit)
            .finish_non_exhaustive()
    }
}

//! The memory-efficient processors as links of a [`Context`] chain: a
//! projection to the fields that matter, and a field's list of items
//! processed in batches or as a stream.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use chain_core::{BoxFuture, Chain, Context, Error, Link, Result};
use futures_util::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{StreamProcessor, process_in_batches};

/// A link that keeps only the fields a chain still needs, so the rest of
/// it does not carry (and copy into every answer) data it will not read:
/// the cookbook's memory-optimized chain. Fields named in `keys` stay, as
/// do fields whose names start with `_` (ModuLink's own metadata, such as
/// a load balancer's `_node_id`); typed extensions are kept.
///
/// ```
/// use chain_core::{Chain, Context};
/// use chain_scaling::stream::essential_keys;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> chain_core::Result<()> {
/// let chain = Chain::named("report").link(essential_keys(["totals"]));
/// let out = chain
///     .execute(Context::new().with("raw_rows", vec![1, 2, 3]).with("totals", 6).with("_node_id", "n1"))
///     .await?;
/// assert_eq!(out.keys().collect::<Vec<_>>(), ["totals", "_node_id"]);
/// # Ok(()) }
/// ```
pub fn essential_keys<I, S>(keys: I) -> EssentialKeys
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    EssentialKeys {
        keys: keys.into_iter().map(Into::into).collect(),
    }
}

/// The link made by [`essential_keys`].
#[derive(Debug, Clone)]
pub struct EssentialKeys {
    keys: Arc<[String]>,
}

impl EssentialKeys {
    fn keeps(&self, key: &str) -> bool {
        key.starts_with('_') || self.keys.iter().any(|kept| kept == key)
    }

    /// `ctx` with only the essential fields.
    pub fn project(&self, mut ctx: Context) -> Context {
        let dropped: Vec<String> = ctx
            .keys()
            .filter(|key| !self.keeps(key))
            .map(str::to_owned)
            .collect();
        for key in dropped {
            ctx.remove(&key);
        }
        ctx
    }
}

impl Link<Context> for EssentialKeys {
    fn call(&self, ctx: Context) -> BoxFuture<'_, Result<Context>> {
        Box::pin(std::future::ready(Ok(self.project(ctx))))
    }

    fn name(&self) -> Cow<'static, str> {
        "essential_keys".into()
    }
}

/// Takes field `from` out of the context as a list of `T`: moved, not
/// copied, so the input is not held twice.
fn take_items<T: DeserializeOwned>(ctx: &mut Context, from: &str, link: &str) -> Result<Vec<T>> {
    let value = ctx.remove(from).ok_or_else(|| {
        Error::validation(format!(
            "{link}: the context has no field `{from}` holding the items"
        ))
    })?;
    serde_json::from_value(value).map_err(|source| {
        Error::validation(format!("{link}: field `{from}` is not a list of the items"))
            .with_source(source)
    })
}

/// Writes `items` into field `to`, converting them one at a time so the
/// list is never held in both forms.
fn put<T: Serialize>(mut ctx: Context, to: &str, items: Vec<T>) -> Result<Context> {
    let values = items
        .into_iter()
        .map(serde_json::to_value)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|source| {
            Error::internal(format!("cannot write the processed items into `{to}`"))
                .with_source(source)
        })?;
    ctx.insert(to.to_owned(), serde_json::Value::Array(values));
    Ok(ctx)
}

/// A link that runs a chain over the list in one field of the context, in
/// batches, and writes the processed list into another field; made by
/// [`BatchLink::new`].
///
/// The input list is moved out of field `from` (the field is removed), so
/// memory holds what is left of the input, one batch in the chain and the
/// output so far, never the input twice. For a list too large for that,
/// keep it out of the context and use [`StreamProcessor`] on its source.
///
/// ```
/// use chain_core::{Chain, Context};
/// use chain_scaling::stream::BatchLink;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> chain_core::Result<()> {
/// let double = Chain::<Vec<u64>>::named("double").link_sync(|batch: Vec<u64>| Ok(batch.into_iter().map(|n| n * 2).collect()));
/// let chain = Chain::named("numbers").link(BatchLink::new("data", "processed_data", 100, double));
/// let out = chain.execute(Context::new().with("data", (1..=250).collect::<Vec<u64>>())).await?;
/// let processed: Vec<u64> = out.require("processed_data")?;
/// assert_eq!((processed.len(), processed[249]), (250, 500));
/// # Ok(()) }
/// ```
pub struct BatchLink<T> {
    from: String,
    to: String,
    batch_size: usize,
    chain: Chain<Vec<T>>,
}

impl<T> BatchLink<T> {
    /// Reads the list in field `from`, runs `chain` on batches of
    /// `batch_size` items (at least 1), and writes the results, in order,
    /// into field `to`.
    pub fn new(
        from: impl Into<String>,
        to: impl Into<String>,
        batch_size: usize,
        chain: Chain<Vec<T>>,
    ) -> Self {
        Self {
            from: from.into(),
            to: to.into(),
            batch_size: batch_size.max(1),
            chain,
        }
    }
}

impl<T> Link<Context> for BatchLink<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    fn call(&self, ctx: Context) -> BoxFuture<'_, Result<Context>> {
        Box::pin(async move {
            let mut ctx = ctx;
            let input: Vec<T> = take_items(&mut ctx, &self.from, "batch processing")?;
            let output = process_in_batches(&self.chain, input, self.batch_size).await?;
            put(ctx, &self.to, output)
        })
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Owned(format!("batches of {}", self.chain.name()))
    }
}

impl<T: Send + 'static> fmt::Debug for BatchLink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchLink")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("batch_size", &self.batch_size)
            .field("chain", &self.chain.name())
            .finish()
    }
}

/// A link that runs a [`StreamProcessor`] over the list it moves out of one
/// field of the context (with its concurrency, memory monitor and error
/// sink) and writes
/// the items that succeeded, in order unless the processor is unordered,
/// into another field; made by [`StreamLink::new`]. Without an error sink
/// a failing item fails the link.
///
/// ```
/// use chain_core::{Chain, Context};
/// use chain_scaling::stream::{StreamLink, StreamProcessor};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> chain_core::Result<()> {
/// let square = Chain::<u64>::named("square").link_sync(|n: u64| Ok(n * n));
/// let processor = StreamProcessor::new(square).concurrency(16);
/// let chain = Chain::named("numbers").link(StreamLink::new("data", "squares", processor));
/// let out = chain.execute(Context::new().with("data", vec![1, 2, 3])).await?;
/// assert_eq!(out.require::<Vec<u64>>("squares")?, [1, 4, 9]);
/// # Ok(()) }
/// ```
pub struct StreamLink<T> {
    from: String,
    to: String,
    processor: StreamProcessor<T>,
}

impl<T> StreamLink<T> {
    /// Reads the list in field `from`, runs `processor` over it and writes
    /// the results into field `to`.
    pub fn new(
        from: impl Into<String>,
        to: impl Into<String>,
        processor: StreamProcessor<T>,
    ) -> Self {
        Self {
            from: from.into(),
            to: to.into(),
            processor,
        }
    }
}

impl<T> Link<Context> for StreamLink<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    fn call(&self, ctx: Context) -> BoxFuture<'_, Result<Context>> {
        Box::pin(async move {
            let mut ctx = ctx;
            let input: Vec<T> = take_items(&mut ctx, &self.from, "stream processing")?;
            let mut output = Vec::with_capacity(input.len());
            let mut processed = self.processor.process(futures_util::stream::iter(input));
            while let Some(item) = processed.next().await {
                output.push(item?);
            }
            put(ctx, &self.to, output)
        })
    }

    fn name(&self) -> Cow<'static, str> {
        "stream".into()
    }
}

impl<T: Send + 'static> fmt::Debug for StreamLink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamLink")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("processor", &self.processor)
            .finish()
    }
}

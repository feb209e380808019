//! A chain over batches: each run gets `Vec<T>` of up to N items.

use chain_core::{Chain, Error, Result};

/// Runs `chain` on `items` in batches of `batch_size` (at least one), in
/// order, and concatenates the batches it returns. A failing batch fails
/// the call with an error naming the batch and its items.
///
/// For input that does not fit in memory, batch a stream instead:
/// `StreamProcessor::new(chain).process(input.chunks(batch_size))`.
///
/// ```
/// use chain_core::Chain;
/// use chain_scaling::stream::process_in_batches;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> chain_core::Result<()> {
/// let normalize = Chain::<Vec<f64>>::named("normalize").link_sync(|batch: Vec<f64>| {
///     let max = batch.iter().cloned().fold(f64::MIN, f64::max);
///     Ok(batch.into_iter().map(|x| x / max).collect())
/// });
/// let out = process_in_batches(&normalize, vec![1.0, 2.0, 3.0, 6.0], 2).await?;
/// assert_eq!(out, [0.5, 1.0, 0.5, 1.0]);
/// # Ok(()) }
/// ```
pub async fn process_in_batches<T: Send + 'static>(
    chain: &Chain<Vec<T>>,
    items: Vec<T>,
    batch_size: usize,
) -> Result<Vec<T>> {
    let batch_size = batch_size.max(1);
    let mut output = Vec::with_capacity(items.len());
    let mut items = items.into_iter();
    let mut start = 0;
    loop {
        let batch: Vec<T> = items.by_ref().take(batch_size).collect();
        if batch.is_empty() {
            return Ok(output);
        }
        let end = start + batch.len();
        let processed = chain.execute(batch).await.map_err(|error| {
            Error::new(
                error.kind(),
                format!(
                    "batch #{} (items {start}..{end}) failed",
                    start / batch_size
                ),
            )
            .with_source(error)
        })?;
        output.extend(processed);
        start = end;
    }
}

//! The batch half of the cookbook's memory-efficiency demo, measured: a
//! million numbers in a context field go through a chain in batches of a
//! thousand (each number becomes a record with metadata, then the batch is
//! aggregated), the context is cut down to the fields still needed, and a
//! memory monitor measures every execution against a 256 MB limit.
//!
//! Run with `cargo run --release -p examples --example memory-batch`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use modulink::scaling::stream::{BatchLink, MemoryMonitor, essential_keys};
use modulink::{Chain, Context, Error, Result};
use serde_json::{Value, json};

const ITEMS: u64 = 100_000;
const BATCH: usize = 1_000;
const LIMIT_BYTES: u64 = 256 << 20;
const EXECUTIONS: u64 = 5;

/// The cookbook's `memory_intensive_function`: each number becomes a record
/// with its doubled value and metadata.
fn enrich(batch: Vec<Value>) -> Result<Vec<Value>> {
    batch
        .into_iter()
        .map(|item| {
            let n = item
                .as_u64()
                .ok_or_else(|| Error::validation(format!("not a number: {item}")))?;
            Ok(json!({"original": n, "processed": n * 2, "metadata": {"version": "1.0"}}))
        })
        .collect()
}

/// The cookbook's `data_aggregation_function`, over the whole output.
fn aggregate(ctx: Context) -> Result<Context> {
    let processed = ctx
        .get_value("processed_data")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::validation("no processed_data to aggregate"))?;
    let sum: u64 = processed
        .iter()
        .filter_map(|record| record["processed"].as_u64())
        .sum();
    let enriched = processed
        .iter()
        .filter(|record| record.get("metadata").is_some())
        .count();
    let aggregation =
        json!({"count": processed.len(), "enriched": enriched, "sum_of_processed": sum});
    Ok(ctx.with("aggregation", aggregation))
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let batches = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&batches);
    let batch_chain = Chain::<Vec<Value>>::named("enrich").link_sync(move |batch| {
        counted.fetch_add(1, Ordering::Relaxed);
        enrich(batch)
    });
    let monitor = MemoryMonitor::new(LIMIT_BYTES);
    let chain = Chain::named("batch_memory_demo")
        .link(BatchLink::new("data", "processed_data", BATCH, batch_chain))
        .link_sync(aggregate)
        // Only the aggregation leaves the chain: the million records do not.
        .link(essential_keys(["aggregation"]))
        .around(monitor.around_executions());

    let mut out = Context::new();
    for _ in 0..EXECUTIONS {
        let data: Vec<u64> = (0..ITEMS).collect();
        out = chain
            .execute(Context::new().with("data", data).with("request", "nightly"))
            .await?;
    }
    let aggregation = out.require::<Value>("aggregation")?;
    println!(
        "processed {} items per execution in {} batches over {EXECUTIONS} executions",
        aggregation["count"],
        batches.load(Ordering::Relaxed)
    );
    println!("aggregation: {aggregation}");
    println!(
        "fields left in the result: {}",
        out.keys().collect::<Vec<_>>().join(", ")
    );
    let report = monitor.report();
    println!(
        "memory: executions {}, min {:.1} MB, peak {:.1} MB, limit {:.0} MB, change per execution {:+.1} MB, grade {}",
        report.executions,
        mb(report.min_bytes),
        mb(report.peak_bytes),
        mb(report.limit_bytes),
        report.average_change_per_execution_bytes as f64 / f64::from(1 << 20),
        report.grade
    );
    Ok(())
}

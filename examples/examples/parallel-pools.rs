//! The seed's parallel execution with resource pools: I/O-bound links fan
//! out on the async runtime, CPU-bound links on a bounded set of blocking
//! threads, every execution is measured, and the pool's report makes
//! recommendations from the measurements.
//!
//! Run with `cargo run -p examples --example parallel-pools`.

use std::time::{Duration, Instant};

use modulink::scaling::parallel::{Mode, Overflow, PoolSettings, ResourcePool};
use modulink::{Chain, Context, ErrorKind, Result};

/// The two I/O waits: run in parallel, the chain takes about the longer.
const IO_WAITS: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(150)];

async fn io_task_1(ctx: Context) -> Result<Context> {
    tokio::time::sleep(IO_WAITS[0]).await; // a network call
    Ok(ctx.with("io_task_1_result", "completed"))
}

async fn io_task_2(ctx: Context) -> Result<Context> {
    tokio::time::sleep(IO_WAITS[1]).await; // a database query
    Ok(ctx.with("io_task_2_result", "completed"))
}

fn cpu_task_1(ctx: Context) -> Result<Context> {
    let result: u64 = (0..2_000_000u64).map(|i| i * i % 7).sum();
    Ok(ctx.with("cpu_task_1_result", result))
}

fn cpu_task_2(ctx: Context) -> Result<Context> {
    let result: u64 = (0..2_000_000u64).map(|i| (i * i * i) % 11).sum();
    Ok(ctx.with("cpu_task_2_result", result))
}

#[tokio::main]
async fn main() -> Result<()> {
    let pool = ResourcePool::new(
        PoolSettings::named("performance_test")
            .max_concurrent_chains(10)
            .blocking_threads(4)
            .overflow(Overflow::Queue(20)),
    );
    let async_chain = Chain::named("async_chain").link(pool.fan_out(
        Mode::Async,
        [
            Chain::named("io_1").link(io_task_1),
            Chain::named("io_2").link(io_task_2),
        ],
    ));
    let thread_chain = Chain::named("thread_chain").link(pool.fan_out(
        Mode::Blocking,
        [
            Chain::named("cpu_1").link_sync(cpu_task_1),
            Chain::named("cpu_2").link_sync(cpu_task_2),
        ],
    ));

    let started = Instant::now();
    let out = async_chain
        .execute(Context::new().with("test", "async"))
        .await?;
    println!(
        "async chain completed in {:.3}s, with waits of {:.3}s and {:.3}s: {}",
        started.elapsed().as_secs_f64(),
        IO_WAITS[0].as_secs_f64(),
        IO_WAITS[1].as_secs_f64(),
        out.to_json()
    );
    let started = Instant::now();
    let out = thread_chain
        .execute(Context::new().with("test", "thread"))
        .await?;
    println!(
        "thread chain completed in {:.2}s on blocking threads: cpu results {} and {}",
        started.elapsed().as_secs_f64(),
        out.get_value("cpu_task_1_result")
            .cloned()
            .unwrap_or_default(),
        out.get_value("cpu_task_2_result")
            .cloned()
            .unwrap_or_default()
    );

    // Thirty at once against a pool of ten running and twenty waiting:
    // the rest is refused with a clear error rather than queued forever.
    let burst: Vec<_> = (0..35)
        .map(|_| {
            let chain = async_chain.clone();
            tokio::spawn(async move { chain.execute(Context::new()).await })
        })
        .collect();
    let mut rejected = 0;
    for run in burst {
        if let Err(error) = run.await.map_err(modulink::Error::internal_from)?
            && error.kind() == ErrorKind::Rejected
        {
            rejected += 1;
        }
    }
    println!(
        "burst of 35: {} ran, {rejected} rejected by the pool",
        35 - rejected
    );
    println!();
    print!("{}", pool.report());
    Ok(())
}

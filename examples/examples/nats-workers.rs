//! Events spread over processes with NATS JetStream: this process publishes
//! 1,000 order events and starts two worker processes (itself, with the
//! argument `worker`), which share the `orders` subscription's durable
//! consumer. The publisher counts the `order_created_completed` reports
//! through a subscription of its own, then stops the workers gracefully.
//!
//! Needs a `nats-server` with JetStream (`nats-server -js`); its URL comes
//! from `MODULINK_NATS_URL` (default `nats://127.0.0.1:4222`). Run with
//! `cargo run -p examples --example nats-workers`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use examples::price_items;
use modulink::scaling::events::{Event, EventBus, JetStream, JetStreamConfig};
use modulink::{Chain, Context, Result};
use serde_json::{Value, json};
use tokio::sync::Notify;

const ORDERS: usize = 1_000;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The stream of run `run`. `MODULINK_NATS_URL` may list the servers of a
/// cluster, comma-separated; `NATS_REPLICAS` (default 1) is the stream's
/// replica count and `NATS_STORAGE=file` keeps it on disk instead of in
/// memory.
fn config(run: &str) -> std::result::Result<JetStreamConfig, Error> {
    let url = std::env::var("MODULINK_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let replicas = std::env::var("NATS_REPLICAS").map_or(Ok(1), |n| n.parse())?;
    let config = JetStreamConfig::new(url)
        .stream(format!("DEMO_{run}"))
        .subject_prefix(format!("demo{run}"))
        .replicas(replicas);
    Ok(match std::env::var("NATS_STORAGE").as_deref() {
        Ok("file") => config,
        // A memory stream reserves its byte limit on the server: a demo's
        // hour and 64 MiB, not the 1 GiB default.
        Ok("memory") | Err(_) => config
            .memory_storage()
            .retention(Duration::from_secs(3600), 64 << 20),
        Ok(other) => {
            return Err(format!("NATS_STORAGE is `file` or `memory`, not `{other}`").into());
        }
    })
}

/// The chain every worker runs for `order_created`; `work` stands for the
/// time a real handler spends (a database write, a call).
fn orders(worker: String, work: Duration) -> Chain {
    Chain::named("orders").link(move |ctx: Context| {
        let worker = worker.clone();
        async move {
            if !work.is_zero() {
                tokio::time::sleep(work).await;
            }
            let order: Value = ctx.require("event_data")?;
            let total = price_items(std::slice::from_ref(&order))?.subtotal;
            Ok(ctx.with("total", total).with("worker", worker))
        }
    })
}

/// A worker: subscribes, says `ready`, and handles orders until its
/// standard input closes. `MODULINK_WORKER_ID` (set by a `ProcessScaler`)
/// overrides its name; `WORK_MS` is each order's simulated work and
/// `WORKER_CONCURRENCY` the orders it handles at once.
async fn worker(run: String, name: String) -> std::result::Result<(), Error> {
    let name = std::env::var("MODULINK_WORKER_ID").unwrap_or(name);
    let work = Duration::from_millis(std::env::var("WORK_MS").map_or(Ok(0), |ms| ms.parse())?);
    let mut config = config(&run)?.connection_name(&name);
    if let Ok(concurrency) = std::env::var("WORKER_CONCURRENCY") {
        config = config.concurrency(concurrency.parse()?);
    }
    let bus = EventBus::builder()
        .without_store()
        .build_with(JetStream::connect(config).await?);
    bus.subscribe("order_created", orders(name, work)).await?;
    println!("ready");
    // The publisher closes our stdin to ask for a graceful stop.
    tokio::task::spawn_blocking(|| std::io::stdin().lines().count()).await?;
    bus.shutdown().await;
    Ok(())
}

fn start_worker(run: &str, name: &str) -> std::result::Result<Child, Error> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["worker", run, name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    match lines.next() {
        Some(Ok(line)) if line == "ready" => Ok(child),
        other => Err(format!("worker {name} did not start: {other:?}").into()),
    }
}

async fn publisher() -> std::result::Result<(), Error> {
    let run = format!("{:08x}", std::process::id());
    let bus = EventBus::builder()
        .without_store()
        .build_with(JetStream::connect(config(&run)?).await?);

    let per_worker = Arc::new(Mutex::new(BTreeMap::<String, usize>::new()));
    let finished = Arc::new(Notify::new());
    let (tally, done) = (Arc::clone(&per_worker), Arc::clone(&finished));
    let report = Chain::named("report").link_sync(move |ctx: Context| -> Result<Context> {
        let report: Value = ctx.require("event_data")?;
        let worker = report["result"]["worker"]
            .as_str()
            .unwrap_or("?")
            .to_owned();
        let mut tally = tally
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *tally.entry(worker).or_default() += 1;
        if tally.values().sum::<usize>() == ORDERS {
            done.notify_one();
        }
        Ok(ctx)
    });
    bus.subscribe("order_created_completed", report).await?;

    let workers = [
        start_worker(&run, "worker-1")?,
        start_worker(&run, "worker-2")?,
    ];
    println!("2 worker processes subscribed; publishing {ORDERS} orders");
    for n in 0..ORDERS {
        let order = json!({"order_id": format!("ORD-{n:04}"), "quantity": 1 + n % 3, "price": 9.5});
        bus.publish(Event::new("order_created", order).with_correlation_id(format!("ORD-{n:04}")))
            .await?;
    }
    tokio::time::timeout(Duration::from_secs(60), finished.notified()).await?;
    println!("all {ORDERS} orders completed");
    for (worker, count) in per_worker.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        println!("{worker} handled {count}");
    }

    for mut child in workers {
        drop(child.stdin.take());
        let status = child.wait()?;
        println!("worker stopped: {status}");
    }
    bus.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> std::result::Result<(), Error> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    match arguments.as_slice() {
        [role, run, name] if role == "worker" => worker(run.clone(), name.clone()).await,
        _ => publisher().await,
    }
}

//! Events per second against worker processes, on one NATS server or on a
//! cluster: the measurement behind BENCHMARKS.md's "Throughput against
//! workers" (`bench/workers.sh` runs it on both and plots the result).
//!
//! For each worker count, a fresh stream is filled with the events first
//! (pipelined publishes, up to 256 acknowledgements outstanding, as the
//! NATS benchmark publishes), then that many worker processes of this
//! binary subscribe at the same moment and share the subscription's
//! durable consumer: each pulls, runs a one-link chain, and acknowledges
//! every event (the transport's at-least-once pattern). The time runs from
//! the go signal until the consumer has nothing pending or unacknowledged.
//!
//! ```text
//! cargo run --release -p examples --example nats-throughput -- \
//!     --urls nats://127.0.0.1:4222 --replicas 1 --events 20000 --workers 1,2,4,8
//! ```
//!
//! Prints one JSON line per worker count.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use modulink::scaling::events::{Event, EventBus, FollowUps, JetStream, JetStreamConfig};
use modulink::{Chain, Context};
use serde_json::json;

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Deliveries each worker process handles at once.
const CONCURRENCY: usize = 64;

fn config(urls: &str, stream: &str, replicas: usize) -> JetStreamConfig {
    JetStreamConfig::new(urls)
        .stream(stream)
        .subject_prefix(stream.to_lowercase())
        .replicas(replicas)
        .concurrency(CONCURRENCY)
        // The consumer starts at the first event the stream holds: the
        // stream is filled before any worker subscribes.
        .replay_history()
}

/// `nats-throughput worker URLS STREAM`: connects, says `ready`, waits
/// for `go`, subscribes, and handles events until its input closes.
async fn worker(urls: &str, stream: &str) -> Result<(), Failure> {
    let bus = EventBus::builder()
        .without_store()
        .follow_ups(FollowUps::Never)
        .build_with(JetStream::connect(config(urls, stream, 1)).await?);
    println!("ready");
    let mut lines = BufReader::new(std::io::stdin()).lines();
    match lines.next() {
        Some(Ok(line)) if line == "go" => {}
        other => return Err(format!("expected go, read {other:?}").into()),
    }
    bus.subscribe(
        "tick",
        Chain::named("handle").link_sync(|ctx: Context| Ok(ctx)),
    )
    .await?;
    tokio::task::spawn_blocking(move || lines.count()).await?;
    bus.shutdown().await;
    Ok(())
}

struct Options {
    urls: String,
    replicas: usize,
    events: usize,
    workers: Vec<usize>,
}

fn options() -> Result<Options, Failure> {
    let mut options = Options {
        urls: "nats://127.0.0.1:4222".to_owned(),
        replicas: 1,
        events: 20_000,
        workers: vec![1, 2, 4, 8],
    };
    let mut arguments = std::env::args().skip(1);
    while let Some(flag) = arguments.next() {
        let mut value = || {
            arguments
                .next()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--urls" => options.urls = value()?,
            "--replicas" => options.replicas = value()?.parse()?,
            "--events" => options.events = value()?.parse()?,
            "--workers" => {
                options.workers = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
            }
            other => return Err(format!("unknown option {other}; see the example's docs").into()),
        }
    }
    Ok(options)
}

/// One measurement: `workers` processes on a stream of `events` events.
async fn measure(options: &Options, workers: usize) -> Result<serde_json::Value, Failure> {
    let stream = format!("THROUGHPUT_{:x}_{workers}", std::process::id());
    let bus = EventBus::builder()
        .without_store()
        .follow_ups(FollowUps::Never)
        .build_with(JetStream::connect(config(&options.urls, &stream, options.replicas)).await?);
    let events: Vec<Event> = (0..options.events)
        .map(|n| Event::new("tick", json!({"n": n})))
        .collect();
    let published = Instant::now();
    for batch in events.chunks(5_000) {
        bus.publish_all(batch.iter().cloned()).await?;
    }
    let publishing = published.elapsed();

    let mut children: Vec<Child> = Vec::new();
    for _ in 0..workers {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["worker", &options.urls, &stream])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        match BufReader::new(stdout).lines().next() {
            Some(Ok(line)) if line == "ready" => children.push(child),
            other => return Err(format!("a worker did not start: {other:?}").into()),
        }
    }
    let started = Instant::now();
    for child in &mut children {
        writeln!(child.stdin.as_mut().ok_or("no stdin")?, "go")?;
    }
    // Done when the consumer (made by the first worker to subscribe) has
    // nothing left pending or unacknowledged.
    loop {
        if let Ok(0) = bus.transport().backlog("tick", "handle").await {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            return Err("the workers did not finish in 5 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let handling = started.elapsed();
    for mut child in children {
        drop(child.stdin.take());
        child.wait()?;
    }
    async_delete(&bus, &stream).await?;
    bus.shutdown().await;
    Ok(json!({
        "replicas": options.replicas,
        "workers": workers,
        "events": options.events,
        "handled_per_second": options.events as f64 / handling.as_secs_f64(),
        "published_per_second": options.events as f64 / publishing.as_secs_f64(),
    }))
}

/// Deletes the measurement's stream, so runs do not fill the servers.
async fn async_delete(bus: &EventBus<JetStream>, stream: &str) -> Result<(), Failure> {
    async_nats::jetstream::new(bus.transport().client().clone())
        .delete_stream(stream)
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    if let [mode, urls, stream] = arguments.as_slice()
        && mode == "worker"
    {
        return worker(urls, stream).await;
    }
    let options = options()?;
    for &workers in &options.workers {
        println!("{}", measure(&options, workers).await?);
    }
    Ok(())
}

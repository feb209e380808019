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
//! Prints one JSON line per worker count. With `--server-pids PID,...` it
//! also reports the CPU time the workers and the servers spent per event
//! while handling (from `/proc`, Linux).

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
        // Room for every worker's handlers at once, up to eight workers:
        // the default (four times one process's handlers) would cap the
        // deliveries in flight across all of them at 256.
        .max_in_flight(CONCURRENCY * 8)
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
    /// The servers' process ids, to measure their CPU time per event.
    server_pids: Vec<u32>,
}

/// CPU time (user and system) process `pid` has used so far, from
/// `/proc/PID/stat` (in clock ticks of 10 ms); zero where there is none.
fn cpu_time(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    Duration::from_millis(ticks * 10)
}

fn total_cpu(pids: impl IntoIterator<Item = u32>) -> Duration {
    pids.into_iter().map(cpu_time).sum()
}

fn options() -> Result<Options, Failure> {
    let mut options = Options {
        urls: "nats://127.0.0.1:4222".to_owned(),
        replicas: 1,
        events: 20_000,
        workers: vec![1, 2, 4, 8],
        server_pids: Vec::new(),
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
            "--server-pids" => {
                options.server_pids = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
            }
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
    let worker_pids: Vec<u32> = children.iter().map(Child::id).collect();
    let (workers_before, servers_before) = (
        total_cpu(worker_pids.iter().copied()),
        total_cpu(options.server_pids.iter().copied()),
    );
    let started = Instant::now();
    for child in &mut children {
        writeln!(child.stdin.as_mut().ok_or("no stdin")?, "go")?;
    }
    // Done when the consumer (made by the first worker to subscribe) has
    // every event acknowledged: its ack floor reached the stream's last
    // sequence (the stream holds only these events). A consumer just made
    // on a cluster can report nothing pending before it has counted, so
    // the pending count alone would end the measurement early.
    let js = async_nats::jetstream::new(bus.transport().client().clone());
    let last = options.events as u64;
    let name = modulink::scaling::events::consumer_name("tick", "handle");
    loop {
        // A request the cluster drops (a consumer's leader is elected just
        // after it is made) would wait out the client's 5 s timeout and
        // count as handling time: each look is bounded instead.
        let look = async {
            let mut consumer = js
                .get_consumer_from_stream::<async_nats::jetstream::consumer::pull::Config, _, _>(
                    &name, &stream,
                )
                .await
                .ok()?;
            consumer
                .info()
                .await
                .ok()
                .map(|info| info.ack_floor.stream_sequence)
        };
        let acknowledged = tokio::time::timeout(Duration::from_millis(100), look)
            .await
            .ok()
            .flatten()
            .is_some_and(|floor| floor >= last);
        if acknowledged {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            return Err("the workers did not finish in 5 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let handling = started.elapsed();
    let worker_cpu = total_cpu(worker_pids.iter().copied()).saturating_sub(workers_before);
    let server_cpu = total_cpu(options.server_pids.iter().copied()).saturating_sub(servers_before);
    let per_event_us = |cpu: Duration| cpu.as_secs_f64() * 1e6 / options.events as f64;
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
        "worker_cpu_us_per_event": per_event_us(worker_cpu),
        "server_cpu_us_per_event": per_event_us(server_cpu),
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

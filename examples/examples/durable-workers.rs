//! Durable executions over worker processes that get killed: a thousand
//! orders, each a four-link chain (reserve, charge, ship, notify), run by
//! three worker processes on one SQLite checkpoint file. Every link calls
//! an effects service on loopback with the link's idempotency key; the
//! service applies each key once and counts what it was sent. One worker is
//! killed with SIGKILL mid-run and started again; its executions resume on
//! the others at the link that was running.
//!
//! - `cargo run -p examples --example durable-workers`: the demo.
//! - `durable-workers worker STORE EFFECTS_URL`: one worker, until its
//!   standard input closes. STORE is a SQLite file, or a NATS URL
//!   (`nats://...`) for a JetStream key-value bucket named by
//!   `DURABLE_BUCKET` (the servers of a cluster comma-separated, with
//!   `DURABLE_REPLICAS` replicas); `WORK_MS` is each link's simulated work.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use modulink::scaling::durable::{
    Durability, Durable, DurableChain, ExecutionStatus, IdempotencyKey, JetStreamCheckpointStore,
    SqliteCheckpointStore,
};
use modulink::{Context, Error, Link};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

type Failure = Box<dyn std::error::Error + Send + Sync>;

const ORDERS: usize = 1_000;
const LINKS: [&str; 4] = ["reserve", "charge", "ship", "notify"];

/// What the effects service was sent: per idempotency key, how many times.
#[derive(Clone, Default)]
struct Effects(Arc<Mutex<HashMap<String, u32>>>);

/// `POST /effects`: applies the effect named by `Idempotency-Key` once,
/// whatever the number of times it is sent, and counts the sends.
async fn effect(State(effects): State<Effects>, headers: HeaderMap) -> Json<Value> {
    let key = headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut sent = effects.0.lock().unwrap_or_else(|p| p.into_inner());
    let count = sent.entry(key).or_default();
    *count += 1;
    Json(json!({"applied": *count == 1}))
}

/// `GET /effects`: the counts.
async fn counts(State(effects): State<Effects>) -> Json<HashMap<String, u32>> {
    Json(effects.0.lock().unwrap_or_else(|p| p.into_inner()).clone())
}

/// Starts the effects service; returns its URL.
async fn effects_service(effects: Effects) -> Result<String, Failure> {
    let app = axum::Router::new()
        .route("/effects", post(effect).get(counts))
        .with_state(effects);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/effects", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// A link that sends its effect with the link's idempotency key, then
/// works for `work` (the window in which a kill interrupts it).
fn link(
    name: &'static str,
    client: reqwest::Client,
    url: String,
    work: Duration,
) -> impl Link<Context> {
    move |ctx: Context| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let key = ctx
                .ext::<IdempotencyKey>()
                .map(ToString::to_string)
                .ok_or_else(|| Error::internal("no idempotency key"))?;
            client
                .post(&url)
                .header("idempotency-key", &key)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|error| Error::unavailable(format!("{name}: {error}")))?;
            tokio::time::sleep(work).await;
            let mut done: Vec<String> = ctx.get("done")?.unwrap_or_default();
            done.push(name.to_owned());
            Ok(ctx.with("done", done))
        }
    }
}

fn orders(url: &str, work: Duration) -> DurableChain<Context> {
    let client = reqwest::Client::new();
    LINKS
        .iter()
        .fold(DurableChain::named("order"), |chain, name| {
            chain.link(*name, link(name, client.clone(), url.to_owned(), work))
        })
}

async fn worker(store: &str, url: &str) -> Result<(), Failure> {
    let name = std::env::var("MODULINK_WORKER_ID")
        .unwrap_or_else(|_| format!("worker-{}", std::process::id()));
    let work = Duration::from_millis(std::env::var("WORK_MS").map_or(Ok(2), |ms| ms.parse())?);
    let durable = if store.starts_with("nats://") {
        let bucket =
            std::env::var("DURABLE_BUCKET").unwrap_or_else(|_| "MODULINK_DURABLE".to_owned());
        let replicas = std::env::var("DURABLE_REPLICAS").map_or(Ok(1), |n| n.parse())?;
        Durable::new(JetStreamCheckpointStore::connect(store, &bucket, replicas).await?)
    } else {
        Durable::new(SqliteCheckpointStore::open(store, Durability::Normal)?)
    };
    let durable = Arc::new(
        durable
            .register(orders(url, work))?
            .lease(Duration::from_secs(2))
            .poll_interval(Duration::from_millis(20)),
    );
    println!("ready");
    // Four executions at a time; all stop when standard input closes. A
    // store that fails (a server restarting) fails a round, not the worker.
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let mut runners = Vec::new();
    for slot in 0..4 {
        let (durable, name, stopped) = (
            Arc::clone(&durable),
            format!("{name}.{slot}"),
            stopped.clone(),
        );
        runners.push(tokio::spawn(async move {
            while !*stopped.borrow() {
                let mut stop = stopped.clone();
                let stop = async move {
                    let _ = stop.wait_for(|stopped| *stopped).await;
                };
                if durable.work(&name, stop).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }));
    }
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    while stdin.next_line().await?.is_some() {}
    stopping.send_replace(true);
    for runner in runners {
        runner.await?;
    }
    Ok(())
}

async fn start_worker(db: &str, url: &str, id: &str) -> Result<Child, Failure> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["worker", db, url])
        .env("MODULINK_WORKER_ID", id)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    match BufReader::new(stdout).lines().next_line().await? {
        Some(line) if line == "ready" => Ok(child),
        other => Err(format!("worker {id} did not start: {other:?}").into()),
    }
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    if let [mode, db, url] = arguments.as_slice()
        && mode == "worker"
    {
        return worker(db, url).await;
    }

    let db = std::env::temp_dir().join(format!("modulink-durable-{}.sqlite", std::process::id()));
    let db_path = db.to_string_lossy().into_owned();
    let effects = Effects::default();
    let url = effects_service(effects.clone()).await?;
    let durable = Durable::new(SqliteCheckpointStore::open(&db, Durability::Normal)?)
        .register(orders(&url, Duration::ZERO))?;
    for n in 0..ORDERS {
        durable
            .start(
                &format!("order-{n:04}"),
                "order",
                Context::new().with("n", n),
            )
            .await?;
    }
    let mut workers = Vec::new();
    for w in 0..3 {
        workers.push(start_worker(&db_path, &url, &format!("w{w}")).await?);
    }
    println!("{ORDERS} orders started; 3 worker processes");

    // Kill one worker once a third of the orders are done, then start a
    // replacement.
    let mut killed = false;
    loop {
        let completed = durable.list(Some(ExecutionStatus::Completed)).await?.len();
        if !killed && completed >= ORDERS / 3 {
            workers[0].start_kill()?;
            workers[0].wait().await?;
            println!("killed worker w0 with SIGKILL at {completed} completed");
            workers[0] = start_worker(&db_path, &url, "w0-again").await?;
            killed = true;
        }
        if completed == ORDERS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for worker in &mut workers {
        drop(worker.stdin.take());
        worker.wait().await?;
    }

    let sent = effects.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let resent: Vec<&String> = sent
        .iter()
        .filter(|(_, count)| **count > 1)
        .map(|(key, _)| key)
        .collect();
    let resumed = durable
        .list(Some(ExecutionStatus::Completed))
        .await?
        .iter()
        .filter(|record| record.claims > 1)
        .count();
    println!(
        "completed {ORDERS}; effects applied {} (one per order and link); sent twice: {} keys; executions resumed by another worker: {resumed}",
        sent.len(),
        resent.len()
    );
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{db_path}{suffix}"));
    }
    Ok(())
}

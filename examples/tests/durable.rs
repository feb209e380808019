//! Durable executions survive their workers: a thousand four-link orders
//! over three worker processes, on a SQLite file and on a JetStream
//! key-value bucket, workers killed with SIGKILL mid-run and started again
//! (and for JetStream the server restarted too), and an idempotent service
//! on loopback that counts every effect by its key.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use modulink::Context;
use modulink::scaling::durable::{
    Durability, Durable, DurableChain, ExecutionStatus, JetStreamCheckpointStore,
    SqliteCheckpointStore,
};

#[path = "support/nats_server.rs"]
mod nats_server;
mod support;
use nats_server::NatsServer;
use support::example_binary;

const ORDERS: usize = 1_000;

type Sent = Arc<Mutex<HashMap<String, u32>>>;

async fn effect(State(sent): State<Sent>, headers: HeaderMap) -> Json<bool> {
    let key = headers["idempotency-key"].to_str().unwrap().to_owned();
    let mut sent = sent.lock().unwrap();
    let count = sent.entry(key).or_default();
    *count += 1;
    // Applied only the first time a key is seen.
    Json(*count == 1)
}

/// A worker process, `WORK_MS` of work in each link after its effect,
/// on `store` (a SQLite file or a NATS URL with bucket `bucket`).
fn worker(store: &str, bucket: &str, url: &str, id: &str, work_ms: u64) -> Child {
    let mut child = Command::new(example_binary("durable-workers"))
        .args(["worker", store, url])
        .env("DURABLE_BUCKET", bucket)
        .env("MODULINK_WORKER_ID", id)
        .env("WORK_MS", work_ms.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "ready", "worker {id} did not start");
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_executions_survive_killed_workers_and_each_effect_happens_once() {
    let db = std::env::temp_dir().join(format!("durable-test-{}.sqlite", std::process::id()));
    let db_path = db.to_string_lossy().into_owned();
    // This process only starts executions and reads their outcome; the
    // chain it registers is never run here.
    let durable = Durable::new(SqliteCheckpointStore::open(&db, Durability::Normal).unwrap())
        .register(DurableChain::<Context>::named("order"))
        .unwrap()
        .poll_interval(Duration::from_millis(20));
    survive(&db_path, "", durable, None).await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{db_path}{suffix}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_jetstream_executions_survive_killed_workers_and_a_server_restart() {
    let mut server = NatsServer::start();
    let url = server.url();
    let bucket = format!("DURABLE_{}", nats_server::uuid_like());
    let durable = Durable::new(
        JetStreamCheckpointStore::connect(&url, &bucket, 1)
            .await
            .unwrap(),
    )
    .register(DurableChain::<Context>::named("order"))
    .unwrap()
    .poll_interval(Duration::from_millis(20));
    survive(&url, &bucket, durable, Some(&mut server)).await;
}

/// Starts the orders, runs three workers on `store`, kills one at each
/// quarter of the run (and restarts `server`, if any, after), and checks
/// every execution and every effect.
async fn survive(
    store: &str,
    bucket: &str,
    durable: Durable<Context>,
    server: Option<&mut NatsServer>,
) {
    let sent: Sent = Arc::default();
    let app = axum::Router::new()
        .route("/effects", post(effect))
        .with_state(Arc::clone(&sent));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/effects", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    for n in 0..ORDERS {
        durable
            .start(
                &format!("order-{n:04}"),
                "order",
                Context::new().with("n", n),
            )
            .await
            .unwrap();
    }
    // Two workers whose links work 3 ms after their effect (a kill lands
    // inside a link), one whose links return at once (a kill lands as
    // often between links, in the checkpoint writes and claims).
    let mut workers = vec![
        worker(store, bucket, &url, "a", 3),
        worker(store, bucket, &url, "b", 3),
        worker(store, bucket, &url, "c", 0),
    ];

    // A kill at each quarter of the run, each worker in turn, each
    // replaced at once.
    let mut kills = 0;
    for (quarter, victim) in [(1, 0), (2, 1), (3, 2)] {
        tokio::time::timeout(Duration::from_secs(60), async {
            while durable
                .list(Some(ExecutionStatus::Completed))
                .await
                .unwrap()
                .len()
                < ORDERS * quarter / 4
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the workers make progress");
        workers[victim].kill().unwrap(); // SIGKILL
        workers[victim].wait().unwrap();
        kills += 1;
        workers[victim] = worker(store, bucket, &url, &format!("{victim}-again"), 3);
    }
    let restarted = server.is_some();
    if let Some(server) = server {
        server.restart(); // SIGKILL, then the same port and store
    }

    for n in 0..ORDERS {
        let id = format!("order-{n:04}");
        let out = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                match durable.result(&id).await {
                    Ok(out) => return out,
                    // The store is back once the server is.
                    Err(_) if restarted => tokio::time::sleep(Duration::from_millis(50)).await,
                    Err(error) => panic!("{id}: {error:#}"),
                }
            }
        })
        .await
        .expect("every execution completes");
        assert_eq!(out.get::<usize>("n").unwrap(), Some(n));
        assert_eq!(
            out.get::<Vec<String>>("done").unwrap().unwrap(),
            ["reserve", "charge", "ship", "notify"]
        );
    }
    for mut worker in workers {
        drop(worker.stdin.take());
        assert!(worker.wait().unwrap().success());
    }

    let sent = sent.lock().unwrap().clone();
    // Each link of each order took effect, once: the service applied every
    // key the first time only.
    assert_eq!(sent.len(), ORDERS * 4);
    for n in 0..ORDERS {
        for link in 0..4 {
            assert!(sent.contains_key(&format!("order-{n:04}/{link}")));
        }
    }
    // Only links running when a worker died (or whose checkpoint the
    // restarted server did not take) were sent again: at most the four in
    // flight per worker and event, never a link that had finished.
    let events = kills + usize::from(restarted) * 3;
    let resent: Vec<(&String, &u32)> = sent.iter().filter(|(_, count)| **count > 1).collect();
    assert!(resent.len() <= events * 4, "{resent:?}");
    // Read from the store itself, not a list that may trail it.
    let mut claims = HashMap::new();
    for n in 0..ORDERS {
        let id = format!("order-{n:04}");
        let record = durable.status(&id).await.unwrap().unwrap();
        claims.insert(id, record.claims);
    }
    for (key, count) in &resent {
        let (execution, _) = key.rsplit_once('/').unwrap();
        assert!(
            claims[execution] > 1,
            "{key} was sent {count} times by one worker"
        );
        assert!(**count as usize <= 1 + events);
    }
    let resumed = claims.values().filter(|claims| **claims > 1).count();
    assert!(resumed >= 1, "no execution was interrupted by the kills");
    println!(
        "{ORDERS} orders, {kills} kills{}: {resumed} executions resumed elsewhere, {} links sent twice",
        if restarted {
            " and a server restart"
        } else {
            ""
        },
        resent.len()
    );
}

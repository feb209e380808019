//! Durable executions survive their workers: a thousand four-link orders
//! over three worker processes on one SQLite file, workers killed with
//! SIGKILL mid-run and started again, and an idempotent service on loopback
//! that counts every effect by its key.

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
    Durability, Durable, DurableChain, ExecutionStatus, SqliteCheckpointStore,
};

mod support;
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

/// A worker process, `WORK_MS` of work in each link after its effect.
fn worker(db: &str, url: &str, id: &str, work_ms: u64) -> Child {
    let mut child = Command::new(example_binary("durable-workers"))
        .args(["worker", db, url])
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
async fn executions_survive_killed_workers_and_each_effect_happens_once() {
    let sent: Sent = Arc::default();
    let app = axum::Router::new()
        .route("/effects", post(effect))
        .with_state(Arc::clone(&sent));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/effects", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let db = std::env::temp_dir().join(format!("durable-test-{}.sqlite", std::process::id()));
    let db_path = db.to_string_lossy().into_owned();
    // This process only starts executions and reads their outcome; the
    // chain it registers is never run here.
    let durable = Durable::new(SqliteCheckpointStore::open(&db, Durability::Normal).unwrap())
        .register(DurableChain::<Context>::named("order"))
        .unwrap()
        .poll_interval(Duration::from_millis(20));
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
        worker(&db_path, &url, "a", 3),
        worker(&db_path, &url, "b", 3),
        worker(&db_path, &url, "c", 0),
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
        workers[victim] = worker(&db_path, &url, &format!("{victim}-again"), 3);
    }

    for n in 0..ORDERS {
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            durable.result(&format!("order-{n:04}")),
        )
        .await
        .expect("every execution completes")
        .unwrap();
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
    // Only links running when a worker died were sent again: at most the
    // four in flight per kill, never a link that had finished.
    let resent: Vec<(&String, &u32)> = sent.iter().filter(|(_, count)| **count > 1).collect();
    assert!(resent.len() <= kills * 4, "{resent:?}");
    let records = durable.list(None).await.unwrap();
    let claims: HashMap<&str, u32> = records.iter().map(|r| (r.id.as_str(), r.claims)).collect();
    for (key, count) in &resent {
        let (execution, _) = key.rsplit_once('/').unwrap();
        assert!(
            claims[execution] > 1,
            "{key} was sent {count} times by one worker"
        );
        assert!(**count <= 1 + kills as u32);
    }
    let resumed = records.iter().filter(|record| record.claims > 1).count();
    assert!(resumed >= 1, "no execution was interrupted by the kills");
    println!(
        "{ORDERS} orders, {kills} kills: {resumed} executions resumed elsewhere, {} links sent twice",
        resent.len()
    );
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{db_path}{suffix}"));
    }
}

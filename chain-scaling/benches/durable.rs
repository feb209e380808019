//! Durable executions on SQLite: the cost of a checkpoint per link against
//! the store's raw write in the same run (a hand-written rusqlite UPDATE on
//! the same file settings), executions per second of a four-link chain for
//! each fsync setting, and how a checkpoint's cost grows with the context.
//!
//! Run with `cargo bench -p chain-scaling --features sqlite,nats --bench durable`
//! (the JetStream row starts its own `nats-server`; without `nats` it is
//! left out).

use std::hint::black_box;
use std::time::{Duration, Instant};

use chain_core::Context;
use chain_scaling::durable::{
    Checkpoint, CheckpointStore, Durability, Durable, DurableChain, ExecutionRecord,
    ExecutionStatus, MemoryCheckpointStore, SqliteCheckpointStore,
};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

#[cfg(feature = "nats")]
#[path = "support/nats_server.rs"]
mod nats_server;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// A SQLite file removed when dropped.
struct File(std::path::PathBuf);

impl File {
    fn new(name: &str) -> Self {
        Self(std::env::temp_dir().join(format!(
            "modulink-bench-{name}-{}.sqlite",
            std::process::id()
        )))
    }
}

impl Drop for File {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

fn settings(durability: Durability) -> (&'static str, &'static str) {
    match durability {
        Durability::Full => ("full", "FULL"),
        Durability::Normal => ("normal", "NORMAL"),
    }
}

/// A context of about `bytes` bytes of JSON.
fn context(bytes: usize) -> Value {
    json!({"order_id": "ORD-1", "note": "x".repeat(bytes.saturating_sub(40))})
}

/// Checkpoints of one execution in a loop, as a worker writes them.
fn checkpoint_cost(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("durable_checkpoint");
    for durability in [Durability::Normal, Durability::Full] {
        let (name, synchronous) = settings(durability);
        let file = File::new(&format!("raw-{name}"));
        // The baseline: the one UPDATE a checkpoint is, written by hand with
        // a cached statement on the same settings.
        let raw = rusqlite::Connection::open(&file.0).expect("open");
        raw.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous};
             CREATE TABLE t (id TEXT PRIMARY KEY, context TEXT, revision INTEGER);
             INSERT INTO t VALUES ('ex-1', '{{}}', 1);"
        ))
        .expect("schema");
        let body = context(100).to_string();
        let mut revision = 1i64;
        group.bench_function(BenchmarkId::new("raw_sqlite_update", name), |b| {
            let mut update = raw
                .prepare_cached(
                    "UPDATE t SET context = ?1, revision = ?2 WHERE id = 'ex-1' AND revision = ?3",
                )
                .expect("statement");
            b.iter(|| {
                let changed = update
                    .execute(rusqlite::params![body, revision + 1, revision])
                    .expect("update");
                assert_eq!(changed, 1);
                revision += 1;
            });
        });

        let file = File::new(&format!("store-{name}"));
        let store = SqliteCheckpointStore::open(&file.0, durability).expect("open");
        let revision = rt.block_on(async {
            store
                .create(ExecutionRecord::new("ex-1", "bench", json!({}), 0))
                .await
                .expect("create");
            let (_, revision) = store
                .claim("w", &["bench".to_owned()], 0, u64::MAX / 2)
                .await
                .expect("claim")
                .expect("claimed");
            revision
        });
        let mut revision = revision;
        let value = context(100);
        group.bench_function(BenchmarkId::new("checkpoint", name), |b| {
            b.iter(|| {
                revision = rt
                    .block_on(store.checkpoint("ex-1", revision, "w", running(value.clone())))
                    .expect("checkpoint");
            });
        });
    }
    group.finish();
}

/// Whole executions of a four-link chain whose links do nothing: start,
/// claim, four checkpoints (the last one finishing), one worker.
fn executions(c: &mut Criterion) {
    let rt = runtime();
    let chain = || {
        (0..4).fold(DurableChain::<Context>::named("bench"), |chain, n| {
            chain.link(format!("link{n}"), |ctx: Context| async move { Ok(ctx) })
        })
    };
    let mut group = c.benchmark_group("durable_executions");
    group.throughput(criterion::Throughput::Elements(1));
    // Every execution gets a new id, across warm-up and samples.
    let next = std::sync::atomic::AtomicU64::new(0);
    let run = |durable: &Durable<Context>, iterations: u64, prefix: &str| {
        rt.block_on(async {
            let started = Instant::now();
            for n in 0..iterations {
                let unique = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let id = format!("{prefix}-{unique}");
                durable
                    .start(&id, "bench", Context::new().with("n", n))
                    .await
                    .expect("start");
                assert!(durable.run_one("w").await.expect("run"));
            }
            started.elapsed()
        })
    };
    for durability in [Durability::Normal, Durability::Full] {
        let (name, _) = settings(durability);
        let file = File::new(&format!("exec-{name}"));
        let durable = Durable::new(SqliteCheckpointStore::open(&file.0, durability).expect("open"))
            .register(chain())
            .expect("register");
        group.bench_function(BenchmarkId::new("sqlite", name), |b| {
            b.iter_custom(|iterations| run(&durable, iterations, name));
        });
    }
    // On a JetStream key-value bucket (R1, file storage) of a private
    // server on loopback.
    #[cfg(feature = "nats")]
    {
        let server = nats_server::Server::start("durable-nats");
        let durable = rt.block_on(async {
            Durable::new(
                chain_scaling::durable::JetStreamCheckpointStore::connect(
                    &server.url(),
                    "BENCH_DURABLE",
                    1,
                )
                .await
                .expect("bucket"),
            )
            .register(chain())
            .expect("register")
        });
        group.bench_function(BenchmarkId::new("jetstream", "r1"), |b| {
            b.iter_custom(|iterations| run(&durable, iterations, "jetstream"));
        });
    }
    let durable = Durable::new(MemoryCheckpointStore::new())
        .register(chain())
        .expect("register");
    group.bench_function(BenchmarkId::new("memory", "none"), |b| {
        b.iter_custom(|iterations| black_box(run(&durable, iterations, "memory")));
    });
    group.finish();
}

/// A checkpoint's cost as the context grows.
fn context_size(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("durable_checkpoint_context_size");
    let file = File::new("size");
    let store = SqliteCheckpointStore::open(&file.0, Durability::Normal).expect("open");
    let mut revision = rt.block_on(async {
        store
            .create(ExecutionRecord::new("ex-1", "bench", json!({}), 0))
            .await
            .expect("create");
        store
            .claim("w", &["bench".to_owned()], 0, u64::MAX / 2)
            .await
            .expect("claim")
            .expect("claimed")
            .1
    });
    for bytes in [100usize, 1_000, 10_000, 100_000] {
        let value = context(bytes);
        group.throughput(criterion::Throughput::Bytes(bytes as u64));
        group.bench_with_input(BenchmarkId::from_parameter(bytes), &value, |b, value| {
            b.iter(|| {
                revision = rt
                    .block_on(store.checkpoint("ex-1", revision, "w", running(value.clone())))
                    .expect("checkpoint");
            });
        });
    }
    group.finish();
}

/// The checkpoint every iteration writes: still running, at link 1, under
/// a lease that never runs out during the benchmark.
fn running(context: serde_json::Value) -> Checkpoint {
    Checkpoint {
        status: ExecutionStatus::Running,
        next_link: 1,
        context,
        error: None,
        lease_until_ms: Some(u64::MAX / 2),
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = checkpoint_cost, executions, context_size
}
criterion_main!(benches);

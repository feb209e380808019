//! The checkpoint stores' contract, the same for each store: a start is
//! idempotent, a claim is exclusive while its lease lasts, and every write
//! is a compare-and-swap, so two workers never both advance an execution.
#![cfg(feature = "sqlite")]

use std::sync::Arc;

use chain_scaling::durable::{
    CheckpointStore, Durability, ExecutionRecord, MemoryCheckpointStore, SqliteCheckpointStore,
};
use serde_json::json;

/// A fresh SQLite file per test, removed with the directory.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "modulink-durable-{name}-{}-{}",
            std::process::id(),
            chain_scaling::durable::now_ms()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self) -> std::path::PathBuf {
        self.0.join("checkpoints.sqlite")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[path = "durable_contract.rs"]
mod contract;
use contract::{LEASE, T0, chains, racing_workers, running, the_contract};

#[tokio::test]
async fn the_memory_store_keeps_the_contract() {
    the_contract(&MemoryCheckpointStore::new()).await;
}

#[tokio::test]
async fn the_sqlite_store_keeps_the_contract_for_each_durability() {
    for durability in [Durability::Full, Durability::Normal] {
        let dir = TempDir::new("contract");
        the_contract(&SqliteCheckpointStore::open(dir.file(), durability).unwrap()).await;
    }
}

#[tokio::test]
async fn checkpoints_survive_reopening_the_file() {
    let dir = TempDir::new("reopen");
    {
        let store = SqliteCheckpointStore::open(dir.file(), Durability::Full).unwrap();
        store
            .create(ExecutionRecord::new(
                "ex-1",
                "payment",
                json!({"step": 0}),
                T0,
            ))
            .await
            .unwrap();
        let (_, revision) = store
            .claim("w1", &chains(), T0, T0 + LEASE)
            .await
            .unwrap()
            .unwrap();
        store
            .checkpoint(
                "ex-1",
                revision,
                "w1",
                running(2, json!({"step": 2}), T0 + LEASE),
            )
            .await
            .unwrap();
    }
    let store = SqliteCheckpointStore::open(dir.file(), Durability::Full).unwrap();
    let (record, _) = store.get("ex-1").await.unwrap().unwrap();
    assert_eq!(
        (record.next_link, record.context.clone()),
        (2, json!({"step": 2}))
    );
    // Its worker is gone: once the lease is out, another resumes at link 2.
    let (resumed, _) = store
        .claim("w2", &chains(), T0 + LEASE, T0 + 2 * LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((resumed.next_link, resumed.claims), (2, 2));
}

/// Workers in separate processes each have their own connection to the
/// file: eight of them race for one expired lease, and for one revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_workers_never_both_take_or_advance_an_execution() {
    let dir = TempDir::new("race");
    let stores: Vec<Arc<dyn CheckpointStore>> = (0..8)
        .map(|_| {
            Arc::new(SqliteCheckpointStore::open(dir.file(), Durability::Normal).unwrap())
                as Arc<dyn CheckpointStore>
        })
        .collect();
    racing_workers(&stores).await;
}

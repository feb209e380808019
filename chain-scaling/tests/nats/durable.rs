//! Durable executions on a JetStream key-value bucket: the store contract,
//! executions shared by workers with their own connections, and a
//! nats-server restart mid-run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chain_core::{Context, Error};
use chain_scaling::durable::{
    Durable, DurableChain, ExecutionStatus, IdempotencyKey, JetStreamCheckpointStore,
};
use tokio::sync::Notify;

#[path = "../durable_contract.rs"]
mod contract;

use super::server::{NatsServer, shared_or_private, uuid_like};

async fn store(url: &str, bucket: &str) -> JetStreamCheckpointStore {
    let client = async_nats::connect(url).await.unwrap();
    JetStreamCheckpointStore::open(client, bucket, 1)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_jetstream_store_keeps_the_contract() {
    let (url, _server) = shared_or_private();
    contract::the_contract(&store(&url, &format!("DURABLE_{}", uuid_like())).await).await;
}

/// Eight workers, each with its own connection to the server, race for
/// one expired lease and for one revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_workers_never_both_take_or_advance_an_execution() {
    let (url, _server) = shared_or_private();
    let bucket = format!("DURABLE_{}", uuid_like());
    let mut stores: Vec<Arc<dyn chain_scaling::durable::CheckpointStore>> = Vec::new();
    for _ in 0..8 {
        stores.push(Arc::new(store(&url, &bucket).await));
    }
    contract::racing_workers(&stores).await;
}

/// Effects by idempotency key: how many times each was sent.
#[derive(Clone, Default)]
struct Effects(Arc<Mutex<HashMap<String, u32>>>);

fn chain(effects: &Effects) -> DurableChain<Context> {
    (0..4).fold(DurableChain::named("order"), |chain, n| {
        let effects = effects.clone();
        chain.link(format!("step{n}"), move |ctx: Context| {
            let effects = effects.clone();
            async move {
                let key = ctx
                    .ext::<IdempotencyKey>()
                    .ok_or_else(|| Error::internal("no key"))?
                    .to_string();
                *effects.0.lock().unwrap().entry(key).or_default() += 1;
                let done: u32 = ctx.get("done")?.unwrap_or(0);
                Ok(ctx.with("done", done + 1))
            }
        })
    })
}

/// Workers, each with its own connection and store (as processes would
/// have), run until `stop`.
async fn workers(
    url: &str,
    bucket: &str,
    effects: &Effects,
    count: usize,
    stop: &Arc<Notify>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut handles = Vec::new();
    for n in 0..count {
        let durable = Durable::new(store(url, bucket).await)
            .register(chain(effects))
            .unwrap()
            .lease(Duration::from_secs(3))
            .poll_interval(Duration::from_millis(10));
        let stop = Arc::clone(stop);
        handles.push(tokio::spawn(async move {
            // A lost connection fails a round; the worker tries again.
            loop {
                let stopped = stop.notified();
                match durable.work(&format!("w{n}"), stopped).await {
                    Ok(()) => return,
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }));
    }
    handles
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_complete_through_a_server_restart_each_effect_once() {
    let mut server = NatsServer::start();
    let url = server.url();
    let bucket = format!("DURABLE_{}", uuid_like());
    let effects = Effects::default();
    let starter = Durable::new(store(&url, &bucket).await)
        .register(chain(&effects))
        .unwrap()
        .poll_interval(Duration::from_millis(20));
    const EXECUTIONS: usize = 200;
    for n in 0..EXECUTIONS {
        starter
            .start(&format!("ex-{n:03}"), "order", Context::new())
            .await
            .unwrap();
    }
    let stop = Arc::new(Notify::new());
    let handles = workers(&url, &bucket, &effects, 3, &stop).await;

    // Restart the server once a quarter of the work is done.
    tokio::time::timeout(Duration::from_secs(60), async {
        while effects.0.lock().unwrap().len() < EXECUTIONS {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the workers make progress");
    server.restart();

    for n in 0..EXECUTIONS {
        let out = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                match starter.result(&format!("ex-{n:03}")).await {
                    Ok(out) => return out,
                    // The starter's connection is back after the restart.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        })
        .await
        .expect("every execution completes");
        assert_eq!(out.get::<u32>("done").unwrap(), Some(4));
    }
    let completed = starter
        .list(Some(ExecutionStatus::Completed))
        .await
        .unwrap();
    assert_eq!(completed.len(), EXECUTIONS);
    let sent = effects.0.lock().unwrap().clone();
    assert_eq!(
        sent.len(),
        EXECUTIONS * 4,
        "every link of every execution took effect"
    );
    // A link is sent again only when its checkpoint could not be written
    // (the server was down): a few, never a finished link twice over.
    let resent = sent.values().filter(|count| **count > 1).count();
    assert!(resent <= 3 * 4, "{resent} links sent more than once");
    stop.notify_waiters();
    for handle in handles {
        handle.await.unwrap();
    }
}

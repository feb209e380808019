//! Durable executions run link by link: resumed after a worker dies at the
//! link that was running, never re-running a finished link, each link's
//! effects counted by its idempotency key.
#![cfg(feature = "sqlite")]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chain_core::{Context, Error, ErrorKind, Extensions, HasExtensions};
use chain_scaling::durable::{
    CheckpointStore, Durability, Durable, DurableChain, ExecutionStatus, IdempotencyKey,
    MemoryCheckpointStore, SqliteCheckpointStore,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// Effects by idempotency key, as a service that deduplicates counts them:
/// how many times each key was sent.
#[derive(Clone, Default)]
struct Effects(Arc<Mutex<HashMap<String, u32>>>);

impl Effects {
    fn record(&self, key: &IdempotencyKey) {
        *self.0.lock().unwrap().entry(key.to_string()).or_default() += 1;
    }

    fn sent(&self, key: &str) -> u32 {
        self.0.lock().unwrap().get(key).copied().unwrap_or(0)
    }
}

/// A link that adds `step` to the context's `steps`, recording its effect.
fn step(effects: &Effects, step: &'static str) -> impl chain_core::Link<Context> {
    let effects = effects.clone();
    move |ctx: Context| {
        let effects = effects.clone();
        async move {
            let key = ctx
                .ext::<IdempotencyKey>()
                .cloned()
                .ok_or_else(|| Error::internal("no idempotency key"))?;
            effects.record(&key);
            let mut steps: Vec<String> = ctx.get("steps")?.unwrap_or_default();
            steps.push(step.to_owned());
            Ok(ctx.with("steps", steps))
        }
    }
}

fn four_links(effects: &Effects) -> DurableChain<Context> {
    DurableChain::named("order")
        .link("reserve", step(effects, "reserve"))
        .link("charge", step(effects, "charge"))
        .link("ship", step(effects, "ship"))
        .link("notify", step(effects, "notify"))
}

struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str) -> Self {
        Self(std::env::temp_dir().join(format!(
            "modulink-durable-engine-{name}-{}-{}.sqlite",
            std::process::id(),
            chain_scaling::durable::now_ms()
        )))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

async fn many_executions_over_three_workers(store: impl CheckpointStore) {
    let effects = Effects::default();
    let durable = Arc::new(
        Durable::new(store)
            .register(four_links(&effects))
            .unwrap()
            .poll_interval(Duration::from_millis(5)),
    );
    for n in 0..200 {
        durable
            .start(&format!("ex-{n}"), "order", Context::new().with("n", n))
            .await
            .unwrap();
    }
    let stop = Arc::new(Notify::new());
    let workers: Vec<_> = (0..3)
        .map(|w| {
            let (durable, stop) = (Arc::clone(&durable), Arc::clone(&stop));
            tokio::spawn(async move { durable.work(&format!("w{w}"), stop.notified()).await })
        })
        .collect();
    for n in 0..200 {
        let out = tokio::time::timeout(Duration::from_secs(30), durable.result(&format!("ex-{n}")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out.get::<u32>("n").unwrap(), Some(n));
        assert_eq!(
            out.get::<Vec<String>>("steps").unwrap().unwrap(),
            ["reserve", "charge", "ship", "notify"]
        );
        for link in 0..4 {
            assert_eq!(
                effects.sent(&format!("ex-{n}/{link}")),
                1,
                "ex-{n} link {link}"
            );
        }
    }
    stop.notify_waiters();
    for worker in workers {
        worker.await.unwrap().unwrap();
    }
    assert_eq!(
        durable
            .list(Some(ExecutionStatus::Completed))
            .await
            .unwrap()
            .len(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_complete_over_several_workers_each_link_once() {
    many_executions_over_three_workers(MemoryCheckpointStore::new()).await;
    let file = TempFile::new("many");
    many_executions_over_three_workers(
        SqliteCheckpointStore::open(&file.0, Durability::Normal).unwrap(),
    )
    .await;
}

/// A worker dies inside link #2 (its task is aborted, as a killed process
/// stops): its lease runs out, another worker resumes at link #2, and
/// links #0 and #1 never run again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_execution_resumes_at_the_link_it_was_running() {
    let file = TempFile::new("resume");
    let effects = Effects::default();
    let first_attempt = Arc::new(Notify::new());
    let reached = Arc::clone(&first_attempt);
    let hang_once = Arc::new(Mutex::new(true));
    let ship = {
        let (effects, hang_once) = (effects.clone(), Arc::clone(&hang_once));
        move |ctx: Context| {
            let (effects, hang_once, reached) = (
                effects.clone(),
                Arc::clone(&hang_once),
                Arc::clone(&reached),
            );
            async move {
                effects.record(ctx.ext::<IdempotencyKey>().unwrap());
                let hang = std::mem::replace(&mut *hang_once.lock().unwrap(), false);
                if hang {
                    reached.notify_one();
                    std::future::pending::<()>().await;
                }
                let mut steps: Vec<String> = ctx.get("steps")?.unwrap_or_default();
                steps.push("ship".to_owned());
                Ok(ctx.with("steps", steps))
            }
        }
    };
    let chain = DurableChain::named("order")
        .link("reserve", step(&effects, "reserve"))
        .link("charge", step(&effects, "charge"))
        .link("ship", ship)
        .link("notify", step(&effects, "notify"));
    let durable = Arc::new(
        Durable::new(SqliteCheckpointStore::open(&file.0, Durability::Full).unwrap())
            .register(chain)
            .unwrap()
            .lease(Duration::from_millis(300))
            .poll_interval(Duration::from_millis(10)),
    );
    durable
        .start("ex-1", "order", Context::new())
        .await
        .unwrap();

    let doomed = {
        let durable = Arc::clone(&durable);
        tokio::spawn(async move { durable.run_one("doomed").await })
    };
    tokio::time::timeout(Duration::from_secs(10), first_attempt.notified())
        .await
        .unwrap();
    let running = durable.status("ex-1").await.unwrap().unwrap();
    assert_eq!(
        (running.status, running.next_link),
        (ExecutionStatus::Running, 2)
    );
    doomed.abort();

    // The survivor waits out the lease, then takes over.
    let stop = Arc::new(Notify::new());
    let survivor = {
        let (durable, stop) = (Arc::clone(&durable), Arc::clone(&stop));
        tokio::spawn(async move { durable.work("survivor", stop.notified()).await })
    };
    let out = tokio::time::timeout(Duration::from_secs(10), durable.result("ex-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        out.get::<Vec<String>>("steps").unwrap().unwrap(),
        ["reserve", "charge", "ship", "notify"]
    );
    assert_eq!(effects.sent("ex-1/0"), 1, "a finished link ran again");
    assert_eq!(effects.sent("ex-1/1"), 1, "a finished link ran again");
    assert_eq!(
        effects.sent("ex-1/2"),
        2,
        "the interrupted link runs again, with the same key"
    );
    assert_eq!(effects.sent("ex-1/3"), 1);
    let record = durable.status("ex-1").await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.claims),
        (ExecutionStatus::Completed, 2)
    );
    stop.notify_waiters();
    survivor.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_failed_execution_keeps_its_error_and_retries_from_the_failing_link() {
    let effects = Effects::default();
    let fail_once = Arc::new(Mutex::new(true));
    let flaky = {
        let (effects, fail_once) = (effects.clone(), Arc::clone(&fail_once));
        move |ctx: Context| {
            let (effects, fail_once) = (effects.clone(), Arc::clone(&fail_once));
            async move {
                effects.record(ctx.ext::<IdempotencyKey>().unwrap());
                if std::mem::replace(&mut *fail_once.lock().unwrap(), false) {
                    return Err(Error::unavailable("the card processor is down"));
                }
                Ok(ctx.with("charged", true))
            }
        }
    };
    let durable = Durable::new(MemoryCheckpointStore::new())
        .register(
            DurableChain::named("order")
                .link("reserve", step(&effects, "reserve"))
                .link("charge", flaky),
        )
        .unwrap();
    durable
        .start("ex-1", "order", Context::new().with("amount", 7))
        .await
        .unwrap();
    assert!(durable.run_one("w").await.unwrap());
    let failed = durable.status("ex-1").await.unwrap().unwrap();
    assert_eq!(
        (failed.status, failed.next_link),
        (ExecutionStatus::Failed, 1)
    );
    assert!(
        failed
            .error
            .as_deref()
            .unwrap()
            .contains("card processor is down")
    );
    // The context it failed on: after `reserve`, before `charge`.
    assert_eq!(failed.context["steps"], serde_json::json!(["reserve"]));
    let error = durable.result("ex-1").await.unwrap_err();
    assert!(error.to_string().contains("failed at link #1"), "{error}");

    assert!(durable.retry("ex-1").await.unwrap());
    assert!(
        !durable.retry("ex-1").await.unwrap(),
        "only a failed execution is retried"
    );
    assert!(durable.run_one("w").await.unwrap());
    let out = durable.result("ex-1").await.unwrap();
    assert_eq!(out.get::<bool>("charged").unwrap(), Some(true));
    assert_eq!((effects.sent("ex-1/0"), effects.sent("ex-1/1")), (1, 2));
    assert!(!durable.run_one("w").await.unwrap(), "nothing left to run");
}

#[tokio::test]
async fn starts_are_idempotent_and_unknown_chains_are_errors() {
    let effects = Effects::default();
    let durable = Durable::new(MemoryCheckpointStore::new())
        .register(four_links(&effects))
        .unwrap();
    let first = durable
        .start("ex-1", "order", Context::new().with("n", 1))
        .await
        .unwrap();
    let again = durable
        .start("ex-1", "order", Context::new().with("n", 2))
        .await
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(again.context["n"], 1);
    let unknown = durable
        .start("ex-2", "refund", Context::new())
        .await
        .unwrap_err();
    assert_eq!(unknown.kind(), ErrorKind::NotFound);
    assert!(
        unknown.to_string().contains("no durable chain `refund`"),
        "{unknown}"
    );
    let twice = Durable::<Context>::new(MemoryCheckpointStore::new())
        .register(four_links(&effects))
        .unwrap()
        .register(four_links(&effects))
        .unwrap_err();
    assert_eq!(twice.kind(), ErrorKind::Conflict);

    // A worker that does not know a chain leaves its executions alone.
    let other = Durable::<Context>::new(MemoryCheckpointStore::new());
    assert!(!other.run_one("w").await.unwrap());
}

/// A typed context: its fields are stored, its extensions are not.
#[derive(Debug, Serialize, Deserialize)]
struct Payment {
    amount_cents: u64,
    receipt: Option<String>,
    #[serde(skip)]
    extensions: Extensions,
}

impl HasExtensions for Payment {
    fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }
}

#[tokio::test]
async fn typed_contexts_are_stored_as_json() {
    let durable = Durable::new(MemoryCheckpointStore::new())
        .register(DurableChain::named("payment").link(
            "charge",
            |mut payment: Payment| async move {
                let key = payment
                    .extensions()
                    .get::<IdempotencyKey>()
                    .unwrap()
                    .to_string();
                payment.receipt = Some(format!("receipt for {key}"));
                Ok(payment)
            },
        ))
        .unwrap();
    durable
        .start(
            "pay-1",
            "payment",
            Payment {
                amount_cents: 4200,
                receipt: None,
                extensions: Extensions::default(),
            },
        )
        .await
        .unwrap();
    assert!(durable.run_one("w").await.unwrap());
    let paid = durable.result("pay-1").await.unwrap();
    assert_eq!(paid.amount_cents, 4200);
    assert_eq!(paid.receipt.as_deref(), Some("receipt for pay-1/0"));
}

/// Runs `durable`'s executions as `worker` until `done` holds of the
/// store, looking every few milliseconds; panics after 10 s.
async fn run_until<F>(durable: &Durable<Context>, worker: &str, mut done: F)
where
    F: AsyncFnMut(&Durable<Context>) -> bool,
{
    tokio::time::timeout(Duration::from_secs(10), async {
        while !done(durable).await {
            if !durable.run_one(worker).await.unwrap() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    })
    .await
    .expect("the executions finish within 10 s");
}

/// A durable sleep between two links: the execution is released to wait
/// (pending, no lease, its wake time stored), no worker can claim it before
/// the time, the wait survives reopening the store (every worker gone),
/// and the next link runs after it, the first never again.
#[tokio::test]
async fn a_durable_sleep_waits_through_a_restart_and_then_goes_on() {
    let file = TempFile::new("sleep");
    let effects = Effects::default();
    let chain = |effects: &Effects| {
        DurableChain::named("order")
            .link("reserve", step(effects, "reserve"))
            .sleep("wait", Duration::from_millis(300))
            .link("ship", step(effects, "ship"))
    };
    let started = std::time::Instant::now();
    {
        let durable = Durable::new(SqliteCheckpointStore::open(&file.0, Durability::Full).unwrap())
            .register(chain(&effects))
            .unwrap();
        durable
            .start("order-1", "order", Context::new())
            .await
            .unwrap();
        // Runs `reserve` and the sleep, then lets the execution go.
        let before = chain_scaling::durable::now_ms();
        assert!(durable.run_one("w1").await.unwrap());
        let waiting = durable.status("order-1").await.unwrap().unwrap();
        assert_eq!(waiting.status, ExecutionStatus::Pending);
        assert_eq!(waiting.next_link, 2);
        assert_eq!(waiting.lease_owner, None);
        let wakes = waiting.wakes_at_ms().expect("a stored wake time");
        assert!(wakes >= before + 300, "{waiting:?}");
        // Not claimable before its time.
        assert!(!durable.run_one("w1").await.unwrap());
    }
    // Every worker gone; a new process opens the store.
    let durable = Durable::new(SqliteCheckpointStore::open(&file.0, Durability::Full).unwrap())
        .register(chain(&effects))
        .unwrap();
    run_until(&durable, "w2", async |durable: &Durable<Context>| {
        durable.status("order-1").await.unwrap().unwrap().status == ExecutionStatus::Completed
    })
    .await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    let out = durable.result("order-1").await.unwrap();
    assert_eq!(
        out.get::<Vec<String>>("steps").unwrap().unwrap(),
        ["reserve", "ship"]
    );
    assert_eq!(
        (
            effects.sent("order-1/0"),
            effects.sent("order-1/1"),
            effects.sent("order-1/2")
        ),
        (1, 0, 1)
    );
}

/// "Check the payment again in 100 ms": a link that asks to run again
/// after a delay runs again on the context it returned, with the same
/// idempotency key, no sooner than the delay, until it goes on.
#[tokio::test]
async fn a_link_can_run_again_after_a_delay_until_it_goes_on() {
    let checks = Arc::new(Mutex::new(Vec::<(std::time::Instant, String)>::new()));
    let seen = Arc::clone(&checks);
    let check_payment = move |ctx: Context| {
        let seen = Arc::clone(&seen);
        async move {
            let key = ctx.ext::<IdempotencyKey>().unwrap().to_string();
            seen.lock().unwrap().push((std::time::Instant::now(), key));
            let asked: u32 = ctx.get("asked")?.unwrap_or(0) + 1;
            let ctx = ctx.with("asked", asked);
            if asked < 3 {
                return Ok(ctx.with_ext(chain_scaling::durable::Wake::again_after(
                    Duration::from_millis(100),
                )));
            }
            Ok(ctx.with("settled", true))
        }
    };
    let durable = Durable::new(MemoryCheckpointStore::new())
        .register(
            DurableChain::named("payment")
                .link("charge", |ctx: Context| async move {
                    Ok(ctx.with("charged", true))
                })
                .link("check_payment", check_payment),
        )
        .unwrap();
    durable
        .start("pay-1", "payment", Context::new())
        .await
        .unwrap();
    run_until(&durable, "w", async |durable: &Durable<Context>| {
        durable.status("pay-1").await.unwrap().unwrap().status == ExecutionStatus::Completed
    })
    .await;
    let out = durable.result("pay-1").await.unwrap();
    assert_eq!(out.get::<u32>("asked").unwrap(), Some(3));
    assert_eq!(out.get::<bool>("settled").unwrap(), Some(true));
    // Woken twice: three claims in all.
    assert_eq!(durable.status("pay-1").await.unwrap().unwrap().claims, 3);
    let checks = checks.lock().unwrap();
    assert_eq!(checks.len(), 3);
    for pair in checks.windows(2) {
        assert!(pair[1].0 - pair[0].0 >= Duration::from_millis(100));
        assert_eq!(pair[1].1, "pay-1/1");
    }
}

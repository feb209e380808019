//! The contract every checkpoint store keeps, run against each store by
//! the tests of that store.

// Each test binary that includes this file uses its own part of it.
#![allow(dead_code)]

use std::sync::Arc;

use chain_core::ErrorKind;
use chain_scaling::durable::{Checkpoint, CheckpointStore, ExecutionRecord, ExecutionStatus};
use serde_json::json;

pub(crate) const T0: u64 = 1_000_000;
pub(crate) const LEASE: u64 = 30_000;

pub(crate) fn chains() -> Vec<String> {
    vec!["payment".to_owned()]
}

pub(crate) fn running(next_link: usize, context: serde_json::Value, until: u64) -> Checkpoint {
    Checkpoint {
        status: ExecutionStatus::Running,
        next_link,
        context,
        error: None,
        lease_until_ms: Some(until),
    }
}

pub(crate) async fn the_contract(store: &dyn CheckpointStore) {
    // Starting twice returns the first execution, unchanged.
    let (first, created) = store
        .create(ExecutionRecord::new(
            "ex-1",
            "payment",
            json!({"amount": 42}),
            T0,
        ))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(first.status, ExecutionStatus::Pending);
    let (again, created) = store
        .create(ExecutionRecord::new(
            "ex-1",
            "payment",
            json!({"amount": 999}),
            T0 + 1,
        ))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again.context, json!({"amount": 42}));

    // Only chains the worker has are claimed.
    assert!(
        store
            .claim("w1", &["other".to_owned()], T0, T0 + LEASE)
            .await
            .unwrap()
            .is_none()
    );
    let (claimed, revision) = store
        .claim("w1", &chains(), T0, T0 + LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.status, ExecutionStatus::Running);
    assert_eq!(claimed.lease_owner.as_deref(), Some("w1"));
    assert_eq!(claimed.claims, 1);
    // Held: nobody else gets it while the lease lasts.
    assert!(
        store
            .claim("w2", &chains(), T0 + 1, T0 + LEASE)
            .await
            .unwrap()
            .is_none()
    );

    // A checkpoint moves it on; the old revision is spent.
    let after_first = store
        .checkpoint(
            "ex-1",
            revision,
            "w1",
            running(1, json!({"amount": 42, "charged": true}), T0 + LEASE),
        )
        .await
        .unwrap();
    assert!(after_first > revision);
    let stale = store
        .checkpoint("ex-1", revision, "w1", running(2, json!({}), T0 + LEASE))
        .await
        .unwrap_err();
    assert_eq!(stale.kind(), ErrorKind::Conflict);
    store
        .renew("ex-1", after_first, "w1", T0 + 2 * LEASE)
        .await
        .unwrap();

    // The lease runs out (w1 died): w2 claims it where w1 left it, and w1
    // can no longer write, checkpoint or renew.
    let expired = T0 + 2 * LEASE;
    let (taken, taken_at) = store
        .claim("w2", &chains(), expired, expired + LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((taken.next_link, taken.claims), (1, 2));
    assert_eq!(taken.context["charged"], true);
    let late = store
        .checkpoint(
            "ex-1",
            after_first,
            "w1",
            running(2, json!({}), expired + LEASE),
        )
        .await
        .unwrap_err();
    assert_eq!(late.kind(), ErrorKind::Conflict);
    assert_eq!(
        store
            .renew("ex-1", after_first, "w1", expired + LEASE)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );
    // Nor can anyone but the lease holder, even at the right revision.
    assert_eq!(
        store
            .checkpoint(
                "ex-1",
                taken_at,
                "w1",
                running(2, json!({}), expired + LEASE)
            )
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );

    // Finished: not claimable, listed as completed, with its result.
    store
        .checkpoint(
            "ex-1",
            taken_at,
            "w2",
            Checkpoint {
                status: ExecutionStatus::Completed,
                next_link: 3,
                context: json!({"receipt": "r-1"}),
                error: None,
                lease_until_ms: None,
            },
        )
        .await
        .unwrap();
    assert!(
        store
            .claim("w3", &chains(), u64::MAX / 2, u64::MAX / 2)
            .await
            .unwrap()
            .is_none()
    );
    let (done, _) = store.get("ex-1").await.unwrap().unwrap();
    assert_eq!(
        (done.status, done.next_link, done.lease_owner),
        (ExecutionStatus::Completed, 3, None)
    );
    assert_eq!(done.context, json!({"receipt": "r-1"}));

    // A failed one keeps its error and the context it failed on.
    store
        .create(ExecutionRecord::new(
            "ex-2",
            "payment",
            json!({"amount": -1}),
            T0 + 5,
        ))
        .await
        .unwrap();
    let (_, revision) = store
        .claim("w3", &chains(), T0, T0 + LEASE)
        .await
        .unwrap()
        .unwrap();
    store
        .checkpoint(
            "ex-2",
            revision,
            "w3",
            Checkpoint {
                status: ExecutionStatus::Failed,
                next_link: 0,
                context: json!({"amount": -1}),
                error: Some("validation error: a negative amount".to_owned()),
                lease_until_ms: None,
            },
        )
        .await
        .unwrap();
    let failed = store.list(Some(ExecutionStatus::Failed)).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        failed[0].error.as_deref(),
        Some("validation error: a negative amount")
    );
    let all: Vec<String> = store
        .list(None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(all, ["ex-1", "ex-2"], "oldest first");

    assert_eq!(
        store
            .checkpoint("nope", revision, "w3", running(0, json!({}), T0))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert!(store.get("nope").await.unwrap().is_none());

    // A durable timer: released pending with a wake time, without an
    // owner, and not claimed before that time, then claimed as usual. (A
    // chain of its own, so no other execution is claimed instead.)
    let timers = vec!["timer".to_owned()];
    let wake = T0 + 500 * LEASE;
    store
        .create(ExecutionRecord::new("ex-3", "timer", json!({}), T0 + 2))
        .await
        .unwrap();
    let (_, revision) = store
        .claim("w4", &timers, T0 + 100 * LEASE, T0 + 101 * LEASE)
        .await
        .unwrap()
        .unwrap();
    store
        .checkpoint(
            "ex-3",
            revision,
            "w4",
            Checkpoint {
                status: ExecutionStatus::Pending,
                next_link: 1,
                context: json!({"waited": true}),
                error: None,
                lease_until_ms: Some(wake),
            },
        )
        .await
        .unwrap();
    let (waiting, _) = store.get("ex-3").await.unwrap().unwrap();
    assert_eq!(
        (
            waiting.status,
            waiting.lease_owner.as_deref(),
            waiting.wakes_at_ms()
        ),
        (ExecutionStatus::Pending, None, Some(wake))
    );
    assert!(
        store
            .claim("w5", &timers, wake - 1, wake + LEASE)
            .await
            .unwrap()
            .is_none()
    );
    let (woken, _) = store
        .claim("w5", &timers, wake, wake + LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            woken.id.as_str(),
            woken.next_link,
            woken.claims,
            woken.status
        ),
        ("ex-3", 1, 2, ExecutionStatus::Running)
    );
}

/// Eight workers, each with its own store instance over the same
/// executions (`stores`, a connection each), race for one expired lease,
/// twenty times: one claim wins each time. The worker that held it first
/// cannot write; of eight writers holding one revision, one checkpoint
/// wins.
pub(crate) async fn racing_workers(stores: &[Arc<dyn CheckpointStore>]) {
    let setup = &stores[0];
    setup
        .create(ExecutionRecord::new("race-1", "payment", json!({}), T0))
        .await
        .unwrap();
    let (_, held) = setup
        .claim("dead", &chains(), T0, T0 + LEASE)
        .await
        .unwrap()
        .unwrap();

    for round in 0..20u64 {
        let now = T0 + (round + 1) * 10 * LEASE;
        let racers: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(n, store)| {
                let store = Arc::clone(store);
                tokio::spawn(async move {
                    let worker = format!("w{n}");
                    store
                        .claim(&worker, &chains(), now, now + LEASE)
                        .await
                        .unwrap()
                        .map(|(_, revision)| (worker, revision))
                })
            })
            .collect();
        let mut winners = Vec::new();
        for racer in racers {
            winners.extend(racer.await.unwrap());
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
    }
    // The worker that died first cannot write.
    assert_eq!(
        setup
            .checkpoint("race-1", held, "dead", running(1, json!({}), T0))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );

    // Eight writers holding the same revision: one checkpoint wins.
    let (record, revision) = setup.get("race-1").await.unwrap().unwrap();
    let owner = record.lease_owner.unwrap();
    let writers: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(n, store)| {
            let (store, owner) = (Arc::clone(store), owner.clone());
            tokio::spawn(async move {
                store
                    .checkpoint(
                        "race-1",
                        revision,
                        &owner,
                        running(n + 1, json!({"by": n}), u64::MAX / 2),
                    )
                    .await
                    .is_ok()
            })
        })
        .collect();
    let mut succeeded = 0;
    for writer in writers {
        succeeded += usize::from(writer.await.unwrap());
    }
    assert_eq!(succeeded, 1);
}

//! Auto-scaling that runs by itself: a burst of events on a JetStream
//! subscription makes it start worker processes (the `nats-workers`
//! example's workers), they drain the backlog, and after the cooldown it
//! stops them again, draining each; nothing is lost.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use modulink::scaling::balance::{
    AutoScaler, LoadBalancer, ProcessScaler, ScalingPolicy, Strategy,
};
use modulink::scaling::events::{Event, EventBus, JetStream, JetStreamConfig};
use modulink::{Chain, Context, Result};
use serde_json::json;
use support::example_binary;
use tokio::sync::Notify;

const ORDERS: usize = 1_500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_adds_workers_they_drain_it_and_the_cooldown_removes_them() {
    let url = std::env::var("MODULINK_NATS_URL")
        .expect("MODULINK_NATS_URL is not set: run scripts/test.sh, which starts nats-server");
    // The names the nats-workers example derives from its run id.
    let run = format!("{:08x}", std::process::id() ^ 0x5ca1_e000);
    let config = JetStreamConfig::new(url)
        .stream(format!("DEMO_{run}"))
        .subject_prefix(format!("demo{run}"))
        .memory_storage();
    let bus = Arc::new(
        EventBus::builder()
            .without_store()
            .build_with(JetStream::connect(config).await.unwrap()),
    );

    // Every completion report, by order: nothing lost, duplicates counted.
    let completed = Arc::new(Mutex::new(HashMap::<String, u32>::new()));
    let all_done = Arc::new(Notify::new());
    let (tally, done) = (Arc::clone(&completed), Arc::clone(&all_done));
    bus.subscribe(
        "order_created_completed",
        Chain::named("tally").link_sync(move |ctx: Context| -> Result<Context> {
            // A report carries its order's correlation id, the order id.
            let order: String = ctx.require("correlation_id")?;
            let mut tally = tally.lock().unwrap();
            *tally.entry(order).or_default() += 1;
            if tally.len() == ORDERS {
                done.notify_one();
            }
            Ok(ctx)
        }),
    )
    .await
    .unwrap();

    // The scaling signal: the subscription's backlog, read from its
    // consumer by a task of its own, since the policy's gauge is sync.
    let backlog = Arc::new(AtomicU64::new(0));
    let reader = {
        let (bus, backlog) = (Arc::clone(&bus), Arc::clone(&backlog));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_millis(50));
            loop {
                ticks.tick().await;
                if let Ok(pending) = bus.transport().backlog("order_created", "orders").await {
                    backlog.store(pending, Ordering::Relaxed);
                }
            }
        })
    };
    let gauge = Arc::clone(&backlog);
    let policy = ScalingPolicy {
        min_nodes: 1,
        max_nodes: 4,
        scale_up_queue: 50,
        // The test process's own CPU is not the workers' load.
        scale_up_cpu_cores: f64::INFINITY,
        cooldown: Duration::from_millis(400),
        queue_gauge: Some(Arc::new(move || gauge.load(Ordering::Relaxed))),
        ..ScalingPolicy::default()
    };
    // Each worker handles four orders at once, 10 ms each: 400 a second.
    let workers = ProcessScaler::new(
        example_binary("nats-workers").to_string_lossy(),
        ["worker", run.as_str(), "worker"],
    )
    .env("WORK_MS", "10")
    .env("WORKER_CONCURRENCY", "4")
    .drain_timeout(Duration::from_secs(20));
    let autoscaler = AutoScaler::new(
        LoadBalancer::<Context>::new(Strategy::RoundRobin),
        policy,
        workers,
    );
    let scaling = autoscaler.run_every(Duration::from_millis(100));
    let mut reports = scaling.reports();

    // One worker first (the minimum), subscribed before the burst.
    let one_worker = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if bus
                .transport()
                .backlog("order_created", "orders")
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    one_worker.await.expect("the first worker subscribed");
    assert_eq!(scaling.report().running, 1);

    let orders = (0..ORDERS).map(|n| {
        let id = format!("ORD-{n:05}");
        Event::new(
            "order_created",
            json!({"order_id": id, "quantity": 1, "price": 9.5}),
        )
        .with_correlation_id(id)
    });
    bus.publish_all(orders).await.unwrap();
    if tokio::time::timeout(Duration::from_secs(60), all_done.notified())
        .await
        .is_err()
    {
        let tally = completed.lock().unwrap();
        panic!(
            "{} of {ORDERS} orders completed (e.g. {:?}); scaling: {:?}; backlog {}",
            tally.len(),
            tally.keys().take(3).collect::<Vec<_>>(),
            scaling.report(),
            backlog.load(Ordering::Relaxed)
        );
    }

    // Back to one worker once the backlog is gone and the cooldown passed.
    tokio::time::timeout(
        Duration::from_secs(30),
        reports.wait_for(|report| report.running == 1 && report.scaled_down >= 2),
    )
    .await
    .expect("the workers were removed after the burst")
    .unwrap();
    let report = scaling.report();
    assert!(report.peak_running >= 3, "{report:?}");
    assert!(report.scaled_up >= 3, "{report:?}");
    assert_eq!(report.failures, 0, "{report:?}");

    let completed = completed.lock().unwrap().clone();
    assert_eq!(completed.len(), ORDERS, "orders lost");
    let duplicates: u32 = completed.values().map(|count| count - 1).sum();
    println!(
        "{ORDERS} orders, {duplicates} completed twice, peak {} workers",
        report.peak_running
    );
    reader.abort();
    // Stopping the loop drops the scaler, which kills the last worker.
    scaling.stop().await;
    bus.shutdown().await;
}

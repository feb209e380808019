//! The autoscaler: policy decisions, and scaling a real pool under load.

use std::sync::Arc;
use std::time::Duration;

use chain_core::{Chain, Context, Error};
use chain_scaling::balance::{
    AutoScaler, Decision, LoadBalancer, LoadSample, LocalScaler, Node, ProcessScaler, Scaler,
    ScalingPolicy, Strategy,
};
use tokio::sync::Semaphore;

fn sample(nodes: usize, utilisation: f64, latency_ms: u64, queue: u64) -> LoadSample {
    LoadSample {
        nodes,
        latency: Duration::from_millis(latency_ms),
        utilisation,
        queue_length: queue,
        cpu_cores: 0.0,
        memory_bytes: 0,
    }
}

fn is_up(decision: &Decision) -> bool {
    matches!(decision, Decision::ScaleUp(_))
}

fn is_down(decision: &Decision) -> bool {
    matches!(decision, Decision::ScaleDown(_))
}

#[test]
fn the_policy_scales_on_each_signal_with_hysteresis_bounds_and_cooldown() {
    let policy = ScalingPolicy {
        min_nodes: 1,
        max_nodes: 4,
        cooldown: Duration::from_secs(60),
        ..ScalingPolicy::default()
    };
    assert!(
        is_up(&policy.decide(&sample(2, 0.9, 10, 0), None)),
        "utilisation"
    );
    assert!(
        is_up(&policy.decide(&sample(2, 0.1, 1_500, 0), None)),
        "latency"
    );
    assert!(
        is_up(&policy.decide(&sample(2, 0.1, 10, 500), None)),
        "queue"
    );
    assert!(
        is_down(&policy.decide(&sample(2, 0.1, 10, 0), None)),
        "idle"
    );
    // Between the thresholds: hold (hysteresis).
    assert!(matches!(
        policy.decide(&sample(2, 0.5, 10, 0), None),
        Decision::Hold(_)
    ));
    // Bounds.
    assert!(
        matches!(policy.decide(&sample(4, 0.99, 10, 0), None), Decision::Hold(reason) if reason.contains("already at 4"))
    );
    assert!(matches!(
        policy.decide(&sample(1, 0.0, 1, 0), None),
        Decision::Hold(_)
    ));
    assert!(
        is_up(&policy.decide(&sample(0, 0.0, 0, 0), None)),
        "below the minimum"
    );
    // Cooldown.
    assert!(
        matches!(policy.decide(&sample(2, 0.9, 10, 0), Some(Duration::from_secs(10))), Decision::Hold(r) if r.contains("cooling"))
    );
    assert!(is_up(
        &policy.decide(&sample(2, 0.9, 10, 0), Some(Duration::from_secs(61)))
    ));
}

fn gated(release: Arc<Semaphore>) -> impl Fn(usize) -> Node<Context> + Send + Sync + 'static {
    move |n| {
        let release = release.clone();
        let chain = Chain::named("worker").link(move |ctx: Context| {
            let release = release.clone();
            async move {
                let _permit = release.acquire().await.map_err(Error::internal_from)?;
                Ok(ctx)
            }
        });
        Node::new(format!("auto-{n}"), chain)
    }
}

#[tokio::test(start_paused = true)]
async fn the_pool_grows_under_load_and_shrinks_after_the_cooldown() {
    let release = Arc::new(Semaphore::new(0));
    let balancer = LoadBalancer::new(Strategy::LeastConnections);
    let scaler = LocalScaler::new(gated(release.clone()));
    let policy = ScalingPolicy {
        min_nodes: 1,
        max_nodes: 3,
        target_concurrency: 4,
        cooldown: Duration::from_secs(30),
        ..ScalingPolicy::default()
    };
    let mut autoscaler = AutoScaler::new(balancer.clone(), policy, scaler);
    assert!(
        is_up(&autoscaler.evaluate().await.unwrap()),
        "starts the minimum"
    );
    assert_eq!(balancer.nodes().len(), 1);

    // Ten calls held in flight on a node meant for four.
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let balancer = balancer.clone();
        calls.spawn(async move { balancer.call(Context::new()).await });
    }
    while balancer
        .nodes()
        .iter()
        .map(|node| node.in_flight())
        .sum::<u32>()
        < 10
    {
        tokio::task::yield_now().await;
    }
    assert!(autoscaler.sample().utilisation > 2.0);
    tokio::time::advance(Duration::from_secs(31)).await;
    assert!(is_up(&autoscaler.evaluate().await.unwrap()));
    assert_eq!(balancer.nodes().len(), 2);
    assert!(
        matches!(autoscaler.evaluate().await.unwrap(), Decision::Hold(_)),
        "cooldown"
    );

    // The load ends; after the cooldown the pool shrinks back, draining.
    release.add_permits(10);
    while calls.join_next().await.is_some() {}
    tokio::time::advance(Duration::from_secs(31)).await;
    assert!(is_down(&autoscaler.evaluate().await.unwrap()));
    assert_eq!(balancer.nodes().len(), 1);
    tokio::time::advance(Duration::from_secs(31)).await;
    assert!(
        matches!(autoscaler.evaluate().await.unwrap(), Decision::Hold(_)),
        "never below the minimum"
    );
}

#[test]
fn the_process_cpu_and_memory_are_signals_too() {
    let policy = ScalingPolicy {
        scale_up_cpu_cores: 1.5,
        scale_up_memory_bytes: 512 << 20,
        ..ScalingPolicy::default()
    };
    let calm = sample(3, 0.5, 10, 0);
    assert!(!is_up(&policy.decide(&calm, None)));
    let busy = LoadSample {
        cpu_cores: 1.8,
        ..calm
    };
    let Decision::ScaleUp(reason) = policy.decide(&busy, None) else {
        panic!("a busy CPU did not scale up");
    };
    assert!(reason.contains("CPU"), "{reason}");
    let full = LoadSample {
        memory_bytes: 600 << 20,
        ..calm
    };
    let Decision::ScaleUp(reason) = policy.decide(&full, None) else {
        panic!("memory above the limit did not scale up");
    };
    assert!(reason.contains("memory"), "{reason}");
    // Idle by every other measure, but the CPU is not: no scale-down.
    let idle_but_busy_cpu = LoadSample {
        cpu_cores: 1.0,
        ..sample(3, 0.0, 1, 0)
    };
    assert!(!is_down(&policy.decide(&idle_but_busy_cpu, None)));
    assert!(is_down(&policy.decide(&sample(3, 0.0, 1, 0), None)));
}

#[tokio::test]
async fn the_sample_measures_this_process_cpu_and_memory() {
    let mut autoscaler = AutoScaler::new(
        LoadBalancer::<Context>::new(Strategy::RoundRobin),
        ScalingPolicy::default(),
        LocalScaler::new(|n| Node::new(format!("n{n}"), Chain::named("n").link_sync(Ok))),
    );
    assert_eq!(
        autoscaler.sample().cpu_cores,
        0.0,
        "nothing to compare with yet"
    );
    // Half a second of one core busy, measured by the next sample.
    let started = std::time::Instant::now();
    let mut spin = 0u64;
    while started.elapsed() < Duration::from_millis(500) {
        spin = std::hint::black_box(spin.wrapping_add(1));
    }
    let sample = autoscaler.sample();
    assert!(
        sample.cpu_cores > 0.5 && sample.cpu_cores < 2.5,
        "{sample:?}"
    );
    assert!(sample.memory_bytes > 1 << 20, "{sample:?}");
}

#[tokio::test]
async fn a_background_loop_scales_a_pool_by_itself_within_its_cooldown() {
    // Three calls held in flight on one node of target concurrency 1:
    // the loop adds nodes up to the maximum, one per cooldown.
    let release = Arc::new(Semaphore::new(0));
    let held = release.clone();
    let balancer = LoadBalancer::<Context>::new(Strategy::LeastConnections);
    let make = move |n: usize| {
        let held = held.clone();
        Node::new(
            format!("n{n}"),
            Chain::named("held").link(move |ctx: Context| {
                let held = held.clone();
                async move {
                    let _permit = held.acquire().await.map_err(Error::internal_from)?;
                    Ok(ctx)
                }
            }),
        )
    };
    balancer.add_node(make(100)).unwrap();
    let policy = ScalingPolicy {
        min_nodes: 1,
        max_nodes: 3,
        target_concurrency: 1,
        scale_up_cpu_cores: f64::INFINITY,
        cooldown: Duration::from_millis(50),
        ..ScalingPolicy::default()
    };
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let balancer = balancer.clone();
            tokio::spawn(async move { balancer.call(Context::new()).await })
        })
        .collect();
    let scaling = AutoScaler::new(balancer.clone(), policy, LocalScaler::new(make))
        .run_every(Duration::from_millis(10));
    let mut reports = scaling.reports();
    tokio::time::timeout(
        Duration::from_secs(10),
        reports.wait_for(|r| r.running == 3),
    )
    .await
    .expect("scaled up to the maximum")
    .unwrap();
    assert!(balancer.status().auto_scaling);
    // Released, the pool is idle: back down to the minimum.
    release.add_permits(100);
    for call in calls {
        call.await.unwrap().unwrap();
    }
    tokio::time::timeout(
        Duration::from_secs(10),
        reports.wait_for(|r| r.running == 1),
    )
    .await
    .expect("scaled back down")
    .unwrap();
    let report = scaling.report();
    assert_eq!((report.peak_running, report.failures), (3, 0));
    assert!(
        report.scaled_up >= 2 && report.scaled_down >= 2,
        "{report:?}"
    );
    scaling.stop().await;
    assert!(
        !balancer.status().auto_scaling,
        "stopping the loop ends auto-scaling"
    );
}

#[tokio::test]
async fn process_workers_drain_on_scale_down_and_are_killed_past_the_timeout() {
    let pool = LoadBalancer::<Context>::new(Strategy::RoundRobin);
    // A worker that stops when its standard input closes.
    let polite = ProcessScaler::new("sh", ["-c", "read line; exit 0"]);
    Scaler::<Context>::scale_up(&polite, &pool).await.unwrap();
    Scaler::<Context>::scale_up(&polite, &pool).await.unwrap();
    assert_eq!(Scaler::<Context>::running(&polite, &pool), 2);
    assert_eq!(polite.worker_ids(), ["worker-0", "worker-1"]);
    Scaler::<Context>::scale_down(&polite, &pool).await.unwrap();
    assert_eq!(polite.worker_ids(), ["worker-0"], "the newest drains first");

    // One that ignores it is killed after the drain timeout.
    let stubborn = ProcessScaler::new("sleep", ["60"]).drain_timeout(Duration::from_millis(200));
    Scaler::<Context>::scale_up(&stubborn, &pool).await.unwrap();
    let error = Scaler::<Context>::scale_down(&stubborn, &pool)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), chain_core::ErrorKind::Timeout);
    assert!(error.to_string().contains("worker-0"), "{error}");
    assert_eq!(Scaler::<Context>::running(&stubborn, &pool), 0);

    // One that exits by itself no longer counts, so it gets replaced.
    let brief = ProcessScaler::new("true", Vec::<String>::new());
    Scaler::<Context>::scale_up(&brief, &pool).await.unwrap();
    let gone = tokio::time::timeout(Duration::from_secs(10), async {
        while Scaler::<Context>::running(&brief, &pool) > 0 {
            tokio::task::yield_now().await;
        }
    });
    gone.await.expect("an exited worker stops counting");

    let missing = ProcessScaler::new("/no/such/program", Vec::<String>::new());
    let error = Scaler::<Context>::scale_up(&missing, &pool)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("cannot start worker"), "{error}");
}

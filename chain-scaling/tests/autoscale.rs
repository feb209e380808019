//! The autoscaler: policy decisions, and scaling a real pool under load.

use std::sync::Arc;
use std::time::Duration;

use chain_core::{Chain, Context, Error};
use chain_scaling::balance::{
    AutoScaler, Decision, LoadBalancer, LoadSample, LocalScaler, Node, ScalingPolicy, Strategy,
};
use tokio::sync::Semaphore;

fn sample(nodes: usize, utilisation: f64, latency_ms: u64, queue: u64) -> LoadSample {
    LoadSample {
        nodes,
        latency: Duration::from_millis(latency_ms),
        utilisation,
        queue_length: queue,
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

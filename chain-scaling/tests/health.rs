//! Outlier ejection, active health checks and the cluster status.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chain_core::{Chain, Context, Error, ErrorKind};
use chain_scaling::balance::{HealthCheckSettings, LoadBalancer, Node, OutlierDetection, Strategy};

fn ok(name: &'static str) -> Node<Context> {
    Node::new(
        name,
        Chain::named(name).link_sync(move |ctx: Context| Ok(ctx.with("node", name))),
    )
}

fn failing(name: &'static str) -> Node<Context> {
    Node::new(
        name,
        Chain::named(name).link_sync(|_ctx: Context| Err(Error::unavailable("broken"))),
    )
}

fn policy(base: Duration, percent: u32) -> OutlierDetection {
    OutlierDetection {
        consecutive_failures: 3,
        base_ejection: base,
        max_ejection: Duration::from_secs(3600),
        max_ejected_percent: percent,
    }
}

#[tokio::test]
async fn a_failing_node_is_ejected_and_calls_go_elsewhere() {
    let balancer = LoadBalancer::new(Strategy::RoundRobin)
        .outlier_detection(policy(Duration::from_secs(3600), 50));
    balancer.add_node(ok("good")).unwrap();
    balancer.add_node(failing("bad")).unwrap();
    let mut failures = 0;
    for _ in 0..40 {
        failures += usize::from(balancer.call(Context::new()).await.is_err());
    }
    assert_eq!(
        failures, 3,
        "the bad node failed three times, then was ejected"
    );
    let status = balancer.status();
    assert_eq!((status.total_nodes, status.healthy_nodes), (2, 1));
    let bad = status.nodes.iter().find(|node| node.id == "bad").unwrap();
    assert!(bad.ejected && bad.ejections == 1);
}

#[tokio::test]
async fn ejections_are_capped_by_percentage() {
    let balancer = LoadBalancer::new(Strategy::RoundRobin)
        .outlier_detection(policy(Duration::from_secs(3600), 50));
    balancer.add_node(failing("a")).unwrap();
    balancer.add_node(failing("b")).unwrap();
    for _ in 0..30 {
        let _ = balancer.call(Context::new()).await;
    }
    let ejected = balancer
        .status()
        .nodes
        .iter()
        .filter(|node| node.ejected)
        .count();
    assert_eq!(ejected, 1, "at most half of two nodes is ejected");
}

#[tokio::test]
async fn an_ejected_node_returns_after_its_ejection_and_longer_next_time() {
    let flaky = Arc::new(AtomicBool::new(true));
    let broken = flaky.clone();
    let balancer = LoadBalancer::new(Strategy::RoundRobin)
        .outlier_detection(policy(Duration::from_millis(30), 50));
    balancer.add_node(ok("good")).unwrap();
    balancer
        .add_node(Node::new(
            "flaky",
            Chain::named("flaky").link_sync(move |ctx: Context| {
                if broken.load(Ordering::SeqCst) {
                    Err(Error::unavailable("down"))
                } else {
                    Ok(ctx)
                }
            }),
        ))
        .unwrap();
    while !balancer.status().nodes.iter().any(|node| node.ejected) {
        let _ = balancer.call(Context::new()).await;
    }
    flaky.store(false, Ordering::SeqCst);
    // Wait (bounded) for the ejection to end: the node then serves again.
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let _ = balancer.call(Context::new()).await;
            if balancer
                .status()
                .nodes
                .iter()
                .any(|node| node.id == "flaky" && node.served > 3)
            {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the flaky node comes back after 30 ms");
}

#[tokio::test(start_paused = true)]
async fn active_checks_take_nodes_out_and_bring_them_back() {
    let balancer = LoadBalancer::new(Strategy::RoundRobin);
    balancer.add_node(ok("a")).unwrap();
    balancer.add_node(ok("b")).unwrap();
    let b_healthy = Arc::new(AtomicBool::new(true));
    let verdict = b_healthy.clone();
    let settings = HealthCheckSettings {
        interval: Duration::from_secs(1),
        healthy_threshold: 2,
        unhealthy_threshold: 3,
    };
    let _checks = balancer.start_health_checks(settings, move |node| {
        let healthy = node.id() != "b" || verdict.load(Ordering::SeqCst);
        async move { healthy }
    });

    // Checks run at 0 s, 1 s, 2 s, ... (on the paused test clock).
    b_healthy.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1_500)).await; // two failed checks: not yet
    assert_eq!(balancer.status().healthy_nodes, 2);
    tokio::time::sleep(Duration::from_secs(1)).await; // the third, at 2 s
    assert_eq!(balancer.status().healthy_nodes, 1);
    for _ in 0..10 {
        assert_eq!(balancer.pick(None).unwrap().id(), "a");
    }

    b_healthy.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(1)).await; // one passed check, at 3 s: not yet
    assert_eq!(balancer.status().healthy_nodes, 1);
    tokio::time::sleep(Duration::from_secs(1)).await; // the second, at 4 s
    assert_eq!(balancer.status().healthy_nodes, 2);
}

#[tokio::test]
async fn no_healthy_node_is_a_clear_error() {
    let balancer = LoadBalancer::new(Strategy::LeastConnections)
        .outlier_detection(policy(Duration::from_secs(3600), 100));
    balancer.add_node(failing("only")).unwrap();
    for _ in 0..3 {
        let _ = balancer.call(Context::new()).await;
    }
    let err = balancer.call(Context::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(
        err.to_string().contains("none of the 1 nodes is healthy"),
        "{err}"
    );
}

/// A check that never answers is cut off at the interval and counts
/// as failed, and it holds up nobody: the other nodes' checks run in the
/// same round, concurrently.
#[tokio::test(start_paused = true)]
async fn a_hanging_check_times_out_and_stalls_no_other_check() {
    let balancer = LoadBalancer::new(Strategy::RoundRobin);
    for name in ["a", "hangs", "c"] {
        balancer.add_node(ok(name)).unwrap();
    }
    let checked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&checked);
    // Each check is cut off at the interval.
    let settings = HealthCheckSettings {
        interval: Duration::from_secs(1),
        healthy_threshold: 1,
        unhealthy_threshold: 2,
    };
    let _checks = balancer.start_health_checks(settings, move |node| {
        let seen = Arc::clone(&seen);
        async move {
            if node.id() == "hangs" {
                std::future::pending::<()>().await;
            }
            seen.lock().unwrap().push(node.id().to_owned());
            true
        }
    });
    // Rounds at 0 s, 1 s and 2 s (paused clock): the hanging check times
    // out in each, the others answer in each.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let mut checked = checked.lock().unwrap().clone();
    checked.sort();
    assert_eq!(checked, ["a", "a", "a", "c", "c", "c"]);
    let status = balancer.status();
    assert_eq!(status.healthy_nodes, 2);
    assert!(
        status
            .nodes
            .iter()
            .any(|node| node.id == "hangs" && !node.healthy)
    );
}

/// The node's own chain is a health check: a probe context runs through
/// it, and the node is healthy while that succeeds.
#[tokio::test(start_paused = true)]
async fn a_nodes_own_chain_can_be_its_health_check() {
    let balancer = LoadBalancer::new(Strategy::RoundRobin);
    balancer.add_node(ok("good")).unwrap();
    balancer.add_node(failing("bad")).unwrap();
    let settings = HealthCheckSettings {
        interval: Duration::from_secs(1),
        healthy_threshold: 1,
        unhealthy_threshold: 1,
    };
    let _checks = balancer.start_chain_health_checks(settings, Context::new().with("probe", true));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = balancer.status();
    assert_eq!(status.healthy_nodes, 1);
    assert!(
        status
            .nodes
            .iter()
            .all(|node| node.healthy == (node.id == "good")),
        "{status:?}"
    );
}

//! Load balancing strategies, limits and exact in-flight counts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chain_core::{Chain, Context, Error, ErrorKind};
use chain_scaling::balance::{LoadBalancer, Node, Strategy};
use tokio::sync::Semaphore;

fn echo(name: &'static str) -> Chain {
    Chain::named(name).link_sync(move |ctx: Context| Ok(ctx.with("node", name)))
}

fn balancer(strategy: Strategy, nodes: &[(&'static str, u32)]) -> LoadBalancer<Context> {
    let balancer = LoadBalancer::new(strategy);
    for (name, weight) in nodes {
        balancer
            .add_node(Node::new(*name, echo(name)).weight(*weight))
            .unwrap();
    }
    balancer
}

fn counts(
    balancer: &LoadBalancer<Context>,
    picks: usize,
    key: impl Fn(usize) -> Option<String>,
) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for n in 0..picks {
        let node = balancer.pick(key(n).as_deref()).unwrap();
        *counts.entry(node.id().to_owned()).or_default() += 1;
    }
    counts
}

#[test]
fn round_robin_and_weighted_round_robin_are_exact() {
    let rr = balancer(Strategy::RoundRobin, &[("a", 1), ("b", 1), ("c", 1)]);
    let spread = counts(&rr, 300, |_| None);
    assert!(spread.values().all(|n| *n == 100), "{spread:?}");

    let wrr = balancer(
        Strategy::WeightedRoundRobin,
        &[("a", 5), ("b", 1), ("c", 1)],
    );
    let order: Vec<String> = (0..7)
        .map(|_| wrr.pick(None).unwrap().id().to_owned())
        .collect();
    assert_eq!(order.join(" "), "a a b a c a a", "nginx's smooth order");
    let spread = counts(&wrr, 7_000 - 7, |_| None);
    assert_eq!((spread["a"], spread["b"], spread["c"]), (4_995, 999, 999));
}

#[test]
fn random_and_power_of_two_spread_within_tolerance() {
    for strategy in [Strategy::Random, Strategy::PowerOfTwoChoices] {
        let spread = counts(
            &balancer(strategy, &[("a", 1), ("b", 1), ("c", 1)]),
            100_000,
            |_| None,
        );
        for (node, count) in &spread {
            assert!(
                (31_000..=35_700).contains(count),
                "{strategy:?}: {node} got {count}"
            );
        }
    }
}

#[test]
fn consistent_hashing_moves_about_one_nth_of_the_keys() {
    let nodes: Vec<(&'static str, u32)> =
        ["n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9"]
            .iter()
            .map(|n| (*n, 1))
            .collect();
    let ring = balancer(Strategy::ConsistentHash, &nodes);
    let keys: Vec<String> = (0..10_000).map(|n| format!("user-{n}")).collect();
    let owners = |balancer: &LoadBalancer<Context>| -> Vec<String> {
        keys.iter()
            .map(|key| balancer.pick(Some(key)).unwrap().id().to_owned())
            .collect()
    };
    let before = owners(&ring);
    assert_eq!(
        before,
        owners(&ring),
        "the same key always goes to the same node"
    );
    let spread = before
        .iter()
        .fold(HashMap::<&str, usize>::new(), |mut m, o| {
            *m.entry(o).or_default() += 1;
            m
        });
    assert!(
        spread.values().all(|n| (500..=1_500).contains(n)),
        "{spread:?}"
    );

    ring.add_node(Node::new("n10", echo("n10"))).unwrap();
    let after = owners(&ring);
    let moved: Vec<usize> = (0..keys.len())
        .filter(|i| before[*i] != after[*i])
        .collect();
    let fraction = moved.len() as f64 / keys.len() as f64;
    assert!(
        (0.05..=0.14).contains(&fraction),
        "{fraction} of the keys moved (about 1/11 expected)"
    );
    assert!(
        moved.iter().all(|i| after[*i] == "n10"),
        "keys only move to the new node"
    );

    ring.remove_node("n3").unwrap();
    let without = owners(&ring);
    let changed: Vec<usize> = (0..keys.len())
        .filter(|i| after[*i] != without[*i])
        .collect();
    assert!(
        changed.iter().all(|i| after[*i] == "n3"),
        "only the removed node's keys move"
    );
}

/// A node whose calls wait for a permit of `release`: no wake-up is lost,
/// whenever the permit comes.
fn waiting(name: &'static str, release: Arc<Semaphore>) -> Chain {
    Chain::named(name).link(move |ctx: Context| {
        let release = release.clone();
        async move {
            let _permit = release.acquire().await.map_err(Error::internal_from)?;
            Ok(ctx.with("node", name))
        }
    })
}

#[tokio::test]
async fn least_connections_and_connection_limits() {
    let release = Arc::new(Semaphore::new(0));
    let balancer = LoadBalancer::new(Strategy::LeastConnections);
    for name in ["a", "b"] {
        balancer
            .add_node(Node::new(name, waiting(name, release.clone())).max_connections(1))
            .unwrap();
    }
    let first = tokio::spawn({
        let balancer = balancer.clone();
        async move { balancer.call(Context::new()).await }
    });
    let second = tokio::spawn({
        let balancer = balancer.clone();
        async move { balancer.call(Context::new()).await }
    });
    tokio::time::timeout(Duration::from_secs(10), async {
        while balancer
            .nodes()
            .iter()
            .map(|node| node.in_flight())
            .sum::<u32>()
            < 2
        {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    assert!(
        balancer.nodes().iter().all(|node| node.in_flight() == 1),
        "one call on each node"
    );

    let full = balancer.call(Context::new()).await.unwrap_err();
    assert_eq!(full.kind(), ErrorKind::Rejected);
    assert!(
        full.to_string()
            .contains("all 2 nodes are at their connection limit"),
        "{full}"
    );

    release.add_permits(2);
    let served: Vec<String> = [
        first.await.unwrap().unwrap(),
        second.await.unwrap().unwrap(),
    ]
    .iter()
    .map(|ctx| ctx.get::<String>("node").unwrap().unwrap())
    .collect();
    assert!(served.contains(&"a".to_owned()) && served.contains(&"b".to_owned()));
}

#[tokio::test]
async fn empty_duplicate_and_unknown_nodes_are_errors() {
    let balancer: LoadBalancer<Context> = LoadBalancer::new(Strategy::RoundRobin);
    assert_eq!(
        balancer.call(Context::new()).await.unwrap_err().kind(),
        ErrorKind::Unavailable
    );
    balancer.add_node(Node::new("a", echo("a"))).unwrap();
    assert_eq!(
        balancer
            .add_node(Node::new("a", echo("a")))
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );
    let unknown = balancer.remove_node("zz").unwrap_err();
    assert_eq!(unknown.kind(), ErrorKind::NotFound);
    assert!(unknown.to_string().contains("`zz`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_counts_return_to_zero_after_mixed_outcomes() {
    let balancer = LoadBalancer::new(Strategy::PowerOfTwoChoices);
    for name in ["a", "b", "c"] {
        let chain = Chain::named(name).link(|ctx: Context| async move {
            match ctx.get::<u64>("n")?.unwrap_or(0) % 3 {
                0 => Ok(ctx),
                1 => Err(Error::unavailable("flaky")),
                _ => std::future::pending().await,
            }
        });
        balancer.add_node(Node::new(name, chain)).unwrap();
    }
    let mut calls = tokio::task::JoinSet::new();
    for n in 0..10_000_u64 {
        let balancer = balancer.clone();
        calls.spawn(async move {
            // Calls of the third kind never finish: the timeout cancels them.
            tokio::time::timeout(
                Duration::from_millis(20),
                balancer.call(Context::new().with("n", n)),
            )
            .await
        });
    }
    let (mut ok, mut failed, mut cancelled) = (0, 0, 0);
    while let Some(outcome) = calls.join_next().await {
        match outcome.unwrap() {
            Ok(Ok(_)) => ok += 1,
            Ok(Err(_)) => failed += 1,
            Err(_) => cancelled += 1,
        }
    }
    assert_eq!((ok, failed, cancelled), (3_334, 3_333, 3_333));
    for node in balancer.nodes() {
        assert_eq!(node.in_flight(), 0, "node {} leaked connections", node.id());
    }
    let served: u64 = balancer.nodes().iter().map(|node| node.served()).sum();
    assert_eq!(served, 6_667, "cancelled calls are not counted as served");
}

#[tokio::test]
async fn a_removed_node_drains_its_running_calls() {
    let release = Arc::new(Semaphore::new(0));
    let balancer = LoadBalancer::new(Strategy::RoundRobin);
    balancer
        .add_node(Node::new("old", waiting("old", release.clone())))
        .unwrap();
    let running = tokio::spawn({
        let balancer = balancer.clone();
        async move { balancer.call(Context::new()).await }
    });
    tokio::time::timeout(Duration::from_secs(10), async {
        while balancer.nodes()[0].in_flight() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    let old = balancer.remove_node("old").unwrap();
    balancer.add_node(Node::new("new", echo("new"))).unwrap();
    let fresh = balancer.call(Context::new()).await.unwrap();
    assert_eq!(fresh.get::<String>("node").unwrap().as_deref(), Some("new"));
    assert_eq!(
        old.in_flight(),
        1,
        "the removed node still finishes its call"
    );
    release.add_permits(1);
    assert_eq!(
        running
            .await
            .unwrap()
            .unwrap()
            .get::<String>("node")
            .unwrap()
            .as_deref(),
        Some("old")
    );
    assert_eq!(old.in_flight(), 0);
}

/// A node that fails when the context asks it to.
fn failing_on_request(name: &'static str) -> Chain {
    Chain::named(name).link_sync(move |ctx: Context| {
        if ctx.contains_key("fail") {
            return Err(Error::unavailable(format!("{name} was asked to fail")));
        }
        Ok(ctx.with("node", name))
    })
}

#[tokio::test]
async fn a_call_on_a_named_node_runs_there_and_says_where_and_how_long() {
    use chain_scaling::balance::{EXECUTION_TIME_FIELD, NODE_ID_FIELD};
    let balancer = LoadBalancer::new(Strategy::RoundRobin);
    for name in ["a", "b", "c"] {
        balancer
            .add_node(Node::new(name, failing_on_request(name)))
            .unwrap();
    }
    for _ in 0..3 {
        let out = balancer.call_on("b", Context::new()).await.unwrap();
        assert_eq!(out.get::<String>("node").unwrap().unwrap(), "b");
        assert_eq!(out.get::<String>(NODE_ID_FIELD).unwrap().unwrap(), "b");
        let seconds: f64 = out.get(EXECUTION_TIME_FIELD).unwrap().unwrap();
        assert!(seconds > 0.0 && seconds < 10.0, "{seconds}");
    }
    let unknown = balancer.call_on("z", Context::new()).await.unwrap_err();
    assert_eq!(unknown.kind(), ErrorKind::NotFound);
    assert!(unknown.to_string().contains("no node `z`"), "{unknown}");

    // The strategy's own calls carry the fields too; a balancer told not
    // to write them leaves the result alone.
    let out = balancer.call(Context::new()).await.unwrap();
    assert!(out.contains_key(NODE_ID_FIELD));
    let quiet = balancer.clone().without_execution_fields();
    let out = quiet.call_on("a", Context::new()).await.unwrap();
    assert!(!out.contains_key(NODE_ID_FIELD) && !out.contains_key(EXECUTION_TIME_FIELD));
}

#[tokio::test]
async fn a_named_node_at_its_limit_or_ejected_is_refused() {
    use chain_scaling::balance::OutlierDetection;
    let release = Arc::new(Semaphore::new(0));
    let balancer = LoadBalancer::new(Strategy::RoundRobin).outlier_detection(OutlierDetection {
        consecutive_failures: 1,
        base_ejection: Duration::from_secs(3600),
        max_ejection: Duration::from_secs(3600),
        max_ejected_percent: 100,
    });
    balancer
        .add_node(Node::new("busy", waiting("busy", release.clone())).max_connections(1))
        .unwrap();
    balancer
        .add_node(Node::new("flaky", failing_on_request("flaky")))
        .unwrap();
    let running = tokio::spawn({
        let balancer = balancer.clone();
        async move { balancer.call_on("busy", Context::new()).await }
    });
    tokio::time::timeout(Duration::from_secs(10), async {
        while balancer.status().in_flight < 1 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    let full = balancer.call_on("busy", Context::new()).await.unwrap_err();
    assert_eq!(full.kind(), ErrorKind::Rejected);
    assert!(full.to_string().contains("connection limit of 1"), "{full}");
    release.add_permits(1);
    running.await.unwrap().unwrap();

    balancer
        .call_on("flaky", Context::new().with("fail", true))
        .await
        .unwrap_err();
    let ejected = balancer.call_on("flaky", Context::new()).await.unwrap_err();
    assert_eq!(ejected.kind(), ErrorKind::Unavailable);
    assert!(
        ejected
            .to_string()
            .contains("`flaky` is unhealthy or ejected"),
        "{ejected}"
    );
}

#[tokio::test]
async fn the_status_counts_outcomes_per_node_and_the_pool_capacity() {
    use chain_scaling::balance::{AutoScaler, LocalScaler, ScalingPolicy};
    let balancer = LoadBalancer::new(Strategy::LeastConnections);
    balancer
        .add_node(Node::new("a", failing_on_request("a")).max_connections(10))
        .unwrap();
    balancer
        .add_node(Node::new("b", failing_on_request("b")).max_connections(30))
        .unwrap();
    let status = balancer.status();
    assert_eq!(status.strategy, Strategy::LeastConnections);
    assert!(!status.auto_scaling);
    assert_eq!((status.capacity, status.utilization), (Some(40), Some(0.0)));
    assert_eq!((status.healthy_nodes, status.unhealthy_nodes), (2, 0));
    assert!(status.nodes.iter().all(|node| node.last_request.is_none()));

    let before = std::time::SystemTime::now();
    for _ in 0..3 {
        balancer.call_on("a", Context::new()).await.unwrap();
    }
    balancer
        .call_on("a", Context::new().with("fail", true))
        .await
        .unwrap_err();
    let status = balancer.status();
    let a = status.nodes.iter().find(|node| node.id == "a").unwrap();
    let b = status.nodes.iter().find(|node| node.id == "b").unwrap();
    assert_eq!((a.served, a.successes, a.failures), (4, 3, 1));
    assert_eq!((b.served, b.successes, b.failures), (0, 0, 0));
    let last = a.last_request.unwrap();
    assert!(
        last + Duration::from_millis(5) >= before && last <= std::time::SystemTime::now(),
        "{last:?} against {before:?}"
    );
    assert!(b.last_request.is_none());
    assert_eq!(a.max_connections, 10);

    // An unlimited node leaves the pool without a capacity.
    balancer.add_node(Node::new("c", echo("c"))).unwrap();
    assert_eq!(balancer.status().capacity, None);
    assert_eq!(balancer.status().utilization, None);

    let scaler = AutoScaler::new(
        balancer.clone(),
        ScalingPolicy::default(),
        LocalScaler::new(|n| Node::new(format!("extra-{n}"), echo("extra"))),
    );
    assert!(balancer.status().auto_scaling);
    drop(scaler);
    assert!(!balancer.status().auto_scaling);
}

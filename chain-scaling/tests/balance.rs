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

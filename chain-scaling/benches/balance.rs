//! `pick()` per strategy with 3, 100 and 1,000 nodes.
//!
//! Run with `cargo bench -p chain-scaling --bench balance`.

use std::hint::black_box;
use std::time::Duration;

use chain_core::{Chain, Context};
use chain_scaling::balance::{LoadBalancer, Node, Strategy};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn balancer(strategy: Strategy, nodes: usize) -> LoadBalancer<Context> {
    let balancer = LoadBalancer::new(strategy);
    for n in 0..nodes {
        let node = Node::new(format!("node-{n}"), Chain::named("node").link_sync(Ok))
            .weight(1 + (n % 3) as u32);
        balancer
            .add_node(node)
            .unwrap_or_else(|error| panic!("{error}"));
    }
    balancer
}

fn pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    for nodes in [3, 100, 1_000] {
        for (name, strategy) in [
            ("round_robin", Strategy::RoundRobin),
            ("weighted_round_robin", Strategy::WeightedRoundRobin),
            ("least_connections", Strategy::LeastConnections),
            ("power_of_two_choices", Strategy::PowerOfTwoChoices),
            ("random", Strategy::Random),
            ("consistent_hash", Strategy::ConsistentHash),
        ] {
            let balancer = balancer(strategy, nodes);
            let key = Some("user-4711");
            group.bench_with_input(BenchmarkId::new(name, nodes), &balancer, |b, balancer| {
                b.iter(|| black_box(balancer.pick(black_box(key)).is_ok()))
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = pick
}
criterion_main!(benches);

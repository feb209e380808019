//! `pick()` per strategy with 3, 100 and 1,000 nodes, on one thread and on
//! two at once; and a request routed through p2c to a trivial backend,
//! ours against tower's `Balance` with pending-request load.
//!
//! Run with `cargo bench -p chain-scaling --bench balance`.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::task::Poll;
use std::time::Duration;

use bench_support::{contended, run_now};
use chain_core::{Chain, Context};
use chain_scaling::balance::{LoadBalancer, Node, Strategy};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use tower::balance::p2c::Balance;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PendingRequestsDiscover};
use tower_service::Service;

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

fn pick_two_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick_2_threads");
    for nodes in [3, 100, 1_000] {
        for (name, strategy) in [
            ("round_robin", Strategy::RoundRobin),
            ("least_connections", Strategy::LeastConnections),
            ("power_of_two_choices", Strategy::PowerOfTwoChoices),
            ("consistent_hash", Strategy::ConsistentHash),
        ] {
            let balancer = balancer(strategy, nodes);
            group.bench_with_input(BenchmarkId::new(name, nodes), &balancer, |b, balancer| {
                b.iter_custom(|iters| {
                    contended(2, iters, || {
                        black_box(balancer.pick(black_box(Some("user-4711"))).is_ok());
                    })
                })
            });
        }
    }
    group.finish();
}

/// A backend that answers at once.
#[derive(Clone, Copy)]
struct Echo;

impl Service<u64> for Echo {
    type Response = u64;
    type Error = Infallible;
    type Future = Ready<Result<u64, Infallible>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: u64) -> Self::Future {
        ready(Ok(request))
    }
}

fn route_through_p2c(c: &mut Criterion) {
    let mut group = c.benchmark_group("p2c_route_request");
    for nodes in [3, 100] {
        let ours: LoadBalancer<u64> = LoadBalancer::new(Strategy::PowerOfTwoChoices);
        for n in 0..nodes {
            ours.add_node(Node::new(
                format!("node-{n}"),
                Chain::named("echo").link_sync(Ok),
            ))
            .unwrap_or_else(|error| panic!("{error}"));
        }
        group.bench_function(BenchmarkId::new("ours", nodes), |b| {
            b.iter(|| black_box(run_now(ours.call(black_box(7)))).is_ok())
        });

        let services = ServiceList::new(vec![Echo; nodes]);
        let mut tower = Balance::new(PendingRequestsDiscover::new(
            services,
            CompleteOnResponse::default(),
        ));
        group.bench_function(BenchmarkId::new("tower", nodes), |b| {
            b.iter(|| {
                let mut ready = std::future::poll_fn(|cx| tower.poll_ready(cx));
                run_now(&mut ready).unwrap_or_else(|error| panic!("{error}"));
                black_box(run_now(tower.call(black_box(7)))).is_ok()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = pick, pick_two_threads, route_through_p2c
}
criterion_main!(benches);

//! `pick()` per strategy with 3 to 10,000 nodes (least connections also
//! with every node busy), on one thread, and with 3 to 1,000 on two at once; and a request routed through p2c to a trivial backend,
//! ours against tower's `Balance` with pending-request load.
//!
//! Run with `cargo bench -p chain-scaling --bench balance`.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, Waker};
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
    balancer_of(strategy, nodes, Chain::named("node").link_sync(Ok))
}

fn balancer_of(strategy: Strategy, nodes: usize, chain: Chain) -> LoadBalancer<Context> {
    let balancer = LoadBalancer::new(strategy);
    balancer
        .add_nodes(
            (0..nodes)
                .map(|n| Node::new(format!("node-{n}"), chain.clone()).weight(1 + (n % 3) as u32)),
        )
        .unwrap_or_else(|error| panic!("{error}"));
    balancer
}

/// A call that stays in flight until dropped: polled once, so it holds its
/// node's connection, and never finishes.
type Pending = Pin<Box<dyn Future<Output = chain_core::Result<Context>>>>;

/// Least connections with every node busy (one call in flight on each),
/// the realistic case: no idle node ends the scan early.
fn busy_least_connections(nodes: usize) -> (LoadBalancer<Context>, Vec<Pending>) {
    let never = Chain::named("never").link(|ctx: Context| async move {
        std::future::pending::<()>().await;
        Ok(ctx)
    });
    let balancer = balancer_of(Strategy::LeastConnections, nodes, never);
    let mut waker = TaskContext::from_waker(Waker::noop());
    // The calls borrow the balancer for as long as they are held; a leaked
    // clone (clones share the nodes) lets them outlive this function.
    let shared: &'static LoadBalancer<Context> = Box::leak(Box::new(balancer.clone()));
    let in_flight = (0..nodes)
        .map(|_| {
            let mut call: Pending = Box::pin(shared.call(Context::new()));
            assert!(call.as_mut().poll(&mut waker).is_pending());
            call
        })
        .collect();
    assert!(balancer.nodes().iter().all(|node| node.in_flight() == 1));
    (balancer, in_flight)
}

fn pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    for nodes in [3, 10, 100, 1_000, 10_000] {
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
        let (busy, in_flight) = busy_least_connections(nodes);
        group.bench_with_input(
            BenchmarkId::new("least_connections_busy", nodes),
            &busy,
            |b, balancer| b.iter(|| black_box(balancer.pick(None).is_ok())),
        );
        drop(in_flight);
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

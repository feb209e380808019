//! The seed's scaling demo: a least-connections pool of three nodes with ten
//! connections each, waves of concurrent requests, and an auto-scaler that
//! adds nodes while utilisation is high and removes them, after its
//! cooldown, once the load is gone. Every figure is measured: in-flight
//! counts, latency averages, requests served per node.
//!
//! Run with `cargo run -p examples --example scaling-demo`.

use std::time::Duration;

use modulink::scaling::balance::{
    AutoScaler, Decision, LoadBalancer, LocalScaler, Node, ScalingPolicy, Strategy,
};
use modulink::{Chain, Context, ErrorKind, Result};

const CONNECTIONS_PER_NODE: u32 = 10;
const WORK: Duration = Duration::from_millis(100);

/// The seed's sample processing chain: the request is processed for a
/// while (standing in for a database call) and stamped.
fn processing_chain() -> Chain {
    Chain::named("process_request").link(|ctx: Context| async move {
        tokio::time::sleep(WORK).await;
        let request: String = ctx.require("request_id")?;
        Ok(ctx.with("processed", format!("{request} done")))
    })
}

fn node(number: usize) -> Node<Context> {
    Node::new(format!("node_{number}"), processing_chain()).max_connections(CONNECTIONS_PER_NODE)
}

/// Sends `count` requests at once; returns (completed, rejected).
async fn wave(
    balancer: &LoadBalancer<Context>,
    name: &str,
    count: usize,
) -> Result<(usize, usize)> {
    let requests: Vec<_> = (0..count)
        .map(|i| {
            let balancer = balancer.clone();
            let ctx = Context::new()
                .with("request_id", format!("{name}_req_{i}"))
                .with("user_id", format!("user_{}", i % 10));
            tokio::spawn(async move { balancer.call(ctx).await })
        })
        .collect();
    let mut completed = 0;
    let mut rejected = 0;
    for request in requests {
        match request.await.map_err(modulink::Error::internal_from)? {
            Ok(_) => completed += 1,
            Err(error) if error.kind() == ErrorKind::Rejected => rejected += 1,
            Err(error) => return Err(error),
        }
    }
    Ok((completed, rejected))
}

/// Waits until `count` requests are running (they take `WORK` each).
async fn until_in_flight(balancer: &LoadBalancer<Context>, count: u32) {
    while balancer.status().in_flight < count {
        tokio::task::yield_now().await;
    }
}

fn describe(decision: &Decision, balancer: &LoadBalancer<Context>) -> String {
    let nodes = balancer.nodes().len();
    match decision {
        Decision::ScaleUp(why) => format!("auto-scaler: scale up to {nodes} nodes ({why})"),
        Decision::ScaleDown(why) => format!("auto-scaler: scale down to {nodes} nodes ({why})"),
        Decision::Hold(why) => format!("auto-scaler: hold at {nodes} nodes ({why})"),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let balancer = LoadBalancer::new(Strategy::LeastConnections);
    for number in 1..=3 {
        balancer.add_node(node(number))?;
    }
    let policy = ScalingPolicy {
        min_nodes: 3,
        max_nodes: 6,
        target_concurrency: CONNECTIONS_PER_NODE,
        scale_up_utilisation: 0.7,
        scale_down_utilisation: 0.3,
        cooldown: Duration::from_millis(50),
        ..ScalingPolicy::default()
    };
    let mut autoscaler = AutoScaler::new(
        balancer.clone(),
        policy.clone(),
        LocalScaler::new(|n| node(n + 4)),
    );

    let status = balancer.status();
    println!(
        "initial cluster: {} nodes, capacity {}",
        status.total_nodes,
        status.total_nodes as u32 * CONNECTIONS_PER_NODE
    );

    for (name, count) in [("wave_1", 30), ("wave_2", 50), ("wave_3", 50)] {
        let load = wave(&balancer, name, count);
        tokio::pin!(load);
        let nodes = balancer.nodes().len() as u32;
        let expected = (count as u32).min(nodes * CONNECTIONS_PER_NODE);
        // While the wave runs, the auto-scaler sees the pool busy.
        let decision = tokio::select! {
            () = until_in_flight(&balancer, expected) => autoscaler.evaluate().await?,
            outcome = &mut load => {
                return Err(modulink::Error::internal(format!("{name} ended early: {outcome:?}")));
            }
        };
        let (completed, rejected) = load.await?;
        println!("{name}: {completed}/{count} completed, {rejected} rejected (all nodes full)");
        println!("{}", describe(&decision, &balancer));
        tokio::time::sleep(policy.cooldown).await;
    }

    println!("load is over");
    loop {
        let decision = autoscaler.evaluate().await?;
        println!("{}", describe(&decision, &balancer));
        if matches!(decision, Decision::Hold(_)) {
            break;
        }
        tokio::time::sleep(policy.cooldown).await;
    }

    let status = balancer.status();
    println!(
        "final cluster: {} nodes, {} healthy, {} in flight",
        status.total_nodes, status.healthy_nodes, status.in_flight
    );
    for node in &status.nodes {
        println!(
            "{}: {} served, latency {:.0} ms, {}",
            node.id,
            node.served,
            node.latency.as_secs_f64() * 1000.0,
            if node.healthy { "healthy" } else { "unhealthy" }
        );
    }
    Ok(())
}

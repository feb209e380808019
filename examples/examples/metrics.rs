//! The seed's metrics collection and performance monitoring: a chain
//! instrumented with Prometheus metrics measured from its real executions,
//! served on `/metrics`, with the seed's performance summary and health
//! verdict computed from the same measurements.
//!
//! Run with `cargo run -p examples --example metrics`.

use std::net::SocketAddr;
use std::time::Duration;

use examples::http_get;
use modulink::observability::prometheus::Registry;
use modulink::observability::{ChainMetrics, MetricsServer};
use modulink::{Chain, Context, Error, Result, named};

async fn fetch_user(ctx: Context) -> Result<Context> {
    tokio::time::sleep(Duration::from_millis(2)).await;
    Ok(ctx.with("user", "USR-1"))
}

async fn charge(ctx: Context) -> Result<Context> {
    let n: u64 = ctx.require("n")?;
    tokio::time::sleep(Duration::from_millis(1 + n % 5)).await;
    if n % 10 == 9 {
        return Err(Error::unavailable(
            "payment provider declined the connection",
        ));
    }
    Ok(ctx.with("charged", true))
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let registry = Registry::new();
    let metrics = ChainMetrics::new(&registry)?;
    let server = MetricsServer::serve(registry, SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    println!("metrics on http://{}/metrics", server.local_addr());

    let checkout = metrics.instrument(
        Chain::named("checkout")
            .link(named("fetch_user", fetch_user))
            .link(named("charge", charge)),
    );
    let runs: Vec<_> = (0..100u64)
        .map(|n| {
            let checkout = checkout.clone();
            tokio::spawn(async move { checkout.execute(Context::new().with("n", n)).await })
        })
        .collect();
    let mut failed = 0;
    for run in runs {
        if run.await?.is_err() {
            failed += 1;
        }
    }
    println!("100 checkouts, {failed} failed");

    if let Some(summary) = metrics.summary("checkout") {
        println!(
            "summary: {} runs, success rate {:.0}%, average {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
            summary.total,
            summary.success_rate * 100.0,
            summary.average.as_secs_f64() * 1e3,
            summary.p95.as_secs_f64() * 1e3,
            summary.p99.as_secs_f64() * 1e3
        );
    }
    let health = metrics.health("checkout");
    println!("health: {:?} ({})", health.status, health.message);

    let exposition = http_get(&format!("http://{}/metrics", server.local_addr()))
        .await?
        .body;
    for line in exposition.lines().filter(|line| {
        line.starts_with("modulink_chain_executions_total")
            || line.starts_with("modulink_link_errors_total")
    }) {
        println!("/metrics: {line}");
    }
    server.shutdown().await?;
    Ok(())
}

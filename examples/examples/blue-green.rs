//! The seed's blue-green deployment: v1 runs in blue, v2 is deployed to
//! green, validated with real requests (health, latency, a load test) and
//! switched to atomically while clients keep calling; then rolled back.
//!
//! Run with `cargo run -p examples --example blue-green`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use modulink::deploy::blue_green::{BlueGreen, Validation};
use modulink::deploy::deployer::NoopDeployer;
use modulink::deploy::router::{RouterConfig, TrafficRouter};

type Failure = Box<dyn std::error::Error + Send + Sync>;

async fn environment(version: &'static str) -> Result<String, Failure> {
    let app = axum::Router::new()
        .route("/health/ready", get(|| async { "ready" }))
        .fallback(get(move || async move { version }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let router = TrafficRouter::new(
        RouterConfig::new()
            .upstream("blue", environment("v1").await?)
            .upstream("green", environment("v2").await?),
    )?;
    let server = router.serve(tokio::net::TcpListener::bind("127.0.0.1:0").await?);
    let url = format!("http://{}/", server.local_addr().ok_or("no address")?);
    let releases = BlueGreen::new(router.clone(), "blue", "green", NoopDeployer)?.with_validation(
        Validation {
            load_requests: 50,
            load_concurrency: 5,
            ..Validation::default()
        },
    );

    // Clients call through the router during the whole release.
    let running = Arc::new(AtomicBool::new(true));
    let (served, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (running, served, failed, url) = (
                Arc::clone(&running),
                Arc::clone(&served),
                Arc::clone(&failed),
                url.clone(),
            );
            tokio::spawn(async move {
                let client: Client<_, Empty<Bytes>> =
                    Client::builder(TokioExecutor::new()).build_http();
                while running.load(Ordering::Relaxed) {
                    let ok = match url.parse() {
                        Ok(uri) => match client.get(uri).await {
                            Ok(response) => {
                                let ok = response.status().is_success();
                                ok && response.into_body().collect().await.is_ok()
                            }
                            Err(_) => false,
                        },
                        Err(_) => false,
                    };
                    let counter = if ok { &served } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    println!("active before: {}", releases.active().await);
    let report = releases.deploy("v2").await?;
    println!(
        "deployed v2 to green: healthy {}, load test {:.0}% ok, average {:.2} ms",
        report.healthy,
        report.load_success_rate * 100.0,
        report.load_average_latency_ms
    );
    println!("active after deploy: {}", releases.active().await);
    releases.rollback().await?;
    println!("active after rollback: {}", releases.active().await);

    running.store(false, Ordering::Relaxed);
    for client in clients {
        client.await?;
    }
    println!(
        "clients during the release: {} requests served, {} failed",
        served.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    let status = releases.status().await?;
    println!("history ({} entries):", status.deployment_history_count);
    for entry in releases.history() {
        println!("  {} {} {}", entry.action, entry.environment, entry.detail);
    }
    server.shutdown().await;
    Ok(())
}

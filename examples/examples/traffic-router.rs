//! The traffic router in front of two versions of a service, and a canary
//! release of the second decided on the router's measurements.
//!
//! Without arguments: starts two local upstreams (v1 and v2), routes
//! requests 90/10, then runs an automated canary of v2 under load and
//! prints its events and summary.
//!
//! `serve BIND NAME=URL[,NAME=URL...] NAME=PERCENT[,NAME=PERCENT...] [THREADS]`
//! serves the router until Ctrl-C, e.g. for the wrk benchmark in
//! `bench/router_vs_nginx.sh`; with THREADS, one event loop per thread.
//!
//! Run with `cargo run -p examples --example traffic-router`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use modulink::deploy::canary::{Canary, CanaryConfig, CanaryEvent, CanaryOutcome};
use modulink::deploy::router::{RouterConfig, TrafficRouter};

type Failure = Box<dyn std::error::Error + Send + Sync>;

async fn version_server(version: &'static str) -> Result<SocketAddr, Failure> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let app = axum::Router::new().fallback(get(move || async move { version }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(address)
}

async fn serve(
    bind: &str,
    upstreams: &str,
    split: &str,
    threads: Option<usize>,
) -> Result<(), Failure> {
    let mut config = RouterConfig::new();
    for upstream in upstreams.split(',') {
        let (name, url) = upstream.split_once('=').ok_or("upstreams are NAME=URL")?;
        config = config.upstream(name, url);
    }
    let router = TrafficRouter::new(config)?;
    let mut shares = Vec::new();
    for share in split.split(',') {
        let (name, percent) = share.split_once('=').ok_or("the split is NAME=PERCENT")?;
        shares.push((name, percent.parse::<f64>()?));
    }
    router.set_split(&shares)?;
    let server = match threads {
        Some(threads) => router.serve_on_threads(bind.parse()?, threads)?,
        None => router.serve(tokio::net::TcpListener::bind(bind).await?),
    };
    println!("routing on {:?}: {:?}", server.local_addr(), router.split());
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}

async fn demo() -> Result<(), Failure> {
    let v1 = version_server("v1").await?;
    let v2 = version_server("v2").await?;
    let router = TrafficRouter::new(
        RouterConfig::new()
            .upstream("stable", format!("http://{v1}"))
            .upstream("canary", format!("http://{v2}")),
    )?;
    let server = router.serve(tokio::net::TcpListener::bind("127.0.0.1:0").await?);
    let url = format!("http://{}", server.local_addr().ok_or("no address")?);
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();

    router.set_split(&[("stable", 90.0), ("canary", 10.0)])?;
    let (mut on_v1, mut on_v2) = (0, 0);
    for _ in 0..1_000 {
        let body = client
            .get(url.parse()?)
            .await?
            .into_body()
            .collect()
            .await?
            .to_bytes();
        if &body[..] == b"v2" {
            on_v2 += 1
        } else {
            on_v1 += 1
        }
    }
    println!("split 90/10: {on_v1} requests on v1, {on_v2} on v2");
    let stats = router.stats("stable", Duration::from_secs(60))?;
    println!(
        "stable: {} requests, {:.1}% errors, p50 {:.2} ms, p99 {:.2} ms",
        stats.requests,
        stats.error_rate * 100.0,
        stats.p50_latency_ms,
        stats.p99_latency_ms
    );

    // A canary of v2, promoted on measured traffic while clients keep
    // calling.
    let canary = Canary::new(
        router.clone(),
        "stable",
        "canary",
        // Verdicts are decided at 95% confidence: proving an error rate
        // under the default 1% takes about 270 error-free canary requests
        // per evaluation, under 5% about 55. The demo's four clients send
        // enough for a 5% bound in half a second.
        CanaryConfig {
            initial_traffic_percent: 10.0,
            traffic_increment: 30.0,
            evaluation_interval: Duration::from_millis(500),
            max_error_rate: 0.05,
            ..CanaryConfig::default()
        },
    )?;
    let mut events = canary.subscribe();
    let printer = tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            match event {
                CanaryEvent::Started { canary_percent } => {
                    println!("canary started at {canary_percent}%")
                }
                CanaryEvent::Evaluated(evaluation) => println!(
                    "evaluated at {}%: {} canary requests, {:.1}% errors -> {:?}",
                    evaluation.canary_percent,
                    evaluation.canary.requests,
                    evaluation.canary.error_rate * 100.0,
                    evaluation.verdict
                ),
                CanaryEvent::Promoted { canary_percent } => {
                    println!("promoted to {canary_percent}%")
                }
                CanaryEvent::Completed(_) => println!("canary completed"),
                CanaryEvent::RolledBack { reason } => println!("rolled back: {reason}"),
            }
        }
    });
    let running = Arc::new(AtomicBool::new(true));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (running, client, url) = (Arc::clone(&running), client.clone(), url.clone());
            tokio::spawn(async move {
                while running.load(Ordering::Relaxed) {
                    if let Ok(uri) = url.parse()
                        && let Ok(response) = client.get(uri).await
                    {
                        let _ = response.into_body().collect().await;
                    }
                }
            })
        })
        .collect();
    let outcome = canary.run().await?;
    running.store(false, Ordering::Relaxed);
    for client in clients {
        client.await?;
    }
    drop(canary);
    printer.await?;
    match outcome {
        CanaryOutcome::Completed(summary) => println!(
            "summary: {} evaluations, health rate {:.0}%, average error rate {:.2}%, quality {}",
            summary.total_evaluations,
            summary.health_rate * 100.0,
            summary.avg_error_rate * 100.0,
            summary.deployment_quality
        ),
        other => println!("not promoted: {other:?}"),
    }
    println!("final split: {:?}", router.split());
    server.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    match arguments.as_slice() {
        [command, bind, upstreams, split] if command == "serve" => {
            serve(bind, upstreams, split, None).await
        }
        [command, bind, upstreams, split, threads] if command == "serve" => {
            serve(bind, upstreams, split, Some(threads.parse()?)).await
        }
        _ => demo().await,
    }
}

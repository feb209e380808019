//! The `/metrics` endpoint, checked by promtool.
#![cfg(feature = "server")]

use std::io::Write;
use std::process::{Command, Stdio};

use chain_core::{Chain, Context, named};
use chain_observability::{ChainMetrics, MetricsServer};
use prometheus::Registry;

#[tokio::test]
async fn serves_metrics_that_promtool_accepts() {
    let registry = Registry::new();
    let metrics = ChainMetrics::new(&registry).unwrap();
    let chain = metrics.instrument(
        Chain::named("checkout").link(named("pay", |ctx: Context| async move { Ok(ctx) })),
    );
    chain.execute(Context::new()).await.unwrap();

    let server = MetricsServer::serve(registry, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = format!("http://{}/metrics", server.local_addr());
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4"
    );
    let body = response.text().await.unwrap();
    assert!(
        body.contains(
            r#"modulink_chain_executions_total{chain_name="checkout",status="success"} 1"#
        ),
        "{body}"
    );

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect(
            "promtool is needed: install Debian's `prometheus` package, or run scripts/test.sh",
        );
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool rejected the metrics:\n{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    server.shutdown().await.unwrap();
    assert!(reqwest::get(&url).await.is_err(), "the server stopped");
}

#[tokio::test]
async fn a_taken_address_is_a_clear_error() {
    let first = MetricsServer::serve(Registry::new(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let err = MetricsServer::serve(Registry::new(), first.local_addr())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&first.local_addr().to_string()),
        "{err}"
    );
}

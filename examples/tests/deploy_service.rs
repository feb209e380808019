//! The deployable service as the Dockerfile runs it: a real process on a
//! loopback port, its `--probe` health check, its metrics, and its drain on
//! SIGTERM.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use support::{Process, example_binary};

const WAIT: Duration = Duration::from_secs(20);

fn start(drain_seconds: &str) -> (Process, String) {
    start_with(&[("DRAIN_SECONDS", drain_seconds)])
}

fn start_with(env: &[(&str, &str)]) -> (Process, String) {
    let mut command = Command::new(example_binary("deploy-service"));
    command
        .env("BIND", "127.0.0.1:0")
        .env("VERSION", "v7")
        .envs(env.iter().copied());
    let process = Process::start(command);
    let address = process.line_starting("listening on ", WAIT);
    (process, format!("http://{address}"))
}

/// Runs `deploy-service --probe URL`: the Docker `HEALTHCHECK`.
fn probe(url: &str) -> bool {
    Command::new(example_binary("deploy-service"))
        .args(["--probe", url])
        .output()
        .expect("the probe runs")
        .status
        .success()
}

#[tokio::test(flavor = "multi_thread")]
async fn orders_are_priced_over_http_and_counted_in_the_metrics() {
    let (_service, url) = start("5");
    let client = reqwest::Client::new();
    let order =
        json!({"items": [{"price": 29.99, "quantity": 2}, {"price": 49.99, "quantity": 3}]});
    let priced: Value = client
        .post(format!("{url}/orders"))
        .json(&order)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Worked out here, not read from the service: 59.98 + 149.97, and 8%
    // tax rounded to the cent.
    let subtotal = 29.99 * 2.0 + 49.99 * 3.0;
    let tax = (subtotal * 0.08 * 100.0_f64).round() / 100.0;
    assert!(
        (priced["subtotal"].as_f64().unwrap() - subtotal).abs() < 1e-9,
        "{priced}"
    );
    assert!(
        (priced["total"].as_f64().unwrap() - (subtotal + tax)).abs() < 1e-9,
        "{priced}"
    );

    let empty = client
        .post(format!("{url}/orders"))
        .json(&json!({"items": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), 422);

    let about: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(about["version"], "v7");

    let metrics = client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "modulink_chain_executions_total{chain_name=\"pricing\",status=\"success\"} 1",
        "modulink_chain_executions_total{chain_name=\"pricing\",status=\"error\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing `{line}` in:\n{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_probe_passes_on_a_ready_service_and_fails_otherwise() {
    let (service, url) = start("60");
    assert!(probe(&format!("{url}/health/ready")));
    assert!(
        !probe(&format!("{url}/no-such-page")),
        "a 404 passed the probe"
    );
    // Draining: readiness answers 503, and the probe says so.
    service.signal("TERM");
    service.line_starting("draining for ", WAIT);
    assert!(
        !probe(&format!("{url}/health/ready")),
        "a draining service passed"
    );
    assert!(probe(&format!("{url}/health/live")), "draining is not dead");
    drop(service);
    // Nothing listens any more.
    assert!(!probe(&format!("{url}/health/live")));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_then_exits_cleanly() {
    let (mut service, url) = start("3");
    let client = reqwest::Client::new();
    let ready = |client: &reqwest::Client| {
        let url = format!("{url}/health/ready");
        let client = client.clone();
        async move {
            client
                .get(url)
                .send()
                .await
                .map(|answer| answer.status().as_u16())
        }
    };
    assert_eq!(ready(&client).await.unwrap(), 200);

    service.signal("TERM");
    service.line_starting("draining for ", WAIT);
    // Within the drain window: not ready, yet orders are still served.
    assert_eq!(ready(&client).await.unwrap(), 503);
    let order = json!({"items": [{"price": 10.0, "quantity": 1}]});
    let answer = client
        .post(format!("{url}/orders"))
        .json(&order)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "an order was refused while draining");

    let status = service.wait_exit(WAIT);
    assert!(status.success(), "exited with {status}");
    assert!(ready(&client).await.is_err(), "still listening after exit");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_config_file_sets_the_drain_and_the_api_key_guards_orders() {
    let config = std::env::temp_dir().join(format!("deploy-service-{}.json", std::process::id()));
    std::fs::write(&config, r#"{"drain_seconds": 0.5}"#).unwrap();
    let (mut service, url) = start_with(&[
        ("CONFIG_FILE", config.to_str().unwrap()),
        ("API_KEY", "k-3f9a"),
    ]);
    let client = reqwest::Client::new();
    let order = json!({"items": [{"price": 10.0, "quantity": 1}]});
    let post = |key: Option<&str>| {
        let mut request = client.post(format!("{url}/orders")).json(&order);
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(post(None).await, 401);
    assert_eq!(post(Some("k-3f9b")).await, 401);
    assert_eq!(post(Some("k-3f9a")).await, 200);
    // Health and metrics stay open to probes and scrapers.
    let ready = client
        .get(format!("{url}/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    service.signal("TERM");
    assert_eq!(service.line_starting("draining for ", WAIT), "0.5 s");
    assert!(service.wait_exit(WAIT).success());
    std::fs::remove_file(&config).unwrap();
}

#[test]
fn a_config_file_that_is_not_json_stops_the_service_with_a_clear_error() {
    let config =
        std::env::temp_dir().join(format!("deploy-service-bad-{}.json", std::process::id()));
    std::fs::write(&config, "drain_seconds = 5").unwrap();
    let output = Command::new(example_binary("deploy-service"))
        .env("BIND", "127.0.0.1:0")
        .env("CONFIG_FILE", &config)
        .output()
        .unwrap();
    std::fs::remove_file(&config).unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is not JSON"), "{stderr}");
}

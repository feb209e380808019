//! Case study 3 as separate processes: the ingestion service, and sensors
//! played by a generator process that POSTs readings over HTTP. The test
//! reads the service's `/metrics`, overloads it, and changes its config
//! file while it runs.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{Process, example_binary};

const WAIT: Duration = Duration::from_secs(60);

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}")) as u64
}

/// Runs the generator process for readings `from..=to`, flooding between
/// `flood.0` and `flood.1`; returns what it printed.
fn generate(url: &str, from: u64, to: u64, flood: (u64, u64)) -> String {
    let output = Command::new(example_binary("iot-ingestion"))
        .args(["generate", url])
        .args([from, to, flood.0, flood.1].map(|n| n.to_string()))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

async fn flush_and_scrape(client: &reqwest::Client, url: &str) -> String {
    let flushed = tokio::time::timeout(WAIT, client.post(format!("{url}/flush")).send())
        .await
        .expect("the service drained within the timeout")
        .unwrap();
    assert!(flushed.status().is_success());
    client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn write_config(path: &std::path::Path, air_quality: f64) {
    let config = format!(
        r#"{{"critical": {{"traffic": 95, "air_quality": {air_quality}, "energy": 900}}}}"#
    );
    // Written whole then renamed, so the service never reads half a file.
    let partial = path.with_extension("partial");
    std::fs::write(&partial, config).unwrap();
    std::fs::rename(&partial, path).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn readings_over_http_shed_under_overload_alert_and_follow_the_config() {
    let dir = std::env::temp_dir().join(format!("iot-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("thresholds.json");
    write_config(&config, 300.0);
    let mut command = Command::new(example_binary("iot-ingestion"));
    command
        .args(["serve", config.to_str().unwrap()])
        .env("BIND", "127.0.0.1:0");
    let mut service = Process::start(command);
    let url = format!("http://{}", service.line_starting("listening on ", WAIT));
    let client = reqwest::Client::new();

    // A rush hour: readings 5,001 to 25,000 come as fast as eight
    // connections can send them.
    let said = generate(&url, 1, 30_000, (5_001, 25_000));
    let metrics = flush_and_scrape(&client, &url).await;
    let received = metric(&metrics, "iot_readings_received_total");
    let shed = metric(&metrics, "iot_readings_shed_total");
    let stored = metric(&metrics, "iot_readings_stored_total");
    let invalid = metric(&metrics, "iot_readings_invalid_total");
    assert_eq!(received, 30_000, "{said}");
    assert_eq!(
        received,
        shed + stored + invalid,
        "every reading is accounted for"
    );
    assert!(shed > 0, "the flood overloads the service: {said}");
    assert!(
        said.contains(&format!("shed {shed}")),
        "the generator was told: {said}"
    );
    // Critical readings are never shed, and each one raised an alert that
    // the bus delivered to the recorder.
    let critical = metric(&metrics, "iot_critical_received_total");
    assert!(critical > 0);
    assert_eq!(metric(&metrics, "iot_critical_stored_total"), critical);
    assert_eq!(metric(&metrics, "iot_alerts_published_total"), critical);
    assert_eq!(metric(&metrics, "iot_alerts_recorded_total"), critical);
    assert!(metrics.contains("modulink_chain_executions_total{chain_name=\"realtime_analytics\""));

    // The same calm readings twice: before and after the air-quality level
    // is lowered from 300 to 100 in the config file, while it runs.
    let calm = (0, 0);
    let critical_in = |before: &str, after: &str| {
        metric(after, "iot_critical_received_total") - metric(before, "iot_critical_received_total")
    };
    generate(&url, 40_001, 45_000, calm);
    let old_rules = flush_and_scrape(&client, &url).await;
    let under_old = critical_in(&metrics, &old_rules);
    write_config(&config, 100.0);
    let reloaded = service.line_starting("thresholds reloaded: ", WAIT);
    assert!(reloaded.contains("air_quality: 100.0"), "{reloaded}");
    generate(&url, 40_001, 45_000, calm);
    let new_rules = flush_and_scrape(&client, &url).await;
    let under_new = critical_in(&old_rules, &new_rules);
    assert!(
        under_new > under_old,
        "the lower level marks more readings critical: {under_old} then {under_new}"
    );
    assert_eq!(
        metric(&new_rules, "iot_alerts_recorded_total"),
        metric(&new_rules, "iot_critical_received_total")
    );

    // A broken file is refused; the thresholds stay.
    std::fs::write(&config, "{not json").unwrap();
    let refused = service.line_starting("config refused, thresholds unchanged: ", WAIT);
    assert!(refused.contains("is not JSON"), "{refused}");
    generate(&url, 40_001, 45_000, calm);
    let after_refusal = flush_and_scrape(&client, &url).await;
    assert_eq!(critical_in(&new_rules, &after_refusal), under_new);
    assert_eq!(metric(&after_refusal, "iot_config_reload_errors_total"), 1);

    service.signal("INT");
    assert!(service.wait_exit(WAIT).success());
    std::fs::remove_dir_all(&dir).unwrap();
}

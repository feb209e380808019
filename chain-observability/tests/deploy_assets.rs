//! The alert rules pass promtool, and the dashboard only queries metrics
//! this crate exports.

use std::path::Path;
use std::process::Command;

use chain_core::{Chain, Context};
use chain_observability::ChainMetrics;
use prometheus::{Encoder, Registry, TextEncoder};
use serde_json::Value;

fn asset(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name)
}

#[test]
fn alert_rules_pass_promtool() {
    let checked = Command::new("promtool")
        .args(["check", "rules"])
        .arg(asset("alerts.yml"))
        .output()
        .expect(
            "promtool is needed: install Debian's `prometheus` package, or run scripts/test.sh",
        );
    assert!(
        checked.status.success(),
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(String::from_utf8_lossy(&checked.stdout).contains("SUCCESS: 4 rules found"));
}

#[tokio::test]
async fn the_dashboard_queries_exported_metrics() {
    let registry = Registry::new();
    let metrics = ChainMetrics::new(&registry).unwrap();
    metrics
        .instrument(Chain::named("c").link_sync(Ok))
        .execute(Context::new())
        .await
        .unwrap();
    let mut exported = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut exported)
        .unwrap();
    let exported = String::from_utf8(exported).unwrap();

    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(asset("grafana-dashboard.json")).unwrap())
            .unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 6);
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let metric = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .find(|word| word.starts_with("modulink_"))
                .unwrap_or_else(|| panic!("no modulink metric in {expr}"));
            assert!(
                exported.contains(metric),
                "the dashboard queries `{metric}`, which is not exported"
            );
        }
    }
}

//! Runs every example and checks it exits 0 and prints what it demonstrates.

use std::process::Command;

fn run_example(name: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["run", "--quiet", "-p", "examples", "--example", name])
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "example {name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn quickstart_runs_and_shows_each_feature() {
    let out = run_example("quickstart");
    for expected in [
        "flowchart TD",
        "\"email\": \"ada@example.com\"",
        "\"plan\": \"team\"",
        "\"crm_id\": 4711",
        "\"billing_deferred\"",
        "Invalid input is rejected: validation error in chain `signup`, link #1 `validate_email`",
        "100 of 100 concurrent signups succeeded",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
}

#[test]
fn observability_logging_writes_json_lines_with_context_and_redaction() {
    let out = run_example("observability-logging");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"))
        })
        .collect();
    let large = lines
        .iter()
        .find(|line| line["message"] == "Large transaction detected")
        .expect("the large transaction is logged");
    assert_eq!(large["request_id"], "req-abc-123");
    assert_eq!(large["user_id"], "user123");
    assert_eq!(large["card_number"], "[REDACTED]");
    assert_eq!(large["trace_id"].as_str().map(str::len), Some(32));
    let failed = lines
        .iter()
        .find(|line| line["message"] == "Payment processing failed")
        .expect("the failure is logged");
    assert_eq!(failed["request_id"], "req-ghi-789");
    assert_eq!(
        lines
            .iter()
            .filter(|line| line["message"] == "Payment processed successfully")
            .count(),
        2
    );
    assert!(!out.contains("4242424242424242"));
}

#[test]
fn microservice_orchestration_retries_and_opens_the_breaker() {
    let out = run_example("microservice-orchestration");
    for expected in [
        "order ORD-00001 processed: payment \"PAY-0001\"",
        // The third payment request fails and is retried: order 3 still succeeds.
        "order ORD-00003 processed: payment \"PAY-0004\"",
        "-- the notification service goes down --",
        "order ORD-00004 failed: unavailable error in chain",
        "service `notification_service` answered 503",
        "order ORD-00005 failed: rejected error in chain",
        "notification_service  calls  6",
        "breaker open",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
}

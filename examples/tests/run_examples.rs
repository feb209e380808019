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

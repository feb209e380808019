//! Runs every example and checks it exits 0 and prints what it demonstrates.

use std::process::Command;

fn run_example(name: &str) -> String {
    run_example_with(name, &[])
}

fn run_example_with(name: &str, env: &[(&str, &str)]) -> String {
    run_example_with_args(name, env, &[])
}

fn run_example_with_args(name: &str, env: &[(&str, &str)], args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["run", "--quiet", "-p", "examples", "--example", name, "--"])
        .args(args)
        .envs(env.iter().copied())
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

#[test]
fn event_driven_handles_the_seed_events_in_priority_with_redelivery_and_dead_letters() {
    let out = run_example("event-driven");
    let alarm = out
        .find("pager: card used in two countries")
        .expect("alarm handled");
    let published = out.find("published 4 events").expect("publish returned");
    assert!(
        alarm < published,
        "the critical event ran before publish returned:\n{out}"
    );
    for expected in [
        "audit: REG-001 completed by registration",
        "\"verification_token\":\"VTK-USR-newuser\"",
        "audit: ORD-001 completed by orders",
        "\"total\":118.77",
        "compensate: ORD-002 failed after 1 deliveries",
        "stats: published 4, completed 6, redelivered 1, dead-lettered 1",
        "payment attempts: 2",
        "dead letter: ORD-002 (orders) after 1 delivery: validation error",
        "history of ORD-001: order_created -> order_created_completed",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
}

#[test]
fn nats_workers_share_the_orders_between_two_processes() {
    assert!(
        std::env::var_os("MODULINK_NATS_URL").is_some(),
        "MODULINK_NATS_URL is not set: run scripts/test.sh, which starts nats-server"
    );
    let out = run_example("nats-workers");
    assert!(out.contains("all 1000 orders completed"), "{out}");
    let handled: Vec<usize> = out
        .lines()
        .filter_map(|line| line.split(" handled ").nth(1))
        .map(|count| count.trim().parse().unwrap())
        .collect();
    assert_eq!(handled.len(), 2, "{out}");
    assert_eq!(handled.iter().sum::<usize>(), 1000);
    assert!(handled.iter().all(|&count| count > 0), "{out}");
    assert_eq!(
        out.matches("worker stopped: exit status: 0").count(),
        2,
        "{out}"
    );
}

#[test]
fn streaming_keeps_memory_flat_and_routes_unreadable_items_aside() {
    // A million items in a debug build; BENCHMARKS.md has ten million in
    // release under /usr/bin/time.
    let out = run_example_with("streaming-10m", &[("MODULINK_STREAM_ITEMS", "1000000")]);
    assert!(
        out.contains("processed 999990 readings, 10 unreadable, 100 anomalies"),
        "{out}"
    );
    let peak_mb: f64 = out
        .lines()
        .find_map(|line| line.strip_prefix("peak RSS (kernel high-water mark): "))
        .and_then(|value| value.trim_end_matches(" MB").parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in:\n{out}"));
    assert!(peak_mb <= 64.0, "peak RSS {peak_mb} MB");
    assert!(out.contains("throttled 0 times"), "{out}");
}

#[test]
fn scaling_demo_scales_up_under_load_and_back_down_after() {
    let out = run_example("scaling-demo");
    for expected in [
        "initial cluster: 3 nodes, capacity 30",
        "wave_1: 30/30 completed, 0 rejected",
        "auto-scaler: scale up to 4 nodes",
        "wave_2: 40/50 completed, 10 rejected (all nodes full)",
        "auto-scaler: scale up to 5 nodes",
        "wave_3: 50/50 completed, 0 rejected",
        "auto-scaler: scale up to 6 nodes",
        "auto-scaler: scale down to 3 nodes",
        "auto-scaler: hold at 3 nodes",
        "final cluster: 3 nodes, 3 healthy, 0 in flight",
        "node_1: 30 served",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
}

#[test]
fn the_deployable_service_answers_its_health_endpoints() {
    let out = run_example_with_args("deploy-service", &[("VERSION", "v7")], &["--self-test"]);
    for expected in [
        "GET /health/live: 200 {\"status\":\"pass\"",
        "GET /health/ready: 200 {\"status\":\"pass\"",
        "\"pricing_chain\":{\"status\":\"pass\"",
        "GET /: 200 {\"service\":\"modulink-deploy-example\",\"version\":\"v7\"}",
        "POST /orders: total 118.77",
        "POST /orders with no items: 422 {\"type\":\"about:blank\",\"title\":\"Unprocessable Entity\",\"status\":422,\"kind\":\"validation\",\"detail\":\"an order needs at least one item\"}",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
}

#[test]
fn traffic_router_splits_and_promotes_a_healthy_canary() {
    let out = run_example("traffic-router");
    let split = out
        .lines()
        .find_map(|line| line.strip_prefix("split 90/10: "))
        .unwrap_or_else(|| panic!("no split line in:\n{out}"));
    let on_v2: u32 = split
        .split(", ")
        .nth(1)
        .and_then(|part| part.split_whitespace().next())
        .and_then(|count| count.parse().ok())
        .unwrap();
    assert!((50..=150).contains(&on_v2), "{split}");
    for expected in [
        "canary started at 10%",
        "promoted to 40%",
        "promoted to 100%",
        "canary completed",
        "quality excellent",
        "final split: [(\"stable\", 0.0), (\"canary\", 100.0)]",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
}

#[test]
fn the_flagship_processes_every_order_through_an_outage() {
    let out = run_example("ecommerce");
    for expected in [
        "processing 200 orders on the in-process event bus",
        "inventory breaker: closed -> open",
        "inventory breaker: half_open -> closed",
        "progress: 200/200 orders",
        "orders: 200 processed, 195 completed, 5 failed",
        "failed as forbidden: 5",
        // The five orders held for fraud review are never charged.
        "195 charges (retries reused their idempotency key)",
        "modulink_chain_executions_total{chain_name=\"order_pipeline\",status=\"success\"} 195",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
    let traced: u32 = out
        .lines()
        .find_map(|line| line.strip_prefix("JSON logs: "))
        .and_then(|rest| rest.split(", ").nth(1))
        .and_then(|part| part.split_whitespace().next())
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("no log line in:\n{out}"));
    assert!(traced > 1_000, "{traced} log lines with trace ids");

    // Completed large transactions (at least $200) of orders 1 to 200, counted through
    // /metrics: order n has 1 + n % 3 items at 19.99 and one at 149.0 when
    // n % 4 == 0, so only three items and the 149.0 one reach it
    // (n % 12 == 8); user n % 40 == 12 is held for fraud and never
    // completes.
    let large_orders = (1..=200).filter(|n| n % 12 == 8 && n % 40 != 12).count();
    let large: usize = out
        .lines()
        .find_map(|line| line.strip_prefix("/metrics large transactions: "))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no large-transaction count in:\n{out}"));
    assert_eq!(large, large_orders);

    // Every metric an alert rule queries is one the flagship exports.
    let exported: Vec<&str> = out
        .lines()
        .find_map(|line| line.strip_prefix("/metrics names: "))
        .unwrap_or_else(|| panic!("no metric names in:\n{out}"))
        .split(' ')
        .collect();
    let rules = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../chain-observability/deploy/alerts.yml"
    ))
    .unwrap();
    let queried: Vec<&str> = rules
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(|line| line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
        .filter(|word| word.starts_with("modulink_"))
        .collect();
    assert!(queried.len() >= 4, "{queried:?}");
    for metric in queried {
        assert!(
            exported.contains(&metric),
            "an alert rule queries `{metric}`, which the flagship does not export: {exported:?}"
        );
    }
}

#[test]
fn the_flagship_runs_over_nats_jetstream() {
    let url = std::env::var("MODULINK_NATS_URL")
        .expect("MODULINK_NATS_URL is not set: run scripts/test.sh, which starts nats-server");
    // With credentials in the URL (a server without authentication ignores
    // them): the example names the server without them.
    let url = url.replacen("://", "://modulink:pa55w0rd@", 1);
    let out = run_example_with_args("ecommerce", &[], &["--nats", &url, "--workers", "8"]);
    assert!(out.contains("over NATS JetStream"), "{out}");
    assert!(
        !out.contains("pa55w0rd"),
        "a password in the output:\n{out}"
    );
    assert!(
        out.contains("orders: 200 processed, 195 completed, 5 failed"),
        "{out}"
    );
}

/// Each line must appear in the example's output.
fn expect_lines(name: &str, expected: &[&str]) {
    let out = run_example(name);
    for line in expected {
        assert!(out.contains(line), "{name}: missing `{line}` in:\n{out}");
    }
}

#[test]
fn parallel_pools_overlap_io_use_threads_for_cpu_and_report() {
    let out = run_example("parallel-pools");
    // "async chain completed in 0.152s, with waits of 0.100s and 0.150s: ..."
    let line = out
        .lines()
        .find_map(|line| line.strip_prefix("async chain completed in "))
        .unwrap_or_else(|| panic!("no async chain line in:\n{out}"));
    let seconds: Vec<f64> = line
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|part| part.contains('.'))
        .take(3)
        .map(|part| part.trim_end_matches('.').parse().unwrap())
        .collect();
    let [took, first, second] = seconds[..] else {
        panic!("cannot read the times in `{line}`");
    };
    assert!(took >= first.max(second), "{line}");
    assert!(
        took < first + second,
        "the waits ran one after the other: {line}"
    );
    for expected in [
        "thread chain completed in",
        "burst of 35: 30 ran, 5 rejected by the pool",
        "Performance report for pool `performance_test`",
        "5 chains were rejected",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
}

#[test]
fn blue_green_deploys_a_new_process_switches_and_rolls_back_without_failed_requests() {
    let out = run_example("blue-green");
    let value = |prefix: &str| -> String {
        out.lines()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no line `{prefix}...` in:\n{out}"))
            .trim()
            .to_owned()
    };
    let blue = value("blue: v1 in process ");
    let green = value("green: v2 in process ");
    assert_ne!(blue, green, "v2 did not get a process of its own");
    assert_ne!(blue, std::process::id().to_string());
    let failed: u64 = value("clients during the release: ")
        .trim_end_matches(" failed requests")
        .parse()
        .unwrap();
    assert_eq!(failed, 0, "{out}");
    // Both processes answered the clients, and nothing else did.
    let answered: Vec<(&str, u64)> = out
        .lines()
        .filter_map(|line| line.strip_prefix("answered by "))
        .map(|line| {
            let (process, count) = line.rsplit_once(": ").unwrap();
            (process, count.parse().unwrap())
        })
        .collect();
    let by = |process: &str| {
        answered
            .iter()
            .find(|(name, _)| *name == process)
            .map_or(0, |(_, count)| *count)
    };
    assert!(by(&format!("v1 {blue}")) > 0, "{out}");
    assert!(by(&format!("v2 {green}")) > 0, "{out}");
    assert_eq!(answered.len(), 2, "{out}");
    for line in [
        "deployed v2 to green: healthy true, load test 100% ok",
        "active after deploy: green",
        "active after rollback: blue",
    ] {
        assert!(out.contains(line), "missing `{line}` in:\n{out}");
    }
    // The example stopped the processes it started.
    for pid in [&blue, &green] {
        // Gone, or a zombie its adopter has not reaped yet.
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| !stat.rsplit_once(") ").unwrap().1.starts_with('Z'));
        assert!(!alive, "process {pid} outlived the example");
    }
}

#[test]
fn auth_allows_by_role_and_locks_out() {
    expect_lines(
        "auth",
        &[
            "weak password refused: validation error",
            "admin lists users: [",
            "john lists users: forbidden error",
            "john's profile: {\"role\":\"user\",\"username\":\"john\"}",
            "reader's profile: forbidden error",
            "tampered token: unauthorized error",
            "no token: unauthorized error",
            "right password while locked: rejected error: account temporarily locked",
        ],
    );
}

#[test]
fn validation_reports_every_field_and_sanitizes() {
    expect_lines(
        "validation",
        &[
            "valid registration, sanitized:",
            "  username: username must be 3-20 characters",
            "  email: invalid email format (format)",
            "  phone: invalid phone number format (format)",
            "comment sanitized: \"Nice post! <strong>Really</strong> <em>good</em>, underlined and a link\"",
            "hostile comment refused: validation error",
            "\"<script>alert(1)</script>\": sql injection true, xss true",
        ],
    );
}

#[test]
fn secrets_decrypt_fail_loudly_and_never_enter_the_json_context() {
    expect_lines(
        "secrets",
        &[
            "database_password decrypted, 18 characters; as logged: Secret([REDACTED])",
            "tampered secret: validation error: secret `broken` does not decrypt",
            "missing secret: not found error",
            "checkout context (no secret in it): {\"charged_with_key_ending\":\"8c2e\",\"order_id\":\"ORD-1\"}",
        ],
    );
}

#[test]
fn metrics_are_measured_summarized_and_served() {
    expect_lines(
        "metrics",
        &[
            "100 checkouts, 10 failed",
            "summary: 100 runs, success rate 90%",
            "modulink_chain_executions_total{chain_name=\"checkout\",status=\"error\"} 10",
            "modulink_chain_executions_total{chain_name=\"checkout\",status=\"success\"} 90",
        ],
    );
}

#[test]
fn a_trace_continues_through_the_chain_and_downstream() {
    expect_lines(
        "distributed-tracing",
        &[
            "parent 00f067aa0ba902b7 `order` Chain",
            "`price` Link",
            "`inventory_service` Link",
            "downstream received traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-",
            "same trace downstream: true",
            "trace summary: 3 spans, 0 errors, operations order, price, inventory_service",
        ],
    );
}

#[test]
fn iot_ingestion_sheds_only_non_critical_readings_under_overload() {
    let out = run_example("iot-ingestion");
    let numbers = |prefix: &str| -> Vec<u64> {
        out.lines()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` in:\n{out}"))
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|part| part.parse().ok())
            .collect()
    };
    // received, invalid, shed, stored (then the seconds and the rate).
    let summary = numbers("received ");
    let (received, invalid, shed, stored) = (summary[0], summary[1], summary[2], summary[3]);
    assert_eq!(received, 50_000);
    assert_eq!(
        invalid + shed + stored,
        received,
        "every reading is accounted for"
    );
    assert!(shed > 0, "the flood overloads the service");
    // The generator, a process of its own, was told what was shed.
    assert_eq!(numbers("generator: sent ")[2], shed);
    // critical received, stored, alerts published, recorded.
    let critical = numbers("critical: received ");
    assert!(critical[0] > 0);
    assert!(
        critical[1..4].iter().all(|&n| n == critical[0]),
        "{critical:?}"
    );
    let rows = numbers("rows in SQLite: ");
    assert_eq!(rows, [stored, critical[0]]);
}

#[test]
fn financial_aggregation_reports_on_valid_data_under_auth_and_rate_limits() {
    use modulink::security::secrets::Fernet;
    let key = Fernet::generate_key().unwrap();
    let sink = std::env::temp_dir().join(format!("report-test-{}.fernet", std::process::id()));
    let bank_token = "test-bank-token-0b1d2e";
    let out = run_example_with(
        "financial-aggregation",
        &[
            ("REPORT_KEY", key.as_str()),
            ("REPORT_SINK", sink.to_str().unwrap()),
            ("BANK_API_TOKEN", bank_token),
        ],
    );
    // The tokens come from the SecretManager (here the environment) and
    // never show.
    assert!(!out.contains(bank_token), "{out}");
    for expected in [
        "\"reason\": \"invalid IBAN or negative balance\"",
        "\"reason\": \"missing quantity or price\"",
        "anonymous report: unauthorized error",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }

    // The delivered report decrypts with the key, and says what it lacks.
    let delivered = std::fs::read_to_string(&sink).unwrap();
    std::fs::remove_file(&sink).unwrap();
    let plain = Fernet::new(&key)
        .unwrap()
        .decrypt(&delivered, None)
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(
        report["user"], "grace",
        "the last report delivered is the burst's"
    );
    assert_eq!(report["complete"], false);
    let unavailable = report["unavailable_sources"].as_array().unwrap();
    // The pension fund is down (503), or, in a burst, its rate limit
    // turned the call away first: either way it is named.
    assert!(
        unavailable
            .iter()
            .any(|entry| entry["source"] == "pension"
                && !entry["error"].as_str().unwrap().is_empty()),
        "{report}"
    );
    assert!(out.contains("service `pension` answered 503"), "{out}");

    // Calls each source received, from the servers' own counts.
    let calls = |prefix: &str| -> std::collections::HashMap<String, u64> {
        out.lines()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` in:\n{out}"))
            .split(", ")
            .map(|part| {
                let (name, count) = part.split_once(' ').unwrap();
                (name.to_owned(), count.parse().unwrap())
            })
            .collect()
    };
    let first = calls("calls to the sources after the first report: ");
    let second = calls("calls to the sources after a second report: ");
    for source in ["bank", "broker", "exchange"] {
        assert_eq!(first[source], 1, "{first:?}");
        assert_eq!(
            second[source], 1,
            "the second report was not served from the cache"
        );
    }
    // The failing source is never cached: it is asked again (2 attempts
    // each time).
    assert_eq!((first["pension"], second["pension"]), (2, 4));

    // The burst for another user passes the sources' rate limits: some of
    // its reports name a rate-limited source, none is hidden.
    let burst: Vec<&str> = out
        .lines()
        .filter(|line| line.starts_with("burst report "))
        .collect();
    assert_eq!(burst.len(), 4, "{out}");
    assert!(
        burst.iter().any(|line| line.contains("(rate limited)")),
        "{burst:?}"
    );
    assert!(burst.iter().all(|line| line.contains("complete false")));

    // The first report's figures, from the example's printed report.
    assert!(out.contains("\"total_value_usd\": 69672.5"), "{out}");
    assert!(out.contains("\"largest\": \"BTC\""), "{out}");
}

#[test]
fn memory_batch_processes_every_item_in_batches_and_grades_the_measured_peak() {
    let out = run_example("memory-batch");
    let line = |prefix: &str| -> &str {
        out.lines()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{out}"))
    };
    let numbers = |text: &str| -> Vec<f64> {
        text.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
            .filter_map(|part| part.parse().ok())
            .collect()
    };
    // "processed 100000 items per execution in 500 batches over 5 executions"
    let counts = numbers(line("processed "));
    let [items, batches, executions] = counts[..] else {
        panic!("{counts:?}");
    };
    assert_eq!(items, 100_000.0);
    assert_eq!(batches, executions * (items / 1_000.0).ceil());
    let aggregation: serde_json::Value = serde_json::from_str(line("aggregation: ")).unwrap();
    let expected_sum: u64 = (0..100_000u64).map(|n| n * 2).sum();
    assert_eq!(aggregation["sum_of_processed"], expected_sum);
    assert_eq!(aggregation["enriched"], 100_000);
    assert_eq!(line("fields left in the result: "), "aggregation");

    // "memory: executions 5, min 5.9 MB, peak 147.2 MB, limit 256 MB,
    // change per execution +28.3 MB, grade fair"
    let memory = line("memory: ");
    let figures = numbers(memory);
    let [measured, min, peak, limit, change] = figures[..] else {
        panic!("{figures:?} in {memory}");
    };
    assert_eq!(measured, executions);
    assert!(min > 0.0 && min < peak && peak <= 1e6, "{memory}");
    // The changes add up to no more than the growth the samples saw.
    assert!(change * measured <= peak - min + 1.0, "{memory}");
    let share = peak / limit;
    let grade = match share {
        s if s > 1.0 => "over_limit",
        s if s >= 0.75 => "needs_optimization",
        s if s >= 0.5 => "fair",
        _ => "good",
    };
    assert!(memory.ends_with(&format!("grade {grade}")), "{memory}");
}

/// The number after `label` on the summary line that starts with `line`.
fn figure(out: &str, line: &str, label: &str) -> u64 {
    let rest = out
        .lines()
        .find_map(|l| l.strip_prefix(line))
        .unwrap_or_else(|| panic!("no `{line}` line in:\n{out}"));
    let words: Vec<&str> = rest.split_whitespace().collect();
    words
        .windows(2)
        .find_map(|pair| (pair[1].trim_end_matches([',', ';']) == label).then(|| pair[0]))
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no `N {label}` in `{line}{rest}`"))
}

/// The durable flagship's summary: every order finished, the held ones
/// failed as forbidden, every completed order charged exactly once, and
/// with `--chaos` two workers killed and some executions resumed.
fn check_durable_flagship(out: &str) {
    assert_eq!(figure(out, "orders: ", "processed"), 200, "{out}");
    assert_eq!(figure(out, "orders: ", "completed"), 195, "{out}");
    assert!(out.contains("failed as forbidden: 5"), "{out}");
    // One charge per completed order, and each completed order has one:
    // links re-run after a kill reused the payment's idempotency key.
    assert_eq!(figure(out, "payments: ", "charges"), 195, "{out}");
    assert!(out.contains("195 of 195 completed orders charged"), "{out}");
    assert_eq!(figure(out, "durable: ", "workers"), 2, "{out}");
    assert!(
        figure(out, "durable: ", "executions") >= 1,
        "no execution was resumed by another worker:\n{out}"
    );
}

#[test]
fn the_flagship_runs_durably_on_sqlite_while_workers_are_killed() {
    let out = run_example_with_args("ecommerce", &[], &["--durable", "--chaos"]);
    assert!(out.contains("checkpointed in SQLite"), "{out}");
    check_durable_flagship(&out);
}

#[test]
fn the_flagship_runs_durably_on_jetstream_while_workers_are_killed() {
    let url = std::env::var("MODULINK_NATS_URL")
        .expect("MODULINK_NATS_URL is not set: run scripts/test.sh, which starts nats-server");
    let out = run_example_with_args("ecommerce", &[], &["--nats", &url, "--durable", "--chaos"]);
    assert!(out.contains("JetStream key-value bucket"), "{out}");
    check_durable_flagship(&out);
}

/// The measurement behind BENCHMARKS.md's throughput against workers, in
/// small: it runs, starts its worker processes, and every figure it
/// reports is a measured, positive rate.
#[test]
fn nats_throughput_measures_each_worker_count() {
    let url = std::env::var("MODULINK_NATS_URL")
        .expect("MODULINK_NATS_URL is not set: run scripts/test.sh, which starts nats-server");
    let out = run_example_with_args(
        "nats-throughput",
        &[],
        &["--urls", &url, "--events", "500", "--workers", "1,2"],
    );
    let runs: Vec<serde_json::Value> = out
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert_eq!(runs.len(), 2, "{out}");
    for (run, workers) in runs.iter().zip([1, 2]) {
        assert_eq!(run["workers"], workers);
        assert_eq!(run["events"], 500);
        for rate in ["handled_per_second", "published_per_second"] {
            assert!(run[rate].as_f64().unwrap() > 0.0, "{run}");
        }
        assert!(run["worker_cpu_us_per_event"].as_f64().unwrap() >= 0.0);
    }
}

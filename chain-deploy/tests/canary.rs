//! Canary releases decided on traffic measured by the router, against real
//! upstreams on 127.0.0.1.

mod support;

use std::time::Duration;

use chain_deploy::DeployError;
use chain_deploy::canary::{
    Canary, CanaryConfig, CanaryEvent, CanaryOutcome, ResourceSignal, Verdict,
};
use chain_deploy::router::{RouterConfig, RouterServer, TrafficRouter, UpstreamStats};
use support::{Behaviour, Load, upstream};

async fn release(stable: Behaviour, canary: Behaviour) -> (TrafficRouter, String, RouterServer) {
    let stable = upstream(stable).await;
    let canary = upstream(canary).await;
    let router = TrafficRouter::new(
        RouterConfig::new()
            .upstream("stable", format!("http://{stable}"))
            .upstream("canary", format!("http://{canary}")),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = router.serve(listener);
    let url = format!("http://{}", server.local_addr().unwrap());
    (router, url, server)
}

/// Short intervals so a release takes a second, not an hour.
fn quick(initial: f64, increment: f64) -> CanaryConfig {
    CanaryConfig {
        initial_traffic_percent: initial,
        traffic_increment: increment,
        evaluation_interval: Duration::from_millis(300),
        min_requests: 10,
        ..CanaryConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_is_promoted_to_all_traffic() {
    let (router, url, _server) = release(
        Behaviour::version("v1").delayed(Duration::from_millis(2)),
        Behaviour::version("v2").delayed(Duration::from_millis(2)),
    )
    .await;
    // A full second per evaluation and a 5% error bound: proving a rate
    // under 5% at 95% confidence takes about 55 error-free canary requests
    // (under 1%, about 270), which even a loaded machine sends.
    let config = CanaryConfig {
        evaluation_interval: Duration::from_secs(1),
        max_error_rate: 0.05,
        ..quick(20.0, 40.0)
    };
    let canary = Canary::new(router.clone(), "stable", "canary", config).unwrap();
    let mut events = canary.subscribe();
    let load = Load::start(&url, 4);
    let outcome = tokio::time::timeout(Duration::from_secs(30), canary.run())
        .await
        .unwrap()
        .unwrap();
    let seen = load.stop().await;

    let CanaryOutcome::Completed(summary) = outcome else {
        panic!("not promoted: {outcome:?}");
    };
    assert_eq!(router.share_of("canary").unwrap(), 100.0);
    assert_eq!(summary.total_evaluations, 2, "20% -> 60% -> 100%");
    assert_eq!(summary.health_rate, 1.0);
    assert_eq!(summary.deployment_quality, "excellent");
    assert_eq!(summary.avg_error_rate, 0.0);
    assert!(summary.avg_latency_ms >= 2.0);
    assert_eq!(seen.failed, 0);

    let mut promoted = Vec::new();
    while let Ok(event) = events.try_recv() {
        match event {
            CanaryEvent::Promoted { canary_percent } => promoted.push(canary_percent),
            CanaryEvent::Completed(_) => promoted.push(-1.0),
            _ => {}
        }
    }
    assert_eq!(promoted, [60.0, 100.0, -1.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_millisecond_of_latency_within_the_slack_does_not_fail_a_fast_canary() {
    // Stable answers at once, the canary a millisecond later: several times
    // stable's latency, but a millisecond is noise, not a regression.
    let (router, url, _server) = release(
        Behaviour::version("v1"),
        Behaviour::version("v2").delayed(Duration::from_millis(1)),
    )
    .await;
    let config = CanaryConfig {
        evaluation_interval: Duration::from_secs(1),
        latency_slack: Duration::from_millis(10),
        // Errors are not what this test is about: a bound that a loaded
        // machine's traffic can prove (see the promotion test).
        max_error_rate: 0.05,
        ..quick(50.0, 50.0)
    };
    let canary = Canary::new(router.clone(), "stable", "canary", config).unwrap();
    let load = Load::start(&url, 4);
    let outcome = tokio::time::timeout(Duration::from_secs(30), canary.run())
        .await
        .unwrap()
        .unwrap();
    load.stop().await;
    let CanaryOutcome::Completed(summary) = outcome else {
        panic!("not promoted: {outcome:?}");
    };
    assert_eq!(summary.health_rate, 1.0);
    assert_eq!(router.share_of("canary").unwrap(), 100.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_answering_five_percent_5xx_is_rolled_back() {
    let (router, url, _server) = release(
        Behaviour::version("v1"),
        Behaviour::version("v2").failing_every(20),
    )
    .await;
    let canary = Canary::new(router.clone(), "stable", "canary", quick(50.0, 10.0)).unwrap();
    let load = Load::start(&url, 4);
    let outcome = tokio::time::timeout(Duration::from_secs(30), canary.run())
        .await
        .unwrap()
        .unwrap();
    load.stop().await;

    let CanaryOutcome::RolledBack { reason, summary } = outcome else {
        panic!("not rolled back: {outcome:?}");
    };
    assert!(reason.contains("error rate"), "{reason}");
    assert!(summary.total_evaluations <= 2, "{summary:?}");
    assert_eq!(router.share_of("stable").unwrap(), 100.0);
    // Traffic after the rollback all lands on stable.
    let after = Load::start(&url, 2);
    after.wait_for(50).await;
    let report = after.stop().await;
    assert_eq!(report.versions.keys().collect::<Vec<_>>(), ["v1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_three_times_slower_is_rolled_back() {
    let (router, url, _server) = release(
        Behaviour::version("v1").delayed(Duration::from_millis(5)),
        Behaviour::version("v2").delayed(Duration::from_millis(15)),
    )
    .await;
    let canary = Canary::new(router.clone(), "stable", "canary", quick(50.0, 10.0)).unwrap();
    let load = Load::start(&url, 4);
    let outcome = tokio::time::timeout(Duration::from_secs(30), canary.run())
        .await
        .unwrap()
        .unwrap();
    load.stop().await;
    let CanaryOutcome::RolledBack { reason, .. } = outcome else {
        panic!("not rolled back: {outcome:?}");
    };
    assert!(
        reason.contains("latency") && reason.contains("stable's"),
        "{reason}"
    );
    assert_eq!(router.share_of("canary").unwrap(), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_traffic_the_verdict_is_inconclusive_and_nothing_is_promoted() {
    let (router, _url, _server) = release(Behaviour::version("v1"), Behaviour::version("v2")).await;
    let config = CanaryConfig {
        max_inconclusive_evaluations: 2,
        ..quick(5.0, 10.0)
    };
    let canary = Canary::new(router.clone(), "stable", "canary", config.clone()).unwrap();
    canary.start().unwrap();
    let evaluation = canary.evaluate().unwrap();
    assert!(
        matches!(evaluation.verdict, Verdict::Inconclusive(ref why) if why.contains("0 canary requests"))
    );
    assert_eq!(router.share_of("canary").unwrap(), 5.0);
    canary.abort().unwrap();

    let canary = Canary::new(router.clone(), "stable", "canary", config).unwrap();
    let mut events = canary.subscribe();
    let outcome = canary.run().await.unwrap();
    let CanaryOutcome::RolledBack { reason, summary } = outcome else {
        panic!("{outcome:?}");
    };
    assert!(reason.contains("2 inconclusive evaluations"), "{reason}");
    assert_eq!(summary.healthy_evaluations, 0);
    while let Ok(event) = events.try_recv() {
        assert!(
            !matches!(event, CanaryEvent::Promoted { .. }),
            "promoted without traffic"
        );
    }
    assert_eq!(router.share_of("canary").unwrap(), 0.0);
}

#[tokio::test]
async fn manual_promotion_and_abort_with_state_checks() {
    let (router, _url, _server) = release(Behaviour::version("v1"), Behaviour::version("v2")).await;
    let canary = Canary::new(router.clone(), "stable", "canary", CanaryConfig::default()).unwrap();
    assert!(matches!(
        canary.promote(),
        Err(DeployError::CanaryState {
            state: "not started",
            ..
        })
    ));
    canary.start().unwrap();
    assert!(matches!(
        canary.start(),
        Err(DeployError::CanaryState { .. })
    ));
    assert_eq!(canary.promote().unwrap(), 15.0);
    assert_eq!(
        router.split(),
        [("stable".to_owned(), 85.0), ("canary".to_owned(), 15.0)]
    );
    canary.abort().unwrap();
    assert_eq!(router.share_of("stable").unwrap(), 100.0);
    let error = canary.promote().unwrap_err();
    assert_eq!(error.to_string(), "canary is finished: cannot promote");
    assert!(matches!(
        Canary::new(router, "stable", "nope", CanaryConfig::default()),
        Err(DeployError::UnknownUpstream { .. })
    ));
}

/// A small xorshift generator: the simulation is the same on every run.
struct Random(u64);

impl Random {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1_u64 << 53) as f64
    }

    /// One interval's measurements: `requests` each failing with
    /// probability `error_rate`, latencies uniform on 5 ± 2 ms.
    fn interval(&mut self, requests: u64, error_rate: f64) -> UpstreamStats {
        let errors = (0..requests)
            .filter(|_| self.next_f64() < error_rate)
            .count() as u64;
        let latencies: Vec<f64> = (0..requests).map(|_| 3.0 + 4.0 * self.next_f64()).collect();
        let mean = latencies.iter().sum::<f64>() / requests as f64;
        let variance =
            latencies.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (requests - 1) as f64;
        UpstreamStats::from_summary(requests, errors, mean, variance.sqrt())
    }
}

/// Over many simulated evaluations (a 5% canary share of 20,000 requests,
/// so 1,000 canary requests each), a canary failing 5% of its requests
/// against the default 1% bound is failed at least 95% of the time, and a
/// canary identical to stable (0.1% errors, same latency) is passed at
/// least 95% of the time; with 20 requests, neither is ever passed.
#[test]
fn verdicts_have_the_stated_confidence_over_simulated_evaluations() {
    let config = CanaryConfig::default();
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let trials = 2_000;
    let (mut bad_failed, mut good_passed) = (0, 0);
    for _ in 0..trials {
        let stable = random.interval(19_000, 0.001);
        let bad = random.interval(1_000, 0.05);
        if matches!(config.judge(&bad, &stable), Verdict::Unhealthy(_)) {
            bad_failed += 1;
        }
        let good = random.interval(1_000, 0.001);
        if config.judge(&good, &stable) == Verdict::Healthy {
            good_passed += 1;
        }
    }
    assert!(
        bad_failed * 100 >= trials * 95,
        "{bad_failed} of {trials} bad canaries failed"
    );
    assert!(
        good_passed * 100 >= trials * 95,
        "{good_passed} of {trials} good canaries passed"
    );

    // Twenty requests cannot show a rate under 1%: no canary is passed on
    // them (by raw averages a 5% canary passed about a third of the time).
    for _ in 0..500 {
        let stable = random.interval(380, 0.001);
        for rate in [0.001, 0.05] {
            let verdict = config.judge(&random.interval(20, rate), &stable);
            assert_ne!(verdict, Verdict::Healthy, "{rate}");
        }
    }
    // No traffic is never a pass, whatever the minimum says.
    let lenient = CanaryConfig {
        min_requests: 0,
        ..CanaryConfig::default()
    };
    assert!(matches!(
        lenient.judge(
            &UpstreamStats::from_summary(0, 0, 0.0, 0.0),
            &random.interval(100, 0.0)
        ),
        Verdict::Inconclusive(_)
    ));
}

/// The seed's resource check as a signal: the canary's own `/metrics`
/// (process CPU and resident memory). Too much memory fails an evaluation
/// that the router's measurements alone would pass; CPU is judged as a
/// rate between two readings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_signal_from_the_canarys_metrics_joins_the_verdict() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    // Resident bytes and CPU milliseconds the canary reports.
    let memory = Arc::new(AtomicU64::new(100 << 20));
    let cpu_ms = Arc::new(AtomicU64::new(1_000));
    let metrics = {
        let (memory, cpu_ms) = (Arc::clone(&memory), Arc::clone(&cpu_ms));
        axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let (memory, cpu_ms) = (Arc::clone(&memory), Arc::clone(&cpu_ms));
                async move {
                    format!(
                        "# HELP process_cpu_seconds_total CPU time.\n\
                         # TYPE process_cpu_seconds_total counter\n\
                         process_cpu_seconds_total {}\n\
                         process_resident_memory_bytes {}\n",
                        cpu_ms.load(Ordering::SeqCst) as f64 / 1e3,
                        memory.load(Ordering::SeqCst)
                    )
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_url = format!("http://{}/metrics", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, metrics).await });

    let (router, url, _server) = release(Behaviour::version("v1"), Behaviour::version("v2")).await;
    let config = CanaryConfig {
        max_error_rate: 0.05,
        ..quick(50.0, 10.0)
    };
    let canary = Canary::new(router.clone(), "stable", "canary", config)
        .unwrap()
        .with_signal(ResourceSignal::new(&metrics_url, 0.5, 512 << 20));
    canary.start().unwrap();
    let load = Load::start(&url, 4);
    load.wait_for(600).await;
    canary.refresh_signals().await;
    let first = canary.evaluate().unwrap();
    assert_eq!(first.verdict, Verdict::Healthy, "{first:?}");

    // Memory past the limit fails the canary.
    memory.store(900 << 20, Ordering::SeqCst);
    canary.refresh_signals().await;
    let second = canary.evaluate().unwrap();
    let Verdict::Unhealthy(reasons) = &second.verdict else {
        panic!("{second:?}");
    };
    assert!(
        reasons
            .iter()
            .any(|reason| reason.contains("resources") && reason.contains("resident memory")),
        "{reasons:?}"
    );

    // So does CPU use above half a core between two readings (ten seconds
    // of CPU in far less time than twenty).
    memory.store(100 << 20, Ordering::SeqCst);
    cpu_ms.fetch_add(10_000, Ordering::SeqCst);
    canary.refresh_signals().await;
    let third = canary.evaluate().unwrap();
    load.stop().await;
    let Verdict::Unhealthy(reasons) = &third.verdict else {
        panic!("{third:?}");
    };
    assert!(
        reasons.iter().any(|reason| reason.contains("CPU")),
        "{reasons:?}"
    );
}

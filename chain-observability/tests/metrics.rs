//! ChainMetrics measured from real executions.

use std::time::Duration;

use chain_core::{Chain, Context, Error, ErrorKind, named};
use chain_observability::{ChainMetrics, HealthStatus, MetricsConfig};
use prometheus::proto::MetricFamily;
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::sync::oneshot;

fn text(registry: &Registry) -> String {
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .unwrap();
    String::from_utf8(out).unwrap()
}

fn family(registry: &Registry, name: &str) -> MetricFamily {
    registry
        .gather()
        .into_iter()
        .find(|family| family.name() == name)
        .unwrap_or_else(|| panic!("no metric {name}"))
}

fn gauge(registry: &Registry, name: &str, chain: &str) -> i64 {
    family(registry, name)
        .get_metric()
        .iter()
        .find(|metric| {
            metric
                .get_label()
                .iter()
                .any(|label| label.value() == chain)
        })
        .map_or(0, |metric| metric.get_gauge().get_value() as i64)
}

fn checkout() -> Chain {
    Chain::named("checkout")
        .link(named("validate", |ctx: Context| async move {
            if ctx.contains_key("invalid") {
                return Err(Error::validation("bad order"));
            }
            Ok(ctx)
        }))
        .link(named("charge", |ctx: Context| async move {
            Ok(ctx.with("charged", true))
        }))
}

#[tokio::test]
async fn executions_and_links_are_counted_and_timed() {
    let registry = Registry::new();
    let metrics = ChainMetrics::new(&registry).unwrap();
    let chain = metrics.instrument(checkout());
    for _ in 0..3 {
        chain.execute(Context::new()).await.unwrap();
    }
    chain
        .execute(Context::new().with("invalid", true))
        .await
        .unwrap_err();

    let out = text(&registry);
    for line in [
        r#"modulink_chain_executions_total{chain_name="checkout",status="success"} 3"#,
        r#"modulink_chain_executions_total{chain_name="checkout",status="error"} 1"#,
        r#"modulink_execution_duration_seconds_count{chain_name="checkout"} 4"#,
        r#"modulink_function_executions_total{chain_name="checkout",function_name="validate",status="success"} 3"#,
        r#"modulink_function_executions_total{chain_name="checkout",function_name="validate",status="error"} 1"#,
        r#"modulink_function_executions_total{chain_name="checkout",function_name="charge",status="success"} 3"#,
        r#"modulink_function_duration_seconds_count{chain_name="checkout",function_name="charge"} 3"#,
        r#"modulink_execution_duration_seconds_bucket{chain_name="checkout",le="0.1"} 4"#,
        r#"modulink_active_chains{chain_name="checkout"} 0"#,
    ] {
        assert!(out.contains(line), "missing `{line}` in:\n{out}");
    }
    assert!(gauge(&registry, "modulink_memory_usage_bytes", "checkout") > 1 << 20);
}

#[tokio::test]
async fn the_active_gauge_tracks_running_executions_also_on_cancellation() {
    let registry = Registry::new();
    let metrics = ChainMetrics::new(&registry).unwrap();
    let (started_tx, started) = oneshot::channel::<()>();
    let started_tx = std::sync::Mutex::new(Some(started_tx));
    let chain = metrics.instrument(Chain::named("hangs").link(named(
        "wait",
        move |ctx: Context| {
            let signal = started_tx.lock().unwrap().take();
            async move {
                if let Some(signal) = signal {
                    let _ = signal.send(());
                }
                std::future::pending::<()>().await;
                Ok(ctx)
            }
        },
    )));
    let task = tokio::spawn(async move { chain.execute(Context::new()).await });
    tokio::time::timeout(Duration::from_secs(10), started)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(gauge(&registry, "modulink_active_chains", "hangs"), 1);
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_eq!(
        gauge(&registry, "modulink_active_chains", "hangs"),
        0,
        "the drop guard brought it down"
    );
}

#[tokio::test]
async fn label_values_beyond_the_limit_fold_into_other() {
    let registry = Registry::new();
    let config = MetricsConfig {
        max_label_values: 2,
        ..MetricsConfig::default()
    };
    let metrics = ChainMetrics::with_config(&registry, config).unwrap();
    for name in ["a", "b", "user-4711", "user-4712"] {
        let chain = metrics.instrument(Chain::named(name).link_sync(Ok));
        chain.execute(Context::new()).await.unwrap();
    }
    let out = text(&registry);
    assert!(
        out.contains(r#"modulink_chain_executions_total{chain_name="other",status="success"} 2"#),
        "{out}"
    );
    assert!(!out.contains("user-4711"), "{out}");
}

#[tokio::test]
async fn summary_and_health_come_from_measured_executions() {
    let registry = Registry::new();
    let metrics = ChainMetrics::new(&registry).unwrap();
    assert_eq!(metrics.health("checkout").status, HealthStatus::Unknown);
    assert!(metrics.summary("checkout").is_none());

    let chain = metrics.instrument(checkout());
    for _ in 0..9 {
        chain.execute(Context::new()).await.unwrap();
    }
    chain
        .execute(Context::new().with("invalid", true))
        .await
        .unwrap_err();
    let summary = metrics.summary("checkout").unwrap();
    assert_eq!(
        (summary.total, summary.successes, summary.failures),
        (10, 9, 1)
    );
    assert!((summary.success_rate - 0.9).abs() < 1e-9);
    assert!(summary.min <= summary.p95 && summary.p95 <= summary.p99 && summary.p99 <= summary.max);
    assert_eq!(
        metrics.health("checkout").status,
        HealthStatus::Healthy,
        "10% errors is not above 10%"
    );

    chain
        .execute(Context::new().with("invalid", true))
        .await
        .unwrap_err();
    let health = metrics.health("checkout");
    assert_eq!(health.status, HealthStatus::Unhealthy);
    assert!(
        health.message.contains("high error rate"),
        "{}",
        health.message
    );
    assert_eq!(metrics.overall_health().recent_executions, 11);
}

#[tokio::test]
async fn the_summary_across_chains_pools_every_chain() {
    let registry = Registry::new();
    let metrics = ChainMetrics::new(&registry).unwrap();
    assert!(metrics.overall_summary().is_none());
    assert!(metrics.summaries().is_empty());
    // Two chains that take at least 10 ms and 30 ms (measured on the real
    // clock, as the metrics are), one execution of which fails.
    let waits = |name: &'static str, millis: u64| {
        metrics.instrument(Chain::named(name).link(move |ctx: Context| async move {
            tokio::time::sleep(Duration::from_millis(millis)).await;
            if ctx.contains_key("fail") {
                return Err(Error::validation("asked to fail"));
            }
            Ok(ctx)
        }))
    };
    let fast = waits("fast", 10);
    let slow = waits("slow", 30);
    for _ in 0..3 {
        fast.execute(Context::new()).await.unwrap();
    }
    slow.execute(Context::new()).await.unwrap();
    slow.execute(Context::new().with("fail", true))
        .await
        .unwrap_err();

    let all = metrics.summaries();
    assert_eq!(all.keys().collect::<Vec<_>>(), ["fast", "slow"]);
    assert_eq!((all["fast"].total, all["fast"].failures), (3, 0));
    assert_eq!((all["slow"].total, all["slow"].failures), (2, 1));

    let overall = metrics.overall_summary().unwrap();
    assert_eq!(
        (overall.total, overall.successes, overall.failures),
        (5, 4, 1)
    );
    assert!((overall.success_rate - 0.8).abs() < 1e-9);
    // The fastest is a `fast` run and the slowest a `slow` one: both
    // chains are in the pool.
    assert!(overall.min >= Duration::from_millis(10) && overall.min < Duration::from_millis(30));
    assert!(overall.max >= Duration::from_millis(30));
    // At least (3 x 10 + 2 x 30) / 5 = 18 ms, and below the slowest.
    assert!(
        overall.average >= Duration::from_millis(18) && overall.average < overall.max,
        "{:?}",
        overall.average
    );
}

#[test]
fn registering_twice_or_bad_buckets_are_errors() {
    let registry = Registry::new();
    ChainMetrics::new(&registry).unwrap();
    assert_eq!(
        ChainMetrics::new(&registry).unwrap_err().kind(),
        ErrorKind::Conflict
    );

    let config = MetricsConfig {
        execution_buckets: vec![1.0, 0.5],
        ..MetricsConfig::default()
    };
    assert!(
        ChainMetrics::with_config(&Registry::new(), config)
            .unwrap_err()
            .is_validation()
    );
}

//! The health endpoints over HTTP.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chain_deploy::health::{CheckResult, Health, routes};
use serde_json::Value;

async fn serve(health: Health) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, routes(health)).await.unwrap() });
    url
}

async fn fetch(url: &str) -> (u16, Value) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let response = client.get(url.parse().unwrap()).await.unwrap();
    let status = response.status().as_u16();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn checks_report_per_check_and_readiness_follows_failures_and_draining() {
    let database_up = Arc::new(AtomicBool::new(true));
    let up = Arc::clone(&database_up);
    let health = Health::new()
        .with_timeout(Duration::from_millis(200))
        .with_check(chain_deploy::health::check_fn("database", move || {
            let up = up.load(Ordering::SeqCst);
            async move {
                if up {
                    CheckResult::pass()
                } else {
                    CheckResult::fail("connection refused")
                }
            }
        }))
        .with_check(chain_deploy::health::check_fn("cache", || async {
            CheckResult::warn("hit rate 40%")
        }))
        .with_check(chain_deploy::health::check_fn(
            "slow_dependency",
            || async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                CheckResult::pass()
            },
        ));
    let url = serve(health.clone()).await;

    let (status, body) = fetch(&format!("{url}/health/ready")).await;
    assert_eq!(status, 503, "the slow dependency times out: {body}");
    assert_eq!(body["checks"]["database"]["status"], "pass");
    assert_eq!(body["checks"]["cache"]["status"], "warn");
    assert_eq!(body["checks"]["cache"]["detail"], "hit rate 40%");
    assert_eq!(body["checks"]["slow_dependency"]["status"], "fail");
    assert!(
        body["checks"]["slow_dependency"]["detail"]
            .as_str()
            .unwrap()
            .contains("no answer within")
    );

    let (status, body) = fetch(&format!("{url}/health/live")).await;
    assert_eq!((status, &body["status"]), (200, &Value::from("pass")));

    health.start_draining();
    let (status, body) = fetch(&format!("{url}/health/live")).await;
    assert_eq!(status, 200, "draining is not death");
    assert_eq!(body["draining"], true);
}

#[tokio::test]
async fn a_healthy_service_is_ready_until_it_drains() {
    let database_up = Arc::new(AtomicBool::new(true));
    let up = Arc::clone(&database_up);
    let health = Health::new().with_check(chain_deploy::health::check_fn("database", move || {
        let up = up.load(Ordering::SeqCst);
        async move {
            if up {
                CheckResult::pass()
            } else {
                CheckResult::fail("connection refused")
            }
        }
    }));
    let url = serve(health.clone()).await;
    assert_eq!(fetch(&format!("{url}/health/ready")).await.0, 200);
    assert_eq!(fetch(&format!("{url}/health")).await.1["status"], "pass");

    database_up.store(false, Ordering::SeqCst);
    let (status, body) = fetch(&format!("{url}/health")).await;
    assert_eq!(status, 503);
    assert_eq!(body["checks"]["database"]["detail"], "connection refused");

    database_up.store(true, Ordering::SeqCst);
    health.start_draining();
    let (status, body) = fetch(&format!("{url}/health/ready")).await;
    assert_eq!((status, &body["draining"]), (503, &Value::from(true)));
    health.stop_draining();
    assert_eq!(fetch(&format!("{url}/health/ready")).await.0, 200);
}

//! The seed's microservice orchestration: an order flows through four HTTP
//! services, each behind its own timeout, retry and circuit breaker. The
//! services are real HTTP servers started in process on 127.0.0.1; the
//! payment service fails now and then, and the notification service goes
//! down for a while.
//!
//! Run with `cargo run -p examples --example microservice-orchestration`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use modulink::Context;
use modulink::resilience::{Backoff, CircuitBreakerConfig, Orchestrator, Retry, ServiceEndpoint};
use serde_json::{Value, json};

/// How a demo service behaves.
#[derive(Default)]
struct Behaviour {
    /// Fail every n-th request with a 503 (0: never).
    fail_every: u32,
    down: AtomicBool,
    requests: AtomicU32,
}

async fn handle(
    State((name, behaviour)): State<(&'static str, Arc<Behaviour>)>,
    Json(order): Json<Value>,
) -> Result<Json<Value>, (StatusCode, &'static str)> {
    let n = behaviour.requests.fetch_add(1, Ordering::SeqCst) + 1;
    if behaviour.down.load(Ordering::SeqCst) {
        return Err((StatusCode::SERVICE_UNAVAILABLE, "down for maintenance"));
    }
    if behaviour.fail_every > 0 && n % behaviour.fail_every == 0 {
        return Err((StatusCode::BAD_GATEWAY, "upstream hiccup"));
    }
    let order_id = order["order_id"].clone();
    Ok(Json(match name {
        "user_service" => json!({"user_id": order["user_id"], "verified": true}),
        "inventory_service" => json!({"order_id": order_id, "reserved": order["items"]}),
        "payment_service" => {
            json!({"order_id": order_id, "payment_id": format!("PAY-{n:04}"), "status": "captured"})
        }
        _ => json!({"order_id": order_id, "notified": true}),
    }))
}

async fn start(name: &'static str, behaviour: Arc<Behaviour>) -> String {
    let app = Router::new()
        .route("/process", post(handle))
        .with_state((name, behaviour));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|error| panic!("cannot bind {name}: {error}"));
    let address = listener
        .local_addr()
        .unwrap_or_else(|error| panic!("{error}"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}/process")
}

#[tokio::main]
async fn main() -> modulink::Result<()> {
    let flaky_payments = Arc::new(Behaviour {
        fail_every: 3,
        ..Behaviour::default()
    });
    let notifications = Arc::new(Behaviour::default());
    let mut endpoints = Vec::new();
    for (name, behaviour) in [
        ("user_service", Arc::new(Behaviour::default())),
        ("inventory_service", Arc::new(Behaviour::default())),
        ("payment_service", flaky_payments.clone()),
        ("notification_service", notifications.clone()),
    ] {
        let url = start(name, behaviour).await;
        endpoints.push(
            ServiceEndpoint::new(name, url)
                .timeout(Duration::from_secs(2))
                .retry(Retry::new(3).backoff(Backoff::Constant(Duration::from_millis(5))))
                .breaker(CircuitBreakerConfig::consecutive_failures(
                    3,
                    Duration::from_secs(30),
                )),
        );
    }
    let orchestrator = Orchestrator::new(endpoints)?;
    let order_processing = orchestrator.chain([
        "user_service",
        "inventory_service",
        "payment_service",
        "notification_service",
    ])?;

    for n in 1..=6 {
        if n == 4 {
            println!("-- the notification service goes down --");
            notifications.down.store(true, Ordering::SeqCst);
        }
        let order = Context::new()
            .with("order_id", format!("ORD-{n:05}"))
            .with("user_id", "USR-67890")
            .with("items", json!([{"product_id": "PROD-001", "quantity": 2}]));
        match order_processing.execute(order).await {
            Ok(result) => println!(
                "order ORD-{n:05} processed: payment {}",
                result
                    .get_value("payment_service_result")
                    .map_or(Value::Null, |p| p["payment_id"].clone())
            ),
            Err(error) => println!("order ORD-{n:05} failed: {error:#}"),
        }
    }

    println!("-- per-service metrics --");
    for service in orchestrator.metrics() {
        println!(
            "{:<21} calls {:>2}  ok {:>2}  failed {:>2}  avg {:>9.3?}  p99 {:>9.3?}  breaker {}",
            service.name,
            service.calls,
            service.successes,
            service.failures,
            service.average_latency.unwrap_or_default(),
            service.p99_latency.unwrap_or_default(),
            service.breaker.as_str(),
        );
    }
    Ok(())
}

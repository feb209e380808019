//! The seed's distributed tracing and request correlation: a request
//! arriving with a W3C `traceparent` continues its trace through a chain
//! (a span per execution and per link), and the chain's HTTP call to a
//! downstream service carries the trace on, so the downstream joins it.
//!
//! Run with `cargo run -p examples --example distributed-tracing`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use modulink::observability::{SpanStore, Tracer, trace_header_hook};
use modulink::resilience::{Orchestrator, ServiceEndpoint};
use modulink::{Chain, Context, Result, named};
use serde_json::{Value, json};

type Seen = Arc<Mutex<Vec<String>>>;

async fn inventory(State(seen): State<Seen>, headers: HeaderMap) -> Json<Value> {
    let traceparent = headers
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("none")
        .to_owned();
    seen.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(traceparent);
    Json(json!({"in_stock": true}))
}

async fn price(ctx: Context) -> Result<Context> {
    tokio::time::sleep(Duration::from_millis(3)).await;
    Ok(ctx.with("total", 59.98))
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route("/", post(inventory))
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let services = Orchestrator::new([ServiceEndpoint::new("inventory_service", url)])?
        .header_hook(trace_header_hook);
    let store = SpanStore::new(1_000);
    let tracer = Tracer::new().store(store.clone());
    let order = tracer.instrument(
        Chain::named("order")
            .link(named("price", price))
            .link(services.chain(["inventory_service"])?),
    );

    // The request as a gateway would pass it on.
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let headers = json!({"traceparent": incoming, "x-request-id": "req-42"});
    order
        .execute(Context::new().with("headers", headers))
        .await?;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    println!("incoming traceparent: {incoming}");
    for span in store.trace(trace_id) {
        println!(
            "span {} parent {} `{}` {:?} {:.1} ms",
            span.span_id,
            span.parent_id.as_deref().unwrap_or("-"),
            span.name,
            span.kind,
            span.duration.as_secs_f64() * 1e3
        );
    }
    for received in seen.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        println!("downstream received traceparent: {received}");
        println!("same trace downstream: {}", received.contains(trace_id));
    }
    if let Some(summary) = store.summary(trace_id) {
        println!(
            "trace summary: {} spans, {} errors, operations {}",
            summary.spans,
            summary.errors,
            summary.operations.join(", ")
        );
    }
    Ok(())
}

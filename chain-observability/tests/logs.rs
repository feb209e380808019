//! JSON log lines carry the trace ids and context of the enclosing spans.

use chain_core::{Chain, Context, named};
use chain_observability::{JsonLogLayer, SpanKind, SpanStore, Tracer};
use serde_json::Value;
use support::Captured;
use tracing_subscriber::layer::SubscriberExt;

mod support;

fn lines(captured: &Captured) -> Vec<Value> {
    captured
        .text()
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"))
        })
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn each_line_carries_trace_span_and_context_fields_with_secrets_redacted() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::registry()
        .with(JsonLogLayer::new(move || writer.clone()).with_field("app_version", "1.0.0"));
    let _guard = tracing::subscriber::set_default(subscriber);

    let store = SpanStore::new(100);
    let chain = Tracer::new()
        .store(store.clone())
        .instrument(Chain::named("payments").link(named(
            "process_payment",
            |ctx: Context| async move {
                tracing::info!("Processing payment");
                tracing::error!(
                    amount = 15_000,
                    card_number = "4242424242424242",
                    "Large transaction detected"
                );
                Ok(ctx)
            },
        )));
    chain
        .execute(
            Context::new()
                .with("request_id", "req-abc-123")
                .with("user_id", "user123"),
        )
        .await
        .unwrap();

    let lines = lines(&captured);
    assert_eq!(lines.len(), 2);
    let trace_id = &store.trace_ids()[0];
    let link_span = store
        .trace(trace_id)
        .into_iter()
        .find(|span| span.kind == SpanKind::Link)
        .unwrap();
    for line in &lines {
        assert_eq!(line["trace_id"], trace_id.as_str());
        assert_eq!(
            line["span_id"],
            link_span.span_id.as_str(),
            "the innermost span's id"
        );
        assert_eq!(line["request_id"], "req-abc-123");
        assert_eq!(line["user_id"], "user123");
        assert_eq!(line["chain"], "payments");
        assert_eq!(line["link"], "process_payment");
        assert_eq!(line["app_version"], "1.0.0");
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(lines[0]["level"], "INFO");
    assert_eq!(lines[0]["message"], "Processing payment");
    assert_eq!(lines[1]["level"], "ERROR");
    assert_eq!(lines[1]["amount"], 15_000);
    assert_eq!(lines[1]["card_number"], "[REDACTED]");
    assert!(!captured.text().contains("4242"));
}

#[test]
fn events_outside_spans_have_no_trace_fields_and_custom_secrets_are_redacted() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::registry()
        .with(JsonLogLayer::new(move || writer.clone()).redact("ssn"));
    tracing::subscriber::with_default(subscriber, || {
        tracing::warn!(
            customer_ssn = "123-45-6789",
            password = "hunter2",
            plain = true,
            "lonely event"
        );
    });
    let lines = lines(&captured);
    assert_eq!(lines.len(), 1);
    let line = &lines[0];
    assert!(line.get("trace_id").is_none());
    assert_eq!(line["customer_ssn"], "[REDACTED]");
    assert_eq!(line["password"], "[REDACTED]");
    assert_eq!(line["plain"], true);
    assert_eq!(line["message"], "lonely event");
}

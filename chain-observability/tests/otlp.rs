//! Spans reach a local OTLP/HTTP receiver, a small axum server decoding the
//! protobuf requests, with their ids, parent links and attributes.
#![cfg(feature = "otlp")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chain_core::{Chain, Context, Error, named};
use chain_observability::{OtlpConfig, OtlpExporter, Span as OperationSpan, Tracer};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

#[derive(Default)]
struct Received {
    spans: Vec<Span>,
    service_names: Vec<String>,
    content_types: Vec<String>,
}

async fn receive(
    State(received): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut received = received.lock().unwrap();
    received.content_types.push(
        headers["content-type"]
            .to_str()
            .unwrap_or_default()
            .to_owned(),
    );
    for resource_spans in request.resource_spans {
        for attribute in resource_spans
            .resource
            .iter()
            .flat_map(|resource| &resource.attributes)
        {
            if attribute.key == "service.name"
                && let Some(AnyValue::StringValue(name)) =
                    attribute.value.as_ref().and_then(|v| v.value.clone())
            {
                received.service_names.push(name);
            }
        }
        for scope_spans in resource_spans.scope_spans {
            received.spans.extend(scope_spans.spans);
        }
    }
    StatusCode::OK
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(text) => Some(text.clone()),
            _ => None,
        })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[tokio::test(flavor = "current_thread")]
async fn spans_are_exported_with_ids_parents_and_attributes() {
    let received = Arc::new(Mutex::new(Received::default()));
    let app = Router::new()
        .route("/v1/traces", post(receive))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let exporter = OtlpExporter::start(OtlpConfig {
        endpoint: format!("http://{address}"),
        service_name: "orders-test".to_owned(),
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    let chain = Tracer::new().exporter(exporter.clone()).instrument(
        Chain::named("orders")
            .link(named("validate", |mut ctx: Context| async move {
                let mut span = OperationSpan::start(&mut ctx, "schema.check");
                span.add_event("checked", [("fields", 3)]);
                span.end(&mut ctx);
                Ok(ctx)
            }))
            .link(named("charge", |_ctx: Context| async {
                Err::<Context, _>(Error::unavailable("card declined"))
            })),
    );
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    chain
        .execute(
            Context::new()
                .with("traceparent", incoming)
                .with("request_id", "req-9"),
        )
        .await
        .unwrap_err();
    // Shutting down flushes the batch: nothing is lost.
    exporter.shutdown().await.unwrap();

    let received = received.lock().unwrap();
    assert_eq!(
        received.service_names.first().map(String::as_str),
        Some("orders-test")
    );
    assert!(
        received
            .content_types
            .iter()
            .all(|ct| ct == "application/x-protobuf"),
        "{:?}",
        received.content_types
    );
    let spans = &received.spans;
    assert_eq!(spans.len(), 4, "{spans:#?}");
    for span in spans {
        assert_eq!(hex(&span.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(attribute(span, "request_id").as_deref(), Some("req-9"));
    }
    let root = spans.iter().find(|span| span.name == "orders").unwrap();
    assert_eq!(
        hex(&root.parent_span_id),
        "00f067aa0ba902b7",
        "the root continues the incoming trace"
    );
    for name in ["validate", "charge"] {
        let link = spans.iter().find(|span| span.name == name).unwrap();
        assert_eq!(
            link.parent_span_id, root.span_id,
            "{name} is a child of the execution"
        );
        assert_eq!(attribute(link, "link").as_deref(), Some(name));
        assert!(link.end_time_unix_nano >= link.start_time_unix_nano);
    }
    let charge = spans.iter().find(|span| span.name == "charge").unwrap();
    let status = charge.status.as_ref().unwrap();
    assert!(status.message.contains("card declined"), "{status:?}");
    // A span the link started, with its event.
    let validate = spans.iter().find(|span| span.name == "validate").unwrap();
    let check = spans
        .iter()
        .find(|span| span.name == "schema.check")
        .unwrap();
    assert_eq!(check.parent_span_id, validate.span_id);
    assert_eq!(check.events.len(), 1);
    assert_eq!(check.events[0].name, "checked");
    assert_eq!(check.events[0].attributes[0].key, "fields");
}

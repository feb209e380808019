//! Spans a link starts itself: parents, attributes, events, errors, and
//! the trace position the link's outgoing calls carry.

mod support;

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use chain_core::remote::RemoteEndpoint;
use chain_core::{Chain, Context, Error, Link, named};
use chain_observability::{Span, SpanKind, SpanStore, TraceContext, Tracer};
use serde_json::Value;
use support::INCOMING;

/// A service on loopback that remembers the `traceparent` of each call.
async fn recording_service() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = Router::new().route(
        "/",
        post(move |headers: HeaderMap, Json(body): Json<Value>| {
            let record = record.clone();
            async move {
                let traceparent = headers
                    .get("traceparent")
                    .map_or("", |value| value.to_str().unwrap())
                    .to_owned();
                record.lock().unwrap().push(traceparent);
                Json(body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/"), seen)
}

#[tokio::test]
async fn a_span_started_in_a_link_is_its_child_with_attributes_events_and_error() {
    let store = SpanStore::new(100);
    let chain = Tracer::new()
        .store(store.clone())
        .instrument(
            Chain::named("payment").link(named("charge", |mut ctx: Context| async move {
                let mut lookup = Span::start(&mut ctx, "db.lookup");
                lookup.set_attribute("table", "cards");
                lookup.end(&mut ctx);
                let mut charge = Span::start(&mut ctx, "card.charge");
                charge.set_attribute("amount", 4200);
                charge.add_event("authorized", [("code", "A1")]);
                charge.add_event("captured", [("amount", 4200)]);
                let error = Error::rejected("card declined");
                charge.record_error(&error);
                charge.end(&mut ctx);
                Ok(ctx)
            })),
        );
    chain
        .execute(Context::new().with("traceparent", INCOMING))
        .await
        .unwrap();

    let spans = store.trace("4bf92f3577b34da6a3ce929d0e0e4736");
    let by_name = |name: &str| spans.iter().find(|span| span.name == name).unwrap();
    let link = by_name("charge");
    let (lookup, charge) = (by_name("db.lookup"), by_name("card.charge"));
    for operation in [lookup, charge] {
        assert_eq!(operation.kind, SpanKind::Operation);
        assert_eq!(operation.parent_id.as_ref(), Some(&link.span_id));
        assert!(operation.start >= link.start && operation.duration <= link.duration);
    }
    assert_ne!(lookup.span_id, charge.span_id);
    assert_eq!(lookup.attributes["table"], "cards");
    assert_eq!(lookup.error, None);
    assert_eq!(charge.attributes["amount"], "4200");
    let events: Vec<(&str, &str)> = charge
        .events
        .iter()
        .map(|event| {
            (
                event.name.as_str(),
                event.attributes.values().next().unwrap().as_str(),
            )
        })
        .collect();
    assert_eq!(events, [("authorized", "A1"), ("captured", "4200")]);
    assert!(charge.events[0].time <= charge.events[1].time);
    assert!(charge.error.as_deref().unwrap().contains("card declined"));
    // The link itself succeeded: the error is the operation's.
    assert_eq!(link.error, None);
}

#[tokio::test]
async fn remote_calls_carry_the_span_they_are_made_in() {
    let (url, seen) = recording_service().await;
    let endpoint = RemoteEndpoint::new(&url).unwrap();
    let store = SpanStore::new(100);
    let chain = Tracer::new()
        .store(store.clone())
        .instrument(
            Chain::named("calls").link(named("call_twice", move |mut ctx: Context| {
                let endpoint = endpoint.clone();
                async move {
                    let span = Span::start(&mut ctx, "inside");
                    let mut ctx = endpoint.call(ctx).await?;
                    span.end(&mut ctx);
                    endpoint.call(ctx).await
                }
            })),
        );
    chain
        .execute(Context::new().with("traceparent", INCOMING))
        .await
        .unwrap();

    let spans = store.trace("4bf92f3577b34da6a3ce929d0e0e4736");
    let id_of = |name: &str| &spans.iter().find(|span| span.name == name).unwrap().span_id;
    let seen = seen.lock().unwrap();
    let parents: Vec<String> = seen
        .iter()
        .map(|header| {
            let sent = TraceContext::parse(header, None).expect("a traceparent");
            assert_eq!(sent.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
            sent.span_id()
        })
        .collect();
    // The first call was made inside the span, the second after it ended.
    assert_eq!(&parents[0], id_of("inside"));
    assert_eq!(&parents[1], id_of("call_twice"));
}

#[tokio::test]
async fn outside_a_traced_execution_a_span_records_nothing() {
    let mut ctx = Context::new();
    let mut span = Span::start(&mut ctx, "untraced");
    span.set_attribute("k", "v");
    span.add_event("e", [("k", "v")]);
    assert!(span.trace().is_none());
    span.end(&mut ctx);
    assert!(ctx.ext::<TraceContext>().is_none());

    // A traced chain whose tracer keeps no spans still moves the position.
    let chain = Tracer::new().instrument(Chain::named("c").link(|mut ctx: Context| async move {
        let outer = ctx.ext::<TraceContext>().cloned().unwrap();
        let span = Span::start(&mut ctx, "op");
        let inside = ctx.ext::<TraceContext>().cloned().unwrap();
        assert_eq!(Some(&inside), span.trace());
        assert_ne!(inside, outer);
        span.end(&mut ctx);
        assert_eq!(ctx.ext::<TraceContext>(), Some(&outer));
        Ok(ctx)
    }));
    chain.execute(Context::new()).await.unwrap();
}

#[tokio::test]
async fn a_span_dropped_on_an_early_return_is_still_recorded() {
    let store = SpanStore::new(100);
    let chain = Tracer::new()
        .store(store.clone())
        .instrument(
            Chain::named("c").link(named("fails", |mut ctx: Context| async move {
                let mut span = Span::start(&mut ctx, "doomed");
                span.record_error(&"upstream said no");
                Err::<Context, _>(Error::unavailable("upstream said no"))
            })),
        );
    chain
        .execute(Context::new().with("traceparent", INCOMING))
        .await
        .unwrap_err();
    let spans = store.trace("4bf92f3577b34da6a3ce929d0e0e4736");
    let doomed = spans.iter().find(|span| span.name == "doomed").unwrap();
    assert_eq!(doomed.error.as_deref(), Some("upstream said no"));
    assert_eq!(
        spans
            .iter()
            .filter(|span| span.kind == SpanKind::Operation)
            .count(),
        1
    );
}

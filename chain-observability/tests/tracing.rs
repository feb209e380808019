//! Spans per execution and link, trace continuation and propagation.

use std::sync::{Arc, Mutex};

use chain_core::{Chain, Context, named};
use chain_observability::{SpanKind, SpanStore, TraceContext, Tracer, trace_header_hook};
use support::{INCOMING, order_chain};

mod support;

#[tokio::test]
async fn an_execution_makes_a_root_span_with_a_child_per_link() {
    let store = SpanStore::new(100);
    let chain = Tracer::new().store(store.clone()).instrument(order_chain());
    chain
        .execute(
            Context::new()
                .with("request_id", "req-1")
                .with("user_id", 42)
                .with("password", "hunter2"),
        )
        .await
        .unwrap();

    let ids = store.trace_ids();
    assert_eq!(ids.len(), 1);
    let spans = store.trace(&ids[0]);
    assert_eq!(spans.len(), 3);
    let root = spans
        .iter()
        .find(|span| span.kind == SpanKind::Chain)
        .unwrap();
    assert_eq!(
        (root.name.as_str(), root.parent_id.as_ref()),
        ("orders", None)
    );
    for (link, name) in spans
        .iter()
        .filter(|span| span.kind == SpanKind::Link)
        .zip(["validate", "charge"])
    {
        assert_eq!(link.name, name);
        assert_eq!(
            link.parent_id.as_ref(),
            Some(&root.span_id),
            "links are children of the execution"
        );
        assert_eq!(link.attributes["link"], name);
        assert_eq!(link.attributes["request_id"], "req-1");
        assert_eq!(link.attributes["user_id"], "42");
        assert!(
            !link.attributes.contains_key("password"),
            "only listed fields become attributes"
        );
    }
    let summary = store.summary(&ids[0]).unwrap();
    assert_eq!((summary.spans, summary.roots, summary.errors), (3, 1, 0));
    assert_eq!(summary.operations, ["orders", "validate", "charge"]);
    assert_eq!(summary.total_duration, root.duration);
}

#[tokio::test]
async fn an_incoming_traceparent_is_continued_and_an_invalid_one_ignored() {
    let store = SpanStore::new(100);
    let chain = Tracer::new().store(store.clone()).instrument(order_chain());
    chain
        .execute(Context::new().with("traceparent", INCOMING))
        .await
        .unwrap();
    let spans = store.trace("4bf92f3577b34da6a3ce929d0e0e4736");
    let root = spans
        .iter()
        .find(|span| span.kind == SpanKind::Chain)
        .unwrap();
    assert_eq!(root.parent_id.as_deref(), Some("00f067aa0ba902b7"));

    let invalid = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
    chain
        .execute(Context::new().with("traceparent", invalid))
        .await
        .unwrap();
    let fresh: Vec<String> = store
        .trace_ids()
        .into_iter()
        .filter(|id| id != "4bf92f3577b34da6a3ce929d0e0e4736")
        .collect();
    assert_eq!(fresh.len(), 1, "a new trace started");
    let root = store
        .trace(&fresh[0])
        .into_iter()
        .find(|span| span.kind == SpanKind::Chain)
        .unwrap();
    assert_eq!(root.parent_id, None);
}

#[tokio::test]
async fn failures_mark_the_link_and_the_execution() {
    let store = SpanStore::new(100);
    let chain = Tracer::new().store(store.clone()).instrument(order_chain());
    chain
        .execute(Context::new().with("decline", true))
        .await
        .unwrap_err();
    let id = &store.trace_ids()[0];
    let summary = store.summary(id).unwrap();
    assert_eq!(summary.errors, 2);
    let charge = store
        .trace(id)
        .into_iter()
        .find(|span| span.name == "charge")
        .unwrap();
    assert!(charge.error.unwrap().contains("card declined"));
}

#[tokio::test]
async fn unsampled_traces_record_nothing_but_still_propagate() {
    let store = SpanStore::new(100);
    let seen = Arc::new(Mutex::new(None));
    let seen_in_link = seen.clone();
    let chain = Tracer::new()
        .sample_ratio(0.0)
        .store(store.clone())
        .instrument(Chain::named("quiet").link_sync(move |ctx: Context| {
            *seen_in_link.lock().unwrap() = ctx.ext::<TraceContext>().cloned();
            Ok(ctx)
        }));
    for _ in 0..20 {
        chain.execute(Context::new()).await.unwrap();
    }
    assert!(store.is_empty());
    let trace = seen.lock().unwrap().clone().unwrap();
    assert!(
        !trace.sampled(),
        "downstream services learn the trace is not sampled"
    );

    // A sampled incoming trace is recorded whatever the ratio.
    chain
        .execute(Context::new().with("traceparent", INCOMING))
        .await
        .unwrap();
    assert_eq!(store.len(), 2);
}

#[tokio::test]
async fn outgoing_calls_carry_the_link_span_as_parent() {
    let store = SpanStore::new(100);
    let headers = Arc::new(Mutex::new(http::HeaderMap::new()));
    let captured = headers.clone();
    let chain = Tracer::new()
        .store(store.clone())
        .instrument(
            Chain::named("calls").link(named("call_inventory", move |ctx: Context| {
                let captured = captured.clone();
                async move {
                    trace_header_hook(&ctx, &mut captured.lock().unwrap());
                    Ok(ctx)
                }
            })),
        );
    chain
        .execute(
            Context::new()
                .with("traceparent", INCOMING)
                .with("tracestate", "congo=t61rcWkgMzE"),
        )
        .await
        .unwrap();
    let headers = headers.lock().unwrap();
    let sent = TraceContext::parse(headers["traceparent"].to_str().unwrap(), None).unwrap();
    let link = store
        .trace(&sent.trace_id())
        .into_iter()
        .find(|span| span.kind == SpanKind::Link)
        .unwrap();
    assert_eq!(sent.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(
        sent.span_id(),
        link.span_id,
        "the callee's parent is the calling link"
    );
    assert_eq!(headers["tracestate"], "congo=t61rcWkgMzE");
}

#[tokio::test]
async fn a_trace_is_continued_from_the_incoming_request_headers() {
    let store = SpanStore::new(100);
    let chain = Tracer::new().store(store.clone()).instrument(order_chain());
    let headers = serde_json::json!({"Content-Type": "application/json", "TraceParent": INCOMING});
    chain
        .execute(Context::new().with("headers", headers))
        .await
        .unwrap();
    let root = store
        .trace("4bf92f3577b34da6a3ce929d0e0e4736")
        .into_iter()
        .find(|span| span.kind == SpanKind::Chain)
        .expect("the incoming trace is continued");
    assert_eq!(root.parent_id.as_deref(), Some("00f067aa0ba902b7"));
}

/// A fractional sample ratio samples that fraction of new traces: over
/// 4,000 executions at 0.25 the count of recorded traces lies within five
/// standard deviations of 1,000 (a binomial bound that a wrong comparison,
/// an inverted ratio or a ratio ignored would all miss by far).
#[tokio::test]
async fn a_fractional_sample_ratio_samples_that_fraction() {
    let runs = 4_000_u32;
    let ratio = 0.25;
    let store = SpanStore::new(10 * runs as usize);
    let chain = Tracer::new()
        .sample_ratio(ratio)
        .store(store.clone())
        .instrument(Chain::named("sampled").link_sync(Ok));
    let mut sampled_flags = 0;
    for _ in 0..runs {
        let out = chain.execute(Context::new()).await.unwrap();
        if out.ext::<TraceContext>().is_some_and(TraceContext::sampled) {
            sampled_flags += 1;
        }
    }
    let recorded = store.trace_ids().len() as f64;
    let expected = f64::from(runs) * ratio;
    let bound = 5.0 * (f64::from(runs) * ratio * (1.0 - ratio)).sqrt();
    assert!(
        (recorded - expected).abs() <= bound,
        "{recorded} traces recorded, expected {expected} ± {bound:.0}"
    );
    assert_eq!(
        f64::from(sampled_flags),
        recorded,
        "the sampled flag and the store agree"
    );
}

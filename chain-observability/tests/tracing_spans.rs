//! `tracing` spans carry the trace ids. In a test binary of its own: the
//! `tracing` crate caches per call site whether anyone listens, and tests on
//! other threads without a subscriber would race that cache.

mod support;

use chain_core::{Chain, Context, named};
use chain_observability::{Span, Tracer};
use support::{Captured, INCOMING, order_chain};

#[tokio::test(flavor = "current_thread")]
async fn tracing_spans_carry_the_trace_ids() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let chain = Tracer::new().instrument(order_chain());
    chain
        .execute(Context::new().with("traceparent", INCOMING))
        .await
        .unwrap();
    let output = captured.text();
    let closes: Vec<&str> = output
        .lines()
        .filter(|line| line.contains("close"))
        .collect();
    assert_eq!(closes.len(), 3, "{output}");
    for line in &closes {
        assert!(
            line.contains("trace_id=4bf92f3577b34da6a3ce929d0e0e4736"),
            "{line}"
        );
    }
    assert!(
        closes
            .iter()
            .any(|line| line.contains("link{") && line.contains("link=charge")),
        "{output}"
    );
}

/// A span a link starts is a `tracing` span inside the link's, and its
/// events are log lines inside it.
#[tokio::test(flavor = "current_thread")]
async fn a_manual_span_nests_in_the_link_span_and_logs_its_events() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let chain = Tracer::new().instrument(Chain::named("payment").link(named(
        "charge",
        |mut ctx: Context| async move {
            let mut span = Span::start(&mut ctx, "card.charge");
            span.add_event("authorized", [("code", "A1")]);
            span.in_scope(|| tracing::info!("talking to the processor"));
            span.end(&mut ctx);
            Ok(ctx)
        },
    )));
    chain
        .execute(Context::new().with("traceparent", INCOMING))
        .await
        .unwrap();
    let output = captured.text();
    let nested = |needle: &str| {
        output
            .lines()
            .find(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in:\n{output}"))
            .to_owned()
    };
    for line in [nested("span event"), nested("talking to the processor")] {
        assert!(
            line.contains("link{") && line.contains("operation{operation=card.charge"),
            "{line}"
        );
        assert!(line.find("link{") < line.find("operation{"), "{line}");
    }
    assert!(nested("span event").contains("event=authorized"));
    let close = output
        .lines()
        .find(|line| line.contains("operation{") && line.contains("close"))
        .unwrap_or_else(|| panic!("the operation span never closed:\n{output}"));
    assert!(
        close.contains("trace_id=4bf92f3577b34da6a3ce929d0e0e4736"),
        "{close}"
    );
}

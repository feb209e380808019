//! `tracing` spans carry the trace ids. In a test binary of its own: the
//! `tracing` crate caches per call site whether anyone listens, and tests on
//! other threads without a subscriber would race that cache.

mod support;

use chain_core::Context;
use chain_observability::Tracer;
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

//! `tracing` spans carry the trace ids. In a test binary of its own: the
//! `tracing` crate caches per call site whether anyone listens, and tests on
//! other threads without a subscriber would race that cache.

use std::io::Write;
use std::sync::{Arc, Mutex};

use chain_core::{Chain, Context, Error, named};
use chain_observability::Tracer;

const INCOMING: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn order_chain() -> Chain {
    Chain::named("orders")
        .link(named("validate", |ctx: Context| async move { Ok(ctx) }))
        .link(named("charge", |ctx: Context| async move {
            if ctx.contains_key("decline") {
                return Err(Error::unavailable("card declined"));
            }
            Ok(ctx.with("charged", true))
        }))
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

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
    let output = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
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

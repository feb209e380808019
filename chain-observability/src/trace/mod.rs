//! Distributed tracing: spans per execution and link, W3C trace context,
//! and an in-memory span store.

mod context;
#[cfg(feature = "otlp")]
#[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
mod otlp;
mod span;
mod store;
mod tracer;

pub use context::{Hex, TraceContext};
#[cfg(feature = "otlp")]
#[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
pub use otlp::{DEFAULT_OTLP_ENDPOINT, OtlpConfig, OtlpExporter};
pub use span::Span;
pub use store::{SpanEvent, SpanKind, SpanRecord, SpanStore, TraceSummary};
pub use tracer::Tracer;

/// A header hook for outgoing HTTP calls (such as the `Orchestrator` of
/// `chain-resilience`, through its `header_hook`): adds `traceparent` (and
/// `tracestate`) for the trace position in the context, so the called
/// service continues the trace. Contexts without a trace add nothing.
pub fn trace_header_hook(ctx: &chain_core::Context, headers: &mut http::HeaderMap) {
    let Some(trace) = ctx.ext::<TraceContext>() else {
        return;
    };
    if let Ok(value) = http::HeaderValue::from_str(&trace.to_traceparent()) {
        headers.insert("traceparent", value);
    }
    if let Some(Ok(value)) = trace.tracestate().map(http::HeaderValue::from_str) {
        headers.insert("tracestate", value);
    }
}

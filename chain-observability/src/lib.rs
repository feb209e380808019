//! Observability for ModuLink chains: Prometheus metrics measured from real
//! executions, health summaries, distributed tracing with W3C trace context
//! and OTLP export, and structured JSON logs.
//!
//! - [`ChainMetrics`]: `modulink_*` Prometheus metrics, registered into a
//!   registry you pass, attached to a chain with
//!   [`instrument`](ChainMetrics::instrument); per-chain
//!   [`summary`](ChainMetrics::summary) and [`health`](ChainMetrics::health).
//! - `MetricsServer` (feature `server`): `/metrics` over HTTP.
//! - [`Tracer`]: a span per execution and per link, as `tracing` spans and
//!   in a bounded [`SpanStore`]; W3C [`TraceContext`] continued from the
//!   request, and propagated to the services a chain calls (chain-core's
//!   `OutgoingHeaders`).
//! - [`JsonLogLayer`]: JSON log lines with the trace and span ids, request
//!   and user ids, chain and link of the enclosing spans; secrets redacted.
//! - `OtlpExporter` (feature `otlp`): spans exported in batches over
//!   OTLP/HTTP (`opentelemetry-otlp`), which Jaeger 1.35+ ingests directly.
//!
//! # Example
//!
//! ```
//! use chain_core::{Chain, Context};
//! use chain_observability::{ChainMetrics, SpanStore, Tracer, prometheus::Registry};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> chain_core::Result<()> {
//! let registry = Registry::new();
//! let metrics = ChainMetrics::new(&registry)?;
//! let spans = SpanStore::new(100);
//! let chain = Chain::named("checkout").link_sync(|ctx: Context| Ok(ctx.with("paid", true)));
//! let chain = metrics.instrument(Tracer::new().store(spans.clone()).instrument(chain));
//!
//! chain.execute(Context::new()).await?;
//! assert_eq!(metrics.summary("checkout").map(|s| s.total), Some(1));
//! assert_eq!(spans.len(), 2); // the execution and its one link
//! # Ok(()) }
//! ```
//!
//! # Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `server` | no | `MetricsServer`: `/metrics` over HTTP (axum) |
//! | `otlp` | no | `OtlpExporter`: spans exported over OTLP/HTTP |
//!
//! Most users depend on the `modulink` facade (feature `observability`).

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(clippy::unwrap_used, clippy::expect_used)]

mod logs;
pub mod metrics;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
mod server;
pub mod trace;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use chain_core;
pub use logs::{DEFAULT_SECRET_FIELDS, JsonLogLayer, REDACTED};
pub use metrics::{
    ChainMetrics, EXECUTION_BUCKETS, Health, HealthStatus, HealthThresholds, LINK_BUCKETS,
    MetricsConfig, OTHER, PerformanceSummary,
};
pub use prometheus;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub use server::{MetricsServer, routes as metrics_routes};
#[cfg(feature = "otlp")]
#[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
pub use trace::{DEFAULT_OTLP_ENDPOINT, OtlpConfig, OtlpExporter};
pub use trace::{
    Span, SpanEvent, SpanKind, SpanRecord, SpanStore, TraceContext, TraceSummary, Tracer,
    trace_header_hook,
};

//! OpenTelemetry export over OTLP/HTTP (feature `otlp`).
//!
//! Spans are exported with `opentelemetry-otlp`'s HTTP/protobuf exporter
//! behind the SDK's standard batch processor, which runs on a thread of its
//! own with a blocking HTTP client: exporting never takes a task of the
//! application's runtime, and works the same under any runtime. Jaeger
//! 1.35 and later ingest OTLP natively (port 4318 for HTTP), so there is no
//! Jaeger-specific exporter: `opentelemetry-jaeger` is deprecated and does
//! not work with current SDKs.
//!
//! The exported spans keep the ids the [`Tracer`](super::Tracer) gave them,
//! the same ids that [`trace_header_hook`](super::trace_header_hook) sends
//! downstream, so a called service's spans attach to the calling link.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chain_core::{Error, ErrorKind, Result};
use opentelemetry::trace::{
    Event, SpanContext, SpanId, SpanKind as OtelSpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, SpanData, SpanEvents, SpanExporter as _, SpanLinks, SpanProcessor,
};

use super::store::{SpanKind, SpanRecord};

/// The default OTLP/HTTP endpoint (an OpenTelemetry collector or Jaeger).
pub const DEFAULT_OTLP_ENDPOINT: &str = "http://localhost:4318";

/// Where and how spans are exported.
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// Base URL; spans go to `{endpoint}/v1/traces`.
    pub endpoint: String,
    /// The `service.name` resource attribute.
    pub service_name: String,
    /// Time limit of one export request.
    pub timeout: Duration,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            endpoint: DEFAULT_OTLP_ENDPOINT.to_owned(),
            service_name: "modulink".to_owned(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Exports finished spans in batches over OTLP/HTTP. Give it to a tracer
/// with [`Tracer::exporter`](super::Tracer::exporter), and await
/// [`shutdown`](Self::shutdown) before the program ends: it flushes what is
/// still queued, so no span is lost.
///
/// ```no_run
/// use chain_core::{Chain, Context};
/// use chain_observability::{OtlpConfig, OtlpExporter, Tracer};
///
/// # #[tokio::main] async fn main() -> chain_core::Result<()> {
/// let exporter = OtlpExporter::start(OtlpConfig { service_name: "orders".into(), ..OtlpConfig::default() })?;
/// let tracer = Tracer::new().sample_ratio(0.1).exporter(exporter.clone());
/// let chain = tracer.instrument(Chain::named("checkout").link_sync(|ctx: Context| Ok(ctx)));
/// chain.execute(Context::new()).await?;
/// exporter.shutdown().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct OtlpExporter {
    processor: Arc<BatchSpanProcessor>,
    scope: InstrumentationScope,
}

impl OtlpExporter {
    /// Starts the batch exporter on a thread of its own.
    ///
    /// # Errors
    ///
    /// A [`Validation`](ErrorKind::Validation) error for an endpoint that is
    /// not a URL.
    pub fn start(config: OtlpConfig) -> Result<Self> {
        let endpoint = format!("{}/v1/traces", config.endpoint.trim_end_matches('/'));
        let client = BlockingClient {
            timeout: config.timeout,
            client: OnceLock::new(),
        };
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint.clone())
            .with_timeout(config.timeout)
            .with_http_client(client)
            .build()
            .map_err(|source| {
                Error::new(
                    ErrorKind::Validation,
                    format!("invalid OTLP endpoint `{endpoint}`"),
                )
                .with_source(source)
            })?;
        exporter.set_resource(
            &Resource::builder_empty()
                .with_service_name(config.service_name)
                .build(),
        );
        Ok(Self {
            processor: Arc::new(BatchSpanProcessor::builder(exporter).build()),
            scope: InstrumentationScope::builder("modulink").build(),
        })
    }

    pub(crate) fn export(
        &self,
        span: &SpanRecord,
        trace_id: [u8; 16],
        span_id: [u8; 8],
        parent: Option<([u8; 8], bool)>,
    ) {
        let (parent_span_id, parent_span_is_remote) = parent
            .map_or((SpanId::INVALID, false), |(id, remote)| {
                (SpanId::from_bytes(id), remote)
            });
        self.processor.on_end(SpanData {
            span_context: SpanContext::new(
                TraceId::from_bytes(trace_id),
                SpanId::from_bytes(span_id),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id,
            parent_span_is_remote,
            span_kind: match span.kind {
                SpanKind::Chain => OtelSpanKind::Server,
                SpanKind::Link | SpanKind::Operation => OtelSpanKind::Internal,
            },
            name: span.name.clone().into(),
            start_time: span.start,
            end_time: span.start + span.duration,
            attributes: span
                .attributes
                .iter()
                .map(|(key, value)| KeyValue::new(key.clone(), value.clone()))
                .collect(),
            dropped_attributes_count: 0,
            events: span_events(span),
            links: SpanLinks::default(),
            status: match &span.error {
                Some(error) => Status::error(error.clone()),
                None => Status::Ok,
            },
            instrumentation_scope: self.scope.clone(),
        });
    }

    /// Exports every queued span and stops the exporter.
    ///
    /// # Errors
    ///
    /// An [`Unavailable`](ErrorKind::Unavailable) error if the last export
    /// failed (the collector is down, say).
    pub async fn shutdown(self) -> Result<()> {
        let processor = self.processor;
        // The SDK waits for its export thread by blocking; doing that on a
        // blocking thread keeps the runtime's workers free.
        tokio::task::spawn_blocking(move || {
            processor.force_flush()?;
            processor.shutdown()
        })
        .await
        .map_err(Error::internal_from)?
        .map_err(|source| {
            Error::new(ErrorKind::Unavailable, "cannot export the last spans").with_source(source)
        })
    }
}

impl fmt::Debug for OtlpExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpExporter").finish_non_exhaustive()
    }
}

/// The exporter's HTTP client: reqwest's blocking client (the workspace's
/// HTTP client), built on the export thread at its first request, so it is
/// never made or dropped on an async runtime's thread (where a blocking
/// client may not be).
#[derive(Debug)]
struct BlockingClient {
    timeout: Duration,
    client: OnceLock<reqwest::blocking::Client>,
}

#[async_trait]
impl HttpClient for BlockingClient {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> std::result::Result<http::Response<Bytes>, HttpError> {
        let client = match self.client.get() {
            Some(client) => client,
            None => {
                let client = reqwest::blocking::Client::builder()
                    .timeout(self.timeout)
                    .build()?;
                self.client.get_or_init(|| client)
            }
        };
        let (parts, body) = request.into_parts();
        let response = client
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes()?;
        let mut answer = http::Response::builder().status(status).body(body)?;
        *answer.headers_mut() = headers;
        Ok(answer)
    }
}

/// A span's events as OpenTelemetry's.
fn span_events(span: &SpanRecord) -> SpanEvents {
    let mut events = SpanEvents::default();
    events.events = span
        .events
        .iter()
        .map(|event| {
            Event::new(
                event.name.clone(),
                event.time,
                event
                    .attributes
                    .iter()
                    .map(|(key, value)| KeyValue::new(key.clone(), value.clone()))
                    .collect(),
                0,
            )
        })
        .collect();
    events
}

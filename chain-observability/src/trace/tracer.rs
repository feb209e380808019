//! [`Tracer`]: spans for chain executions and links.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use chain_core::{
    BoxFuture, Chain, Error, HasExtensions, Middleware, Next, OutgoingHeaders, RequestMeta, Result,
};
use tracing::Instrument;

use super::context::TraceContext;
use super::store::{SpanEvent, SpanKind, SpanRecord, SpanStore};

/// Traces chain executions: a span per execution and one per link, as
/// `tracing` spans (with `trace_id` and `span_id` fields, so logs can carry
/// them) and, when a [`SpanStore`] is set, as records in it.
///
/// An execution continues the trace found in the context (a
/// [`TraceContext`] extension, a `traceparent` field with an optional
/// `tracestate`, or those headers in a `headers` object holding the incoming
/// HTTP request's headers), or starts a new one; invalid `traceparent`
/// values are ignored. Whether a new trace is recorded is decided once, at its root,
/// by the sample ratio; continued traces follow their sampled flag. While a
/// link runs, the context's `TraceContext` extension is the link's span, so
/// outgoing calls (see [`trace_header_hook`](super::trace_header_hook))
/// carry it as their parent.
///
/// ```
/// use chain_core::{Chain, Context};
/// use chain_observability::{SpanStore, Tracer};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> chain_core::Result<()> {
/// let store = SpanStore::new(1_000);
/// let tracer = Tracer::new().store(store.clone());
/// let chain = tracer.instrument(Chain::named("checkout").link_sync(|ctx: Context| Ok(ctx)));
/// chain
///     .execute(Context::new().with("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
///     .await?;
/// let summary = store.summary("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
/// assert_eq!((summary.spans, summary.roots), (2, 1));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Tracer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    sample_ratio: f64,
    store: Option<SpanStore>,
    #[cfg(feature = "otlp")]
    exporter: Option<super::OtlpExporter>,
    attributes: Vec<String>,
}

impl Default for Tracer {
    fn default() -> Self {
        Self::new()
    }
}

impl Tracer {
    /// Records every trace, with `request_id` and `user_id` as attributes.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                sample_ratio: 1.0,
                store: None,
                #[cfg(feature = "otlp")]
                exporter: None,
                attributes: vec!["request_id".to_owned(), "user_id".to_owned()],
            }),
        }
    }

    fn settings_mut(&mut self) -> &mut Inner {
        if Arc::get_mut(&mut self.inner).is_none() {
            self.inner = Arc::new(Inner {
                sample_ratio: self.inner.sample_ratio,
                store: self.inner.store.clone(),
                #[cfg(feature = "otlp")]
                exporter: self.inner.exporter.clone(),
                attributes: self.inner.attributes.clone(),
            });
        }
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner,
            None => unreachable!("a freshly made Arc has one owner"),
        }
    }

    /// Records this fraction of new traces (0 to 1).
    #[must_use]
    pub fn sample_ratio(mut self, ratio: f64) -> Self {
        self.settings_mut().sample_ratio = if ratio.is_nan() {
            0.0
        } else {
            ratio.clamp(0.0, 1.0)
        };
        self
    }

    /// Also keeps finished spans in `store`.
    #[must_use]
    pub fn store(mut self, store: SpanStore) -> Self {
        self.settings_mut().store = Some(store);
        self
    }

    /// Exports finished spans over OTLP (feature `otlp`).
    #[cfg(feature = "otlp")]
    #[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
    #[must_use]
    pub fn exporter(mut self, exporter: super::OtlpExporter) -> Self {
        self.settings_mut().exporter = Some(exporter);
        self
    }

    /// Whether finished spans go anywhere beyond `tracing`.
    fn keeps_spans(&self) -> bool {
        #[cfg(feature = "otlp")]
        if self.inner.exporter.is_some() {
            return true;
        }
        self.inner.store.is_some()
    }

    /// Context fields copied onto spans as attributes (default `request_id`
    /// and `user_id`). Never list secrets here.
    #[must_use]
    pub fn attributes<I, S>(mut self, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.settings_mut().attributes = fields.into_iter().map(Into::into).collect();
        self
    }

    /// The chain with its executions and links traced: one span per
    /// execution (attached with `Chain::around`) and one per link
    /// (`Chain::around_each`).
    ///
    /// Works on [`Context`](chain_core::Context) and on any typed context
    /// that implements [`HasExtensions`], where the trace position lives.
    /// Attributes and the fallback `traceparent` fields are read from JSON
    /// fields, so a typed context without them is traced from its
    /// `RequestMeta` and `TraceContext` extensions alone.
    pub fn instrument<C: HasExtensions + Send + 'static>(&self, chain: Chain<C>) -> Chain<C> {
        propagate_traces();
        chain
            .around(ExecutionSpans {
                tracer: self.clone(),
            })
            .around_each(LinkSpans {
                tracer: self.clone(),
            })
    }

    /// The execution's trace position, and the incoming one it continues:
    /// from the context's `TraceContext` extension, the `traceparent` and
    /// `tracestate` headers of its `RequestMeta` extension, its
    /// `traceparent` and `tracestate` fields, or the same headers in its
    /// `headers` object.
    fn start<C: HasExtensions>(&self, ctx: &C) -> (TraceContext, Option<TraceContext>) {
        let extensions = ctx.extensions();
        let fields = ctx.fields();
        let parent = extensions
            .get::<TraceContext>()
            .cloned()
            .or_else(|| TraceContext::from_headers(extensions.get::<RequestMeta>()?.headers()))
            .or_else(|| {
                let ctx = fields?;
                let traceparent = ctx.get_value("traceparent")?.as_str()?;
                let tracestate = ctx.get_value("tracestate").and_then(|value| value.as_str());
                TraceContext::parse(traceparent, tracestate)
            })
            .or_else(|| {
                let headers = fields?.get_value("headers")?.as_object()?;
                TraceContext::from_headers(
                    headers
                        .iter()
                        .filter_map(|(name, value)| Some((name.as_str(), value.as_str()?))),
                )
            });
        match parent {
            Some(parent) => (parent.child(), Some(parent)),
            None => (
                TraceContext::new_root(fastrand::f64() < self.inner.sample_ratio),
                None,
            ),
        }
    }

    pub(super) fn attributes_of<C: HasExtensions>(&self, ctx: &C) -> BTreeMap<String, String> {
        let Some(ctx) = ctx.fields() else {
            return BTreeMap::new();
        };
        self.inner
            .attributes
            .iter()
            .filter_map(|field| {
                let value = ctx.get_value(field)?;
                let text = value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_owned);
                Some((field.clone(), text))
            })
            .collect()
    }
}

/// What a kept span needs from its start; only built when the tracer has a
/// store or an exporter.
pub(super) struct Started {
    pub(super) trace: TraceContext,
    /// The parent, and whether it lives in another process.
    pub(super) parent: Option<(TraceContext, bool)>,
    pub(super) name: String,
    pub(super) kind: SpanKind,
    pub(super) wall: SystemTime,
    pub(super) clock: Instant,
    pub(super) attributes: BTreeMap<String, String>,
}

impl Started {
    fn finish(self, tracer: &Tracer, error: Option<&Error>) {
        self.finish_with(tracer, error.map(|error| format!("{error:#}")), Vec::new());
    }

    pub(super) fn finish_with(
        self,
        tracer: &Tracer,
        error: Option<String>,
        events: Vec<SpanEvent>,
    ) {
        let record = SpanRecord {
            trace_id: self.trace.trace_id(),
            span_id: self.trace.span_id(),
            parent_id: self.parent.as_ref().map(|(parent, _)| parent.span_id()),
            name: self.name,
            kind: self.kind,
            start: self.wall,
            duration: self.clock.elapsed(),
            error,
            attributes: self.attributes,
            events,
        };
        #[cfg(feature = "otlp")]
        if let Some(exporter) = &tracer.inner.exporter {
            let parent = self
                .parent
                .as_ref()
                .map(|(parent, remote)| (parent.span_id_bytes(), *remote));
            exporter.export(
                &record,
                self.trace.trace_id_bytes(),
                self.trace.span_id_bytes(),
                parent,
            );
        }
        if let Some(store) = &tracer.inner.store {
            store.push(record);
        }
    }
}

/// The tracer of the execution a context is in, for the spans its links
/// start themselves; only present while the tracer keeps spans.
#[derive(Clone)]
pub(super) struct ActiveTracer(pub(super) Tracer);

/// A context field as a span field value.
fn field<'a, C: HasExtensions>(ctx: &'a C, name: &str) -> Option<&'a str> {
    ctx.fields()?
        .get_value(name)
        .and_then(|value| value.as_str())
}

/// Makes every call to another service (a remote endpoint, the
/// orchestrator) carry the trace: `traceparent` and `tracestate` derived,
/// when the call is made, from the `TraceContext` of the link making it.
/// Registered once per process, so an execution that calls nothing pays
/// nothing for it.
fn propagate_traces() {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| {
        OutgoingHeaders::derive_globally("traceparent", |extensions| {
            extensions
                .get::<TraceContext>()
                .map(TraceContext::to_traceparent)
        });
        OutgoingHeaders::derive_globally("tracestate", |extensions| {
            extensions
                .get::<TraceContext>()
                .and_then(TraceContext::tracestate)
                .map(str::to_owned)
        });
    });
}

/// Records the outcome on the `tracing` span and, with a store, keeps the
/// finished span.
fn close<T>(span: &tracing::Span, started: Option<(&Tracer, Started)>, outcome: &Result<T>) {
    span.record("status", if outcome.is_ok() { "ok" } else { "error" });
    if let Err(error) = outcome {
        span.record("error", tracing::field::display(format_args!("{error:#}")));
    }
    if let Some((tracer, started)) = started {
        started.finish(tracer, outcome.as_ref().err());
    }
}

/// The execution span; made by [`Tracer::instrument`].
struct ExecutionSpans {
    tracer: Tracer,
}

impl<C: HasExtensions + Send + 'static> Middleware<C> for ExecutionSpans {
    fn call(&self, mut ctx: C, next: Next<C>) -> BoxFuture<'_, Result<C>> {
        let (trace, incoming) = self.tracer.start(&ctx);
        ctx.extensions_mut().insert(trace.clone());
        if !trace.sampled() {
            return Box::pin(next.run(ctx));
        }
        // Spans the links start themselves (`Span::start`) are kept where
        // this tracer keeps its own.
        let keeps_spans = self.tracer.keeps_spans();
        if keeps_spans {
            ctx.extensions_mut()
                .insert(ActiveTracer(self.tracer.clone()));
        }
        let span = tracing::info_span!(
            "chain",
            chain = %next.chain_name(),
            trace_id = %trace.trace_id_hex(),
            span_id = %trace.span_id_hex(),
            request_id = field(&ctx, "request_id"),
            user_id = field(&ctx, "user_id"),
            status = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        let started = self.tracer.keeps_spans().then(|| {
            let mut attributes = self.tracer.attributes_of(&ctx);
            attributes.insert("chain".to_owned(), next.chain_name().to_owned());
            let started = Started {
                trace,
                parent: incoming.map(|parent| (parent, true)),
                name: next.chain_name().to_owned(),
                kind: SpanKind::Chain,
                wall: SystemTime::now(),
                clock: Instant::now(),
                attributes,
            };
            (&self.tracer, started)
        });
        let recorded = span.clone();
        Box::pin(
            async move {
                let outcome = next.run(ctx).await;
                close(&recorded, started, &outcome);
                outcome.map(|mut ctx| {
                    if keeps_spans {
                        ctx.extensions_mut().remove::<ActiveTracer>();
                    }
                    ctx
                })
            }
            .instrument(span),
        )
    }

    fn name(&self) -> Cow<'static, str> {
        "tracing".into()
    }
}

/// The link spans; made by [`Tracer::instrument`].
struct LinkSpans {
    tracer: Tracer,
}

impl<C: HasExtensions + Send + 'static> Middleware<C> for LinkSpans {
    fn call(&self, mut ctx: C, next: Next<C>) -> BoxFuture<'_, Result<C>> {
        let Some(parent) = ctx
            .extensions()
            .get::<TraceContext>()
            .filter(|trace| trace.sampled())
            .cloned()
        else {
            return Box::pin(next.run(ctx));
        };
        let trace = parent.child();
        let (link, index) = next
            .link()
            .map_or(("", 0), |info| (info.name(), info.index()));
        let span = tracing::info_span!(
            "link",
            chain = %next.chain_name(),
            link = %link,
            index,
            trace_id = %trace.trace_id_hex(),
            span_id = %trace.span_id_hex(),
            status = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        let started = self.tracer.keeps_spans().then(|| {
            let mut attributes = self.tracer.attributes_of(&ctx);
            attributes.insert("chain".to_owned(), next.chain_name().to_owned());
            attributes.insert("link".to_owned(), link.to_owned());
            attributes.insert("index".to_owned(), index.to_string());
            let started = Started {
                trace: trace.clone(),
                parent: Some((parent.clone(), false)),
                name: link.to_owned(),
                kind: SpanKind::Link,
                wall: SystemTime::now(),
                clock: Instant::now(),
                attributes,
            };
            (&self.tracer, started)
        });
        ctx.extensions_mut().insert(trace);
        let recorded = span.clone();
        Box::pin(
            async move {
                let outcome = next.run(ctx).await;
                close(&recorded, started, &outcome);
                // The next link is a sibling: the execution's span is its parent again.
                outcome.map(|mut ctx| {
                    ctx.extensions_mut().insert(parent);
                    ctx
                })
            }
            .instrument(span),
        )
    }

    fn name(&self) -> Cow<'static, str> {
        "tracing".into()
    }
}

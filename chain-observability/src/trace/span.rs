//! [`Span`]: a span a link starts itself, for part of its work.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Instant, SystemTime};

use chain_core::HasExtensions;

use super::context::TraceContext;
use super::store::{SpanEvent, SpanKind};
use super::tracer::{ActiveTracer, Started};

/// A span a link opens around part of its work (a database query, a call
/// to a card processor), with attributes, events and an error: the
/// cookbook's `trace_operation`, span tags and span logs.
///
/// [`Span::start`] makes it the child of the link's span, and makes it the
/// context's current trace position, so the calls the link makes inside
/// it (a `RemoteEndpoint`, the `Orchestrator`) carry it as their parent in
/// `traceparent`. [`Span::end`] puts the link's span back. The span is also
/// a `tracing` span, a child of the link's, so log lines written inside it
/// (in [`in_scope`](Self::in_scope), or in a future
/// [`instrument`](tracing::Instrument::instrument)ed with
/// [`tracing_span`](Self::tracing_span)) carry its fields, and each event is
/// logged as well.
///
/// When the chain is traced by a [`Tracer`](super::Tracer) with a store or
/// an exporter, the finished span goes there, kind
/// [`SpanKind::Operation`]. Outside a traced execution (or an unsampled
/// one) it records nothing and costs little.
///
/// ```
/// use chain_core::{Chain, Context, Error};
/// use chain_observability::{Span, SpanStore, Tracer};
///
/// async fn charge(mut ctx: Context) -> chain_core::Result<Context> {
///     let mut span = Span::start(&mut ctx, "card_processor.charge");
///     span.set_attribute("amount", 4200);
///     span.add_event("authorized", [("code", "A1")]);
///     if ctx.get_value("declined").is_some() {
///         let error = Error::rejected("card declined");
///         span.record_error(&error);
///         span.end(&mut ctx);
///         return Err(error);
///     }
///     span.end(&mut ctx);
///     Ok(ctx.with("charged", true))
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> chain_core::Result<()> {
/// let store = SpanStore::new(100);
/// let chain = Tracer::new().store(store.clone()).instrument(Chain::named("payment").link(charge));
/// chain.execute(Context::new()).await?;
/// let trace_id = &store.trace_ids()[0];
/// let operation = store.trace(trace_id).into_iter().find(|span| span.name == "card_processor.charge").unwrap();
/// assert_eq!(operation.attributes["amount"], "4200");
/// assert_eq!(operation.events[0].name, "authorized");
/// # Ok(()) }
/// ```
#[must_use = "a span measures until it is ended or dropped"]
pub struct Span {
    tracing: tracing::Span,
    /// The span's own position and the one it returns to.
    positions: Option<(TraceContext, TraceContext)>,
    /// Set when the span is kept (a tracer with a store or an exporter).
    kept: Option<(super::Tracer, Started)>,
    events: Vec<SpanEvent>,
    error: Option<String>,
    finished: bool,
}

impl Span {
    /// Starts a span named `name` as a child of the context's current span
    /// (the link's), and makes it the context's trace position.
    pub fn start<C: HasExtensions>(ctx: &mut C, name: impl Into<String>) -> Self {
        let name = name.into();
        // The tracer's attributes from the context (`request_id`, say), as
        // its chain and link spans carry them.
        let tracer = ctx.extensions().get::<ActiveTracer>().map(|active| {
            let attributes = active.0.attributes_of(&*ctx);
            (active.0.clone(), attributes)
        });
        let extensions = ctx.extensions_mut();
        let Some(parent) = extensions
            .get::<TraceContext>()
            .filter(|trace| trace.sampled())
            .cloned()
        else {
            return Self {
                tracing: tracing::info_span!("operation", operation = %name),
                positions: None,
                kept: None,
                events: Vec::new(),
                error: None,
                finished: false,
            };
        };
        let trace = parent.child();
        let tracing = tracing::info_span!(
            "operation",
            operation = %name,
            trace_id = %trace.trace_id_hex(),
            span_id = %trace.span_id_hex(),
            status = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        let kept = tracer.map(|(tracer, attributes)| {
            let started = Started {
                trace: trace.clone(),
                parent: Some((parent.clone(), false)),
                name,
                kind: SpanKind::Operation,
                wall: SystemTime::now(),
                clock: Instant::now(),
                attributes,
            };
            (tracer, started)
        });
        extensions.insert(trace.clone());
        Self {
            tracing,
            positions: Some((trace, parent)),
            kept,
            events: Vec::new(),
            error: None,
            finished: false,
        }
    }

    /// Sets attribute `key` (a span tag), replacing an earlier value.
    pub fn set_attribute(&mut self, key: impl Into<String>, value: impl fmt::Display) {
        if let Some((_, started)) = &mut self.kept {
            started.attributes.insert(key.into(), value.to_string());
        }
    }

    /// Records that `name` happened now, with `attributes` (a span log);
    /// also logged as a `tracing` event inside this span.
    pub fn add_event<I, K, V>(&mut self, name: impl Into<String>, attributes: I)
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: fmt::Display,
    {
        let name = name.into();
        let attributes: BTreeMap<String, String> = attributes
            .into_iter()
            .map(|(key, value)| (key.into(), value.to_string()))
            .collect();
        tracing::info!(parent: &self.tracing, event = %name, ?attributes, "span event");
        if self.kept.is_some() {
            self.events.push(SpanEvent {
                name,
                time: SystemTime::now(),
                attributes,
            });
        }
    }

    /// Marks the span failed with `error` (its alternate form, so a chain
    /// error shows its causes).
    pub fn record_error(&mut self, error: &dyn fmt::Display) {
        let message = format!("{error:#}");
        self.tracing.record("status", "error");
        self.tracing.record("error", message.as_str());
        self.error = Some(message);
    }

    /// The `tracing` span, to instrument a future with or to enter.
    pub fn tracing_span(&self) -> &tracing::Span {
        &self.tracing
    }

    /// Runs `f` inside the `tracing` span.
    pub fn in_scope<T>(&self, f: impl FnOnce() -> T) -> T {
        self.tracing.in_scope(f)
    }

    /// The span's trace position (`None` outside a sampled trace).
    pub fn trace(&self) -> Option<&TraceContext> {
        self.positions.as_ref().map(|(own, _)| own)
    }

    /// Ends the span and makes the link's span the context's trace
    /// position again.
    pub fn end<C: HasExtensions>(mut self, ctx: &mut C) {
        if let Some((own, parent)) = &self.positions {
            let extensions = ctx.extensions_mut();
            // Only if the context still sits in this span: a span started
            // after it and not ended yet keeps its own position.
            if extensions.get::<TraceContext>() == Some(own) {
                extensions.insert(parent.clone());
            }
        }
        self.finish();
    }

    fn finish(&mut self) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        if self.error.is_none() && self.positions.is_some() {
            self.tracing.record("status", "ok");
        }
        if let Some((tracer, started)) = self.kept.take() {
            started.finish_with(&tracer, self.error.take(), std::mem::take(&mut self.events));
        }
    }
}

/// A span dropped without [`end`](Span::end) (a `?` returned early) is
/// still recorded; the context it was started in, if it lives on, keeps the
/// span's position until the link returns.
impl Drop for Span {
    fn drop(&mut self) {
        self.finish();
    }
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Span")
            .field("trace", &self.trace())
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

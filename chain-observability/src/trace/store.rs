//! A bounded in-memory store of finished spans.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// What a span covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanKind {
    /// A whole chain execution.
    Chain,
    /// One link.
    Link,
    /// Part of a link's work, in a span the link started itself
    /// ([`Span::start`](super::Span::start)).
    Operation,
}

/// Something that happened at a moment within a span, with attributes:
/// the cookbook's span logs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpanEvent {
    /// What happened.
    pub name: String,
    /// When (wall clock).
    pub time: SystemTime,
    /// Details.
    pub attributes: BTreeMap<String, String>,
}

/// One finished span.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpanRecord {
    /// Trace id, 32 hex digits.
    pub trace_id: String,
    /// Span id, 16 hex digits.
    pub span_id: String,
    /// The parent span's id; `None` for a root.
    pub parent_id: Option<String>,
    /// The chain's or link's name.
    pub name: String,
    /// What the span covers.
    pub kind: SpanKind,
    /// When it started (wall clock).
    pub start: SystemTime,
    /// How long it took.
    pub duration: Duration,
    /// The error, if it failed.
    pub error: Option<String>,
    /// Attributes such as `chain`, `link`, `request_id`, `user_id`.
    pub attributes: BTreeMap<String, String>,
    /// Events recorded in the span, in order.
    pub events: Vec<SpanEvent>,
}

/// One trace in brief: its spans, roots, duration, errors and operations.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceSummary {
    /// The trace.
    pub trace_id: String,
    /// Spans recorded for it.
    pub spans: usize,
    /// Of which roots (no parent among the recorded spans).
    pub roots: usize,
    /// Sum of the roots' durations.
    pub total_duration: Duration,
    /// Spans that failed.
    pub errors: usize,
    /// Span names in start order.
    pub operations: Vec<String>,
}

/// Keeps the most recent finished spans, at most `capacity`; for tests and
/// for trace summaries. Clones share the store.
#[derive(Debug, Clone)]
pub struct SpanStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    capacity: usize,
    spans: Mutex<VecDeque<SpanRecord>>,
}

impl SpanStore {
    /// A store keeping at most `capacity` spans (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                capacity: capacity.max(1),
                spans: Mutex::new(VecDeque::new()),
            }),
        }
    }

    pub(crate) fn push(&self, span: SpanRecord) {
        let mut spans = self
            .inner
            .spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if spans.len() == self.inner.capacity {
            spans.pop_front();
        }
        spans.push_back(span);
    }

    /// Spans held now.
    pub fn len(&self) -> usize {
        self.inner
            .spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no span is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The spans of one trace, in start order.
    pub fn trace(&self, trace_id: &str) -> Vec<SpanRecord> {
        let mut spans: Vec<SpanRecord> = self
            .inner
            .spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|span| span.trace_id == trace_id)
            .cloned()
            .collect();
        spans.sort_by_key(|span| span.start);
        spans
    }

    /// Ids of the traces held, oldest first.
    pub fn trace_ids(&self) -> Vec<String> {
        let spans = self
            .inner
            .spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut ids: Vec<String> = Vec::new();
        for span in spans.iter() {
            if !ids.contains(&span.trace_id) {
                ids.push(span.trace_id.clone());
            }
        }
        ids
    }

    /// A summary of one trace, or `None` if none of its spans is
    /// held.
    pub fn summary(&self, trace_id: &str) -> Option<TraceSummary> {
        let spans = self.trace(trace_id);
        if spans.is_empty() {
            return None;
        }
        let is_root = |span: &SpanRecord| {
            span.parent_id
                .as_ref()
                .is_none_or(|parent| !spans.iter().any(|other| &other.span_id == parent))
        };
        let roots: Vec<&SpanRecord> = spans.iter().filter(|span| is_root(span)).collect();
        Some(TraceSummary {
            trace_id: trace_id.to_owned(),
            spans: spans.len(),
            roots: roots.len(),
            total_duration: roots.iter().map(|span| span.duration).sum(),
            errors: spans.iter().filter(|span| span.error.is_some()).count(),
            operations: spans.iter().map(|span| span.name.clone()).collect(),
        })
    }
}

//! JSON logs carrying the trace ids and the chain's context.

use std::io::Write;
use std::sync::LazyLock;

use time::OffsetDateTime;
use time::format_description::{self, BorrowedFormatItem};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Field names (lowercase substrings) redacted by default.
pub const DEFAULT_SECRET_FIELDS: [&str; 9] = [
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "card_number",
    "cvv",
];

/// Fields taken from the innermost enclosing span that has them.
const CONTEXT_FIELDS: [&str; 6] = [
    "trace_id",
    "span_id",
    "request_id",
    "user_id",
    "chain",
    "link",
];

/// A `tracing-subscriber` layer writing one JSON object per event: time
/// (RFC 3339, UTC), level, target, message and the event's fields, plus
/// `trace_id`, `span_id`, `request_id`, `user_id`, `chain` and `link` from
/// the enclosing spans (such as those of a [`Tracer`](crate::Tracer)).
/// Fields whose names look secret are redacted, in events and spans alike.
///
/// ```
/// use chain_observability::JsonLogLayer;
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let subscriber = tracing_subscriber::registry().with(JsonLogLayer::new(std::io::stdout));
/// tracing::subscriber::with_default(subscriber, || {
///     tracing::info!(user = "ada", password = "hunter2", "logged in");
///     // {"timestamp":"...","level":"INFO","target":"...","message":"logged in","user":"ada","password":"[REDACTED]"}
/// });
/// ```
#[derive(Debug)]
pub struct JsonLogLayer<W> {
    writer: W,
    secrets: Vec<String>,
    constants: Map<String, Value>,
}

impl<W> JsonLogLayer<W>
where
    W: for<'writer> MakeWriter<'writer> + 'static,
{
    /// A layer writing to `writer` (for instance `std::io::stdout`).
    pub fn new(writer: W) -> Self {
        Self {
            writer,
            secrets: DEFAULT_SECRET_FIELDS
                .iter()
                .map(|name| (*name).to_owned())
                .collect(),
            constants: Map::new(),
        }
    }

    /// Also redacts fields whose lowercase name contains `name`.
    #[must_use]
    pub fn redact(mut self, name: &str) -> Self {
        self.secrets.push(name.to_lowercase());
        self
    }

    /// Adds a field to every line, such as `app_version`.
    #[must_use]
    pub fn with_field(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.constants.insert(name.to_owned(), value.into());
        self
    }

    fn is_secret(&self, name: &str) -> bool {
        let name = name.to_lowercase();
        self.secrets
            .iter()
            .any(|secret| name.contains(secret.as_str()))
    }
}

/// The recorded fields of a span, kept in its extensions.
struct SpanFields(Map<String, Value>);

/// Collects fields into a JSON map, redacting secrets.
struct Collect<'a, W> {
    fields: &'a mut Map<String, Value>,
    layer: &'a JsonLogLayer<W>,
}

impl<W> Collect<'_, W>
where
    W: for<'writer> MakeWriter<'writer> + 'static,
{
    fn put(&mut self, field: &Field, value: Value) {
        let value = if self.layer.is_secret(field.name()) {
            Value::from(REDACTED)
        } else {
            value
        };
        self.fields.insert(field.name().to_owned(), value);
    }
}

impl<W> Visit for Collect<'_, W>
where
    W: for<'writer> MakeWriter<'writer> + 'static,
{
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
}

impl<S, W> Layer<S> for JsonLogLayer<W>
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
    W: for<'writer> MakeWriter<'writer> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Map::new();
        attrs.record(&mut Collect {
            fields: &mut fields,
            layer: self,
        });
        span.extensions_mut().insert(SpanFields(fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(SpanFields(fields)) = extensions.get_mut::<SpanFields>() {
            values.record(&mut Collect {
                fields,
                layer: self,
            });
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut line = Map::new();
        line.insert("timestamp".to_owned(), Value::from(rfc3339_now()));
        line.insert(
            "level".to_owned(),
            Value::from(event.metadata().level().as_str()),
        );
        line.insert("target".to_owned(), Value::from(event.metadata().target()));
        line.extend(self.constants.clone());
        let mut fields = Map::new();
        event.record(&mut Collect {
            fields: &mut fields,
            layer: self,
        });
        if let Some(message) = fields.remove("message") {
            line.insert("message".to_owned(), message);
        }
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                let extensions = span.extensions();
                let Some(SpanFields(span_fields)) = extensions.get::<SpanFields>() else {
                    continue;
                };
                for name in CONTEXT_FIELDS {
                    if !line.contains_key(name)
                        && let Some(value) = span_fields.get(name)
                    {
                        line.insert(name.to_owned(), value.clone());
                    }
                }
            }
        }
        line.extend(fields);
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        // Logging must not fail the program; a broken writer loses the line.
        let _ = self.writer.make_writer().write_all(text.as_bytes());
    }
}

/// Now as RFC 3339 in UTC with milliseconds, e.g. `2026-11-29T14:24:40.123Z`.
fn rfc3339_now() -> String {
    rfc3339(OffsetDateTime::now_utc())
}

fn rfc3339(at: OffsetDateTime) -> String {
    static FORMAT: LazyLock<Vec<BorrowedFormatItem<'static>>> = LazyLock::new(|| {
        format_description::parse_borrowed::<2>(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z",
        )
        .unwrap_or_default()
    });
    at.format(&*FORMAT).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        let at = |seconds: i64, nanos: i64| {
            rfc3339(
                OffsetDateTime::from_unix_timestamp_nanos(
                    i128::from(seconds) * 1_000_000_000 + i128::from(nanos),
                )
                .unwrap(),
            )
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5_000_000), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_795_962_280, 123_456_789), "2026-11-29T14:24:40.123Z");
    }
}

//! The event: what happened, how urgent it is, and which conversation it
//! belongs to.

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::EventBusError;

/// How urgent an event is. Queued events are dispatched highest priority
/// first, FIFO within a priority; a [`Priority::Critical`] event is handled
/// before `publish` returns.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Background work.
    Low,
    /// The default.
    #[default]
    Medium,
    /// Ahead of ordinary work; `_failed` events use it.
    High,
    /// Handled inline by the publisher, ahead of everything queued.
    Critical,
}

impl Priority {
    /// The queue lane: 0 is served first.
    pub(crate) fn lane(self) -> usize {
        match self {
            Priority::Critical => 0,
            Priority::High => 1,
            Priority::Medium => 2,
            Priority::Low => 3,
        }
    }

    /// The name used on the wire (`"high"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
            Priority::Critical => "critical",
        }
    }
}

/// Something that happened, published on an [`EventBus`](super::EventBus)
/// and handled by every chain subscribed to its `event_type`.
///
/// The id is a UUID version 7: unique, and ordered by creation time, which
/// keeps stores and de-duplication windows sorted.
///
/// ```
/// use chain_scaling::events::{Event, Priority};
/// use serde_json::json;
///
/// let event = Event::new("order_created", json!({"order_id": "ORD-1"}))
///     .with_priority(Priority::High)
///     .with_correlation_id("ORD-1")
///     .with_source("checkout");
/// assert_eq!(event.event_type, "order_created");
///
/// let wire = serde_json::to_string(&event).unwrap();
/// let back: Event = serde_json::from_str(&wire).unwrap();
/// assert_eq!(back, event);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id (UUID v7).
    pub id: Uuid,
    /// What happened, e.g. `user_registration`. Subscriptions match it exactly.
    pub event_type: Cow<'static, str>,
    /// The event's data; handlers see it as the context's `event_data`.
    pub payload: Value,
    /// How urgent it is.
    #[serde(default)]
    pub priority: Priority,
    /// When the event was created; RFC 3339 on the wire.
    #[serde(with = "rfc3339")]
    pub timestamp: SystemTime,
    /// Ties together the events of one conversation (an order, a request).
    #[serde(default)]
    pub correlation_id: String,
    /// Who published it.
    #[serde(default)]
    pub source: String,
}

impl Event {
    /// A new event of `event_type` with `payload`, Medium priority, a fresh
    /// id and the current time.
    pub fn new(event_type: impl Into<Cow<'static, str>>, payload: Value) -> Self {
        let timestamp = SystemTime::now();
        Event {
            id: new_id(timestamp),
            event_type: event_type.into(),
            payload,
            priority: Priority::Medium,
            timestamp,
            correlation_id: String::new(),
            source: String::new(),
        }
    }

    /// Sets the priority.
    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, correlation_id: impl Into<String>) -> Self {
        self.correlation_id = correlation_id.into();
        self
    }

    /// Sets the source.
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// The timestamp as RFC 3339 with millisecond precision.
    pub fn timestamp_rfc3339(&self) -> String {
        rfc3339::format(self.timestamp)
    }

    /// Whether this is a `{type}_failed` event, which never produces another.
    pub fn is_failure_report(&self) -> bool {
        self.event_type.ends_with(FAILED_SUFFIX)
    }

    /// Whether this is a `{type}_completed` or `{type}_failed` event.
    /// Handling one successfully produces no `_completed` report of its
    /// own: a report of a report says nothing new.
    pub fn is_report(&self) -> bool {
        self.is_failure_report() || self.event_type.ends_with(COMPLETED_SUFFIX)
    }
}

pub(crate) const COMPLETED_SUFFIX: &str = "_completed";
pub(crate) const FAILED_SUFFIX: &str = "_failed";

/// A UUID v7 from the event's own timestamp and a fast thread-local
/// generator: event ids need uniqueness, not unpredictability, and the
/// operating system's generator would cost a system call per event.
fn new_id(timestamp: SystemTime) -> Uuid {
    let millis = timestamp
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64;
    let random = fastrand::u128(..).to_le_bytes();
    let mut random_bytes = [0u8; 10];
    random_bytes.copy_from_slice(&random[..10]);
    uuid::Builder::from_unix_timestamp_millis(millis, &random_bytes).into_uuid()
}

/// Checks that an event type can name a queue, a subject and a consumer on
/// every transport: 1 to 128 ASCII letters, digits, `_` or `-`.
pub(crate) fn validate_event_type(event_type: &str) -> Result<(), EventBusError> {
    let valid = !event_type.is_empty()
        && event_type.len() <= 128
        && event_type
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(EventBusError::InvalidEventType {
            event_type: event_type.to_owned(),
        })
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `SystemTime` as an RFC 3339 string, so events read the same in every
/// language that consumes them.
mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`, written by hand: it runs for every
    /// delivery, and a general formatter costs several times more.
    pub(super) fn format(timestamp: SystemTime) -> String {
        let Ok(since_epoch) = timestamp.duration_since(std::time::UNIX_EPOCH) else {
            return OffsetDateTime::from(timestamp)
                .format(&Rfc3339)
                .unwrap_or_else(|_| String::from("1970-01-01T00:00:00Z"));
        };
        let seconds = since_epoch.as_secs();
        let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
        let of_day = seconds % 86_400;
        let mut text = String::with_capacity(24);
        push_digits(&mut text, year.rem_euclid(10_000) as u64, 4);
        text.push('-');
        push_digits(&mut text, month, 2);
        text.push('-');
        push_digits(&mut text, day, 2);
        text.push('T');
        push_digits(&mut text, of_day / 3600, 2);
        text.push(':');
        push_digits(&mut text, of_day / 60 % 60, 2);
        text.push(':');
        push_digits(&mut text, of_day % 60, 2);
        text.push('.');
        push_digits(&mut text, u64::from(since_epoch.subsec_millis()), 3);
        text.push('Z');
        text
    }

    fn push_digits(text: &mut String, value: u64, width: u32) {
        for position in (0..width).rev() {
            let digit = (value / 10u64.pow(position) % 10) as u8;
            text.push(char::from(b'0' + digit));
        }
    }

    /// Howard Hinnant's `civil_from_days`: the proleptic Gregorian date of
    /// a day count since 1970-01-01.
    fn civil_from_days(days: i64) -> (i64, u64, u64) {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let day_of_era = z.rem_euclid(146_097);
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let shifted_month = (5 * day_of_year + 2) / 153;
        let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u64;
        let month = if shifted_month < 10 {
            shifted_month + 3
        } else {
            shifted_month - 9
        } as u64;
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        (year, month, day)
    }

    pub(super) fn serialize<S: Serializer>(
        timestamp: &SystemTime,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let at = OffsetDateTime::from(*timestamp);
        let text = at.format(&Rfc3339).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&text)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<SystemTime, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        let at = OffsetDateTime::parse(&text, &Rfc3339)
            .map_err(|e| D::Error::custom(format!("timestamp {text:?} is not RFC 3339: {e}")))?;
        Ok(at.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_are_unique_and_time_ordered() {
        let first = Event::new("a", json!({}));
        let second = Event::new("a", json!({}));
        assert_ne!(first.id, second.id);
        assert_eq!(first.id.get_version_num(), 7);
        let (first_ms, _) = first.id.get_timestamp().unwrap().to_unix();
        assert!(first_ms <= second.id.get_timestamp().unwrap().to_unix().0);
    }

    #[test]
    fn serializes_with_rfc3339_and_lowercase_priority() {
        let event = Event::new("order_created", json!({"n": 1})).with_priority(Priority::Critical);
        let wire = serde_json::to_value(&event).unwrap();
        assert_eq!(wire["priority"], "critical");
        let stamp = wire["timestamp"].as_str().unwrap();
        let parsed =
            time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339);
        assert!(parsed.is_ok(), "{stamp}");
        let back: Event = serde_json::from_value(wire).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn malformed_timestamp_is_an_error_naming_it() {
        let mut wire = serde_json::to_value(Event::new("a", json!(null))).unwrap();
        wire["timestamp"] = json!("yesterday");
        let err = serde_json::from_value::<Event>(wire).unwrap_err();
        assert!(err.to_string().contains("yesterday"), "{err}");
    }

    #[test]
    fn hand_written_rfc3339_agrees_with_the_time_crate() {
        use time::format_description::well_known::Rfc3339;
        let mut seconds: u64 = 0;
        // Every leap-year rule and month end from 1970 to 2400, in steps
        // that land on many different days and times of day.
        while seconds < 13_569_465_600 {
            let at = UNIX_EPOCH + Duration::from_millis(seconds * 1000 + seconds % 1000);
            let ours = rfc3339::format(at);
            let parsed = time::OffsetDateTime::parse(&ours, &Rfc3339).unwrap();
            assert_eq!(SystemTime::from(parsed), at, "{ours}");
            seconds += 86_400 * 13 + 3_607;
        }
    }

    #[test]
    fn priorities_order_lanes() {
        assert!(Priority::Critical > Priority::High && Priority::High > Priority::Medium);
        assert!(Priority::Medium > Priority::Low);
        assert_eq!(Priority::Critical.lane(), 0);
        assert_eq!(Priority::Low.lane(), 3);
    }

    #[test]
    fn event_types_must_be_safe_names() {
        assert!(validate_event_type("order_created-v2").is_ok());
        for bad in ["", "a.b", "a b", "orders.>", "*", &"x".repeat(129)] {
            assert!(
                matches!(
                    validate_event_type(bad),
                    Err(EventBusError::InvalidEventType { .. })
                ),
                "{bad:?}"
            );
        }
    }
}

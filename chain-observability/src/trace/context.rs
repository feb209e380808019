//! W3C trace context: `traceparent` and `tracestate`.

use std::fmt;

/// A trace position as carried between services by the W3C `traceparent`
/// header (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`), plus
/// the vendor `tracestate` carried along unchanged.
///
/// ```
/// use chain_observability::TraceContext;
///
/// let incoming = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None).unwrap();
/// assert!(incoming.sampled());
/// let child = incoming.child();
/// assert_eq!(child.trace_id(), incoming.trace_id());
/// assert_ne!(child.span_id(), incoming.span_id());
/// assert!(TraceContext::parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None).is_none());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
    tracestate: Option<String>,
}

const SAMPLED: u8 = 0x01;

impl TraceContext {
    /// A new trace, with random ids.
    pub fn new_root(sampled: bool) -> Self {
        let trace_id = loop {
            let id = fastrand::u128(..).to_be_bytes();
            if id != [0; 16] {
                break id;
            }
        };
        Self {
            trace_id,
            span_id: random_span_id(),
            flags: if sampled { SAMPLED } else { 0 },
            tracestate: None,
        }
    }

    /// A child position in the same trace: a new span id whose parent is
    /// this one's, same flags and state.
    #[must_use]
    pub fn child(&self) -> Self {
        Self {
            span_id: random_span_id(),
            ..self.clone()
        }
    }

    /// Parses a `traceparent` header value (and the `tracestate`, kept as
    /// is). Anything invalid gives `None`, so the caller starts a new trace:
    /// wrong lengths, non-hex or uppercase hex, version `ff`, all-zero ids,
    /// and for version `00` anything after the flags.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        let value = traceparent.trim();
        let bytes = value.as_bytes();
        if bytes.len() < 55 || bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return None;
        }
        let version = hex_bytes::<1>(&value[0..2])?[0];
        if version == 0xff
            || (version == 0 && bytes.len() != 55)
            || (bytes.len() > 55 && bytes[55] != b'-')
        {
            return None;
        }
        let trace_id = hex_bytes::<16>(&value[3..35])?;
        let span_id = hex_bytes::<8>(&value[36..52])?;
        let flags = hex_bytes::<1>(&value[53..55])?[0];
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            flags,
            tracestate: tracestate
                .map(str::trim)
                .filter(|state| !state.is_empty())
                .map(str::to_owned),
        })
    }

    /// Finds a trace context in headers: `traceparent` and `tracestate`,
    /// matched case-insensitively.
    pub fn from_headers<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<Self> {
        let mut traceparent = None;
        let mut tracestate = None;
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("traceparent") {
                traceparent = Some(value);
            } else if name.eq_ignore_ascii_case("tracestate") {
                tracestate = Some(value);
            }
        }
        Self::parse(traceparent?, tracestate)
    }

    /// The `traceparent` header value (version `00`).
    pub fn to_traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id_hex(),
            self.span_id_hex(),
            self.flags
        )
    }

    /// The trace id, 32 lowercase hex digits.
    pub fn trace_id(&self) -> String {
        hex(&self.trace_id)
    }

    /// The span id, 16 lowercase hex digits.
    pub fn span_id(&self) -> String {
        hex(&self.span_id)
    }

    /// The trace id as lowercase hex, formatted without allocating.
    pub fn trace_id_hex(&self) -> Hex<'_> {
        Hex(&self.trace_id)
    }

    /// The span id as lowercase hex, formatted without allocating.
    pub fn span_id_hex(&self) -> Hex<'_> {
        Hex(&self.span_id)
    }

    /// The trace id's bytes.
    pub fn trace_id_bytes(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The span id's bytes.
    pub fn span_id_bytes(&self) -> [u8; 8] {
        self.span_id
    }

    /// Whether the trace is sampled (recorded).
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The vendor state carried along, if any.
    pub fn tracestate(&self) -> Option<&str> {
        self.tracestate.as_deref()
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceContext")
            .field("traceparent", &self.to_traceparent())
            .field("tracestate", &self.tracestate)
            .finish()
    }
}

fn random_span_id() -> [u8; 8] {
    loop {
        let id = fastrand::u64(..).to_be_bytes();
        if id != [0; 8] {
            return id;
        }
    }
}

/// Bytes shown as lowercase hex; made by [`TraceContext::trace_id_hex`] and
/// [`TraceContext::span_id_hex`].
#[derive(Debug, Clone, Copy)]
pub struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

fn hex(bytes: &[u8]) -> String {
    Hex(bytes).to_string()
}

/// `N` bytes from `2 * N` lowercase hex digits.
fn hex_bytes<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != N * 2 {
        return None;
    }
    let nibble = |digit: u8| match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    };
    let mut out = [0_u8; N];
    for (slot, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *slot = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn round_trips_a_valid_header() {
        let parsed = TraceContext::parse(VALID, Some("congo=t61rcWkgMzE")).unwrap();
        assert_eq!(parsed.to_traceparent(), VALID);
        assert_eq!(parsed.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parsed.span_id(), "00f067aa0ba902b7");
        assert_eq!(parsed.tracestate(), Some("congo=t61rcWkgMzE"));
        assert!(parsed.sampled());
        assert!(
            !TraceContext::parse(&VALID.replace("-01", "-00"), None)
                .unwrap()
                .sampled()
        );
    }

    #[test]
    fn rejects_invalid_headers() {
        for invalid in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e47-3600f067aa0ba902b7-01",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(
                TraceContext::parse(invalid, None).is_none(),
                "accepted {invalid:?}"
            );
        }
    }

    #[test]
    fn future_versions_parse_their_known_prefix() {
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next";
        assert!(TraceContext::parse(future, None).is_some());
    }

    #[test]
    fn headers_are_found_case_insensitively() {
        let found =
            TraceContext::from_headers([("TraceParent", VALID), ("content-type", "json")]).unwrap();
        assert_eq!(found.to_traceparent(), VALID);
        assert!(TraceContext::from_headers([("x", "y")]).is_none());
    }

    #[test]
    fn roots_and_children_have_fresh_nonzero_ids() {
        let root = TraceContext::new_root(true);
        let child = root.child();
        assert_eq!(root.trace_id(), child.trace_id());
        assert_ne!(root.span_id(), child.span_id());
        assert!(TraceContext::parse(&child.to_traceparent(), None).is_some());
    }
}

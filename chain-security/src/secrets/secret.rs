use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};

/// What every redacted secret shows.
pub const REDACTED: &str = "[REDACTED]";

/// A secret value. `Debug`, `Display` and serialization show
/// `[REDACTED]`, so a secret never reaches a log or a JSON field by
/// accident; [`expose`](Self::expose) is the one way to read it.
///
/// ```
/// use chain_security::secrets::Secret;
///
/// let key = Secret::new("sk_live_123");
/// assert_eq!(format!("{key} {key:?}"), "[REDACTED] Secret([REDACTED])");
/// assert_eq!(serde_json::to_string(&key).unwrap(), "\"[REDACTED]\"");
/// assert_eq!(key.expose(), "sk_live_123");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }

    /// The value itself. Keep it out of logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

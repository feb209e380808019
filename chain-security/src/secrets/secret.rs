use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

pub use crate::REDACTED;

/// A secret value: a password, an API key, a token.
///
/// - `Debug`, `Display` and serialization show `[REDACTED]`, so a secret
///   never reaches a log or a JSON field by accident;
///   [`expose`](Self::expose) is the one way to read it.
/// - Equality takes the same time whatever the values' contents (only their
///   lengths can tell apart), so comparing a guess leaks nothing through
///   timing.
/// - The value is overwritten with zeros when the last clone is dropped.
///   Clones share one copy (`Arc`), so passing a secret through a chain's
///   context copies no bytes.
/// - It deserializes from a JSON string, so a request type can hold its
///   password as a `Secret` from the moment it is parsed (the parser's own
///   buffers are outside its reach).
///
/// Why not the `secrecy` crate: its `SecretBox` is deliberately not cheap to
/// clone, and contexts are cloned (parallel branches, retries); it does not
/// compare in constant time either. This type uses `zeroize`, which
/// `secrecy` is built on, and `subtle` for the comparison.
///
/// ```
/// use chain_security::secrets::Secret;
///
/// let key = Secret::new("sk_live_123");
/// assert_eq!(format!("{key} {key:?}"), "[REDACTED] Secret([REDACTED])");
/// assert_eq!(serde_json::to_string(&key).unwrap(), "\"[REDACTED]\"");
/// assert_eq!(key.expose(), "sk_live_123");
/// ```
#[derive(Clone)]
pub struct Secret(Arc<Zeroizing<String>>);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Arc::new(Zeroizing::new(value.into())))
    }

    /// The value itself. Keep it out of logs.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for Secret {}

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

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

//! What an execution's HTTP request carried: headers, peer address, method
//! and path, as a typed extension of the [`Context`](crate::Context).
//!
//! Request metadata belongs in an extension, not in the context's JSON
//! fields: the JSON is logged, published as events and sent to other
//! services, and headers carry credentials (`Authorization`, `Cookie`,
//! API keys). Middleware that needs a header (authentication, trace
//! propagation) reads it from here.
//!
//! ```
//! use chain_core::{Context, RequestMeta};
//!
//! let meta = RequestMeta::new()
//!     .with_method("GET")
//!     .with_path("/orders/7")
//!     .with_header("Authorization", "Bearer abc.def.ghi")
//!     .with_peer("127.0.0.1:50000".parse().unwrap());
//! let ctx = Context::new().with("order_id", 7).with_ext(meta);
//!
//! let meta = ctx.ext::<RequestMeta>().unwrap();
//! assert_eq!(meta.bearer_token(), Some("abc.def.ghi"));
//! assert_eq!(ctx.to_json().to_string(), r#"{"order_id":7}"#);
//! assert!(!format!("{meta:?}").contains("abc.def"), "Debug redacts credentials");
//! ```

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;

use crate::extensions::Extensions;

/// Headers whose values `Debug` never shows.
const SENSITIVE_HEADERS: [&str; 6] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-auth-token",
];

/// The HTTP request behind an execution. Header names are kept in lower
/// case and looked up in any case; a header may repeat. `Debug` shows the
/// values of credential headers as `[REDACTED]`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RequestMeta {
    method: Option<Box<str>>,
    path: Option<Box<str>>,
    headers: Vec<(Box<str>, Box<str>)>,
    peer: Option<SocketAddr>,
}

impl RequestMeta {
    /// Nothing known yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// With the request's method.
    #[must_use]
    pub fn with_method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into().into_boxed_str());
        self
    }

    /// With the request's path (and query).
    #[must_use]
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into().into_boxed_str());
        self
    }

    /// With one more header (repeated names are kept in order).
    #[must_use]
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.append_header(name, value);
        self
    }

    /// Adds a header.
    pub fn append_header(&mut self, name: &str, value: impl Into<String>) {
        self.headers.push((
            name.to_ascii_lowercase().into_boxed_str(),
            value.into().into_boxed_str(),
        ));
    }

    /// With the address of the peer that sent the request.
    #[must_use]
    pub fn with_peer(mut self, peer: SocketAddr) -> Self {
        self.peer = Some(peer);
        self
    }

    /// The request's method, if known.
    pub fn method(&self) -> Option<&str> {
        self.method.as_deref()
    }

    /// The request's path, if known.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// The peer's address, if known.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| &**value)
    }

    /// Every header, names in lower case, in the order received.
    pub fn headers(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.headers.iter().map(|(name, value)| (&**name, &**value))
    }

    /// The token of an `Authorization: Bearer <token>` header (scheme in any
    /// case), if there is a non-empty one.
    pub fn bearer_token(&self) -> Option<&str> {
        let (scheme, token) = self.header("authorization")?.trim().split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
    }
}

/// Header pairs for `Debug`, with credential values redacted.
struct RedactedHeaders<'a>(&'a [(Box<str>, Box<str>)]);

impl fmt::Debug for RedactedHeaders<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(name, value)| {
                let shown = if SENSITIVE_HEADERS.contains(&&**name) {
                    "[REDACTED]"
                } else {
                    value
                };
                (name, shown)
            }))
            .finish()
    }
}

/// Headers that links forward on every call they make to another service:
/// a request id, `baggage`, a tenant. A typed extension, so it never
/// enters the context's JSON.
///
/// Headers derived for every context of the process, such as the W3C
/// `traceparent` that chain-observability's tracer derives from the span of
/// the link making the call, are registered once with
/// [`derive_globally`](Self::derive_globally), as OpenTelemetry's global
/// propagator is: they cost nothing to executions that make no call.
/// [`RemoteEndpoint`](crate::remote::RemoteEndpoint) and the orchestrator
/// of chain-resilience send [`headers_for_call`](Self::headers_for_call).
/// Names are kept in lower case; setting a name again replaces it. `Debug`
/// redacts credential headers as [`RequestMeta`] does.
///
/// ```
/// use chain_core::{Context, HasExtensions, OutgoingHeaders};
///
/// let mut outgoing = OutgoingHeaders::new();
/// outgoing.set("X-Tenant", "acme");
/// outgoing.set("x-tenant", "globex");
/// let ctx = Context::new().with_ext(outgoing);
/// let headers = OutgoingHeaders::headers_for_call(ctx.extensions());
/// assert!(headers.iter().any(|(name, value)| name == "x-tenant" && value == "globex"));
/// assert_eq!(ctx.to_json().to_string(), "{}");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct OutgoingHeaders {
    headers: Vec<(Box<str>, Box<str>)>,
}

/// How a globally derived header's value is made from a context's
/// extensions.
type Derive = fn(&Extensions) -> Option<String>;

/// Headers derived for every context, names in lower case: see
/// [`OutgoingHeaders::derive_globally`].
static GLOBAL: std::sync::RwLock<Vec<(Cow<'static, str>, Derive)>> =
    std::sync::RwLock::new(Vec::new());

impl OutgoingHeaders {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets header `name` to `value`, replacing a header of that name.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into().into_boxed_str();
        match self
            .headers
            .iter_mut()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
        {
            Some((_, slot)) => *slot = value,
            None => self
                .headers
                .push((name.to_ascii_lowercase().into_boxed_str(), value)),
        }
    }

    /// Removes header `name`; whether there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.headers.len();
        self.headers
            .retain(|(key, _)| !key.eq_ignore_ascii_case(name));
        self.headers.len() != before
    }

    /// The value of header `name` (any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| &**value)
    }

    /// Number of headers.
    pub fn len(&self) -> usize {
        self.headers.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    /// Derives header `name` from the extensions of every context of this
    /// process on every call (left out when `derive` returns `None`),
    /// replacing a registration of the same name. A context's own
    /// [`OutgoingHeaders`] win over it.
    pub fn derive_globally(name: &'static str, derive: Derive) {
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(name.to_ascii_lowercase())
        } else {
            Cow::Borrowed(name)
        };
        let mut registered = GLOBAL
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match registered.iter_mut().find(|(key, _)| *key == name) {
            Some((_, slot)) => *slot = derive,
            None => registered.push((name, derive)),
        }
    }

    /// The headers a call to another service carries, with their values
    /// now: the globally derived ones, then those of the [`OutgoingHeaders`]
    /// extension among `extensions` (which replace a global one of the same
    /// name). Names are in lower case.
    pub fn headers_for_call(extensions: &Extensions) -> Vec<(Cow<'static, str>, String)> {
        let own = extensions.get::<Self>();
        let mut headers: Vec<(Cow<'static, str>, String)> = GLOBAL
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|(name, _)| own.is_none_or(|own| own.get(name).is_none()))
            .filter_map(|(name, derive)| Some((name.clone(), derive(extensions)?)))
            .collect();
        if let Some(own) = own {
            headers.extend(
                own.headers
                    .iter()
                    .map(|(name, value)| (Cow::Owned(name.to_string()), value.to_string())),
            );
        }
        headers
    }
}

impl fmt::Debug for OutgoingHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OutgoingHeaders")
            .field(&RedactedHeaders(&self.headers))
            .finish()
    }
}

impl fmt::Debug for RequestMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestMeta")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("headers", &RedactedHeaders(&self.headers))
            .field("peer", &self.peer)
            .finish()
    }
}

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
impl RequestMeta {
    /// The method, path, and headers of an `http` request (headers whose
    /// value is not visible ASCII are left out). Add the peer with
    /// [`with_peer`](Self::with_peer).
    pub fn from_http(parts: &http::request::Parts) -> Self {
        let mut meta = Self::new().with_method(parts.method.as_str()).with_path(
            parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path(), http::uri::PathAndQuery::as_str),
        );
        meta.headers.reserve(parts.headers.len());
        for (name, value) in &parts.headers {
            if let Ok(value) = value.to_str() {
                meta.headers
                    .push((name.as_str().into(), value.to_owned().into_boxed_str()));
            }
        }
        meta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_found_in_any_case_and_bearer_tokens_parsed() {
        let meta = RequestMeta::new()
            .with_header("X-Request-Id", "r1")
            .with_header("authorization", "bearer  tok ");
        assert_eq!(meta.header("x-request-id"), Some("r1"));
        assert_eq!(meta.header("X-REQUEST-ID"), Some("r1"));
        assert_eq!(meta.bearer_token(), Some("tok"));
        for value in ["Basic abc", "Bearer", "Bearer   ", ""] {
            let meta = RequestMeta::new().with_header("Authorization", value);
            assert_eq!(meta.bearer_token(), None, "{value:?}");
        }
    }

    #[test]
    fn headers_for_a_call_are_global_then_the_contexts_own() {
        #[derive(Clone)]
        struct Tenant(&'static str);
        OutgoingHeaders::derive_globally("x-test-tenant", |ext| {
            ext.get::<Tenant>().map(|tenant| tenant.0.to_owned())
        });
        let mut ext = Extensions::new();
        assert!(OutgoingHeaders::headers_for_call(&ext).is_empty());
        ext.insert(Tenant("acme"));
        assert_eq!(
            OutgoingHeaders::headers_for_call(&ext),
            [(Cow::Borrowed("x-test-tenant"), "acme".to_owned())]
        );
        let mut own = OutgoingHeaders::new();
        own.set("X-Test-Tenant", "override");
        own.set("x-request-id", "r1");
        ext.insert(own);
        assert_eq!(
            OutgoingHeaders::headers_for_call(&ext),
            [
                (Cow::Borrowed("x-test-tenant"), "override".to_owned()),
                (Cow::Borrowed("x-request-id"), "r1".to_owned())
            ]
        );
    }

    #[test]
    fn debug_redacts_every_credential_header() {
        let mut meta = RequestMeta::new();
        for name in SENSITIVE_HEADERS {
            meta.append_header(&name.to_ascii_uppercase(), format!("secret-{name}"));
        }
        meta.append_header("Accept", "text/plain");
        let shown = format!("{meta:?}");
        assert!(!shown.contains("secret-"), "{shown}");
        assert!(shown.contains("text/plain"), "{shown}");
    }
}

//! The one error type of a chain, with a kind, a message, where it happened
//! and the source error it came from.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A boxed error that can cross threads: the source type of [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result<T, chain_core::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in terms every ModuLink crate maps onto.
///
/// Sibling crates translate their failures into these kinds (a circuit breaker
/// rejection is [`Rejected`](ErrorKind::Rejected), an expired token
/// [`Unauthorized`](ErrorKind::Unauthorized)), so policies such as "never
/// retry a validation error" work across crates.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input is malformed or breaks a rule; retrying will not help.
    Validation,
    /// The caller is not authenticated.
    Unauthorized,
    /// The caller is authenticated but not allowed.
    Forbidden,
    /// Something the link needed does not exist.
    NotFound,
    /// Two writers disagree, e.g. two parallel branches set one key to
    /// different values.
    Conflict,
    /// A time limit fired.
    Timeout,
    /// A dependency is down or unreachable; retrying may help.
    Unavailable,
    /// A policy refused the call (circuit open, rate limited, bulkhead full).
    Rejected,
    /// A link panicked; the panic was caught and turned into this error.
    Panicked,
    /// A bug or an unexpected failure.
    Internal,
}

impl ErrorKind {
    /// The kind as a lowercase word, as used in messages and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Validation => "validation",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not found",
            Self::Conflict => "conflict",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::Rejected => "rejected",
            Self::Panicked => "panicked",
            Self::Internal => "internal",
        }
    }
}

impl ErrorKind {
    /// The HTTP status code that answers a request failing with this kind:
    ///
    /// | kind | status |
    /// |---|---|
    /// | `Validation` | 422 Unprocessable Content |
    /// | `Unauthorized` | 401 Unauthorized |
    /// | `Forbidden` | 403 Forbidden |
    /// | `NotFound` | 404 Not Found |
    /// | `Conflict` | 409 Conflict |
    /// | `Rejected` | 429 Too Many Requests: a rate limit, a full bulkhead or an open circuit asks the client to come back later |
    /// | `Timeout` | 504 Gateway Timeout |
    /// | `Unavailable` | 503 Service Unavailable |
    /// | `Panicked`, `Internal` | 500 Internal Server Error |
    ///
    /// ```
    /// use chain_core::ErrorKind;
    /// assert_eq!(ErrorKind::Validation.status_code(), 422);
    /// assert_eq!(ErrorKind::Panicked.status_code(), 500);
    /// ```
    pub const fn status_code(self) -> u16 {
        match self {
            Self::Validation => 422,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::Conflict => 409,
            Self::Rejected => 429,
            Self::Timeout => 504,
            Self::Unavailable => 503,
            Self::Panicked | Self::Internal => 500,
        }
    }

    /// Whether errors of this kind come from bad input rather than a failing
    /// dependency: validation, unauthorized, forbidden and not found.
    /// Resilience policies do not retry them.
    pub const fn is_client_error(self) -> bool {
        matches!(
            self,
            Self::Validation | Self::Unauthorized | Self::Forbidden | Self::NotFound
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Where in a chain an error happened: the chain, the link and its index.
///
/// Set by the innermost chain that saw the error, so for nested chains it
/// names the link that actually failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    chain: Arc<str>,
    link: Arc<str>,
    index: usize,
}

impl Location {
    /// Name of the chain the failing link belongs to.
    pub fn chain(&self) -> &str {
        &self.chain
    }

    /// Name of the failing link.
    pub fn link(&self) -> &str {
        &self.link
    }

    /// Zero-based position of the failing link in its chain.
    pub fn index(&self) -> usize {
        self.index
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "chain `{}`, link #{} `{}`",
            self.chain, self.index, self.link
        )
    }
}

/// The error of a chain: a [kind](ErrorKind), a message, the
/// [location](Location) where it happened and, optionally, the source error.
///
/// It is one pointer wide, so `Result<C, Error>` stays small on the hot path.
///
/// # Display
///
/// `{}` prints this error's own layer: its kind, location and message. The
/// source error is not repeated there, because [`source`](std::error::Error::source)
/// returns it and error reporters (`anyhow`, `eyre`, tracing's error
/// fields) print the whole chain from it. The alternate form `{:#}` prints
/// the layer followed by every source, `: `-separated, for a one-line log.
///
/// ```
/// use chain_core::{Error, ErrorKind};
///
/// let err = Error::validation("quantity must be positive");
/// assert_eq!(err.kind(), ErrorKind::Validation);
/// assert_eq!(err.to_string(), "validation error: quantity must be positive");
///
/// let io = std::io::Error::other("connection reset");
/// let err = Error::new(ErrorKind::Unavailable, "inventory unreachable").with_source(io);
/// assert_eq!(err.to_string(), "unavailable error: inventory unreachable");
/// assert_eq!(format!("{err:#}"), "unavailable error: inventory unreachable: connection reset");
/// assert!(err.downcast_source::<std::io::Error>().is_some());
/// ```
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    message: Cow<'static, str>,
    location: Option<Location>,
    source: Option<BoxError>,
    /// When the caller may try again, for rejections by a rate limit or an
    /// open circuit.
    retry_after: Option<Duration>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        write!(f, "{} error", inner.kind)?;
        if let Some(location) = &inner.location {
            write!(f, " in {location}")?;
        }
        if !inner.message.is_empty() {
            write!(f, ": {}", inner.message)?;
        }
        if f.alternate() {
            write_sources(f, self)?;
        }
        Ok(())
    }
}

/// Writes `: source` for every error in `error`'s source chain.
fn write_sources(f: &mut fmt::Formatter<'_>, error: &dyn std::error::Error) -> fmt::Result {
    let mut next = error.source();
    while let Some(source) = next {
        write!(f, ": {source}")?;
        next = source.source();
    }
    Ok(())
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Error");
        debug.field("kind", &self.inner.kind);
        if !self.inner.message.is_empty() {
            debug.field("message", &self.inner.message);
        }
        if let Some(location) = &self.inner.location {
            debug.field("location", location);
        }
        if let Some(source) = &self.inner.source {
            debug.field("source", source);
        }
        if let Some(wait) = &self.inner.retry_after {
            debug.field("retry_after", wait);
        }
        debug.finish()
    }
}

macro_rules! kind_constructors {
    ($($(#[$doc:meta])* $name:ident => $kind:ident),* $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $name(message: impl Into<Cow<'static, str>>) -> Self {
                Self::new(ErrorKind::$kind, message)
            }
        )*
    };
}

impl Error {
    /// An error of `kind` with a message. A `&'static str` message costs no
    /// allocation beyond the error itself.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                location: None,
                source: None,
                retry_after: None,
            }),
        }
    }

    /// An error of `kind` caused by `source`, which stays reachable through
    /// [`std::error::Error::source`] and [`downcast_source`](Self::downcast_source).
    ///
    /// If `source` is itself a chain [`Error`], it is returned as is, so
    /// wrapping never hides the original kind and location.
    pub fn from_source(kind: ErrorKind, source: impl Into<BoxError>) -> Self {
        let source = source.into();
        match source.downcast::<Error>() {
            Ok(chain_error) => *chain_error,
            Err(source) => Self {
                inner: Box::new(Inner {
                    kind,
                    message: Cow::Borrowed(""),
                    location: None,
                    source: Some(source),
                    retry_after: None,
                }),
            },
        }
    }

    /// An [`Internal`](ErrorKind::Internal) error caused by `source`.
    pub fn internal_from(source: impl Into<BoxError>) -> Self {
        Self::from_source(ErrorKind::Internal, source)
    }

    kind_constructors! {
        /// A [`Validation`](ErrorKind::Validation) error.
        validation => Validation,
        /// An [`Unauthorized`](ErrorKind::Unauthorized) error.
        unauthorized => Unauthorized,
        /// A [`Forbidden`](ErrorKind::Forbidden) error.
        forbidden => Forbidden,
        /// A [`NotFound`](ErrorKind::NotFound) error.
        not_found => NotFound,
        /// A [`Conflict`](ErrorKind::Conflict) error.
        conflict => Conflict,
        /// A [`Timeout`](ErrorKind::Timeout) error.
        timeout => Timeout,
        /// An [`Unavailable`](ErrorKind::Unavailable) error.
        unavailable => Unavailable,
        /// A [`Rejected`](ErrorKind::Rejected) error.
        rejected => Rejected,
        /// An [`Internal`](ErrorKind::Internal) error.
        internal => Internal,
    }

    /// Attaches a source error to this error, keeping its kind and message.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// Records when the caller may try again: rate limiters, bulkheads and
    /// open circuit breakers set it, and the HTTP edge sends it as
    /// `Retry-After`.
    #[must_use]
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.inner.retry_after = Some(wait);
        self
    }

    /// How long the caller should wait before trying again, when the error
    /// says.
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The message given when the error was made; empty for errors built
    /// from a source alone.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// Where in a chain the error happened, once a chain has seen it.
    pub fn location(&self) -> Option<&Location> {
        self.inner.location.as_ref()
    }

    /// The source error, if it is of type `T`.
    pub fn downcast_source<T: std::error::Error + 'static>(&self) -> Option<&T> {
        self.inner.source.as_deref()?.downcast_ref::<T>()
    }

    /// Whether the kind is [`Validation`](ErrorKind::Validation).
    pub fn is_validation(&self) -> bool {
        self.kind() == ErrorKind::Validation
    }

    /// Whether the kind is [`Timeout`](ErrorKind::Timeout).
    pub fn is_timeout(&self) -> bool {
        self.kind() == ErrorKind::Timeout
    }

    /// Whether the kind is [`Rejected`](ErrorKind::Rejected).
    pub fn is_rejected(&self) -> bool {
        self.kind() == ErrorKind::Rejected
    }

    /// Whether a link panicked.
    pub fn is_panic(&self) -> bool {
        self.kind() == ErrorKind::Panicked
    }

    /// Records where the error happened unless an inner chain already did.
    pub(crate) fn locate(mut self, chain: &Arc<str>, link: &Arc<str>, index: usize) -> Self {
        if self.inner.location.is_none() {
            self.inner.location = Some(Location {
                chain: Arc::clone(chain),
                link: Arc::clone(link),
                index,
            });
        }
        self
    }
}

impl From<serde_json::Error> for Error {
    /// Malformed or mistyped JSON is a [`Validation`](ErrorKind::Validation)
    /// error.
    fn from(source: serde_json::Error) -> Self {
        Self::from_source(ErrorKind::Validation, source)
    }
}

/// Turns any `Result` into a chain `Result` of a chosen kind.
///
/// ```
/// use chain_core::{ErrorKind, ResultExt};
///
/// let parsed: chain_core::Result<u32> = "12x".parse::<u32>().kind(ErrorKind::Validation);
/// assert_eq!(parsed.unwrap_err().kind(), ErrorKind::Validation);
/// ```
pub trait ResultExt<T> {
    /// Maps the error into an [`Error`] of `kind`, keeping it as the source.
    fn kind(self, kind: ErrorKind) -> Result<T>;
}

impl<T, E: Into<BoxError>> ResultExt<T> for std::result::Result<T, E> {
    fn kind(self, kind: ErrorKind) -> Result<T> {
        self.map_err(|source| Error::from_source(kind, source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_one_pointer_wide() {
        assert_eq!(size_of::<Error>(), size_of::<usize>());
    }

    #[test]
    fn display_names_kind_location_and_message() {
        let err = Error::validation("bad quantity").locate(&"orders".into(), &"check".into(), 2);
        assert_eq!(
            err.to_string(),
            "validation error in chain `orders`, link #2 `check`: bad quantity"
        );
    }

    /// A reporter that prints each error of the source chain, as anyhow and
    /// eyre do, must see every message once.
    #[test]
    fn display_leaves_the_source_to_the_source_chain() {
        use std::error::Error as _;
        fn report(error: &dyn std::error::Error) -> String {
            let mut text = error.to_string();
            let mut next = error.source();
            while let Some(source) = next {
                text = format!("{text}: {source}");
                next = source.source();
            }
            text
        }
        let err = Error::from_source(ErrorKind::Unavailable, std::io::Error::other("reset"));
        assert_eq!(err.to_string(), "unavailable error");
        assert_eq!(report(&err), "unavailable error: reset");
        assert_eq!(format!("{err:#}"), "unavailable error: reset");

        let nested = Error::internal("wrapped").with_source(Error::validation("bad").locate(
            &"c".into(),
            &"l".into(),
            0,
        ));
        assert_eq!(
            report(&nested),
            "internal error: wrapped: validation error in chain `c`, link #0 `l`: bad"
        );
        assert_eq!(format!("{nested:#}"), report(&nested));
        assert!(nested.source().is_some());
    }

    #[test]
    fn source_chain_reaches_the_original_error() {
        use std::error::Error as _;
        let err = Error::internal("wrapped").with_source(std::io::Error::other("disk full"));
        let source = err.source().expect("source kept");
        assert_eq!(source.to_string(), "disk full");
        assert!(err.downcast_source::<std::io::Error>().is_some());
        assert!(err.downcast_source::<std::fmt::Error>().is_none());
    }

    #[test]
    fn wrapping_a_chain_error_keeps_it() {
        let original = Error::forbidden("no").locate(&"c".into(), &"l".into(), 0);
        let wrapped = Error::internal_from(original);
        assert_eq!(wrapped.kind(), ErrorKind::Forbidden);
        assert_eq!(wrapped.location().map(Location::link), Some("l"));
    }

    #[test]
    fn innermost_location_wins() {
        let err = Error::timeout("slow")
            .locate(&"inner".into(), &"a".into(), 1)
            .locate(&"outer".into(), &"inner".into(), 4);
        let location = err.location().expect("located");
        assert_eq!(
            (location.chain(), location.link(), location.index()),
            ("inner", "a", 1)
        );
    }
}

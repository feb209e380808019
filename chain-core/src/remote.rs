//! Calling HTTP services with a context as JSON (feature `client`).
//!
//! [`RemoteEndpoint`] is the one way the ModuLink crates POST JSON to a
//! service: the load balancer's remote nodes (chain-scaling) and the
//! orchestrator's services (chain-resilience) both go through it, so they
//! report failures the same way, as a [`RemoteFailure`] source under an
//! [`ErrorKind`] that says whether another attempt may help.
//!
//! Used as a link, it sends the context and takes the answer as the next
//! context, keeping the typed extensions (they never travel) and sending
//! the headers of the context's [`OutgoingHeaders`] extension, such as
//! the `traceparent` a tracer puts there.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind, Result};
use crate::extensions::{Extensions, HasExtensions};
use crate::link::{BoxFuture, Link};
use crate::request::OutgoingHeaders;

/// Why a call to a service failed: the source of the chain error, reached
/// with `error.downcast_source::<RemoteFailure>()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteFailure {
    /// Nothing listens at the service's address.
    #[error("service `{service}` refused the connection")]
    ConnectionRefused {
        /// The service.
        service: String,
        /// The client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The connection failed or broke before a whole response arrived.
    #[error("service `{service}` failed in transport")]
    Transport {
        /// The service.
        service: String,
        /// The client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The service answered with a status outside 2xx.
    #[error("service `{service}` answered {status}")]
    Status {
        /// The service.
        service: String,
        /// The HTTP status.
        status: u16,
        /// The start of the response body, for diagnosis.
        body: String,
    },
    /// The service's answer is not JSON of the expected shape.
    #[error("service `{service}` answered with invalid JSON")]
    InvalidJson {
        /// The service.
        service: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
}

/// An HTTP service that takes `POST` requests with a JSON body and answers
/// JSON.
///
/// As a [`Link`] of any context `C` that serializes, deserializes and has
/// [`Extensions`], it POSTs the context and the answer
/// is the next context. Failures are chain errors whose source is a
/// [`RemoteFailure`]:
///
/// | failure | kind |
/// |---|---|
/// | connection refused, broken transport, 5xx | `Unavailable` (another node may serve) |
/// | no answer within the timeout, 408 | `Timeout` |
/// | 429 | `Rejected` |
/// | 401, 403, 404 | `Unauthorized`, `Forbidden`, `NotFound` |
/// | other 4xx | `Validation` |
/// | an answer that is not JSON of the context's shape | `Internal` |
///
/// ```no_run
/// use chain_core::remote::RemoteEndpoint;
/// use chain_core::{Chain, Context};
///
/// # async fn run() -> chain_core::Result<()> {
/// let pricing = RemoteEndpoint::new("http://pricing:8080/price")?.named("pricing");
/// let chain = Chain::new().link(pricing);
/// let priced = chain.execute(Context::new().with("sku", "A1")).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RemoteEndpoint {
    name: Arc<str>,
    url: reqwest::Url,
    client: reqwest::Client,
}

impl RemoteEndpoint {
    /// An endpoint at `url`, named after it, with a 10 s timeout per call.
    ///
    /// # Errors
    ///
    /// A [`Validation`](ErrorKind::Validation) error when `url` does not
    /// parse; an [`Internal`](ErrorKind::Internal) one when the HTTP client
    /// cannot be built.
    pub fn new(url: &str) -> Result<Self> {
        Self::with_timeout(url, Duration::from_secs(10))
    }

    /// An endpoint at `url` with its own timeout per call.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn with_timeout(url: &str, timeout: Duration) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|source| {
                Error::new(ErrorKind::Internal, "cannot build the HTTP client").with_source(source)
            })?;
        Self::with_client(url, url, client)
    }

    /// An endpoint named `name` at `url`, sharing `client` (its connection
    /// pool and settings) with other endpoints.
    ///
    /// # Errors
    ///
    /// A [`Validation`](ErrorKind::Validation) error naming the endpoint
    /// when `url` does not parse.
    pub fn with_client(
        name: impl Into<Arc<str>>,
        url: &str,
        client: reqwest::Client,
    ) -> Result<Self> {
        let name = name.into();
        let url = reqwest::Url::parse(url).map_err(|source| {
            Error::validation(format!("service `{name}` has an invalid URL `{url}`"))
                .with_source(source)
        })?;
        Ok(Self { name, url, client })
    }

    /// Renames the endpoint: the name in errors and in `Chain::inspect`.
    #[must_use]
    pub fn named(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// The endpoint's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The endpoint's URL.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// POSTs `body` as JSON with `headers`, and parses the answer as `R`.
    ///
    /// # Errors
    ///
    /// The errors of the table above, each with a [`RemoteFailure`] source.
    pub async fn post_json<T, R>(&self, body: &T, headers: HeaderMap) -> Result<R>
    where
        T: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let body = self.encode(body)?;
        self.post_body(body, headers).await
    }

    fn encode<T: Serialize + ?Sized>(&self, body: &T) -> Result<Vec<u8>> {
        serde_json::to_vec(body).map_err(|source| {
            Error::new(
                ErrorKind::Internal,
                format!("cannot encode the request to service `{}`", self.name),
            )
            .with_source(source)
        })
    }

    async fn post_body<R: DeserializeOwned>(&self, body: Vec<u8>, headers: HeaderMap) -> Result<R> {
        let response = self
            .client
            .post(self.url.clone())
            .headers(headers)
            .header(
                reqwest::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .body(body)
            .send()
            .await
            .map_err(|source| self.transport_error(source))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|source| self.transport_error(source))?;
        if !status.is_success() {
            let body = String::from_utf8_lossy(&bytes[..bytes.len().min(256)]).into_owned();
            let failure = RemoteFailure::Status {
                service: self.name.to_string(),
                status: status.as_u16(),
                body,
            };
            return Err(Error::from_source(status_kind(status.as_u16()), failure));
        }
        serde_json::from_slice(&bytes).map_err(|source| {
            let failure = RemoteFailure::InvalidJson {
                service: self.name.to_string(),
                source,
            };
            Error::from_source(ErrorKind::Internal, failure)
        })
    }

    fn transport_error(&self, source: reqwest::Error) -> Error {
        let service = self.name.to_string();
        if source.is_timeout() {
            let failure = RemoteFailure::Transport { service, source };
            return Error::from_source(ErrorKind::Timeout, failure);
        }
        let failure = if source.is_connect() && refused_connection(&source) {
            RemoteFailure::ConnectionRefused { service, source }
        } else {
            RemoteFailure::Transport { service, source }
        };
        Error::from_source(ErrorKind::Unavailable, failure)
    }

    async fn exchange<C>(&self, mut ctx: C) -> Result<C>
    where
        C: Serialize + DeserializeOwned + HasExtensions,
    {
        let headers = outgoing_headers(ctx.extensions());
        // Encoded before the first await: the request future then holds no
        // borrow of the context, so it is `Send` for any `Send` context.
        let body = self.encode(&ctx)?;
        let mut answer: C = self.post_body(body, headers).await?;
        // Extensions never travel; the answer carries on with the ones the
        // request had.
        *answer.extensions_mut() = std::mem::take(ctx.extensions_mut());
        Ok(answer)
    }
}

/// The headers a call to another service carries
/// ([`OutgoingHeaders::headers_for_call`]) that are valid HTTP headers.
pub fn outgoing_headers(extensions: &Extensions) -> HeaderMap {
    let outgoing = OutgoingHeaders::headers_for_call(extensions);
    let mut headers = HeaderMap::with_capacity(outgoing.len());
    for (name, value) in outgoing {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.append(name, value);
        }
    }
    headers
}

/// The kind of a non-2xx answer.
fn status_kind(status: u16) -> ErrorKind {
    match status {
        401 => ErrorKind::Unauthorized,
        403 => ErrorKind::Forbidden,
        404 => ErrorKind::NotFound,
        408 => ErrorKind::Timeout,
        429 => ErrorKind::Rejected,
        400..=499 => ErrorKind::Validation,
        _ => ErrorKind::Unavailable,
    }
}

/// Whether an error's chain of causes holds an I/O "connection refused".
fn refused_connection(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        cause = current.source();
    }
    false
}

impl<C> Link<C> for RemoteEndpoint
where
    C: Serialize + DeserializeOwned + HasExtensions + Send + 'static,
{
    fn call(&self, ctx: C) -> BoxFuture<'_, Result<C>> {
        Box::pin(self.exchange(ctx))
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Owned(self.name.to_string())
    }
}

impl fmt::Debug for RemoteEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A URL may hold a password; Debug output ends up in logs.
        let mut url = self.url.clone();
        if url.password().is_some() {
            let _ = url.set_password(Some("[REDACTED]"));
        }
        f.debug_struct("RemoteEndpoint")
            .field("name", &self.name)
            .field("url", &url.as_str())
            .finish_non_exhaustive()
    }
}

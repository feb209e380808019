//! The HTTP edge with axum: chain errors as RFC 9457 problem responses, and
//! a chain served as a route.
//!
//! - [`Error`] implements axum's `IntoResponse`: an
//!   `application/problem+json` body whose status comes from
//!   [`ErrorKind::status_code`], with a `Retry-After` header when the error
//!   says when to come back (rate limits, open circuits, locked accounts).
//!   [`Problem`] chooses whether the chain and link names are shown.
//! - [`ChainRoute`] serves a chain as an axum route: the JSON body becomes
//!   the context, the request's method, path, headers and peer address go
//!   into the typed [`RequestMeta`] extension (where `auth()` of
//!   chain-security reads the bearer token), and the context the chain
//!   returns is the JSON response.
//!
//! ```
//! use std::net::SocketAddr;
//! use axum::Router;
//! use chain_core::axum::ChainRoute;
//! use chain_core::{Chain, Context, Error};
//!
//! async fn price(ctx: Context) -> chain_core::Result<Context> {
//!     let quantity: u32 = ctx.require("quantity")?;
//!     if quantity == 0 {
//!         return Err(Error::validation("quantity must be positive"));
//!     }
//!     Ok(ctx.with("total", quantity * 5))
//! }
//!
//! let checkout = Chain::named("checkout").link(price);
//! let app: Router = Router::new().route_service("/checkout", ChainRoute::new(checkout));
//! // Serve it with the peer address recorded in `RequestMeta`:
//! // axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
//! # let _ = app;
//! ```
//!
//! # What a client sees of an error
//!
//! A problem body has `type` (`about:blank`), `title` (the status's reason
//! phrase), `status`, `kind` (the [`ErrorKind`] as a word) and `detail`.
//! For client errors (validation, unauthorized, forbidden, not found,
//! conflict, rejected) the detail is the error's message and its sources,
//! which describe what the client sent. For server errors (timeouts,
//! unavailable dependencies, internal errors, panics) it is a fixed
//! sentence per kind: messages, sources and panic payloads stay in your
//! logs. The chain and link names appear only when
//! [`Problem::show_location`] or [`ChainRoute::show_location`] asks.

use std::convert::Infallible;
use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::task::{Context as TaskContext, Poll};

use ::axum::body::Body;
use ::axum::extract::ConnectInfo;
use ::axum::response::{IntoResponse, Response};
use http::{HeaderValue, Request, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower_service::Service;

use crate::chain::Chain;
use crate::error::{Error, ErrorKind};
use crate::extensions::HasExtensions;
use crate::link::BoxFuture;
use crate::request::RequestMeta;

/// The media type of RFC 9457 problem details.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A chain error as an RFC 9457 problem response, with the choice of
/// showing where it happened. `Error`'s own `IntoResponse` is
/// `Problem::new(error)`.
///
/// ```
/// use axum::response::IntoResponse;
/// use chain_core::axum::Problem;
/// use chain_core::Error;
///
/// let response = Problem::new(Error::forbidden("admins only")).into_response();
/// assert_eq!(response.status(), 403);
/// assert_eq!(response.headers()["content-type"], "application/problem+json");
/// ```
#[derive(Debug)]
pub struct Problem {
    error: Error,
    show_location: bool,
}

impl Problem {
    /// The problem for `error`, without the chain and link names.
    pub fn new(error: Error) -> Self {
        Self {
            error,
            show_location: false,
        }
    }

    /// Adds `chain`, `link` and `link_index` members naming where the error
    /// happened. Useful inside a trusted network; they tell an outside
    /// client how the service is built.
    #[must_use]
    pub fn show_location(mut self, show: bool) -> Self {
        self.show_location = show;
        self
    }

    /// The error.
    pub fn error(&self) -> &Error {
        &self.error
    }

    fn body(&self) -> ProblemBody<'_> {
        let kind = self.error.kind();
        let status = status_of(kind);
        let location = self.show_location.then(|| self.error.location()).flatten();
        ProblemBody {
            kind: Some(kind.as_str()),
            chain: location.map(crate::Location::chain),
            link: location.map(crate::Location::link),
            link_index: location.map(crate::Location::index),
            ..ProblemBody::new(status, client_detail(&self.error))
        }
    }
}

#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    kind_type: &'static str,
    title: &'static str,
    status: u16,
    /// The chain error's kind; absent for problems found before a chain ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    chain: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link_index: Option<usize>,
}

impl ProblemBody<'_> {
    fn new(status: StatusCode, detail: String) -> Self {
        Self {
            kind_type: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            kind: None,
            detail,
            chain: None,
            link: None,
            link_index: None,
        }
    }

    /// The body as an `application/problem+json` response.
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let json = serde_json::to_vec(&self).unwrap_or_default();
        (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
            json,
        )
            .into_response()
    }
}

fn status_of(kind: ErrorKind) -> StatusCode {
    StatusCode::from_u16(kind.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// What the client may read: its own mistakes in full, the server's in one
/// fixed sentence.
fn client_detail(error: &Error) -> String {
    match error.kind() {
        ErrorKind::Validation
        | ErrorKind::Unauthorized
        | ErrorKind::Forbidden
        | ErrorKind::NotFound
        | ErrorKind::Conflict
        | ErrorKind::Rejected => {
            let mut detail = error.message().to_owned();
            let mut next = std::error::Error::source(error);
            while let Some(source) = next {
                if !detail.is_empty() {
                    detail.push_str(": ");
                }
                let _ = write!(detail, "{}", ClientText(source));
                next = source.source();
            }
            if detail.is_empty() {
                detail.push_str(error.kind().as_str());
            }
            detail
        }
        ErrorKind::Timeout => "the request took too long to complete".to_owned(),
        ErrorKind::Unavailable => "a service the request needs is unavailable".to_owned(),
        ErrorKind::Panicked | ErrorKind::Internal => {
            "the server could not complete the request".to_owned()
        }
    }
}

/// A source as the client sees it: a chain error shows its message only,
/// not the names of the chain and link it came from.
struct ClientText<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for ClientText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.downcast_ref::<Error>() {
            Some(error) if !error.message().is_empty() => f.write_str(error.message()),
            Some(error) => f.write_str(error.kind().as_str()),
            None => write!(f, "{}", self.0),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = self.body().into_response();
        if let Some(wait) = self.error.retry_after() {
            // Whole seconds, rounded up: a client told 0 would come right back.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// An `application/problem+json` response (RFC 9457) without the chain and
/// link names; see [`Problem`] to show them.
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        Problem::new(self).into_response()
    }
}

/// A chain served as an axum route (a tower `Service` of HTTP requests that
/// never fails, as `Router::route_service` needs).
///
/// For each request it:
/// 1. reads the body, up to [`body_limit`](Self::body_limit) bytes (413
///    beyond, 400 if it cannot be read), and parses it as JSON into the
///    context `C` (400 when it is not JSON of the right shape; an empty
///    body is `{}`);
/// 2. puts the method, path, headers and the peer address (when the server
///    runs with `into_make_service_with_connect_info::<SocketAddr>()`) into
///    the context's [`RequestMeta`] extension, never into its JSON;
/// 3. runs the chain, and answers `200 OK` with the returned context as
///    JSON, or the error as a [`Problem`].
///
/// `C` is [`Context`](crate::Context) or any struct of yours that
/// deserializes, serializes and carries [`Extensions`](crate::Extensions)
/// through [`HasExtensions`].
pub struct ChainRoute<C = crate::Context> {
    chain: Chain<C>,
    body_limit: usize,
    show_location: bool,
}

impl<C> Clone for ChainRoute<C> {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            body_limit: self.body_limit,
            show_location: self.show_location,
        }
    }
}

impl<C> fmt::Debug for ChainRoute<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainRoute")
            .field("chain", &self.chain)
            .field("body_limit", &self.body_limit)
            .field("show_location", &self.show_location)
            .finish()
    }
}

/// axum's default request body limit, which this route keeps.
const DEFAULT_BODY_LIMIT: usize = 2 * 1024 * 1024;

impl<C> ChainRoute<C>
where
    C: DeserializeOwned + Serialize + HasExtensions + Send + 'static,
{
    /// Serves `chain`, with a 2 MiB body limit (axum's default) and without
    /// locations in error responses.
    pub fn new(chain: Chain<C>) -> Self {
        Self {
            chain,
            body_limit: DEFAULT_BODY_LIMIT,
            show_location: false,
        }
    }

    /// The largest body accepted, in bytes.
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Whether error responses name the chain and link; see
    /// [`Problem::show_location`].
    #[must_use]
    pub fn show_location(mut self, show: bool) -> Self {
        self.show_location = show;
        self
    }

    async fn serve(self, request: Request<Body>) -> Response {
        let (parts, body) = request.into_parts();
        let bytes = match ::axum::body::to_bytes(body, self.body_limit).await {
            Ok(bytes) => bytes,
            Err(error) => {
                let error = error.into_inner();
                return if error.is::<http_body_util::LengthLimitError>() {
                    edge_problem(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("the body is larger than {} bytes", self.body_limit),
                    )
                } else {
                    // A malformed chunk, a body cut off: the client's
                    // request, not its size.
                    edge_problem(
                        StatusCode::BAD_REQUEST,
                        format!("the body could not be read: {error}"),
                    )
                };
            }
        };
        let json: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        let mut ctx: C = match serde_json::from_slice(json) {
            Ok(ctx) => ctx,
            Err(error) => {
                return edge_problem(
                    StatusCode::BAD_REQUEST,
                    format!("the body is not a JSON object of the expected shape: {error}"),
                );
            }
        };
        let mut meta = RequestMeta::from_http(&parts);
        if let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            meta = meta.with_peer(*peer);
        }
        ctx.extensions_mut().insert(meta);
        match self.chain.execute(ctx).await {
            Ok(out) => match serde_json::to_vec(&out) {
                Ok(json) => (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    json,
                )
                    .into_response(),
                Err(error) => Problem::new(Error::internal_from(error))
                    .show_location(self.show_location)
                    .into_response(),
            },
            Err(error) => Problem::new(error)
                .show_location(self.show_location)
                .into_response(),
        }
    }
}

/// A problem found before the chain ran: a body too large or not JSON.
fn edge_problem(status: StatusCode, detail: String) -> Response {
    ProblemBody::new(status, detail).into_response()
}

impl<C> Service<Request<Body>> for ChainRoute<C>
where
    C: DeserializeOwned + Serialize + HasExtensions + Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let route = self.clone();
        Box::pin(async move { Ok(route.serve(request).await) })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn answer(problem: Problem) -> (Response, serde_json::Value) {
        let body = serde_json::to_value(problem.body()).unwrap_or_default();
        (problem.into_response(), body)
    }

    #[test]
    fn server_errors_hide_their_message_and_sources() {
        for error in [
            Error::internal("db at 10.0.0.5 said no"),
            Error::unavailable("db at 10.0.0.5 said no"),
            Error::timeout("db at 10.0.0.5 said no"),
            Error::new(ErrorKind::Panicked, "db at 10.0.0.5 said no"),
            Error::from_source(ErrorKind::Internal, std::io::Error::other("10.0.0.5")),
        ] {
            let kind = error.kind();
            let (response, body) = answer(Problem::new(error));
            assert_eq!(response.status().as_u16(), kind.status_code());
            assert!(response.status().is_server_error());
            assert!(!body.to_string().contains("10.0.0.5"), "{body}");
        }
    }

    #[test]
    fn client_errors_spell_out_message_and_sources_without_locations() {
        let inner = Error::validation("quantity must be positive").locate(
            &"inner".into(),
            &"check".into(),
            3,
        );
        let error = Error::validation("order refused").with_source(inner);
        let (response, body) = answer(Problem::new(error));
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["detail"], "order refused: quantity must be positive");
        assert!(!body.to_string().contains("inner"), "{body}");
        let (_, body) = answer(Problem::new(Error::from_source(
            ErrorKind::NotFound,
            std::io::Error::other("no such order"),
        )));
        assert_eq!(body["detail"], "no such order");
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        for (wait, header) in [
            (Duration::from_millis(1), "1"),
            (Duration::from_millis(1200), "2"),
            (Duration::from_secs(30), "30"),
        ] {
            let response = Problem::new(Error::rejected("rate limited").with_retry_after(wait))
                .into_response();
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(response.headers()[header::RETRY_AFTER], header);
        }
        let response = Error::rejected("no hint").into_response();
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
    }
}

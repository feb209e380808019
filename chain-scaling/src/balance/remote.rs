//! Nodes that run elsewhere: the context goes to an HTTP endpoint as JSON
//! and the endpoint's JSON answer is the new context.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chain_core::{BoxFuture, Chain, Context, Error, ErrorKind, Link, Result};

use super::Node;

/// A link that POSTs the context as a JSON object to a URL and takes the
/// JSON object it answers as the next context.
///
/// Errors say which endpoint failed and how: no connection or a 5xx answer
/// is [`ErrorKind::Unavailable`] (another node may serve), a 4xx answer is
/// the matching client error, no answer in time is
/// [`ErrorKind::Timeout`], and an answer that is not a JSON object is
/// [`ErrorKind::Internal`].
#[derive(Clone)]
pub struct RemoteEndpoint {
    url: Arc<str>,
    client: reqwest::Client,
}

impl RemoteEndpoint {
    /// An endpoint at `url` with a 10 s timeout per call.
    pub fn new(url: impl Into<Arc<str>>) -> Result<Self> {
        Self::with_timeout(url, Duration::from_secs(10))
    }

    /// An endpoint at `url` with its own timeout per call.
    pub fn with_timeout(url: impl Into<Arc<str>>, timeout: Duration) -> Result<Self> {
        let url = url.into();
        reqwest::Url::parse(&url).map_err(|error| {
            Error::validation(format!("remote node url `{url}` is invalid: {error}"))
        })?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(Error::internal_from)?;
        Ok(RemoteEndpoint { url, client })
    }

    /// The endpoint's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn post(&self, ctx: Context) -> Result<Context> {
        let url = &self.url;
        let response = self
            .client
            .post(url.as_ref())
            .json(&ctx)
            .send()
            .await
            .map_err(|error| transport_error(url, error))?;
        let status = response.status();
        if !status.is_success() {
            let kind = match status.as_u16() {
                400 | 422 => ErrorKind::Validation,
                401 => ErrorKind::Unauthorized,
                403 => ErrorKind::Forbidden,
                404 => ErrorKind::NotFound,
                409 => ErrorKind::Conflict,
                429 => ErrorKind::Rejected,
                _ => ErrorKind::Unavailable,
            };
            return Err(Error::new(
                kind,
                format!("remote node `{url}` answered {status}"),
            ));
        }
        let body = response
            .bytes()
            .await
            .map_err(|error| transport_error(url, error))?;
        let value: serde_json::Value = serde_json::from_slice(&body).map_err(|error| {
            Error::new(
                ErrorKind::Internal,
                format!("remote node `{url}` answered something that is not JSON: {error}"),
            )
        })?;
        Context::from_json(value).map_err(|error| {
            Error::new(
                ErrorKind::Internal,
                format!("remote node `{url}` did not answer a JSON object: {error}"),
            )
        })
    }
}

fn transport_error(url: &str, error: reqwest::Error) -> Error {
    let kind = if error.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Unavailable
    };
    Error::new(kind, format!("remote node `{url}` could not be reached")).with_source(error)
}

impl Link<Context> for RemoteEndpoint {
    fn call(&self, ctx: Context) -> BoxFuture<'_, Result<Context>> {
        Box::pin(self.post(ctx))
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Owned(format!("remote {}", self.url))
    }
}

impl fmt::Debug for RemoteEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteEndpoint")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Node<Context> {
    /// A node that runs remotely: each call POSTs the context as JSON to
    /// `url` (see [`RemoteEndpoint`]). An invalid URL is a validation error.
    pub fn http(id: impl Into<Arc<str>>, url: impl Into<Arc<str>>) -> Result<Self> {
        let id = id.into();
        let endpoint = RemoteEndpoint::new(url)?;
        Ok(Node::new(
            Arc::clone(&id),
            Chain::named(format!("node {id}")).link(endpoint),
        ))
    }
}

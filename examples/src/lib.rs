//! Helpers shared by the examples; the examples live in `examples/`.

#![warn(clippy::unwrap_used, clippy::expect_used)]

use std::error::Error;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a GET got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body, as text.
    pub body: String,
}

/// GETs `url` (`http://host:port/path`) with a bare HTTP/1.0 request, each
/// step bounded by 3 s: enough for an example to call itself, probe its own
/// health endpoint or scrape its `/metrics` without an HTTP client.
pub async fn http_get(url: &str) -> Result<Answer, Box<dyn Error + Send + Sync>> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?} is not an http:// URL"))?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(host, path)| {
            (host, format!("/{path}"))
        });
    let step = Duration::from_secs(3);
    let mut stream = tokio::time::timeout(step, tokio::net::TcpStream::connect(host)).await??;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    tokio::time::timeout(step, stream.read_to_string(&mut response)).await??;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("{url} did not answer with an HTTP status"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_owned();
    Ok(Answer { status, body })
}

//! GET requests straight to an environment, for validation.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

#[derive(Clone)]
pub(crate) struct Probe {
    client: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
}

/// One probe: the status, or why there was none, and how long it took.
pub(crate) struct ProbeResult {
    pub(crate) status: Result<u16, String>,
    pub(crate) latency: Duration,
}

impl ProbeResult {
    pub(crate) fn succeeded(&self) -> bool {
        matches!(self.status, Ok(status) if (200..300).contains(&status))
    }
}

impl Probe {
    pub(crate) fn new(timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Probe {
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
        }
    }

    /// The body of a 2xx answer to a GET of `url`, as text, within the
    /// timeout.
    pub(crate) async fn get_text(&self, url: &str) -> Result<String, String> {
        let uri = url
            .parse()
            .map_err(|error| format!("{url} is not a URL: {error}"))?;
        tokio::time::timeout(self.timeout, async {
            let response = self
                .client
                .get(uri)
                .await
                .map_err(|error| format!("{url} is unreachable: {error}"))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|error| format!("body of {url} broke off: {error}"))?
                .to_bytes();
            if !status.is_success() {
                return Err(format!("{url} answered {status}"));
            }
            String::from_utf8(body.to_vec())
                .map_err(|_| format!("{url} answered bytes that are not text"))
        })
        .await
        .map_err(|_| format!("{url} did not answer within {:?}", self.timeout))?
    }

    pub(crate) async fn get(&self, url: &str) -> ProbeResult {
        let started = Instant::now();
        let status = match url.parse() {
            // The timeout covers the body too: an environment that sends
            // its head and then stalls has not answered.
            Ok(uri) => match tokio::time::timeout(self.timeout, async {
                let response = self
                    .client
                    .get(uri)
                    .await
                    .map_err(|error| format!("{url} is unreachable: {error}"))?;
                let status = response.status().as_u16();
                // Read the body so the connection returns to the pool.
                response
                    .into_body()
                    .collect()
                    .await
                    .map(|_| status)
                    .map_err(|error| format!("body of {url} broke off: {error}"))
            })
            .await
            {
                Ok(answer) => answer,
                Err(_) => Err(format!("{url} did not answer within {:?}", self.timeout)),
            },
            Err(error) => Err(format!("{url} is not a URL: {error}")),
        };
        ProbeResult {
            status,
            latency: started.elapsed(),
        }
    }
}

//! Forwarding one request, and the accept loop.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::TrafficRouter;
use super::split::InFlightGuard;
use super::stats::Outcome;
use super::upstream::{UpstreamBody, UpstreamPool};

/// An upstream's body streamed through, or the router's own answer: no
/// allocation per response for boxing.
pub(crate) type ProxyBody = Either<UpstreamBody, Full<Bytes>>;

/// Headers that describe one connection, not the message (RFC 9110
/// section 7.6.1): a proxy must not forward them.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Removes the hop-by-hop headers, including those the `Connection`
/// header names. Most messages carry none: one pass over the names finds
/// out, instead of a hash lookup per hop-by-hop header.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let any = headers
        .keys()
        .any(|name| *name == header::UPGRADE || HOP_BY_HOP.contains(name));
    if !any {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client's address as an `X-Forwarded-For` value, built once per
/// connection rather than formatted for every request on it.
fn client_ip_header(client: SocketAddr) -> HeaderValue {
    HeaderValue::from_maybe_shared(Bytes::from(client.ip().to_string()))
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

fn plain(status: StatusCode, message: String) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(message))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

impl TrafficRouter {
    /// Sends one request to the upstream its split assigns and returns the
    /// answer, or 502/503/504 with a body saying what went wrong.
    pub(crate) async fn forward(
        &self,
        upstreams: &Arc<UpstreamPool>,
        mut request: Request<Incoming>,
        client_ip: &HeaderValue,
    ) -> Response<ProxyBody> {
        let inner = &*self.inner;
        let upstream = {
            let table = inner.table.load();
            match table.pick(&inner.stickiness, request.headers()) {
                Some(upstream) => upstream.clone(),
                None => {
                    return plain(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "no upstream has a share of traffic\n".to_owned(),
                    );
                }
            }
        };
        // Upstreams get the origin form (`/path?query`), also when the client
        // sent an absolute URI.
        if request.uri().scheme().is_some() {
            let path = request
                .uri()
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
            *request.uri_mut() = Uri::from(path);
        }
        let headers = request.headers_mut();
        strip_hop_by_hop(headers);
        headers.insert(header::HOST, upstream.host.clone());
        let forwarded_for = match headers.get(X_FORWARDED_FOR).map(HeaderValue::as_bytes) {
            Some(previous) => {
                let mut chain = Vec::with_capacity(previous.len() + 2 + client_ip.len());
                chain.extend_from_slice(previous);
                chain.extend_from_slice(b", ");
                chain.extend_from_slice(client_ip.as_bytes());
                HeaderValue::from_maybe_shared(Bytes::from(chain)).ok()
            }
            None => Some(client_ip.clone()),
        };
        if let Some(value) = forwarded_for {
            headers.insert(X_FORWARDED_FOR, value);
        }

        let started = Instant::now();
        // Counted until the response body is done with (or the exchange
        // failed), so a switch can drain the environment it leaves; its
        // sample is recorded once the outcome is known.
        let mut in_flight = InFlightGuard::enter(upstream, started);
        // Boxed: moving the exchange's state (about 900 bytes) into the
        // timeout and the timeout into this future's state cost more than
        // one allocation.
        let sending = Box::pin(upstreams.send(&in_flight.upstream().authority, request));
        // The deadline from the same clock reading, one read less per
        // request; a timeout too long to add is left to tokio.
        let answer = match started.checked_add(inner.upstream_timeout) {
            Some(deadline) => tokio::time::timeout_at(deadline.into(), sending),
            None => tokio::time::timeout(inner.upstream_timeout, sending),
        }
        .await;
        let finished = Instant::now();
        let latency = finished.saturating_duration_since(started);
        match answer {
            Ok(Ok(mut response)) => {
                let outcome = if response.status().is_server_error() {
                    Outcome::ServerError
                } else {
                    Outcome::Answered
                };
                in_flight.answered(finished, latency, outcome);
                strip_hop_by_hop(response.headers_mut());
                response.map(|body| Either::Left(body.tracking(in_flight, inner.body_idle_timeout)))
            }
            Ok(Err(error)) => {
                in_flight.failed(finished, latency);
                let upstream = in_flight.upstream();
                plain(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "upstream `{}` at {} {error}\n",
                        upstream.name, upstream.authority
                    ),
                )
            }
            Err(_) => {
                in_flight.failed(finished, latency);
                let upstream = in_flight.upstream();
                plain(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!(
                        "upstream `{}` at {} did not answer within {:?}\n",
                        upstream.name, upstream.authority, inner.upstream_timeout
                    ),
                )
            }
        }
    }
}

/// First and longest pause after a failed accept.
const ACCEPT_BACKOFF_MIN: std::time::Duration = std::time::Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(1);

/// Accepts connections until told to stop, then waits for the requests in
/// flight on them.
pub(crate) async fn accept_loop(
    router: TrafficRouter,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let upstreams = UpstreamPool::new(router.inner.upstream_idle_timeout);
    let mut http = http1::Builder::new();
    // Without a timer hyper ignores the header-read timeout.
    http.timer(TokioTimer::new())
        .header_read_timeout(router.inner.header_read_timeout);
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        // A slot first: beyond the cap, connections wait in the listen
        // queue instead of taking memory and a task each.
        let slot = tokio::select! {
            slot = Arc::clone(&router.inner.connections).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = stop.changed() => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let (stream, client) = match accepted {
            Ok(accepted) => {
                backoff = ACCEPT_BACKOFF_MIN;
                accepted
            }
            Err(error) => {
                // Out of file descriptors and the like: keep serving, but
                // back off, or the loop spins at full CPU and floods the
                // log while the condition lasts.
                tracing::warn!(%error, retry_in = ?backoff, "router failed to accept a connection");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => break,
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not disable Nagle's algorithm");
        }
        let client_ip = client_ip_header(client);
        let (router, upstreams) = (router.clone(), Arc::clone(&upstreams));
        let service = service_fn(move |request| {
            let (router, upstreams, client_ip) =
                (router.clone(), Arc::clone(&upstreams), client_ip.clone());
            async move { Ok::<_, Infallible>(router.forward(&upstreams, request, &client_ip).await) }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "client connection ended with an error");
            }
            drop(slot);
        });
    }
    graceful.shutdown().await;
}

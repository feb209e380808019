//! Keep-alive connections to the upstreams: one pool per event loop.
//!
//! Built on hyper's connection API rather than its pooled client: the
//! router knows every upstream by address, so a lookup is a scan of a short
//! list, with no hashing of a scheme and authority per request, no
//! connect-or-checkout race and no absolute URI to build.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::Authority;
use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Idle connections kept per upstream and event loop; more are closed.
const MAX_IDLE_PER_UPSTREAM: usize = 1024;

/// Why an upstream gave no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("cannot connect: {0}")]
    Connect(#[from] io::Error),
    #[error("{0}")]
    Http(#[from] hyper::Error),
}

type Sender = SendRequest<Incoming>;

/// A connection waiting for its next request, and since when.
struct Idle {
    since: Instant,
    sender: Sender,
}

/// Idle connections by upstream address, oldest first.
pub(crate) struct UpstreamPool {
    idle: Mutex<Vec<(Authority, Vec<Idle>)>>,
    idle_timeout: Duration,
}

impl UpstreamPool {
    /// An empty pool whose connections close after `idle_timeout` unused;
    /// a task sweeps them out as long as the pool lives.
    pub(crate) fn new(idle_timeout: Duration) -> Arc<Self> {
        let pool = Arc::new(UpstreamPool {
            idle: Mutex::new(Vec::new()),
            idle_timeout,
        });
        tokio::spawn(sweep_idle(Arc::downgrade(&pool), idle_timeout));
        pool
    }

    /// Sends `request` to the upstream at `authority` on an idle connection,
    /// or a new one. A request the upstream never received (it closed an
    /// idle connection meanwhile) is sent again on a fresh connection.
    pub(crate) async fn send(
        self: &Arc<Self>,
        authority: &Authority,
        request: Request<Incoming>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let mut request = request;
        if let Some(mut sender) = self.idle_connection(authority).await {
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(self.with_release(authority, sender, response)),
                Err(mut failed) => match failed.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(failed.into_error().into()),
                },
            }
        }
        let mut sender = connect(authority).await?;
        let response = sender.send_request(request).await?;
        Ok(self.with_release(authority, sender, response))
    }

    /// An idle connection ready for a request, dropping closed ones.
    async fn idle_connection(&self, authority: &Authority) -> Option<Sender> {
        loop {
            let mut sender = self.take_idle(authority)?;
            // A connection given back as its last response body ended may
            // take a moment to be ready: waiting is cheaper than a new one.
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    /// The most recently used idle connection: the likeliest to be open.
    fn take_idle(&self, authority: &Authority) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let (_, waiting) = idle.iter_mut().find(|(address, _)| address == authority)?;
        let newest = waiting.pop()?;
        if newest.since.elapsed() > self.idle_timeout {
            // The rest are older still.
            waiting.clear();
            return None;
        }
        Some(newest.sender)
    }

    fn give_back(&self, authority: &Authority, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let returned = Idle {
            since: Instant::now(),
            sender,
        };
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        match idle.iter_mut().find(|(address, _)| address == authority) {
            Some((_, waiting)) if waiting.len() < MAX_IDLE_PER_UPSTREAM => waiting.push(returned),
            Some(_) => {}
            None => idle.push((authority.clone(), vec![returned])),
        }
    }

    /// Closes the connections unused for longer than the idle timeout, and
    /// forgets upstreams with none left.
    fn close_expired(&self) {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        for (_, waiting) in idle.iter_mut() {
            let expired = waiting.partition_point(|idle| {
                now.saturating_duration_since(idle.since) > self.idle_timeout
            });
            waiting.drain(..expired);
        }
        idle.retain(|(_, waiting)| !waiting.is_empty());
    }

    fn with_release(
        self: &Arc<Self>,
        authority: &Authority,
        sender: Sender,
        response: Response<Incoming>,
    ) -> Response<UpstreamBody> {
        response.map(|body| UpstreamBody {
            body,
            release: Some(Release {
                pool: Arc::clone(self),
                authority: authority.clone(),
                sender,
            }),
        })
    }
}

/// Every `period`, closes the pool's expired connections; ends with the pool.
async fn sweep_idle(pool: Weak<UpstreamPool>, period: Duration) {
    // `interval` refuses a zero period.
    let mut ticks = tokio::time::interval(period.max(Duration::from_millis(1)));
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        pool.close_expired();
    }
}

async fn connect(authority: &Authority) -> Result<Sender, UpstreamError> {
    let stream = TcpStream::connect(authority.as_str()).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

/// The connection a response came on, returned to its pool once the body
/// has been read to the end (HTTP/1.1 carries one message at a time).
struct Release {
    pool: Arc<UpstreamPool>,
    authority: Authority,
    sender: Sender,
}

/// An upstream's response body, streamed through; its connection goes
/// back to the pool when the body ends, and is closed if the body is
/// dropped unfinished.
pub(crate) struct UpstreamBody {
    body: Incoming,
    release: Option<Release>,
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if let Some(release) = self.release.take()
            && self.body.is_end_stream()
        {
            release.pool.give_back(&release.authority, release.sender);
        }
    }
}

//! Keep-alive connections to the upstreams: one pool per event loop.
//!
//! Built on hyper's connection API rather than its pooled client: the
//! router knows every upstream by address, so a lookup is a scan of a short
//! list, with no hashing of a scheme and authority per request, no
//! connect-or-checkout race and no absolute URI to build.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

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

/// Idle connections by upstream address.
#[derive(Default)]
pub(crate) struct UpstreamPool {
    idle: Mutex<Vec<(Authority, Vec<Sender>)>>,
}

impl UpstreamPool {
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

    fn take_idle(&self, authority: &Authority) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.iter_mut()
            .find(|(address, _)| address == authority)
            .and_then(|(_, senders)| senders.pop())
    }

    fn give_back(&self, authority: &Authority, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        match idle.iter_mut().find(|(address, _)| address == authority) {
            Some((_, senders)) if senders.len() < MAX_IDLE_PER_UPSTREAM => senders.push(sender),
            Some(_) => {}
            None => idle.push((authority.clone(), vec![sender])),
        }
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

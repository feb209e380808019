//! Keep-alive HTTP/1.1 connections to the upstreams, one pool per event
//! loop, driven inside the request's own task.
//!
//! hyper's client runs each connection as a task of its own and passes the
//! request, the response head and every body chunk through channels between
//! it and the request's task. For a proxy on a loopback network those hops
//! cost more user time than the HTTP itself (about 3 µs of the router's
//! 5.5 µs per request, against nginx's 3.3 µs in all), so the router writes
//! the request and reads the response on the socket directly, in the task
//! that serves the client, and the response body is read by the client
//! connection as it writes it. The parsing and framing rules are in
//! [`wire`](super::wire).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::uri::Authority;
use http::{Method, Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::split::InFlightGuard;
use super::wire::{
    Chunked, Decoded, Framing, Head, Malformed, RequestBody, encode_head, keeps_alive, parse_head,
};

/// Idle connections kept per upstream and event loop; more are closed.
const MAX_IDLE_PER_UPSTREAM: usize = 1024;

/// How much is read from an upstream at a time.
const READ_SIZE: usize = 16 * 1024;

/// Why an upstream gave no answer, or no whole one; each message reads
/// after "upstream `name` at host:port".
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("is unreachable: cannot connect: {0}")]
    Connect(io::Error),
    #[error("failed: {0}")]
    Io(#[from] io::Error),
    #[error("closed the connection without answering")]
    Closed,
    #[error("ended its response early")]
    CutShort,
    #[error("sent {0}")]
    Malformed(#[from] Malformed),
    #[error("did not get the whole request body, the client's failed: {0}")]
    RequestBody(hyper::Error),
    #[error("sent nothing more of its response body for {0:?}")]
    Stalled(Duration),
}

/// A connection to an upstream and the bytes read from it but not yet used.
struct Connection {
    stream: TcpStream,
    buffer: BytesMut,
    /// The request head being written, kept to reuse its allocation.
    head: Vec<u8>,
}

/// A connection waiting for its next request, and since when.
struct Idle {
    since: Instant,
    connection: Connection,
}

/// Idle connections by upstream address, oldest first.
pub(crate) struct UpstreamPool {
    idle: Mutex<Vec<(Authority, Vec<Idle>)>>,
    idle_timeout: Duration,
}

/// An exchange that failed, and whether the upstream can have seen the
/// request (if not, it may be sent again on another connection).
struct Failed {
    error: UpstreamError,
    unanswered: bool,
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
    /// or a new one, and returns once the response head has arrived.
    ///
    /// A reused connection the upstream closed while it was idle gets no
    /// answer; a request without a body and with an idempotent method is
    /// then sent again on a fresh connection, as nginx does. Others fail:
    /// the upstream may have acted on them.
    pub(crate) async fn send(
        self: &Arc<Self>,
        authority: &Authority,
        request: Request<Incoming>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let (parts, body) = request.into_parts();
        let framing = if body.is_end_stream() {
            RequestBody::None
        } else {
            match body.size_hint().exact() {
                Some(length) => RequestBody::Length(length),
                None => RequestBody::Chunked,
            }
        };
        let replayable = framing == RequestBody::None && parts.method.is_idempotent();
        let mut body = Some(body);
        while let Some(mut connection) = self.take_idle(authority) {
            match connection.exchange(&parts, &mut body, framing).await {
                Ok(head) => return self.respond(authority, connection, &parts.method, head),
                Err(failed) if failed.unanswered && replayable => continue,
                Err(failed) => return Err(failed.error),
            }
        }
        // Boxed, as the body writer is: every request's future is built and
        // moved in full, and these rarely taken paths would double its size.
        Box::pin(self.send_on_new_connection(authority, &parts, body, framing)).await
    }

    async fn send_on_new_connection(
        self: &Arc<Self>,
        authority: &Authority,
        parts: &Parts,
        mut body: Option<Incoming>,
        framing: RequestBody,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let mut connection = Connection::open(authority).await?;
        let head = connection
            .exchange(parts, &mut body, framing)
            .await
            .map_err(|failed| failed.error)?;
        self.respond(authority, connection, &parts.method, head)
    }

    fn respond(
        self: &Arc<Self>,
        authority: &Authority,
        connection: Connection,
        method: &Method,
        head: Head,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let framing = Framing::of(method, &head)?;
        let reusable = keeps_alive(&head, framing);
        let state = match framing {
            Framing::Empty => State::Done,
            Framing::Length(length) => State::Length(length),
            Framing::Chunked => State::Chunked(Chunked::Size),
            Framing::UntilClose => State::UntilClose,
        };
        let mut response = Response::new(UpstreamBody {
            state,
            connection: Some(connection),
            release: reusable.then(|| Release {
                pool: Arc::clone(self),
                authority: authority.clone(),
            }),
            in_flight: None,
            idle_timeout: None,
            stall: None,
        });
        *response.status_mut() = head.status;
        *response.headers_mut() = head.headers;
        Ok(response)
    }

    /// The most recently used idle connection that still looks open.
    fn take_idle(&self, authority: &Authority) -> Option<Connection> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let (_, waiting) = idle.iter_mut().find(|(address, _)| address == authority)?;
        while let Some(newest) = waiting.pop() {
            if newest.since.elapsed() > self.idle_timeout {
                // The rest are older still.
                waiting.clear();
                return None;
            }
            if newest.connection.looks_open() {
                return Some(newest.connection);
            }
        }
        None
    }

    fn give_back(&self, authority: &Authority, connection: Connection) {
        let returned = Idle {
            since: Instant::now(),
            connection,
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

impl Connection {
    async fn open(authority: &Authority) -> Result<Connection, UpstreamError> {
        let stream = TcpStream::connect(authority.as_str())
            .await
            .map_err(UpstreamError::Connect)?;
        stream.set_nodelay(true).map_err(UpstreamError::Connect)?;
        Ok(Connection {
            stream,
            buffer: BytesMut::new(),
            head: Vec::new(),
        })
    }

    /// Whether an idle connection has neither been closed by the upstream
    /// nor received anything unasked, as far as the event loop has seen:
    /// no system call when nothing has arrived, the usual case.
    fn looks_open(&self) -> bool {
        let mut probe = Context::from_waker(Waker::noop());
        match self.stream.poll_read_ready(&mut probe) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            // Readable while idle: closed (EOF), reset, or unasked bytes.
            Poll::Ready(Ok(())) => matches!(
                self.stream.try_read(&mut [0; 1]),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock
            ),
        }
    }

    /// Writes the request and reads the response head.
    async fn exchange(
        &mut self,
        request: &Parts,
        body: &mut Option<Incoming>,
        framing: RequestBody,
    ) -> Result<Head, Failed> {
        self.head.clear();
        encode_head(request, framing, &mut self.head);
        self.stream
            .write_all(&self.head)
            .await
            .map_err(|error| Failed {
                error: error.into(),
                unanswered: true,
            })?;
        if framing != RequestBody::None
            && let Some(body) = body.take()
        {
            Box::pin(self.write_body(body, framing))
                .await
                .map_err(|error| Failed {
                    error,
                    unanswered: false,
                })?;
        }
        loop {
            match parse_head(&mut self.buffer) {
                // Interim responses (100 Continue, 103 Early Hints) are
                // not forwarded: the client gets the final one.
                Ok(Some(head)) if head.status.is_informational() && head.status != 101 => continue,
                Ok(Some(head)) => return Ok(head),
                Ok(None) => {}
                Err(malformed) => {
                    return Err(Failed {
                        error: malformed.into(),
                        unanswered: false,
                    });
                }
            }
            // Nothing of a response yet: a connection the upstream closed
            // while idle ends (or is reset) here.
            let nothing_yet = self.buffer.is_empty();
            self.buffer.reserve(READ_SIZE);
            let read = tokio::io::AsyncReadExt::read_buf(&mut self.stream, &mut self.buffer).await;
            let error = match read {
                Ok(0) if nothing_yet => UpstreamError::Closed,
                Ok(0) => Malformed::Head("cut short").into(),
                Ok(_) => continue,
                Err(error) => error.into(),
            };
            return Err(Failed {
                error,
                unanswered: nothing_yet,
            });
        }
    }

    async fn write_body(
        &mut self,
        mut body: Incoming,
        framing: RequestBody,
    ) -> Result<(), UpstreamError> {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(UpstreamError::RequestBody)?;
            let Ok(data) = frame.into_data() else {
                // Trailers are not forwarded.
                continue;
            };
            if data.is_empty() {
                continue;
            }
            if framing == RequestBody::Chunked {
                let size = format!("{:x}\r\n", data.len());
                self.stream.write_all(size.as_bytes()).await?;
                self.stream.write_all(&data).await?;
                self.stream.write_all(b"\r\n").await?;
            } else {
                self.stream.write_all(&data).await?;
            }
        }
        if framing == RequestBody::Chunked {
            self.stream.write_all(b"0\r\n\r\n").await?;
        }
        Ok(())
    }

    /// Reads more of the response into the buffer: the number of bytes,
    /// 0 at end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.buffer.reserve(READ_SIZE);
        loop {
            match self.stream.try_read_buf(&mut self.buffer) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.stream.poll_read_ready(cx))?;
                }
                read => return Poll::Ready(read),
            }
        }
    }
}

/// Where reading a response body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
    Done,
}

/// The pool a finished response's connection goes back to.
struct Release {
    pool: Arc<UpstreamPool>,
    authority: Authority,
}

/// An upstream's response body, read from its connection as the client
/// connection writes it out. The connection goes back to its pool when
/// the body has been read to its end, and is closed if the body is
/// dropped unfinished.
pub(crate) struct UpstreamBody {
    state: State,
    connection: Option<Connection>,
    release: Option<Release>,
    /// The request's place among those in flight, given back with the body.
    in_flight: Option<InFlightGuard>,
    /// Longest wait for the next bytes of the body.
    idle_timeout: Option<Duration>,
    /// The running wait, made the first time the body waits for bytes and
    /// reset whenever some arrive (a body already read with its head never
    /// makes one).
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl UpstreamBody {
    /// Counts the request in flight until this body is dropped, and ends
    /// the body with an error when the upstream sends nothing for
    /// `idle_timeout`.
    pub(crate) fn tracking(mut self, guard: InFlightGuard, idle_timeout: Duration) -> Self {
        self.in_flight = Some(guard);
        self.idle_timeout = Some(idle_timeout);
        self
    }

    /// Polls for more bytes, within the idle timeout.
    fn poll_more(
        connection: &mut Connection,
        stall: &mut Option<Pin<Box<tokio::time::Sleep>>>,
        idle_timeout: Option<Duration>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<usize, UpstreamError>> {
        match connection.poll_fill(cx) {
            Poll::Ready(filled) => {
                if let (Some(sleep), Some(timeout)) = (stall.as_mut(), idle_timeout) {
                    sleep.as_mut().reset(tokio::time::Instant::now() + timeout);
                }
                Poll::Ready(filled.map_err(UpstreamError::from))
            }
            Poll::Pending => {
                let Some(timeout) = idle_timeout else {
                    return Poll::Pending;
                };
                let sleep = stall.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(UpstreamError::Stalled(timeout))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn next_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, UpstreamError>>> {
        let Some(connection) = self.connection.as_mut() else {
            return Poll::Ready(None);
        };
        loop {
            match &mut self.state {
                State::Done | State::Length(0) => {
                    self.state = State::Done;
                    return Poll::Ready(None);
                }
                State::Length(left) => {
                    if !connection.buffer.is_empty() {
                        let take = usize::try_from(*left)
                            .unwrap_or(usize::MAX)
                            .min(connection.buffer.len());
                        *left -= take as u64;
                        return Poll::Ready(Some(Ok(connection.buffer.split_to(take).freeze())));
                    }
                }
                State::Chunked(decoder) => match decoder.decode(&mut connection.buffer)? {
                    Decoded::Data(data) => return Poll::Ready(Some(Ok(data))),
                    Decoded::End => {
                        self.state = State::Done;
                        return Poll::Ready(None);
                    }
                    Decoded::NeedMore => {}
                },
                State::UntilClose => {
                    if !connection.buffer.is_empty() {
                        return Poll::Ready(Some(Ok(connection.buffer.split().freeze())));
                    }
                }
            }
            if ready!(Self::poll_more(
                connection,
                &mut self.stall,
                self.idle_timeout,
                cx
            ))? == 0
            {
                if self.state == State::UntilClose {
                    self.state = State::Done;
                    return Poll::Ready(None);
                }
                return Poll::Ready(Some(Err(UpstreamError::CutShort)));
            }
        }
    }

    fn finished(&self) -> bool {
        matches!(
            self.state,
            State::Done | State::Length(0) | State::Chunked(Chunked::Done)
        )
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = UpstreamError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpstreamError>>> {
        let this = self.get_mut();
        let frame = ready!(this.next_frame(cx));
        if let Some(Err(_)) = &frame {
            // A connection in an unknown state is never reused.
            this.release = None;
        }
        Poll::Ready(frame.map(|data| data.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.finished()
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(left) => SizeHint::with_exact(left),
            State::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        let finished = self.finished();
        if let Some(guard) = self.in_flight.as_mut() {
            guard.body_ended(finished);
        }
        if !finished {
            return;
        }
        if let (Some(release), Some(connection)) = (self.release.take(), self.connection.take())
            // Bytes beyond the response mean the upstream is out of step.
            && connection.buffer.is_empty()
        {
            release.pool.give_back(&release.authority, connection);
        }
    }
}

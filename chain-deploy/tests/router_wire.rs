//! The router's HTTP/1.1 to its upstreams: request bodies, every response
//! framing, interim responses and malformed answers, against upstreams on
//! 127.0.0.1 (axum, and raw TCP scripts for what axum never sends).

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::HeaderMap;
use bytes::Bytes;
use chain_deploy::router::{RouterConfig, RouterServer, TrafficRouter};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use support::{client, get};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn router_to(upstream: SocketAddr) -> (String, RouterServer) {
    let router =
        TrafficRouter::new(RouterConfig::new().upstream("app", format!("http://{upstream}")))
            .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = router.serve(listener);
    (format!("http://{}", server.local_addr().unwrap()), server)
}

/// An axum upstream answering with the body it received and how it was
/// framed.
async fn echo_upstream() -> SocketAddr {
    async fn echo(headers: HeaderMap, body: Bytes) -> axum::Json<Value> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        axum::Json(json!({
            "body": String::from_utf8_lossy(&body),
            "content-length": header("content-length"),
            "transfer-encoding": header("transfer-encoding"),
        }))
    }
    let app = axum::Router::new().fallback(echo);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

/// What a raw upstream does with a request.
#[derive(Clone, Copy)]
enum Reply {
    Answer(&'static [u8]),
    AnswerAndClose(&'static [u8]),
    CloseUnanswered,
}

/// A raw TCP upstream: for the `n`th request head read on a connection
/// (requests here carry no body) it does `reply(n)`. Counts the
/// connections it accepts.
async fn raw_upstream(
    reply: impl Fn(usize) -> Reply + Copy + Send + 'static,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let (mut received, mut buffer, mut served) = (Vec::new(), [0u8; 4096], 0);
                loop {
                    let read = stream.read(&mut buffer).await.unwrap_or(0);
                    if read == 0 {
                        return;
                    }
                    received.extend_from_slice(&buffer[..read]);
                    while let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                        received.drain(..end + 4);
                        let (response, close) = match reply(served) {
                            Reply::Answer(response) => (response, false),
                            Reply::AnswerAndClose(response) => (response, true),
                            Reply::CloseUnanswered => return,
                        };
                        served += 1;
                        if stream.write_all(response).await.is_err() || close {
                            return;
                        }
                    }
                }
            });
        }
    });
    (address, accepted)
}

/// An upstream writing `response` for every request, closing the
/// connection afterwards when `close` is set.
async fn scripted_upstream(response: &'static [u8], close: bool) -> (SocketAddr, Arc<AtomicUsize>) {
    raw_upstream(move |_| {
        if close {
            Reply::AnswerAndClose(response)
        } else {
            Reply::Answer(response)
        }
    })
    .await
}

#[tokio::test]
async fn a_request_body_with_a_length_reaches_the_upstream_whole() {
    let (url, _server) = router_to(echo_upstream().await).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let order = r#"{"order_id":"ORD-7","items":[1,2,3]}"#;
    let request = http::Request::post(format!("{url}/orders"))
        .body(Full::new(Bytes::from(order)))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let echoed: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(echoed["body"], order);
    assert_eq!(echoed["content-length"], order.len().to_string());
    assert_eq!(echoed["transfer-encoding"], Value::Null);
}

#[tokio::test]
async fn a_streamed_request_body_is_forwarded_chunked() {
    let (url, _server) = router_to(echo_upstream().await).await;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let parts = ["first part, ", "second part, ", "last part"];
    let stream = futures_util::stream::iter(
        parts.map(|part| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(part)))),
    );
    let request = http::Request::post(format!("{url}/upload"))
        .body(StreamBody::new(stream))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let echoed: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(echoed["body"], parts.concat());
    assert_eq!(echoed["transfer-encoding"], "chunked");
    assert_eq!(echoed["content-length"], Value::Null);
}

#[tokio::test]
async fn a_chunked_response_is_decoded_and_its_connection_reused() {
    let (upstream, accepted) = scripted_upstream(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nx-checksum: 1\r\n\r\n",
        false,
    )
    .await;
    let (url, _server) = router_to(upstream).await;
    let client = client();
    for _ in 0..3 {
        let (status, body) = get(&client, &url, &[]).await;
        assert_eq!((status, &body[..]), (200, &b"hello world"[..]));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_response_delimited_by_closing_is_read_to_the_end_and_not_reused() {
    let (upstream, accepted) =
        scripted_upstream(b"HTTP/1.1 200 OK\r\n\r\nthe whole body, until close", true).await;
    let (url, _server) = router_to(upstream).await;
    let client = client();
    for _ in 0..2 {
        let (status, body) = get(&client, &url, &[]).await;
        assert_eq!(
            (status, &body[..]),
            (200, &b"the whole body, until close"[..])
        );
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn interim_responses_are_skipped_for_the_final_one() {
    let (upstream, _) = scripted_upstream(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 4\r\n\r\ndone",
        false,
    )
    .await;
    let (url, _server) = router_to(upstream).await;
    let (status, body) = get(&client(), &url, &[]).await;
    assert_eq!((status, &body[..]), (201, &b"done"[..]));
}

#[tokio::test]
async fn a_head_request_gets_the_length_and_no_body() {
    let (upstream, accepted) =
        scripted_upstream(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", false).await;
    let (url, _server) = router_to(upstream).await;
    let client = client();
    for _ in 0..2 {
        let request = http::Request::head(&url)
            .body(http_body_util::Empty::new())
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-length"], "5");
        assert!(
            response
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .is_empty()
        );
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "the connection is reused"
    );
}

#[tokio::test]
async fn ambiguous_or_malformed_responses_are_refused_with_502() {
    let cases: [(&'static [u8], &str); 3] = [
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n0\r\n\r\n",
            "sent both Transfer-Encoding and Content-Length",
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 3, 4\r\n\r\nabcd",
            "sent an invalid Content-Length",
        ),
        (
            b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
            "sent an unparsable response head",
        ),
    ];
    for (response, expected) in cases {
        let (upstream, _) = scripted_upstream(response, false).await;
        let (url, _server) = router_to(upstream).await;
        let (status, body) = get(&client(), &url, &[]).await;
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, 502, "{body}");
        assert!(body.contains(expected), "expected `{expected}` in: {body}");
    }
}

#[tokio::test]
async fn a_body_cut_short_fails_the_client_response_and_the_connection_is_dropped() {
    let (upstream, accepted) =
        scripted_upstream(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc", true).await;
    let (url, _server) = router_to(upstream).await;
    for attempt in 1..=2 {
        // A client of its own each time: the router closes the client's
        // connection when the upstream's body fails.
        let client = client();
        let request = http::Request::get(&url)
            .body(http_body_util::Empty::new())
            .unwrap();
        // The router may fail the response before or after its head left.
        let complete = match client.request(request).await {
            Ok(response) => response.into_body().collect().await.is_ok(),
            Err(_) => false,
        };
        assert!(
            !complete,
            "attempt {attempt}: a truncated body must not look complete"
        );
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "a cut connection is not reused"
    );
}

/// An upstream that answers the first request on each connection and
/// closes the connection, unanswered, on the second: the race in which an
/// upstream's keep-alive timeout fires just as the router reuses the
/// connection.
async fn one_answer_per_connection() -> (SocketAddr, Arc<AtomicUsize>) {
    raw_upstream(|served| match served {
        0 => Reply::Answer(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"),
        _ => Reply::CloseUnanswered,
    })
    .await
}

#[tokio::test]
async fn a_request_lost_to_a_closing_connection_is_sent_again_only_when_safe() {
    let (upstream, accepted) = one_answer_per_connection().await;
    let (url, _server) = router_to(upstream).await;
    let client = client();
    let (status, _) = get(&client, &url, &[]).await;
    assert_eq!(status, 200);

    // A GET is idempotent: the router sends it again on a new connection.
    let (status, body) = get(&client, &url, &[]).await;
    assert_eq!((status, &body[..]), (200, &b"ok"[..]));
    assert_eq!(accepted.load(Ordering::SeqCst), 2);

    // A POST may have been acted on: it fails rather than running twice.
    let request = http::Request::post(&url)
        .body(http_body_util::Empty::new())
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 502);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains("closed the connection without answering"),
        "{body}"
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "the POST was not sent again"
    );
}

//! The router under slow and stalled clients and upstreams: a client that
//! never finishes its request head is cut off, connections are capped,
//! and an upstream that stalls mid-body cannot hold a client for ever.
//! All traffic is on 127.0.0.1, bounded in count and time.

mod support;

use std::time::Duration;

use chain_deploy::router::{RouterConfig, RouterServer, TrafficRouter};
use support::{Behaviour, client, get, upstream, version_of};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn serve(config: RouterConfig) -> (RouterServer, String, std::net::SocketAddr) {
    let (_, server, address) = serve_router(config).await;
    (server, format!("http://{address}"), address)
}

/// A router serving on a free loopback port, and the router itself (for
/// its statistics).
async fn serve_router(config: RouterConfig) -> (TrafficRouter, RouterServer, std::net::SocketAddr) {
    let router = TrafficRouter::new(config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = router.serve(listener);
    let address = server.local_addr().unwrap();
    (router, server, address)
}

/// A connection that has sent one whole GET request.
async fn sent_get(address: std::net::SocketAddr) -> TcpStream {
    let mut connection = TcpStream::connect(address).await.unwrap();
    connection
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    connection
}

/// Opens `count` connections that send half a request head and stop.
async fn stalled(address: std::net::SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut connections = Vec::with_capacity(count);
    for _ in 0..count {
        let mut connection = TcpStream::connect(address).await.unwrap();
        connection
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        connections.push(connection);
    }
    connections
}

/// Waits until the router closes `connection` (a read returns end of file
/// or an error), at most `within`.
async fn closed_within(connection: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0_u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match connection.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // a 408 answer, then the close
            }
        }
    })
    .await
    .is_ok()
}

/// A thousand clients that never finish their request heads: a normal
/// client is served meanwhile, and each stalled one is cut off once the
/// header-read timeout passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_stalled_clients_are_cut_off_and_others_are_served() {
    let up = upstream(Behaviour::version("v1")).await;
    let (_server, url, address) = serve(
        RouterConfig::new()
            .upstream("stable", format!("http://{up}"))
            .header_read_timeout(Duration::from_millis(500)),
    )
    .await;
    let mut stalled = stalled(address, 1_000).await;

    let (status, body) = get(&client(), &format!("{url}/"), &[]).await;
    assert_eq!((status, version_of(&body).as_str()), (200, "v1"));

    for connection in &mut stalled {
        assert!(
            closed_within(connection, Duration::from_secs(10)).await,
            "a stalled connection was kept open"
        );
    }
}

/// Beyond `max_connections`, connections wait in the listen queue: they
/// are served once earlier ones end, not refused and not run at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_for_a_free_one() {
    let up = upstream(Behaviour::version("v1")).await;
    let (_server, url, address) = serve(
        RouterConfig::new()
            .upstream("stable", format!("http://{up}"))
            .max_connections(8)
            .header_read_timeout(Duration::from_secs(1)),
    )
    .await;
    let started = tokio::time::Instant::now();
    let stalled = stalled(address, 8).await;
    // The ninth connection is not taken until a stalled one is cut off.
    let (status, _) = get(&client(), &format!("{url}/"), &[]).await;
    assert_eq!(status, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "served after {:?}, while 8 connections held every slot",
        started.elapsed()
    );
    drop(stalled);
}

/// An upstream that sends its head and part of its body, then stalls: the
/// client's response ends (broken off) once the body deadline passes, and
/// the router counts it as an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_stalling_mid_body_cannot_hold_a_client() {
    let stalling_address =
        support::raw_upstream(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nfirst part").await;
    let (router, _server, address) = serve_router(
        RouterConfig::new()
            .upstream("stable", format!("http://{stalling_address}"))
            .body_idle_timeout(Duration::from_millis(300)),
    )
    .await;
    let mut connection = sent_get(address).await;
    assert!(
        closed_within(&mut connection, Duration::from_secs(10)).await,
        "the client was held by a stalled upstream body"
    );
    let stats = router.stats("stable", Duration::from_secs(60)).unwrap();
    assert_eq!(stats.requests, 1);
    assert_eq!(
        stats.errors(),
        1,
        "a body broken off is an error: {stats:?}"
    );
}

/// Waits, at most ten seconds, until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !done() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} did not happen within 10 s"));
}

/// A client that goes away while the upstream works on its request: the
/// request is counted, and as an error, not left out of the statistics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_abandoned_by_its_client_counts_as_an_error() {
    let behaviour = Behaviour::version("v1").delayed(Duration::from_millis(300));
    let served = std::sync::Arc::clone(&behaviour.served);
    let slow = upstream(behaviour).await;
    let (router, _server, address) =
        serve_router(RouterConfig::new().upstream("stable", format!("http://{slow}"))).await;
    let connection = sent_get(address).await;
    until("the request reaching the upstream", || {
        served.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    // Gone before the answer.
    drop(connection);
    until("the abandoned request being counted", || {
        router
            .stats("stable", Duration::from_secs(60))
            .unwrap()
            .requests
            == 1
    })
    .await;
    let stats = router.stats("stable", Duration::from_secs(60)).unwrap();
    assert_eq!(stats.errors(), 1, "{stats:?}");
}

/// Hop-by-hop headers of a response (those `Connection` names included)
/// stop at the router, as those of requests do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_of_responses_are_stripped() {
    let raw_address = support::raw_upstream(
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: x-private, keep-alive\r\n\
                          x-private: secret\r\nkeep-alive: timeout=5\r\nproxy-authenticate: Basic\r\n\
                          x-public: kept\r\n\r\nok",
    )
    .await;
    let (_server, url, _) =
        serve(RouterConfig::new().upstream("stable", format!("http://{raw_address}"))).await;
    let response = client()
        .get(format!("{url}/").parse().unwrap())
        .await
        .unwrap();
    let headers = response.headers();
    assert_eq!(headers.get("x-public").unwrap(), "kept");
    for hop in ["x-private", "keep-alive", "proxy-authenticate"] {
        assert!(headers.get(hop).is_none(), "{hop} reached the client");
    }
    assert!(
        headers
            .get("connection")
            .is_none_or(|value| !value.to_str().unwrap().contains("x-private")),
        "{headers:?}"
    );
}

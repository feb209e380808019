//! The traffic router against real upstreams on 127.0.0.1.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chain_deploy::DeployError;
use chain_deploy::router::{RouterConfig, RouterServer, Stickiness, TrafficRouter};
use serde_json::Value;
use support::{Behaviour, client, get, upstream, version_of};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

/// The router serving on a free port; it stops when the returned server
/// handle is dropped.
async fn router_over(config: RouterConfig) -> (TrafficRouter, String, RouterServer) {
    let router = TrafficRouter::new(config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = router.serve(listener);
    let url = format!("http://{}", server.local_addr().unwrap());
    (router, url, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_split_follows_the_weights_and_changes_atomically() {
    let blue = upstream(Behaviour::version("blue")).await;
    let green = upstream(Behaviour::version("green")).await;
    let (router, url, _server) = router_over(
        RouterConfig::new()
            .upstream("blue", format!("http://{blue}"))
            .upstream("green", format!("http://{green}")),
    )
    .await;
    let client = client();
    for _ in 0..20 {
        assert_eq!(version_of(&get(&client, &url, &[]).await.1), "blue");
    }
    router
        .set_split(&[("blue", 70.0), ("green", 30.0)])
        .unwrap();
    let mut green_count = 0;
    for _ in 0..2_000 {
        if version_of(&get(&client, &url, &[]).await.1) == "green" {
            green_count += 1;
        }
    }
    assert!(
        (500..700).contains(&green_count),
        "{green_count} of 2000 on green at 30%"
    );
    router.route_all_to("green").unwrap();
    assert_eq!(
        router.split(),
        [("blue".to_owned(), 0.0), ("green".to_owned(), 100.0)]
    );
    for _ in 0..20 {
        assert_eq!(version_of(&get(&client, &url, &[]).await.1), "green");
    }
    let stats = router.stats("green", Duration::from_secs(60)).unwrap();
    assert_eq!(stats.requests, green_count + 20);
    assert_eq!(stats.error_rate, 0.0);
    assert!(stats.p50_latency_ms > 0.0 && stats.p50_latency_ms <= stats.p99_latency_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_mode_keeps_a_user_on_one_version() {
    let stable = upstream(Behaviour::version("stable")).await;
    let canary = upstream(Behaviour::version("canary")).await;
    let (router, url, _server) = router_over(
        RouterConfig::new()
            .upstream("stable", format!("http://{stable}"))
            .upstream("canary", format!("http://{canary}"))
            .stickiness(Stickiness::Cookie("user".to_owned())),
    )
    .await;
    router
        .set_split(&[("stable", 50.0), ("canary", 50.0)])
        .unwrap();
    let client = client();
    let mut versions_seen = std::collections::HashSet::new();
    for user in 0..40 {
        let cookie = format!("theme=dark; user=u{user}");
        let first = version_of(&get(&client, &url, &[("cookie", &cookie)]).await.1);
        for _ in 0..10 {
            let again = version_of(&get(&client, &url, &[("cookie", &cookie)]).await.1);
            assert_eq!(again, first, "user u{user} changed version");
        }
        versions_seen.insert(first);
    }
    assert_eq!(versions_seen.len(), 2, "users spread over both versions");

    // A growing canary only moves users to it, never back.
    let on_canary_before: Vec<bool> = {
        let mut on = Vec::new();
        for user in 0..40 {
            let cookie = format!("user=u{user}");
            on.push(version_of(&get(&client, &url, &[("cookie", &cookie)]).await.1) == "canary");
        }
        on
    };
    router
        .set_split(&[("stable", 20.0), ("canary", 80.0)])
        .unwrap();
    for (user, was_on_canary) in on_canary_before.iter().enumerate() {
        let cookie = format!("user=u{user}");
        let now = version_of(&get(&client, &url, &[("cookie", &cookie)]).await.1);
        if *was_on_canary {
            assert_eq!(now, "canary", "user u{user} left the canary as it grew");
        }
    }
}

#[tokio::test]
async fn an_upstream_that_is_down_gives_502_with_a_clear_body() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (router, url, _server) =
        router_over(RouterConfig::new().upstream("gone", format!("http://{closed}"))).await;
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), get(&client(), &url, &[]))
        .await
        .expect("no hang");
    assert_eq!(status, 502);
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains(&format!("upstream `gone` at {closed} is unreachable")),
        "{body}"
    );
    assert_eq!(
        router
            .stats("gone", Duration::from_secs(60))
            .unwrap()
            .connection_errors,
        1
    );
}

#[tokio::test]
async fn a_slow_upstream_gives_504_after_the_timeout() {
    let slow = upstream(Behaviour::version("slow").delayed(Duration::from_secs(5))).await;
    let (_router, url, _server) = router_over(
        RouterConfig::new()
            .upstream("slow", format!("http://{slow}"))
            .upstream_timeout(Duration::from_millis(100)),
    )
    .await;
    let (status, body) = get(&client(), &url, &[]).await;
    assert_eq!(status, 504);
    assert!(String::from_utf8_lossy(&body).contains("did not answer within 100ms"));
}

#[tokio::test]
async fn hop_by_hop_headers_stop_at_the_router() {
    let echo = upstream(Behaviour::version("echo")).await;
    let (_router, url, _server) =
        router_over(RouterConfig::new().upstream("echo", format!("http://{echo}"))).await;
    let (status, body) = get(
        &client(),
        &format!("{url}/orders?id=7"),
        &[
            ("connection", "keep-alive, x-session-secret"),
            ("x-session-secret", "s3cr3t"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("x-request-id", "req-1"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let received: Value = serde_json::from_slice(&body).unwrap();
    let headers = &received["headers"];
    for hop in ["x-session-secret", "keep-alive", "te"] {
        assert!(headers.get(hop).is_none(), "{hop} was forwarded: {headers}");
    }
    assert_eq!(headers["x-request-id"], "req-1");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["host"], echo.to_string());
}

#[tokio::test]
async fn server_errors_are_counted_per_upstream() {
    let flaky = upstream(Behaviour::version("flaky").failing_every(4)).await;
    let (router, url, _server) =
        router_over(RouterConfig::new().upstream("flaky", format!("http://{flaky}"))).await;
    let client = client();
    for _ in 0..40 {
        get(&client, &url, &[]).await;
    }
    let stats = router.stats("flaky", Duration::from_secs(60)).unwrap();
    assert_eq!((stats.requests, stats.server_errors), (40, 10));
    assert!((stats.error_rate - 0.25).abs() < 1e-9);
}

#[test]
fn bad_configuration_is_refused_with_reasons() {
    let error = TrafficRouter::new(RouterConfig::new().upstream("a", "ftp://x:1")).unwrap_err();
    assert!(error.to_string().contains("only http://"), "{error}");
    let error = TrafficRouter::new(RouterConfig::new().upstream("a", "http://x")).unwrap_err();
    assert!(error.to_string().contains("no port"), "{error}");
    let duplicate = RouterConfig::new()
        .upstream("a", "http://x:1")
        .upstream("a", "http://y:1");
    assert!(matches!(
        TrafficRouter::new(duplicate),
        Err(DeployError::DuplicateUpstream { .. })
    ));
    let router = TrafficRouter::new(
        RouterConfig::new()
            .upstream("a", "http://x:1")
            .upstream("b", "http://y:1"),
    )
    .unwrap();
    assert!(matches!(
        router.set_split(&[("a", 60.0), ("b", 30.0)]),
        Err(DeployError::InvalidSplit { .. })
    ));
    assert!(matches!(
        router.set_split(&[("c", 100.0)]),
        Err(DeployError::UnknownUpstream { .. })
    ));
    assert!(router.set_target("b", "not a url").is_err());
    assert_eq!(router.share_of("a").unwrap(), 100.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_loop_per_thread_serves_the_same_split_and_stops() {
    let blue = upstream(Behaviour::version("blue")).await;
    let green = upstream(Behaviour::version("green")).await;
    let router = TrafficRouter::new(
        RouterConfig::new()
            .upstream("blue", format!("http://{blue}"))
            .upstream("green", format!("http://{green}")),
    )
    .unwrap();
    router
        .set_split(&[("blue", 50.0), ("green", 50.0)])
        .unwrap();
    let server = router
        .serve_on_threads("127.0.0.1:0".parse().unwrap(), 2)
        .unwrap();
    let url = format!("http://{}", server.local_addr().unwrap());
    let load = support::Load::start(&url, 8);
    load.wait_for(400).await;
    router.route_all_to("green").unwrap();
    load.wait_for(100).await;
    let seen = load.stop().await;
    assert_eq!(seen.failed, 0, "{:?}", seen.failures.first());
    assert!(seen.versions["blue"] > 0 && seen.versions["green"] > 0);
    let blue_stats = router.stats("blue", Duration::from_secs(60)).unwrap();
    let green_stats = router.stats("green", Duration::from_secs(60)).unwrap();
    assert_eq!(blue_stats.requests + green_stats.requests, seen.ok);
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("the threads stop");
}

/// An HTTP/1.1 upstream written on raw TCP, counting the connections it
/// accepts and reporting how they end.
struct CountingUpstream {
    address: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    /// Every change makes the upstream close its open connections without
    /// warning, as an upstream whose keep-alive timeout expires does.
    close_all: watch::Sender<u32>,
    /// One message per connection the upstream closed.
    closed_by_upstream: mpsc::UnboundedReceiver<()>,
    /// One message per connection the router closed.
    closed_by_router: mpsc::UnboundedReceiver<()>,
}

async fn counting_upstream() -> CountingUpstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let (close_all, close_signal) = watch::channel(0);
    let (upstream_closed, closed_by_upstream) = mpsc::unbounded_channel();
    let (router_closed, closed_by_router) = mpsc::unbounded_channel();
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            let (upstream_closed, router_closed) = (upstream_closed.clone(), router_closed.clone());
            let mut close_signal = close_signal.clone();
            close_signal.mark_unchanged();
            tokio::spawn(async move {
                let mut received = Vec::new();
                let mut buffer = [0u8; 4096];
                loop {
                    let read = tokio::select! {
                        read = stream.read(&mut buffer) => read.unwrap_or(0),
                        _ = close_signal.changed() => {
                            drop(stream);
                            let _ = upstream_closed.send(());
                            return;
                        }
                    };
                    if read == 0 {
                        let _ = router_closed.send(());
                        return;
                    }
                    received.extend_from_slice(&buffer[..read]);
                    while let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                        received.drain(..end + 4);
                        stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                            .await
                            .unwrap();
                    }
                }
            });
        }
    });
    CountingUpstream {
        address,
        accepted,
        close_all,
        closed_by_upstream,
        closed_by_router,
    }
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() {
    let upstream = counting_upstream().await;
    let (_router, url, _server) =
        router_over(RouterConfig::new().upstream("app", format!("http://{}", upstream.address)))
            .await;
    let client = client();
    for _ in 0..20 {
        let (status, body) = get(&client, &url, &[]).await;
        assert_eq!((status, &body[..]), (200, &b"ok"[..]));
    }
    assert_eq!(
        upstream.accepted.load(Ordering::SeqCst),
        1,
        "twenty requests one after the other need one upstream connection"
    );
}

#[tokio::test]
async fn a_connection_the_upstream_closed_while_idle_is_replaced_without_an_error() {
    let mut upstream = counting_upstream().await;
    let (_router, url, _server) =
        router_over(RouterConfig::new().upstream("app", format!("http://{}", upstream.address)))
            .await;
    let client = client();
    for round in 1..=5 {
        let (status, body) = get(&client, &url, &[]).await;
        assert_eq!((status, &body[..]), (200, &b"ok"[..]), "request {round}");
        upstream
            .close_all
            .send_modify(|generation| *generation += 1);
        tokio::time::timeout(Duration::from_secs(5), upstream.closed_by_upstream.recv())
            .await
            .expect("the upstream closes its idle connection");
    }
    assert_eq!(
        upstream.accepted.load(Ordering::SeqCst),
        5,
        "every request after a close needs a new connection"
    );
}

#[tokio::test]
async fn idle_upstream_connections_are_closed_after_the_idle_timeout() {
    let mut upstream = counting_upstream().await;
    let (_router, url, _server) = router_over(
        RouterConfig::new()
            .upstream("app", format!("http://{}", upstream.address))
            .upstream_idle_timeout(Duration::from_millis(100)),
    )
    .await;
    let client = client();
    let (status, _) = get(&client, &url, &[]).await;
    assert_eq!(status, 200);
    tokio::time::timeout(Duration::from_secs(5), upstream.closed_by_router.recv())
        .await
        .expect("the router closes a connection idle past its timeout");
    let (status, _) = get(&client, &url, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(upstream.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_incoming_forwarded_for_chain_is_extended() {
    let echo = upstream(Behaviour::version("echo")).await;
    let (_router, url, _server) =
        router_over(RouterConfig::new().upstream("echo", format!("http://{echo}"))).await;
    let (status, body) = get(
        &client(),
        &format!("{url}/"),
        &[("x-forwarded-for", "203.0.113.7")],
    )
    .await;
    assert_eq!(status, 200);
    let received: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        received["headers"]["x-forwarded-for"],
        "203.0.113.7, 127.0.0.1"
    );
}

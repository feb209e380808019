//! Remote nodes against real HTTP servers on 127.0.0.1.

use std::net::SocketAddr;

use axum::Json;
use axum::http::StatusCode;
use axum::routing::post;
use chain_core::{Context, ErrorKind};
use chain_scaling::balance::{LoadBalancer, Node, Strategy};
use serde_json::{Value, json};

/// A server on a free port that answers with `handler`.
async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    address
}

async fn worker(name: &'static str) -> SocketAddr {
    serve(axum::Router::new().route(
        "/run",
        post(move |Json(mut ctx): Json<Value>| async move {
            ctx["served_by"] = json!(name);
            Json(ctx)
        }),
    ))
    .await
}

#[tokio::test]
async fn contexts_travel_to_remote_nodes_in_turn() {
    let (a, b) = (worker("a").await, worker("b").await);
    let balancer = LoadBalancer::new(Strategy::RoundRobin);
    balancer
        .add_node(Node::http("a", format!("http://{a}/run")).unwrap())
        .unwrap();
    balancer
        .add_node(Node::http("b", format!("http://{b}/run")).unwrap())
        .unwrap();
    let mut served = Vec::new();
    for n in 0..4 {
        let out = balancer.call(Context::new().with("n", n)).await.unwrap();
        assert_eq!(out.get::<i64>("n").unwrap(), Some(n));
        served.push(out.require::<String>("served_by").unwrap());
    }
    assert_eq!(served, ["a", "b", "a", "b"]);
    assert!(balancer.nodes().iter().all(|node| node.in_flight() == 0));
}

#[tokio::test]
async fn failures_of_remote_nodes_are_clear_errors() {
    let broken = serve(
        axum::Router::new()
            .route("/down", post(|| async { StatusCode::SERVICE_UNAVAILABLE }))
            .route("/bad", post(|| async { StatusCode::UNPROCESSABLE_ENTITY }))
            .route("/garbage", post(|| async { "not json" }))
            .route("/list", post(|| async { Json(json!([1, 2])) })),
    )
    .await;
    let call = |path: &str| {
        let node = Node::http("n", format!("http://{broken}{path}")).unwrap();
        let balancer = LoadBalancer::new(Strategy::Random);
        balancer.add_node(node).unwrap();
        async move { balancer.call(Context::new()).await.unwrap_err() }
    };
    let down = call("/down").await;
    assert_eq!(down.kind(), ErrorKind::Unavailable);
    assert!(down.to_string().contains("answered 503"), "{down}");
    assert_eq!(call("/bad").await.kind(), ErrorKind::Validation);
    let garbage = call("/garbage").await;
    assert_eq!(garbage.kind(), ErrorKind::Internal);
    assert!(garbage.to_string().contains("not JSON"), "{garbage}");
    let list = call("/list").await;
    assert!(
        list.to_string().contains("did not answer a JSON object"),
        "{list}"
    );

    // Nothing listens on this port any more.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let balancer = LoadBalancer::new(Strategy::Random);
    balancer
        .add_node(Node::http("gone", format!("http://{closed}/run")).unwrap())
        .unwrap();
    let unreachable = balancer.call(Context::new()).await.unwrap_err();
    assert_eq!(unreachable.kind(), ErrorKind::Unavailable);
    assert!(
        unreachable.to_string().contains("could not be reached"),
        "{unreachable}"
    );
}

#[test]
fn an_invalid_url_is_refused() {
    let error = Node::http("n", "not a url").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Validation);
    assert!(error.to_string().contains("`not a url`"), "{error}");
}

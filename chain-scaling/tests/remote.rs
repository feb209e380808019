//! Remote nodes against real HTTP servers on 127.0.0.1.

use std::net::SocketAddr;

use axum::Json;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::routing::post;
use chain_core::{Context, ErrorKind, Extensions, HasExtensions, OutgoingHeaders, RequestMeta};
use chain_scaling::balance::{LoadBalancer, Node, RemoteFailure, Strategy};
use serde::{Deserialize, Serialize};
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
    assert!(
        matches!(
            down.downcast_source::<RemoteFailure>(),
            Some(RemoteFailure::Status { status: 503, .. })
        ),
        "{down:?}"
    );
    assert!(format!("{down:#}").contains("answered 503"), "{down:#}");
    assert_eq!(call("/bad").await.kind(), ErrorKind::Validation);
    for path in ["/garbage", "/list"] {
        let garbage = call(path).await;
        assert_eq!(garbage.kind(), ErrorKind::Internal);
        assert!(
            matches!(
                garbage.downcast_source::<RemoteFailure>(),
                Some(RemoteFailure::InvalidJson { .. })
            ),
            "{garbage:?}"
        );
    }

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
        matches!(
            unreachable.downcast_source::<RemoteFailure>(),
            Some(RemoteFailure::ConnectionRefused { .. })
        ),
        "{unreachable:?}"
    );
}

#[test]
fn an_invalid_url_is_refused() {
    let error = Node::<Context>::http("n", "not a url").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Validation);
    assert!(error.to_string().contains("`not a url`"), "{error}");
}

/// A typed context: JSON fields of its own, extensions that never travel.
#[derive(Serialize, Deserialize)]
struct Job {
    n: i64,
    served_by: Option<String>,
    forwarded_traceparent: Option<String>,
    saw_authorization: Option<bool>,
    #[serde(skip)]
    extensions: Extensions,
}

impl HasExtensions for Job {
    fn extensions(&self) -> &Extensions {
        &self.extensions
    }
    fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }
}

#[tokio::test]
async fn a_typed_context_goes_remote_keeping_its_extensions_and_forwarding_headers() {
    let address = serve(axum::Router::new().route(
        "/run",
        post(
            |headers: HeaderMap, Json(mut job): Json<Value>| async move {
                job["served_by"] = json!("typed");
                job["forwarded_traceparent"] = json!(
                    headers
                        .get("traceparent")
                        .and_then(|value| value.to_str().ok())
                );
                job["saw_authorization"] = json!(headers.get("authorization").is_some());
                Json(job)
            },
        ),
    ))
    .await;
    let balancer = LoadBalancer::new(Strategy::RoundRobin);
    balancer
        .add_node(Node::<Job>::http("t", format!("http://{address}/run")).unwrap())
        .unwrap();
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let mut job = Job {
        n: 7,
        served_by: None,
        forwarded_traceparent: None,
        saw_authorization: None,
        extensions: Extensions::new(),
    };
    let mut outgoing = OutgoingHeaders::new();
    outgoing.set("traceparent", traceparent);
    job.extensions.insert(outgoing);
    job.extensions
        .insert(RequestMeta::new().with_header("Authorization", "Bearer secret"));
    let out = balancer.call(job).await.unwrap();
    assert_eq!(out.n, 7);
    assert_eq!(out.served_by.as_deref(), Some("typed"));
    assert_eq!(out.forwarded_traceparent.as_deref(), Some(traceparent));
    // The request's own headers stay home; the extensions come back.
    assert_eq!(out.saw_authorization, Some(false));
    assert_eq!(
        out.extensions
            .get::<RequestMeta>()
            .and_then(RequestMeta::bearer_token),
        Some("secret")
    );
}

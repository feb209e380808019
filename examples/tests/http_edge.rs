//! A chain mounted in a real axum server, called over loopback with reqwest:
//! the JSON body becomes the context, the request's headers and peer reach
//! `auth()` through `RequestMeta`, and every error kind answers with its
//! status as an RFC 9457 problem.

use std::net::SocketAddr;
use std::time::Duration;

use modulink::axum::ChainRoute;
use modulink::resilience::RateLimiter;
use modulink::security::auth::{AuthManager, Role, auth};
use modulink::{Chain, Context, Error, RequestMeta};
use serde_json::Value;

/// What an internal failure knows and the client must never see.
const INTERNAL: &str = "postgres://orders:hunter2@10.0.0.5/orders refused";

fn orders(users: &AuthManager, per_hour: u32) -> Chain {
    Chain::named("orders")
        .around(auth(users, [Role::User]))
        .around(RateLimiter::new("orders", per_hour, Duration::from_secs(3600)).burst(per_hour))
        .link(|ctx: Context| async move {
            let quantity: u32 = ctx.require("quantity")?;
            if quantity == 0 {
                return Err(Error::validation("quantity must be positive"));
            }
            Ok(ctx)
        })
        .link(|ctx: Context| async move {
            let quantity: u32 = ctx.require("quantity")?;
            match quantity {
                13 => return Err(Error::unavailable(INTERNAL)),
                14 => {
                    return Err(Error::internal("the order table is corrupt")
                        .with_source(std::io::Error::other(INTERNAL)));
                }
                _ => {}
            }
            let peer = ctx.ext::<RequestMeta>().and_then(RequestMeta::peer);
            Ok(ctx.with("total", quantity * 5).with(
                "peer_is_loopback",
                peer.is_some_and(|p| p.ip().is_loopback()),
            ))
        })
        .link_sync(|ctx: Context| {
            if ctx.get::<bool>("panic")? == Some(true) {
                panic!("{INTERNAL}");
            }
            Ok(ctx)
        })
}

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    url
}

struct Answer {
    status: u16,
    content_type: String,
    retry_after: Option<String>,
    body: Value,
    text: String,
}

async fn post(url: &str, token: Option<&str>, body: &str) -> Answer {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    let (status, content_type, retry_after) = (
        response.status().as_u16(),
        header("content-type").unwrap_or_default(),
        header("retry-after"),
    );
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        content_type,
        retry_after,
        body,
        text,
    }
}

#[tokio::test]
async fn a_chain_served_by_axum_answers_each_error_kind_with_its_status() {
    let users = examples::test_users().await.unwrap();
    let app = axum::Router::new()
        .route_service("/orders", ChainRoute::new(orders(&users, 3)))
        .route_service(
            "/located",
            ChainRoute::new(orders(&users, 100)).show_location(true),
        );
    let base = serve(app).await;
    let url = format!("{base}/orders");
    let token = users
        .authenticate("ada", "Analytical1")
        .await
        .unwrap()
        .access_token;

    // No token: 401, and it spends nothing of the rate limit (auth is the
    // outer middleware).
    let anonymous = post(&url, None, r#"{"quantity": 2}"#).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text);
    assert_eq!(anonymous.content_type, "application/problem+json");
    assert_eq!(anonymous.body["kind"], "unauthorized");
    assert_eq!(anonymous.body["title"], "Unauthorized");
    assert_eq!(anonymous.body["type"], "about:blank");
    let forged = post(&url, Some("not.a.token"), r#"{"quantity": 2}"#).await;
    assert_eq!(forged.status, 401);

    // Success: the body became the context, the peer came from the socket,
    // and the token did not travel into the JSON.
    let ok = post(&url, Some(&token), r#"{"quantity": 3}"#).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.content_type, "application/json");
    assert_eq!(ok.body["total"], 15);
    assert_eq!(ok.body["peer_is_loopback"], true);
    assert_eq!(ok.body["authenticated_user"]["username"], "ada");
    assert!(!ok.text.contains(&token));

    // Validation: 422 with the client's mistake spelled out, no location.
    let invalid = post(&url, Some(&token), r#"{"quantity": 0}"#).await;
    assert_eq!(invalid.status, 422, "{}", invalid.text);
    assert_eq!(invalid.body["kind"], "validation");
    assert_eq!(invalid.body["status"], 422);
    assert_eq!(invalid.body["detail"], "quantity must be positive");
    assert!(invalid.body.get("chain").is_none() && invalid.body.get("link").is_none());

    // Internal failures: 5xx with a fixed sentence, nothing of the cause.
    let unavailable = post(&url, Some(&token), r#"{"quantity": 13}"#).await;
    assert_eq!(unavailable.status, 503, "{}", unavailable.text);
    assert!(
        !unavailable.text.contains("hunter2"),
        "{}",
        unavailable.text
    );
    assert!(
        !unavailable.text.contains("10.0.0.5"),
        "{}",
        unavailable.text
    );

    // Three requests passed auth; the fourth is over the limit: 429 with
    // Retry-After in whole seconds, within the hour window.
    let limited = post(&url, Some(&token), r#"{"quantity": 1}"#).await;
    assert_eq!(limited.status, 429, "{}", limited.text);
    assert_eq!(limited.body["kind"], "rejected");
    let retry_after: u64 = limited.retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");

    // An internal error on the route without a rate limit to spare: 500,
    // with neither its message nor its source.
    let located = format!("{base}/located");
    let internal = post(&located, Some(&token), r#"{"quantity": 14}"#).await;
    assert_eq!(internal.status, 500, "{}", internal.text);
    assert_eq!(internal.body["kind"], "internal");
    assert_eq!(
        internal.body["detail"],
        "the server could not complete the request"
    );
    assert!(!internal.text.contains("corrupt"), "{}", internal.text);
    assert!(!internal.text.contains("hunter2"), "{}", internal.text);

    // A panic: 500, the payload stays in the server.
    let panicked = post(&located, Some(&token), r#"{"quantity": 1, "panic": true}"#).await;
    assert_eq!(panicked.status, 500, "{}", panicked.text);
    assert_eq!(panicked.body["kind"], "panicked");
    assert!(!panicked.text.contains("hunter2"), "{}", panicked.text);
    // Locations shown where configured.
    assert_eq!(panicked.body["chain"], "orders");
    assert_eq!(panicked.body["link_index"], 2);

    // Bodies that are not a JSON object are refused before the chain runs.
    let garbage = post(&located, Some(&token), "not json").await;
    assert_eq!(garbage.status, 400, "{}", garbage.text);
    assert_eq!(garbage.content_type, "application/problem+json");
}

/// Sends `request` as raw bytes and returns the response's status code.
async fn raw_status(base: &str, request: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut head = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut head))
        .await
        .expect("the server answers")
        .unwrap();
    std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap()
}

/// A body that cannot be read (a malformed chunk) is the client's mistake,
/// 400; only a body over the limit is 413.
#[tokio::test]
async fn an_unreadable_body_is_400_and_only_an_oversized_one_413() {
    let app = axum::Router::new().route_service(
        "/echo",
        ChainRoute::new(Chain::<Context>::named("echo").link_sync(Ok)).body_limit(16),
    );
    let base = serve(app).await;
    let malformed = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n";
    assert_eq!(raw_status(&base, malformed).await, 400);
    let oversized = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n{\"a\": \"0123456789012345678901\"}\r\n0\r\n\r\n";
    assert_eq!(raw_status(&base, oversized).await, 413);
    let fine = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
    assert_eq!(raw_status(&base, fine).await, 200);
}

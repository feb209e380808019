//! A context struct of the user's own goes through the sibling crates'
//! middleware: traced (chain-observability), authenticated
//! (chain-security), rate limited per customer (chain-resilience), and
//! sent to a remote service (chain-core's `RemoteEndpoint`) that receives
//! the trace's `traceparent` without any hook.

use std::time::Duration;

use axum::Json;
use axum::http::HeaderMap;
use axum::routing::post;
use modulink::observability::{SpanStore, Tracer};
use modulink::remote::RemoteEndpoint;
use modulink::resilience::RateLimiter;
use modulink::security::auth::{AuthenticatedUser, Role, auth};
use modulink::{Chain, ErrorKind, Extensions, HasExtensions, RequestMeta};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    customer: String,
    quantity: u32,
    total: Option<u32>,
    /// What the pricing service saw in its `traceparent` header.
    priced_under: Option<String>,
    #[serde(skip)]
    extensions: Extensions,
}

impl HasExtensions for Order {
    fn extensions(&self) -> &Extensions {
        &self.extensions
    }
    fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }
}

async fn pricing_service() -> String {
    let app = axum::Router::new().route(
        "/price",
        post(
            |headers: HeaderMap, Json(mut order): Json<Value>| async move {
                order["total"] = json!(order["quantity"].as_u64().unwrap_or(0) * 5);
                order["priced_under"] = json!(
                    headers
                        .get("traceparent")
                        .and_then(|value| value.to_str().ok())
                );
                Json(order)
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/price", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test]
async fn a_user_struct_is_traced_authenticated_rate_limited_and_sent_remote() {
    let users = examples::test_users().await.unwrap();
    let token = users
        .authenticate("ada", "Analytical1")
        .await
        .unwrap()
        .access_token;

    let store = SpanStore::new(100);
    let tracer = Tracer::new().store(store.clone());
    let pricing = RemoteEndpoint::new(&pricing_service().await)
        .unwrap()
        .named("pricing");
    let chain: Chain<Order> = tracer.instrument(
        Chain::named("orders")
            .around(auth(&users, [Role::User]))
            .around(
                RateLimiter::new("per_customer", 2, Duration::from_secs(3600))
                    .burst(2)
                    .keyed_with(|order: &Order| Some(order.customer.as_str())),
            )
            .link_sync(|order: Order| {
                if order.quantity == 0 {
                    return Err(modulink::Error::validation("quantity must be positive"));
                }
                Ok(order)
            })
            .link(pricing),
    );
    let order = |customer: &str, token: Option<&str>| {
        let mut extensions = Extensions::new();
        if let Some(token) = token {
            extensions
                .insert(RequestMeta::new().with_header("Authorization", format!("Bearer {token}")));
        }
        Order {
            customer: customer.to_owned(),
            quantity: 3,
            total: None,
            priced_under: None,
            extensions,
        }
    };

    let priced = chain.execute(order("acme", Some(&token))).await.unwrap();
    assert_eq!(priced.total, Some(15));
    assert_eq!(
        priced
            .extensions
            .get::<AuthenticatedUser>()
            .unwrap()
            .username,
        "ada"
    );
    // The pricing service's span parent is the link span that called it.
    let traceparent = priced.priced_under.expect("traceparent forwarded");
    let trace_id = traceparent.split('-').nth(1).unwrap().to_owned();
    let parent_span = traceparent.split('-').nth(2).unwrap();
    let spans = store.trace(&trace_id);
    let names: Vec<&str> = spans.iter().map(|span| span.name.as_str()).collect();
    assert!(
        names.contains(&"orders") && names.contains(&"pricing"),
        "{names:?}"
    );
    let pricing_span = spans.iter().find(|span| span.name == "pricing").unwrap();
    assert_eq!(pricing_span.span_id, parent_span);

    // No token: refused before any link; not counted against the limit.
    let anonymous = chain.execute(order("acme", None)).await.unwrap_err();
    assert_eq!(anonymous.kind(), ErrorKind::Unauthorized);
    // The limit is per customer, and per request rather than per link.
    assert!(chain.execute(order("acme", Some(&token))).await.is_ok());
    let limited = chain
        .execute(order("acme", Some(&token)))
        .await
        .unwrap_err();
    assert!(limited.is_rejected(), "{limited:#}");
    assert!(chain.execute(order("globex", Some(&token))).await.is_ok());
}

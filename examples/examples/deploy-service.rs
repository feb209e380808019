//! The example service the Dockerfile and Kubernetes manifests in `deploy/`
//! run: an order-pricing chain behind HTTP, with health endpoints and a
//! graceful stop (drain, then finish in-flight requests).
//!
//! - `cargo run -p examples --example deploy-service` serves on
//!   `$BIND` (default `0.0.0.0:8080`): `POST /orders`, `GET /`,
//!   `/health`, `/health/live`, `/health/ready`, and the pricing chain's
//!   Prometheus metrics at `/metrics`. On SIGTERM readiness fails at once,
//!   requests are still served for the drain time (default 5 s) so load
//!   balancers can notice, then in-flight requests finish and it exits 0.
//! - Settings: `$CONFIG_FILE`, a JSON file such as the Kubernetes
//!   ConfigMap mounts (`{"drain_seconds": 5}`), then `$DRAIN_SECONDS` over
//!   it. When `$API_KEY` is set (a Kubernetes Secret), `POST /orders`
//!   requires it in the `X-Api-Key` header; it is never printed.
//! - `--probe URL` GETs the URL and exits 0 on a 2xx answer: the Docker
//!   HEALTHCHECK, without curl in the image.
//! - `--self-test` serves on a free loopback port, calls itself, prints
//!   what it got and exits.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::response::IntoResponse;
use axum::routing::{get, post_service};
use examples::{http_get, price_items};
use modulink::axum::ChainRoute;
use modulink::deploy::health::{CheckResult, Health, check_fn, routes};
use modulink::observability::prometheus::Registry;
use modulink::observability::{ChainMetrics, metrics_routes};
use modulink::security::secrets::Secret;
use modulink::{Chain, Context, Error};
use serde_json::{Value, json};

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn pricing() -> Chain {
    Chain::named("pricing")
        .link_sync(|ctx: Context| {
            let items: Vec<Value> = ctx.require("items")?;
            if items.is_empty() {
                return Err(Error::validation("an order needs at least one item"));
            }
            Ok(ctx)
        })
        .link_sync(|ctx: Context| {
            let items: Vec<Value> = ctx.require("items")?;
            let pricing = price_items(&items)?;
            Ok(ctx
                .with("subtotal", pricing.subtotal)
                .with("tax", pricing.tax)
                .with("total", pricing.total))
        })
}

async fn about() -> Json<Value> {
    Json(json!({
        "service": "modulink-deploy-example",
        "version": std::env::var("VERSION").unwrap_or_else(|_| "dev".to_owned()),
    }))
}

/// `POST /orders` is the pricing chain itself: the JSON body becomes the
/// context, the request's headers and peer go into `RequestMeta` (what
/// `auth()` reads), and errors answer as RFC 9457 problems with the status
/// of their kind (422 for an empty order).
fn app(health: Health) -> std::result::Result<axum::Router, Failure> {
    let registry = Registry::new();
    let metrics = ChainMetrics::new(&registry)?;
    let mut orders = axum::Router::new().route_service(
        "/orders",
        post_service(ChainRoute::new(metrics.instrument(pricing()))),
    );
    if let Ok(key) = std::env::var("API_KEY") {
        let key = Secret::new(key);
        orders = orders.layer(axum::middleware::from_fn(move |request, next| {
            require_api_key(key.clone(), request, next)
        }));
    }
    Ok(axum::Router::new()
        .route("/", get(about))
        .merge(orders)
        .merge(routes(health))
        .merge(metrics_routes(registry)))
}

/// Refuses a request without the right `X-Api-Key` (compared in constant
/// time by `Secret`).
async fn require_api_key(
    key: Secret,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let given = request
        .headers()
        .get("x-api-key")
        .and_then(|value| value.to_str().ok())
        .map(Secret::new);
    if given.as_ref() == Some(&key) {
        next.run(request).await
    } else {
        axum::http::StatusCode::UNAUTHORIZED.into_response()
    }
}

/// The drain time: the config file's `drain_seconds`, then
/// `$DRAIN_SECONDS` over it, else 5 s.
fn drain_time() -> std::result::Result<Duration, Failure> {
    let mut seconds = 5.0;
    if let Ok(path) = std::env::var("CONFIG_FILE") {
        let text = std::fs::read_to_string(&path)
            .map_err(|error| format!("cannot read CONFIG_FILE {path}: {error}"))?;
        let config: Value = serde_json::from_str(&text)
            .map_err(|error| format!("CONFIG_FILE {path} is not JSON: {error}"))?;
        if let Some(value) = config.get("drain_seconds") {
            seconds = value
                .as_f64()
                .ok_or_else(|| format!("CONFIG_FILE {path}: drain_seconds is not a number"))?;
        }
    }
    if let Ok(value) = std::env::var("DRAIN_SECONDS") {
        seconds = value
            .parse()
            .map_err(|error| format!("DRAIN_SECONDS `{value}`: {error}"))?;
    }
    Duration::try_from_secs_f64(seconds)
        .map_err(|error| format!("drain time {seconds}: {error}").into())
}

fn health() -> Health {
    // The chain itself is the dependency: it must price a known order.
    Health::new().with_check(check_fn("pricing_chain", || async {
        let probe = Context::new().with("items", json!([{"price": 1.0, "quantity": 1}]));
        match pricing().execute(probe).await {
            Ok(_) => CheckResult::pass(),
            Err(error) => CheckResult::fail(error.to_string()),
        }
    }))
}

/// Serves until SIGTERM or Ctrl-C: readiness fails first so load balancers
/// stop sending traffic, then in-flight requests finish.
async fn serve(bind: &str, drain: Duration) -> std::result::Result<(), Failure> {
    let health = health();
    let app = app(health.clone())?;
    let listener = tokio::net::TcpListener::bind(bind).await?;
    println!("listening on {}", listener.local_addr()?);
    let draining = health.clone();
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        stop_signal().await;
        draining.start_draining();
        println!("draining for {} s", drain.as_secs_f64());
        // Long enough for the readiness probe to notice.
        tokio::time::sleep(drain).await;
    })
    .await?;
    Ok(())
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn self_test() -> std::result::Result<(), Failure> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address: SocketAddr = listener.local_addr()?;
    let service = app(health())?.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await });
    for path in ["/health/live", "/health/ready", "/"] {
        let answer = http_get(&format!("http://{address}{path}")).await?;
        println!("GET {path}: {} {}", answer.status, answer.body);
    }
    let client = reqwest::Client::new();
    let orders = format!("http://{address}/orders");
    let order =
        json!({"items": [{"price": 29.99, "quantity": 2}, {"price": 49.99, "quantity": 1}]});
    let priced: Value = client
        .post(&orders)
        .json(&order)
        .send()
        .await?
        .json()
        .await?;
    println!(
        "POST /orders: total {:.2}",
        priced["total"].as_f64().unwrap_or(f64::NAN)
    );
    let empty = client
        .post(&orders)
        .json(&json!({"items": []}))
        .send()
        .await?;
    println!(
        "POST /orders with no items: {} {}",
        empty.status().as_u16(),
        empty.text().await?
    );
    Ok(())
}

#[tokio::main]
async fn main() -> std::result::Result<(), Failure> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    match arguments.as_slice() {
        [flag, url] if flag == "--probe" => {
            let status = http_get(url).await?.status;
            if (200..300).contains(&status) {
                Ok(())
            } else {
                Err(format!("{url} answered {status}").into())
            }
        }
        [flag] if flag == "--self-test" => self_test().await,
        _ => {
            let bind = std::env::var("BIND").unwrap_or_else(|_| "0.0.0.0:8080".to_owned());
            serve(&bind, drain_time()?).await
        }
    }
}

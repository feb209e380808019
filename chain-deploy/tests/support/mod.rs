//! Real HTTP upstreams on 127.0.0.1 and a client, for the router, canary
//! and blue-green tests.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// How a test upstream behaves.
#[derive(Clone)]
pub(crate) struct Behaviour {
    pub(crate) version: &'static str,
    /// Every `n`th request answers 500 (0: never).
    pub(crate) fail_every: u64,
    pub(crate) delay: Duration,
    pub(crate) healthy: Arc<AtomicBool>,
    pub(crate) served: Arc<AtomicU64>,
    /// Set when the environment is redeployed: requests still running
    /// then fail, as they would when their process is replaced.
    pub(crate) killed: Arc<AtomicBool>,
}

impl Behaviour {
    pub(crate) fn version(version: &'static str) -> Self {
        Behaviour {
            version,
            fail_every: 0,
            delay: Duration::ZERO,
            healthy: Arc::new(AtomicBool::new(true)),
            served: Arc::new(AtomicU64::new(0)),
            killed: Arc::new(AtomicBool::new(false)),
        }
    }

    pub(crate) fn failing_every(mut self, n: u64) -> Self {
        self.fail_every = n;
        self
    }

    pub(crate) fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

async fn answer(
    State(behaviour): State<Behaviour>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    let n = behaviour.served.fetch_add(1, Ordering::Relaxed) + 1;
    if !behaviour.delay.is_zero() {
        tokio::time::sleep(behaviour.delay).await;
    }
    let received: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(name, value)| (name.to_string(), json!(value.to_str().unwrap_or(""))))
        .collect();
    let status = if behaviour.killed.load(Ordering::SeqCst)
        || (behaviour.fail_every > 0 && n % behaviour.fail_every == 0)
    {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    (
        status,
        Json(json!({"version": behaviour.version, "headers": received})),
    )
}

async fn health(State(behaviour): State<Behaviour>) -> StatusCode {
    if behaviour.healthy.load(Ordering::Relaxed) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// Serves `behaviour` on a free port: `/health/ready`, and every other
/// path answers with the version and the headers it received.
pub(crate) async fn upstream(behaviour: Behaviour) -> SocketAddr {
    let app = axum::Router::new()
        .route("/health/ready", routing::get(health))
        .fallback(answer)
        .with_state(behaviour);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

/// An upstream written by hand: to every connection it answers `reply`
/// (raw bytes, whatever they say) after the first read, then keeps the
/// connection open and silent, as a stalled server does.
pub(crate) async fn raw_upstream(reply: &'static [u8]) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0_u8; 4096];
                let _ = socket.read(&mut request).await;
                let _ = socket.write_all(reply).await;
                std::future::pending::<()>().await;
            });
        }
    });
    address
}

pub(crate) type TestClient = Client<HttpConnector, Empty<Bytes>>;

pub(crate) fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// GET `url` with extra headers; the status and the body.
pub(crate) async fn get(client: &TestClient, url: &str, headers: &[(&str, &str)]) -> (u16, Bytes) {
    let mut request = http::Request::get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client
        .request(request.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.into_body().collect().await.unwrap().to_bytes(),
    )
}

/// The version an upstream answered with.
pub(crate) fn version_of(body: &Bytes) -> String {
    let value: Value = serde_json::from_slice(body).unwrap();
    value["version"].as_str().unwrap().to_owned()
}

/// Clients sending requests through `url` in a loop until stopped.
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    done: Arc<(AtomicU64, tokio::sync::Notify)>,
    tasks: Vec<tokio::task::JoinHandle<LoadReport>>,
}

/// What the clients saw.
#[derive(Debug, Default)]
pub(crate) struct LoadReport {
    pub(crate) ok: u64,
    pub(crate) failed: u64,
    pub(crate) versions: std::collections::BTreeMap<String, u64>,
    pub(crate) failures: Vec<String>,
}

impl Load {
    pub(crate) fn start(url: &str, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new((AtomicU64::new(0), tokio::sync::Notify::new()));
        let tasks = (0..clients)
            .map(|_| {
                let (stop, url, client) = (Arc::clone(&stop), url.to_owned(), client());
                let done = Arc::clone(&done);
                tokio::spawn(async move {
                    let mut report = LoadReport::default();
                    while !stop.load(Ordering::Relaxed) {
                        let (status, body) = get(&client, &url, &[]).await;
                        if status == 200 {
                            report.ok += 1;
                            *report.versions.entry(version_of(&body)).or_default() += 1;
                        } else {
                            report.failed += 1;
                            report
                                .failures
                                .push(format!("{status}: {}", String::from_utf8_lossy(&body)));
                        }
                        done.0.fetch_add(1, Ordering::SeqCst);
                        done.1.notify_waiters();
                    }
                    report
                })
            })
            .collect();
        Load { stop, done, tasks }
    }

    /// Waits until `more` further requests have completed.
    pub(crate) async fn wait_for(&self, more: u64) {
        let target = self.done.0.load(Ordering::SeqCst) + more;
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let notified = self.done.1.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.done.0.load(Ordering::SeqCst) >= target {
                    return;
                }
                notified.await;
            }
        })
        .await
        .expect("the load makes progress");
    }

    pub(crate) async fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = LoadReport::default();
        for task in self.tasks {
            let report = task.await.unwrap();
            total.ok += report.ok;
            total.failed += report.failed;
            total.failures.extend(report.failures);
            for (version, count) in report.versions {
                *total.versions.entry(version).or_default() += count;
            }
        }
        total
    }
}

//! The `/metrics` endpoint (feature `server`).

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chain_core::{Error, ErrorKind, Result};
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Serves a registry's metrics at `/metrics` in the Prometheus text format
/// (`text/plain; version=0.0.4`), until dropped or shut down.
///
/// ```no_run
/// use chain_observability::{ChainMetrics, MetricsServer};
/// use prometheus::Registry;
///
/// # #[tokio::main] async fn main() -> chain_core::Result<()> {
/// let registry = Registry::new();
/// let metrics = ChainMetrics::new(&registry)?;
/// let server = MetricsServer::serve(registry, MetricsServer::DEFAULT_ADDR.parse().unwrap()).await?;
/// println!("metrics at http://{}/metrics", server.local_addr());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl MetricsServer {
    /// The default address. Use port 0 to let the system pick one.
    pub const DEFAULT_ADDR: &'static str = "127.0.0.1:8000";

    /// Binds `addr` and serves `registry` on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// An [`Unavailable`](ErrorKind::Unavailable) error naming the address
    /// if it cannot be bound.
    pub async fn serve(registry: Registry, addr: SocketAddr) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| {
                Error::new(
                    ErrorKind::Unavailable,
                    format!("cannot bind the metrics endpoint to {addr}"),
                )
                .with_source(source)
            })?;
        let local_addr = listener.local_addr().map_err(Error::internal_from)?;
        let app = routes(registry);
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.await;
                })
                .await
        });
        Ok(Self {
            local_addr,
            shutdown: Some(shutdown),
            task,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections and waits for the server to finish.
    ///
    /// # Errors
    ///
    /// An [`Internal`](ErrorKind::Internal) error if the server failed.
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        match (&mut self.task).await {
            Ok(outcome) => outcome.map_err(Error::internal_from),
            Err(join) => Err(Error::internal_from(join)),
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// A router serving `registry` at `GET /metrics`, to merge into a
/// service's own router when the metrics share its port (as the Prometheus
/// scrape annotations of a Kubernetes pod usually expect).
///
/// ```
/// use chain_observability::{ChainMetrics, metrics_routes};
/// use prometheus::Registry;
///
/// # fn main() -> chain_core::Result<()> {
/// let registry = Registry::new();
/// let metrics = ChainMetrics::new(&registry)?;
/// let app: axum::Router = axum::Router::new()
///     .route("/", axum::routing::get(|| async { "hello" }))
///     .merge(metrics_routes(registry));
/// # Ok(()) }
/// ```
pub fn routes(registry: Registry) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .with_state(registry)
}

async fn render(State(registry): State<Registry>) -> Response {
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    match encoder.encode(&registry.gather(), &mut body) {
        Ok(()) => (
            [(header::CONTENT_TYPE, encoder.format_type().to_owned())],
            body,
        )
            .into_response(),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {error}"),
        )
            .into_response(),
    }
}

//! The health endpoints over HTTP.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use super::{Health, HealthReport, Status};

/// `GET /health` (every check), `/health/live` (the process answers) and
/// `/health/ready` (every check, failing while draining): JSON bodies,
/// 200 for pass and warn, 503 for fail. Merge it into the service's router.
pub fn routes(health: Health) -> Router {
    Router::new()
        .route("/health", get(full))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(health)
}

fn respond(report: HealthReport) -> (StatusCode, Json<HealthReport>) {
    let code = match report.status {
        Status::Pass | Status::Warn => StatusCode::OK,
        Status::Fail => StatusCode::SERVICE_UNAVAILABLE,
    };
    (code, Json(report))
}

async fn full(State(health): State<Health>) -> (StatusCode, Json<HealthReport>) {
    respond(health.report().await)
}

async fn live(State(health): State<Health>) -> (StatusCode, Json<HealthReport>) {
    respond(health.live())
}

async fn ready(State(health): State<Health>) -> (StatusCode, Json<HealthReport>) {
    respond(health.ready().await)
}

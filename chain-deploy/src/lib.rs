//! Deployment control for ModuLink services, driven by measured traffic:
//!
//! - [`health`]: pluggable async checks with liveness, readiness and
//!   draining; feature `server` serves `/health`, `/health/live` and
//!   `/health/ready`.
//! - Feature `router`: `TrafficRouter`, a reverse proxy with weighted and
//!   sticky splits and per-upstream statistics measured over a sliding
//!   window; `BlueGreen`, which deploys to the idle environment, validates
//!   it with real requests and switches atomically; and `Canary`, which
//!   shifts traffic step by step and promotes or rolls back on the
//!   router's measurements.
//!
//! Every decision is taken on requests that really happened: a
//! simulation with sleeps and random metrics (as the Python cookbook's) can
//! promote a canary that fails every request.
//!
//! # Example
//!
//! A readiness check that fails while the service drains, as a load
//! balancer sees it before the process stops:
//!
//! ```
//! use chain_deploy::health::{CheckResult, Health, Status, check_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let health = Health::new().with_check(check_fn("database", || async { CheckResult::pass() }));
//! assert_eq!(health.ready().await.status, Status::Pass);
//! health.start_draining();
//! assert_eq!(health.ready().await.status, Status::Fail);
//! assert_eq!(health.live().status, Status::Pass); // alive, just not taking traffic
//! # }
//! ```
//!
//! # Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `server` | no | `health::routes`: `/health`, `/health/live` and `/health/ready` as an axum router |
//! | `router` | no | `TrafficRouter`, `BlueGreen` and `Canary` (a hyper reverse proxy) |
//!
//! Most users depend on the `modulink` facade (feature `deploy`).

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(clippy::unwrap_used, clippy::expect_used)]

#[cfg(feature = "router")]
#[cfg_attr(docsrs, doc(cfg(feature = "router")))]
pub mod blue_green;
#[cfg(feature = "router")]
#[cfg_attr(docsrs, doc(cfg(feature = "router")))]
pub mod canary;
#[cfg(feature = "router")]
#[cfg_attr(docsrs, doc(cfg(feature = "router")))]
pub mod deployer;
mod error;
pub mod health;
#[cfg(feature = "router")]
mod probe;
#[cfg(feature = "router")]
#[cfg_attr(docsrs, doc(cfg(feature = "router")))]
pub mod router;

pub use error::DeployError;

pub use chain_core;

/// The README's example, compiled as a doctest.
#[cfg(all(doctest, feature = "router"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

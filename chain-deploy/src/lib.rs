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
//! The seed simulates deployments with sleeps and metrics with random
//! numbers; here every decision is taken on requests that really happened.
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

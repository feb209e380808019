//! Health endpoints, a traffic router, blue-green and canary releases driven by measured traffic.
//!
//! This crate is being built. What is coming:
//!
//! - `/health`, `/health/live` and `/health/ready` with pluggable checks
//! - `TrafficRouter`: a reverse proxy with weighted and sticky splits and measured per-upstream statistics
//! - blue-green switches validated by real checks, canary analysis with promotion and rollback
//!
//! It builds on [`chain_core`], the chain, context and middleware of ModuLink.
//! Most users depend on the `modulink` facade instead of this crate directly.

#![warn(clippy::unwrap_used, clippy::expect_used)]

pub use chain_core;

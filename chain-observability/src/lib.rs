//! Prometheus metrics, OpenTelemetry tracing, structured logs and health summaries for ModuLink chains.
//!
//! This crate is being built. What is coming:
//!
//! - `ChainMetrics` with the `modulink_*` metric family and a cardinality guard
//! - a `/metrics` endpoint behind feature `server`
//! - `tracing` spans per chain and link, exported over OTLP behind feature `otlp`
//! - JSON logs carrying trace ids, performance summaries and health status
//!
//! It builds on [`chain_core`], the chain, context and middleware of ModuLink.
//! Most users depend on the `modulink` facade instead of this crate directly.

#![warn(clippy::unwrap_used, clippy::expect_used)]

pub use chain_core;

//! Parallel execution, resource pools, streaming, load balancing, auto-scaling and the event bus for ModuLink chains.
//!
//! This crate is being built. What is coming:
//!
//! - fan-out over links on the async runtime or on a bounded blocking pool
//! - `ResourcePool` limits with measured execution statistics
//! - stream and batch processing with bounded memory and backpressure
//! - load balancing with consistent hashing, health checks and auto-scaling
//! - a priority event bus in process, and over NATS JetStream behind feature `nats`
//!
//! It builds on [`chain_core`], the chain, context and middleware of ModuLink.
//! Most users depend on the `modulink` facade instead of this crate directly.

#![warn(clippy::unwrap_used, clippy::expect_used)]

pub use chain_core;

//! Circuit breakers, retries, timeouts, bulkheads, rate limits, fallbacks and microservice orchestration over HTTP for ModuLink chains.
//!
//! This crate is being built. What is coming:
//!
//! - `CircuitBreaker` with count- and time-based sliding windows, slow-call detection, half-open permits that are always released
//! - `Retry` with constant, linear and exponential backoff, jitter, deadlines and a retry budget
//! - `Timeout` per attempt and in total, `Bulkhead`, `RateLimiter` (GCRA), `Fallback`
//! - a pipeline builder that composes them in the standard order
//! - each policy as chain middleware, as a guard around any future, and as a tower `Layer`
//!
//! It builds on [`chain_core`], the chain, context and middleware of ModuLink.
//! Most users depend on the `modulink` facade instead of this crate directly.

#![warn(clippy::unwrap_used, clippy::expect_used)]

pub use chain_core;

//! Resilience for ModuLink chains: circuit breakers, retries, timeouts,
//! bulkheads, rate limits, fallbacks and microservice orchestration.
//!
//! Each policy works three ways: as chain middleware (around one link or
//! every link), as a guard around any future, and behind feature `tower` as
//! a tower `Layer`.
//!
//! Available now:
//!
//! - [`CircuitBreaker`]: count- and time-based sliding windows, failure and
//!   slow-call rates, half-open probes that are always released, open-state
//!   backoff, state-change events and metrics; lock-free.
//!
//! Being built (see the README): `Retry`, `Timeout`, `Bulkhead`,
//! `RateLimiter`, `Fallback`, the pipeline builder and the HTTP
//! `Orchestrator`.
//!
//! Errors map onto [`chain_core::ErrorKind`]: a rejection is
//! [`Rejected`](chain_core::ErrorKind::Rejected), so retry policies can refuse
//! to retry it.
//!
//! Most users depend on the `modulink` facade (feature `resilience`).

#![warn(clippy::unwrap_used, clippy::expect_used)]

pub mod circuit_breaker;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use chain_core;
pub use circuit_breaker::{
    BreakerMetrics, CircuitBreaker, CircuitBreakerConfig, CircuitOpen, Permit, SlidingWindow,
    State, StateChange,
};

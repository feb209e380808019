//! Resilience for ModuLink chains: circuit breakers, retries, timeouts,
//! bulkheads, rate limits, fallbacks and microservice orchestration.
//!
//! Each policy works three ways: as chain middleware (around one link or
//! every link), as a guard around any future, and behind feature `tower` as
//! a tower `Layer`.
//!
//! - [`CircuitBreaker`]: count- and time-based sliding windows, failure and
//!   slow-call rates, half-open probes that are always released, open-state
//!   backoff, state-change events and metrics; lock-free.
//! - [`Retry`]: constant, linear or exponential [`Backoff`] with a cap and
//!   [`Jitter`], a per-error predicate, a deadline and a [`RetryBudget`].
//! - [`Timeout`]: per attempt or in total; the error says which fired.
//! - [`Bulkhead`]: concurrent calls capped, with a bounded wait queue.
//! - [`RateLimiter`]: GCRA, global or keyed by a context field, with bounded
//!   memory for keys.
//! - [`Fallback`]: a substitute link or value for matching errors.
//! - [`Pipeline`]: all of the above in the standard order.
//!
//! - `Orchestrator` (feature `http`): chains of HTTP services, each behind
//!   its own pipeline, with per-service metrics.
//!
//! With feature `tower`, a [`Pipeline`] (and so every policy, through
//! `Pipeline::from`) is a tower `Layer`: see [`tower`].
//!
//! Errors map onto [`chain_core::ErrorKind`]: a rejection is
//! [`Rejected`](chain_core::ErrorKind::Rejected), so retry policies can refuse
//! to retry it.
//!
//! # Example
//!
//! A flaky dependency, retried with jittered backoff behind a breaker, each
//! attempt bounded, for one link of a chain:
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//! use chain_core::{Chain, Context, Error, Step};
//! use chain_resilience::{Backoff, CircuitBreaker, CircuitBreakerConfig, Pipeline, Retry};
//!
//! static CALLS: AtomicU32 = AtomicU32::new(0);
//!
//! async fn fetch_price(ctx: Context) -> chain_core::Result<Context> {
//!     // Fails twice, then answers.
//!     if CALLS.fetch_add(1, Ordering::SeqCst) < 2 {
//!         return Err(Error::unavailable("pricing service unreachable"));
//!     }
//!     Ok(ctx.with("price", 42))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> chain_core::Result<()> {
//! let pricing = Pipeline::new()
//!     .retry(Retry::new(3).backoff(Backoff::Constant(Duration::from_millis(1))))
//!     .circuit_breaker(CircuitBreaker::new("pricing", CircuitBreakerConfig::default()))
//!     .attempt_timeout(Duration::from_secs(2));
//! let chain = Chain::named("quote").step(Step::new(fetch_price).around(pricing));
//! let out = chain.execute(Context::new()).await?;
//! assert_eq!((out.require::<u32>("price")?, CALLS.load(Ordering::SeqCst)), (42, 3));
//! # Ok(()) }
//! ```
//!
//! # Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `http` | no | `Orchestrator`: chains of HTTP services (reqwest, through chain-core's `RemoteEndpoint`) |
//! | `tower` | no | every policy as a tower `Layer` ([`tower`]) |
//!
//! Most users depend on the `modulink` facade (feature `resilience`).

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(clippy::unwrap_used, clippy::expect_used)]

mod bulkhead;
pub mod circuit_breaker;
mod fallback;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
mod orchestrator;
mod pipeline;
mod rate_limit;
mod retry;
mod seconds;
mod throttled;
mod timeout;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use bulkhead::{Bulkhead, BulkheadSlot};
pub use chain_core;
pub use circuit_breaker::{
    BreakerMetrics, CircuitBreaker, CircuitBreakerConfig, CircuitOpen, Permit, SlidingWindow,
    State, StateChange,
};
pub use fallback::Fallback;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use orchestrator::{HeaderHook, Orchestrator, ServiceEndpoint, ServiceFailure, ServiceMetrics};
pub use pipeline::Pipeline;
pub use rate_limit::{FieldKey, KeyedRateLimiter, RateLimiter};
pub use retry::{Backoff, Jitter, Retry, RetryBudget};
pub use throttled::Throttled;
pub use timeout::{Elapsed, Timeout, TimeoutScope};

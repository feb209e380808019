//! Scaling for ModuLink chains. Available:
//!
//! - [`balance`]: load balancing over nodes with round robin, smooth
//!   weighted round robin, least connections, power of two choices,
//!   consistent hashing and random strategies, with outlier ejection, active
//!   health checks, a cluster status report and auto-scaling.
//! - [`events`]: the event bus, in process with priorities, backpressure,
//!   redelivery and dead letters, and across machines on NATS JetStream
//!   (feature `nats`).
//! - [`parallel`]: a resource pool bounding concurrent chains, fan-out in
//!   async and blocking modes, measured statistics and the performance
//!   report.
//! - [`stream`]: chains over streams with bounded concurrency and
//!   backpressure, batches, and a memory monitor that makes processing back
//!   off.
//!
//! Most users depend on the `modulink` facade (feature `scaling`).

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(clippy::unwrap_used, clippy::expect_used)]

pub mod balance;
pub mod events;
pub mod parallel;
pub mod stream;
mod sync;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use chain_core;

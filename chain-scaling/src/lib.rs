//! Scaling for ModuLink chains: spread executions over nodes, decouple
//! services with events, bound what runs at once, and process streams in
//! bounded memory.
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
//! - [`durable`]: the checkpoint stores of durable executions, which
//!   survive the crash of the process running them.
//! - [`stream`]: chains over streams with bounded concurrency and
//!   backpressure, batches, and a memory monitor that makes processing back
//!   off.
//!
//! # Example
//!
//! Two nodes behind a least-connections balancer; each call goes to the
//! node with the fewest executions in flight:
//!
//! ```
//! use chain_core::{Chain, Context};
//! use chain_scaling::balance::{LoadBalancer, Node, Strategy};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> chain_core::Result<()> {
//! let node = |id: &'static str| {
//!     Node::new(id, Chain::named(id).link_sync(move |ctx: Context| Ok(ctx.with("node", id))))
//! };
//! let balancer = LoadBalancer::new(Strategy::LeastConnections);
//! balancer.add_node(node("a"))?;
//! balancer.add_node(node("b"))?;
//! let out = balancer.call(Context::new()).await?;
//! assert!(matches!(out.require::<String>("node")?.as_str(), "a" | "b"));
//! # Ok(()) }
//! ```
//!
//! # Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `http` | no | `Node::http`: remote nodes called over HTTP with the context as JSON |
//! | `nats` | no | `events::JetStream`, the event bus's NATS JetStream transport |
//! | `sqlite` | no | `durable::SqliteCheckpointStore`, durable executions in a SQLite file (bundled SQLite) |
//!
//! Most users depend on the `modulink` facade (feature `scaling`).

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(clippy::unwrap_used, clippy::expect_used)]

pub mod balance;
pub mod durable;
pub mod events;
pub mod parallel;
pub mod stream;
mod sync;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use chain_core;

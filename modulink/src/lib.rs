//! ModuLink composes applications from *links*: async functions that take a
//! context and return the next one, run in order by a [`Chain`] and wrapped
//! by [`Middleware`].
//!
//! This crate is a facade: it re-exports [`chain_core`] (always) and each
//! sibling crate behind a cargo feature, so an application depends on one
//! crate and picks what it needs.
//!
//! # A first chain
//!
//! ```
//! use modulink::{Chain, Context, Error, Result};
//!
//! async fn validate(ctx: Context) -> Result<Context> {
//!     let qty: u32 = ctx.require("quantity")?;
//!     if qty == 0 {
//!         return Err(Error::validation("quantity must be positive"));
//!     }
//!     Ok(ctx)
//! }
//!
//! async fn price(ctx: Context) -> Result<Context> {
//!     let qty: u32 = ctx.require("quantity")?;
//!     Ok(ctx.with("total", qty * 5))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
//! let checkout = Chain::named("checkout").link(validate).link(price);
//! let out = checkout.execute(Context::new().with("quantity", 3)).await?;
//! assert_eq!(out.get::<u32>("total")?, Some(15));
//! # Ok(()) }
//! ```
//!
//! # Feature flags
//!
//! | Name | Description | Default? |
//! |---|---|---|
//! | `tracing` | the `logging` middleware of `chain-core` | yes |
//! | `tower` | `Chain` as a tower `Service`, tower services as links | no |
//! | `resilience` | [`resilience`]: circuit breakers, retries, timeouts, bulkheads, rate limits | no |
//! | `scaling` | [`scaling`]: parallel execution, pools, streaming, load balancing, events | no |
//! | `security` | [`security`]: authentication, RBAC, validation, secrets | no |
//! | `observability` | [`observability`]: Prometheus metrics, OpenTelemetry, JSON logs | no |
//! | `deploy` | [`deploy`]: health endpoints, traffic router, blue-green, canary | no |
//! | `full` | all of the above | no |

#![warn(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use chain_core::*;

/// The chain core itself, for paths such as `modulink::core::middleware`.
pub use chain_core as core;

#[cfg(feature = "resilience")]
#[cfg_attr(docsrs, doc(cfg(feature = "resilience")))]
pub use chain_resilience as resilience;

#[cfg(feature = "scaling")]
#[cfg_attr(docsrs, doc(cfg(feature = "scaling")))]
pub use chain_scaling as scaling;

#[cfg(feature = "security")]
#[cfg_attr(docsrs, doc(cfg(feature = "security")))]
pub use chain_security as security;

#[cfg(feature = "observability")]
#[cfg_attr(docsrs, doc(cfg(feature = "observability")))]
pub use chain_observability as observability;

#[cfg(feature = "deploy")]
#[cfg_attr(docsrs, doc(cfg(feature = "deploy")))]
pub use chain_deploy as deploy;

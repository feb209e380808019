//! The core of ModuLink: a [`Chain`] runs [`Link`]s in order on a context,
//! wrapped by [`Middleware`].
//!
//! # Overview
//!
//! - A **link** is an async function (or closure, or [`Link`] impl) taking
//!   the context and returning the next one, or an [`Error`] that stops the
//!   chain. Synchronous functions join with [`Chain::link_sync`].
//! - The **context** is [`Context`], ordered JSON fields plus typed
//!   extensions, or any struct of your own: `Chain<C>` is generic.
//! - A **chain** runs links in order, is cheap to clone, executes
//!   concurrently from many tasks and is itself a link. It also offers
//!   control flow: [`when`](Chain::when), [`parallel`](Chain::parallel),
//!   [`catch`](Chain::catch) and per-link [`on_error`](Step::on_error).
//! - **Middleware** runs around every link, one link, or the whole
//!   execution, and can observe, transform, short-circuit or retry.
//! - A **fused run** ([`fused`]) joins a fixed tuple of async links into
//!   one statically dispatched link: one boxed future for the run instead
//!   of one per link, for hot paths.
//! - **Observers** ([`middleware::Observer`]) only watch: they are told each
//!   link's duration and outcome without allocating, sharing one clock read
//!   per link boundary, which makes them the cheap way to time, count and
//!   log.
//!
//! # Example
//!
//! ```
//! use chain_core::{middleware::timing, Chain, Context, Error, Result};
//!
//! async fn validate(ctx: Context) -> Result<Context> {
//!     match ctx.get::<String>("email")? {
//!         Some(email) if email.contains('@') => Ok(ctx),
//!         _ => Err(Error::validation("a valid email is required")),
//!     }
//! }
//!
//! async fn welcome(ctx: Context) -> Result<Context> {
//!     let email: String = ctx.require("email")?;
//!     Ok(ctx.with("message", format!("welcome, {email}")))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
//! let signup = Chain::named("signup").around_each(timing()).link(validate).link(welcome);
//!
//! let out = signup.execute(Context::new().with("email", "ada@example.com")).await?;
//! assert_eq!(out.get::<String>("message")?.as_deref(), Some("welcome, ada@example.com"));
//!
//! let err = signup.execute(Context::new().with("email", "nope")).await.unwrap_err();
//! assert!(err.is_validation());
//! assert_eq!(err.to_string(),
//!     "validation error in chain `signup`, link #0 `validate`: a valid email is required");
//! # Ok(()) }
//! ```
//!
//! # Typed contexts
//!
//! A context struct of your own skips the JSON map entirely:
//!
//! ```
//! use chain_core::{Chain, Result};
//!
//! struct Order { quantity: u32, total: u32 }
//!
//! async fn price(mut order: Order) -> Result<Order> {
//!     order.total = order.quantity * 5;
//!     Ok(order)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
//! let chain = Chain::<Order>::new().link(price);
//! let order = chain.execute(Order { quantity: 3, total: 0 }).await?;
//! assert_eq!(order.total, 15);
//! # Ok(()) }
//! ```
//!
//! # Who should depend on this crate
//!
//! Libraries that provide links or middleware. Applications usually depend
//! on the `modulink` facade, which re-exports this crate and the others.
//!
//! # Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `tracing` | yes | the [`middleware::logging`] middleware |
//! | `tower` | no | [`Chain`] as a `tower::Service`; [`tower::service`] turns a tower service into a link |
//! | `http` | no | [`RequestMeta::from_http`], the request extension from an `http` request |
//! | `axum` | no | [`Error`] as an RFC 9457 problem response; [`axum::ChainRoute`] serves a chain as an axum route |
//! | `client` | no | [`remote::RemoteEndpoint`]: a link that POSTs the context as JSON to an HTTP service (reqwest) |
//!
//! # Supported Rust versions
//!
//! Rust 1.95 or newer (edition 2024).

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(clippy::unwrap_used, clippy::expect_used)]

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
mod chain;
mod context;
pub mod describe;
mod error;
mod extensions;
mod fields;
mod fused;
mod link;
pub mod middleware;
mod parallel;
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod remote;
mod request;
pub mod stats;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use chain::{Chain, Step};
pub use context::{Context, Key};
pub use error::{BoxError, Error, ErrorKind, Location, Result, ResultExt};
pub use extensions::{Extensions, HasExtensions};
pub use fused::{Fused, LinkSequence, StaticLink, fused};
pub use link::{BoxFuture, Link, Named, named};
pub use middleware::{Middleware, Next};
pub use parallel::{MergePolicy, Parallel};
pub use request::{OutgoingHeaders, RequestMeta};

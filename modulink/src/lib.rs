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
//! # The guide
//!
//! ## Links and the context
//!
//! A link is an `async fn(Context) -> Result<Context>` (or a closure of that
//! shape). [`Context`] holds JSON fields in insertion order: `with` and
//! `insert` write, `get::<T>` reads (absent is `Ok(None)`, a wrong type is an
//! error), `require::<T>` reads a field that must be there. Values that are
//! not JSON (a database pool, a parsed token) go in typed extensions with
//! `insert_ext` and `ext::<T>()`.
//!
//! ## Typed contexts
//!
//! When the shape of the data is known, a struct is faster and checked by
//! the compiler: `Chain<Order>` runs links `async fn(Order) -> Result<Order>`.
//!
//! ```
//! use modulink::{Chain, Result};
//!
//! struct Order { quantity: u32, total: u32 }
//!
//! async fn price(mut order: Order) -> Result<Order> {
//!     order.total = order.quantity * 5;
//!     Ok(order)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
//! let order = Chain::<Order>::new().link(price).execute(Order { quantity: 2, total: 0 }).await?;
//! assert_eq!(order.total, 10);
//! # Ok(()) }
//! ```
//!
//! ## Control flow
//!
//! - [`Chain::when`] runs a link only if a predicate holds;
//! - [`Chain::parallel`] runs branches concurrently on copies of the context
//!   and merges their changes in branch order (conflicts are errors unless a
//!   [`MergePolicy`] says otherwise);
//! - [`Chain::catch`] and [`Step::on_error`] recover from a failing link with
//!   the context from before it.
//!
//! ```
//! use modulink::{Chain, Context, Error, Parallel, Result, Step};
//!
//! async fn fraud_check(ctx: Context) -> Result<Context> { Ok(ctx.with("fraud_score", 0.1)) }
//! async fn reserve_stock(ctx: Context) -> Result<Context> { Ok(ctx.with("reserved", true)) }
//! async fn send_email(ctx: Context) -> Result<Context> { Ok(ctx.with("email_sent", true)) }
//! async fn send_sms(_ctx: Context) -> Result<Context> { Err(Error::unavailable("sms gateway down")) }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
//! let orders = Chain::named("orders")
//!     .when(|ctx: &Context| ctx.get::<f64>("amount").ok().flatten().unwrap_or(0.0) > 100.0, fraud_check)
//!     .link(reserve_stock)
//!     .parallel(Parallel::new().branch(send_email))
//!     .step(Step::new(send_sms).on_error(|err, ctx: Context| async move {
//!         Ok(ctx.with("sms_error", err.to_string()))
//!     }));
//! let out = orders.execute(Context::new().with("amount", 250.0)).await?;
//! assert!(out.contains_key("fraud_score") && out.contains_key("sms_error"));
//! # Ok(()) }
//! ```
//!
//! ## Middleware and observers
//!
//! Middleware runs around every link ([`Chain::around_each`]), one link
//! ([`Step::around`]) or the whole execution ([`Chain::around`]), and can
//! observe, transform, short-circuit or retry; write it with
//! [`middleware::from_fn`]. Observers ([`Chain::observe`]) only watch: they
//! are told each link's duration and outcome without allocating, which makes
//! them the right tool for timing, metrics and logs.
//!
//! ```
//! use modulink::middleware::{from_fn, logging, timing, LinkTimings};
//! use modulink::{Chain, Context, Error};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> modulink::Result<()> {
//! let admin_only = from_fn(|ctx: Context, next| async move {
//!     match ctx.get::<String>("role")?.as_deref() {
//!         Some("admin") => next.run(ctx).await,
//!         _ => Err(Error::forbidden("admin role required")),
//!     }
//! });
//! let chain = Chain::named("admin")
//!     .observe(timing())
//!     .observe(logging())
//!     .around(admin_only)
//!     .link_sync(|ctx: Context| Ok(ctx.with("report", "ready")));
//! let out = chain.execute(Context::new().with("role", "admin")).await?;
//! assert_eq!(out.ext::<LinkTimings>().map(|t| t.len()), Some(1));
//! assert!(chain.execute(Context::new().with("role", "user")).await.is_err());
//! # Ok(()) }
//! ```
//!
//! ## Errors
//!
//! Every failure is an [`Error`] with an [`ErrorKind`] (validation,
//! unauthorized, forbidden, not found, conflict, timeout, unavailable,
//! rejected, panicked, internal), the [`Location`] where it happened and
//! the source error. Sibling crates map their failures onto these kinds, so
//! policies such as "never retry a validation error" hold across crates.
//!
//! ## Production
//!
//! The sibling crates wrap the same chains. A checkout behind a login, with
//! a resilient payment step, measured and traced:
//!
//! ```
//! # #[cfg(all(feature = "resilience", feature = "observability", feature = "security"))]
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> modulink::Result<()> {
//! use std::time::Duration;
//! use modulink::{Chain, Context, RequestMeta, Step};
//! use modulink::observability::{ChainMetrics, Tracer, prometheus::Registry};
//! use modulink::resilience::{Backoff, CircuitBreaker, CircuitBreakerConfig, Pipeline, Retry};
//! use modulink::security::auth::{auth, AuthConfig, AuthManager, JwtKeys, JwtSettings, MemoryUserStore, Role, SigningKey};
//!
//! // Who may check out.
//! let keys = JwtKeys::new(SigningKey::hmac("k1", &[7; 32])?, JwtSettings::default())?;
//! let users = AuthManager::new(MemoryUserStore::new(), keys, AuthConfig { bcrypt_cost: 4, ..AuthConfig::default() });
//! users.create_user("ada", "Analytical1", Role::User).await?;
//!
//! // The payment call: retried, behind a breaker, each attempt bounded.
//! let payment = Pipeline::new()
//!     .retry(Retry::new(3).backoff(Backoff::Constant(Duration::from_millis(10))))
//!     .circuit_breaker(CircuitBreaker::new("payments", CircuitBreakerConfig::default()))
//!     .attempt_timeout(Duration::from_secs(2));
//!
//! let checkout = Chain::named("checkout")
//!     .around(auth(&users, [Role::User, Role::Admin]))
//!     .step(Step::sync(|ctx: Context| Ok(ctx.with("paid", true))).named("charge").around(payment));
//!
//! // Measured (Prometheus) and traced (spans, W3C trace context).
//! let registry = Registry::new();
//! let checkout = ChainMetrics::new(&registry)?.instrument(Tracer::new().instrument(checkout));
//!
//! let login = users.authenticate("ada", "Analytical1").await?;
//! // The HTTP edge records the request's headers as a typed extension, never
//! // as JSON: the token goes nowhere the JSON goes (logs, events, services).
//! let request = RequestMeta::new().with_header("Authorization", format!("Bearer {}", login.access_token));
//! let out = checkout.execute(Context::new().with_ext(request)).await?;
//! assert_eq!(out.get::<bool>("paid")?, Some(true));
//! # Ok(()) }
//! # #[cfg(not(all(feature = "resilience", feature = "observability", feature = "security")))]
//! # fn main() {}
//! ```
//!
//! See each crate for the rest: the HTTP orchestrator, rate limits and
//! bulkheads in [`resilience`]; the `/metrics` endpoint, OTLP export and JSON
//! logs in [`observability`]; validation and secrets in [`security`].
//!
//! ## Scaling out
//!
//! The same chain serves events, pools and streams. On the event bus a
//! chain handles every event of a type, with priorities, backpressure,
//! redelivery and dead letters; with feature `nats` the bus runs on NATS
//! JetStream and the work spreads over worker processes on many machines.
//! A [`ResourcePool`](scaling::parallel::ResourcePool) bounds how many
//! chains run and puts CPU-bound ones on blocking threads; a
//! [`StreamProcessor`](scaling::stream::StreamProcessor) applies a chain to
//! an endless stream in bounded memory:
//!
//! ```
//! # #[cfg(feature = "scaling")]
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use futures_util::{StreamExt, stream};
//! use modulink::scaling::events::{Event, EventBus};
//! use modulink::scaling::stream::StreamProcessor;
//! use modulink::{Chain, Context};
//! use serde_json::json;
//!
//! let fulfil = Chain::named("fulfil").link_sync(|ctx: Context| Ok(ctx.with("shipped", true)));
//! let bus = EventBus::new()?;
//! bus.subscribe("order_paid", fulfil).await?;
//! bus.publish(Event::new("order_paid", json!({"order_id": "ORD-1"})).with_correlation_id("ORD-1")).await?;
//! bus.shutdown().await; // drains
//! assert_eq!(bus.stats().completed, 1);
//!
//! let double = Chain::<u64>::named("double").link_sync(|n: u64| Ok(n * 2));
//! let sum: u64 = StreamProcessor::new(double)
//!     .concurrency(16)
//!     .process(stream::iter(0..10_000u64))
//!     .map(|n| n.unwrap_or(0))
//!     .fold(0, |sum, n| async move { sum + n })
//!     .await;
//! assert_eq!(sum, 99_990_000);
//! # Ok(()) }
//! # #[cfg(not(feature = "scaling"))]
//! # fn main() {}
//! ```
//!
//! Across nodes, a [`LoadBalancer`](scaling::balance::LoadBalancer) picks
//! one (power of two choices, consistent hashing and more), ejects outliers
//! and scales the pool with an auto-scaler.
//!
//! ## Durable executions
//!
//! A chain run by [`Chain::execute`] lives in its process: if the process
//! dies, the execution is gone, and an event redelivered by the bus starts
//! the chain again from its first link, so a payment taken before the crash
//! may be taken twice. A *durable* execution is checkpointed after each
//! link instead: its context and the index of the next link are written to
//! a store in one compare-and-swap. Workers claim executions under a lease
//! that they renew while a link runs; when a worker dies its lease runs
//! out, another worker claims the execution and continues at the link that
//! was running. Links that had finished never run again.
//!
//! ```text
//!  start(id, chain, ctx)
//!         |
//!         v
//!   +-----------+   a worker claims it   +------------------+ <--+ a link finishes: its context and
//!   |  pending  | ---------------------> |     running      | ---+ next_link, in one compare-and-swap
//!   | (wake at) | <--------------------- | next_link, lease | <--+ its worker dies, the lease runs
//!   +-----------+  a link asks to wait   +------------------+ ---+ out: another worker claims it
//!         ^      (Wake, a durable timer)
//!         | retry(id)                       |            |
//!   +-----------+      a link fails         |            | the last link finishes
//!   |  failed   | <-------------------------+            v
//!   |  error,   |                                  +-----------+
//!   |  context  |                                  | completed |
//!   +-----------+                                  +-----------+
//! ```
//!
//! The guarantee, exactly: every link runs *at least once*; a link that
//! was running when its worker died runs again on another. Each link sees
//! its own [`IdempotencyKey`](scaling::durable::IdempotencyKey) (execution
//! id and link index) as a typed extension of the context; a link that
//! sends it with its calls (an `Idempotency-Key` header, a unique key in a
//! database) makes its effect happen *exactly once*. A worker whose lease
//! ran out and was taken over cannot write again: its compare-and-swap
//! fails and it drops the execution.
//!
//! ```
//! # #[cfg(feature = "scaling")]
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> modulink::Result<()> {
//! use modulink::scaling::durable::{Durable, DurableChain, IdempotencyKey, MemoryCheckpointStore};
//! use modulink::{Context, Error};
//!
//! async fn charge(ctx: Context) -> modulink::Result<Context> {
//!     // "order-7/1": the same on every run of this link for this order.
//!     let key = ctx.ext::<IdempotencyKey>().ok_or_else(|| Error::internal("not durable"))?;
//!     let key = key.to_string(); // sent with the payment call, as its Idempotency-Key
//!     Ok(ctx.with("charged_with_key", key))
//! }
//!
//! let orders = DurableChain::named("order")
//!     .link("reserve", |ctx: Context| async move { Ok(ctx.with("reserved", true)) })
//!     .link("charge", charge);
//! // SqliteCheckpointStore (feature `sqlite`) or JetStreamCheckpointStore
//! // (feature `nats`) in production; the in-memory store is for tests.
//! let durable = Durable::new(MemoryCheckpointStore::new()).register(orders)?;
//! durable.start("order-7", "order", Context::new().with("total", 42)).await?;
//! while durable.run_one("worker-1").await? {} // a worker: `durable.work(name, stop)`
//! let out = durable.result("order-7").await?;
//! assert_eq!(out.get::<String>("charged_with_key")?.as_deref(), Some("order-7/1"));
//! # Ok(()) }
//! # #[cfg(not(feature = "scaling"))]
//! # fn main() {}
//! ```
//!
//! A link can also make its execution wait, through any restart: a
//! durable timer. It returns its context with `Wake::after(delay)` (go on
//! later) or `Wake::again_after(delay)` ("check the payment again in an
//! hour"), or the chain has a `DurableChain::sleep(name, delay)` step; the
//! execution goes back to pending with its wake time stored, no worker holds
//! it meanwhile, and the first worker to look after that time claims it.
//!
//! Stores: `SqliteCheckpointStore` (feature `sqlite`) keeps executions in a
//! SQLite file in WAL mode, durable across process crashes on one machine
//! with no service to run, its fsync policy a setting; with feature `nats`,
//! `JetStreamCheckpointStore` keeps them in a JetStream key-value bucket
//! shared by workers on many machines. Any context that implements
//! `Serialize` and `Deserialize` works; the context's typed extensions are
//! not stored, so a link that needs a secret after a resume reads it again.
//! Chains are registered by name: a worker runs only executions of chains
//! it has, and a start naming an unknown chain is an error.
//! [`scaling::durable`] compares the guarantee with Temporal's activities,
//! Restate's journaled calls and the JetStream event bus; `ecommerce
//! --durable --chaos` runs the order pipeline this way while it kills
//! worker processes.
//!
//! ## Shipping it
//!
//! A service built from chains answers health probes, and new versions
//! reach users through a router that measures them:
//!
//! ```no_run
//! # #[cfg(feature = "deploy")]
//! # async fn ship() -> Result<(), Box<dyn std::error::Error>> {
//! use modulink::deploy::canary::{Canary, CanaryConfig};
//! use modulink::deploy::health::{CheckResult, Health, check_fn, routes};
//! use modulink::deploy::router::{RouterConfig, TrafficRouter};
//!
//! // In the service: /health, /health/live, /health/ready.
//! let health = Health::new().with_check(check_fn("database", || async { CheckResult::pass() }));
//! let app = routes(health); // merge into the service's axum router
//!
//! // In front of two versions: a canary promoted on measured traffic.
//! let router = TrafficRouter::new(
//!     RouterConfig::new()
//!         .upstream("stable", "http://10.0.0.5:8080")
//!         .upstream("canary", "http://10.0.0.6:8080"),
//! )?;
//! let server = router.serve(tokio::net::TcpListener::bind("0.0.0.0:8000").await?);
//! let outcome = Canary::new(router, "stable", "canary", CanaryConfig::default())?.run().await?;
//! # drop((app, outcome)); server.shutdown().await; Ok(()) }
//! # fn main() {}
//! ```
//!
//! `deploy/` in the repository packages a service as a container image and
//! Kubernetes manifests, and the `ecommerce` example runs all of the above
//! together: `cargo run -p examples --example ecommerce`.
//!
//! # Feature flags
//!
//! | Name | Description | Default? |
//! |---|---|---|
//! | `tracing` | the `logging` middleware of `chain-core` | yes |
//! | `tower` | `Chain` as a tower `Service`, tower services as links | no |
//! | `resilience` | [`resilience`]: circuit breakers, retries, timeouts, bulkheads, rate limits, fallbacks | no |
//! | `http` | `remote::RemoteEndpoint`, the HTTP `Orchestrator` of [`resilience`], remote nodes of [`scaling`], `RequestMeta::from_http` (reqwest with rustls) | no |
//! | `axum` | `axum::ChainRoute` (a chain served as an axum route) and `Error` as an RFC 9457 problem response | no |
//! | `scaling` | [`scaling`]: parallel execution, pools, streaming, load balancing, events | no |
//! | `nats` | the NATS JetStream transport of the event bus in [`scaling`] | no |
//! | `sqlite` | the SQLite checkpoint store of durable executions in [`scaling`] | no |
//! | `security` | [`security`]: authentication, RBAC, validation, HTML sanitization, secrets | no |
//! | `aws` | the AWS Secrets Manager source of [`security`] | no |
//! | `observability` | [`observability`]: Prometheus metrics, health, tracing, JSON logs | no |
//! | `metrics-server` | the `/metrics` endpoint of [`observability`] (axum) | no |
//! | `otlp` | OpenTelemetry export over OTLP/HTTP in [`observability`] | no |
//! | `deploy` | [`deploy`]: health endpoints, traffic router, blue-green, canary | no |
//! | `full` | all of the above | no |

#![warn(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The workspace README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

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

//! Security for ModuLink chains: who may run a chain, what input it
//! accepts, and where its secrets come from, as middleware and links.
//!
//! - [`auth`] (feature `auth`): users with bcrypt-hashed passwords, login
//!   with a lockout that holds under parallel guessing, JWT (HS256, RS256,
//!   ES256, EdDSA) with key rotation, and the role-checking `auth()`
//!   middleware, which reads the bearer token from the request's typed
//!   `RequestMeta` extension, never from the context's JSON;
//! - [`validation`] (feature `validation`): format validators, injection
//!   detectors (defence in depth), HTML escaping, and `validate_input`,
//!   which turns a JSON field into a checked type and reports every failing
//!   field; HTML sanitization with ammonia behind feature `sanitize`;
//! - [`secrets`] (feature `secrets`): a redacting, zeroizing [`Secret`](secrets::Secret)
//!   type, Fernet with key rotation, and a caching secret manager over
//!   environment, static and (feature `aws`) AWS Secrets Manager sources,
//!   whose middleware puts secrets in a typed extension.
//!
//! # Example
//!
//! A chain that only admins and users may run, checked once per execution:
//!
//! ```
//! # #[cfg(feature = "auth")]
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> chain_core::Result<()> {
//! use chain_core::{Chain, Context, ErrorKind, RequestMeta};
//! use chain_security::auth::{
//!     AuthConfig, AuthManager, JwtKeys, JwtSettings, MemoryUserStore, Role, SigningKey, auth,
//! };
//!
//! let keys = JwtKeys::new(SigningKey::hmac("2026-12", &[7; 32])?, JwtSettings::default())?;
//! let users = AuthManager::new(MemoryUserStore::new(), keys, AuthConfig { bcrypt_cost: 4, ..AuthConfig::default() });
//! users.create_user("ada", "Analytical1", Role::User).await?;
//!
//! let profile = Chain::named("profile")
//!     .around(auth(&users, [Role::Admin, Role::User]))
//!     .link_sync(|ctx: Context| Ok(ctx.with("profile", "ready")));
//!
//! // The HTTP edge puts the request's headers in `RequestMeta`.
//! let login = users.authenticate("ada", "Analytical1").await?;
//! let request = RequestMeta::new()
//!     .with_header("Authorization", format!("Bearer {}", login.access_token));
//! let out = profile.execute(Context::new().with_ext(request)).await?;
//! assert_eq!(out.require::<String>("profile")?, "ready");
//!
//! let anonymous = profile.execute(Context::new()).await.unwrap_err();
//! assert_eq!(anonymous.kind(), ErrorKind::Unauthorized);
//! # Ok(()) }
//! # #[cfg(not(feature = "auth"))] fn main() {}
//! ```
//!
//! # Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `auth` | yes | [`auth`] |
//! | `validation` | yes | [`validation`] |
//! | `secrets` | yes | [`secrets`] |
//! | `sanitize` | no | `validation::sanitize_html` and `validation::Sanitize` (ammonia) |
//! | `aws` | no | `secrets::AwsSecretsSource` (the AWS SDK) |
//!
//! The crate's README counts the crates each feature compiles. Most
//! applications use the `modulink` facade, whose feature `security` turns
//! all of them on but `aws`.
//!
//! # Supported Rust versions
//!
//! Rust 1.95 or newer (edition 2024).

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(clippy::unwrap_used, clippy::expect_used)]

#[cfg(feature = "auth")]
#[cfg_attr(docsrs, doc(cfg(feature = "auth")))]
pub mod auth;
#[cfg(feature = "secrets")]
#[cfg_attr(docsrs, doc(cfg(feature = "secrets")))]
pub mod secrets;
#[cfg(feature = "validation")]
#[cfg_attr(docsrs, doc(cfg(feature = "validation")))]
pub mod validation;

/// What `Debug` output shows in place of a secret, a token or a password.
pub const REDACTED: &str = "[REDACTED]";

/// The README's example, compiled and run as a doctest.
#[cfg(all(doctest, feature = "validation"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use chain_core;

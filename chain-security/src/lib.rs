//! Security for ModuLink chains:
//!
//! - [`auth`]: users with bcrypt-hashed passwords, login with lockout, JWT
//!   (HS256, RS256, ES256, EdDSA) with key rotation, and the role-checking
//!   `auth` middleware;
//! - [`validation`]: format validators, injection detectors (defence in
//!   depth), HTML sanitization and escaping, schema validation reporting
//!   every failing field;
//! - [`secrets`]: a redacting secret type, Fernet with key rotation, and a
//!   caching secret manager over environment, static and (feature `aws`) AWS
//!   Secrets Manager sources.
//!
//! Most users depend on the `modulink` facade (feature `security`).

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(clippy::unwrap_used, clippy::expect_used)]

pub mod auth;
pub mod secrets;
pub mod validation;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use chain_core;

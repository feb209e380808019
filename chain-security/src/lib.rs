//! Security for ModuLink chains. Available: input validation and
//! sanitization ([`validation`]). Being built: authentication (bcrypt, JWT
//! with key rotation, lockout), RBAC middleware, and secrets (environment,
//! Fernet, AWS Secrets Manager).
//!
//! Most users depend on the `modulink` facade (feature `security`).

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(clippy::unwrap_used, clippy::expect_used)]

pub mod validation;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use chain_core;

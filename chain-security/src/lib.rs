//! Authentication, RBAC, lockout, validation, sanitization and secrets for ModuLink chains.
//!
//! This crate is being built. What is coming:
//!
//! - `AuthManager` with bcrypt hashing off the async runtime, lockout and JWT (HS256, RS256, ES256, EdDSA) with key rotation
//! - `auth` middleware with role checks
//! - validators, SQL-injection and XSS detectors as defence in depth, HTML sanitization with ammonia
//! - secrets from the environment, Fernet and AWS Secrets Manager
//!
//! It builds on [`chain_core`], the chain, context and middleware of ModuLink.
//! Most users depend on the `modulink` facade instead of this crate directly.

#![warn(clippy::unwrap_used, clippy::expect_used)]

pub use chain_core;

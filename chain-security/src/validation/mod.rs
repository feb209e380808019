//! Input validation and sanitization.
//!
//! - format validators: [`is_email`], [`is_phone`], [`is_url`] (http and
//!   https only), [`is_username`], [`is_ip`];
//! - pattern detectors, as defence in depth only:
//!   [`looks_like_sql_injection`], [`looks_like_xss`];
//! - output encoding: `sanitize_html` (ammonia, allow-list; feature
//!   `sanitize`), [`escape_html`];
//! - chain steps: [`validate_input`] (a serde type with [`Validate`] rules,
//!   reporting every failing field) and `Sanitize` (feature `sanitize`).
//!
//! # Threat model
//!
//! Validation keeps malformed data out of the system; it does not make data
//! safe to use everywhere. SQL injection is prevented by parameterized
//! queries, and cross-site scripting by encoding output for its context;
//! the detectors here only reject obvious attacks early and give alerting
//! something to count. Sanitized HTML is safe to render as HTML body
//! content; escaped text is safe inside elements and quoted attributes, not
//! inside `<script>`, `<style>` or unquoted attributes.

mod detect;
mod rules;
mod sanitize;
#[cfg(feature = "sanitize")]
mod sanitize_step;
mod schema;

pub use detect::{looks_like_sql_injection, looks_like_xss};
pub use rules::{is_email, is_ip, is_phone, is_url, is_username};
#[cfg(feature = "sanitize")]
#[cfg_attr(docsrs, doc(cfg(feature = "sanitize")))]
pub use sanitize::sanitize_html;
pub use sanitize::{DEFAULT_ALLOWED_TAGS, REFUSED_TAGS, escape_html};
#[cfg(feature = "sanitize")]
#[cfg_attr(docsrs, doc(cfg(feature = "sanitize")))]
pub use sanitize_step::Sanitize;
pub use schema::{
    FieldError, FieldErrors, Validate, ValidateInput, ValidationErrors, validate_input,
};

//! The Python cookbook's example models, written with chain-security's
//! validation: a user registration and a comment. They are examples of
//! what an application defines for itself with
//! `chain_security::validation::Validate`, not part of the library; the
//! chain-security tests and benches and the fuzz targets include this file
//! too.

use chain_security::secrets::Secret;
use chain_security::validation::{
    FieldErrors, Validate, is_email, is_phone, is_username, looks_like_sql_injection,
    looks_like_xss,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The cookbook's `UserRegistrationModel`, plus an SQL-injection check on
/// the full name (the cookbook checks it for XSS only).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRegistration {
    /// 3 to 20 of `[A-Za-z0-9_]`.
    pub username: String,
    /// An email address.
    pub email: String,
    /// At least 8 characters with upper, lower and digit. Kept as a
    /// [`Secret`] and never serialized: it stays out of `validated_data`,
    /// logs and events, and `Debug` shows it redacted.
    #[serde(skip_serializing)]
    pub password: Secret,
    /// Free text, without markup or SQL.
    pub full_name: Option<String>,
    /// A phone number.
    pub phone: Option<String>,
}

impl Validate for UserRegistration {
    fn validate(&self, errors: &mut FieldErrors) {
        errors.check(
            is_username(&self.username),
            "username",
            "format",
            "username must be 3-20 characters, alphanumeric and underscore only",
        );
        errors.check(
            is_email(&self.email),
            "email",
            "format",
            "invalid email format",
        );
        let password = self.password.expose();
        errors.check(
            password.len() >= 8,
            "password",
            "length",
            "password must be at least 8 characters",
        );
        errors.check(
            password.chars().any(|c| c.is_ascii_uppercase()),
            "password",
            "policy",
            "password must contain an uppercase letter",
        );
        errors.check(
            password.chars().any(|c| c.is_ascii_lowercase()),
            "password",
            "policy",
            "password must contain a lowercase letter",
        );
        errors.check(
            password.chars().any(|c| c.is_ascii_digit()),
            "password",
            "policy",
            "password must contain a digit",
        );
        if let Some(phone) = &self.phone {
            errors.check(
                is_phone(phone),
                "phone",
                "format",
                "invalid phone number format",
            );
        }
        if let Some(name) = &self.full_name {
            errors.check(
                !looks_like_xss(name) && !looks_like_sql_injection(name),
                "full_name",
                "dangerous_content",
                "invalid characters in name",
            );
        }
    }
}

/// The cookbook's `CommentModel`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comment {
    /// 1 to 5,000 characters, without markup or SQL.
    pub content: String,
    /// Who wrote it.
    pub author_id: String,
    /// Anything else.
    pub metadata: Option<Value>,
}

impl Validate for Comment {
    fn validate(&self, errors: &mut FieldErrors) {
        let content = &self.content;
        errors.check(
            !content.trim().is_empty(),
            "content",
            "required",
            "content cannot be empty",
        );
        errors.check(
            content.chars().count() <= 5000,
            "content",
            "length",
            "content too long (max 5000 characters)",
        );
        errors.check(
            !looks_like_sql_injection(content),
            "content",
            "dangerous_content",
            "content contains potentially dangerous patterns",
        );
        errors.check(
            !looks_like_xss(content),
            "content",
            "dangerous_content",
            "content contains potentially dangerous HTML",
        );
    }
}

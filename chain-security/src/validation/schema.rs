//! Schema validation and sanitization steps for chains.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use chain_core::{BoxFuture, Context, Error, Link, Middleware, Next, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{DEFAULT_ALLOWED_TAGS, escape_html, sanitize_html};

/// One failing field: where, why, and what kind of rule failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field's path, e.g. `email` or `items.0.quantity`.
    pub field: String,
    /// What is wrong, for people.
    pub message: String,
    /// The rule that failed, for programs, e.g. `format`, `length`,
    /// `dangerous_content`, `type_error`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// The failing fields collected while validating a value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    /// Records a failing field.
    pub fn add(&mut self, field: &str, kind: &str, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.to_owned(),
            message: message.into(),
            kind: kind.to_owned(),
        });
    }

    /// Records a failing field unless `holds`.
    pub fn check(&mut self, holds: bool, field: &str, kind: &str, message: &str) {
        if !holds {
            self.add(field, kind, message);
        }
    }

    /// Whether nothing failed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The failures in the order found.
    pub fn as_slice(&self) -> &[FieldError] {
        &self.0
    }
}

/// The source of a failed validation: every failing field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("validation failed: {}", describe(.errors))]
pub struct ValidationErrors {
    /// The failing fields, all of them.
    pub errors: Vec<FieldError>,
}

fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|error| format!("{}: {}", error.field, error.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Rules a type checks about itself after it was deserialized. Report every
/// failing field, not only the first.
pub trait Validate {
    /// Adds a [`FieldError`] for each broken rule.
    fn validate(&self, errors: &mut FieldErrors);
}

/// A step turning the context's `input_data` (or `data`) into a `T`,
/// checking `T`'s rules, and storing it as `validated_data` with
/// `validation_passed: true` (and as a typed extension). On failure it
/// stops the chain with a [`Validation`](chain_core::ErrorKind::Validation)
/// error whose source is a [`ValidationErrors`] listing every failing field
/// as `{field, message, type}`.
///
/// Deserialization stops at the first field of the wrong type; the rules of
/// [`Validate`] are all checked.
///
/// It is a [`Link`]; as [`Middleware`] it validates before the wrapped link.
pub struct ValidateInput<T> {
    _type: PhantomData<fn() -> T>,
}

/// Makes a [`ValidateInput`] step for `T`.
pub fn validate_input<T>() -> ValidateInput<T>
where
    T: DeserializeOwned + Serialize + Validate + Clone + Send + Sync + 'static,
{
    ValidateInput { _type: PhantomData }
}

impl<T> fmt::Debug for ValidateInput<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidateInput")
            .field("type", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T> ValidateInput<T>
where
    T: DeserializeOwned + Serialize + Validate + Clone + Send + Sync + 'static,
{
    fn apply(ctx: Context) -> Result<Context> {
        let input = ctx
            .get_value("input_data")
            .or_else(|| ctx.get_value("data"))
            .filter(|value| !value.is_null())
            .ok_or_else(|| Error::validation("no input data provided for validation"))?;
        let value: T = serde_path_to_error::deserialize(input).map_err(|error| {
            let field = error.path().to_string();
            failure(vec![FieldError {
                field: if field == "." { String::new() } else { field },
                message: error.inner().to_string(),
                kind: "type_error".to_owned(),
            }])
        })?;
        let mut errors = FieldErrors::default();
        value.validate(&mut errors);
        if !errors.is_empty() {
            return Err(failure(errors.0));
        }
        let mut ctx = ctx;
        ctx.insert_serde("validated_data", &value)?;
        ctx.insert("validation_passed", true);
        ctx.insert_ext(value);
        Ok(ctx)
    }
}

fn failure(errors: Vec<FieldError>) -> Error {
    let source = ValidationErrors { errors };
    Error::validation(source.to_string()).with_source(source)
}

impl<T> Link<Context> for ValidateInput<T>
where
    T: DeserializeOwned + Serialize + Validate + Clone + Send + Sync + 'static,
{
    fn call(&self, ctx: Context) -> BoxFuture<'_, Result<Context>> {
        Box::pin(std::future::ready(Self::apply(ctx)))
    }

    fn name(&self) -> Cow<'static, str> {
        "validate_input".into()
    }
}

impl<T> Middleware<Context> for ValidateInput<T>
where
    T: DeserializeOwned + Serialize + Validate + Clone + Send + Sync + 'static,
{
    fn call(&self, ctx: Context, next: Next<Context>) -> BoxFuture<'_, Result<Context>> {
        Box::pin(async move { next.run(Self::apply(ctx)?).await })
    }

    fn name(&self) -> Cow<'static, str> {
        "validate_input".into()
    }
}

/// A step copying `validated_data` to `sanitized_data`: free-text fields
/// are sanitized as HTML (allow-list), the password fields are left alone,
/// and every other string is HTML-escaped.
///
/// By default the free-text fields are the seed's `full_name`, `content` and
/// `description`, and `password` is never touched.
#[derive(Debug, Clone)]
pub struct Sanitize {
    free_text: Vec<String>,
    untouched: Vec<String>,
    allowed_tags: Vec<&'static str>,
}

impl Default for Sanitize {
    fn default() -> Self {
        Self {
            free_text: ["full_name", "content", "description"]
                .map(str::to_owned)
                .to_vec(),
            untouched: vec!["password".to_owned()],
            allowed_tags: DEFAULT_ALLOWED_TAGS.to_vec(),
        }
    }
}

impl Sanitize {
    /// The seed's settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the fields sanitized as rich text.
    #[must_use]
    pub fn free_text<I: IntoIterator<Item = S>, S: Into<String>>(mut self, fields: I) -> Self {
        self.free_text = fields.into_iter().map(Into::into).collect();
        self
    }

    /// Adds a field never modified (such as a second password field).
    #[must_use]
    pub fn untouched(mut self, field: impl Into<String>) -> Self {
        self.untouched.push(field.into());
        self
    }

    fn clean(&self, data: &Map<String, Value>) -> Map<String, Value> {
        data.iter()
            .map(|(key, value)| {
                let cleaned = match value {
                    Value::String(text) if self.untouched.iter().any(|field| field == key) => {
                        Value::String(text.clone())
                    }
                    Value::String(text) if self.free_text.iter().any(|field| field == key) => {
                        Value::String(sanitize_html(text, &self.allowed_tags))
                    }
                    Value::String(text) => Value::String(escape_html(text)),
                    other => other.clone(),
                };
                (key.clone(), cleaned)
            })
            .collect()
    }
}

impl Link<Context> for Sanitize {
    fn call(&self, ctx: Context) -> BoxFuture<'_, Result<Context>> {
        let outcome = match ctx.get_value("validated_data") {
            Some(Value::Object(data)) => {
                let cleaned = self.clean(data);
                Ok(ctx.with("sanitized_data", Value::Object(cleaned)))
            }
            Some(_) => Err(Error::validation(
                "validated_data must be an object to be sanitized",
            )),
            None => Ok(ctx),
        };
        Box::pin(std::future::ready(outcome))
    }

    fn name(&self) -> Cow<'static, str> {
        "sanitize".into()
    }
}

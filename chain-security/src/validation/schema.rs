//! Schema validation and sanitization steps for chains.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use chain_core::{BoxFuture, Context, Error, ErrorKind, Link, Middleware, Next, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

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
/// # Secrets in the input
///
/// A validated input replaces the raw one: the `input_data` (or `data`, or
/// the field named by [`from_field`](Self::from_field)) field is removed, and `validated_data` is what `T` serializes. Give a
/// password field the type [`Secret`](crate::secrets::Secret) and
/// `#[serde(skip_serializing)]` (as the `UserRegistration` of the
/// workspace's examples does): the plaintext then travels only in the typed extension, never in
/// the JSON that is logged, published as events or sent to other services.
///
/// It is a [`Link`]; as [`Middleware`] it validates before the wrapped link.
///
/// # Typed contexts
///
/// It works on [`Context`](chain_core::Context) only, by design: its job is
/// to turn an untyped JSON field into a checked `T`. A context struct of
/// your own is already typed when it is built (the HTTP edge's `ChainRoute`
/// deserializes the request body into it), so run [`Validate::validate`]
/// on it in the chain's first link instead.
pub struct ValidateInput<T> {
    field: Option<Cow<'static, str>>,
    _type: PhantomData<fn() -> T>,
}

/// Makes a [`ValidateInput`] step for `T`.
pub fn validate_input<T>() -> ValidateInput<T>
where
    T: DeserializeOwned + Serialize + Validate + Clone + Send + Sync + 'static,
{
    ValidateInput {
        field: None,
        _type: PhantomData,
    }
}

impl<T> fmt::Debug for ValidateInput<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidateInput")
            .field("type", &std::any::type_name::<T>())
            .field("field", &self.field)
            .finish()
    }
}

impl<T> ValidateInput<T>
where
    T: DeserializeOwned + Serialize + Validate + Clone + Send + Sync + 'static,
{
    /// Reads the input from `field` instead of `input_data` or `data`: for
    /// example `event_data` in an event handler. That field, too, is removed
    /// once validated.
    #[must_use]
    pub fn from_field(mut self, field: impl Into<Cow<'static, str>>) -> Self {
        self.field = Some(field.into());
        self
    }

    fn apply(&self, mut ctx: Context) -> Result<Context> {
        let present = |field: &&str| ctx.get_value(field).is_some_and(|value| !value.is_null());
        let field = match &self.field {
            Some(field) => Some(&**field).filter(present),
            None => ["input_data", "data"].into_iter().find(present),
        }
        .ok_or_else(|| Error::validation("no input data provided for validation"))?;
        let input = ctx
            .get_value(field)
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
        ctx.remove(field);
        ctx.insert_serde("validated_data", &value)?;
        ctx.insert("validation_passed", true);
        ctx.insert_ext(value);
        Ok(ctx)
    }
}

fn failure(errors: Vec<FieldError>) -> Error {
    let source = ValidationErrors { errors };
    Error::from_source(ErrorKind::Validation, source)
}

impl<T> Link<Context> for ValidateInput<T>
where
    T: DeserializeOwned + Serialize + Validate + Clone + Send + Sync + 'static,
{
    fn call(&self, ctx: Context) -> BoxFuture<'_, Result<Context>> {
        Box::pin(std::future::ready(self.apply(ctx)))
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
        Box::pin(async move { next.run(self.apply(ctx)?).await })
    }

    fn name(&self) -> Cow<'static, str> {
        "validate_input".into()
    }
}

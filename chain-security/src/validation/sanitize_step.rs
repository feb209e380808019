//! The [`Sanitize`] step (feature `sanitize`).

use std::borrow::Cow;

use chain_core::{BoxFuture, Context, Error, Link, Result};
use serde_json::{Map, Value};

use super::sanitize::check_allowed_tags;
use super::{DEFAULT_ALLOWED_TAGS, escape_html, sanitize_html};

/// A step copying `validated_data` to `sanitized_data`, cleaning every
/// string in it, at any depth (inside nested objects and arrays too), by the
/// name of the field that holds it:
///
/// - free-text fields are sanitized as HTML with an allow-list of tags;
/// - omitted fields (passwords) are left out of the copy;
/// - untouched fields are copied as they are;
/// - every other string is HTML-escaped.
///
/// By default the free-text fields are `full_name`, `content` and
/// `description`, and `password` is omitted. Strings in an array take the
/// name of the field holding the array.
#[derive(Debug, Clone)]
pub struct Sanitize {
    free_text: Vec<String>,
    untouched: Vec<String>,
    omitted: Vec<String>,
    allowed_tags: Vec<String>,
}

/// Nesting deeper than this is refused: serde_json never parses deeper
/// than 128 levels, so only data built in code gets here, and cleaning it
/// must not overflow the stack.
const MAX_DEPTH: usize = 128;

impl Default for Sanitize {
    fn default() -> Self {
        Self {
            free_text: ["full_name", "content", "description"]
                .map(str::to_owned)
                .to_vec(),
            untouched: Vec::new(),
            omitted: vec!["password".to_owned()],
            allowed_tags: DEFAULT_ALLOWED_TAGS.map(str::to_owned).to_vec(),
        }
    }
}

impl Sanitize {
    /// The default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the fields sanitized as rich text.
    #[must_use]
    pub fn free_text<I: IntoIterator<Item = S>, S: Into<String>>(mut self, fields: I) -> Self {
        self.free_text = fields.into_iter().map(Into::into).collect();
        self
    }

    /// Adds a field copied as it is (an identifier that must not be
    /// escaped).
    #[must_use]
    pub fn untouched(mut self, field: impl Into<String>) -> Self {
        self.untouched.push(field.into());
        self
    }

    /// Adds a field left out of the sanitized copy (a second password
    /// field, a card number).
    #[must_use]
    pub fn omit(mut self, field: impl Into<String>) -> Self {
        self.omitted.push(field.into());
        self
    }

    /// Sets the tags kept in free text (default [`DEFAULT_ALLOWED_TAGS`]).
    ///
    /// # Errors
    ///
    /// As [`sanitize_html`]: a tag of
    /// [`REFUSED_TAGS`](super::REFUSED_TAGS), or not a tag name.
    pub fn allowed_tags<I: IntoIterator<Item = S>, S: AsRef<str>>(
        mut self,
        tags: I,
    ) -> Result<Self> {
        let tags: Vec<String> = tags.into_iter().map(|t| t.as_ref().to_owned()).collect();
        check_allowed_tags(&tags.iter().map(String::as_str).collect::<Vec<_>>())?;
        self.allowed_tags = tags;
        Ok(self)
    }

    fn is(list: &[String], field: Option<&str>) -> bool {
        field.is_some_and(|field| list.iter().any(|name| name == field))
    }

    /// `value` cleaned as the content of `field`; `None` if it is omitted.
    fn clean(&self, field: Option<&str>, value: &Value, depth: usize) -> Result<Option<Value>> {
        if Self::is(&self.omitted, field) {
            return Ok(None);
        }
        if depth > MAX_DEPTH {
            return Err(Error::validation(format!(
                "validated_data is nested deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(Some(match value {
            Value::String(text) if Self::is(&self.untouched, field) => Value::String(text.clone()),
            Value::String(text) if Self::is(&self.free_text, field) => {
                let tags: Vec<&str> = self.allowed_tags.iter().map(String::as_str).collect();
                Value::String(sanitize_html(text, &tags)?)
            }
            Value::String(text) => Value::String(escape_html(text)),
            Value::Object(map) => Value::Object(self.clean_object(map, depth + 1)?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|item| self.clean(field, item, depth + 1))
                    .filter_map(Result::transpose)
                    .collect::<Result<_>>()?,
            ),
            other => other.clone(),
        }))
    }

    fn clean_object(&self, data: &Map<String, Value>, depth: usize) -> Result<Map<String, Value>> {
        let mut cleaned = Map::with_capacity(data.len());
        for (key, value) in data {
            if let Some(value) = self.clean(Some(key), value, depth)? {
                cleaned.insert(key.clone(), value);
            }
        }
        Ok(cleaned)
    }
}

impl Link<Context> for Sanitize {
    fn call(&self, ctx: Context) -> BoxFuture<'_, Result<Context>> {
        let outcome = match ctx.get_value("validated_data") {
            Some(Value::Object(data)) => self
                .clean_object(data, 0)
                .map(|cleaned| ctx.with("sanitized_data", Value::Object(cleaned))),
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

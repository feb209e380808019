//! [`Context`], the dynamic default context: ordered JSON fields plus typed
//! extensions.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::extensions::{Extensions, HasExtensions};
use crate::fields::Fields;

/// A field name. `&'static str` keys are stored without allocating.
pub type Key = Cow<'static, str>;

/// The dynamic context a chain passes from link to link: an
/// insertion-ordered map of field names to JSON values, plus typed
/// [`Extensions`] for values that are not JSON.
///
/// Links take the context by value and return it, so a chain moves one
/// context through its links instead of copying it at every step (the Python
/// cookbook's `{**ctx, "k": v}` copies every field at every link).
///
/// Reading a field never guesses: [`get`](Self::get) returns `Ok(None)` when
/// the field is absent and an error when it holds the wrong type.
///
/// Extensions are neither serialized nor compared.
///
/// Memory: an empty context is one small allocation; the first field
/// reserves room for sixteen (1 KiB), found by a short scan; past sixteen
/// fields the context moves to a hash index. Sixteen fields cover typical
/// chains with one allocation, where growing step by step would copy the
/// fields at each step.
///
/// ```
/// use chain_core::Context;
/// use serde_json::json;
///
/// let ctx = Context::new().with("order_id", "A-17").with("quantity", 3);
/// assert_eq!(ctx.get::<u32>("quantity")?, Some(3));
/// assert_eq!(ctx.get::<u32>("missing")?, None);
/// assert!(ctx.get::<u32>("order_id").is_err()); // a string is not a u32
/// assert_eq!(ctx.to_json(), json!({"order_id": "A-17", "quantity": 3}));
/// # Ok::<(), chain_core::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct Context {
    // Boxed so that moving a context from link to link copies one pointer
    // rather than the whole map header: moves happen several times per link,
    // allocation once per context.
    inner: Box<Inner>,
}

#[derive(Clone, Default)]
struct Inner {
    fields: Fields,
    extensions: Extensions,
}

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty context with room for `capacity` fields.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Box::new(Inner {
                fields: Fields::with_capacity(capacity),
                extensions: Extensions::new(),
            }),
        }
    }

    /// A context holding the fields of a JSON object, in their order.
    ///
    /// # Errors
    ///
    /// A [`Validation`](crate::ErrorKind::Validation) error if `value` is not an
    /// object.
    ///
    /// ```
    /// use chain_core::Context;
    /// use serde_json::json;
    ///
    /// let ctx = Context::from_json(json!({"user": "ada"}))?;
    /// assert_eq!(ctx.get::<String>("user")?.as_deref(), Some("ada"));
    /// assert!(Context::from_json(json!([1, 2])).is_err());
    /// # Ok::<(), chain_core::Error>(())
    /// ```
    pub fn from_json(value: Value) -> Result<Self> {
        match value {
            Value::Object(object) => {
                let mut ctx = Self::with_capacity(object.len());
                ctx.inner.fields.extend(
                    object
                        .into_iter()
                        .map(|(key, value)| (Cow::Owned(key), value)),
                );
                Ok(ctx)
            }
            other => Err(Error::validation(format!(
                "a context is built from a JSON object, not {}",
                json_type_name(&other)
            ))),
        }
    }

    /// The fields as a JSON object, in insertion order.
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.inner
                .fields
                .iter()
                .map(|(key, value)| (key.to_string(), value.clone()))
                .collect(),
        )
    }

    /// The fields as a JSON object, consuming the context.
    pub fn into_json(self) -> Value {
        Value::Object(
            self.inner
                .fields
                .into_iter()
                .map(|(key, value)| (key.into_owned(), value))
                .collect(),
        )
    }

    /// The context with `key` set to `value`: the builder-style counterpart of
    /// Python's `{**ctx, "key": value}`, without the copy.
    #[must_use]
    pub fn with(mut self, key: impl Into<Key>, value: impl Into<Value>) -> Self {
        self.insert(key, value);
        self
    }

    /// Sets `key` to `value`, returning the previous value. A new key goes
    /// last; an existing key keeps its position.
    #[inline]
    pub fn insert(&mut self, key: impl Into<Key>, value: impl Into<Value>) -> Option<Value> {
        self.inner.fields.insert(key.into(), value.into())
    }

    /// Serializes `value` into the field `key`.
    ///
    /// # Errors
    ///
    /// A [`Validation`](crate::ErrorKind::Validation) error naming the key if `value`
    /// cannot be represented as JSON (for example a map with non-string
    /// keys). The context is unchanged then.
    pub fn insert_serde<T: Serialize + ?Sized>(
        &mut self,
        key: impl Into<Key>,
        value: &T,
    ) -> Result<()> {
        let key = key.into();
        match serde_json::to_value(value) {
            Ok(value) => {
                self.inner.fields.insert(key, value);
                Ok(())
            }
            Err(source) => Err(Error::validation(format!(
                "field `{key}` cannot be stored as JSON: {source}"
            ))
            .with_source(source)),
        }
    }

    /// The field `key` deserialized as `T`.
    ///
    /// # Errors
    ///
    /// `Ok(None)` when the field is absent; a
    /// [`Validation`](crate::ErrorKind::Validation) error naming the key when it
    /// holds a value that is not a `T`. A mismatch is never read as absent.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.inner.fields.get(key) {
            None => Ok(None),
            Some(value) => T::deserialize(value).map(Some).map_err(|source| {
                Error::validation(format!("field `{key}` has the wrong type: {source}"))
                    .with_source(source)
            }),
        }
    }

    /// The field `key` deserialized as `T`, which must be present.
    ///
    /// # Errors
    ///
    /// A [`Validation`](crate::ErrorKind::Validation) error if the field is absent or
    /// of the wrong type.
    pub fn require<T: DeserializeOwned>(&self, key: &str) -> Result<T> {
        self.get(key)?
            .ok_or_else(|| Error::validation(format!("field `{key}` is required")))
    }

    /// The raw JSON value of `key`.
    pub fn get_value(&self, key: &str) -> Option<&Value> {
        self.inner.fields.get(key)
    }

    /// The raw JSON value of `key`, mutably.
    pub fn get_value_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.inner.fields.get_mut(key)
    }

    /// Removes `key`, keeping the order of the other fields.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.inner.fields.remove(key)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.inner.fields.get(key).is_some()
    }

    /// Number of fields (extensions not counted).
    pub fn len(&self) -> usize {
        self.inner.fields.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.inner.fields.len() == 0
    }

    /// The field names in insertion order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.inner.fields.iter().map(|(key, _)| key)
    }

    /// The fields in insertion order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> + '_ {
        self.inner.fields.iter()
    }

    pub(crate) fn into_fields(self) -> impl Iterator<Item = (Key, Value)> {
        self.inner.fields.into_iter()
    }

    /// The typed extension of type `T`, if present.
    pub fn ext<T: 'static>(&self) -> Option<&T> {
        self.inner.extensions.get::<T>()
    }

    /// The typed extension of type `T`, mutably.
    pub fn ext_mut<T: 'static>(&mut self) -> Option<&mut T> {
        self.inner.extensions.get_mut::<T>()
    }

    /// Stores a typed extension, returning the previous one of that type.
    pub fn insert_ext<T: Clone + Send + Sync + 'static>(&mut self, value: T) -> Option<T> {
        self.inner.extensions.insert(value)
    }

    /// Removes the typed extension of type `T`.
    pub fn remove_ext<T: 'static>(&mut self) -> Option<T> {
        self.inner.extensions.remove::<T>()
    }

    /// The context with a typed extension added.
    #[must_use]
    pub fn with_ext<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.inner.extensions.insert(value);
        self
    }
}

fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl HasExtensions for Context {
    fn extensions(&self) -> &Extensions {
        &self.inner.extensions
    }

    fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.inner.extensions
    }

    fn fields(&self) -> Option<&Context> {
        Some(self)
    }

    fn fields_mut(&mut self) -> Option<&mut Context> {
        Some(self)
    }
}

impl PartialEq for Context {
    /// Compares the fields (regardless of order); extensions are ignored.
    fn eq(&self, other: &Self) -> bool {
        self.inner.fields == other.inner.fields
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Context");
        debug.field("fields", &DebugFields(&self.inner.fields));
        if !self.inner.extensions.is_empty() {
            debug.field("extensions", &self.inner.extensions.len());
        }
        debug.finish()
    }
}

struct DebugFields<'a>(&'a Fields);

impl fmt::Debug for DebugFields<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

impl<K: Into<Key>, V: Into<Value>> FromIterator<(K, V)> for Context {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut ctx = Self::new();
        ctx.extend(iter);
        ctx
    }
}

impl<K: Into<Key>, V: Into<Value>> Extend<(K, V)> for Context {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        self.inner.fields.extend(
            iter.into_iter()
                .map(|(key, value)| (key.into(), value.into())),
        );
    }
}

impl TryFrom<Value> for Context {
    type Error = Error;

    fn try_from(value: Value) -> Result<Self> {
        Self::from_json(value)
    }
}

impl From<Context> for Value {
    fn from(ctx: Context) -> Self {
        ctx.into_json()
    }
}

impl Serialize for Context {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.inner.fields.len()))?;
        for (key, value) in self.inner.fields.iter() {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Context {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_map(ContextVisitor)
    }
}

struct ContextVisitor;

impl<'de> Visitor<'de> for ContextVisitor {
    type Value = Context;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> std::result::Result<Context, A::Error> {
        let mut ctx = Context::with_capacity(access.size_hint().unwrap_or(0));
        while let Some((key, value)) = access.next_entry::<String, Value>()? {
            ctx.inner.fields.insert(Cow::Owned(key), value);
        }
        Ok(ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[test]
    fn fields_keep_insertion_order() {
        let ctx = Context::new().with("z", 1).with("a", 2).with("m", 3);
        assert_eq!(ctx.keys().collect::<Vec<_>>(), ["z", "a", "m"]);
        let text = serde_json::to_string(&ctx).expect("serializes");
        assert_eq!(text, r#"{"z":1,"a":2,"m":3}"#);
    }

    #[test]
    fn overwriting_keeps_the_position() {
        let mut ctx = Context::new().with("a", 1).with("b", 2);
        assert_eq!(ctx.insert("a", 10), Some(json!(1)));
        assert_eq!(ctx.keys().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn remove_keeps_the_order_of_the_rest() {
        let mut ctx = Context::new().with("a", 1).with("b", 2).with("c", 3);
        assert_eq!(ctx.remove("a"), Some(json!(1)));
        assert_eq!(ctx.keys().collect::<Vec<_>>(), ["b", "c"]);
        assert_eq!(ctx.remove("a"), None);
    }

    #[test]
    fn type_mismatch_is_an_error_naming_the_field() {
        let ctx = Context::new().with("qty", "three");
        let err = ctx.get::<u32>("qty").expect_err("mismatch");
        assert_eq!(err.kind(), ErrorKind::Validation);
        assert!(err.to_string().contains("`qty`"), "{err}");
        assert!(err.downcast_source::<serde_json::Error>().is_some());
    }

    #[test]
    fn absent_is_none_and_require_says_which_field() {
        let ctx = Context::new();
        assert_eq!(ctx.get::<u32>("qty").expect("absent is fine"), None);
        let err = ctx.require::<u32>("qty").expect_err("required");
        assert!(err.to_string().contains("`qty` is required"), "{err}");
    }

    #[test]
    fn serialization_failure_is_an_error_and_changes_nothing() {
        let mut bad = BTreeMap::new();
        bad.insert(vec![1_u8], "non-string key");
        let mut ctx = Context::new().with("kept", true);
        let err = ctx.insert_serde("bad", &bad).expect_err("cannot serialize");
        assert_eq!(err.kind(), ErrorKind::Validation);
        assert!(err.to_string().contains("`bad`"), "{err}");
        assert_eq!(ctx.len(), 1);
    }

    #[test]
    fn insert_serde_round_trips_structs() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Item {
            sku: String,
            qty: u32,
        }
        let mut ctx = Context::new();
        let item = Item {
            sku: "X1".into(),
            qty: 2,
        };
        ctx.insert_serde("item", &item).expect("serializes");
        assert_eq!(ctx.get::<Item>("item").expect("typed"), Some(item));
    }

    #[test]
    fn from_json_rejects_non_objects() {
        for value in [json!(null), json!(1), json!("s"), json!([1]), json!(true)] {
            let err = Context::from_json(value).expect_err("not an object");
            assert_eq!(err.kind(), ErrorKind::Validation);
        }
    }

    #[test]
    fn deserializing_a_non_object_fails() {
        assert!(serde_json::from_str::<Context>("[1,2]").is_err());
        assert!(serde_json::from_str::<Context>("{\"a\":").is_err());
    }

    #[test]
    fn equality_ignores_extensions_and_order() {
        let a = Context::new().with("x", 1).with("y", 2).with_ext(5_u8);
        let b = Context::new().with("y", 2).with("x", 1);
        assert_eq!(a, b);
        assert_ne!(a, Context::new().with("x", 1));
    }

    #[test]
    fn extensions_are_typed_and_cloned_with_the_context() {
        #[derive(Clone, Debug, PartialEq)]
        struct Db(&'static str);
        let ctx = Context::new().with_ext(Db("primary"));
        let copy = ctx.clone();
        assert_eq!(copy.ext::<Db>(), Some(&Db("primary")));
        assert_eq!(ctx.to_json(), json!({}));
    }
}

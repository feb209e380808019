//! Typed values carried by a context beside its JSON fields.

use std::any::{Any, TypeId};
use std::fmt;

/// A type map for values that are not JSON: database handles, parsed tokens,
/// timings. One value per type, like `http::Extensions`.
///
/// Values must be `Clone` because contexts are cloned for parallel branches
/// and retries. An empty `Extensions` allocates nothing.
///
/// ```
/// use chain_core::Extensions;
///
/// #[derive(Clone, Debug, PartialEq)]
/// struct RequestId(u64);
///
/// let mut ext = Extensions::new();
/// assert!(ext.insert(RequestId(7)).is_none());
/// assert_eq!(ext.get::<RequestId>(), Some(&RequestId(7)));
/// assert_eq!(ext.remove::<RequestId>(), Some(RequestId(7)));
/// assert!(ext.is_empty());
/// ```
#[derive(Default)]
pub struct Extensions {
    // A list searched linearly: contexts carry a handful of extensions, and
    // comparing a few `TypeId`s beats hashing one.
    entries: Vec<(TypeId, Box<dyn ExtensionValue>)>,
}

trait ExtensionValue: Any + Send + Sync {
    fn clone_box(&self) -> Box<dyn ExtensionValue>;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

impl<T: Clone + Send + Sync + 'static> ExtensionValue for T {
    fn clone_box(&self) -> Box<dyn ExtensionValue> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

impl Extensions {
    /// An empty map; allocates nothing.
    pub fn new() -> Self {
        Self::default()
    }

    fn position<T: 'static>(&self) -> Option<usize> {
        let wanted = TypeId::of::<T>();
        self.entries
            .iter()
            .position(|(type_id, _)| *type_id == wanted)
    }

    /// Inserts a value, returning the previous value of the same type.
    pub fn insert<T: Clone + Send + Sync + 'static>(&mut self, value: T) -> Option<T> {
        match self.position::<T>() {
            Some(index) => {
                let previous = std::mem::replace(&mut self.entries[index].1, Box::new(value));
                ExtensionValue::into_any(previous)
                    .downcast::<T>()
                    .ok()
                    .map(|previous| *previous)
            }
            None => {
                self.entries.push((TypeId::of::<T>(), Box::new(value)));
                None
            }
        }
    }

    /// The value of type `T`, if present.
    pub fn get<T: 'static>(&self) -> Option<&T> {
        let index = self.position::<T>()?;
        (*self.entries[index].1).as_any().downcast_ref::<T>()
    }

    /// The value of type `T` for mutation, if present.
    pub fn get_mut<T: 'static>(&mut self) -> Option<&mut T> {
        let index = self.position::<T>()?;
        (*self.entries[index].1).as_any_mut().downcast_mut::<T>()
    }

    /// The value of type `T`, inserting `T::default()` first if absent.
    pub fn get_or_default<T: Clone + Default + Send + Sync + 'static>(&mut self) -> &mut T {
        let index = match self.position::<T>() {
            Some(index) => index,
            None => {
                self.entries
                    .push((TypeId::of::<T>(), Box::new(T::default())));
                self.entries.len() - 1
            }
        };
        match (*self.entries[index].1).as_any_mut().downcast_mut::<T>() {
            Some(value) => value,
            None => unreachable!("extension entries are keyed by their own TypeId"),
        }
    }

    /// Removes and returns the value of type `T`.
    pub fn remove<T: 'static>(&mut self) -> Option<T> {
        let index = self.position::<T>()?;
        let (_, value) = self.entries.swap_remove(index);
        ExtensionValue::into_any(value)
            .downcast::<T>()
            .ok()
            .map(|value| *value)
    }

    /// Whether a value of type `T` is present.
    pub fn contains<T: 'static>(&self) -> bool {
        self.position::<T>().is_some()
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every value.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

impl Clone for Extensions {
    fn clone(&self) -> Self {
        Self {
            entries: self
                .entries
                .iter()
                .map(|(type_id, value)| (*type_id, (**value).clone_box()))
                .collect(),
        }
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extensions")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// Contexts that carry [`Extensions`], so middleware of every ModuLink
/// crate works on them: [`timing`](crate::middleware::timing), tracing,
/// `auth()`, secret injection and the HTTP edge store and read typed
/// values there.
///
/// [`Context`](crate::Context) implements it; a typed context struct can
/// too, by holding an `Extensions` field:
///
/// ```
/// use chain_core::{Extensions, HasExtensions};
///
/// struct Order { quantity: u32, extensions: Extensions }
///
/// impl HasExtensions for Order {
///     fn extensions(&self) -> &Extensions { &self.extensions }
///     fn extensions_mut(&mut self) -> &mut Extensions { &mut self.extensions }
/// }
/// ```
pub trait HasExtensions {
    /// The context's extensions.
    fn extensions(&self) -> &Extensions;
    /// The context's extensions, mutably.
    fn extensions_mut(&mut self) -> &mut Extensions;

    /// The context's JSON fields, when it has them. [`Context`](crate::Context)
    /// returns itself; a typed context returns `None` (the default), or a
    /// `Context` it embeds.
    ///
    /// Middleware that also reports into JSON fields (the
    /// `authenticated_user` field of chain-security's `auth()`, the span
    /// attributes a tracer copies from fields) does that part only when
    /// there are fields; the typed extension is always set.
    fn fields(&self) -> Option<&crate::Context> {
        None
    }

    /// The context's JSON fields, mutably; see [`fields`](Self::fields).
    fn fields_mut(&mut self) -> Option<&mut crate::Context> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Default)]
    struct Counter(u32);

    #[test]
    fn insert_replaces_and_returns_the_previous_value() {
        let mut ext = Extensions::new();
        assert_eq!(ext.insert(Counter(1)), None);
        assert_eq!(ext.insert(Counter(2)), Some(Counter(1)));
        assert_eq!(ext.get::<Counter>(), Some(&Counter(2)));
        assert_eq!(ext.len(), 1);
    }

    #[test]
    fn values_are_keyed_by_type() {
        let mut ext = Extensions::new();
        ext.insert(Counter(1));
        ext.insert(5_u8);
        assert_eq!(ext.get::<u8>(), Some(&5));
        assert_eq!(ext.get::<u16>(), None);
        assert!(ext.contains::<Counter>());
    }

    #[test]
    fn clones_are_independent() {
        let mut ext = Extensions::new();
        ext.insert(Counter(1));
        let mut copy = ext.clone();
        copy.get_mut::<Counter>().expect("cloned").0 = 9;
        assert_eq!(ext.get::<Counter>(), Some(&Counter(1)));
        assert_eq!(copy.get::<Counter>(), Some(&Counter(9)));
    }

    #[test]
    fn get_or_default_inserts_once() {
        let mut ext = Extensions::new();
        ext.get_or_default::<Counter>().0 += 1;
        ext.get_or_default::<Counter>().0 += 1;
        assert_eq!(ext.get::<Counter>(), Some(&Counter(2)));
    }
}

//! The field map behind [`Context`](crate::Context): insertion-ordered,
//! a plain vector while small and an index map once large.

use indexmap::IndexMap;
use serde_json::Value;

use crate::context::Key;

/// Up to this many fields, lookups scan a vector: comparing a dozen short
/// keys is cheaper than hashing one, and inserting allocates nothing per key.
const SMALL_LIMIT: usize = 16;

/// A cheap fingerprint of a key (its length and first and last eight
/// bytes), compared before the key itself so a scan rarely touches strings.
#[inline]
fn tag(key: &str) -> u64 {
    let bytes = key.as_bytes();
    let len = bytes.len();
    let (head, tail) = if len >= 8 {
        (word(&bytes[..8]), word(&bytes[len - 8..]))
    } else {
        (word(bytes), 0)
    };
    head ^ tail.rotate_left(29) ^ (len as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Up to eight bytes as a little-endian word, zero-padded. Built with
/// shifts rather than a copy into a buffer: a variable-length copy followed
/// by a wide read stalls store forwarding, which costs more than the scan.
#[inline]
fn word(bytes: &[u8]) -> u64 {
    match <[u8; 8]>::try_from(bytes) {
        Ok(exact) => u64::from_le_bytes(exact),
        Err(_) => bytes
            .iter()
            .take(8)
            .enumerate()
            .fold(0, |word, (index, byte)| {
                word | (u64::from(*byte) << (8 * index))
            }),
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Entry {
    tag: u64,
    key: Key,
    value: Value,
}

type LargeMap = IndexMap<Key, Value, foldhash::fast::RandomState>;

#[derive(Clone, Debug)]
pub(crate) enum Fields {
    Small(Vec<Entry>),
    Large(LargeMap),
}

impl Default for Fields {
    fn default() -> Self {
        Self::Small(Vec::new())
    }
}

impl Fields {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        if capacity <= SMALL_LIMIT {
            Self::Small(Vec::with_capacity(capacity))
        } else {
            Self::Large(LargeMap::with_capacity_and_hasher(
                capacity,
                Default::default(),
            ))
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Self::Small(entries) => {
                let tag = tag(key);
                entries
                    .iter()
                    .find(|entry| entry.tag == tag && entry.key == key)
                    .map(|entry| &entry.value)
            }
            Self::Large(map) => map.get(key),
        }
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        match self {
            Self::Small(entries) => {
                let tag = tag(key);
                entries
                    .iter_mut()
                    .find(|entry| entry.tag == tag && entry.key == key)
                    .map(|entry| &mut entry.value)
            }
            Self::Large(map) => map.get_mut(key),
        }
    }

    /// Inlined into the caller so a constant key's tag folds away and the
    /// new entry is written straight from registers: passing key and value
    /// through memory to an out-of-line call stalled store forwarding and
    /// cost more than the scan itself.
    #[inline(always)]
    pub(crate) fn insert(&mut self, key: Key, value: Value) -> Option<Value> {
        if let Self::Small(entries) = self {
            let tag = tag(&key);
            if let Some(entry) = entries
                .iter_mut()
                .find(|entry| entry.tag == tag && entry.key == key)
            {
                return Some(std::mem::replace(&mut entry.value, value));
            }
            if entries.len() < entries.capacity() {
                entries.push(Entry { tag, key, value });
                return None;
            }
        }
        self.insert_growing(key, value)
    }

    /// The insert that may allocate: the first field, a full small map, or
    /// the index map.
    #[cold]
    #[inline(never)]
    fn insert_growing(&mut self, key: Key, value: Value) -> Option<Value> {
        match self {
            Self::Small(entries) => {
                if entries.len() < SMALL_LIMIT {
                    // Straight to the small map's limit (1 KiB): one
                    // allocation for every context that stays small. A first
                    // block of eight and a reallocation copying it at the
                    // ninth field cost 40 ns in the ten-insert benchmark.
                    entries.reserve_exact(SMALL_LIMIT - entries.len());
                    let tag = tag(&key);
                    entries.push(Entry { tag, key, value });
                } else {
                    self.promote(key, value);
                }
                None
            }
            Self::Large(map) => map.insert(key, value),
        }
    }

    /// Moves a full small map into an index map and adds one more field.
    #[cold]
    #[inline(never)]
    fn promote(&mut self, key: Key, value: Value) {
        if let Self::Small(entries) = self {
            let mut map = LargeMap::with_capacity_and_hasher(SMALL_LIMIT * 2, Default::default());
            map.extend(entries.drain(..).map(|entry| (entry.key, entry.value)));
            map.insert(key, value);
            *self = Self::Large(map);
        }
    }

    /// Removes `key`, keeping the order of the others.
    pub(crate) fn remove(&mut self, key: &str) -> Option<Value> {
        match self {
            Self::Small(entries) => {
                let tag = tag(key);
                let index = entries
                    .iter()
                    .position(|entry| entry.tag == tag && entry.key == key)?;
                Some(entries.remove(index).value)
            }
            Self::Large(map) => map.shift_remove(key),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Small(entries) => entries.len(),
            Self::Large(map) => map.len(),
        }
    }

    pub(crate) fn iter(&self) -> Iter<'_> {
        match self {
            Self::Small(entries) => Iter::Small(entries.iter()),
            Self::Large(map) => Iter::Large(map.iter()),
        }
    }

    pub(crate) fn extend(&mut self, entries: impl IntoIterator<Item = (Key, Value)>) {
        for (key, value) in entries {
            self.insert(key, value);
        }
    }
}

impl Drop for Fields {
    /// Drops each value by its variant: `Value`'s own drop glue is
    /// recursive and never inlined, and one call per field showed up as a
    /// tenth of a short chain's time.
    fn drop(&mut self) {
        if let Self::Small(entries) = self {
            for Entry { key, value, .. } in entries.drain(..) {
                drop(key);
                // Moving each payload out drops it inline; `Null` and `Bool`
                // own nothing under any serde_json feature.
                match value {
                    Value::Null | Value::Bool(_) => std::mem::forget(value),
                    Value::Number(_number) => {}
                    Value::String(string) => drop(string),
                    Value::Array(array) => drop(array),
                    Value::Object(object) => drop(object),
                }
            }
        }
    }
}

impl PartialEq for Fields {
    /// Same keys with same values, in any order.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .all(|(key, value)| other.get(key) == Some(value))
    }
}

pub(crate) enum Iter<'a> {
    Small(std::slice::Iter<'a, Entry>),
    Large(indexmap::map::Iter<'a, Key, Value>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a Value);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Self::Small(iter) => iter.next().map(|entry| (entry.key.as_ref(), &entry.value)),
            Self::Large(iter) => iter.next().map(|(k, v)| (k.as_ref(), v)),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Self::Small(iter) => iter.size_hint(),
            Self::Large(iter) => iter.size_hint(),
        }
    }
}

impl ExactSizeIterator for Iter<'_> {}

pub(crate) enum IntoIter {
    Small(std::vec::IntoIter<Entry>),
    Large(indexmap::map::IntoIter<Key, Value>),
}

impl Iterator for IntoIter {
    type Item = (Key, Value);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Self::Small(iter) => iter.next().map(|entry| (entry.key, entry.value)),
            Self::Large(iter) => iter.next(),
        }
    }
}

impl IntoIterator for Fields {
    type Item = (Key, Value);
    type IntoIter = IntoIter;

    fn into_iter(mut self) -> IntoIter {
        match &mut self {
            Self::Small(entries) => IntoIter::Small(std::mem::take(entries).into_iter()),
            Self::Large(map) => IntoIter::Large(std::mem::take(map).into_iter()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys(fields: &Fields) -> Vec<String> {
        fields.iter().map(|(k, _)| k.to_owned()).collect()
    }

    #[test]
    fn grows_from_small_to_large_keeping_order_and_values() {
        let mut fields = Fields::default();
        let names: Vec<String> = (0..40).rev().map(|i| format!("key{i}")).collect();
        for (value, name) in names.iter().enumerate() {
            assert_eq!(fields.insert(Key::Owned(name.clone()), json!(value)), None);
            assert_eq!(fields.len(), value + 1);
        }
        assert!(matches!(fields, Fields::Large(_)));
        assert_eq!(keys(&fields), names);
        for (value, name) in names.iter().enumerate() {
            assert_eq!(fields.get(name), Some(&json!(value)));
        }
        assert_eq!(
            fields.insert(Key::Borrowed("key39"), json!("new")),
            Some(json!(0))
        );
        assert_eq!(keys(&fields)[0], "key39");
    }

    #[test]
    fn remove_keeps_order_in_both_representations() {
        for size in [5, 30] {
            let mut fields = Fields::default();
            for i in 0..size {
                fields.insert(Key::Owned(format!("k{i}")), json!(i));
            }
            assert_eq!(fields.remove("k1"), Some(json!(1)));
            assert_eq!(fields.remove("k1"), None);
            let expected: Vec<String> = (0..size)
                .filter(|i| *i != 1)
                .map(|i| format!("k{i}"))
                .collect();
            assert_eq!(keys(&fields), expected);
        }
    }

    #[test]
    fn keys_sharing_prefix_suffix_and_length_stay_distinct() {
        let mut fields = Fields::default();
        let keys = [
            "customer_id_name",
            "customer_xx_name",
            "a",
            "b",
            "",
            "customer_id_nam",
        ];
        for (value, key) in keys.iter().enumerate() {
            fields.insert(Key::Borrowed(key), json!(value));
        }
        for (value, key) in keys.iter().enumerate() {
            assert_eq!(fields.get(key), Some(&json!(value)), "{key}");
        }
        assert_eq!(fields.get("customer_id_na"), None);
    }

    #[test]
    fn equality_ignores_representation_and_order() {
        let mut small = Fields::default();
        let mut large = Fields::with_capacity(64);
        for i in 0..5 {
            small.insert(Key::Owned(format!("k{i}")), json!(i));
        }
        for i in (0..5).rev() {
            large.insert(Key::Owned(format!("k{i}")), json!(i));
        }
        assert_eq!(small, large);
        large.insert(Key::Borrowed("k0"), json!("changed"));
        assert_ne!(small, large);
    }
}

//! Consistent hashing: a ring of virtual nodes.

use xxhash_rust::xxh3::xxh3_64;

/// Virtual nodes per unit of weight: enough that keys spread evenly and
/// that one node joining or leaving moves about 1/N of them.
const VIRTUAL_NODES: usize = 160;

/// A sorted ring of `(hash, node index)`. Built when the node set changes;
/// a lookup is one hash and a binary search.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ring {
    points: Vec<(u64, u32)>,
}

impl Ring {
    /// The ring for nodes with these ids and weights, in this order.
    pub(crate) fn new<'a>(nodes: impl Iterator<Item = (&'a str, u32)>) -> Self {
        let mut points = Vec::new();
        for (index, (id, weight)) in nodes.enumerate() {
            for replica in 0..VIRTUAL_NODES * weight as usize {
                points.push((xxh3_64(format!("{id}#{replica}").as_bytes()), index as u32));
            }
        }
        points.sort_unstable();
        Self { points }
    }

    /// The nodes in the order `key` tries them: its owner (the first point
    /// at or after its hash) first, then the next distinct nodes around the
    /// ring, for when the owner is full.
    pub(crate) fn walk(&self, key: &[u8], nodes: usize) -> impl Iterator<Item = usize> + '_ {
        let hash = xxh3_64(key);
        let start = self.points.partition_point(|(point, _)| *point < hash);
        let mut seen = vec![false; nodes];
        self.points[start..]
            .iter()
            .chain(&self.points[..start])
            .filter_map(move |(_, node)| {
                let node = *node as usize;
                let first = !std::mem::replace(&mut seen[node], true);
                first.then_some(node)
            })
            .take(nodes)
    }
}

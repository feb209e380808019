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
        use std::fmt::Write as _;
        let mut points = Vec::new();
        // One buffer for every point's name: a ring of thousands of nodes
        // has hundreds of thousands of points.
        let mut name = String::new();
        for (index, (id, weight)) in nodes.enumerate() {
            for replica in 0..VIRTUAL_NODES * weight as usize {
                name.clear();
                let _ = write!(name, "{id}#{replica}");
                points.push((xxh3_64(name.as_bytes()), index as u32));
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
        // Which nodes were already yielded, allocated only when the owner
        // is passed over: most walks stop at the owner, and a pick must not
        // cost in proportion to the pool.
        let mut owner = None;
        let mut seen: Vec<bool> = Vec::new();
        self.points[start..]
            .iter()
            .chain(&self.points[..start])
            .filter_map(move |(_, node)| {
                let node = *node as usize;
                match owner {
                    None => {
                        owner = Some(node);
                        return Some(node);
                    }
                    Some(owner) if seen.is_empty() => {
                        if node == owner {
                            return None;
                        }
                        seen = vec![false; nodes];
                        seen[owner] = true;
                    }
                    Some(_) => {}
                }
                let first = !std::mem::replace(&mut seen[node], true);
                first.then_some(node)
            })
            .take(nodes)
    }
}

#[cfg(test)]
mod tests {
    use super::Ring;

    #[test]
    fn a_walk_yields_the_owner_first_then_every_other_node_once() {
        let ids: Vec<String> = (0..50).map(|n| format!("node-{n}")).collect();
        let ring = Ring::new(
            ids.iter()
                .map(|id| (id.as_str(), 1 + (id.len() % 2) as u32)),
        );
        for key in ["user-1", "user-2", "order-77", ""] {
            let walk: Vec<usize> = ring.walk(key.as_bytes(), ids.len()).collect();
            let mut sorted = walk.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..ids.len()).collect::<Vec<_>>(), "{key}");
            assert_eq!(ring.walk(key.as_bytes(), ids.len()).next(), Some(walk[0]));
        }
    }
}

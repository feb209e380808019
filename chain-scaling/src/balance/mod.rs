//! Load balancing: spread contexts over [`Node`]s with a [`Strategy`].
//!
//! Picking is lock-free: the node set is an immutable snapshot swapped
//! atomically when nodes join or leave (calls already running keep their
//! node, which is how a removed node drains), and every strategy works on
//! atomics. In-flight counts are exact: a call's connection is released by
//! a drop guard on success, error and cancellation alike.

mod autoscale;
mod health;
mod node;
mod process;
#[cfg(feature = "http")]
mod remote;
mod ring;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;
use chain_core::{Context, Error, ErrorKind, Result};

pub use autoscale::{
    AutoScaler, AutoScaling, Decision, LoadSample, LocalScaler, Scaler, ScalingPolicy,
    ScalingReport,
};
/// A context POSTed as JSON to an HTTP service (feature `http`); the link
/// behind [`Node::http`].
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use chain_core::remote::{RemoteEndpoint, RemoteFailure};
use health::now_nanos;
pub use health::{ClusterStatus, HealthCheckSettings, HealthChecks, NodeStatus, OutlierDetection};
use node::InFlight;
pub use node::Node;
pub use process::ProcessScaler;
use ring::Ring;

/// How a [`LoadBalancer`] picks a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Strategy {
    /// Each node in turn.
    RoundRobin,
    /// In proportion to weights, in nginx's smooth, deterministic order
    /// (weights 5, 1, 1 give a a b a c a a, not a a a a a b c).
    WeightedRoundRobin,
    /// The node with the fewest calls in flight.
    LeastConnections,
    /// Two random nodes, the less loaded of them (latency EWMA times calls
    /// in flight + 1), as tower's p2c and Envoy's least-request.
    PowerOfTwoChoices,
    /// The node owning the call's key on a hash ring (xxh3, 160 virtual
    /// nodes per unit of weight): the same key goes to the same node, and a
    /// node joining or leaving moves about 1/N of the keys. Modulo
    /// hashing would move almost all of them.
    ConsistentHash,
    /// A node at random.
    Random,
}

/// The nodes at one moment, with what the balancer's strategy precomputes.
struct Snapshot<C> {
    nodes: Vec<Arc<Node<C>>>,
    /// Each node's index, for calls to a named node.
    by_id: HashMap<Arc<str>, usize, foldhash::fast::RandomState>,
    /// Node indices in nginx's smooth weighted round-robin order, one cycle
    /// (weighted round robin only).
    weighted: Vec<u32>,
    /// The hash ring (consistent hashing only).
    ring: Ring,
}

impl<C> Snapshot<C> {
    /// Precomputes only what `strategy` reads: the ring holds 160 points
    /// per unit of weight and the weighted order costs nodes × total
    /// weight to build, too much to spend on every node change of a large
    /// pool whose strategy never reads them.
    fn new(strategy: Strategy, nodes: Vec<Arc<Node<C>>>) -> Self {
        let weighted = if strategy == Strategy::WeightedRoundRobin {
            let weights: Vec<u32> = nodes.iter().map(|node| node.get_weight()).collect();
            smooth_weighted_order(&weights)
        } else {
            Vec::new()
        };
        let ring = if strategy == Strategy::ConsistentHash {
            Ring::new(nodes.iter().map(|node| (node.id(), node.get_weight())))
        } else {
            Ring::default()
        };
        let by_id = nodes
            .iter()
            .enumerate()
            .map(|(index, node)| (Arc::clone(node.shared_id()), index))
            .collect();
        Self {
            weighted,
            ring,
            by_id,
            nodes,
        }
    }
}

/// The field of a [`Context`] result that names the node that ran it.
pub const NODE_ID_FIELD: &str = "_node_id";

/// The field of a [`Context`] result holding how long the node took, in
/// seconds (a float), measured around the node's chain.
pub const EXECUTION_TIME_FIELD: &str = "_execution_time";

/// One cycle of nginx's smooth weighted round robin: each step every node
/// gains its weight, the richest is picked and pays the total.
fn smooth_weighted_order(weights: &[u32]) -> Vec<u32> {
    let total: i64 = weights.iter().map(|w| i64::from(*w)).sum();
    let mut current = vec![0_i64; weights.len()];
    (0..total)
        .map(|_| {
            for (value, weight) in current.iter_mut().zip(weights) {
                *value += i64::from(*weight);
            }
            let (best, _) = current
                .iter()
                .enumerate()
                .max_by_key(|(index, value)| (**value, std::cmp::Reverse(*index)))
                .unwrap_or((0, &0));
            current[best] -= total;
            best as u32
        })
        .collect()
}

type KeyFn<C> = Arc<dyn Fn(&C) -> Option<String> + Send + Sync>;

/// Spreads calls over nodes. Cloning is cheap; clones share nodes and state.
///
/// ```
/// use chain_core::{Chain, Context};
/// use chain_scaling::balance::{LoadBalancer, Node, Strategy};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> chain_core::Result<()> {
/// let worker = |name: &'static str| Chain::named(name).link_sync(move |ctx: Context| Ok(ctx.with("served_by", name)));
/// let balancer = LoadBalancer::new(Strategy::ConsistentHash).hash_field("user_id");
/// balancer.add_node(Node::new("a", worker("a")))?;
/// balancer.add_node(Node::new("b", worker("b")))?;
///
/// let first = balancer.call(Context::new().with("user_id", "u-42")).await?;
/// let again = balancer.call(Context::new().with("user_id", "u-42")).await?;
/// assert_eq!(first.get::<String>("served_by")?, again.get::<String>("served_by")?);
/// # Ok(()) }
/// ```
pub struct LoadBalancer<C> {
    inner: Arc<Inner<C>>,
}

struct Inner<C> {
    strategy: Strategy,
    snapshot: ArcSwap<Snapshot<C>>,
    cursor: AtomicUsize,
    key: Option<KeyFn<C>>,
    outliers: Option<OutlierDetection>,
    /// Whether a [`Context`] result gets [`NODE_ID_FIELD`] and
    /// [`EXECUTION_TIME_FIELD`].
    execution_fields: bool,
    /// Auto-scalers managing the pool.
    scalers: AtomicUsize,
}

impl<C> Clone for LoadBalancer<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C: Send + 'static> LoadBalancer<C> {
    /// No nodes yet.
    pub fn new(strategy: Strategy) -> Self {
        Self {
            inner: Arc::new(Inner {
                strategy,
                snapshot: ArcSwap::from_pointee(Snapshot::new(strategy, Vec::new())),
                cursor: AtomicUsize::new(0),
                key: None,
                outliers: None,
                execution_fields: true,
                scalers: AtomicUsize::new(0),
            }),
        }
    }

    /// The key consistent hashing routes on, read from each context.
    /// Contexts without a key are spread round robin.
    #[must_use]
    pub fn hash_key<F>(self, key: F) -> Self
    where
        F: Fn(&C) -> Option<String> + Send + Sync + 'static,
    {
        self.configure(|inner| inner.key = Some(Arc::new(key)))
    }

    /// Ejects nodes that fail repeatedly; see [`OutlierDetection`].
    #[must_use]
    pub fn outlier_detection(self, policy: OutlierDetection) -> Self {
        self.configure(|inner| inner.outliers = Some(policy))
    }

    /// Leaves [`Context`] results without [`NODE_ID_FIELD`] and
    /// [`EXECUTION_TIME_FIELD`] (typed contexts never get them).
    #[must_use]
    pub fn without_execution_fields(self) -> Self {
        self.configure(|inner| inner.execution_fields = false)
    }

    /// Applies a builder setting, on a copy if the balancer is shared.
    fn configure(self, change: impl FnOnce(&mut Inner<C>)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            strategy: shared.strategy,
            snapshot: ArcSwap::new(shared.snapshot.load_full()),
            cursor: AtomicUsize::new(0),
            key: shared.key.clone(),
            outliers: shared.outliers,
            execution_fields: shared.execution_fields,
            scalers: AtomicUsize::new(shared.scalers.load(Ordering::Relaxed)),
        });
        change(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Runs `check` on every node each interval (on the current tokio
    /// runtime), all nodes at once and each within the interval,
    /// and takes failing nodes out of rotation until they pass again; see
    /// [`HealthCheckSettings`]. Dropping the handle stops it.
    pub fn start_health_checks<F, Fut>(
        &self,
        settings: HealthCheckSettings,
        check: F,
    ) -> HealthChecks
    where
        F: Fn(Arc<Node<C>>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = bool> + Send + 'static,
    {
        let balancer = self.clone();
        let stop = Arc::new(());
        let alive = Arc::downgrade(&stop);
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(settings.interval);
            while alive.upgrade().is_some() {
                ticks.tick().await;
                // Concurrently, each bounded: one node that hangs must not
                // hold up the others' verdicts.
                let round = balancer.nodes().into_iter().map(|node| {
                    let checked = tokio::time::timeout(settings.interval, check(Arc::clone(&node)));
                    async move {
                        let healthy = checked.await.unwrap_or(false);
                        node.health.check(
                            healthy,
                            settings.healthy_threshold,
                            settings.unhealthy_threshold,
                        );
                    }
                });
                futures_util::future::join_all(round).await;
            }
        });
        HealthChecks { task, _stop: stop }
    }

    /// Active health checks whose check is each node's own chain: `probe`
    /// runs through it (outside the balancer's accounting), and the node is
    /// healthy while that succeeds within the interval.
    pub fn start_chain_health_checks(&self, settings: HealthCheckSettings, probe: C) -> HealthChecks
    where
        C: Clone + Sync,
    {
        let probe = Arc::new(probe);
        self.start_health_checks(settings, move |node| {
            let probe = C::clone(&probe);
            async move { node.probe(probe).await }
        })
    }

    /// The cluster status: the strategy, whether auto-scaling is on,
    /// capacity and utilization, and every node's health, load, outcomes
    /// and latency.
    pub fn status(&self) -> ClusterStatus {
        let now = now_nanos();
        let nodes: Vec<NodeStatus> = self
            .nodes()
            .iter()
            .map(|node| NodeStatus {
                id: node.id().to_owned(),
                healthy: node.health.is_checked_healthy(),
                ejected: node.health.is_ejected(now),
                ejections: node.health.ejections(),
                in_flight: node.in_flight(),
                served: node.served(),
                successes: node.successes(),
                failures: node.failures(),
                last_request: node.last_request(),
                latency: node.latency(),
                weight: node.get_weight(),
                max_connections: node.get_max_connections(),
            })
            .collect();
        let healthy_nodes = nodes
            .iter()
            .filter(|node| node.healthy && !node.ejected)
            .count();
        let in_flight = nodes.iter().map(|node| node.in_flight).sum();
        let capacity = nodes
            .iter()
            .map(|node| (node.max_connections > 0).then_some(u64::from(node.max_connections)))
            .sum::<Option<u64>>()
            .filter(|_| !nodes.is_empty());
        ClusterStatus {
            strategy: self.inner.strategy,
            auto_scaling: self.inner.scalers.load(Ordering::Relaxed) > 0,
            total_nodes: nodes.len(),
            healthy_nodes,
            unhealthy_nodes: nodes.len() - healthy_nodes,
            in_flight,
            capacity,
            utilization: capacity
                .filter(|&capacity| capacity > 0)
                .map(|capacity| f64::from(in_flight) / capacity as f64),
            nodes,
        }
    }

    /// Adds a node; calls start reaching it at once.
    ///
    /// # Errors
    ///
    /// A [`Conflict`](ErrorKind::Conflict) error if a node has that id.
    pub fn add_node(&self, node: Node<C>) -> Result<()> {
        self.add_nodes([node])
    }

    /// Adds several nodes in one change of the node set: what the strategy
    /// precomputes (the hash ring, the weighted order) is rebuilt once
    /// rather than once per node, which is what makes a pool of thousands
    /// quick to fill.
    ///
    /// # Errors
    ///
    /// A [`Conflict`](ErrorKind::Conflict) error naming the first id that
    /// is already in the balancer or given twice; then none of the nodes
    /// is added.
    pub fn add_nodes(&self, nodes: impl IntoIterator<Item = Node<C>>) -> Result<()> {
        let added: Vec<Arc<Node<C>>> = nodes.into_iter().map(Arc::new).collect();
        if added.is_empty() {
            return Ok(());
        }
        let strategy = self.inner.strategy;
        let mut outcome = Ok(());
        self.inner.snapshot.rcu(|current| {
            let mut ids: std::collections::HashSet<&str> =
                current.nodes.iter().map(|node| node.id()).collect();
            if let Some(duplicate) = added.iter().find(|node| !ids.insert(node.id())) {
                outcome = Err(Error::conflict(format!(
                    "node `{}` already exists",
                    duplicate.id()
                )));
                return Arc::clone(current);
            }
            outcome = Ok(());
            let mut nodes = Vec::with_capacity(current.nodes.len() + added.len());
            nodes.extend(current.nodes.iter().cloned());
            nodes.extend(added.iter().cloned());
            Arc::new(Snapshot::new(strategy, nodes))
        });
        outcome
    }

    /// Removes a node; new calls stop reaching it, calls running on it
    /// finish (it drains). Returns it, to watch its in-flight count.
    ///
    /// # Errors
    ///
    /// A [`NotFound`](ErrorKind::NotFound) error naming an unknown id.
    pub fn remove_node(&self, id: &str) -> Result<Arc<Node<C>>> {
        let mut removed = None;
        self.inner.snapshot.rcu(|current| {
            removed = current.nodes.iter().find(|node| node.id() == id).cloned();
            let nodes = current
                .nodes
                .iter()
                .filter(|node| node.id() != id)
                .cloned()
                .collect();
            Arc::new(Snapshot::new(self.inner.strategy, nodes))
        });
        removed.ok_or_else(|| Error::not_found(format!("no node `{id}`")))
    }

    /// The nodes now.
    pub fn nodes(&self) -> Vec<Arc<Node<C>>> {
        self.inner.snapshot.load().nodes.clone()
    }

    /// The node the next call would go to, without calling it.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call), without running anything.
    pub fn pick(&self, key: Option<&str>) -> Result<Arc<Node<C>>> {
        let snapshot = self.inner.snapshot.load();
        let (index, connection) = self.acquire(&snapshot, key.map(str::as_bytes))?;
        drop(connection);
        Ok(Arc::clone(&snapshot.nodes[index]))
    }

    /// Runs `ctx` on a node chosen by the strategy.
    ///
    /// # Errors
    ///
    /// [`Unavailable`](ErrorKind::Unavailable) when there are no nodes,
    /// [`Rejected`](ErrorKind::Rejected) when every node is at its
    /// connection limit, or the node's own error.
    pub async fn call(&self, ctx: C) -> Result<C> {
        let snapshot = self.inner.snapshot.load_full();
        let key = self.inner.key.as_ref().and_then(|key| key(&ctx));
        let (index, connection) = self.acquire(&snapshot, key.as_deref().map(str::as_bytes))?;
        self.run(&snapshot, index, connection, ctx).await
    }

    /// Runs `ctx` on the node `node_id`, whatever the strategy would pick:
    /// for work that must run where its data is, or to reach one node on
    /// purpose.
    ///
    /// # Errors
    ///
    /// [`NotFound`](ErrorKind::NotFound) naming an unknown node,
    /// [`Unavailable`](ErrorKind::Unavailable) when it is unhealthy or
    /// ejected, [`Rejected`](ErrorKind::Rejected) when it is at its
    /// connection limit, or the node's own error.
    pub async fn call_on(&self, node_id: &str, ctx: C) -> Result<C> {
        let snapshot = self.inner.snapshot.load_full();
        let Some(&index) = snapshot.by_id.get(node_id) else {
            return Err(Error::not_found(format!(
                "no node `{node_id}` among the {} nodes of the balancer",
                snapshot.nodes.len()
            )));
        };
        let node = &snapshot.nodes[index];
        if !node.health.is_available(now_nanos) {
            return Err(Error::unavailable(format!(
                "node `{node_id}` is unhealthy or ejected"
            )));
        }
        let Some(connection) = node.try_acquire() else {
            return Err(Error::new(
                ErrorKind::Rejected,
                format!(
                    "node `{node_id}` is at its connection limit of {}",
                    node.get_max_connections()
                ),
            ));
        };
        self.run(&snapshot, index, connection, ctx).await
    }

    /// Runs `ctx` on the node at `index`, holding its connection, and
    /// records the outcome.
    async fn run(
        &self,
        snapshot: &Snapshot<C>,
        index: usize,
        connection: InFlight<'_, C>,
        ctx: C,
    ) -> Result<C> {
        let started = Instant::now();
        let mut outcome = snapshot.nodes[index].chain().execute(ctx).await;
        let node = connection.finish(started, outcome.is_ok());
        if let Some(policy) = &self.inner.outliers
            && node.health.observe(outcome.is_ok(), policy)
        {
            self.eject_if_allowed(snapshot, index, policy);
        }
        if self.inner.execution_fields
            && let Ok(result) = &mut outcome
            && let Some(fields) = (result as &mut dyn std::any::Any).downcast_mut::<Context>()
        {
            fields.insert(NODE_ID_FIELD, node.id());
            fields.insert(EXECUTION_TIME_FIELD, started.elapsed().as_secs_f64());
        }
        outcome
    }

    /// Ejects a node unless that would pass the ejected-percentage cap.
    fn eject_if_allowed(&self, snapshot: &Snapshot<C>, index: usize, policy: &OutlierDetection) {
        let now = now_nanos();
        let ejected = snapshot
            .nodes
            .iter()
            .filter(|node| node.health.is_ejected(now))
            .count();
        let cap = (snapshot.nodes.len() * policy.max_ejected_percent as usize / 100).max(1);
        if ejected < cap {
            snapshot.nodes[index].health.eject(policy, now);
        }
    }

    fn acquire<'a>(
        &self,
        snapshot: &'a Snapshot<C>,
        key: Option<&[u8]>,
    ) -> Result<(usize, InFlight<'a, C>)> {
        let nodes = &snapshot.nodes;
        let count = nodes.len();
        if count == 0 {
            return Err(Error::unavailable("no nodes to send the call to"));
        }
        let next = || self.inner.cursor.fetch_add(1, Ordering::Relaxed);
        // The clock is read at most once, and only if some node was ever
        // ejected: a clock read costs more than the rest of a pick.
        let clock = std::cell::OnceCell::new();
        let now = || *clock.get_or_init(now_nanos);
        let take = |index: usize| {
            let node = &nodes[index];
            if !node.health.is_available(now) {
                return None;
            }
            node.try_acquire().map(|connection| (index, connection))
        };
        let found = match (self.inner.strategy, key) {
            (Strategy::ConsistentHash, Some(key)) => snapshot.ring.walk(key, count).find_map(take),
            (Strategy::WeightedRoundRobin, _) => {
                let order = &snapshot.weighted;
                let start = next();
                (0..order.len()).find_map(|step| take(order[(start + step) % order.len()] as usize))
            }
            (Strategy::LeastConnections, _) => {
                let start = next() % count;
                least_loaded(nodes, start)
                    .and_then(take)
                    .or_else(|| rotate(start, count).find_map(take))
            }
            (Strategy::PowerOfTwoChoices, _) if count > 1 => {
                let first = fastrand::usize(..count);
                let second = (first + 1 + fastrand::usize(..count - 1)) % count;
                let (better, worse) = if nodes[first].load() <= nodes[second].load() {
                    (first, second)
                } else {
                    (second, first)
                };
                take(better)
                    .or_else(|| take(worse))
                    .or_else(|| rotate(first, count).find_map(take))
            }
            (Strategy::Random, _) => rotate(fastrand::usize(..count), count).find_map(take),
            _ => rotate(next(), count).find_map(take),
        };
        found.ok_or_else(|| {
            if nodes.iter().all(|node| !node.health.is_available(now)) {
                Error::unavailable(format!("none of the {count} nodes is healthy"))
            } else {
                Error::new(
                    ErrorKind::Rejected,
                    format!("all {count} nodes are at their connection limit"),
                )
            }
        })
    }
}

/// The node with the fewest calls in flight, scanning from `start` so ties
/// spread; an idle node ends the scan at once, since none can beat it.
fn least_loaded<C>(nodes: &[Arc<Node<C>>], start: usize) -> Option<usize> {
    let mut best: Option<(usize, u32)> = None;
    for (offset, node) in nodes[start..].iter().chain(&nodes[..start]).enumerate() {
        let load = node.in_flight();
        if best.is_none_or(|(_, least)| load < least) {
            best = Some(((start + offset) % nodes.len(), load));
            if load == 0 {
                break;
            }
        }
    }
    best.map(|(index, _)| index)
}

/// Every index once, starting at `start`.
fn rotate(start: usize, count: usize) -> impl Iterator<Item = usize> {
    (0..count).map(move |step| (start + step) % count)
}

impl LoadBalancer<Context> {
    /// Consistent hashing on the context field `field` (a string or number).
    #[must_use]
    pub fn hash_field(self, field: &str) -> Self {
        let field = field.to_owned();
        self.hash_key(move |ctx: &Context| match ctx.get_value(&field)? {
            serde_json::Value::String(key) => Some(key.clone()),
            other => Some(other.to_string()),
        })
    }
}

impl<C> fmt::Debug for LoadBalancer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snapshot = self.inner.snapshot.load();
        f.debug_struct("LoadBalancer")
            .field("strategy", &self.inner.strategy)
            .field(
                "nodes",
                &snapshot
                    .nodes
                    .iter()
                    .map(|node| node.id())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_weighted_order_matches_nginx() {
        let names = |order: Vec<u32>| {
            order
                .into_iter()
                .map(|i| ["a", "b", "c"][i as usize])
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(names(smooth_weighted_order(&[5, 1, 1])), "a a b a c a a");
        assert_eq!(names(smooth_weighted_order(&[1, 1, 1])), "a b c");
        assert!(smooth_weighted_order(&[]).is_empty());
    }

    fn node(id: &str) -> Node<Context> {
        Node::new(id, chain_core::Chain::named("node").link_sync(Ok))
    }

    #[test]
    fn add_nodes_adds_all_or_none() {
        let balancer = LoadBalancer::<Context>::new(Strategy::ConsistentHash);
        balancer.add_node(node("a")).unwrap();
        let error = balancer
            .add_nodes([node("b"), node("a"), node("c")])
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Conflict);
        assert!(error.to_string().contains("`a`"), "{error}");
        let error = balancer.add_nodes([node("b"), node("b")]).unwrap_err();
        assert!(error.to_string().contains("`b`"), "{error}");
        assert_eq!(balancer.nodes().len(), 1);

        balancer.add_nodes([node("b"), node("c")]).unwrap();
        let ids: Vec<String> = balancer.nodes().iter().map(|n| n.id().to_owned()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        // The ring was rebuilt with the new nodes: keys reach all three.
        let reached: std::collections::HashSet<String> = (0..200)
            .map(|k| {
                balancer
                    .pick(Some(&format!("key-{k}")))
                    .unwrap()
                    .id()
                    .to_owned()
            })
            .collect();
        assert_eq!(reached.len(), 3);
    }

    #[test]
    fn a_pool_of_ten_thousand_nodes_is_filled_in_one_change() {
        // Weighted round robin's order costs nodes × total weight to build
        // (nginx's algorithm); the others are linear in the pool.
        for strategy in [Strategy::ConsistentHash, Strategy::LeastConnections] {
            let balancer = LoadBalancer::<Context>::new(strategy);
            balancer
                .add_nodes((0..10_000).map(|n| node(&format!("node-{n}"))))
                .unwrap();
            assert_eq!(balancer.nodes().len(), 10_000);
            assert!(balancer.pick(Some("user-4711")).is_ok());
        }
    }
}

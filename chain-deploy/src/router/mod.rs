//! The traffic router: a reverse proxy that splits requests between
//! upstream environments by weight (or stickily by user), changes the split
//! atomically without dropping requests, and measures every upstream.

mod proxy;
mod split;
mod stats;
mod upstream;
mod wire;

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::uri::Authority;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::DeployError;
pub use split::Stickiness;
use split::{ALL, Table, Upstream};
pub use stats::UpstreamStats;
use stats::Window;

/// The router's upstreams and behaviour.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    upstreams: Vec<(String, String)>,
    stickiness: Stickiness,
    upstream_timeout: Duration,
    upstream_idle_timeout: Duration,
    stats_window: Duration,
    stats_capacity: usize,
    header_read_timeout: Duration,
    max_connections: usize,
    body_idle_timeout: Duration,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            upstreams: Vec::new(),
            stickiness: Stickiness::None,
            upstream_timeout: Duration::from_secs(30),
            upstream_idle_timeout: Duration::from_secs(90),
            stats_window: Duration::from_secs(300),
            stats_capacity: 100_000,
            header_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            body_idle_timeout: Duration::from_secs(60),
        }
    }
}

impl RouterConfig {
    /// No upstreams yet.
    pub fn new() -> Self {
        RouterConfig::default()
    }

    /// Adds an upstream environment at `url` (`http://host:port`). The
    /// first one added starts with all the traffic.
    pub fn upstream(mut self, name: impl Into<String>, url: impl Into<String>) -> Self {
        self.upstreams.push((name.into(), url.into()));
        self
    }

    /// How requests are assigned (default: at random by weight).
    pub fn stickiness(mut self, stickiness: Stickiness) -> Self {
        self.stickiness = stickiness;
        self
    }

    /// How long an upstream may take to answer before the client gets 504
    /// (default 30 s).
    pub fn upstream_timeout(mut self, timeout: Duration) -> Self {
        self.upstream_timeout = timeout;
        self
    }

    /// How long a kept-alive upstream connection may sit unused before the
    /// router closes it (default 90 s): connections to an environment that
    /// no longer gets traffic do not stay open.
    pub fn upstream_idle_timeout(mut self, timeout: Duration) -> Self {
        self.upstream_idle_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Longest a client may take to send a request head, and to send the
    /// next one on a kept-alive connection (10 s by default); then the
    /// connection is closed, so stalled clients cannot pile up.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Client connections open at once, at most (10,000 by default, across
    /// every thread of [`TrafficRouter::serve_on_threads`]); further ones
    /// wait in the listen queue until one closes, as nginx's
    /// `worker_connections`.
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections.clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        self
    }

    /// Longest an upstream may send nothing in the middle of a response
    /// body (60 s by default); then the response is broken off and counted
    /// as an error, so a stalled upstream cannot hold a client for ever.
    pub fn body_idle_timeout(mut self, timeout: Duration) -> Self {
        self.body_idle_timeout = timeout;
        self
    }

    /// How far back statistics reach (default 5 minutes), and at most how
    /// many requests per upstream and thread they keep (default 100,000).
    pub fn stats_window(mut self, window: Duration, max_requests: usize) -> Self {
        self.stats_window = window;
        self.stats_capacity = max_requests.max(1);
        self
    }
}

/// A reverse proxy splitting traffic between upstream environments.
/// Cheap to clone.
///
/// ```no_run
/// use chain_deploy::router::{RouterConfig, TrafficRouter};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let router = TrafficRouter::new(
///     RouterConfig::new()
///         .upstream("stable", "http://10.0.0.5:8080")
///         .upstream("canary", "http://10.0.0.6:8080"),
/// )?;
/// router.set_split(&[("stable", 95.0), ("canary", 5.0)])?;
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:8000").await?;
/// let server = router.serve(listener);
/// // ... later
/// server.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TrafficRouter {
    inner: Arc<Inner>,
}

struct Inner {
    table: ArcSwap<Table>,
    stickiness: Stickiness,
    upstream_timeout: Duration,
    upstream_idle_timeout: Duration,
    header_read_timeout: Duration,
    body_idle_timeout: Duration,
    /// Client connections open, across every accept loop.
    connections: Arc<tokio::sync::Semaphore>,
}

impl TrafficRouter {
    /// A router over the configured upstreams; the first has all traffic.
    pub fn new(config: RouterConfig) -> Result<Self, DeployError> {
        let mut names = HashSet::new();
        let mut upstreams = Vec::new();
        for (name, url) in &config.upstreams {
            if !names.insert(name.as_str()) {
                return Err(DeployError::DuplicateUpstream { name: name.clone() });
            }
            let authority = parse_authority(name, url)?;
            upstreams.push(Arc::new(Upstream {
                name: Arc::from(name.as_str()),
                host: host_header(name, url, &authority)?,
                authority,
                stats: Arc::new(Window::new(config.stats_window, config.stats_capacity)),
                in_flight: Arc::default(),
            }));
        }
        let routes = upstreams
            .iter()
            .enumerate()
            .map(|(index, upstream)| (Arc::clone(upstream), if index == 0 { ALL } else { 0 }))
            .collect();
        Ok(TrafficRouter {
            inner: Arc::new(Inner {
                table: ArcSwap::from_pointee(Table { routes }),
                stickiness: config.stickiness,
                upstream_timeout: config.upstream_timeout,
                upstream_idle_timeout: config.upstream_idle_timeout,
                header_read_timeout: config.header_read_timeout,
                body_idle_timeout: config.body_idle_timeout,
                connections: Arc::new(tokio::sync::Semaphore::new(config.max_connections)),
            }),
        })
    }

    /// Sets every upstream's share in percent; upstreams not named get
    /// none. The shares must add up to 100. Requests already in flight
    /// finish where they started.
    pub fn set_split(&self, shares: &[(&str, f64)]) -> Result<(), DeployError> {
        let table = self.inner.table.load();
        let mut basis_points = vec![0u32; table.routes.len()];
        let mut total = 0.0;
        for (name, percent) in shares {
            if !(0.0..=100.0).contains(percent) {
                return Err(DeployError::InvalidSplit {
                    reason: format!("`{name}` gets {percent}%, outside 0..=100"),
                });
            }
            let index = index_of(&table, name)?;
            basis_points[index] = (percent * 100.0).round() as u32;
            total += percent;
        }
        if (total - 100.0).abs() > 0.01 {
            return Err(DeployError::InvalidSplit {
                reason: format!("shares add up to {total}%, not 100%"),
            });
        }
        // Rounding may leave a basis point over or under: the largest share
        // absorbs it, so the slices always cover every point.
        let sum: u32 = basis_points.iter().sum();
        if let Some(largest) = (0..basis_points.len()).max_by_key(|&i| basis_points[i]) {
            basis_points[largest] = (basis_points[largest] + ALL).saturating_sub(sum);
        }
        let routes = table
            .routes
            .iter()
            .zip(basis_points)
            .map(|((upstream, _), share)| (Arc::clone(upstream), share))
            .collect();
        self.inner.table.store(Arc::new(Table { routes }));
        Ok(())
    }

    /// Points an upstream at a new address (a new release's pods), keeping
    /// its share and statistics. Requests in flight finish at the old one.
    pub fn set_target(&self, name: &str, url: &str) -> Result<(), DeployError> {
        let authority = parse_authority(name, url)?;
        let table = self.inner.table.load();
        let index = index_of(&table, name)?;
        let mut routes = table.routes.clone();
        let (old, share) = &routes[index];
        let moved = Arc::new(Upstream {
            name: Arc::clone(&old.name),
            host: host_header(name, url, &authority)?,
            authority,
            stats: Arc::clone(&old.stats),
            in_flight: Arc::clone(&old.in_flight),
        });
        routes[index] = (moved, *share);
        self.inner.table.store(Arc::new(Table { routes }));
        Ok(())
    }

    /// Sends all traffic to one upstream.
    pub fn route_all_to(&self, name: &str) -> Result<(), DeployError> {
        self.set_split(&[(name, 100.0)])
    }

    /// Every upstream's share in percent, in configuration order.
    pub fn split(&self) -> Vec<(String, f64)> {
        self.inner
            .table
            .load()
            .routes
            .iter()
            .map(|(upstream, share)| (upstream.name.to_string(), f64::from(*share) / 100.0))
            .collect()
    }

    /// One upstream's share in percent.
    pub fn share_of(&self, name: &str) -> Result<f64, DeployError> {
        let table = self.inner.table.load();
        Ok(f64::from(table.routes[index_of(&table, name)?].1) / 100.0)
    }

    /// Statistics of `name` over the last `over` (capped by the window).
    pub fn stats(&self, name: &str, over: Duration) -> Result<UpstreamStats, DeployError> {
        let table = self.inner.table.load();
        Ok(table.routes[index_of(&table, name)?].0.stats.stats(over))
    }

    /// Requests to `name` not finished yet (a response whose body is still
    /// being sent counts).
    pub fn in_flight(&self, name: &str) -> Result<usize, DeployError> {
        let table = self.inner.table.load();
        Ok(table.routes[index_of(&table, name)?].0.in_flight.count())
    }

    /// Waits until no request to `name` is in flight, at most `timeout`;
    /// returns how many still are (0 when drained). Take traffic away from
    /// it first, or new requests keep coming.
    pub async fn drain(&self, name: &str, timeout: Duration) -> Result<usize, DeployError> {
        let in_flight = {
            let table = self.inner.table.load();
            Arc::clone(&table.routes[index_of(&table, name)?].0.in_flight)
        };
        let _ = tokio::time::timeout(timeout, in_flight.idle()).await;
        Ok(in_flight.count())
    }

    /// The `http://host:port` of an upstream.
    pub fn url_of(&self, name: &str) -> Result<String, DeployError> {
        let table = self.inner.table.load();
        Ok(format!(
            "http://{}",
            table.routes[index_of(&table, name)?].0.authority
        ))
    }

    /// Serves on `listener` until [`RouterServer::shutdown`].
    pub fn serve(&self, listener: TcpListener) -> RouterServer {
        let address = listener.local_addr().ok();
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(proxy::accept_loop(self.clone(), listener, stopped));
        RouterServer {
            address,
            stop,
            task: Some(task),
            threads: Vec::new(),
        }
    }

    /// Serves on `address` with `threads` event loops, one per thread, each
    /// with its own listening socket (`SO_REUSEPORT`: the kernel spreads
    /// connections over them) and its own upstream connections, so a
    /// request and its upstream call never change threads, as in nginx's
    /// worker processes. The routing table and statistics stay shared.
    pub fn serve_on_threads(
        &self,
        address: SocketAddr,
        threads: usize,
    ) -> std::io::Result<RouterServer> {
        let (stop, stopped) = watch::channel(false);
        let mut handles = Vec::new();
        let mut bound = None;
        for index in 0..threads.max(1) {
            let listener = reuse_port_listener(bound.unwrap_or(address))?;
            bound = Some(listener.local_addr()?);
            let (router, stopped) = (self.clone(), stopped.clone());
            let handle = std::thread::Builder::new()
                .name(format!("router-{index}"))
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(error) => {
                            tracing::error!(%error, "router thread could not start its runtime");
                            return;
                        }
                    };
                    runtime.block_on(async move {
                        match TcpListener::from_std(listener) {
                            Ok(listener) => proxy::accept_loop(router, listener, stopped).await,
                            Err(error) => tracing::error!(%error, "router thread could not listen"),
                        }
                    });
                })?;
            handles.push(handle);
        }
        Ok(RouterServer {
            address: bound,
            stop,
            task: None,
            threads: handles,
        })
    }
}

fn index_of(table: &Table, name: &str) -> Result<usize, DeployError> {
    table
        .routes
        .iter()
        .position(|(upstream, _)| &*upstream.name == name)
        .ok_or_else(|| DeployError::UnknownUpstream {
            name: name.to_owned(),
        })
}

fn parse_authority(name: &str, url: &str) -> Result<Authority, DeployError> {
    let invalid = |reason: &str| DeployError::InvalidUrl {
        name: name.to_owned(),
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: http::Uri = url.parse().map_err(|_| invalid("not a URL"))?;
    if uri.scheme_str() != Some("http") {
        return Err(invalid("only http:// upstreams are supported"));
    }
    let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
    if authority.port_u16().is_none() {
        return Err(invalid("no port"));
    }
    if uri.path() != "/" && !uri.path().is_empty() {
        return Err(invalid("a path is not supported; requests keep theirs"));
    }
    Ok(authority.clone())
}

fn reuse_port_listener(address: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

fn host_header(
    name: &str,
    url: &str,
    authority: &Authority,
) -> Result<http::HeaderValue, DeployError> {
    http::HeaderValue::from_str(authority.as_str()).map_err(|_| DeployError::InvalidUrl {
        name: name.to_owned(),
        url: url.to_owned(),
        reason: "the host cannot be a header value".to_owned(),
    })
}

/// The running router; stops gracefully on [`shutdown`](Self::shutdown),
/// and stops accepting when dropped.
#[derive(Debug)]
pub struct RouterServer {
    address: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl RouterServer {
    /// Where it listens.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.address
    }

    /// Stops accepting connections and waits for requests in flight.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task
            && let Err(error) = task.await
        {
            tracing::error!(%error, "router accept loop ended abnormally");
        }
        for thread in self.threads {
            let joined = tokio::task::spawn_blocking(move || thread.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                tracing::error!("a router thread ended abnormally");
            }
        }
    }
}

impl fmt::Debug for TrafficRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrafficRouter")
            .field("split", &self.split())
            .field("stickiness", &self.inner.stickiness)
            .finish_non_exhaustive()
    }
}

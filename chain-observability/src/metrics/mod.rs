//! [`ChainMetrics`]: Prometheus metrics measured from real executions.

mod labels;
mod memory;
mod summary;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chain_core::middleware::{LinkInfo, Observer};
use chain_core::{BoxFuture, Chain, Error, ErrorKind, Middleware, Next, Result, ResultExt};
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use labels::LabelGuard;
pub use labels::OTHER;
use summary::{Execution, History};
pub use summary::{Health, HealthStatus, HealthThresholds, PerformanceSummary};

/// The execution-duration buckets, in seconds.
pub const EXECUTION_BUCKETS: [f64; 9] = [0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// Link-duration buckets, in seconds: links are usually much shorter than
/// whole executions.
pub const LINK_BUCKETS: [f64; 12] = [
    0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Settings of [`ChainMetrics`].
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsConfig {
    /// Buckets of `modulink_execution_duration_seconds`.
    pub execution_buckets: Vec<f64>,
    /// Buckets of `modulink_function_duration_seconds`.
    pub link_buckets: Vec<f64>,
    /// Distinct chain names, and separately link names, admitted as label
    /// values; further ones are folded into `other`.
    pub max_label_values: usize,
    /// Executions kept per chain for [`ChainMetrics::summary`] and
    /// [`ChainMetrics::health`].
    pub history: usize,
    /// The rules of [`ChainMetrics::health`].
    pub health: HealthThresholds,
    /// Least time between two reads of the process's resident memory.
    pub memory_interval: Duration,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            execution_buckets: EXECUTION_BUCKETS.to_vec(),
            link_buckets: LINK_BUCKETS.to_vec(),
            max_label_values: 100,
            history: 10_000,
            health: HealthThresholds::default(),
            memory_interval: Duration::from_secs(1),
        }
    }
}

/// Prometheus metrics for chains, named as the Python cookbook names them:
///
/// | metric | labels |
/// |---|---|
/// | `modulink_chain_executions_total` | `chain_name`, `status` (`success`/`error`) |
/// | `modulink_execution_duration_seconds` (histogram) | `chain_name` |
/// | `modulink_active_chains` | `chain_name` |
/// | `modulink_function_executions_total` | `chain_name`, `function_name`, `status` |
/// | `modulink_function_duration_seconds` (histogram) | `chain_name`, `function_name` |
/// | `modulink_memory_usage_bytes` | `chain_name` |
///
/// They are registered into the registry you pass, never the global one.
/// [`instrument`](Self::instrument) attaches them to a chain: an
/// [`around`](Chain::around) middleware counts and times each execution and
/// holds the active gauge up for exactly its duration (a drop guard brings
/// it down on errors and cancellation too), and an
/// [`observer`](Chain::observe) counts and times each link without
/// allocating. Only chain and link names become label values, and at most
/// [`MetricsConfig::max_label_values`] of each.
///
/// ```
/// use chain_core::{Chain, Context};
/// use chain_observability::ChainMetrics;
/// use prometheus::{Encoder, Registry, TextEncoder};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> chain_core::Result<()> {
/// let registry = Registry::new();
/// let metrics = ChainMetrics::new(&registry)?;
/// let chain = metrics.instrument(Chain::named("checkout").link_sync(|ctx: Context| Ok(ctx.with("paid", true))));
/// chain.execute(Context::new()).await?;
///
/// let mut text = Vec::new();
/// TextEncoder::new().encode(&registry.gather(), &mut text).unwrap();
/// let text = String::from_utf8(text).unwrap();
/// assert!(text.contains(r#"modulink_chain_executions_total{chain_name="checkout",status="success"} 1"#));
/// assert_eq!(metrics.summary("checkout").unwrap().successes, 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ChainMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    executions: IntCounterVec,
    execution_duration: HistogramVec,
    active: IntGaugeVec,
    link_executions: IntCounterVec,
    link_duration: HistogramVec,
    memory: IntGaugeVec,
    chain_names: LabelGuard,
    link_names: LabelGuard,
    histories: Mutex<HashMap<String, History>>,
    config: MetricsConfig,
    memory_sampler: memory::Sampler,
}

/// Buckets must be finite and strictly increasing: the client library only
/// finds out when a labelled child is made, by panicking.
fn check_buckets(name: &str, buckets: &[f64]) -> Result<()> {
    let increasing = buckets.windows(2).all(|pair| pair[0] < pair[1]);
    if buckets.iter().all(|bound| bound.is_finite()) && increasing {
        Ok(())
    } else {
        Err(Error::validation(format!(
            "{name} must be finite and strictly increasing, got {buckets:?}"
        )))
    }
}

fn register<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> Result<M> {
    registry
        .register(Box::new(metric.clone()))
        .map_err(|source| {
            Error::new(
                ErrorKind::Conflict,
                format!("cannot register metric: {source}"),
            )
            .with_source(source)
        })?;
    Ok(metric)
}

impl ChainMetrics {
    /// Metrics with the default settings, registered into `registry`.
    ///
    /// # Errors
    ///
    /// A [`Conflict`](ErrorKind::Conflict) error if `registry` already holds
    /// metrics of these names.
    pub fn new(registry: &Registry) -> Result<Self> {
        Self::with_config(registry, MetricsConfig::default())
    }

    /// Metrics with `config`, registered into `registry`.
    ///
    /// # Errors
    ///
    /// A [`Conflict`](ErrorKind::Conflict) error if the names are taken; a
    /// [`Validation`](ErrorKind::Validation) error for buckets that are not
    /// strictly increasing.
    pub fn with_config(registry: &Registry, config: MetricsConfig) -> Result<Self> {
        check_buckets("execution_buckets", &config.execution_buckets)?;
        check_buckets("link_buckets", &config.link_buckets)?;
        let histogram = |name: &str, help: &str, buckets: &[f64], labels: &[&str]| {
            HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                labels,
            )
            .kind(ErrorKind::Validation)
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).kind(ErrorKind::Validation)
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            IntGaugeVec::new(Opts::new(name, help), labels).kind(ErrorKind::Validation)
        };
        let inner = Inner {
            executions: register(
                registry,
                counter(
                    "modulink_chain_executions_total",
                    "Total number of chain executions",
                    &["chain_name", "status"],
                )?,
            )?,
            execution_duration: register(
                registry,
                histogram(
                    "modulink_execution_duration_seconds",
                    "Chain execution duration in seconds",
                    &config.execution_buckets,
                    &["chain_name"],
                )?,
            )?,
            active: register(
                registry,
                gauge(
                    "modulink_active_chains",
                    "Number of currently executing chains",
                    &["chain_name"],
                )?,
            )?,
            link_executions: register(
                registry,
                counter(
                    "modulink_function_executions_total",
                    "Total number of function executions within chains",
                    &["chain_name", "function_name", "status"],
                )?,
            )?,
            link_duration: register(
                registry,
                histogram(
                    "modulink_function_duration_seconds",
                    "Duration of function executions within chains in seconds",
                    &config.link_buckets,
                    &["chain_name", "function_name"],
                )?,
            )?,
            memory: register(
                registry,
                gauge(
                    "modulink_memory_usage_bytes",
                    "Resident memory of the process after a chain execution",
                    &["chain_name"],
                )?,
            )?,
            chain_names: LabelGuard::new(config.max_label_values),
            link_names: LabelGuard::new(config.max_label_values),
            histories: Mutex::new(HashMap::new()),
            memory_sampler: memory::Sampler::new(config.memory_interval),
            config,
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The chain with its executions and links measured. Call it after the
    /// last link is added: links resolve their metric handles here, so
    /// recording them costs no label lookup.
    pub fn instrument<C: Send + 'static>(&self, chain: Chain<C>) -> Chain<C> {
        let inner = &self.inner;
        let chain_label = inner.chain_names.admit(chain.name());
        let links = chain
            .inspect()
            .links
            .iter()
            .map(|link| LinkHandles::new(inner, &chain_label, &inner.link_names.admit(&link.name)))
            .collect();
        let execution = ExecutionMetrics {
            succeeded: inner
                .executions
                .with_label_values(&[chain_label.as_str(), "success"]),
            failed: inner
                .executions
                .with_label_values(&[chain_label.as_str(), "error"]),
            duration: inner
                .execution_duration
                .with_label_values(&[chain_label.as_str()]),
            active: inner.active.with_label_values(&[chain_label.as_str()]),
            memory: inner.memory.with_label_values(&[chain_label.as_str()]),
            chain: chain_label.clone(),
            metrics: Arc::clone(inner),
        };
        chain.around(execution).observe(LinkMetrics {
            chain: chain_label,
            links,
            metrics: Arc::clone(inner),
        })
    }

    /// Performance over the recent executions of `chain` (by its label
    /// value), or `None` before its first execution.
    pub fn summary(&self, chain: &str) -> Option<PerformanceSummary> {
        self.histories().get(chain)?.summary()
    }

    /// The summary of every chain executed so far, by label.
    pub fn summaries(&self) -> BTreeMap<String, PerformanceSummary> {
        self.histories()
            .iter()
            .filter_map(|(chain, history)| Some((chain.clone(), history.summary()?)))
            .collect()
    }

    /// Performance across every chain: the recent executions of all of
    /// them pooled (each chain's window, as in [`summary`](Self::summary)),
    /// or `None` before the first execution.
    pub fn overall_summary(&self) -> Option<PerformanceSummary> {
        summary::summarize(self.histories().values().flat_map(History::executions))
    }

    fn health_window_start(&self) -> Instant {
        Instant::now()
            .checked_sub(self.inner.config.health.window)
            .unwrap_or_else(Instant::now)
    }

    fn histories(&self) -> std::sync::MutexGuard<'_, HashMap<String, History>> {
        self.inner
            .histories
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Health of `chain` by the configured rules.
    pub fn health(&self, chain: &str) -> Health {
        let since = self.health_window_start();
        let histories = self.histories();
        match histories.get(chain) {
            Some(history) => self.inner.config.health.judge(history.recent(since)),
            None => self.inner.config.health.judge(std::iter::empty()),
        }
    }

    /// Health over the recent executions of every chain together.
    pub fn overall_health(&self) -> Health {
        let since = self.health_window_start();
        let histories = self.histories();
        self.inner
            .config
            .health
            .judge(histories.values().flat_map(|history| history.recent(since)))
    }
}

impl std::fmt::Debug for ChainMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainMetrics")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// Adds an execution to its chain's history; the chain's key is only
    /// allocated the first time, not on every execution.
    fn record(&self, chain: &str, execution: Execution) {
        let mut histories = self
            .histories
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match histories.get_mut(chain) {
            Some(history) => history.push(execution),
            None => {
                let mut history = History::new(self.config.history);
                history.push(execution);
                histories.insert(chain.to_owned(), history);
            }
        }
    }
}

/// The metric handles of one link, resolved once.
struct LinkHandles {
    succeeded: IntCounter,
    failed: IntCounter,
    duration: Histogram,
}

impl LinkHandles {
    fn new(inner: &Inner, chain: &str, link: &str) -> Self {
        Self {
            succeeded: inner
                .link_executions
                .with_label_values(&[chain, link, "success"]),
            failed: inner
                .link_executions
                .with_label_values(&[chain, link, "error"]),
            duration: inner.link_duration.with_label_values(&[chain, link]),
        }
    }
}

/// Counts and times each link; made by [`ChainMetrics::instrument`].
struct LinkMetrics {
    chain: String,
    links: Vec<LinkHandles>,
    metrics: Arc<Inner>,
}

impl<C: Send + 'static> Observer<C> for LinkMetrics {
    fn on_link(&self, link: &LinkInfo, elapsed: Duration, outcome: &mut Result<C>) {
        let record = |handles: &LinkHandles| {
            match outcome {
                Ok(_) => handles.succeeded.inc(),
                Err(_) => handles.failed.inc(),
            }
            handles.duration.observe(elapsed.as_secs_f64());
        };
        match self.links.get(link.index()) {
            Some(handles) => record(handles),
            // A link added after instrumenting: resolve its handles now.
            None => record(&LinkHandles::new(
                &self.metrics,
                &self.chain,
                &self.metrics.link_names.admit(link.name()),
            )),
        }
    }

    fn name(&self) -> std::borrow::Cow<'static, str> {
        "metrics".into()
    }
}

/// Counts and times each execution and holds the active gauge; made by
/// [`ChainMetrics::instrument`].
struct ExecutionMetrics {
    succeeded: IntCounter,
    failed: IntCounter,
    duration: Histogram,
    active: IntGauge,
    memory: IntGauge,
    chain: String,
    metrics: Arc<Inner>,
}

/// Brings the active gauge down when the execution ends, however it ends.
struct Active<'a>(&'a IntGauge);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl<C: Send + 'static> Middleware<C> for ExecutionMetrics {
    fn call(&self, ctx: C, next: Next<C>) -> BoxFuture<'_, Result<C>> {
        Box::pin(async move {
            self.active.inc();
            let _active = Active(&self.active);
            let started = Instant::now();
            let outcome = next.run(ctx).await;
            let duration = started.elapsed();
            let success = outcome.is_ok();
            if success {
                &self.succeeded
            } else {
                &self.failed
            }
            .inc();
            self.duration.observe(duration.as_secs_f64());
            self.metrics.record(
                &self.chain,
                Execution {
                    finished: Instant::now(),
                    duration,
                    success,
                },
            );
            if let Some(bytes) = self.metrics.memory_sampler.sample() {
                self.memory.set(bytes);
            }
            outcome
        })
    }

    fn name(&self) -> std::borrow::Cow<'static, str> {
        "metrics".into()
    }
}

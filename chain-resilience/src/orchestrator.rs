//! [`Orchestrator`]: chains whose links are HTTP services, each behind its
//! own timeout, retry and circuit breaker (feature `http`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chain_core::remote::{RemoteEndpoint, outgoing_headers};
use chain_core::stats::RecentDurations;
use chain_core::{BoxFuture, Chain, Context, Error, ErrorKind, HasExtensions, Link, Result};
use reqwest::header::{HeaderMap, HeaderValue};
use serde::Serialize;
use serde_json::Value;

use crate::{CircuitBreaker, CircuitBreakerConfig, Pipeline, Retry, State};

/// One HTTP service: where it is and how to call it.
///
/// Defaults: a 30 s timeout per attempt, 3 attempts sharing one
/// `Idempotency-Key` header, and a breaker that opens after 5 consecutive
/// failures for 5 minutes.
///
/// A `POST` is not idempotent: when an answer is lost after the service
/// acted (a charge taken, then a 503 or a dropped connection), a plain
/// retry acts again. So every call carries an `Idempotency-Key` (the IETF
/// draft's header), generated once per execution of the link and sent
/// unchanged with each of its attempts: a service that remembers the keys
/// it has acted on then acts once. A key the context already sends, in its
/// `OutgoingHeaders` extension, is kept instead (for example an order id,
/// stable across executions). A service that cannot take the header gets
/// [`without_idempotency_key`](Self::without_idempotency_key), and is then
/// called once unless [`retry`](Self::retry) asks for more.
#[derive(Clone, Debug)]
pub struct ServiceEndpoint {
    name: String,
    url: String,
    timeout: Duration,
    /// `None`: 3 attempts with a key, 1 without.
    retry: Option<Retry>,
    idempotency_key: bool,
    breaker: CircuitBreakerConfig,
}

/// The header a retried call repeats so that the service acts once.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

impl ServiceEndpoint {
    /// A service named `name` that takes `POST` requests at `url`.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            url: url.into(),
            timeout: Duration::from_secs(30),
            retry: None,
            idempotency_key: true,
            breaker: CircuitBreakerConfig::consecutive_failures(5, Duration::from_secs(300)),
        }
    }

    /// The limit on each attempt.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The retry policy. Set without an idempotency key, it is the
    /// caller's word that repeating the call is safe.
    #[must_use]
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Sends no `Idempotency-Key`, for a service that rejects unknown
    /// headers or is idempotent by itself. Calls are then made once,
    /// unless [`retry`](Self::retry) sets a policy explicitly.
    #[must_use]
    pub fn without_idempotency_key(mut self) -> Self {
        self.idempotency_key = false;
        self
    }

    /// The retry policy in force: the one set, or the default for whether
    /// calls carry a key.
    fn retry_policy(&self) -> Retry {
        match (&self.retry, self.idempotency_key) {
            (Some(retry), _) => retry.clone(),
            (None, true) => Retry::new(3),
            (None, false) => Retry::new(1),
        }
    }

    /// The circuit breaker's settings.
    #[must_use]
    pub fn breaker(mut self, config: CircuitBreakerConfig) -> Self {
        self.breaker = config;
        self
    }
}

/// Why a call to a service failed, as the source of the chain error: the
/// failure type of chain-core's [`RemoteEndpoint`], which every ModuLink
/// HTTP call shares.
pub use chain_core::remote::RemoteFailure as ServiceFailure;

/// Calls, outcomes and latency of one service, as measured by the
/// orchestrator (every attempt counts).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceMetrics {
    /// The service.
    pub name: String,
    /// Attempts made.
    pub calls: u64,
    /// Attempts that got a 2xx JSON answer.
    pub successes: u64,
    /// Attempts that failed, timeouts included.
    pub failures: u64,
    /// Average latency over the recent attempts.
    pub average_latency: Option<Duration>,
    /// 99th percentile latency over the recent attempts.
    pub p99_latency: Option<Duration>,
    /// The service's circuit breaker state.
    pub breaker: State,
}

/// Adds headers to each request, e.g. for trace propagation.
pub type HeaderHook = Arc<dyn Fn(&Context, &mut HeaderMap) + Send + Sync>;

/// Builds chains whose links `POST` the context as JSON to HTTP services and
/// merge each JSON answer under `"{service}_result"`.
///
/// It works on [`Context`] only, by design: each answer goes into a JSON
/// field named at run time after the service, which a struct cannot have.
/// For a typed context, chain `chain_core::remote::RemoteEndpoint` links
/// (the same HTTP call, whose answer becomes the next context) behind the
/// [`Pipeline`] of your choice.
///
/// The headers of the context's `OutgoingHeaders` extension (the
/// `traceparent` that chain-observability's tracer keeps there) go with
/// every request; [`header_hook`](Self::header_hook) adds more.
///
/// Each service gets its own [`Pipeline`]: retry, circuit breaker and
/// attempt timeout, in that order, and its own measured metrics. Failures
/// are distinct errors naming the service: connection refused and transport
/// failures are [`Unavailable`](ErrorKind::Unavailable), timeouts
/// [`Timeout`](ErrorKind::Timeout), 5xx `Unavailable`, 429
/// [`Rejected`](ErrorKind::Rejected), 401, 403 and 404 their own kinds,
/// other 4xx [`Validation`](ErrorKind::Validation), and invalid JSON
/// [`Internal`](ErrorKind::Internal); the source is a [`ServiceFailure`] or
/// a timeout's [`Elapsed`](crate::Elapsed).
///
/// ```no_run
/// use chain_core::Context;
/// use chain_resilience::{Orchestrator, ServiceEndpoint};
///
/// # async fn run() -> chain_core::Result<()> {
/// let orchestrator = Orchestrator::new([
///     ServiceEndpoint::new("user_service", "http://user-service:8001/process"),
///     ServiceEndpoint::new("inventory_service", "http://inventory-service:8003/process"),
///     ServiceEndpoint::new("payment_service", "http://payment-service:8002/process"),
///     ServiceEndpoint::new("notification_service", "http://notification-service:8004/process"),
/// ])?
/// .header_hook(|ctx, headers| {
///     if let Some(Ok(value)) = ctx.get_value("traceparent").and_then(|v| v.as_str()).map(|v| v.parse()) {
///         headers.insert("traceparent", value);
///     }
/// });
/// let orders = orchestrator.chain(["user_service", "inventory_service", "payment_service", "notification_service"])?;
/// let out = orders.execute(Context::new().with("order_id", "ORD-12345")).await?;
/// println!("{}", out.to_json());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Orchestrator {
    services: HashMap<String, Arc<Service>>,
    header_hook: Option<HeaderHook>,
}

struct Service {
    name: Arc<str>,
    endpoint: RemoteEndpoint,
    idempotency_key: bool,
    breaker: CircuitBreaker,
    pipeline: Pipeline,
    stats: Stats,
}

/// Latencies kept per service for the average and p99.
const RECENT_LATENCIES: usize = 1024;

struct Stats {
    calls: AtomicU64,
    successes: AtomicU64,
    failures: AtomicU64,
    recent: Mutex<RecentDurations>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            calls: AtomicU64::new(0),
            successes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            recent: Mutex::new(RecentDurations::new(RECENT_LATENCIES)),
        }
    }
}

impl Stats {
    fn record(&self, latency: Duration, success: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let outcome = if success {
            &self.successes
        } else {
            &self.failures
        };
        outcome.fetch_add(1, Ordering::Relaxed);
        self.recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(latency);
    }

    fn latencies(&self) -> (Option<Duration>, Option<Duration>) {
        let recent = self
            .recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .percentiles();
        (recent.mean(), recent.percentile(0.99))
    }
}

impl Orchestrator {
    /// An orchestrator for `endpoints`.
    ///
    /// # Errors
    ///
    /// A [`Validation`](ErrorKind::Validation) error for a duplicate service
    /// name or a URL that does not parse, naming the service; an
    /// [`Internal`](ErrorKind::Internal) error if the HTTP client cannot be
    /// built.
    pub fn new(endpoints: impl IntoIterator<Item = ServiceEndpoint>) -> Result<Self> {
        let client = reqwest::Client::builder().build().map_err(|source| {
            Error::new(ErrorKind::Internal, "cannot build the HTTP client").with_source(source)
        })?;
        let mut services = HashMap::new();
        for endpoint in endpoints {
            let remote =
                RemoteEndpoint::with_client(endpoint.name.as_str(), &endpoint.url, client.clone())?;
            let retry = endpoint.retry_policy();
            let breaker = CircuitBreaker::new(endpoint.name.clone(), endpoint.breaker);
            let service = Service {
                name: Arc::from(endpoint.name.as_str()),
                endpoint: remote,
                idempotency_key: endpoint.idempotency_key,
                pipeline: Pipeline::new()
                    .retry(retry)
                    .circuit_breaker(breaker.clone())
                    .attempt_timeout(endpoint.timeout),
                breaker,
                stats: Stats::default(),
            };
            if services
                .insert(endpoint.name.clone(), Arc::new(service))
                .is_some()
            {
                return Err(Error::validation(format!(
                    "service `{}` is defined twice",
                    endpoint.name
                )));
            }
        }
        Ok(Self {
            services,
            header_hook: None,
        })
    }

    /// Adds headers to every request, from the context being sent.
    #[must_use]
    pub fn header_hook<F>(mut self, hook: F) -> Self
    where
        F: Fn(&Context, &mut HeaderMap) + Send + Sync + 'static,
    {
        self.header_hook = Some(Arc::new(hook));
        self
    }

    /// A chain calling the services in `flow` in order, named after them
    /// (`inventory > payment`); see [`chain_named`](Self::chain_named) for
    /// long flows.
    ///
    /// # Errors
    ///
    /// A [`NotFound`](ErrorKind::NotFound) error naming the first unknown
    /// service.
    pub fn chain<I, S>(&self, flow: I) -> Result<Chain>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let links = self.service_links(flow)?;
        let name = links
            .iter()
            .map(|link| &*link.service.name)
            .collect::<Vec<_>>()
            .join(" > ");
        Ok(links.into_iter().fold(Chain::named(name), Chain::link))
    }

    /// A chain calling the services in `flow` in order, with a name of your
    /// own: errors, metrics and traces then say `checkout` rather than
    /// every service of the flow.
    ///
    /// # Errors
    ///
    /// A [`NotFound`](ErrorKind::NotFound) error naming the first unknown
    /// service.
    pub fn chain_named<I, S>(&self, name: impl Into<Cow<'static, str>>, flow: I) -> Result<Chain>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let links = self.service_links(flow)?;
        Ok(links.into_iter().fold(Chain::named(name), Chain::link))
    }

    fn service_links<I, S>(&self, flow: I) -> Result<Vec<ServiceLink>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        flow.into_iter()
            .map(|name| {
                let name = name.as_ref();
                let service = self
                    .services
                    .get(name)
                    .ok_or_else(|| Error::not_found(format!("unknown service `{name}`")))?;
                Ok(ServiceLink {
                    service: Arc::clone(service),
                    header_hook: self.header_hook.clone(),
                })
            })
            .collect()
    }

    /// Metrics of every service, sorted by name.
    pub fn metrics(&self) -> Vec<ServiceMetrics> {
        let mut all: Vec<ServiceMetrics> = self
            .services
            .values()
            .map(|service| service.metrics())
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// The circuit breaker of a service, to watch or steer it.
    pub fn breaker(&self, service: &str) -> Option<&CircuitBreaker> {
        self.services.get(service).map(|service| &service.breaker)
    }
}

impl Service {
    fn metrics(&self) -> ServiceMetrics {
        let (average_latency, p99_latency) = self.stats.latencies();
        ServiceMetrics {
            name: self.name.to_string(),
            calls: self.stats.calls.load(Ordering::Relaxed),
            successes: self.stats.successes.load(Ordering::Relaxed),
            failures: self.stats.failures.load(Ordering::Relaxed),
            average_latency,
            p99_latency,
            breaker: self.breaker.state(),
        }
    }
}

/// A link posting the context to one service.
struct ServiceLink {
    service: Arc<Service>,
    header_hook: Option<HeaderHook>,
}

impl ServiceLink {
    async fn post(&self, body: &Value, headers: &HeaderMap) -> Result<Value> {
        let started = Instant::now();
        let guard = AttemptGuard {
            stats: &self.service.stats,
            started,
            done: false,
        };
        let outcome = self.exchange(body, headers).await;
        guard.finish(outcome.is_ok());
        outcome
    }

    async fn exchange(&self, body: &Value, headers: &HeaderMap) -> Result<Value> {
        self.service.endpoint.post_json(body, headers.clone()).await
    }
}

/// Records an attempt's latency and outcome; a cancelled or timed-out
/// attempt counts as a failure.
struct AttemptGuard<'a> {
    stats: &'a Stats,
    started: Instant,
    done: bool,
}

impl AttemptGuard<'_> {
    fn finish(mut self, success: bool) {
        self.done = true;
        self.stats.record(self.started.elapsed(), success);
    }
}

impl Drop for AttemptGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.stats.record(self.started.elapsed(), false);
        }
    }
}

impl Link<Context> for ServiceLink {
    fn call(&self, ctx: Context) -> BoxFuture<'_, Result<Context>> {
        Box::pin(async move {
            let body = ctx.to_json();
            let mut headers = outgoing_headers(ctx.extensions());
            if let Some(hook) = &self.header_hook {
                hook(&ctx, &mut headers);
            }
            if self.service.idempotency_key && !headers.contains_key(IDEMPOTENCY_KEY) {
                headers.insert(IDEMPOTENCY_KEY, new_idempotency_key());
            }
            let answer = self
                .service
                .pipeline
                .call(|| self.post(&body, &headers))
                .await
                .map_err(|error| name_service(error, &self.service.name))?;
            Ok(ctx.with(format!("{}_result", self.service.name), answer))
        })
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Owned(self.service.name.to_string())
    }
}

/// A fresh key: 128 random bits in hex, unique across executions and
/// processes for any practical purpose.
fn new_idempotency_key() -> HeaderValue {
    let key = format!("{:032x}", fastrand::u128(..));
    HeaderValue::from_str(&key).unwrap_or_else(|_| unreachable!("hex digits are a valid header"))
}

/// Makes sure the message names the service: rejections and timeouts come
/// from policies that do not know it.
fn name_service(error: Error, service: &str) -> Error {
    if error.downcast_source::<ServiceFailure>().is_some() {
        return error;
    }
    let message = format!("call to service `{service}` failed");
    Error::new(error.kind(), message).with_source(error)
}

impl fmt::Debug for Orchestrator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.services.keys().collect();
        names.sort();
        f.debug_struct("Orchestrator")
            .field("services", &names)
            .finish_non_exhaustive()
    }
}

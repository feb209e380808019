//! Health checks: pluggable async checks, run concurrently with a timeout,
//! reported as pass, warn or fail per check; liveness and readiness views;
//! draining. Feature `server` serves them over HTTP.

#[cfg(feature = "server")]
mod server;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chain_core::BoxFuture;
use futures_util::future::join_all;
use serde::Serialize;

#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub use server::routes;

/// The outcome of one check, and of a report (its worst check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Working.
    Pass,
    /// Working, degraded: still ready for traffic.
    Warn,
    /// Not working: not ready for traffic.
    Fail,
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// Pass, warn or fail.
    pub status: Status,
    /// Why, for people reading the report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl CheckResult {
    /// Passed.
    pub fn pass() -> Self {
        CheckResult {
            status: Status::Pass,
            detail: None,
        }
    }

    /// Degraded, with the reason.
    pub fn warn(detail: impl Into<String>) -> Self {
        CheckResult {
            status: Status::Warn,
            detail: Some(detail.into()),
        }
    }

    /// Failed, with the reason.
    pub fn fail(detail: impl Into<String>) -> Self {
        CheckResult {
            status: Status::Fail,
            detail: Some(detail.into()),
        }
    }
}

/// One check: a database ping, a dependency's health, free disk space.
pub trait HealthCheck: Send + Sync + 'static {
    /// The check's name in reports.
    fn name(&self) -> &str;
    /// Runs the check.
    fn check(&self) -> BoxFuture<'_, CheckResult>;
}

/// A check from a name and an async closure.
pub fn check_fn<F, Fut>(name: impl Into<Cow<'static, str>>, check: F) -> impl HealthCheck
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = CheckResult> + Send + 'static,
{
    FnCheck {
        name: name.into(),
        check,
    }
}

struct FnCheck<F> {
    name: Cow<'static, str>,
    check: F,
}

impl<F, Fut> HealthCheck for FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = CheckResult> + Send + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self) -> BoxFuture<'_, CheckResult> {
        Box::pin((self.check)())
    }
}

/// One check in a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckReport {
    /// Pass, warn or fail.
    pub status: Status,
    /// Why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// How long the check took, in milliseconds.
    pub took_ms: f64,
}

/// The JSON body of the health endpoints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// The worst status of the checks (and fail while draining, for
    /// readiness).
    pub status: Status,
    /// Whether the service is draining (refusing new traffic).
    pub draining: bool,
    /// Seconds since the health registry was created.
    pub uptime_seconds: u64,
    /// Each check by name.
    pub checks: BTreeMap<String, CheckReport>,
}

/// The checks of a service, and whether it is draining. Cheap to clone.
///
/// ```
/// use chain_deploy::health::{CheckResult, Health, Status, check_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let health = Health::new()
///     .with_check(check_fn("database", || async { CheckResult::pass() }))
///     .with_check(check_fn("cache", || async { CheckResult::warn("hit rate 40%") }));
/// let report = health.ready().await;
/// assert_eq!(report.status, Status::Warn); // degraded, still ready
/// health.start_draining();
/// assert_eq!(health.ready().await.status, Status::Fail);
/// assert_eq!(health.live().status, Status::Pass);
/// # }
/// ```
#[derive(Clone)]
pub struct Health {
    inner: Arc<Inner>,
}

struct Inner {
    checks: Vec<Arc<dyn HealthCheck>>,
    timeout: Duration,
    draining: AtomicBool,
    started: Instant,
}

impl Default for Health {
    fn default() -> Self {
        Health::new()
    }
}

impl Health {
    /// No checks yet; each check gets 2 s.
    pub fn new() -> Self {
        Health {
            inner: Arc::new(Inner {
                checks: Vec::new(),
                timeout: Duration::from_secs(2),
                draining: AtomicBool::new(false),
                started: Instant::now(),
            }),
        }
    }

    /// Adds a check.
    pub fn with_check(self, check: impl HealthCheck) -> Self {
        let mut checks = self.inner.checks.clone();
        checks.push(Arc::new(check));
        let timeout = self.inner.timeout;
        self.rebuilt(checks, timeout)
    }

    /// How long a check may take before it counts as failed.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        let checks = self.inner.checks.clone();
        self.rebuilt(checks, timeout)
    }

    fn rebuilt(self, checks: Vec<Arc<dyn HealthCheck>>, timeout: Duration) -> Self {
        Health {
            inner: Arc::new(Inner {
                checks,
                timeout,
                draining: AtomicBool::new(self.inner.draining.load(Ordering::SeqCst)),
                started: self.inner.started,
            }),
        }
    }

    /// Refuses readiness from now on, so load balancers stop sending
    /// traffic while in-flight requests finish.
    pub fn start_draining(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
    }

    /// Accepts traffic again.
    pub fn stop_draining(&self) {
        self.inner.draining.store(false, Ordering::SeqCst);
    }

    /// Whether the service is draining.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    /// Every check, run concurrently.
    pub async fn report(&self) -> HealthReport {
        let checks = join_all(self.inner.checks.iter().map(|check| self.run(check))).await;
        let status = checks
            .iter()
            .map(|(_, report)| report.status)
            .max()
            .unwrap_or(Status::Pass);
        HealthReport {
            status,
            draining: self.is_draining(),
            uptime_seconds: self.inner.started.elapsed().as_secs(),
            checks: checks.into_iter().collect(),
        }
    }

    /// The checks, failing while draining: whether to send traffic here.
    pub async fn ready(&self) -> HealthReport {
        let mut report = self.report().await;
        if report.draining {
            report.status = Status::Fail;
        }
        report
    }

    /// Whether the process is alive: passes without running checks, so a
    /// failing dependency never gets the process restarted.
    pub fn live(&self) -> HealthReport {
        HealthReport {
            status: Status::Pass,
            draining: self.is_draining(),
            uptime_seconds: self.inner.started.elapsed().as_secs(),
            checks: BTreeMap::new(),
        }
    }

    async fn run(&self, check: &Arc<dyn HealthCheck>) -> (String, CheckReport) {
        let started = Instant::now();
        let result = tokio::time::timeout(self.inner.timeout, check.check())
            .await
            .unwrap_or_else(|_| {
                CheckResult::fail(format!("no answer within {:?}", self.inner.timeout))
            });
        let report = CheckReport {
            status: result.status,
            detail: result.detail,
            took_ms: started.elapsed().as_secs_f64() * 1000.0,
        };
        (check.name().to_owned(), report)
    }
}

impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Health")
            .field("checks", &self.inner.checks.len())
            .field("draining", &self.is_draining())
            .finish_non_exhaustive()
    }
}

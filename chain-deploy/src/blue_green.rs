//! Blue-green releases: deploy to the idle environment, validate it with
//! real requests, switch all traffic at once; roll back only to a healthy
//! environment; keep a history.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use serde::Serialize;

use crate::DeployError;
use crate::deployer::Deployer;
use crate::probe::Probe;
use crate::router::TrafficRouter;

/// How an idle environment is validated before it gets traffic.
#[derive(Debug, Clone)]
pub struct Validation {
    /// Path answered with 2xx when the environment is ready.
    pub health_path: String,
    /// Path of the requests that measure latency and load.
    pub request_path: String,
    /// Sequential requests measuring latency.
    pub latency_probes: u32,
    /// The most any of them may take.
    pub max_probe_latency: Duration,
    /// Requests of the load test.
    pub load_requests: u32,
    /// How many of them run at once.
    pub load_concurrency: u32,
    /// Least share of the load test's requests that must succeed (95% by
    /// default).
    pub min_success_rate: f64,
    /// Highest average latency of the load test (5 s by default).
    pub max_average_latency: Duration,
}

impl Default for Validation {
    fn default() -> Self {
        Validation {
            health_path: "/health/ready".to_owned(),
            request_path: "/".to_owned(),
            latency_probes: 10,
            max_probe_latency: Duration::from_secs(1),
            load_requests: 100,
            load_concurrency: 10,
            min_success_rate: 0.95,
            max_average_latency: Duration::from_secs(5),
        }
    }
}

/// What validating an environment found.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ValidationReport {
    /// The environment.
    pub environment: String,
    /// Whether its health endpoint answered 2xx.
    pub healthy: bool,
    /// The slowest latency probe, in milliseconds.
    pub max_probe_latency_ms: f64,
    /// Share of the load test's requests answered 2xx.
    pub load_success_rate: f64,
    /// Average latency of the load test, in milliseconds.
    pub load_average_latency_ms: f64,
    /// Every check that failed; empty when the environment passed.
    pub failures: Vec<String>,
}

impl ValidationReport {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// One action in the history.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct HistoryEntry {
    /// When, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// `deploy`, `validate`, `switch`, `rollback` or `refused`.
    pub action: &'static str,
    /// The environment acted on.
    pub environment: String,
    /// The version, for deployments.
    pub version: Option<String>,
    /// What happened.
    pub detail: String,
}

/// Where a blue-green release stands: live and idle environments, versions
/// and the last validation.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct DeploymentStatus {
    /// The environment with the traffic.
    pub active_environment: String,
    /// The version running there, if deployed through this manager.
    pub active_version: Option<String>,
    /// The environment without traffic.
    pub idle_environment: String,
    /// The version running there, if deployed through this manager (also
    /// one that failed validation).
    pub idle_version: Option<String>,
    /// Whether the idle environment passed its last validation (`None`:
    /// never validated through this manager).
    pub idle_validated: Option<bool>,
    /// Where blue runs.
    pub blue_endpoint: String,
    /// Where green runs.
    pub green_endpoint: String,
    /// Entries in the history.
    pub deployment_history_count: usize,
    /// The latest entry.
    pub last_deployment: Option<HistoryEntry>,
}

/// Blue-green releases over two upstreams of a [`TrafficRouter`].
///
/// ```no_run
/// use chain_deploy::blue_green::BlueGreen;
/// use chain_deploy::deployer::CommandDeployer;
/// use chain_deploy::router::{RouterConfig, TrafficRouter};
///
/// # async fn release() -> Result<(), chain_deploy::DeployError> {
/// let router = TrafficRouter::new(
///     RouterConfig::new()
///         .upstream("blue", "http://10.0.0.5:8080")
///         .upstream("green", "http://10.0.0.6:8080"),
/// )?;
/// let releases = BlueGreen::new(router, "blue", "green", CommandDeployer::new("./deploy.sh", ["--wait"]))?;
/// let report = releases.deploy("v2.4.0").await?; // to green, validated, switched
/// assert!(report.passed());
/// # Ok(()) }
/// ```
pub struct BlueGreen<D> {
    router: TrafficRouter,
    names: [String; 2],
    deployer: D,
    validation: Validation,
    probe: Probe,
    drain_timeout: Duration,
    /// Held for the whole of a deploy or rollback: one release at a time.
    /// Never waited on: a second release is refused, and readers of the
    /// state never touch it.
    release: tokio::sync::Mutex<()>,
    /// Locked only for reads and writes, never across a network wait.
    state: Mutex<State>,
    /// The newest `history_limit` entries.
    history: Mutex<std::collections::VecDeque<HistoryEntry>>,
    history_limit: usize,
}

struct State {
    /// Index into `names` of the environment with the traffic.
    active: usize,
    /// The version each environment runs, once deployed through this
    /// manager (also when its validation failed: it runs there all the
    /// same).
    versions: [Option<String>; 2],
    /// Whether each environment passed its last validation.
    validated: [Option<bool>; 2],
}

impl<D: Deployer> BlueGreen<D> {
    /// Releases over the router's upstreams `blue` and `green`; whichever
    /// has all the traffic now is active (blue if neither).
    pub fn new(
        router: TrafficRouter,
        blue: impl Into<String>,
        green: impl Into<String>,
        deployer: D,
    ) -> Result<Self, DeployError> {
        let names = [blue.into(), green.into()];
        let active = usize::from(router.share_of(&names[1])? >= 100.0);
        router.share_of(&names[0])?;
        Ok(BlueGreen {
            router,
            names,
            deployer,
            validation: Validation::default(),
            probe: Probe::new(Duration::from_secs(10)),
            drain_timeout: Duration::from_secs(30),
            release: tokio::sync::Mutex::new(()),
            state: Mutex::new(State {
                active,
                versions: [None, None],
                validated: [None, None],
            }),
            history: Mutex::default(),
            history_limit: 1_000,
        })
    }

    /// Keeps the newest `entries` of the history (1,000 by default, at
    /// least 1): a long-lived release manager must not grow without bound.
    pub fn with_history_limit(mut self, entries: usize) -> Self {
        self.history_limit = entries.max(1);
        self
    }

    /// How long a deploy waits for the requests still running in the
    /// environment it is about to replace (30 s by default); past that it
    /// deploys anyway and records how many were cut.
    pub fn with_drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn begin(
        &self,
        operation: &'static str,
    ) -> Result<tokio::sync::MutexGuard<'_, ()>, DeployError> {
        self.release
            .try_lock()
            .map_err(|_| DeployError::ReleaseInProgress { operation })
    }

    /// Validates with these settings instead of the defaults.
    pub fn with_validation(mut self, validation: Validation) -> Self {
        self.probe = Probe::new(validation.max_average_latency.max(Duration::from_secs(1)) * 2);
        self.validation = validation;
        self
    }

    /// Deploys `version` to the idle environment, validates it, and moves
    /// all traffic there. If validation fails, traffic stays where it was
    /// and the error lists every failed check.
    ///
    /// The idle environment is drained first: requests it still serves from
    /// before the last switch finish before the deployer replaces it (at
    /// most [`with_drain_timeout`](Self::with_drain_timeout)).
    ///
    /// # Errors
    ///
    /// [`DeployError::ReleaseInProgress`] while another deploy or rollback
    /// runs; the deployer's failure; [`DeployError::ValidationFailed`].
    pub async fn deploy(&self, version: &str) -> Result<ValidationReport, DeployError> {
        let _release = self.begin("deploy")?;
        let idle = 1 - self.state().active;
        let environment = &self.names[idle];
        let left = self.router.drain(environment, self.drain_timeout).await?;
        if left > 0 {
            self.record(
                "drain",
                environment,
                None,
                format!(
                    "{left} requests still running after {:?}; deploying anyway",
                    self.drain_timeout
                ),
            );
        }
        self.deployer
            .deploy(environment, version)
            .await
            .map_err(|source| {
                self.record(
                    "deploy",
                    environment,
                    Some(version),
                    format!("failed: {source}"),
                );
                DeployError::Deployer {
                    environment: environment.clone(),
                    version: version.to_owned(),
                    source,
                }
            })?;
        {
            // It runs there now, validated or not.
            let mut state = self.state();
            state.versions[idle] = Some(version.to_owned());
            state.validated[idle] = None;
        }
        self.record("deploy", environment, Some(version), "deployed".to_owned());
        let report = self.validate(environment).await?;
        self.state().validated[idle] = Some(report.passed());
        if !report.passed() {
            return Err(DeployError::ValidationFailed {
                environment: environment.clone(),
                reasons: report.failures,
            });
        }
        self.router.route_all_to(environment)?;
        self.state().active = idle;
        self.record(
            "switch",
            environment,
            Some(version),
            format!("all traffic moved from `{}`", self.names[1 - idle]),
        );
        Ok(report)
    }

    /// Moves all traffic back to the other environment, if it is healthy
    /// and did not fail its last validation.
    ///
    /// # Errors
    ///
    /// [`DeployError::RollbackRefused`] saying why;
    /// [`DeployError::ReleaseInProgress`] while another deploy or rollback
    /// runs.
    pub async fn rollback(&self) -> Result<(), DeployError> {
        let _release = self.begin("roll back")?;
        let (target, version, validated) = {
            let state = self.state();
            let target = 1 - state.active;
            (
                target,
                state.versions[target].clone(),
                state.validated[target],
            )
        };
        let environment = &self.names[target];
        let refuse = |reason: String| {
            self.record(
                "refused",
                environment,
                version.as_deref(),
                format!("rollback refused: {reason}"),
            );
            DeployError::RollbackRefused {
                environment: environment.clone(),
                reason,
            }
        };
        if validated == Some(false) {
            return Err(refuse(format!(
                "it runs {}, which failed its last validation",
                version.as_deref().unwrap_or("an unknown version")
            )));
        }
        let health = self
            .probe
            .get(&self.url(environment, &self.validation.health_path)?)
            .await;
        if !health.succeeded() {
            return Err(refuse(match health.status {
                Ok(status) => format!("its health endpoint answered {status}"),
                Err(error) => error,
            }));
        }
        self.router.route_all_to(environment)?;
        self.state().active = target;
        self.record(
            "rollback",
            environment,
            version.as_deref(),
            format!("all traffic moved back from `{}`", self.names[1 - target]),
        );
        Ok(())
    }

    /// Checks an environment: its health endpoint, the latency of
    /// sequential requests, and a concurrent load test against the
    /// success-rate and average-latency thresholds.
    pub async fn validate(&self, environment: &str) -> Result<ValidationReport, DeployError> {
        let v = &self.validation;
        let mut failures = Vec::new();
        let health = self
            .probe
            .get(&self.url(environment, &v.health_path)?)
            .await;
        let healthy = health.succeeded();
        if !healthy {
            failures.push(match health.status {
                Ok(status) => format!("health endpoint answered {status}"),
                Err(error) => format!("health endpoint: {error}"),
            });
        }
        let target = self.url(environment, &v.request_path)?;
        let mut slowest = Duration::ZERO;
        for _ in 0..v.latency_probes {
            let probe = self.probe.get(&target).await;
            slowest = slowest.max(probe.latency);
            if !probe.succeeded() {
                failures.push(format!("latency probe failed: {}", describe(&probe.status)));
                break;
            }
        }
        if slowest > v.max_probe_latency {
            failures.push(format!(
                "slowest latency probe took {slowest:?}, above {:?}",
                v.max_probe_latency
            ));
        }
        let (success_rate, average) = self.load_test(&target).await;
        if success_rate < v.min_success_rate {
            failures.push(format!(
                "load test: {:.1}% succeeded, below {:.1}%",
                success_rate * 100.0,
                v.min_success_rate * 100.0
            ));
        }
        if average > v.max_average_latency {
            failures.push(format!(
                "load test: average latency {average:?} above {:?}",
                v.max_average_latency
            ));
        }
        let report = ValidationReport {
            environment: environment.to_owned(),
            healthy,
            max_probe_latency_ms: slowest.as_secs_f64() * 1e3,
            load_success_rate: success_rate,
            load_average_latency_ms: average.as_secs_f64() * 1e3,
            failures,
        };
        let detail = if report.passed() {
            format!(
                "passed: {:.1}% of {} requests, average {:.1} ms",
                success_rate * 100.0,
                v.load_requests,
                report.load_average_latency_ms
            )
        } else {
            format!("failed: {}", report.failures.join("; "))
        };
        self.record("validate", environment, None, detail);
        Ok(report)
    }

    /// `load_requests` requests, `load_concurrency` at a time: the success
    /// rate and the average latency.
    async fn load_test(&self, url: &str) -> (f64, Duration) {
        let v = &self.validation;
        let workers = v.load_concurrency.max(1);
        let per_worker = v.load_requests.div_ceil(workers);
        let results = join_all((0..workers).map(|_| async move {
            let mut outcomes = Vec::new();
            for _ in 0..per_worker {
                let probe = self.probe.get(url).await;
                outcomes.push((probe.succeeded(), probe.latency));
            }
            outcomes
        }))
        .await;
        let outcomes: Vec<_> = results.into_iter().flatten().collect();
        let total = outcomes.len().max(1) as u32;
        let succeeded = outcomes.iter().filter(|(ok, _)| *ok).count();
        let latency: Duration = outcomes.iter().map(|(_, latency)| *latency).sum();
        (
            f64::from(succeeded as u32) / f64::from(total),
            latency / total,
        )
    }

    /// The environment with the traffic.
    pub async fn active(&self) -> String {
        self.names[self.state().active].clone()
    }

    /// The release's status report.
    pub async fn status(&self) -> Result<DeploymentStatus, DeployError> {
        let (active, versions, validated) = {
            let state = self.state();
            (state.active, state.versions.clone(), state.validated)
        };
        let history = self.history();
        Ok(DeploymentStatus {
            active_environment: self.names[active].clone(),
            active_version: versions[active].clone(),
            idle_environment: self.names[1 - active].clone(),
            idle_version: versions[1 - active].clone(),
            idle_validated: validated[1 - active],
            blue_endpoint: self.router.url_of(&self.names[0])?,
            green_endpoint: self.router.url_of(&self.names[1])?,
            deployment_history_count: history.len(),
            last_deployment: history.last().cloned(),
        })
    }

    /// The actions so far (the newest, up to the history limit), oldest
    /// first.
    pub fn history(&self) -> Vec<HistoryEntry> {
        self.history
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    fn url(&self, environment: &str, path: &str) -> Result<String, DeployError> {
        Ok(format!("{}{path}", self.router.url_of(environment)?))
    }

    fn record(
        &self,
        action: &'static str,
        environment: &str,
        version: Option<&str>,
        detail: String,
    ) {
        tracing::info!(action, environment, version, %detail, "blue-green");
        let at_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        let mut history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        if history.len() == self.history_limit {
            history.pop_front();
        }
        history.push_back(HistoryEntry {
            at_unix_ms,
            action,
            environment: environment.to_owned(),
            version: version.map(str::to_owned),
            detail,
        });
    }
}

fn describe(status: &Result<u16, String>) -> String {
    match status {
        Ok(status) => format!("answered {status}"),
        Err(error) => error.clone(),
    }
}

impl<D> std::fmt::Debug for BlueGreen<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlueGreen")
            .field("environments", &self.names)
            .field("validation", &self.validation)
            .finish_non_exhaustive()
    }
}

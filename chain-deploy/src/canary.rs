//! Canary releases: a new version gets a small share of traffic that grows
//! step by step while the router's measurements of it stay within bounds
//! and close to stable's; otherwise it is rolled back.

use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chain_core::BoxFuture;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::DeployError;
use crate::router::{TrafficRouter, UpstreamStats};

/// How a canary release proceeds: its traffic steps and health bounds, how
/// much traffic an evaluation needs, and how many inconclusive or failed
/// evaluations end the release.
#[derive(Debug, Clone)]
pub struct CanaryConfig {
    /// The canary's first share, in percent (5).
    pub initial_traffic_percent: f64,
    /// Added at each promotion, in percent (10).
    pub traffic_increment: f64,
    /// Time between evaluations; each evaluates the traffic of the last
    /// interval (5 minutes).
    pub evaluation_interval: Duration,
    /// Highest canary error rate (1%).
    pub max_error_rate: f64,
    /// Highest canary average latency (2,000 ms).
    pub max_latency: Duration,
    /// Highest canary error rate relative to stable's (1.5x).
    pub max_error_rate_vs_stable: f64,
    /// Highest canary latency relative to stable's (1.3x).
    pub max_latency_vs_stable: f64,
    /// Error-rate slack over the relative bound (0.1 points): with no
    /// errors on stable, one canary error would otherwise fail the canary.
    pub error_rate_slack: f64,
    /// Latency slack over the relative bound (2 ms): for services answering
    /// in a millisecond, scheduling noise alone exceeds 1.3x.
    pub latency_slack: Duration,
    /// Fewest canary requests in an interval for a verdict (20); fewer is
    /// inconclusive and holds the share. A canary with no traffic is never
    /// judged, whatever this says.
    pub min_requests: u64,
    /// How sure a verdict must be (0.95): a canary is failed only when its
    /// error rate or latency is above a bound at this confidence, and passed
    /// only when it is below the absolute bounds at this confidence; in
    /// between the evaluation is inconclusive and waits for more traffic.
    /// See [`CanaryConfig::judge`].
    pub confidence: f64,
    /// Failed evaluations that end the release (1).
    pub max_failed_evaluations: u32,
    /// Inconclusive evaluations in a row that end the release (3).
    pub max_inconclusive_evaluations: u32,
    /// Whether ending the release rolls back; without, the share is held
    /// for an operator (true).
    pub rollback_on_failure: bool,
}

/// Two verdicts as one: unhealthy if either is (with both's reasons), else
/// inconclusive if either is, else healthy.
fn join(verdict: Verdict, signal: &str, other: Verdict) -> Verdict {
    match (verdict, other) {
        (Verdict::Unhealthy(mut reasons), Verdict::Unhealthy(more)) => {
            reasons.extend(more.into_iter().map(|reason| format!("{signal}: {reason}")));
            Verdict::Unhealthy(reasons)
        }
        (Verdict::Unhealthy(reasons), _) => Verdict::Unhealthy(reasons),
        (_, Verdict::Unhealthy(more)) => Verdict::Unhealthy(
            more.into_iter()
                .map(|reason| format!("{signal}: {reason}"))
                .collect(),
        ),
        (Verdict::Inconclusive(why), _) => Verdict::Inconclusive(why),
        (_, Verdict::Inconclusive(why)) => Verdict::Inconclusive(format!("{signal}: {why}")),
        (Verdict::Healthy, Verdict::Healthy) => Verdict::Healthy,
    }
}

/// The one-sided normal quantile for `confidence` (0.5 to 0.9999), by
/// Acklam's rational approximation (relative error under 1.2e-9).
fn one_sided_z(confidence: f64) -> f64 {
    let p = if confidence.is_finite() {
        confidence.clamp(0.5, 0.9999)
    } else {
        0.95
    };
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    if p <= 0.975_75 {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    }
}

/// The Wilson score interval's lower and upper bounds of a proportion of
/// `successes` in `trials`, one-sided at `z` each.
fn wilson(successes: u64, trials: u64, z: f64) -> (f64, f64) {
    if trials == 0 {
        return (0.0, 1.0);
    }
    let n = trials as f64;
    let p = successes as f64 / n;
    let z2 = z * z;
    let center = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    ((center - half).max(0.0), (center + half).min(1.0))
}

/// Where a measured value stands against a bound, at a confidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// Below the bound even at its highest plausible value.
    Below,
    /// Above the bound even at its lowest plausible value.
    Above,
    /// The sample cannot tell yet.
    Undecided,
}

fn stand(low: f64, high: f64, bound: f64) -> Standing {
    if low > bound {
        Standing::Above
    } else if high <= bound {
        Standing::Below
    } else {
        Standing::Undecided
    }
}

impl CanaryConfig {
    /// The verdict on one interval's measurements of the canary against
    /// stable's, decided at [`confidence`](Self::confidence) rather than on
    /// raw averages (with 20 requests, a canary failing 5% of them looks
    /// like one failing 1% about a third of the time).
    ///
    /// - **No traffic**, or fewer than `min_requests`: inconclusive.
    /// - **Error rate against `max_error_rate`**: the Wilson score interval
    ///   of the canary's error rate. Unhealthy if its lower bound is above
    ///   the limit; passed only if its upper bound is at or below it;
    ///   otherwise inconclusive (about 270 error-free requests prove a rate
    ///   under 1% at 95%).
    /// - **Latency against `max_latency`**: the mean's one-sided confidence
    ///   bounds (mean ± z·sd/√n), decided the same way.
    /// - **Against stable** (when stable has `min_requests`): unhealthy only
    ///   when the canary is worse with confidence: its error rate's lower
    ///   bound above stable's upper bound times `max_error_rate_vs_stable`
    ///   plus `error_rate_slack`, or its mean latency above stable's times
    ///   `max_latency_vs_stable` plus `latency_slack` by more than z
    ///   standard errors of the difference. A canary no worse than stable
    ///   passes these.
    pub fn judge(&self, canary: &UpstreamStats, stable: &UpstreamStats) -> Verdict {
        if canary.requests == 0 || canary.requests < self.min_requests {
            return Verdict::Inconclusive(format!(
                "{} canary requests in the last {:?}, {} needed",
                canary.requests,
                self.evaluation_interval,
                self.min_requests.max(1)
            ));
        }
        let z = one_sided_z(self.confidence);
        let confidence = format!("{:.0}%", self.confidence.clamp(0.5, 0.9999) * 100.0);
        let mut reasons = Vec::new();
        let mut undecided = Vec::new();

        let (error_low, error_high) = wilson(canary.errors(), canary.requests, z);
        match stand(error_low, error_high, self.max_error_rate) {
            Standing::Above => reasons.push(format!(
                "error rate {:.2}% (at least {:.2}% at {confidence} confidence) above {:.2}%",
                canary.error_rate * 100.0,
                error_low * 100.0,
                self.max_error_rate * 100.0
            )),
            Standing::Undecided => undecided.push(format!(
                "error rate {:.2}% cannot yet be told below {:.2}% at {confidence} confidence ({} requests)",
                canary.error_rate * 100.0,
                self.max_error_rate * 100.0,
                canary.requests
            )),
            Standing::Below => {}
        }

        let n = canary.requests as f64;
        let error_of_mean = canary.latency_std_dev_ms / n.sqrt();
        let max_latency_ms = self.max_latency.as_secs_f64() * 1e3;
        match stand(
            canary.average_latency_ms - z * error_of_mean,
            canary.average_latency_ms + z * error_of_mean,
            max_latency_ms,
        ) {
            Standing::Above => reasons.push(format!(
                "average latency {:.1} ms above {max_latency_ms:.1} ms at {confidence} confidence",
                canary.average_latency_ms
            )),
            Standing::Undecided => undecided.push(format!(
                "average latency {:.1} ms cannot yet be told below {max_latency_ms:.1} ms",
                canary.average_latency_ms
            )),
            Standing::Below => {}
        }

        // Comparisons with stable need stable traffic to compare with.
        if stable.requests > 0 && stable.requests >= self.min_requests {
            let (_, stable_high) = wilson(stable.errors(), stable.requests, z);
            let error_bound = stable_high * self.max_error_rate_vs_stable + self.error_rate_slack;
            if error_low > error_bound {
                reasons.push(format!(
                    "error rate {:.2}% above {}x stable's {:.2}% at {confidence} confidence",
                    canary.error_rate * 100.0,
                    self.max_error_rate_vs_stable,
                    stable.error_rate * 100.0
                ));
            }
            let latency_bound = stable.average_latency_ms * self.max_latency_vs_stable
                + self.latency_slack.as_secs_f64() * 1e3;
            let stable_error_of_mean = stable.latency_std_dev_ms * self.max_latency_vs_stable
                / (stable.requests as f64).sqrt();
            let error_of_difference = error_of_mean.hypot(stable_error_of_mean);
            if canary.average_latency_ms - latency_bound > z * error_of_difference {
                reasons.push(format!(
                    "average latency {:.1} ms above {}x stable's {:.1} ms + {:?} at {confidence} confidence",
                    canary.average_latency_ms,
                    self.max_latency_vs_stable,
                    stable.average_latency_ms,
                    self.latency_slack
                ));
            }
        }
        if !reasons.is_empty() {
            Verdict::Unhealthy(reasons)
        } else if !undecided.is_empty() {
            Verdict::Inconclusive(undecided.join("; "))
        } else {
            Verdict::Healthy
        }
    }
}

impl Default for CanaryConfig {
    fn default() -> Self {
        CanaryConfig {
            initial_traffic_percent: 5.0,
            traffic_increment: 10.0,
            evaluation_interval: Duration::from_secs(300),
            max_error_rate: 0.01,
            max_latency: Duration::from_millis(2000),
            max_error_rate_vs_stable: 1.5,
            max_latency_vs_stable: 1.3,
            error_rate_slack: 0.001,
            latency_slack: Duration::from_millis(2),
            min_requests: 20,
            confidence: 0.95,
            max_failed_evaluations: 1,
            max_inconclusive_evaluations: 3,
            rollback_on_failure: true,
        }
    }
}

/// What one evaluation concluded.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", content = "reasons", rename_all = "lowercase")]
pub enum Verdict {
    /// Within every bound: promote.
    Healthy,
    /// Outside some bound; the reasons say which.
    Unhealthy(Vec<String>),
    /// Too little traffic to tell; the share is held.
    Inconclusive(String),
}

/// One evaluation of the canary against stable.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Evaluation {
    /// The canary's share during the interval, in percent.
    pub canary_percent: f64,
    /// What the router measured of the canary.
    pub canary: UpstreamStats,
    /// What the router measured of stable.
    pub stable: UpstreamStats,
    /// The conclusion.
    pub verdict: Verdict,
}

/// What a canary release did: its steps, evaluations and outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CanarySummary {
    /// Evaluations made.
    pub total_evaluations: usize,
    /// Of those, healthy.
    pub healthy_evaluations: usize,
    /// `healthy / total`.
    pub health_rate: f64,
    /// The canary's average error rate over evaluations with traffic.
    pub avg_error_rate: f64,
    /// The canary's average latency over evaluations with traffic.
    pub avg_latency_ms: f64,
    /// `excellent` above 90% healthy, `good` above 70%, else `poor`.
    pub deployment_quality: &'static str,
}

/// What happened, for subscribers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum CanaryEvent {
    /// The canary got its first share.
    Started {
        /// The share, in percent.
        canary_percent: f64,
    },
    /// An evaluation was made.
    Evaluated(Evaluation),
    /// The canary's share grew.
    Promoted {
        /// The new share, in percent.
        canary_percent: f64,
    },
    /// The canary has all traffic.
    Completed(CanarySummary),
    /// All traffic is back on stable.
    RolledBack {
        /// Why.
        reason: String,
    },
}

/// How an automated release ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub enum CanaryOutcome {
    /// The canary took all traffic.
    Completed(CanarySummary),
    /// Traffic went back to stable.
    RolledBack {
        /// Why.
        reason: String,
        /// The evaluations made.
        summary: CanarySummary,
    },
    /// The release was stopped without rollback (rollback disabled), the
    /// share held for an operator.
    Halted {
        /// Why.
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Active,
    Finished,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Idle => "not started",
            Phase::Active => "active",
            Phase::Finished => "finished",
        }
    }
}

struct State {
    phase: Phase,
    canary_percent: f64,
    evaluations: Vec<Evaluation>,
}

/// A canary release between two upstreams of a [`TrafficRouter`].
///
/// ```no_run
/// use chain_deploy::canary::{Canary, CanaryConfig, CanaryOutcome};
/// use chain_deploy::router::{RouterConfig, TrafficRouter};
///
/// # async fn release() -> Result<(), chain_deploy::DeployError> {
/// let router = TrafficRouter::new(
///     RouterConfig::new()
///         .upstream("stable", "http://10.0.0.5:8080")
///         .upstream("canary", "http://10.0.0.6:8080"),
/// )?;
/// let canary = Canary::new(router, "stable", "canary", CanaryConfig::default())?;
/// let mut events = canary.subscribe();
/// tokio::spawn(async move {
///     while let Ok(event) = events.recv().await {
///         println!("{event:?}");
///     }
/// });
/// match canary.run().await? {
///     CanaryOutcome::Completed(summary) => println!("promoted: {}", summary.deployment_quality),
///     other => println!("not promoted: {other:?}"),
/// }
/// # Ok(()) }
/// ```
pub struct Canary {
    router: TrafficRouter,
    stable: String,
    canary: String,
    config: CanaryConfig,
    signals: Vec<Box<dyn CanarySignal>>,
    state: Mutex<State>,
    events: broadcast::Sender<CanaryEvent>,
}

/// A further check of the canary at each evaluation, besides the router's
/// measurements: its resource use, a business metric, an alert. Its
/// verdict joins the router's: any unhealthy verdict fails the evaluation,
/// any inconclusive one holds it.
///
/// Reading a signal may take a network round trip, so it is split in two:
/// [`refresh`](Self::refresh) reads it (the release pipeline does before
/// every evaluation; see [`Canary::refresh_signals`]), and
/// [`verdict`](Self::verdict) gives the latest reading's verdict at once.
pub trait CanarySignal: Send + Sync + 'static {
    /// The signal's name, in the reasons it gives.
    fn name(&self) -> &str;

    /// Reads the signal now.
    fn refresh(&self) -> BoxFuture<'_, ()>;

    /// The verdict of the latest reading; `None` before the first, which
    /// then takes no part in an evaluation.
    fn verdict(&self) -> Option<Verdict>;
}

/// A resource check: the canary's own Prometheus `/metrics`
/// (`process_cpu_seconds_total` and `process_resident_memory_bytes`, which
/// Prometheus clients export on Linux) against limits. CPU is the rate
/// between two evaluations, so the first evaluation judges memory only.
pub struct ResourceSignal {
    url: String,
    max_cpu_cores: f64,
    max_resident_bytes: f64,
    probe: crate::probe::Probe,
    last_cpu: Mutex<Option<(std::time::Instant, f64)>>,
    latest: Mutex<Option<Verdict>>,
}

impl ResourceSignal {
    /// Reads `metrics_url` (the canary's `/metrics`); fails the canary when
    /// it uses more than `max_cpu_cores` cores on average between two
    /// evaluations, or more than `max_resident_bytes` of memory.
    pub fn new(
        metrics_url: impl Into<String>,
        max_cpu_cores: f64,
        max_resident_bytes: u64,
    ) -> Self {
        ResourceSignal {
            url: metrics_url.into(),
            max_cpu_cores,
            max_resident_bytes: max_resident_bytes as f64,
            probe: crate::probe::Probe::new(Duration::from_secs(5)),
            last_cpu: Mutex::new(None),
            latest: Mutex::new(None),
        }
    }

    fn judge_text(&self, text: &str, now: std::time::Instant) -> Verdict {
        let cpu = metric(text, "process_cpu_seconds_total");
        let memory = metric(text, "process_resident_memory_bytes");
        if cpu.is_none() && memory.is_none() {
            return Verdict::Inconclusive(format!(
                "{} exports neither process_cpu_seconds_total nor process_resident_memory_bytes",
                self.url
            ));
        }
        let mut reasons = Vec::new();
        if let Some(memory) = memory
            && memory > self.max_resident_bytes
        {
            reasons.push(format!(
                "resident memory {:.0} MiB above {:.0} MiB",
                memory / 1_048_576.0,
                self.max_resident_bytes / 1_048_576.0
            ));
        }
        if let Some(cpu) = cpu {
            let mut last = self.last_cpu.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((then, before)) = last.replace((now, cpu)) {
                let seconds = now.saturating_duration_since(then).as_secs_f64();
                let cores = if seconds > 0.0 {
                    (cpu - before).max(0.0) / seconds
                } else {
                    0.0
                };
                if cores > self.max_cpu_cores {
                    reasons.push(format!(
                        "CPU {cores:.2} cores above {:.2}",
                        self.max_cpu_cores
                    ));
                }
            }
        }
        if reasons.is_empty() {
            Verdict::Healthy
        } else {
            Verdict::Unhealthy(reasons)
        }
    }
}

/// The value of an unlabelled sample `name` in Prometheus text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (metric, value) = line.split_once(char::is_whitespace)?;
            (metric == name).then(|| value.split_whitespace().next()?.parse().ok())?
        })
}

impl CanarySignal for ResourceSignal {
    fn name(&self) -> &str {
        "resources"
    }

    fn refresh(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let verdict = match self.probe.get_text(&self.url).await {
                Ok(text) => self.judge_text(&text, std::time::Instant::now()),
                Err(error) => Verdict::Inconclusive(format!("no metrics: {error}")),
            };
            *self.latest.lock().unwrap_or_else(PoisonError::into_inner) = Some(verdict);
        })
    }

    fn verdict(&self) -> Option<Verdict> {
        self.latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl fmt::Debug for ResourceSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceSignal")
            .field("url", &self.url)
            .field("max_cpu_cores", &self.max_cpu_cores)
            .field("max_resident_bytes", &self.max_resident_bytes)
            .finish_non_exhaustive()
    }
}

impl Canary {
    /// A release of `canary` next to `stable`, both upstreams of `router`.
    pub fn new(
        router: TrafficRouter,
        stable: impl Into<String>,
        canary: impl Into<String>,
        config: CanaryConfig,
    ) -> Result<Self, DeployError> {
        let (stable, canary) = (stable.into(), canary.into());
        router.share_of(&stable)?;
        router.share_of(&canary)?;
        Ok(Canary {
            router,
            stable,
            canary,
            config,
            signals: Vec::new(),
            state: Mutex::new(State {
                phase: Phase::Idle,
                canary_percent: 0.0,
                evaluations: Vec::new(),
            }),
            events: broadcast::channel(256).0,
        })
    }

    /// Adds a signal judged at every evaluation with the router's
    /// measurements (for example a [`ResourceSignal`]).
    #[must_use]
    pub fn with_signal(mut self, signal: impl CanarySignal) -> Self {
        self.signals.push(Box::new(signal));
        self
    }

    /// Events from now on. A subscriber that falls more than 256 events
    /// behind misses the oldest (`RecvError::Lagged`).
    pub fn subscribe(&self) -> broadcast::Receiver<CanaryEvent> {
        self.events.subscribe()
    }

    /// Gives the canary its initial share.
    pub fn start(&self) -> Result<(), DeployError> {
        let mut state = self.lock();
        if state.phase == Phase::Active {
            return Err(DeployError::CanaryState {
                state: "active",
                operation: "start",
            });
        }
        let percent = self.config.initial_traffic_percent.clamp(0.0, 100.0);
        self.set_canary_percent(percent)?;
        *state = State {
            phase: Phase::Active,
            canary_percent: percent,
            evaluations: Vec::new(),
        };
        self.emit(CanaryEvent::Started {
            canary_percent: percent,
        });
        Ok(())
    }

    /// Reads every signal now (the release pipeline does before every
    /// evaluation).
    pub async fn refresh_signals(&self) {
        for signal in &self.signals {
            signal.refresh().await;
        }
    }

    /// Evaluates the canary on the traffic of the last evaluation interval
    /// and the signals' latest readings, and records the result.
    pub fn evaluate(&self) -> Result<Evaluation, DeployError> {
        let over = self.config.evaluation_interval;
        let canary = self.router.stats(&self.canary, over)?;
        let stable = self.router.stats(&self.stable, over)?;
        let mut verdict = self.config.judge(&canary, &stable);
        for signal in &self.signals {
            if let Some(reading) = signal.verdict() {
                verdict = join(verdict, signal.name(), reading);
            }
        }
        let mut state = self.lock();
        let evaluation = Evaluation {
            canary_percent: state.canary_percent,
            verdict,
            canary,
            stable,
        };
        state.evaluations.push(evaluation.clone());
        drop(state);
        self.emit(CanaryEvent::Evaluated(evaluation.clone()));
        Ok(evaluation)
    }

    /// Grows the canary's share by the increment; at 100% the release is
    /// complete. Returns the new share.
    pub fn promote(&self) -> Result<f64, DeployError> {
        let mut state = self.active_state("promote")?;
        let percent = (state.canary_percent + self.config.traffic_increment).min(100.0);
        self.set_canary_percent(percent)?;
        state.canary_percent = percent;
        self.emit(CanaryEvent::Promoted {
            canary_percent: percent,
        });
        if percent >= 100.0 {
            state.phase = Phase::Finished;
            let summary = summarize(&state.evaluations);
            drop(state);
            self.emit(CanaryEvent::Completed(summary));
        }
        Ok(percent)
    }

    /// Sends all traffic back to stable.
    pub fn rollback(&self, reason: impl Into<String>) -> Result<(), DeployError> {
        let mut state = self.active_state("roll back")?;
        self.set_canary_percent(0.0)?;
        state.canary_percent = 0.0;
        state.phase = Phase::Finished;
        drop(state);
        let reason = reason.into();
        tracing::warn!(canary = %self.canary, %reason, "canary rolled back");
        self.emit(CanaryEvent::RolledBack { reason });
        Ok(())
    }

    /// Stops the release by hand, rolling back.
    pub fn abort(&self) -> Result<(), DeployError> {
        self.rollback("aborted by an operator")
    }

    /// The canary's share now, in percent.
    pub fn canary_percent(&self) -> f64 {
        self.lock().canary_percent
    }

    /// Every evaluation so far.
    pub fn evaluations(&self) -> Vec<Evaluation> {
        self.lock().evaluations.clone()
    }

    /// A summary of the evaluations so far.
    pub fn summary(&self) -> CanarySummary {
        summarize(&self.lock().evaluations)
    }

    /// The automated pipeline: start, then every evaluation interval
    /// evaluate and promote, hold or end the release, until the canary has
    /// all traffic or is rolled back.
    pub async fn run(&self) -> Result<CanaryOutcome, DeployError> {
        self.start()?;
        let (mut failed, mut inconclusive) = (0, 0);
        loop {
            tokio::time::sleep(self.config.evaluation_interval).await;
            if self.lock().phase != Phase::Active {
                return Ok(CanaryOutcome::RolledBack {
                    reason: "stopped by an operator".to_owned(),
                    summary: self.summary(),
                });
            }
            self.refresh_signals().await;
            let reason = match self.evaluate()?.verdict {
                Verdict::Healthy => {
                    inconclusive = 0;
                    if self.promote()? >= 100.0 {
                        return Ok(CanaryOutcome::Completed(self.summary()));
                    }
                    continue;
                }
                Verdict::Unhealthy(reasons) => {
                    inconclusive = 0;
                    failed += 1;
                    if failed < self.config.max_failed_evaluations {
                        continue;
                    }
                    format!("unhealthy: {}", reasons.join("; "))
                }
                Verdict::Inconclusive(why) => {
                    inconclusive += 1;
                    if inconclusive < self.config.max_inconclusive_evaluations {
                        continue;
                    }
                    format!("{inconclusive} inconclusive evaluations in a row ({why})")
                }
            };
            if !self.config.rollback_on_failure {
                self.lock().phase = Phase::Finished;
                return Ok(CanaryOutcome::Halted { reason });
            }
            self.rollback(reason.clone())?;
            return Ok(CanaryOutcome::RolledBack {
                reason,
                summary: self.summary(),
            });
        }
    }

    fn set_canary_percent(&self, percent: f64) -> Result<(), DeployError> {
        self.router
            .set_split(&[(&self.stable, 100.0 - percent), (&self.canary, percent)])
    }

    fn active_state(&self, operation: &'static str) -> Result<MutexGuard<'_, State>, DeployError> {
        let state = self.lock();
        if state.phase != Phase::Active {
            return Err(DeployError::CanaryState {
                state: state.phase.name(),
                operation,
            });
        }
        Ok(state)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn emit(&self, event: CanaryEvent) {
        // No subscriber is fine: events are for whoever listens.
        let _ = self.events.send(event);
    }
}

fn summarize(evaluations: &[Evaluation]) -> CanarySummary {
    let total = evaluations.len();
    let healthy = evaluations
        .iter()
        .filter(|evaluation| evaluation.verdict == Verdict::Healthy)
        .count();
    let measured: Vec<&UpstreamStats> = evaluations
        .iter()
        .map(|evaluation| &evaluation.canary)
        .filter(|canary| canary.requests > 0)
        .collect();
    let mean = |value: fn(&UpstreamStats) -> f64| {
        if measured.is_empty() {
            0.0
        } else {
            measured.iter().map(|stats| value(stats)).sum::<f64>() / measured.len() as f64
        }
    };
    let health_rate = if total == 0 {
        0.0
    } else {
        healthy as f64 / total as f64
    };
    CanarySummary {
        total_evaluations: total,
        healthy_evaluations: healthy,
        health_rate,
        avg_error_rate: mean(|stats| stats.error_rate),
        avg_latency_ms: mean(|stats| stats.average_latency_ms),
        deployment_quality: if health_rate > 0.9 {
            "excellent"
        } else if health_rate > 0.7 {
            "good"
        } else {
            "poor"
        },
    }
}

impl fmt::Debug for Canary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Canary")
            .field("stable", &self.stable)
            .field("canary", &self.canary)
            .field("canary_percent", &self.canary_percent())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod statistics {
    use super::*;

    #[test]
    fn normal_quantiles_match_the_tables() {
        for (confidence, z) in [(0.9, 1.281_551_6), (0.95, 1.644_853_6), (0.99, 2.326_347_9)] {
            assert!((one_sided_z(confidence) - z).abs() < 1e-6, "{confidence}");
        }
    }

    #[test]
    fn wilson_bounds_bracket_the_rate_and_narrow_with_traffic() {
        let z = one_sided_z(0.95);
        let (low, high) = wilson(5, 100, z);
        assert!(low < 0.05 && 0.05 < high);
        // The score interval's formula, worked by hand for 5 of 100 at
        // z = 1.645: 0.0245 and 0.0992.
        assert!(
            (low - 0.0245).abs() < 2e-4 && (high - 0.0992).abs() < 2e-4,
            "{low} {high}"
        );
        let (low_more, high_more) = wilson(50, 1_000, z);
        assert!(low_more > low && high_more < high);
        // No error in 268 requests is the least that proves under 1%.
        assert!(wilson(0, 268, z).1 <= 0.01 && wilson(0, 267, z).1 > 0.01);
    }
}

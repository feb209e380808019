//! Canary releases: a new version gets a small share of traffic that grows
//! step by step while the router's measurements of it stay within bounds
//! and close to stable's; otherwise it is rolled back.

use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::DeployError;
use crate::router::{TrafficRouter, UpstreamStats};

/// The seed's canary settings, plus what the seed leaves out: how much
/// traffic an evaluation needs, and how many inconclusive or failed
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
    /// inconclusive and holds the share.
    pub min_requests: u64,
    /// Failed evaluations that end the release (1).
    pub max_failed_evaluations: u32,
    /// Inconclusive evaluations in a row that end the release (3).
    pub max_inconclusive_evaluations: u32,
    /// Whether ending the release rolls back; without, the share is held
    /// for an operator (true).
    pub rollback_on_failure: bool,
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

/// The seed's deployment summary.
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
    state: Mutex<State>,
    events: broadcast::Sender<CanaryEvent>,
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
            state: Mutex::new(State {
                phase: Phase::Idle,
                canary_percent: 0.0,
                evaluations: Vec::new(),
            }),
            events: broadcast::channel(256).0,
        })
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

    /// Evaluates the canary on the traffic of the last evaluation interval
    /// and records the result.
    pub fn evaluate(&self) -> Result<Evaluation, DeployError> {
        let over = self.config.evaluation_interval;
        let canary = self.router.stats(&self.canary, over)?;
        let stable = self.router.stats(&self.stable, over)?;
        let mut state = self.lock();
        let evaluation = Evaluation {
            canary_percent: state.canary_percent,
            verdict: self.judge(&canary, &stable),
            canary,
            stable,
        };
        state.evaluations.push(evaluation.clone());
        drop(state);
        self.emit(CanaryEvent::Evaluated(evaluation.clone()));
        Ok(evaluation)
    }

    fn judge(&self, canary: &UpstreamStats, stable: &UpstreamStats) -> Verdict {
        let config = &self.config;
        if canary.requests < config.min_requests {
            return Verdict::Inconclusive(format!(
                "{} canary requests in the last {:?}, {} needed",
                canary.requests, config.evaluation_interval, config.min_requests
            ));
        }
        let mut reasons = Vec::new();
        let max_latency_ms = config.max_latency.as_secs_f64() * 1e3;
        if canary.error_rate > config.max_error_rate {
            reasons.push(format!(
                "error rate {:.2}% above {:.2}%",
                canary.error_rate * 100.0,
                config.max_error_rate * 100.0
            ));
        }
        if canary.average_latency_ms > max_latency_ms {
            reasons.push(format!(
                "average latency {:.1} ms above {max_latency_ms:.1} ms",
                canary.average_latency_ms
            ));
        }
        // Comparisons with stable need stable traffic to compare with.
        if stable.requests >= config.min_requests {
            let error_bound =
                stable.error_rate * config.max_error_rate_vs_stable + config.error_rate_slack;
            if canary.error_rate > error_bound {
                reasons.push(format!(
                    "error rate {:.2}% above {}x stable's {:.2}%",
                    canary.error_rate * 100.0,
                    config.max_error_rate_vs_stable,
                    stable.error_rate * 100.0
                ));
            }
            let latency_bound = stable.average_latency_ms * config.max_latency_vs_stable
                + config.latency_slack.as_secs_f64() * 1e3;
            if canary.average_latency_ms > latency_bound {
                reasons.push(format!(
                    "average latency {:.1} ms above {}x stable's {:.1} ms + {:?}",
                    canary.average_latency_ms,
                    config.max_latency_vs_stable,
                    stable.average_latency_ms,
                    config.latency_slack
                ));
            }
        }
        if reasons.is_empty() {
            Verdict::Healthy
        } else {
            Verdict::Unhealthy(reasons)
        }
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

    /// The seed's summary of the evaluations so far.
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

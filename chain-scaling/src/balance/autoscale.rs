//! Auto-scaling: add and remove nodes from measured load.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chain_core::{BoxFuture, Error, Result};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{LoadBalancer, Node};
use crate::sync::lock;

/// Load as measured over the pool.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadSample {
    /// Nodes in the pool.
    pub nodes: usize,
    /// Average of the nodes' latency moving averages.
    pub latency: Duration,
    /// Calls in flight per node, divided by the policy's target concurrency.
    pub utilisation: f64,
    /// Work waiting upstream of the pool (from the policy's gauge, or 0).
    pub queue_length: u64,
    /// This process's CPU use since the previous sample, in cores (1.5 is
    /// one and a half cores busy); 0 on the first sample and where the
    /// platform does not tell.
    pub cpu_cores: f64,
    /// This process's resident memory, in bytes (0 where unknown).
    pub memory_bytes: u64,
}

/// When to scale. Scale-up thresholds sit above scale-down ones, so the pool
/// does not flap between them (hysteresis); after any action the policy
/// waits out the cooldown.
#[derive(Clone)]
pub struct ScalingPolicy {
    /// Fewest nodes.
    pub min_nodes: usize,
    /// Most nodes.
    pub max_nodes: usize,
    /// Calls in flight per node counted as full utilisation.
    pub target_concurrency: u32,
    /// Scale up when utilisation is above this...
    pub scale_up_utilisation: f64,
    /// ...or latency above this...
    pub scale_up_latency: Duration,
    /// ...or the queue longer than this...
    pub scale_up_queue: u64,
    /// ...or this process busier than this many cores...
    pub scale_up_cpu_cores: f64,
    /// ...or its resident memory above this.
    pub scale_up_memory_bytes: u64,
    /// Scale down only when utilisation is below this, latency below
    /// `scale_down_latency` and the queue empty.
    pub scale_down_utilisation: f64,
    /// See `scale_down_utilisation`.
    pub scale_down_latency: Duration,
    /// Least time between two actions.
    pub cooldown: Duration,
    /// Reads the length of the work queue feeding the pool, if any.
    pub queue_gauge: Option<Arc<dyn Fn() -> u64 + Send + Sync>>,
}

impl Default for ScalingPolicy {
    fn default() -> Self {
        Self {
            min_nodes: 1,
            max_nodes: 10,
            target_concurrency: 10,
            scale_up_utilisation: 0.8,
            scale_up_latency: Duration::from_secs(1),
            scale_up_queue: 100,
            // 80% of the cores this process may use.
            scale_up_cpu_cores: std::thread::available_parallelism()
                .map_or(1.0, |cores| cores.get() as f64)
                * 0.8,
            scale_up_memory_bytes: u64::MAX,
            scale_down_utilisation: 0.3,
            scale_down_latency: Duration::from_millis(200),
            cooldown: Duration::from_secs(60),
            queue_gauge: None,
        }
    }
}

impl fmt::Debug for ScalingPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScalingPolicy")
            .field("min_nodes", &self.min_nodes)
            .field("max_nodes", &self.max_nodes)
            .field("target_concurrency", &self.target_concurrency)
            .field("scale_up_utilisation", &self.scale_up_utilisation)
            .field("scale_down_utilisation", &self.scale_down_utilisation)
            .field("cooldown", &self.cooldown)
            .finish_non_exhaustive()
    }
}

/// What the policy decided, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Add a node.
    ScaleUp(String),
    /// Remove a node.
    ScaleDown(String),
    /// Do nothing.
    Hold(String),
}

impl ScalingPolicy {
    /// The decision for `sample`, `since_last_action` after the last action.
    pub fn decide(&self, sample: &LoadSample, since_last_action: Option<Duration>) -> Decision {
        if since_last_action.is_some_and(|since| since < self.cooldown) {
            return Decision::Hold("cooling down after the last action".to_owned());
        }
        if sample.nodes < self.min_nodes {
            return Decision::ScaleUp(format!(
                "{} nodes, below the minimum of {}",
                sample.nodes, self.min_nodes
            ));
        }
        let pressure = if sample.utilisation > self.scale_up_utilisation {
            Some(format!("utilisation {:.0}%", sample.utilisation * 100.0))
        } else if sample.latency > self.scale_up_latency {
            Some(format!("latency {:?}", sample.latency))
        } else if sample.queue_length > self.scale_up_queue {
            Some(format!("queue of {}", sample.queue_length))
        } else if sample.cpu_cores > self.scale_up_cpu_cores {
            Some(format!("CPU {:.2} cores", sample.cpu_cores))
        } else if sample.memory_bytes > self.scale_up_memory_bytes {
            Some(format!("memory {} MB", sample.memory_bytes >> 20))
        } else {
            None
        };
        if let Some(reason) = pressure {
            return if sample.nodes < self.max_nodes {
                Decision::ScaleUp(reason)
            } else {
                Decision::Hold(format!("{reason}, but already at {} nodes", self.max_nodes))
            };
        }
        let idle = sample.utilisation < self.scale_down_utilisation
            && sample.latency < self.scale_down_latency
            && sample.queue_length == 0
            && sample.cpu_cores < self.scale_up_cpu_cores / 2.0;
        if idle && sample.nodes > self.min_nodes {
            Decision::ScaleDown(format!("utilisation {:.0}%", sample.utilisation * 100.0))
        } else {
            Decision::Hold("load within thresholds".to_owned())
        }
    }
}

/// Carries out scaling decisions: starts and stops capacity. The in-process
/// [`LocalScaler`] adds and removes nodes of a balancer; a Kubernetes one
/// would patch a Deployment's replica count and let readiness probes and
/// service discovery add the pods to the pool.
pub trait Scaler<C>: Send + Sync + 'static {
    /// Adds one node.
    fn scale_up<'a>(&'a self, balancer: &'a LoadBalancer<C>) -> BoxFuture<'a, Result<()>>;

    /// Removes one node; its running calls finish (it drains).
    fn scale_down<'a>(&'a self, balancer: &'a LoadBalancer<C>) -> BoxFuture<'a, Result<()>>;

    /// The capacity running now: the balancer's nodes by default; a scaler
    /// of processes counts its live workers.
    fn running(&self, balancer: &LoadBalancer<C>) -> usize {
        balancer.inner.snapshot.load().nodes.len()
    }
}

type NodeFactory<C> = Arc<dyn Fn(usize) -> Node<C> + Send + Sync>;

/// Starts and stops nodes in this process, made by a factory; removes the
/// nodes it started, newest first.
pub struct LocalScaler<C> {
    factory: NodeFactory<C>,
    started: std::sync::Mutex<Vec<String>>,
    next: std::sync::atomic::AtomicUsize,
}

impl<C: Send + 'static> LocalScaler<C> {
    /// Nodes made by `factory(n)` for the n-th node started.
    pub fn new(factory: impl Fn(usize) -> Node<C> + Send + Sync + 'static) -> Self {
        Self {
            factory: Arc::new(factory),
            started: std::sync::Mutex::new(Vec::new()),
            next: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl<C> fmt::Debug for LocalScaler<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalScaler").finish_non_exhaustive()
    }
}

impl<C: Send + 'static> Scaler<C> for LocalScaler<C> {
    fn scale_up<'a>(&'a self, balancer: &'a LoadBalancer<C>) -> BoxFuture<'a, Result<()>> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let node = (self.factory)(n);
        let id = node.id().to_owned();
        let outcome = balancer.add_node(node).map(|()| {
            lock(&self.started).push(id);
        });
        Box::pin(std::future::ready(outcome))
    }

    fn scale_down<'a>(&'a self, balancer: &'a LoadBalancer<C>) -> BoxFuture<'a, Result<()>> {
        let newest = lock(&self.started).pop();
        let outcome = match newest {
            Some(id) => balancer.remove_node(&id).map(drop),
            None => Err(Error::rejected(
                "no node started by this scaler is left to stop",
            )),
        };
        Box::pin(std::future::ready(outcome))
    }
}

/// Measures a balancer's pool and scales it by a policy: once per call of
/// [`evaluate`](Self::evaluate), or by itself in the background
/// ([`run_every`](Self::run_every)).
pub struct AutoScaler<C> {
    balancer: LoadBalancer<C>,
    policy: ScalingPolicy,
    scaler: Box<dyn Scaler<C>>,
    last_action: Option<Instant>,
    /// The process's CPU time at the previous sample, and when.
    last_cpu: Option<(Instant, Duration)>,
}

impl<C: Send + 'static> AutoScaler<C> {
    /// An autoscaler for `balancer`.
    pub fn new(balancer: LoadBalancer<C>, policy: ScalingPolicy, scaler: impl Scaler<C>) -> Self {
        // The balancer's status reports auto-scaling while this lives.
        balancer
            .inner
            .scalers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self {
            balancer,
            policy,
            scaler: Box::new(scaler),
            last_action: None,
            last_cpu: None,
        }
    }

    /// The pool's load now, and this process's CPU since the previous
    /// sample and its memory.
    pub fn sample(&mut self) -> LoadSample {
        let now = Instant::now();
        let cpu_time = process_cpu_time();
        let cpu_cores = match (self.last_cpu, cpu_time) {
            (Some((at, before)), Some(used)) if now > at => {
                used.saturating_sub(before).as_secs_f64() / (now - at).as_secs_f64()
            }
            _ => 0.0,
        };
        if let Some(used) = cpu_time {
            self.last_cpu = Some((now, used));
        }
        let nodes = self.balancer.nodes();
        let count = self.scaler.running(&self.balancer);
        let in_flight: u32 = nodes.iter().map(|node| node.in_flight()).sum();
        let latency = if nodes.is_empty() {
            Duration::ZERO
        } else {
            nodes.iter().map(|node| node.latency()).sum::<Duration>() / nodes.len() as u32
        };
        let capacity = count.max(1) as f64 * f64::from(self.policy.target_concurrency.max(1));
        LoadSample {
            nodes: count,
            latency,
            utilisation: f64::from(in_flight) / capacity,
            queue_length: self.policy.queue_gauge.as_ref().map_or(0, |gauge| gauge()),
            cpu_cores,
            memory_bytes: chain_core::stats::resident_memory_bytes().unwrap_or(0),
        }
    }

    /// Measures, decides and acts once.
    ///
    /// # Errors
    ///
    /// The scaler's failure to add or remove a node.
    pub async fn evaluate(&mut self) -> Result<Decision> {
        let sample = self.sample();
        let decision = self
            .policy
            .decide(&sample, self.last_action.map(|at| at.elapsed()));
        match &decision {
            Decision::ScaleUp(_) => self.scaler.scale_up(&self.balancer).await?,
            Decision::ScaleDown(_) => self.scaler.scale_down(&self.balancer).await?,
            Decision::Hold(_) => return Ok(decision),
        }
        self.last_action = Some(Instant::now());
        Ok(decision)
    }
}

impl<C: Send + 'static> AutoScaler<C> {
    /// Evaluates every `interval` on the current tokio runtime until the
    /// returned handle is stopped or dropped: scaling that runs by itself.
    /// A scaler's failure is logged and counted, and the next tick tries
    /// again.
    pub fn run_every(mut self, interval: Duration) -> AutoScaling {
        let (report, reports) = watch::channel(ScalingReport::default());
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let outcome = self.evaluate().await;
                let running = self.scaler.running(&self.balancer);
                report.send_modify(|report| {
                    report.evaluations += 1;
                    report.running = running;
                    report.peak_running = report.peak_running.max(running);
                    match outcome {
                        Ok(Decision::ScaleUp(_)) => report.scaled_up += 1,
                        Ok(Decision::ScaleDown(_)) => report.scaled_down += 1,
                        Ok(Decision::Hold(_)) => {}
                        Err(ref error) => {
                            tracing::warn!(%error, "auto-scaling failed to act");
                            report.failures += 1;
                        }
                    }
                    if let Ok(decision) = outcome {
                        report.last = Some(decision);
                    }
                });
            }
        });
        AutoScaling {
            task: Some(task),
            reports,
        }
    }
}

/// What a background auto-scaler has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScalingReport {
    /// Evaluations made.
    pub evaluations: u64,
    /// Capacity running after the last one.
    pub running: usize,
    /// The most capacity that ran at once.
    pub peak_running: usize,
    /// Times it added capacity.
    pub scaled_up: u64,
    /// Times it removed capacity.
    pub scaled_down: u64,
    /// Times the scaler failed to act.
    pub failures: u64,
    /// The last decision.
    pub last: Option<Decision>,
}

/// A running background auto-scaler; stops when dropped.
#[derive(Debug)]
pub struct AutoScaling {
    task: Option<tokio::task::JoinHandle<()>>,
    reports: watch::Receiver<ScalingReport>,
}

impl AutoScaling {
    /// What it has done so far.
    pub fn report(&self) -> ScalingReport {
        self.reports.borrow().clone()
    }

    /// Reports as they change, to wait on a condition (`wait_for`).
    pub fn reports(&self) -> watch::Receiver<ScalingReport> {
        self.reports.clone()
    }

    /// Stops the loop and waits until the auto-scaler is gone (a
    /// [`ProcessScaler`](super::ProcessScaler)'s workers killed with it);
    /// returns the last report. Dropping the handle stops the loop without
    /// waiting.
    pub async fn stop(mut self) -> ScalingReport {
        let report = self.report();
        if let Some(task) = self.task.take() {
            task.abort();
            // Cancelled: its future, the auto-scaler in it, is dropped.
            let _ = task.await;
        }
        report
    }
}

impl Drop for AutoScaling {
    fn drop(&mut self) {
        // The auto-scaler (and with it a process scaler's workers, which
        // are killed when dropped) goes with the task.
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// The CPU time this process has used (Linux: user and system time from
/// `/proc/self/stat`, whose clock ticks are 1/100 s on every Linux).
fn process_cpu_time() -> Option<Duration> {
    #[cfg(target_os = "linux")]
    {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which may hold spaces.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(Duration::from_millis(ticks * 10))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

impl<C> Drop for AutoScaler<C> {
    fn drop(&mut self) {
        self.balancer
            .inner
            .scalers
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl<C> fmt::Debug for AutoScaler<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AutoScaler")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

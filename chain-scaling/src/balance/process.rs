//! [`ProcessScaler`]: capacity as worker processes on this machine.

use std::fmt;
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chain_core::{BoxFuture, Error, ErrorKind, Result};
use tokio::process::{Child, Command};

use super::{LoadBalancer, Scaler};
use crate::sync::lock;

/// Scales by starting and stopping worker processes: for workers that take
/// their work from a shared queue (a JetStream subscription, say) rather
/// than from a balancer, so the balancer it is given is not used.
///
/// Each worker is `program args...` with `MODULINK_WORKER_ID` set
/// (`worker-0`, `worker-1`, ...) and a pipe on its standard input. Scaling
/// down drains the newest worker: its standard input is closed, which asks
/// it to stop taking work, finish what it has and exit (the convention the
/// `nats-workers` example follows); one that has not exited after the
/// drain timeout is killed. Workers that exit by themselves are no longer
/// counted as running, so the auto-scaler replaces them. Dropping the
/// scaler kills the workers left.
///
/// This is the shape of a Kubernetes scaler on one machine. One for
/// Kubernetes implements the same [`Scaler`] trait: `scale_up` and
/// `scale_down` patch the worker Deployment's `spec.replicas` through the
/// API server (the `kube` crate's `Api::<Deployment>::patch_scale`), and
/// `running` reads `status.readyReplicas`; the pod's `preStop` hook and
/// `terminationGracePeriodSeconds` do what closing standard input and the
/// drain timeout do here.
pub struct ProcessScaler {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    drain_timeout: Duration,
    workers: Mutex<Vec<Worker>>,
    next: AtomicUsize,
}

struct Worker {
    id: String,
    child: Child,
}

impl ProcessScaler {
    /// Workers running `program` with `args`, drained for at most 30 s.
    pub fn new(
        program: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            drain_timeout: Duration::from_secs(30),
            workers: Mutex::new(Vec::new()),
            next: AtomicUsize::new(0),
        }
    }

    /// Sets environment variable `key` for every worker.
    #[must_use]
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// How long a worker asked to stop may take before it is killed.
    #[must_use]
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// The ids of the workers running now, oldest first.
    pub fn worker_ids(&self) -> Vec<String> {
        let mut workers = lock(&self.workers);
        reap(&mut workers);
        workers.iter().map(|worker| worker.id.clone()).collect()
    }

    fn start(&self) -> Result<()> {
        let id = format!("worker-{}", self.next.fetch_add(1, Ordering::Relaxed));
        let child = Command::new(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .env("MODULINK_WORKER_ID", &id)
            .stdin(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| {
                Error::new(
                    ErrorKind::Unavailable,
                    format!("cannot start worker `{id}` (`{}`)", self.program),
                )
                .with_source(error)
            })?;
        lock(&self.workers).push(Worker { id, child });
        Ok(())
    }

    async fn drain_newest(&self) -> Result<()> {
        let newest = {
            let mut workers = lock(&self.workers);
            reap(&mut workers);
            workers.pop()
        };
        let Some(Worker { id, mut child }) = newest else {
            return Err(Error::rejected("no worker is left to stop"));
        };
        // End of input: stop taking work, finish, exit.
        drop(child.stdin.take());
        match tokio::time::timeout(self.drain_timeout, child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(Error::internal(format!(
                "worker `{id}` exited with {status} while draining"
            ))),
            Ok(Err(error)) => {
                Err(Error::internal(format!("cannot wait for worker `{id}`")).with_source(error))
            }
            Err(_) => {
                let _ = child.kill().await;
                Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "worker `{id}` did not drain within {:?} and was killed",
                        self.drain_timeout
                    ),
                ))
            }
        }
    }
}

/// Forgets workers that have exited.
fn reap(workers: &mut Vec<Worker>) {
    workers.retain_mut(|worker| matches!(worker.child.try_wait(), Ok(None)));
}

impl<C: Send + 'static> Scaler<C> for ProcessScaler {
    fn scale_up<'a>(&'a self, _: &'a LoadBalancer<C>) -> BoxFuture<'a, Result<()>> {
        Box::pin(std::future::ready(self.start()))
    }

    fn scale_down<'a>(&'a self, _: &'a LoadBalancer<C>) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.drain_newest())
    }

    fn running(&self, _: &LoadBalancer<C>) -> usize {
        let mut workers = lock(&self.workers);
        reap(&mut workers);
        workers.len()
    }
}

impl fmt::Debug for ProcessScaler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessScaler")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("drain_timeout", &self.drain_timeout)
            .field("workers", &self.worker_ids())
            .finish()
    }
}

//! Putting a version into an environment: the part of a release that is
//! specific to where services run.

use std::fmt;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chain_core::{BoxError, BoxFuture};
use tokio::io::AsyncReadExt;

/// Deploys a version to an environment and returns once it is running
/// (not yet validated: [`BlueGreen`](crate::blue_green::BlueGreen) does
/// that with real requests).
///
/// On Kubernetes an implementation would patch the environment's Deployment
/// (`spec.template.spec.containers[0].image = "registry/app:{version}"`)
/// through the API server, e.g. with the `kube` crate, and wait until its
/// rollout status reports every replica updated and available.
pub trait Deployer: Send + Sync + 'static {
    /// Deploys `version` to `environment`.
    fn deploy<'a>(
        &'a self,
        environment: &'a str,
        version: &'a str,
    ) -> BoxFuture<'a, Result<(), BoxError>>;
}

/// Deploys nothing: for environments that are deployed by other means, and
/// for tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopDeployer;

impl Deployer for NoopDeployer {
    fn deploy<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Runs a command, with `MODULINK_ENVIRONMENT` and `MODULINK_VERSION` in its
/// environment; a non-zero exit is a failure carrying the end of the
/// command's stderr. The deploy is done when the command exits, even if it
/// left the service running in the background with its output.
///
/// ```no_run
/// use chain_deploy::deployer::CommandDeployer;
///
/// let deployer = CommandDeployer::new("./deploy.sh", ["--wait"]);
/// ```
#[derive(Clone)]
pub struct CommandDeployer {
    program: String,
    args: Vec<String>,
}

impl CommandDeployer {
    /// Runs `program` with `args`.
    pub fn new(
        program: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        CommandDeployer {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }
}

/// The end of a failing command's stderr kept for its error.
const STDERR_TAIL_BYTES: usize = 4096;

/// How long output still arriving after the command exits is read: a
/// process it left running may hold the pipe open for good.
const OUTPUT_GRACE: Duration = Duration::from_millis(100);

impl Deployer for CommandDeployer {
    fn deploy<'a>(
        &'a self,
        environment: &'a str,
        version: &'a str,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let mut child = tokio::process::Command::new(&self.program)
                .args(&self.args)
                .env("MODULINK_ENVIRONMENT", environment)
                .env("MODULINK_VERSION", version)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|error| format!("cannot run `{}`: {error}", self.program))?;
            // The deploy is over when the command exits. A script that
            // starts the service in the background (`service &`) leaves it
            // holding stderr, so the pipe is read beside the wait, not to
            // its end.
            let tail = Arc::new(Mutex::new(Vec::new()));
            let reader = child
                .stderr
                .take()
                .map(|stderr| tokio::spawn(keep_tail(stderr, Arc::clone(&tail))));
            let status = child
                .wait()
                .await
                .map_err(|error| format!("cannot wait for `{}`: {error}", self.program))?;
            if let Some(mut reader) = reader
                && tokio::time::timeout(OUTPUT_GRACE, &mut reader)
                    .await
                    .is_err()
            {
                reader.abort();
            }
            if status.success() {
                return Ok(());
            }
            let stderr = tail.lock().unwrap_or_else(PoisonError::into_inner);
            let stderr = String::from_utf8_lossy(&stderr);
            let lines: Vec<&str> = stderr.lines().rev().take(5).collect();
            let tail = lines.into_iter().rev().collect::<Vec<_>>().join("\n");
            Err(format!("`{}` exited with {status}: {tail}", self.program).into())
        })
    }
}

/// Reads `stderr` to its end, keeping its last [`STDERR_TAIL_BYTES`].
async fn keep_tail(mut stderr: tokio::process::ChildStderr, tail: Arc<Mutex<Vec<u8>>>) {
    let mut buffer = [0u8; 1024];
    while let Ok(read) = stderr.read(&mut buffer).await {
        if read == 0 {
            break;
        }
        let mut tail = tail.lock().unwrap_or_else(PoisonError::into_inner);
        tail.extend_from_slice(&buffer[..read]);
        let excess = tail.len().saturating_sub(STDERR_TAIL_BYTES);
        tail.drain(..excess);
    }
}

impl fmt::Debug for CommandDeployer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandDeployer")
            .field("program", &self.program)
            .field("args", &self.args)
            .finish()
    }
}

//! Putting a version into an environment: the part of a release that is
//! specific to where services run.

use std::fmt;

use chain_core::{BoxError, BoxFuture};

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
/// environment; a non-zero exit is a failure carrying the command's stderr.
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

impl Deployer for CommandDeployer {
    fn deploy<'a>(
        &'a self,
        environment: &'a str,
        version: &'a str,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let output = tokio::process::Command::new(&self.program)
                .args(&self.args)
                .env("MODULINK_ENVIRONMENT", environment)
                .env("MODULINK_VERSION", version)
                .kill_on_drop(true)
                .output()
                .await
                .map_err(|error| format!("cannot run `{}`: {error}", self.program))?;
            if output.status.success() {
                return Ok(());
            }
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: String = stderr
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            Err(format!("`{}` exited with {}: {tail}", self.program, output.status).into())
        })
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

//! What can go wrong when routing, deploying or releasing.

use chain_core::BoxError;

/// A deployment operation failed; the message says which and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeployError {
    /// An upstream URL is not `http://host:port`.
    #[error("upstream `{name}` has an invalid url {url:?}: {reason}")]
    InvalidUrl {
        /// The upstream.
        name: String,
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No upstream has this name.
    #[error("no upstream is named `{name}`")]
    UnknownUpstream {
        /// The name asked for.
        name: String,
    },
    /// Two upstreams share a name.
    #[error("upstream `{name}` is configured twice")]
    DuplicateUpstream {
        /// The name.
        name: String,
    },
    /// Shares that do not add up to 100% or are negative.
    #[error("invalid traffic split: {reason}")]
    InvalidSplit {
        /// Why.
        reason: String,
    },
    /// The deployer could not deploy.
    #[error("deploying version {version} to `{environment}` failed")]
    Deployer {
        /// The environment.
        environment: String,
        /// The version.
        version: String,
        /// The deployer's error.
        #[source]
        source: BoxError,
    },
    /// The new environment did not pass validation; traffic was not moved.
    #[error("`{environment}` failed validation, traffic stays where it was: {}", reasons.join("; "))]
    ValidationFailed {
        /// The environment.
        environment: String,
        /// Every check that failed.
        reasons: Vec<String>,
    },
    /// A deploy or rollback was asked for while another one runs.
    #[error("cannot {operation}: another deploy or rollback is in progress")]
    ReleaseInProgress {
        /// What was asked for.
        operation: &'static str,
    },
    /// Rollback would send traffic to an unhealthy environment.
    #[error("rollback to `{environment}` refused: {reason}")]
    RollbackRefused {
        /// The environment rollback would switch to.
        environment: String,
        /// Why it is not fit.
        reason: String,
    },
    /// A canary operation in the wrong state.
    #[error("canary is {state}: cannot {operation}")]
    CanaryState {
        /// The state it is in.
        state: &'static str,
        /// What was asked.
        operation: &'static str,
    },
}

//! What a durable execution's checkpoint holds, and the store contract.

use std::fmt;

use chain_core::{BoxFuture, Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where an execution stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    /// Started, not yet claimed by a worker (or released by one).
    Pending,
    /// A worker holds its lease and runs its links.
    Running,
    /// Every link finished; the context is the result.
    Completed,
    /// A link failed; the context is the one it was given, the error is
    /// kept, and it can be retried from that link.
    Failed,
}

impl ExecutionStatus {
    /// The status's name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// The status named `name`.
    ///
    /// # Errors
    ///
    /// An [`Internal`](ErrorKind::Internal) error for a name no status has
    /// (a store written by something else).
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            other => {
                return Err(Error::internal(format!(
                    "unknown execution status `{other}`"
                )));
            }
        })
    }
}

impl fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A version of an execution's record: every change that moves it (a
/// claim, a checkpoint) makes a new one, and a write names the revision it
/// read, so of two writers that read the same revision only one succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Revision(pub u64);

/// One durable execution as stored: after each link its context and the
/// index of the next link are written together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    /// The execution's id, chosen by whoever starts it.
    pub id: String,
    /// The name of the chain it runs; a worker runs only chains it has.
    pub chain: String,
    /// Where it stands.
    pub status: ExecutionStatus,
    /// The index of the next link to run (the number of links finished).
    pub next_link: usize,
    /// The context as the last finished link left it (the input before the
    /// first), as JSON.
    pub context: Value,
    /// Why it failed, for a failed execution.
    pub error: Option<String>,
    /// The worker holding the lease while it runs.
    pub lease_owner: Option<String>,
    /// For a running execution, when its lease runs out; for a pending
    /// one, when its durable timer fires (it is not claimed before: see
    /// [`Wake`](super::Wake)). In milliseconds since the Unix epoch.
    pub lease_until_ms: Option<u64>,
    /// Times a worker claimed it: more than one when a worker died or lost
    /// its lease and another took over, or when it waited on a durable
    /// timer and was claimed again when it fired.
    pub claims: u32,
    /// When it was started, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// When it last changed.
    pub updated_ms: u64,
}

impl ExecutionRecord {
    /// A new pending execution of `chain` on `context`, started at `now_ms`.
    pub fn new(
        id: impl Into<String>,
        chain: impl Into<String>,
        context: Value,
        now_ms: u64,
    ) -> Self {
        Self {
            id: id.into(),
            chain: chain.into(),
            status: ExecutionStatus::Pending,
            next_link: 0,
            context,
            error: None,
            lease_owner: None,
            lease_until_ms: None,
            claims: 0,
            created_ms: now_ms,
            updated_ms: now_ms,
        }
    }

    /// Whether a worker may claim it at `now_ms`: pending (with its
    /// durable timer, if any, fired), or running under a lease that has run
    /// out.
    pub fn is_claimable(&self, now_ms: u64) -> bool {
        match self.status {
            ExecutionStatus::Pending | ExecutionStatus::Running => {
                self.lease_until_ms.is_none_or(|until| until <= now_ms)
            }
            ExecutionStatus::Completed | ExecutionStatus::Failed => false,
        }
    }

    /// When a pending execution's durable timer fires, if it waits on one.
    pub fn wakes_at_ms(&self) -> Option<u64> {
        match self.status {
            ExecutionStatus::Pending => self.lease_until_ms,
            _ => None,
        }
    }
}

/// What a checkpoint writes, all at once: the state after a link, and the
/// lease it keeps running under.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The new status (`Running` between links).
    pub status: ExecutionStatus,
    /// The index of the next link.
    pub next_link: usize,
    /// The context after the link.
    pub context: Value,
    /// The error, when it failed.
    pub error: Option<String>,
    /// The lease from now on (`None` once finished).
    pub lease_until_ms: Option<u64>,
}

/// Where durable executions are kept.
///
/// Every write that moves an execution is a compare-and-swap on its
/// [`Revision`] and, while it runs, on the worker holding the lease: a
/// worker whose lease ran out and was claimed by another cannot write
/// again (its write fails with [`Conflict`](ErrorKind::Conflict)), so two
/// workers never both advance one execution.
pub trait CheckpointStore: Send + Sync + 'static {
    /// Stores `record` unless an execution with its id exists; returns the
    /// stored one (the existing one, if there was) and whether it was new.
    ///
    /// # Errors
    ///
    /// The store's own failures.
    fn create(&self, record: ExecutionRecord) -> BoxFuture<'_, Result<(ExecutionRecord, bool)>>;

    /// The execution `id` and its revision.
    ///
    /// # Errors
    ///
    /// The store's own failures.
    fn get<'a>(&'a self, id: &'a str)
    -> BoxFuture<'a, Result<Option<(ExecutionRecord, Revision)>>>;

    /// Claims one execution of one of `chains` that is claimable at
    /// `now_ms` (oldest first) for `worker`, with a lease until
    /// `lease_until_ms`; `None` when there is none.
    ///
    /// # Errors
    ///
    /// The store's own failures.
    fn claim<'a>(
        &'a self,
        worker: &'a str,
        chains: &'a [String],
        now_ms: u64,
        lease_until_ms: u64,
    ) -> BoxFuture<'a, Result<Option<(ExecutionRecord, Revision)>>>;

    /// Writes `checkpoint` to execution `id` if it is still at `revision`
    /// and leased by `worker`; returns the new revision.
    ///
    /// # Errors
    ///
    /// [`Conflict`](ErrorKind::Conflict) when the revision or the lease
    /// owner changed (the worker must abandon the execution),
    /// [`NotFound`](ErrorKind::NotFound) for an unknown id, or the store's
    /// own failures.
    fn checkpoint<'a>(
        &'a self,
        id: &'a str,
        revision: Revision,
        worker: &'a str,
        checkpoint: Checkpoint,
    ) -> BoxFuture<'a, Result<Revision>>;

    /// Extends the lease of execution `id` to `lease_until_ms` if it is
    /// still at `revision` and leased by `worker`; returns the revision to
    /// write at from now on (the same one in stores whose renewals leave
    /// the revision, a new one in stores where every write makes one).
    ///
    /// # Errors
    ///
    /// As [`checkpoint`](Self::checkpoint).
    fn renew<'a>(
        &'a self,
        id: &'a str,
        revision: Revision,
        worker: &'a str,
        lease_until_ms: u64,
    ) -> BoxFuture<'a, Result<Revision>>;

    /// Makes failed execution `id` pending again, to resume at the link
    /// that failed (its error is cleared). Returns whether it did: only a
    /// failed execution is retried.
    ///
    /// # Errors
    ///
    /// [`NotFound`](ErrorKind::NotFound) for an unknown id, or the store's
    /// own failures.
    fn retry<'a>(&'a self, id: &'a str, now_ms: u64) -> BoxFuture<'a, Result<bool>>;

    /// Every execution with `status` (or all), oldest first.
    ///
    /// # Errors
    ///
    /// The store's own failures.
    fn list(&self, status: Option<ExecutionStatus>) -> BoxFuture<'_, Result<Vec<ExecutionRecord>>>;
}

/// The error of a compare-and-swap that lost.
pub(crate) fn lost(id: &str) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!("execution `{id}` moved on or its lease passed to another worker"),
    )
}

/// The error for an unknown execution.
pub(crate) fn unknown(id: &str) -> Error {
    Error::not_found(format!("no durable execution `{id}`"))
}

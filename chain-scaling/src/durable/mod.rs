//! Durable executions: the stores that keep a chain's progress across the
//! crash of the process running it.
//!
//! A durable execution is checkpointed after each link: its context and
//! the index of the next link are written together, in one
//! compare-and-swap on the execution's [`Revision`]. A worker runs an
//! execution under a lease with a time to live, renewed while a link runs;
//! when the worker dies the lease runs out and another worker claims the
//! execution and continues at the next link. A worker whose lease ran out
//! and was taken over cannot write again: its compare-and-swap fails.
//!
//! [`Durable`] runs registered [`DurableChain`]s this way, and gives each
//! link its [`IdempotencyKey`]; a link can make the execution wait, through
//! restarts, with a durable timer ([`Wake`], [`DurableChain::sleep`]); its docs state the guarantee exactly and
//! compare it with Temporal, Restate and the JetStream event bus. The
//! stores keep the contract, [`CheckpointStore`]:
//! [`SqliteCheckpointStore`] (feature `sqlite`), the embedded default,
//! durable across process crashes on one machine with no service to run;
//! [`JetStreamCheckpointStore`] (feature `nats`), a JetStream key-value
//! bucket shared by workers on many machines; and
//! [`MemoryCheckpointStore`], for tests.

mod engine;
#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
mod kv;
mod memory;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
mod sqlite;
mod store;

pub use engine::{Durable, DurableChain, IdempotencyKey, Wake};
#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub use kv::JetStreamCheckpointStore;
pub use memory::MemoryCheckpointStore;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::{Durability, SqliteCheckpointStore};
pub use store::{Checkpoint, CheckpointStore, ExecutionRecord, ExecutionStatus, Revision};

/// Milliseconds since the Unix epoch, the stores' clock for leases.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

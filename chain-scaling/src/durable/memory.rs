//! [`MemoryCheckpointStore`]: checkpoints in this process, for tests.

use std::collections::HashMap;
use std::sync::Mutex;

use chain_core::{BoxFuture, Result};

use super::store::{
    Checkpoint, CheckpointStore, ExecutionRecord, ExecutionStatus, Revision, lost, unknown,
};
use crate::sync::lock;

/// Checkpoints in a map in this process, with the same compare-and-swap
/// rules as the real stores. For tests only: nothing survives the process,
/// which is what durable executions exist to survive.
#[derive(Debug, Default)]
pub struct MemoryCheckpointStore {
    executions: Mutex<HashMap<String, (ExecutionRecord, Revision)>>,
}

impl MemoryCheckpointStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn write(
        &self,
        id: &str,
        revision: Revision,
        worker: &str,
        change: impl FnOnce(&mut ExecutionRecord),
        bump: bool,
    ) -> Result<Revision> {
        let mut executions = lock(&self.executions);
        let (record, current) = executions.get_mut(id).ok_or_else(|| unknown(id))?;
        if *current != revision || record.lease_owner.as_deref() != Some(worker) {
            return Err(lost(id));
        }
        change(record);
        if bump {
            current.0 += 1;
        }
        Ok(*current)
    }
}

impl CheckpointStore for MemoryCheckpointStore {
    fn create(&self, record: ExecutionRecord) -> BoxFuture<'_, Result<(ExecutionRecord, bool)>> {
        let mut executions = lock(&self.executions);
        let outcome = match executions.get(&record.id) {
            Some((existing, _)) => (existing.clone(), false),
            None => {
                executions.insert(record.id.clone(), (record.clone(), Revision(1)));
                (record, true)
            }
        };
        Box::pin(std::future::ready(Ok(outcome)))
    }

    fn get<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<(ExecutionRecord, Revision)>>> {
        Box::pin(std::future::ready(Ok(lock(&self.executions)
            .get(id)
            .cloned())))
    }

    fn claim<'a>(
        &'a self,
        worker: &'a str,
        chains: &'a [String],
        now_ms: u64,
        lease_until_ms: u64,
    ) -> BoxFuture<'a, Result<Option<(ExecutionRecord, Revision)>>> {
        let mut executions = lock(&self.executions);
        let oldest = executions
            .values_mut()
            .filter(|(record, _)| record.is_claimable(now_ms) && chains.contains(&record.chain))
            .min_by(|(a, _), (b, _)| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        let claimed = oldest.map(|(record, revision)| {
            record.status = ExecutionStatus::Running;
            record.lease_owner = Some(worker.to_owned());
            record.lease_until_ms = Some(lease_until_ms);
            record.claims += 1;
            record.updated_ms = now_ms;
            revision.0 += 1;
            (record.clone(), *revision)
        });
        Box::pin(std::future::ready(Ok(claimed)))
    }

    fn checkpoint<'a>(
        &'a self,
        id: &'a str,
        revision: Revision,
        worker: &'a str,
        checkpoint: Checkpoint,
    ) -> BoxFuture<'a, Result<Revision>> {
        let outcome = self.write(
            id,
            revision,
            worker,
            |record| {
                record.status = checkpoint.status;
                record.next_link = checkpoint.next_link;
                record.context = checkpoint.context;
                record.error = checkpoint.error;
                // The owner stays only while it runs under its lease.
                if checkpoint.status != ExecutionStatus::Running
                    || checkpoint.lease_until_ms.is_none()
                {
                    record.lease_owner = None;
                }
                record.lease_until_ms = checkpoint.lease_until_ms;
                record.updated_ms = super::now_ms();
            },
            true,
        );
        Box::pin(std::future::ready(outcome))
    }

    fn renew<'a>(
        &'a self,
        id: &'a str,
        revision: Revision,
        worker: &'a str,
        lease_until_ms: u64,
    ) -> BoxFuture<'a, Result<Revision>> {
        let outcome = self.write(
            id,
            revision,
            worker,
            |record| record.lease_until_ms = Some(lease_until_ms),
            false,
        );
        Box::pin(std::future::ready(outcome))
    }

    fn retry<'a>(&'a self, id: &'a str, now_ms: u64) -> BoxFuture<'a, Result<bool>> {
        let mut executions = lock(&self.executions);
        let outcome = match executions.get_mut(id) {
            None => Err(unknown(id)),
            Some((record, _)) if record.status != ExecutionStatus::Failed => Ok(false),
            Some((record, revision)) => {
                record.status = ExecutionStatus::Pending;
                record.error = None;
                record.updated_ms = now_ms;
                revision.0 += 1;
                Ok(true)
            }
        };
        Box::pin(std::future::ready(outcome))
    }

    fn list(&self, status: Option<ExecutionStatus>) -> BoxFuture<'_, Result<Vec<ExecutionRecord>>> {
        let mut records: Vec<ExecutionRecord> = lock(&self.executions)
            .values()
            .filter(|(record, _)| status.is_none_or(|status| record.status == status))
            .map(|(record, _)| record.clone())
            .collect();
        records.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Box::pin(std::future::ready(Ok(records)))
    }
}

//! [`JetStreamCheckpointStore`]: checkpoints in a NATS JetStream key-value
//! bucket (feature `nats`), for workers on many machines.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use chain_core::{BoxFuture, Error, ErrorKind, Result};
use futures_util::StreamExt;

use super::store::{
    Checkpoint, CheckpointStore, ExecutionRecord, ExecutionStatus, Revision, lost, unknown,
};
use crate::sync::lock;

type Index = Arc<Mutex<HashMap<String, (ExecutionRecord, Revision)>>>;

/// Durable executions in a JetStream key-value bucket: one key per
/// execution, its value the record as JSON, its revision the bucket's
/// revision of the key. Every write is the bucket's compare-and-swap
/// (`update` at the revision read), so workers on any number of machines
/// share the bucket safely; with a replicated bucket (`replicas` 3 on a
/// cluster) checkpoints survive the loss of a server.
///
/// Each store watches the bucket to keep an index of the executions, which
/// claims pick candidates from and [`list`](CheckpointStore::list) reads:
/// it trails the bucket by the watch's delivery time, and a claim always
/// re-reads the key before taking it. Execution ids must be valid keys:
/// letters, digits, `-`, `_`, `=`, `/` and `.` (not at either end).
#[derive(Clone)]
pub struct JetStreamCheckpointStore {
    kv: kv::Store,
    index: Index,
    _watch: Arc<WatchTask>,
}

struct WatchTask(tokio::task::JoinHandle<()>);

impl Drop for WatchTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn transport(what: &str, error: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!("the JetStream checkpoint store cannot {what}"),
    )
    .with_source(error)
}

fn decode(value: &[u8], revision: u64) -> Result<(ExecutionRecord, Revision)> {
    let record: ExecutionRecord = serde_json::from_slice(value).map_err(|error| {
        Error::internal("a checkpoint in the bucket is not an execution record").with_source(error)
    })?;
    Ok((record, Revision(revision)))
}

fn encode(record: &ExecutionRecord) -> Result<Bytes> {
    serde_json::to_vec(record)
        .map(Bytes::from)
        .map_err(Error::internal_from)
}

fn valid_key(id: &str) -> bool {
    !id.is_empty()
        && !id.starts_with('.')
        && !id.ends_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b'/' | b'.'))
}

/// Whether `error` is the server refusing a write at a revision that is no
/// longer the last. A clustered server answers a write racing another one
/// still in flight with its own code (10164), which the client library
/// does not report as a wrong revision.
fn wrong_last_sequence(error: &(dyn std::error::Error + 'static)) -> bool {
    use jetstream::ErrorCode;
    let mut source = Some(error);
    while let Some(error) = source {
        if let Some(api) = error.downcast_ref::<jetstream::Error>()
            && matches!(
                api.error_code(),
                ErrorCode::STREAM_WRONG_LAST_SEQUENCE
                    | ErrorCode::STREAM_WRONG_LAST_SEQUENCE_CONSTANT
            )
        {
            return true;
        }
        source = error.source();
    }
    false
}

/// How often the watch is compared with the bucket's stream.
const STALL_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Applies the bucket's changes to the index, watching again whenever a
/// watch ends, or stalls: when the server that leads the bucket's stream
/// of a cluster is lost, a watch can stop delivering without ending. Every
/// [`STALL_CHECK`] the highest revision the watch delivered is compared
/// with the stream's last sequence; behind it twice in a row without
/// moving, the watch is made again.
async fn keep_index(kv: kv::Store, mut watch: kv::Watch, index: Index) {
    let mut seen = 0u64;
    loop {
        let mut check = tokio::time::interval(STALL_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut seen_at_check, mut stalled_checks) = (seen, 0u32);
        loop {
            tokio::select! {
                entry = watch.next() => {
                    let Some(Ok(entry)) = entry else { break };
                    seen = seen.max(entry.revision);
                    apply(&index, entry);
                }
                _ = check.tick() => {
                    let behind = kv
                        .stream
                        .get_info()
                        .await
                        .is_ok_and(|info| info.state.last_sequence > seen);
                    stalled_checks = if behind && seen == seen_at_check {
                        stalled_checks + 1
                    } else {
                        0
                    };
                    seen_at_check = seen;
                    if stalled_checks >= 2 {
                        tracing::warn!(bucket = %kv.name, "the bucket's watch stalled; watching again");
                        break;
                    }
                }
            }
        }
        // Watch again from the latest values; until that works, claims
        // go on from the index as it is (each re-reads its key).
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            if let Ok(again) = kv.watch_with_history(">").await {
                watch = again;
                break;
            }
        }
    }
}

/// One change of the bucket, into the index.
fn apply(index: &Index, entry: kv::Entry) {
    let mut index = lock(index);
    match entry.operation {
        kv::Operation::Put => {
            if let Ok(decoded) = decode(&entry.value, entry.revision) {
                let newer = index
                    .get(&entry.key)
                    .is_none_or(|(_, known)| known.0 < entry.revision);
                if newer {
                    index.insert(entry.key, decoded);
                }
            }
        }
        kv::Operation::Delete | kv::Operation::Purge => {
            index.remove(&entry.key);
        }
    }
}

impl JetStreamCheckpointStore {
    /// Connects to the server at `url` (or, for a cluster, to one of the
    /// servers listed in `url` separated by commas, failing over to the
    /// others) and opens the store in bucket `bucket`; see
    /// [`open`](Self::open). A lost connection is retried for ever, with
    /// backoff from 100 ms to 5 s.
    ///
    /// # Errors
    ///
    /// An [`Unavailable`](ErrorKind::Unavailable) error if the server
    /// cannot be reached (the URL is not repeated: it may hold a password),
    /// or those of [`open`](Self::open).
    pub async fn connect(url: &str, bucket: &str, replicas: usize) -> Result<Self> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(std::time::Duration::from_secs(5))
            .max_reconnects(None)
            .reconnect_delay_callback(crate::events::jetstream::reconnect_delay)
            .connect(crate::events::jetstream::servers(url))
            .await
            .map_err(|error| transport("connect to the NATS server", error))?;
        Self::open(client, bucket, replicas).await
    }

    /// The store in bucket `bucket` (created with `replicas` replicas and
    /// file storage if it does not exist) on the server `client` is
    /// connected to. With 3 replicas on a three-server cluster, every
    /// checkpoint is stored by a majority before it is acknowledged, and
    /// the loss of one server loses none.
    ///
    /// # Errors
    ///
    /// An [`Unavailable`](ErrorKind::Unavailable) error if the bucket can
    /// be neither opened nor created, or cannot be watched.
    pub async fn open(client: async_nats::Client, bucket: &str, replicas: usize) -> Result<Self> {
        let context = jetstream::new(client);
        let kv = match context.get_key_value(bucket).await {
            Ok(kv) => kv,
            Err(_) => {
                // The bucket's stream, as the client library would create
                // it, made directly: its `create_key_value` first reads
                // account details that servers before 2.10 answer in a
                // form it does not parse.
                context
                    .get_or_create_stream(jetstream::stream::Config {
                        name: format!("KV_{bucket}"),
                        description: Some("ModuLink durable executions".to_owned()),
                        subjects: vec![format!("$KV.{bucket}.>")],
                        max_messages_per_subject: 1,
                        storage: jetstream::stream::StorageType::File,
                        num_replicas: replicas.max(1),
                        allow_rollup: true,
                        deny_delete: true,
                        // With replicas, reads go to the stream's leader:
                        // with direct gets a follower that trails it may
                        // answer, and a worker reading an old revision of
                        // the execution it holds would give it up. A
                        // single replica has no follower: direct gets are
                        // as fresh and cheaper.
                        allow_direct: replicas <= 1,
                        discard: jetstream::stream::DiscardPolicy::New,
                        ..jetstream::stream::Config::default()
                    })
                    .await
                    .map_err(|error| transport(&format!("create bucket {bucket}"), error))?;
                context
                    .get_key_value(bucket)
                    .await
                    .map_err(|error| transport(&format!("open bucket {bucket}"), error))?
            }
        };
        let index: Index = Arc::default();
        // The first watch is made here, so a bucket that cannot be watched
        // is an error now; later ones are made again whenever a watch ends
        // (a lost connection, a restarted server).
        let first = kv
            .watch_with_history(">")
            .await
            .map_err(|error| transport(&format!("watch bucket {bucket}"), error))?;
        let task = tokio::spawn(keep_index(kv.clone(), first, Arc::clone(&index)));
        Ok(Self {
            kv,
            index,
            _watch: Arc::new(WatchTask(task)),
        })
    }

    /// The execution as the bucket holds it now.
    async fn read(&self, id: &str) -> Result<Option<(ExecutionRecord, Revision)>> {
        let entry = self
            .kv
            .entry(id)
            .await
            .map_err(|error| transport(&format!("read execution {id}"), error))?;
        match entry {
            Some(entry) if entry.operation == kv::Operation::Put => {
                decode(&entry.value, entry.revision).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Writes `record` at `revision`; a lost race is [`lost`].
    async fn swap(&self, record: &ExecutionRecord, revision: Revision) -> Result<Revision> {
        match self
            .kv
            .update(&record.id, encode(record)?, revision.0)
            .await
        {
            Ok(next) => {
                let next = Revision(next);
                lock(&self.index).insert(record.id.clone(), (record.clone(), next));
                Ok(next)
            }
            Err(error)
                if error.kind() == kv::UpdateErrorKind::WrongLastRevision
                    || wrong_last_sequence(&error) =>
            {
                Err(lost(&record.id))
            }
            Err(error) => Err(transport(&format!("write execution {}", record.id), error)),
        }
    }

    /// The execution at `revision` leased by `worker`, or why not.
    async fn held(&self, id: &str, revision: Revision, worker: &str) -> Result<ExecutionRecord> {
        let (record, current) = self.read(id).await?.ok_or_else(|| unknown(id))?;
        if current != revision || record.lease_owner.as_deref() != Some(worker) {
            return Err(lost(id));
        }
        Ok(record)
    }
}

impl CheckpointStore for JetStreamCheckpointStore {
    fn create(&self, record: ExecutionRecord) -> BoxFuture<'_, Result<(ExecutionRecord, bool)>> {
        Box::pin(async move {
            if !valid_key(&record.id) {
                return Err(Error::validation(format!(
                    "execution id `{}` is not a valid key (letters, digits, -, _, =, / and .)",
                    record.id
                )));
            }
            match self.kv.create(&record.id, encode(&record)?).await {
                Ok(revision) => {
                    lock(&self.index)
                        .insert(record.id.clone(), (record.clone(), Revision(revision)));
                    Ok((record, true))
                }
                Err(error)
                    if error.kind() == kv::CreateErrorKind::AlreadyExists
                        || wrong_last_sequence(&error) =>
                {
                    let (existing, _) = self
                        .read(&record.id)
                        .await?
                        .ok_or_else(|| unknown(&record.id))?;
                    Ok((existing, false))
                }
                Err(error) => Err(transport(&format!("create execution {}", record.id), error)),
            }
        })
    }

    fn get<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<(ExecutionRecord, Revision)>>> {
        Box::pin(self.read(id))
    }

    fn claim<'a>(
        &'a self,
        worker: &'a str,
        chains: &'a [String],
        now_ms: u64,
        lease_until_ms: u64,
    ) -> BoxFuture<'a, Result<Option<(ExecutionRecord, Revision)>>> {
        Box::pin(async move {
            let mut candidates: Vec<(u64, String)> = lock(&self.index)
                .values()
                .filter(|(record, _)| record.is_claimable(now_ms) && chains.contains(&record.chain))
                .map(|(record, _)| (record.created_ms, record.id.clone()))
                .collect();
            candidates.sort();
            for (_, id) in candidates {
                // The index may trail the bucket: read the key again, and
                // take it only at the revision read.
                let Some((mut record, revision)) = self.read(&id).await? else {
                    continue;
                };
                if !record.is_claimable(now_ms) || !chains.contains(&record.chain) {
                    continue;
                }
                record.status = ExecutionStatus::Running;
                record.lease_owner = Some(worker.to_owned());
                record.lease_until_ms = Some(lease_until_ms);
                record.claims += 1;
                record.updated_ms = now_ms;
                match self.swap(&record, revision).await {
                    Ok(next) => return Ok(Some((record, next))),
                    Err(error) if error.kind() == ErrorKind::Conflict => {}
                    Err(error) => return Err(error),
                }
            }
            Ok(None)
        })
    }

    fn checkpoint<'a>(
        &'a self,
        id: &'a str,
        revision: Revision,
        worker: &'a str,
        checkpoint: Checkpoint,
    ) -> BoxFuture<'a, Result<Revision>> {
        Box::pin(async move {
            let mut record = self.held(id, revision, worker).await?;
            record.status = checkpoint.status;
            record.next_link = checkpoint.next_link;
            record.context = checkpoint.context;
            record.error = checkpoint.error;
            // The owner stays only while it runs under its lease.
            if checkpoint.status != ExecutionStatus::Running || checkpoint.lease_until_ms.is_none()
            {
                record.lease_owner = None;
            }
            record.lease_until_ms = checkpoint.lease_until_ms;
            record.updated_ms = super::now_ms();
            self.swap(&record, revision).await
        })
    }

    fn renew<'a>(
        &'a self,
        id: &'a str,
        revision: Revision,
        worker: &'a str,
        lease_until_ms: u64,
    ) -> BoxFuture<'a, Result<Revision>> {
        Box::pin(async move {
            let mut record = self.held(id, revision, worker).await?;
            record.lease_until_ms = Some(lease_until_ms);
            self.swap(&record, revision).await
        })
    }

    fn retry<'a>(&'a self, id: &'a str, now_ms: u64) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let (mut record, revision) = self.read(id).await?.ok_or_else(|| unknown(id))?;
            if record.status != ExecutionStatus::Failed {
                return Ok(false);
            }
            record.status = ExecutionStatus::Pending;
            record.error = None;
            record.updated_ms = now_ms;
            self.swap(&record, revision).await.map(|_| true)
        })
    }

    fn list(&self, status: Option<ExecutionStatus>) -> BoxFuture<'_, Result<Vec<ExecutionRecord>>> {
        let mut records: Vec<ExecutionRecord> = lock(&self.index)
            .values()
            .filter(|(record, _)| status.is_none_or(|status| record.status == status))
            .map(|(record, _)| record.clone())
            .collect();
        records.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Box::pin(std::future::ready(Ok(records)))
    }
}

impl fmt::Debug for JetStreamCheckpointStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JetStreamCheckpointStore")
            .field("bucket", &self.kv.name)
            .finish_non_exhaustive()
    }
}

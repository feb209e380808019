//! [`SqliteCheckpointStore`]: checkpoints in a SQLite file (feature
//! `sqlite`).

use std::path::Path;
use std::sync::{Arc, Mutex};

use chain_core::{BoxFuture, Error, ErrorKind, Result};
use rusqlite::{Connection, OptionalExtension, params};

use super::store::{
    Checkpoint, CheckpointStore, ExecutionRecord, ExecutionStatus, Revision, lost, unknown,
};
use crate::sync::lock;

/// When a checkpoint is on disk, traded against how many checkpoints a
/// second the store takes: SQLite's `synchronous` setting, in WAL mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every checkpoint is fsynced before the write returns
    /// (`synchronous = FULL`): it survives the machine losing power.
    #[default]
    Full,
    /// The log is fsynced at checkpoints of the WAL, not at each commit
    /// (`synchronous = NORMAL`): a checkpoint survives the process being
    /// killed, but the last ones may be lost if the machine loses power,
    /// and their links then run again (with the same idempotency keys).
    Normal,
}

/// Durable executions in one SQLite file: the embedded default, durable
/// across process crashes on one machine with no service to run. Workers in
/// several processes may share the file: SQLite serializes their writes,
/// and every write is a compare-and-swap on the execution's revision.
///
/// The file is opened in WAL mode; [`Durability`] sets when a write is on
/// disk. Calls run on tokio's blocking threads, one at a time per store.
#[derive(Clone)]
pub struct SqliteCheckpointStore {
    connection: Arc<Mutex<Connection>>,
}

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS modulink_executions (
        id TEXT PRIMARY KEY,
        chain TEXT NOT NULL,
        status TEXT NOT NULL,
        next_link INTEGER NOT NULL,
        context TEXT NOT NULL,
        error TEXT,
        lease_owner TEXT,
        lease_until_ms INTEGER,
        claims INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        revision INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS modulink_executions_runnable
        ON modulink_executions (status, created_ms);
";

const COLUMNS: &str = "id, chain, status, next_link, context, error, lease_owner, \
                       lease_until_ms, claims, created_ms, updated_ms, revision";

fn storage(error: rusqlite::Error) -> Error {
    Error::new(ErrorKind::Unavailable, "the SQLite checkpoint store failed").with_source(error)
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A row as a record and its revision.
fn row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(ExecutionRecord, Revision, String, String)> {
    let record = ExecutionRecord {
        id: row.get(0)?,
        chain: row.get(1)?,
        status: ExecutionStatus::Pending,
        next_link: usize::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
        context: serde_json::Value::Null,
        error: row.get(5)?,
        lease_owner: row.get(6)?,
        lease_until_ms: row.get::<_, Option<i64>>(7)?.map(to_u64),
        claims: row.get(8)?,
        created_ms: to_u64(row.get(9)?),
        updated_ms: to_u64(row.get(10)?),
    };
    Ok((
        record,
        Revision(to_u64(row.get(11)?)),
        row.get(2)?,
        row.get(4)?,
    ))
}

/// Finishes decoding a row: its status and context.
fn decode(
    (mut record, revision, status, context): (ExecutionRecord, Revision, String, String),
) -> Result<(ExecutionRecord, Revision)> {
    record.status = ExecutionStatus::parse(&status)?;
    record.context = serde_json::from_str(&context).map_err(|error| {
        Error::internal(format!("the stored context of `{}` is not JSON", record.id))
            .with_source(error)
    })?;
    Ok((record, revision))
}

impl SqliteCheckpointStore {
    /// Opens (creating if needed) the store in the file at `path`.
    ///
    /// # Errors
    ///
    /// An [`Unavailable`](ErrorKind::Unavailable) error naming the file if
    /// it cannot be opened or set up.
    pub fn open(path: impl AsRef<Path>, durability: Durability) -> Result<Self> {
        let path = path.as_ref();
        let cannot = |error: rusqlite::Error| {
            Error::new(
                ErrorKind::Unavailable,
                format!("cannot open the checkpoint store {}", path.display()),
            )
            .with_source(error)
        };
        let connection = Connection::open(path).map_err(cannot)?;
        let synchronous = match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        connection
            .execute_batch(&format!(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; \
                 PRAGMA busy_timeout = 10000; {SCHEMA}"
            ))
            .map_err(cannot)?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Runs `work` on the connection, on a blocking thread.
    fn run<T, F>(&self, work: F) -> BoxFuture<'static, Result<T>>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let connection = Arc::clone(&self.connection);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || work(&mut lock(&connection)))
                .await
                .map_err(Error::internal_from)?
        })
    }
}

fn select(connection: &Connection, id: &str) -> Result<Option<(ExecutionRecord, Revision)>> {
    connection
        .query_row(
            &format!("SELECT {COLUMNS} FROM modulink_executions WHERE id = ?1"),
            [id],
            row,
        )
        .optional()
        .map_err(storage)?
        .map(decode)
        .transpose()
}

impl CheckpointStore for SqliteCheckpointStore {
    fn create(&self, record: ExecutionRecord) -> BoxFuture<'_, Result<(ExecutionRecord, bool)>> {
        self.run(move |connection| {
            let context = serde_json::to_string(&record.context).map_err(Error::internal_from)?;
            let inserted = connection
                .execute(
                    "INSERT OR IGNORE INTO modulink_executions
                     (id, chain, status, next_link, context, error, lease_owner, lease_until_ms,
                      claims, created_ms, updated_ms, revision)
                     VALUES (?1, ?2, ?3, ?4, ?5, NULL, NULL, NULL, 0, ?6, ?6, 1)",
                    params![
                        record.id,
                        record.chain,
                        record.status.as_str(),
                        to_i64(record.next_link as u64),
                        context,
                        to_i64(record.created_ms)
                    ],
                )
                .map_err(storage)?;
            let (stored, _) = select(connection, &record.id)?.ok_or_else(|| unknown(&record.id))?;
            Ok((stored, inserted == 1))
        })
    }

    fn get<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<(ExecutionRecord, Revision)>>> {
        let id = id.to_owned();
        self.run(move |connection| select(connection, &id))
    }

    fn claim<'a>(
        &'a self,
        worker: &'a str,
        chains: &'a [String],
        now_ms: u64,
        lease_until_ms: u64,
    ) -> BoxFuture<'a, Result<Option<(ExecutionRecord, Revision)>>> {
        let (worker, chains) = (worker.to_owned(), chains.to_vec());
        self.run(move |connection| {
            // One transaction that takes the write lock at once: of the
            // processes claiming, one at a time looks and takes.
            let transaction = connection
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(storage)?;
            if chains.is_empty() {
                return Ok(None);
            }
            let placeholders = vec!["?"; chains.len()].join(", ");
            let found = transaction
                .query_row(
                    &format!(
                        "SELECT {COLUMNS} FROM modulink_executions
                         WHERE status IN ('pending', 'running')
                           AND (lease_until_ms IS NULL OR lease_until_ms <= ?)
                           AND chain IN ({placeholders})
                         ORDER BY created_ms, id LIMIT 1"
                    ),
                    rusqlite::params_from_iter(
                        std::iter::once(rusqlite::types::Value::Integer(to_i64(now_ms))).chain(
                            chains
                                .iter()
                                .map(|chain| rusqlite::types::Value::Text(chain.clone())),
                        ),
                    ),
                    row,
                )
                .optional()
                .map_err(storage)?
                .map(decode)
                .transpose()?;
            let Some((mut record, revision)) = found else {
                return Ok(None);
            };
            let next = Revision(revision.0 + 1);
            transaction
                .execute(
                    "UPDATE modulink_executions
                     SET status = 'running', lease_owner = ?1, lease_until_ms = ?2,
                         claims = claims + 1, updated_ms = ?3, revision = ?4
                     WHERE id = ?5 AND revision = ?6",
                    params![
                        worker,
                        to_i64(lease_until_ms),
                        to_i64(now_ms),
                        to_i64(next.0),
                        record.id,
                        to_i64(revision.0)
                    ],
                )
                .map_err(storage)?;
            transaction.commit().map_err(storage)?;
            record.status = ExecutionStatus::Running;
            record.lease_owner = Some(worker);
            record.lease_until_ms = Some(lease_until_ms);
            record.claims += 1;
            record.updated_ms = now_ms;
            Ok(Some((record, next)))
        })
    }

    fn checkpoint<'a>(
        &'a self,
        id: &'a str,
        revision: Revision,
        worker: &'a str,
        checkpoint: Checkpoint,
    ) -> BoxFuture<'a, Result<Revision>> {
        let (id, worker) = (id.to_owned(), worker.to_owned());
        self.run(move |connection| {
            let context =
                serde_json::to_string(&checkpoint.context).map_err(Error::internal_from)?;
            let next = Revision(revision.0 + 1);
            let changed = connection
                .execute(
                    "UPDATE modulink_executions
                     SET status = ?1, next_link = ?2, context = ?3, error = ?4,
                         lease_until_ms = ?5,
                         lease_owner = CASE WHEN ?1 = 'running' AND ?5 IS NOT NULL
                                            THEN lease_owner ELSE NULL END,
                         updated_ms = ?6, revision = ?7
                     WHERE id = ?8 AND revision = ?9 AND lease_owner = ?10",
                    params![
                        checkpoint.status.as_str(),
                        to_i64(checkpoint.next_link as u64),
                        context,
                        checkpoint.error,
                        checkpoint.lease_until_ms.map(to_i64),
                        to_i64(super::now_ms()),
                        to_i64(next.0),
                        id,
                        to_i64(revision.0),
                        worker
                    ],
                )
                .map_err(storage)?;
            if changed == 1 {
                return Ok(next);
            }
            match select(connection, &id)? {
                Some(_) => Err(lost(&id)),
                None => Err(unknown(&id)),
            }
        })
    }

    fn renew<'a>(
        &'a self,
        id: &'a str,
        revision: Revision,
        worker: &'a str,
        lease_until_ms: u64,
    ) -> BoxFuture<'a, Result<Revision>> {
        let (id, worker) = (id.to_owned(), worker.to_owned());
        self.run(move |connection| {
            let changed = connection
                .execute(
                    "UPDATE modulink_executions SET lease_until_ms = ?1
                     WHERE id = ?2 AND revision = ?3 AND lease_owner = ?4",
                    params![to_i64(lease_until_ms), id, to_i64(revision.0), worker],
                )
                .map_err(storage)?;
            if changed == 1 {
                return Ok(revision);
            }
            match select(connection, &id)? {
                Some(_) => Err(lost(&id)),
                None => Err(unknown(&id)),
            }
        })
    }

    fn retry<'a>(&'a self, id: &'a str, now_ms: u64) -> BoxFuture<'a, Result<bool>> {
        let id = id.to_owned();
        self.run(move |connection| {
            let changed = connection
                .execute(
                    "UPDATE modulink_executions
                     SET status = 'pending', error = NULL, updated_ms = ?1, revision = revision + 1
                     WHERE id = ?2 AND status = 'failed'",
                    params![to_i64(now_ms), id],
                )
                .map_err(storage)?;
            if changed == 1 {
                return Ok(true);
            }
            select(connection, &id)?
                .map(|_| false)
                .ok_or_else(|| unknown(&id))
        })
    }

    fn list(&self, status: Option<ExecutionStatus>) -> BoxFuture<'_, Result<Vec<ExecutionRecord>>> {
        self.run(move |connection| {
            let mut query = connection
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM modulink_executions
                     WHERE ?1 IS NULL OR status = ?1 ORDER BY created_ms, id"
                ))
                .map_err(storage)?;
            let rows = query
                .query_map([status.map(ExecutionStatus::as_str)], row)
                .map_err(storage)?;
            rows.map(|candidate| decode(candidate.map_err(storage)?).map(|(record, _)| record))
                .collect()
        })
    }
}

impl std::fmt::Debug for SqliteCheckpointStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteCheckpointStore")
            .finish_non_exhaustive()
    }
}

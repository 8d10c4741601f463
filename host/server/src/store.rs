//! Runs and their logs, stored: a run's record is written before its pod
//! exists, its state only moves forward, and its log survives the pod.

use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};

use crate::state::State;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store's address is not one podrun knows.
    #[error("unknown store {0:?}: use sqlite:PATH")]
    Address(String),
    /// The database failed.
    #[error("the store failed: {0}")]
    Database(#[from] sqlx::Error),
    /// A run went as it was written (released at once).
    #[error("run {0} vanished as it was stored")]
    Vanished(String),
    /// Its schema could not be brought up to date.
    #[error("the store's schema cannot be migrated: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// A run as stored.
#[derive(Debug, Clone)]
pub struct Run {
    /// Submission order.
    pub seq: i64,
    /// The run id (also the pod's run-id label).
    pub id: String,
    /// The application.
    pub application: String,
    /// Where it stands.
    pub state: State,
    /// BLAKE3 of the submitted body.
    pub body_hash: String,
    /// The result as JSON, once finished.
    pub result: Option<String>,
    /// Why it ended without a result of its own.
    pub message: Option<String>,
    /// A cancel was asked for.
    pub cancel_requested: bool,
    /// Times, in milliseconds since the epoch.
    pub created_at: i64,
    /// When a worker took it.
    pub started_at: Option<i64>,
    /// When it ended.
    pub finished_at: Option<i64>,
    /// Bytes of log stored.
    pub log_bytes: i64,
    /// Whether the log was cut at the size cap.
    pub log_truncated: bool,
}

/// What [`Store::insert`] did.
pub enum Inserted {
    /// Queued the new run.
    Created(Run),
    /// Found the run submitted earlier with the same idempotency key.
    Existing(Run),
}

/// A new run, prepared and ready to queue.
pub struct NewRun<'a> {
    /// The run id.
    pub id: &'a str,
    /// The application.
    pub application: &'a str,
    /// The request's idempotency key.
    pub idempotency_key: Option<&'a str>,
    /// BLAKE3 of the submitted body.
    pub body_hash: &'a str,
    /// The prepared pod, as JSON.
    pub pod: &'a str,
    /// The run's context, as JSON.
    pub context: &'a str,
    /// Input for the worker container.
    pub stdin: Option<&'a [u8]>,
}

/// What a worker needs to run a run.
pub struct Work {
    /// The run id.
    pub id: String,
    /// The application.
    pub application: String,
    /// Where it stood when taken.
    pub state: State,
    /// The prepared pod, as JSON.
    pub pod: String,
    /// The run's context, as JSON.
    pub context: String,
    /// Input for the worker container.
    pub stdin: Option<Vec<u8>>,
    /// Lines already stored (a resumed run appends after them).
    pub log_lines: i64,
    /// Bytes of log already stored.
    pub log_bytes: i64,
    /// Whether the log was already cut at the cap.
    pub log_truncated: bool,
    /// A cancel was asked for.
    pub cancel_requested: bool,
}

/// One stored line of output.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// Its place in the run's log, from 0.
    pub seq: i64,
    /// The container that printed it.
    pub container: String,
    /// The line, without its newline.
    pub line: Vec<u8>,
}

/// Which runs to list.
#[derive(Debug, Default)]
pub struct Filter {
    /// Only in this state.
    pub state: Option<State>,
    /// Only of this application.
    pub application: Option<String>,
    /// Only submitted at or after this time (ms since the epoch).
    pub since: Option<i64>,
    /// Only submitted before the run with this seq (the cursor).
    pub before: Option<i64>,
    /// At most this many.
    pub limit: i64,
}

/// The runs' database.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

/// A query of whole runs: the columns [`run`] reads, then `$rest`.
macro_rules! select_runs {
    ($rest:literal) => {
        concat!(
            "SELECT seq, id, application, state, body_hash, result, message, ",
            "cancel_requested, created_at, started_at, finished_at, log_bytes, log_truncated ",
            "FROM runs ",
            $rest
        )
    };
}

impl Store {
    /// Opens (creating if needed) the store at `address` (`sqlite:PATH`)
    /// and brings its schema up to date.
    pub async fn open(address: &str) -> Result<Store, StoreError> {
        let path = address
            .strip_prefix("sqlite://")
            .or_else(|| address.strip_prefix("sqlite:"))
            .filter(|p| !p.is_empty())
            .ok_or_else(|| StoreError::Address(address.to_string()))?;
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store { pool })
    }

    /// Whether the store answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Queues a new run, or finds the run its idempotency key was used for.
    pub async fn insert(&self, run: &NewRun<'_>) -> Result<Inserted, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO runs (id, application, state, idempotency_key, body_hash, pod, context, stdin, created_at) \
             VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(run.id)
        .bind(run.application)
        .bind(run.idempotency_key)
        .bind(run.body_hash)
        .bind(run.pod)
        .bind(run.context)
        .bind(run.stdin)
        .bind(now())
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 1 {
            let created = self.get(run.id).await?;
            return created
                .map(Inserted::Created)
                .ok_or_else(|| StoreError::Vanished(run.id.to_string()));
        }
        let key = run.idempotency_key.unwrap_or_default();
        match self.by_key(key).await? {
            Some(existing) => Ok(Inserted::Existing(existing)),
            // Released between the two statements: queue it after all.
            None => Box::pin(self.insert(run)).await,
        }
    }

    /// The run `id`.
    pub async fn get(&self, id: &str) -> Result<Option<Run>, StoreError> {
        let row = sqlx::query(select_runs!("WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| run(&r)).transpose()
    }

    /// The run submitted with idempotency key `key`.
    pub async fn by_key(&self, key: &str) -> Result<Option<Run>, StoreError> {
        let row = sqlx::query(select_runs!("WHERE idempotency_key = ?"))
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| run(&r)).transpose()
    }

    /// Runs as `filter` says, newest first.
    pub async fn list(&self, filter: &Filter) -> Result<Vec<Run>, StoreError> {
        let rows = sqlx::query(select_runs!(
            "WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR application = ?2) \
             AND (?3 IS NULL OR created_at >= ?3) AND (?4 IS NULL OR seq < ?4) \
             ORDER BY seq DESC LIMIT ?5"
        ))
        .bind(filter.state.map(State::as_str))
        .bind(filter.application.as_deref())
        .bind(filter.since)
        .bind(filter.before)
        .bind(filter.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run).collect()
    }

    /// Runs in `state`, oldest first.
    pub async fn in_state(&self, state: State) -> Result<Vec<Run>, StoreError> {
        let rows = sqlx::query(select_runs!("WHERE state = ? ORDER BY seq"))
            .bind(state.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(run).collect()
    }

    /// Takes the oldest queued run: it becomes `starting`. In one
    /// statement, so two workers never take the same run and a taken run
    /// is never left without its worker.
    pub async fn claim(&self) -> Result<Option<Work>, StoreError> {
        let row = sqlx::query(
            "UPDATE runs SET state = 'starting', started_at = ? \
             WHERE seq = (SELECT seq FROM runs WHERE state = 'queued' ORDER BY seq LIMIT 1) \
             AND state = 'queued' \
             RETURNING id, application, state, pod, context, stdin, log_bytes, log_truncated, \
             cancel_requested, 0 AS lines",
        )
        .bind(now())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| work(&r)).transpose()
    }

    /// What a worker needs to run (or resume) run `id`.
    pub async fn work(&self, id: &str) -> Result<Option<Work>, StoreError> {
        let row = sqlx::query(
            "SELECT id, application, state, pod, context, stdin, log_bytes, log_truncated, \
             cancel_requested, (SELECT COUNT(*) FROM logs WHERE run_id = runs.id) AS lines \
             FROM runs WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| work(&r)).transpose()
    }

    /// Moves run `id` from `starting` to `running`; whether it moved. A
    /// late or repeated observation never moves a run back.
    pub async fn running(&self, id: &str) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE runs SET state = 'running' WHERE id = ? AND state = 'starting'")
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends run `id` in `to` (a final state) with its result or a message,
    /// unless it has ended already; whether this ended it.
    pub async fn finish(
        &self,
        id: &str,
        to: State,
        result: Option<&str>,
        message: Option<&str>,
    ) -> Result<bool, StoreError> {
        debug_assert!(to.is_final());
        let done = sqlx::query(
            "UPDATE runs SET state = ?, result = ?, message = ?, finished_at = ? \
             WHERE id = ? AND state IN ('queued', 'starting', 'running')",
        )
        .bind(to.as_str())
        .bind(result)
        .bind(message)
        .bind(now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends queued run `id` as cancelled, unless a worker took it first;
    /// whether it did.
    pub async fn cancel_queued(&self, id: &str, result: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE runs SET state = 'cancelled', result = ?, finished_at = ? \
             WHERE id = ? AND state = 'queued'",
        )
        .bind(result)
        .bind(now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The number of lines stored for each container of run `id`.
    pub async fn lines_by_container(
        &self,
        id: &str,
    ) -> Result<std::collections::HashMap<String, i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT container, COUNT(*) AS n FROM logs WHERE run_id = ? GROUP BY container",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("container")?, r.try_get("n")?)))
            .collect()
    }

    /// Marks that a cancel was asked for run `id`.
    pub async fn request_cancel(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE runs SET cancel_requested = 1 WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Appends `lines` to run `id`'s log, numbered from `first`, in one
    /// transaction; `bytes` and `truncated` are the log's new totals.
    pub async fn append_logs(
        &self,
        id: &str,
        first: i64,
        lines: &[(String, Vec<u8>)],
        bytes: i64,
        truncated: bool,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (n, (container, line)) in lines.iter().enumerate() {
            sqlx::query(
                "INSERT INTO logs (run_id, seq, container, line) VALUES (?, ?, ?, ?) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(first + n as i64)
            .bind(container)
            .bind(line)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE runs SET log_bytes = ?, log_truncated = ? WHERE id = ?")
            .bind(bytes)
            .bind(truncated)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Up to `limit` lines of run `id`'s log from line `offset`.
    pub async fn logs(
        &self,
        id: &str,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<LogLine>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, container, line FROM logs WHERE run_id = ? AND seq >= ? \
             ORDER BY seq LIMIT ?",
        )
        .bind(id)
        .bind(offset)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LogLine {
                    seq: r.try_get("seq")?,
                    container: r.try_get("container")?,
                    line: r.try_get("line")?,
                })
            })
            .collect()
    }

    /// Deletes finished run `id` and its log; whether it was there and
    /// finished.
    pub async fn release(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "DELETE FROM runs WHERE id = ? \
             AND state IN ('succeeded', 'failed', 'cancelled', 'lost')",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The number of runs in each state.
    pub async fn counts(&self) -> Result<Vec<(State, i64)>, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM runs GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((state(r)?, r.try_get("n")?)))
            .collect()
    }
}

fn state(row: &sqlx::sqlite::SqliteRow) -> Result<State, StoreError> {
    let text: String = row.try_get("state")?;
    text.parse()
        .map_err(|e: crate::state::Unknown| StoreError::Database(sqlx::Error::Decode(Box::new(e))))
}

fn work(row: &sqlx::sqlite::SqliteRow) -> Result<Work, StoreError> {
    Ok(Work {
        id: row.try_get("id")?,
        application: row.try_get("application")?,
        state: state(row)?,
        pod: row.try_get("pod")?,
        context: row.try_get("context")?,
        stdin: row.try_get("stdin")?,
        log_lines: row.try_get("lines")?,
        log_bytes: row.try_get("log_bytes")?,
        log_truncated: row.try_get("log_truncated")?,
        cancel_requested: row.try_get("cancel_requested")?,
    })
}

fn run(row: &sqlx::sqlite::SqliteRow) -> Result<Run, StoreError> {
    Ok(Run {
        seq: row.try_get("seq")?,
        id: row.try_get("id")?,
        application: row.try_get("application")?,
        state: state(row)?,
        body_hash: row.try_get("body_hash")?,
        result: row.try_get("result")?,
        message: row.try_get("message")?,
        cancel_requested: row.try_get("cancel_requested")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        log_bytes: row.try_get("log_bytes")?,
        log_truncated: row.try_get("log_truncated")?,
    })
}

/// Milliseconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_run<'a>(id: &'a str, key: Option<&'a str>) -> NewRun<'a> {
        NewRun {
            id,
            application: "app",
            idempotency_key: key,
            body_hash: "h",
            pod: "{}",
            context: "{}",
            stdin: None,
        }
    }

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let address = format!("sqlite:{}", dir.path().join("runs.db").display());
        let store = Store::open(&address).await.unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn a_run_is_taken_once_and_its_state_never_moves_back() {
        let (_dir, store) = store().await;
        assert!(matches!(
            store.insert(&new_run("a", None)).await.unwrap(),
            Inserted::Created(_)
        ));
        let work = store.claim().await.unwrap().unwrap();
        assert_eq!((work.id.as_str(), work.state), ("a", State::Starting));
        assert!(store.claim().await.unwrap().is_none(), "taken once");
        assert!(store.running("a").await.unwrap());
        assert!(!store.running("a").await.unwrap(), "already running");
        assert!(
            store
                .finish("a", State::Failed, Some("{}"), None)
                .await
                .unwrap()
        );
        // A late observation or a second end changes nothing.
        assert!(!store.running("a").await.unwrap());
        assert!(
            !store
                .finish("a", State::Succeeded, None, None)
                .await
                .unwrap()
        );
        assert!(!store.cancel_queued("a", "{}").await.unwrap());
        assert_eq!(store.get("a").await.unwrap().unwrap().state, State::Failed);
        assert!(store.release("a").await.unwrap());
        assert!(store.get("a").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_idempotency_key_names_one_run_and_logs_are_kept_in_order() {
        let (_dir, store) = store().await;
        let Inserted::Created(first) = store.insert(&new_run("a", Some("k"))).await.unwrap() else {
            panic!("not created")
        };
        let Inserted::Existing(again) = store.insert(&new_run("b", Some("k"))).await.unwrap()
        else {
            panic!("a second run for one key")
        };
        assert_eq!((first.id.as_str(), again.id.as_str()), ("a", "a"));
        assert!(store.get("b").await.unwrap().is_none());
        let lines = |n: usize| -> Vec<(String, Vec<u8>)> {
            (0..n)
                .map(|i| ("c".to_string(), format!("{i}").into_bytes()))
                .collect()
        };
        store
            .append_logs("a", 0, &lines(3), 6, false)
            .await
            .unwrap();
        // A batch written again after a failure is not stored twice.
        store
            .append_logs("a", 0, &lines(3), 6, false)
            .await
            .unwrap();
        let read = store.logs("a", 1, 10).await.unwrap();
        let text: Vec<&[u8]> = read.iter().map(|l| l.line.as_slice()).collect();
        assert_eq!(text, [b"1", b"2"]);
        assert_eq!(store.lines_by_container("a").await.unwrap()["c"], 3);
        // Queued runs cannot be released; a queued cancel ends it.
        assert!(!store.release("a").await.unwrap());
        assert!(store.cancel_queued("a", "{}").await.unwrap());
        assert!(store.claim().await.unwrap().is_none());
    }
}

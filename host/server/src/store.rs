//! Runs and their logs, stored: a run's record is written before its pod
//! exists, its state only moves forward, and its log survives the pod.
//!
//! One code path for both stores (sqlx's `Any` driver): SQLite, one file,
//! for one server; Postgres for several servers sharing the queue. Each
//! server holds a lease on the runs it follows and renews it; a run whose
//! lease ran out is taken over by another server, and a server writes a
//! run only while it holds its lease.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::state::State;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store's address is not one podrun knows.
    #[error("unknown store {0:?}: use sqlite:PATH or postgres://USER@HOST/DATABASE")]
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
    /// When its pod was started (created, or found): `running`.
    pub running_at: Option<i64>,
    /// When it ended.
    pub finished_at: Option<i64>,
    /// Bytes of log stored.
    pub log_bytes: i64,
    /// Whether the log was cut at the size cap.
    pub log_truncated: bool,
    /// The server that runs it (or ran it last).
    pub owner: Option<String>,
    /// How the delivery of its end to its callback URL goes, if it has
    /// one: `pending`, `delivered` or `failed`.
    pub callback_state: Option<String>,
    /// Deliveries tried.
    pub callback_attempts: i64,
    /// The tenant that submitted it.
    pub tenant: Option<String>,
    /// Places in its log where lines may be missing.
    pub log_gaps: i64,
}

/// A place in a run's log where lines may be missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// The number of the run's lines before it.
    pub at: i64,
    /// The container whose lines may be missing (`None`: any).
    pub container: Option<String>,
    /// What happened, for people.
    pub message: String,
}

/// A callback to deliver.
pub struct Callback {
    /// The run.
    pub id: String,
    /// Where to POST it.
    pub url: String,
    /// This is the how-manieth try, from 1.
    pub attempt: i64,
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
    /// Where the run's end is POSTed.
    pub callback_url: Option<&'a str>,
    /// The tenant that submits it.
    pub tenant: Option<&'a str>,
    /// What each hook changed, as JSON (values redacted).
    pub changes: Option<&'a str>,
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
    /// Its pod may have been created.
    pub pod_requested: bool,
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
    /// Only the runs of this tenant.
    pub tenant: Option<String>,
    /// At most this many.
    pub limit: i64,
}

/// Limits on runs at once, over every server sharing a store.
#[derive(Debug, Default)]
pub struct Limits {
    /// Per application: its name and its limit.
    pub applications: Vec<(String, u32)>,
    /// Per tenant: its name and its limit.
    pub tenants: Vec<(String, u32)>,
}

/// The runs' database.
#[derive(Clone)]
pub struct Store {
    /// Reads. On SQLite its connections are read-only.
    pool: AnyPool,
    /// Writes. On SQLite one connection: writers wait their turn in the
    /// pool's queue instead of in SQLite's busy handler, which sleeps
    /// 1, 2, 5, 10… ms between tries and made a submit wait tens of ms
    /// behind a run's log batch. On Postgres the same pool as reads.
    writer: AnyPool,
    dialect: Dialect,
    /// This server's name in the runs it holds a lease on.
    owner: Arc<str>,
    /// The names and limits bound into the limited claim, in its order
    /// (applications, then tenants).
    limits: Arc<[(String, i64)]>,
    /// The claim that keeps to them (`None` when there are none).
    limited_claim: Option<Arc<str>>,
}

/// Which database a store is: a few statements differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Sqlite,
    Postgres,
}

/// A query of whole runs: the columns [`run`] reads, then `$rest`.
macro_rules! select_runs {
    ($rest:literal) => {
        concat!(
            "SELECT seq, id, application, state, body_hash, result, message, ",
            "cancel_requested, created_at, started_at, running_at, finished_at, log_bytes, log_truncated, ",
            "owner, callback_state, callback_attempts, tenant, log_gaps ",
            "FROM runs ",
            $rest
        )
    };
}

/// Takes the oldest run matching `$which` for this server (`$1` owner,
/// `$2` lease end, `$3` now), locking as `$lock` says.
macro_rules! take {
    ($set:literal, $which:literal, $lock:literal) => {
        concat!(
            "UPDATE runs SET owner = $1, lease_until = $2",
            $set,
            " WHERE seq = (SELECT seq FROM runs WHERE ",
            $which,
            " ORDER BY seq LIMIT 1",
            $lock,
            ") AND ",
            $which,
            " RETURNING id"
        )
    };
}

/// Claims a queued run.
macro_rules! claim {
    ($lock:literal) => {
        take!(
            ", state = 'starting', started_at = $3",
            "state = 'queued'",
            $lock
        )
    };
}

/// Takes over a run whose lease ran out.
macro_rules! take_over {
    ($lock:literal) => {
        take!(
            "",
            "state IN ('starting', 'running') AND (lease_until IS NULL OR lease_until < $3)",
            $lock
        )
    };
}

/// Takes the callback due first (`$1` next try if this one does not
/// end, `$2` now).
macro_rules! due_callback {
    ($lock:literal) => {
        concat!(
            "UPDATE runs SET callback_next_at = $1, callback_attempts = callback_attempts + 1 ",
            "WHERE seq = (SELECT seq FROM runs WHERE callback_next_at <= $2 ",
            "ORDER BY callback_next_at LIMIT 1",
            $lock,
            ") AND callback_next_at <= $2 ",
            "RETURNING id, callback_url, callback_attempts"
        )
    };
}

/// Characters of a SQLite path written as they are in its URL.
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

impl Store {
    /// Opens the store at `address` (`sqlite:PATH`, created if needed, or
    /// `postgres://…`), brings its schema up to date, and names this
    /// server `owner` in the runs it takes.
    pub async fn open(address: &str, owner: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let sqlite = address
            .strip_prefix("sqlite://")
            .or_else(|| address.strip_prefix("sqlite:"));
        let (dialect, url) = match sqlite {
            Some(path) if !path.is_empty() => (
                Dialect::Sqlite,
                format!("sqlite://{}", utf8_percent_encode(path, PATH)),
            ),
            None if address.starts_with("postgres://") || address.starts_with("postgresql://") => {
                (Dialect::Postgres, address.to_string())
            }
            _ => return Err(StoreError::Address(address.to_string())),
        };
        // A store that does not answer fails a request in seconds (503),
        // not after sqlx's 30 s default.
        let pool = |max: u32| {
            AnyPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(Duration::from_secs(5))
        };
        let (pool, writer) = match dialect {
            Dialect::Sqlite => {
                let writer = pool(1)
                    .connect_with(AnyConnectOptions::from_str(&format!("{url}?mode=rwc"))?)
                    .await?;
                // Readers never wait for the writer; kept by the file.
                sqlx::query("PRAGMA journal_mode = WAL")
                    .execute(&writer)
                    .await?;
                sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
                // Read-only, so a write sent the wrong way fails at once.
                let readers = pool(4)
                    .connect_with(AnyConnectOptions::from_str(&format!("{url}?mode=ro"))?)
                    .await?;
                (readers, writer)
            }
            Dialect::Postgres => {
                let pool = pool(8)
                    .connect_with(AnyConnectOptions::from_str(&url)?)
                    .await?;
                // Postgres' migrator holds a lock: replicas starting
                // together apply each migration once.
                sqlx::migrate!("./migrations/postgres").run(&pool).await?;
                (pool.clone(), pool)
            }
        };
        Ok(Store {
            pool,
            writer,
            dialect,
            owner: owner.into(),
            limits: Arc::new([]),
            limited_claim: None,
        })
    }

    /// Claims keep to `limits`: at most that many runs of each of these
    /// applications, and of each of these tenants, start at once, over
    /// every server sharing the store.
    pub fn with_limits(mut self, limits: Limits) -> Store {
        if limits.applications.is_empty() && limits.tenants.is_empty() {
            return self;
        }
        // Only placeholders go into the statement; names are bound.
        let mut next = 4;
        let mut condition = |column: &str, n: usize| {
            if n == 0 {
                return String::new();
            }
            let cases: String = (0..n)
                .map(|i| format!(" WHEN ${} THEN ${}", next + 2 * i, next + 2 * i + 1))
                .collect();
            next += 2 * n;
            format!(
                " AND (SELECT COUNT(*) FROM runs r WHERE r.{column} = q.{column} \
                 AND r.state IN ('starting', 'running')) < \
                 COALESCE(CASE q.{column}{cases} END, 9223372036854775807)"
            )
        };
        let by_application = condition("application", limits.applications.len());
        let by_tenant = condition("tenant", limits.tenants.len());
        let lock = match self.dialect {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        self.limited_claim = Some(
            format!(
                "UPDATE runs SET owner = $1, lease_until = $2, state = 'starting', started_at = $3 \
                 WHERE seq = (SELECT q.seq FROM runs q WHERE q.state = 'queued'{by_application}{by_tenant} \
                 ORDER BY q.seq LIMIT 1{lock}) AND state = 'queued' RETURNING id"
            )
            .into(),
        );
        self.limits = limits
            .applications
            .into_iter()
            .chain(limits.tenants)
            .map(|(name, n)| (name, i64::from(n)))
            .collect();
        self
    }

    /// Whether the store answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Queues a new run, or finds the run its idempotency key was used for.
    pub async fn insert(&self, run: &NewRun<'_>) -> Result<Inserted, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO runs (id, application, state, idempotency_key, body_hash, pod, context, stdin, \
             created_at, callback_url, callback_state, tenant, changes) \
             VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(run.id)
        .bind(run.application)
        .bind(run.idempotency_key)
        .bind(run.body_hash)
        .bind(run.pod)
        .bind(run.context)
        .bind(run.stdin)
        .bind(now())
        .bind(run.callback_url)
        .bind(run.callback_url.map(|_| "pending"))
        .bind(run.tenant)
        .bind(run.changes)
        .execute(&self.writer)
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
        let row = sqlx::query(select_runs!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| run(&r)).transpose()
    }

    /// The run submitted with idempotency key `key`.
    pub async fn by_key(&self, key: &str) -> Result<Option<Run>, StoreError> {
        let row = sqlx::query(select_runs!("WHERE idempotency_key = $1"))
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| run(&r)).transpose()
    }

    /// Runs as `filter` says, newest first.
    pub async fn list(&self, filter: &Filter) -> Result<Vec<Run>, StoreError> {
        let rows = sqlx::query(select_runs!(
            "WHERE ($1 IS NULL OR state = $1) AND ($2 IS NULL OR application = $2) \
             AND ($3 IS NULL OR created_at >= $3) AND ($4 IS NULL OR seq < $4) \
             AND ($6 IS NULL OR tenant = $6) \
             ORDER BY seq DESC LIMIT $5"
        ))
        .bind(filter.state.map(State::as_str))
        .bind(filter.application.as_deref())
        .bind(filter.since)
        .bind(filter.before)
        .bind(filter.limit)
        .bind(filter.tenant.as_deref())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run).collect()
    }

    /// Takes the oldest queued run for this server, holding its lease
    /// for `lease`: it becomes `starting`. In one statement (skipping
    /// rows other servers are taking), so two workers never take the
    /// same run and a taken run is never left without its worker.
    pub async fn claim(&self, lease: Duration) -> Result<Option<Work>, StoreError> {
        let now = now();
        let until = now + millis(lease);
        let Some(limited) = &self.limited_claim else {
            let sql = match self.dialect {
                Dialect::Sqlite => claim!(""),
                Dialect::Postgres => claim!(" FOR UPDATE SKIP LOCKED"),
            };
            let id: Option<String> = sqlx::query_scalar(sql)
                .bind(&*self.owner)
                .bind(until)
                .bind(now)
                .fetch_optional(&self.writer)
                .await?;
            return self.work_of(id).await;
        };
        let mut conn = self.writer.acquire().await?;
        let claimed = async {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            if self.dialect == Dialect::Postgres {
                // Claims counting runs in flight take turns, or two
                // servers could each start the last place's run.
                sqlx::query("SELECT pg_advisory_xact_lock(7070)")
                    .execute(&mut *tx)
                    .await?;
            }
            let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(limited.to_string()))
                .bind(&*self.owner)
                .bind(until)
                .bind(now);
            for (app, n) in self.limits.iter() {
                query = query.bind(app.as_str()).bind(*n);
            }
            let id: Option<String> = query.fetch_optional(&mut *tx).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(id)
        }
        .await;
        untrusted_if_failed(&mut conn, &claimed);
        // On SQLite the one writer: free for others while this reads.
        drop(conn);
        self.work_of(claimed?).await
    }

    /// Takes over the oldest starting or running run whose lease ran out
    /// (its server stopped or died), holding its lease for `lease`.
    pub async fn take_over(&self, lease: Duration) -> Result<Option<Work>, StoreError> {
        let sql = match self.dialect {
            Dialect::Sqlite => take_over!(""),
            Dialect::Postgres => take_over!(" FOR UPDATE SKIP LOCKED"),
        };
        let now = now();
        let id: Option<String> = sqlx::query_scalar(sql)
            .bind(&*self.owner)
            .bind(now + millis(lease))
            .bind(now)
            .fetch_optional(&self.writer)
            .await?;
        self.work_of(id).await
    }

    async fn work_of(&self, id: Option<String>) -> Result<Option<Work>, StoreError> {
        match id {
            Some(id) => self.work(&id).await,
            None => Ok(None),
        }
    }

    /// Renews this server's leases for `lease`; the runs it still holds,
    /// each with whether a cancel was asked for it.
    pub async fn renew(&self, lease: Duration) -> Result<Vec<(String, bool)>, StoreError> {
        let rows = sqlx::query(
            "UPDATE runs SET lease_until = $1 \
             WHERE owner = $2 AND state IN ('starting', 'running') \
             RETURNING id, cancel_requested",
        )
        .bind(now() + millis(lease))
        .bind(&*self.owner)
        .fetch_all(&self.writer)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, flag(r, "cancel_requested")?)))
            .collect()
    }

    /// Takes the callback due first, if one is: it is not due again for
    /// `hold` (the time a delivery may take), so no other server delivers
    /// it meanwhile.
    pub async fn due_callback(&self, hold: Duration) -> Result<Option<Callback>, StoreError> {
        let sql = match self.dialect {
            Dialect::Sqlite => due_callback!(""),
            Dialect::Postgres => due_callback!(" FOR UPDATE SKIP LOCKED"),
        };
        let now = now();
        let row = sqlx::query(sql)
            .bind(now + millis(hold))
            .bind(now)
            .fetch_optional(&self.writer)
            .await?;
        row.map(|r| {
            Ok(Callback {
                id: r.try_get("id")?,
                url: r.try_get("callback_url")?,
                attempt: r.try_get("callback_attempts")?,
            })
        })
        .transpose()
    }

    /// Records how try `attempt` of delivering run `id`'s callback went:
    /// `state` is `delivered` or `failed` once done, `pending` with the
    /// time of the next try otherwise. A try that took longer than its
    /// hold, and was taken again meanwhile, records nothing.
    pub async fn callback_tried(
        &self,
        id: &str,
        attempt: i64,
        state: &str,
        next: Option<i64>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE runs SET callback_state = $1, callback_next_at = $2 \
             WHERE id = $3 AND callback_attempts = $4",
        )
        .bind(state)
        .bind(next)
        .bind(id)
        .bind(attempt)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Marks that run `id`'s pod is about to be created, if this server
    /// holds the run; whether it does.
    pub async fn request_pod(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE runs SET pod_requested = 1 \
             WHERE id = $1 AND owner = $2 AND state IN ('starting', 'running')",
        )
        .bind(id)
        .bind(&*self.owner)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives up this server's lease on run `id`: another server, or this
    /// one, takes it over at once.
    pub async fn release_lease(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE runs SET lease_until = 0 WHERE id = $1 AND owner = $2")
            .bind(id)
            .bind(&*self.owner)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Gives up this server's leases: another server (or this one,
    /// started again) takes its runs over at once.
    pub async fn release_leases(&self) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE runs SET lease_until = 0 \
             WHERE owner = $1 AND state IN ('starting', 'running')",
        )
        .bind(&*self.owner)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// What a worker needs to run (or resume) run `id`.
    pub async fn work(&self, id: &str) -> Result<Option<Work>, StoreError> {
        let row = sqlx::query(
            "SELECT id, application, state, pod, context, stdin, log_bytes, log_truncated, \
             cancel_requested, pod_requested, \
             (SELECT COUNT(*) FROM logs WHERE run_id = runs.id) AS lines \
             FROM runs WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| work(&r)).transpose()
    }

    /// Moves run `id` from `starting` to `running` if this server holds
    /// it; whether it moved. A late or repeated observation never moves a
    /// run back.
    pub async fn running(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE runs SET state = 'running', running_at = $3 \
             WHERE id = $1 AND state = 'starting' AND owner = $2",
        )
        .bind(id)
        .bind(&*self.owner)
        .bind(now())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends run `id`, which this server holds, in `to` (a final state)
    /// with its result or a message, unless it has ended already; whether
    /// this ended it.
    pub async fn finish(
        &self,
        id: &str,
        to: State,
        result: Option<&str>,
        message: Option<&str>,
    ) -> Result<bool, StoreError> {
        debug_assert!(to.is_final());
        let done = sqlx::query(
            "UPDATE runs SET state = $1, result = $2, message = $3, finished_at = $4, \
             callback_next_at = CASE WHEN callback_url IS NULL THEN NULL ELSE $4 END \
             WHERE id = $5 AND state IN ('starting', 'running') AND owner = $6",
        )
        .bind(to.as_str())
        .bind(result)
        .bind(message)
        .bind(now())
        .bind(id)
        .bind(&*self.owner)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends queued run `id` as cancelled, unless a worker took it first;
    /// whether it did.
    pub async fn cancel_queued(&self, id: &str, result: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE runs SET state = 'cancelled', result = $1, finished_at = $2, \
             callback_next_at = CASE WHEN callback_url IS NULL THEN NULL ELSE $2 END \
             WHERE id = $3 AND state = 'queued'",
        )
        .bind(result)
        .bind(now())
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// What each hook changed in run `id`'s pod (JSON), if it was kept.
    pub async fn changes(&self, id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT changes FROM runs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("changes")).transpose()?.flatten())
    }

    /// The places in run `id`'s log where lines may be missing, in order.
    pub async fn gaps(&self, id: &str) -> Result<Vec<Gap>, StoreError> {
        Ok(self
            .gaps_from(id, 0)
            .await?
            .into_iter()
            .map(|(_, g)| g)
            .collect())
    }

    /// The gaps of run `id` numbered `from` on, with their numbers.
    pub async fn gaps_from(&self, id: &str, from: i64) -> Result<Vec<(i64, Gap)>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at_line, container, message FROM log_gaps \
             WHERE run_id = $1 AND seq >= $2 ORDER BY seq",
        )
        .bind(id)
        .bind(from)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("seq")?,
                    Gap {
                        at: r.try_get("at_line")?,
                        container: r.try_get("container")?,
                        message: r.try_get("message")?,
                    },
                ))
            })
            .collect()
    }

    /// Marks that a cancel was asked for run `id`: the server that holds
    /// it hears of it at its next renewal.
    pub async fn request_cancel(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE runs SET cancel_requested = 1 WHERE id = $1")
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Appends `lines` to run `id`'s log, numbered from `first`, in one
    /// transaction; `bytes` and `truncated` are the log's new totals.
    /// Writes nothing, and says so (`false`), unless this server holds
    /// the run.
    pub async fn append_logs(
        &self,
        id: &str,
        first: i64,
        lines: &[(String, Vec<u8>)],
        gaps: &[Gap],
        bytes: i64,
        truncated: bool,
    ) -> Result<bool, StoreError> {
        let mut conn = self.writer.acquire().await?;
        let written = async {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let held = sqlx::query(
                "UPDATE runs SET log_bytes = $1, log_truncated = $2 WHERE id = $3 AND owner = $4",
            )
            .bind(bytes)
            .bind(i64::from(truncated))
            .bind(id)
            .bind(&*self.owner)
            .execute(&mut *tx)
            .await?;
            if held.rows_affected() != 1 {
                return Ok(false);
            }
            if !gaps.is_empty() {
                let next: i64 = sqlx::query_scalar(
                    "SELECT COALESCE(MAX(seq) + 1, 0) FROM log_gaps WHERE run_id = $1",
                )
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
                // A batch stored again (its answer lost) adds no gap twice.
                let mut added = 0;
                for (n, gap) in gaps.iter().enumerate() {
                    added += sqlx::query(
                        "INSERT INTO log_gaps (run_id, seq, at_line, container, message) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    )
                    .bind(id)
                    .bind(next + n as i64)
                    .bind(gap.at)
                    .bind(gap.container.as_deref())
                    .bind(&gap.message)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                }
                sqlx::query("UPDATE runs SET log_gaps = log_gaps + $1 WHERE id = $2")
                    .bind(added as i64)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            for (n, (container, line)) in lines.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO logs (run_id, seq, container, line) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(id)
                .bind(first + n as i64)
                .bind(container)
                .bind(line)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(true)
        }
        .await;
        untrusted_if_failed(&mut conn, &written);
        written
    }

    /// Up to `limit` lines of run `id`'s log from line `offset`.
    pub async fn logs(
        &self,
        id: &str,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<LogLine>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, container, line FROM logs WHERE run_id = $1 AND seq >= $2 \
             ORDER BY seq LIMIT $3",
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
            "DELETE FROM runs WHERE id = $1 \
             AND state IN ('succeeded', 'failed', 'cancelled', 'lost')",
        )
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes up to `limit` runs that ended before `before` (ms since
    /// the epoch), with their logs, unless a callback is still due; how
    /// many.
    pub async fn sweep(&self, before: i64, limit: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM runs WHERE seq IN (SELECT seq FROM runs \
             WHERE state IN ('succeeded', 'failed', 'cancelled', 'lost') \
             AND finished_at < $1 AND callback_next_at IS NULL LIMIT $2)",
        )
        .bind(before)
        .bind(limit)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
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

/// A connection whose transaction failed is closed, not pooled again: its
/// transaction state is not to be trusted (SQLite may roll a transaction
/// back by itself on a full disk, and a later one would then be nested in
/// nothing, or left open holding the write lock).
fn untrusted_if_failed<T>(
    conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
    result: &Result<T, StoreError>,
) {
    if result.is_err() {
        conn.close_on_drop();
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

/// A 0-or-1 column.
fn flag(row: &AnyRow, column: &str) -> Result<bool, StoreError> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}

fn state(row: &AnyRow) -> Result<State, StoreError> {
    let text: String = row.try_get("state")?;
    text.parse()
        .map_err(|e: crate::state::Unknown| StoreError::Database(sqlx::Error::Decode(Box::new(e))))
}

fn work(row: &AnyRow) -> Result<Work, StoreError> {
    Ok(Work {
        id: row.try_get("id")?,
        application: row.try_get("application")?,
        state: state(row)?,
        pod: row.try_get("pod")?,
        context: row.try_get("context")?,
        stdin: row.try_get("stdin")?,
        log_lines: row.try_get("lines")?,
        log_bytes: row.try_get("log_bytes")?,
        log_truncated: flag(row, "log_truncated")?,
        cancel_requested: flag(row, "cancel_requested")?,
        pod_requested: flag(row, "pod_requested")?,
    })
}

fn run(row: &AnyRow) -> Result<Run, StoreError> {
    Ok(Run {
        seq: row.try_get("seq")?,
        id: row.try_get("id")?,
        application: row.try_get("application")?,
        state: state(row)?,
        body_hash: row.try_get("body_hash")?,
        result: row.try_get("result")?,
        message: row.try_get("message")?,
        cancel_requested: flag(row, "cancel_requested")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        running_at: row.try_get("running_at")?,
        finished_at: row.try_get("finished_at")?,
        log_bytes: row.try_get("log_bytes")?,
        log_truncated: flag(row, "log_truncated")?,
        owner: row.try_get("owner")?,
        callback_state: row.try_get("callback_state")?,
        callback_attempts: row.try_get("callback_attempts")?,
        tenant: row.try_get("tenant")?,
        log_gaps: row.try_get("log_gaps")?,
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
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use sqlx::Connection;

    use super::*;

    const LEASE: Duration = Duration::from_secs(30);

    fn new_run<'a>(id: &'a str, key: Option<&'a str>) -> NewRun<'a> {
        NewRun {
            id,
            application: "app",
            idempotency_key: key,
            body_hash: "h",
            pod: "{}",
            context: "{}",
            stdin: None,
            callback_url: None,
            tenant: None,
            changes: None,
        }
    }

    /// A new empty store's address: SQLite in a temporary directory, or
    /// a new database on the Postgres server `PODRUN_TEST_POSTGRES` names
    /// (`postgres://USER@HOST:PORT`, no database; `.ci/run` starts one).
    async fn address(postgres: bool) -> Option<(Option<tempfile::TempDir>, String)> {
        if !postgres {
            let dir = tempfile::tempdir().unwrap();
            let address = format!("sqlite:{}", dir.path().join("runs db?#%41.db").display());
            return Some((Some(dir), address));
        }
        let Ok(server) = std::env::var("PODRUN_TEST_POSTGRES") else {
            #[allow(clippy::print_stderr)] // a test saying what it skipped
            {
                eprintln!("PODRUN_TEST_POSTGRES is not set: the Postgres store is not tested here");
            }
            return None;
        };
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "podrun_store_{}_{}_{}",
            std::process::id(),
            now(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        Some((None, format!("{server}/{name}")))
    }

    async fn each_store<F, Fut>(test: F)
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        for postgres in [false, true] {
            if let Some((_dir, address)) = address(postgres).await {
                test(address).await;
            }
        }
    }

    #[tokio::test]
    async fn a_run_is_taken_once_and_its_state_never_moves_back() {
        each_store(|address| async move {
            let store = Store::open(&address, "a").await.unwrap();
            assert!(matches!(
                store.insert(&new_run("a", None)).await.unwrap(),
                Inserted::Created(_)
            ));
            let work = store.claim(LEASE).await.unwrap().unwrap();
            assert_eq!((work.id.as_str(), work.state), ("a", State::Starting));
            assert!(store.claim(LEASE).await.unwrap().is_none(), "taken once");
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
        })
        .await;
    }

    #[tokio::test]
    async fn an_idempotency_key_names_one_run_and_logs_are_kept_in_order() {
        each_store(|address| async move {
            let store = Store::open(&address, "a").await.unwrap();
            let Inserted::Created(first) = store.insert(&new_run("a", Some("k"))).await.unwrap()
            else {
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
            // Only the run's holder writes its log.
            assert!(
                !store
                    .append_logs("a", 0, &lines(3), &[], 6, false)
                    .await
                    .unwrap()
            );
            assert_eq!(store.claim(LEASE).await.unwrap().unwrap().id, "a");
            assert!(
                store
                    .append_logs("a", 0, &lines(3), &[], 6, false)
                    .await
                    .unwrap()
            );
            // A batch written again after a failure is not stored twice.
            // So is a gap said again with it.
            let gap = Gap {
                at: 3,
                container: Some("c".into()),
                message: "lines may be missing".into(),
            };
            for _ in 0..2 {
                let gaps = std::slice::from_ref(&gap);
                assert!(
                    store
                        .append_logs("a", 0, &lines(3), gaps, 6, true)
                        .await
                        .unwrap()
                );
            }
            let read = store.logs("a", 1, 10).await.unwrap();
            let text: Vec<&[u8]> = read.iter().map(|l| l.line.as_slice()).collect();
            assert_eq!(text, [b"1", b"2"]);
            assert_eq!(store.gaps("a").await.unwrap(), [gap]);
            let run = store.get("a").await.unwrap().unwrap();
            assert_eq!((run.log_bytes, run.log_truncated), (6, true));
            assert_eq!(run.log_gaps, 1, "counted once");
            // Unfinished runs cannot be released.
            assert!(!store.release("a").await.unwrap());
            // A queued run's cancel ends it; a taken one's is only asked.
            store.insert(&new_run("q", None)).await.unwrap();
            assert!(store.cancel_queued("q", "{}").await.unwrap());
            assert!(store.claim(LEASE).await.unwrap().is_none());
            assert!(!store.cancel_queued("a", "{}").await.unwrap());
            store.request_cancel("a").await.unwrap();
            assert_eq!(store.renew(LEASE).await.unwrap(), [("a".to_string(), true)]);
        })
        .await;
    }

    #[tokio::test]
    async fn two_servers_share_the_queue_and_never_take_one_run_twice() {
        each_store(|address| async move {
            let a = Store::open(&address, "a").await.unwrap();
            let b = Store::open(&address, "b").await.unwrap();
            let ids: Vec<String> = (0..40).map(|i| format!("r{i}")).collect();
            for id in &ids {
                a.insert(&new_run(id, None)).await.unwrap();
            }
            let drain = |store: Store| async move {
                let mut taken = Vec::new();
                while let Some(work) = store.claim(LEASE).await.unwrap() {
                    taken.push(work.id);
                }
                taken
            };
            let (by_a, by_b) = tokio::join!(drain(a.clone()), drain(b.clone()));
            let all: HashSet<&String> = by_a.iter().chain(&by_b).collect();
            assert_eq!(all.len(), ids.len(), "every run taken");
            assert_eq!(by_a.len() + by_b.len(), ids.len(), "none taken twice");
            // Each holds what it took.
            let held = a.renew(LEASE).await.unwrap();
            assert_eq!(held.len(), by_a.len());
        })
        .await;
    }

    #[tokio::test]
    async fn a_run_whose_lease_ran_out_is_taken_over_and_its_old_holder_writes_nothing() {
        each_store(|address| async move {
            let a = Store::open(&address, "a").await.unwrap();
            let b = Store::open(&address, "b").await.unwrap();
            a.insert(&new_run("x", None)).await.unwrap();
            a.claim(Duration::from_millis(300)).await.unwrap().unwrap();
            assert!(a.running("x").await.unwrap());
            assert!(b.take_over(LEASE).await.unwrap().is_none(), "lease held");
            a.renew(Duration::from_millis(300)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(400)).await;
            assert!(a.request_pod("x").await.unwrap());
            assert!(!b.request_pod("x").await.unwrap(), "only its holder");
            let taken = b.take_over(LEASE).await.unwrap().unwrap();
            assert_eq!((taken.id.as_str(), taken.state), ("x", State::Running));
            assert!(taken.pod_requested, "its pod is only followed");
            assert!(b.take_over(LEASE).await.unwrap().is_none(), "taken once");
            // The old holder, back from a pause, is fenced off.
            assert!(a.renew(LEASE).await.unwrap().is_empty());
            assert!(
                !a.append_logs("x", 0, &[("c".into(), b"late".to_vec())], &[], 5, false)
                    .await
                    .unwrap()
            );
            assert!(
                !a.finish("x", State::Failed, Some("{}"), None)
                    .await
                    .unwrap()
            );
            assert!(
                b.finish("x", State::Succeeded, Some("{}"), None)
                    .await
                    .unwrap()
            );
            assert!(a.logs("x", 0, 10).await.unwrap().is_empty());
            // A server stopping gives its leases up: taken over at once.
            a.insert(&new_run("y", None)).await.unwrap();
            a.claim(LEASE).await.unwrap().unwrap();
            assert!(b.take_over(LEASE).await.unwrap().is_none());
            a.release_leases().await.unwrap();
            let y = b.take_over(LEASE).await.unwrap().unwrap();
            assert_eq!((y.id.as_str(), y.pod_requested), ("y", false));
            // One run let go alone.
            b.release_lease("y").await.unwrap();
            assert_eq!(a.take_over(LEASE).await.unwrap().unwrap().id, "y");
        })
        .await;
    }

    #[tokio::test]
    async fn a_callback_is_due_once_its_run_ends_and_taken_by_one_server_at_a_time() {
        each_store(|address| async move {
            let a = Store::open(&address, "a").await.unwrap();
            let b = Store::open(&address, "b").await.unwrap();
            let run = NewRun {
                callback_url: Some("http://hook/"),
                ..new_run("c", None)
            };
            a.insert(&run).await.unwrap();
            a.insert(&new_run("plain", None)).await.unwrap();
            let state = |s: &Store| {
                let s = s.clone();
                async move { s.get("c").await.unwrap().unwrap().callback_state }
            };
            assert_eq!(state(&a).await.as_deref(), Some("pending"));
            assert!(a.due_callback(LEASE).await.unwrap().is_none(), "not ended");
            a.claim(LEASE).await.unwrap().unwrap();
            a.claim(LEASE).await.unwrap().unwrap();
            a.finish("plain", State::Succeeded, None, None)
                .await
                .unwrap();
            assert!(a.due_callback(LEASE).await.unwrap().is_none(), "no URL");
            a.finish("c", State::Failed, None, None).await.unwrap();
            let due = a.due_callback(LEASE).await.unwrap().unwrap();
            assert_eq!(
                (due.id.as_str(), due.url.as_str(), due.attempt),
                ("c", "http://hook/", 1)
            );
            assert!(b.due_callback(LEASE).await.unwrap().is_none(), "held");
            a.callback_tried("c", 1, "pending", Some(0)).await.unwrap();
            assert_eq!(b.due_callback(LEASE).await.unwrap().unwrap().attempt, 2);
            // The first try, late, no longer counts.
            a.callback_tried("c", 1, "failed", None).await.unwrap();
            b.callback_tried("c", 2, "delivered", None).await.unwrap();
            assert!(a.due_callback(LEASE).await.unwrap().is_none());
            assert_eq!(state(&a).await.as_deref(), Some("delivered"));
        })
        .await;
    }

    #[tokio::test]
    async fn an_applications_limit_holds_over_servers_and_does_not_hold_up_others() {
        each_store(|address| async move {
            let limits = || Limits {
                applications: vec![("app".to_string(), 2)],
                tenants: Vec::new(),
            };
            let a = Store::open(&address, "a")
                .await
                .unwrap()
                .with_limits(limits());
            let b = Store::open(&address, "b")
                .await
                .unwrap()
                .with_limits(limits());
            for i in 0..5 {
                a.insert(&new_run(&format!("r{i}"), None)).await.unwrap();
            }
            a.insert(&NewRun {
                application: "other",
                ..new_run("o", None)
            })
            .await
            .unwrap();
            let (x, y) = tokio::join!(a.claim(LEASE), b.claim(LEASE));
            assert!(x.unwrap().is_some() && y.unwrap().is_some());
            // Both places of `app` are taken: the next claim passes its
            // queued runs by and takes the other application's.
            assert_eq!(a.claim(LEASE).await.unwrap().unwrap().id, "o");
            assert!(b.claim(LEASE).await.unwrap().is_none());
            assert!(
                a.finish("r0", State::Succeeded, None, None).await.unwrap()
                    || b.finish("r0", State::Succeeded, None, None).await.unwrap()
            );
            assert_eq!(b.claim(LEASE).await.unwrap().unwrap().id, "r2");
            assert!(a.claim(LEASE).await.unwrap().is_none());
            // Ended runs go once past retention, with their logs.
            assert_eq!(a.sweep(now() + 1, 100).await.unwrap(), 1);
            assert!(a.get("r0").await.unwrap().is_none());
            assert_eq!(a.sweep(now() + 1, 100).await.unwrap(), 0);
            assert!(a.get("r1").await.unwrap().is_some(), "running runs stay");
        })
        .await;
    }

    #[tokio::test]
    async fn a_tenants_limit_holds_and_its_runs_are_listed_only_to_it() {
        each_store(|address| async move {
            let limits = Limits {
                applications: vec![("app".to_string(), 5)],
                tenants: vec![("a".to_string(), 1)],
            };
            let store = Store::open(&address, "s")
                .await
                .unwrap()
                .with_limits(limits);
            for (id, tenant) in [
                ("a1", Some("a")),
                ("a2", Some("a")),
                ("b1", Some("b")),
                ("n", None),
            ] {
                store
                    .insert(&NewRun {
                        tenant,
                        ..new_run(id, None)
                    })
                    .await
                    .unwrap();
            }
            let mut claimed = Vec::new();
            while let Some(work) = store.claim(LEASE).await.unwrap() {
                claimed.push(work.id);
            }
            // Tenant a's second run waits for its first.
            assert_eq!(claimed, ["a1", "b1", "n"]);
            store
                .finish("a1", State::Succeeded, None, None)
                .await
                .unwrap();
            assert_eq!(store.claim(LEASE).await.unwrap().unwrap().id, "a2");
            let listed = |tenant: Option<&str>| {
                let store = store.clone();
                let tenant = tenant.map(str::to_string);
                async move {
                    let runs = store
                        .list(&Filter {
                            tenant,
                            limit: 10,
                            ..Filter::default()
                        })
                        .await
                        .unwrap();
                    runs.into_iter().map(|r| r.id).collect::<Vec<_>>()
                }
            };
            assert_eq!(listed(Some("a")).await, ["a2", "a1"]);
            assert_eq!(listed(Some("b")).await, ["b1"]);
            assert_eq!(listed(None).await.len(), 4);
            assert_eq!(
                store.get("b1").await.unwrap().unwrap().tenant.as_deref(),
                Some("b")
            );
        })
        .await;
    }

    #[tokio::test]
    async fn an_address_podrun_does_not_know_is_refused() {
        for address in ["", "sqlite:", "mysql://x", "/tmp/runs.db", "postgres"] {
            let err = Store::open(address, "a").await.err().unwrap();
            assert!(matches!(err, StoreError::Address(_)), "{address}: {err}");
        }
    }
}

//! The SQLite backend of [`Store`]: one database file in WAL mode, so the webhook intake keeps
//! writing while workers read, and every state change is a single short transaction.

use super::{BatchWriter, JobKind, LedgerEntry, LedgerQuery, LedgerTake,
    Claimed, DeliveryRecord, Enqueued, EventId, Finish, Intake, Job, JobFilter, JobId, JobState, Lease, NewEvent,
    NewJob, Replaced, Store, StoredEvent, from_ms, now_ms,
};
use anyhow::{Context, Result};
use async_trait::async_trait;
use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
// Column lists are constants, so the formatted statements below carry no outside input.
use sqlx::{AssertSqlSafe, QueryBuilder, Row, Sqlite, SqliteConnection};
use super::sqlite_intake;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Claims beyond this many end the job as failed: a job that kills its worker every time must
/// not take the factory down in a loop.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// Bytes the write-ahead log file is cut back to when it starts over. Under a steady flood of
/// deliveries a checkpoint never catches up with the writer, so the log only grows (about 17 KB
/// per delivery of GitHub's size); once the flood is over and a checkpoint completes, the next
/// commit starts the log over, and this returns the space instead of keeping the largest size
/// the log ever had.
pub const WAL_SIZE_LIMIT: u64 = 4 << 20;

/// How long a connection waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/store/migrations");

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The database file (`None` in memory), for the intake's own connection; see
    /// [`Store::intake_batch_writer`].
    file: Option<std::path::PathBuf>,
    /// Writers of this process take turns here before they ask SQLite for its write lock; see
    /// [`WriteGate`].
    write_gate: Arc<WriteGate>,
    /// Moves the write-ahead log into the database file; stops with the last clone of the store.
    _checkpointer: Option<Arc<Checkpointer>>,
    max_attempts: u32,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("max_attempts", &self.max_attempts).finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating the file and its folder if missing) and migrates the database at `url`,
    /// e.g. `sqlite://.factory/factory.db`.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("invalid SQLite URL '{url}'"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL is durable across process crashes (only an OS crash can lose the
            // last commits) and keeps webhook intake at a few hundred microseconds.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // No connection checkpoints inside its own commit (an fsync or two, up to tens of
            // milliseconds here, while holding its turn to write): a background task does it.
            .pragma("wal_autocheckpoint", "0")
            .pragma("journal_size_limit", WAL_SIZE_LIMIT.to_string());
        let file = options.get_filename().to_path_buf();
        let in_memory = file.as_os_str().is_empty() || file.to_string_lossy().contains(":memory:");
        if !in_memory
            && let Some(dir) = file.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).with_context(|| format!("creating the database folder {}", dir.display()))?;
        }
        let pool = SqlitePoolOptions::new()
            // An in-memory database exists once per connection, so it must have exactly one.
            .max_connections(if in_memory { 1 } else { 4 })
            // A local file does not go stale between uses; the default ping before every
            // acquire was one more round trip to the connection's thread per operation.
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("opening the database {}", file.display()))?;
        MIGRATOR.run(&pool).await.context("migrating the database")?;
        let checkpointer = (!in_memory).then(|| Arc::new(Checkpointer::spawn(pool.clone())));
        Ok(SqliteStore {
            pool,
            file: (!in_memory).then_some(file),
            write_gate: Arc::default(),
            _checkpointer: checkpointer,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        })
    }

    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A write transaction that takes the write lock up front: a deferred one that reads first
    /// can fail with SQLITE_BUSY when another connection wrote in between.
    async fn write_tx(&self) -> Result<WriteTx> {
        let gate = self.write_gate.background().await;
        Ok(WriteTx { tx: self.pool.begin_with("BEGIN IMMEDIATE").await?, _gate: gate })
    }
}

/// How often the write-ahead log is checkpointed. With `synchronous=NORMAL` the log is synced
/// at checkpoints, so this also bounds what an OS crash (not a process crash) could lose, as
/// SQLite's default of every 1000 pages did.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Checkpoints the log (`PASSIVE`: never blocks readers or writers) from a pool connection,
/// outside anyone's turn to write, so no writer waits for the fsyncs of a checkpoint.
struct Checkpointer(tokio::task::JoinHandle<()>);

impl Checkpointer {
    fn spawn(pool: SqlitePool) -> Self {
        Checkpointer(tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if pool.is_closed() {
                    return;
                }
                if let Err(err) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await
                    && !pool.is_closed()
                {
                    tracing::warn!("checkpointing the database failed: {err}");
                }
            }
        }))
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// In-process turn-taking for SQLite's single write lock, with the webhook intake first.
///
/// SQLite's own wait for a busy lock is sleep-and-retry (1, 2, 5, 10 ms, ...): with the intake
/// writer, the dispatcher and the workers committing back to back, the intake stalled for
/// milliseconds at a time. Here writers queue on a mutex instead, which hands the lock over at
/// once. And because a 202 is waiting on every intake batch while routing and job bookkeeping
/// are not, other writers hold back while the intake is busy: they go once it has been quiet for
/// [`WriteGate::QUIET`], and never wait longer than [`WriteGate::MAX_HOLD_BACK`] (so they still
/// progress under a flood). Other processes on the same file still meet the busy timeout.
struct WriteGate {
    lock: Arc<tokio::sync::Mutex<()>>,
    started: std::time::Instant,
    /// When the last intake batch let go of the lock, in µs since `started`.
    last_intake_us: std::sync::atomic::AtomicU64,
}

impl Default for WriteGate {
    fn default() -> Self {
        WriteGate {
            lock: Arc::default(),
            started: std::time::Instant::now(),
            last_intake_us: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

struct IntakeTurn<'a> {
    gate: &'a WriteGate,
    _lock: tokio::sync::MutexGuard<'a, ()>,
}

impl Drop for IntakeTurn<'_> {
    fn drop(&mut self) {
        let now = self.gate.started.elapsed().as_micros() as u64;
        self.gate.last_intake_us.store(now.max(1), std::sync::atomic::Ordering::Relaxed);
    }
}

impl WriteGate {
    const QUIET: Duration = Duration::from_millis(2);
    const MAX_HOLD_BACK: Duration = Duration::from_millis(250);

    async fn intake(&self) -> IntakeTurn<'_> {
        IntakeTurn { gate: self, _lock: self.lock.lock().await }
    }

    /// [`WriteGate::intake`] for the intake's own thread (not inside the async runtime).
    fn intake_blocking(&self) -> IntakeTurn<'_> {
        IntakeTurn { gate: self, _lock: self.lock.blocking_lock() }
    }

    async fn background(&self) -> tokio::sync::OwnedMutexGuard<()> {
        let give_up = tokio::time::Instant::now() + Self::MAX_HOLD_BACK;
        loop {
            let last = self.last_intake_us.load(std::sync::atomic::Ordering::Relaxed);
            let since = self.started.elapsed().saturating_sub(Duration::from_micros(last));
            let now = tokio::time::Instant::now();
            if last == 0 || since >= Self::QUIET || now >= give_up {
                break;
            }
            tokio::time::sleep_until((now + (Self::QUIET - since)).min(give_up)).await;
        }
        self.lock.clone().lock_owned().await
    }
}

/// A write transaction holding the store's write gate until it commits or is dropped; used
/// like the `sqlx::Transaction` it wraps (`&mut *tx` is the connection).
struct WriteTx {
    tx: sqlx::Transaction<'static, Sqlite>,
    _gate: tokio::sync::OwnedMutexGuard<()>,
}

impl WriteTx {
    async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}

const JOB_COLUMNS: &str = "id, kind, repository, installation_id, issue_number, event_id, payload, \
     state, phase, attempts, lease_owner, lease_until, superseded_by, created_at, updated_at, \
     started_at, finished_at, result, error";

const EVENT_COLUMNS: &str = "id, delivery_id, event, action, installation_id, repository, payload, received_at, route";

fn job_from_row(row: &SqliteRow) -> Result<Job> {
    let kind: String = row.try_get("kind")?;
    let state: String = row.try_get("state")?;
    let payload: String = row.try_get("payload")?;
    let result: Option<String> = row.try_get("result")?;
    let attempts: i64 = row.try_get("attempts")?;
    Ok(Job {
        id: JobId(row.try_get("id")?),
        kind: kind.parse()?,
        repository: row.try_get("repository")?,
        installation_id: row.try_get("installation_id")?,
        issue_number: row.try_get("issue_number")?,
        event_id: row.try_get::<Option<i64>, _>("event_id")?.map(EventId),
        payload: serde_json::from_str(&payload).context("job payload is not JSON")?,
        state: state.parse()?,
        phase: row.try_get("phase")?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        lease_owner: row.try_get("lease_owner")?,
        lease_until: row.try_get::<Option<i64>, _>("lease_until")?.map(from_ms),
        superseded_by: row.try_get::<Option<i64>, _>("superseded_by")?.map(JobId),
        created_at: from_ms(row.try_get("created_at")?),
        updated_at: from_ms(row.try_get("updated_at")?),
        started_at: row.try_get::<Option<i64>, _>("started_at")?.map(from_ms),
        finished_at: row.try_get::<Option<i64>, _>("finished_at")?.map(from_ms),
        result: result.map(|r| serde_json::from_str(&r)).transpose().context("job result is not JSON")?,
        error: row.try_get("error")?,
    })
}

fn event_from_row(row: &SqliteRow) -> Result<StoredEvent> {
    let route: Option<String> = row.try_get("route")?;
    Ok(StoredEvent {
        id: EventId(row.try_get("id")?),
        delivery_id: row.try_get("delivery_id")?,
        event: row.try_get("event")?,
        action: row.try_get("action")?,
        installation_id: row.try_get("installation_id")?,
        repository: row.try_get("repository")?,
        payload: row.try_get("payload")?,
        received_at: from_ms(row.try_get("received_at")?),
        route: route.map(|r| serde_json::from_str(&r)).transpose()?,
    })
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

fn new_lease_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Events marked routed per statement in [`Store::route_events`] (each size is its own cached
/// statement).
const ROUTE_CHUNK: usize = 16;

/// [`Store::route_event`] inside a caller's write transaction.
async fn route_in(conn: &mut SqliteConnection, id: EventId, route: &Value, jobs: &[NewJob]) -> Result<Vec<Enqueued>> {
    let already: Option<Option<i64>> =
        sqlx::query_scalar("SELECT routed_at FROM events WHERE id = ?").bind(id.0).fetch_optional(&mut *conn).await?;
    match already {
        None => anyhow::bail!("event {id} does not exist"),
        // Another router got there first; routing twice would enqueue twice.
        Some(Some(_)) => return Ok(Vec::new()),
        Some(None) => {}
    }
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        out.push(enqueue_in(conn, job, Some(id)).await?);
    }
    let mut route = route.clone();
    if let Value::Object(map) = &mut route {
        map.insert("jobs".into(), serde_json::to_value(&out)?);
    }
    sqlx::query("UPDATE events SET routed_at = ?, route = ? WHERE id = ?")
        .bind(now_ms())
        .bind(serde_json::to_string(&route)?)
        .bind(id.0)
        .execute(&mut *conn)
        .await?;
    Ok(out)
}

/// The enqueue rules, inside a caller's write transaction.
async fn enqueue_in(conn: &mut SqliteConnection, job: &NewJob, event: Option<EventId>) -> Result<Enqueued> {
    let now = now_ms();
    if job.only_if_first
        && let Some(existing) = sqlx::query_scalar::<_, i64>(
            "SELECT id FROM jobs WHERE repository = ? AND issue_number IS ? AND kind = ? ORDER BY id LIMIT 1",
        )
        .bind(&job.repository)
        .bind(job.issue_number)
        .bind(job.kind.as_str())
        .fetch_optional(&mut *conn)
        .await?
    {
        return Ok(Enqueued::Skipped { existing: JobId(existing) });
    }

    let id: i64 = sqlx::query_scalar(
        "INSERT INTO jobs (kind, repository, installation_id, issue_number, event_id, payload, state, \
         attempts, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?) RETURNING id",
    )
    .bind(job.kind.as_str())
    .bind(&job.repository)
    .bind(job.installation_id)
    .bind(job.issue_number)
    .bind(event.map(|e| e.0))
    .bind(serde_json::to_string(&job.payload)?)
    .bind(now)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;

    let replaced = match job.issue_number {
        Some(issue) => {
            let reason = format!("superseded by job {id} ({})", job.kind);
            replace_active(conn, &job.repository, issue, job.kind.supersedes(), JobId(id), JobState::Superseded, &reason)
                .await?
        }
        None => Vec::new(),
    };
    Ok(Enqueued::Created { id: JobId(id), replaced })
}

/// Give the queued and running jobs of `kinds` on one issue the state `new_state`, recording
/// which job replaced them and why; their leases are dropped so their workers' writes fail.
async fn replace_active(
    conn: &mut SqliteConnection,
    repository: &str,
    issue_number: i64,
    kinds: &[JobKind],
    by: JobId,
    new_state: JobState,
    reason: &str,
) -> Result<Vec<Replaced>> {
    let mut replaced = Vec::new();
    if kinds.is_empty() {
        return Ok(replaced);
    }
    let now = now_ms();
    let mut q = QueryBuilder::<Sqlite>::new("SELECT id, kind, state FROM jobs WHERE repository = ");
    q.push_bind(repository)
        .push(" AND issue_number = ")
        .push_bind(issue_number)
        .push(" AND state IN ('queued', 'running') AND id <> ")
        .push_bind(by.0)
        .push(" AND kind IN (");
    let mut sep = q.separated(", ");
    for k in kinds {
        sep.push_bind(k.as_str());
    }
    q.push(") ORDER BY id");
    for row in q.build().fetch_all(&mut *conn).await? {
        let kind: String = row.try_get("kind")?;
        let state: String = row.try_get("state")?;
        replaced.push(Replaced {
            id: JobId(row.try_get("id")?),
            kind: kind.parse()?,
            was_running: state == JobState::Running.as_str(),
        });
    }
    for old in &replaced {
        sqlx::query(
            "UPDATE jobs SET state = ?, superseded_by = ?, error = ?, finished_at = ?, updated_at = ?, \
             lease_token = NULL, lease_until = NULL WHERE id = ?",
        )
        .bind(new_state.as_str())
        .bind(by.0)
        .bind(reason)
        .bind(now)
        .bind(now)
        .bind(old.id.0)
        .execute(&mut *conn)
        .await?;
    }
    Ok(replaced)
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn record_event(&self, event: &NewEvent) -> Result<Intake> {
        let mut out = self.record_events(std::slice::from_ref(event)).await?;
        out.pop().context("no answer for the delivery")
    }

    async fn record_events(&self, events: &[NewEvent]) -> Result<Vec<Intake>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let _gate = self.write_gate.intake().await;
        // The same batch write as the intake thread's, on a pool connection's handle, on this
        // thread: it blocks it for the write (up to the busy timeout if another process holds
        // the lock). The intake itself writes from its own thread (`intake_batch_writer`); this
        // serves tests, in-memory stores and the intake's fallback when that connection fails.
        let mut conn = self.pool.acquire().await?;
        let mut handle = conn.lock_handle().await?;
        // SAFETY: the locked handle gives this code the connection alone until it is dropped,
        // after `borrowed` (which does not close the handle) is gone.
        let mut borrowed = unsafe { rusqlite::Connection::from_handle(handle.as_raw_handle().as_ptr())? };
        sqlite_intake::write(&mut borrowed, events)
    }

    fn intake_batch_writer(&self) -> Result<Option<BatchWriter>> {
        let Some(file) = &self.file else { return Ok(None) };
        let mut conn = sqlite_intake::open(file, BUSY_TIMEOUT)?;
        let gate = self.write_gate.clone();
        Ok(Some(Box::new(move |events: &[NewEvent]| {
            let _turn = gate.intake_blocking();
            sqlite_intake::write(&mut conn, events)
        })))
    }

    async fn delivery(&self, delivery_id: &str) -> Result<Option<DeliveryRecord>> {
        let row = sqlx::query("SELECT delivery_id, event, redeliveries FROM deliveries WHERE delivery_id = ?")
            .bind(delivery_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            let redeliveries: i64 = row.try_get("redeliveries")?;
            Ok(DeliveryRecord {
                delivery_id: row.try_get("delivery_id")?,
                event: row.try_get("event")?,
                redeliveries: u32::try_from(redeliveries).unwrap_or(u32::MAX),
            })
        })
        .transpose()
    }

    async fn get_event(&self, id: EventId) -> Result<Option<StoredEvent>> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?")))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(event_from_row).transpose()
    }

    async fn unrouted_events(&self, limit: u32) -> Result<Vec<StoredEvent>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE routed_at IS NULL ORDER BY id LIMIT ?"
        )))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn route_event(&self, id: EventId, route: &Value, jobs: &[NewJob]) -> Result<Vec<Enqueued>> {
        let mut tx = self.write_tx().await?;
        let out = route_in(&mut tx, id, route, jobs).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// One transaction, and per batch (not per event) one statement to see which events are still
    /// unrouted and a few multi-row statements to mark them routed; the jobs are enqueued one by
    /// one with the same rules as [`Store::enqueue`].
    async fn route_events(&self, routes: &[(EventId, Value, Vec<NewJob>)]) -> Result<Vec<Vec<Enqueued>>> {
        if routes.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.write_tx().await?;
        let mut q = QueryBuilder::<Sqlite>::new("SELECT id, routed_at IS NULL AS open FROM events WHERE id IN (");
        let mut ids = q.separated(", ");
        for (id, _, _) in routes {
            ids.push_bind(id.0);
        }
        q.push(")");
        let mut open: HashMap<i64, bool> = HashMap::with_capacity(routes.len());
        for row in q.build().fetch_all(&mut *tx).await? {
            open.insert(row.try_get("id")?, row.try_get("open")?);
        }
        let mut out = Vec::with_capacity(routes.len());
        let mut marks: Vec<(i64, String)> = Vec::with_capacity(routes.len());
        for (id, route, jobs) in routes {
            match open.get_mut(&id.0) {
                None => anyhow::bail!("event {id} does not exist"),
                // Routed already (by another router, or earlier in this batch): routing twice
                // would enqueue twice.
                Some(false) => {
                    out.push(Vec::new());
                    continue;
                }
                Some(still_open) => *still_open = false,
            }
            let mut enqueued = Vec::with_capacity(jobs.len());
            for job in jobs {
                enqueued.push(enqueue_in(&mut tx, job, Some(*id)).await?);
            }
            let mut route = route.clone();
            if let Value::Object(map) = &mut route {
                map.insert("jobs".into(), serde_json::to_value(&enqueued)?);
            }
            marks.push((id.0, serde_json::to_string(&route)?));
            out.push(enqueued);
        }
        let now = now_ms();
        for chunk in marks.chunks(ROUTE_CHUNK) {
            let mut q = QueryBuilder::<Sqlite>::new("UPDATE events SET routed_at = ");
            q.push_bind(now).push(", route = v.column2 FROM (");
            q.push_values(chunk, |mut row, (id, route)| {
                row.push_bind(*id).push_bind(route.as_str());
            });
            q.push(") AS v WHERE events.id = v.column1");
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn enqueue(&self, job: &NewJob) -> Result<Enqueued> {
        let mut tx = self.write_tx().await?;
        let out = enqueue_in(&mut tx, job, None).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn cancel_active(&self, repository: &str, issue_number: i64, by: JobId) -> Result<Vec<Replaced>> {
        let mut tx = self.write_tx().await?;
        let kinds = [JobKind::Generate, JobKind::Retry, JobKind::CiFinished];
        let reason = format!("cancelled by job {by} (cancel)");
        let out = replace_active(&mut tx, repository, issue_number, &kinds, by, JobState::Cancelled, &reason).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn job_counts(&self) -> Result<Vec<(JobState, u64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetch_all(&self.pool).await?;
        let mut out = Vec::new();
        for state in JobState::ALL {
            if let Some((_, n)) = rows.iter().find(|(s, _)| s == state.as_str()) {
                out.push((state, u64::try_from(*n).unwrap_or(0)));
            }
        }
        Ok(out)
    }

    async fn ledger_count(&self, query: &LedgerQuery) -> Result<u32> {
        let mut conn = self.pool.acquire().await?;
        ledger_count(&mut conn, query).await
    }

    async fn ledger_take(&self, query: &LedgerQuery, limit: u32, entry: &LedgerEntry) -> Result<LedgerTake> {
        let mut tx = self.write_tx().await?;
        let existing = sqlx::query("SELECT 1 FROM ledger WHERE repository = ?1 AND kind = ?2 AND entry_key = ?3")
            .bind(&query.repository)
            .bind(&query.kind)
            .bind(&entry.key)
            .fetch_optional(&mut *tx)
            .await?;
        let count = ledger_count(&mut tx, query).await?;
        if existing.is_some() {
            tx.commit().await?;
            return Ok(LedgerTake::AlreadyTaken(count));
        }
        if count >= limit {
            tx.commit().await?;
            return Ok(LedgerTake::LimitReached(count));
        }
        sqlx::query(
            "INSERT INTO ledger (repository, kind, subject, entry_key, note, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(&query.repository)
        .bind(&query.kind)
        .bind(&entry.subject)
        .bind(&entry.key)
        .bind(entry.note.to_string())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(LedgerTake::Taken(count + 1))
    }

    async fn claim(&self, owner: &str, lease: Duration) -> Result<Option<Claimed>> {
        let now = now_ms();
        let token = new_lease_token();
        let mut tx = self.write_tx().await?;
        // A job whose worker vanished max_attempts times is not handed out again.
        sqlx::query(
            "UPDATE jobs SET state = 'failed', finished_at = ?1, updated_at = ?1, lease_token = NULL, \
             lease_until = NULL, error = 'gave up after ' || attempts || ' attempts: each time the worker \
             stopped without finishing (last phase: ' || COALESCE(phase, 'none') || ')' \
             WHERE state = 'running' AND lease_until < ?1 AND attempts >= ?2",
        )
        .bind(now)
        .bind(i64::from(self.max_attempts))
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = ?1, lease_token = ?2, \
             lease_until = ?3, started_at = COALESCE(started_at, ?4), updated_at = ?4 \
             WHERE id = (SELECT id FROM jobs WHERE state = 'queued' OR (state = 'running' AND lease_until < ?4) \
                         ORDER BY created_at, id LIMIT 1) \
             RETURNING {JOB_COLUMNS}"
        )))
        .bind(owner)
        .bind(&token)
        .bind(now + duration_ms(lease))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let Some(row) = row else { return Ok(None) };
        let job = job_from_row(&row)?;
        let lease = Lease { job: job.id, owner: owner.to_string(), token };
        Ok(Some(Claimed { job, lease }))
    }

    async fn heartbeat(&self, lease: &Lease, extend: Duration) -> Result<bool> {
        let _turn = self.write_gate.background().await;
        let now = now_ms();
        let n = sqlx::query(
            "UPDATE jobs SET lease_until = ?, updated_at = ? WHERE id = ? AND state = 'running' AND lease_token = ?",
        )
        .bind(now + duration_ms(extend))
        .bind(now)
        .bind(lease.job.0)
        .bind(&lease.token)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn set_phase(&self, lease: &Lease, phase: &str) -> Result<bool> {
        let _turn = self.write_gate.background().await;
        let n = sqlx::query(
            "UPDATE jobs SET phase = ?, updated_at = ? WHERE id = ? AND state = 'running' AND lease_token = ?",
        )
        .bind(phase)
        .bind(now_ms())
        .bind(lease.job.0)
        .bind(&lease.token)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn finish(&self, lease: &Lease, outcome: &Finish) -> Result<bool> {
        let (state, result, error) = match outcome {
            Finish::Succeeded { result } => (JobState::Succeeded, Some(result), None),
            Finish::Failed { error, result } => (JobState::Failed, result.as_ref(), Some(error.as_str())),
        };
        let _turn = self.write_gate.background().await;
        let now = now_ms();
        let n = sqlx::query(
            "UPDATE jobs SET state = ?, result = ?, error = ?, finished_at = ?, updated_at = ?, \
             lease_token = NULL, lease_until = NULL WHERE id = ? AND state = 'running' AND lease_token = ?",
        )
        .bind(state.as_str())
        .bind(result.map(serde_json::to_string).transpose()?)
        .bind(error)
        .bind(now)
        .bind(now)
        .bind(lease.job.0)
        .bind(&lease.token)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn release(&self, lease: &Lease) -> Result<bool> {
        let _turn = self.write_gate.background().await;
        let n = sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = MAX(attempts - 1, 0), lease_owner = NULL, \
             lease_token = NULL, lease_until = NULL, updated_at = ? \
             WHERE id = ? AND state = 'running' AND lease_token = ?",
        )
        .bind(now_ms())
        .bind(lease.job.0)
        .bind(&lease.token)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn get_job(&self, id: JobId) -> Result<Option<Job>> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?")))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let mut q = QueryBuilder::<Sqlite>::new(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE 1 = 1"));
        if !filter.states.is_empty() {
            q.push(" AND state IN (");
            let mut sep = q.separated(", ");
            for s in &filter.states {
                sep.push_bind(s.as_str());
            }
            q.push(")");
        }
        if !filter.kinds.is_empty() {
            q.push(" AND kind IN (");
            let mut sep = q.separated(", ");
            for k in &filter.kinds {
                sep.push_bind(k.as_str());
            }
            q.push(")");
        }
        if let Some(repo) = &filter.repository {
            q.push(" AND repository = ").push_bind(repo.clone());
        }
        if let Some(issue) = filter.issue_number {
            q.push(" AND issue_number = ").push_bind(issue);
        }
        if let Some(before) = filter.before {
            q.push(" AND id < ").push_bind(before.0);
        }
        q.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(filter.limit.unwrap_or(100)));
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(job_from_row).collect()
    }
}

async fn ledger_count(conn: &mut SqliteConnection, query: &LedgerQuery) -> Result<u32> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM ledger WHERE repository = ?1 AND kind = ?2 \
         AND (?3 IS NULL OR subject = ?3) AND (?4 IS NULL OR created_at >= ?4)",
    )
    .bind(&query.repository)
    .bind(&query.kind)
    .bind(query.subject.as_deref())
    .bind(query.since.map(|t| t.timestamp_millis()))
    .fetch_one(&mut *conn)
    .await?;
    Ok(u32::try_from(count).unwrap_or(u32::MAX))
}

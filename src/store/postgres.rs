//! The Postgres backend of [`Store`], for several `serve` replicas sharing one database behind a
//! load balancer. Same tables, same rules and the same answers as [`super::SqliteStore`]; what
//! differs is how concurrent writers are kept apart, since Postgres does not serialize every
//! write transaction the way SQLite's single writer does:
//!
//! - **Intake**: the delivery id is the primary key of `deliveries`, and the insert is
//!   `ON CONFLICT DO NOTHING`. When two replicas receive the same delivery at once, the second
//!   insert waits for the first transaction and then inserts nothing: a duplicate.
//! - **Claiming**: `SELECT ... FOR UPDATE SKIP LOCKED` inside the claiming `UPDATE`. A replica
//!   never waits for a row another replica is claiming and never gets it: it takes the next one.
//!   If the other claim committed first, Postgres re-checks the row against the condition
//!   (it is no longer claimable) and moves on.
//! - **Enqueue, supersession, cancel**: a transaction-scoped advisory lock per
//!   (repository, issue), see [`lock_issues`]. Row locks are not enough here: `only_if_first`
//!   asks whether a job *exists*, and a job another replica is inserting right now has no row to
//!   lock yet, so two replicas could both insert "the first" generate, or both new jobs could
//!   miss each other and stay active side by side. The advisory lock serializes exactly the
//!   transactions that touch one issue's queue (other issues proceed in parallel) and is released
//!   by commit or rollback, so a crashed replica cannot leave it held. The rows being replaced
//!   are also locked (`FOR UPDATE`), so a claim racing the supersession is seen as running.
//! - **Ledger**: the same kind of lock per (repository, ledger kind), the scope every
//!   [`LedgerQuery`] counts within (one subject or all of them), so "count, then insert if under
//!   the limit" cannot let two replicas take the last slot. SERIALIZABLE isolation would also be
//!   correct but makes callers retry on serialization failures; the lock just waits.
//!
//! Times come from the database's clock (`factory_now_ms()`, see the first migration), not the
//! replica's, so replicas with drifting clocks still agree on which leases expired.

use super::{
    Claimed, DeliveryRecord, Enqueued, EventId, Finish, Intake, Job, JobFilter, JobId, JobKind, JobState, Lease,
    LedgerEntry, LedgerQuery, LedgerTake, NewEvent, NewJob, Replaced, Store, StoredEvent,
};
use anyhow::{Context, Result};
use async_trait::async_trait;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
// Column lists are constants, so the formatted statements below carry no outside input.
use sqlx::{AssertSqlSafe, PgConnection, Postgres, QueryBuilder, Row};
use std::str::FromStr;
use std::time::Duration;

pub use super::sqlite::DEFAULT_MAX_ATTEMPTS;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/store/migrations_postgres");

/// Connections per replica: the worker pool's jobs, the dispatcher and the webhook server share
/// them, and every operation is one short transaction.
const DEFAULT_MAX_CONNECTIONS: u32 = 8;

#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    max_attempts: u32,
}

impl std::fmt::Debug for PostgresStore {
    // The connect options hold the password: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").field("max_attempts", &self.max_attempts).finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to and migrates the database at `url`, e.g.
    /// `postgres://factory:secret@db.internal:5432/factory`. The database must exist. Migrations
    /// take Postgres' migration lock, so replicas starting together migrate once.
    pub async fn connect(url: &str) -> Result<Self> {
        let shown = super::redact_database_url(url);
        let options = PgConnectOptions::from_str(url).map_err(|e| anyhow::anyhow!("invalid Postgres URL '{shown}': {e}"))?;
        Self::connect_with(options).await.with_context(|| format!("opening the database {shown}"))
    }

    /// Like [`connect`](Self::connect), from options built in code.
    pub async fn connect_with(options: PgConnectOptions) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(DEFAULT_MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .context("connecting")?;
        MIGRATOR.run(&pool).await.context("migrating the database")?;
        Ok(PostgresStore { pool, max_attempts: DEFAULT_MAX_ATTEMPTS })
    }

    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

const JOB_COLUMNS: &str = "id, kind, repository, installation_id, issue_number, event_id, payload, \
     state, phase, attempts, lease_owner, lease_until, superseded_by, created_at, updated_at, \
     started_at, finished_at, result, error";

const EVENT_COLUMNS: &str = "id, delivery_id, event, action, installation_id, repository, payload, received_at, route";

fn job_from_row(row: &PgRow) -> Result<Job> {
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
        lease_until: row.try_get::<Option<i64>, _>("lease_until")?.map(super::from_ms),
        superseded_by: row.try_get::<Option<i64>, _>("superseded_by")?.map(JobId),
        created_at: super::from_ms(row.try_get("created_at")?),
        updated_at: super::from_ms(row.try_get("updated_at")?),
        started_at: row.try_get::<Option<i64>, _>("started_at")?.map(super::from_ms),
        finished_at: row.try_get::<Option<i64>, _>("finished_at")?.map(super::from_ms),
        result: result.map(|r| serde_json::from_str(&r)).transpose().context("job result is not JSON")?,
        error: row.try_get("error")?,
    })
}

fn event_from_row(row: &PgRow) -> Result<StoredEvent> {
    let route: Option<String> = row.try_get("route")?;
    Ok(StoredEvent {
        id: EventId(row.try_get("id")?),
        delivery_id: row.try_get("delivery_id")?,
        event: row.try_get("event")?,
        action: row.try_get("action")?,
        installation_id: row.try_get("installation_id")?,
        repository: row.try_get("repository")?,
        payload: row.try_get("payload")?,
        received_at: super::from_ms(row.try_get("received_at")?),
        route: route.map(|r| serde_json::from_str(&r)).transpose()?,
    })
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

fn new_lease_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The advisory lock key of one issue's queue. Repository names hold neither spaces nor `#`, so
/// distinct issues give distinct strings; the 64-bit hash of two of them colliding only makes one
/// wait for the other.
fn issue_lock_key(repository: &str, issue_number: Option<i64>) -> String {
    match issue_number {
        Some(n) => format!("jobs {repository} #{n}"),
        None => format!("jobs {repository} #none"),
    }
}

/// Takes the transaction-scoped advisory locks of these issues (see the module docs), in sorted
/// order: a transaction that enqueues for several issues (one event's jobs) and another that
/// enqueues for the same issues in a different order must not wait on each other in a cycle.
async fn lock_issues(conn: &mut PgConnection, mut keys: Vec<String>) -> Result<()> {
    keys.sort();
    keys.dedup();
    for key in keys {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(key)
            .execute(&mut *conn)
            .await
            .context("locking the issue's queue")?;
    }
    Ok(())
}

/// The enqueue rules, inside a caller's transaction that holds the issue's lock.
async fn enqueue_in(conn: &mut PgConnection, job: &NewJob, event: Option<EventId>) -> Result<Enqueued> {
    if job.only_if_first
        && let Some(existing) = sqlx::query_scalar::<_, i64>(
            "SELECT id FROM jobs WHERE repository = $1 AND issue_number IS NOT DISTINCT FROM $2 AND kind = $3 \
             ORDER BY id LIMIT 1",
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
         attempts, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'queued', 0, factory_now_ms(), factory_now_ms()) RETURNING id",
    )
    .bind(job.kind.as_str())
    .bind(&job.repository)
    .bind(job.installation_id)
    .bind(job.issue_number)
    .bind(event.map(|e| e.0))
    .bind(serde_json::to_string(&job.payload)?)
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
    conn: &mut PgConnection,
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
    // FOR UPDATE: a claim of one of these rows in flight is waited for, and its outcome (running)
    // is what `was_running` reports.
    let mut q = QueryBuilder::<Postgres>::new("SELECT id, kind, state FROM jobs WHERE repository = ");
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
    q.push(") ORDER BY id FOR UPDATE");
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
            "UPDATE jobs SET state = $1, superseded_by = $2, error = $3, finished_at = factory_now_ms(), \
             updated_at = factory_now_ms(), lease_token = NULL, lease_until = NULL WHERE id = $4",
        )
        .bind(new_state.as_str())
        .bind(by.0)
        .bind(reason)
        .bind(old.id.0)
        .execute(&mut *conn)
        .await?;
    }
    Ok(replaced)
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn record_event(&self, event: &NewEvent) -> Result<Intake> {
        let at = event.received_at.timestamp_millis();
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO deliveries (delivery_id, event, received_at, last_seen_at) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (delivery_id) DO NOTHING",
        )
        .bind(&event.delivery_id)
        .bind(&event.event)
        .bind(at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            sqlx::query(
                "UPDATE deliveries SET redeliveries = redeliveries + 1, last_seen_at = $1 WHERE delivery_id = $2",
            )
            .bind(at)
            .bind(&event.delivery_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(Intake::Duplicate);
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO events (delivery_id, event, action, installation_id, repository, payload, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(&event.delivery_id)
        .bind(&event.event)
        .bind(&event.action)
        .bind(event.installation_id)
        .bind(&event.repository)
        .bind(&event.payload)
        .bind(at)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Intake::Recorded(EventId(id)))
    }

    async fn delivery(&self, delivery_id: &str) -> Result<Option<DeliveryRecord>> {
        let row = sqlx::query("SELECT delivery_id, event, redeliveries FROM deliveries WHERE delivery_id = $1")
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
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1")))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(event_from_row).transpose()
    }

    async fn unrouted_events(&self, limit: u32) -> Result<Vec<StoredEvent>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE routed_at IS NULL ORDER BY id LIMIT $1"
        )))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn route_event(&self, id: EventId, route: &Value, jobs: &[NewJob]) -> Result<Vec<Enqueued>> {
        let mut tx = self.pool.begin().await?;
        // Every replica's dispatcher reads the unrouted events: the row lock makes a second
        // router wait for the first and then find the event routed.
        let already: Option<Option<i64>> = sqlx::query_scalar("SELECT routed_at FROM events WHERE id = $1 FOR UPDATE")
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?;
        match already {
            None => anyhow::bail!("event {id} does not exist"),
            // Another router got there first; routing twice would enqueue twice.
            Some(Some(_)) => return Ok(Vec::new()),
            Some(None) => {}
        }
        lock_issues(&mut tx, jobs.iter().map(|j| issue_lock_key(&j.repository, j.issue_number)).collect()).await?;
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            out.push(enqueue_in(&mut tx, job, Some(id)).await?);
        }
        let mut route = route.clone();
        if let Value::Object(map) = &mut route {
            map.insert("jobs".into(), serde_json::to_value(&out)?);
        }
        sqlx::query("UPDATE events SET routed_at = factory_now_ms(), route = $1 WHERE id = $2")
            .bind(serde_json::to_string(&route)?)
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn enqueue(&self, job: &NewJob) -> Result<Enqueued> {
        let mut tx = self.pool.begin().await?;
        lock_issues(&mut tx, vec![issue_lock_key(&job.repository, job.issue_number)]).await?;
        let out = enqueue_in(&mut tx, job, None).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn cancel_active(&self, repository: &str, issue_number: i64, by: JobId) -> Result<Vec<Replaced>> {
        let mut tx = self.pool.begin().await?;
        lock_issues(&mut tx, vec![issue_lock_key(repository, Some(issue_number))]).await?;
        let kinds = [JobKind::Generate, JobKind::Retry, JobKind::CiFinished];
        let reason = format!("cancelled by job {by} (cancel)");
        let out = replace_active(&mut tx, repository, issue_number, &kinds, by, JobState::Cancelled, &reason).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn job_counts(&self) -> Result<Vec<(JobState, u64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetch_all(&self.pool).await?;
        Ok(JobState::ALL
            .into_iter()
            .filter_map(|st| rows.iter().find(|(s, _)| s == st.as_str()).map(|(_, n)| (st, u64::try_from(*n).unwrap_or(0))))
            .collect())
    }

    async fn ledger_count(&self, query: &LedgerQuery) -> Result<u32> {
        let mut conn = self.pool.acquire().await?;
        ledger_count(&mut conn, query).await
    }

    async fn ledger_take(&self, query: &LedgerQuery, limit: u32, entry: &LedgerEntry) -> Result<LedgerTake> {
        let mut tx = self.pool.begin().await?;
        // One lock per (repository, kind): every query of that kind counts inside it, whatever
        // its subject or window. See the module docs.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("ledger {} {}", query.repository, query.kind))
            .execute(&mut *tx)
            .await
            .context("locking the ledger")?;
        let existing = sqlx::query("SELECT 1 FROM ledger WHERE repository = $1 AND kind = $2 AND entry_key = $3")
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
            "INSERT INTO ledger (repository, kind, subject, entry_key, note, created_at) \
             VALUES ($1, $2, $3, $4, $5, factory_now_ms())",
        )
        .bind(&query.repository)
        .bind(&query.kind)
        .bind(&entry.subject)
        .bind(&entry.key)
        .bind(entry.note.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(LedgerTake::Taken(count + 1))
    }

    async fn claim(&self, owner: &str, lease: Duration) -> Result<Option<Claimed>> {
        let token = new_lease_token();
        let mut tx = self.pool.begin().await?;
        // A job whose worker vanished max_attempts times is not handed out again. Rows another
        // replica has locked are skipped; the next claim gets to them.
        sqlx::query(
            "UPDATE jobs SET state = 'failed', finished_at = factory_now_ms(), updated_at = factory_now_ms(), \
             lease_token = NULL, lease_until = NULL, error = 'gave up after ' || attempts || ' attempts: each \
             time the worker stopped without finishing (last phase: ' || COALESCE(phase, 'none') || ')' \
             WHERE id IN (SELECT id FROM jobs WHERE state = 'running' AND lease_until < factory_now_ms() \
                          AND attempts >= $1 FOR UPDATE SKIP LOCKED)",
        )
        .bind(i64::from(self.max_attempts))
        .execute(&mut *tx)
        .await?;
        // The same limit in the claim itself: an exhausted job skipped above (locked elsewhere)
        // must not be handed out either.
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = $1, lease_token = $2, \
             lease_until = factory_now_ms() + $3, started_at = COALESCE(started_at, factory_now_ms()), \
             updated_at = factory_now_ms() \
             WHERE id = (SELECT id FROM jobs \
                         WHERE state = 'queued' \
                            OR (state = 'running' AND lease_until < factory_now_ms() AND attempts < $4) \
                         ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING {JOB_COLUMNS}"
        )))
        .bind(owner)
        .bind(&token)
        .bind(duration_ms(lease))
        .bind(i64::from(self.max_attempts))
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let Some(row) = row else { return Ok(None) };
        let job = job_from_row(&row)?;
        let lease = Lease { job: job.id, owner: owner.to_string(), token };
        Ok(Some(Claimed { job, lease }))
    }

    async fn heartbeat(&self, lease: &Lease, extend: Duration) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE jobs SET lease_until = factory_now_ms() + $1, updated_at = factory_now_ms() \
             WHERE id = $2 AND state = 'running' AND lease_token = $3",
        )
        .bind(duration_ms(extend))
        .bind(lease.job.0)
        .bind(&lease.token)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn set_phase(&self, lease: &Lease, phase: &str) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE jobs SET phase = $1, updated_at = factory_now_ms() \
             WHERE id = $2 AND state = 'running' AND lease_token = $3",
        )
        .bind(phase)
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
        let n = sqlx::query(
            "UPDATE jobs SET state = $1, result = $2, error = $3, finished_at = factory_now_ms(), \
             updated_at = factory_now_ms(), lease_token = NULL, lease_until = NULL \
             WHERE id = $4 AND state = 'running' AND lease_token = $5",
        )
        .bind(state.as_str())
        .bind(result.map(serde_json::to_string).transpose()?)
        .bind(error)
        .bind(lease.job.0)
        .bind(&lease.token)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn release(&self, lease: &Lease) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = GREATEST(attempts - 1, 0), lease_owner = NULL, \
             lease_token = NULL, lease_until = NULL, updated_at = factory_now_ms() \
             WHERE id = $1 AND state = 'running' AND lease_token = $2",
        )
        .bind(lease.job.0)
        .bind(&lease.token)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn get_job(&self, id: JobId) -> Result<Option<Job>> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1")))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let mut q = QueryBuilder::<Postgres>::new(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE 1 = 1"));
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

async fn ledger_count(conn: &mut PgConnection, query: &LedgerQuery) -> Result<u32> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM ledger WHERE repository = $1 AND kind = $2 \
         AND ($3::TEXT IS NULL OR subject = $3) AND ($4::BIGINT IS NULL OR created_at >= $4)",
    )
    .bind(&query.repository)
    .bind(&query.kind)
    .bind(query.subject.as_deref())
    .bind(query.since.map(|t| t.timestamp_millis()))
    .fetch_one(&mut *conn)
    .await?;
    Ok(u32::try_from(count).unwrap_or(u32::MAX))
}

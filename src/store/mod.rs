//! Durable state of the GitHub App: webhook deliveries (for dedupe), the events they carried,
//! and the job queue the worker pool drains.
//!
//! [`Store`] is the only thing the server and the worker see. It speaks in domain terms (enqueue,
//! claim, heartbeat, finish) rather than SQL; all SQL stays inside the backend modules:
//! [`sqlite::SqliteStore`] for one process, [`postgres::PostgresStore`] for several `serve`
//! replicas sharing one database. [`open`] picks one by the URL's scheme.
//!
//! ## Job state machine
//!
//! ```text
//!            enqueue                claim                finish
//!   (new) ───────────▶ queued ─────────────▶ running ─────────────▶ succeeded | failed
//!                        │  ▲                  │  │
//!                        │  └──── release ─────┘  └─ lease expired: claimable again (crash recovery),
//!                        │     (graceful stop)        or failed once attempts reach the limit
//!                        └───────────┬────────────────┘
//!                 a newer job for the same issue arrives
//!                                    ▼
//!                        superseded  (cancelled by an authorised `cancel` job)
//! ```
//!
//! Every write made on behalf of a running job (heartbeat, phase, finish, release) carries the
//! [`Lease`] it was claimed with and is refused once that lease is gone, so a worker that lost its
//! job (superseded, or its lease expired and another worker took over) cannot overwrite the outcome.

pub mod postgres;
pub mod sqlite;
mod sqlite_intake;

use anyhow::Result;
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Primary key of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Primary key of a persisted webhook event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub i64);

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a job asks the pipeline to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Build a connector for a new request.
    Generate,
    /// Build it again (same branch, same PR), with the commenter's guidance.
    Retry,
    /// CI finished on a connector PR: read the report, comment, maybe fix.
    CiFinished,
    /// Stop whatever runs for this issue and say so.
    Cancel,
    /// Reply with the current state of the issue's jobs; never disturbs them.
    Status,
}

impl JobKind {
    pub const ALL: [JobKind; 5] =
        [JobKind::Generate, JobKind::Retry, JobKind::CiFinished, JobKind::Cancel, JobKind::Status];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Generate => "generate",
            JobKind::Retry => "retry",
            JobKind::CiFinished => "ci_finished",
            JobKind::Cancel => "cancel",
            JobKind::Status => "status",
        }
    }

    /// Kinds of active jobs on the same issue that a new job of this kind replaces.
    ///
    /// A fresh generation makes any pending CI analysis stale, but a CI result must not stop a
    /// generation that will push new commits anyway; a status question disturbs nothing.
    pub fn supersedes(self) -> &'static [JobKind] {
        match self {
            JobKind::Generate | JobKind::Retry => {
                &[JobKind::Generate, JobKind::Retry, JobKind::CiFinished, JobKind::Cancel]
            }
            JobKind::CiFinished => &[JobKind::CiFinished],
            // A cancel stops nothing by being queued: anyone can comment `/factory cancel`, so its
            // handler checks write access first and then calls `Store::cancel_active`.
            JobKind::Cancel | JobKind::Status => &[],
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobKind {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        JobKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| anyhow::anyhow!("unknown job kind '{s}'"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Superseded,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
        JobState::Superseded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Superseded => "superseded",
        }
    }

    /// Queued or running: the job may still do work.
    pub fn is_active(self) -> bool {
        matches!(self, JobState::Queued | JobState::Running)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        JobState::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| anyhow::anyhow!("unknown job state '{s}'"))
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub id: JobId,
    pub kind: JobKind,
    /// `owner/name`.
    pub repository: String,
    pub installation_id: Option<i64>,
    /// Issue or pull-request number the job works for; jobs sharing one supersede each other.
    pub issue_number: Option<i64>,
    /// The webhook event that caused the job, if any.
    pub event_id: Option<EventId>,
    /// What the job needs: the request, the guidance, the comment that asked.
    pub payload: Value,
    pub state: JobState,
    /// Free text naming the step the pipeline is in, for status replies and timeout errors.
    pub phase: Option<String>,
    /// How many times the job was claimed.
    pub attempts: u32,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    pub superseded_by: Option<JobId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub result: Option<Value>,
    pub error: Option<String>,
}

/// A job to add to the queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewJob {
    pub kind: JobKind,
    pub repository: String,
    pub installation_id: Option<i64>,
    pub issue_number: Option<i64>,
    pub payload: Value,
    /// Skip the job when the issue already has a job of this kind in any state. GitHub sends
    /// both `opened` and `labeled` for an issue created from the form; only the first counts.
    pub only_if_first: bool,
}

impl NewJob {
    pub fn new(kind: JobKind, repository: impl Into<String>, issue_number: Option<i64>, payload: Value) -> Self {
        NewJob {
            kind,
            repository: repository.into(),
            installation_id: None,
            issue_number,
            payload,
            only_if_first: false,
        }
    }

    pub fn installation(mut self, id: Option<i64>) -> Self {
        self.installation_id = id;
        self
    }

    pub fn only_if_first(mut self) -> Self {
        self.only_if_first = true;
        self
    }
}

/// A job this enqueue replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replaced {
    pub id: JobId,
    pub kind: JobKind,
    /// It was running, so its worker must be told to stop.
    pub was_running: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Enqueued {
    Created {
        id: JobId,
        replaced: Vec<Replaced>,
    },
    /// `only_if_first` and the issue already had a job of this kind.
    Skipped {
        existing: JobId,
    },
}

impl Enqueued {
    pub fn job_id(&self) -> JobId {
        match self {
            Enqueued::Created { id, .. } => *id,
            Enqueued::Skipped { existing } => *existing,
        }
    }
}

/// Proof of a claim: whoever holds it may write to the running job.
#[derive(Clone, PartialEq, Eq)]
pub struct Lease {
    pub job: JobId,
    pub owner: String,
    pub token: String,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease").field("job", &self.job).field("owner", &self.owner).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct Claimed {
    pub job: Job,
    pub lease: Lease,
}

/// How a running job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    Succeeded { result: Value },
    Failed { error: String, result: Option<Value> },
}

#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub states: Vec<JobState>,
    pub kinds: Vec<JobKind>,
    pub repository: Option<String>,
    pub issue_number: Option<i64>,
    /// At most this many, newest first; `None` means 100.
    pub limit: Option<u32>,
    /// Only jobs older than this one (the next page of a listing).
    pub before: Option<JobId>,
}

/// A webhook delivery, verified and about to be persisted.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub delivery_id: String,
    pub event: String,
    pub action: Option<String>,
    pub installation_id: Option<i64>,
    pub repository: Option<String>,
    /// The request body as received (already checked to be JSON).
    pub payload: String,
    pub received_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intake {
    Recorded(EventId),
    /// This delivery id was seen before; nothing new was stored.
    Duplicate,
}

#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: EventId,
    pub delivery_id: String,
    pub event: String,
    pub action: Option<String>,
    pub installation_id: Option<i64>,
    pub repository: Option<String>,
    pub payload: String,
    pub received_at: DateTime<Utc>,
    pub route: Option<Value>,
}

/// Delivery bookkeeping, for dashboards and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub delivery_id: String,
    pub event: String,
    pub redeliveries: u32,
}

/// Which ledger entries to count: one kind of action in one repository, for one subject or all,
/// since an instant or ever.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerQuery {
    pub repository: String,
    /// e.g. `fix_attempt`, `improvement`.
    pub kind: String,
    /// e.g. `pr:12`; `None` counts every subject.
    pub subject: Option<String>,
    pub since: Option<DateTime<Utc>>,
}

/// One counted action.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerEntry {
    pub subject: String,
    /// The same key again is the same action: it is not counted twice.
    pub key: String,
    pub note: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "count", rename_all = "snake_case")]
pub enum LedgerTake {
    /// Recorded; the count now, this entry included.
    Taken(u32),
    /// An entry with this key exists already; the count, unchanged.
    AlreadyTaken(u32),
    /// The limit was reached; nothing was recorded.
    LimitReached(u32),
}

/// Records a batch of deliveries on the calling thread, with the semantics of
/// [`Store::record_events`]; see [`Store::intake_batch_writer`].
pub type BatchWriter = Box<dyn FnMut(&[NewEvent]) -> Result<Vec<Intake>> + Send>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap round trip, for health checks.
    async fn ping(&self) -> Result<()>;

    /// Records the delivery id and the event in one transaction, or reports a duplicate.
    async fn record_event(&self, event: &NewEvent) -> Result<Intake>;

    /// [`Store::record_event`] for many deliveries in one transaction (group commit): one answer
    /// per event, in order. A delivery id seen before, or earlier in the same slice, is a
    /// [`Intake::Duplicate`] and counts as a redelivery. The SQLite store writes the whole slice in
    /// one transaction, so an error means none of it was stored; this default records the events
    /// one by one, so after an error the earlier ones may be stored (a redelivery of those is then
    /// answered as a duplicate).
    async fn record_events(&self, events: &[NewEvent]) -> Result<Vec<Intake>> {
        let mut out = Vec::with_capacity(events.len());
        for event in events {
            out.push(self.record_event(event).await?);
        }
        Ok(out)
    }

    /// A [`BatchWriter`] on a connection of its own, for a store that records deliveries
    /// faster from a dedicated thread than through its async API (SQLite on a file: one hand-off
    /// per batch instead of one per statement). The intake then runs its group commit on that
    /// thread. `None` (the default): the intake calls [`Store::record_events`].
    fn intake_batch_writer(&self) -> Result<Option<BatchWriter>> {
        Ok(None)
    }

    async fn delivery(&self, delivery_id: &str) -> Result<Option<DeliveryRecord>>;

    async fn get_event(&self, id: EventId) -> Result<Option<StoredEvent>>;

    /// Events not yet turned into jobs, oldest first.
    async fn unrouted_events(&self, limit: u32) -> Result<Vec<StoredEvent>>;

    /// Enqueues the jobs an event leads to and marks it routed, atomically: a crash between the
    /// two cannot enqueue twice or lose the event.
    async fn route_event(&self, id: EventId, route: &Value, jobs: &[NewJob]) -> Result<Vec<Enqueued>>;

    /// [`Store::route_event`] for several events, in order; the SQLite store does them in one
    /// transaction (all or nothing), this default one by one.
    async fn route_events(&self, routes: &[(EventId, Value, Vec<NewJob>)]) -> Result<Vec<Vec<Enqueued>>> {
        let mut out = Vec::with_capacity(routes.len());
        for (id, route, jobs) in routes {
            out.push(self.route_event(*id, route, jobs).await?);
        }
        Ok(out)
    }

    /// Adds a job; an exclusive kind replaces the issue's active jobs (see [`JobKind::supersedes`]).
    async fn enqueue(&self, job: &NewJob) -> Result<Enqueued>;

    /// Takes the oldest claimable job: queued, or running with an expired lease (its worker died).
    async fn claim(&self, owner: &str, lease: Duration) -> Result<Option<Claimed>>;

    /// Extends the lease. `false` means the job is no longer ours (superseded, cancelled, or
    /// taken over after expiry) and the worker should stop.
    async fn heartbeat(&self, lease: &Lease, extend: Duration) -> Result<bool>;

    async fn set_phase(&self, lease: &Lease, phase: &str) -> Result<bool>;

    /// Records the outcome; `false` when the lease is gone and nothing was written.
    async fn finish(&self, lease: &Lease, outcome: &Finish) -> Result<bool>;

    /// Puts a running job back in the queue (graceful shutdown), not counting the attempt.
    async fn release(&self, lease: &Lease) -> Result<bool>;

    async fn get_job(&self, id: JobId) -> Result<Option<Job>>;

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>>;

    /// Marks the queued and running generate / retry / ci_finished jobs of one issue as
    /// cancelled by job `by` (an authorised cancel). Running ones stop at their next heartbeat.
    async fn cancel_active(&self, repository: &str, issue_number: i64, by: JobId) -> Result<Vec<Replaced>>;

    /// How many jobs are in each state (states without jobs left out). The default reads every
    /// job; backends answer it with one aggregate query.
    async fn job_counts(&self) -> Result<Vec<(JobState, u64)>> {
        let jobs = self.list_jobs(&JobFilter { limit: Some(u32::MAX), ..JobFilter::default() }).await?;
        Ok(JobState::ALL
            .into_iter()
            .map(|s| (s, jobs.iter().filter(|j| j.state == s).count() as u64))
            .filter(|(_, n)| *n > 0)
            .collect())
    }

    /// How many entries match.
    async fn ledger_count(&self, query: &LedgerQuery) -> Result<u32>;

    /// Records `entry` unless `limit` entries already match `query` (checked and written in one
    /// transaction, so two workers cannot both take the last one). An entry whose key exists is
    /// reported as [`LedgerTake::AlreadyTaken`] whatever the limit.
    async fn ledger_take(&self, query: &LedgerQuery, limit: u32, entry: &LedgerEntry) -> Result<LedgerTake>;
}

pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

pub(crate) fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// Opens the store a database URL names: `sqlite://…` or `postgres://…` (`postgresql://…`).
pub async fn open(database_url: &str) -> Result<std::sync::Arc<dyn Store>> {
    match Backend::of(database_url) {
        Some(Backend::Sqlite) => Ok(std::sync::Arc::new(SqliteStore::connect(database_url).await?)),
        Some(Backend::Postgres) => Ok(std::sync::Arc::new(PostgresStore::connect(database_url).await?)),
        None => {
            // Only the scheme is echoed: other URLs may carry a password.
            let scheme = database_url.split(':').next().unwrap_or_default();
            anyhow::bail!(
                "unsupported database URL scheme '{scheme}:': expected sqlite://, postgres:// or postgresql://"
            )
        }
    }
}

/// The store implementations [`open`] knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Which backend a database URL names, by its scheme; `None` for any other URL.
    pub fn of(database_url: &str) -> Option<Backend> {
        if database_url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

/// `url` with its password (in the user part, or a `password=` parameter) replaced by `***`, for
/// error messages and logs. A URL that does not parse shows its scheme only: where its password
/// would be is unknown.
pub fn redact_database_url(url: &str) -> String {
    let scheme = url.split(':').next().unwrap_or_default();
    let Ok(mut parsed) = url::Url::parse(url) else {
        return format!("{scheme}:(an unparseable URL, not shown)");
    };
    if parsed.password().is_some() && parsed.set_password(Some("***")).is_err() {
        return format!("{scheme}:(not shown)");
    }
    if parsed.query_pairs().any(|(k, _)| k.eq_ignore_ascii_case("password")) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if k.eq_ignore_ascii_case("password") { "***".to_string() } else { v.into_owned() };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_lose_their_passwords() {
        assert_eq!(redact_database_url("postgres://app:s3cret@db:5432/factory"), "postgres://app:***@db:5432/factory");
        assert_eq!(redact_database_url("postgresql://app:p@ss@db/f?sslmode=require"), "postgresql://app:***@db/f?sslmode=require");
        assert_eq!(
            redact_database_url("postgres://db/f?user=app&password=s3cret&sslmode=require"),
            "postgres://db/f?user=app&password=***&sslmode=require"
        );
        assert_eq!(redact_database_url("postgres://app@db/f"), "postgres://app@db/f");
        // A password with an unencoded '/' makes the URL unparseable: none of it is shown.
        assert_eq!(redact_database_url("postgres://app:pa/ss@db/f"), "postgres:(an unparseable URL, not shown)");
        assert_eq!(redact_database_url("sqlite://.factory/factory.db"), "sqlite://.factory/factory.db");
    }

    #[test]
    fn backends_by_scheme() {
        assert_eq!(Backend::of("sqlite://x.db"), Some(Backend::Sqlite));
        assert_eq!(Backend::of("sqlite::memory:"), Some(Backend::Sqlite));
        assert_eq!(Backend::of("postgres://h/db"), Some(Backend::Postgres));
        assert_eq!(Backend::of("postgresql://h/db"), Some(Backend::Postgres));
        assert_eq!(Backend::of("mysql://h/db"), None);
    }
}

//! The worker pool: crash recovery, timeouts, cancellation by supersession, the concurrency
//! bound, graceful shutdown.

use anyhow::Result;
use async_trait::async_trait;
use connector_factory::store::{Job, JobId, JobKind, JobState, NewJob, SqliteStore, Store};
use connector_factory::worker::{
    JobContext, JobHandler, JobOutcome, JobQueue, PIPELINE_NOT_YET_AVAILABLE, PlaceholderPipelineHandler, PoolConfig,
    WorkerPool,
};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn config(concurrency: usize) -> PoolConfig {
    PoolConfig {
        concurrency,
        job_timeout: Duration::from_secs(20),
        lease: Duration::from_millis(400),
        heartbeat_every: Duration::from_millis(100),
        poll_every: Duration::from_millis(50),
        cancel_grace: Duration::from_millis(200),
        owner: "test".into(),
    }
}

async fn open(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    Arc::new(SqliteStore::connect(&format!("sqlite://{}", dir.path().join("f.db").display())).await.unwrap())
}

fn job(kind: JobKind, issue: i64) -> NewJob {
    NewJob::new(kind, "acme/connectors", Some(issue), json!({}))
}

async fn wait_for(store: &Arc<dyn Store>, id: JobId, what: &str, ok: impl Fn(&Job) -> bool) -> Job {
    let start = Instant::now();
    loop {
        let job = store.get_job(id).await.unwrap().unwrap();
        if ok(&job) {
            return job;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting for job {id} to be {what}: {job:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Hangs on the first attempt (until the test "crashes" the pool), finishes on later ones.
#[derive(Default)]
struct HangsOnce {
    calls: AtomicUsize,
    completions: AtomicUsize,
}

#[async_trait]
impl JobHandler for HangsOnce {
    async fn handle(&self, job: Job, ctx: JobContext) -> Result<JobOutcome> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        ctx.phase(&format!("attempt {}", job.attempts)).await?;
        if job.attempts == 1 {
            std::future::pending::<()>().await;
        }
        self.completions.fetch_add(1, Ordering::SeqCst);
        Ok(JobOutcome::Succeeded(json!({ "attempt": job.attempts })))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_interrupted_by_a_crash_is_resumed_and_finished_once() {
    let dir = tempfile::tempdir().unwrap();
    let handler = Arc::new(HangsOnce::default());
    let id = {
        let store = open(&dir).await;
        let pool = WorkerPool::start(JobQueue::new(store.clone()), handler.clone(), config(2));
        let id = pool.queue().enqueue(&job(JobKind::Generate, 1)).await.unwrap().job_id();
        wait_for(&store, id, "running attempt 1", |j| j.phase.as_deref() == Some("attempt 1")).await;
        // The crash: tasks vanish mid-job, nothing is written on the way out.
        drop(pool);
        id
    };
    let store = open(&dir).await; // a new process on the same database file
    let left = store.get_job(id).await.unwrap().unwrap();
    assert_eq!(left.state, JobState::Running, "a crash leaves the job running");

    let pool = WorkerPool::start(JobQueue::new(store.clone()), handler.clone(), config(2));
    let done = wait_for(&store, id, "succeeded", |j| j.state == JobState::Succeeded).await;
    assert_eq!(done.attempts, 2);
    assert_eq!(done.result, Some(json!({ "attempt": 2 })));
    // Nothing runs it a third time.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(handler.calls.load(Ordering::SeqCst), 2);
    assert_eq!(handler.completions.load(Ordering::SeqCst), 1);
    assert_eq!(store.get_job(id).await.unwrap().unwrap().state, JobState::Succeeded);
    pool.shutdown().await;
}

struct Sleeps(Duration);

#[async_trait]
impl JobHandler for Sleeps {
    async fn handle(&self, _job: Job, ctx: JobContext) -> Result<JobOutcome> {
        ctx.phase("agent").await?;
        // Deliberately deaf to cancellation: the pool must stop it anyway.
        tokio::time::sleep(self.0).await;
        Ok(JobOutcome::Succeeded(json!(null)))
    }
}

#[tokio::test]
async fn a_timeout_fails_the_job_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let pool = WorkerPool::start(
        JobQueue::new(store.clone()),
        Arc::new(Sleeps(Duration::from_secs(30))),
        PoolConfig { job_timeout: Duration::from_millis(300), ..config(1) },
    );
    let id = pool.queue().enqueue(&job(JobKind::Generate, 1)).await.unwrap().job_id();
    let failed = wait_for(&store, id, "failed", |j| j.state == JobState::Failed).await;
    assert_eq!(failed.error.as_deref(), Some("timed out after 300ms in phase 'agent'"));
    pool.shutdown().await;
}

/// Waits for cancellation on `generate`; everything else succeeds at once.
#[derive(Default)]
struct WaitsForCancel {
    saw_cancel: AtomicUsize,
}

#[async_trait]
impl JobHandler for WaitsForCancel {
    async fn handle(&self, job: Job, ctx: JobContext) -> Result<JobOutcome> {
        if job.kind == JobKind::Generate {
            ctx.phase("generating").await?;
            ctx.cancelled().cancelled().await;
            self.saw_cancel.fetch_add(1, Ordering::SeqCst);
            // What a handler returns after cancellation is not recorded.
            return Ok(JobOutcome::Succeeded(json!("too late")));
        }
        Ok(JobOutcome::Succeeded(json!({ "kind": job.kind })))
    }
}

#[tokio::test]
async fn superseding_a_running_job_cancels_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let handler = Arc::new(WaitsForCancel::default());
    // Long heartbeat interval: the stop must come from the queue, not from a heartbeat.
    let pool = WorkerPool::start(
        JobQueue::new(store.clone()),
        handler.clone(),
        PoolConfig { heartbeat_every: Duration::from_secs(60), lease: Duration::from_secs(120), ..config(2) },
    );
    let first = pool.queue().enqueue(&job(JobKind::Generate, 1)).await.unwrap().job_id();
    wait_for(&store, first, "generating", |j| j.phase.as_deref() == Some("generating")).await;
    let started = Instant::now();
    let retry = pool.queue().enqueue(&job(JobKind::Retry, 1)).await.unwrap().job_id();

    let old = wait_for(&store, first, "superseded", |j| j.state == JobState::Superseded).await;
    assert_eq!(old.superseded_by, Some(retry));
    assert_eq!(old.result, None);
    wait_for(&store, retry, "succeeded", |j| j.state == JobState::Succeeded).await;
    let waited = Instant::now();
    while handler.saw_cancel.load(Ordering::SeqCst) == 0 {
        assert!(waited.elapsed() < Duration::from_secs(5), "the handler never saw the cancellation");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(store.get_job(first).await.unwrap().unwrap().state, JobState::Superseded);
    pool.shutdown().await;
}

#[tokio::test]
async fn a_job_superseded_by_another_process_stops_at_the_next_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let handler = Arc::new(WaitsForCancel::default());
    let pool =
        WorkerPool::start(JobQueue::new(store.clone()), handler.clone(), PoolConfig { concurrency: 1, ..config(1) });
    let first = pool.queue().enqueue(&job(JobKind::Generate, 1)).await.unwrap().job_id();
    wait_for(&store, first, "generating", |j| j.phase.as_deref() == Some("generating")).await;
    // Another replica's queue knows nothing of this pool's running jobs.
    let elsewhere = JobQueue::new(open(&dir).await);
    let cancel = elsewhere.enqueue(&job(JobKind::Cancel, 1)).await.unwrap().job_id();
    elsewhere.store().cancel_active("acme/connectors", 1, cancel).await.unwrap();
    let start = Instant::now();
    while handler.saw_cancel.load(Ordering::SeqCst) == 0 {
        assert!(start.elapsed() < Duration::from_secs(5), "the heartbeat never noticed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.get_job(first).await.unwrap().unwrap().state, JobState::Cancelled);
    pool.shutdown().await;
}

#[derive(Default)]
struct CountsConcurrency {
    active: AtomicUsize,
    max: AtomicUsize,
}

#[async_trait]
impl JobHandler for CountsConcurrency {
    async fn handle(&self, _job: Job, _ctx: JobContext) -> Result<JobOutcome> {
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(80)).await;
        self.active.fetch_sub(1, Ordering::SeqCst);
        Ok(JobOutcome::Succeeded(json!(null)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_more_than_concurrency_jobs_run_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let handler = Arc::new(CountsConcurrency::default());
    let pool = WorkerPool::start(JobQueue::new(store.clone()), handler.clone(), config(2));
    let mut ids = Vec::new();
    for issue in 0..6 {
        ids.push(pool.queue().enqueue(&job(JobKind::Generate, issue)).await.unwrap().job_id());
    }
    for id in ids {
        wait_for(&store, id, "succeeded", |j| j.state == JobState::Succeeded).await;
    }
    assert_eq!(handler.max.load(Ordering::SeqCst), 2);
    pool.shutdown().await;
}

struct Misbehaves;

#[async_trait]
impl JobHandler for Misbehaves {
    async fn handle(&self, job: Job, _ctx: JobContext) -> Result<JobOutcome> {
        match job.issue_number {
            Some(1) => anyhow::bail!("the OpenAPI description could not be fetched"),
            Some(2) => panic!("index out of bounds"),
            _ => Ok(JobOutcome::Failed {
                error: "request invalid".into(),
                result: Some(json!({"fields": ["API docs URL"]})),
            }),
        }
    }
}

#[tokio::test]
async fn errors_and_panics_fail_the_job_with_their_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let pool = WorkerPool::start(JobQueue::new(store.clone()), Arc::new(Misbehaves), config(2));
    let q = pool.queue();
    let err = q.enqueue(&job(JobKind::Generate, 1)).await.unwrap().job_id();
    let panic = q.enqueue(&job(JobKind::Generate, 2)).await.unwrap().job_id();
    let verdict = q.enqueue(&job(JobKind::Generate, 3)).await.unwrap().job_id();
    let e = wait_for(&store, err, "failed", |j| j.state == JobState::Failed).await;
    assert_eq!(e.error.as_deref(), Some("the OpenAPI description could not be fetched"));
    let p = wait_for(&store, panic, "failed", |j| j.state == JobState::Failed).await;
    assert_eq!(p.error.as_deref(), Some("the job handler panicked: index out of bounds"));
    let v = wait_for(&store, verdict, "failed", |j| j.state == JobState::Failed).await;
    assert_eq!(v.result, Some(json!({"fields": ["API docs URL"]})));
    pool.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_puts_running_jobs_back_in_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let pool = WorkerPool::start(JobQueue::new(store.clone()), Arc::new(Sleeps(Duration::from_secs(30))), config(1));
    let id = pool.queue().enqueue(&job(JobKind::Generate, 1)).await.unwrap().job_id();
    wait_for(&store, id, "running", |j| j.state == JobState::Running).await;
    pool.shutdown().await;
    let j = store.get_job(id).await.unwrap().unwrap();
    assert_eq!((j.state, j.attempts, j.lease_until), (JobState::Queued, 0, None));
}

#[tokio::test]
async fn the_placeholder_handler_fails_jobs_explicitly() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let pool = WorkerPool::start(JobQueue::new(store.clone()), Arc::new(PlaceholderPipelineHandler), config(1));
    let id = pool.queue().enqueue(&job(JobKind::Generate, 4)).await.unwrap().job_id();
    let j = wait_for(&store, id, "failed", |j| j.state == JobState::Failed).await;
    assert_eq!(j.error.as_deref(), Some(PIPELINE_NOT_YET_AVAILABLE));
    assert_eq!(j.result.unwrap()["placeholder"], json!(true));
    pool.shutdown().await;
}

/// Logs from inside a handler.
struct Chatty;

#[async_trait]
impl JobHandler for Chatty {
    async fn handle(&self, _job: Job, _ctx: JobContext) -> Result<JobOutcome> {
        tracing::info!("inside the handler");
        Ok(JobOutcome::Succeeded(json!({})))
    }
}

#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// JSON logs: every line a job or its handler writes carries the job id, the issue and the
/// delivery that caused it; the job's duration reaches the metrics.
#[tokio::test]
async fn every_log_line_of_a_job_names_the_job_issue_and_delivery() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // Other tests' threads reach the worker's call sites too, and tracing caches "nobody listens"
    // for a call site first reached where no subscriber is set, unless a second subscriber is
    // alive (then it asks every live one). Keep one alive and recompute what is cached already.
    let _second = tracing::Dispatch::new(tracing_subscriber::registry());
    tracing::callsite::rebuild_interest_cache();
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let pool = WorkerPool::start(JobQueue::new(store.clone()), Arc::new(Chatty), config(1));
    let new = NewJob::new(JobKind::Status, "acme/connectors", Some(42), json!({ "delivery": "d-777" }));
    let id = pool.queue().enqueue(&new).await.unwrap().job_id();
    wait_for(&store, id, "finished", |j| j.state == JobState::Succeeded).await;
    pool.shutdown().await;

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let of_job: Vec<&serde_json::Value> = lines.iter().filter(|l| l["span"]["name"] == "job").collect();
    let messages: Vec<&str> = of_job.iter().filter_map(|l| l["fields"]["message"].as_str()).collect();
    assert!(messages.contains(&"inside the handler") && messages.contains(&"job succeeded"), "{text}");
    for l in &of_job {
        assert_eq!(l["span"]["job"], id.0.to_string(), "{l}");
        assert_eq!(l["span"]["issue"], 42, "{l}");
        assert_eq!(l["span"]["delivery"], "d-777", "{l}");
    }
    let metrics = connector_factory::metrics::global().render(&[], None);
    assert!(metrics.contains("factory_job_duration_seconds_count{kind=\"status\",outcome=\"succeeded\"}"), "{metrics}");
}

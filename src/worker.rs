//! The worker pool: a fixed number of workers claim jobs from the [`Store`] and run them through a
//! [`JobHandler`], each under a timeout, a lease kept alive by heartbeats, and a cancellation token.
//!
//! Crash recovery needs no special start-up step: a job whose worker died keeps its `running`
//! state until its lease runs out, and from then on `claim` hands it to the next free worker, in
//! this process or another one. Dropping a [`WorkerPool`] without [`WorkerPool::shutdown`] aborts
//! its tasks and leaves their jobs exactly as a crash would; a graceful shutdown puts them back in
//! the queue instead.

use crate::store::{Claimed, Enqueued, EventId, Finish, Job, JobFilter, JobId, JobState, Lease, NewJob, Store};
use anyhow::Result;
use async_trait::async_trait;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

/// How a handler says a job ended. An `Err` from the handler counts as `Failed` with its message.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    Succeeded(Value),
    /// The job ran to a verdict that is a failure (say, an invalid request), with its details.
    Failed {
        error: String,
        result: Option<Value>,
    },
}

/// What a job runs. Implementations should check [`JobContext::cancelled`] between slow steps;
/// a handler that ignores it is stopped anyway once the grace period is over.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    async fn handle(&self, job: Job, ctx: JobContext) -> Result<JobOutcome>;
}

/// Given to a handler with its job.
#[derive(Clone)]
pub struct JobContext {
    store: Arc<dyn Store>,
    lease: Lease,
    cancel: CancellationToken,
    phase: Arc<Mutex<Option<String>>>,
}

impl JobContext {
    pub fn job_id(&self) -> JobId {
        self.lease.job
    }

    /// Cancelled when the job is superseded, cancelled, timed out, loses its lease, or the pool
    /// shuts down.
    pub fn cancelled(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Names the step the job is in; shown by status replies and in timeout errors.
    /// `Ok(false)` means the job is no longer ours (superseded or cancelled in the store): its
    /// token is cancelled at once rather than at the next heartbeat.
    pub async fn phase(&self, phase: &str) -> Result<bool> {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = Some(phase.to_string());
        let ours = self.store.set_phase(&self.lease, phase).await?;
        if !ours {
            self.cancel.cancel();
        }
        Ok(ours)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}

#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Jobs run at once.
    pub concurrency: usize,
    pub job_timeout: Duration,
    /// How long a claim stays valid without a heartbeat; also how long a crashed worker's job
    /// waits before another worker resumes it.
    pub lease: Duration,
    pub heartbeat_every: Duration,
    /// An idle worker looks for work this often even when nobody wakes it (jobs enqueued by
    /// another process, leases that expired).
    pub poll_every: Duration,
    /// How long a cancelled handler may take to wind down before it is aborted.
    pub cancel_grace: Duration,
    /// Names this process in `lease_owner`.
    pub owner: String,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            concurrency: 2,
            job_timeout: Duration::from_secs(30 * 60),
            lease: Duration::from_secs(30),
            heartbeat_every: Duration::from_secs(10),
            poll_every: Duration::from_secs(2),
            cancel_grace: Duration::from_secs(5),
            owner: format!("{}-{}", std::env::var("HOSTNAME").unwrap_or_else(|_| "factory".into()), std::process::id()),
        }
    }
}

/// Cancellation tokens of the jobs running in this process.
#[derive(Clone, Default)]
struct Running(Arc<Mutex<HashMap<JobId, CancellationToken>>>);

impl Running {
    fn insert(&self, id: JobId, token: CancellationToken) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(id, token);
    }
    fn remove(&self, id: JobId) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }
    fn cancel(&self, id: JobId) -> bool {
        match self.0.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }
}

/// The way into the queue: enqueues through the store, stops local workers whose jobs were just
/// replaced, and wakes idle workers. Workers in other processes notice a replaced job at their
/// next heartbeat.
#[derive(Clone)]
pub struct JobQueue {
    store: Arc<dyn Store>,
    running: Running,
    wake: Arc<Notify>,
}

impl JobQueue {
    pub fn new(store: Arc<dyn Store>) -> Self {
        JobQueue { store, running: Running::default(), wake: Arc::new(Notify::new()) }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub async fn enqueue(&self, job: &NewJob) -> Result<Enqueued> {
        let out = self.store.enqueue(job).await?;
        self.after(std::slice::from_ref(&out));
        Ok(out)
    }

    /// See [`Store::route_event`].
    pub async fn route_event(&self, event: EventId, route: &Value, jobs: &[NewJob]) -> Result<Vec<Enqueued>> {
        let out = self.store.route_event(event, route, jobs).await?;
        self.after(&out);
        Ok(out)
    }

    /// See [`Store::route_events`].
    pub async fn route_events(&self, routes: &[(EventId, Value, Vec<NewJob>)]) -> Result<Vec<Vec<Enqueued>>> {
        let out = self.store.route_events(routes).await?;
        for enqueued in &out {
            self.after(enqueued);
        }
        Ok(out)
    }

    fn after(&self, enqueued: &[Enqueued]) {
        for e in enqueued {
            if let Enqueued::Created { id, replaced } = e {
                for old in replaced.iter().filter(|r| r.was_running) {
                    if self.running.cancel(old.id) {
                        tracing::info!(job = %old.id, by = %id, "stopping a running job that was replaced");
                    }
                }
                self.wake.notify_one();
            }
        }
    }
}

/// Aborts a spawned task when dropped, so an aborted worker takes its handler down with it.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub struct WorkerPool {
    queue: JobQueue,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

impl WorkerPool {
    /// Starts `config.concurrency` workers. Must be called inside a Tokio runtime.
    pub fn start(queue: JobQueue, handler: Arc<dyn JobHandler>, config: PoolConfig) -> Self {
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let config = Arc::new(config);
        for n in 0..config.concurrency.max(1) {
            let worker = Worker {
                owner: format!("{}/w{n}", config.owner),
                queue: queue.clone(),
                handler: handler.clone(),
                config: config.clone(),
                shutdown: shutdown.clone(),
            };
            tasks.spawn(worker.run());
        }
        let store = queue.store.clone();
        tasks.spawn(async move {
            // Only informative: the workers pick these up through `claim` once their leases end.
            let filter = JobFilter { states: vec![JobState::Running], ..Default::default() };
            if let Ok(left) = store.list_jobs(&filter).await {
                let now = chrono::Utc::now();
                let orphaned = left.iter().filter(|j| j.lease_until.is_none_or(|t| t < now)).count();
                if orphaned > 0 {
                    tracing::info!(orphaned, "resuming jobs left running by a stopped process");
                }
            }
        });
        WorkerPool { queue, shutdown, tasks }
    }

    pub fn queue(&self) -> &JobQueue {
        &self.queue
    }

    /// Stops claiming, cancels running jobs and puts them back in the queue, then waits for the
    /// workers to exit.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

struct Worker {
    owner: String,
    queue: JobQueue,
    handler: Arc<dyn JobHandler>,
    config: Arc<PoolConfig>,
    shutdown: CancellationToken,
}

/// Why the wait for a handler ended.
enum End {
    Done(std::result::Result<Result<JobOutcome>, tokio::task::JoinError>),
    TimedOut,
    Cancelled,
    LeaseLost,
    Shutdown,
}

impl Worker {
    async fn run(self) {
        let store = self.queue.store.clone();
        let mut backoff = Duration::from_millis(100);
        while !self.shutdown.is_cancelled() {
            match store.claim(&self.owner, self.config.lease).await {
                Ok(Some(claimed)) => {
                    backoff = Duration::from_millis(100);
                    // Every log line of the job (its handler's too) carries these fields.
                    let j = &claimed.job;
                    let span = tracing::info_span!(
                        "job",
                        job = %j.id,
                        kind = %j.kind,
                        repository = %j.repository,
                        issue = j.issue_number.unwrap_or(0),
                        delivery = j.payload.get("delivery").and_then(|d| d.as_str()).unwrap_or("")
                    );
                    self.run_job(claimed).instrument(span).await;
                }
                Ok(None) => {
                    tokio::select! {
                        _ = self.queue.wake.notified() => {}
                        _ = tokio::time::sleep(self.config.poll_every) => {}
                        _ = self.shutdown.cancelled() => {}
                    }
                }
                Err(err) => {
                    tracing::warn!(worker = %self.owner, "claiming a job failed: {err:#}");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.shutdown.cancelled() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    async fn run_job(&self, Claimed { job, lease }: Claimed) {
        let store = self.queue.store.clone();
        let id = job.id;
        let token = CancellationToken::new();
        self.queue.running.insert(id, token.clone());
        let phase = Arc::new(Mutex::new(job.phase.clone()));
        tracing::info!(job = %id, kind = %job.kind, repository = %job.repository, attempt = job.attempts, "job started");
        let ctx =
            JobContext { store: store.clone(), lease: lease.clone(), cancel: token.clone(), phase: phase.clone() };
        let handler = self.handler.clone();
        let kind = job.kind;
        let started = std::time::Instant::now();
        let mut task =
            AbortOnDrop(tokio::spawn(async move { handler.handle(job, ctx).await }.instrument(tracing::Span::current())));

        let deadline = tokio::time::sleep(self.config.job_timeout);
        tokio::pin!(deadline);
        let mut beat = tokio::time::interval(self.config.heartbeat_every);
        beat.tick().await; // the first tick is immediate; the claim just set the lease
        let mut lease_valid_until = tokio::time::Instant::now() + self.config.lease;
        let end = loop {
            tokio::select! {
                r = &mut task.0 => break End::Done(r),
                _ = &mut deadline => break End::TimedOut,
                _ = token.cancelled() => break End::Cancelled,
                _ = self.shutdown.cancelled() => break End::Shutdown,
                _ = beat.tick() => {
                    let asked = tokio::time::Instant::now();
                    match store.heartbeat(&lease, self.config.lease).await {
                        Ok(true) => lease_valid_until = asked + self.config.lease,
                        Ok(false) => break End::LeaseLost,
                        // Another worker may take the job once the lease has run out; two
                        // copies of one job must never run, so stop then.
                        Err(_) if tokio::time::Instant::now() >= lease_valid_until => break End::LeaseLost,
                        // Keep going: the next beat may get through before the lease runs out.
                        Err(err) => tracing::warn!(job = %id, "heartbeat failed: {err:#}"),
                    }
                }
            }
        };
        if !matches!(end, End::Done(_)) {
            token.cancel();
            // Let the handler clean up (kill child processes, remove its workspace); its result
            // no longer counts.
            let _ = tokio::time::timeout(self.config.cancel_grace, &mut task.0).await;
        }
        drop(task);
        self.queue.running.remove(id);

        let last_phase = phase.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let finish = match end {
            End::Done(Ok(Ok(JobOutcome::Succeeded(result)))) => Some(Finish::Succeeded { result }),
            End::Done(Ok(Ok(JobOutcome::Failed { error, result }))) => Some(Finish::Failed { error, result }),
            End::Done(Ok(Err(err))) => Some(Finish::Failed { error: format!("{err:#}"), result: None }),
            End::Done(Err(join)) => Some(Finish::Failed { error: describe_join_error(join), result: None }),
            End::TimedOut => Some(Finish::Failed {
                error: format!(
                    "timed out after {} in phase '{}'",
                    human_duration(self.config.job_timeout),
                    last_phase.as_deref().unwrap_or("none")
                ),
                result: None,
            }),
            // The store already says superseded or cancelled; this write is refused unless
            // something else cancelled the token, in which case the job did fail.
            End::Cancelled => Some(Finish::Failed { error: "cancelled".into(), result: None }),
            End::LeaseLost => None,
            End::Shutdown => {
                match store.release(&lease).await {
                    Ok(_) => tracing::info!(job = %id, "job put back in the queue for the next start"),
                    Err(err) => {
                        tracing::warn!(job = %id, "could not release job, it resumes when its lease ends: {err:#}")
                    }
                }
                None
            }
        };
        let outcome = match &finish {
            Some(Finish::Succeeded { .. }) => "succeeded",
            Some(Finish::Failed { .. }) => "failed",
            None => "stopped",
        };
        crate::metrics::global().job_finished(kind.as_str(), outcome, started.elapsed().as_secs_f64());
        if let Some(finish) = finish {
            match store.finish(&lease, &finish).await {
                Ok(true) => match &finish {
                    Finish::Succeeded { .. } => tracing::info!(job = %id, "job succeeded"),
                    Finish::Failed { error, .. } => tracing::warn!(job = %id, %error, "job failed"),
                },
                Ok(false) => tracing::info!(job = %id, "job ended after it was replaced; outcome not recorded"),
                Err(err) => tracing::error!(job = %id, "recording the job outcome failed: {err:#}"),
            }
        } else {
            tracing::info!(job = %id, "job stopped without an outcome");
        }
    }
}

fn describe_join_error(err: tokio::task::JoinError) -> String {
    if err.is_panic() {
        let panic = err.into_panic();
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        format!("the job handler panicked: {msg}")
    } else {
        "the job handler was aborted".into()
    }
}

fn human_duration(d: Duration) -> String {
    if d.as_secs() >= 1 && d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Stand-in until the pipeline exists: records that the job reached a worker and fails it with
/// an explicit message, so nothing pretends to have generated a connector.
pub struct PlaceholderPipelineHandler;

/// The error every job gets from [`PlaceholderPipelineHandler`].
pub const PIPELINE_NOT_YET_AVAILABLE: &str = "pipeline not yet available";

#[async_trait]
impl JobHandler for PlaceholderPipelineHandler {
    async fn handle(&self, job: Job, ctx: JobContext) -> Result<JobOutcome> {
        ctx.phase("placeholder").await?;
        Ok(JobOutcome::Failed {
            error: PIPELINE_NOT_YET_AVAILABLE.to_string(),
            result: Some(json!({
                "placeholder": true,
                "kind": job.kind,
                "repository": job.repository,
                "issue_number": job.issue_number,
            })),
        })
    }
}

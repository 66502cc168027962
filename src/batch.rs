//! `connector-factory batch`: many connector requests at once, on the local platform.
//!
//! Each request file becomes a `generate` job in a job store of the batch's own (SQLite by
//! default), and a worker pool of `--concurrency` workers runs them through the same pipeline as
//! `connector-factory run`: a workspace from the repository's default branch, the agent (LLM or
//! builtin generator), validation, spec tests, a bot commit on a local branch `connector/<slug>`,
//! and the pull request it would open written to `<out>/<request>/`. Nothing is pushed anywhere.
//!
//! Durable: the job store is the batch's memory. Running the same command again after an
//! interruption (Ctrl-C, a crash, a reboot) skips the requests that finished, resumes those that
//! were running (a graceful stop puts them back in the queue; after a crash their leases run
//! out), and starts the rest; `--retry-failed` runs the failed ones again. Every LLM session of
//! the process shares one rate limiter per endpoint (`FACTORY_LLM_REQUESTS_PER_MINUTE`,
//! `FACTORY_LLM_TOKENS_PER_MINUTE`), so parallel agents slow down instead of failing.

use crate::config::{Settings, Source};
use crate::pipeline::generate::{self, GenerateJob, Trigger};
use crate::pipeline::{Control, PipelineConfig};
use crate::platform::local::{LocalPlatform, REQUEST_ISSUE};
use crate::store::{Enqueued, Job, JobId, JobKind, JobState, NewJob, SqliteStore, Store};
use crate::worker::{JobContext, JobHandler, JobOutcome, JobQueue, PoolConfig, WorkerPool};
use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use serde::Serialize;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(clap::Args, Debug, Clone)]
pub struct BatchArgs {
    /// Request files (Markdown as the issue form renders it), or folders whose `*.md` files are
    /// requests.
    #[arg(long = "requests", value_name = "PATH", num_args = 1.., required = true)]
    pub requests: Vec<PathBuf>,
    /// The repository that plays GitHub (cloned at its default branch; branches are made there).
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub repo: PathBuf,
    /// Where each request's status comment, pull request and the summary go
    /// (default: <repo>/.factory/batch).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Requests built at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// The batch's job store (default: sqlite://<out>/batch.db); the same store resumes it.
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
    /// Run the requests whose last attempt failed again (finished ones are skipped otherwise).
    #[arg(long)]
    pub retry_failed: bool,
    /// The branch to start from (default: what origin/HEAD names, else the current branch).
    #[arg(long, value_name = "BRANCH")]
    pub base: Option<String>,
}

/// One request's line in the summary.
#[derive(Debug, Clone, Serialize)]
pub struct RequestSummary {
    pub request: String,
    pub job: i64,
    /// The pipeline's verdict (`pr_opened`, `invalid_request`, `failed`, ...) or the job state.
    pub outcome: String,
    pub ok: bool,
    pub duration_seconds: Option<f64>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cost_usd: Option<f64>,
    /// The branch and the pull request file it would open.
    pub pull_request: Option<String>,
    pub reason: Option<String>,
    /// Finished in an earlier run of the batch and not run again.
    pub resumed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct BatchSummary {
    pub requests: Vec<RequestSummary>,
    pub succeeded: usize,
    pub failed: usize,
    pub wall_seconds: f64,
}

/// Entry point of the subcommand: exit 0 when every request ended with a pull request.
pub fn run(args: BatchArgs) -> Result<u8> {
    crate::pipeline::run::init_cli_tracing();
    let settings = Settings::load(&Source::from_process(None));
    let config = PipelineConfig::from_settings(&settings);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let summary = runtime.block_on(async {
        let stop = CancellationToken::new();
        let on_ctrl_c = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\nstopping: running requests go back to the queue; run the same command to resume");
                on_ctrl_c.cancel();
            }
        });
        run_batch(&args, config, stop).await
    })?;
    print!("{}", summary_table(&summary));
    Ok(if summary.failed == 0 && summary.succeeded == summary.requests.len() { 0 } else { 1 })
}

/// The request files named by `paths`, sorted, each once.
pub fn request_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot read {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "md"))
                .collect();
            found.sort();
            out.extend(found);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            bail!("{} is neither a request file nor a folder", p.display());
        }
    }
    let mut canonical = Vec::new();
    for f in out {
        let c = f.canonicalize().with_context(|| format!("cannot resolve {}", f.display()))?;
        if !canonical.contains(&c) {
            canonical.push(c);
        }
    }
    if canonical.is_empty() {
        bail!("no request files found (give .md files or folders holding them)");
    }
    Ok(canonical)
}

/// A stable positive number per request file: the job store keys "one job per request" on it.
fn request_number(path: &Path) -> i64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(path.to_string_lossy().as_bytes());
    let mut n = [0u8; 8];
    n.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(n) >> 12) as i64 + 1
}

/// The folder a request's outputs go to: its file name, made unique by its number.
fn out_dir_for(out: &Path, request: &Path) -> PathBuf {
    let stem = request.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "request".into());
    out.join(format!("{stem}-{:x}", request_number(request) & 0xffff))
}

const REPOSITORY: &str = "local-batch";

/// Runs (or resumes) the batch until every request has finished or `stop` is cancelled.
pub async fn run_batch(args: &BatchArgs, config: PipelineConfig, stop: CancellationToken) -> Result<BatchSummary> {
    let started = Instant::now();
    let files = request_files(&args.requests)?;
    let repo = args.repo.canonicalize().with_context(|| format!("cannot resolve {}", args.repo.display()))?;
    let out = args.out.clone().unwrap_or_else(|| repo.join(".factory").join("batch"));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let out = out.canonicalize()?;
    let db = args.db.clone().unwrap_or_else(|| format!("sqlite://{}", out.join("batch.db").display()));
    let store: Arc<dyn Store> = Arc::new(SqliteStore::connect(&db).await?);

    // One job per request file; a finished one is kept unless --retry-failed and it failed.
    let mut ids: Vec<(PathBuf, JobId, bool)> = Vec::new();
    for f in &files {
        let number = request_number(f);
        let payload = json!({ "request_path": f, "out": out_dir_for(&out, f) });
        let mut job = NewJob::new(JobKind::Generate, REPOSITORY, Some(number), payload).only_if_first();
        let enqueued = store.enqueue(&job).await?;
        let (id, resumed) = match enqueued {
            Enqueued::Created { id, .. } => (id, false),
            Enqueued::Skipped { existing } => {
                let old = store.get_job(existing).await?.context("a job the store just named")?;
                if args.retry_failed && old.state == JobState::Failed {
                    job.only_if_first = false;
                    (store.enqueue(&job).await?.job_id(), false)
                } else {
                    (existing, !old.state.is_active())
                }
            }
        };
        ids.push((f.clone(), id, resumed));
    }

    let handler = Arc::new(BatchHandler { repo: repo.clone(), base: args.base.clone(), config });
    let queue = JobQueue::new(store.clone());
    let pool = WorkerPool::start(
        queue,
        handler,
        PoolConfig {
            concurrency: args.concurrency.max(1),
            lease: Duration::from_secs(20),
            heartbeat_every: Duration::from_secs(5),
            poll_every: Duration::from_millis(200),
            owner: format!("batch-{}", std::process::id()),
            ..PoolConfig::default()
        },
    );

    let live = std::io::stderr().is_terminal();
    let total = ids.len();
    let already = ids.iter().filter(|(_, _, resumed)| *resumed).count();
    let mut last_line = String::new();
    loop {
        let jobs = jobs_of(store.as_ref(), &ids).await?;
        let done = jobs.iter().filter(|j| !j.state.is_active()).count();
        let failed = jobs.iter().filter(|j| matches!(j.state, JobState::Failed)).count();
        let running = jobs.iter().filter(|j| j.state == JobState::Running).count();
        let line = progress_line(total, done, failed, running, done.saturating_sub(already), started.elapsed());
        if line != last_line {
            if live {
                eprint!("\r\x1b[2K{line}");
            } else {
                eprintln!("{line}");
            }
            last_line = line;
        }
        if done == total || stop.is_cancelled() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.cancelled() => {}
        }
    }
    if live {
        eprintln!();
    }
    // A graceful stop: running requests go back to the queue for the next run.
    pool.shutdown().await;

    let jobs = jobs_of(store.as_ref(), &ids).await?;
    let requests: Vec<RequestSummary> =
        ids.iter().zip(&jobs).map(|((file, _, resumed), job)| summarize(file, job, *resumed)).collect();
    let summary = BatchSummary {
        succeeded: requests.iter().filter(|r| r.ok).count(),
        failed: requests.iter().filter(|r| !r.ok && r.outcome != "queued" && r.outcome != "running").count(),
        requests,
        wall_seconds: started.elapsed().as_secs_f64(),
    };
    std::fs::write(out.join("summary.json"), serde_json::to_string_pretty(&summary)?)?;
    std::fs::write(out.join("summary.md"), summary_table(&summary))?;
    Ok(summary)
}

async fn jobs_of(store: &dyn Store, ids: &[(PathBuf, JobId, bool)]) -> Result<Vec<Job>> {
    let mut out = Vec::with_capacity(ids.len());
    for (_, id, _) in ids {
        out.push(store.get_job(*id).await?.context("a batch job disappeared from the store")?);
    }
    Ok(out)
}

/// `7/10 done (1 failed), 2 running, 1 queued · 3.2/min · ETA 1m04s`
pub fn progress_line(total: usize, done: usize, failed: usize, running: usize, done_now: usize, elapsed: Duration) -> String {
    let queued = total - done - running.min(total - done);
    let mut s = format!("batch: {done}/{total} done ({failed} failed), {running} running, {queued} queued");
    let minutes = elapsed.as_secs_f64() / 60.0;
    if done_now > 0 && minutes > 0.0 {
        let rate = done_now as f64 / minutes;
        let left = (total - done) as f64 / rate;
        let _ = write!(s, " · {rate:.1}/min · ETA {}", crate::pipeline::status::human_duration(Duration::from_secs_f64(left * 60.0)));
    }
    s
}

fn summarize(file: &Path, job: &Job, resumed: bool) -> RequestSummary {
    let result = job.result.clone().unwrap_or(Value::Null);
    let verdict = result["verdict"].as_str().map(str::to_string).unwrap_or_else(|| job.state.to_string());
    let duration = match (job.started_at, job.finished_at) {
        (Some(a), Some(b)) => Some((b - a).num_milliseconds() as f64 / 1000.0),
        _ => None,
    };
    let pull_request = match (result["branch"].as_str(), result["pr"]["url"].as_str()) {
        (Some(branch), Some(url)) => Some(format!("{branch} → {url}")),
        (Some(branch), None) if verdict == "pr_opened" => Some(branch.to_string()),
        _ => None,
    };
    RequestSummary {
        request: file.display().to_string(),
        job: job.id.0,
        ok: verdict == "pr_opened" && result["checks_passed"].as_bool() != Some(false),
        outcome: verdict,
        duration_seconds: duration,
        input_tokens: result["usage"]["input_tokens"].as_u64(),
        output_tokens: result["usage"]["output_tokens"].as_u64(),
        cost_usd: result["usage"]["cost_usd"].as_f64(),
        pull_request,
        reason: job.error.clone().or_else(|| {
            (result["checks_passed"].as_bool() == Some(false)).then(|| "local checks failed: the PR would be a draft".into())
        }),
        resumed,
    }
}

/// The final table, Markdown.
pub fn summary_table(s: &BatchSummary) -> String {
    let mut out = String::from(
        "| request | outcome | duration | tokens in / out | cost | pull request | reason |\n|---|---|---|---|---|---|---|\n",
    );
    let cell = |t: &str| t.replace('|', "\\|").replace('\n', " ");
    for r in &s.requests {
        let name = Path::new(&r.request).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {}{} | {} | {} | {} | {} | {} |",
            cell(&name),
            if r.ok { "✅ " } else { "❌ " },
            cell(&r.outcome),
            r.duration_seconds.map(|d| format!("{d:.1}s")).unwrap_or_else(|| "-".into()),
            match (r.input_tokens, r.output_tokens) {
                (Some(i), Some(o)) => format!("{i} / {o}"),
                _ => "-".into(),
            },
            r.cost_usd.map(|c| format!("${c:.2}")).unwrap_or_else(|| "-".into()),
            r.pull_request.as_deref().map(cell).unwrap_or_else(|| "-".into()),
            r.reason.as_deref().map(|t| cell(&crate::agent::transcript::trim_middle(t, 160))).unwrap_or_default(),
        );
    }
    let _ = writeln!(
        out,
        "\n{} of {} requests ended with a pull request; {} failed; {:.1}s.",
        s.succeeded,
        s.requests.len(),
        s.failed,
        s.wall_seconds
    );
    out
}

/// Runs one batch job: the request file through the pipeline on the local platform.
struct BatchHandler {
    repo: PathBuf,
    base: Option<String>,
    config: PipelineConfig,
}

#[async_trait]
impl JobHandler for BatchHandler {
    async fn handle(&self, job: Job, ctx: JobContext) -> Result<JobOutcome> {
        let path = PathBuf::from(job.payload["request_path"].as_str().context("the job names no request file")?);
        let out = PathBuf::from(job.payload["out"].as_str().context("the job names no output folder")?);
        let body = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let request_dir = path.parent().map(Path::to_path_buf).context("the request file has no folder")?;
        let platform = LocalPlatform::open(&self.repo, &out, body.clone(), self.base.clone())?;
        let input = GenerateJob {
            number: REQUEST_ISSUE,
            trigger: Trigger::Request { body, requester: std::env::var("USER").unwrap_or_else(|_| "batch".into()) },
            local_base: Some(request_dir),
        };
        let outcome = generate::run(&platform, &input, &self.config, &Control::for_job(ctx)).await;
        Ok(outcome.into_job_outcome())
    }
}

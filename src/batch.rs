//! `connector-factory batch`: many connector requests at once.
//!
//! Two sources of requests:
//! - **request files** (`--requests`), on the local platform: the same pipeline as
//!   `connector-factory run`, with a bot commit on a local branch `connector/<slug>` and the pull
//!   request it would open written to `<out>/<request>/`;
//! - **a GitHub repository** (`--github owner/name`): every open issue labelled
//!   `connector-request` whose connector has no open pull request yet, built exactly as the app
//!   builds it (status comment, branch, PR), as the app's installation on that repository.
//!   `--dry-run` reads everything from GitHub and writes nothing there: the status comment and the
//!   pull request go into `<out>/<issue>/` and the connector's files into `<out>/<issue>/files/`.
//!
//! Each request becomes a `generate` job in a job store of the batch's own (SQLite by default),
//! and a worker pool of `--concurrency` workers runs them.
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
use crate::github::app::GitHubApp;
use crate::github::platform::GitHubPlatform;
use crate::platform::Platform;
use crate::platform::dry_run::DryRun;
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
    #[arg(long = "requests", value_name = "PATH", num_args = 1.., required_unless_present = "github", conflicts_with = "github")]
    pub requests: Vec<PathBuf>,
    /// Build the open request issues of this repository (`owner/name`) as the GitHub App
    /// (GITHUB_APP_ID, GITHUB_PRIVATE_KEY, GITHUB_API_URL).
    #[arg(long, value_name = "OWNER/NAME")]
    pub github: Option<String>,
    /// The label that marks request issues.
    #[arg(long, default_value = crate::request::LABEL, requires = "github")]
    pub label: String,
    /// Build on behalf of this person (their write access is checked) instead of each issue's
    /// author.
    #[arg(long, value_name = "LOGIN", requires = "github")]
    pub requested_by: Option<String>,
    /// Build and test, but publish nothing: no push, no comment, no pull request. What would have
    /// been posted, and the connector's files, are written to the output folder.
    #[arg(long)]
    pub dry_run: bool,
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
    /// Request issues not built, each with why (a connector PR is open, the form is malformed).
    pub skipped: Vec<String>,
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
        run_batch_with(&args, &settings, config, stop).await
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

/// One request of the batch, before it is a job.
struct Item {
    /// What the summary calls it: the file, or `#12 Connector request: Stripe`.
    label: String,
    number: i64,
    payload: Value,
}

/// Where the batch's requests come from and where they are built.
enum Target {
    Local { repo: PathBuf, base: Option<String> },
    GitHub { platform: Arc<dyn Platform>, installation: i64 },
}

/// Runs (or resumes) the batch until every request has finished or `stop` is cancelled.
pub async fn run_batch(args: &BatchArgs, config: PipelineConfig, stop: CancellationToken) -> Result<BatchSummary> {
    let settings = Settings::load(&Source::from_process(None));
    run_batch_with(args, &settings, config, stop).await
}

/// [`run_batch`] with the settings given (GitHub credentials and API URL for `--github`).
pub async fn run_batch_with(
    args: &BatchArgs,
    settings: &Settings,
    config: PipelineConfig,
    stop: CancellationToken,
) -> Result<BatchSummary> {
    let started = Instant::now();
    let (target, items, skipped, out) = match &args.github {
        None => {
            let files = request_files(&args.requests)?;
            let repo = args.repo.canonicalize().with_context(|| format!("cannot resolve {}", args.repo.display()))?;
            let out = make_out(args.out.clone().unwrap_or_else(|| repo.join(".factory").join("batch")))?;
            let items = files
                .iter()
                .map(|f| Item {
                    label: f.display().to_string(),
                    number: request_number(f),
                    payload: json!({ "request_path": f, "out": out_dir_for(&out, f) }),
                })
                .collect();
            (Target::Local { repo, base: args.base.clone() }, items, Vec::new(), out)
        }
        Some(repository) => {
            let out = make_out(args.out.clone().unwrap_or_else(|| PathBuf::from(".factory").join("batch")))?;
            let (platform, installation) = github_platform(settings, repository).await?;
            let (items, skipped) = open_requests(platform.as_ref(), &args.label, args.requested_by.as_deref(), &out).await?;
            (Target::GitHub { platform, installation }, items, skipped, out)
        }
    };
    let db = args.db.clone().unwrap_or_else(|| format!("sqlite://{}", out.join("batch.db").display()));
    let store: Arc<dyn Store> = Arc::new(SqliteStore::connect(&db).await?);
    let (repository, installation) = match &target {
        Target::Local { .. } => (REPOSITORY.to_string(), None),
        Target::GitHub { platform, installation } => (platform.repository(), Some(*installation)),
    };

    // One job per request; a finished one is kept unless --retry-failed and it failed.
    let mut ids: Vec<(String, JobId, bool)> = Vec::new();
    for item in &items {
        let mut job = NewJob::new(JobKind::Generate, &repository, Some(item.number), item.payload.clone())
            .installation(installation)
            .only_if_first();
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
        ids.push((item.label.clone(), id, resumed));
    }
    if !skipped.is_empty() {
        eprintln!("batch: {} request issue(s) left out:", skipped.len());
        for line in &skipped {
            eprintln!("  {line}");
        }
    }

    let handler = Arc::new(BatchHandler { target, config, dry_run: args.dry_run });
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
        ids.iter().zip(&jobs).map(|((label, _, resumed), job)| summarize(label, job, *resumed)).collect();
    let summary = BatchSummary {
        skipped,
        succeeded: requests.iter().filter(|r| r.ok).count(),
        failed: requests.iter().filter(|r| !r.ok && r.outcome != "queued" && r.outcome != "running").count(),
        requests,
        wall_seconds: started.elapsed().as_secs_f64(),
    };
    std::fs::write(out.join("summary.json"), serde_json::to_string_pretty(&summary)?)?;
    std::fs::write(out.join("summary.md"), summary_table(&summary))?;
    Ok(summary)
}

async fn jobs_of(store: &dyn Store, ids: &[(String, JobId, bool)]) -> Result<Vec<Job>> {
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

fn summarize(label: &str, job: &Job, resumed: bool) -> RequestSummary {
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
        request: label.to_string(),
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
    if !s.skipped.is_empty() {
        let _ = writeln!(out, "\nLeft out:\n");
        for line in &s.skipped {
            let _ = writeln!(out, "- {}", cell(line));
        }
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

/// Runs one batch job through the pipeline: a request file on the local platform, or a
/// request issue on GitHub (recorded instead of published in a dry run).
struct BatchHandler {
    target: Target,
    config: PipelineConfig,
    dry_run: bool,
}

#[async_trait]
impl JobHandler for BatchHandler {
    async fn handle(&self, job: Job, ctx: JobContext) -> Result<JobOutcome> {
        let out = PathBuf::from(job.payload["out"].as_str().context("the job names no output folder")?);
        let ctl = Control::for_job(ctx);
        let outcome = match &self.target {
            Target::Local { repo, base } => {
                let path = PathBuf::from(job.payload["request_path"].as_str().context("the job names no request file")?);
                let body = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
                let request_dir = path.parent().map(Path::to_path_buf).context("the request file has no folder")?;
                let mut platform = LocalPlatform::open(repo, &out, body.clone(), base.clone())?;
                if self.dry_run {
                    platform = platform.without_push();
                }
                let input = GenerateJob {
                    number: REQUEST_ISSUE,
                    trigger: Trigger::Request { body, requester: std::env::var("USER").unwrap_or_else(|_| "batch".into()) },
                    local_base: Some(request_dir),
                };
                generate::run(&platform, &input, &self.config, &ctl).await
            }
            Target::GitHub { platform, .. } => {
                let input = GenerateJob::from_job(&job)?;
                if self.dry_run {
                    let recorded = DryRun::new(platform.clone(), &out)?;
                    generate::run(&recorded, &input, &self.config, &ctl).await
                } else {
                    generate::run(platform.as_ref(), &input, &self.config, &ctl).await
                }
            }
        };
        Ok(outcome.into_job_outcome())
    }
}

fn make_out(out: PathBuf) -> Result<PathBuf> {
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    Ok(out.canonicalize()?)
}

/// The app's installation on `repository`, as a platform.
async fn github_platform(settings: &Settings, repository: &str) -> Result<(Arc<dyn Platform>, i64)> {
    let mut missing = Vec::new();
    if settings.app_id.is_none() {
        missing.push(format!("{} ({})", crate::config::APP_ID.env, crate::config::APP_ID.about));
    }
    if settings.private_key.is_none() {
        missing.push(format!("{} ({})", crate::config::PRIVATE_KEY.env, crate::config::PRIVATE_KEY.about));
    }
    for p in settings.problems() {
        missing.push(format!("{}: {}", p.env, p.message));
    }
    let (Some(app_id), Some(key), true) = (settings.app_id, settings.private_key.as_ref(), missing.is_empty()) else {
        bail!("batch --github needs the GitHub App's settings:\n  {}", missing.join("\n  "));
    };
    let Some((owner, name)) = repository.split_once('/') else {
        bail!("--github wants owner/name, got '{repository}'");
    };
    let app = Arc::new(GitHubApp::new(app_id, key, &settings.api_url)?);
    let installation = app.repository_installation(owner, name).await?;
    let platform = GitHubPlatform::new(app.installation(installation), repository)?;
    Ok((Arc::new(platform), i64::try_from(installation).context("installation id out of range")?))
}

/// The open request issues to build, and the ones left out with why: those whose connector has
/// an open pull request, and malformed forms (the app has told their authors already; a batch
/// does not comment on them again).
async fn open_requests(
    platform: &dyn Platform,
    label: &str,
    requested_by: Option<&str>,
    out: &Path,
) -> Result<(Vec<Item>, Vec<String>)> {
    let mut items = Vec::new();
    let mut skipped = Vec::new();
    for issue in platform.open_issues(label).await? {
        let name = format!("#{} {}", issue.number, issue.title);
        let request = match crate::request::parse(&issue.body) {
            Ok(r) => r,
            Err(invalid) => {
                skipped.push(format!("{name}: the request is malformed ({})", invalid.to_string().lines().next().unwrap_or_default()));
                continue;
            }
        };
        let branch = format!("{}{}", crate::github::route::CONNECTOR_BRANCH_PREFIX, crate::registry::slug(&request.name));
        if let Some(pr) = platform.find_pull_by_head(&branch).await?.filter(|p| p.state == "open") {
            skipped.push(format!("{name}: pull request #{} is open for {branch}", pr.number));
            continue;
        }
        let requester = requested_by.map(str::to_string).unwrap_or_else(|| issue.author.clone());
        items.push(Item {
            label: name,
            number: i64::try_from(issue.number).context("issue number out of range")?,
            payload: json!({
                "issue": {"number": issue.number, "title": issue.title, "body": issue.body, "author": issue.author},
                "requested_by": requester,
                "out": out.join(format!("issue-{}", issue.number)),
            }),
        });
    }
    Ok((items, skipped))
}

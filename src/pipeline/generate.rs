//! The generate stage: a connector request (or a `/factory retry`) becomes a connector pull
//! request, on any [`Platform`].
//!
//! ```text
//! may the person command the bot? (fail closed) ─ no ─▶ polite refusal, stop
//! 👀 ─▶ read the request ─ malformed ─▶ status comment naming every bad field, stop
//! status comment (found again by its marker, else created) ─▶ queued
//! preparing   workspace cloned at the default branch; registry lookup ─ exists ─▶ link, stop
//!             connector branch holds someone else's commits ─▶ ask the person, stop
//! generating  produce_connector (skills and scaffolds from the default-branch workspace)
//! validating  validate::validate_implementation
//! spec_tests  spectest::run_suite → SpecReport
//! pushing     one bot commit of registry/<connector>/ on connector/<connector>, push
//! pr_opened   the PR found by its head branch is updated, else opened; labels
//! ```
//!
//! Every phase is written to the status comment and the job store; cancellation is honoured
//! between phases and while the agent or the spec tests run.

use super::pr::{self, LABELS, PrContent};
use super::produce::{ProduceInput, Produced, produce_connector};
use super::status::{MARKER, Meta, Phase, Status};
use super::{Cancelled, Control, PipelineConfig};
use crate::git::{ForeignCommit, GitError, Remote, Workspace};
use crate::github::route::CONNECTOR_BRANCH_PREFIX;
use crate::platform::{Platform, PrSpec, PullRequest};
use crate::registry::{self, Registry};
use crate::request::{self, ConnectorRequest};
use crate::spectest::{SpecReport, SuiteOptions};
use crate::store::{Job, JobKind};
use crate::worker::JobOutcome;
use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What started the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A request issue was opened, labeled or edited; `body` is the issue's text then.
    Request { body: String, requester: String },
    /// `/factory retry` in a comment on the request issue or on its pull request.
    Retry { on_pull_request: bool, comment_id: u64, commenter: String, guidance: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateJob {
    /// The issue (or, for a retry asked there, the pull request) the job came from.
    pub number: u64,
    pub trigger: Trigger,
    /// Set by local runs only: the request may name a local OpenAPI file, relative to here.
    pub local_base: Option<PathBuf>,
}

impl GenerateJob {
    /// Reads a generate or retry job's payload, as `github::route` writes it.
    pub fn from_job(job: &Job) -> Result<GenerateJob> {
        let p = &job.payload;
        let number = job
            .issue_number
            .and_then(|n| u64::try_from(n).ok())
            .or_else(|| p.pointer("/issue/number").and_then(Value::as_u64))
            .context("the job names no issue")?;
        let text = |ptr: &str| p.pointer(ptr).and_then(Value::as_str).map(str::to_string);
        let trigger = match job.kind {
            JobKind::Generate => Trigger::Request {
                body: text("/issue/body").unwrap_or_default(),
                requester: text("/requested_by")
                    .or_else(|| text("/issue/author"))
                    .context("the job names no requester")?,
            },
            JobKind::Retry => Trigger::Retry {
                on_pull_request: p.pointer("/issue/is_pull_request").and_then(Value::as_bool).unwrap_or(false),
                comment_id: p.pointer("/comment/id").and_then(Value::as_u64).context("the job names no comment")?,
                commenter: text("/comment/author")
                    .or_else(|| text("/requested_by"))
                    .context("the job names no commenter")?,
                guidance: text("/command/guidance").filter(|g| !g.trim().is_empty()),
            },
            other => bail!("a '{other}' job is not a generate job"),
        };
        Ok(GenerateJob { number, trigger, local_base: None })
    }

    pub fn person(&self) -> &str {
        match &self.trigger {
            Trigger::Request { requester, .. } => requester,
            Trigger::Retry { commenter, .. } => commenter,
        }
    }

    pub fn guidance(&self) -> Option<&str> {
        match &self.trigger {
            Trigger::Retry { guidance, .. } => guidance.as_deref(),
            Trigger::Request { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    PrOpened,
    Exists,
    InvalidRequest,
    Refused,
    NeedsDecision,
    Failed,
    Cancelled,
}

/// How a run ended, for the job store and for `connector-factory run`.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub verdict: Verdict,
    /// The request issue, once known.
    pub issue: Option<u64>,
    pub error: Option<String>,
    pub branch: Option<String>,
    pub commit: Option<String>,
    pub pr: Option<PullRequest>,
    pub pr_title: Option<String>,
    pub pr_body: Option<String>,
    /// Every local check passed (validation and spec tests).
    pub checks_passed: Option<bool>,
    pub status_comment: Option<u64>,
    /// Tokens and cost, when an LLM wrote the connector.
    pub usage: Option<super::status::Usage>,
    /// Who wrote the connector.
    pub agent: Option<String>,
    /// The LLM session's transcript (Markdown, redacted as it was recorded).
    pub transcript: Option<String>,
    /// The local spec tests' report.
    pub spec_report: Option<SpecReport>,
    /// Where the time went.
    pub timings: Timings,
}

/// Where a run's time went: in the model, in spec tests (the agent's runs and the pipeline's),
/// and everything else, which is the bot's own overhead.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Timings {
    pub total_seconds: f64,
    pub model_seconds: f64,
    pub spec_test_seconds: f64,
    /// `total - model - spec tests`: workspace, git, GitHub calls, validation, bookkeeping.
    pub overhead_seconds: f64,
    /// Seconds per phase, in the order they ran.
    pub phases: Vec<(String, f64)>,
    /// The spec-tests phase took the agent's last passing suite (same files, same options)
    /// instead of running it again.
    #[serde(default)]
    pub spec_report_reused: bool,
}

impl Timings {
    fn close(&mut self, total: std::time::Duration) {
        self.total_seconds = total.as_secs_f64();
        self.overhead_seconds = (self.total_seconds - self.model_seconds - self.spec_test_seconds).max(0.0);
    }
}

impl Outcome {
    fn new(verdict: Verdict) -> Outcome {
        Outcome {
            verdict,
            issue: None,
            error: None,
            branch: None,
            commit: None,
            pr: None,
            pr_title: None,
            pr_body: None,
            checks_passed: None,
            status_comment: None,
            usage: None,
            agent: None,
            transcript: None,
            spec_report: None,
            timings: Timings::default(),
        }
    }

    pub fn into_job_outcome(self) -> JobOutcome {
        let mut result = serde_json::to_value(&self).unwrap_or(Value::Null);
        // The body is on GitHub already; the store keeps the facts.
        if let Some(map) = result.as_object_mut() {
            map.remove("pr_body");
        }
        match self.verdict {
            Verdict::PrOpened | Verdict::Exists => JobOutcome::Succeeded(result),
            verdict => JobOutcome::Failed {
                error: self.error.clone().unwrap_or_else(|| json!(verdict).as_str().unwrap_or("failed").to_string()),
                result: Some(result),
            },
        }
    }
}

/// Why the build stopped early.
enum Stop {
    Cancelled,
    Failed {
        phase: Phase,
        message: String,
    },
    /// Someone else's commits are on the branch.
    Decision {
        branch: String,
        commits: Vec<ForeignCommit>,
    },
    /// Not an error: the registry has it.
    Exists {
        links: Vec<(String, String)>,
    },
}

impl From<Cancelled> for Stop {
    fn from(_: Cancelled) -> Stop {
        Stop::Cancelled
    }
}

fn failed(phase: Phase) -> impl Fn(anyhow::Error) -> Stop {
    move |e| Stop::Failed { phase, message: format!("{e:#}") }
}

/// Keeps the status comment and the store's phase in step.
struct Tracker<'a> {
    platform: &'a dyn Platform,
    ctl: &'a Control,
    comment: Option<u64>,
    status: Status,
    started: Instant,
    /// The phase running now and since when, and the ones before it with their seconds.
    current: (Phase, Instant),
    phases: Vec<(String, f64)>,
}

impl Tracker<'_> {
    fn close_phase(&mut self, next: Phase) {
        let now = Instant::now();
        let (phase, since) = std::mem::replace(&mut self.current, (next, now));
        self.phases.push((phase.as_str().to_string(), (now - since).as_secs_f64()));
    }

    async fn set(&mut self, phase: Phase) {
        if phase != self.current.0 {
            self.close_phase(phase);
        }
        // Store first: a job that was superseded or cancelled must not write over the status that
        // its successor (or the person who cancelled it) now owns.
        if !self.ctl.phase(phase).await {
            return;
        }
        self.status.meta.phase = phase;
        self.status.elapsed = self.started.elapsed();
        let body = self.status.render();
        let written = match self.comment {
            Some(id) => self.platform.update_comment(id, &body).await,
            None => self.platform.create_comment(self.status.meta.issue, &body).await.map(|id| {
                self.comment = Some(id);
            }),
        };
        if let Err(err) = written {
            tracing::warn!(issue = self.status.meta.issue, "writing the status comment failed: {err:#}");
        }
    }
}

/// Runs the generate stage for one job. Never returns an error: every ending is an [`Outcome`],
/// and what people need to know about it is on the issue.
pub async fn run(platform: &dyn Platform, job: &GenerateJob, cfg: &PipelineConfig, ctl: &Control) -> Outcome {
    let started = Instant::now();
    let mut out = run_phases(platform, job, cfg, ctl, started).await;
    out.timings.close(started.elapsed());
    out
}

async fn run_phases(
    platform: &dyn Platform,
    job: &GenerateJob,
    cfg: &PipelineConfig,
    ctl: &Control,
    started: Instant,
) -> Outcome {
    if let Some(refused) = refuse_without_write_access(platform, job).await {
        return refused;
    }
    acknowledge(platform, job).await;

    let (issue, body) = match request_text(platform, job).await {
        Ok(found) => found,
        Err(err) => {
            let message = format!("{err:#}");
            let _ = platform
                .create_comment(job.number, &format!("The factory could not read the request: {message}"))
                .await;
            let mut out = Outcome::new(Verdict::Failed);
            out.error = Some(message);
            return out;
        }
    };
    let previous = match platform.find_bot_comment(issue, MARKER).await {
        Ok(found) => found,
        Err(err) => {
            // Without it a second status comment could appear; better to fail and be retried.
            let mut out = Outcome::new(Verdict::Failed);
            out.issue = Some(issue);
            out.error = Some(format!("looking for the status comment failed: {err:#}"));
            return out;
        }
    };
    let before = previous.as_ref().and_then(|(_, text)| Meta::parse(text));
    let meta = Meta {
        issue,
        job: ctl.job_id(),
        phase: Phase::Queued,
        branch: before.as_ref().and_then(|m| m.branch.clone()),
        pr: before.as_ref().and_then(|m| m.pr),
        attempts: before.as_ref().map(|m| m.attempts).unwrap_or(0),
    };
    let mut status = Status::new(meta);
    status.runner_url = cfg.runner_url.clone();
    let mut tracker = Tracker {
        platform,
        ctl,
        comment: previous.map(|(id, _)| id),
        status,
        started,
        current: (Phase::Queued, started),
        phases: Vec::new(),
    };

    let parsed = match &job.local_base {
        Some(base) => request::parse_local(&body, base),
        None => request::parse(&body),
    };
    let request = match parsed {
        Ok(r) => r,
        Err(invalid) => {
            tracker.status.detail = Some(invalid.to_markdown());
            tracker.set(Phase::InvalidRequest).await;
            let mut out = Outcome::new(Verdict::InvalidRequest);
            out.issue = Some(issue);
            out.error = Some(invalid.to_string());
            out.status_comment = tracker.comment;
            tracker.close_phase(Phase::InvalidRequest);
            out.timings.phases = tracker.phases;
            return out;
        }
    };
    tracker.status.name = Some(request.name.clone());
    tracker.status.meta.attempts += 1;
    tracker.set(Phase::Queued).await;

    let mut out = Outcome::new(Verdict::Failed);
    out.issue = Some(issue);
    match build(&mut tracker, job, &request, issue, cfg, &mut out).await {
        Ok(()) => out.verdict = Verdict::PrOpened,
        Err(Stop::Cancelled) => {
            tracker.status.detail = Some("The job was stopped (a newer request or a `/factory cancel`).".into());
            tracker.set(Phase::Cancelled).await;
            out.verdict = Verdict::Cancelled;
            out.error = Some("cancelled".into());
        }
        Err(Stop::Failed { phase, message }) => {
            tracker.status.failed_in = Some(phase);
            tracker.status.detail = Some(format!(
                "Failed while {}:\n\n```text\n{}\n```\n\nComment `/factory retry <guidance>` to try again.",
                doing(phase),
                message.replace("```", "'''")
            ));
            tracker.set(Phase::Failed).await;
            out.verdict = Verdict::Failed;
            out.error = Some(message);
        }
        Err(Stop::Decision { branch, commits }) => {
            let question = decision_question(job.person(), &branch, &commits);
            if let Err(err) = platform.create_comment(issue, &question).await {
                tracing::warn!("posting the question failed: {err:#}");
            }
            tracker.status.detail = Some(format!(
                "`{branch}` has commits the factory did not make, so it stopped without changing anything. \
                 See the question below."
            ));
            tracker.set(Phase::NeedsDecision).await;
            out.verdict = Verdict::NeedsDecision;
            out.error = Some(format!("{} foreign commit(s) on {branch}", commits.len()));
        }
        Err(Stop::Exists { links }) => {
            let list: Vec<String> = links.iter().map(|(name, url)| format!("- [`{name}`]({url})")).collect();
            tracker.status.detail = Some(format!(
                "The registry already has this connector:\n\n{}\n\nTo change it, open a pull request against that \
                 folder; to ask for a different API, edit this issue's name.",
                list.join("\n")
            ));
            tracker.set(Phase::Exists).await;
            out.verdict = Verdict::Exists;
        }
    }
    out.status_comment = tracker.comment;
    let last = tracker.current.0;
    tracker.close_phase(last);
    out.timings.phases = tracker.phases;
    out
}

/// Checks that the person behind the job may command the bot (write access, failing closed);
/// if not, posts a polite refusal and returns the job's outcome.
pub async fn refuse_without_write_access(platform: &dyn Platform, job: &GenerateJob) -> Option<Outcome> {
    let person = job.person();
    let allowed = match platform.can_write(person).await {
        Ok(allowed) => allowed,
        Err(err) => {
            tracing::warn!(login = person, "permission check failed, treating as no access: {err:#}");
            false
        }
    };
    if allowed {
        return None;
    }
    if let Err(err) = platform.create_comment(job.number, &refusal(person, &job.trigger)).await {
        tracing::warn!("posting the refusal failed: {err:#}");
    }
    let mut out = Outcome::new(Verdict::Refused);
    out.error = Some(format!("{person} has no write access"));
    Some(out)
}

/// 👀 on the request issue, or on the comment that asked for a retry.
pub async fn acknowledge(platform: &dyn Platform, job: &GenerateJob) {
    let reacted = match &job.trigger {
        Trigger::Request { .. } => platform.react_issue(job.number, "eyes").await,
        Trigger::Retry { comment_id, .. } => platform.react_comment(*comment_id, "eyes").await,
    };
    if let Err(err) = reacted {
        tracing::warn!("reacting failed: {err:#}");
    }
}

/// The request issue and its text: the event's copy for a new request; read again for a retry,
/// through the PR's `Closes #N` when the retry was asked on the PR.
async fn request_text(platform: &dyn Platform, job: &GenerateJob) -> Result<(u64, String)> {
    match &job.trigger {
        Trigger::Request { body, .. } => Ok((job.number, body.clone())),
        Trigger::Retry { on_pull_request: false, .. } => Ok((job.number, platform.issue_body(job.number).await?)),
        Trigger::Retry { on_pull_request: true, .. } => {
            let pr_body = platform.issue_body(job.number).await?;
            let issue = pr::closed_issue(&pr_body)
                .ok_or_else(|| anyhow!("pull request #{} does not say which request it closes", job.number))?;
            Ok((issue, platform.issue_body(issue).await?))
        }
    }
}

async fn build(
    t: &mut Tracker<'_>,
    job: &GenerateJob,
    request: &ConnectorRequest,
    issue: u64,
    cfg: &PipelineConfig,
    out: &mut Outcome,
) -> Result<(), Stop> {
    let platform = t.platform;
    let connector = registry::slug(&request.name);
    if connector.is_empty() {
        return Err(Stop::Failed {
            phase: Phase::Preparing,
            message: format!("the name {:?} leaves no folder name once words like 'API' are dropped", request.name),
        });
    }
    let branch = format!("{CONNECTOR_BRANCH_PREFIX}{connector}");
    t.status.meta.branch = Some(branch.clone());
    out.branch = Some(branch.clone());
    t.ctl.check()?;

    t.set(Phase::Preparing).await;
    let default_branch = platform.default_branch().await.map_err(failed(Phase::Preparing))?;
    let remote = Remote {
        url: platform.remote_url().await.map_err(failed(Phase::Preparing))?,
        credentials: platform.git_credentials().await.map_err(failed(Phase::Preparing))?,
    };
    let parent = cfg.workspace_parent.clone();
    let (base, wanted) = (default_branch.clone(), branch.clone());
    let ws = blocking(move || Workspace::open(remote, &base, &wanted, parent.as_deref()).map_err(anyhow::Error::from))
        .await
        .map_err(failed(Phase::Preparing))?;

    let existing = Registry::open(&ws.root().join("registry"))
        .and_then(|r| r.find_connector(&request.name))
        .map_err(failed(Phase::Preparing))?;
    if !existing.is_empty() {
        let mut links: Vec<(String, String)> = Vec::new();
        for imp in existing {
            let folder = format!("registry/{}", imp.connector);
            if !links.iter().any(|(f, _)| *f == folder) {
                let url = platform.browse_url(&default_branch, &folder);
                links.push((folder, url));
            }
        }
        return Err(Stop::Exists { links });
    }
    match ws.ensure_branch_is_ours(&cfg.identity) {
        Ok(()) => {}
        Err(GitError::ForeignCommits { branch, commits, .. }) => return Err(Stop::Decision { branch, commits }),
        Err(e) => return Err(failed(Phase::Preparing)(e.into())),
    }
    t.ctl.check()?;

    t.set(Phase::Generating).await;
    let input = ProduceInput {
        request: request.clone(),
        connector: connector.clone(),
        tree: ws.root().to_path_buf(),
        guidance: job.guidance().map(str::to_string),
        author: cfg.author.clone(),
        resume: None,
    };
    let produced =
        t.ctl.until_cancelled(produce_connector(&input, cfg)).await?.map_err(failed(Phase::Generating))?;
    t.status.agent = Some(produced.agent.clone());
    t.status.usage = produced.usage;
    out.usage = produced.usage;
    out.agent = Some(produced.agent.clone());
    out.transcript = produced.transcript.clone();
    out.timings.model_seconds += produced.model_seconds;
    out.timings.spec_test_seconds += produced.spec_test_seconds;
    t.status.transcript = produced.transcript.clone();
    let impl_dir = produced.impl_dir.clone();
    let impl_rel = impl_dir.strip_prefix(ws.root()).map(Path::to_path_buf).map_err(|_| Stop::Failed {
        phase: Phase::Generating,
        message: format!("the agent wrote outside the workspace: {}", impl_dir.display()),
    })?;
    let folder = PathBuf::from("registry").join(&connector);
    if !impl_rel.starts_with(&folder) {
        return Err(Stop::Failed {
            phase: Phase::Generating,
            message: format!("the agent wrote {} instead of a folder below {}", impl_rel.display(), folder.display()),
        });
    }
    t.ctl.check()?;

    t.set(Phase::Validating).await;
    let dir = impl_dir.clone();
    let findings =
        blocking(move || crate::validate::validate_implementation(&dir)).await.map_err(failed(Phase::Validating))?;
    t.ctl.check()?;

    t.set(Phase::SpecTests).await;
    let spec_started = Instant::now();
    let spec = match reusable_report(&produced, &impl_rel, &cfg.spec_tests).await {
        Some(report) => {
            out.timings.spec_report_reused = true;
            Ok(report)
        }
        None => t.ctl.until_cancelled(spec_tests(&impl_dir, &impl_rel, &cfg.spec_tests)).await?,
    };
    out.timings.spec_test_seconds += spec_started.elapsed().as_secs_f64();
    out.spec_report = spec.as_ref().ok().cloned();
    t.status.spec_summary = Some(match &spec {
        Ok(r) => {
            let (passed, failed, skipped) = r.implementations.iter().fold((0, 0, 0), |acc, i| {
                (acc.0 + i.summary.passed, acc.1 + i.summary.failed, acc.2 + i.summary.skipped)
            });
            let icon = if r.passed { "✅" } else { "❌" };
            format!("{icon} {passed} passed, {failed} failed, {skipped} skipped")
        }
        Err(why) => format!("❌ could not run: {}", why.lines().next().unwrap_or_default()),
    });
    t.ctl.check()?;

    t.set(Phase::Pushing).await;
    let content = PrContent {
        issue,
        request,
        produced: &produced,
        impl_rel: &impl_rel,
        findings: &findings,
        spec: &spec,
        guidance: job.guidance(),
    };
    let (title, body, passed) = (content.title(), content.body(), content.passed());
    out.checks_passed = Some(passed);
    let message = format!(
        "{title}\n\nGenerated by connector-factory ({}) for #{issue}.\nLocal checks: {}.",
        produced.agent,
        if passed { "passed" } else { "failed" }
    );
    let identity = cfg.identity.clone();
    let (ws, committed) = blocking(move || {
        let committed = ws.commit_connector(&folder, &message, &identity);
        Ok((ws, committed))
    })
    .await
    .map_err(failed(Phase::Pushing))?;
    let committed = match committed {
        Ok(c) => c,
        Err(GitError::ForeignCommits { branch, commits, .. }) => return Err(Stop::Decision { branch, commits }),
        Err(e) => return Err(failed(Phase::Pushing)(e.into())),
    };
    match &committed {
        Some(c) if !platform.pushes() => {
            out.commit = Some(c.id.clone());
            let kept = platform.keep_unpushed(&impl_rel, &impl_dir).map_err(failed(Phase::Pushing))?;
            tracing::info!(%branch, kept = ?kept, "a dry run: the connector is committed in the workspace, not pushed");
        }
        Some(c) => {
            out.commit = Some(c.id.clone());
            let c = c.clone();
            blocking(move || ws.push(&c).map_err(anyhow::Error::from)).await.map_err(failed(Phase::Pushing))?;
        }
        // The branch already holds exactly this connector: nothing to push, the PR is refreshed.
        None => tracing::info!(%branch, "the connector is unchanged; nothing to push"),
    }
    t.ctl.check()?;

    let labels: Vec<String> = LABELS.iter().map(|l| l.to_string()).collect();
    let found = platform.find_pull_by_head(&branch).await.map_err(failed(Phase::PrOpened))?;
    let pull = match found {
        Some(pull) if pull.state == "open" => {
            platform.update_pull(pull.number, &title, &body).await.map_err(failed(Phase::PrOpened))?;
            pull
        }
        _ => {
            let spec = PrSpec {
                branch: branch.clone(),
                base: default_branch.clone(),
                title: title.clone(),
                body: body.clone(),
                labels: labels.clone(),
                draft: !passed,
            };
            platform.create_pull(&spec).await.map_err(failed(Phase::PrOpened))?
        }
    };
    platform.add_labels(pull.number, &labels).await.map_err(failed(Phase::PrOpened))?;
    t.status.meta.pr = Some(pull.number);
    t.status.pr_url = Some(pull.url.clone());
    out.pr = Some(pull);
    out.pr_title = Some(title);
    out.pr_body = Some(body);
    t.set(Phase::PrOpened).await;
    Ok(())
}

/// The spec-test suite on the implementation, reported under its path in the repository rather
/// than the workspace's temporary one.
pub(super) async fn spec_tests(dir: &Path, rel: &Path, opts: &crate::spectest::SuiteOptions) -> Result<SpecReport, String> {
    let loaded = {
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || crate::spectest::load_implementation(&dir))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
    };
    let report = crate::spectest::run_implementation(&loaded, &rel.display().to_string(), opts)
        .await
        .map_err(|e| format!("{e:#}"))?;
    Ok(SpecReport::new(vec![report]))
}

/// The agent's last passing run of the whole suite, when it still stands for the produced files
/// run with `opts` (same fingerprint, same options), under the repository path `rel`: running
/// the suite again would only repeat it, at about half of a connector's spec-test time.
pub(super) async fn reusable_report(produced: &Produced, rel: &Path, opts: &SuiteOptions) -> Option<SpecReport> {
    let passed = produced.passed_suite.clone()?;
    let (dir, opts) = (produced.impl_dir.clone(), opts.clone());
    // A failure to read the files means running the suite, as without a report.
    let mut report = blocking(move || Ok(passed.still_holds(&dir, &opts).then_some(passed.report))).await.ok()??;
    for imp in &mut report.implementations {
        imp.path = rel.display().to_string();
    }
    Some(report)
}

/// Runs blocking work (git, file checks) off the async threads.
pub(super) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.context("a blocking step stopped unexpectedly")?
}

fn doing(phase: Phase) -> &'static str {
    match phase {
        Phase::Preparing => "preparing the workspace",
        Phase::Generating => "generating the connector",
        Phase::Validating => "validating",
        Phase::SpecTests => "running the spec tests",
        Phase::Pushing => "committing and pushing",
        Phase::PrOpened => "opening the pull request",
        _ => "working",
    }
}

fn refusal(person: &str, trigger: &Trigger) -> String {
    let what = match trigger {
        Trigger::Request { .. } => "build connectors from requests",
        Trigger::Retry { .. } => "retry a build",
    };
    format!(
        "Thanks, @{person}! Only people with write access to this repository can ask the factory to {what}: it \
         runs generated code and may spend money on the maintainers' behalf. A maintainer can start it with a \
         `/factory retry` comment."
    )
}

fn decision_question(person: &str, branch: &str, commits: &[ForeignCommit]) -> String {
    let list: Vec<String> =
        commits.iter().map(|c| format!("- `{}` {} ({})", c.id, c.summary.replace('\n', " "), c.author)).collect();
    format!(
        "@{person}, the branch `{branch}` has commits the factory did not make:\n\n{}\n\nThe factory never \
         rewrites someone else's work, so it stopped without pushing. What would you like?\n\n\
         - **Keep those commits**: carry on by hand on `{branch}`; the pull request stays as it is.\n\
         - **Start over**: delete the branch `{branch}` (or remove those commits), then comment \
         `/factory retry` and the factory builds the connector again.",
        list.join("\n")
    )
}

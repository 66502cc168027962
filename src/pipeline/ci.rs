//! The CI stage: a spec-test workflow run finished on a connector PR.
//!
//! ```text
//! the run, read again from the API ─ not one we expect ─▶ ignored (loop safety)
//! the open PR of its head branch ─ none ─▶ ignored
//! wait until every workflow run of the head commit has completed
//! success ─▶ status comment + labels (spec-tests-passed), done
//! failure ─▶ SpecReport from the `spec-report` artifact, else the failed jobs' logs
//!         ─▶ FailureAnalysis ─▶ analysis comment on the PR, label spec-tests-failed
//!         ─▶ an improvement PR per category (improve.rs), rate-limited
//!         ─▶ a bounded fix: LLM configured, base branch CI green, branch still at the run's
//!            commit and only the bot's commits on it, attempt counted in the store first
//!            (attempts exhausted ─▶ label needs-human and a comment)
//! ```
//!
//! A run on an improvement branch (`factory/*`) starts neither analysis nor generation: only the
//! regression guard's result is posted on the improvement PR.

use super::analysis::FailureAnalysis;
use super::generate::{blocking, reusable_report, spec_tests};
use super::improve::{self, Proposed};
use super::produce::{ProduceInput, produce_connector};
use super::status::{MARKER, Meta};
use super::{Control, PipelineConfig};
use crate::git::{GitError, Remote, Workspace};
use crate::github::route::{
    CONNECTOR_BRANCH_PREFIX, IMPROVEMENT_BRANCH_PREFIX, REGRESSION_WORKFLOW, SPEC_TEST_WORKFLOW, workflow_file as file_name,
};
use crate::platform::{JobLog, Platform, PullRequest, WorkflowRun};
use crate::spectest::SpecReport;
use crate::store::{Job, LedgerEntry, LedgerQuery, LedgerTake, Store};
use crate::worker::JobOutcome;
use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The artifact both workflows upload.
pub const REPORT_ARTIFACT: &str = "spec-report";
pub const LABEL_PASSED: &str = "spec-tests-passed";
pub const LABEL_FAILED: &str = "spec-tests-failed";
pub const LABEL_NEEDS_HUMAN: &str = "needs-human";
/// The ledger kind that counts fix attempts.
pub const FIX_KIND: &str = "fix_attempt";
/// Marks the factory's comments about one CI run.
pub const ANALYSIS_MARKER: &str = "<!-- factory-analysis:";
pub const REGRESSION_MARKER: &str = "<!-- factory-regression:";
const CI_BLOCK_START: &str = "<!-- factory-ci -->";
const CI_BLOCK_END: &str = "<!-- /factory-ci -->";
/// Largest report file read from an artifact.
const REPORT_MAX_BYTES: u64 = 16 << 20;

/// A `ci_finished` job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiJob {
    pub run_id: u64,
    pub head_branch: String,
    /// From the event; found by head branch when absent (fork PRs, or GitHub left it out).
    pub pull_request: Option<u64>,
}

impl CiJob {
    pub fn from_job(job: &Job) -> Result<CiJob> {
        let p = &job.payload;
        Ok(CiJob {
            run_id: p.pointer("/run/id").and_then(Value::as_u64).context("the job names no workflow run")?,
            head_branch: p.pointer("/run/head_branch").and_then(Value::as_str).unwrap_or_default().to_string(),
            pull_request: p.pointer("/pull_request").and_then(Value::as_u64),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CiVerdict {
    /// Not a run the factory acts on; `reason` says why.
    Ignored,
    Passed,
    /// Failed, analysed and answered (comment, proposals, maybe a fix).
    Analysed,
    /// An improvement PR's regression result was posted.
    RegressionReported,
    /// The stage itself could not finish.
    Failed,
    Cancelled,
}

/// What came of a fix attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum FixOutcome {
    Skipped { reason: String },
    Exhausted { attempts: u32 },
    Pushed { attempt: u32, max: u32, commit: String, local_checks_passed: bool },
    /// Nothing to push: the agent's files equal the branch's.
    Unchanged { attempt: u32, max: u32 },
    Failed { attempt: u32, max: u32, error: String },
}

impl FixOutcome {
    fn describe(&self) -> String {
        match self {
            FixOutcome::Skipped { reason } => format!("No automatic fix: {reason}."),
            FixOutcome::Exhausted { attempts } => format!(
                "No automatic fix: the {attempts} attempt(s) allowed for this PR are used up. Labelled \
                 `{LABEL_NEEDS_HUMAN}`."
            ),
            FixOutcome::Pushed { attempt, max, commit, local_checks_passed } => format!(
                "Fix attempt {attempt}/{max}: pushed `{}` (local checks {}). CI runs again on it.",
                &commit[..commit.len().min(12)],
                if *local_checks_passed { "passed" } else { "still failing" }
            ),
            FixOutcome::Unchanged { attempt, max } => {
                format!("Fix attempt {attempt}/{max}: the agent changed nothing, so nothing was pushed.")
            }
            FixOutcome::Failed { attempt, max, error } => format!("Fix attempt {attempt}/{max} failed: {error}"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CiOutcome {
    pub verdict: CiVerdict,
    pub reason: String,
    pub pull_request: Option<u64>,
    pub analysis: Option<FailureAnalysis>,
    pub proposals: Vec<Proposed>,
    pub fix: Option<FixOutcome>,
}

impl CiOutcome {
    fn new(verdict: CiVerdict, reason: impl Into<String>) -> CiOutcome {
        CiOutcome { verdict, reason: reason.into(), pull_request: None, analysis: None, proposals: vec![], fix: None }
    }

    pub fn into_job_outcome(self) -> JobOutcome {
        let result = serde_json::to_value(&self).unwrap_or(Value::Null);
        match self.verdict {
            CiVerdict::Failed | CiVerdict::Cancelled => JobOutcome::Failed { error: self.reason, result: Some(result) },
            _ => JobOutcome::Succeeded(result),
        }
    }
}


/// Runs the CI stage. Never returns an error: every ending is a [`CiOutcome`].
pub async fn run(
    platform: &dyn Platform,
    store: &dyn Store,
    job: &CiJob,
    cfg: &PipelineConfig,
    ctl: &Control,
) -> CiOutcome {
    match stage(platform, store, job, cfg, ctl).await {
        Ok(out) => out,
        Err(e) if ctl.check().is_err() => CiOutcome::new(CiVerdict::Cancelled, format!("cancelled ({e:#})")),
        Err(e) => CiOutcome::new(CiVerdict::Failed, format!("{e:#}")),
    }
}

async fn stage(
    platform: &dyn Platform,
    store: &dyn Store,
    job: &CiJob,
    cfg: &PipelineConfig,
    ctl: &Control,
) -> Result<CiOutcome> {
    // The event said what run it was; the API says what the run is.
    let run = platform.workflow_run(job.run_id).await?;
    let branch = run.head_branch.clone().unwrap_or_default();
    let workflow = file_name(&run.path).to_string();
    if let Some(repo) = &run.head_repository
        && !repo.eq_ignore_ascii_case(&platform.repository())
    {
        return Ok(CiOutcome::new(CiVerdict::Ignored, format!("run {} is of a fork ({repo})", run.id)));
    }
    if branch.starts_with(IMPROVEMENT_BRANCH_PREFIX) {
        if workflow == REGRESSION_WORKFLOW {
            return regression_report(platform, &run, &branch).await;
        }
        return Ok(CiOutcome::new(
            CiVerdict::Ignored,
            format!("run {} on improvement branch '{branch}' is not the regression guard", run.id),
        ));
    }
    if !branch.starts_with(CONNECTOR_BRANCH_PREFIX) {
        return Ok(CiOutcome::new(CiVerdict::Ignored, format!("run {} is on '{branch}', not a connector branch", run.id)));
    }
    if workflow != SPEC_TEST_WORKFLOW || run.event != "pull_request" {
        return Ok(CiOutcome::new(
            CiVerdict::Ignored,
            format!("run {} is '{}' started by '{}', not {SPEC_TEST_WORKFLOW} on a pull request", run.id, run.path, run.event),
        ));
    }
    let Some(pull) = platform.find_pull_by_head(&branch).await?.filter(|p| p.state == "open") else {
        return Ok(CiOutcome::new(CiVerdict::Ignored, format!("no open pull request from '{branch}'")));
    };
    if job.pull_request.is_some_and(|n| n != pull.number) {
        return Ok(CiOutcome::new(
            CiVerdict::Ignored,
            format!("the run names PR #{} but '{branch}' belongs to #{}", job.pull_request.unwrap_or(0), pull.number),
        ));
    }

    let run = wait_for_commit(platform, &run, cfg, ctl).await?;
    let issue = super::pr::closed_issue(&platform.issue_body(pull.number).await?);
    let mut out = CiOutcome::new(CiVerdict::Analysed, String::new());
    out.pull_request = Some(pull.number);

    if run.succeeded() {
        platform.add_labels(pull.number, &[LABEL_PASSED.to_string()]).await?;
        for label in [LABEL_FAILED, LABEL_NEEDS_HUMAN] {
            platform.remove_label(pull.number, label).await?;
        }
        if let Some(issue) = issue {
            set_ci_block(platform, issue, &format!("✅ CI spec tests passed on #{} ([run]({})).", pull.number, run.html_url))
                .await;
        }
        out.verdict = CiVerdict::Passed;
        out.reason = format!("spec tests passed in run {}", run.id);
        return Ok(out);
    }
    if matches!(run.conclusion.as_deref(), Some("cancelled" | "skipped" | "stale")) {
        out.verdict = CiVerdict::Ignored;
        out.reason = format!("run {} ended '{}'", run.id, run.conclusion.as_deref().unwrap_or_default());
        return Ok(out);
    }

    // Failed: read why.
    let report = match platform.download_artifact(run.id, REPORT_ARTIFACT).await? {
        Some(zip) => match report_from_zip(&zip) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(run = run.id, "the spec-report artifact is unusable, reading logs instead: {e:#}");
                None
            }
        },
        None => None,
    };
    let analysis = match &report {
        Some(r) => FailureAnalysis::from_report(r, &|_| None),
        None => {
            let logs: Vec<JobLog> = platform.failed_job_logs(run.id).await?;
            FailureAnalysis::from_logs(&logs.into_iter().map(|l| (l.name, l.text)).collect::<Vec<_>>())
        }
    };
    ctl.check().map_err(|_| anyhow::anyhow!("cancelled"))?;
    let marker = format!("{ANALYSIS_MARKER}{} -->", json!({ "run": run.id, "attempt": run.run_attempt }));
    // Evidence and log lines come from CI output: token shapes are masked before anything is posted.
    let redactor = crate::agent::transcript::Redactor::token_shapes();
    let mut comment = format!("{}{marker}", redactor.text(&analysis.to_markdown(&run.html_url)));
    let comment_id = upsert_comment(platform, pull.number, &marker, &comment).await?;
    platform.add_labels(pull.number, &[LABEL_FAILED.to_string()]).await?;
    platform.remove_label(pull.number, LABEL_PASSED).await?;

    if !analysis.is_empty() {
        out.proposals = improve::propose_all(platform, store, cfg, ctl, &analysis, &pull).await;
    }
    let failure = Failure { run: &run, pull: &pull, analysis: &analysis, report: report.as_ref() };
    let fix = fix(platform, store, cfg, ctl, &failure).await;
    if let FixOutcome::Exhausted { attempts } = &fix {
        platform.add_labels(pull.number, &[LABEL_NEEDS_HUMAN.to_string()]).await?;
        platform
            .create_comment(
                pull.number,
                &format!(
                    "The factory tried {attempts} automatic fix(es) for this PR and the spec tests still fail, so it \
                     stops here and has labelled it `{LABEL_NEEDS_HUMAN}`. The analysis above names the failing \
                     checks. Push a fix yourself, or comment `/factory retry <guidance>` to build the connector \
                     again with your guidance."
                ),
            )
            .await?;
    }

    let mut next = String::from("\n#### What the factory does next\n\n");
    let _ = writeln!(next, "- {}", fix.describe());
    for p in &out.proposals {
        let _ = writeln!(next, "- {}", p.describe());
    }
    comment = format!("{}{next}\n{marker}", redactor.text(&analysis.to_markdown(&run.html_url)));
    platform.update_comment(comment_id, &comment).await?;
    if let Some(issue) = issue {
        set_ci_block(
            platform,
            issue,
            &format!(
                "❌ CI spec tests failed on #{} ([run]({})): {} failed check(s). {}",
                pull.number,
                run.html_url,
                analysis.failed_checks(),
                fix.describe()
            ),
        )
        .await;
    }
    out.reason = format!("run {} failed with {} failed check(s)", run.id, analysis.failed_checks());
    out.analysis = Some(analysis);
    out.fix = Some(fix);
    Ok(out)
}

/// Waits until every workflow run of the run's head commit has completed (the spec tests may
/// finish before the rest of CI); returns the run as it is then.
async fn wait_for_commit(platform: &dyn Platform, run: &WorkflowRun, cfg: &PipelineConfig, ctl: &Control) -> Result<WorkflowRun> {
    let started = Instant::now();
    loop {
        let runs = platform.runs_for_commit(&run.head_sha).await?;
        let pending: Vec<&WorkflowRun> = runs.iter().filter(|r| !r.is_completed()).collect();
        if pending.is_empty() {
            return match runs.into_iter().find(|r| r.id == run.id) {
                Some(r) => Ok(r),
                None => platform.workflow_run(run.id).await,
            };
        }
        if started.elapsed() >= cfg.learning.wait_for_ci {
            bail!(
                "gave up waiting for {} workflow run(s) of {} to finish ({})",
                pending.len(),
                &run.head_sha[..run.head_sha.len().min(12)],
                pending.iter().map(|r| file_name(&r.path)).collect::<Vec<_>>().join(", ")
            );
        }
        let pause = cfg.learning.poll_ci.min(cfg.learning.wait_for_ci.saturating_sub(started.elapsed()));
        ctl.until_cancelled(tokio::time::sleep(pause)).await.map_err(|_| anyhow::anyhow!("cancelled"))?;
    }
}

/// The SpecReport in a `spec-report` artifact (`report.json` anywhere in the zip), checked
/// against the report's JSON Schema before it is trusted.
pub fn report_from_zip(bytes: &[u8]) -> Result<SpecReport> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).context("the artifact is not a zip file")?;
    let name = archive
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .find(|n| n == "report.json" || n.ends_with("/report.json"))
        .context("the artifact has no report.json")?;
    let file = archive.by_name(&name)?;
    let mut text = String::new();
    file.take(REPORT_MAX_BYTES).read_to_string(&mut text).context("report.json is not UTF-8 text")?;
    let value: Value = serde_json::from_str(&text).context("report.json is not JSON")?;
    let schema: Value = serde_json::from_str(crate::registry::SPEC_REPORT_SCHEMA).context("the spec-report schema")?;
    let validator = jsonschema::validator_for(&schema).map_err(|e| anyhow::anyhow!("the spec-report schema: {e}"))?;
    if let Some(err) = validator.iter_errors(&value).next() {
        bail!("report.json does not match the SpecReport schema at '{}': {err}", err.instance_path());
    }
    serde_json::from_value(value).context("report.json")
}

/// Creates the comment carrying `marker` on `issue`, or edits it when a run is looked at again
/// (a redelivered event, a resumed job).
async fn upsert_comment(platform: &dyn Platform, issue: u64, marker: &str, body: &str) -> Result<u64> {
    match platform.find_bot_comment(issue, marker).await? {
        Some((id, _)) => {
            platform.update_comment(id, body).await?;
            Ok(id)
        }
        None => platform.create_comment(issue, body).await,
    }
}

/// Writes the CI line into the request issue's status comment, leaving the rest as it is.
async fn set_ci_block(platform: &dyn Platform, issue: u64, text: &str) {
    let result = async {
        let Some((id, body)) = platform.find_bot_comment(issue, MARKER).await? else { return Ok(()) };
        if Meta::parse(&body).is_none() {
            return Ok(());
        }
        platform.update_comment(id, &with_ci_block(&body, text)).await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(issue, "updating the status comment with the CI result failed: {e:#}");
    }
}

/// The status comment with its CI block replaced (or added before the hidden metadata).
pub fn with_ci_block(body: &str, text: &str) -> String {
    let block = format!("{CI_BLOCK_START}\n**CI:** {}\n{CI_BLOCK_END}\n", text.trim());
    if let (Some(start), Some(end)) = (body.find(CI_BLOCK_START), body.find(CI_BLOCK_END))
        && start < end
    {
        let after = &body[end + CI_BLOCK_END.len()..];
        return format!("{}{block}{}", &body[..start], after.strip_prefix('\n').unwrap_or(after));
    }
    match body.find(MARKER) {
        Some(at) => format!("{}{block}\n{}", &body[..at], &body[at..]),
        None => format!("{body}\n\n{block}"),
    }
}

/// Whether the default branch's own CI is green: the newest run of each workflow on it
/// completed successfully. No runs at all is not green: the factory cannot tell.
async fn base_is_green(platform: &dyn Platform) -> Result<Result<(), String>> {
    let base = platform.default_branch().await?;
    let runs = platform.runs_on_branch(&base).await?;
    if runs.is_empty() {
        return Ok(Err(format!("the base branch `{base}` has no CI runs to show it is green")));
    }
    let mut seen = std::collections::BTreeSet::new();
    let repo = platform.repository();
    // `branch=` also matches a fork's branch of the same name: only this repository's runs count.
    let own = |r: &&WorkflowRun| r.head_repository.as_deref().is_none_or(|h| h.eq_ignore_ascii_case(&repo));
    for r in runs.iter().filter(own).filter(|r| r.head_branch.as_deref() == Some(base.as_str()) || r.head_branch.is_none()) {
        if !seen.insert(file_name(&r.path).to_string()) {
            continue;
        }
        if !r.succeeded() {
            let state = r.conclusion.clone().unwrap_or_else(|| r.status.clone());
            return Ok(Err(format!("the base branch `{base}` is not green (`{}` is {state})", file_name(&r.path))));
        }
    }
    Ok(Ok(()))
}

/// What failed, for a fix attempt.
#[derive(Clone, Copy)]
struct Failure<'a> {
    run: &'a WorkflowRun,
    pull: &'a PullRequest,
    analysis: &'a FailureAnalysis,
    report: Option<&'a SpecReport>,
}

async fn fix(platform: &dyn Platform, store: &dyn Store, cfg: &PipelineConfig, ctl: &Control, f: &Failure<'_>) -> FixOutcome {
    let analysis = f.analysis;
    let max = cfg.learning.max_fix_attempts;
    let skipped = |reason: String| FixOutcome::Skipped { reason };
    if max == 0 {
        return skipped("automatic fixes are turned off".into());
    }
    if analysis.is_empty() {
        return skipped("no spec-test check failed, so there is nothing for the agent to fix".into());
    }
    if crate::agent::llm::LlmConfig::from_settings(&cfg.llm).is_none() {
        return skipped("no LLM is configured, and the builtin generator would write the same files again".into());
    }
    match base_is_green(platform).await {
        Ok(Ok(())) => {}
        Ok(Err(why)) => return skipped(why),
        Err(e) => return skipped(format!("the base branch's CI could not be read: {e:#}")),
    }
    match attempt(platform, store, cfg, ctl, f).await {
        Ok(outcome) => outcome,
        Err(e) => skipped(format!("{e:#}")),
    }
}

async fn attempt(
    platform: &dyn Platform,
    store: &dyn Store,
    cfg: &PipelineConfig,
    ctl: &Control,
    f: &Failure<'_>,
) -> Result<FixOutcome> {
    let Failure { run, pull, analysis, report } = *f;
    let max = cfg.learning.max_fix_attempts;
    let branch = pull.head.clone();
    let connector = branch.trim_start_matches(CONNECTOR_BRANCH_PREFIX).to_string();
    let default_branch = platform.default_branch().await?;
    let remote = Remote { url: platform.remote_url().await?, credentials: platform.git_credentials().await? };
    let parent = cfg.workspace_parent.clone();
    let wanted = branch.clone();
    let ws = blocking(move || Workspace::open(remote, &default_branch, &wanted, parent.as_deref()).map_err(Into::into)).await?;
    if ws.branch_tip().as_deref() != Some(run.head_sha.as_str()) {
        return Ok(FixOutcome::Skipped {
            reason: format!("`{branch}` moved on since this run; the newer commit's CI will report"),
        });
    }
    match ws.ensure_branch_is_ours(&cfg.identity) {
        Ok(()) => {}
        Err(GitError::ForeignCommits { commits, .. }) => {
            return Ok(FixOutcome::Skipped {
                reason: format!(
                    "someone other than the factory pushed to `{branch}` ({} commit(s)); the factory does not change a \
                     branch people work on",
                    commits.len()
                ),
            });
        }
        Err(e) => return Err(e.into()),
    }

    // Counted before the work starts, so a crash in the middle still uses the attempt up.
    let query = LedgerQuery {
        repository: platform.repository(),
        kind: FIX_KIND.into(),
        subject: Some(format!("pr:{}", pull.number)),
        since: None,
    };
    let entry = LedgerEntry {
        subject: format!("pr:{}", pull.number),
        key: format!("pr:{}:run:{}:{}", pull.number, run.id, run.run_attempt),
        note: json!({ "run": run.id, "head_sha": run.head_sha }),
    };
    let number = match store.ledger_take(&query, max, &entry).await? {
        LedgerTake::Taken(n) | LedgerTake::AlreadyTaken(n) => n,
        LedgerTake::LimitReached(n) => return Ok(FixOutcome::Exhausted { attempts: n }),
    };
    let failed = |error: String| FixOutcome::Failed { attempt: number, max, error };

    let folder = PathBuf::from("registry").join(&connector);
    if !ws.restore_from_branch(&folder)? {
        return Ok(failed(format!("`{branch}` has no `{}` folder", folder.display())));
    }
    let Some(impl_rel) = implementation_path(ws.root(), &connector, report) else {
        return Ok(failed(format!("no implementation with a connector.json below `{}`", folder.display())));
    };
    let Some(issue) = super::pr::closed_issue(&platform.issue_body(pull.number).await?) else {
        return Ok(failed(format!("PR #{} does not say which request it closes", pull.number)));
    };
    let request = match crate::request::parse(&platform.issue_body(issue).await?) {
        Ok(r) => r,
        Err(invalid) => return Ok(failed(format!("the request #{issue} no longer parses: {invalid}"))),
    };
    let input = ProduceInput {
        request,
        connector: connector.clone(),
        tree: ws.root().to_path_buf(),
        guidance: Some(analysis.to_guidance()),
        author: cfg.author.clone(),
        resume: Some(impl_rel.strip_prefix("registry").unwrap_or(&impl_rel).to_path_buf()),
    };
    let produced = match ctl.until_cancelled(produce_connector(&input, cfg)).await {
        Err(_) => bail!("cancelled"),
        Ok(Err(e)) => return Ok(failed(format!("{e:#}"))),
        Ok(Ok(p)) => p,
    };
    let dir = produced.impl_dir.clone();
    let findings = blocking(move || crate::validate::validate_implementation(&dir)).await?;
    let errors = findings.iter().filter(|f| f.severity == crate::validate::Severity::Error).count();
    let spec = match reusable_report(&produced, &impl_rel, &cfg.spec_tests).await {
        Some(report) => Ok(report),
        None => ctl
            .until_cancelled(spec_tests(&produced.impl_dir, &impl_rel, &cfg.spec_tests))
            .await
            .map_err(|_| anyhow::anyhow!("cancelled"))?,
    };
    let passed = errors == 0 && spec.as_ref().is_ok_and(|r| r.passed);
    let message = format!(
        "Fix {} after failing spec tests (attempt {number}/{max})\n\nCI run {} failed {} check(s); local checks {}.",
        connector,
        run.id,
        analysis.failed_checks(),
        if passed { "pass" } else { "still fail" }
    );
    let identity = cfg.identity.clone();
    let committed = blocking(move || {
        let committed = match ws.commit_connector(&folder, &message, &identity) {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        ws.push(&committed)?;
        Ok(Some(committed))
    })
    .await;
    Ok(match committed {
        Ok(Some(c)) => FixOutcome::Pushed { attempt: number, max, commit: c.id, local_checks_passed: passed },
        Ok(None) => FixOutcome::Unchanged { attempt: number, max },
        Err(e) => failed(format!("{e:#}")),
    })
}

/// The implementation folder to fix, relative to the workspace: the report's, else the first
/// folder below `registry/<connector>` that has a manifest.
fn implementation_path(root: &Path, connector: &str, report: Option<&SpecReport>) -> Option<PathBuf> {
    let prefix = format!("registry/{connector}/");
    if let Some(r) = report {
        for imp in &r.implementations {
            let p = imp.path.trim_start_matches("./");
            if p.starts_with(&prefix) && root.join(p).join(crate::registry::MANIFEST).is_file() {
                return Some(PathBuf::from(p));
            }
        }
    }
    let base = root.join("registry").join(connector);
    let mut found: Vec<PathBuf> = walkdir::WalkDir::new(&base)
        .min_depth(4)
        .max_depth(4)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_dir() && e.path().join(crate::registry::MANIFEST).is_file())
        .filter_map(|e| e.path().strip_prefix(root).ok().map(Path::to_path_buf))
        .collect();
    found.sort();
    found.into_iter().next()
}

/// Posts the regression guard's result on an improvement PR.
async fn regression_report(platform: &dyn Platform, run: &WorkflowRun, branch: &str) -> Result<CiOutcome> {
    let Some(pull) = platform.find_pull_by_head(branch).await?.filter(|p| p.state == "open") else {
        return Ok(CiOutcome::new(CiVerdict::Ignored, format!("no open improvement PR from '{branch}'")));
    };
    if !run.is_completed() {
        return Ok(CiOutcome::new(CiVerdict::Ignored, format!("run {} has not completed", run.id)));
    }
    let report = match platform.download_artifact(run.id, REPORT_ARTIFACT).await? {
        Some(zip) => report_from_zip(&zip).ok(),
        None => None,
    };
    let mut body = String::from("### 🛡️ Regression guard\n\n");
    match &report {
        Some(r) => {
            let failing: Vec<&crate::spectest::ImplementationReport> =
                r.implementations.iter().filter(|i| !i.passed).collect();
            let _ = writeln!(
                body,
                "[Run]({}) of the spec tests over every connector in the registry with this PR's skills and \
                 scaffolds: {} of {} implementation(s) pass.\n",
                run.html_url,
                r.implementations.len() - failing.len(),
                r.implementations.len()
            );
            if failing.is_empty() {
                let _ = writeln!(body, "✅ Nothing broke.");
            } else {
                let _ = writeln!(body, "❌ This change breaks:\n");
                for i in failing {
                    let ids: Vec<String> = i
                        .checks
                        .iter()
                        .filter(|c| c.status == crate::spectest::Status::Failed)
                        .map(|c| format!("`{}`", c.id))
                        .collect();
                    let _ = writeln!(body, "- `{}`: {}", i.path, ids.join(", "));
                }
            }
        }
        None => {
            let _ = writeln!(
                body,
                "[Run]({}) ended `{}` without a usable `spec-report` artifact; look at its logs.",
                run.html_url,
                run.conclusion.as_deref().unwrap_or("unknown")
            );
        }
    }
    let marker = format!("{REGRESSION_MARKER}{} -->", json!({ "run": run.id, "attempt": run.run_attempt }));
    body.push_str(&format!("\n{marker}"));
    upsert_comment(platform, pull.number, &marker, &body).await?;
    let mut out = CiOutcome::new(CiVerdict::RegressionReported, format!("regression result posted on #{}", pull.number));
    out.pull_request = Some(pull.number);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ci_block_is_added_once_and_then_replaced() {
        let body = "### status\n\ntext\n\n<!-- factory:{\"issue\":1} -->";
        let once = with_ci_block(body, "✅ passed");
        assert!(once.contains("**CI:** ✅ passed"), "{once}");
        assert!(once.ends_with("<!-- factory:{\"issue\":1} -->"), "the metadata stays last: {once}");
        let twice = with_ci_block(&once, "❌ failed");
        assert!(twice.contains("**CI:** ❌ failed") && !twice.contains("passed"), "{twice}");
        assert_eq!(twice.matches(CI_BLOCK_START).count(), 1);
    }
}

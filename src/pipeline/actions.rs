//! The Actions executor: generation on GitHub Actions runners instead of the app's server.
//!
//! With `executor = "actions"` (`FACTORY_EXECUTOR=actions`) the server never clones, generates
//! or runs agent-written code. For each generate or retry job it:
//!
//! ```text
//! may the person command the bot? (fail closed) ─ no ─▶ polite refusal, stop
//! a run of generate.yml named "factory job <id> for #<n>" exists? ─ yes ─▶ track it (a restart)
//! workflow_dispatch generate.yml on the default branch, inputs: issue, job, requested-by, comment
//! track the run: its status, and the status comment's phase mirrored into the job store
//!   the job is cancelled or superseded ─▶ cancel the run
//! completed ─▶ the runner's Outcome (artifact `generate-outcome`) becomes the job's result;
//!              a run that died before saying how it ended gets a failed status comment
//! ```
//!
//! On the runner, `connector-factory generate --issue N` ([`run_on_runner`]) runs the very same
//! [`generate::run`] as a local worker would, on the repository the workflow runs in, with an
//! installation token the workflow minted for that repository alone. It edits the same status
//! comment (found by its marker) and opens or updates the same PR.
//!
//! The run is found again by its name, so the server keeps no state of its own about it: after a
//! restart the resumed job looks the run up instead of starting a second one.

use super::generate::{self, GenerateJob, Outcome, Trigger, Verdict};
use super::status::{MARKER, Meta, Phase, Status};
use super::{Control, PipelineConfig, commands};
use crate::command::{self, Command};
use crate::config::Secret;
use crate::github::client::InstallationClient;
use crate::github::platform::GitHubPlatform;
use crate::platform::{Platform, WorkflowRun};
use crate::store::Job;
use crate::worker::JobOutcome;
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The workflow file, in `.github/workflows/`.
pub const GENERATE_WORKFLOW: &str = "generate.yml";
/// The artifact the workflow uploads with the runner's [`Outcome`] as `outcome.json`.
pub const OUTCOME_ARTIFACT: &str = "generate-outcome";
pub const OUTCOME_FILE: &str = "outcome.json";
/// The runner's outcome is small (a transcript at most); anything bigger is not ours.
const OUTCOME_MAX_BYTES: u64 = 8 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionsConfig {
    pub workflow: String,
    /// Time between looks at the run.
    pub poll: Duration,
    /// How long a dispatched run may take to show up in the run list when GitHub did not say
    /// which run it started.
    pub find_run_within: Duration,
}

impl Default for ActionsConfig {
    fn default() -> Self {
        ActionsConfig {
            workflow: GENERATE_WORKFLOW.into(),
            poll: crate::config::DEFAULT_ACTIONS_POLL,
            find_run_within: Duration::from_secs(60),
        }
    }
}

/// The run's name: `run-name: factory job ${{ inputs.job }} for #${{ inputs.issue }}` in
/// generate.yml renders to exactly this.
pub fn run_title(job: i64, number: u64) -> String {
    format!("factory job {job} for #{number}")
}

/// What the workflow is given. Only numbers and a login: the retry's guidance is read from the
/// comment on the runner, so no text anyone can write passes through the dispatch.
pub fn dispatch_inputs(job: i64, input: &GenerateJob) -> BTreeMap<String, String> {
    let mut inputs = BTreeMap::new();
    inputs.insert("issue".to_string(), input.number.to_string());
    inputs.insert("job".to_string(), job.to_string());
    inputs.insert("requested-by".to_string(), input.person().to_string());
    let (comment, on_pull) = match &input.trigger {
        Trigger::Retry { comment_id, on_pull_request, .. } => (comment_id.to_string(), *on_pull_request),
        Trigger::Request { .. } => (String::new(), false),
    };
    inputs.insert("comment".to_string(), comment);
    inputs.insert("on-pull-request".to_string(), on_pull.to_string());
    inputs
}

/// The server's side: dispatch (or find again) and track one generate job's run.
pub async fn run(platform: &dyn Platform, job: &Job, cfg: &ActionsConfig, ctl: &Control) -> Result<JobOutcome> {
    let input = GenerateJob::from_job(job)?;
    if let Some(refused) = generate::refuse_without_write_access(platform, &input).await {
        return Ok(refused.into_job_outcome());
    }
    let title = run_title(job.id.0, input.number);
    let run = match find_run(platform, &cfg.workflow, &title).await? {
        Some(run) => {
            tracing::info!(run = run.id, "found this job's run on GitHub Actions; tracking it again");
            run
        }
        None => {
            // The runner reacts too (GitHub keeps one reaction), but the person should see it
            // before a runner has started.
            generate::acknowledge(platform, &input).await;
            ctl.phase(Phase::Queued).await;
            let branch = platform.default_branch().await?;
            let inputs = dispatch_inputs(job.id.0, &input);
            match platform.dispatch_workflow(&cfg.workflow, &branch, &inputs).await? {
                Some(d) => platform.workflow_run(d.run_id).await?,
                None => wait_for_run(platform, cfg, &title, ctl).await?,
            }
        }
    };
    tracing::info!(run = run.id, url = %run.html_url, "generation runs on GitHub Actions");
    let finished = match track(platform, run, cfg, &input, ctl).await? {
        Tracked::Completed(run) => run,
        Tracked::Stopped(run) => {
            let mut result = json!({"verdict": Verdict::Cancelled});
            result["executor"] = executor_facts(&run);
            return Ok(JobOutcome::Failed { error: "cancelled".into(), result: Some(result) });
        }
    };
    collect(platform, job, &input, &finished).await
}

async fn find_run(platform: &dyn Platform, workflow: &str, title: &str) -> Result<Option<WorkflowRun>> {
    let runs = platform.workflow_runs(workflow, "workflow_dispatch").await?;
    Ok(runs.into_iter().find(|r| r.display_title.as_deref() == Some(title)))
}

/// GitHub answered the dispatch without naming the run: look for it by name for a while.
async fn wait_for_run(platform: &dyn Platform, cfg: &ActionsConfig, title: &str, ctl: &Control) -> Result<WorkflowRun> {
    let started = Instant::now();
    loop {
        if let Some(run) = find_run(platform, &cfg.workflow, title).await? {
            return Ok(run);
        }
        if started.elapsed() >= cfg.find_run_within {
            bail!("the run '{title}' of {} did not appear within {:?} of dispatching it", cfg.workflow, cfg.find_run_within);
        }
        ctl.until_cancelled(tokio::time::sleep(cfg.poll.min(Duration::from_secs(5)))).await?;
    }
}

enum Tracked {
    Completed(WorkflowRun),
    /// The job was cancelled or superseded (the run is cancelled with it), or the server is
    /// stopping (the run goes on and the resumed job finds it again).
    Stopped(WorkflowRun),
}

async fn track(
    platform: &dyn Platform,
    mut run: WorkflowRun,
    cfg: &ActionsConfig,
    input: &GenerateJob,
    ctl: &Control,
) -> Result<Tracked> {
    let mut mirrored: Option<Phase> = None;
    // Found once by listing the issue's comments, then read by its id at each look.
    let mut status_comment: Option<u64> = None;
    let mut failures = 0u32;
    loop {
        if run.is_completed() {
            return Ok(Tracked::Completed(run));
        }
        if ctl.until_cancelled(tokio::time::sleep(cfg.poll)).await.is_err() {
            // Still ours in the store: the server is stopping (or the job timed out), and the
            // run may finish on its own. Not ours: cancelled or superseded, so the run stops too.
            let still_ours = ctl.phase(mirrored.unwrap_or(Phase::Queued)).await;
            if !still_ours {
                match platform.cancel_run(run.id).await {
                    Ok(()) => tracing::info!(run = run.id, "cancelled the Actions run with its job"),
                    Err(err) => tracing::warn!(run = run.id, "cancelling the Actions run failed: {err:#}"),
                }
            }
            return Ok(Tracked::Stopped(run));
        }
        match platform.workflow_run(run.id).await {
            Ok(now) => {
                run = now;
                failures = 0;
            }
            // GitHub's own retries are done by the client; a few failed looks in a row are
            // still no reason to give up on a run that may be fine.
            Err(err) if failures < 5 => {
                failures += 1;
                tracing::warn!(run = run.id, "looking at the Actions run failed ({failures}): {err:#}");
                continue;
            }
            Err(err) => return Err(err.context(format!("looking at Actions run {}", run.id))),
        }
        // The runner writes its phase into the status comment; the job store follows it, so
        // the dashboard and `/factory status` show where the run is. Nothing to follow before a
        // runner has the run (a queued run can wait a long time for one).
        if run.status != "in_progress" {
            continue;
        }
        let known = match status_comment {
            Some(id) => platform.comment(id).await.ok().map(|c| c.body),
            None => None,
        };
        let body = match known {
            Some(body) => Some(body),
            None => platform.find_bot_comment(input.number, MARKER).await.ok().flatten().map(|(id, body)| {
                status_comment = Some(id);
                body
            }),
        };
        if let Some(body) = body
            && let Some(meta) = Meta::parse(&body)
            && meta.phase.is_running()
            && mirrored != Some(meta.phase)
        {
            mirrored = Some(meta.phase);
            if !ctl.phase(meta.phase).await {
                ctl.cancelled().cancel();
            }
        }
    }
}

fn executor_facts(run: &WorkflowRun) -> Value {
    json!({"kind": "actions", "run_id": run.id, "run_url": run.html_url, "conclusion": run.conclusion})
}

/// The finished run's outcome: the runner's own account when it uploaded one, else what the
/// status comment says; a run that ended without either is reported on the issue.
async fn collect(platform: &dyn Platform, job: &Job, input: &GenerateJob, run: &WorkflowRun) -> Result<JobOutcome> {
    let reported = match platform.download_artifact(run.id, OUTCOME_ARTIFACT).await {
        Ok(Some(zip)) => match outcome_from_zip(&zip) {
            Ok(v) => Some(v),
            Err(err) => {
                tracing::warn!(run = run.id, "the run's outcome artifact is unusable: {err:#}");
                None
            }
        },
        Ok(None) => None,
        Err(err) => {
            tracing::warn!(run = run.id, "downloading the run's outcome failed: {err:#}");
            None
        }
    };
    let issue = match reported.as_ref().and_then(|o| o["issue"].as_u64()) {
        Some(n) => n,
        None => commands::request_issue(platform, job, input.number).await,
    };
    let status = platform.find_bot_comment(issue, MARKER).await.ok().flatten();
    let meta = status.as_ref().and_then(|(_, body)| Meta::parse(body));
    let verdict = reported
        .as_ref()
        .and_then(|o| o["verdict"].as_str().map(str::to_string))
        .or_else(|| meta.as_ref().and_then(|m| verdict_of(m.phase)).map(|v| json!(v).as_str().unwrap_or_default().to_string()));

    let mut result = reported.unwrap_or_else(|| json!({"issue": issue}));
    if let Some(map) = result.as_object_mut() {
        map.remove("pr_body");
    }
    result["executor"] = executor_facts(run);
    if let Some(v) = &verdict {
        result["verdict"] = json!(v);
    }
    if matches!(verdict.as_deref(), Some("pr_opened" | "exists")) {
        return Ok(JobOutcome::Succeeded(result));
    }
    let conclusion = run.conclusion.clone().unwrap_or_else(|| "unknown".into());
    let error = match (&verdict, result["error"].as_str()) {
        (Some(_), Some(e)) => e.to_string(),
        (Some(v), None) => v.clone(),
        (None, _) => format!("the GitHub Actions run ended '{conclusion}' before the job said how it went"),
    };
    // The runner died before writing an ending (no runner, a crash, a cancelled run): say so
    // where the person looks, with the run's log one click away.
    if verdict.is_none() || meta.as_ref().is_some_and(|m| m.phase.is_running()) {
        let mut status_text = Status::new(Meta {
            issue,
            job: Some(job.id.0),
            phase: Phase::Failed,
            branch: meta.as_ref().and_then(|m| m.branch.clone()),
            pr: meta.as_ref().and_then(|m| m.pr),
            attempts: meta.as_ref().map(|m| m.attempts).unwrap_or(0),
        });
        status_text.failed_in = meta.as_ref().map(|m| m.phase).filter(|p| p.is_running());
        status_text.runner_url = Some(run.html_url.clone());
        status_text.detail = Some(format!(
            "The GitHub Actions run ended `{conclusion}` before the job finished; [its log]({}) says why.\n\n\
             Comment `/factory retry <guidance>` to try again.",
            run.html_url
        ));
        let body = status_text.render();
        let written = match &status {
            Some((id, _)) => platform.update_comment(*id, &body).await,
            None => platform.create_comment(issue, &body).await.map(|_| ()),
        };
        if let Err(err) = written {
            tracing::warn!(issue, "writing the status comment failed: {err:#}");
        }
        result["verdict"] = json!(Verdict::Failed);
    }
    Ok(JobOutcome::Failed { error, result: Some(result) })
}

fn verdict_of(phase: Phase) -> Option<Verdict> {
    Some(match phase {
        Phase::PrOpened => Verdict::PrOpened,
        Phase::Exists => Verdict::Exists,
        Phase::InvalidRequest => Verdict::InvalidRequest,
        Phase::NeedsDecision => Verdict::NeedsDecision,
        Phase::Failed => Verdict::Failed,
        Phase::Cancelled => Verdict::Cancelled,
        _ => return None,
    })
}

/// `outcome.json` from the artifact's zip.
pub fn outcome_from_zip(bytes: &[u8]) -> Result<Value> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).context("the artifact is not a zip file")?;
    let file = archive.by_name(OUTCOME_FILE).with_context(|| format!("the artifact has no {OUTCOME_FILE}"))?;
    let mut text = String::new();
    file.take(OUTCOME_MAX_BYTES).read_to_string(&mut text).with_context(|| format!("{OUTCOME_FILE} is not UTF-8 text"))?;
    let value: Value = serde_json::from_str(&text).with_context(|| format!("{OUTCOME_FILE} is not JSON"))?;
    if !value["verdict"].is_string() {
        bail!("{OUTCOME_FILE} has no verdict");
    }
    Ok(value)
}

// ---- the runner's side ----

/// `connector-factory generate --issue N`: the generate stage for one issue, on the repository
/// this GitHub Actions run belongs to.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RunnerArgs {
    /// The request issue (or, for a retry asked there, the pull request) to build. Reads
    /// FACTORY_GITHUB_TOKEN (an installation token of the app for this repository),
    /// FACTORY_BOT_LOGIN (`<app-slug>[bot]`), GITHUB_REPOSITORY and GITHUB_API_URL.
    #[arg(long, value_name = "N", conflicts_with = "request")]
    pub issue: Option<u64>,
    /// The `/factory retry` comment that asked for this build; its guidance is read from it.
    #[arg(long, value_name = "ID", requires = "issue")]
    pub comment: Option<u64>,
    /// The retry was asked on the pull request (`--issue` is the PR's number).
    #[arg(long, requires = "comment")]
    pub on_pull_request: bool,
    /// Who asked (required for a request; a retry's commenter by default); checked for write
    /// access.
    #[arg(long, value_name = "LOGIN", requires = "issue")]
    pub requested_by: Option<String>,
    /// The app's job id, kept on the status comment.
    #[arg(long, value_name = "ID", requires = "issue")]
    pub job: Option<i64>,
    /// Where to write the outcome as JSON (the workflow uploads it).
    #[arg(long, value_name = "FILE", requires = "issue")]
    pub outcome: Option<PathBuf>,
}

/// What the runner reads from its environment.
#[derive(Debug, Clone)]
pub struct RunnerEnv {
    pub api_url: String,
    pub repository: String,
    pub token: Secret,
    pub bot_login: String,
    /// This run's page, for the status comment.
    pub run_url: Option<String>,
}

impl RunnerEnv {
    /// Every missing variable is named at once.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<RunnerEnv> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let mut missing = Vec::new();
        let mut need = |k: &str, why: &str| {
            let v = get(k);
            if v.is_none() {
                missing.push(format!("{k} ({why})"));
            }
            v.unwrap_or_default()
        };
        let repository = need("GITHUB_REPOSITORY", "owner/name of the repository; GitHub Actions sets it");
        let token = need("FACTORY_GITHUB_TOKEN", "an installation token of the app, e.g. from actions/create-github-app-token");
        let bot_login = need("FACTORY_BOT_LOGIN", "the app's bot account, '<app-slug>[bot]'");
        if !missing.is_empty() {
            bail!("generate --issue needs these environment variables:\n  {}", missing.join("\n  "));
        }
        let run_url = match (get("GITHUB_SERVER_URL"), get("GITHUB_RUN_ID")) {
            (Some(server), Some(id)) => Some(format!("{}/{repository}/actions/runs/{id}", server.trim_end_matches('/'))),
            _ => None,
        };
        Ok(RunnerEnv {
            api_url: get("GITHUB_API_URL").unwrap_or_else(|| crate::config::DEFAULT_API_URL.into()),
            repository,
            token: Secret::new(token),
            bot_login,
            run_url,
        })
    }

    pub fn platform(&self) -> Result<GitHubPlatform> {
        let client = InstallationClient::with_token(&self.api_url, self.token.clone(), &self.bot_login)?;
        GitHubPlatform::new(client, &self.repository)
    }
}

/// Builds the job the server dispatched from the runner's arguments, reading what the
/// arguments only point at (the issue's author, the retry comment's guidance).
pub async fn runner_job(platform: &dyn Platform, args: &RunnerArgs) -> Result<GenerateJob> {
    let number = args.issue.context("--issue is required")?;
    let trigger = match args.comment {
        Some(comment_id) => {
            let comment = platform.comment(comment_id).await.with_context(|| format!("reading comment {comment_id}"))?;
            let guidance = command::parse(&comment.body).into_iter().find_map(|c| match c {
                Command::Retry { guidance } => Some(guidance),
                _ => None,
            });
            Trigger::Retry {
                on_pull_request: args.on_pull_request,
                comment_id,
                commenter: args.requested_by.clone().unwrap_or(comment.author),
                guidance: guidance.flatten().filter(|g: &String| !g.trim().is_empty()),
            }
        }
        None => {
            let issue = platform.issue_body(number).await.with_context(|| format!("reading issue #{number}"))?;
            let requester = args
                .requested_by
                .clone()
                .context("--requested-by is needed with --issue: the person whose write access allows the build")?;
            Trigger::Request { body: issue, requester }
        }
    };
    Ok(GenerateJob { number, trigger, local_base: None })
}

/// Entry point on the runner; exit 0 when the issue ended with a PR (or an existing connector).
pub fn run_on_runner(args: RunnerArgs) -> Result<u8> {
    super::run::init_cli_tracing();
    let env = RunnerEnv::from_env(|k| std::env::var(k).ok())?;
    let settings = crate::config::Settings::load(&crate::config::Source::from_process(None));
    let mut cfg = PipelineConfig::from_settings(&settings);
    cfg.executor = super::Executor::Local;
    cfg.runner_url = env.run_url.clone();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let outcome = runtime.block_on(async {
        let platform = env.platform()?;
        let job = runner_job(&platform, &args).await?;
        let ctl = Control::on_behalf_of(tokio_util::sync::CancellationToken::new(), args.job);
        anyhow::Ok(generate::run(&platform, &job, &cfg, &ctl).await)
    })?;
    report(&outcome, args.outcome.as_deref())?;
    Ok(if matches!(outcome.verdict, Verdict::PrOpened | Verdict::Exists) { 0 } else { 1 })
}

/// The outcome as the workflow uploads it: everything but the PR body (it is on GitHub).
pub fn outcome_json(outcome: &Outcome) -> Value {
    let mut value = serde_json::to_value(outcome).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.remove("pr_body");
    }
    value
}

fn report(outcome: &Outcome, file: Option<&std::path::Path>) -> Result<()> {
    let line = match (&outcome.pr, &outcome.error) {
        (Some(pr), _) => format!("{}: {}", json!(outcome.verdict).as_str().unwrap_or_default(), pr.url),
        (None, Some(e)) => format!("{}: {e}", json!(outcome.verdict).as_str().unwrap_or_default()),
        (None, None) => json!(outcome.verdict).as_str().unwrap_or_default().to_string(),
    };
    println!("{line}");
    if let Some(path) = file {
        std::fs::write(path, serde_json::to_vec_pretty(&outcome_json(outcome))?).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runner_names_every_missing_variable_at_once() {
        let err = RunnerEnv::from_env(|k| (k == "GITHUB_REPOSITORY").then(|| "acme/connectors".to_string())).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("FACTORY_GITHUB_TOKEN") && text.contains("FACTORY_BOT_LOGIN"), "{text}");
        assert!(!text.contains("GITHUB_REPOSITORY ("), "{text}");
        let env = RunnerEnv::from_env(|k| match k {
            "GITHUB_REPOSITORY" => Some("acme/connectors".into()),
            "FACTORY_GITHUB_TOKEN" => Some("ghs_0123456789abcdef0123456789abcdef0123".into()),
            "FACTORY_BOT_LOGIN" => Some("factory[bot]".into()),
            "GITHUB_SERVER_URL" => Some("https://github.com/".into()),
            "GITHUB_RUN_ID" => Some("99".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(env.api_url, crate::config::DEFAULT_API_URL);
        assert_eq!(env.run_url.as_deref(), Some("https://github.com/acme/connectors/actions/runs/99"));
        assert!(!format!("{env:?}").contains("ghs_0123"), "the token never shows in debug output");
    }

    #[test]
    fn dispatch_inputs_carry_no_free_text() {
        let job = GenerateJob {
            number: 12,
            trigger: Trigger::Retry {
                on_pull_request: true,
                comment_id: 555,
                commenter: "maya".into(),
                guidance: Some("use `cursor` paging; $(rm -rf /)".into()),
            },
            local_base: None,
        };
        let inputs = dispatch_inputs(7, &job);
        let pairs: Vec<(&str, &str)> = inputs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            [("comment", "555"), ("issue", "12"), ("job", "7"), ("on-pull-request", "true"), ("requested-by", "maya")]
        );
    }

    #[test]
    fn the_outcome_artifact_must_hold_a_verdict() {
        let zip_of = |name: &str, text: &str| {
            let mut buf = std::io::Cursor::new(Vec::new());
            let mut w = zip::ZipWriter::new(&mut buf);
            w.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
            std::io::Write::write_all(&mut w, text.as_bytes()).unwrap();
            w.finish().unwrap();
            buf.into_inner()
        };
        let ok = outcome_from_zip(&zip_of(OUTCOME_FILE, r#"{"verdict":"pr_opened","issue":3}"#)).unwrap();
        assert_eq!(ok["issue"], 3);
        let no_verdict = outcome_from_zip(&zip_of(OUTCOME_FILE, r#"{"issue":3}"#)).unwrap_err();
        assert!(no_verdict.to_string().contains("no verdict"), "{no_verdict}");
        let wrong_name = outcome_from_zip(&zip_of("other.json", "{}")).unwrap_err();
        assert!(wrong_name.to_string().contains(OUTCOME_FILE), "{wrong_name}");
        assert!(outcome_from_zip(b"not a zip").is_err());
    }
}

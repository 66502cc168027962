//! Where the factory's repository lives, as the pipeline sees it.
//!
//! The pipeline never talks to GitHub directly: it asks a [`Platform`] for the default branch,
//! where to clone from, whether someone may command the bot, and to write comments and pull
//! requests. `GitHubPlatform` (the GitHub App) is one implementation; [`local::LocalPlatform`]
//! is another, which treats a repository on disk as the platform and writes what it would post
//! into a folder, so `connector-factory run` goes through the very same pipeline offline.

pub mod dry_run;
pub mod local;
pub mod recorder;

use crate::config::Secret;
use serde::{Deserialize, Serialize};

/// A pull request as the pipeline needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    pub number: u64,
    pub url: String,
    /// The head branch name, without `refs/heads/`.
    pub head: String,
    /// `open` or `closed`.
    pub state: String,
    pub draft: bool,
}

/// What to open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrSpec {
    pub branch: String,
    pub base: String,
    pub title: String,
    pub body: String,
    pub labels: Vec<String>,
    pub draft: bool,
}

/// A GitHub Actions workflow run, as the learning loop needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowRun {
    pub id: u64,
    /// The workflow file, e.g. `.github/workflows/spec-tests.yml`.
    pub path: String,
    pub name: Option<String>,
    pub head_branch: Option<String>,
    pub head_sha: String,
    /// `owner/name` of the repository the head commit lives in (differs for fork PRs).
    pub head_repository: Option<String>,
    /// What started it: `pull_request`, `push`, `workflow_dispatch`, ...
    pub event: String,
    /// `queued`, `in_progress`, `completed`, ...
    pub status: String,
    /// Once completed: `success`, `failure`, `cancelled`, `timed_out`, `skipped`, ...
    pub conclusion: Option<String>,
    pub html_url: String,
    pub run_attempt: u32,
    /// The rendered `run-name` (what the Actions page lists the run as).
    #[serde(default)]
    pub display_title: Option<String>,
}

impl WorkflowRun {
    pub fn is_completed(&self) -> bool {
        self.status == "completed"
    }

    /// Completed with a conclusion that does not mean trouble.
    pub fn succeeded(&self) -> bool {
        self.is_completed() && matches!(self.conclusion.as_deref(), Some("success" | "skipped" | "neutral"))
    }
}

/// A connector-request issue, as `batch` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueSummary {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub author: String,
    pub url: String,
}

/// A comment, as a job run elsewhere reads it again (the runner of a `/factory retry`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentText {
    pub author: String,
    pub body: String,
}

/// The run a workflow dispatch started, when the platform says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispatched {
    pub run_id: u64,
    pub html_url: String,
}

/// The log of a failed job of a workflow run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobLog {
    pub job_id: u64,
    pub name: String,
    pub html_url: Option<String>,
    /// The plain-text log as GitHub serves it (timestamps included), capped by the platform.
    pub text: String,
}

/// What git authenticates with when it pushes: for GitHub, `x-access-token` and the
/// installation token. Handed to git through its credentials callback only.
#[derive(Debug, Clone)]
pub struct GitCredentials {
    pub username: String,
    pub password: Secret,
}

#[async_trait::async_trait]
pub trait Platform: Send + Sync {
    /// `owner/name`.
    fn repository(&self) -> String;

    async fn default_branch(&self) -> anyhow::Result<String>;

    /// What git clones from and pushes to. Never carries credentials.
    async fn remote_url(&self) -> anyhow::Result<String>;

    /// `None`: the remote needs no authentication (a local repository).
    async fn git_credentials(&self) -> anyhow::Result<Option<GitCredentials>>;

    /// Whether `login` may command the bot (write access or more). Callers treat `Err` as
    /// `false`: when in doubt, the bot does nothing on someone's behalf.
    async fn can_write(&self, login: &str) -> anyhow::Result<bool>;

    /// Reacts to an issue; `content` is a GitHub reaction name (`eyes`, `rocket`, ...).
    async fn react_issue(&self, issue: u64, content: &str) -> anyhow::Result<()>;

    async fn react_comment(&self, comment_id: u64, content: &str) -> anyhow::Result<()>;

    /// Returns the new comment's id.
    async fn create_comment(&self, issue: u64, body: &str) -> anyhow::Result<u64>;

    async fn update_comment(&self, comment_id: u64, body: &str) -> anyhow::Result<()>;

    /// A comment written by this app on `issue` that contains `marker`: its id and body.
    async fn find_bot_comment(&self, issue: u64, marker: &str) -> anyhow::Result<Option<(u64, String)>>;

    /// The pull request (open or closed) whose head is `branch` in this repository.
    async fn find_pull_by_head(&self, branch: &str) -> anyhow::Result<Option<PullRequest>>;

    async fn create_pull(&self, spec: &PrSpec) -> anyhow::Result<PullRequest>;

    async fn update_pull(&self, number: u64, title: &str, body: &str) -> anyhow::Result<()>;

    async fn add_labels(&self, issue: u64, labels: &[String]) -> anyhow::Result<()>;

    /// The current body of an issue or pull request (GitHub serves both as issues).
    ///
    /// Added to the brief's trait because a retry job carries only the comment: the request
    /// itself has to be read again from the issue, and a retry asked on the PR has to find the
    /// issue through the PR's body first.
    async fn issue_body(&self, number: u64) -> anyhow::Result<String>;

    // ---- CI (GitHub Actions); platforms without CI keep these defaults ----

    /// One workflow run.
    async fn workflow_run(&self, run_id: u64) -> anyhow::Result<WorkflowRun> {
        anyhow::bail!("{} has no CI runs (asked for run {run_id})", self.repository())
    }

    /// Every workflow run of one commit (all workflows, all events), newest first.
    async fn runs_for_commit(&self, head_sha: &str) -> anyhow::Result<Vec<WorkflowRun>> {
        anyhow::bail!("{} has no CI runs (asked for commit {head_sha})", self.repository())
    }

    /// The most recent workflow runs on a branch (all workflows), newest first.
    async fn runs_on_branch(&self, branch: &str) -> anyhow::Result<Vec<WorkflowRun>> {
        anyhow::bail!("{} has no CI runs (asked for branch {branch})", self.repository())
    }

    /// The zip archive of the run's artifact called `name`; `None` when the run has no such
    /// artifact or it expired.
    async fn download_artifact(&self, run_id: u64, name: &str) -> anyhow::Result<Option<Vec<u8>>> {
        anyhow::bail!("{} has no CI artifacts (asked for '{name}' of run {run_id})", self.repository())
    }

    /// The logs of the run's failed jobs (latest attempt).
    async fn failed_job_logs(&self, run_id: u64) -> anyhow::Result<Vec<JobLog>> {
        anyhow::bail!("{} has no CI logs (asked for run {run_id})", self.repository())
    }

    /// One comment by its id.
    async fn comment(&self, comment_id: u64) -> anyhow::Result<CommentText> {
        anyhow::bail!("{} cannot read comment {comment_id}", self.repository())
    }

    /// Every open issue with `label`, oldest first (pull requests left out).
    async fn open_issues(&self, label: &str) -> anyhow::Result<Vec<IssueSummary>> {
        anyhow::bail!("{} cannot list issues labelled '{label}'", self.repository())
    }

    /// Starts a `workflow_dispatch` workflow (file name, e.g. `generate.yml`) on `git_ref`.
    async fn dispatch_workflow(
        &self,
        workflow: &str,
        git_ref: &str,
        inputs: &std::collections::BTreeMap<String, String>,
    ) -> anyhow::Result<Option<Dispatched>> {
        let _ = (git_ref, inputs);
        anyhow::bail!("{} cannot start workflow {workflow}", self.repository())
    }

    /// The recent runs of one workflow started by `event`, newest first.
    async fn workflow_runs(&self, workflow: &str, event: &str) -> anyhow::Result<Vec<WorkflowRun>> {
        anyhow::bail!("{} has no runs of {workflow} ({event})", self.repository())
    }

    /// Cancels a run; one that already finished is not an error.
    async fn cancel_run(&self, run_id: u64) -> anyhow::Result<()> {
        anyhow::bail!("{} cannot cancel run {run_id}", self.repository())
    }

    /// Removes a label from an issue or pull request; not having it is not an error.
    async fn remove_label(&self, issue: u64, label: &str) -> anyhow::Result<()> {
        anyhow::bail!("{} cannot remove label '{label}' from #{issue}", self.repository())
    }

    /// `false` for a platform that only records (a dry run): the pipeline commits the connector
    /// in its workspace but pushes nothing.
    fn pushes(&self) -> bool {
        true
    }

    /// Where a platform that does not push keeps what it would have pushed: `abs` is the built
    /// folder, `rel` its path in the repository. Returns where the copy went.
    fn keep_unpushed(&self, rel: &std::path::Path, abs: &std::path::Path) -> anyhow::Result<Option<std::path::PathBuf>> {
        let _ = (rel, abs);
        Ok(None)
    }

    /// A link people can follow to a folder on a branch, for comments. GitHub's web layout by
    /// default; a platform elsewhere (GitHub Enterprise, a local repository) says its own.
    fn browse_url(&self, branch: &str, path: &str) -> String {
        format!("https://github.com/{}/tree/{branch}/{path}", self.repository())
    }
}

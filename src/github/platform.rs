//! [`Platform`] on GitHub: what the pipeline asks of the code host, as one installation of the
//! app working on one repository.

use super::client::{InstallationClient, NewPull, PullRequestInfo, Repository, WorkflowRunInfo};
use crate::platform::{CommentText, Dispatched, GitCredentials, IssueSummary, JobLog, Platform, PrSpec, PullRequest, WorkflowRun};
use anyhow::{Result, bail};
use async_trait::async_trait;

/// The user name GitHub expects with an installation token over HTTPS git.
pub const GIT_TOKEN_USER: &str = "x-access-token";

pub struct GitHubPlatform {
    client: InstallationClient,
    owner: String,
    repo: String,
    // Default branch and clone URL do not change while a job runs: asked once.
    info: tokio::sync::OnceCell<Repository>,
    limits: DownloadLimits,
}

/// How much of GitHub Actions' files the platform reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadLimits {
    /// An artifact archive bigger than this is refused (an error), not truncated: a cut zip
    /// is unreadable.
    pub artifact_max_bytes: u64,
    /// Of each failed job's log, only the last this many bytes are kept.
    pub log_tail_bytes: usize,
}

impl Default for DownloadLimits {
    fn default() -> Self {
        DownloadLimits { artifact_max_bytes: 64 << 20, log_tail_bytes: 1 << 20 }
    }
}

/// How many runs `runs_on_branch` returns.
pub const BRANCH_RUNS: u32 = 50;

/// Job conclusions whose logs [`Platform::failed_job_logs`] returns. `cancelled` is left out:
/// in a matrix, fail-fast cancels the siblings of a failing job, and a newer push cancels a
/// superseded run (`concurrency`), so its log says nothing about what broke.
pub const FAILED_CONCLUSIONS: [&str; 2] = ["failure", "timed_out"];

impl GitHubPlatform {
    /// `repository` is `owner/name`.
    pub fn new(client: InstallationClient, repository: &str) -> Result<Self> {
        let Some((owner, repo)) =
            repository.split_once('/').filter(|(o, r)| !o.is_empty() && !r.is_empty() && !r.contains('/'))
        else {
            bail!("'{repository}' is not of the form owner/name");
        };
        Ok(GitHubPlatform {
            client,
            owner: owner.to_string(),
            repo: repo.to_string(),
            info: tokio::sync::OnceCell::new(),
            limits: DownloadLimits::default(),
        })
    }

    pub fn with_download_limits(mut self, limits: DownloadLimits) -> Self {
        self.limits = limits;
        self
    }

    pub fn client(&self) -> &InstallationClient {
        &self.client
    }

    async fn info(&self) -> Result<&Repository> {
        self.info.get_or_try_init(|| self.client.get_repository(&self.owner, &self.repo)).await
    }
}

fn pull(p: PullRequestInfo) -> PullRequest {
    PullRequest {
        number: p.number,
        url: p.html_url,
        head: p.head.ref_name,
        state: p.state,
        draft: p.draft.unwrap_or(false),
    }
}

fn workflow_run(r: WorkflowRunInfo) -> WorkflowRun {
    WorkflowRun {
        id: r.id,
        path: r.path,
        name: r.name,
        head_branch: r.head_branch,
        head_sha: r.head_sha,
        head_repository: r.head_repository.map(|h| h.full_name),
        event: r.event,
        // GitHub's schema lets `status` be null; no run shows it, and "" reads as not completed.
        status: r.status.unwrap_or_default(),
        conclusion: r.conclusion,
        html_url: r.html_url,
        run_attempt: r.run_attempt.unwrap_or(1),
        display_title: r.display_title,
    }
}

#[async_trait]
impl Platform for GitHubPlatform {
    fn repository(&self) -> String {
        format!("{}/{}", self.owner, self.repo)
    }

    async fn default_branch(&self) -> Result<String> {
        Ok(self.info().await?.default_branch.clone())
    }

    async fn remote_url(&self) -> Result<String> {
        Ok(self.info().await?.clone_url.clone())
    }

    async fn git_credentials(&self) -> Result<Option<GitCredentials>> {
        let token = self.client.token().await?;
        Ok(Some(GitCredentials { username: GIT_TOKEN_USER.to_string(), password: token }))
    }

    async fn can_write(&self, login: &str) -> Result<bool> {
        Ok(self.client.can_write(&self.owner, &self.repo, login).await)
    }

    async fn react_issue(&self, issue: u64, content: &str) -> Result<()> {
        self.client.react_to_issue(&self.owner, &self.repo, issue, content).await.map(drop)
    }

    async fn react_comment(&self, comment_id: u64, content: &str) -> Result<()> {
        self.client.react_to_comment(&self.owner, &self.repo, comment_id, content).await.map(drop)
    }

    async fn create_comment(&self, issue: u64, body: &str) -> Result<u64> {
        Ok(self.client.create_issue_comment(&self.owner, &self.repo, issue, body).await?.id)
    }

    async fn update_comment(&self, comment_id: u64, body: &str) -> Result<()> {
        self.client.update_issue_comment(&self.owner, &self.repo, comment_id, body).await.map(drop)
    }

    /// The oldest comment written by this app that contains `marker`. Comments by anyone else
    /// never match, even when they quote the marker.
    async fn find_bot_comment(&self, issue: u64, marker: &str) -> Result<Option<(u64, String)>> {
        let bot = self.client.bot_login().await?;
        let comments = self.client.list_issue_comments(&self.owner, &self.repo, issue).await?;
        Ok(comments.into_iter().find_map(|c| {
            let by_bot = c.user.as_ref().is_some_and(|u| u.login.eq_ignore_ascii_case(&bot));
            let body = c.body.unwrap_or_default();
            (by_bot && body.contains(marker)).then_some((c.id, body))
        }))
    }

    /// The open pull request from `branch`; if none is open, the most recent closed one (its
    /// `state` says so, and the caller decides whether to open a new one).
    async fn find_pull_by_head(&self, branch: &str) -> Result<Option<PullRequest>> {
        let mut pulls = self.client.list_pulls_by_head(&self.owner, &self.repo, branch, "all").await?;
        // Same repository only: a fork's branch of the same name is not ours.
        pulls.retain(|p| p.head.ref_name == branch && p.head.label == format!("{}:{branch}", self.owner));
        pulls.sort_by_key(|p| std::cmp::Reverse(p.number));
        let open = pulls.iter().position(|p| p.state == "open");
        Ok(match open {
            Some(i) => Some(pull(pulls.swap_remove(i))),
            None => pulls.into_iter().next().map(pull),
        })
    }

    async fn create_pull(&self, spec: &PrSpec) -> Result<PullRequest> {
        let created = self
            .client
            .create_pull(
                &self.owner,
                &self.repo,
                &NewPull {
                    title: &spec.title,
                    head: &spec.branch,
                    base: &spec.base,
                    body: &spec.body,
                    draft: spec.draft,
                },
            )
            .await?;
        if !spec.labels.is_empty() {
            self.client.add_labels(&self.owner, &self.repo, created.number, &spec.labels).await?;
        }
        Ok(pull(created))
    }

    async fn update_pull(&self, number: u64, title: &str, body: &str) -> Result<()> {
        self.client.update_pull(&self.owner, &self.repo, number, title, body).await.map(drop)
    }

    async fn add_labels(&self, issue: u64, labels: &[String]) -> Result<()> {
        self.client.add_labels(&self.owner, &self.repo, issue, labels).await.map(drop)
    }

    async fn issue_body(&self, number: u64) -> Result<String> {
        // Pull requests are served as issues too, so a retry asked on a PR reads its body here.
        Ok(self.client.get_issue(&self.owner, &self.repo, number).await?.body.unwrap_or_default())
    }

    async fn workflow_run(&self, run_id: u64) -> Result<WorkflowRun> {
        self.client.get_workflow_run(&self.owner, &self.repo, run_id).await.map(workflow_run)
    }

    async fn runs_for_commit(&self, head_sha: &str) -> Result<Vec<WorkflowRun>> {
        let runs = self.client.list_runs_for_commit(&self.owner, &self.repo, head_sha).await?;
        Ok(runs.into_iter().map(workflow_run).collect())
    }

    /// The latest [`BRANCH_RUNS`] runs on the branch.
    async fn runs_on_branch(&self, branch: &str) -> Result<Vec<WorkflowRun>> {
        let runs = self.client.list_runs_on_branch(&self.owner, &self.repo, branch, BRANCH_RUNS).await?;
        Ok(runs.into_iter().map(workflow_run).collect())
    }

    /// The unexpired artifact called exactly `name` (the newest, should a run have several);
    /// one bigger than [`DownloadLimits::artifact_max_bytes`] is an error.
    async fn download_artifact(&self, run_id: u64, name: &str) -> Result<Option<Vec<u8>>> {
        let artifacts = self.client.list_run_artifacts(&self.owner, &self.repo, run_id, Some(name)).await?;
        let Some(artifact) = artifacts.into_iter().filter(|a| !a.expired).max_by_key(|a| a.id) else {
            return Ok(None);
        };
        if artifact.size_in_bytes > self.limits.artifact_max_bytes {
            bail!(
                "artifact '{name}' of run {run_id} in {} is {} bytes, more than the {} allowed",
                self.repository(),
                artifact.size_in_bytes,
                self.limits.artifact_max_bytes
            );
        }
        self.client.download_artifact(&self.owner, &self.repo, artifact.id, self.limits.artifact_max_bytes).await
    }

    /// Jobs of the latest attempt that ended in one of [`FAILED_CONCLUSIONS`], in GitHub's
    /// order, each with the last [`DownloadLimits::log_tail_bytes`] of its log (a line saying
    /// how much was left out comes first when it was cut). A job whose log GitHub no longer
    /// has is left out, with a warning.
    async fn failed_job_logs(&self, run_id: u64) -> Result<Vec<JobLog>> {
        let jobs = self.client.list_run_jobs(&self.owner, &self.repo, run_id).await?;
        let mut logs = Vec::new();
        for job in jobs {
            if !job.conclusion.as_deref().is_some_and(|c| FAILED_CONCLUSIONS.contains(&c)) {
                continue;
            }
            let Some(tail) = self.client.job_log(&self.owner, &self.repo, job.id, self.limits.log_tail_bytes).await?
            else {
                tracing::warn!(repository = %self.repository(), run_id, job_id = job.id, "the failed job's log is gone; leaving it out");
                continue;
            };
            let text = if tail.dropped > 0 {
                format!("[... the first {} bytes of this log are left out ...]\n{}", tail.dropped, tail.text)
            } else {
                tail.text
            };
            logs.push(JobLog { job_id: job.id, name: job.name, html_url: job.html_url, text });
        }
        Ok(logs)
    }

    async fn comment(&self, comment_id: u64) -> Result<CommentText> {
        let c = self.client.get_issue_comment(&self.owner, &self.repo, comment_id).await?;
        Ok(CommentText { author: c.user.map(|u| u.login).unwrap_or_default(), body: c.body.unwrap_or_default() })
    }

    async fn open_issues(&self, label: &str) -> Result<Vec<IssueSummary>> {
        let issues = self.client.list_open_issues(&self.owner, &self.repo, label).await?;
        Ok(issues
            .into_iter()
            .map(|i| IssueSummary {
                number: i.number,
                title: i.title,
                body: i.body.unwrap_or_default(),
                author: i.user.map(|u| u.login).unwrap_or_default(),
                url: i.html_url,
            })
            .collect())
    }

    async fn dispatch_workflow(
        &self,
        workflow: &str,
        git_ref: &str,
        inputs: &std::collections::BTreeMap<String, String>,
    ) -> Result<Option<Dispatched>> {
        let inputs = serde_json::to_value(inputs)?;
        let run = self.client.dispatch_workflow(&self.owner, &self.repo, workflow, git_ref, &inputs).await?;
        Ok(run.map(|r| Dispatched { run_id: r.workflow_run_id, html_url: r.html_url }))
    }

    async fn workflow_runs(&self, workflow: &str, event: &str) -> Result<Vec<WorkflowRun>> {
        let runs = self.client.list_workflow_runs(&self.owner, &self.repo, workflow, event, BRANCH_RUNS).await?;
        Ok(runs.into_iter().map(workflow_run).collect())
    }

    async fn cancel_run(&self, run_id: u64) -> Result<()> {
        self.client.cancel_workflow_run(&self.owner, &self.repo, run_id).await
    }

    async fn remove_label(&self, issue: u64, label: &str) -> Result<()> {
        self.client.remove_label(&self.owner, &self.repo, issue, label).await.map(drop)
    }
}

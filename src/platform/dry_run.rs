//! A dry run against a real platform: everything is read from it (the default branch, the clone,
//! who may write, the issues), nothing is written to it. Comments, reactions and the pull
//! request are recorded as files ([`Recorder`]) and the connector branch is committed in the
//! workspace but never pushed. `batch --github ... --dry-run` builds on it.

use super::recorder::Recorder;
use super::{CommentText, GitCredentials, IssueSummary, Platform, PrSpec, PullRequest};
use anyhow::Result;
use std::path::Path;
use std::sync::Arc;

pub struct DryRun {
    inner: Arc<dyn Platform>,
    record: Recorder,
}

impl DryRun {
    /// Reads from `inner`; records what it would have written in `out`.
    pub fn new(inner: Arc<dyn Platform>, out: &Path) -> Result<DryRun> {
        Ok(DryRun { inner, record: Recorder::open(out)? })
    }

    pub fn out_dir(&self) -> &Path {
        self.record.out_dir()
    }
}

#[async_trait::async_trait]
impl Platform for DryRun {
    fn repository(&self) -> String {
        self.inner.repository()
    }

    async fn default_branch(&self) -> Result<String> {
        self.inner.default_branch().await
    }

    async fn remote_url(&self) -> Result<String> {
        self.inner.remote_url().await
    }

    /// Cloning a private repository still needs them; pushing never happens.
    async fn git_credentials(&self) -> Result<Option<GitCredentials>> {
        self.inner.git_credentials().await
    }

    async fn can_write(&self, login: &str) -> Result<bool> {
        self.inner.can_write(login).await
    }

    async fn react_issue(&self, issue: u64, content: &str) -> Result<()> {
        self.record.react(format!("issue #{issue}: {content}"))
    }

    async fn react_comment(&self, comment_id: u64, content: &str) -> Result<()> {
        self.record.react(format!("comment {comment_id}: {content}"))
    }

    async fn create_comment(&self, issue: u64, body: &str) -> Result<u64> {
        self.record.create_comment(issue, body)
    }

    async fn update_comment(&self, comment_id: u64, body: &str) -> Result<()> {
        self.record.update_comment(comment_id, body)
    }

    /// Only the record's: the real status comment is left as it is.
    async fn find_bot_comment(&self, issue: u64, marker: &str) -> Result<Option<(u64, String)>> {
        Ok(self.record.find_comment(issue, marker))
    }

    async fn find_pull_by_head(&self, branch: &str) -> Result<Option<PullRequest>> {
        Ok(self.record.find_pull(branch))
    }

    async fn create_pull(&self, spec: &PrSpec) -> Result<PullRequest> {
        self.record.create_pull(spec, 0)
    }

    async fn update_pull(&self, number: u64, title: &str, body: &str) -> Result<()> {
        self.record.update_pull(number, title, body)
    }

    async fn add_labels(&self, issue: u64, labels: &[String]) -> Result<()> {
        self.record.add_labels(issue, labels)
    }

    async fn issue_body(&self, number: u64) -> Result<String> {
        match self.record.pull_body(number) {
            Some(body) => Ok(body),
            None => self.inner.issue_body(number).await,
        }
    }

    async fn comment(&self, comment_id: u64) -> Result<CommentText> {
        self.inner.comment(comment_id).await
    }

    async fn open_issues(&self, label: &str) -> Result<Vec<IssueSummary>> {
        self.inner.open_issues(label).await
    }

    fn keep_unpushed(&self, rel: &Path, abs: &Path) -> Result<Option<std::path::PathBuf>> {
        if self.pushes() {
            return Ok(None);
        }
        self.record.keep_copy(rel, abs).map(Some)
    }

    fn pushes(&self) -> bool {
        false
    }

    fn browse_url(&self, branch: &str, path: &str) -> String {
        self.inner.browse_url(branch, path)
    }
}

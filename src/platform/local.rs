//! A repository on disk as the platform, for `connector-factory run` (like Renovate's
//! `--platform=local`).
//!
//! git clones from and pushes to the repository itself, so the connector branch appears there
//! with the bot's commit. Everything else a platform would show to people (comments,
//! reactions, the pull request) is recorded as files in an output folder ([`Recorder`]). The
//! only issue is #1: the request file.

use super::recorder::Recorder;
use super::{GitCredentials, Platform, PrSpec, PullRequest};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// The issue number a local run's request gets.
pub const REQUEST_ISSUE: u64 = 1;

pub struct LocalPlatform {
    repo: PathBuf,
    request_body: String,
    base: Option<String>,
    record: Recorder,
    /// `false`: the connector branch is committed in a workspace but never pushed (a dry run).
    push: bool,
}

impl LocalPlatform {
    /// `repo` is the repository (its working folder, or a bare one); `out` receives what would
    /// be posted; `request_body` is issue #1; `base` overrides the default branch.
    pub fn open(repo: &Path, out: &Path, request_body: String, base: Option<String>) -> Result<LocalPlatform> {
        let found = git2::Repository::discover(repo)
            .with_context(|| format!("{} is not inside a git repository", repo.display()))?;
        let root = match found.workdir() {
            Some(w) => w.to_path_buf(),
            None => found.path().to_path_buf(),
        };
        let repo = root.canonicalize().with_context(|| format!("cannot resolve {}", root.display()))?;
        let record = Recorder::open(out)?;
        Ok(LocalPlatform { repo, request_body, base, record, push: true })
    }

    /// Leaves the repository untouched: the branch is built and committed, never pushed.
    pub fn without_push(mut self) -> Self {
        self.push = false;
        self
    }

    pub fn out_dir(&self) -> &Path {
        self.record.out_dir()
    }

    pub fn repo_dir(&self) -> &Path {
        &self.repo
    }

    /// The file a comment is written to.
    pub fn comment_path(&self, id: u64) -> PathBuf {
        self.record.comment_path(id)
    }

    /// The file a pull request's title and body are written to.
    pub fn pull_path(&self, number: u64) -> PathBuf {
        self.record.pull_path(number)
    }
}

#[async_trait::async_trait]
impl Platform for LocalPlatform {
    fn repository(&self) -> String {
        let name = self.repo.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        format!("local/{name}")
    }

    /// `--base` when given; else what `origin/HEAD` points to when that branch exists locally
    /// (a clone's default); else the branch checked out.
    async fn default_branch(&self) -> Result<String> {
        if let Some(b) = &self.base {
            return Ok(b.clone());
        }
        let repo = git2::Repository::open(&self.repo)?;
        if let Ok(origin_head) = repo.find_reference("refs/remotes/origin/HEAD")
            && let Ok(Some(target)) = origin_head.symbolic_target()
            && let Some(name) = target.strip_prefix("refs/remotes/origin/")
            && repo.find_branch(name, git2::BranchType::Local).is_ok()
        {
            return Ok(name.to_string());
        }
        let head = repo.head().context("the repository has no commits yet")?;
        if !head.is_branch() {
            bail!("HEAD is detached in {}; check out the default branch or pass --base", self.repo.display());
        }
        Ok(head.shorthand().context("the branch name is not UTF-8")?.to_string())
    }

    async fn remote_url(&self) -> Result<String> {
        Ok(self.repo.display().to_string())
    }

    async fn git_credentials(&self) -> Result<Option<GitCredentials>> {
        Ok(None)
    }

    /// Whoever runs the command owns the repository.
    async fn can_write(&self, _login: &str) -> Result<bool> {
        Ok(true)
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

    async fn find_bot_comment(&self, issue: u64, marker: &str) -> Result<Option<(u64, String)>> {
        Ok(self.record.find_comment(issue, marker))
    }

    async fn find_pull_by_head(&self, branch: &str) -> Result<Option<PullRequest>> {
        Ok(self.record.find_pull(branch))
    }

    async fn create_pull(&self, spec: &PrSpec) -> Result<PullRequest> {
        self.record.create_pull(spec, REQUEST_ISSUE)
    }

    async fn update_pull(&self, number: u64, title: &str, body: &str) -> Result<()> {
        self.record.update_pull(number, title, body)
    }

    async fn add_labels(&self, issue: u64, labels: &[String]) -> Result<()> {
        self.record.add_labels(issue, labels)
    }

    async fn issue_body(&self, number: u64) -> Result<String> {
        if number == REQUEST_ISSUE {
            return Ok(self.request_body.clone());
        }
        match self.record.pull_body(number) {
            Some(body) => Ok(body),
            None => bail!("a local run knows only issue #{REQUEST_ISSUE} (the request file)"),
        }
    }

    fn keep_unpushed(&self, rel: &Path, abs: &Path) -> Result<Option<std::path::PathBuf>> {
        if self.pushes() {
            return Ok(None);
        }
        self.record.keep_copy(rel, abs).map(Some)
    }

    fn pushes(&self) -> bool {
        self.push
    }

    fn browse_url(&self, branch: &str, path: &str) -> String {
        let _ = branch;
        url::Url::from_file_path(self.repo.join(path)).map(|u| u.to_string()).unwrap_or_else(|_| path.to_string())
    }
}

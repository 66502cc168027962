//! A repository on disk as the platform, for `connector-factory run` (like Renovate's
//! `--platform=local`).
//!
//! git clones from and pushes to the repository itself, so the connector branch appears there
//! with the bot's commit. Everything else a platform would show to people (comments,
//! reactions, the pull request) is written as files into an output folder, together with a
//! `platform.json` that lets a second run find its status comment and pull request again,
//! exactly as the app finds them on GitHub. The only issue is #1: the request file.

use super::{GitCredentials, Platform, PrSpec, PullRequest};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The issue number a local run's request gets.
pub const REQUEST_ISSUE: u64 = 1;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    next_comment: u64,
    comments: BTreeMap<u64, Comment>,
    pulls: Vec<Pull>,
    reactions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Comment {
    issue: u64,
    body: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pull {
    pull: PullRequest,
    spec: PrSpec,
}

pub struct LocalPlatform {
    repo: PathBuf,
    out: PathBuf,
    request_body: String,
    base: Option<String>,
    state: Mutex<State>,
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
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        let out = out.canonicalize()?;
        let state = match std::fs::read_to_string(out.join("platform.json")) {
            Ok(text) => serde_json::from_str(&text).with_context(|| format!("{} is unreadable", out.display()))?,
            Err(_) => State::default(),
        };
        Ok(LocalPlatform { repo, out, request_body, base, state: Mutex::new(state) })
    }

    pub fn out_dir(&self) -> &Path {
        &self.out
    }

    pub fn repo_dir(&self) -> &Path {
        &self.repo
    }

    /// The file a comment is written to.
    pub fn comment_path(&self, id: u64) -> PathBuf {
        self.out.join(format!("comment-{id}.md"))
    }

    /// The file a pull request's title and body are written to.
    pub fn pull_path(&self, number: u64) -> PathBuf {
        self.out.join(format!("pull-request-{number}.md"))
    }

    fn update<T>(&self, change: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let value = change(&mut state)?;
        let text = serde_json::to_string_pretty(&*state)?;
        std::fs::write(self.out.join("platform.json"), text).context("saving platform.json")?;
        Ok(value)
    }

    fn write_pull(&self, pull: &Pull) -> Result<()> {
        let text = format!(
            "# {}\n\n<!-- {} → {}, labels: {}{} -->\n\n{}",
            pull.spec.title,
            pull.spec.branch,
            pull.spec.base,
            pull.spec.labels.join(", "),
            if pull.pull.draft { ", draft" } else { "" },
            pull.spec.body
        );
        std::fs::write(self.pull_path(pull.pull.number), text).context("writing the pull request file")
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
        self.update(|s| {
            s.reactions.push(format!("issue #{issue}: {content}"));
            Ok(())
        })
    }

    async fn react_comment(&self, comment_id: u64, content: &str) -> Result<()> {
        self.update(|s| {
            s.reactions.push(format!("comment {comment_id}: {content}"));
            Ok(())
        })
    }

    async fn create_comment(&self, issue: u64, body: &str) -> Result<u64> {
        let id = self.update(|s| {
            s.next_comment += 1;
            let id = s.next_comment;
            s.comments.insert(id, Comment { issue, body: body.to_string() });
            Ok(id)
        })?;
        std::fs::write(self.comment_path(id), body)?;
        Ok(id)
    }

    async fn update_comment(&self, comment_id: u64, body: &str) -> Result<()> {
        self.update(|s| match s.comments.get_mut(&comment_id) {
            Some(c) => {
                c.body = body.to_string();
                Ok(())
            }
            None => bail!("no comment {comment_id}"),
        })?;
        std::fs::write(self.comment_path(comment_id), body)?;
        Ok(())
    }

    async fn find_bot_comment(&self, issue: u64, marker: &str) -> Result<Option<(u64, String)>> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        Ok(state
            .comments
            .iter()
            .find(|(_, c)| c.issue == issue && c.body.contains(marker))
            .map(|(id, c)| (*id, c.body.clone())))
    }

    async fn find_pull_by_head(&self, branch: &str) -> Result<Option<PullRequest>> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        Ok(state.pulls.iter().rev().find(|p| p.pull.head == branch).map(|p| p.pull.clone()))
    }

    async fn create_pull(&self, spec: &PrSpec) -> Result<PullRequest> {
        let pull = self.update(|s| {
            let number = s.pulls.iter().map(|p| p.pull.number).max().unwrap_or(REQUEST_ISSUE) + 1;
            let url = url::Url::from_file_path(self.pull_path(number))
                .map(|u| u.to_string())
                .unwrap_or_else(|_| self.pull_path(number).display().to_string());
            let pull = Pull {
                pull: PullRequest { number, url, head: spec.branch.clone(), state: "open".into(), draft: spec.draft },
                spec: spec.clone(),
            };
            s.pulls.push(pull.clone());
            Ok(pull)
        })?;
        self.write_pull(&pull)?;
        Ok(pull.pull)
    }

    async fn update_pull(&self, number: u64, title: &str, body: &str) -> Result<()> {
        let pull = self.update(|s| match s.pulls.iter_mut().find(|p| p.pull.number == number) {
            Some(p) => {
                p.spec.title = title.to_string();
                p.spec.body = body.to_string();
                Ok(p.clone())
            }
            None => bail!("no pull request #{number}"),
        })?;
        self.write_pull(&pull)
    }

    async fn add_labels(&self, issue: u64, labels: &[String]) -> Result<()> {
        let pull = self.update(|s| {
            let Some(p) = s.pulls.iter_mut().find(|p| p.pull.number == issue) else { return Ok(None) };
            for l in labels {
                if !p.spec.labels.contains(l) {
                    p.spec.labels.push(l.clone());
                }
            }
            Ok(Some(p.clone()))
        })?;
        match pull {
            Some(p) => self.write_pull(&p),
            None => Ok(()),
        }
    }

    async fn issue_body(&self, number: u64) -> Result<String> {
        if number == REQUEST_ISSUE {
            return Ok(self.request_body.clone());
        }
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.pulls.iter().find(|p| p.pull.number == number) {
            Some(p) => Ok(p.spec.body.clone()),
            None => bail!("a local run knows only issue #{REQUEST_ISSUE} (the request file)"),
        }
    }

    fn browse_url(&self, branch: &str, path: &str) -> String {
        let _ = branch;
        url::Url::from_file_path(self.repo.join(path)).map(|u| u.to_string()).unwrap_or_else(|_| path.to_string())
    }
}

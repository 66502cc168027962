//! What a platform that does not publish shows instead: comments, reactions and pull requests
//! written as files into a folder, with a `platform.json` that lets a later run find its status
//! comment and pull request again, as the app finds them on GitHub. Used by the local platform
//! and by dry runs against GitHub.

use super::{PrSpec, PullRequest};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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

pub struct Recorder {
    out: PathBuf,
    state: Mutex<State>,
}

impl Recorder {
    /// Opens (or starts) the record in `out`.
    pub fn open(out: &Path) -> Result<Recorder> {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        let out = out.canonicalize()?;
        let state = match std::fs::read_to_string(out.join("platform.json")) {
            Ok(text) => serde_json::from_str(&text).with_context(|| format!("{} is unreadable", out.display()))?,
            Err(_) => State::default(),
        };
        Ok(Recorder { out, state: Mutex::new(state) })
    }

    pub fn out_dir(&self) -> &Path {
        &self.out
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

    pub fn react(&self, what: String) -> Result<()> {
        self.update(|s| {
            s.reactions.push(what);
            Ok(())
        })
    }

    pub fn create_comment(&self, issue: u64, body: &str) -> Result<u64> {
        let id = self.update(|s| {
            s.next_comment += 1;
            let id = s.next_comment;
            s.comments.insert(id, Comment { issue, body: body.to_string() });
            Ok(id)
        })?;
        std::fs::write(self.comment_path(id), body)?;
        Ok(id)
    }

    pub fn update_comment(&self, comment_id: u64, body: &str) -> Result<()> {
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

    pub fn find_comment(&self, issue: u64, marker: &str) -> Option<(u64, String)> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.comments.iter().find(|(_, c)| c.issue == issue && c.body.contains(marker)).map(|(id, c)| (*id, c.body.clone()))
    }

    pub fn find_pull(&self, branch: &str) -> Option<PullRequest> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.pulls.iter().rev().find(|p| p.pull.head == branch).map(|p| p.pull.clone())
    }

    /// Records a pull request numbered after `after` and every one recorded before.
    pub fn create_pull(&self, spec: &PrSpec, after: u64) -> Result<PullRequest> {
        let pull = self.update(|s| {
            let number = s.pulls.iter().map(|p| p.pull.number).max().unwrap_or(after).max(after) + 1;
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

    pub fn update_pull(&self, number: u64, title: &str, body: &str) -> Result<()> {
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

    /// Labels on a recorded pull request; any other number is an issue, whose labels nobody
    /// sees in a record.
    pub fn add_labels(&self, number: u64, labels: &[String]) -> Result<()> {
        let pull = self.update(|s| {
            let Some(p) = s.pulls.iter_mut().find(|p| p.pull.number == number) else { return Ok(None) };
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

    /// Copies a folder the run built but did not push (`from`) into the record as `rel`,
    /// replacing an earlier copy. Symbolic links are not followed.
    pub fn keep_copy(&self, rel: &Path, from: &Path) -> Result<PathBuf> {
        if rel.is_absolute() || rel.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
            bail!("{} is not a relative path inside the record", rel.display());
        }
        let to = self.out.join("files").join(rel);
        if to.exists() {
            std::fs::remove_dir_all(&to).with_context(|| format!("removing {}", to.display()))?;
        }
        copy_dir(from, &to)?;
        Ok(to)
    }

    /// A recorded pull request's body.
    pub fn pull_body(&self, number: u64) -> Option<String> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.pulls.iter().find(|p| p.pull.number == number).map(|p| p.spec.body.clone())
    }
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target).with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

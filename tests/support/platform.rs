//! A platform that keeps everything in memory and records what the pipeline did to it.

use anyhow::{Result, anyhow, bail};
use connector_factory::platform::{GitCredentials, JobLog, Platform, PrSpec, PullRequest, WorkflowRun};
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, Clone)]
pub struct Comment {
    pub issue: u64,
    pub by_bot: bool,
    /// Every version, oldest first; the last is the current body.
    pub versions: Vec<String>,
}

impl Comment {
    pub fn body(&self) -> &str {
        self.versions.last().map(String::as_str).unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
pub struct Pull {
    pub pull: PullRequest,
    pub spec: PrSpec,
    pub updates: u32,
    pub labels: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Recorded {
    pub next_id: u64,
    pub comments: BTreeMap<u64, Comment>,
    /// (`issue` or `comment`, id, reaction)
    pub reactions: Vec<(String, u64, String)>,
    pub pulls: Vec<Pull>,
    pub issues: BTreeMap<u64, String>,
    /// Workflow runs, oldest first.
    pub runs: Vec<WorkflowRun>,
    /// (run id, artifact name) → zip bytes.
    pub artifacts: BTreeMap<(u64, String), Vec<u8>>,
    pub job_logs: BTreeMap<u64, Vec<JobLog>>,
}

pub struct FakePlatform {
    pub repository: String,
    pub remote: String,
    pub credentials: Option<GitCredentials>,
    /// Logins with write access. `can_write` fails outright for "unreachable".
    pub writers: Vec<String>,
    pub state: Mutex<Recorded>,
}

impl FakePlatform {
    pub fn new(remote: String, writers: &[&str]) -> FakePlatform {
        FakePlatform {
            repository: "acme/factory".into(),
            remote,
            credentials: None,
            writers: writers.iter().map(|w| w.to_string()).collect(),
            state: Mutex::new(Recorded { next_id: 1000, ..Default::default() }),
        }
    }

    pub fn set_issue(&self, number: u64, body: &str) {
        self.state.lock().unwrap().issues.insert(number, body.to_string());
    }

    /// A comment by a person, as if posted on GitHub.
    pub fn human_comment(&self, issue: u64, body: &str) -> u64 {
        let mut s = self.state.lock().unwrap();
        s.next_id += 1;
        let id = s.next_id;
        s.comments.insert(id, Comment { issue, by_bot: false, versions: vec![body.to_string()] });
        id
    }

    pub fn comments_on(&self, issue: u64) -> Vec<(u64, Comment)> {
        let s = self.state.lock().unwrap();
        s.comments.iter().filter(|(_, c)| c.issue == issue).map(|(id, c)| (*id, c.clone())).collect()
    }

    pub fn bot_comments_on(&self, issue: u64) -> Vec<(u64, Comment)> {
        self.comments_on(issue).into_iter().filter(|(_, c)| c.by_bot).collect()
    }

    /// Adds or replaces (by id) a workflow run.
    pub fn put_run(&self, run: WorkflowRun) {
        let mut s = self.state.lock().unwrap();
        s.runs.retain(|r| r.id != run.id);
        s.runs.push(run);
    }

    pub fn put_artifact(&self, run: u64, name: &str, zip: Vec<u8>) {
        self.state.lock().unwrap().artifacts.insert((run, name.to_string()), zip);
    }

    pub fn put_job_logs(&self, run: u64, logs: Vec<JobLog>) {
        self.state.lock().unwrap().job_logs.insert(run, logs);
    }

    pub fn pull_labels(&self, number: u64) -> Vec<String> {
        let s = self.state.lock().unwrap();
        s.pulls.iter().find(|p| p.pull.number == number).map(|p| p.labels.clone()).unwrap_or_default()
    }

    pub fn pulls(&self) -> Vec<Pull> {
        self.state.lock().unwrap().pulls.clone()
    }

    pub fn reactions(&self) -> Vec<(String, u64, String)> {
        self.state.lock().unwrap().reactions.clone()
    }
}

#[async_trait::async_trait]
impl Platform for FakePlatform {
    fn repository(&self) -> String {
        self.repository.clone()
    }

    async fn default_branch(&self) -> Result<String> {
        Ok("main".into())
    }

    async fn remote_url(&self) -> Result<String> {
        Ok(self.remote.clone())
    }

    async fn git_credentials(&self) -> Result<Option<GitCredentials>> {
        Ok(self.credentials.clone())
    }

    async fn can_write(&self, login: &str) -> Result<bool> {
        if login == "unreachable" {
            bail!("the permission API timed out");
        }
        Ok(self.writers.iter().any(|w| w == login))
    }

    async fn react_issue(&self, issue: u64, content: &str) -> Result<()> {
        self.state.lock().unwrap().reactions.push(("issue".into(), issue, content.into()));
        Ok(())
    }

    async fn react_comment(&self, comment_id: u64, content: &str) -> Result<()> {
        self.state.lock().unwrap().reactions.push(("comment".into(), comment_id, content.into()));
        Ok(())
    }

    async fn create_comment(&self, issue: u64, body: &str) -> Result<u64> {
        let mut s = self.state.lock().unwrap();
        s.next_id += 1;
        let id = s.next_id;
        s.comments.insert(id, Comment { issue, by_bot: true, versions: vec![body.to_string()] });
        Ok(id)
    }

    async fn update_comment(&self, comment_id: u64, body: &str) -> Result<()> {
        let mut s = self.state.lock().unwrap();
        let c = s.comments.get_mut(&comment_id).ok_or_else(|| anyhow!("no comment {comment_id}"))?;
        if !c.by_bot {
            bail!("the app cannot edit someone else's comment");
        }
        c.versions.push(body.to_string());
        Ok(())
    }

    async fn find_bot_comment(&self, issue: u64, marker: &str) -> Result<Option<(u64, String)>> {
        let s = self.state.lock().unwrap();
        Ok(s.comments
            .iter()
            .find(|(_, c)| c.issue == issue && c.by_bot && c.body().contains(marker))
            .map(|(id, c)| (*id, c.body().to_string())))
    }

    async fn find_pull_by_head(&self, branch: &str) -> Result<Option<PullRequest>> {
        let s = self.state.lock().unwrap();
        Ok(s.pulls.iter().rev().find(|p| p.pull.head == branch).map(|p| p.pull.clone()))
    }

    async fn create_pull(&self, spec: &PrSpec) -> Result<PullRequest> {
        let mut s = self.state.lock().unwrap();
        if s.pulls.iter().any(|p| p.pull.head == spec.branch && p.pull.state == "open") {
            bail!("a pull request already exists for {}", spec.branch);
        }
        let number = 50 + s.pulls.len() as u64;
        let pull = PullRequest {
            number,
            url: format!("https://github.com/acme/factory/pull/{number}"),
            head: spec.branch.clone(),
            state: "open".into(),
            draft: spec.draft,
        };
        s.pulls.push(Pull { pull: pull.clone(), spec: spec.clone(), updates: 0, labels: spec.labels.clone() });
        s.issues.insert(number, spec.body.clone());
        Ok(pull)
    }

    async fn update_pull(&self, number: u64, title: &str, body: &str) -> Result<()> {
        let mut s = self.state.lock().unwrap();
        let p = s.pulls.iter_mut().find(|p| p.pull.number == number).ok_or_else(|| anyhow!("no PR {number}"))?;
        p.spec.title = title.into();
        p.spec.body = body.into();
        p.updates += 1;
        s.issues.insert(number, body.to_string());
        Ok(())
    }

    async fn add_labels(&self, issue: u64, labels: &[String]) -> Result<()> {
        let mut s = self.state.lock().unwrap();
        if let Some(p) = s.pulls.iter_mut().find(|p| p.pull.number == issue) {
            for l in labels {
                if !p.labels.contains(l) {
                    p.labels.push(l.clone());
                }
            }
        }
        Ok(())
    }

    async fn issue_body(&self, number: u64) -> Result<String> {
        self.state.lock().unwrap().issues.get(&number).cloned().ok_or_else(|| anyhow!("no issue #{number}"))
    }

    async fn workflow_run(&self, run_id: u64) -> Result<WorkflowRun> {
        let s = self.state.lock().unwrap();
        s.runs.iter().find(|r| r.id == run_id).cloned().ok_or_else(|| anyhow!("no run {run_id}"))
    }

    async fn runs_for_commit(&self, head_sha: &str) -> Result<Vec<WorkflowRun>> {
        let s = self.state.lock().unwrap();
        Ok(s.runs.iter().rev().filter(|r| r.head_sha == head_sha).cloned().collect())
    }

    async fn runs_on_branch(&self, branch: &str) -> Result<Vec<WorkflowRun>> {
        let s = self.state.lock().unwrap();
        Ok(s.runs.iter().rev().filter(|r| r.head_branch.as_deref() == Some(branch)).cloned().collect())
    }

    async fn download_artifact(&self, run_id: u64, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.state.lock().unwrap().artifacts.get(&(run_id, name.to_string())).cloned())
    }

    async fn failed_job_logs(&self, run_id: u64) -> Result<Vec<JobLog>> {
        Ok(self.state.lock().unwrap().job_logs.get(&run_id).cloned().unwrap_or_default())
    }

    async fn remove_label(&self, issue: u64, label: &str) -> Result<()> {
        let mut s = self.state.lock().unwrap();
        if let Some(p) = s.pulls.iter_mut().find(|p| p.pull.number == issue) {
            p.labels.retain(|l| l != label);
        }
        Ok(())
    }
}

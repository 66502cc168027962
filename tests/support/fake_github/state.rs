//! What the fake GitHub remembers.

use super::openapi::Violation;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub login: String,
    pub id: u64,
    /// `User`, `Bot` or `Organization`.
    pub kind: String,
}

#[derive(Debug, Clone)]
pub struct LabelRecord {
    pub id: u64,
    pub name: String,
    pub color: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RepoRecord {
    pub id: u64,
    pub owner: UserRecord,
    pub name: String,
    pub default_branch: String,
    pub private: bool,
    pub clone_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub labels: Vec<LabelRecord>,
    /// Lower-cased login → role (`admin`, `maintain`, `write`, `triage`, `read`).
    pub roles: BTreeMap<String, String>,
    /// Issues and pull requests share one sequence, as on GitHub.
    pub next_number: u64,
}

impl RepoRecord {
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner.login, self.name)
    }

    /// Label names are case-insensitive on GitHub.
    pub fn label(&self, name: &str) -> Option<&LabelRecord> {
        self.labels.iter().find(|l| l.name.eq_ignore_ascii_case(name))
    }
}

#[derive(Debug, Clone)]
pub struct IssueRecord {
    pub id: u64,
    pub number: u64,
    pub title: String,
    pub body: Option<String>,
    pub state: String,
    pub user: UserRecord,
    pub labels: Vec<String>,
    pub is_pull: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct CommentRecord {
    pub id: u64,
    pub repo: String,
    pub issue: u64,
    pub user: UserRecord,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Issue(u64),
    Comment(u64),
}

#[derive(Debug, Clone)]
pub struct ReactionRecord {
    pub id: u64,
    pub repo: String,
    pub subject: Subject,
    pub user: UserRecord,
    pub content: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct PullRecord {
    pub id: u64,
    pub number: u64,
    pub title: String,
    pub body: Option<String>,
    pub head: String,
    pub base: String,
    pub head_sha: String,
    pub base_sha: String,
    pub draft: bool,
    pub state: String,
    pub user: UserRecord,
    pub labels: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A GitHub Actions workflow run.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub id: u64,
    pub repo: String,
    pub workflow_id: u64,
    pub run_number: u64,
    /// `.github/workflows/<file>`.
    pub path: String,
    pub name: Option<String>,
    pub head_branch: Option<String>,
    pub head_sha: String,
    /// `owner/name` of the fork the head commit lives in; `None`: the repository itself.
    pub head_repository: Option<String>,
    pub event: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub run_attempt: u32,
    pub actor: UserRecord,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The rendered `run-name`, for dispatched runs of a workflow that has one.
    pub display_title: Option<String>,
    /// What `workflow_dispatch` was given.
    pub inputs: BTreeMap<String, String>,
    /// Someone asked GitHub to cancel it.
    pub cancel_requested: bool,
}

/// A workflow that can be dispatched: its `run-name` template and declared inputs.
#[derive(Debug, Clone)]
pub struct WorkflowDef {
    pub name: String,
    pub run_name: Option<String>,
    pub inputs: Vec<String>,
}

/// One job of a run, with its log.
#[derive(Debug, Clone)]
pub struct JobRecord {
    pub id: u64,
    pub run_id: u64,
    pub repo: String,
    /// The attempt of the run it belongs to.
    pub run_attempt: u32,
    pub name: String,
    pub status: String,
    pub conclusion: Option<String>,
    /// `None`: deleted or past retention (the download answers 410).
    pub log: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// An artifact a run uploaded: a real zip archive.
#[derive(Debug, Clone)]
pub struct ArtifactRecord {
    pub id: u64,
    pub run_id: u64,
    pub repo: String,
    pub name: String,
    pub zip: Vec<u8>,
    pub expired: bool,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What a short-lived download URL serves.
#[derive(Debug, Clone)]
pub struct Blob {
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// A request that reached the blob host (where artifact and log downloads are redirected).
#[derive(Debug, Clone)]
pub struct BlobRequest {
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// The `Authorization` header, if one arrived: it never should.
    pub authorization: Option<String>,
    pub status: u16,
}

#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub installation_id: u64,
    pub expires_at: DateTime<Utc>,
    pub revoked: bool,
}

#[derive(Debug, Clone)]
pub struct AppRecord {
    pub id: u64,
    pub slug: String,
    pub name: String,
    pub owner: UserRecord,
    pub created_at: DateTime<Utc>,
}

impl AppRecord {
    pub fn bot(&self) -> UserRecord {
        UserRecord { login: format!("{}[bot]", self.slug), id: 40_000_000 + self.id, kind: "Bot".into() }
    }
}

/// An app created through the manifest flow.
#[derive(Debug, Clone)]
pub struct ConvertedApp {
    pub code: String,
    pub app: AppRecord,
    pub pem: String,
    pub webhook_secret: String,
    pub client_secret: String,
}

/// What the next matching request gets instead of its real answer.
#[derive(Debug, Clone)]
pub enum Fault {
    Status(u16),
    /// 403 with `retry-after`.
    SecondaryRateLimit {
        retry_after_secs: u64,
    },
    /// 403 with `x-ratelimit-remaining: 0` and a reset this many seconds ahead.
    QuotaExhausted {
        reset_in_secs: u64,
    },
}

#[derive(Debug, Clone)]
pub struct PendingFault {
    pub fault: Fault,
    /// Only requests whose path contains this; `None`: any request.
    pub only: Option<String>,
}

pub type Corruption = Box<dyn FnOnce(&mut Value) + Send>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Anonymous,
    App,
    Installation(u64),
    /// Credentials were sent and refused.
    Refused(&'static str),
}

#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub caller: Caller,
    pub body: Option<Value>,
    pub status: u16,
    /// Set when the answer was one of the programmed faults.
    pub fault: bool,
}

pub struct State {
    pub next_id: u64,
    pub app: AppRecord,
    pub installations: BTreeMap<u64, BTreeSet<String>>,
    pub tokens: HashMap<String, TokenRecord>,
    pub token_lifetime: chrono::Duration,
    pub users: BTreeMap<String, UserRecord>,
    pub repos: BTreeMap<String, RepoRecord>,
    pub issues: BTreeMap<(String, u64), IssueRecord>,
    pub comments: BTreeMap<u64, CommentRecord>,
    pub reactions: Vec<ReactionRecord>,
    pub pulls: BTreeMap<(String, u64), PullRecord>,
    pub runs: BTreeMap<u64, RunRecord>,
    /// `(repo, path)` → workflow id.
    pub workflows: BTreeMap<(String, String), u64>,
    /// `(repo, path)` → what `workflow_dispatch` accepts; only these can be dispatched.
    pub dispatchable: BTreeMap<(String, String), WorkflowDef>,
    /// Runs started through `workflow_dispatch`, in order.
    pub dispatched: Vec<u64>,
    /// Whether a dispatch may answer with the run it started (`return_run_details`); off, it
    /// answers 204 as GitHub Enterprise Server versions without run details do.
    pub dispatch_details: bool,
    pub jobs: BTreeMap<u64, JobRecord>,
    pub artifacts: BTreeMap<u64, ArtifactRecord>,
    /// Key in the blob URL → content.
    pub blobs: HashMap<String, Blob>,
    pub blob_requests: Vec<BlobRequest>,
    pub manifest_codes: BTreeSet<String>,
    pub converted: Vec<ConvertedApp>,
    pub faults: VecDeque<PendingFault>,
    pub corruptions: VecDeque<(String, Corruption)>,
    pub requests: Vec<RecordedRequest>,
    pub violations: Vec<Violation>,
    /// Operation ids whose answers went through the schema check.
    pub checked: BTreeSet<String>,
}

impl State {
    pub fn new(app: AppRecord) -> State {
        let mut users = BTreeMap::new();
        users.insert(app.owner.login.to_ascii_lowercase(), app.owner.clone());
        let bot = app.bot();
        users.insert(bot.login.to_ascii_lowercase(), bot);
        State {
            next_id: 1000,
            app,
            installations: BTreeMap::new(),
            tokens: HashMap::new(),
            token_lifetime: chrono::Duration::hours(1),
            users,
            repos: BTreeMap::new(),
            issues: BTreeMap::new(),
            comments: BTreeMap::new(),
            dispatchable: BTreeMap::new(),
            dispatched: Vec::new(),
            dispatch_details: true,
            reactions: Vec::new(),
            pulls: BTreeMap::new(),
            runs: BTreeMap::new(),
            workflows: BTreeMap::new(),
            jobs: BTreeMap::new(),
            artifacts: BTreeMap::new(),
            blobs: HashMap::new(),
            blob_requests: Vec::new(),
            manifest_codes: BTreeSet::new(),
            converted: Vec::new(),
            faults: VecDeque::new(),
            corruptions: VecDeque::new(),
            requests: Vec::new(),
            violations: Vec::new(),
            checked: BTreeSet::new(),
        }
    }

    pub fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The user with this login, created on first sight (`[bot]` logins are bots).
    pub fn user(&mut self, login: &str) -> UserRecord {
        if let Some(u) = self.users.get(&login.to_ascii_lowercase()) {
            return u.clone();
        }
        let kind = if login.ends_with("[bot]") { "Bot" } else { "User" };
        let user = UserRecord { login: login.to_string(), id: self.id(), kind: kind.into() };
        self.users.insert(login.to_ascii_lowercase(), user.clone());
        user
    }

    pub fn take_fault(&mut self, path: &str) -> Option<Fault> {
        let i = self.faults.iter().position(|f| f.only.as_deref().is_none_or(|frag| path.contains(frag)))?;
        self.faults.remove(i).map(|f| f.fault)
    }

    pub fn take_corruption(&mut self, path: &str) -> Option<Corruption> {
        let i = self.corruptions.iter().position(|(frag, _)| path.contains(frag.as_str()))?;
        self.corruptions.remove(i).map(|(_, f)| f)
    }
}

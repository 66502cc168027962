//! Typed webhook events, limited to what the factory acts on. Everything else becomes
//! [`WebhookEvent::Ignored`], so a new GitHub event or action never breaks the intake.
//!
//! The structs hold only the fields the factory reads, and every field GitHub may omit or send as
//! `null` is optional, so the same types read github.com and GitHub Enterprise Server payloads.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct User {
    pub login: String,
    #[serde(default)]
    pub id: Option<i64>,
    /// "User", "Bot" or "Organization".
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
}

impl User {
    /// Bots (other apps, and this one) never trigger work: a bot that echoes a command back
    /// would otherwise start a loop.
    pub fn is_bot(&self) -> bool {
        self.kind.as_deref() == Some("Bot") || self.login.ends_with("[bot]")
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Repository {
    #[serde(default)]
    pub id: Option<i64>,
    pub name: String,
    /// `owner/name`.
    pub full_name: String,
    #[serde(default)]
    pub default_branch: Option<String>,
    #[serde(default)]
    pub private: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct InstallationRef {
    pub id: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Label {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Issue {
    pub number: i64,
    pub title: String,
    #[serde(default)]
    pub body: Option<String>,
    pub user: User,
    #[serde(default)]
    pub labels: Vec<Label>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub html_url: Option<String>,
    /// Present when the "issue" is a pull request (comments on PRs arrive as issue comments).
    #[serde(default)]
    pub pull_request: Option<Value>,
}

impl Issue {
    pub fn has_label(&self, name: &str) -> bool {
        self.labels.iter().any(|l| l.name.eq_ignore_ascii_case(name))
    }

    pub fn is_pull_request(&self) -> bool {
        self.pull_request.is_some()
    }
}

/// The old value of an edited field.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Previous {
    pub from: String,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct Changes {
    #[serde(default)]
    pub title: Option<Previous>,
    #[serde(default)]
    pub body: Option<Previous>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct AppRef {
    pub id: i64,
    #[serde(default)]
    pub slug: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Comment {
    pub id: i64,
    #[serde(default)]
    pub body: Option<String>,
    pub user: User,
    #[serde(default)]
    pub html_url: Option<String>,
    /// OWNER, MEMBER, COLLABORATOR, CONTRIBUTOR, ... A hint only: the permission check asks
    /// the API.
    #[serde(default)]
    pub author_association: Option<String>,
    #[serde(default)]
    pub performed_via_github_app: Option<AppRef>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct GitRef {
    #[serde(rename = "ref")]
    pub name: String,
    pub sha: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PullRequest {
    pub number: i64,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub merged: Option<bool>,
    pub head: GitRef,
    pub base: GitRef,
    #[serde(default)]
    pub html_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct RunPullRequest {
    pub number: i64,
    pub head: GitRef,
    pub base: GitRef,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct WorkflowRun {
    pub id: i64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub head_branch: Option<String>,
    pub head_sha: String,
    #[serde(default)]
    pub status: Option<String>,
    /// success, failure, cancelled, ...; null until completed.
    #[serde(default)]
    pub conclusion: Option<String>,
    /// What triggered the run (pull_request, push, ...).
    #[serde(default)]
    pub event: Option<String>,
    /// The workflow file, e.g. `.github/workflows/spec-tests.yml`.
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub pull_requests: Vec<RunPullRequest>,
    #[serde(default)]
    pub html_url: Option<String>,
    #[serde(default)]
    pub run_attempt: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Workflow {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum IssuesAction {
    Opened,
    Labeled { label: Label },
    Edited { changes: Changes },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IssuesEvent {
    pub action: IssuesAction,
    pub issue: Issue,
    pub repository: Repository,
    pub sender: User,
    pub installation: Option<InstallationRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum CommentAction {
    Created,
    /// `previous_body` is the comment before the edit (`changes.body.from`), if it changed.
    Edited {
        previous_body: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IssueCommentEvent {
    pub action: CommentAction,
    pub issue: Issue,
    pub comment: Comment,
    pub repository: Repository,
    pub sender: User,
    pub installation: Option<InstallationRef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PullRequestAction {
    Closed,
    Synchronize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PullRequestEvent {
    pub action: PullRequestAction,
    pub number: i64,
    pub pull_request: PullRequest,
    pub repository: Repository,
    pub sender: User,
    pub installation: Option<InstallationRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkflowRunEvent {
    pub workflow_run: WorkflowRun,
    pub workflow: Option<Workflow>,
    pub repository: Repository,
    pub sender: User,
    pub installation: Option<InstallationRef>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct InstallationInfo {
    pub id: i64,
    #[serde(default)]
    pub account: Option<User>,
    #[serde(default)]
    pub app_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct InstallationEvent {
    /// created, deleted, suspend, unsuspend, new_permissions_accepted.
    pub action: String,
    pub installation: InstallationInfo,
    #[serde(default)]
    pub sender: Option<User>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Hook {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub app_id: Option<i64>,
}

/// Sent once when the webhook is configured.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PingEvent {
    #[serde(default)]
    pub zen: Option<String>,
    #[serde(default)]
    pub hook_id: Option<i64>,
    #[serde(default)]
    pub hook: Option<Hook>,
    #[serde(default)]
    pub repository: Option<Repository>,
    #[serde(default)]
    pub sender: Option<User>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum WebhookEvent {
    Issues(IssuesEvent),
    IssueComment(IssueCommentEvent),
    PullRequest(PullRequestEvent),
    WorkflowRun(WorkflowRunEvent),
    Installation(InstallationEvent),
    Ping(PingEvent),
    /// An event or action the factory does not act on.
    Ignored {
        event: String,
        action: Option<String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("the payload is not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("malformed '{event}' payload (action {action:?}) at {path}: {message}")]
    Malformed { event: String, action: Option<String>, path: String, message: String },
}

/// Fields every repository event shares; read once per payload.
#[derive(Deserialize)]
struct Envelope<T> {
    #[serde(flatten)]
    body: T,
    repository: Repository,
    sender: User,
    #[serde(default)]
    installation: Option<InstallationRef>,
}

#[derive(Deserialize)]
struct IssuesBody {
    issue: Issue,
    #[serde(default)]
    label: Option<Label>,
    #[serde(default)]
    changes: Option<Changes>,
}

#[derive(Deserialize)]
struct CommentBody {
    issue: Issue,
    comment: Comment,
    #[serde(default)]
    changes: Option<Changes>,
}

#[derive(Deserialize)]
struct PullRequestBody {
    number: i64,
    pull_request: PullRequest,
}

#[derive(Deserialize)]
struct WorkflowRunBody {
    workflow_run: WorkflowRun,
    #[serde(default)]
    workflow: Option<Workflow>,
}

impl WebhookEvent {
    /// Reads a payload given the `X-GitHub-Event` header value. Unknown events and actions are
    /// `Ignored`; an error means a known event whose payload lacks what the factory needs.
    pub fn parse(event: &str, payload: &[u8]) -> Result<WebhookEvent, EventError> {
        let value: Value = serde_json::from_slice(payload).map_err(EventError::NotJson)?;
        Self::from_value(event, value)
    }

    pub fn from_value(event: &str, value: Value) -> Result<WebhookEvent, EventError> {
        let action = value.get("action").and_then(Value::as_str).map(str::to_string);
        Ok(match (event, action.as_deref()) {
            ("issues", Some(act @ ("opened" | "labeled" | "edited"))) => {
                let e: Envelope<IssuesBody> = typed(event, action.as_deref(), value)?;
                let action = match act {
                    "opened" => IssuesAction::Opened,
                    "labeled" => match e.body.label {
                        Some(label) => IssuesAction::Labeled { label },
                        None => return Err(malformed(event, act, "label", "missing")),
                    },
                    _ => IssuesAction::Edited { changes: e.body.changes.unwrap_or_default() },
                };
                WebhookEvent::Issues(IssuesEvent {
                    action,
                    issue: e.body.issue,
                    repository: e.repository,
                    sender: e.sender,
                    installation: e.installation,
                })
            }
            ("issue_comment", Some(act @ ("created" | "edited"))) => {
                let e: Envelope<CommentBody> = typed(event, action.as_deref(), value)?;
                let action = if act == "created" {
                    CommentAction::Created
                } else {
                    CommentAction::Edited { previous_body: e.body.changes.and_then(|c| c.body).map(|b| b.from) }
                };
                WebhookEvent::IssueComment(IssueCommentEvent {
                    action,
                    issue: e.body.issue,
                    comment: e.body.comment,
                    repository: e.repository,
                    sender: e.sender,
                    installation: e.installation,
                })
            }
            ("pull_request", Some(act @ ("closed" | "synchronize"))) => {
                let e: Envelope<PullRequestBody> = typed(event, action.as_deref(), value)?;
                WebhookEvent::PullRequest(PullRequestEvent {
                    action: if act == "closed" { PullRequestAction::Closed } else { PullRequestAction::Synchronize },
                    number: e.body.number,
                    pull_request: e.body.pull_request,
                    repository: e.repository,
                    sender: e.sender,
                    installation: e.installation,
                })
            }
            ("workflow_run", Some("completed")) => {
                let e: Envelope<WorkflowRunBody> = typed(event, action.as_deref(), value)?;
                WebhookEvent::WorkflowRun(WorkflowRunEvent {
                    workflow_run: e.body.workflow_run,
                    workflow: e.body.workflow,
                    repository: e.repository,
                    sender: e.sender,
                    installation: e.installation,
                })
            }
            ("installation", Some(_)) => WebhookEvent::Installation(typed(event, action.as_deref(), value)?),
            ("ping", _) => WebhookEvent::Ping(typed(event, action.as_deref(), value)?),
            _ => WebhookEvent::Ignored { event: event.to_string(), action },
        })
    }

    /// The `X-GitHub-Event` name this event came with.
    pub fn name(&self) -> &str {
        match self {
            WebhookEvent::Issues(_) => "issues",
            WebhookEvent::IssueComment(_) => "issue_comment",
            WebhookEvent::PullRequest(_) => "pull_request",
            WebhookEvent::WorkflowRun(_) => "workflow_run",
            WebhookEvent::Installation(_) => "installation",
            WebhookEvent::Ping(_) => "ping",
            WebhookEvent::Ignored { event, .. } => event,
        }
    }

    pub fn sender(&self) -> Option<&User> {
        match self {
            WebhookEvent::Issues(e) => Some(&e.sender),
            WebhookEvent::IssueComment(e) => Some(&e.sender),
            WebhookEvent::PullRequest(e) => Some(&e.sender),
            WebhookEvent::WorkflowRun(e) => Some(&e.sender),
            WebhookEvent::Installation(e) => e.sender.as_ref(),
            WebhookEvent::Ping(e) => e.sender.as_ref(),
            WebhookEvent::Ignored { .. } => None,
        }
    }

    /// `sender.type == "Bot"`.
    pub fn is_from_bot(&self) -> bool {
        self.sender().is_some_and(User::is_bot)
    }

    pub fn repository(&self) -> Option<&Repository> {
        match self {
            WebhookEvent::Issues(e) => Some(&e.repository),
            WebhookEvent::IssueComment(e) => Some(&e.repository),
            WebhookEvent::PullRequest(e) => Some(&e.repository),
            WebhookEvent::WorkflowRun(e) => Some(&e.repository),
            WebhookEvent::Ping(e) => e.repository.as_ref(),
            WebhookEvent::Installation(_) | WebhookEvent::Ignored { .. } => None,
        }
    }

    pub fn installation_id(&self) -> Option<i64> {
        match self {
            WebhookEvent::Issues(e) => e.installation.as_ref().map(|i| i.id),
            WebhookEvent::IssueComment(e) => e.installation.as_ref().map(|i| i.id),
            WebhookEvent::PullRequest(e) => e.installation.as_ref().map(|i| i.id),
            WebhookEvent::WorkflowRun(e) => e.installation.as_ref().map(|i| i.id),
            WebhookEvent::Installation(e) => Some(e.installation.id),
            WebhookEvent::Ping(_) | WebhookEvent::Ignored { .. } => None,
        }
    }
}

fn typed<T: DeserializeOwned>(event: &str, action: Option<&str>, value: Value) -> Result<T, EventError> {
    serde_path_to_error::deserialize(value).map_err(|err| EventError::Malformed {
        event: event.to_string(),
        action: action.map(str::to_string),
        path: err.path().to_string(),
        message: err.inner().to_string(),
    })
}

fn malformed(event: &str, action: &str, path: &str, message: &str) -> EventError {
    EventError::Malformed {
        event: event.to_string(),
        action: Some(action.to_string()),
        path: path.to_string(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sender(kind: &str) -> Value {
        json!({"login": "someone", "id": 1, "type": kind})
    }

    #[test]
    fn unknown_events_and_actions_are_ignored() {
        let e = WebhookEvent::parse("star", br#"{"action":"created"}"#).unwrap();
        assert_eq!(e, WebhookEvent::Ignored { event: "star".into(), action: Some("created".into()) });
        let e = WebhookEvent::parse("issues", br#"{"action":"pinned"}"#).unwrap();
        assert!(matches!(e, WebhookEvent::Ignored { .. }));
    }

    #[test]
    fn bot_sender_is_recognised() {
        let payload = json!({
            "action": "created",
            "issue": {"number": 1, "title": "t", "user": sender("User")},
            "comment": {"id": 5, "body": "/factory retry", "user": sender("Bot")},
            "repository": {"name": "r", "full_name": "o/r"},
            "sender": sender("Bot"),
        });
        let e = WebhookEvent::from_value("issue_comment", payload).unwrap();
        assert!(e.is_from_bot());
    }

    #[test]
    fn malformed_known_event_names_the_field() {
        let payload = json!({"action": "opened", "issue": {"title": "x"}, "repository": {"name": "r", "full_name": "o/r"}, "sender": sender("User")});
        let err = WebhookEvent::from_value("issues", payload).unwrap_err().to_string();
        assert!(err.contains("issue"), "{err}");
    }
}

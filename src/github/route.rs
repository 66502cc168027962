//! Event → jobs: what the factory does about a webhook event, and why.
//!
//! Pure and synchronous: it reads the event and nothing else, so every decision is testable
//! without a server and the reason is stored with the event. Checks that need the API (does the
//! commenter have write access?) happen in the job, where they fail closed.

use super::events::{
    CommentAction, IssueCommentEvent, IssuesAction, IssuesEvent, PullRequestAction, PullRequestEvent, WebhookEvent,
    WorkflowRunEvent,
};
use crate::command::{self, Command};
use crate::request;
use crate::store::{JobKind, NewJob};
use serde::Serialize;
use serde_json::{Value, json};

/// Branches the factory pushes connector PRs from.
pub const CONNECTOR_BRANCH_PREFIX: &str = "connector/";
/// Branches of the factory's own improvement PRs; their CI never starts work.
pub const IMPROVEMENT_BRANCH_PREFIX: &str = "factory/";
/// The workflow whose completion carries a spec-test report.
pub const SPEC_TEST_WORKFLOW: &str = "spec-tests.yml";
/// The workflow that re-runs every connector when `skills/` or `registry/_scaffold/` change;
/// its result is posted on the improvement PR.
pub const REGRESSION_WORKFLOW: &str = "regression.yml";

/// `spec-tests.yml` from `.github/workflows/spec-tests.yml`, or from
/// `owner/repo/.github/workflows/spec-tests.yml@main` as GitHub also writes a run's path.
pub fn workflow_file(path: &str) -> &str {
    let path = path.split('@').next().unwrap_or(path);
    path.rsplit('/').next().unwrap_or(path)
}

/// Who the factory is, to recognise its own actions.
#[derive(Debug, Clone, Default)]
pub struct RouteContext {
    pub app_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    /// Empty when the event is ignored.
    pub jobs: Vec<NewJob>,
    pub reason: String,
}

impl Route {
    fn ignore(reason: impl Into<String>) -> Route {
        Route { jobs: Vec::new(), reason: reason.into() }
    }

    /// `ignore`, or the kinds of the jobs, e.g. `retry` or `cancel+retry`.
    pub fn decision(&self) -> String {
        if self.jobs.is_empty() {
            "ignore".into()
        } else {
            self.jobs.iter().map(|j| j.kind.as_str()).collect::<Vec<_>>().join("+")
        }
    }

    /// What is stored with the event.
    pub fn record(&self) -> Value {
        json!({ "decision": self.decision(), "reason": self.reason })
    }
}

pub fn route(event: &WebhookEvent, delivery: &str, ctx: &RouteContext) -> Route {
    match event {
        // The run's sender is whoever pushed, which for connector PRs is this app's bot; the
        // branch rules below keep CI results from looping instead.
        WebhookEvent::WorkflowRun(e) => workflow_run(e, delivery),
        e if e.is_from_bot() => {
            Route::ignore(format!("sent by a bot ({})", e.sender().map(|s| s.login.as_str()).unwrap_or("unknown")))
        }
        WebhookEvent::Issues(e) => issues(e, delivery),
        WebhookEvent::IssueComment(e) => issue_comment(e, delivery, ctx),
        WebhookEvent::PullRequest(e) => pull_request(e, delivery),
        WebhookEvent::Installation(e) => Route::ignore(format!(
            "installation {} {}: nothing to do until a request arrives",
            e.installation.id, e.action
        )),
        WebhookEvent::Ping(e) => Route::ignore(format!(
            "ping from hook {}: the webhook is set up",
            e.hook_id.map(|id| id.to_string()).unwrap_or_else(|| "?".into())
        )),
        WebhookEvent::Ignored { event, action } => Route::ignore(match action {
            Some(action) => format!("'{event}' events with action '{action}' are not handled"),
            None => format!("'{event}' events are not handled"),
        }),
    }
}

fn issue_payload(e: &IssuesEvent, delivery: &str) -> Value {
    let body = e.issue.body.as_deref().unwrap_or_default();
    let (parsed, errors) = match request::parse(body) {
        Ok(req) => (serde_json::to_value(req).unwrap_or(Value::Null), Value::Null),
        Err(invalid) => (Value::Null, serde_json::to_value(&invalid.errors).unwrap_or(Value::Null)),
    };
    json!({
        "delivery": delivery,
        "issue": {
            "number": e.issue.number,
            "title": e.issue.title,
            "body": body,
            "html_url": e.issue.html_url,
            "author": e.issue.user.login,
        },
        "requested_by": e.sender.login,
        "request": parsed,
        "request_errors": errors,
    })
}

fn issues(e: &IssuesEvent, delivery: &str) -> Route {
    let number = e.issue.number;
    if !e.issue.has_label(request::LABEL) {
        return Route::ignore(format!("issue #{number} is not labeled '{}'", request::LABEL));
    }
    let job = || {
        NewJob::new(JobKind::Generate, &e.repository.full_name, Some(number), issue_payload(e, delivery))
            .installation(e.installation.as_ref().map(|i| i.id))
    };
    match &e.action {
        // An issue opened from the form arrives as `opened` and `labeled`; whichever comes first
        // starts the work and the other is skipped by `only_if_first`.
        IssuesAction::Opened => {
            Route { jobs: vec![job().only_if_first()], reason: format!("connector request #{number} opened") }
        }
        IssuesAction::Labeled { label } if label.name.eq_ignore_ascii_case(request::LABEL) => {
            Route { jobs: vec![job().only_if_first()], reason: format!("issue #{number} labeled '{}'", request::LABEL) }
        }
        IssuesAction::Labeled { label } => {
            Route::ignore(format!("label '{}' does not concern the factory", label.name))
        }
        IssuesAction::Edited { changes } if changes.body.is_none() => {
            Route::ignore(format!("issue #{number} edited without changing its body"))
        }
        IssuesAction::Edited { .. } if e.issue.state.as_deref() == Some("closed") => {
            Route::ignore(format!("closed issue #{number} edited"))
        }
        // The usual answer to "please fix these fields": build again from the edited request.
        IssuesAction::Edited { .. } => {
            Route { jobs: vec![job()], reason: format!("connector request #{number} edited") }
        }
    }
}

/// The status comment's retry box, unticked before and ticked now.
const RETRY_BOX: &str = "- [ ] retry";
const RETRY_BOX_TICKED: &str = "- [x] retry";

/// Someone ticked the retry box on the factory's status comment. The comment is the app's, but
/// the edit is the sender's, so this is that person's request (their write access is checked
/// by the job). Returns `None` for any other edit.
fn retry_box_ticked(e: &IssueCommentEvent, delivery: &str, ctx: &RouteContext) -> Option<Route> {
    let CommentAction::Edited { previous_body: Some(previous) } = &e.action else { return None };
    let body = e.comment.body.as_deref().unwrap_or_default();
    let by_this_app = match ctx.app_id {
        Some(id) => e.comment.performed_via_github_app.as_ref().map(|a| a.id) == Some(id),
        None => e.comment.user.is_bot(),
    };
    let is_status = body.contains(crate::pipeline::status::MARKER);
    let ticked = previous.contains(RETRY_BOX) && body.to_ascii_lowercase().contains(RETRY_BOX_TICKED);
    if !(by_this_app && is_status && ticked) || e.sender.is_bot() {
        return None;
    }
    let number = e.issue.number;
    let payload = json!({
        "delivery": delivery,
        "command": Command::Retry { guidance: None },
        "comment": {
            "id": e.comment.id,
            "html_url": e.comment.html_url,
            "author": e.sender.login,
            "retry_box": true,
        },
        "issue": { "number": number, "title": e.issue.title, "is_pull_request": e.issue.is_pull_request() },
        "requested_by": e.sender.login,
    });
    let job = NewJob::new(JobKind::Retry, &e.repository.full_name, Some(number), payload)
        .installation(e.installation.as_ref().map(|i| i.id));
    Some(Route { jobs: vec![job], reason: format!("retry box ticked on #{number} by {}", e.sender.login) })
}

fn issue_comment(e: &IssueCommentEvent, delivery: &str, ctx: &RouteContext) -> Route {
    let number = e.issue.number;
    if let Some(route) = retry_box_ticked(e, delivery, ctx) {
        return route;
    }
    if ctx.app_id.is_some() && e.comment.performed_via_github_app.as_ref().map(|a| a.id) == ctx.app_id {
        return Route::ignore("comment written by this app");
    }
    if e.comment.user.is_bot() {
        return Route::ignore(format!("comment written by a bot ({})", e.comment.user.login));
    }
    let body = e.comment.body.as_deref().unwrap_or_default();
    let commands = match &e.action {
        CommentAction::Created => command::parse(body),
        CommentAction::Edited { previous_body: Some(previous) } => command::new_commands(previous, body),
        CommentAction::Edited { previous_body: None } => {
            return Route::ignore(format!("comment on #{number} edited without changing its text"));
        }
    };
    if commands.is_empty() {
        let what = if matches!(e.action, CommentAction::Created) { "no" } else { "no new" };
        return Route::ignore(format!("comment on #{number} has {what} /factory command"));
    }
    if !e.issue.has_label(request::LABEL) && !e.issue.is_pull_request() {
        return Route::ignore(format!(
            "#{number} is neither a connector request nor a pull request; its /factory commands are ignored"
        ));
    }
    let mut jobs = Vec::new();
    let mut unknown = Vec::new();
    for cmd in &commands {
        let kind = match cmd {
            Command::Retry { .. } => JobKind::Retry,
            Command::Cancel => JobKind::Cancel,
            Command::Status => JobKind::Status,
            Command::Unknown { verb } => {
                unknown.push(format!("'{verb}'"));
                continue;
            }
        };
        let payload = json!({
            "delivery": delivery,
            "command": cmd,
            "comment": {
                "id": e.comment.id,
                "html_url": e.comment.html_url,
                "author": e.comment.user.login,
                "author_association": e.comment.author_association,
            },
            "issue": { "number": number, "title": e.issue.title, "is_pull_request": e.issue.is_pull_request() },
            "requested_by": e.sender.login,
        });
        jobs.push(
            NewJob::new(kind, &e.repository.full_name, Some(number), payload)
                .installation(e.installation.as_ref().map(|i| i.id)),
        );
    }
    let mut reason = format!(
        "/factory {} on #{number} by {}",
        commands.iter().map(Command::verb).collect::<Vec<_>>().join(", "),
        e.comment.user.login
    );
    if !unknown.is_empty() {
        reason.push_str(&format!(" (unknown: {})", unknown.join(", ")));
    }
    Route { jobs, reason }
}

fn pull_request(e: &PullRequestEvent, delivery: &str) -> Route {
    let branch = &e.pull_request.head.name;
    if !branch.starts_with(CONNECTOR_BRANCH_PREFIX) {
        return Route::ignore(format!("PR #{} is from '{branch}', not a connector branch", e.number));
    }
    match e.action {
        PullRequestAction::Synchronize => {
            Route::ignore(format!("new commits on PR #{}: looked at when its CI finishes", e.number))
        }
        PullRequestAction::Closed => {
            let merged = e.pull_request.merged == Some(true);
            let payload = json!({
                "delivery": delivery,
                "reason": if merged { "pull_request_merged" } else { "pull_request_closed" },
                "pull_request": { "number": e.number, "head": branch },
                "requested_by": e.sender.login,
            });
            Route {
                jobs: vec![
                    NewJob::new(JobKind::Cancel, &e.repository.full_name, Some(e.number), payload)
                        .installation(e.installation.as_ref().map(|i| i.id)),
                ],
                reason: format!(
                    "connector PR #{} {}: stop its pending work",
                    e.number,
                    if merged { "merged" } else { "closed" }
                ),
            }
        }
    }
}

fn workflow_run(e: &WorkflowRunEvent, delivery: &str) -> Route {
    let run = &e.workflow_run;
    let branch = run.head_branch.as_deref().unwrap_or_default();
    let path = run.path.as_deref().or(e.workflow.as_ref().and_then(|w| w.path.as_deref()));
    let is = |file: &str| path.is_some_and(|p| workflow_file(p) == file);
    if branch.starts_with(IMPROVEMENT_BRANCH_PREFIX) {
        // Only the regression guard's result is reported there; nothing is analysed or built.
        if !is(REGRESSION_WORKFLOW) {
            return Route::ignore(format!(
                "run {} on improvement branch '{branch}' is not the regression guard: never triggers work",
                run.id
            ));
        }
    } else if !branch.starts_with(CONNECTOR_BRANCH_PREFIX) {
        return Route::ignore(format!("run {} on '{branch}', not a connector branch", run.id));
    } else if let Some(path) = path
        && !is(SPEC_TEST_WORKFLOW)
    {
        return Route::ignore(format!("run {} is of workflow '{path}', not {SPEC_TEST_WORKFLOW}", run.id));
    }
    // Fork PRs come without `pull_requests`; the job then finds the PR by branch.
    let pr = run.pull_requests.first().map(|p| p.number);
    let payload = json!({
        "delivery": delivery,
        "run": {
            "id": run.id,
            "head_branch": branch,
            "head_sha": run.head_sha,
            "conclusion": run.conclusion,
            "html_url": run.html_url,
            "attempt": run.run_attempt,
        },
        "pull_request": pr,
    });
    Route {
        jobs: vec![
            NewJob::new(JobKind::CiFinished, &e.repository.full_name, pr, payload)
                .installation(e.installation.as_ref().map(|i| i.id)),
        ],
        reason: format!(
            "{} finished on '{branch}' ({})",
            if is(REGRESSION_WORKFLOW) { "regression guard" } else { "spec tests" },
            run.conclusion.as_deref().unwrap_or("no conclusion")
        ),
    }
}

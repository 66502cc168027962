//! `/factory cancel` and `/factory status`, and the cancel a closed connector PR sends.
//!
//! Queuing a cancel job stops nothing: anyone can write `/factory cancel`, so this job first
//! checks that the person has write access, and only then cancels the active work through
//! `Store::cancel_active` and says so on the status comment. A cancel sent for a closed PR has no
//! person behind it (closing needs write access on GitHub already) and acts at once.

use super::pr;
use super::status::{MARKER, Meta, Phase, Status};
use crate::platform::Platform;
use crate::store::{Job, JobFilter, JobKind, Store};
use crate::worker::JobOutcome;
use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::sync::Arc;

fn text(job: &Job, ptr: &str) -> Option<String> {
    job.payload.pointer(ptr).and_then(Value::as_str).map(str::to_string)
}

fn number(job: &Job) -> Result<u64> {
    job.issue_number.and_then(|n| u64::try_from(n).ok()).context("the job names no issue or pull request")
}

/// The request issue a command on `number` is about: itself, or the issue a PR closes.
pub(super) async fn request_issue(platform: &dyn Platform, job: &Job, number: u64) -> u64 {
    let on_pull = job.payload.pointer("/issue/is_pull_request").and_then(Value::as_bool).unwrap_or(false)
        || job.payload.pointer("/pull_request/number").is_some();
    if !on_pull {
        return number;
    }
    match platform.issue_body(number).await {
        Ok(body) => pr::closed_issue(&body).unwrap_or(number),
        Err(_) => number,
    }
}

/// The person who asked (a comment's author), or `None` for a cancel from a closed PR.
fn commenter(job: &Job) -> Option<String> {
    text(job, "/comment/author")
}

pub async fn cancel(platform: &dyn Platform, store: &Arc<dyn Store>, job: &Job) -> Result<JobOutcome> {
    let number = number(job)?;
    let comment_id = job.payload.pointer("/comment/id").and_then(Value::as_u64);
    if let Some(person) = commenter(job) {
        // Closing a PR needs write access on GitHub already; a comment does not.
        let allowed = platform.can_write(&person).await.unwrap_or(false);
        if !allowed {
            platform
                .create_comment(
                    number,
                    &format!("@{person}, only people with write access to this repository can cancel the factory's work."),
                )
                .await?;
            return Ok(JobOutcome::Succeeded(json!({"refused": person})));
        }
        if let Some(id) = comment_id {
            let _ = platform.react_comment(id, "+1").await;
        }
    }
    let issue = request_issue(platform, job, number).await;
    // Work is keyed by the request issue, and CI analysis by the PR; a cancel on either stops both.
    let mut stopped = Vec::new();
    for n in if issue == number { vec![number] } else { vec![number, issue] } {
        if let Ok(n) = i64::try_from(n) {
            stopped.extend(store.cancel_active(&job.repository, n, job.id).await?);
        }
    }
    let who = commenter(job).map(|p| format!("@{p} with `/factory cancel`")).unwrap_or_else(|| {
        match text(job, "/reason").as_deref() {
            Some("pull_request_merged") => "the pull request being merged".into(),
            _ => "the pull request being closed".into(),
        }
    });
    let found = platform.find_bot_comment(issue, MARKER).await?;
    let was_running = found.as_ref().and_then(|(_, body)| Meta::parse(body)).is_some_and(|m| m.phase.is_running());
    match found {
        Some((id, body)) if was_running || !stopped.is_empty() => {
            let meta = Meta::parse(&body).expect("checked above");
            let mut status = Status::new(Meta { phase: Phase::Cancelled, ..meta });
            status.name = body
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("### 🏭 Connector Factory: "))
                .map(str::to_string);
            status.detail = Some(format!("Cancelled by {who}. Comment `/factory retry` to build it again."));
            platform.update_comment(id, &status.render()).await?;
        }
        // Work was stopped before it wrote its first status: start the status comment here, so
        // the request shows it was cancelled (and a retry finds the comment to reuse).
        None if !stopped.is_empty() => {
            let mut status = Status::new(Meta {
                issue,
                job: Some(job.id.0),
                phase: Phase::Cancelled,
                branch: None,
                pr: None,
                attempts: 1,
            });
            status.detail = Some(format!("Cancelled by {who} before it got going. Comment `/factory retry` to build it again."));
            platform.create_comment(issue, &status.render()).await?;
        }
        _ if commenter(job).is_some() => {
            platform.create_comment(number, "Nothing to cancel: the factory is not working on this request.").await?;
        }
        _ => {}
    }
    Ok(JobOutcome::Succeeded(json!({"issue": issue, "cancelled": stopped.iter().map(|j| j.id.0).collect::<Vec<_>>()})))
}

pub async fn status(platform: &dyn Platform, store: &Arc<dyn Store>, job: &Job) -> Result<JobOutcome> {
    let number = number(job)?;
    let issue = request_issue(platform, job, number).await;
    let mut jobs = Vec::new();
    for n in [number, issue] {
        let filter = JobFilter {
            states: vec![],
            kinds: vec![JobKind::Generate, JobKind::Retry],
            repository: Some(job.repository.clone()),
            issue_number: i64::try_from(n).ok(),
            limit: Some(1),
            before: None,
        };
        jobs.extend(store.list_jobs(&filter).await?);
    }
    jobs.sort_by_key(|j| std::cmp::Reverse(j.id.0));
    let latest = jobs.into_iter().next();
    let reply = match &latest {
        Some(j) => format!(
            "Job {} ({}) is **{}**{}, created {}.",
            j.id.0,
            j.kind.as_str(),
            j.state.as_str(),
            j.phase.as_deref().map(|p| format!(", phase `{p}`")).unwrap_or_default(),
            j.created_at.format("%Y-%m-%d %H:%M UTC")
        ),
        None => "The factory has no job for this request yet.".into(),
    };
    platform.create_comment(number, &reply).await?;
    Ok(JobOutcome::Succeeded(json!({"reply": reply})))
}

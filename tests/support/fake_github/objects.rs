//! GitHub's objects as the REST API sends them, built from the fake's state.
//!
//! Each builder emits every property its schema in GitHub's description requires (and a few
//! optional ones the bot reads), with URLs under the fake's own address. The schema checker
//! holds them to that.

use super::state::{
    AppRecord, ArtifactRecord, CommentRecord, IssueRecord, JobRecord, LabelRecord, PullRecord, ReactionRecord, RepoRecord,
    RunRecord, UserRecord,
};
use serde_json::{Value, json};

/// Percent-encodes one URL path segment (`name[bot]` → `name%5Bbot%5D`).
pub fn seg(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn simple_user(base: &str, u: &UserRecord) -> Value {
    let api = format!("{base}/users/{}", seg(&u.login));
    json!({
        "login": u.login,
        "id": u.id,
        "node_id": format!("U_{}", u.id),
        "avatar_url": format!("{base}/avatars/u/{}", u.id),
        "gravatar_id": "",
        "url": api,
        "html_url": format!("{base}/{}", seg(&u.login)),
        "followers_url": format!("{api}/followers"),
        "following_url": format!("{api}/following{{/other_user}}"),
        "gists_url": format!("{api}/gists{{/gist_id}}"),
        "starred_url": format!("{api}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{api}/subscriptions"),
        "organizations_url": format!("{api}/orgs"),
        "repos_url": format!("{api}/repos"),
        "events_url": format!("{api}/events{{/privacy}}"),
        "received_events_url": format!("{api}/received_events"),
        "type": u.kind,
        "site_admin": false
    })
}

/// The `*_url` fields of a repository: (field, suffix after the repository's API URL).
const REPO_URLS: [(&str, &str); 36] = [
    ("archive_url", "/{archive_format}{/ref}"),
    ("assignees_url", "/assignees{/user}"),
    ("blobs_url", "/git/blobs{/sha}"),
    ("branches_url", "/branches{/branch}"),
    ("collaborators_url", "/collaborators{/collaborator}"),
    ("comments_url", "/comments{/number}"),
    ("commits_url", "/commits{/sha}"),
    ("compare_url", "/compare/{base}...{head}"),
    ("contents_url", "/contents/{+path}"),
    ("contributors_url", "/contributors"),
    ("deployments_url", "/deployments"),
    ("downloads_url", "/downloads"),
    ("events_url", "/events"),
    ("forks_url", "/forks"),
    ("git_commits_url", "/git/commits{/sha}"),
    ("git_refs_url", "/git/refs{/sha}"),
    ("git_tags_url", "/git/tags{/sha}"),
    ("hooks_url", "/hooks"),
    ("issue_comment_url", "/issues/comments{/number}"),
    ("issue_events_url", "/issues/events{/number}"),
    ("issues_url", "/issues{/number}"),
    ("keys_url", "/keys{/key_id}"),
    ("labels_url", "/labels{/name}"),
    ("languages_url", "/languages"),
    ("merges_url", "/merges"),
    ("milestones_url", "/milestones{/number}"),
    ("notifications_url", "/notifications{?since,all,participating}"),
    ("pulls_url", "/pulls{/number}"),
    ("releases_url", "/releases{/id}"),
    ("stargazers_url", "/stargazers"),
    ("statuses_url", "/statuses/{sha}"),
    ("subscribers_url", "/subscribers"),
    ("subscription_url", "/subscription"),
    ("tags_url", "/tags"),
    ("teams_url", "/teams"),
    ("trees_url", "/git/trees{/sha}"),
];

/// Fits both `repository` and `full-repository`.
pub fn repository(base: &str, r: &RepoRecord) -> Value {
    let api = format!("{base}/repos/{}/{}", seg(&r.owner.login), seg(&r.name));
    let html = format!("{base}/{}/{}", seg(&r.owner.login), seg(&r.name));
    let full_name = format!("{}/{}", r.owner.login, r.name);
    let created = time(&r.created_at);
    let mut v = json!({
        "id": r.id,
        "node_id": format!("R_{}", r.id),
        "name": r.name,
        "full_name": full_name,
        "owner": simple_user(base, &r.owner),
        "private": r.private,
        "visibility": if r.private { "private" } else { "public" },
        "html_url": html,
        "svn_url": html,
        "url": api,
        "clone_url": r.clone_url.clone().unwrap_or_else(|| format!("{base}/{full_name}.git")),
        "git_url": format!("git://fake.invalid/{full_name}.git"),
        "ssh_url": format!("git@fake.invalid:{full_name}.git"),
        "mirror_url": null,
        "homepage": null,
        "description": null,
        "language": null,
        "license": null,
        "default_branch": r.default_branch,
        "pushed_at": created,
        "created_at": created,
        "updated_at": created
    });
    let fields = v.as_object_mut().unwrap();
    for (field, suffix) in REPO_URLS {
        fields.insert(field.to_string(), json!(format!("{api}{suffix}")));
    }
    for field in [
        "fork",
        "is_template",
        "has_projects",
        "has_wiki",
        "has_pages",
        "has_downloads",
        "has_discussions",
        "archived",
        "disabled",
    ] {
        fields.insert(field.into(), json!(false));
    }
    fields.insert("has_issues".into(), json!(true));
    for field in [
        "forks_count",
        "forks",
        "stargazers_count",
        "watchers_count",
        "watchers",
        "open_issues_count",
        "open_issues",
        "network_count",
        "subscribers_count",
    ] {
        fields.insert(field.into(), json!(0));
    }
    fields.insert("size".into(), json!(1));
    fields.insert("topics".into(), json!([]));
    v
}

pub fn label(base: &str, r: &RepoRecord, l: &LabelRecord) -> Value {
    json!({
        "id": l.id,
        "node_id": format!("LA_{}", l.id),
        "url": format!("{base}/repos/{}/{}/labels/{}", seg(&r.owner.login), seg(&r.name), seg(&l.name)),
        "name": l.name,
        "description": l.description,
        "color": l.color,
        "default": false
    })
}

pub fn issue(base: &str, r: &RepoRecord, i: &IssueRecord, comments: usize) -> Value {
    let repo_api = format!("{base}/repos/{}/{}", seg(&r.owner.login), seg(&r.name));
    let repo_html = format!("{base}/{}/{}", seg(&r.owner.login), seg(&r.name));
    let labels: Vec<Value> = i.labels.iter().filter_map(|name| r.label(name)).map(|l| label(base, r, l)).collect();
    let mut v = json!({
        "id": i.id,
        "node_id": format!("I_{}", i.id),
        "url": format!("{repo_api}/issues/{}", i.number),
        "repository_url": repo_api,
        "labels_url": format!("{repo_api}/issues/{}/labels{{/name}}", i.number),
        "comments_url": format!("{repo_api}/issues/{}/comments", i.number),
        "events_url": format!("{repo_api}/issues/{}/events", i.number),
        "html_url": format!("{repo_html}/issues/{}", i.number),
        "number": i.number,
        "state": i.state,
        "title": i.title,
        "body": i.body,
        "user": simple_user(base, &i.user),
        "labels": labels,
        "assignee": null,
        "assignees": [],
        "milestone": null,
        "locked": false,
        "comments": comments,
        "closed_at": null,
        "created_at": time(&i.created_at),
        "updated_at": time(&i.updated_at),
        "author_association": "NONE"
    });
    if i.is_pull {
        v["pull_request"] = json!({
            "url": format!("{repo_api}/pulls/{}", i.number),
            "html_url": format!("{repo_html}/pull/{}", i.number),
            "diff_url": format!("{repo_html}/pull/{}.diff", i.number),
            "patch_url": format!("{repo_html}/pull/{}.patch", i.number),
            "merged_at": null
        });
    }
    v
}

pub fn issue_comment(base: &str, r: &RepoRecord, c: &CommentRecord) -> Value {
    let repo_api = format!("{base}/repos/{}/{}", seg(&r.owner.login), seg(&r.name));
    json!({
        "id": c.id,
        "node_id": format!("IC_{}", c.id),
        "url": format!("{repo_api}/issues/comments/{}", c.id),
        "html_url": format!("{base}/{}/{}/issues/{}#issuecomment-{}", seg(&r.owner.login), seg(&r.name), c.issue, c.id),
        "issue_url": format!("{repo_api}/issues/{}", c.issue),
        "body": c.body,
        "user": simple_user(base, &c.user),
        "created_at": time(&c.created_at),
        "updated_at": time(&c.updated_at),
        "author_association": "NONE"
    })
}

pub fn reaction(base: &str, x: &ReactionRecord) -> Value {
    json!({
        "id": x.id,
        "node_id": format!("REA_{}", x.id),
        "user": simple_user(base, &x.user),
        "content": x.content,
        "created_at": time(&x.created_at)
    })
}

/// Fits both `pull-request` and `pull-request-simple`.
pub fn pull_request(base: &str, r: &RepoRecord, p: &PullRecord) -> Value {
    let repo_api = format!("{base}/repos/{}/{}", seg(&r.owner.login), seg(&r.name));
    let repo_html = format!("{base}/{}/{}", seg(&r.owner.login), seg(&r.name));
    let url = format!("{repo_api}/pulls/{}", p.number);
    let html = format!("{repo_html}/pull/{}", p.number);
    let side = |branch: &str, sha: &str| {
        json!({
            "label": format!("{}:{branch}", r.owner.login),
            "ref": branch,
            "sha": sha,
            "user": simple_user(base, &r.owner),
            "repo": repository(base, r)
        })
    };
    let labels: Vec<Value> = p.labels.iter().filter_map(|name| r.label(name)).map(|l| label(base, r, l)).collect();
    let link = |href: String| json!({ "href": href });
    let links = json!({
        "self": link(url.clone()),
        "html": link(html.clone()),
        "issue": link(format!("{repo_api}/issues/{}", p.number)),
        "comments": link(format!("{repo_api}/issues/{}/comments", p.number)),
        "review_comments": link(format!("{url}/comments")),
        "review_comment": link(format!("{repo_api}/pulls/comments{{/number}}")),
        "commits": link(format!("{url}/commits")),
        "statuses": link(format!("{repo_api}/statuses/{}", p.head_sha))
    });
    let mut v = json!({
        "url": url,
        "id": p.id,
        "node_id": format!("PR_{}", p.id),
        "html_url": html,
        "diff_url": format!("{html}.diff"),
        "patch_url": format!("{html}.patch"),
        "issue_url": format!("{repo_api}/issues/{}", p.number),
        "commits_url": format!("{url}/commits"),
        "review_comments_url": format!("{url}/comments"),
        "review_comment_url": format!("{repo_api}/pulls/comments{{/number}}"),
        "comments_url": format!("{repo_api}/issues/{}/comments", p.number),
        "statuses_url": format!("{repo_api}/statuses/{}", p.head_sha),
        "number": p.number,
        "state": p.state,
        "title": p.title,
        "user": simple_user(base, &p.user),
        "body": p.body,
        "labels": labels,
        "created_at": time(&p.created_at),
        "updated_at": time(&p.updated_at),
        "head": side(&p.head, &p.head_sha),
        "base": side(&p.base, &p.base_sha),
        "_links": links,
        "author_association": "NONE",
        "draft": p.draft,
        "mergeable_state": "unknown"
    });
    let fields = v.as_object_mut().unwrap();
    for field in [
        "milestone",
        "active_lock_reason",
        "closed_at",
        "merged_at",
        "merge_commit_sha",
        "assignee",
        "auto_merge",
        "mergeable",
        "rebaseable",
        "merged_by",
    ] {
        fields.insert(field.into(), Value::Null);
    }
    for field in ["assignees", "requested_reviewers", "requested_teams"] {
        fields.insert(field.into(), json!([]));
    }
    for field in ["locked", "merged", "maintainer_can_modify"] {
        fields.insert(field.into(), json!(false));
    }
    for (field, n) in [
        ("comments", 0),
        ("review_comments", 0),
        ("commits", 1),
        ("additions", 0),
        ("deletions", 0),
        ("changed_files", 0),
    ] {
        fields.insert(field.into(), json!(n));
    }
    v
}

/// GitHub's legacy permission level for a role.
pub fn legacy_permission(role: &str) -> &'static str {
    match role {
        "admin" => "admin",
        "maintain" | "write" => "write",
        "triage" | "read" => "read",
        _ => "none",
    }
}

pub fn collaborator_permission(base: &str, u: &UserRecord, role: &str) -> Value {
    let mut user = simple_user(base, u);
    user["role_name"] = json!(role);
    json!({ "permission": legacy_permission(role), "role_name": role, "user": user })
}

pub struct AppView<'a> {
    pub id: u64,
    pub slug: &'a str,
    pub name: &'a str,
    pub owner: &'a UserRecord,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

pub fn integration(base: &str, app: &AppView<'_>) -> Value {
    json!({
        "id": app.id,
        "slug": app.slug,
        "node_id": format!("A_{}", app.id),
        "client_id": format!("Iv1.{:016x}", app.id),
        "owner": simple_user(base, app.owner),
        "name": app.name,
        "description": null,
        "external_url": format!("{base}/{}", seg(&app.owner.login)),
        "html_url": format!("{base}/apps/{}", seg(app.slug)),
        "created_at": time(&app.created_at),
        "updated_at": time(&app.created_at),
        "permissions": {
            "issues": "write", "pull_requests": "write", "contents": "write",
            "metadata": "read", "actions": "read", "checks": "read"
        },
        "events": ["issues", "issue_comment", "pull_request", "workflow_run", "check_suite"],
        "installations_count": 1
    })
}

pub fn installation_token(token: &str, expires_at: &chrono::DateTime<chrono::Utc>) -> Value {
    json!({
        "token": token,
        "expires_at": time(expires_at),
        "permissions": { "issues": "write", "pull_requests": "write", "contents": "write", "metadata": "read" },
        "repository_selection": "selected"
    })
}

fn repo_api(base: &str, r: &RepoRecord) -> String {
    format!("{base}/repos/{}/{}", seg(&r.owner.login), seg(&r.name))
}

fn repo_html(base: &str, r: &RepoRecord) -> String {
    format!("{base}/{}/{}", seg(&r.owner.login), seg(&r.name))
}

/// Fits `pull-request-minimal`, as a workflow run lists the open pull requests of its head.
pub fn pull_request_minimal(base: &str, r: &RepoRecord, p: &PullRecord) -> Value {
    let repo = json!({ "id": r.id, "url": repo_api(base, r), "name": r.name });
    json!({
        "id": p.id,
        "number": p.number,
        "url": format!("{}/pulls/{}", repo_api(base, r), p.number),
        "head": { "ref": p.head, "sha": p.head_sha, "repo": repo },
        "base": { "ref": p.base, "sha": p.base_sha, "repo": repo }
    })
}

/// `workflow-run`. `head` is the repository the head commit lives in (a fork, or `r` itself).
pub fn workflow_run(base: &str, r: &RepoRecord, head: &RepoRecord, run: &RunRecord, pulls: Vec<Value>) -> Value {
    let api = format!("{}/actions/runs/{}", repo_api(base, r), run.id);
    let check_suite_id = run.id + 500_000;
    let created = time(&run.created_at);
    let author = json!({ "name": run.actor.login, "email": format!("{}@users.noreply.fake.invalid", run.actor.id) });
    json!({
        "id": run.id,
        "name": run.name,
        "node_id": format!("WFR_{}", run.id),
        "check_suite_id": check_suite_id,
        "check_suite_node_id": format!("CS_{check_suite_id}"),
        "head_branch": run.head_branch,
        "head_sha": run.head_sha,
        "path": run.path,
        "display_title": run.display_title.clone().or_else(|| run.name.clone()).unwrap_or_else(|| run.path.clone()),
        "run_number": run.run_number,
        "run_attempt": run.run_attempt,
        "referenced_workflows": [],
        "event": run.event,
        "status": run.status,
        "conclusion": run.conclusion,
        "workflow_id": run.workflow_id,
        "url": api,
        "html_url": format!("{}/actions/runs/{}", repo_html(base, r), run.id),
        "pull_requests": pulls,
        "created_at": created,
        "updated_at": time(&run.updated_at),
        "actor": simple_user(base, &run.actor),
        "triggering_actor": simple_user(base, &run.actor),
        "run_started_at": created,
        "jobs_url": format!("{api}/jobs"),
        "logs_url": format!("{api}/logs"),
        "check_suite_url": format!("{}/check-suites/{check_suite_id}", repo_api(base, r)),
        "artifacts_url": format!("{api}/artifacts"),
        "cancel_url": format!("{api}/cancel"),
        "rerun_url": format!("{api}/rerun"),
        "previous_attempt_url": (run.run_attempt > 1).then(|| format!("{api}/attempts/{}", run.run_attempt - 1)),
        "workflow_url": format!("{}/actions/workflows/{}", repo_api(base, r), run.workflow_id),
        "head_commit": {
            "id": run.head_sha,
            "tree_id": format!("{:0>40}", &run.head_sha[..run.head_sha.len().min(20)]),
            "message": "a commit",
            "timestamp": created,
            "author": author,
            "committer": author
        },
        "repository": repository(base, r),
        "head_repository": repository(base, head),
        "head_repository_id": head.id
    })
}

/// `artifact`.
pub fn artifact(base: &str, r: &RepoRecord, a: &ArtifactRecord, run: &RunRecord) -> Value {
    use sha2::Digest;
    let url = format!("{}/actions/artifacts/{}", repo_api(base, r), a.id);
    let mut workflow_run =
        json!({ "id": run.id, "repository_id": r.id, "head_repository_id": r.id, "head_sha": run.head_sha });
    if let Some(branch) = &run.head_branch {
        workflow_run["head_branch"] = json!(branch);
    }
    json!({
        "id": a.id,
        "node_id": format!("ART_{}", a.id),
        "name": a.name,
        "size_in_bytes": a.zip.len(),
        "url": url,
        "archive_download_url": format!("{url}/zip"),
        "expired": a.expired,
        "created_at": time(&a.created_at),
        "expires_at": time(&a.expires_at),
        "updated_at": time(&a.created_at),
        "digest": format!("sha256:{}", hex::encode(sha2::Sha256::digest(&a.zip))),
        "workflow_run": workflow_run
    })
}

/// `job`.
pub fn job(base: &str, r: &RepoRecord, j: &JobRecord, run: &RunRecord) -> Value {
    let created = time(&j.created_at);
    let completed = j.completed_at.as_ref().map(time);
    json!({
        "id": j.id,
        "run_id": run.id,
        "run_url": format!("{}/actions/runs/{}", repo_api(base, r), run.id),
        "run_attempt": j.run_attempt,
        "node_id": format!("CR_{}", j.id),
        "head_sha": run.head_sha,
        "url": format!("{}/actions/jobs/{}", repo_api(base, r), j.id),
        "html_url": format!("{}/actions/runs/{}/job/{}", repo_html(base, r), run.id, j.id),
        "status": j.status,
        "conclusion": j.conclusion,
        "created_at": created,
        "started_at": created,
        "completed_at": completed,
        "name": j.name,
        "steps": [{
            "name": "Run the tests",
            "status": if j.status == "completed" { "completed" } else { "in_progress" },
            "conclusion": j.conclusion,
            "number": 1,
            "started_at": created,
            "completed_at": completed
        }],
        "check_run_url": format!("{}/check-runs/{}", repo_api(base, r), j.id),
        "labels": ["ubuntu-latest"],
        "runner_id": 1,
        "runner_name": "GitHub Actions 1",
        "runner_group_id": 2,
        "runner_group_name": "GitHub Actions",
        "workflow_name": run.name,
        "head_branch": run.head_branch
    })
}

/// `GET /repos/{owner}/{repo}/installation`: the installation covering a repository.
pub fn installation(base: &str, id: u64, app: &AppRecord, account: &UserRecord) -> Value {
    let now = time(&app.created_at);
    json!({
        "id": id,
        "app_id": app.id,
        "app_slug": app.slug,
        "target_id": account.id,
        "target_type": account.kind,
        "single_file_name": null,
        "repository_selection": "selected",
        "access_tokens_url": format!("{base}/app/installations/{id}/access_tokens"),
        "html_url": format!("{base}/organizations/{}/settings/installations/{id}", seg(&account.login)),
        "repositories_url": format!("{base}/installation/repositories"),
        "events": ["issues", "issue_comment", "pull_request", "workflow_run"],
        "account": simple_user(base, account),
        "permissions": {"issues": "write", "pull_requests": "write", "contents": "write", "actions": "write"},
        "created_at": now,
        "updated_at": now,
        "suspended_by": null,
        "suspended_at": null
    })
}

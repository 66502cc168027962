//! GitHub's objects as the REST API sends them, built from the fake's state.
//!
//! Each builder emits every property its schema in GitHub's description requires (and a few
//! optional ones the bot reads), with URLs under the fake's own address. The schema checker
//! holds them to that.

use super::state::{CommentRecord, IssueRecord, LabelRecord, PullRecord, ReactionRecord, RepoRecord, UserRecord};
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

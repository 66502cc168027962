//! Every REST call the bot makes, against the fake GitHub with schema checking on; retries and
//! rate limits; the permission check failing closed; `GitHubPlatform` on top.

mod support;

use connector_factory::github::app::GitHubApp;
use connector_factory::github::client::{InstallationClient, NewPull, RetryPolicy, api_status};
use connector_factory::github::platform::GitHubPlatform;
use connector_factory::platform::{Platform, PrSpec};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::fake_github::FakeGitHub;

const REPO: &str = "acme/widgets";
const INSTALLATION: u64 = 77;

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_rate_limit_wait: Duration::from_secs(5),
    }
}

struct Env {
    fake: FakeGitHub,
    app: Arc<GitHubApp>,
    client: InstallationClient,
}

async fn env() -> Env {
    let fake = FakeGitHub::start().await;
    fake.add_repo(REPO);
    fake.add_installation(INSTALLATION, &[REPO]);
    let app = Arc::new(
        GitHubApp::new(fake.app_id(), &fake.private_key(), &fake.url()).unwrap().with_retry_policy(fast_retries()),
    );
    let client = app.installation(INSTALLATION);
    Env { fake, app, client }
}

impl Env {
    fn platform(&self) -> GitHubPlatform {
        GitHubPlatform::new(self.client.clone(), REPO).unwrap()
    }
}

#[tokio::test]
async fn repository_and_issue() {
    let e = env().await;
    e.fake.set_default_branch(REPO, "trunk");
    e.fake.set_clone_url(REPO, "file:///tmp/widgets.git");
    let repo = e.client.get_repository("acme", "widgets").await.unwrap();
    assert_eq!((repo.default_branch.as_str(), repo.clone_url.as_str()), ("trunk", "file:///tmp/widgets.git"));

    let n = e.fake.add_issue(REPO, "Connector request: Stripe", "### API\nStripe", "alice");
    let issue = e.client.get_issue("acme", "widgets", n).await.unwrap();
    assert_eq!(issue.title, "Connector request: Stripe");
    assert_eq!(issue.user.unwrap().login, "alice");
    assert!(issue.pull_request.is_none());
    assert_eq!(api_status(&e.client.get_issue("acme", "widgets", 999).await.unwrap_err()), Some(404));
}

#[tokio::test]
async fn comments_create_update_and_list_across_pages() {
    let e = env().await;
    let n = e.fake.add_issue(REPO, "Connector request: X", "", "alice");
    for i in 0..120 {
        e.fake.add_comment(REPO, n, "bob", &format!("comment {i}"));
    }
    let mine = e.client.create_issue_comment("acme", "widgets", n, "working on it").await.unwrap();
    assert_eq!(mine.user.as_ref().unwrap().login, e.fake.bot_login());
    let edited = e.client.update_issue_comment("acme", "widgets", mine.id, "done").await.unwrap();
    assert_eq!((edited.id, edited.body.as_deref()), (mine.id, Some("done")));

    let all = e.client.list_issue_comments("acme", "widgets", n).await.unwrap();
    assert_eq!(all.len(), 121);
    assert_eq!(all[0].body.as_deref(), Some("comment 0"));
    assert_eq!(all[120].id, mine.id);
    let pages = e.fake.requests_to(&format!("/issues/{n}/comments"));
    let gets: Vec<_> = pages.iter().filter(|r| r.method == "GET").collect();
    assert_eq!(gets.len(), 2, "100 per page, Link rel=next followed");
    assert!(gets[1].query.as_deref().unwrap().contains("page=2"));
    assert_eq!(e.fake.comments(REPO, n).last().unwrap().body, "done");
}

#[tokio::test]
async fn reactions_on_issues_and_comments() {
    let e = env().await;
    let n = e.fake.add_issue(REPO, "t", "", "alice");
    let c = e.fake.add_comment(REPO, n, "alice", "/factory retry");
    assert_eq!(e.client.react_to_issue("acme", "widgets", n, "eyes").await.unwrap().content, "eyes");
    assert_eq!(e.client.react_to_comment("acme", "widgets", c, "+1").await.unwrap().content, "+1");
    // Reacting twice is not an error (GitHub answers 200 with the existing reaction).
    e.client.react_to_comment("acme", "widgets", c, "+1").await.unwrap();
    assert_eq!(e.fake.reactions(REPO).len(), 2);
    let err = e.client.react_to_issue("acme", "widgets", n, "thumbsup").await.unwrap_err();
    assert!(err.to_string().contains("not a GitHub reaction"), "{err}");
}

#[tokio::test]
async fn labels_are_created_when_missing_then_added() {
    let e = env().await;
    e.fake.add_label(REPO, "Connector-Request", "0e8a16");
    let n = e.fake.add_issue(REPO, "t", "", "alice");
    let labels = e
        .client
        .add_labels("acme", "widgets", n, &["connector-request".into(), "factory: generated".into()])
        .await
        .unwrap();
    let names: Vec<_> = labels.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["Connector-Request", "factory: generated"]);
    let repo_labels = e.fake.repo_labels(REPO);
    assert_eq!(repo_labels.len(), 2, "the existing label was matched case-insensitively");
    assert_eq!(repo_labels[0].color, "0e8a16", "an existing label keeps its colour");
    assert_eq!(repo_labels[1].color, "c5def5", "a missing one is created with ours");
    assert!(e.fake.requests_to("/labels/factory%3A%20generated").iter().any(|r| r.status == 404));
    assert_eq!(e.fake.issue_labels(REPO, n), ["Connector-Request", "factory: generated"]);
    assert!(e.client.get_label("acme", "widgets", "nope").await.unwrap().is_none());
}

#[tokio::test]
async fn pull_requests_create_find_update() {
    let e = env().await;
    let pr = e
        .client
        .create_pull(
            "acme",
            "widgets",
            &NewPull { title: "Add Stripe", head: "connector/stripe", base: "main", body: "b", draft: true },
        )
        .await
        .unwrap();
    assert_eq!(pr.head.ref_name, "connector/stripe");
    assert_eq!(pr.draft, Some(true));
    let found = e.client.list_pulls_by_head("acme", "widgets", "connector/stripe", "open").await.unwrap();
    assert_eq!(found.iter().map(|p| p.number).collect::<Vec<_>>(), [pr.number]);
    assert!(e.client.list_pulls_by_head("acme", "widgets", "connector/other", "all").await.unwrap().is_empty());
    let updated = e.client.update_pull("acme", "widgets", pr.number, "Add Stripe (v2)", "b2").await.unwrap();
    assert_eq!((updated.title.as_str(), updated.body.as_deref()), ("Add Stripe (v2)", Some("b2")));
    let dup = NewPull { title: "again", head: "connector/stripe", base: "main", body: "", draft: false };
    assert_eq!(api_status(&e.client.create_pull("acme", "widgets", &dup).await.unwrap_err()), Some(422));
}

#[tokio::test]
async fn write_access_by_role() {
    let e = env().await;
    for (login, role) in [("ada", "admin"), ("max", "maintain"), ("wil", "write"), ("tri", "triage"), ("rea", "read")] {
        e.fake.set_role(REPO, login, role);
    }
    for (login, expected) in [("ada", true), ("max", true), ("wil", true), ("tri", false), ("rea", false)] {
        assert_eq!(e.client.can_write("acme", "widgets", login).await, expected, "{login}");
    }
    let p = e.client.collaborator_permission("acme", "widgets", "max").await.unwrap();
    assert_eq!((p.permission.as_str(), p.role_name.as_str()), ("write", "maintain"));
}

#[tokio::test]
async fn permission_check_fails_closed() {
    let e = env().await;
    e.fake.set_role(REPO, "wil", "write");
    // Not a collaborator: 404.
    assert!(!e.client.can_write("acme", "widgets", "stranger").await);
    // A server error that is not retried.
    e.fake.fail_next_on("/permission", 1, 500);
    assert!(!e.client.can_write("acme", "widgets", "wil").await);
    // Retried 502s that never end.
    e.fake.fail_next_on("/permission", 5, 502);
    assert!(!e.client.can_write("acme", "widgets", "wil").await);
    // And the same user passes once GitHub answers.
    assert!(e.client.can_write("acme", "widgets", "wil").await);

    // No answer at all: nothing listens on the port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let offline = Arc::new(
        GitHubApp::new(e.fake.app_id(), &e.fake.private_key(), &url).unwrap().with_retry_policy(fast_retries()),
    );
    assert!(!offline.installation(INSTALLATION).can_write("acme", "widgets", "wil").await);
    assert!(offline.metrics().transport_errors >= 1);
    let platform = GitHubPlatform::new(offline.installation(INSTALLATION), REPO).unwrap();
    assert!(!platform.can_write("wil").await.unwrap());
}

#[tokio::test]
async fn retries_through_a_burst_of_502s() {
    let e = env().await;
    e.client.token().await.unwrap();
    let before = e.app.metrics();
    e.fake.fail_next_on("/repos/acme/widgets", 3, 502);
    let repo = e.client.get_repository("acme", "widgets").await.unwrap();
    assert_eq!(repo.full_name, REPO);
    let m = e.app.metrics();
    assert_eq!(m.retries - before.retries, 3);
    assert_eq!(m.server_errors - before.server_errors, 3);
    assert_eq!(m.requests - before.requests, 4);
    let statuses: Vec<u16> = e.fake.requests_to("/repos/acme/widgets").iter().map(|r| r.status).collect();
    assert_eq!(statuses, [502, 502, 502, 200]);

    // A longer burst than the attempts allowed: the last answer is the error.
    e.fake.fail_next_on("/repos/acme/widgets", 5, 503);
    let err = e.client.get_repository("acme", "widgets").await.unwrap_err();
    assert_eq!(api_status(&err), Some(503));
    // Writes are retried on 5xx too: GitHub did not act on a request it answered 502.
    let n = e.fake.add_issue(REPO, "t", "", "alice");
    e.fake.fail_next_on("/comments", 2, 504);
    e.client.create_issue_comment("acme", "widgets", n, "hello").await.unwrap();
    assert_eq!(e.fake.comments(REPO, n).len(), 1);
}

#[tokio::test]
async fn waits_out_a_secondary_rate_limit() {
    let e = env().await;
    let n = e.fake.add_issue(REPO, "t", "", "alice");
    e.client.token().await.unwrap();
    e.fake.secondary_rate_limit_next("/comments", 1);
    let started = Instant::now();
    e.client.create_issue_comment("acme", "widgets", n, "hello").await.unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(950), "retry-after: 1 was not honoured ({waited:?})");
    assert!(waited < Duration::from_secs(4), "{waited:?}");
    let calls = e.fake.requests_to("/comments");
    assert_eq!(calls.iter().map(|r| r.status).collect::<Vec<_>>(), [403, 201]);
    assert!(calls[1].at.duration_since(calls[0].at) >= Duration::from_millis(950));
    assert_eq!(e.fake.comments(REPO, n).len(), 1, "the refused request created nothing");
    assert_eq!(e.app.metrics().rate_limited, 1);
}

#[tokio::test]
async fn waits_for_an_exhausted_quota_to_reset() {
    let e = env().await;
    e.client.token().await.unwrap();
    e.fake.quota_exhausted_next("/repos/acme/widgets", 1);
    let started = Instant::now();
    e.client.get_repository("acme", "widgets").await.unwrap();
    // The reset is a whole second on the wall clock: between 0 and 1 s away, plus our margin.
    assert!(started.elapsed() >= Duration::from_millis(200), "{:?}", started.elapsed());
    assert_eq!(e.app.metrics().rate_limited, 1);
}

#[tokio::test]
async fn gives_up_on_a_rate_limit_longer_than_allowed_and_on_plain_403() {
    let e = env().await;
    e.client.token().await.unwrap();
    e.fake.secondary_rate_limit_next("/repos/acme/widgets", 3600);
    let started = Instant::now();
    let err = e.client.get_repository("acme", "widgets").await.unwrap_err();
    assert_eq!(api_status(&err), Some(403));
    assert!(started.elapsed() < Duration::from_secs(2));

    e.fake.fail_next_on("/repos/acme/widgets", 1, 403);
    let before = e.app.metrics().retries;
    assert_eq!(api_status(&e.client.get_repository("acme", "widgets").await.unwrap_err()), Some(403));
    assert_eq!(e.app.metrics().retries, before, "a plain 403 is final");
}

#[tokio::test]
async fn platform_finds_only_its_own_bot_comment() {
    let e = env().await;
    let p = e.platform();
    let n = e.fake.add_issue(REPO, "t", "", "alice");
    let marker = "<!-- connector-factory:status -->";
    e.fake.add_comment(REPO, n, "alice", &format!("quoting the bot: {marker}"));
    e.fake.add_comment(REPO, n, "other-app[bot]", &format!("{marker} from another app"));
    e.fake.add_comment(REPO, n, &e.fake.bot_login(), "a bot comment without the marker");
    assert_eq!(p.find_bot_comment(n, marker).await.unwrap(), None);

    let id = p.create_comment(n, &format!("{marker}\nGenerating…")).await.unwrap();
    let (found, body) = p.find_bot_comment(n, marker).await.unwrap().unwrap();
    assert_eq!(found, id);
    assert!(body.contains("Generating"));
    p.update_comment(id, &format!("{marker}\nDone")).await.unwrap();
    assert!(p.find_bot_comment(n, marker).await.unwrap().unwrap().1.ends_with("Done"));
    // A later duplicate does not shadow the first.
    e.fake.add_comment(REPO, n, &e.fake.bot_login(), &format!("{marker} again"));
    assert_eq!(p.find_bot_comment(n, marker).await.unwrap().unwrap().0, id);
}

#[tokio::test]
async fn platform_repository_git_and_reactions() {
    let e = env().await;
    e.fake.set_clone_url(REPO, "file:///srv/widgets.git");
    let p = e.platform();
    assert_eq!(p.repository(), REPO);
    assert_eq!(p.default_branch().await.unwrap(), "main");
    assert_eq!(p.remote_url().await.unwrap(), "file:///srv/widgets.git");
    // Asked once for both.
    assert_eq!(e.fake.requests().iter().filter(|r| r.path == "/repos/acme/widgets").count(), 1);
    let creds = p.git_credentials().await.unwrap().unwrap();
    assert_eq!(creds.username, "x-access-token");
    assert_eq!(creds.password, e.client.token().await.unwrap());

    let n = e.fake.add_issue(REPO, "t", "", "alice");
    let c = e.fake.add_comment(REPO, n, "alice", "/factory status");
    p.react_issue(n, "rocket").await.unwrap();
    p.react_comment(c, "eyes").await.unwrap();
    assert_eq!(e.fake.reactions(REPO).len(), 2);
    p.add_labels(n, &["connector-request".into()]).await.unwrap();
    assert_eq!(e.fake.issue_labels(REPO, n), ["connector-request"]);
    assert!(GitHubPlatform::new(e.client.clone(), "no-slash").is_err());
}

#[tokio::test]
async fn platform_pull_requests() {
    let e = env().await;
    let p = e.platform();
    assert!(p.find_pull_by_head("connector/stripe").await.unwrap().is_none());
    let old = e.fake.add_pull(REPO, "connector/stripe", "main", "old attempt", "closed");
    let closed = p.find_pull_by_head("connector/stripe").await.unwrap().unwrap();
    assert_eq!((closed.number, closed.state.as_str()), (old, "closed"));

    let spec = PrSpec {
        branch: "connector/stripe".into(),
        base: "main".into(),
        title: "Add the Stripe connector".into(),
        body: "Closes #1".into(),
        labels: vec!["connector".into()],
        draft: false,
    };
    let created = p.create_pull(&spec).await.unwrap();
    assert_eq!(created.head, "connector/stripe");
    assert_eq!(created.state, "open");
    assert!(created.url.ends_with(&format!("/acme/widgets/pull/{}", created.number)));
    assert_eq!(e.fake.issue_labels(REPO, created.number), ["connector"]);

    let found = p.find_pull_by_head("connector/stripe").await.unwrap().unwrap();
    assert_eq!(found.number, created.number, "the open one wins over the closed one");
    p.update_pull(created.number, "Add the Stripe connector (2)", "new body").await.unwrap();
    let stored = e.fake.pulls(REPO).into_iter().find(|x| x.number == created.number).unwrap();
    assert_eq!((stored.title.as_str(), stored.body.as_deref()), ("Add the Stripe connector (2)", Some("new body")));
    assert!(p.find_pull_by_head("connector/strip").await.unwrap().is_none());
}

/// Guards the guard: every call the bot makes was answered through the schema check.
#[tokio::test]
async fn every_operation_the_bot_uses_is_schema_checked() {
    let e = env().await;
    let p = e.platform();
    let n = e.fake.add_issue(REPO, "t", "", "alice");
    e.fake.set_role(REPO, "wil", "write");
    p.default_branch().await.unwrap();
    e.client.get_issue("acme", "widgets", n).await.unwrap();
    let id = p.create_comment(n, "<!-- m -->").await.unwrap();
    p.update_comment(id, "<!-- m --> 2").await.unwrap();
    p.find_bot_comment(n, "<!-- m -->").await.unwrap().unwrap();
    p.react_issue(n, "eyes").await.unwrap();
    p.react_comment(id, "eyes").await.unwrap();
    let spec = PrSpec {
        branch: "connector/x".into(),
        base: "main".into(),
        title: "t".into(),
        body: "b".into(),
        labels: vec!["connector".into()],
        draft: false,
    };
    let pr = p.create_pull(&spec).await.unwrap();
    p.update_pull(pr.number, "t2", "b2").await.unwrap();
    p.find_pull_by_head("connector/x").await.unwrap().unwrap();
    e.client.get_label("acme", "widgets", "connector").await.unwrap().unwrap();
    assert!(p.can_write("wil").await.unwrap());
    let checked = e.fake.checked_operations();
    for op in [
        "apps/create-installation-access-token",
        "apps/get-authenticated",
        "repos/get",
        "issues/get",
        "issues/create-comment",
        "issues/update-comment",
        "issues/list-comments",
        "reactions/create-for-issue",
        "reactions/create-for-issue-comment",
        "pulls/create",
        "pulls/update",
        "pulls/list",
        "issues/get-label",
        "issues/create-label",
        "issues/add-labels",
        "repos/get-collaborator-permission-level",
    ] {
        assert!(checked.iter().any(|c| c == op), "{op} was not schema-checked; checked: {checked:?}");
    }
}

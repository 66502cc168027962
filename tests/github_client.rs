//! Every REST call the bot makes, against the fake GitHub with schema checking on; retries and
//! rate limits; the permission check failing closed; `GitHubPlatform` on top, GitHub Actions
//! reads (runs, artifacts, failed jobs' logs) included.

mod support;

use connector_factory::github::app::GitHubApp;
use connector_factory::github::client::{InstallationClient, NewPull, RetryPolicy, TooLarge, api_status};
use connector_factory::github::platform::{DownloadLimits, GitHubPlatform};
use connector_factory::platform::{JobLog, Platform, PrSpec, WorkflowRun};
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::fake_github::state::Caller;
use support::fake_github::{FakeGitHub, WorkflowRunSpec};

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
    p.remove_label(pr.number, "connector").await.unwrap();
    let run = e.fake.add_workflow_run(REPO, WorkflowRunSpec::default());
    e.fake.add_job(run, "test", "failure", "boom");
    e.fake.add_artifact(run, "results", &[("r.json", b"{}")]);
    p.workflow_run(run).await.unwrap();
    p.runs_for_commit(&"a".repeat(40)).await.unwrap();
    p.download_artifact(run, "results").await.unwrap().unwrap();
    p.failed_job_logs(run).await.unwrap();
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
        "issues/remove-label",
        "actions/get-workflow-run",
        "actions/list-workflow-runs-for-repo",
        "actions/list-workflow-run-artifacts",
        "actions/list-jobs-for-workflow-run",
    ] {
        assert!(checked.iter().any(|c| c == op), "{op} was not schema-checked; checked: {checked:?}");
    }
}

// ---- GitHub Actions: what the learning loop reads ----

const SHA1: &str = "1111111111111111111111111111111111111111";
const SHA2: &str = "2222222222222222222222222222222222222222";

fn run_spec(path: &str, branch: &str, sha: &str, conclusion: &str) -> WorkflowRunSpec {
    WorkflowRunSpec {
        path: path.into(),
        name: Some(path.trim_start_matches(".github/workflows/").trim_end_matches(".yml").into()),
        head_branch: Some(branch.into()),
        head_sha: sha.into(),
        event: "pull_request".into(),
        conclusion: Some(conclusion.into()),
        ..WorkflowRunSpec::default()
    }
}

#[tokio::test]
async fn workflow_runs_by_id_by_commit_and_by_branch() {
    let e = env().await;
    let p = e.platform();
    let ci = e.fake.add_workflow_run(REPO, run_spec(".github/workflows/ci.yml", "connector/stripe", SHA1, "success"));
    let spec = e
        .fake
        .add_workflow_run(REPO, run_spec(".github/workflows/spec-tests.yml", "connector/stripe", SHA1, "failure"));
    let later = e.fake.add_workflow_run(
        REPO,
        WorkflowRunSpec {
            status: "in_progress".into(),
            conclusion: None,
            ..run_spec(".github/workflows/spec-tests.yml", "connector/stripe", SHA2, "success")
        },
    );
    let on_main = e.fake.add_workflow_run(REPO, run_spec(".github/workflows/ci.yml", "main", SHA2, "success"));
    let fork = e.fake.add_workflow_run(
        REPO,
        WorkflowRunSpec {
            head_repository: Some("mallory/widgets".into()),
            ..run_spec(".github/workflows/spec-tests.yml", "connector/stripe", "f".repeat(40).as_str(), "success")
        },
    );

    let run = p.workflow_run(spec).await.unwrap();
    assert_eq!(
        run,
        WorkflowRun {
            id: spec,
            path: ".github/workflows/spec-tests.yml".into(),
            name: Some("spec-tests".into()),
            head_branch: Some("connector/stripe".into()),
            head_sha: SHA1.into(),
            head_repository: Some(REPO.into()),
            event: "pull_request".into(),
            status: "completed".into(),
            conclusion: Some("failure".into()),
            html_url: format!("{}/acme/widgets/actions/runs/{spec}", e.fake.url()),
            run_attempt: 1,
            // The fake lists a run by its workflow's name when it has no run-name, as GitHub does.
            display_title: Some("spec-tests".into()),
        }
    );
    assert!(run.is_completed() && !run.succeeded());
    assert_eq!(p.workflow_run(fork).await.unwrap().head_repository.as_deref(), Some("mallory/widgets"));
    assert_eq!(api_status(&p.workflow_run(999_999).await.unwrap_err()), Some(404));

    // By commit: both workflows of SHA1 and nothing else, newest first.
    let of_sha1: Vec<u64> = p.runs_for_commit(SHA1).await.unwrap().iter().map(|r| r.id).collect();
    assert_eq!(of_sha1, [spec, ci]);
    let of_sha2: Vec<u64> = p.runs_for_commit(SHA2).await.unwrap().iter().map(|r| r.id).collect();
    assert_eq!(of_sha2, [on_main, later]);
    assert!(p.runs_for_commit(&"0".repeat(40)).await.unwrap().is_empty());
    let asked = e.fake.requests_to("/actions/runs");
    let query = asked.iter().rev().find(|r| r.path == "/repos/acme/widgets/actions/runs").unwrap().query.clone();
    assert_eq!(query.as_deref(), Some("head_sha=0000000000000000000000000000000000000000&per_page=100"));

    // By branch: GitHub matches `head_branch`, so a fork's branch of the same name comes too;
    // `head_repository` tells them apart.
    let on_branch = p.runs_on_branch("connector/stripe").await.unwrap();
    assert_eq!(on_branch.iter().map(|r| r.id).collect::<Vec<_>>(), [fork, later, spec, ci]);
    let mine: Vec<u64> =
        on_branch.iter().filter(|r| r.head_repository.as_deref() == Some(REPO)).map(|r| r.id).collect();
    assert_eq!(mine, [later, spec, ci]);
    let query = e.fake.requests_to("/actions/runs").last().unwrap().query.clone();
    assert_eq!(query.as_deref(), Some("branch=connector%2Fstripe&per_page=50"));

    // The run in progress finishes later.
    assert!(!p.workflow_run(later).await.unwrap().is_completed());
    e.fake.complete_run(later, "success");
    let done = p.workflow_run(later).await.unwrap();
    assert_eq!((done.status.as_str(), done.conclusion.as_deref()), ("completed", Some("success")));
    assert!(done.succeeded());
    // A re-run is the same run, one attempt further.
    e.fake.rerun(later);
    let again = p.workflow_run(later).await.unwrap();
    assert_eq!((again.run_attempt, again.status.as_str(), again.conclusion), (2, "queued", None));
}

#[tokio::test]
async fn runs_of_a_commit_are_read_across_pages() {
    let e = env().await;
    for _ in 0..103 {
        e.fake.add_workflow_run(REPO, run_spec(".github/workflows/ci.yml", "b", SHA1, "success"));
    }
    e.fake.add_workflow_run(REPO, run_spec(".github/workflows/ci.yml", "b", SHA2, "success"));
    let runs = e.platform().runs_for_commit(SHA1).await.unwrap();
    assert_eq!(runs.len(), 103);
    assert!(runs.iter().all(|r| r.head_sha == SHA1));
    let pages = e.fake.requests_to("/actions/runs");
    assert_eq!(pages.len(), 2, "100 per page, Link rel=next followed");
    assert!(pages[1].query.as_deref().unwrap().contains("page=2"));
}

#[tokio::test]
async fn an_artifact_comes_back_byte_for_byte_and_the_token_stays_with_github() {
    let e = env().await;
    let p = e.platform();
    assert_ne!(e.fake.blob_url(), e.fake.url(), "the blob host must be another origin");
    let run = e.fake.add_workflow_run(REPO, WorkflowRunSpec::default());
    let results = br#"{"passed": 3, "failed": 1}"#;
    let wanted = e.fake.add_artifact(run, "spec-results", &[("results.json", results), ("logs/run.txt", b"ok\n")]);
    // Neighbours that must not be picked: another name, a name that merely starts the same.
    e.fake.add_artifact(run, "coverage", &[("lcov.info", b"TN:")]);
    e.fake.add_artifact(run, "spec-results-old", &[("results.json", b"{}")]);

    let zip = p.download_artifact(run, "spec-results").await.unwrap().expect("the artifact");
    assert_eq!(zip, e.fake.artifact_zip(wanted));
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let mut text = String::new();
    archive.by_name("results.json").unwrap().read_to_string(&mut text).unwrap();
    assert_eq!(text.as_bytes(), results);

    // GitHub got the token; the blob host, another origin, did not.
    let api = e.fake.requests_to(&format!("/actions/artifacts/{wanted}/zip"));
    assert_eq!(api.len(), 1);
    assert_eq!((api[0].status, &api[0].caller), (302, &Caller::Installation(INSTALLATION)));
    let blob = e.fake.blob_requests();
    assert_eq!(blob.len(), 1, "{blob:?}");
    assert_eq!(blob[0].status, 200);
    assert_eq!(blob[0].authorization, None, "the installation token was sent to the blob host");
    let listed = e.fake.requests_to(&format!("/actions/runs/{run}/artifacts"));
    assert_eq!(listed[0].query.as_deref(), Some("per_page=100&name=spec-results"));
}

#[tokio::test]
async fn missing_and_expired_artifacts_are_none() {
    let e = env().await;
    let p = e.platform();
    let run = e.fake.add_workflow_run(REPO, WorkflowRunSpec::default());
    assert_eq!(p.download_artifact(run, "spec-results").await.unwrap(), None);

    let old = e.fake.add_artifact(run, "spec-results", &[("results.json", b"{}")]);
    e.fake.expire_artifact(old);
    assert_eq!(p.download_artifact(run, "spec-results").await.unwrap(), None);
    assert!(e.fake.requests_to("/actions/artifacts/").is_empty(), "an expired artifact is not even asked for");

    // Expiring between the listing and the download: GitHub answers 410.
    e.fake.corrupt_next("/artifacts", |body| body["artifacts"][0]["expired"] = false.into());
    assert_eq!(p.download_artifact(run, "spec-results").await.unwrap(), None);
    let asked = e.fake.requests_to(&format!("/actions/artifacts/{old}/zip"));
    assert_eq!(asked.iter().map(|r| r.status).collect::<Vec<_>>(), [410]);

    // A run that does not exist is an error, not "no artifact".
    assert_eq!(api_status(&p.download_artifact(999_999, "spec-results").await.unwrap_err()), Some(404));
    assert!(e.fake.blob_requests().is_empty());
}

#[tokio::test]
async fn an_artifact_over_the_limit_is_refused() {
    let e = env().await;
    let run = e.fake.add_workflow_run(REPO, WorkflowRunSpec::default());
    // Random bytes do not deflate: the archive stays over 4 KiB.
    let noise: Vec<u8> = (0..4096).map(|_| rand::random::<u8>()).collect();
    let id = e.fake.add_artifact(run, "big", &[("noise.bin", &noise)]);
    let size = e.fake.artifact_zip(id).len() as u64;

    let p = e.platform().with_download_limits(DownloadLimits { artifact_max_bytes: 4096, ..DownloadLimits::default() });
    let err = p.download_artifact(run, "big").await.unwrap_err().to_string();
    assert!(err.contains(&format!("is {size} bytes, more than the 4096 allowed")), "{err}");
    assert!(e.fake.blob_requests().is_empty(), "refused on the listed size, before downloading");

    // The download itself is capped too, should the listing understate the size.
    let err = e.client.download_artifact("acme", "widgets", id, 1000).await.unwrap_err();
    let too_large = err.downcast_ref::<TooLarge>().expect("a TooLarge error");
    assert_eq!(too_large.limit, 1000);
    assert_eq!(e.fake.requests_to(&format!("/actions/artifacts/{id}/zip")).len(), 1, "not retried");
    let whole = e.client.download_artifact("acme", "widgets", id, size).await.unwrap().unwrap();
    assert_eq!(whole.len() as u64, size, "exactly at the limit is allowed");
}

#[tokio::test]
async fn failed_job_logs_are_those_of_failed_jobs_only() {
    let e = env().await;
    let p = e.platform();
    let run = e.fake.add_workflow_run(REPO, run_spec(".github/workflows/spec-tests.yml", "c", SHA1, "failure"));
    e.fake.add_job(run, "lint", "success", "all clean\n");
    let unit = e.fake.add_job(run, "unit", "failure", "running 3 tests\nassertion failed: left == right\n");
    let spec = e.fake.add_job(run, "spec (python)", "timed_out", "waiting for the mock server...\n");
    e.fake.add_job(run, "spec (typescript)", "cancelled", "The operation was canceled.\n");
    e.fake.add_job(run, "docs", "skipped", "");

    let logs = p.failed_job_logs(run).await.unwrap();
    let url = |job: u64| Some(format!("{}/acme/widgets/actions/runs/{run}/job/{job}", e.fake.url()));
    assert_eq!(
        logs,
        [
            JobLog {
                job_id: unit,
                name: "unit".into(),
                html_url: url(unit),
                text: "running 3 tests\nassertion failed: left == right\n".into(),
            },
            JobLog {
                job_id: spec,
                name: "spec (python)".into(),
                html_url: url(spec),
                text: "waiting for the mock server...\n".into(),
            },
        ]
    );
    let fetched: Vec<String> = e.fake.requests_to("/logs").iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        fetched,
        [
            format!("/repos/acme/widgets/actions/jobs/{unit}/logs"),
            format!("/repos/acme/widgets/actions/jobs/{spec}/logs")
        ]
    );
    let blob = e.fake.blob_requests();
    assert_eq!(blob.len(), 2);
    assert!(blob.iter().all(|b| b.authorization.is_none() && b.status == 200), "{blob:?}");
    let jobs_query = e.fake.requests_to(&format!("/actions/runs/{run}/jobs"))[0].query.clone();
    assert_eq!(jobs_query.as_deref(), Some("filter=latest&per_page=100"));

    // Logs that are gone leave their job out rather than failing the others.
    let other = e.fake.add_workflow_run(REPO, WorkflowRunSpec::default());
    e.fake.add_job(other, "unit", "failure", "lost");
    e.fake.delete_job_logs(other);
    let later = e.fake.add_job(other, "e2e", "failure", "kept\n");
    let logs = p.failed_job_logs(other).await.unwrap();
    assert_eq!(logs.iter().map(|l| (l.job_id, l.text.as_str())).collect::<Vec<_>>(), [(later, "kept\n")]);

    // After a re-run only the latest attempt counts.
    e.fake.rerun(run);
    e.fake.add_job(run, "unit", "success", "ok\n");
    e.fake.complete_run(run, "success");
    assert_eq!(p.failed_job_logs(run).await.unwrap(), []);
}

#[tokio::test]
async fn a_long_log_keeps_its_end_from_a_line_start() {
    let e = env().await;
    let run = e.fake.add_workflow_run(REPO, WorkflowRunSpec::default());
    let log: String = (0..200).map(|i| format!("2026-01-01T00:00:00Z line {i:03}\n")).collect();
    e.fake.add_job(run, "unit", "failure", &log);
    let p = e.platform().with_download_limits(DownloadLimits { log_tail_bytes: 100, ..DownloadLimits::default() });
    let logs = p.failed_job_logs(run).await.unwrap();
    let text = &logs[0].text;
    let (marker, kept) = text.split_once('\n').unwrap();
    assert!(log.ends_with(kept), "{text}");
    assert!(kept.len() <= 100 && kept.len() > 60, "{text}");
    assert!(kept.starts_with("2026-01-01T00:00:00Z line"), "starts at a whole line: {text}");
    assert!(kept.ends_with("line 199\n"));
    assert_eq!(marker, format!("[... the first {} bytes of this log are left out ...]", log.len() - kept.len()));
}

#[tokio::test]
async fn labels_are_removed_whether_present_or_not() {
    let e = env().await;
    let p = e.platform();
    let n = e.fake.add_issue(REPO, "t", "", "alice");
    p.add_labels(n, &["connector-request".into(), "factory: ci failed".into()]).await.unwrap();
    p.remove_label(n, "Factory: CI failed").await.unwrap();
    assert_eq!(e.fake.issue_labels(REPO, n), ["connector-request"]);
    // Not labelled (any more): still fine.
    p.remove_label(n, "factory: ci failed").await.unwrap();
    assert_eq!(e.fake.issue_labels(REPO, n), ["connector-request"]);
    let calls = e.fake.requests_to("/labels/");
    let deletes: Vec<_> = calls.iter().filter(|r| r.method == "DELETE").collect();
    assert_eq!(deletes.iter().map(|r| r.status).collect::<Vec<_>>(), [200, 404]);
    assert_eq!(deletes[0].path, format!("/repos/acme/widgets/issues/{n}/labels/Factory%3A%20CI%20failed"));
    // On a pull request, the labels go from the pull request too.
    let pr = e.fake.add_pull(REPO, "connector/x", "main", "t", "open");
    p.add_labels(pr, &["connector".into()]).await.unwrap();
    p.remove_label(pr, "connector").await.unwrap();
    assert!(e.fake.issue_labels(REPO, pr).is_empty());
    assert!(e.fake.pulls(REPO)[0].labels.is_empty());
    // Other failures are still errors.
    e.fake.fail_next_on("/labels/", 1, 500);
    assert_eq!(api_status(&p.remove_label(n, "connector-request").await.unwrap_err()), Some(500));
}

#[tokio::test]
async fn actions_reads_ride_out_502s() {
    let e = env().await;
    let p = e.platform();
    e.client.token().await.unwrap();
    let run = e.fake.add_workflow_run(REPO, WorkflowRunSpec { head_sha: SHA1.into(), ..WorkflowRunSpec::default() });
    let id = e.fake.add_artifact(run, "spec-results", &[("results.json", b"{}")]);
    let before = e.app.metrics();
    e.fake.fail_next_on("/actions/runs", 2, 502);
    assert_eq!(p.runs_for_commit(SHA1).await.unwrap().len(), 1);
    let statuses: Vec<u16> = e.fake.requests_to("/actions/runs").iter().map(|r| r.status).collect();
    assert_eq!(statuses, [502, 502, 200]);
    assert_eq!(e.app.metrics().retries - before.retries, 2);

    // The download's first step too: the redirect is asked for again and then followed.
    e.fake.fail_next_on("/zip", 1, 503);
    assert_eq!(p.download_artifact(run, "spec-results").await.unwrap().unwrap(), e.fake.artifact_zip(id));
    let statuses: Vec<u16> = e.fake.requests_to("/zip").iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 302]);
    assert_eq!(e.fake.blob_requests().len(), 1);
}

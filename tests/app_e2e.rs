//! The whole app end to end: signed webhooks into the real router, the SQLite store, the
//! dispatcher and the worker pool running `PipelineHandler` with `GitHubPlatform` against the
//! fake GitHub; git clones from and pushes to a local bare repository seeded with this
//! project's schemas, scaffolds and skills; the OpenAPI description is served on 127.0.0.1.

mod support;

use axum::http::StatusCode;
use connector_factory::pipeline::actions::{
    ActionsConfig, GENERATE_WORKFLOW, OUTCOME_ARTIFACT, OUTCOME_FILE, RunnerArgs, RunnerEnv, outcome_json, run_title,
    runner_job,
};
use connector_factory::pipeline::status::{MARKER, Meta, Phase};
use connector_factory::pipeline::{Control, Executor, generate};
use connector_factory::server::webhook::sign;
use connector_factory::spectest::SuiteOptions;
use connector_factory::store::{Job, JobKind, JobState, SqliteStore, Store};
use connector_factory::worker::{JobQueue, PoolConfig, WorkerPool};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use std::time::{Duration, Instant};
use support::app::{App, AppOptions, INSTALLATION, REPO, delivery_id, issue_json, repository_json, user};
use support::fake_github::{APP_ID, APP_SLUG, WorkflowRunSpec};

const TITLE: &str = "Connector request: Tidepool Bookings";
const BRANCH: &str = "connector/tidepool-bookings";
const FOLDER: &str = "registry/tidepool-bookings/";
/// Every wait is bounded; a scenario that needs longer has gone wrong.
const WAIT: Duration = Duration::from_secs(40);

impl App {
    async fn start() -> App {
        App::start_with(AppOptions::default()).await
    }

    async fn start_pool(pool: PoolConfig) -> App {
        App::start_with(AppOptions { pool: Some(pool), ..AppOptions::default() }).await
    }

    /// The request every scenario makes.
    fn body(&self) -> String {
        let openapi = format!("{}/tidepool-bookings.openapi.yaml", self.files.base);
        support::app::request_body("Tidepool Bookings", &openapi, "clients")
    }

    /// A request issue on the fake, and its `issues` `opened` event.
    fn open_issue(&self, body: &str, author: &str) -> (u64, Value) {
        self.open_request(TITLE, body, author)
    }

    fn comment_event(&self, number: u64, comment_id: u64, author: &str, body: &str) -> Value {
        json!({
            "action": "created",
            "issue": issue_json(number, TITLE, &self.body(), "maya"),
            "comment": {"id": comment_id, "body": body, "user": user(author), "author_association": "MEMBER"},
            "repository": repository_json(),
            "sender": user(author),
            "installation": {"id": INSTALLATION},
        })
    }

    async fn jobs(&self) -> Vec<Job> {
        self.jobs_up_to(100).await
    }

    /// Waits until `n` jobs exist and none is queued or running.
    async fn settle(&self, n: usize) -> Vec<Job> {
        let until = Instant::now() + WAIT;
        loop {
            let jobs = self.jobs().await;
            if jobs.len() >= n && jobs.iter().all(|j| !matches!(j.state, JobState::Queued | JobState::Running)) {
                return jobs;
            }
            assert!(Instant::now() < until, "jobs did not settle in time: {jobs:#?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn bot_comments(&self, issue: u64) -> Vec<String> {
        let bot = self.fake.bot_login();
        self.fake.comments(REPO, issue).into_iter().filter(|c| c.user.login == bot).map(|c| c.body).collect()
    }

    fn status(&self, issue: u64) -> (String, Meta) {
        let found: Vec<String> = self.bot_comments(issue).into_iter().filter(|b| b.contains(MARKER)).collect();
        assert_eq!(found.len(), 1, "exactly one status comment: {found:#?}");
        let meta = Meta::parse(&found[0]).unwrap();
        (found[0].clone(), meta)
    }

    fn assert_one_pr(&self) -> u64 {
        let pulls = self.fake.pulls(REPO);
        assert_eq!(pulls.len(), 1, "exactly one pull request: {pulls:#?}");
        assert_eq!(pulls[0].head, BRANCH);
        pulls[0].number
    }

    fn assert_bot_commits_only_in_folder(&self) {
        let ahead = self.bare.commits_ahead(BRANCH);
        assert!(!ahead.is_empty());
        assert!(ahead.iter().all(|(email, _)| *email == self.identity.email), "{ahead:?}");
        let changed = self.bare.changed_by_tip(BRANCH);
        assert!(!changed.is_empty() && changed.iter().all(|p| p.starts_with(FOLDER)), "{changed:?}");
    }
}

/// (a) A request becomes one PR, and everything around it happens once.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_issue_becomes_one_labelled_pull_request() {
    let app = App::start().await;
    let (issue, event) = app.open_issue(&app.body(), "maya");
    assert_eq!(app.deliver("issues", &event).await, StatusCode::ACCEPTED);
    let jobs = app.settle(1).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].state, JobState::Succeeded, "{jobs:#?}");

    let pr = app.assert_one_pr();
    let labels = app.fake.issue_labels(REPO, pr);
    assert!(labels.iter().any(|l| l == "connector") && labels.iter().any(|l| l == "bot"), "{labels:?}");
    let (body, meta) = app.status(issue);
    assert_eq!((meta.phase, meta.pr), (Phase::PrOpened, Some(pr)));
    assert!(body.contains("Pull request ready"), "{body}");
    assert_eq!(app.bot_comments(issue).len(), 1, "no other comment");
    // Edited in place: one POST, then PATCHes.
    let posts = app.fake.requests_to("/comments").into_iter().filter(|r| r.method == "POST").count();
    let patches = app.fake.requests_to("/issues/comments/").into_iter().filter(|r| r.method == "PATCH").count();
    assert_eq!(posts, 1);
    assert!(patches >= 3, "{patches} edits");
    let reactions: Vec<String> = app.fake.reactions(REPO).into_iter().map(|r| r.content).collect();
    assert_eq!(reactions, vec!["eyes".to_string()]);
    assert_eq!(app.bare.commits_ahead(BRANCH).len(), 1);
    app.assert_bot_commits_only_in_folder();
}

/// (b) A malformed form: one comment naming the bad fields, no PR.
#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_request_gets_one_comment_and_no_pull_request() {
    let app = App::start().await;
    let bad = "### Connector name\n\n\n\n### API docs URL\n\nnot a url\n\n### Auth type\n\nCarrier pigeon\n";
    let (issue, event) = app.open_issue(bad, "maya");
    assert_eq!(app.deliver("issues", &event).await, StatusCode::ACCEPTED);
    app.settle(1).await;
    let comments = app.bot_comments(issue);
    assert_eq!(comments.len(), 1, "{comments:#?}");
    let text = comments[0].to_lowercase();
    for field in ["connector name", "api docs url", "auth type"] {
        assert!(text.contains(field), "names {field}: {}", comments[0]);
    }
    assert!(app.fake.pulls(REPO).is_empty());
    assert!(app.bare.tip(BRANCH).is_none());
}

/// (c) Someone without write access is refused politely; nothing is built or pushed.
#[tokio::test(flavor = "multi_thread")]
async fn a_requester_without_write_access_is_refused() {
    let app = App::start().await;
    let (issue, event) = app.open_issue(&app.body(), "rita");
    assert_eq!(app.deliver("issues", &event).await, StatusCode::ACCEPTED);
    app.settle(1).await;
    let comments = app.bot_comments(issue);
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert!(comments[0].contains("@rita") && comments[0].contains("write access"), "{}", comments[0]);
    assert!(app.fake.pulls(REPO).is_empty());
    assert!(app.bare.tip(BRANCH).is_none(), "nothing pushed");
    assert!(app.fake.reactions(REPO).is_empty());
}

/// (d) GitHub redelivering the same delivery id: one job, one PR.
#[tokio::test(flavor = "multi_thread")]
async fn the_same_delivery_twice_makes_one_job() {
    let app = App::start().await;
    let (_, event) = app.open_issue(&app.body(), "maya");
    let id = delivery_id();
    assert_eq!(app.post("issues", &id, &event, None).await, StatusCode::ACCEPTED);
    assert_eq!(app.post("issues", &id, &event, None).await, StatusCode::OK);
    let jobs = app.settle(1).await;
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    app.assert_one_pr();
}

/// (e) A bad signature is refused and nothing is stored.
#[tokio::test(flavor = "multi_thread")]
async fn a_bad_signature_is_refused_and_nothing_is_stored() {
    let app = App::start().await;
    let (_, event) = app.open_issue(&app.body(), "maya");
    let id = delivery_id();
    let forged = sign(b"not-the-secret", &serde_json::to_vec(&event).unwrap());
    assert_eq!(app.post("issues", &id, &event, Some(forged)).await, StatusCode::UNAUTHORIZED);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.store.delivery(&id).await.unwrap().is_none());
    assert!(app.jobs().await.is_empty());
    assert!(app.fake.requests().is_empty(), "GitHub was never called");
}

/// (f) `/factory retry <guidance>` by a writer updates the same PR with a second bot commit.
#[tokio::test(flavor = "multi_thread")]
async fn a_retry_comment_updates_the_same_pull_request() {
    let app = App::start().await;
    let (issue, event) = app.open_issue(&app.body(), "maya");
    app.deliver("issues", &event).await;
    app.settle(1).await;
    let pr = app.assert_one_pr();
    let first_tip = app.bare.tip(BRANCH).unwrap();

    // The issue now asks for one more stream, so the rebuild differs.
    let wider = app.body().replace("### Streams wanted\n\nclients", "### Streams wanted\n\nclients, appointments");
    app.fake.set_issue_body(REPO, issue, &wider);
    let comment = app.fake.add_comment(REPO, issue, "maya", "/factory retry use fewer streams");
    let event = app.comment_event(issue, comment, "maya", "/factory retry use fewer streams");
    assert_eq!(app.deliver("issue_comment", &event).await, StatusCode::ACCEPTED);
    let jobs = app.settle(2).await;
    assert!(jobs.iter().all(|j| j.state == JobState::Succeeded), "{jobs:#?}");

    assert_eq!(app.assert_one_pr(), pr, "the same PR, no second one");
    let pull = &app.fake.pulls(REPO)[0];
    assert!(pull.body.as_deref().unwrap_or_default().contains("use fewer streams"), "guidance in the PR body");
    assert_ne!(app.bare.tip(BRANCH).unwrap(), first_tip);
    assert_eq!(app.bare.commits_ahead(BRANCH).len(), 2, "a second bot commit");
    app.assert_bot_commits_only_in_folder();
    let (_, meta) = app.status(issue);
    assert_eq!((meta.phase, meta.attempts), (Phase::PrOpened, 2));
}

/// (g) The worker pool dies mid-job; a new pool on the same database finishes it, once.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_interrupted_by_a_crash_finishes_on_a_new_pool() {
    let short = PoolConfig {
        concurrency: 1,
        lease: Duration::from_secs(2),
        heartbeat_every: Duration::from_millis(300),
        poll_every: Duration::from_millis(200),
        ..PoolConfig::default()
    };
    let mut app = App::start_pool(short.clone()).await;
    let (issue, event) = app.open_issue(&app.body(), "maya");
    app.deliver("issues", &event).await;
    let until = Instant::now() + WAIT;
    loop {
        let jobs = app.jobs().await;
        if jobs.first().is_some_and(|j| j.state == JobState::Running && j.phase.as_deref() != Some("queued")) {
            break;
        }
        assert!(Instant::now() < until, "the job never started: {jobs:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The crash: the pool's tasks are aborted and the job keeps its lease until it expires.
    drop(app.pool.take());
    assert_eq!(app.jobs().await[0].state, JobState::Running);

    let store: Arc<dyn Store> = Arc::new(SqliteStore::connect(&app.db_url).await.unwrap());
    let queue = JobQueue::new(store);
    app.pool = Some(WorkerPool::start(queue, app.handler.clone(), PoolConfig { owner: "second".into(), ..short }));
    let jobs = app.settle(1).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].state, JobState::Succeeded, "{jobs:#?}");
    assert!(jobs[0].attempts >= 2, "claimed again after the crash");
    app.assert_one_pr();
    let (_, meta) = app.status(issue);
    assert_eq!(meta.phase, Phase::PrOpened);
    let _ = &app.queue;
}

/// (h) GitHub answering 502 twice and then a secondary rate limit: the job still ends with one PR.
#[tokio::test(flavor = "multi_thread")]
async fn server_errors_and_a_secondary_rate_limit_are_ridden_out() {
    let app = App::start().await;
    let (issue, event) = app.open_issue(&app.body(), "maya");
    app.fake.fail_next_on("/repos/", 2, 502);
    app.fake.secondary_rate_limit_next("/pulls", 1);
    app.deliver("issues", &event).await;
    let jobs = app.settle(1).await;
    assert_eq!(jobs[0].state, JobState::Succeeded, "{jobs:#?}");
    app.assert_one_pr();
    let faults = app.fake.requests().into_iter().filter(|r| r.fault).count();
    assert_eq!(faults, 3, "both 502s and the rate limit were answered");
    assert_eq!(app.status(issue).1.phase, Phase::PrOpened);
}

/// `/factory status` answers with the job's state and phase; `/factory cancel` stops a running
/// job and the status comment says so.
#[tokio::test(flavor = "multi_thread")]
async fn status_and_cancel_commands() {
    let app = App::start().await;
    let (issue, event) = app.open_issue(&app.body(), "maya");
    app.deliver("issues", &event).await;
    let until = Instant::now() + WAIT;
    while !app.jobs().await.first().is_some_and(|j| j.state == JobState::Running) {
        assert!(Instant::now() < until, "the job never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let c = app.fake.add_comment(REPO, issue, "maya", "/factory cancel");
    app.deliver("issue_comment", &app.comment_event(issue, c, "maya", "/factory cancel")).await;
    let jobs = app.settle(2).await;
    let generate = jobs.iter().find(|j| j.kind == JobKind::Generate).unwrap();
    assert_eq!(generate.state, JobState::Cancelled, "{jobs:#?}");
    let (body, meta) = app.status(issue);
    assert_eq!(meta.phase, Phase::Cancelled, "{body}");
    assert!(body.contains("Cancelled"), "{body}");

    let c = app.fake.add_comment(REPO, issue, "rita", "/factory status");
    app.deliver("issue_comment", &app.comment_event(issue, c, "rita", "/factory status")).await;
    app.settle(3).await;
    let replies: Vec<String> = app.bot_comments(issue).into_iter().filter(|b| b.starts_with("Job ")).collect();
    assert_eq!(replies.len(), 1, "{:#?}", app.bot_comments(issue));
    assert!(replies[0].contains("cancelled"), "{}", replies[0]);
}

/// Ticking the status comment's retry box (an edit of the app's own comment by a person with
/// write access) builds again on the same PR.
#[tokio::test(flavor = "multi_thread")]
async fn ticking_the_retry_box_runs_a_retry() {
    let app = App::start().await;
    let (issue, event) = app.open_issue(&app.body(), "maya");
    app.deliver("issues", &event).await;
    app.settle(1).await;
    let pr = app.assert_one_pr();
    let status = app.fake.comments(REPO, issue).into_iter().find(|c| c.body.contains(MARKER)).unwrap();
    assert!(status.body.contains("- [ ] retry"));
    let ticked = status.body.replace("- [ ] retry", "- [x] retry");
    let event = json!({
        "action": "edited",
        "changes": {"body": {"from": status.body}},
        "issue": issue_json(issue, TITLE, &app.body(), "maya"),
        "comment": {
            "id": status.id, "body": ticked, "user": {"login": app.fake.bot_login(), "id": 1, "type": "Bot"},
            "performed_via_github_app": {"id": APP_ID, "slug": APP_SLUG},
        },
        "repository": repository_json(),
        "sender": user("maya"),
        "installation": {"id": INSTALLATION},
    });
    assert_eq!(app.deliver("issue_comment", &event).await, StatusCode::ACCEPTED);
    let jobs = app.settle(2).await;
    let retry = jobs.iter().find(|j| j.kind == JobKind::Retry).expect("a retry job");
    assert_eq!(retry.state, JobState::Succeeded, "{jobs:#?}");
    assert_eq!(app.assert_one_pr(), pr);
    let (body, meta) = app.status(issue);
    assert_eq!((meta.phase, meta.attempts), (Phase::PrOpened, 2));
    assert!(body.contains("- [ ] retry"), "the box is unticked again");
}

/// `/factory cancel` from someone without write access stops nothing: the running job still
/// ends with its PR, and the person gets a polite refusal.
#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_without_write_access_stops_nothing() {
    let app = App::start().await;
    let (issue, event) = app.open_issue(&app.body(), "maya");
    app.deliver("issues", &event).await;
    let until = Instant::now() + WAIT;
    while !app.jobs().await.first().is_some_and(|j| j.state == JobState::Running) {
        assert!(Instant::now() < until, "the job never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let c = app.fake.add_comment(REPO, issue, "rita", "/factory cancel");
    app.deliver("issue_comment", &app.comment_event(issue, c, "rita", "/factory cancel")).await;
    let jobs = app.settle(2).await;
    let generate = jobs.iter().find(|j| j.kind == JobKind::Generate).unwrap();
    assert_eq!(generate.state, JobState::Succeeded, "{jobs:#?}");
    app.assert_one_pr();
    assert_eq!(app.status(issue).1.phase, Phase::PrOpened);
    let refusals = app.fake.comments(REPO, issue).into_iter().filter(|c| c.body.contains("only people with write access")).count();
    assert_eq!(refusals, 1);
}

/// The learning loop through webhooks: a connector PR whose spec tests fail in CI gets an
/// analysis comment and an improvement PR (the report read from a real zip artifact, downloaded
/// through a redirect to another host without the token); a green run after that relabels the
/// PR; runs on the factory's own branches start nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_ci_run_becomes_an_analysis_and_an_improvement_pr() {
    let app = App::start().await;
    let (_, event) = app.open_issue(&app.body(), "maya");
    assert_eq!(app.deliver("issues", &event).await, StatusCode::ACCEPTED);
    app.settle(1).await;
    let pr = app.assert_one_pr();

    // The connector as CI sees it: its clients schema claims integer ids (the bot pushed it).
    let implementation = "registry/tidepool-bookings/v1/connector-factory/python/default";
    let schema_path = format!("{implementation}/schemas/clients.json");
    let mut schema: Value = serde_json::from_str(&app.bare.read(BRANCH, &schema_path).unwrap()).unwrap();
    schema["properties"]["id"] = json!({"type": "integer"});
    let bad = serde_json::to_string_pretty(&schema).unwrap();
    let tip = app
        .bare
        .commit(BRANCH, &[(schema_path.as_str(), bad.as_bytes())], &[], (&app.identity.name, &app.identity.email), "Generated")
        .to_string();
    let checkout = app.tmp.path().join("ci-checkout");
    git2::build::RepoBuilder::new().branch(BRANCH).clone(&app.bare.url(), &checkout).unwrap();
    let loaded = connector_factory::spectest::load_implementation(&checkout.join(implementation)).unwrap();
    let only = SuiteOptions { only: vec!["schema".into()], ..SuiteOptions::default() };
    let report = connector_factory::spectest::SpecReport::new(vec![
        connector_factory::spectest::run_implementation(&loaded, implementation, &only).await.unwrap(),
    ]);
    assert!(!report.passed);

    let spec_run = |conclusion: &str, sha: &str, branch: &str| WorkflowRunSpec {
        path: ".github/workflows/spec-tests.yml".into(),
        name: Some("spec-tests".into()),
        head_branch: Some(branch.into()),
        head_sha: sha.into(),
        event: "pull_request".into(),
        conclusion: Some(conclusion.into()),
        ..WorkflowRunSpec::default()
    };
    let run_event = |id: u64, conclusion: &str, sha: &str, branch: &str| {
        json!({
            "action": "completed",
            "workflow_run": {
                "id": id, "name": "spec-tests", "head_branch": branch, "head_sha": sha,
                "status": "completed", "conclusion": conclusion, "event": "pull_request",
                "path": ".github/workflows/spec-tests.yml", "run_attempt": 1,
                "html_url": format!("https://github.com/{REPO}/actions/runs/{id}"),
                "pull_requests": [],
            },
            "repository": repository_json(),
            "sender": {"login": format!("{APP_SLUG}[bot]"), "id": 9, "type": "Bot"},
            "installation": {"id": INSTALLATION},
        })
    };
    app.fake.add_workflow_run(REPO, WorkflowRunSpec::default()); // main is green
    let failed = app.fake.add_workflow_run(REPO, spec_run("failure", &tip, BRANCH));
    app.fake.add_artifact(failed, "spec-report", &[("report.json", &serde_json::to_vec(&report).unwrap())]);
    assert_eq!(app.deliver("workflow_run", &run_event(failed, "failure", &tip, BRANCH)).await, StatusCode::ACCEPTED);
    let jobs = app.settle(2).await;
    let ci = jobs.iter().find(|j| j.kind == JobKind::CiFinished).unwrap();
    assert_eq!(ci.state, JobState::Succeeded, "{ci:#?}");
    assert_eq!(ci.result.as_ref().unwrap()["verdict"], "analysed", "{ci:#?}");

    let analysis: Vec<String> =
        app.bot_comments(pr).into_iter().filter(|b| b.contains("<!-- factory-analysis:")).collect();
    assert_eq!(analysis.len(), 1, "{analysis:#?}");
    assert!(analysis[0].contains("schema.records_valid") && analysis[0].contains("skills/connector-building/SKILL.md"));
    assert!(analysis[0].contains("No automatic fix: no LLM is configured"), "{}", analysis[0]);
    assert!(app.fake.issue_labels(REPO, pr).contains(&"spec-tests-failed".to_string()));
    let improvement: Vec<_> = app.fake.pulls(REPO).into_iter().filter(|p| p.head == "factory/improve-schema").collect();
    assert_eq!(improvement.len(), 1);
    assert!(improvement[0].draft);
    assert!(app.fake.issue_labels(REPO, improvement[0].number).contains(&"factory-improvement".to_string()));
    let skill = app.bare.read("factory/improve-schema", "skills/connector-building/SKILL.md").unwrap();
    assert!(skill.contains("- `schema.records_valid` (tidepool-bookings/v1): evidence:"), "{skill}");
    assert!(!app.fake.blob_requests().is_empty(), "the artifact came through the blob host");
    assert!(app.fake.blob_requests().iter().all(|b| b.authorization.is_none()), "no token to the blob host");

    // The factory's own branch: ignored at the door.
    let own = app.fake.add_workflow_run(REPO, spec_run("failure", &tip, "factory/improve-schema"));
    assert_eq!(app.deliver("workflow_run", &run_event(own, "failure", &tip, "factory/improve-schema")).await, StatusCode::ACCEPTED);
    // A green run on the connector branch.
    let green = app.fake.add_workflow_run(REPO, spec_run("success", &tip, BRANCH));
    assert_eq!(app.deliver("workflow_run", &run_event(green, "success", &tip, BRANCH)).await, StatusCode::ACCEPTED);
    let jobs = app.settle(3).await;
    assert_eq!(jobs.len(), 3, "the factory/* run made no job: {jobs:#?}");
    let labels = app.fake.issue_labels(REPO, pr);
    assert!(labels.contains(&"spec-tests-passed".to_string()) && !labels.contains(&"spec-tests-failed".to_string()), "{labels:?}");
    assert_eq!(app.fake.pulls(REPO).len(), 2, "still one connector PR and one improvement PR");
}

// ---- the Actions executor ----

/// generate.yml's `run-name:` and the names of its `workflow_dispatch` inputs, read from the
/// repository's own workflow file, so the fake dispatches exactly what GitHub would.
fn generate_workflow() -> (String, Vec<String>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".github/workflows").join(GENERATE_WORKFLOW);
    let doc: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let run_name = doc["run-name"].as_str().expect("generate.yml has a run-name").to_string();
    // YAML 1.1 reads a bare `on` as true.
    let on = doc.get("on").or_else(|| doc.get(serde_yaml::Value::Bool(true))).expect("generate.yml has on:");
    let inputs = on["workflow_dispatch"]["inputs"].as_mapping().expect("workflow_dispatch inputs");
    (run_name, inputs.keys().map(|k| k.as_str().unwrap().to_string()).collect())
}

/// The workflow uploads what the server downloads, under the names the code uses.
#[test]
fn generate_yml_uploads_the_outcome_the_server_reads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".github/workflows").join(GENERATE_WORKFLOW);
    let doc: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let steps = doc["jobs"]["generate"]["steps"].as_sequence().unwrap();
    let upload = steps
        .iter()
        .find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("actions/upload-artifact@")))
        .expect("an upload step");
    assert_eq!(upload["with"]["name"].as_str(), Some(OUTCOME_ARTIFACT));
    assert_eq!(upload["with"]["path"].as_str(), Some(OUTCOME_FILE));
    assert_eq!(upload["if"].as_str(), Some("always()"), "uploaded even when the build fails");
    let run = steps.iter().filter_map(|s| s["run"].as_str()).find(|r| r.contains("generate")).unwrap();
    assert!(run.contains(&format!("--outcome {OUTCOME_FILE}")), "{run}");
}

/// The app with the Actions executor, and generate.yml dispatchable on the fake as the
/// repository's workflow file declares it.
async fn start_actions(pool: PoolConfig) -> App {
    let actions = ActionsConfig {
        poll: Duration::from_millis(50),
        find_run_within: Duration::from_secs(10),
        ..ActionsConfig::default()
    };
    let app = App::start_with(AppOptions { pool: Some(pool), executor: Executor::Actions(actions), ..AppOptions::default() }).await;
    let (run_name, inputs) = generate_workflow();
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    app.fake.add_dispatchable_workflow(REPO, GENERATE_WORKFLOW, "generate", Some(&run_name), &inputs);
    app
}

impl App {
    /// Waits for the `n`th dispatched run of generate.yml.
    async fn dispatched(&self, n: usize) -> support::fake_github::state::RunRecord {
        let until = Instant::now() + WAIT;
        loop {
            let runs = self.fake.dispatched_runs();
            if runs.len() >= n {
                return runs[n - 1].clone();
            }
            assert!(Instant::now() < until, "no run was dispatched: {:#?}", self.jobs().await);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Plays the runner: `generate --issue` as the workflow runs it, with a token minted for the
    /// installation, then the outcome artifact and the run's conclusion.
    async fn run_on_runner(&self, run: &support::fake_github::state::RunRecord, conclusion: &str) -> generate::Outcome {
        self.fake.set_run_status(run.id, "in_progress", None);
        let env = RunnerEnv::from_env(|k| match k {
            "GITHUB_REPOSITORY" => Some(REPO.to_string()),
            "GITHUB_API_URL" => Some(self.fake.url()),
            "FACTORY_GITHUB_TOKEN" => Some(self.fake.mint_installation_token(INSTALLATION)),
            "FACTORY_BOT_LOGIN" => Some(self.fake.bot_login()),
            "GITHUB_SERVER_URL" => Some("https://github.example".to_string()),
            "GITHUB_RUN_ID" => Some(run.id.to_string()),
            _ => None,
        })
        .unwrap();
        let input = |k: &str| run.inputs.get(k).cloned().unwrap_or_default();
        let args = RunnerArgs {
            issue: Some(input("issue").parse().unwrap()),
            comment: input("comment").parse().ok(),
            on_pull_request: input("on-pull-request") == "true",
            requested_by: Some(input("requested-by")),
            job: input("job").parse().ok(),
            outcome: None,
        };
        let platform = env.platform().unwrap();
        let job = runner_job(&platform, &args).await.unwrap();
        let mut config = self.handler.config.clone();
        config.executor = Executor::Local;
        config.runner_url = env.run_url.clone();
        let ctl = Control::on_behalf_of(CancellationToken::new(), args.job);
        let outcome = generate::run(&platform, &job, &config, &ctl).await;
        let bytes = serde_json::to_vec(&outcome_json(&outcome)).unwrap();
        self.fake.add_artifact(run.id, OUTCOME_ARTIFACT, &[(OUTCOME_FILE, &bytes)]);
        self.fake.complete_run(run.id, conclusion);
        outcome
    }
}

fn actions_pool() -> PoolConfig {
    PoolConfig { concurrency: 2, poll_every: Duration::from_millis(50), ..PoolConfig::default() }
}

/// (k) With the Actions executor the server dispatches generate.yml and builds nothing itself;
/// the runner's build is reported as the job's outcome, with one PR and one status comment.
#[tokio::test(flavor = "multi_thread")]
async fn the_actions_executor_dispatches_tracks_and_reports_the_run() {
    let app = start_actions(actions_pool()).await;
    let (issue, event) = app.open_issue(&app.body(), "maya");
    assert_eq!(app.deliver("issues", &event).await, StatusCode::ACCEPTED);
    let run = app.dispatched(1).await;
    let job = app.jobs().await[0].clone();
    assert_eq!(run.display_title.as_deref(), Some(run_title(job.id.0, issue).as_str()));
    assert_eq!((run.event.as_str(), run.head_branch.as_deref()), ("workflow_dispatch", Some("main")));
    let inputs: Vec<(&str, &str)> = run.inputs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (issue_s, job_s) = (issue.to_string(), job.id.0.to_string());
    assert_eq!(
        inputs,
        [("comment", ""), ("issue", issue_s.as_str()), ("job", job_s.as_str()), ("on-pull-request", "false"), ("requested-by", "maya")]
    );
    // Nothing was built on the server: no clone, no branch, no status beyond the 👀.
    assert!(app.bare.tip(BRANCH).is_none());
    assert_eq!(app.fake.reactions(REPO).len(), 1);

    // The server keeps looking at the queued run (and at the issue's status) until it ends.
    let gets = |fragment: &str| app.fake.requests_to(fragment).into_iter().filter(|r| r.method == "GET").count();
    let run_path = format!("/actions/runs/{}", run.id);
    let waited = Instant::now();
    while gets(&run_path) < 8 {
        assert!(waited.elapsed() < Duration::from_secs(10), "the server stopped looking at the run");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let outcome = app.run_on_runner(&run, "success").await;
    assert!(matches!(outcome.verdict, generate::Verdict::PrOpened), "{outcome:?}");
    let jobs = app.settle(1).await;
    assert_eq!(jobs[0].state, JobState::Succeeded, "{jobs:#?}");
    let result = jobs[0].result.clone().unwrap();
    assert_eq!(result["executor"]["run_id"], json!(run.id));
    assert_eq!(result["executor"]["conclusion"], json!("success"));
    assert_eq!(result["verdict"], json!("pr_opened"));
    assert!(result["timings"]["phases"].as_array().is_some_and(|p| !p.is_empty()), "the runner's timings: {result}");
    let pr = app.assert_one_pr();
    assert_eq!(result["pr"]["number"], json!(pr));
    let (body, meta) = app.status(issue);
    assert_eq!((meta.phase, meta.pr, meta.job), (Phase::PrOpened, Some(pr), Some(job.id.0)));
    assert!(body.contains(&format!("https://github.example/{REPO}/actions/runs/{}", run.id)), "{body}");
    app.assert_bot_commits_only_in_folder();
    assert_eq!(app.fake.dispatched_runs().len(), 1);
    // Tracking looked at the run many times but listed the issue's comments about once (the
    // runner lists them too): the status comment is read by its id after the first look.
    let run_looks = gets(&run_path);
    let comment_lists = gets(&format!("/issues/{issue}/comments"));
    assert!(comment_lists <= 5, "{run_looks} looks at the run, {comment_lists} comment lists");
}

/// (l) A run that dies before the runner says how it went (here: no runner ever picked it up
/// and it failed) is reported on the issue with the run's link; the job fails.
#[tokio::test(flavor = "multi_thread")]
async fn an_actions_run_that_dies_early_is_reported_on_the_issue() {
    let app = start_actions(actions_pool()).await;
    let (issue, event) = app.open_issue(&app.body(), "maya");
    app.deliver("issues", &event).await;
    let run = app.dispatched(1).await;
    app.fake.complete_run(run.id, "failure");
    let jobs = app.settle(1).await;
    assert_eq!(jobs[0].state, JobState::Failed, "{jobs:#?}");
    assert!(jobs[0].error.as_deref().unwrap_or_default().contains("'failure'"), "{jobs:#?}");
    let (body, meta) = app.status(issue);
    assert_eq!(meta.phase, Phase::Failed);
    assert!(body.contains(&run_url(&app, run.id)) && body.contains("/factory retry"), "{body}");
    assert!(app.fake.pulls(REPO).is_empty());
}

fn run_url(app: &App, run_id: u64) -> String {
    format!("{}/acme/connectors/actions/runs/{run_id}", app.fake.url())
}

/// (m) `/factory cancel` while the run is going cancels the run on GitHub too.
#[tokio::test(flavor = "multi_thread")]
async fn cancelling_the_job_cancels_its_actions_run() {
    let app = start_actions(actions_pool()).await;
    let (issue, event) = app.open_issue(&app.body(), "maya");
    app.deliver("issues", &event).await;
    let run = app.dispatched(1).await;
    app.fake.set_run_status(run.id, "in_progress", None);
    let comment = app.fake.add_comment(REPO, issue, "maya", "/factory cancel");
    app.deliver("issue_comment", &app.comment_event(issue, comment, "maya", "/factory cancel")).await;
    let jobs = app.settle(2).await;
    let generate_job = jobs.iter().find(|j| j.kind == JobKind::Generate).unwrap();
    assert_eq!(generate_job.state, JobState::Cancelled, "{jobs:#?}");
    let until = Instant::now() + WAIT;
    while !app.fake.run(run.id).cancel_requested {
        assert!(Instant::now() < until, "the run was never cancelled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.status(issue).1.phase, Phase::Cancelled);
}

/// (n) The server restarts while a run is going, and GitHub does not say which run a dispatch
/// started: the run is found by its name, never dispatched twice, and its outcome still lands.
#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_server_finds_its_actions_run_again() {
    let short = PoolConfig {
        concurrency: 1,
        lease: Duration::from_secs(2),
        heartbeat_every: Duration::from_millis(300),
        poll_every: Duration::from_millis(100),
        ..PoolConfig::default()
    };
    let mut app = start_actions(short.clone()).await;
    app.fake.without_dispatch_details();
    let (issue, event) = app.open_issue(&app.body(), "maya");
    app.deliver("issues", &event).await;
    let run = app.dispatched(1).await;
    let until = Instant::now() + WAIT;
    while app.jobs().await[0].state != JobState::Running {
        assert!(Instant::now() < until);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A graceful stop: the job goes back to the queue while the run goes on.
    app.pool.take().unwrap().shutdown().await;
    assert!(!app.fake.run(run.id).cancel_requested, "stopping the server must not stop the run");
    assert_eq!(app.jobs().await[0].state, JobState::Queued, "released for the next start");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::connect(&app.db_url).await.unwrap());
    app.pool = Some(WorkerPool::start(JobQueue::new(store), app.handler.clone(), PoolConfig { owner: "second".into(), ..short }));
    app.run_on_runner(&run, "success").await;
    let jobs = app.settle(1).await;
    assert_eq!(jobs[0].state, JobState::Succeeded, "{jobs:#?}");
    assert_eq!(app.fake.dispatched_runs().len(), 1, "one run, never a second dispatch");
    app.assert_one_pr();
    assert_eq!(app.status(issue).1.phase, Phase::PrOpened);
}

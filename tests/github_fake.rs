//! The fake GitHub itself: the schema checker catches wrong answers (so a passing client test
//! means the fake spoke GitHub's published shapes), and credentials are checked like GitHub does.

mod support;

use connector_factory::github::app::GitHubApp;
use connector_factory::github::client::{Api, Auth, RetryPolicy};
use http::Method;
use serde_json::{Value, json};
use std::sync::Arc;
use support::fake_github::openapi::{OpenApiChecker, rewrite_nullable};
use support::fake_github::{FakeGitHub, WorkflowRunSpec};

const REPO: &str = "acme/widgets";

async fn env() -> (FakeGitHub, Arc<GitHubApp>) {
    let fake = FakeGitHub::start().await;
    fake.add_repo(REPO);
    fake.add_installation(77, &[REPO]);
    let retry = RetryPolicy { max_attempts: 1, ..RetryPolicy::default() };
    let app =
        Arc::new(GitHubApp::new(fake.app_id(), &fake.private_key(), &fake.url()).unwrap().with_retry_policy(retry));
    (fake, app)
}

#[tokio::test]
async fn a_comment_missing_its_id_is_caught_with_operation_and_pointer() {
    let (fake, app) = env().await;
    let n = fake.add_issue(REPO, "t", "", "alice");
    fake.corrupt_next("/comments", |body| {
        body.as_object_mut().unwrap().remove("id");
    });
    // The client cannot read it either.
    assert!(app.installation(77).create_issue_comment("acme", "widgets", n, "hi").await.is_err());
    let violations = fake.take_violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    let v = &violations[0];
    assert_eq!(v.operation_id, "issues/create-comment");
    assert_eq!(v.status, 201);
    assert_eq!(v.instance_pointer, "");
    assert!(v.message.contains("\"id\""), "{v}");
    assert!(v.schema_pointer.contains("issue-comment") && v.schema_pointer.ends_with("/required"), "{v}");
}

#[tokio::test]
async fn a_nested_wrong_type_is_caught_at_its_pointer() {
    let (fake, app) = env().await;
    let n = fake.add_issue(REPO, "t", "", "alice");
    fake.add_comment(REPO, n, "bob", "x");
    fake.corrupt_next("/comments", |body| body[0]["user"]["login"] = json!(42));
    let _ = app.installation(77).list_issue_comments("acme", "widgets", n).await;
    let violations = fake.take_violations();
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].operation_id, "issues/list-comments");
    assert_eq!(violations[0].instance_pointer, "/0/user/login");
}

#[test]
#[should_panic(expected = "do not match GitHub's REST description")]
fn unclaimed_violations_fail_the_test() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (fake, app) = env().await;
        fake.corrupt_next("/repos/acme/widgets", |body| body["default_branch"] = Value::Null);
        let _ = app.installation(77).get_repository("acme", "widgets").await;
        drop(fake);
    });
}

#[test]
fn checker_resolves_templates_and_flags_unknown_operations() {
    let checker = OpenApiChecker::github();
    assert_eq!(
        checker.template_for("/repos/a/b/issues/comments/5"),
        Some("/repos/{owner}/{repo}/issues/comments/{comment_id}")
    );
    assert_eq!(
        checker.template_for("/repos/a/b/issues/5/comments"),
        Some("/repos/{owner}/{repo}/issues/{issue_number}/comments")
    );
    assert_eq!(checker.operation_id("PATCH", "/repos/a/b/pulls/3").as_deref(), Some("pulls/update"));
    let unknown = checker.check("GET", "/definitely/not/github", 200, &json!({})).unwrap_err();
    assert!(unknown.message.contains("no such operation"));
    let undocumented = checker.check("GET", "/repos/a/b/labels/x", 201, &json!({})).unwrap_err();
    assert!(undocumented.message.contains("not documented"), "{undocumented}");
    // Nullable fields accept null once rewritten; required ones still must be present.
    let label = json!({"id": 1, "node_id": "L", "url": "https://x.test/l", "name": "n", "description": null, "color": "ffffff", "default": false});
    checker.check("GET", "/repos/a/b/labels/x", 200, &label).unwrap();
    let bad_url = json!({"id": 1, "node_id": "L", "url": "not a uri", "name": "n", "description": null, "color": "ffffff", "default": false});
    assert_eq!(checker.check("GET", "/repos/a/b/labels/x", 200, &bad_url).unwrap_err().instance_pointer, "/url");
}

#[test]
fn nullable_is_rewritten_into_json_schema() {
    let mut v = json!({"type": "string", "nullable": true});
    rewrite_nullable(&mut v);
    assert_eq!(v, json!({"type": ["string", "null"]}));
    let mut v = json!({"allOf": [{"$ref": "#/x"}], "nullable": true});
    rewrite_nullable(&mut v);
    assert_eq!(v, json!({"anyOf": [{"type": "null"}, {"allOf": [{"$ref": "#/x"}]}]}));
    let mut v = json!({"type": "string", "enum": ["a"], "nullable": true});
    rewrite_nullable(&mut v);
    assert_eq!(v, json!({"type": ["string", "null"], "enum": ["a", null]}));
    // A property that happens to be called "nullable" is left alone.
    let mut v = json!({"properties": {"nullable": {"type": "boolean"}}});
    rewrite_nullable(&mut v);
    assert_eq!(v, json!({"properties": {"nullable": {"type": "boolean"}}}));
}

#[tokio::test]
async fn credentials_are_checked_like_github() {
    let (fake, app) = env().await;
    fake.add_repo("acme/private");
    let api =
        Api::new(&fake.url()).unwrap().with_retry_policy(RetryPolicy { max_attempts: 1, ..RetryPolicy::default() });
    let status = |r: connector_factory::github::client::ApiResponse| r.status.as_u16();

    assert_eq!(status(api.send(Method::GET, "/repos/acme/widgets", None, Auth::None).await.unwrap()), 401);
    let jwt = app.jwt().unwrap();
    assert_eq!(status(api.send(Method::GET, "/repos/acme/widgets", None, Auth::App(&jwt)).await.unwrap()), 401);
    assert_eq!(status(api.send(Method::GET, "/app", None, Auth::App(&jwt)).await.unwrap()), 200);
    let token = app.installation_token(77).await.unwrap();
    assert_eq!(status(api.send(Method::GET, "/app", None, Auth::Installation(&token)).await.unwrap()), 401);
    assert_eq!(
        status(api.send(Method::GET, "/repos/acme/widgets", None, Auth::Installation(&token)).await.unwrap()),
        200
    );
    // Not covered by the installation: GitHub hides it.
    assert_eq!(
        status(api.send(Method::GET, "/repos/acme/private", None, Auth::Installation(&token)).await.unwrap()),
        404
    );
    let forged = connector_factory::config::Secret::new("ghs_forged");
    assert_eq!(
        status(api.send(Method::GET, "/repos/acme/widgets", None, Auth::Installation(&forged)).await.unwrap()),
        401
    );
    fake.revoke_tokens();
    assert_eq!(
        status(api.send(Method::GET, "/repos/acme/widgets", None, Auth::Installation(&token)).await.unwrap()),
        401
    );
    // The manifest conversion needs no credentials, only a valid code.
    assert_eq!(status(api.send(Method::POST, "/app-manifests/nope/conversions", None, Auth::None).await.unwrap()), 404);
}

#[tokio::test]
async fn a_workflow_run_missing_its_head_sha_is_caught() {
    let (fake, app) = env().await;
    let run = fake.add_workflow_run(REPO, WorkflowRunSpec::default());
    fake.corrupt_next(&format!("/actions/runs/{run}"), |body| {
        body.as_object_mut().unwrap().remove("head_sha");
    });
    // The client cannot read it either.
    assert!(app.installation(77).get_workflow_run("acme", "widgets", run).await.is_err());
    let violations = fake.take_violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    let v = &violations[0];
    assert_eq!((v.operation_id.as_str(), v.status), ("actions/get-workflow-run", 200));
    assert_eq!(v.instance_pointer, "");
    assert!(v.message.contains("\"head_sha\""), "{v}");
    assert!(v.schema_pointer.contains("workflow-run") && v.schema_pointer.ends_with("/required"), "{v}");
    // Untouched, the same answer passes.
    app.installation(77).get_workflow_run("acme", "widgets", run).await.unwrap();
    assert!(fake.take_violations().is_empty());
}

#[tokio::test]
async fn wrong_shapes_inside_runs_jobs_and_artifacts_are_caught_at_their_pointers() {
    let (fake, app) = env().await;
    let client = app.installation(77);
    let run = fake.add_workflow_run(REPO, WorkflowRunSpec::default());
    fake.add_job(run, "unit", "failure", "boom");
    fake.add_artifact(run, "results", &[("r.json", b"{}")]);

    fake.corrupt_next("/actions/runs", |body| body["workflow_runs"][0]["head_repository"]["full_name"] = json!(42));
    let _ = client.list_runs_on_branch("acme", "widgets", "main", 10).await;
    fake.corrupt_next("/jobs", |body| body["jobs"][0]["conclusion"] = json!("exploded"));
    let _ = client.list_run_jobs("acme", "widgets", run).await;
    fake.corrupt_next("/artifacts", |body| body["artifacts"][0]["expired"] = json!("no"));
    let _ = client.list_run_artifacts("acme", "widgets", run, None).await;

    let found: Vec<(String, String)> =
        fake.take_violations().into_iter().map(|v| (v.operation_id, v.instance_pointer)).collect();
    let expected = [
        ("actions/list-workflow-runs-for-repo", "/workflow_runs/0/head_repository/full_name"),
        ("actions/list-jobs-for-workflow-run", "/jobs/0/conclusion"),
        ("actions/list-workflow-run-artifacts", "/artifacts/0/expired"),
    ];
    assert_eq!(found, expected.map(|(op, at)| (op.to_string(), at.to_string())));
}

#[tokio::test]
async fn downloads_redirect_to_another_origin_that_wants_no_credentials() {
    let (fake, app) = env().await;
    let run = fake.add_workflow_run(REPO, WorkflowRunSpec::default());
    let job = fake.add_job(run, "unit", "failure", "the log\n");
    let token = app.installation_token(77).await.unwrap();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let logs = format!("{}/repos/acme/widgets/actions/jobs/{job}/logs", fake.url());
    // Like every repository endpoint, it wants the installation token.
    assert_eq!(http.get(&logs).send().await.unwrap().status(), 401);
    let found = http.get(&logs).header("authorization", format!("token {}", token.expose())).send().await.unwrap();
    assert_eq!(found.status(), 302);
    let location = found.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&format!("{}/blob/", fake.blob_url())), "{location}");
    assert_ne!(url::Url::parse(&location).unwrap().origin(), url::Url::parse(&fake.url()).unwrap().origin());
    let blob = http.get(&location).send().await.unwrap();
    assert_eq!(blob.status(), 200);
    assert_eq!(blob.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(blob.text().await.unwrap(), "the log\n");
    assert_eq!(fake.blob_requests()[0].authorization, None);
}

/// The blob host's record is what the client tests rely on; it must notice a credential.
#[test]
#[should_panic(expected = "Authorization header reached the blob host")]
fn a_credential_sent_to_the_blob_host_fails_the_test() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (fake, app) = env().await;
        let run = fake.add_workflow_run(REPO, WorkflowRunSpec::default());
        fake.add_artifact(run, "results", &[("r.json", b"{}")]);
        let token = app.installation_token(77).await.unwrap();
        let bearer = format!("token {}", token.expose());
        let artifact = app.installation(77).list_run_artifacts("acme", "widgets", run, None).await.unwrap()[0].id;
        // A client that carries the header along a redirect to another host.
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let zip = format!("{}/repos/acme/widgets/actions/artifacts/{artifact}/zip", fake.url());
        let found = http.get(&zip).header("authorization", &bearer).send().await.unwrap();
        let location = found.headers()["location"].to_str().unwrap().to_string();
        assert_eq!(http.get(&location).header("authorization", &bearer).send().await.unwrap().status(), 200);
        assert_eq!(fake.blob_requests()[0].authorization.as_deref(), Some(bearer.as_str()));
        drop(fake);
    });
}

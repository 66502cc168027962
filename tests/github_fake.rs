//! The fake GitHub itself: the schema checker catches wrong answers (so a passing client test
//! means the fake spoke GitHub's published shapes), and credentials are checked like GitHub does.

mod support;

use connector_factory::github::app::GitHubApp;
use connector_factory::github::client::{Api, Auth, RetryPolicy};
use http::Method;
use serde_json::{Value, json};
use std::sync::Arc;
use support::fake_github::FakeGitHub;
use support::fake_github::openapi::{OpenApiChecker, rewrite_nullable};

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

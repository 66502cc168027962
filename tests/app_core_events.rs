//! Every webhook payload example GitHub publishes (npm @octokit/webhooks-examples) goes through
//! `events.rs`, and the event → job decisions are checked on real payloads.

use connector_factory::github::events::{CommentAction, IssuesAction, WebhookEvent};
use connector_factory::github::route::{RouteContext, route};
use connector_factory::store::JobKind;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

static FETCH: Mutex<()> = Mutex::new(());

/// The unpacked package, fetched by `.ci/fetch-webhook-examples.sh` when missing.
fn examples_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join(".cache/webhooks-examples/package");
    let _guard = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    if !dir.join("api.github.com/index.json").is_file() {
        let out = Command::new("bash")
            .arg(root.join(".ci/fetch-webhook-examples.sh"))
            .output()
            .expect("running .ci/fetch-webhook-examples.sh");
        assert!(
            out.status.success(),
            "the webhook examples are not cached and fetching them from the npm registry failed \
             (run .ci/fetch-webhook-examples.sh by hand to see why):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    dir
}

/// (source file, event name, example payload) for every example of every GitHub flavour.
fn all_examples() -> Vec<(String, String, Value)> {
    let dir = examples_dir();
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let index = entry.unwrap().path().join("index.json");
        if !index.is_file() {
            continue;
        }
        let defs: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&index).unwrap()).unwrap();
        let source = index.strip_prefix(&dir).unwrap().display().to_string();
        for def in defs {
            let name = def["name"].as_str().unwrap().to_string();
            for example in def["examples"].as_array().into_iter().flatten() {
                out.push((source.clone(), name.clone(), example.clone()));
            }
        }
    }
    out
}

fn example(event: &str, action: &str, pick: impl Fn(&Value) -> bool) -> Value {
    let dir = examples_dir();
    let defs: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("api.github.com/index.json")).unwrap()).unwrap();
    defs.iter()
        .filter(|d| d["name"] == event)
        .flat_map(|d| d["examples"].as_array().unwrap().iter())
        .find(|e| e["action"] == action && pick(e))
        .unwrap_or_else(|| panic!("no {event}.{action} example"))
        .clone()
}

/// Through the webhook endpoint: every example is accepted, stored as sent, and the envelope
/// fields the intake reads (without parsing the whole body) are those of the whole document.
#[tokio::test]
async fn every_example_payload_is_accepted_with_its_envelope_read_right() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use connector_factory::server::webhook::sign;
    use connector_factory::server::{AppState, router};
    use connector_factory::store::{SqliteStore, Store};
    use tower::ServiceExt;

    let dir = tempfile::tempdir().unwrap();
    let store: std::sync::Arc<dyn Store> =
        std::sync::Arc::new(SqliteStore::connect(&format!("sqlite://{}", dir.path().join("f.db").display())).await.unwrap());
    let app = router(AppState::new(connector_factory::config::Secret::new("s"), store.clone(), Default::default()), 25 << 20);
    let examples = all_examples();
    let mut sent = std::collections::HashMap::new();
    for (i, (source, name, payload)) in examples.iter().enumerate() {
        let body = serde_json::to_vec(payload).unwrap();
        let id = format!("ex-{i}");
        let req = Request::post("/webhook")
            .header("x-github-event", name.as_str())
            .header("x-github-delivery", id.as_str())
            .header("x-hub-signature-256", sign(b"s", &body))
            .body(Body::from(body.clone()))
            .unwrap();
        let status = app.clone().oneshot(req).await.unwrap().status();
        assert_eq!(status, StatusCode::ACCEPTED, "{source}: {name} example {i}");
        sent.insert(id, (body, payload));
    }
    let stored = store.unrouted_events(u32::try_from(examples.len()).unwrap() + 1).await.unwrap();
    assert_eq!(stored.len(), examples.len());
    let mut with_installation = 0;
    for e in stored {
        let (body, payload) = &sent[&e.delivery_id];
        assert_eq!(e.payload.as_bytes(), body.as_slice());
        assert_eq!(e.action.as_deref(), payload["action"].as_str(), "{}", e.delivery_id);
        assert_eq!(e.installation_id, payload.pointer("/installation/id").and_then(Value::as_i64), "{}", e.delivery_id);
        assert_eq!(e.repository.as_deref(), payload.pointer("/repository/full_name").and_then(Value::as_str));
        with_installation += usize::from(e.installation_id.is_some());
    }
    assert!(with_installation > 0, "no example carried an installation, so that field went unchecked");
}

#[test]
fn every_example_payload_parses_to_a_typed_event_or_ignored() {
    let examples = all_examples();
    assert!(examples.len() > 300, "expected hundreds of examples, found {}", examples.len());
    let mut typed = 0;
    let mut failures = Vec::new();
    for (source, name, payload) in &examples {
        let bytes = serde_json::to_vec(payload).unwrap();
        match WebhookEvent::parse(name, &bytes) {
            Ok(WebhookEvent::Ignored { event, .. }) => assert_eq!(&event, name),
            Ok(event) => {
                assert_eq!(event.name(), name);
                typed += 1;
            }
            Err(err) => failures.push(format!("{source} {name}.{}: {err}", payload["action"])),
        }
    }
    assert!(failures.is_empty(), "{} examples failed to parse:\n{}", failures.len(), failures.join("\n"));
    // issues opened/labeled/edited, comments, PR closed/synchronize, runs, installations, pings.
    assert!(typed >= 40, "only {typed} examples parsed to typed events");
}

#[test]
fn the_actions_the_factory_acts_on_are_typed() {
    for (source, name, payload) in all_examples() {
        let action = payload["action"].as_str().unwrap_or_default().to_string();
        let acted_on = matches!(
            (name.as_str(), action.as_str()),
            ("issues", "opened" | "labeled" | "edited")
                | ("issue_comment", "created" | "edited")
                | ("pull_request", "closed" | "synchronize")
                | ("workflow_run", "completed")
                | ("installation", _)
                | ("ping", _)
        );
        let parsed = WebhookEvent::from_value(&name, payload).unwrap();
        assert_eq!(
            !matches!(parsed, WebhookEvent::Ignored { .. }),
            acted_on,
            "{source} {name}.{action} parsed to {parsed:?}"
        );
    }
}

#[test]
fn edited_comment_carries_the_previous_body() {
    let payload = example("issue_comment", "edited", |e| e["changes"]["body"]["from"].is_string());
    let from = payload["changes"]["body"]["from"].as_str().unwrap().to_string();
    match WebhookEvent::from_value("issue_comment", payload).unwrap() {
        WebhookEvent::IssueComment(e) => {
            assert_eq!(e.action, CommentAction::Edited { previous_body: Some(from) })
        }
        other => panic!("{other:?}"),
    }
}

fn with_label(mut payload: Value, label: &str) -> Value {
    payload["issue"]["labels"] = json!([{ "name": label }]);
    payload
}

fn ctx() -> RouteContext {
    RouteContext { app_id: Some(4242) }
}

#[test]
fn opened_connector_request_becomes_a_generate_job() {
    let mut payload = with_label(example("issues", "opened", |_| true), "connector-request");
    payload["issue"]["body"] = json!(include_str!("fixtures/requests/stripe.md"));
    let event = WebhookEvent::from_value("issues", payload).unwrap();
    assert!(matches!(&event, WebhookEvent::Issues(e) if e.action == IssuesAction::Opened));
    let r = route(&event, "d-1", &ctx());
    assert_eq!(r.decision(), "generate", "{}", r.reason);
    let job = &r.jobs[0];
    assert!(job.only_if_first, "opened and labeled both arrive for a form issue");
    assert_eq!(job.payload["request"]["slug"], "stripe");
    assert_eq!(job.payload["delivery"], "d-1");
}

#[test]
fn issues_without_the_label_or_with_other_labels_are_ignored() {
    let event = WebhookEvent::from_value("issues", with_label(example("issues", "opened", |_| true), "bug")).unwrap();
    let r = route(&event, "d", &ctx());
    assert_eq!(r.decision(), "ignore");
    assert!(r.reason.contains("not labeled"), "{}", r.reason);

    let mut labeled = with_label(example("issues", "labeled", |_| true), "connector-request");
    labeled["label"] = json!({"name": "good first issue"});
    let r = route(&WebhookEvent::from_value("issues", labeled.clone()).unwrap(), "d", &ctx());
    assert_eq!(r.decision(), "ignore");
    labeled["label"] = json!({"name": "connector-request"});
    let r = route(&WebhookEvent::from_value("issues", labeled).unwrap(), "d", &ctx());
    assert_eq!(r.decision(), "generate");
}

#[test]
fn bots_never_start_work() {
    let mut payload = with_label(example("issues", "opened", |_| true), "connector-request");
    payload["sender"]["type"] = json!("Bot");
    let r = route(&WebhookEvent::from_value("issues", payload).unwrap(), "d", &ctx());
    assert_eq!(r.decision(), "ignore");
    assert!(r.reason.contains("bot"), "{}", r.reason);
}

#[test]
fn comment_commands_become_jobs() {
    let mut payload =
        with_label(example("issue_comment", "created", |e| e["issue"]["pull_request"].is_null()), "connector-request");
    payload["comment"]["body"] =
        json!("Thanks!\n\n/factory retry use the v2 API\nand cursor pagination\n\n/factory status");
    let r = route(&WebhookEvent::from_value("issue_comment", payload.clone()).unwrap(), "d", &ctx());
    assert_eq!(r.decision(), "retry+status", "{}", r.reason);
    assert_eq!(r.jobs[0].payload["command"]["guidance"], "use the v2 API\nand cursor pagination");
    assert_eq!(r.jobs[0].kind, JobKind::Retry);

    // Quoted commands are not commands.
    payload["comment"]["body"] = json!("> /factory retry\n\nagreed");
    let r = route(&WebhookEvent::from_value("issue_comment", payload.clone()).unwrap(), "d", &ctx());
    assert_eq!(r.decision(), "ignore");

    // The app's own comments never count.
    payload["comment"]["body"] = json!("/factory cancel");
    payload["comment"]["performed_via_github_app"] = json!({"id": 4242, "slug": "connector-factory"});
    let r = route(&WebhookEvent::from_value("issue_comment", payload).unwrap(), "d", &ctx());
    assert_eq!(r.decision(), "ignore");
    assert!(r.reason.contains("this app"), "{}", r.reason);
}

#[test]
fn edited_comment_runs_only_new_commands() {
    let mut payload = with_label(
        example("issue_comment", "edited", |e| e["changes"]["body"]["from"].is_string()),
        "connector-request",
    );
    payload["changes"]["body"]["from"] = json!("/factory status");
    payload["comment"]["body"] = json!("/factory status\n\n/factory cancel");
    let r = route(&WebhookEvent::from_value("issue_comment", payload.clone()).unwrap(), "d", &ctx());
    assert_eq!(r.decision(), "cancel", "{}", r.reason);

    payload["comment"]["body"] = json!("/factory status (typo fixed)");
    let r = route(&WebhookEvent::from_value("issue_comment", payload).unwrap(), "d", &ctx());
    assert_eq!(r.decision(), "ignore", "{}", r.reason);
}

#[test]
fn workflow_runs_on_connector_branches_become_ci_finished() {
    let mut payload = example("workflow_run", "completed", |_| true);
    payload["workflow_run"]["head_branch"] = json!("connector/stripe");
    payload["workflow_run"]["path"] = json!(".github/workflows/spec-tests.yml");
    payload["workflow_run"]["conclusion"] = json!("failure");
    payload["workflow_run"]["pull_requests"] = json!([{
        "number": 12, "id": 1, "url": "u",
        "head": {"ref": "connector/stripe", "sha": "a", "repo": {"id": 1, "name": "r", "url": "u"}},
        "base": {"ref": "main", "sha": "b", "repo": {"id": 1, "name": "r", "url": "u"}}
    }]);
    // The run's sender is the app's bot when the app pushed; that must not stop the analysis.
    payload["sender"]["type"] = json!("Bot");
    let r = route(&WebhookEvent::from_value("workflow_run", payload.clone()).unwrap(), "d", &ctx());
    assert_eq!(r.decision(), "ci_finished", "{}", r.reason);
    assert_eq!(r.jobs[0].issue_number, Some(12));

    // On the factory's own improvement branches the spec tests never start work (no loop)...
    payload["workflow_run"]["head_branch"] = json!("factory/improve-pagination");
    let r = route(&WebhookEvent::from_value("workflow_run", payload.clone()).unwrap(), "d", &ctx());
    assert_eq!(r.decision(), "ignore");
    assert!(r.reason.contains("never triggers work"), "{}", r.reason);
    // ...only the regression guard's result is picked up, to be posted on the improvement PR.
    payload["workflow_run"]["path"] = json!(".github/workflows/regression.yml");
    let r = route(&WebhookEvent::from_value("workflow_run", payload.clone()).unwrap(), "d", &ctx());
    assert_eq!(r.decision(), "ci_finished", "{}", r.reason);
    assert!(r.reason.contains("regression guard"), "{}", r.reason);
    // The regression workflow on a connector branch is not the spec tests.
    payload["workflow_run"]["head_branch"] = json!("connector/stripe");
    let r = route(&WebhookEvent::from_value("workflow_run", payload.clone()).unwrap(), "d", &ctx());
    assert_eq!(r.decision(), "ignore", "{}", r.reason);
    payload["workflow_run"]["path"] = json!(".github/workflows/spec-tests.yml");

    payload["workflow_run"]["head_branch"] = json!("connector/stripe");
    payload["workflow_run"]["path"] = json!(".github/workflows/lint.yml");
    let r = route(&WebhookEvent::from_value("workflow_run", payload).unwrap(), "d", &ctx());
    assert_eq!(r.decision(), "ignore");
}

#[test]
fn everything_else_is_ignored_with_a_reason() {
    for (_, name, payload) in all_examples().into_iter().filter(|(s, _, _)| s.starts_with("api.github.com")) {
        let event = WebhookEvent::from_value(&name, payload).unwrap();
        let r = route(&event, "d", &ctx());
        assert!(!r.reason.is_empty());
        // No example is a connector request or a /factory command, so none starts work
        // except runs on connector branches (none in the examples).
        assert_eq!(r.decision(), "ignore", "{name}: {}", r.reason);
    }
}

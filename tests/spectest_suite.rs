//! End-to-end: the untouched Stripe connector passes every check; copies of it with other
//! pagination styles and auth types (made here by editing the manifest) pass too, which proves
//! every style and auth type is mocked and checked; the JSON report validates against its
//! schema (and a broken one does not); the CLI's exit codes and output files.
#[path = "support/tree.rs"]
mod tree;
use tree::copy_tree;

use connector_factory::spectest::{self, SpecReport, Status, SuiteOptions};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

const STRIPE: &str = "registry/stripe/v1/connector-factory/python/default";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn stripe() -> PathBuf {
    root().join(STRIPE)
}

/// At most two whole suites at once across the tests of this file: each suite already runs its
/// 16 scenarios in parallel, and a 2-core machine shared with other work is easily saturated.
fn slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| tokio::sync::Semaphore::new(2))
}

async fn suite(dir: &Path, only: &[&str]) -> SpecReport {
    let _slot = slots().acquire().await.unwrap();
    // A generous wall-clock limit: these connectors are correct, so a kill here would only
    // measure how loaded the machine is.
    let opts = SuiteOptions {
        only: only.iter().map(|s| s.to_string()).collect(),
        wall_limit: Duration::from_secs(20),
        ..SuiteOptions::default()
    };
    spectest::run_suite(dir, &opts)
        .await
        .unwrap_or_else(|e| panic!("{}: {e:#}", dir.display()))
}


fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn write_json(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_string_pretty(value).unwrap()).unwrap();
}

/// A copy of the Stripe connector whose manifest (and files) `edit` changes.
fn variant(edit: impl FnOnce(&mut Value, &Path)) -> tempfile::TempDir {
    let tmp = tempfile::Builder::new()
        .prefix("spectest-variant-")
        .tempdir()
        .unwrap();
    copy_tree(&stripe(), tmp.path());
    let path = tmp.path().join("connector.json");
    let mut manifest = read_json(&path);
    edit(&mut manifest, tmp.path());
    write_json(&path, &manifest);
    tmp
}

fn describe_failures(report: &SpecReport) -> String {
    report.to_text()
}

fn assert_all_pass(report: &SpecReport, label: &str) {
    let imp = &report.implementations[0];
    assert!(
        imp.passed && report.passed,
        "{label}: checks failed:\n{}",
        describe_failures(report)
    );
    assert_eq!(imp.summary.failed, 0);
}

fn status_of(report: &SpecReport, id: &str) -> Status {
    report.implementations[0]
        .checks
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no check {id}"))
        .status
}

fn validator() -> jsonschema::Validator {
    let schema = read_json(&root().join("registry/_schemas/spec-report.schema.json"));
    jsonschema::meta::validate(&schema).expect("the report schema is a valid JSON Schema");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

fn schema_errors(report: &Value) -> Vec<String> {
    validator()
        .iter_errors(report)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_passes_every_check_and_the_report_validates() {
    let report = suite(&stripe(), &[]).await;
    assert_all_pass(&report, "stripe");
    let imp = &report.implementations[0];
    assert_eq!(imp.checks.len(), spectest::checks::CHECKS.len());
    assert_eq!(
        imp.summary.skipped,
        0,
        "every check applies to Stripe:\n{}",
        report.to_text()
    );
    // About 5 s on an idle 2-core machine (see BENCHMARKS.md); the bound only catches a
    // suite that lost its parallelism, with room for a busy machine.
    assert!(
        imp.duration_seconds < 30.0,
        "the suite took {:.1} s",
        imp.duration_seconds
    );

    let json: Value = serde_json::from_str(&report.to_json()).unwrap();
    let errors = schema_errors(&json);
    assert!(
        errors.is_empty(),
        "report does not match its schema: {errors:?}"
    );
    let md = report.to_markdown();
    assert!(md.len() < 60_000);
    assert!(md.contains("| Category | Passed | Failed | Skipped |"));
    let junit = report.to_junit();
    assert_eq!(junit.matches("<testcase ").count(), imp.checks.len());
    assert!(!junit.contains("<failure"));
}

#[test]
fn a_broken_report_does_not_validate() {
    let good = json!({
        "schema_version": 1,
        "tool": {"name": "connector-factory", "version": "0.1.0"},
        "generated_at": "2024-05-01T10:00:00Z",
        "passed": false,
        "implementations": [{
            "path": "registry/x/v1/a/python/default", "name": "x", "version": "v1", "language": "python",
            "author": "a", "implementation": "default", "passed": false, "duration_seconds": 1.5,
            "summary": {"total": 1, "passed": 0, "failed": 1, "skipped": 0},
            "checks": [{"id": "retry.backoff_growing", "category": "retry", "status": "failed",
                        "message": "gaps 0.1, 0.1", "hint": "grow the delay", "evidence": ["request: GET /x -> 500"]}],
            "scenarios": [{"id": "transient_5xx", "outcome": "ran", "note": null, "duration_seconds": 1.0, "requests": 3,
                           "runs": [{"label": "sync", "exit_code": 0, "hung": false, "duration_seconds": 0.9}]}]
        }]
    });
    assert!(
        schema_errors(&good).is_empty(),
        "{:?}",
        schema_errors(&good)
    );
    // The same document round-trips through the Rust types.
    let parsed: SpecReport = serde_json::from_value(good.clone()).unwrap();
    assert_eq!(parsed.implementations[0].checks[0].status, Status::Failed);

    let mut broken = good.clone();
    broken["implementations"][0]["checks"][0]["status"] = json!("ok");
    assert!(
        !schema_errors(&broken).is_empty(),
        "unknown status accepted"
    );
    let mut broken = good.clone();
    broken["implementations"][0]["summary"]
        .as_object_mut()
        .unwrap()
        .remove("failed");
    assert!(
        !schema_errors(&broken).is_empty(),
        "summary without failed accepted"
    );
    let mut broken = good.clone();
    broken["implementations"][0]["checks"][0]["category"] = json!("misc");
    assert!(
        !schema_errors(&broken).is_empty(),
        "unknown category accepted"
    );
    let mut broken = good;
    broken["schema_version"] = json!("1");
    assert!(
        !schema_errors(&broken).is_empty(),
        "string schema_version accepted"
    );
}

fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_connector-factory"))
}

#[test]
fn cli_writes_reports_and_uses_exit_codes() {
    let out = tempfile::tempdir().unwrap();
    let (j, m, x) = (
        out.path().join("r/report.json"),
        out.path().join("summary.md"),
        out.path().join("junit.xml"),
    );
    let status = cli()
        .args([
            "spec-test",
            STRIPE,
            "--only",
            "protocol.about,discover",
            "--json",
        ])
        .arg(&j)
        .arg("--markdown")
        .arg(&m)
        .arg("--junit")
        .arg(&x)
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(
        status.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    let report = read_json(&j);
    assert!(schema_errors(&report).is_empty());
    let ids: Vec<&str> = report["implementations"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "discover.catalog_valid",
            "discover.schemas_valid",
            "discover.key_properties_exist",
            "protocol.about"
        ]
    );
    assert!(std::fs::read_to_string(&m).unwrap().contains("Spec tests"));
    assert!(std::fs::read_to_string(&x).unwrap().starts_with("<?xml"));
    assert!(String::from_utf8_lossy(&status.stdout).contains("PASS  protocol.about"));

    // A failing check: exit 1.
    let broken = variant(|m, _| m["run"]["command"] = json!(["python3", "-c", "print('{}')"]));
    let status = cli()
        .args(["spec-test", "--only", "protocol.about"])
        .arg(broken.path())
        .output()
        .unwrap();
    assert_eq!(
        status.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    assert!(String::from_utf8_lossy(&status.stdout).contains("FAIL  protocol.about"));
}

#[test]
fn cli_rejects_unusable_input_with_exit_2() {
    let run = |args: &[&str], dir: Option<&Path>| {
        let mut c = cli();
        c.arg("spec-test").args(args);
        if let Some(d) = dir {
            c.arg(d);
        }
        let out = c.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let empty = tempfile::tempdir().unwrap();
    let (code, err) = run(&[], Some(empty.path()));
    assert_eq!(code, Some(2));
    assert!(err.contains("connector.json"), "{err}");

    std::fs::write(empty.path().join("connector.json"), "{ not json").unwrap();
    let (code, err) = run(&[], Some(empty.path()));
    assert_eq!(code, Some(2));
    assert!(
        err.contains("connector.json") && err.contains("not valid JSON"),
        "{err}"
    );

    let no_fixtures =
        variant(|m, _| m["streams"][1]["fixtures"] = json!("tests/fixtures/missing.json"));
    let (code, err) = run(&[], Some(no_fixtures.path()));
    assert_eq!(code, Some(2));
    assert!(
        err.contains("missing.json") && err.contains("fixtures"),
        "{err}"
    );

    let bad_style = variant(|m, _| m["streams"][0]["pagination"] = json!({"type": "scroll"}));
    let (code, err) = run(&[], Some(bad_style.path()));
    assert_eq!(code, Some(2));
    assert!(err.contains("scroll"), "{err}");

    let (code, err) = run(&["--only", "pagination.everything"], Some(&stripe()));
    assert_eq!(code, Some(2));
    assert!(err.contains("pagination.everything"), "{err}");

    let (code, _) = run(&[], Some(Path::new("/nonexistent/impl")));
    assert_eq!(code, Some(2));
}

// ---------------------------------------------------------------------------------------------
// Other pagination styles and auth types, made from the Stripe copy.

/// Every pagination style except plain cursor/last_record, placeholders in a path, api_key in a
/// header with a prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_styles_a() {
    let dir = variant(|m, _| {
        m["auth"] =
            json!({"type": "api_key", "in": "header", "name": "Authorization", "prefix": "Token "});
        let s = m["streams"].as_array_mut().unwrap();
        s[0]["path"] = json!("/v1/accounts/{account_id}/customers");
        s[0]["pagination"] = json!({"type": "cursor", "cursor_param": "page_token", "cursor_source": "body", "cursor_path": "meta.next_token", "size_param": "limit"});
        s[1]["pagination"] = json!({"type": "offset", "offset_param": "offset", "size_param": "limit", "total_path": "total_count"});
        s[2]["pagination"] = json!({"type": "page", "page_param": "page", "size_param": "per_page", "start_page": 0, "total_pages_path": "meta.pages"});
        s[2]["record_selector"] = json!("results");
        s[3]["pagination"] = json!({"type": "link_header", "size_param": "per_page"});
        s[3]["record_selector"] = json!("");
        s[4]["pagination"] =
            json!({"type": "next_url", "next_url_path": "links.next", "size_param": "limit"});
        s[4]["record_selector"] = json!("items.list");
    });
    let report = suite(dir.path(), &[]).await;
    assert_all_pass(&report, "styles a");
    assert_eq!(
        status_of(&report, "pagination.stops_on_last_cursor"),
        Status::Passed,
        "body cursor without has_more"
    );
    assert_eq!(
        status_of(&report, "pagination.stops_on_has_more_false"),
        Status::Skipped
    );
    assert_eq!(
        status_of(&report, "pagination.stops_on_empty_page"),
        Status::Passed
    );
    assert_eq!(status_of(&report, "auth.credentials_sent"), Status::Passed);
}

/// No pagination, a body cursor with has_more, offset and page without totals, a last_record
/// cursor without has_more, an iso8601 incremental stream, api_key in the query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_styles_b() {
    let dir = variant(|m, dir| {
        m["auth"] = json!({"type": "api_key", "in": "query", "name": "api_key"});
        let s = m["streams"].as_array_mut().unwrap();
        s[0]["pagination"] = json!({"type": "none"});
        s[0]["params"] = json!({"expand": "none"});
        s[1]["pagination"] = json!({"type": "cursor", "cursor_param": "cursor", "cursor_source": "body", "cursor_path": "next_cursor", "has_more_path": "has_more", "size_param": "limit"});
        s[2]["pagination"] =
            json!({"type": "offset", "offset_param": "skip", "size_param": "take"});
        s[3]["pagination"] = json!({"type": "page", "page_param": "p", "size_param": "n"});
        s[4]["pagination"] = json!({"type": "cursor", "cursor_param": "after", "cursor_source": "last_record", "cursor_path": "id", "size_param": "limit"});
        s[4]["incremental"]["format"] = json!("iso8601");
        let schema_path = dir.join(s[4]["schema"].as_str().unwrap());
        let mut schema = read_json(&schema_path);
        schema["properties"]["created"] = json!({"type": "string", "format": "date-time"});
        write_json(&schema_path, &schema);
    });
    let report = suite(dir.path(), &[]).await;
    assert_all_pass(&report, "styles b");
    assert_eq!(
        status_of(&report, "pagination.stops_on_has_more_false"),
        Status::Passed
    );
    assert_eq!(
        status_of(&report, "pagination.stops_on_last_cursor"),
        Status::Passed
    );
    assert_eq!(
        status_of(&report, "state.resume_rereads_nothing"),
        Status::Passed
    );
}

fn two_streams(m: &mut Value) {
    m["streams"].as_array_mut().unwrap().truncate(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_basic() {
    let dir = variant(|m, _| {
        two_streams(m);
        m["auth"] = json!({"type": "basic"});
    });
    let report = suite(dir.path(), &[]).await;
    assert_all_pass(&report, "basic");
    assert_eq!(status_of(&report, "auth.no_retry_on_401"), Status::Passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_oauth2_client_credentials() {
    let dir = variant(|m, _| {
        two_streams(m);
        m["auth"] = json!({"type": "oauth2", "grant_type": "client_credentials", "token_url": "/oauth/token"});
    });
    let report = suite(dir.path(), &[]).await;
    assert_all_pass(&report, "oauth2 client_credentials");
    assert_eq!(status_of(&report, "auth.credentials_sent"), Status::Passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_oauth2_refresh_token() {
    let dir = variant(|m, _| {
        two_streams(m);
        // implementation.schema.json spells the grant `flow`.
        m["auth"] =
            json!({"type": "oauth2", "flow": "refresh_token", "token_url": "/oauth2/refresh"});
    });
    let report = suite(dir.path(), &[]).await;
    assert_all_pass(&report, "oauth2 refresh_token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_none() {
    let dir = variant(|m, _| {
        two_streams(m);
        m["auth"] = json!({"type": "none"});
    });
    let report = suite(dir.path(), &[]).await;
    assert_all_pass(&report, "none");
    assert_eq!(status_of(&report, "auth.credentials_sent"), Status::Skipped);
    assert_eq!(status_of(&report, "auth.no_retry_on_401"), Status::Skipped);
    assert_eq!(status_of(&report, "auth.failed_code"), Status::Skipped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_connector_is_killed_and_reported() {
    let dir = variant(|m, dir| {
        std::fs::write(dir.join("hang.py"), "import time\ntime.sleep(60)\n").unwrap();
        m["run"]["command"] = json!(["python3", "hang.py"]);
    });
    let _slot = slots().acquire().await.unwrap();
    let opts = SuiteOptions {
        only: vec!["protocol.about".into()],
        wall_limit: Duration::from_secs(1),
        ..SuiteOptions::default()
    };
    let started = std::time::Instant::now();
    let report = spectest::run_suite(dir.path(), &opts).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let check = &report.implementations[0].checks[0];
    assert_eq!(check.status, Status::Failed);
    assert!(check.message.contains("hung"), "{}", check.message);
}

//! The two Stripe connectors, Python and TypeScript, are twins: run against one spec-test mock
//! (the data spec-test builds from their shared fixtures), they must emit the same records, per
//! stream and in the same order, the same SCHEMA messages and the same STATE messages, on a first
//! run and on a run resumed from a mid-stream bookmark. And the TypeScript one, untouched and
//! built by its own `run.build` step (`npm run setup`), must pass every spec-test check.
//!
//! The TypeScript connector is tested in a temporary copy (without `node_modules/` and `dist/`),
//! so nothing is installed or built inside the repository.

use connector_factory::spectest::manifest::LoadedImpl;
use connector_factory::spectest::mock_api::{MockServer, MockSetup, StreamData, TerminalMode};
use connector_factory::spectest::runner::{Mode, RunOutcome, RunRequest, run_connector};
use connector_factory::spectest::scenarios::{base_config, make_credentials, make_params};
use connector_factory::spectest::{self, Status, SuiteOptions};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const STRIPE_PY: &str = "registry/stripe/v1/connector-factory/python/default";
const STRIPE_TS: &str = "registry/stripe/v1/connector-factory/typescript/default";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The TypeScript connector's sources, without install or build output, in a temp folder.
fn typescript_copy() -> tempfile::TempDir {
    let from = root().join(STRIPE_TS);
    let tmp = tempfile::Builder::new()
        .prefix("stripe-ts-")
        .tempdir()
        .unwrap();
    let walker = walkdir::WalkDir::new(&from).into_iter().filter_entry(|e| {
        e.depth() != 1
            || !matches!(
                e.file_name().to_str(),
                Some("node_modules" | "dist" | "dist-test")
            )
    });
    for entry in walker {
        let entry = entry.unwrap();
        let target = tmp.path().join(entry.path().strip_prefix(&from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
    tmp
}

/// Load and build (the build waits on npm and tsc, so on a blocking thread).
async fn load(dir: &Path) -> LoadedImpl {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || spectest::load_implementation(&dir))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// What one sync wrote, split up for comparison.
#[derive(Debug, Default)]
struct Output {
    /// RECORD messages per stream, in order, without `time_extracted`.
    records: BTreeMap<String, Vec<Value>>,
    schemas: Vec<Value>,
    states: Vec<Value>,
    /// Stream names in the order their first message appeared.
    stream_order: Vec<String>,
}

fn parse(language: &str, run: &RunOutcome) -> Output {
    assert!(
        run.succeeded(),
        "{language} sync failed (exit {:?}, hung {}):\n{}",
        run.exit_code,
        run.hung,
        run.stderr.join("\n")
    );
    let mut out = Output::default();
    for line in &run.stdout {
        let mut msg: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{language}: stdout line is not JSON ({e}): {line}"));
        let kind = msg["type"].as_str().unwrap_or_default().to_string();
        if let Some(stream) = msg["stream"].as_str()
            && !out.stream_order.iter().any(|s| s == stream)
        {
            out.stream_order.push(stream.to_string());
        }
        match kind.as_str() {
            "RECORD" => {
                let obj = msg.as_object_mut().unwrap();
                assert!(
                    obj.remove("time_extracted").is_some(),
                    "{language}: a RECORD without time_extracted"
                );
                let stream = obj["stream"].as_str().unwrap().to_string();
                out.records
                    .entry(stream)
                    .or_default()
                    .push(obj["record"].clone());
            }
            "SCHEMA" => out.schemas.push(msg),
            "STATE" => out.states.push(msg["value"].clone()),
            other => panic!("{language}: unexpected message type {other:?}: {line}"),
        }
    }
    out
}

fn sync_request(label: &str, config: &Value, state: Option<Value>) -> RunRequest {
    RunRequest {
        label: label.to_string(),
        mode: Mode::Sync,
        config: Some(config.clone()),
        catalog: None,
        state,
        wall_limit: Duration::from_secs(60),
    }
}

/// The same requests, in the same order (method, path, query), per stream.
fn requests_by_stream(mock: &MockServer, from: usize) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in mock.requests().into_iter().skip(from) {
        let stream = r.stream.clone().unwrap_or_default();
        out.entry(stream)
            .or_default()
            .push(format!("{} {}?{}", r.method, r.path, r.query));
    }
    out
}

fn assert_same(what: &str, py: &Output, ts: &Output) {
    assert_eq!(
        py.records.keys().collect::<Vec<_>>(),
        ts.records.keys().collect::<Vec<_>>(),
        "{what}: streams with records"
    );
    for (stream, records) in &py.records {
        let theirs = &ts.records[stream];
        assert_eq!(
            records.len(),
            theirs.len(),
            "{what}: number of {stream} records"
        );
        for (i, (a, b)) in records.iter().zip(theirs).enumerate() {
            assert_eq!(
                a, b,
                "{what}: {stream} record #{i} differs (Python left, TypeScript right)"
            );
        }
    }
    assert_eq!(
        py.stream_order, ts.stream_order,
        "{what}: order of the streams"
    );
    assert_eq!(py.schemas, ts.schemas, "{what}: SCHEMA messages");
    assert_eq!(py.states, ts.states, "{what}: STATE messages");
    assert!(!py.states.is_empty(), "{what}: no STATE at all");
    assert_eq!(py.states.last(), ts.states.last(), "{what}: final STATE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stripe_python_and_typescript_emit_the_same_messages_and_typescript_passes_every_check() {
    let ts_copy = typescript_copy();
    let py = load(&root().join(STRIPE_PY)).await;
    let ts = load(ts_copy.path()).await;
    assert_eq!(
        (py.manifest.language.as_str(), ts.manifest.language.as_str()),
        ("python", "typescript")
    );

    // ---- one mock, the data spec-test would serve, built from either connector's fixtures
    let opts = SuiteOptions::default();
    let count = connector_factory::spectest::mock_api::record_count(opts.page_size);
    let params = make_params(&py);
    let data = |imp: &LoadedImpl| -> Vec<StreamData> {
        imp.streams
            .iter()
            .map(|s| StreamData::generate(s, &params, count))
            .collect()
    };
    let (py_data, ts_data) = (data(&py), data(&ts));
    assert_eq!(py_data.len(), ts_data.len());
    for (a, b) in py_data.iter().zip(&ts_data) {
        assert_eq!(
            (&a.name, &a.path, &a.records),
            (&b.name, &b.path, &b.records),
            "the mock data differs"
        );
    }
    let credentials = make_credentials(&py);
    let mock = MockServer::start(MockSetup {
        streams: py_data.clone(),
        auth: py.manifest.auth.clone(),
        credentials: credentials.clone(),
        access_token: "at_unused_for_bearer".into(),
        page_size: opts.page_size,
        faults: vec![],
        terminal: TerminalMode::Normal,
    })
    .await
    .unwrap();
    let names: Vec<String> = py.streams.iter().map(|s| s.spec.name.clone()).collect();
    let config = base_config(&mock.base_url(), &credentials, &params, &opts, &names);

    // ---- a first run of each
    let seen = mock.requests().len();
    let py_run = run_connector(
        &py.dir,
        &py.manifest.run.command,
        sync_request("python", &config, None),
    )
    .await;
    let py_requests = requests_by_stream(&mock, seen);
    let seen = mock.requests().len();
    let ts_run = run_connector(
        &ts.dir,
        &ts.manifest.run.command,
        sync_request("typescript", &config, None),
    )
    .await;
    let ts_requests = requests_by_stream(&mock, seen);
    let (py_out, ts_out) = (parse("Python", &py_run), parse("TypeScript", &ts_run));
    assert_same("first run", &py_out, &ts_out);
    assert_eq!(py_requests, ts_requests, "first run: the requests differ");
    // Everything the mock served was emitted (the start date is before every record).
    for s in &py_data {
        assert_eq!(
            py_out.records.get(&s.name).map_or(0, Vec::len),
            s.records.len(),
            "{}: records emitted",
            s.name
        );
    }
    let final_state = py_out.states.last().unwrap().clone();
    for s in &py_data {
        let last = s.records.last().unwrap();
        assert_eq!(
            final_state["bookmarks"][&s.name]["created"], last["created"],
            "{}: bookmark at the last record",
            s.name
        );
    }

    // ---- a run resumed from a bookmark in the middle of each stream
    let mut bookmarks = serde_json::Map::new();
    for s in &py_data {
        bookmarks.insert(
            s.name.clone(),
            json!({"created": s.records[s.records.len() / 2]["created"]}),
        );
    }
    let state = json!({"bookmarks": bookmarks});
    let seen = mock.requests().len();
    let py_run = run_connector(
        &py.dir,
        &py.manifest.run.command,
        sync_request("python", &config, Some(state.clone())),
    )
    .await;
    let py_requests = requests_by_stream(&mock, seen);
    let seen = mock.requests().len();
    let ts_run = run_connector(
        &ts.dir,
        &ts.manifest.run.command,
        sync_request("typescript", &config, Some(state)),
    )
    .await;
    let ts_requests = requests_by_stream(&mock, seen);
    let (py_resumed, ts_resumed) = (parse("Python", &py_run), parse("TypeScript", &ts_run));
    assert_same("resumed run", &py_resumed, &ts_resumed);
    assert_eq!(py_requests, ts_requests, "resumed run: the requests differ");
    for s in &py_data {
        let emitted = py_resumed.records.get(&s.name).map_or(0, Vec::len);
        assert_eq!(
            emitted,
            s.records.len() - s.records.len() / 2 - 1,
            "{}: records after the bookmark",
            s.name
        );
    }
    assert_eq!(
        py_resumed.states.last(),
        Some(&final_state),
        "a resumed run ends at the same bookmarks"
    );
    mock.shutdown().await;

    // ---- the untouched TypeScript connector passes the whole suite
    let report = spectest::run_implementation(
        &ts,
        &ts_copy.path().display().to_string(),
        &SuiteOptions::default(),
    )
    .await
    .unwrap();
    let failed: Vec<String> = report
        .checks
        .iter()
        .filter(|c| c.status != Status::Passed)
        .map(|c| format!("{} ({:?}): {}", c.id, c.status, c.message))
        .collect();
    assert_eq!(report.checks.len(), spectest::checks::CHECKS.len());
    assert!(
        failed.is_empty(),
        "the TypeScript Stripe connector did not pass every check:\n{}",
        failed.join("\n")
    );
}

//! The suite proves itself: deliberately broken copies of the Stripe connector (defined in
//! `tests/mutants/*.json` as textual edits) must each fail the check they target.
//!
//! Mutant file format:
//! `{"id", "description", "expect_fail": "<check id>", "also_fail": [ids], "only": [ids or categories],
//!   "edits": [{"file": "<path in the implementation>", "find": "<exact text>", "replace": "<text>"}]}`
//! Every occurrence of `find` is replaced; a `find` that is no longer present fails the test, so
//! a mutant never silently stops mutating anything.
#[path = "support/tree.rs"]
mod tree;
use tree::copy_tree;

use connector_factory::spectest::{self, Status, SuiteOptions};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const STRIPE: &str = "registry/stripe/v1/connector-factory/python/default";
/// Mutants checked at once (each runs its scenarios in parallel already).
const CONCURRENT_MUTANTS: usize = 3;

#[derive(Debug, Deserialize)]
struct Mutant {
    id: String,
    description: String,
    expect_fail: String,
    #[serde(default)]
    also_fail: Vec<String>,
    #[serde(default)]
    only: Vec<String>,
    edits: Vec<Edit>,
}

#[derive(Debug, Deserialize)]
struct Edit {
    file: String,
    find: String,
    replace: String,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load_mutants() -> Vec<Mutant> {
    let dir = root().join("tests/mutants");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().map(|x| x == "json").unwrap_or(false))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let m: Mutant = serde_json::from_str(&std::fs::read_to_string(p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert_eq!(
                Some(m.id.as_str()),
                p.file_stem().and_then(|s| s.to_str()),
                "{}: id must match the file name",
                p.display()
            );
            m
        })
        .collect()
}


/// Copies the Stripe connector and applies the mutant's edits; panics when a `find` is gone.
fn materialize(m: &Mutant) -> tempfile::TempDir {
    let tmp = tempfile::Builder::new()
        .prefix(&format!("mutant-{}-", m.id))
        .tempdir()
        .unwrap();
    copy_tree(&root().join(STRIPE), tmp.path());
    for (i, edit) in m.edits.iter().enumerate() {
        let path = tmp.path().join(&edit.file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("mutant {}: edit #{i}: cannot read {}: {e}", m.id, edit.file)
        });
        assert!(
            text.contains(&edit.find),
            "mutant {}: edit #{i}: the text to find is no longer in {} — update tests/mutants/{}.json.\nfind: {:?}",
            m.id,
            edit.file,
            m.id,
            edit.find
        );
        std::fs::write(&path, text.replace(&edit.find, &edit.replace)).unwrap();
    }
    tmp
}

#[test]
fn mutant_definitions_are_complete_and_still_apply() {
    let mutants = load_mutants();
    assert!(
        mutants.len() >= 12,
        "at least twelve mutants, found {}",
        mutants.len()
    );
    let ids: Vec<&str> = spectest::checks::CHECKS.iter().map(|c| c.id).collect();
    for m in &mutants {
        assert!(!m.description.is_empty());
        for id in std::iter::once(&m.expect_fail).chain(&m.also_fail) {
            assert!(
                ids.contains(&id.as_str()),
                "mutant {}: unknown check id {id}",
                m.id
            );
        }
        spectest::select_checks(&m.only).unwrap_or_else(|e| panic!("mutant {}: {e}", m.id));
        let selected: Vec<&str> = spectest::select_checks(&m.only)
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect();
        assert!(
            selected.contains(&m.expect_fail.as_str()),
            "mutant {}: --only does not include {}",
            m.id,
            m.expect_fail
        );
        assert!(!m.edits.is_empty(), "mutant {} edits nothing", m.id);
        drop(materialize(m));
    }
    // The failures the suite must be able to show, whatever else the mutants cover.
    for required in [
        "pagination.all_pages",
        "auth.no_retry_on_401",
        "retry.retry_after_seconds",
        "retry.backoff_growing",
        "security.no_secret_leak",
        "timeout.slow_response",
        "protocol.schema_before_record",
        "state.emitted",
        "rate_limit.rps_respected",
        "errors.malformed_json",
        "retry.budget_exhausted",
    ] {
        assert!(
            mutants.iter().any(|m| m.expect_fail == required),
            "no mutant targets {required}"
        );
    }
}

struct Outcome {
    id: String,
    failed: Vec<String>,
    missing: Vec<String>,
    seconds: f64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mutant_is_caught() {
    let mutants = load_mutants();
    let gate = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_MUTANTS));
    let mut set = tokio::task::JoinSet::new();
    for m in mutants {
        let gate = gate.clone();
        set.spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            let started = Instant::now();
            let dir = materialize(&m);
            let opts = SuiteOptions {
                only: m.only.clone(),
                wall_limit: Duration::from_secs(10),
                ..SuiteOptions::default()
            };
            let report = spectest::run_suite(dir.path(), &opts)
                .await
                .unwrap_or_else(|e| panic!("mutant {}: {e:#}", m.id));
            let checks = &report.implementations[0].checks;
            let failed: Vec<String> = checks
                .iter()
                .filter(|c| c.status == Status::Failed)
                .map(|c| c.id.clone())
                .collect();
            let missing: Vec<String> = std::iter::once(&m.expect_fail)
                .chain(&m.also_fail)
                .filter(|id| !failed.contains(id))
                .cloned()
                .collect();
            Outcome {
                id: m.id,
                failed,
                missing,
                seconds: started.elapsed().as_secs_f64(),
            }
        });
    }
    let mut outcomes = vec![];
    while let Some(done) = set.join_next().await {
        outcomes.push(done.expect("mutant task"));
    }
    outcomes.sort_by(|a, b| a.id.cmp(&b.id));
    let mut survivors = vec![];
    for o in &outcomes {
        println!(
            "mutant {:<36} {:>5.1} s  failed: {}",
            o.id,
            o.seconds,
            o.failed.join(", ")
        );
        if !o.missing.is_empty() {
            survivors.push(format!("{} (not failed: {})", o.id, o.missing.join(", ")));
        }
    }
    assert!(
        survivors.is_empty(),
        "mutants not caught: {}",
        survivors.join("; ")
    );
}

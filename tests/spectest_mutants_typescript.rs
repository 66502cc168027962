//! The mutants of `tests/spectest_mutants.rs`, ported to the TypeScript Stripe connector: each
//! `tests/mutants/typescript/<id>.json` breaks the TypeScript runtime or connector the way its
//! Python twin `tests/mutants/<id>.json` breaks the Python one, and the suite must fail the same
//! check ids. Same file format as the Python mutants; every occurrence of `find` is replaced, and
//! a `find` that is no longer present fails the test.
//!
//! Building: the connector's own build step (`npm run setup`) runs `npm ci` and then `tsc`. Here
//! `npm ci` runs once, in a shared folder; every mutant copy (made without `node_modules/` and
//! `dist/`) gets a symlink to that `node_modules/` and a `setup` script that only compiles, so the
//! build step spec-test runs before the scenarios costs one `tsc` per mutant. An untouched copy
//! built the same way must pass every check first, so a broken harness cannot pass for caught
//! mutants.

use connector_factory::spectest::{self, Status, SuiteOptions};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const STRIPE_TS: &str = "registry/stripe/v1/connector-factory/typescript/default";
/// Mutants checked at once (each runs its scenarios in parallel already, and compiles first).
const CONCURRENT_MUTANTS: usize = 3;
/// Install and build output, never copied from the registry.
const NOT_COPIED: [&str; 3] = ["node_modules", "dist", "dist-test"];

#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
struct Edit {
    file: String,
    find: String,
    replace: String,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The mutants defined in `dir` (not its subfolders), sorted by id.
fn load_mutants(dir: &Path) -> Vec<Mutant> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
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

fn python_mutants() -> Vec<Mutant> {
    load_mutants(&root().join("tests/mutants"))
}

fn typescript_mutants() -> Vec<Mutant> {
    load_mutants(&root().join("tests/mutants/typescript"))
}

/// Copies the connector's sources (no install or build output) into `to`.
fn copy_sources(to: &Path) {
    let from = root().join(STRIPE_TS);
    let walker = walkdir::WalkDir::new(&from)
        .into_iter()
        .filter_entry(|e| e.depth() != 1 || !NOT_COPIED.iter().any(|n| e.file_name() == *n));
    for entry in walker {
        let entry = entry.unwrap();
        let target = to.join(entry.path().strip_prefix(&from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Applies the mutant's edits in `dir`; panics when a `find` text is gone.
fn apply_edits(m: &Mutant, dir: &Path) {
    for (i, edit) in m.edits.iter().enumerate() {
        let path = dir.join(&edit.file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "TypeScript mutant {}: edit #{i}: cannot read {}: {e}",
                m.id, edit.file
            )
        });
        assert!(
            text.contains(&edit.find),
            "TypeScript mutant {}: edit #{i}: the text to find is no longer in {} — update tests/mutants/typescript/{}.json.\nfind: {:?}",
            m.id,
            edit.file,
            m.id,
            edit.find
        );
        std::fs::write(&path, text.replace(&edit.find, &edit.replace)).unwrap();
    }
}

/// A copy of the connector with the dependencies installed once (`npm ci`), shared by all copies.
struct SharedInstall {
    dir: tempfile::TempDir,
}

impl SharedInstall {
    fn prepare() -> SharedInstall {
        let dir = tempfile::Builder::new()
            .prefix("ts-mutants-install-")
            .tempdir()
            .unwrap();
        copy_sources(dir.path());
        let out = Command::new("npm")
            .args(["ci", "--prefer-offline", "--no-audit", "--no-fund"])
            .current_dir(dir.path())
            .env("npm_config_update_notifier", "false")
            .output()
            .unwrap_or_else(|e| {
                panic!("npm could not start ({e}); Node.js 20+ and npm must be installed")
            });
        assert!(
            out.status.success(),
            "npm ci failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            dir.path().join("node_modules/.bin/tsc").exists(),
            "npm ci installed no tsc"
        );
        SharedInstall { dir }
    }

    /// A fresh copy of the connector using the shared `node_modules/`, its `setup` script reduced
    /// to the compile step (a `npm ci` there would replace the shared folder), with `m` applied.
    fn copy(&self, m: Option<&Mutant>) -> tempfile::TempDir {
        let label = m.map_or("untouched", |m| m.id.as_str());
        let tmp = tempfile::Builder::new()
            .prefix(&format!("ts-mutant-{label}-"))
            .tempdir()
            .unwrap();
        copy_sources(tmp.path());
        std::os::unix::fs::symlink(
            self.dir.path().join("node_modules"),
            tmp.path().join("node_modules"),
        )
        .unwrap();
        let package = tmp.path().join("package.json");
        let mut pkg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&package).unwrap()).unwrap();
        let setup = pkg["scripts"]["setup"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            setup.contains("npm ci") && pkg["scripts"]["build"].is_string(),
            "package.json: expected a setup script that installs and then builds, found {setup:?}"
        );
        // The build script itself (tsc), not `npm run build`: one npm start-up less per copy.
        pkg["scripts"]["setup"] = pkg["scripts"]["build"].clone();
        std::fs::write(&package, serde_json::to_string_pretty(&pkg).unwrap() + "\n").unwrap();
        if let Some(m) = m {
            apply_edits(m, tmp.path());
        }
        tmp
    }
}

#[test]
fn every_python_mutant_has_a_typescript_twin_failing_the_same_checks() {
    let python = python_mutants();
    let typescript = typescript_mutants();
    let py_ids: BTreeSet<&str> = python.iter().map(|m| m.id.as_str()).collect();
    let ts_ids: BTreeSet<&str> = typescript.iter().map(|m| m.id.as_str()).collect();
    let missing: Vec<&&str> = py_ids.difference(&ts_ids).collect();
    let orphans: Vec<&&str> = ts_ids.difference(&py_ids).collect();
    assert!(
        missing.is_empty(),
        "Python mutants without a TypeScript twin in tests/mutants/typescript/: {missing:?}"
    );
    assert!(
        orphans.is_empty(),
        "TypeScript mutants without a Python twin: {orphans:?}"
    );
    let known: Vec<&str> = spectest::checks::CHECKS.iter().map(|c| c.id).collect();
    for ts in &typescript {
        let py = python.iter().find(|p| p.id == ts.id).unwrap();
        assert_eq!(
            ts.expect_fail, py.expect_fail,
            "mutant {}: the twins must target the same check",
            ts.id
        );
        assert_eq!(
            ts.also_fail, py.also_fail,
            "mutant {}: the twins must fail the same extra checks",
            ts.id
        );
        assert!(
            !ts.description.is_empty() && !ts.edits.is_empty(),
            "mutant {} is empty",
            ts.id
        );
        for id in std::iter::once(&ts.expect_fail).chain(&ts.also_fail) {
            assert!(
                known.contains(&id.as_str()),
                "mutant {}: unknown check id {id}",
                ts.id
            );
        }
        let selected: Vec<&str> = spectest::select_checks(&ts.only)
            .unwrap_or_else(|e| panic!("mutant {}: {e}", ts.id))
            .iter()
            .map(|c| c.id)
            .collect();
        for id in std::iter::once(&ts.expect_fail).chain(&ts.also_fail) {
            assert!(
                selected.contains(&id.as_str()),
                "mutant {}: --only does not include {id}",
                ts.id
            );
        }
        for edit in &ts.edits {
            assert!(
                !edit.file.ends_with(".py") && !edit.file.starts_with("connector_runtime/"),
                "mutant {}: {} is a Python file",
                ts.id,
                edit.file
            );
        }
    }
}

#[test]
fn typescript_mutant_edits_still_apply() {
    for m in typescript_mutants() {
        let tmp = tempfile::tempdir().unwrap();
        copy_sources(tmp.path());
        apply_edits(&m, tmp.path());
    }
}

struct Outcome {
    id: String,
    failed: Vec<String>,
    /// Checks that should have failed but did not.
    missing: Vec<String>,
    seconds: f64,
}

/// Build (on a blocking thread: the build waits for npm and tsc) and run the selected checks.
/// A copy that does not build is an error: the mutant no longer compiles.
async fn check(
    dir: tempfile::TempDir,
    only: Vec<String>,
    label: String,
) -> Result<Vec<spectest::CheckResult>, String> {
    let path = dir.path().to_path_buf();
    let imp = tokio::task::spawn_blocking(move || spectest::load_implementation(&path))
        .await
        .expect("build task")
        .map_err(|e| format!("{label}: the copy did not build or load: {e}"))?;
    let opts = SuiteOptions {
        only,
        wall_limit: Duration::from_secs(10),
        ..SuiteOptions::default()
    };
    let report = spectest::run_implementation(&imp, &label, &opts)
        .await
        .map_err(|e| format!("{label}: {e:#}"))?;
    drop(dir);
    Ok(report.checks)
}

fn failed_ids(checks: &[spectest::CheckResult]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| c.status == Status::Failed)
        .map(|c| c.id.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_typescript_mutant_is_caught() {
    let started = Instant::now();
    let mutants = typescript_mutants();
    let install = Arc::new(
        tokio::task::spawn_blocking(SharedInstall::prepare)
            .await
            .unwrap(),
    );
    println!("npm ci (once): {:.1} s", started.elapsed().as_secs_f64());

    // The control, alone (its timing checks should not share the machine with mutants): an
    // untouched copy built the same way must pass every check.
    let t = Instant::now();
    let checks = check(
        install.copy(None),
        vec![],
        "the untouched TypeScript connector".into(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        checks.len(),
        spectest::checks::CHECKS.len(),
        "the untouched copy ran every check"
    );
    let failed = failed_ids(&checks);
    println!(
        "untouched copy {:>5.1} s  failed: {}",
        t.elapsed().as_secs_f64(),
        failed.join(", ")
    );
    assert!(
        failed.is_empty(),
        "the untouched TypeScript connector, built like the mutants, failed: {failed:?}"
    );

    let gate = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_MUTANTS));
    let mut set = tokio::task::JoinSet::new();
    for m in mutants {
        let (gate, install) = (gate.clone(), install.clone());
        set.spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            let t = Instant::now();
            let dir = install.copy(Some(&m));
            let (failed, missing) =
                match check(dir, m.only.clone(), format!("TypeScript mutant {}", m.id)).await {
                    Ok(checks) => {
                        let failed = failed_ids(&checks);
                        let missing = std::iter::once(&m.expect_fail)
                            .chain(&m.also_fail)
                            .filter(|id| !failed.contains(id))
                            .cloned()
                            .collect();
                        (failed, missing)
                    }
                    Err(e) => (vec![], vec![e]),
                };
            Outcome {
                id: m.id,
                failed,
                missing,
                seconds: t.elapsed().as_secs_f64(),
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
    println!(
        "{} TypeScript mutants, {:.1} s in all",
        outcomes.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        survivors.is_empty(),
        "TypeScript mutants not caught: {}",
        survivors.join("; ")
    );
}

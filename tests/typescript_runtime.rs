//! The TypeScript scaffold: its runtime's own unit tests (`node:test`, run with `npm test`) as part
//! of `cargo test`, plus the checks that keep the shipped scaffold JSON and the TypeScript Stripe
//! connector in step with the template folder.
//!
//! The unit tests run in a temporary folder rendered from the template (so nothing is built or
//! installed inside the repository): `npm ci --prefer-offline --no-audit --no-fund`, then `npm test`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TEMPLATE_ROOT: &str = "registry/_scaffold/typescript";
const TEMPLATE_IMPL: &str = "registry/_scaffold/typescript/{connector}/{version}/{author}/typescript/{implementation}";
const STRIPE_TS: &str = "registry/stripe/v1/connector-factory/typescript/default";
const STRIPE_PY: &str = "registry/stripe/v1/connector-factory/python/default";
/// The suite has about 210 tests; far fewer means files were not found or not run.
const MIN_TESTS: u64 = 180;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn factory(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_connector-factory"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run connector-factory")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Every file under `dir`, as paths relative to it, sorted; build and install output skipped.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_entry(|e| !matches!(e.file_name().to_str(), Some("node_modules" | "dist" | "dist-test")))
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().strip_prefix(dir).unwrap().to_path_buf())
        .collect();
    out.sort();
    out
}

/// Render the template folder (packed fresh, so edits are tested before the JSON is regenerated)
/// with the given variables into `out`; returns the implementation folder.
fn render(out: &Path, connector: &str, version: &str, author: &str) -> PathBuf {
    let packed = out.join("typescript-scaffold.json");
    let o = factory(&["scaffold", "--pack", TEMPLATE_ROOT, "--write", packed.to_str().unwrap()]);
    assert!(o.status.success(), "pack: {}", text(&o));
    let tree = out.join("tree");
    let o = factory(&[
        "scaffold", packed.to_str().unwrap(),
        "--var", &format!("connector={connector}"), "--var", &format!("version={version}"),
        "--var", &format!("author={author}"), "--out", tree.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "scaffold: {}", text(&o));
    tree.join(connector).join(version).join(author).join("typescript").join("default")
}

fn npm(dir: &Path, args: &[&str]) -> Output {
    Command::new("npm")
        .args(args)
        .current_dir(dir)
        .env("npm_config_update_notifier", "false")
        .env("npm_config_fund", "false")
        .env("npm_config_audit", "false")
        .output()
        .unwrap_or_else(|e| panic!("npm {args:?} could not start ({e}); Node.js 20+ and npm must be installed"))
}

/// "# tests 193" (TAP reporter) or "ℹ tests 193" (spec reporter) -> 193.
fn summary_count(output: &str, key: &str) -> Option<u64> {
    output.lines().rev().find_map(|line| {
        let line = line.trim().trim_start_matches('#').trim_start_matches('ℹ').trim();
        let mut words = line.split_whitespace();
        if words.next() == Some(key) { words.next().and_then(|n| n.parse().ok()) } else { None }
    })
}

#[test]
fn shipped_typescript_scaffold_matches_its_template_folder() {
    let o = factory(&["scaffold", "--pack", TEMPLATE_ROOT, "--check", "registry/_scaffold/typescript.json"]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn template_code_has_no_placeholders_and_the_lockfile_only_names_the_npm_registry() {
    let dir = repo().join(TEMPLATE_IMPL);
    let placeholders = ["{connector}", "{version}", "{author}", "{implementation}"];
    let mut code_files = 0;
    for rel in files_under(&dir) {
        let body = std::fs::read_to_string(dir.join(&rel)).unwrap();
        assert!(!body.is_empty(), "{} is empty", rel.display());
        let is_code = rel.extension().is_some_and(|e| e == "ts") || rel.starts_with("tsconfig.json") || rel.starts_with(".gitignore");
        if is_code {
            code_files += 1;
            for p in placeholders {
                assert!(!body.contains(p), "{} contains {p}, which the scaffold would replace", rel.display());
            }
        }
    }
    assert!(code_files >= 20, "expected the runtime and its tests, found {code_files} code files");

    let lock: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("package-lock.json")).unwrap()).unwrap();
    let packages = lock["packages"].as_object().expect("a lockfile v3 packages map");
    for (name, entry) in packages {
        if let Some(url) = entry.get("resolved").and_then(|v| v.as_str()) {
            assert!(url.starts_with("https://registry.npmjs.org/"), "{name} resolves to {url}");
        }
    }
    let package: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("package.json")).unwrap()).unwrap();
    assert!(package.get("dependencies").is_none(), "the runtime must have no runtime dependencies");
    for (name, version) in package["devDependencies"].as_object().unwrap() {
        let v = version.as_str().unwrap();
        assert!(v.chars().all(|c| c.is_ascii_digit() || c == '.'), "{name} must be pinned exactly, not {v}");
    }
}

/// The TypeScript Stripe connector was made with this scaffold: everything the scaffold writes,
/// except the files a connector fills in itself, must stay byte-identical (a runtime fix lands in
/// both). Its streams, schemas and fixtures are the Python Stripe connector's.
#[test]
fn stripe_twin_matches_the_scaffold_and_the_python_connector() {
    let tmp = tempfile::tempdir().unwrap();
    let made = render(tmp.path(), "stripe", "v1", "connector-factory");
    let shipped = repo().join(STRIPE_TS);
    let own = [Path::new("connector.json"), Path::new("README.md")];
    let mut compared = 0;
    for rel in files_under(&made) {
        let theirs = std::fs::read(shipped.join(&rel)).unwrap_or_else(|_| panic!("{} is missing", shipped.join(&rel).display()));
        if own.contains(&rel.as_path()) {
            continue;
        }
        assert!(std::fs::read(made.join(&rel)).unwrap() == theirs, "{} differs from the scaffold's copy", shipped.join(&rel).display());
        compared += 1;
    }
    assert!(compared >= 30, "the scaffold should carry the runtime and its tests, compared {compared} files");

    let python = repo().join(STRIPE_PY);
    for sub in ["schemas", "tests/fixtures"] {
        let names = files_under(&python.join(sub));
        assert!(!names.is_empty());
        assert_eq!(names, files_under(&shipped.join(sub)), "{sub}: the same files as the Python connector");
        for rel in names {
            assert!(
                std::fs::read(python.join(sub).join(&rel)).unwrap() == std::fs::read(shipped.join(sub).join(&rel)).unwrap(),
                "{sub}/{} differs from the Python connector's", rel.display()
            );
        }
    }
    let read = |p: &Path| -> serde_json::Value { serde_json::from_str(&std::fs::read_to_string(p.join("connector.json")).unwrap()).unwrap() };
    let (mut py, mut ts) = (read(&python), read(&shipped));
    assert_eq!(ts["language"], "typescript");
    assert_eq!(ts["run"], serde_json::json!({"command": ["node", "dist/main.js"], "build": ["npm", "run", "setup"]}));
    for m in [&mut py, &mut ts] {
        let o = m.as_object_mut().unwrap();
        o.remove("language");
        o.remove("run");
    }
    assert_eq!(py, ts, "the manifests differ beyond language and run");
}

#[test]
fn typescript_runtime_unit_tests_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let impl_dir = render(tmp.path(), "demo-api", "v2", "someone");

    let o = npm(&impl_dir, &["ci", "--prefer-offline", "--no-audit", "--no-fund"]);
    assert!(o.status.success(), "npm ci failed:\n{}", text(&o));

    let o = npm(&impl_dir, &["test"]);
    let out = text(&o);
    // The runner's report; shown so that a failure is readable from `cargo test` output.
    eprintln!("{}", out.lines().filter(|l| !l.trim_start().starts_with("duration_ms")).collect::<Vec<_>>().join("\n"));
    assert!(o.status.success(), "the TypeScript runtime's unit tests failed");
    let tests = summary_count(&out, "tests").unwrap_or(0);
    let passed = summary_count(&out, "pass").unwrap_or(0);
    let failed = summary_count(&out, "fail").unwrap_or(u64::MAX);
    assert_eq!(failed, 0, "node's test runner reported failures");
    assert!(tests >= MIN_TESTS, "expected the full runtime suite, but node's test runner ran only {tests} tests");
    assert_eq!(passed, tests, "{passed} of {tests} tests passed");

    // The filled-in scaffold builds and answers --about with its own name.
    let o = npm(&impl_dir, &["run", "build"]);
    assert!(o.status.success(), "npm run build failed:\n{}", text(&o));
    let o = Command::new("node").args(["dist/main.js", "--about"]).current_dir(&impl_dir).output().expect("run node");
    assert!(o.status.success(), "{}", text(&o));
    let about: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(about["name"], "demo-api");
    assert_eq!(about["version"], "v2");
    assert_eq!(about["language"], "typescript");
}

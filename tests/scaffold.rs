//! The scaffold interpreter, driven through the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_connector-factory"))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).current_dir(repo()).output().expect("binary runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A scaffold written for this test: nested dirs, an empty dir, a file without a template,
/// placeholders in names, braces that are not placeholders, and an undeclared placeholder.
const SAMPLE: &str = r##"{
  "$schema": "https://example.invalid/scaffold.schema.json",
  "scaffold": "sample",
  "version": "9.9.9",
  "variables": {
    "name": {"description": "Kebab-case name.", "example": "acme", "pattern": "^[a-z][a-z0-9-]*$"},
    "pkg": {"description": "Package name.", "example": "acme_pkg", "pattern": "^[a-z_][a-z0-9_]*$"},
    "flavour": {"description": "Optional flavour.", "pattern": "^[a-z]+$", "default": "plain"}
  },
  "structure": [
    {"type": "dir", "name": "{name}", "children": [
      {"type": "file", "name": "README.md", "template": "# {name}\n\nFlavour: {flavour}. Keep {unknown} and {not a var} and {}.\n"},
      {"type": "dir", "name": "src", "children": [
        {"type": "dir", "name": "{pkg}", "children": [
          {"type": "file", "name": "__init__.py"},
          {"type": "file", "name": "core.py", "template": "D = {'k': 1}\nprint(f\"{D['k']} {name}\")\n"}
        ]}
      ]},
      {"type": "dir", "name": "assets", "children": []},
      {"type": "file", "name": "{name}.json", "template": "{\n  \"id\": \"{name}\",\n  \"pkg\": \"{pkg}\"\n}\n"}
    ]}
  ]
}"##;

fn write_sample(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("sample.json");
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn reproduces_a_tree_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_sample(tmp.path(), SAMPLE);
    let out = tmp.path().join("out");
    let o = run(&["scaffold", file.to_str().unwrap(), "--var", "name=acme", "--var", "pkg=acme_pkg", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));

    let expect = [
        ("acme/README.md", "# acme\n\nFlavour: plain. Keep {unknown} and {not a var} and {}.\n"),
        ("acme/src/acme_pkg/__init__.py", ""),
        ("acme/src/acme_pkg/core.py", "D = {'k': 1}\nprint(f\"{D['k']} acme\")\n"),
        ("acme/acme.json", "{\n  \"id\": \"acme\",\n  \"pkg\": \"acme_pkg\"\n}\n"),
    ];
    for (rel, want) in expect {
        let got = std::fs::read(out.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(String::from_utf8(got).unwrap(), want, "{rel}");
    }
    assert!(out.join("acme/assets").is_dir(), "empty dirs are created");
    let files = walkdir::WalkDir::new(&out).into_iter().filter_map(Result::ok).filter(|e| e.file_type().is_file()).count();
    assert_eq!(files, 4, "nothing extra is written");
    assert!(text(&o).contains("4 files"), "reports what it created: {}", text(&o));
}

#[test]
fn json_report_lists_created_files() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_sample(tmp.path(), SAMPLE);
    let out = tmp.path().join("out");
    let o = run(&["scaffold", file.to_str().unwrap(), "--var", "name=acme", "--var", "pkg=p", "--out", out.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let created: Vec<&str> = report["created_files"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(created.contains(&"acme/src/p/core.py"), "{created:?}");
}

#[test]
fn refuses_bad_and_missing_variables_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_sample(tmp.path(), SAMPLE);
    let out = tmp.path().join("out");
    let f = file.to_str().unwrap();
    let o = run(&["scaffold", f, "--var", "name=Not Kebab", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let msg = text(&o);
    assert!(msg.contains("variable `name`") && msg.contains("^[a-z][a-z0-9-]*$"), "{msg}");
    assert!(msg.contains("missing variable `pkg`") && msg.contains("acme_pkg"), "names the missing one and its example: {msg}");
    assert!(!out.exists(), "nothing written on refusal");

    let o = run(&["scaffold", f, "--var", "name=a", "--var", "pkg=p", "--var", "colour=red", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("unknown variable `colour`"), "{}", text(&o));

    let o = run(&["scaffold", f, "--var", "nameacme", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("NAME=VALUE"), "{}", text(&o));
}

#[test]
fn refuses_path_escapes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let cases = [
        (r#"{"variables":{},"structure":[{"type":"file","name":"../evil.txt","template":"x"}]}"#, ".."),
        (r#"{"variables":{},"structure":[{"type":"dir","name":"a","children":[{"type":"file","name":"../../evil.txt"}]}]}"#, ".."),
        (r#"{"variables":{},"structure":[{"type":"file","name":"/tmp/evil.txt","template":"x"}]}"#, "absolute"),
        // A value without a pattern must not smuggle `..` in through a placeholder.
        (r#"{"variables":{"d":{}},"structure":[{"type":"file","name":"{d}/x.txt","template":"x"}]}"#, ".."),
    ];
    for (i, (body, word)) in cases.iter().enumerate() {
        let file = tmp.path().join(format!("s{i}.json"));
        std::fs::write(&file, body).unwrap();
        let o = run(&["scaffold", file.to_str().unwrap(), "--var", "d=../..", "--out", out.to_str().unwrap()]);
        let o = if text(&o).contains("unknown variable `d`") {
            run(&["scaffold", file.to_str().unwrap(), "--out", out.to_str().unwrap()])
        } else {
            o
        };
        assert_eq!(o.status.code(), Some(2), "case {i}: {}", text(&o));
        assert!(text(&o).contains(word), "case {i} says why: {}", text(&o));
        assert!(text(&o).contains("structure["), "case {i} says where: {}", text(&o));
    }
    assert!(!tmp.path().join("evil.txt").exists() && !out.exists());
}

#[cfg(unix)]
#[test]
fn refuses_to_write_through_a_symlink() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, out.join("acme")).unwrap();
    let file = write_sample(tmp.path(), SAMPLE);
    let o = run(&["scaffold", file.to_str().unwrap(), "--var", "name=acme", "--var", "pkg=p", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("symbolic link"), "{}", text(&o));
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[test]
fn refuses_to_overwrite_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_sample(tmp.path(), SAMPLE);
    let out = tmp.path().join("out");
    let args = |force: bool| {
        let mut a = vec!["scaffold".to_string(), file.display().to_string(), "--var".into(), "name=acme".into(), "--var".into(), "pkg=p".into(), "--out".into(), out.display().to_string()];
        if force {
            a.push("--force".into());
        }
        a
    };
    let first = bin().args(args(false)).output().unwrap();
    assert!(first.status.success());
    std::fs::write(out.join("acme/README.md"), "edited by a person").unwrap();
    let second = bin().args(args(false)).output().unwrap();
    assert_eq!(second.status.code(), Some(2));
    assert!(text(&second).contains("README.md") && text(&second).contains("--force"), "{}", text(&second));
    assert_eq!(std::fs::read_to_string(out.join("acme/README.md")).unwrap(), "edited by a person", "nothing lost");
    let forced = bin().args(args(true)).output().unwrap();
    assert!(forced.status.success(), "{}", text(&forced));
    assert!(text(&forced).contains("replaced"), "{}", text(&forced));
    assert!(std::fs::read_to_string(out.join("acme/README.md")).unwrap().starts_with("# acme"));
}

#[test]
fn malformed_scaffold_points_at_the_node() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.json");
    std::fs::write(&file, r#"{"variables":{},"structure":[{"type":"dir","name":"a","children":[{"type":"link","name":"x"}]}]}"#).unwrap();
    let o = run(&["scaffold", file.to_str().unwrap(), "--out", tmp.path().join("o").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("structure[0].children[0]"), "{}", text(&o));
}

/// The shipped scaffold files are generated from their template folders; they must not drift.
#[test]
fn shipped_scaffolds_match_their_template_folders() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repo().join("registry/_scaffold")).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_dir() {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let o = run(&["scaffold", "--pack", &format!("registry/_scaffold/{name}"), "--check", &format!("registry/_scaffold/{name}.json")]);
        assert!(o.status.success(), "{name}: {}", text(&o));
        checked += 1;
    }
    assert!(checked >= 3, "meta, python and typescript template folders, found {checked}");
    // ...and the check really compares: a changed copy is reported.
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("meta.json");
    let mut body = std::fs::read_to_string(repo().join("registry/_scaffold/meta.json")).unwrap();
    body = body.replace("MIT", "Apache-2.0");
    std::fs::write(&copy, body).unwrap();
    let o = run(&["scaffold", "--pack", "registry/_scaffold/meta", "--check", copy.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("out of date"));
}

/// Every shipped scaffold is itself valid against registry/_schemas/scaffold.schema.json.
#[test]
fn shipped_scaffolds_follow_the_scaffold_schema() {
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(repo().join("registry/_schemas/scaffold.schema.json")).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for entry in std::fs::read_dir(repo().join("registry/_scaffold")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let errors: Vec<String> = validator.iter_errors(&doc).map(|e| format!("{}: {e}", e.instance_path())).collect();
            assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        }
    }
    // The schema is not vacuous: a node of an unknown type is rejected.
    let bad = serde_json::json!({"variables": {}, "structure": [{"type": "link", "name": "x"}]});
    assert!(!validator.is_valid(&bad));
}

/// The first connector was made with the python scaffold: its copied-in runtime and entry point
/// must stay byte-identical to what the scaffold writes today (a runtime fix lands in both).
#[test]
fn first_connector_runtime_matches_the_python_scaffold() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(&[
        "scaffold", "registry/_scaffold/python.json",
        "--var", "connector=stripe", "--var", "version=v1", "--var", "author=connector-factory",
        "--out", tmp.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let rel = Path::new("stripe/v1/connector-factory/python/default");
    let made = tmp.path().join(rel);
    let shipped = repo().join("registry").join(rel);
    let mut compared = 0;
    for entry in walkdir::WalkDir::new(made.join("connector_runtime")).into_iter().map(Result::unwrap) {
        if entry.file_type().is_file() {
            let inside = entry.path().strip_prefix(&made).unwrap();
            let a = std::fs::read(entry.path()).unwrap();
            let b = std::fs::read(shipped.join(inside)).unwrap_or_default();
            assert!(a == b, "{} differs from the scaffold's copy", shipped.join(inside).display());
            compared += 1;
        }
    }
    assert_eq!(std::fs::read(made.join("main.py")).unwrap(), std::fs::read(shipped.join("main.py")).unwrap());
    assert!(compared >= 5, "the scaffold should carry the runtime package, compared {compared} files");
}

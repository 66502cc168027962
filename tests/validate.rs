//! `connector-factory validate` against the first real connector and planted defects in copies
//! of it. Each defect must be found, in the right file, at the right JSON pointer.

#[path = "support/tree.rs"]
mod tree;
use tree::copy_tree;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

const IMPL: &str = "stripe/v1/connector-factory/python/default";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A throwaway registry holding the schemas, scaffolds and a copy of the Stripe connector.
struct Copy {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Copy {
    fn new() -> Copy {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("registry");
        for sub in ["_schemas", "_scaffold", "stripe"] {
            copy_tree(&repo().join("registry").join(sub), &root.join(sub));
        }
        Copy { _tmp: tmp, root }
    }
    fn impl_dir(&self) -> PathBuf {
        self.root.join(IMPL)
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.impl_dir().join(rel)
    }
    fn edit_json(&self, file: &Path, f: impl FnOnce(&mut Value)) {
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(file, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    }
    fn manifest(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.path("connector.json")).unwrap()).unwrap()
    }
    /// Path (relative to the implementation) of the first stream's schema / fixtures.
    fn first(&self, key: &str) -> PathBuf {
        self.path(self.manifest()["streams"][0][key].as_str().unwrap())
    }
}


fn validate(dir: &Path) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_connector-factory"))
        .args(["validate", "--json"])
        .arg(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), json, stderr)
}

fn findings(report: &Value) -> Vec<Value> {
    report["implementations"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| i["findings"].as_array().cloned().unwrap_or_default())
        .filter(|f| f["severity"] == "error")
        .collect()
}

#[test]
fn the_first_connector_is_valid() {
    let (code, report, stderr) = validate(&repo().join("registry").join(IMPL));
    assert_eq!(code, 0, "{report:#} {stderr}");
    assert!(findings(&report).is_empty(), "{report:#}");
    // ...and so is an untouched copy in another registry (the planted tests below start from it).
    let copy = Copy::new();
    let (code, report, _) = validate(&copy.impl_dir());
    assert_eq!(code, 0, "{report:#}");
}

/// Plant one defect in a fresh copy and check that exactly the expected finding shows up.
fn expect_defect(plant: impl FnOnce(&Copy), rule: &str, file_suffix: &str, pointer: &str) {
    let copy = Copy::new();
    plant(&copy);
    let (code, report, stderr) = validate(&copy.impl_dir());
    assert_eq!(code, 1, "a planted defect must give exit code 1 ({rule}): {report:#} {stderr}");
    let found = findings(&report);
    let hit = found.iter().any(|f| {
        f["rule"] == rule && f["file"].as_str().unwrap_or("").ends_with(file_suffix) && f["pointer"] == pointer
    });
    assert!(hit, "expected {rule} in *{file_suffix} at {pointer:?}, got:\n{}", serde_json::to_string_pretty(&found).unwrap());
    for f in &found {
        assert!(!f["message"].as_str().unwrap_or("").is_empty(), "every finding says what is wrong: {f}");
    }
}

#[test]
fn finds_a_primary_key_missing_from_the_schema() {
    expect_defect(|c| c.edit_json(&c.path("connector.json"), |m| m["streams"][0]["primary_key"] = json!(["no_such_field"])), "primary_key.missing", "connector.json", "/streams/0/primary_key/0");
}

#[test]
fn finds_a_stream_without_primary_key() {
    expect_defect(
        |c| c.edit_json(&c.path("connector.json"), |m| { m["streams"][1].as_object_mut().unwrap().remove("primary_key"); }),
        "manifest.schema", "connector.json", "/streams/1",
    );
}

#[test]
fn finds_an_incremental_cursor_missing_from_the_schema() {
    expect_defect(
        |c| c.edit_json(&c.path("connector.json"), |m| {
            m["streams"][0]["incremental"] = json!({"cursor_field": "modified_on", "request_param": "since", "format": "unix"})
        }),
        "cursor.missing", "connector.json", "/streams/0/incremental/cursor_field",
    );
}

#[test]
fn finds_an_incomplete_pagination_declaration() {
    expect_defect(
        |c| c.edit_json(&c.path("connector.json"), |m| m["streams"][0]["pagination"] = json!({"type": "offset", "size_param": "limit"})),
        "manifest.schema", "connector.json", "/streams/0/pagination",
    );
}

#[test]
fn finds_a_bad_base_url() {
    expect_defect(|c| c.edit_json(&c.path("connector.json"), |m| m["base_url"] = json!("api.stripe.com")), "manifest.schema", "connector.json", "/base_url");
}

#[test]
fn finds_a_manifest_that_disagrees_with_its_folder() {
    expect_defect(|c| c.edit_json(&c.path("connector.json"), |m| m["name"] = json!("stripe-payments")), "manifest.mismatch", "connector.json", "/name");
}

#[test]
fn finds_a_manifest_that_is_not_json() {
    let copy = Copy::new();
    std::fs::write(copy.path("connector.json"), "{\n  \"name\": \"stripe\",\n  oops\n}").unwrap();
    let (code, report, _) = validate(&copy.impl_dir());
    assert_eq!(code, 1);
    let f = findings(&report);
    assert!(f.iter().any(|f| f["rule"] == "manifest.parse" && f["message"].as_str().unwrap().contains("line 3")), "{f:?}");
}

#[test]
fn finds_a_stream_schema_that_is_not_a_json_schema() {
    expect_defect(
        |c| {
            let file = c.first("schema");
            c.edit_json(&file, |s| s["properties"]["id"]["type"] = json!("strin"));
        },
        "stream_schema.invalid", ".json", "/properties/id/type",
    );
}

#[test]
fn finds_a_remote_reference_in_a_stream_schema() {
    expect_defect(
        |c| {
            let file = c.first("schema");
            c.edit_json(&file, |s| s["properties"]["address"] = json!({"$ref": "https://example.com/address.json"}));
        },
        "stream_schema.remote_ref", ".json", "/properties/address/$ref",
    );
}

#[test]
fn finds_a_missing_stream_schema_file() {
    expect_defect(|c| std::fs::remove_file(c.first("schema")).unwrap(), "stream_schema.missing", "connector.json", "/streams/0/schema");
}

#[test]
fn finds_a_fixture_record_of_the_wrong_type() {
    expect_defect(
        |c| {
            let file = c.first("fixtures");
            c.edit_json(&file, |f| f[1]["id"] = json!(12345));
        },
        "fixtures.invalid_record", ".json", "/1/id",
    );
}

#[test]
fn finds_duplicate_primary_keys_in_fixtures() {
    expect_defect(
        |c| {
            let file = c.first("fixtures");
            c.edit_json(&file, |f| {
                let id = f[0]["id"].clone();
                f[2]["id"] = id;
            });
        },
        "fixtures.duplicate_key", ".json", "/2",
    );
}

#[test]
fn finds_fixtures_that_are_not_an_array() {
    expect_defect(|c| std::fs::write(c.first("fixtures"), "{\"data\": []}").unwrap(), "fixtures.not_array", ".json", "");
}

#[test]
fn finds_a_missing_runtime_file() {
    expect_defect(|c| std::fs::remove_file(c.path("connector_runtime/retry.py")).unwrap(), "layout.missing_file", "connector_runtime/retry.py", "");
}

#[test]
fn finds_a_bad_version_status() {
    expect_defect(
        |c| c.edit_json(&c.root.join("stripe/v1/_meta/version.json"), |v| v["status"] = json!("production-ready")),
        "meta.schema", "stripe/v1/_meta/version.json", "/status",
    );
}

#[test]
fn finds_author_metadata_missing_the_language() {
    expect_defect(
        |c| c.edit_json(&c.root.join("stripe/v1/connector-factory/_meta/connector.json"), |v| v["languages"] = json!(["typescript"])),
        "meta.mismatch", "connector-factory/_meta/connector.json", "/languages",
    );
}

#[test]
fn finds_a_missing_meta_file() {
    expect_defect(|c| std::fs::remove_file(c.root.join("stripe/_meta/connector.json")).unwrap(), "layout.missing_file", "stripe/_meta/connector.json", "");
}

#[test]
fn finds_a_declared_hooks_file_that_is_missing() {
    expect_defect(|c| c.edit_json(&c.path("connector.json"), |m| m["hooks"] = json!("custom_hooks.py")), "hooks.missing", "connector.json", "/hooks");
}

#[test]
fn unusable_input_exits_2_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, stderr) = validate(tmp.path());
    assert_eq!(code, 2);
    assert!(stderr.contains("connector.json"), "{stderr}");
}

#[test]
fn text_output_names_file_and_pointer() {
    let copy = Copy::new();
    copy.edit_json(&copy.path("connector.json"), |m| m["streams"][0]["primary_key"] = json!(["nope"]));
    let out = Command::new(env!("CARGO_BIN_EXE_connector-factory")).arg("validate").arg(copy.impl_dir()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(text.contains("connector.json#/streams/0/primary_key/0") && text.contains("\"nope\""), "{text}");
}

//! The builtin generator end to end: manifest, schemas, fixtures, detection notes, then the
//! factory's own `validate` and `spec-test` on the result.

use connector_factory::agent::builtin::{GenerateOptions, generate};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> String {
    root()
        .join("tests/fixtures/openapi")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// A scratch registry with the schemas, and scaffolds packed from the template folders as they
/// are in the tree (so the test does not depend on python.json having been re-packed).
fn scratch() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let reg = tmp.path().join("registry");
    let sc = tmp.path().join("scaffolds");
    std::fs::create_dir_all(reg.join("_schemas")).unwrap();
    std::fs::create_dir_all(&sc).unwrap();
    for e in std::fs::read_dir(root().join("registry/_schemas")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), reg.join("_schemas").join(e.file_name())).unwrap();
    }
    for name in ["meta", "python"] {
        let dir = root().join("registry/_scaffold").join(name);
        let json = if dir.join("_scaffold.json").is_file() {
            connector_factory::scaffold::to_json(&connector_factory::scaffold::pack(&dir).unwrap())
                .unwrap()
        } else {
            std::fs::read_to_string(root().join(format!("registry/_scaffold/{name}.json"))).unwrap()
        };
        std::fs::write(sc.join(format!("{name}.json")), json).unwrap();
    }
    (tmp, reg, sc)
}

fn opts(spec: &str, name: &str, reg: &Path, sc: &Path) -> GenerateOptions {
    let mut o = GenerateOptions::new(fixture(spec), name, reg);
    o.scaffolds = Some(sc.to_path_buf());
    o
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap()
}

fn validate_errors(dir: &Path) -> Vec<String> {
    connector_factory::validate::validate_implementation(dir)
        .unwrap()
        .into_iter()
        .filter(|f| format!("{:?}", f.severity).to_lowercase().contains("error"))
        .map(|f| format!("{} {}: {}", f.rule, f.file.display(), f.message))
        .collect()
}

fn spec_test(dir: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_connector-factory"))
        .arg("spec-test")
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn cursor_api_generates_a_connector_that_passes_validate_and_spec_test() {
    let (_tmp, reg, sc) = scratch();
    let out = generate(&opts("cursor-3.0.yaml", "ledger", &reg, &sc)).unwrap();
    assert_eq!(
        out.impl_dir,
        reg.join("ledger/v2/connector-factory/python/default")
    );
    let m = read_json(&out.impl_dir.join("connector.json"));
    assert_eq!(m["base_url"], "https://eu.ledger.example.com/v2");
    assert_eq!(
        m["auth"],
        serde_json::json!({"type": "api_key", "in": "header", "name": "X-Ledger-Key"})
    );
    let names: Vec<&str> = m["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["customers", "events"]);
    let customers = &m["streams"][0];
    assert_eq!(customers["pagination"]["cursor_source"], "last_record");
    assert_eq!(customers["incremental"]["cursor_field"], "updated_at");
    assert!(
        m["detection"]["streams"]["customers"]["pagination"]["confidence"]
            .as_f64()
            .unwrap()
            >= 0.6
    );
    // schemas are draft 2020-12 with nullable as a type union
    let schema = read_json(&out.impl_dir.join("schemas/customers.json"));
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(
        schema["properties"]["name"]["type"],
        serde_json::json!(["string", "null"])
    );
    // fixtures: 3+, valid, unique keys, distinct cursors
    let fx = read_json(&out.impl_dir.join("tests/fixtures/customers.json"));
    let fx = fx.as_array().unwrap();
    assert!(fx.len() >= 3);
    let v = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    for r in fx {
        assert!(v.is_valid(r), "{r}");
    }
    let ids: std::collections::HashSet<String> = fx.iter().map(|r| r["id"].to_string()).collect();
    let cursors: std::collections::HashSet<String> =
        fx.iter().map(|r| r["updated_at"].to_string()).collect();
    assert_eq!((ids.len(), cursors.len()), (fx.len(), fx.len()));
    let doc = std::fs::read_to_string(out.impl_dir.join("docs/detection.md")).unwrap();
    assert!(
        doc.contains("### customers") && doc.contains("starting_after"),
        "{doc}"
    );
    assert!(reg.join("ledger/_meta/connector.json").is_file());
    assert!(
        validate_errors(&out.impl_dir).is_empty(),
        "{:?}",
        validate_errors(&out.impl_dir)
    );
    let (ok, report) = spec_test(&out.impl_dir);
    assert!(ok, "{report}");
}

#[test]
fn offset_page_and_next_url_api_passes_spec_test() {
    let (_tmp, reg, sc) = scratch();
    let out = generate(&opts("offset-3.1.json", "catalog", &reg, &sc)).unwrap();
    let kinds: Vec<&str> = out.streams.iter().map(|s| s.pagination.as_str()).collect();
    assert_eq!(
        kinds,
        vec!["offset", "page", "next_url"],
        "the string-array endpoint is left out"
    );
    let m = read_json(&out.impl_dir.join("connector.json"));
    assert_eq!(m["version"], "2024-01", "info.version is a clean label");
    assert_eq!(
        m["streams"][0]["incremental"]["request_param"],
        "created[gte]"
    );
    let schema = read_json(&out.impl_dir.join("schemas/items.json"));
    assert!(
        schema["properties"]["colour"].get("format").is_none(),
        "non-standard format dropped"
    );
    assert_eq!(schema["properties"]["uuid"]["format"], "uuid");
    assert!(
        validate_errors(&out.impl_dir).is_empty(),
        "{:?}",
        validate_errors(&out.impl_dir)
    );
    let (ok, report) = spec_test(&out.impl_dir);
    assert!(ok, "{report}");
}

#[test]
fn unsure_guesses_are_flagged_in_docs_and_manifest() {
    let (_tmp, reg, sc) = scratch();
    let out = generate(&opts("odata-3.0.json", "orders", &reg, &sc)).unwrap();
    assert!(!out.unsure.is_empty());
    let m = read_json(&out.impl_dir.join("connector.json"));
    let unsure: Vec<String> = m["detection"]["unsure"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_string())
        .collect();
    assert!(
        unsure.iter().any(|u| u.contains("pagination `next_url`")),
        "{unsure:?}"
    );
    assert!(
        unsure.iter().any(|u| u.contains("base URL")),
        "relative server URL: {unsure:?}"
    );
    assert!(m["notes"].as_str().unwrap().contains("unsure"));
    assert!(
        m["base_url"].as_str().unwrap().starts_with("https://"),
        "a placeholder that passes the schema"
    );
    let doc = std::fs::read_to_string(out.impl_dir.join("docs/detection.md")).unwrap();
    assert!(
        doc.contains("## Unsure") && doc.contains("**unsure**"),
        "{doc}"
    );
}

#[test]
fn explicit_streams_and_errors() {
    let (_tmp, reg, sc) = scratch();
    let mut o = opts("offset-3.1.json", "catalog", &reg, &sc);
    o.streams = vec!["listThings".into(), "GET /pages".into()];
    o.version = Some("v9".into());
    let out = generate(&o).unwrap();
    let names: Vec<&str> = out.streams.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["things", "pages"]);
    assert!(
        out.impl_dir
            .ends_with("catalog/v9/connector-factory/python/default")
    );
    // a second run refuses to overwrite without force
    let err = generate(&o).unwrap_err().to_string();
    assert!(err.contains("--force"), "{err}");
    o.force = true;
    generate(&o).unwrap();
    // not a collection
    o.streams = vec!["POST /nothing".into()];
    assert!(generate(&o).is_err());
    let mut bad = opts("cursor-3.0.yaml", "ledger", &reg, &sc);
    bad.streams = vec!["createCustomer".into()];
    let err = format!("{:#}", generate(&bad).unwrap_err());
    assert!(err.contains("not a collection endpoint"), "{err}");
    let bad_name = opts("cursor-3.0.yaml", "Not_A_Slug", &reg, &sc);
    assert!(generate(&bad_name).is_err());
}

#[test]
fn swagger2_with_recursion_generates_valid_schemas() {
    let (_tmp, reg, sc) = scratch();
    let out = generate(&opts("users-swagger2.yaml", "team", &reg, &sc)).unwrap();
    let m = read_json(&out.impl_dir.join("connector.json"));
    assert_eq!(m["auth"]["type"], "oauth2");
    assert_eq!(
        m["auth"]["token_url"],
        "https://team.example.com/oauth/token"
    );
    assert_eq!(m["streams"][0]["pagination"]["type"], "link_header");
    let schema = read_json(&out.impl_dir.join("schemas/users.json"));
    jsonschema::validator_for(&schema).unwrap();
    assert!(
        validate_errors(&out.impl_dir).is_empty(),
        "{:?}",
        validate_errors(&out.impl_dir)
    );
}

#[test]
fn cli_generate() {
    let (_tmp, reg, sc) = scratch();
    let out = Command::new(env!("CARGO_BIN_EXE_connector-factory"))
        .args([
            "generate",
            "--openapi",
            &fixture("cycles-3.0.yaml"),
            "--name",
            "trees",
            "--json",
            "--out",
        ])
        .arg(&reg)
        .arg("--scaffolds")
        .arg(&sc)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let o: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(o["streams"][0]["name"], "nodes");
    assert_eq!(o["version"], "1", "info.version");
    assert!(
        reg.join("trees/1/connector-factory/python/default/tests/fixtures/nodes.json")
            .is_file()
    );
}

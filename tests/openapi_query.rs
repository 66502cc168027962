//! Bounded queries: filters, lookups, budgets and truncation notes, text and JSON output.

use connector_factory::openapi::Spec;
use connector_factory::openapi::query::{self, Budget, Format, ListFilter};
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openapi")
        .join(name)
}

fn load(name: &str) -> Spec {
    Spec::load(fixture(name).to_str().unwrap()).unwrap()
}

#[test]
fn list_filters() {
    let spec = load("cursor-3.0.yaml");
    let all = query::list_operations(&spec, &ListFilter::default(), Budget::default());
    assert_eq!(all.value["total"], 4);
    let tagged = query::list_operations(
        &spec,
        &ListFilter {
            tag: Some("Events".into()),
            ..Default::default()
        },
        Budget::default(),
    );
    assert_eq!(tagged.value["total"], 1);
    assert!(tagged.rendered.contains("GET /events"));
    let posts = query::list_operations(
        &spec,
        &ListFilter {
            method: Some("post".into()),
            ..Default::default()
        },
        Budget::default(),
    );
    assert_eq!(posts.value["total"], 1);
    let path = query::list_operations(
        &spec,
        &ListFilter {
            path_contains: Some("CUSTOMER_ID".into()),
            ..Default::default()
        },
        Budget::default(),
    );
    assert_eq!(path.value["total"], 1);
    let cols = query::list_operations(
        &spec,
        &ListFilter {
            collections_only: true,
            ..Default::default()
        },
        Budget::default(),
    );
    assert_eq!(cols.value["total"], 2);
    assert!(cols.rendered.contains("records: data"), "{}", cols.rendered);
}

#[test]
fn list_limit_is_reported() {
    let spec = load("cursor-3.0.yaml");
    let a = query::list_operations(
        &spec,
        &ListFilter {
            limit: Some(1),
            ..Default::default()
        },
        Budget::default(),
    );
    assert_eq!(a.value["shown"], 1);
    assert!(
        a.truncated.iter().any(|t| t.contains("1 of 4")),
        "{:?}",
        a.truncated
    );
    assert!(
        a.rendered.contains("[truncated: showing 1 of 4"),
        "{}",
        a.rendered
    );
}

#[test]
fn show_operation_has_parameters_responses_and_schema() {
    let spec = load("cursor-3.0.yaml");
    let a = query::show_operation(&spec, "listCustomers", Budget::default()).unwrap();
    let t = &a.rendered;
    for needle in [
        "GET /customers",
        "starting_after (query)",
        "limit (query) integer default 20 max 250",
        "200 object",
        "data: array of object #/components/schemas/Customer",
        "email*: string(email)",
        "name: string|null",
    ] {
        assert!(t.contains(needle), "missing {needle:?} in\n{t}");
    }
    assert!(a.truncated.is_empty(), "{:?}", a.truncated);
    let by_key = query::show_operation(&spec, "POST /customers", Budget::default()).unwrap();
    assert!(
        by_key.rendered.contains("request_body"),
        "{}",
        by_key.rendered
    );
    assert!(
        by_key.value["request_body_schema"]["schema"]["ref"] == "#/components/schemas/Customer"
    );
    let err = query::show_operation(&spec, "customers", Budget::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("close matches") && err.contains("GET /customers"),
        "{err}"
    );
}

#[test]
fn recursive_schemas_are_shown_once() {
    let spec = load("cycles-3.0.yaml");
    let a = query::show_schema(&spec, "Node", Budget::default()).unwrap();
    assert!(a.rendered.contains("recursive"), "{}", a.rendered);
    let loops = query::show_operation(&spec, "listLoops", Budget::default()).unwrap();
    assert!(
        loops.rendered.contains("reference cycle"),
        "{}",
        loops.rendered
    );
    let slash = query::show_schema(&spec, "a/b", Budget::default()).unwrap();
    assert!(
        slash.rendered.contains("slash: boolean"),
        "{}",
        slash.rendered
    );
    assert!(query::show_schema(&spec, "Nope", Budget::default()).is_err());
}

#[test]
fn answers_stay_within_budget_and_say_where_they_were_cut() {
    let spec = load("cursor-3.0.yaml");
    for bytes in [256usize, 400, 700, 1200, 3000] {
        for format in [Format::Text, Format::Json] {
            let b = Budget::new(bytes, format);
            let answers = [
                query::show_operation(&spec, "listCustomers", b).unwrap(),
                query::show_operation(&spec, "createCustomer", b).unwrap(),
                query::show_schema(&spec, "Customer", b).unwrap(),
                query::list_operations(&spec, &ListFilter::default(), b),
                query::summary(&spec, b),
            ];
            for a in answers {
                assert!(
                    a.rendered.len() <= bytes,
                    "{bytes} {format:?}: {} bytes\n{}",
                    a.rendered.len(),
                    a.rendered
                );
                let full =
                    query::show_operation(&spec, "listCustomers", Budget::new(1 << 20, format))
                        .unwrap();
                if full.rendered.len() > bytes
                    && a.value.get("operation") == Some(&serde_json::json!("GET /customers"))
                {
                    assert!(!a.truncated.is_empty(), "cut without a note at {bytes}");
                    assert!(a.rendered.contains("truncated"), "{}", a.rendered);
                }
                if format == Format::Json
                    && a.truncated.iter().all(|t| !t.starts_with("answer cut"))
                {
                    serde_json::from_str::<serde_json::Value>(&a.rendered)
                        .expect("JSON answers parse");
                }
            }
        }
    }
}

#[test]
fn small_budget_cuts_nested_schemas_first() {
    let spec = load("cursor-3.0.yaml");
    let a = query::show_operation(&spec, "listCustomers", Budget::new(650, Format::Text)).unwrap();
    assert!(a.rendered.len() <= 650);
    assert!(a.rendered.contains("GET /customers"));
    assert!(
        a.truncated.iter().any(|t| t.starts_with("response_schema")),
        "{:?}",
        a.truncated
    );
}

#[test]
fn cli_list_show_schema_and_json() {
    let bin = env!("CARGO_BIN_EXE_connector-factory");
    let spec = fixture("users-swagger2.yaml");
    let run = |args: &[&str]| {
        let out = Command::new(bin)
            .arg("openapi")
            .arg(&spec)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(run(&["list"]).contains("GET /users  (listUsers)"));
    assert!(run(&["show", "GET", "/users"]).contains("headers: Link"));
    let j: serde_json::Value = serde_json::from_str(&run(&["schema", "User", "--json"])).unwrap();
    assert_eq!(j["at"], "#/definitions/User");
    let d: serde_json::Value = serde_json::from_str(&run(&["detect", "--json"])).unwrap();
    assert_eq!(
        d["streams"][0]["pagination"]["value"]["type"],
        "link_header"
    );
    assert_eq!(d["auth"]["value"]["type"], "oauth2");
    let out = Command::new(bin)
        .arg("openapi")
        .arg(fixture("bad-paths-array.json"))
        .arg("summary")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("paths must be an object"));
    let small = run(&["show", "listUsers", "--budget", "300"]);
    assert!(small.trim_end().len() <= 300, "{}", small);
}

/// A description whose schemas inline to a huge tree: `n0` has 8 properties that all refer to
/// `n1`, `n1` has 8 that all refer to `n2`, and so on down to `n7` (8 string properties). No
/// cycle anywhere, so inlining `n0` whole would make 8^8 (16.8 million) nodes.
fn huge_tree() -> Spec {
    let mut schemas = serde_json::Map::new();
    for level in 0..8 {
        let mut props = serde_json::Map::new();
        for p in 0..8 {
            let child = if level == 7 {
                json!({"type": "string"})
            } else {
                json!({"$ref": format!("#/components/schemas/n{}", level + 1)})
            };
            props.insert(format!("field_{level}_{p}"), child);
        }
        schemas.insert(
            format!("n{level}"),
            json!({"type": "object", "properties": props}),
        );
    }
    let doc = json!({
        "openapi": "3.0.3",
        "info": {"title": "huge", "version": "1"},
        "paths": {"/things": {"get": {
            "operationId": "listThings",
            "responses": {"200": {"description": "ok", "content": {"application/json": {
                "schema": {"type": "array", "items": {"$ref": "#/components/schemas/n0"}}}}}}
        }}},
        "components": {"schemas": schemas}
    });
    Spec::parse(&doc.to_string(), "huge.json").unwrap()
}

#[test]
fn expansion_stops_once_the_budget_is_spent() {
    let spec = huge_tree();
    let n0 = json!({"$ref": "#/components/schemas/n0"});

    // unbounded, the expansion runs into the node cap
    let whole = query::compact_schema_within(&spec, &n0, 8, usize::MAX);
    assert!(whole.stats.node_cap_hit, "{:?}", whole.stats);
    assert!(
        whole.stats.nodes > query::MAX_COMPACT_NODES,
        "{:?}",
        whole.stats
    );
    assert_eq!(whole.stats.stopped_at_level, None);

    // within a budget it stops after the level whose least size exceeds the budget: levels 0
    // (n0), 1 (8 copies of n1) and 2 (64 copies of n2), nothing below
    let lazy = query::compact_schema_within(&spec, &n0, 8, 6000);
    assert_eq!(lazy.stats.stopped_at_level, Some(2), "{:?}", lazy.stats);
    assert_eq!(lazy.stats.nodes, 1 + 8 + 64, "{:?}", lazy.stats);
    assert!(!lazy.stats.node_cap_hit);

    // the query does that bounded work, and grows it with the budget, not with the tree
    let nodes = |bytes: usize| {
        query::show_schema(&spec, "n0", Budget::new(bytes, Format::Text))
            .unwrap()
            .expanded_nodes
    };
    let (small, default, large) = (nodes(1024), nodes(query::DEFAULT_BUDGET), nodes(60_000));
    assert_eq!(default, 1 + 8 + 64);
    assert!(
        small <= default && default < large && large < 1000,
        "{small} {default} {large}"
    );

    // the answer shows every top-level property with its type, says it was cut and where
    for format in [Format::Text, Format::Json] {
        let a =
            query::show_schema(&spec, "n0", Budget::new(query::DEFAULT_BUDGET, format)).unwrap();
        assert!(a.rendered.len() <= query::DEFAULT_BUDGET);
        assert!(
            a.truncated
                .iter()
                .any(|t| t.starts_with("definition: nested parts below depth")
                    && t.contains("field_0_0")),
            "{:?}",
            a.truncated
        );
        assert!(a.rendered.contains("truncated"), "{}", a.rendered);
        for p in 0..8 {
            let name = format!("field_0_{p}");
            let shown = match format {
                Format::Text => a
                    .rendered
                    .lines()
                    .find(|l| l.trim_start().starts_with(&format!("{name}: ")))
                    .unwrap_or_default()
                    .to_string(),
                Format::Json => a.value["definition"]["properties"][&name].to_string(),
            };
            assert!(
                shown.contains("object") && shown.contains("#/components/schemas/n1"),
                "{name}: {shown:?} in\n{}",
                a.rendered
            );
        }
    }

    // the same in a response schema
    let op = query::show_operation(&spec, "listThings", Budget::default()).unwrap();
    assert!(op.expanded_nodes < 100, "{}", op.expanded_nodes);
    assert!(
        op.truncated
            .iter()
            .any(|t| t.starts_with("response_schema: nested parts below depth")),
        "{:?}",
        op.truncated
    );
    assert!(op.rendered.contains("field_0_7"), "{}", op.rendered);
}

#[test]
fn stopping_early_gives_the_answer_a_full_expansion_gives() {
    let mut specs = vec![huge_tree()];
    for name in [
        "cursor-3.0.yaml",
        "cycles-3.0.yaml",
        "users-swagger2.yaml",
        "offset-3.1.json",
    ] {
        specs.push(load(name));
    }
    for spec in &specs {
        for name in &spec.index.schema_names {
            let schema = json!({"$ref": spec.schema_pointer(name).unwrap()});
            let whole = query::compact_schema(spec, &schema, 8);
            for bytes in [64usize, 200, 700, 2000, 6000] {
                for format in [Format::Text, Format::Json] {
                    let render = query::schema_render(format);
                    let lazy = query::compact_schema_within(spec, &schema, 8, bytes);
                    let expected = query::fit_schema(whole.clone(), bytes, render, "x");
                    let got = query::fit_compact(lazy, bytes, render, "x");
                    assert_eq!(got, expected, "{name} at {bytes} bytes, {format:?}");
                }
            }
        }
    }
}

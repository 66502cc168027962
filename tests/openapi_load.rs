//! Loading and indexing descriptions: versions, formats, sources, refs and error reporting.

use connector_factory::openapi::resolve::{self, RefError};
use connector_factory::openapi::{Spec, SpecVersion, load};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openapi")
        .join(name)
}

fn load_fixture(name: &str) -> Spec {
    Spec::load(fixture(name).to_str().unwrap()).unwrap_or_else(|e| panic!("{name}: {e:#}"))
}

fn load_err(name: &str) -> String {
    format!(
        "{:#}",
        Spec::load(fixture(name).to_str().unwrap()).unwrap_err()
    )
}

#[test]
fn versions_and_formats_are_recognised() {
    let cases = [
        ("cursor-3.0.yaml", SpecVersion::OpenApi30, 4),
        ("offset-3.1.json", SpecVersion::OpenApi31, 4),
        ("users-swagger2.yaml", SpecVersion::Swagger2, 3),
        ("odata-3.0.json", SpecVersion::OpenApi30, 1),
        ("cycles-3.0.yaml", SpecVersion::OpenApi30, 3),
    ];
    for (name, version, ops) in cases {
        let spec = load_fixture(name);
        assert_eq!(spec.doc.version, version, "{name}");
        assert_eq!(spec.index.operations.len(), ops, "{name}");
    }
}

#[test]
fn index_finds_operations_by_id_and_by_method_path() {
    let spec = load_fixture("cursor-3.0.yaml");
    let by_id = spec.index.find("listCustomers").expect("by id");
    let by_key = spec
        .index
        .find("get /customers")
        .expect("by method and path");
    let by_path = spec.index.find("/customers").expect("bare path means GET");
    assert_eq!(by_id, by_key);
    assert_eq!(by_id, by_path);
    let post = spec.index.find("POST /customers").unwrap();
    assert_eq!(
        spec.op(post).operation_id.as_deref(),
        Some("createCustomer")
    );
    assert_eq!(spec.op(by_id).tags, vec!["customers".to_string()]);
    assert_eq!(spec.op(by_id).summary.as_deref(), Some("List customers"));
    assert!(spec.index.find("DELETE /customers").is_none());
    assert!(spec.index.find("nope").is_none());
    assert_eq!(
        spec.index.schema_names,
        vec!["Customer".to_string(), "Event".to_string()]
    );
}

#[test]
fn path_level_parameters_are_merged_and_refs_resolved() {
    let spec = load_fixture("cursor-3.0.yaml");
    let op = spec.op(spec.index.find("getCustomer").unwrap()).clone();
    let params = spec.parameters(&op);
    assert_eq!(params.len(), 1);
    assert_eq!(params[0].name, "customer_id");
    assert!(params[0].required);
    let list = spec.op(spec.index.find("listCustomers").unwrap()).clone();
    let limit = spec
        .parameters(&list)
        .into_iter()
        .find(|p| p.name == "limit")
        .unwrap();
    assert_eq!(limit.pointer, "#/components/parameters/Limit");
    assert_eq!(limit.schema["maximum"], 250);
}

#[test]
fn swagger2_bodies_and_parameters_are_normalised() {
    let spec = load_fixture("users-swagger2.yaml");
    let create = spec.op(spec.index.find("createUser").unwrap()).clone();
    let body = spec
        .request_body(&create)
        .expect("body parameter becomes a request body");
    assert!(body.required);
    assert_eq!(body.schema.unwrap()["$ref"], "#/definitions/User");
    let list = spec.op(spec.index.find("listUsers").unwrap()).clone();
    let per_page = spec
        .parameters(&list)
        .into_iter()
        .find(|p| p.name == "per_page")
        .unwrap();
    assert_eq!(per_page.schema["type"], "integer");
    let ok = spec.success_response(&list).unwrap();
    assert_eq!(ok.status, "200");
    assert_eq!(ok.headers, vec!["Link".to_string()]);
    assert_eq!(ok.content_types, vec!["application/json".to_string()]);
}

#[test]
fn bad_documents_say_what_and_where() {
    let e = load_err("bad-no-version.json");
    assert!(
        e.contains("no `openapi` or `swagger` field") && e.contains("document root"),
        "{e}"
    );
    let e = load_err("bad-paths-array.json");
    assert!(
        e.contains("paths must be an object") && e.contains("at /paths"),
        "{e}"
    );
    let e = load_err("bad-syntax.json");
    assert!(e.contains("not valid JSON at line 5"), "{e}");
    let e = load_err("bad-indent.yaml");
    assert!(e.contains("not valid YAML at line 4"), "{e}");
    let e = load_err("bad-version.yaml");
    assert!(e.contains("/swagger") && e.contains("1.2"), "{e}");
    let e = load_err("bad-path-key.yaml");
    assert!(
        e.contains("/paths/users") && e.contains("must start with `/`"),
        "{e}"
    );
    let e = format!("{:#}", Spec::load("/nonexistent/spec.json").unwrap_err());
    assert!(e.contains("/nonexistent/spec.json"), "{e}");
}

#[test]
fn ref_chains_cycles_and_escaped_pointers() {
    let spec = load_fixture("cycles-3.0.yaml");
    let root = &spec.doc.root;
    match resolve::resolve_ref(root, "#/components/schemas/LoopA") {
        Err(RefError::Cycle(chain)) => assert!(chain.contains("LoopB"), "{chain}"),
        other => panic!("expected a cycle, got {other:?}"),
    }
    let (slash, at) = resolve::resolve_ref(root, "#/components/schemas/a~1b").unwrap();
    assert_eq!(at, "#/components/schemas/a~1b");
    assert!(slash["properties"]["slash"].is_object());
    let weird = spec.index.find("GET /weird~path/{id}").unwrap();
    assert_eq!(spec.op(weird).pointer, "/paths/~1weird~0path~1{id}/get");
    // inlining a recursive schema stops at the recursion and says so
    let node = serde_json::json!({"$ref": "#/components/schemas/Node"});
    let e = resolve::expand(root, &node, resolve::ExpandLimits::default());
    assert_eq!(e.cycles, vec!["#/components/schemas/Node".to_string()]);
    assert_eq!(
        e.value["properties"]["owner"]["properties"]["favourite"]["x-cycle"],
        true
    );
    // a depth limit is reported
    let e = resolve::expand(
        root,
        &node,
        resolve::ExpandLimits {
            max_depth: 2,
            max_nodes: 1000,
        },
    );
    assert!(e.limited);
}

/// Serve one response on loopback, then stop.
fn serve_once(body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/yaml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    format!("http://{addr}/spec.yaml")
}

#[test]
fn loads_from_a_url_with_a_size_cap() {
    let text = std::fs::read(fixture("cursor-3.0.yaml")).unwrap();
    let url = serve_once(text.clone());
    let spec = Spec::load(&url).unwrap();
    assert_eq!(spec.index.operations.len(), 4);
    assert_eq!(spec.doc.source, url);
    let url = serve_once(text);
    let err = format!("{:#}", load::load_with_limit(&url, 100).unwrap_err());
    assert!(err.contains("limit"), "{err}");
}

#[test]
fn yaml_and_json_give_the_same_document() {
    let yaml = load_fixture("cursor-3.0.yaml");
    let json = serde_json::to_string(&yaml.doc.root).unwrap();
    let again = Spec::parse(&json, "again.json").unwrap();
    assert_eq!(again.doc.root, yaml.doc.root);
    assert_eq!(again.index.operations.len(), yaml.index.operations.len());
}

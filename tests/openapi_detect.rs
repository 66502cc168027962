//! Detection heuristics on small hand-made descriptions, one behaviour per test.

use connector_factory::openapi::Spec;
use connector_factory::openapi::detect::{self, Pagination, StreamDetection};
use std::path::PathBuf;

fn load(name: &str) -> Spec {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openapi")
        .join(name);
    Spec::load(p.to_str().unwrap()).unwrap()
}

fn stream(spec: &Spec, op: &str) -> StreamDetection {
    let i = spec.index.find(op).unwrap_or_else(|| panic!("no {op}"));
    detect::analyze(spec, i).unwrap_or_else(|| panic!("{op} is not a collection"))
}

#[test]
fn collection_endpoints_are_gets_returning_arrays() {
    let spec = load("cursor-3.0.yaml");
    let cols: Vec<String> = detect::collections(&spec)
        .iter()
        .map(|c| c.value.path.clone())
        .collect();
    assert_eq!(cols, vec!["/customers".to_string(), "/events".to_string()]);
    // a single item (trailing path parameter) and a POST are not collections
    assert!(detect::collection(&spec, spec.index.find("getCustomer").unwrap()).is_none());
    assert!(detect::collection(&spec, spec.index.find("createCustomer").unwrap()).is_none());
    let swagger = load("users-swagger2.yaml");
    assert_eq!(detect::collections(&swagger).len(), 1);
}

#[test]
fn record_selectors() {
    let spec = load("cursor-3.0.yaml");
    let c = stream(&spec, "listCustomers");
    assert_eq!(c.collection.value.record_selector, "data");
    assert!(c.collection.confidence >= 0.8);
    assert!(
        c.collection
            .evidence
            .iter()
            .any(|e| e.contains("#/components/schemas/Customer")),
        "{:?}",
        c.collection.evidence
    );
    // `errors` is an array too, but not the records
    let e = stream(&spec, "listEvents");
    assert_eq!(e.collection.value.record_selector, "events");
    // a bare array
    let s = load("users-swagger2.yaml");
    assert_eq!(stream(&s, "listUsers").collection.value.record_selector, "");
    // an array of strings is a weak collection
    let o = load("offset-3.1.json");
    let tags = stream(&o, "listTags");
    assert!(tags.collection.confidence < 0.5);
}

#[test]
fn cursor_from_last_record_with_has_more() {
    let spec = load("cursor-3.0.yaml");
    let s = stream(&spec, "listCustomers");
    assert_eq!(
        s.pagination.value,
        Pagination::Cursor {
            cursor_param: "starting_after".into(),
            cursor_source: "last_record".into(),
            cursor_path: "id".into(),
            has_more_path: Some("has_more".into()),
            size_param: Some("limit".into()),
        }
    );
    assert!(s.pagination.confidence >= 0.8);
    assert_eq!(s.page_size, Some(100));
}

#[test]
fn cursor_from_the_body() {
    let spec = load("cursor-3.0.yaml");
    let s = stream(&spec, "listEvents");
    match &s.pagination.value {
        Pagination::Cursor {
            cursor_param,
            cursor_source,
            cursor_path,
            size_param,
            ..
        } => {
            assert_eq!(cursor_param, "cursor");
            assert_eq!(cursor_source, "body");
            assert_eq!(cursor_path, "meta.next_cursor");
            assert_eq!(size_param.as_deref(), Some("page_size"));
        }
        other => panic!("{other:?}"),
    }
    let json = serde_json::to_value(&s.pagination.value).unwrap();
    assert_eq!(json["type"], "cursor");
    assert!(json.get("has_more_path").is_none());
}

#[test]
fn offset_page_and_next_url() {
    let spec = load("offset-3.1.json");
    assert_eq!(
        stream(&spec, "listItems").pagination.value,
        Pagination::Offset {
            offset_param: "offset".into(),
            size_param: "limit".into(),
            total_path: Some("total".into())
        }
    );
    assert_eq!(
        stream(&spec, "listPages").pagination.value,
        Pagination::Page {
            page_param: "page".into(),
            size_param: Some("page_size".into()),
            start_page: Some(0),
            total_pages_path: Some("meta.total_pages".into())
        }
    );
    assert_eq!(
        stream(&spec, "listThings").pagination.value,
        Pagination::NextUrl {
            next_url_path: "links.next".into(),
            size_param: None
        }
    );
    let json = serde_json::to_value(&stream(&spec, "listThings").pagination.value).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"type": "next_url", "next_url_path": "links.next"})
    );
}

#[test]
fn link_header_wins_over_page_numbers() {
    let spec = load("users-swagger2.yaml");
    let s = stream(&spec, "listUsers");
    assert_eq!(
        s.pagination.value,
        Pagination::LinkHeader {
            size_param: Some("per_page".into())
        }
    );
    assert!(s.pagination.evidence.iter().any(|e| e.contains("Link")));
}

#[test]
fn keys_with_dots_lower_the_confidence() {
    let spec = load("odata-3.0.json");
    let s = stream(&spec, "Orders_List");
    assert_eq!(
        s.pagination.value,
        Pagination::NextUrl {
            next_url_path: "@odata.nextLink".into(),
            size_param: Some("$top".into())
        }
    );
    assert!(
        s.pagination.confidence <= 0.4,
        "{}",
        s.pagination.confidence
    );
}

#[test]
fn no_pagination_documented() {
    let spec = load("cycles-3.0.yaml");
    let s = stream(&spec, "listNodes");
    assert_eq!(s.pagination.value, Pagination::None);
    assert!(s.pagination.evidence[0].contains("no pagination"));
}

#[test]
fn auth_schemes() {
    let a = detect::auth(&load("cursor-3.0.yaml"));
    assert_eq!(
        (a.value.kind.as_str(), a.value.header.as_deref()),
        ("api_key", Some("X-Ledger-Key"))
    );
    assert!(a.confidence >= 0.8);
    let b = detect::auth(&load("offset-3.1.json"));
    assert_eq!(b.value.kind, "bearer");
    let o = detect::auth(&load("users-swagger2.yaml"));
    assert_eq!(
        o.value.kind, "oauth2",
        "the globally used scheme wins over basic"
    );
    assert_eq!(
        o.value.token_url.as_deref(),
        Some("https://team.example.com/oauth/token")
    );
    assert_eq!(o.value.flow.as_deref(), Some("refresh_token"));
    assert_eq!(o.value.scopes, vec!["read".to_string()]);
    assert!(
        o.evidence.iter().any(|e| e.contains("basicAuth")),
        "alternatives are listed: {:?}",
        o.evidence
    );
    assert_eq!(detect::auth(&load("odata-3.0.json")).value.kind, "basic");
    let none = detect::auth(&load("cycles-3.0.yaml"));
    assert_eq!(none.value.kind, "none");
    assert!(none.confidence < 0.6);
}

#[test]
fn primary_keys() {
    let c = load("cursor-3.0.yaml");
    assert_eq!(
        stream(&c, "listCustomers").primary_key.value,
        vec!["id".to_string()]
    );
    assert_eq!(
        stream(&c, "listEvents").primary_key.value,
        vec!["event_id".to_string()]
    );
    let o = load("offset-3.1.json");
    assert_eq!(
        stream(&o, "listItems").primary_key.value,
        vec!["uuid".to_string()]
    );
    // `thing_id` for /things
    assert_eq!(
        stream(&o, "listThings").primary_key.value,
        vec!["thing_id".to_string()]
    );
    let s = load("users-swagger2.yaml");
    let users = stream(&s, "listUsers");
    assert_eq!(users.primary_key.value, vec!["user_id".to_string()]);
    assert!(users.primary_key.confidence < stream(&c, "listCustomers").primary_key.confidence);
}

#[test]
fn incremental_cursors() {
    let c = load("cursor-3.0.yaml");
    let inc = stream(&c, "listCustomers")
        .incremental
        .expect("updated_since + updated_at");
    assert_eq!(
        (
            inc.value.cursor_field.as_str(),
            inc.value.request_param.as_str(),
            inc.value.format.as_str()
        ),
        ("updated_at", "updated_since", "iso8601")
    );
    assert!(
        stream(&c, "listEvents").incremental.is_none(),
        "no filter parameter"
    );
    let o = load("offset-3.1.json");
    let inc = stream(&o, "listItems").incremental.expect("created[gte]");
    assert_eq!(
        (
            inc.value.cursor_field.as_str(),
            inc.value.request_param.as_str(),
            inc.value.format.as_str()
        ),
        ("created", "created[gte]", "unix")
    );
    let s = load("users-swagger2.yaml");
    let inc = stream(&s, "listUsers").incremental.expect("modified_since");
    assert_eq!(inc.value.cursor_field, "modified");
}

#[test]
fn base_urls() {
    let c = detect::base_url(&load("cursor-3.0.yaml"));
    assert_eq!(
        c.value, "https://eu.ledger.example.com/v2",
        "server variables take their defaults"
    );
    assert!(c.evidence.iter().any(|e| e.contains("region")));
    let s = detect::base_url(&load("users-swagger2.yaml"));
    assert_eq!(
        s.value, "https://api.team.example.com/v1",
        "https preferred, trailing slash dropped"
    );
    let rel = detect::base_url(&load("odata-3.0.json"));
    assert_eq!(rel.value, "/odata");
    assert!(rel.confidence < 0.5);
}

#[test]
fn ranking_prefers_good_streams_and_names_are_unique() {
    let o = load("offset-3.1.json");
    let ranked = detect::rank_streams(&o);
    assert_eq!(
        ranked.last().unwrap().collection.value.path,
        "/tags",
        "the weakest candidate is last"
    );
    let picked = detect::pick_streams(&o, 2);
    assert_eq!(picked.len(), 2);
    assert_eq!(picked[0].name, "items");
    let names: std::collections::HashSet<_> = ranked.iter().map(|s| s.name.clone()).collect();
    assert_eq!(names.len(), ranked.len());
}

#[test]
fn every_detection_carries_evidence_and_a_confidence_in_range() {
    for f in [
        "cursor-3.0.yaml",
        "offset-3.1.json",
        "users-swagger2.yaml",
        "odata-3.0.json",
        "cycles-3.0.yaml",
    ] {
        let spec = load(f);
        for s in detect::rank_streams(&spec) {
            for (what, conf, ev) in [
                (
                    "collection",
                    s.collection.confidence,
                    &s.collection.evidence,
                ),
                (
                    "pagination",
                    s.pagination.confidence,
                    &s.pagination.evidence,
                ),
                (
                    "primary key",
                    s.primary_key.confidence,
                    &s.primary_key.evidence,
                ),
            ] {
                assert!((0.0..=1.0).contains(&conf), "{f} {} {what}: {conf}", s.name);
                assert!(!ev.is_empty(), "{f} {} {what} has no evidence", s.name);
            }
        }
        let a = detect::auth(&spec);
        assert!(!a.evidence.is_empty() && (0.0..=1.0).contains(&a.confidence));
    }
}

//! The toolkit on real public descriptions fetched by `.ci/fetch-fixtures.sh` into
//! `.cache/fixtures/`. Each test skips with a message when that folder is missing.

use connector_factory::openapi::Spec;
use connector_factory::openapi::detect::{self, Pagination};
use connector_factory::openapi::query::{self, Budget, Format, ListFilter};
use std::path::PathBuf;

fn real(name: &str) -> Option<Spec> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/fixtures");
    let p = dir.join(name);
    if !p.exists() {
        println!(
            "SKIPPED: {} is missing; run .ci/fetch-fixtures.sh",
            p.display()
        );
        return None;
    }
    Some(Spec::load(p.to_str().unwrap()).unwrap_or_else(|e| panic!("{name}: {e:#}")))
}

fn stream_at<'a>(
    streams: &'a [detect::StreamDetection],
    path: &str,
) -> &'a detect::StreamDetection {
    streams
        .iter()
        .find(|s| s.collection.value.path == path)
        .unwrap_or_else(|| panic!("{path} not detected"))
}

#[test]
fn github_loads_indexes_and_answers_in_budget() {
    let Some(spec) = real("github/api.github.com.json") else {
        return;
    };
    assert!(
        spec.index.operations.len() > 1000,
        "{}",
        spec.index.operations.len()
    );
    assert!(spec.index.schema_names.len() > 500);
    let i = spec.index.find("issues/list-for-repo").unwrap();
    assert_eq!(spec.op(i).key(), "GET /repos/{owner}/{repo}/issues");
    let s = detect::analyze(&spec, i).unwrap();
    assert_eq!(s.collection.value.record_selector, "");
    assert_eq!(
        s.pagination.value,
        Pagination::LinkHeader {
            size_param: Some("per_page".into())
        }
    );
    assert_eq!(s.primary_key.value, vec!["id".to_string()]);
    let inc = s.incremental.unwrap();
    assert_eq!(
        (
            inc.value.cursor_field.as_str(),
            inc.value.request_param.as_str()
        ),
        ("updated_at", "since")
    );
    assert_eq!(detect::base_url(&spec).value, "https://api.github.com");
    for fmt in [Format::Text, Format::Json] {
        let b = Budget::new(4096, fmt);
        let a = query::show_operation(&spec, "repos/get", b).unwrap();
        assert!(a.rendered.len() <= 4096);
        assert!(
            !a.truncated.is_empty(),
            "the repository schema does not fit 4 KB whole"
        );
        let l = query::list_operations(
            &spec,
            &ListFilter {
                tag: Some("issues".into()),
                collections_only: true,
                ..Default::default()
            },
            b,
        );
        assert!(l.rendered.len() <= 4096);
        assert!(l.value["total"].as_u64().unwrap() >= 5);
        let sc = query::show_schema(&spec, "repository", b).unwrap();
        assert!(sc.rendered.len() <= 4096 && !sc.truncated.is_empty());
    }
}

#[test]
fn stripe_cursor_pagination_and_bearer() {
    let Some(spec) = real("stripe.json") else {
        return;
    };
    let streams = detect::rank_streams(&spec);
    let c = stream_at(&streams, "/v1/customers");
    assert_eq!(c.collection.value.record_selector, "data");
    match &c.pagination.value {
        Pagination::Cursor {
            cursor_param,
            cursor_source,
            cursor_path,
            has_more_path,
            ..
        } => {
            assert_eq!(
                (
                    cursor_param.as_str(),
                    cursor_source.as_str(),
                    cursor_path.as_str()
                ),
                ("starting_after", "last_record", "id")
            );
            assert_eq!(has_more_path.as_deref(), Some("has_more"));
        }
        other => panic!("{other:?}"),
    }
    let inc = c.incremental.as_ref().unwrap();
    assert_eq!(
        (inc.value.request_param.as_str(), inc.value.format.as_str()),
        ("created[gte]", "unix")
    );
    let a = detect::auth(&spec);
    assert!(
        a.value.kind == "bearer" || a.value.kind == "basic",
        "{:?}",
        a.value
    );
}

#[test]
fn spotify_offset_and_oauth2() {
    let Some(spec) = real("spotify.json") else {
        return;
    };
    let streams = detect::rank_streams(&spec);
    let p = stream_at(&streams, "/me/playlists");
    assert_eq!(p.collection.value.record_selector, "items");
    assert!(
        matches!(&p.pagination.value, Pagination::Offset { offset_param, size_param, .. } if offset_param == "offset" && size_param == "limit")
    );
    let a = detect::auth(&spec);
    assert_eq!(a.value.kind, "oauth2");
    assert!(
        a.value
            .token_url
            .as_deref()
            .unwrap_or("")
            .starts_with("https://accounts.spotify.com")
    );
}

#[test]
fn twilio_next_url_and_basic() {
    let Some(spec) = real("twilio.json") else {
        return;
    };
    let streams = detect::rank_streams(&spec);
    let a = stream_at(&streams, "/2010-04-01/Accounts.json");
    assert_eq!(a.collection.value.record_selector, "accounts");
    assert!(
        matches!(&a.pagination.value, Pagination::NextUrl { next_url_path, .. } if next_url_path == "next_page_uri"),
        "{:?}",
        a.pagination.value
    );
    assert_eq!(a.primary_key.value, vec!["sid".to_string()]);
    assert_eq!(detect::auth(&spec).value.kind, "basic");
}

#[test]
fn slack_cursor_in_response_metadata() {
    let Some(spec) = real("slack.json") else {
        return;
    };
    let streams = detect::rank_streams(&spec);
    let s = stream_at(&streams, "/chat.scheduledMessages.list");
    assert!(
        matches!(&s.pagination.value, Pagination::Cursor { cursor_source, cursor_path, .. } if cursor_source == "body" && cursor_path == "response_metadata.next_cursor"),
        "{:?}",
        s.pagination.value
    );
}

#[test]
fn petstores_swagger2_and_openapi31() {
    for (name, version) in [
        ("petstore-swagger2.yaml", "2.0"),
        ("petstore-3.1.yaml", "3.1"),
    ] {
        let Some(spec) = real(name) else { return };
        assert!(spec.doc.version_string.starts_with(version));
        let streams = detect::rank_streams(&spec);
        let pets = stream_at(&streams, "/pets");
        assert_eq!(pets.collection.value.record_selector, "");
        assert_eq!(pets.primary_key.value, vec!["id".to_string()]);
    }
}

#[test]
fn every_real_spec_answers_within_budget() {
    let names = [
        "stripe.json",
        "openai.json",
        "asana.json",
        "spotify.json",
        "slack.json",
        "twilio.json",
        "notion.json",
        "gitlab.json",
        "trello.json",
        "petstore-swagger2.yaml",
        "petstore-3.1.yaml",
    ];
    for name in names {
        let Some(spec) = real(name) else { return };
        let b = Budget::new(2048, Format::Text);
        assert!(
            query::summary(&spec, b).rendered.len() <= 2048,
            "{name} summary"
        );
        assert!(
            query::list_operations(&spec, &ListFilter::default(), b)
                .rendered
                .len()
                <= 2048,
            "{name} list"
        );
        for op in spec.index.operations.iter().take(40) {
            let a = query::show_operation(&spec, &op.key(), b).unwrap();
            assert!(
                a.rendered.len() <= 2048,
                "{name} {}: {}",
                op.key(),
                a.rendered.len()
            );
        }
        for s in spec.index.schema_names.iter().take(40) {
            let a = query::show_schema(&spec, s, b).unwrap();
            assert!(a.rendered.len() <= 2048, "{name} schema {s}");
        }
    }
}

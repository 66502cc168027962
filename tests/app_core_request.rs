//! Issue form → ConnectorRequest, and the form itself.

use connector_factory::request::{self, Auth, Field, Language};
use serde_yaml::Value;
use std::path::Path;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/requests").join(name)).unwrap()
}

#[test]
fn well_formed_request() {
    let req = request::parse(&fixture("stripe.md")).unwrap();
    assert_eq!(req.name, "Stripe");
    assert_eq!(req.slug, "stripe");
    assert_eq!(req.docs_url, "https://docs.stripe.com/api");
    assert_eq!(
        req.openapi_url.as_deref(),
        Some("https://raw.githubusercontent.com/stripe/openapi/master/openapi/spec3.json")
    );
    assert_eq!(req.auth, Auth::BearerToken);
    assert_eq!(req.streams, vec!["customers", "invoices", "payment_intents"]);
    assert_eq!(req.language, Language::Python);
    let notes = req.notes.unwrap();
    assert!(notes.starts_with("List endpoints paginate with `starting_after`"), "{notes}");
    // A heading the form does not have belongs to the answer above it.
    assert!(notes.contains("### Example"), "{notes}");
}

#[test]
fn malformed_request_names_every_bad_field() {
    let err = request::parse(&fixture("malformed.md")).unwrap_err();
    assert_eq!(
        err.fields(),
        vec![Field::Name, Field::DocsUrl, Field::OpenapiUrl, Field::Auth, Field::Streams, Field::Language]
    );
    let text = err.to_string();
    assert!(text.contains("API docs URL: expected an http(s) URL, got 'n/a'"), "{text}");
    assert!(
        text.contains("OpenAPI description URL: expected an http(s) URL, got 'ftp://example.com/openapi.json'"),
        "{text}"
    );
    assert!(text.contains("Connector name: expected letters, digits, spaces or hyphens"), "{text}");
    assert!(text.contains("Auth type: expected one of 'API key', 'Bearer token', 'Basic', 'OAuth2', 'None', 'Not sure', got 'magic link'"), "{text}");
    assert!(text.contains("Streams wanted: expected at least one stream name"), "{text}");
    assert!(text.contains("Language: expected 'Python' or 'TypeScript', got 'Rust'"), "{text}");
    // One comment lists all of them.
    let md = err.to_markdown();
    assert_eq!(md.matches("\n- **").count(), 6, "{md}");
}

#[test]
fn no_response_means_empty() {
    let body = "### Connector name\n\nAcme Widgets\n\n### API docs URL\n\nhttps://acme.example/docs\n\n\
                ### OpenAPI description URL\n\n_No response_\n\n### Auth type\n\nNot sure\n\n\
                ### Streams wanted\n\nwidgets, gadgets\n\n### Language\n\n_No response_\n\n### Notes\n\n_No response_\n";
    let req = request::parse(body).unwrap();
    assert_eq!(req.slug, "acme-widgets");
    assert_eq!(req.openapi_url, None);
    assert_eq!(req.auth, Auth::NotSure);
    assert_eq!(req.streams, vec!["widgets", "gadgets"]);
    assert_eq!(req.language, Language::Python, "python is the default");
    assert_eq!(req.notes, None);
}

#[test]
fn required_fields_left_empty_or_missing_are_reported() {
    let body = "### Connector name\n\n_No response_\n\n### Auth type\n\nAPI key\n";
    let err = request::parse(body).unwrap_err();
    assert_eq!(err.fields(), vec![Field::Name, Field::DocsUrl, Field::Streams]);
    let text = err.to_string();
    assert!(text.contains("Connector name: required"), "{text}");
    assert!(text.contains("API docs URL: missing: the issue has no '### API docs URL' section"), "{text}");

    let err = request::parse("Please build a Stripe connector, thanks!").unwrap_err();
    assert_eq!(err.fields(), vec![Field::Name, Field::DocsUrl, Field::Auth, Field::Streams]);
}

#[test]
fn typescript_and_odd_stream_names() {
    let body = "### Connector name\n\nx\n\n### API docs URL\n\nhttp://x.example\n\n### Auth type\n\nBasic\n\n\
                ### Streams wanted\n\n/v1/customers\n\n### Language\n\nTypeScript\n";
    let err = request::parse(body).unwrap_err();
    assert_eq!(err.fields(), vec![Field::Streams]);
    assert!(err.to_string().contains("got '/v1/customers'"), "{err}");
}

/// The issue form's labels and the parser's headings are the same set.
#[test]
fn issue_form_labels_are_the_headings_the_parser_reads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".github/ISSUE_TEMPLATE/connector-request.yml");
    let form: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let labels: Vec<String> = form["body"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|field| field["type"].as_str() != Some("markdown"))
        .map(|field| field["attributes"]["label"].as_str().expect("every input has a label").to_string())
        .collect();
    assert_eq!(labels, request::headings());
    assert!(form["labels"].as_sequence().unwrap().iter().any(|l| l.as_str() == Some(request::LABEL)));

    // Every dropdown option is a value the parser accepts.
    for field in form["body"].as_sequence().unwrap() {
        if field["type"].as_str() != Some("dropdown") {
            continue;
        }
        let label = field["attributes"]["label"].as_str().unwrap();
        for option in field["attributes"]["options"].as_sequence().unwrap() {
            let option = option.as_str().unwrap();
            let body = format!(
                "### Connector name\n\nx\n\n### API docs URL\n\nhttps://x.example\n\n### Auth type\n\n{}\n\n\
                 ### Streams wanted\n\nthings\n\n### Language\n\n{}\n",
                if label == "Auth type" { option } else { "None" },
                if label == "Language" { option } else { "Python" },
            );
            request::parse(&body).unwrap_or_else(|e| panic!("{label} option '{option}' refused: {e}"));
        }
    }
}

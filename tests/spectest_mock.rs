//! The mock API on its own, driven with reqwest: every pagination style, record selector, auth
//! type, the incremental filter, every fault action, the terminal-page variants, the request log
//! and shutdown.

use base64::Engine;
use connector_factory::spectest::manifest::{AuthSpec, LoadedStream, StreamSpec, get_path};
use connector_factory::spectest::mock_api::{
    FaultAction, FaultRule, MockServer, MockSetup, StreamData, TerminalMode, cursor_epoch,
    record_count,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const TOKEN: &str = "tok_test_abc/def+ghi=";

fn schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "uid": {"type": "string", "format": "uuid"},
            "num": {"type": "integer"},
            "created": {"type": "integer"},
            "updated_at": {"type": "string", "format": "date-time"},
            "name": {"type": ["string", "null"]}
        },
        "required": ["id"]
    })
}

fn fixtures() -> Vec<Value> {
    vec![
        json!({"id": "cus_A", "uid": "123e4567-e89b-12d3-a456-426614174000", "num": 7, "created": 1700000000, "updated_at": "2023-11-14T22:13:20Z", "name": "a"}),
        json!({"id": "cus_B", "uid": "123e4567-e89b-12d3-a456-426614174001", "num": 3, "created": 1700000100, "updated_at": "2023-11-14T22:15:00Z", "name": null}),
    ]
}

fn stream(spec: Value) -> LoadedStream {
    let mut base = json!({"name": "items", "path": "/v1/items", "schema": "s.json", "fixtures": "f.json", "primary_key": ["id"], "record_selector": "data"});
    for (k, v) in spec.as_object().unwrap() {
        base[k] = v.clone();
    }
    LoadedStream {
        spec: serde_json::from_value::<StreamSpec>(base).unwrap(),
        schema: schema(),
        fixtures: fixtures(),
    }
}

fn setup(streams: Vec<StreamData>, auth: Value, creds: &[(&str, &str)]) -> MockSetup {
    MockSetup {
        streams,
        auth: serde_json::from_value::<AuthSpec>(auth).unwrap(),
        credentials: creds
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        access_token: "at_issued_token_123".into(),
        page_size: 5,
        faults: vec![],
        terminal: TerminalMode::Normal,
    }
}

fn bearer_setup(spec: Value) -> MockSetup {
    let data = StreamData::generate(&stream(spec), &BTreeMap::new(), record_count(5));
    setup(vec![data], json!({"type": "bearer"}), &[("token", TOKEN)])
}

fn qs<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
        .finish()
}

fn with_query<K: AsRef<str>, V: AsRef<str>>(url: &str, pairs: &[(K, V)]) -> String {
    if pairs.is_empty() {
        url.to_string()
    } else {
        format!("{url}?{}", qs(pairs))
    }
}

fn post_form(req: reqwest::RequestBuilder, pairs: &[(&str, &str)]) -> reqwest::RequestBuilder {
    req.header("Content-Type", "application/x-www-form-urlencoded")
        .body(qs(pairs))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A minimal client for every pagination style; returns the records and the number of requests.
async fn walk(mock: &MockServer, spec: &Value, auth: &[(&str, String)]) -> (Vec<Value>, usize) {
    let c = client();
    let data = &mock.streams()[0];
    let p = &data.pagination;
    let size = 5usize;
    let mut url = format!("{}{}", mock.base_url(), data.path);
    let mut params: Vec<(String, String)> = vec![];
    if let Some(sp) = &p.size_param {
        params.push((sp.clone(), size.to_string()));
    }
    let mut offset = 0usize;
    let mut page = p.start_page.unwrap_or(1);
    if p.kind == "page" {
        params.push((p.page_param.clone().unwrap(), page.to_string()));
    }
    let mut all = vec![];
    let mut requests = 0;
    loop {
        requests += 1;
        assert!(requests < 50, "runaway pagination for {spec}");
        let mut req = c.get(with_query(&url, &params));
        for (k, v) in auth {
            req = req.header(*k, v);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
        assert!(resp.headers().contains_key("x-request-id"));
        let link = resp
            .headers()
            .get("link")
            .map(|v| v.to_str().unwrap().to_string());
        let body: Value = resp.json().await.unwrap();
        let records = get_path(&body, &data.selector)
            .and_then(Value::as_array)
            .cloned()
            .expect("records array");
        let n = records.len();
        all.extend(records.clone());
        if n == 0 {
            break;
        }
        match p.kind.as_str() {
            "none" => break,
            "cursor" => {
                if let Some(h) = &p.has_more_path
                    && get_path(&body, h) == Some(&json!(false))
                {
                    break;
                }
                let source = if p.cursor_from_body() {
                    body.clone()
                } else {
                    records[n - 1].clone()
                };
                let cursor = match get_path(&source, p.cursor_path.as_deref().unwrap()) {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(x)) => x.to_string(),
                    _ => break,
                };
                params.retain(|(k, _)| k != p.cursor_param.as_deref().unwrap());
                params.push((p.cursor_param.clone().unwrap(), cursor));
            }
            "offset" => {
                offset += n;
                if n < size {
                    break;
                }
                if let Some(total) = p
                    .total_path
                    .as_deref()
                    .and_then(|t| get_path(&body, t))
                    .and_then(Value::as_u64)
                    && offset as u64 >= total
                {
                    break;
                }
                params.retain(|(k, _)| k != p.offset_param.as_deref().unwrap());
                params.push((p.offset_param.clone().unwrap(), offset.to_string()));
            }
            "page" => {
                if n < size {
                    break;
                }
                page += 1;
                params.retain(|(k, _)| k != p.page_param.as_deref().unwrap());
                params.push((p.page_param.clone().unwrap(), page.to_string()));
            }
            "link_header" => {
                let Some(link) = link else { break };
                let next = link
                    .split(';')
                    .next()
                    .unwrap()
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string();
                url = next;
                params.clear();
            }
            "next_url" => match get_path(&body, p.next_url_path.as_deref().unwrap()) {
                Some(Value::String(next)) => {
                    url = next.clone();
                    params.clear();
                }
                _ => break,
            },
            other => panic!("unknown style {other}"),
        }
    }
    (all, requests)
}

fn keys(records: &[Value]) -> BTreeSet<String> {
    records.iter().map(|r| r["id"].to_string()).collect()
}

#[test]
fn generated_records_are_unique_valid_and_ordered() {
    let s = stream(
        json!({"incremental": {"cursor_field": "created", "request_param": "since", "format": "unix"}}),
    );
    let data = StreamData::generate(&s, &BTreeMap::new(), record_count(5));
    assert_eq!(data.records.len(), 18, "3.5 pages of 5, rounded up");
    assert_eq!(keys(&data.records).len(), 18);
    let uids: BTreeSet<String> = data.records.iter().map(|r| r["uid"].to_string()).collect();
    assert_eq!(uids.len(), 2, "only primary keys change");
    let cursors: Vec<f64> = data.cursors.iter().map(|c| c.unwrap()).collect();
    assert!(
        cursors.windows(2).all(|w| w[1] > w[0]),
        "cursor values strictly increase"
    );
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema())
        .unwrap();
    for r in &data.records {
        assert!(validator.is_valid(r), "{r}");
    }

    // Integer and uuid keys, iso8601 cursors.
    let s = stream(
        json!({"primary_key": ["num", "uid"], "incremental": {"cursor_field": "updated_at", "request_param": "since", "format": "iso8601"}}),
    );
    let data = StreamData::generate(&s, &BTreeMap::new(), 12);
    let nums: BTreeSet<i64> = data
        .records
        .iter()
        .map(|r| r["num"].as_i64().unwrap())
        .collect();
    assert_eq!(nums.len(), 12);
    assert!(nums.iter().all(|n| *n > 7));
    for r in &data.records {
        assert!(validator.is_valid(r), "{r}");
        assert!(r["updated_at"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(data.keys.iter().collect::<BTreeSet<_>>().len(), 12);
}

#[tokio::test]
async fn serves_every_pagination_style() {
    let styles = vec![
        json!({"pagination": {"type": "cursor", "cursor_param": "starting_after", "cursor_source": "last_record", "cursor_path": "id", "has_more_path": "has_more", "size_param": "limit"}}),
        json!({"record_selector": "result.items", "pagination": {"type": "cursor", "cursor_param": "cursor", "cursor_source": "body", "cursor_path": "meta.next", "size_param": "per_page"}}),
        json!({"pagination": {"type": "cursor", "cursor_param": "cursor", "cursor_source": "body", "cursor_path": "next_cursor", "has_more_path": "meta.more"}}),
        json!({"pagination": {"type": "offset", "offset_param": "offset", "size_param": "limit", "total_path": "total"}}),
        json!({"pagination": {"type": "offset", "offset_param": "skip", "size_param": "take"}}),
        json!({"pagination": {"type": "page", "page_param": "page", "size_param": "per_page", "start_page": 0, "total_pages_path": "pages"}}),
        json!({"record_selector": "", "pagination": {"type": "link_header", "size_param": "per_page"}}),
        json!({"pagination": {"type": "next_url", "next_url_path": "links.next", "size_param": "limit"}}),
        json!({"record_selector": "", "pagination": {"type": "none"}}),
    ];
    for spec in styles {
        let mock = MockServer::start(bearer_setup(spec.clone())).await.unwrap();
        let expected = keys(&mock.streams()[0].records);
        let (records, requests) = walk(
            &mock,
            &spec,
            &[("Authorization", format!("Bearer {TOKEN}"))],
        )
        .await;
        assert_eq!(keys(&records), expected, "style {spec}");
        assert_eq!(records.len(), expected.len(), "no duplicates for {spec}");
        let log = mock.requests();
        assert_eq!(log.len(), requests);
        assert!(log.iter().all(|r| r.auth_ok && r.status == 200));
        if spec["pagination"]["type"] != "none" {
            assert_eq!(requests, 4, "3.5 pages → 4 requests for {spec}");
            assert!(log.last().unwrap().last_page);
            assert!(!log[0].last_page);
            assert_eq!(
                log.iter().map(|r| r.page).collect::<Vec<_>>(),
                vec![1, 2, 3, 4]
            );
        }
        mock.shutdown().await;
    }
}

#[tokio::test]
async fn checks_every_auth_type() {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    // (auth, credentials, headers that pass, headers that fail)
    type Headers = Vec<(&'static str, String)>;
    type Case = (Value, Vec<(&'static str, &'static str)>, Headers, Headers);
    let cases: Vec<Case> = vec![
        (
            json!({"type": "api_key", "in": "header", "name": "X-Api-Key"}),
            vec![("api_key", "k_secret")],
            vec![("X-Api-Key", "k_secret".into())],
            vec![("X-Api-Key", "wrong".into())],
        ),
        (
            json!({"type": "api_key", "in": "header", "name": "Authorization", "prefix": "Token "}),
            vec![("api_key", "k_secret")],
            vec![("Authorization", "Token k_secret".into())],
            vec![("Authorization", "k_secret".into())],
        ),
        (
            json!({"type": "bearer"}),
            vec![("token", TOKEN)],
            vec![("Authorization", format!("Bearer {TOKEN}"))],
            vec![("Authorization", format!("Basic {TOKEN}"))],
        ),
        (
            json!({"type": "basic"}),
            vec![("username", "u1"), ("password", "p/w+")],
            vec![("Authorization", format!("Basic {}", b64("u1:p/w+")))],
            vec![("Authorization", format!("Basic {}", b64("u1:nope")))],
        ),
        (json!({"type": "none"}), vec![], vec![], vec![]),
    ];
    let c = client();
    for (auth, creds, good, bad) in cases {
        let data = StreamData::generate(&stream(json!({})), &BTreeMap::new(), 6);
        let mock = MockServer::start(setup(vec![data], auth.clone(), &creds))
            .await
            .unwrap();
        let url = format!("{}/v1/items", mock.base_url());
        let mut req = c.get(&url);
        for (k, v) in &good {
            req = req.header(*k, v);
        }
        assert_eq!(req.send().await.unwrap().status(), 200, "{auth}");
        if auth["type"] != "none" {
            let missing = c.get(&url).send().await.unwrap();
            assert_eq!(missing.status(), 401, "{auth}");
            assert!(missing.headers().contains_key("x-request-id"));
            let body: Value = missing.json().await.unwrap();
            assert!(body["error"]["message"].is_string());
            let mut req = c.get(&url);
            for (k, v) in &bad {
                req = req.header(*k, v);
            }
            assert_eq!(req.send().await.unwrap().status(), 401, "{auth}");
        }
        mock.shutdown().await;
    }

    // api_key in the query (URL-encoded by the client, decoded by the mock).
    let data = StreamData::generate(&stream(json!({})), &BTreeMap::new(), 6);
    let mock = MockServer::start(setup(
        vec![data],
        json!({"type": "api_key", "in": "query", "name": "apikey"}),
        &[("api_key", "k/+=1")],
    ))
    .await
    .unwrap();
    let url = format!("{}/v1/items", mock.base_url());
    assert_eq!(
        c.get(with_query(&url, &[("apikey", "k/+=1")]))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(with_query(&url, &[("apikey", "k")]))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    mock.shutdown().await;
}

#[tokio::test]
async fn oauth2_token_endpoint() {
    let c = client();
    for (auth, creds) in [
        (
            json!({"type": "oauth2", "grant_type": "client_credentials", "token_url": "https://auth.example.com/oauth/token"}),
            vec![("client_id", "cid"), ("client_secret", "cs/+")],
        ),
        (
            json!({"type": "oauth2", "grant_type": "refresh_token", "token_url": "/token"}),
            vec![
                ("client_id", "cid"),
                ("client_secret", "cs/+"),
                ("refresh_token", "rt1"),
            ],
        ),
    ] {
        let data = StreamData::generate(&stream(json!({})), &BTreeMap::new(), 6);
        let mock = MockServer::start(setup(vec![data], auth.clone(), &creds))
            .await
            .unwrap();
        let token_url = format!(
            "{}{}",
            mock.base_url(),
            if auth["grant_type"] == "refresh_token" {
                "/token"
            } else {
                "/oauth/token"
            }
        );
        let refresh = auth["grant_type"] == "refresh_token";
        let mut form = vec![
            ("grant_type", auth["grant_type"].as_str().unwrap()),
            ("client_id", "cid"),
            ("client_secret", "wrong"),
        ];
        if refresh {
            form.push(("refresh_token", "rt1"));
        }
        assert_eq!(
            post_form(c.post(&token_url), &form)
                .send()
                .await
                .unwrap()
                .status(),
            401
        );
        // Before any token was issued, no bearer value is accepted.
        let api = format!("{}/v1/items", mock.base_url());
        assert_eq!(
            c.get(&api)
                .bearer_auth("at_issued_token_123")
                .send()
                .await
                .unwrap()
                .status(),
            401
        );
        form[2] = ("client_secret", "cs/+");
        let resp = post_form(c.post(&token_url), &form).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["access_token"], "at_issued_token_123");
        // Client credentials in a Basic header work too.
        let mut form2 = vec![("grant_type", auth["grant_type"].as_str().unwrap())];
        if refresh {
            form2.push(("refresh_token", "rt1"));
        }
        let resp = post_form(
            c.post(&token_url).basic_auth("cid", Some("cs%2F%2B")),
            &form2,
        )
        .send()
        .await
        .unwrap();
        assert_eq!(
            resp.status(),
            200,
            "basic client auth with form-encoded pair"
        );
        assert_eq!(
            c.get(&api)
                .bearer_auth("at_issued_token_123")
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(
            c.get(&api)
                .bearer_auth("at_other")
                .send()
                .await
                .unwrap()
                .status(),
            401
        );
        let log = mock.requests();
        assert!(log[0].token_endpoint && !log[0].auth_ok);
        assert!(log.iter().any(|r| r.token_endpoint && r.auth_ok));
        mock.shutdown().await;
    }
}

#[tokio::test]
async fn incremental_filter_is_inclusive() {
    for (format, value) in [("unix", None), ("iso8601", Some("2024-01-01T05:00:00Z"))] {
        let field = if format == "unix" {
            "created"
        } else {
            "updated_at"
        };
        let s = stream(
            json!({"record_selector": "data", "incremental": {"cursor_field": field, "request_param": "since", "format": format}}),
        );
        let data = StreamData::generate(&s, &BTreeMap::new(), 10);
        let sixth = data.records[5][field].clone();
        let mock = MockServer::start(setup(vec![data], json!({"type": "none"}), &[]))
            .await
            .unwrap();
        let since = value
            .map(str::to_string)
            .unwrap_or_else(|| sixth.to_string());
        assert_eq!(cursor_epoch(&json!(since.clone())), cursor_epoch(&sixth));
        let body: Value = client()
            .get(with_query(
                &format!("{}/v1/items", mock.base_url()),
                &[("since", since.as_str())],
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let got = body["data"].as_array().unwrap();
        assert_eq!(
            got.len(),
            5,
            "records 5..9, the equal one included ({format})"
        );
        assert_eq!(got[0][field], sixth);
        let bad = client()
            .get(with_query(
                &format!("{}/v1/items", mock.base_url()),
                &[("since", "soon")],
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400);
        mock.shutdown().await;
    }
}

#[tokio::test]
async fn fault_actions() {
    let spec =
        json!({"pagination": {"type": "offset", "offset_param": "offset", "size_param": "limit"}});
    let mut s = bearer_setup(spec);
    s.faults = vec![
        FaultRule {
            stream: "items".into(),
            page: 1,
            actions: vec![
                FaultAction::Status(500),
                FaultAction::Status(502),
                FaultAction::RetryAfterSeconds(3),
                FaultAction::RetryAfterDate(2),
            ],
            repeat_last: false,
        },
        FaultRule {
            stream: "items".into(),
            page: 2,
            actions: vec![FaultAction::Malformed, FaultAction::ZeroRemaining(2)],
            repeat_last: false,
        },
        FaultRule {
            stream: "items".into(),
            page: 3,
            actions: vec![FaultAction::Status(503)],
            repeat_last: true,
        },
        FaultRule {
            stream: "items".into(),
            page: 4,
            actions: vec![FaultAction::Slow(Duration::from_millis(1500))],
            repeat_last: false,
        },
    ];
    let mock = MockServer::start(s).await.unwrap();
    let c = client();
    let get = |q: &'static str| {
        let c = c.clone();
        let url = format!("{}/v1/items?{q}", mock.base_url());
        async move { c.get(url).bearer_auth(TOKEN).send().await.unwrap() }
    };
    assert_eq!(get("limit=5").await.status(), 500);
    assert_eq!(get("limit=5").await.status(), 502);
    let r = get("limit=5").await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "3");
    let r = get("limit=5").await;
    assert_eq!(r.status(), 429);
    let date = httpdate::parse_http_date(r.headers()["retry-after"].to_str().unwrap()).unwrap();
    let ahead = date
        .duration_since(std::time::SystemTime::now())
        .unwrap()
        .as_secs_f64();
    assert!(ahead > 0.5 && ahead <= 2.0, "{ahead}");
    assert_eq!(get("limit=5").await.status(), 200, "burst over");

    let r = get("limit=5&offset=5").await;
    assert_eq!(r.status(), 200);
    assert!(
        serde_json::from_str::<Value>(&r.text().await.unwrap()).is_err(),
        "malformed body"
    );
    let r = get("limit=5&offset=5").await;
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    let reset: f64 = r.headers()["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(reset > connector_factory::spectest::mock_api::now_epoch());

    for _ in 0..3 {
        assert_eq!(get("limit=5&offset=10").await.status(), 503, "persistent");
    }
    // Slow: a client with a short timeout gives up; the mock logs the request anyway.
    let t = Instant::now();
    let err = c
        .get(format!("{}/v1/items?limit=5&offset=15", mock.base_url()))
        .bearer_auth(TOKEN)
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(err.is_err());
    assert!(t.elapsed() < Duration::from_millis(1200));
    let r = get("limit=5&offset=15").await;
    assert_eq!(r.status(), 200, "slow only on the first attempt");

    let log = mock.requests();
    let page1: Vec<_> = log.iter().filter(|r| r.page == 1).collect();
    assert_eq!(
        page1.iter().map(|r| r.attempt).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(page1[2].announced_wait, Some(3.0));
    assert!(page1[3].announced_wait.unwrap() > 0.5);
    assert!(page1[0].fault.as_deref() == Some("status 500"));
    assert!(
        log.windows(2)
            .all(|w| w[1].at >= w[0].at && w[1].seq == w[0].seq + 1)
    );
    let ids: BTreeSet<&str> = log.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids.len(), log.len(), "request ids are unique");
    mock.shutdown().await;
}

#[tokio::test]
async fn client_errors_and_unknown_routes() {
    let mut s = bearer_setup(json!({}));
    s.faults = vec![FaultRule {
        stream: "items".into(),
        page: 0,
        actions: vec![FaultAction::Status(404)],
        repeat_last: true,
    }];
    let mock = MockServer::start(s).await.unwrap();
    let c = client();
    let r = c
        .get(format!("{}/v1/items", mock.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = c
        .get(format!("{}/v1/nothing", mock.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers().contains_key("x-request-id"));
    let r = c
        .post(format!("{}/v1/items", mock.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let r = c
        .get(format!("{}/v1/items?limit=abc", mock.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "faults come before parameter checks");
    mock.shutdown().await;
}

#[tokio::test]
async fn terminal_page_variants() {
    // Empty tail: exactly four full pages, the fourth still says has_more, the fifth is empty.
    let spec = json!({"pagination": {"type": "cursor", "cursor_param": "starting_after", "cursor_source": "last_record", "cursor_path": "id", "has_more_path": "has_more", "size_param": "limit"}});
    let data = StreamData::generate(&stream(spec.clone()), &BTreeMap::new(), 20);
    let mut s = setup(vec![data], json!({"type": "bearer"}), &[("token", TOKEN)]);
    s.terminal = TerminalMode::EmptyTail;
    let mock = MockServer::start(s).await.unwrap();
    let (records, requests) = walk(
        &mock,
        &spec,
        &[("Authorization", format!("Bearer {TOKEN}"))],
    )
    .await;
    assert_eq!(records.len(), 20);
    assert_eq!(requests, 5);
    let log = mock.requests();
    assert!(log[4].empty_page && log[4].last_page);
    assert!(!log[3].last_page);
    mock.shutdown().await;

    // Offset with a total: the total is inflated so the empty page is reached.
    let spec = json!({"pagination": {"type": "offset", "offset_param": "offset", "size_param": "limit", "total_path": "total"}});
    let data = StreamData::generate(&stream(spec.clone()), &BTreeMap::new(), 20);
    let mut s = setup(vec![data], json!({"type": "none"}), &[]);
    s.terminal = TerminalMode::EmptyTail;
    let mock = MockServer::start(s).await.unwrap();
    let (records, requests) = walk(&mock, &spec, &[]).await;
    assert_eq!((records.len(), requests), (20, 5));
    mock.shutdown().await;

    // Last page carries a cursor: has_more false, but next_cursor is still set.
    let spec = json!({"pagination": {"type": "cursor", "cursor_param": "cursor", "cursor_source": "body", "cursor_path": "next_cursor", "has_more_path": "has_more"}});
    let data = StreamData::generate(&stream(spec.clone()), &BTreeMap::new(), 18);
    let mut s = setup(vec![data], json!({"type": "none"}), &[]);
    s.terminal = TerminalMode::LastCarriesCursor;
    let mock = MockServer::start(s).await.unwrap();
    let c = client();
    let last: Value = c
        .get(format!("{}/v1/items?cursor=cf_15", mock.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(last["has_more"], false);
    assert_eq!(last["next_cursor"], "cf_18");
    assert_eq!(last["data"].as_array().unwrap().len(), 3);
    let beyond: Value = c
        .get(format!("{}/v1/items?cursor=cf_18", mock.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(beyond["data"].as_array().unwrap().len(), 0);
    mock.shutdown().await;

    // Same without has_more: the last page repeats the cursor it was asked with.
    let spec = json!({"pagination": {"type": "cursor", "cursor_param": "cursor", "cursor_source": "body", "cursor_path": "next"}});
    let data = StreamData::generate(&stream(spec), &BTreeMap::new(), 18);
    let mut s = setup(vec![data], json!({"type": "none"}), &[]);
    s.terminal = TerminalMode::LastCarriesCursor;
    let mock = MockServer::start(s).await.unwrap();
    let last: Value = c
        .get(format!("{}/v1/items?cursor=cf_15", mock.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(last["next"], "cf_15");
    mock.shutdown().await;
}

#[tokio::test]
async fn path_placeholders_and_static_params() {
    let spec = json!({"path": "/repos/{owner}/items", "params": {"state": "all"}});
    let params: BTreeMap<String, String> = [("owner".to_string(), "cf-owner".to_string())]
        .into_iter()
        .collect();
    let data = StreamData::generate(&stream(spec), &params, 6);
    assert_eq!(data.path, "/repos/cf-owner/items");
    let mock = MockServer::start(setup(vec![data], json!({"type": "none"}), &[]))
        .await
        .unwrap();
    let r = client()
        .get(format!("{}/repos/cf-owner/items", mock.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    mock.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_the_port_and_wakes_slow_responses() {
    let mut s = bearer_setup(json!({}));
    s.faults = vec![FaultRule {
        stream: "items".into(),
        page: 0,
        actions: vec![FaultAction::Slow(Duration::from_secs(30))],
        repeat_last: true,
    }];
    let mock = MockServer::start(s).await.unwrap();
    let addr = mock.addr();
    let url = format!("{}/v1/items", mock.base_url());
    let pending = tokio::spawn(async move {
        client()
            .get(url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .map(|r| r.status())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    mock.shutdown().await;
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        t.elapsed()
    );
    let answered = tokio::time::timeout(Duration::from_secs(3), pending)
        .await
        .expect("slow response was woken")
        .unwrap();
    assert!(answered.is_ok() || answered.is_err());
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "port still open after shutdown"
    );

    // Dropping a mock stops it as well.
    let mock = MockServer::start(bearer_setup(json!({}))).await.unwrap();
    let addr = mock.addr();
    drop(mock);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "port still open after drop"
    );
}

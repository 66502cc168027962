//! A scripted fake LLM server for the agent tests: an axum server on 127.0.0.1:0 that answers
//! the Anthropic Messages API or the OpenAI Chat Completions API with the bodies of a script
//! (`tests/fixtures/llm/*.json`, made by `make_fixtures.py`), one step per request, and checks
//! every request it receives: headers, tool definitions, message order, and that the tool
//! results answer exactly the tool calls it served last, by id. Problems are collected, not
//! panicked on, so a test can assert on them; the request that shows one gets an HTTP 400.
//!
//! [`FakeLlm::start_per_conversation`] serves many sessions at once (the fleet benchmark): every
//! conversation gets the whole script, each request the step its own progress calls for.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

pub const API_KEY: &str = "sk-test-fake0123456789abcdefghijklmnop";

/// How long a fake server lives at most, whatever the test does.
const LIFETIME: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

struct Inner {
    wire: String,
    model: String,
    steps: VecDeque<Value>,
    received: Vec<Received>,
    problems: Vec<String>,
    /// Tool call ids of the last successful answer, in order.
    served_calls: Vec<String>,
    /// Per-conversation mode: steps are picked by the request's assistant turns, never used up,
    /// and request bodies are not kept.
    per_conversation: bool,
}

#[derive(Clone)]
pub struct FakeLlm {
    pub base_url: String,
    inner: Arc<Mutex<Inner>>,
}

pub fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llm").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

impl FakeLlm {
    /// Starts a server replaying `tests/fixtures/llm/<name>`.
    pub async fn start(name: &str) -> FakeLlm {
        FakeLlm::start_script(fixture(name)).await
    }

    /// Starts a server replaying a script made by the test (same shape as the fixture files).
    pub async fn start_script(script: Value) -> FakeLlm {
        FakeLlm::start_mode(script, false, LIFETIME).await
    }

    /// Starts a server that answers any number of conversations, in parallel, each with the whole
    /// of `script`: a request gets the step after the assistant turns it carries (0 → the first
    /// step), and the tool results it carries are checked against the previous step's calls.
    /// Steps are never used up; request bodies are not kept in [`received`](Self::received)
    /// (hundreds of sessions would hold hundreds of megabytes). It lives for `lifetime`.
    pub async fn start_per_conversation(script: Value, lifetime: Duration) -> FakeLlm {
        FakeLlm::start_mode(script, true, lifetime).await
    }

    async fn start_mode(script: Value, per_conversation: bool, lifetime: Duration) -> FakeLlm {
        let inner = Arc::new(Mutex::new(Inner {
            wire: script["wire"].as_str().expect("wire").to_string(),
            model: script["model"].as_str().expect("model").to_string(),
            steps: script["steps"].as_array().expect("steps").iter().cloned().collect(),
            received: vec![],
            problems: vec![],
            served_calls: vec![],
            per_conversation,
        }));
        let app = Router::new()
            .route("/v1/messages", post(handle))
            .route("/v1/chat/completions", post(handle))
            .fallback(|uri: axum::http::Uri| async move { (StatusCode::NOT_FOUND, format!("no route {uri}")) })
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(lifetime, axum::serve(listener, app)).await;
        });
        FakeLlm { base_url: format!("http://{addr}"), inner }
    }

    pub fn model(&self) -> String {
        self.inner.lock().unwrap().model.clone()
    }
    pub fn problems(&self) -> Vec<String> {
        self.inner.lock().unwrap().problems.clone()
    }
    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }
    pub fn steps_left(&self) -> usize {
        self.inner.lock().unwrap().steps.len()
    }
}

async fn handle(State(inner): State<Arc<Mutex<Inner>>>, uri: axum::http::Uri, headers: HeaderMap, body: Bytes) -> Response {
    let (step, problems) = {
        let mut st = inner.lock().unwrap();
        let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let kept = if st.per_conversation { Value::Null } else { parsed.clone() };
        st.received.push(Received { at: Instant::now(), path: uri.path().to_string(), headers: headers.clone(), body: kept });
        // Per conversation: this conversation's last answer was the step before its own.
        let turn = assistant_turns(&parsed);
        if st.per_conversation {
            let previous = turn.checked_sub(1).and_then(|i| st.steps.get(i)).map(|s| served_call_ids(&st.wire, &s["body"]));
            st.served_calls = previous.unwrap_or_default();
        }
        let mut problems = check_request(&st, uri.path(), &headers, &parsed);
        let step = if st.per_conversation { st.steps.get(turn).cloned() } else { st.steps.pop_front() };
        if step.is_none() {
            problems.push("the script has no more steps, but another request came".into());
        }
        if let Some(step) = &step {
            problems.extend(check_expectations(&st, step, &parsed));
        }
        let n = st.received.len();
        let problems: Vec<String> = problems.into_iter().map(|p| format!("request {n}: {p}")).collect();
        st.problems.extend(problems.iter().cloned());
        if let Some(step) = &step {
            if problems.is_empty() && step["status"] == 200 {
                st.served_calls = served_call_ids(&st.wire, &step["body"]);
            }
        }
        (step, problems)
    };
    if !problems.is_empty() {
        // A 400 is not retried, so the session stops at the first wrong request.
        let msg = problems.join("; ");
        let body = json!({"type": "error", "error": {"type": "invalid_request_error", "message": format!("fake server: {msg}")}});
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    let step = step.expect("checked above");
    if let Some(ms) = step["delay_ms"].as_u64() {
        tokio::time::sleep(Duration::from_millis(ms.min(10_000))).await;
    }
    let status = StatusCode::from_u16(step["status"].as_u64().unwrap_or(200) as u16).unwrap();
    let mut resp = (status, axum::Json(step["body"].clone())).into_response();
    for (k, v) in step["headers"].as_object().into_iter().flatten() {
        resp.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.as_str().unwrap_or_default().parse().unwrap(),
        );
    }
    if let Some(secs) = step["retry_after_date_secs"].as_u64() {
        let when = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(secs));
        resp.headers_mut().insert("retry-after", when.parse().unwrap());
    }
    resp
}

/// How many assistant turns the request's conversation holds (both wires call the role so).
fn assistant_turns(body: &Value) -> usize {
    body["messages"].as_array().into_iter().flatten().filter(|m| m["role"] == "assistant").count()
}

fn served_call_ids(wire: &str, body: &Value) -> Vec<String> {
    if wire == "anthropic" {
        body["content"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|b| b["type"] == "tool_use")
            .map(|b| b["id"].as_str().unwrap_or_default().to_string())
            .collect()
    } else {
        body["choices"][0]["message"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["id"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Shape checks every request must pass.
fn check_request(st: &Inner, path: &str, h: &HeaderMap, body: &Value) -> Vec<String> {
    let mut p = Vec::new();
    if !header(h, "content-type").is_some_and(|c| c.starts_with("application/json")) {
        p.push(format!("content-type is {:?}, expected application/json", header(h, "content-type")));
    }
    if body["model"] != json!(st.model) {
        p.push(format!("model is {}, expected {:?}", body["model"], st.model));
    }
    let Some(messages) = body["messages"].as_array() else {
        p.push("no messages array".into());
        return p;
    };
    let Some(tools) = body["tools"].as_array() else {
        p.push("no tools array".into());
        return p;
    };
    let tool_names: Vec<&str>;
    if st.wire == "anthropic" {
        if path != "/v1/messages" {
            p.push(format!("path {path}, expected /v1/messages"));
        }
        if header(h, "x-api-key") != Some(API_KEY) {
            p.push("x-api-key header missing or wrong".into());
        }
        if header(h, "anthropic-version") != Some("2023-06-01") {
            p.push(format!("anthropic-version is {:?}", header(h, "anthropic-version")));
        }
        if h.contains_key("authorization") {
            p.push("an Authorization header was sent to Anthropic".into());
        }
        if !body["max_tokens"].as_u64().is_some_and(|n| n > 0) {
            p.push("max_tokens missing".into());
        }
        if !body["system"].as_str().is_some_and(|s| s.contains("# Skill: connector-building")) {
            p.push("the system prompt is missing or lacks the skills".into());
        }
        for t in tools {
            let keys: Vec<&String> = t.as_object().map(|o| o.keys().collect()).unwrap_or_default();
            if keys.len() != 3 || !t["name"].is_string() || !t["description"].is_string() || t["input_schema"]["type"] != "object" {
                p.push(format!("tool definition not in Anthropic form: {t}"));
            }
        }
        tool_names = tools.iter().filter_map(|t| t["name"].as_str()).collect();
        // Roles alternate, starting with the user.
        for (i, m) in messages.iter().enumerate() {
            let want = if i % 2 == 0 { "user" } else { "assistant" };
            if m["role"] != want {
                p.push(format!("messages[{i}].role is {}, expected {want}", m["role"]));
            }
            if !m["content"].as_array().is_some_and(|c| !c.is_empty()) {
                p.push(format!("messages[{i}].content is not a non-empty array of blocks"));
            }
        }
        if messages.len() >= 2 {
            let prev = &messages[messages.len() - 2];
            let last = &messages[messages.len() - 1];
            let uses: Vec<&str> = prev["content"].as_array().into_iter().flatten().filter(|b| b["type"] == "tool_use").filter_map(|b| b["id"].as_str()).collect();
            if uses != st.served_calls.iter().map(String::as_str).collect::<Vec<_>>() {
                p.push(format!("the assistant turn echoes tool_use ids {uses:?}, but the server sent {:?}", st.served_calls));
            }
            let results: Vec<&Value> = last["content"].as_array().into_iter().flatten().filter(|b| b["type"] == "tool_result").collect();
            let ids: Vec<&str> = results.iter().filter_map(|b| b["tool_use_id"].as_str()).collect();
            if ids != uses {
                p.push(format!("tool_result blocks answer {ids:?}, expected {uses:?}"));
            }
            for r in results {
                if !r["content"].is_string() {
                    p.push(format!("tool_result content is not a string: {r}"));
                }
                if r.get("is_error").is_some_and(|e| !e.is_boolean()) {
                    p.push(format!("tool_result is_error is not a boolean: {r}"));
                }
            }
        }
    } else {
        if path != "/v1/chat/completions" {
            p.push(format!("path {path}, expected /v1/chat/completions"));
        }
        if header(h, "authorization") != Some(&format!("Bearer {API_KEY}")) {
            p.push("Authorization: Bearer header missing or wrong".into());
        }
        if h.contains_key("x-api-key") {
            p.push("an x-api-key header was sent to an OpenAI-compatible server".into());
        }
        if !body["max_tokens"].as_u64().is_some_and(|n| n > 0) {
            p.push("max_tokens missing".into());
        }
        if messages.first().map(|m| &m["role"]) != Some(&json!("system"))
            || !messages[0]["content"].as_str().is_some_and(|s| s.contains("# Skill: connector-building"))
        {
            p.push("messages[0] is not the system prompt with the skills".into());
        }
        for t in tools {
            let f = &t["function"];
            if t["type"] != "function" || !f["name"].is_string() || !f["description"].is_string() || f["parameters"]["type"] != "object" {
                p.push(format!("tool definition not in function form: {t}"));
            }
        }
        tool_names = tools.iter().filter_map(|t| t["function"]["name"].as_str()).collect();
        // The tool messages after the last assistant turn answer its calls, in order.
        if let Some(at) = messages.iter().rposition(|m| m["role"] == "assistant") {
            let calls: Vec<&str> = messages[at]["tool_calls"].as_array().into_iter().flatten().filter_map(|c| c["id"].as_str()).collect();
            if calls != st.served_calls.iter().map(String::as_str).collect::<Vec<_>>() {
                p.push(format!("the assistant turn echoes tool_calls {calls:?}, but the server sent {:?}", st.served_calls));
            }
            for c in messages[at]["tool_calls"].as_array().into_iter().flatten() {
                if !c["function"]["arguments"].is_string() || c["type"] != "function" {
                    p.push(format!("echoed tool call not in function form: {c}"));
                }
            }
            let answered: Vec<&str> = messages[at + 1..].iter().filter(|m| m["role"] == "tool").filter_map(|m| m["tool_call_id"].as_str()).collect();
            if answered != calls {
                p.push(format!("tool messages answer {answered:?}, expected {calls:?}"));
            }
        }
    }
    // An improver session (it says so first in its system prompt) gets the file tools only.
    let system = if st.wire == "anthropic" { body["system"].as_str() } else { messages.first().and_then(|m| m["content"].as_str()) };
    let improver = system.is_some_and(|s| s.starts_with("You are the improver"));
    let wanted: &[&str] = if improver {
        &["list_files", "read_file", "write_file", "finish", "give_up"]
    } else {
        &["list_files", "read_file", "write_file", "fetch_url", "validate", "spec_test", "finish", "give_up"]
    };
    if improver && tool_names.len() != wanted.len() {
        p.push(format!("an improver session is offered {tool_names:?}, expected exactly {wanted:?}"));
    }
    for &wanted in wanted {
        if !tool_names.contains(&wanted) {
            p.push(format!("tool {wanted} is not offered"));
        }
    }
    p
}

/// The step's own expectations on the results of the previous turn.
fn check_expectations(st: &Inner, step: &Value, body: &Value) -> Vec<String> {
    let mut p = Vec::new();
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    // (id, content, is_error) of every tool result in the request, and the last user text.
    let mut results = Vec::new();
    let mut last_user_text = String::new();
    for m in &messages {
        if st.wire == "anthropic" {
            for b in m["content"].as_array().into_iter().flatten() {
                if b["type"] == "tool_result" {
                    results.push((b["tool_use_id"].as_str().unwrap_or("").to_string(), b["content"].as_str().unwrap_or("").to_string(), b["is_error"] == true));
                }
                if m["role"] == "user" && b["type"] == "text" {
                    last_user_text = b["text"].as_str().unwrap_or("").to_string();
                }
            }
        } else if m["role"] == "tool" {
            let content = m["content"].as_str().unwrap_or("").to_string();
            let is_error = content.starts_with("ERROR: ");
            results.push((m["tool_call_id"].as_str().unwrap_or("").to_string(), content, is_error));
        } else if m["role"] == "user" {
            last_user_text = m["content"].as_str().unwrap_or("").to_string();
        }
    }
    for (id, want) in step["expect"]["tool_results"].as_object().into_iter().flatten() {
        let Some((_, content, is_error)) = results.iter().find(|(i, _, _)| i == id) else {
            p.push(format!("no tool result for {id}"));
            continue;
        };
        if let Some(e) = want["is_error"].as_bool() {
            if e != *is_error {
                p.push(format!("result of {id}: is_error {is_error}, expected {e}; content: {}", short(content)));
            }
        }
        if let Some(s) = want["contains"].as_str() {
            if !content.contains(s) {
                p.push(format!("result of {id} does not contain {s:?}: {}", short(content)));
            }
        }
    }
    if let Some(s) = step["expect"]["user_text_contains"].as_str() {
        if !last_user_text.contains(s) {
            p.push(format!("the last user text does not contain {s:?}: {}", short(&last_user_text)));
        }
    }
    p
}

fn short(s: &str) -> String {
    let cut: String = s.chars().take(1500).collect();
    if cut.len() < s.len() { format!("{cut}…") } else { cut }
}

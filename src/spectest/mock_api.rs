//! A fault-injecting mock of a connector's own API, built from its manifest and fixtures.
//!
//! The mock serves every stream at its declared method and path with its record selector,
//! pagination style, auth and incremental filter, over plain HTTP on `127.0.0.1:0`. Records are
//! cloned from the fixtures with fresh primary keys (and, for incremental streams, increasing
//! cursor values). A [`FaultRule`] list turns chosen pages into 5xx bursts, 429s, slow or
//! malformed responses, and so on. Every request is logged with its arrival time so the checks
//! can measure retries, back-off and rate limits. Dropping or shutting down the [`MockServer`]
//! stops the listener and wakes any response still sleeping.

use super::manifest::{AuthSpec, Incremental, LoadedStream, Pagination, get_path, set_path};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// First generated cursor value: 2024-01-01T00:00:00Z; each record is one hour later.
pub const CURSOR_BASE_EPOCH: i64 = 1_704_067_200;
const CURSOR_STEP_SECONDS: i64 = 3600;
/// Query parameter the mock puts in its own next links (link_header / next_url styles).
pub const NEXT_LINK_PARAM: &str = "cf_offset";

// ---------------------------------------------------------------------------------------------
// Dates

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `2024-01-01T00:00:00Z` for an epoch second.
pub fn format_rfc3339(epoch: i64) -> String {
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

fn format_date(epoch: i64) -> String {
    let (y, m, d) = civil_from_days(epoch.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Parses an ISO 8601 / RFC 3339 date or date-time (offset optional, UTC assumed) to epoch seconds.
pub fn parse_iso8601(text: &str) -> Option<f64> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(
            r"^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?)?\s*(Z|z|[+-]\d{2}:?\d{2})?$",
        )
        .expect("iso regex")
    });
    let c = re.captures(text.trim())?;
    let num = |i: usize| {
        c.get(i)
            .map(|m| m.as_str().parse::<i64>().unwrap_or(0))
            .unwrap_or(0)
    };
    let (y, mo, d) = (num(1), num(2), num(3));
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut secs = days_from_civil(y, mo, d) * 86_400 + num(4) * 3600 + num(5) * 60 + num(6);
    if let Some(off) = c.get(8).map(|m| m.as_str())
        && off != "Z"
        && off != "z"
    {
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let digits: String = off[1..].chars().filter(|ch| ch.is_ascii_digit()).collect();
        let hours: i64 = digits[..2].parse().ok()?;
        let minutes: i64 = digits[2..].parse().ok()?;
        secs -= sign * (hours * 3600 + minutes * 60);
    }
    let frac = c
        .get(7)
        .and_then(|m| m.as_str().parse::<f64>().ok())
        .unwrap_or(0.0);
    Some(secs as f64 + frac)
}

/// Epoch seconds of a cursor value, whatever its form: a number, a numeric string, or ISO 8601.
pub fn cursor_epoch(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().or_else(|| parse_iso8601(s)),
        _ => None,
    }
}

pub fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------------
// Data set

/// One stream's generated records and how it is served.
#[derive(Debug, Clone)]
pub struct StreamData {
    pub name: String,
    /// The concrete path (placeholders filled from the config's `params`).
    pub path: String,
    pub method: String,
    pub selector: String,
    pub pagination: Pagination,
    pub incremental: Option<Incremental>,
    pub params: BTreeMap<String, String>,
    pub primary_key: Vec<String>,
    pub records: Vec<Value>,
    /// `record_key` of each record, same order.
    pub keys: Vec<String>,
    /// Epoch seconds of each record's cursor value (incremental streams only).
    pub cursors: Vec<Option<f64>>,
}

/// A record's identity: its primary-key values, JSON-encoded and joined.
pub fn record_key(record: &Value, primary_key: &[String]) -> String {
    primary_key
        .iter()
        .map(|f| {
            get_path(record, f)
                .map(|v| v.to_string())
                .unwrap_or_else(|| "null".into())
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// Number of records per stream: at least 3.5 pages, so the last page is partial.
pub fn record_count(page_size: usize) -> usize {
    (page_size * 7).div_ceil(2).max(4)
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && [8, 4, 4, 4, 12]
            .iter()
            .zip(&parts)
            .all(|(n, p)| p.len() == *n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn schema_says_integer(schema: &Value, field: &str) -> bool {
    let ty = schema
        .get("properties")
        .and_then(|p| p.get(field))
        .and_then(|p| p.get("type"));
    match ty {
        Some(Value::String(t)) => t == "integer" || t == "number",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "integer" || t == "number"),
        _ => false,
    }
}

impl StreamData {
    /// Clones the fixtures into `count` records with unique primary keys and, for incremental
    /// streams, strictly increasing cursor values.
    pub fn generate(
        stream: &LoadedStream,
        params: &BTreeMap<String, String>,
        count: usize,
    ) -> StreamData {
        let spec = &stream.spec;
        let fixtures = &stream.fixtures;
        let mut path = spec.path.clone();
        for (name, value) in params {
            path = path.replace(&format!("{{{name}}}"), value);
        }
        if !path.starts_with('/') {
            path = format!("/{path}");
        }
        let max_int: HashMap<&str, i64> = spec
            .primary_key
            .iter()
            .map(|f| {
                let max = fixtures
                    .iter()
                    .filter_map(|r| get_path(r, f).and_then(Value::as_i64))
                    .max()
                    .unwrap_or(0);
                (f.as_str(), max)
            })
            .collect();
        let mut records = Vec::with_capacity(count);
        let mut seen = HashSet::new();
        for i in 0..count {
            let mut record = fixtures[i % fixtures.len()].clone();
            for field in &spec.primary_key {
                let fresh = match get_path(&record, field) {
                    Some(Value::Number(n)) if n.is_i64() || n.is_u64() => {
                        json!(max_int[field.as_str()] + 1 + i as i64)
                    }
                    Some(Value::Number(n)) => {
                        json!(n.as_f64().unwrap_or(0.0).floor() + 1.0 + i as f64 + 1e6)
                    }
                    Some(Value::String(s)) if is_uuid(s) => {
                        json!(format!("{}{:012x}", &s[..24], i + 1))
                    }
                    Some(Value::String(s)) => json!(format!("{s}cf{i:04}")),
                    _ if schema_says_integer(&stream.schema, field) => json!(1_000_000 + i as i64),
                    _ => json!(format!("rec{i:04}")),
                };
                set_path(&mut record, field, fresh);
            }
            if let Some(inc) = &spec.incremental {
                let epoch = CURSOR_BASE_EPOCH + i as i64 * CURSOR_STEP_SECONDS;
                let fresh = match (inc.format.as_str(), get_path(&record, &inc.cursor_field)) {
                    ("unix", Some(Value::String(_))) => json!(epoch.to_string()),
                    ("unix", _) => json!(epoch),
                    (_, Some(Value::String(s))) if s.len() == 10 => {
                        json!(format_date(CURSOR_BASE_EPOCH + i as i64 * 86_400))
                    }
                    _ => json!(format_rfc3339(epoch)),
                };
                set_path(&mut record, &inc.cursor_field, fresh);
            }
            // Guard against a key that collides with an earlier one (odd fixtures).
            let mut key = record_key(&record, &spec.primary_key);
            let mut bump = 0;
            while !seen.insert(key.clone()) {
                bump += 1;
                for field in &spec.primary_key {
                    if let Some(Value::String(s)) = get_path(&record, field).cloned() {
                        set_path(&mut record, field, json!(format!("{s}z{bump}")));
                    }
                }
                key = record_key(&record, &spec.primary_key);
                if bump > 5 {
                    break;
                }
            }
            records.push(record);
        }
        let keys = records
            .iter()
            .map(|r| record_key(r, &spec.primary_key))
            .collect();
        let cursors = records
            .iter()
            .map(|r| {
                spec.incremental
                    .as_ref()
                    .and_then(|inc| get_path(r, &inc.cursor_field))
                    .and_then(cursor_epoch)
            })
            .collect();
        StreamData {
            name: spec.name.clone(),
            path,
            method: spec.method.to_uppercase(),
            selector: spec.record_selector.clone(),
            pagination: spec.pagination.clone(),
            incremental: spec.incremental.clone(),
            params: spec
                .params
                .iter()
                .map(|(k, v)| (k.clone(), value_text(v)))
                .collect(),
            primary_key: spec.primary_key.clone(),
            records,
            keys,
            cursors,
        }
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Faults

/// What the mock does to one attempt of a page.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultAction {
    /// An error response with this status and a JSON body.
    Status(u16),
    /// 429 with `Retry-After: <seconds>`.
    RetryAfterSeconds(u64),
    /// 429 with `Retry-After: <HTTP-date>` about this many seconds ahead (whole seconds).
    RetryAfterDate(u64),
    /// The normal response, but only after this delay.
    Slow(Duration),
    /// 200 with a truncated JSON body.
    Malformed,
    /// The normal response plus `X-RateLimit-Remaining: 0` and a reset about this many seconds ahead.
    ZeroRemaining(u64),
}

impl FaultAction {
    pub fn label(&self) -> String {
        match self {
            FaultAction::Status(s) => format!("status {s}"),
            FaultAction::RetryAfterSeconds(s) => format!("429 Retry-After {s}s"),
            FaultAction::RetryAfterDate(s) => format!("429 Retry-After HTTP-date +{s}s"),
            FaultAction::Slow(d) => format!("slow {:.1}s", d.as_secs_f64()),
            FaultAction::Malformed => "malformed JSON".into(),
            FaultAction::ZeroRemaining(s) => format!("X-RateLimit-Remaining 0, reset +{s}s"),
        }
    }
}

/// Faults for one page of one stream: attempt n gets `actions[n-1]`; past the list, the last
/// action repeats when `repeat_last`, else the page is served normally.
#[derive(Debug, Clone)]
pub struct FaultRule {
    pub stream: String,
    /// 1-based ordinal of the distinct request within the stream (1 = first page); 0 = every page.
    pub page: usize,
    pub actions: Vec<FaultAction>,
    pub repeat_last: bool,
}

/// How the end of each stream looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TerminalMode {
    /// The partial last page says "no more" (has_more false, no cursor, no next link).
    #[default]
    Normal,
    /// The last full page still announces more; the page after it is empty.
    EmptyTail,
    /// The last page says has_more false but still carries a cursor (cursor pagination).
    LastCarriesCursor,
}

// ---------------------------------------------------------------------------------------------
// Setup and request log

/// Everything needed to start a mock.
#[derive(Debug, Clone)]
pub struct MockSetup {
    pub streams: Vec<StreamData>,
    pub auth: AuthSpec,
    /// The credentials the mock accepts (keys as in the config's `credentials`).
    pub credentials: BTreeMap<String, String>,
    /// The access token the oauth2 token endpoint hands out.
    pub access_token: String,
    /// Page size used when the request does not send one.
    pub page_size: usize,
    pub faults: Vec<FaultRule>,
    pub terminal: TerminalMode,
}

/// One request as the mock saw it, and what it answered.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    pub seq: usize,
    /// Arrival, seconds since the mock started (monotonic clock).
    pub at: f64,
    /// Arrival, epoch seconds (for HTTP-date and epoch reset comparisons).
    pub wall: f64,
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub stream: Option<String>,
    pub token_endpoint: bool,
    pub auth_ok: bool,
    /// How many times this exact request (method, path, query) had arrived, this one included.
    pub attempt: usize,
    /// 1-based ordinal of the distinct request within its stream; 0 when not a stream request.
    pub page: usize,
    pub status: u16,
    pub fault: Option<String>,
    pub records_served: usize,
    /// The page served was the stream's end (the API said "no more").
    pub last_page: bool,
    /// The page served held no records.
    pub empty_page: bool,
    pub request_id: String,
    /// Seconds from the response to the instant it announced (Retry-After, rate-limit reset).
    pub announced_wait: Option<f64>,
}

impl RequestRecord {
    /// `GET /v1/customers?limit=5 -> 200 (5 records)` with secrets masked.
    pub fn describe(&self, secrets: &[String]) -> String {
        let target = if self.query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query)
        };
        let mut line = format!(
            "t={:.3}s {} {} -> {}",
            self.at, self.method, target, self.status
        );
        if let Some(fault) = &self.fault {
            line.push_str(&format!(" [{fault}]"));
        }
        if self.status == 200 && !self.token_endpoint {
            line.push_str(&format!(
                " ({} records{})",
                self.records_served,
                if self.last_page { ", last page" } else { "" }
            ));
        }
        if !self.auth_ok && !self.token_endpoint {
            line.push_str(" (credentials missing or wrong)");
        }
        redact(&line, secrets)
    }
}

/// Replaces every secret (plain and URL-encoded) in `text` with `***`.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for secret in secrets {
        if secret.len() < 4 {
            continue;
        }
        for form in secret_forms(secret) {
            if out.contains(&form) {
                out = out.replace(&form, "***");
            }
        }
    }
    out
}

/// The forms in which a secret may appear in text: plain, form-encoded and percent-encoded.
pub fn secret_forms(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_string()];
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let pct = percent_encode_all(secret);
    for f in [form, pct.clone(), pct.to_lowercase_hex()] {
        if !forms.contains(&f) {
            forms.push(f);
        }
    }
    forms
}

trait LowerHex {
    fn to_lowercase_hex(&self) -> String;
}

impl LowerHex for String {
    fn to_lowercase_hex(&self) -> String {
        let mut out = String::with_capacity(self.len());
        let mut chars = self.chars().peekable();
        while let Some(c) = chars.next() {
            out.push(c);
            if c == '%' {
                for _ in 0..2 {
                    if let Some(h) = chars.next() {
                        out.push(h.to_ascii_lowercase());
                    }
                }
            }
        }
        out
    }
}

fn percent_encode_all(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Server

struct Inner {
    log: Vec<RequestRecord>,
    attempts: HashMap<String, usize>,
    pages: HashMap<String, Vec<String>>,
    access_tokens: HashSet<String>,
}

struct MockState {
    setup: MockSetup,
    started: Instant,
    base_url: String,
    id_prefix: String,
    inner: Mutex<Inner>,
    stop: watch::Receiver<bool>,
}

/// A running mock. Stop it with [`MockServer::shutdown`]; dropping it stops it too.
pub struct MockServer {
    addr: SocketAddr,
    state: Arc<MockState>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl MockServer {
    pub async fn start(setup: MockSetup) -> anyhow::Result<MockServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let id_prefix: String = {
            use rand::RngExt;
            let mut rng = rand::rng();
            (0..6)
                .map(|_| {
                    char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)])
                })
                .collect()
        };
        let state = Arc::new(MockState {
            setup,
            started: Instant::now(),
            base_url: format!("http://{addr}"),
            id_prefix,
            inner: Mutex::new(Inner {
                log: Vec::new(),
                attempts: HashMap::new(),
                pages: HashMap::new(),
                access_tokens: HashSet::new(),
            }),
            stop: stop_rx.clone(),
        });
        let app = Router::new().fallback(handle).with_state(state.clone());
        let mut shutdown_rx = stop_rx;
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = shutdown_rx.wait_for(|stopped| *stopped).await;
            };
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await;
        });
        Ok(MockServer {
            addr,
            state,
            stop: stop_tx,
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, what the config's `base_url` is set to.
    pub fn base_url(&self) -> String {
        self.state.base_url.clone()
    }

    /// Seconds since the mock started, on the clock of [`RequestRecord::at`].
    pub fn now(&self) -> f64 {
        self.state.started.elapsed().as_secs_f64()
    }

    /// A copy of the request log so far, in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state.inner.lock().expect("mock lock").log.clone()
    }

    pub fn streams(&self) -> &[StreamData] {
        &self.state.setup.streams
    }

    /// Access tokens handed out by the oauth2 token endpoint (secrets too).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state
            .inner
            .lock()
            .expect("mock lock")
            .access_tokens
            .iter()
            .cloned()
            .collect()
    }

    /// Stops accepting, wakes sleeping responses, and waits (briefly) for the server task.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
        {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

struct Outcome {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    delay: Option<Duration>,
}

impl Outcome {
    fn json(status: u16, body: Value) -> Outcome {
        Outcome {
            status,
            headers: vec![],
            body: body.to_string().into_bytes(),
            delay: None,
        }
    }
}

fn error_body(kind: &str, message: &str) -> Value {
    json!({"error": {"type": kind, "message": message}})
}

async fn handle(State(state): State<Arc<MockState>>, req: Request) -> Response {
    let arrived = state.started.elapsed().as_secs_f64();
    let wall = now_epoch();
    let method = req.method().as_str().to_uppercase();
    let path = percent_decode(req.uri().path());
    let query = req.uri().query().unwrap_or("").to_string();
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 256 * 1024)
        .await
        .unwrap_or_default();
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();

    let mut record = RequestRecord {
        seq: 0,
        at: arrived,
        wall,
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        stream: None,
        token_endpoint: false,
        auth_ok: false,
        attempt: 1,
        page: 0,
        status: 0,
        fault: None,
        records_served: 0,
        last_page: false,
        empty_page: false,
        request_id: String::new(),
        announced_wait: None,
    };

    let outcome = {
        let mut inner = state.inner.lock().expect("mock lock");
        record.seq = inner.log.len() + 1;
        record.request_id = format!("req_{}_{:05}", state.id_prefix, record.seq);
        let outcome = decide(
            &state,
            &mut inner,
            &mut record,
            &headers,
            &pairs,
            &body,
            wall,
        );
        record.status = outcome.status;
        inner.log.push(record.clone());
        outcome
    };

    if let Some(delay) = outcome.delay {
        let mut stop = state.stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    }
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("Content-Type", "application/json")
        .header("X-Request-Id", record.request_id.as_str());
    for (k, v) in &outcome.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    builder
        .body(Body::from(outcome.body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn percent_decode(path: &str) -> String {
    percent_encoding::percent_decode_str(path).decode_utf8_lossy().into_owned()
}

fn decide(
    state: &MockState,
    inner: &mut Inner,
    record: &mut RequestRecord,
    headers: &HeaderMap,
    pairs: &[(String, String)],
    body: &[u8],
    wall: f64,
) -> Outcome {
    let setup = &state.setup;
    if setup.auth.kind == "oauth2"
        && record.path == setup.auth.token_path()
        && record.method == "POST"
    {
        record.token_endpoint = true;
        return token_endpoint(state, inner, record, headers, body);
    }
    let Some(stream) = setup.streams.iter().find(|s| s.path == record.path) else {
        return Outcome::json(
            404,
            error_body("not_found", &format!("no resource at {}", record.path)),
        );
    };
    record.stream = Some(stream.name.clone());
    if stream.method != record.method {
        return Outcome::json(
            405,
            error_body("method_not_allowed", &format!("use {}", stream.method)),
        );
    }

    // Attempt and page bookkeeping: retries repeat the exact same request.
    let mut sorted = pairs.to_vec();
    sorted.sort();
    let key = format!("{} {} {:?}", record.method, record.path, sorted);
    let attempt = inner.attempts.entry(key.clone()).or_insert(0);
    *attempt += 1;
    record.attempt = *attempt;
    let pages = inner.pages.entry(stream.name.clone()).or_default();
    record.page = match pages.iter().position(|k| *k == key) {
        Some(i) => i + 1,
        None => {
            pages.push(key);
            pages.len()
        }
    };

    record.auth_ok = auth_ok(setup, inner, headers, pairs);
    if !record.auth_ok {
        return Outcome::json(
            401,
            error_body("authentication_error", "missing or invalid credentials"),
        );
    }

    let action = setup
        .faults
        .iter()
        .find(|rule| rule.stream == stream.name && (rule.page == 0 || rule.page == record.page))
        .and_then(|rule| match rule.actions.get(record.attempt - 1) {
            Some(a) => Some(a.clone()),
            None if rule.repeat_last => rule.actions.last().cloned(),
            None => None,
        });
    record.fault = action.as_ref().map(FaultAction::label);

    let mut extra_headers = Vec::new();
    let mut delay = None;
    match &action {
        Some(FaultAction::Status(code)) => {
            let kind = if *code >= 500 {
                "api_error"
            } else {
                "invalid_request_error"
            };
            return Outcome::json(*code, error_body(kind, &format!("injected status {code}")));
        }
        Some(FaultAction::RetryAfterSeconds(secs)) => {
            record.announced_wait = Some(*secs as f64);
            let mut out = Outcome::json(429, error_body("rate_limit_error", "too many requests"));
            out.headers.push(("Retry-After".into(), secs.to_string()));
            return out;
        }
        Some(FaultAction::RetryAfterDate(secs)) => {
            let target = wall.floor() as u64 + secs;
            record.announced_wait = Some(target as f64 - wall);
            let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(target));
            let mut out = Outcome::json(429, error_body("rate_limit_error", "too many requests"));
            out.headers.push(("Retry-After".into(), date));
            return out;
        }
        Some(FaultAction::Malformed) => {
            let body = match stream.selector.split('.').next() {
                Some(first) if !first.is_empty() => format!("{{\"{first}\": [{{\"id\": \"trunc"),
                _ => "[{\"id\": \"trunc".to_string(),
            };
            return Outcome {
                status: 200,
                headers: vec![],
                body: body.into_bytes(),
                delay: None,
            };
        }
        Some(FaultAction::Slow(d)) => delay = Some(*d),
        Some(FaultAction::ZeroRemaining(secs)) => {
            let reset = wall.floor() as u64 + secs;
            record.announced_wait = Some(reset as f64 - wall);
            extra_headers.push(("X-RateLimit-Limit".to_string(), "100".to_string()));
            extra_headers.push(("X-RateLimit-Remaining".to_string(), "0".to_string()));
            extra_headers.push(("X-RateLimit-Reset".to_string(), reset.to_string()));
        }
        None => {}
    }

    match serve_page(state, stream, pairs, record) {
        Ok(mut out) => {
            out.headers.extend(extra_headers);
            out.delay = delay;
            out
        }
        Err(out) => out,
    }
}

fn auth_ok(
    setup: &MockSetup,
    inner: &Inner,
    headers: &HeaderMap,
    pairs: &[(String, String)],
) -> bool {
    let cred = |k: &str| setup.credentials.get(k).cloned().unwrap_or_default();
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim();
    let bearer = |expected: &str| {
        let mut parts = authorization.splitn(2, ' ');
        matches!((parts.next(), parts.next()), (Some(s), Some(t)) if s.eq_ignore_ascii_case("bearer") && t.trim() == expected)
    };
    match setup.auth.kind.as_str() {
        "none" => true,
        "api_key" => {
            let expected = format!(
                "{}{}",
                setup.auth.prefix.clone().unwrap_or_default(),
                cred("api_key")
            );
            let name = setup.auth.key_name();
            if setup.auth.key_in_query() {
                pairs
                    .iter()
                    .any(|(k, v)| *k == name && *v == cred("api_key"))
            } else {
                headers
                    .get_all(name.as_str())
                    .iter()
                    .any(|v| v.to_str().map(|s| s.trim() == expected).unwrap_or(false))
            }
        }
        "bearer" => bearer(&cred("token")),
        "basic" => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                cred("username"),
                cred("password")
            ));
            let mut parts = authorization.splitn(2, ' ');
            matches!((parts.next(), parts.next()), (Some(s), Some(t)) if s.eq_ignore_ascii_case("basic") && t.trim() == encoded)
        }
        "oauth2" => inner.access_tokens.iter().any(|t| bearer(t)),
        _ => false,
    }
}

fn token_endpoint(
    state: &MockState,
    inner: &mut Inner,
    record: &mut RequestRecord,
    headers: &HeaderMap,
    body: &[u8],
) -> Outcome {
    let setup = &state.setup;
    let form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let cred = |k: &str| setup.credentials.get(k).cloned().unwrap_or_default();
    let want = (cred("client_id"), cred("client_secret"));
    let mut client_ok =
        form.get("client_id") == Some(&want.0) && form.get("client_secret") == Some(&want.1);
    if let Some(basic) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        && let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(basic.trim())
    {
        let decoded = String::from_utf8_lossy(&decoded).into_owned();
        if let Some((u, p)) = decoded.split_once(':') {
            // RFC 6749 form-encodes the pair first; many clients send it raw. Accept both.
            let unescape = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            client_ok |=
                (u == want.0 && p == want.1) || (unescape(u) == want.0 && unescape(p) == want.1);
        }
    }
    let grant = form.get("grant_type").cloned().unwrap_or_default();
    let grant_ok = if setup.auth.uses_refresh_token() {
        grant == "refresh_token"
            && form.get("refresh_token").map(String::as_str) == Some(cred("refresh_token").as_str())
    } else {
        grant == "client_credentials"
    };
    record.auth_ok = client_ok && grant_ok;
    if !record.auth_ok {
        let what = if !client_ok {
            "invalid_client"
        } else {
            "invalid_grant"
        };
        return Outcome::json(
            401,
            json!({"error": what, "error_description": "client authentication failed"}),
        );
    }
    inner.access_tokens.insert(setup.access_token.clone());
    Outcome::json(
        200,
        json!({"access_token": setup.access_token, "token_type": "Bearer", "expires_in": 3600, "scope": "read"}),
    )
}

fn serve_page(
    state: &MockState,
    stream: &StreamData,
    pairs: &[(String, String)],
    record: &mut RequestRecord,
) -> Result<Outcome, Outcome> {
    let setup = &state.setup;
    let bad = |msg: String| Outcome::json(400, error_body("invalid_request_error", &msg));
    let param = |name: &str| {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };

    // Incremental filter: cursor >= the request parameter, inclusive.
    let mut since = None;
    if let Some(inc) = &stream.incremental
        && let Some(raw) = param(&inc.request_param)
    {
        match cursor_epoch(&Value::String(raw.clone())) {
            Some(v) => since = Some(v),
            None => {
                return Err(bad(format!(
                    "{} = {raw:?} is not a {} timestamp",
                    inc.request_param, inc.format
                )));
            }
        }
    }
    let visible: Vec<usize> = (0..stream.records.len())
        .filter(|&i| match (since, stream.cursors[i]) {
            (Some(s), Some(c)) => c >= s,
            _ => true,
        })
        .collect();
    let n = visible.len();
    let p = &stream.pagination;
    let size = match p.size_param.as_deref().and_then(&param) {
        Some(raw) => match raw.parse::<usize>() {
            Ok(v) if v > 0 => v.min(1000),
            _ => return Err(bad(format!("page size {raw:?} is not a positive integer"))),
        },
        None => setup.page_size,
    };

    let start = match p.kind.as_str() {
        "none" => 0,
        "cursor" => match p.cursor_param.as_deref().and_then(&param) {
            None => 0,
            Some(cursor) if p.cursor_from_body() => match cursor
                .strip_prefix("cf_")
                .and_then(|s| s.parse::<usize>().ok())
            {
                Some(pos) => pos,
                None => return Err(bad(format!("unknown cursor {cursor:?}"))),
            },
            Some(cursor) => {
                let path = p.cursor_path.as_deref().unwrap_or("id");
                let found = visible.iter().position(|&i| {
                    get_path(&stream.records[i], path)
                        .map(|v| value_text(v) == cursor)
                        .unwrap_or(false)
                });
                match found {
                    Some(pos) => pos + 1,
                    None => {
                        return Err(bad(format!(
                            "no record with {path} = {cursor:?} to continue after"
                        )));
                    }
                }
            }
        },
        "offset" => match p.offset_param.as_deref().and_then(&param) {
            None => 0,
            Some(raw) => match raw.parse::<usize>() {
                Ok(v) => v,
                Err(_) => return Err(bad(format!("offset {raw:?} is not a non-negative integer"))),
            },
        },
        "page" => {
            let first = p.start_page.unwrap_or(1);
            match p.page_param.as_deref().and_then(&param) {
                None => 0,
                Some(raw) => match raw.parse::<i64>() {
                    Ok(v) if v >= first => (v - first) as usize * size,
                    _ => return Err(bad(format!("page {raw:?} is not a page number >= {first}"))),
                },
            }
        }
        _ => match param(NEXT_LINK_PARAM) {
            None => 0,
            Some(raw) => raw
                .parse::<usize>()
                .map_err(|_| bad(format!("bad {NEXT_LINK_PARAM} {raw:?}")))?,
        },
    };
    let size = if p.kind == "none" { n.max(1) } else { size };
    let start = start.min(n);
    let end = (start + size).min(n);
    let page: Vec<Value> = visible[start..end]
        .iter()
        .map(|&i| stream.records[i].clone())
        .collect();
    let last = match setup.terminal {
        TerminalMode::EmptyTail if p.kind != "none" => start >= n,
        _ => end >= n,
    };
    record.records_served = page.len();
    record.last_page = last;
    record.empty_page = page.is_empty();

    let mut body = if stream.selector.is_empty() {
        Value::Array(vec![])
    } else {
        json!({"object": "list"})
    };
    set_path(&mut body, &stream.selector, Value::Array(page));
    let mut headers = Vec::new();
    let next_link = || {
        let mut kept: Vec<(String, String)> = pairs
            .iter()
            .filter(|(k, _)| k != NEXT_LINK_PARAM)
            .cloned()
            .collect();
        kept.push((NEXT_LINK_PARAM.to_string(), end.to_string()));
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(kept)
            .finish();
        format!("{}{}?{}", state.base_url, stream.path, q)
    };
    let body_fields_ok = body.is_object();
    match p.kind.as_str() {
        "cursor" if body_fields_ok => {
            if let Some(path) = &p.has_more_path {
                set_path(&mut body, path, json!(!last));
            }
            if p.cursor_from_body() {
                let cursor = if !last {
                    json!(format!("cf_{end}"))
                } else if setup.terminal == TerminalMode::LastCarriesCursor {
                    if p.has_more_path.is_some() {
                        json!(format!("cf_{end}"))
                    } else {
                        // Without has_more the only stop left is "cursor equal to the previous one".
                        json!(format!("cf_{start}"))
                    }
                } else {
                    Value::Null
                };
                set_path(
                    &mut body,
                    p.cursor_path.as_deref().unwrap_or("next_cursor"),
                    cursor,
                );
            }
        }
        "offset" if body_fields_ok => {
            if let Some(path) = &p.total_path {
                let total = if setup.terminal == TerminalMode::EmptyTail {
                    n + size
                } else {
                    n
                };
                set_path(&mut body, path, json!(total));
            }
        }
        "page" if body_fields_ok => {
            if let Some(path) = &p.total_pages_path {
                let pages =
                    n.div_ceil(size) + usize::from(setup.terminal == TerminalMode::EmptyTail);
                set_path(&mut body, path, json!(pages));
            }
        }
        "link_header" if !last => {
            headers.push((
                "Link".to_string(),
                format!("<{}>; rel=\"next\"", next_link()),
            ));
        }
        "next_url" if body_fields_ok => {
            let next = if last {
                Value::Null
            } else {
                json!(next_link())
            };
            set_path(
                &mut body,
                p.next_url_path.as_deref().unwrap_or("next"),
                next,
            );
        }
        _ => {}
    }
    Ok(Outcome {
        status: 200,
        headers,
        body: body.to_string().into_bytes(),
        delay: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(format_rfc3339(CURSOR_BASE_EPOCH), "2024-01-01T00:00:00Z");
        assert_eq!(
            parse_iso8601("2024-01-01T00:00:00Z"),
            Some(CURSOR_BASE_EPOCH as f64)
        );
        assert_eq!(
            parse_iso8601("2024-01-01T01:00:00+01:00"),
            Some(CURSOR_BASE_EPOCH as f64)
        );
        assert_eq!(parse_iso8601("2024-01-01"), Some(CURSOR_BASE_EPOCH as f64));
        assert_eq!(
            parse_iso8601("2024-02-29T12:30:15.5Z"),
            Some(1_709_209_815.5)
        );
        assert_eq!(parse_iso8601("yesterday"), None);
        for epoch in [0_i64, 951_782_400, 1_709_209_815, 4_102_444_800] {
            assert_eq!(parse_iso8601(&format_rfc3339(epoch)), Some(epoch as f64));
        }
        assert_eq!(cursor_epoch(&json!("1704067200")), Some(1_704_067_200.0));
    }

    #[test]
    fn secret_forms_cover_encodings() {
        let forms = secret_forms("sk_test/a+b=");
        assert!(forms.contains(&"sk_test/a+b=".to_string()));
        assert!(forms.contains(&"sk_test%2Fa%2Bb%3D".to_string()));
        assert!(forms.contains(&"sk_test%2fa%2bb%3d".to_string()));
        assert_eq!(
            redact("key=sk_test%2Fa%2Bb%3D end", &["sk_test/a+b=".to_string()]),
            "key=*** end"
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("/repos/a%20b/x"), "/repos/a b/x");
        assert_eq!(percent_decode("/plain"), "/plain");
        assert_eq!(percent_decode("/bad%2"), "/bad%2");
        assert_eq!(percent_decode("/end%41"), "/endA", "an escape at the very end is decoded too");
    }
}

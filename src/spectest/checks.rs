//! The checks: each has a stable id, a category (the part before the dot), a one-line hint, the
//! scenarios it reads, and an evaluation that turns scenario results into passed / failed /
//! skipped with a message and, on failure, evidence (requests, output lines; secrets masked).

use super::manifest::{LoadedImpl, get_path};
use super::mock_api::{RequestRecord, cursor_epoch, record_key, redact, secret_forms};
use super::scenarios::{
    BURST, EXHAUST_BUDGET_SECONDS, INITIAL_DELAY, MAX_DELAY, RunRecord, ScenarioId, ScenarioResult,
    final_state,
};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Failed,
    Skipped,
}

/// The outcome of one check on one implementation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckResult {
    pub id: String,
    pub category: String,
    pub status: Status,
    pub message: String,
    pub hint: String,
    /// Requests the mock saw and output lines, trimmed and with secrets masked (failures only).
    pub evidence: Vec<String>,
}

/// A check's verdict before it is dressed as a [`CheckResult`].
pub enum Verdict {
    Pass(String),
    Fail(String, Vec<String>),
    Skip(String),
}

pub struct CheckDef {
    pub id: &'static str,
    pub hint: &'static str,
    /// Scenarios the check reads; empty means every scenario.
    pub scenarios: &'static [ScenarioId],
    pub eval: fn(&Ctx) -> Verdict,
}

impl CheckDef {
    pub fn category(&self) -> &'static str {
        self.id.split('.').next().unwrap_or(self.id)
    }
}

/// What the checks read: the implementation and the results of the scenarios that ran.
pub struct Ctx<'a> {
    pub imp: &'a LoadedImpl,
    pub results: &'a BTreeMap<ScenarioId, ScenarioResult>,
    /// Every secret of every scenario, for masking evidence.
    pub secrets: Vec<String>,
}

pub const CATEGORIES: &[&str] = &[
    "discover",
    "auth",
    "pagination",
    "retry",
    "rate_limit",
    "timeout",
    "errors",
    "schema",
    "state",
    "security",
    "protocol",
];

/// Error codes of the contract and whether each is retryable.
pub const ERROR_CODES: &[(&str, bool)] = &[
    ("NETWORK_ERROR", true),
    ("TIMEOUT", true),
    ("AUTH_FAILED", false),
    ("RATE_LIMIT", true),
    ("INVALID_REQUEST", false),
    ("SERVER_ERROR", true),
    ("PARSING_ERROR", false),
    ("VALIDATION_ERROR", false),
    ("CANCELLED", false),
    ("UNSUPPORTED", false),
];

use ScenarioId as S;

pub static CHECKS: &[CheckDef] = &[
    CheckDef {
        id: "discover.catalog_valid",
        hint: "--discover must print one catalog object with an entry (tap_stream_id, stream, schema, key_properties, metadata) per manifest stream and nothing else on stdout",
        scenarios: &[S::Discover],
        eval: discover_catalog_valid,
    },
    CheckDef {
        id: "discover.schemas_valid",
        hint: "Make every stream schema a valid JSON Schema (draft 2020-12): valid type names, no OpenAPI-only keywords such as nullable",
        scenarios: &[S::Discover],
        eval: discover_schemas_valid,
    },
    CheckDef {
        id: "discover.key_properties_exist",
        hint: "Every primary_key entry must be a top-level property of the stream schema",
        scenarios: &[S::Discover],
        eval: discover_key_properties_exist,
    },
    CheckDef {
        id: "protocol.about",
        hint: "--about must print one JSON object with name, version, language, capabilities and streams matching the manifest",
        scenarios: &[S::About],
        eval: protocol_about,
    },
    CheckDef {
        id: "protocol.json_lines",
        hint: "Write only Singer messages (one JSON object per line) to stdout and only JSON LOG/ERROR lines to stderr",
        scenarios: &[],
        eval: protocol_json_lines,
    },
    CheckDef {
        id: "protocol.schema_before_record",
        hint: "Emit a stream's SCHEMA message before its first RECORD",
        scenarios: &[],
        eval: protocol_schema_before_record,
    },
    CheckDef {
        id: "auth.credentials_sent",
        hint: "Declare auth.type (and in/name/prefix or token_url) so the test credentials go on every request in the right place",
        scenarios: &[S::Sync],
        eval: auth_credentials_sent,
    },
    CheckDef {
        id: "auth.no_retry_on_401",
        hint: "Treat 401/403 as final: one request, then AUTH_FAILED; no hook may retry it",
        scenarios: &[S::WrongCredentials],
        eval: auth_no_retry_on_401,
    },
    CheckDef {
        id: "auth.failed_code",
        hint: "A 401 must end the run with an ERROR line code AUTH_FAILED, retryable false, status 401, and a non-zero exit",
        scenarios: &[S::WrongCredentials],
        eval: auth_failed_code,
    },
    CheckDef {
        id: "pagination.all_pages",
        hint: "Check the pagination style and fields, record_selector and page size: every page must be requested and every record emitted",
        scenarios: &[S::Sync],
        eval: pagination_all_pages,
    },
    CheckDef {
        id: "pagination.no_duplicates",
        hint: "Advance the cursor/offset/page correctly (start_page, cursor_path) and declare the real primary_key",
        scenarios: &[S::Sync],
        eval: pagination_no_duplicates,
    },
    CheckDef {
        id: "pagination.stops_on_empty_page",
        hint: "Stop a stream on an empty page, whatever the other fields say",
        scenarios: &[S::EmptyPage],
        eval: pagination_stops_on_empty_page,
    },
    CheckDef {
        id: "pagination.stops_on_has_more_false",
        hint: "Declare has_more_path at the right dotted path and stop when it is false",
        scenarios: &[S::Sync],
        eval: pagination_stops_on_has_more_false,
    },
    CheckDef {
        id: "pagination.stops_on_last_cursor",
        hint: "Stop when has_more is false even if the page still carries a cursor (or the cursor repeats)",
        scenarios: &[S::LastPageCursor],
        eval: pagination_stops_on_last_cursor,
    },
    CheckDef {
        id: "retry.transient_retried",
        hint: "Retry 500/502/503/504 with back-off until max_attempts, re-sending the identical request",
        scenarios: &[S::Transient5xx],
        eval: retry_transient_retried,
    },
    CheckDef {
        id: "retry.backoff_growing",
        hint: "Wait min(max_delay, initial * 2^(n-1)) * (1 + jitter) before retry n; never retry at once",
        scenarios: &[S::Transient5xx],
        eval: retry_backoff_growing,
    },
    CheckDef {
        id: "retry.retry_after_seconds",
        hint: "Honour Retry-After given in seconds: wait at least that long before the retry",
        scenarios: &[S::RetryAfterSeconds],
        eval: retry_retry_after_seconds,
    },
    CheckDef {
        id: "retry.retry_after_date",
        hint: "Honour Retry-After given as an HTTP-date: wait until that instant before the retry",
        scenarios: &[S::RetryAfterDate],
        eval: retry_retry_after_date,
    },
    CheckDef {
        id: "retry.no_retry_on_4xx",
        hint: "Do not retry 400/404 (or other 4xx but 408/429): fail at once with INVALID_REQUEST",
        scenarios: &[S::BadRequest, S::NotFound],
        eval: retry_no_retry_on_4xx,
    },
    CheckDef {
        id: "retry.budget_exhausted",
        hint: "Stop retrying when the next wait would pass budget_seconds and end with SERVER_ERROR (retryable true)",
        scenarios: &[S::Persistent503],
        eval: retry_budget_exhausted,
    },
    CheckDef {
        id: "timeout.slow_response",
        hint: "Give every request a deadline of timeout_seconds for the whole response; end with TIMEOUT when retries are spent",
        scenarios: &[S::SlowResponse],
        eval: timeout_slow_response,
    },
    CheckDef {
        id: "rate_limit.rps_respected",
        hint: "Pass a token bucket at rate_limit.requests_per_second (capacity burst) before every request, retries included",
        scenarios: &[S::Sync],
        eval: rate_limit_rps_respected,
    },
    CheckDef {
        id: "rate_limit.zero_remaining_respected",
        hint: "After X-RateLimit-Remaining: 0, send nothing before X-RateLimit-Reset",
        scenarios: &[S::RateLimitZero],
        eval: rate_limit_zero_remaining_respected,
    },
    CheckDef {
        id: "errors.malformed_json",
        hint: "A 2xx body that is not JSON must end the run with PARSING_ERROR, without retrying or skipping the page",
        scenarios: &[S::MalformedJson],
        eval: errors_malformed_json,
    },
    CheckDef {
        id: "errors.error_line_shape",
        hint: "On failure write one ERROR line with code, message, retryable, status, request_id, stream (contract types), then exit non-zero",
        scenarios: &[],
        eval: errors_error_line_shape,
    },
    CheckDef {
        id: "schema.records_valid",
        hint: "Make the schema match the records (nullable types, only formats the API guarantees) or transform the records",
        scenarios: &[S::Sync],
        eval: schema_records_valid,
    },
    CheckDef {
        id: "state.emitted",
        hint: "Emit STATE with bookmarks.<stream>.<cursor_field> when an incremental stream is complete, and once at the end of the run",
        scenarios: &[S::Sync],
        eval: state_emitted,
    },
    CheckDef {
        id: "state.resume_rereads_nothing",
        hint: "Send request_param=<bookmark> from --state and drop records whose cursor is <= the bookmark",
        scenarios: &[S::Resume],
        eval: state_resume_rereads_nothing,
    },
    CheckDef {
        id: "security.no_secret_leak",
        hint: "Never print credentials: redact headers, URLs and config in logs and error messages (plain, URL-encoded and base64 forms)",
        scenarios: &[],
        eval: security_no_secret_leak,
    },
];

pub fn find(id: &str) -> Option<&'static CheckDef> {
    CHECKS.iter().find(|c| c.id == id)
}

/// Runs the selected checks over the scenario results.
pub fn evaluate(ctx: &Ctx, selected: &[&'static CheckDef]) -> Vec<CheckResult> {
    selected
        .iter()
        .map(|def| {
            let verdict = precondition(ctx, def).unwrap_or_else(|| (def.eval)(ctx));
            let (status, message, evidence) = match verdict {
                Verdict::Pass(m) => (Status::Passed, m, vec![]),
                Verdict::Skip(m) => (Status::Skipped, m, vec![]),
                Verdict::Fail(m, ev) => (Status::Failed, m, ev),
            };
            CheckResult {
                id: def.id.to_string(),
                category: def.category().to_string(),
                status,
                message: redact(&message, &ctx.secrets),
                hint: def.hint.to_string(),
                evidence: trim_evidence(evidence, &ctx.secrets),
            }
        })
        .collect()
}

/// A check whose scenarios did not apply is skipped; one whose scenario broke is failed.
fn precondition(ctx: &Ctx, def: &CheckDef) -> Option<Verdict> {
    for id in def.scenarios {
        match ctx.results.get(id) {
            None => {
                return Some(Verdict::Fail(
                    format!("scenario {} did not run", id.name()),
                    vec![],
                ));
            }
            Some(r) if r.error.is_some() => {
                return Some(Verdict::Fail(
                    format!(
                        "scenario {}: {}",
                        id.name(),
                        r.error.clone().unwrap_or_default()
                    ),
                    vec![],
                ));
            }
            Some(r) if r.not_applicable.is_some() && def.scenarios.len() == 1 => {
                return Some(Verdict::Skip(format!(
                    "does not apply: {}",
                    r.not_applicable.clone().unwrap_or_default()
                )));
            }
            _ => {}
        }
    }
    None
}

const MAX_EVIDENCE: usize = 30;
const MAX_EVIDENCE_CHARS: usize = 400;

fn trim_evidence(lines: Vec<String>, secrets: &[String]) -> Vec<String> {
    let total = lines.len();
    let mut out: Vec<String> = lines
        .into_iter()
        .take(MAX_EVIDENCE)
        .map(|l| {
            let l = redact(&l, secrets);
            if l.chars().count() > MAX_EVIDENCE_CHARS {
                format!(
                    "{}…",
                    l.chars().take(MAX_EVIDENCE_CHARS).collect::<String>()
                )
            } else {
                l
            }
        })
        .collect();
    if total > MAX_EVIDENCE {
        out.push(format!("… {} more lines", total - MAX_EVIDENCE));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn scenario<'a>(ctx: &'a Ctx, id: ScenarioId) -> &'a ScenarioResult {
    &ctx.results[&id]
}

fn run_of<'a>(r: &'a ScenarioResult, label: &str) -> Result<&'a RunRecord, Verdict> {
    r.run(label).ok_or_else(|| {
        Verdict::Fail(
            format!("scenario {}: the {label} run did not happen", r.id.name()),
            vec![],
        )
    })
}

fn is_sync_label(label: &str) -> bool {
    !matches!(label, "about" | "discover")
}

/// Stdout lines parsed as JSON objects (lines that are not are skipped).
fn messages(run: &RunRecord) -> Vec<Value> {
    run.outcome
        .stdout
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(Value::is_object)
        .collect()
}

fn msg_type(m: &Value) -> &str {
    m.get("type").and_then(Value::as_str).unwrap_or("")
}

fn records_of(run: &RunRecord, stream: &str) -> Vec<Value> {
    messages(run)
        .into_iter()
        .filter(|m| {
            msg_type(m) == "RECORD" && m.get("stream").and_then(Value::as_str) == Some(stream)
        })
        .filter_map(|m| m.get("record").cloned())
        .collect()
}

fn error_lines(run: &RunRecord) -> Vec<Value> {
    run.outcome
        .stderr
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| msg_type(v) == "ERROR")
        .collect()
}

fn last_error(run: &RunRecord) -> Option<Value> {
    error_lines(run).pop()
}

/// "run sync: exit 1 after 0.84 s" plus the tail of stderr.
fn run_evidence(r: &ScenarioResult, run: &RunRecord) -> Vec<String> {
    let mut ev = vec![format!(
        "scenario {}, run {}: {} ({})",
        r.id.name(),
        run.outcome.label,
        run.outcome.ending(),
        run.outcome.argv.join(" ")
    )];
    let tail = run.outcome.stderr.len().saturating_sub(6);
    for line in &run.outcome.stderr[tail..] {
        ev.push(format!("stderr: {line}"));
    }
    ev
}

fn request_evidence<'a>(
    reqs: impl IntoIterator<Item = &'a RequestRecord>,
    secrets: &[String],
    max: usize,
) -> Vec<String> {
    let all: Vec<&RequestRecord> = reqs.into_iter().collect();
    let mut ev: Vec<String> = all
        .iter()
        .take(max)
        .map(|r| format!("request: {}", r.describe(secrets)))
        .collect();
    if all.len() > max {
        ev.push(format!("… {} more requests", all.len() - max));
    }
    ev
}

fn stream_requests<'a>(
    r: &'a ScenarioResult,
    run: &RunRecord,
    stream: &str,
) -> Vec<&'a RequestRecord> {
    r.requests_during(run)
        .into_iter()
        .filter(|q| q.stream.as_deref() == Some(stream))
        .collect()
}

/// Requests for the page the faults were aimed at, in arrival order.
fn fault_page_requests(r: &ScenarioResult) -> Vec<&RequestRecord> {
    r.requests
        .iter()
        .filter(|q| {
            q.stream.as_deref() == r.fault_stream.as_deref()
                && q.page == r.fault_page
                && !q.token_endpoint
        })
        .collect()
}

/// Expects the run to have failed with `code`; returns the problems found.
fn expect_error(
    run: &RunRecord,
    code: &str,
    retryable: Option<bool>,
    status: Option<u16>,
) -> Vec<String> {
    let mut problems = vec![];
    if run.outcome.hung {
        problems.push(format!(
            "the connector hung and was killed after {:.1} s",
            run.outcome.duration_seconds
        ));
        return problems;
    }
    if run.outcome.spawn_error.is_some() {
        problems.push(run.outcome.ending());
        return problems;
    }
    if run.outcome.exit_code == Some(0) {
        problems.push(format!("exit code 0 where the run should fail with {code}"));
    }
    match last_error(run) {
        None => problems.push(format!("no ERROR line on stderr (expected code {code})")),
        Some(err) => {
            let got = err.get("code").and_then(Value::as_str).unwrap_or("<none>");
            if got != code {
                problems.push(format!("ERROR code {got}, expected {code}"));
            }
            if let Some(want) = retryable
                && err.get("retryable").and_then(Value::as_bool) != Some(want)
            {
                problems.push(format!(
                    "ERROR retryable {}, expected {want}",
                    err.get("retryable").unwrap_or(&Value::Null)
                ));
            }
            if let Some(want) = status
                && err.get("status").and_then(Value::as_u64) != Some(want as u64)
            {
                problems.push(format!(
                    "ERROR status {}, expected {want}",
                    err.get("status").unwrap_or(&Value::Null)
                ));
            }
        }
    }
    problems
}

fn parse_json_output(lines: &[String]) -> Option<Value> {
    let joined = lines.join("\n");
    serde_json::from_str::<Value>(joined.trim()).ok()
}

fn discover_catalog(ctx: &Ctx) -> Option<Value> {
    let r = scenario(ctx, S::Discover);
    r.run("discover")
        .and_then(|run| parse_json_output(&run.outcome.stdout))
}

fn fmt_secs(v: &[f64]) -> String {
    v.iter()
        .map(|g| format!("{g:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// discover.*

fn discover_catalog_valid(ctx: &Ctx) -> Verdict {
    let r = scenario(ctx, S::Discover);
    let run = match run_of(r, "discover") {
        Ok(run) => run,
        Err(v) => return v,
    };
    if !run.outcome.succeeded() {
        return Verdict::Fail(
            format!("--discover did not succeed: {}", run.outcome.ending()),
            run_evidence(r, run),
        );
    }
    let Some(catalog) = parse_json_output(&run.outcome.stdout) else {
        let mut ev = run_evidence(r, run);
        ev.extend(
            run.outcome
                .stdout
                .iter()
                .take(5)
                .map(|l| format!("stdout: {l}")),
        );
        return Verdict::Fail("stdout of --discover is not one JSON document".into(), ev);
    };
    let Some(entries) = catalog.get("streams").and_then(Value::as_array) else {
        return Verdict::Fail("the catalog has no streams array".into(), vec![]);
    };
    let mut problems = vec![];
    let declared: BTreeSet<&str> = ctx
        .imp
        .streams
        .iter()
        .map(|s| s.spec.name.as_str())
        .collect();
    for e in entries {
        let id = e.get("tap_stream_id").and_then(Value::as_str).unwrap_or("");
        if !declared.contains(id) {
            problems.push(format!("catalog entry {id:?} is not a manifest stream"));
        }
    }
    for s in &ctx.imp.streams {
        let name = s.spec.name.as_str();
        let Some(e) = entries
            .iter()
            .find(|e| e.get("tap_stream_id").and_then(Value::as_str) == Some(name))
        else {
            problems.push(format!(
                "stream {name}: no catalog entry with tap_stream_id {name:?}"
            ));
            continue;
        };
        if e.get("stream").and_then(Value::as_str) != Some(name) {
            problems.push(format!(
                "stream {name}: \"stream\" is {}, expected {name:?}",
                e.get("stream").unwrap_or(&Value::Null)
            ));
        }
        if !e.get("schema").map(Value::is_object).unwrap_or(false) {
            problems.push(format!("stream {name}: schema is missing or not an object"));
        }
        match e.get("key_properties").and_then(Value::as_array) {
            None => problems.push(format!(
                "stream {name}: key_properties is missing or not an array"
            )),
            Some(keys) => {
                let got: BTreeSet<&str> = keys.iter().filter_map(Value::as_str).collect();
                let want: BTreeSet<&str> = s.spec.primary_key.iter().map(String::as_str).collect();
                if got != want {
                    problems.push(format!(
                        "stream {name}: key_properties {got:?} differ from primary_key {want:?}"
                    ));
                }
            }
        }
        let top = e.get("metadata").and_then(Value::as_array).and_then(|md| {
            md.iter().find(|m| {
                m.get("breadcrumb")
                    .and_then(Value::as_array)
                    .map(Vec::is_empty)
                    .unwrap_or(false)
            })
        });
        let Some(top) = top.and_then(|m| m.get("metadata")) else {
            problems.push(format!(
                "stream {name}: no metadata entry with breadcrumb []"
            ));
            continue;
        };
        if !top.get("selected").map(Value::is_boolean).unwrap_or(false) {
            problems.push(format!(
                "stream {name}: top-level metadata has no boolean \"selected\""
            ));
        }
        let method = top
            .get("replication-method")
            .and_then(Value::as_str)
            .unwrap_or("");
        match &s.spec.incremental {
            Some(inc) => {
                if method != "INCREMENTAL" {
                    problems.push(format!(
                        "stream {name}: replication-method {method:?}, expected INCREMENTAL"
                    ));
                }
                if top.get("replication-key").and_then(Value::as_str)
                    != Some(inc.cursor_field.as_str())
                {
                    problems.push(format!(
                        "stream {name}: replication-key {}, expected {:?}",
                        top.get("replication-key").unwrap_or(&Value::Null),
                        inc.cursor_field
                    ));
                }
            }
            None => {
                if method != "FULL_TABLE" {
                    problems.push(format!(
                        "stream {name}: replication-method {method:?}, expected FULL_TABLE"
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        Verdict::Pass(format!(
            "catalog lists all {} streams with schema, key_properties and metadata",
            declared.len()
        ))
    } else {
        Verdict::Fail(
            format!(
                "{} problem(s) in the catalog: {}",
                problems.len(),
                problems[0]
            ),
            problems,
        )
    }
}

fn schema_problems(label: &str, schema: &Value) -> Vec<String> {
    let mut problems = vec![];
    if let Err(e) = jsonschema::meta::validate(schema) {
        problems.push(format!(
            "{label}: not a valid JSON Schema: {e} (at {})",
            e.instance_path()
        ));
    } else if let Err(e) = jsonschema::validator_for(schema) {
        problems.push(format!("{label}: cannot be compiled: {e}"));
    }
    if let Some(s) = schema.get("$schema").and_then(Value::as_str)
        && !s.contains("2020-12")
    {
        problems.push(format!(
            "{label}: $schema is {s:?}; the registry uses draft 2020-12"
        ));
    }
    problems
}

fn discover_schemas_valid(ctx: &Ctx) -> Verdict {
    let mut problems = vec![];
    for s in &ctx.imp.streams {
        problems.extend(schema_problems(
            &format!("{} ({})", s.spec.name, s.spec.schema),
            &s.schema,
        ));
    }
    if let Some(catalog) = discover_catalog(ctx) {
        for e in catalog
            .get("streams")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let id = e
                .get("tap_stream_id")
                .and_then(Value::as_str)
                .unwrap_or("?");
            if let Some(schema) = e.get("schema").filter(|s| s.is_object()) {
                problems.extend(schema_problems(&format!("{id} (catalog)"), schema));
            }
        }
    }
    if problems.is_empty() {
        Verdict::Pass(format!(
            "{} stream schemas are valid JSON Schemas",
            ctx.imp.streams.len()
        ))
    } else {
        Verdict::Fail(problems[0].clone(), problems)
    }
}

fn discover_key_properties_exist(ctx: &Ctx) -> Verdict {
    let mut problems = vec![];
    for s in &ctx.imp.streams {
        let props = s.schema.get("properties").and_then(Value::as_object);
        for key in &s.spec.primary_key {
            if !props.map(|p| p.contains_key(key)).unwrap_or(false) {
                problems.push(format!(
                    "stream {}: primary key {key:?} is not a property of {}",
                    s.spec.name, s.spec.schema
                ));
            }
        }
        if let Some(inc) = &s.spec.incremental
            && !props
                .map(|p| p.contains_key(&inc.cursor_field))
                .unwrap_or(false)
        {
            problems.push(format!(
                "stream {}: cursor_field {:?} is not a property of {}",
                s.spec.name, inc.cursor_field, s.spec.schema
            ));
        }
    }
    if let Some(catalog) = discover_catalog(ctx) {
        for e in catalog
            .get("streams")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let id = e
                .get("tap_stream_id")
                .and_then(Value::as_str)
                .unwrap_or("?");
            let props = e
                .get("schema")
                .and_then(|s| s.get("properties"))
                .and_then(Value::as_object);
            for key in e
                .get("key_properties")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let key = key.as_str().unwrap_or("");
                if !props.map(|p| p.contains_key(key)).unwrap_or(false) {
                    problems.push(format!("catalog stream {id}: key property {key:?} is not in its schema's properties"));
                }
            }
        }
    }
    if problems.is_empty() {
        Verdict::Pass("every primary key (and cursor field) is a schema property".into())
    } else {
        Verdict::Fail(problems[0].clone(), problems)
    }
}

// ---------------------------------------------------------------------------------------------
// protocol.*

fn protocol_about(ctx: &Ctx) -> Verdict {
    let r = scenario(ctx, S::About);
    let run = match run_of(r, "about") {
        Ok(run) => run,
        Err(v) => return v,
    };
    if !run.outcome.succeeded() {
        return Verdict::Fail(
            format!("--about did not succeed: {}", run.outcome.ending()),
            run_evidence(r, run),
        );
    }
    let Some(about) = parse_json_output(&run.outcome.stdout).filter(Value::is_object) else {
        let ev: Vec<String> = run
            .outcome
            .stdout
            .iter()
            .take(5)
            .map(|l| format!("stdout: {l}"))
            .collect();
        return Verdict::Fail("stdout of --about is not one JSON object".into(), ev);
    };
    let m = &ctx.imp.manifest;
    let mut problems = vec![];
    for (field, want) in [
        ("name", &m.name),
        ("version", &m.version),
        ("language", &m.language),
    ] {
        if about.get(field).and_then(Value::as_str) != Some(want.as_str()) {
            problems.push(format!(
                "{field} is {}, manifest says {want:?}",
                about.get(field).unwrap_or(&Value::Null)
            ));
        }
    }
    let caps: BTreeSet<&str> = about
        .get("capabilities")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for cap in ["discover", "catalog", "state"] {
        if !caps.contains(cap) {
            problems.push(format!("capabilities lack {cap:?}"));
        }
    }
    let streams: BTreeSet<&str> = about
        .get("streams")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let want: BTreeSet<&str> = ctx
        .imp
        .streams
        .iter()
        .map(|s| s.spec.name.as_str())
        .collect();
    if streams != want {
        problems.push(format!(
            "streams {streams:?} differ from the manifest's {want:?}"
        ));
    }
    if problems.is_empty() {
        Verdict::Pass("--about matches the manifest".into())
    } else {
        Verdict::Fail(
            problems.join("; "),
            vec![format!("stdout: {}", run.outcome.stdout.join(" "))],
        )
    }
}

const SINGER_TYPES: &[&str] = &["SCHEMA", "RECORD", "STATE", "ACTIVATE_VERSION", "BATCH"];

fn protocol_json_lines(ctx: &Ctx) -> Verdict {
    let mut bad = vec![];
    let mut lines = 0usize;
    for r in ctx.results.values() {
        for run in &r.runs {
            let where_ = format!("{}/{}", r.id.name(), run.outcome.label);
            if is_sync_label(&run.outcome.label) {
                for (i, line) in run.outcome.stdout.iter().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    lines += 1;
                    match serde_json::from_str::<Value>(line) {
                        Ok(v) if v.is_object() && SINGER_TYPES.contains(&msg_type(&v)) => {}
                        Ok(v) if v.is_object() => bad.push(format!(
                            "{where_} stdout line {}: type {:?} is not a Singer message: {line}",
                            i + 1,
                            msg_type(&v)
                        )),
                        _ => bad.push(format!(
                            "{where_} stdout line {}: not a JSON object: {line}",
                            i + 1
                        )),
                    }
                }
            }
            for (i, line) in run.outcome.stderr.iter().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                lines += 1;
                match serde_json::from_str::<Value>(line) {
                    Ok(v) if v.is_object() && matches!(msg_type(&v), "LOG" | "ERROR") => {}
                    _ => bad.push(format!(
                        "{where_} stderr line {}: not a JSON LOG/ERROR line: {line}",
                        i + 1
                    )),
                }
            }
        }
    }
    if bad.is_empty() {
        Verdict::Pass(format!("{lines} output lines, all JSON messages"))
    } else {
        Verdict::Fail(
            format!(
                "{} line(s) are not JSON messages; first: {}",
                bad.len(),
                bad[0]
            ),
            bad,
        )
    }
}

fn protocol_schema_before_record(ctx: &Ctx) -> Verdict {
    let mut bad = vec![];
    let mut records = 0usize;
    for r in ctx.results.values() {
        for run in r
            .runs
            .iter()
            .filter(|run| is_sync_label(&run.outcome.label))
        {
            let mut schemas = BTreeSet::new();
            for (i, m) in messages(run).iter().enumerate() {
                let stream = m
                    .get("stream")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                match msg_type(m) {
                    "SCHEMA" => {
                        schemas.insert(stream);
                    }
                    "RECORD" => {
                        records += 1;
                        if !schemas.contains(&stream) {
                            bad.push(format!("{}/{}: message {} is a RECORD of {stream:?} before any SCHEMA of it", r.id.name(), run.outcome.label, i + 1));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    if !bad.is_empty() {
        Verdict::Fail(bad[0].clone(), bad)
    } else if records == 0 {
        Verdict::Fail(
            "no RECORD message in any run: nothing to check".into(),
            vec![],
        )
    } else {
        Verdict::Pass(format!(
            "{records} RECORD messages, each after its stream's SCHEMA"
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// auth.*

fn auth_credentials_sent(ctx: &Ctx) -> Verdict {
    if ctx.imp.manifest.auth.kind == "none" {
        return Verdict::Skip("auth.type is none".into());
    }
    let r = scenario(ctx, S::Sync);
    let run = match run_of(r, "sync") {
        Ok(run) => run,
        Err(v) => return v,
    };
    let all: Vec<&RequestRecord> = r
        .requests
        .iter()
        .filter(|q| q.at >= run.start - 0.001)
        .collect();
    let api: Vec<&RequestRecord> = all.iter().copied().filter(|q| !q.token_endpoint).collect();
    if api.is_empty() {
        let mut ev = run_evidence(r, run);
        ev.extend(request_evidence(all.iter().copied(), &ctx.secrets, 10));
        return Verdict::Fail("no stream request reached the mock".into(), ev);
    }
    let missing: Vec<&RequestRecord> = api.iter().copied().filter(|q| !q.auth_ok).collect();
    let kind = &ctx.imp.manifest.auth.kind;
    let key_header = ctx.imp.manifest.auth.key_name().to_ascii_lowercase();
    if !missing.is_empty() {
        let mut ev = vec![format!("auth.type {kind}: expected {}", describe_auth(ctx))];
        for q in missing.iter().take(5) {
            ev.push(format!("request: {}", q.describe(&ctx.secrets)));
            let headers: Vec<String> = q
                .headers
                .iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "host" | "connection" | "accept-encoding" | "content-length"
                    )
                })
                .map(|(k, v)| format!("{k}: {}", mask_header(k, v, &key_header)))
                .collect();
            ev.push(format!("  headers: {}", headers.join("; ")));
        }
        return Verdict::Fail(
            format!(
                "{} of {} requests lacked the {kind} credentials",
                missing.len(),
                api.len()
            ),
            ev,
        );
    }
    if kind == "oauth2" && !all.iter().any(|q| q.token_endpoint && q.auth_ok) {
        return Verdict::Fail(
            "no successful request to the token endpoint".into(),
            request_evidence(all.iter().copied(), &ctx.secrets, 10),
        );
    }
    Verdict::Pass(format!(
        "all {} requests carried the {kind} credentials",
        api.len()
    ))
}

/// Header values that carry credentials keep their scheme word only (`Basic ***`), so encoded
/// forms that plain redaction would miss never reach a report.
fn mask_header(name: &str, value: &str, key_header: &str) -> String {
    let sensitive = matches!(
        name,
        "authorization" | "proxy-authorization" | "cookie" | "x-api-key"
    ) || name == key_header;
    if !sensitive {
        return value.to_string();
    }
    match value.trim().split_once(' ') {
        Some((scheme, _)) => format!("{scheme} ***"),
        None => "***".to_string(),
    }
}

fn describe_auth(ctx: &Ctx) -> String {
    let a = &ctx.imp.manifest.auth;
    match a.kind.as_str() {
        "api_key" if a.key_in_query() => format!("query parameter {}=<api_key>", a.key_name()),
        "api_key" => format!(
            "header {}: {}<api_key>",
            a.key_name(),
            a.prefix.clone().unwrap_or_default()
        ),
        "bearer" => "Authorization: Bearer <token>".into(),
        "basic" => "Authorization: Basic base64(username:password)".into(),
        "oauth2" => format!(
            "a token from POST {} then Authorization: Bearer <access token>",
            a.token_path()
        ),
        _ => "nothing".into(),
    }
}

fn auth_no_retry_on_401(ctx: &Ctx) -> Verdict {
    let r = scenario(ctx, S::WrongCredentials);
    let run = match run_of(r, "sync") {
        Ok(run) => run,
        Err(v) => return v,
    };
    let rejected: Vec<&RequestRecord> = r.requests.iter().filter(|q| q.status == 401).collect();
    if run.outcome.hung {
        let mut ev = run_evidence(r, run);
        ev.extend(request_evidence(&r.requests, &ctx.secrets, 15));
        return Verdict::Fail("the connector hung after a 401".into(), ev);
    }
    if rejected.is_empty() {
        let mut ev = run_evidence(r, run);
        ev.extend(request_evidence(&r.requests, &ctx.secrets, 10));
        return Verdict::Fail(
            "the mock never answered 401: the connector sent no request with the wrong credentials"
                .into(),
            ev,
        );
    }
    let repeated: Vec<&RequestRecord> =
        rejected.iter().copied().filter(|q| q.attempt > 1).collect();
    if !repeated.is_empty() || rejected.len() > 1 {
        return Verdict::Fail(
            format!(
                "{} requests were answered 401; a 401 must end the run after one request",
                rejected.len()
            ),
            request_evidence(rejected.iter().copied(), &ctx.secrets, 15),
        );
    }
    Verdict::Pass("one request, answered 401, was not retried".into())
}

fn auth_failed_code(ctx: &Ctx) -> Verdict {
    let r = scenario(ctx, S::WrongCredentials);
    let run = match run_of(r, "sync") {
        Ok(run) => run,
        Err(v) => return v,
    };
    let problems = expect_error(run, "AUTH_FAILED", Some(false), Some(401));
    if problems.is_empty() {
        Verdict::Pass(format!(
            "wrong credentials ended with AUTH_FAILED ({})",
            run.outcome.ending()
        ))
    } else {
        Verdict::Fail(problems.join("; "), run_evidence(r, run))
    }
}

// ---------------------------------------------------------------------------------------------
// pagination.*

fn pagination_all_pages(ctx: &Ctx) -> Verdict {
    let r = scenario(ctx, S::Sync);
    let run = match run_of(r, "sync") {
        Ok(run) => run,
        Err(v) => return v,
    };
    let mut problems = vec![];
    let mut ev = vec![];
    let mut total = 0;
    for name in &r.synced {
        let Some(data) = r.stream(name) else { continue };
        let emitted: BTreeSet<String> = records_of(run, name)
            .iter()
            .map(|rec| record_key(rec, &data.primary_key))
            .collect();
        let missing: Vec<&String> = data.keys.iter().filter(|k| !emitted.contains(*k)).collect();
        total += data.keys.len();
        if !missing.is_empty() {
            problems.push(format!(
                "stream {name}: {} of {} records missing (first missing key {})",
                missing.len(),
                data.keys.len(),
                missing[0]
            ));
            ev.push(format!(
                "stream {name}: emitted {} distinct records, the mock served {}",
                emitted.len(),
                data.keys.len()
            ));
            ev.extend(request_evidence(
                stream_requests(r, run, name),
                &ctx.secrets,
                8,
            ));
        }
    }
    if !run.outcome.succeeded() {
        problems.insert(
            0,
            format!("the sync did not succeed: {}", run.outcome.ending()),
        );
    }
    if problems.is_empty() {
        Verdict::Pass(format!(
            "all {total} records of {} streams emitted",
            r.synced.len()
        ))
    } else {
        ev.extend(run_evidence(r, run));
        Verdict::Fail(problems.join("; "), ev)
    }
}

fn pagination_no_duplicates(ctx: &Ctx) -> Verdict {
    let r = scenario(ctx, S::Sync);
    let run = match run_of(r, "sync") {
        Ok(run) => run,
        Err(v) => return v,
    };
    let mut problems = vec![];
    let mut ev = vec![];
    let mut total = 0;
    for name in &r.synced {
        let Some(data) = r.stream(name) else { continue };
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for rec in records_of(run, name) {
            *counts
                .entry(record_key(&rec, &data.primary_key))
                .or_default() += 1;
            total += 1;
        }
        let dups: Vec<(&String, &usize)> = counts.iter().filter(|(_, n)| **n > 1).collect();
        if !dups.is_empty() {
            problems.push(format!(
                "stream {name}: {} primary keys emitted more than once (e.g. {} x{})",
                dups.len(),
                dups[0].0,
                dups[0].1
            ));
            ev.extend(request_evidence(
                stream_requests(r, run, name),
                &ctx.secrets,
                8,
            ));
        }
    }
    if total == 0 {
        return Verdict::Fail(
            "no RECORD was emitted: nothing to check".into(),
            run_evidence(r, run),
        );
    }
    if problems.is_empty() {
        Verdict::Pass(format!("{total} records, no primary key twice"))
    } else {
        Verdict::Fail(problems.join("; "), ev)
    }
}

/// For each stream: after the response that ended it, was anything else requested?
fn stops_after_last(
    ctx: &Ctx,
    r: &ScenarioResult,
    run: &RunRecord,
    streams: &[String],
    empty: bool,
) -> (Vec<String>, Vec<String>) {
    let mut problems = vec![];
    let mut ev = vec![];
    for name in streams {
        let reqs = stream_requests(r, run, name);
        let end = reqs
            .iter()
            .position(|q| q.status == 200 && if empty { q.empty_page } else { q.last_page });
        match end {
            None => {
                let what = if empty {
                    "the empty page after the last full page"
                } else {
                    "the last page"
                };
                problems.push(format!("stream {name}: never requested {what}"));
                ev.extend(request_evidence(reqs.iter().copied(), &ctx.secrets, 8));
            }
            Some(i) if i + 1 < reqs.len() => {
                problems.push(format!(
                    "stream {name}: {} more request(s) after the page that ended the stream",
                    reqs.len() - i - 1
                ));
                ev.extend(request_evidence(
                    reqs[i.saturating_sub(1)..].iter().copied(),
                    &ctx.secrets,
                    8,
                ));
            }
            Some(_) => {}
        }
    }
    (problems, ev)
}

fn pagination_stops_on_empty_page(ctx: &Ctx) -> Verdict {
    let r = scenario(ctx, S::EmptyPage);
    let run = match run_of(r, "sync") {
        Ok(run) => run,
        Err(v) => return v,
    };
    let (mut problems, mut ev) = stops_after_last(ctx, r, run, &r.synced, true);
    if !run.outcome.succeeded() {
        problems.insert(
            0,
            format!("the sync did not succeed: {}", run.outcome.ending()),
        );
        ev.extend(run_evidence(r, run));
    }
    for name in &r.synced {
        if let Some(data) = r.stream(name) {
            let emitted: BTreeSet<String> = records_of(run, name)
                .iter()
                .map(|rec| record_key(rec, &data.primary_key))
                .collect();
            let missing = data.keys.iter().filter(|k| !emitted.contains(*k)).count();
            if missing > 0 {
                problems.push(format!("stream {name}: {missing} records missing"));
            }
        }
    }
    if problems.is_empty() {
        Verdict::Pass(format!(
            "{} stream(s) stopped at the empty page",
            r.synced.len()
        ))
    } else {
        Verdict::Fail(problems.join("; "), ev)
    }
}

fn pagination_stops_on_has_more_false(ctx: &Ctx) -> Verdict {
    let streams: Vec<String> = ctx
        .imp
        .streams
        .iter()
        .filter(|s| s.spec.pagination.is_cursor() && s.spec.pagination.has_more_path.is_some())
        .map(|s| s.spec.name.clone())
        .collect();
    if streams.is_empty() {
        return Verdict::Skip(
            "does not apply: no cursor-paginated stream declares has_more_path".into(),
        );
    }
    let r = scenario(ctx, S::Sync);
    let run = match run_of(r, "sync") {
        Ok(run) => run,
        Err(v) => return v,
    };
    let (problems, ev) = stops_after_last(ctx, r, run, &streams, false);
    if problems.is_empty() {
        Verdict::Pass(format!(
            "{} stream(s) stopped when has_more was false",
            streams.len()
        ))
    } else {
        Verdict::Fail(problems.join("; "), ev)
    }
}

fn pagination_stops_on_last_cursor(ctx: &Ctx) -> Verdict {
    let r = scenario(ctx, S::LastPageCursor);
    let run = match run_of(r, "sync") {
        Ok(run) => run,
        Err(v) => return v,
    };
    let (mut problems, mut ev) = stops_after_last(ctx, r, run, &r.synced, false);
    if !run.outcome.succeeded() {
        problems.insert(
            0,
            format!("the sync did not succeed: {}", run.outcome.ending()),
        );
        ev.extend(run_evidence(r, run));
    }
    if problems.is_empty() {
        Verdict::Pass(format!(
            "{} stream(s) stopped although the last page carried a cursor",
            r.synced.len()
        ))
    } else {
        Verdict::Fail(problems.join("; "), ev)
    }
}

// ---------------------------------------------------------------------------------------------
// retry.*

fn retry_transient_retried(ctx: &Ctx) -> Verdict {
    let r = scenario(ctx, S::Transient5xx);
    let run = match run_of(r, "sync") {
        Ok(run) => run,
        Err(v) => return v,
    };
    let page = fault_page_requests(r);
    let statuses: Vec<u16> = page.iter().map(|q| q.status).collect();
    let mut problems = vec![];
    if !statuses.contains(&200) {
        problems.push(format!(
            "the page hit by the 5xx burst never got through (statuses {statuses:?})"
        ));
    }
    if !run.outcome.succeeded() {
        problems.insert(
            0,
            format!("the sync did not succeed: {}", run.outcome.ending()),
        );
    }
    for name in &r.synced {
        if let Some(data) = r.stream(name) {
            let emitted: BTreeSet<String> = records_of(run, name)
                .iter()
                .map(|rec| record_key(rec, &data.primary_key))
                .collect();
            let missing = data.keys.iter().filter(|k| !emitted.contains(*k)).count();
            if missing > 0 {
                problems.push(format!(
                    "stream {name}: {missing} of {} records missing",
                    data.keys.len()
                ));
            }
        }
    }
    if problems.is_empty() {
        Verdict::Pass(format!(
            "statuses {statuses:?} on the faulted page, then all records"
        ))
    } else {
        let mut ev = request_evidence(page.iter().copied(), &ctx.secrets, 10);
        ev.extend(run_evidence(r, run));
        Verdict::Fail(problems.join("; "), ev)
    }
}

fn retry_backoff_growing(ctx: &Ctx) -> Verdict {
    let r = scenario(ctx, S::Transient5xx);
    let page = fault_page_requests(r);
    let upto = page
        .iter()
        .position(|q| q.status == 200)
        .map(|i| i + 1)
        .unwrap_or(page.len());
    let times: Vec<f64> = page[..upto].iter().map(|q| q.at).collect();
    let ev = || request_evidence(page.iter().copied(), &ctx.secrets, 10);
    if times.len() < 3 {
        return Verdict::Fail(
            format!(
                "only {} request(s) for the faulted page: no retries to measure",
                times.len()
            ),
            ev(),
        );
    }
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    let initial = r.retry_setting("initial_delay_seconds", INITIAL_DELAY);
    let max_delay = r.retry_setting("max_delay_seconds", MAX_DELAY);
    let (first, last) = (gaps[0], gaps[gaps.len() - 1]);
    let mut problems = vec![];
    // Jitter only lengthens a delay and load only delays a request, so the contract's schedule
    // is a lower bound; 20 % and 50 ms of slack cover arrival-time jitter at the mock.
    for (i, gap) in gaps.iter().enumerate() {
        let scheduled = max_delay.min(initial * 2f64.powi(i as i32));
        if *gap < 0.8 * scheduled - 0.05 || *gap < 0.5 * initial {
            problems.push(format!("retry {} came {gap:.3} s after the previous attempt; the schedule asks for at least {scheduled:.2} s", i + 1));
        }
    }
    if last <= first {
        problems.push(format!(
            "the last gap ({last:.2} s) is not longer than the first ({first:.2} s)"
        ));
    }
    if problems.is_empty() {
        Verdict::Pass(format!("gaps between attempts grow: {} s", fmt_secs(&gaps)))
    } else {
        let mut e = vec![format!("gaps between attempts: {} s", fmt_secs(&gaps))];
        e.extend(ev());
        Verdict::Fail(problems.join("; "), e)
    }
}

fn retry_after_check(ctx: &Ctx, id: ScenarioId) -> Verdict {
    let r = scenario(ctx, id);
    let run = match run_of(r, "sync") {
        Ok(run) => run,
        Err(v) => return v,
    };
    let page = fault_page_requests(r);
    let ev = || {
        let mut e = request_evidence(page.iter().copied(), &ctx.secrets, 10);
        e.extend(run_evidence(r, run));
        e
    };
    let Some(i) = page.iter().position(|q| q.status == 429) else {
        return Verdict::Fail(
            "the connector never reached the page that answers 429".into(),
            ev(),
        );
    };
    let throttled = page[i];
    let Some(next) = page.get(i + 1) else {
        return Verdict::Fail("the 429 was not retried".into(), ev());
    };
    let announced = throttled.announced_wait.unwrap_or(0.0);
    let waited = next.at - throttled.at;
    if waited < 0.9 * announced {
        return Verdict::Fail(
            format!("retried {waited:.2} s after a 429 that asked for {announced:.2} s"),
            ev(),
        );
    }
    if !run.outcome.succeeded() {
        return Verdict::Fail(
            format!(
                "waited {waited:.2} s, but the sync did not succeed: {}",
                run.outcome.ending()
            ),
            ev(),
        );
    }
    Verdict::Pass(format!(
        "waited {waited:.2} s for a Retry-After of {announced:.2} s"
    ))
}

fn retry_retry_after_seconds(ctx: &Ctx) -> Verdict {
    retry_after_check(ctx, S::RetryAfterSeconds)
}

fn retry_retry_after_date(ctx: &Ctx) -> Verdict {
    retry_after_check(ctx, S::RetryAfterDate)
}

fn retry_no_retry_on_4xx(ctx: &Ctx) -> Verdict {
    let mut problems = vec![];
    let mut ev = vec![];
    let mut seen = vec![];
    for (id, status) in [(S::BadRequest, 400u16), (S::NotFound, 404u16)] {
        let r = scenario(ctx, id);
        if let Some(reason) = &r.not_applicable {
            seen.push(format!("{status}: skipped ({reason})"));
            continue;
        }
        let run = match run_of(r, "sync") {
            Ok(run) => run,
            Err(Verdict::Fail(m, _)) => {
                problems.push(m);
                continue;
            }
            Err(_) => continue,
        };
        let hits: Vec<&RequestRecord> = fault_page_requests(r)
            .into_iter()
            .filter(|q| q.status == status)
            .collect();
        let mut local = vec![];
        if hits.is_empty() {
            local.push(format!(
                "{status}: the connector never reached the page that answers {status}"
            ));
        } else if hits.len() > 1 {
            local.push(format!(
                "{status}: the request was sent {} times",
                hits.len()
            ));
        }
        local.extend(
            expect_error(run, "INVALID_REQUEST", Some(false), Some(status))
                .into_iter()
                .map(|p| format!("{status}: {p}")),
        );
        if local.is_empty() {
            seen.push(format!("{status}: one request, INVALID_REQUEST"));
        } else {
            ev.extend(request_evidence(fault_page_requests(r), &ctx.secrets, 6));
            ev.extend(run_evidence(r, run));
            problems.extend(local);
        }
    }
    if problems.is_empty() {
        Verdict::Pass(seen.join("; "))
    } else {
        Verdict::Fail(problems.join("; "), ev)
    }
}

fn retry_budget_exhausted(ctx: &Ctx) -> Verdict {
    let r = scenario(ctx, S::Persistent503);
    let run = match run_of(r, "sync") {
        Ok(run) => run,
        Err(v) => return v,
    };
    let page = fault_page_requests(r);
    let budget = r.retry_setting("budget_seconds", EXHAUST_BUDGET_SECONDS);
    let mut problems = expect_error(run, "SERVER_ERROR", Some(true), Some(503));
    if page.len() < 2 {
        problems.push(format!(
            "{} request(s) for the failing page: a 503 must be retried",
            page.len()
        ));
    } else {
        let span = page[page.len() - 1].at - page[0].at;
        if span > budget + 0.5 {
            problems.push(format!(
                "kept retrying for {span:.2} s with a budget of {budget} s ({} attempts)",
                page.len()
            ));
        }
    }
    let mut ev = request_evidence(page.iter().copied(), &ctx.secrets, 12);
    ev.extend(run_evidence(r, run));
    if problems.is_empty() {
        let span = page[page.len() - 1].at - page[0].at;
        Verdict::Pass(format!(
            "gave up after {} attempts in {span:.2} s (budget {budget} s) with SERVER_ERROR",
            page.len()
        ))
    } else {
        Verdict::Fail(problems.join("; "), ev)
    }
}

// ---------------------------------------------------------------------------------------------
// timeout.*, rate_limit.*

fn timeout_slow_response(ctx: &Ctx) -> Verdict {
    let r = scenario(ctx, S::SlowResponse);
    let run = match run_of(r, "sync") {
        Ok(run) => run,
        Err(v) => return v,
    };
    let page = fault_page_requests(r);
    let mut problems = expect_error(run, "TIMEOUT", Some(true), None);
    if page.is_empty() {
        problems.push("the connector never reached the slow page".into());
    }
    if problems.is_empty() {
        Verdict::Pass(format!(
            "slow responses ended as TIMEOUT after {} attempt(s), {:.2} s",
            page.len(),
            run.outcome.duration_seconds
        ))
    } else {
        let mut ev = request_evidence(page.iter().copied(), &ctx.secrets, 8);
        ev.extend(run_evidence(r, run));
        Verdict::Fail(problems.join("; "), ev)
    }
}

fn rate_limit_rps_respected(ctx: &Ctx) -> Verdict {
    let r = scenario(ctx, S::Sync);
    let run = match run_of(r, "sync") {
        Ok(run) => run,
        Err(v) => return v,
    };
    let rps = r
        .config
        .get("rate_limit")
        .and_then(|c| c.get("requests_per_second"))
        .and_then(Value::as_f64)
        .unwrap_or(10.0);
    let burst = r
        .config
        .get("rate_limit")
        .and_then(|c| c.get("burst"))
        .and_then(Value::as_f64)
        .unwrap_or(BURST as f64);
    let reqs = r.requests_during(run);
    if reqs.len() < 3 {
        // Single-request streams (no pagination) cannot exceed any rate; a connector that stops
        // early is caught by pagination.all_pages, so nothing is hidden by skipping here.
        return Verdict::Skip(format!(
            "only {} request(s) in the sync: too few to measure a rate",
            reqs.len()
        ));
    }
    // A token bucket lets at most burst + rps * dt requests through in any window of length dt;
    // allow 20 % on the rate and one request of arrival jitter.
    let mut worst: Option<(usize, usize, f64, f64)> = None;
    for i in 0..reqs.len() {
        for j in i + 1..reqs.len() {
            let n = (j - i + 1) as f64;
            let dt = reqs[j].at - reqs[i].at;
            let allowed = burst + rps * dt * 1.2 + 1.0;
            if n > allowed {
                let excess = n - allowed;
                if worst.map(|w| excess > w.3).unwrap_or(true) {
                    worst = Some((i, j, dt, excess));
                }
            }
        }
    }
    match worst {
        None => {
            let span = reqs[reqs.len() - 1].at - reqs[0].at;
            Verdict::Pass(format!(
                "{} requests over {span:.2} s, within {rps} req/s (burst {burst})",
                reqs.len()
            ))
        }
        Some((i, j, dt, _)) => Verdict::Fail(
            format!(
                "{} requests arrived within {dt:.3} s; {rps} req/s with burst {burst} allows about {:.1}",
                j - i + 1,
                burst + rps * dt
            ),
            request_evidence(reqs[i..=j].iter().copied(), &ctx.secrets, 12),
        ),
    }
}

fn rate_limit_zero_remaining_respected(ctx: &Ctx) -> Verdict {
    let r = scenario(ctx, S::RateLimitZero);
    let run = match run_of(r, "sync") {
        Ok(run) => run,
        Err(v) => return v,
    };
    let reqs = r.requests_during(run);
    let ev = |from: usize| {
        let mut e = request_evidence(
            reqs[from.saturating_sub(1)..].iter().copied(),
            &ctx.secrets,
            6,
        );
        e.extend(run_evidence(r, run));
        e
    };
    let Some(i) = reqs
        .iter()
        .position(|q| q.announced_wait.is_some() && q.status == 200)
    else {
        return Verdict::Fail(
            "the connector never reached the page that reports zero remaining".into(),
            ev(0),
        );
    };
    let Some(next) = reqs.get(i + 1) else {
        return Verdict::Fail(
            "no request followed the zero-remaining response (the stream has more pages)".into(),
            ev(i),
        );
    };
    let announced = reqs[i].announced_wait.unwrap_or(0.0);
    let waited = next.at - reqs[i].at;
    if waited < 0.9 * announced {
        return Verdict::Fail(
            format!(
                "next request {waited:.2} s after Remaining 0, reset was {announced:.2} s away"
            ),
            ev(i),
        );
    }
    Verdict::Pass(format!(
        "waited {waited:.2} s for a reset {announced:.2} s away"
    ))
}

// ---------------------------------------------------------------------------------------------
// errors.*

fn errors_malformed_json(ctx: &Ctx) -> Verdict {
    let r = scenario(ctx, S::MalformedJson);
    let run = match run_of(r, "sync") {
        Ok(run) => run,
        Err(v) => return v,
    };
    let page = fault_page_requests(r);
    let mut problems = expect_error(run, "PARSING_ERROR", Some(false), None);
    if page.is_empty() {
        problems.push("the connector never reached the malformed page".into());
    } else if page.len() > 1 {
        problems.push(format!(
            "the malformed page was requested {} times (a PARSING_ERROR is not retried)",
            page.len()
        ));
    }
    if problems.is_empty() {
        Verdict::Pass("a truncated JSON body ended the run with PARSING_ERROR".into())
    } else {
        let mut ev = request_evidence(page.iter().copied(), &ctx.secrets, 6);
        ev.extend(run_evidence(r, run));
        Verdict::Fail(problems.join("; "), ev)
    }
}

fn errors_error_line_shape(ctx: &Ctx) -> Verdict {
    let mut problems = vec![];
    let mut checked = 0usize;
    for r in ctx.results.values() {
        let ids: BTreeSet<&str> = r.requests.iter().map(|q| q.request_id.as_str()).collect();
        for run in &r.runs {
            if run.outcome.hung || run.outcome.spawn_error.is_some() {
                continue;
            }
            let where_ = format!("{}/{}", r.id.name(), run.outcome.label);
            let errors = error_lines(run);
            let failed = run.outcome.exit_code != Some(0);
            if failed && errors.is_empty() {
                problems.push(format!(
                    "{where_}: {} without an ERROR line on stderr",
                    run.outcome.ending()
                ));
            }
            if !failed && !errors.is_empty() {
                problems.push(format!(
                    "{where_}: exit 0 but {} ERROR line(s)",
                    errors.len()
                ));
            }
            if errors.len() > 1 {
                problems.push(format!(
                    "{where_}: {} ERROR lines; a failure writes exactly one",
                    errors.len()
                ));
            }
            if let Some(pos) = run.outcome.stderr.iter().position(|l| {
                serde_json::from_str::<Value>(l)
                    .map(|v| msg_type(&v) == "ERROR")
                    .unwrap_or(false)
            }) && run.outcome.stderr[pos + 1..]
                .iter()
                .any(|l| !l.trim().is_empty() && serde_json::from_str::<Value>(l).is_err())
            {
                problems.push(format!(
                    "{where_}: non-JSON output (a traceback?) follows the ERROR line"
                ));
            }
            for e in &errors {
                checked += 1;
                problems.extend(
                    error_shape_problems(e, &ids)
                        .into_iter()
                        .map(|p| format!("{where_}: {p}")),
                );
            }
        }
    }
    if !problems.is_empty() {
        Verdict::Fail(
            format!("{} problem(s); first: {}", problems.len(), problems[0]),
            problems,
        )
    } else if checked == 0 {
        Verdict::Fail(
            "no run wrote an ERROR line, although faults were injected".into(),
            vec![],
        )
    } else {
        Verdict::Pass(format!("{checked} ERROR line(s), all well-formed"))
    }
}

fn error_shape_problems(e: &Value, issued_ids: &BTreeSet<&str>) -> Vec<String> {
    let mut p = vec![];
    for key in [
        "code",
        "message",
        "retryable",
        "status",
        "request_id",
        "stream",
    ] {
        if e.get(key).is_none() {
            p.push(format!("ERROR line lacks {key:?}: {e}"));
        }
    }
    let code = e.get("code").and_then(Value::as_str).unwrap_or("");
    match ERROR_CODES.iter().find(|(c, _)| *c == code) {
        None => p.push(format!(
            "code {:?} is not a contract error code",
            e.get("code").unwrap_or(&Value::Null)
        )),
        Some((_, retryable)) => {
            if let Some(got) = e.get("retryable")
                && got.as_bool() != Some(*retryable)
            {
                p.push(format!("{code} must have retryable {retryable}, got {got}"));
            }
        }
    }
    if !e
        .get("message")
        .and_then(Value::as_str)
        .map(|m| !m.trim().is_empty())
        .unwrap_or(false)
    {
        p.push("message is not a non-empty string".into());
    }
    if let Some(s) = e.get("status")
        && !(s.is_null() || s.as_u64().map(|v| (100..600).contains(&v)).unwrap_or(false))
    {
        p.push(format!("status {s} is neither an HTTP status nor null"));
    }
    if let Some(s) = e.get("stream")
        && !(s.is_null() || s.is_string())
    {
        p.push(format!("stream {s} is neither a string nor null"));
    }
    match e.get("request_id") {
        Some(Value::Null) | None => {
            if e.get("status").map(|s| !s.is_null()).unwrap_or(false) && !issued_ids.is_empty() {
                p.push(format!(
                    "{code} with status {} has request_id null; the response carried X-Request-Id",
                    e["status"]
                ));
            }
        }
        Some(Value::String(id)) => {
            if !issued_ids.is_empty() && !issued_ids.contains(id.as_str()) {
                p.push(format!(
                    "request_id {id:?} is not an X-Request-Id the mock sent"
                ));
            }
        }
        Some(other) => p.push(format!("request_id {other} is neither a string nor null")),
    }
    p
}

// ---------------------------------------------------------------------------------------------
// schema.*, state.*

fn schema_records_valid(ctx: &Ctx) -> Verdict {
    let mut validators = HashMap::new();
    let mut problems = vec![];
    for s in &ctx.imp.streams {
        match jsonschema::options()
            .should_validate_formats(true)
            .build(&s.schema)
        {
            Ok(v) => {
                validators.insert(s.spec.name.clone(), v);
            }
            Err(e) => problems.push(format!(
                "stream {}: schema cannot be compiled: {e}",
                s.spec.name
            )),
        }
    }
    let mut count = 0usize;
    let mut invalid = 0usize;
    let mut ev = vec![];
    let mut seen = BTreeSet::new();
    for r in ctx.results.values() {
        for run in r
            .runs
            .iter()
            .filter(|run| is_sync_label(&run.outcome.label))
        {
            for m in messages(run).iter().filter(|m| msg_type(m) == "RECORD") {
                let stream = m.get("stream").and_then(Value::as_str).unwrap_or("");
                let Some(record) = m.get("record") else {
                    problems.push(format!("{}: RECORD without a record object", r.id.name()));
                    continue;
                };
                if !seen.insert((stream.to_string(), record.to_string())) {
                    continue;
                }
                count += 1;
                let Some(v) = validators.get(stream) else {
                    if ctx.imp.stream(stream).is_none() {
                        problems.push(format!("RECORD of unknown stream {stream:?}"));
                    }
                    continue;
                };
                let errors: Vec<String> = v
                    .iter_errors(record)
                    .map(|e| format!("{} at {}", e, e.instance_path()))
                    .collect();
                if !errors.is_empty() {
                    invalid += 1;
                    if ev.len() < 20 {
                        ev.push(format!("stream {stream}: {}", errors.join("; ")));
                        ev.push(format!("  record: {record}"));
                    }
                }
            }
        }
    }
    if invalid > 0 {
        problems.insert(
            0,
            format!("{invalid} of {count} records do not validate against their stream schema"),
        );
    }
    if count == 0 && problems.is_empty() {
        return Verdict::Fail("no RECORD was emitted: nothing to validate".into(), vec![]);
    }
    if problems.is_empty() {
        Verdict::Pass(format!(
            "{count} records validate against their schemas (formats checked)"
        ))
    } else {
        let msg = problems.join("; ");
        problems.extend(ev);
        Verdict::Fail(msg, problems)
    }
}

fn state_emitted(ctx: &Ctx) -> Verdict {
    let r = scenario(ctx, S::Sync);
    let run = match run_of(r, "sync") {
        Ok(run) => run,
        Err(v) => return v,
    };
    let states: Vec<Value> = messages(run)
        .into_iter()
        .filter(|m| msg_type(m) == "STATE")
        .collect();
    if states.is_empty() {
        return Verdict::Fail("no STATE message in the sync".into(), run_evidence(r, run));
    }
    let mut problems = vec![];
    for (i, s) in states.iter().enumerate() {
        if !s.get("value").map(Value::is_object).unwrap_or(false) {
            problems.push(format!("STATE #{} has no value object: {s}", i + 1));
        }
    }
    let last = final_state(&run.outcome).unwrap_or(Value::Null);
    for s in ctx.imp.incremental_streams() {
        let inc = s.spec.incremental.as_ref().expect("incremental");
        let name = &s.spec.name;
        let Some(data) = r.stream(name) else { continue };
        let want = data
            .cursors
            .iter()
            .flatten()
            .cloned()
            .fold(f64::MIN, f64::max);
        let path = format!("bookmarks.{name}.{}", inc.cursor_field);
        match get_path(&last, &path) {
            None => problems.push(format!("the final STATE has no {path}")),
            Some(v) => match cursor_epoch(v) {
                Some(got) if (got - want).abs() < 1.0 => {}
                Some(_) => problems.push(format!(
                    "final {path} is {v}; the greatest {} emitted is {}",
                    inc.cursor_field,
                    super::mock_api::format_rfc3339(want as i64)
                )),
                None => problems.push(format!(
                    "final {path} is {v}, not a {} timestamp",
                    inc.format
                )),
            },
        }
    }
    if problems.is_empty() {
        Verdict::Pass(format!(
            "{} STATE message(s); bookmarks at the last record",
            states.len()
        ))
    } else {
        let mut ev = problems.clone();
        ev.push(format!("final STATE value: {last}"));
        Verdict::Fail(problems.join("; "), ev)
    }
}

fn state_resume_rereads_nothing(ctx: &Ctx) -> Verdict {
    let r = scenario(ctx, S::Resume);
    let first = match run_of(r, "first") {
        Ok(run) => run,
        Err(v) => return v,
    };
    if !first.outcome.succeeded() {
        return Verdict::Fail(
            format!("the first sync did not succeed: {}", first.outcome.ending()),
            run_evidence(r, first),
        );
    }
    let Some(state) = final_state(&first.outcome) else {
        return Verdict::Fail(
            "the first sync emitted no STATE to resume from".into(),
            run_evidence(r, first),
        );
    };
    let resumed = match run_of(r, "resumed") {
        Ok(run) => run,
        Err(v) => return v,
    };
    let mut ev = vec![format!("state given: {state}")];
    if !resumed.outcome.succeeded() {
        ev.extend(run_evidence(r, resumed));
        return Verdict::Fail(
            format!(
                "the resumed sync did not succeed: {}",
                resumed.outcome.ending()
            ),
            ev,
        );
    }
    let mut problems = vec![];
    for name in &r.synced {
        let recs = records_of(resumed, name);
        if !recs.is_empty() {
            let data = r.stream(name);
            let pk = data.map(|d| d.primary_key.clone()).unwrap_or_default();
            problems.push(format!(
                "stream {name}: {} record(s) emitted again (e.g. {})",
                recs.len(),
                record_key(&recs[0], &pk)
            ));
            ev.extend(request_evidence(
                stream_requests(r, resumed, name),
                &ctx.secrets,
                6,
            ));
        }
    }
    if problems.is_empty() {
        Verdict::Pass(format!(
            "resumed from the final state, {} incremental stream(s) emitted nothing",
            r.synced.len()
        ))
    } else {
        Verdict::Fail(problems.join("; "), ev)
    }
}

// ---------------------------------------------------------------------------------------------
// security.*

fn security_no_secret_leak(ctx: &Ctx) -> Verdict {
    let secrets: Vec<String> = ctx
        .secrets
        .iter()
        .filter(|s| s.len() >= 6)
        .cloned()
        .collect();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut forms: Vec<(String, String)> = vec![];
    for s in &secrets {
        for (i, f) in secret_forms(s).into_iter().enumerate() {
            forms.push((
                f,
                if i == 0 {
                    "plain".into()
                } else {
                    "URL-encoded".into()
                },
            ));
        }
        forms.push((b64(s), "base64".into()));
        for other in &secrets {
            if other != s {
                forms.push((b64(&format!("{s}:{other}")), "base64 user:password".into()));
            }
        }
    }
    let mut leaks = vec![];
    let mut lines = 0usize;
    for r in ctx.results.values() {
        for run in &r.runs {
            for (name, stream) in [
                ("stdout", &run.outcome.stdout),
                ("stderr", &run.outcome.stderr),
            ] {
                for (i, line) in stream.iter().enumerate() {
                    lines += 1;
                    for (form, kind) in &forms {
                        if line.contains(form.as_str()) {
                            let masked = forms
                                .iter()
                                .fold(line.clone(), |acc, (f, _)| acc.replace(f.as_str(), "***"));
                            leaks.push(format!(
                                "{}/{} {name} line {} ({kind} secret): {masked}",
                                r.id.name(),
                                run.outcome.label,
                                i + 1
                            ));
                            break;
                        }
                    }
                }
            }
        }
    }
    if leaks.is_empty() {
        Verdict::Pass(format!(
            "{} secrets, none in {lines} output lines",
            secrets.len()
        ))
    } else {
        Verdict::Fail(
            format!(
                "{} output line(s) contain a credential; first: {}",
                leaks.len(),
                leaks[0]
            ),
            leaks,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_categories_known() {
        let mut ids = BTreeSet::new();
        for c in CHECKS {
            assert!(ids.insert(c.id), "duplicate {}", c.id);
            assert!(
                CATEGORIES.contains(&c.category()),
                "unknown category of {}",
                c.id
            );
            assert!(!c.hint.contains('\n'));
        }
        assert_eq!(CHECKS.len(), 29);
    }

    #[test]
    fn error_shape() {
        let ids: BTreeSet<&str> = ["req_1"].into_iter().collect();
        let good = serde_json::json!({"type":"ERROR","code":"AUTH_FAILED","message":"no","retryable":false,"status":401,"request_id":"req_1","stream":"s"});
        assert!(error_shape_problems(&good, &ids).is_empty());
        let bad = serde_json::json!({"type":"ERROR","code":"BOOM","message":"","retryable":"yes","status":"401"});
        let p = error_shape_problems(&bad, &ids);
        assert!(p.len() >= 5, "{p:?}");
    }
}

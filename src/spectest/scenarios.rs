//! The scenarios of the suite: for each, the mock's data and fault plan, the config the
//! connector gets, and the CLI runs to make. [`execute`] runs one scenario against its own mock
//! and returns everything the checks need (runs, request log, data set, secrets).

use super::SuiteOptions;
use super::manifest::LoadedImpl;
use super::mock_api::{
    FaultAction, FaultRule, MockServer, MockSetup, RequestRecord, StreamData, TerminalMode,
    record_count,
};
use super::runner::{Mode, RunOutcome, RunRequest, run_connector};
use rand::RngExt;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Start date given to incremental streams; every generated cursor value is later.
pub const START_DATE: &str = "2023-06-01T00:00:00Z";
pub const TIMEOUT_SECONDS: f64 = 1.0;
pub const INITIAL_DELAY: f64 = 0.1;
pub const MAX_DELAY: f64 = 1.0;
pub const MAX_ATTEMPTS: u32 = 4;
pub const BUDGET_SECONDS: f64 = 4.0;
pub const MAX_RETRY_AFTER: f64 = 10.0;
pub const BURST: u32 = 1;
/// Budget of the persistent-503 scenario, where the budget (not the attempts) must stop retrying.
pub const EXHAUST_BUDGET_SECONDS: f64 = 2.0;
/// How long an injected slow response takes (well over the timeout).
pub const SLOW_RESPONSE: Duration = Duration::from_secs(4);
/// The 5xx burst on the target page, recovered on the attempt after it.
pub const BURST_STATUSES: [u16; 4] = [500, 502, 503, 504];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScenarioId {
    About,
    Discover,
    Sync,
    Resume,
    WrongCredentials,
    Transient5xx,
    RetryAfterSeconds,
    RetryAfterDate,
    BadRequest,
    NotFound,
    Persistent503,
    SlowResponse,
    MalformedJson,
    EmptyPage,
    LastPageCursor,
    RateLimitZero,
}

impl ScenarioId {
    pub const ALL: [ScenarioId; 16] = [
        ScenarioId::About,
        ScenarioId::Discover,
        ScenarioId::Sync,
        ScenarioId::Resume,
        ScenarioId::WrongCredentials,
        ScenarioId::Transient5xx,
        ScenarioId::RetryAfterSeconds,
        ScenarioId::RetryAfterDate,
        ScenarioId::BadRequest,
        ScenarioId::NotFound,
        ScenarioId::Persistent503,
        ScenarioId::SlowResponse,
        ScenarioId::MalformedJson,
        ScenarioId::EmptyPage,
        ScenarioId::LastPageCursor,
        ScenarioId::RateLimitZero,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ScenarioId::About => "about",
            ScenarioId::Discover => "discover",
            ScenarioId::Sync => "sync",
            ScenarioId::Resume => "resume",
            ScenarioId::WrongCredentials => "wrong_credentials",
            ScenarioId::Transient5xx => "transient_5xx",
            ScenarioId::RetryAfterSeconds => "retry_after_seconds",
            ScenarioId::RetryAfterDate => "retry_after_date",
            ScenarioId::BadRequest => "bad_request",
            ScenarioId::NotFound => "not_found",
            ScenarioId::Persistent503 => "persistent_503",
            ScenarioId::SlowResponse => "slow_response",
            ScenarioId::MalformedJson => "malformed_json",
            ScenarioId::EmptyPage => "empty_page",
            ScenarioId::LastPageCursor => "last_page_cursor",
            ScenarioId::RateLimitZero => "rate_limit_zero",
        }
    }
}

/// One process run inside a scenario, placed on the mock's clock.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub outcome: RunOutcome,
    /// Mock clock (seconds) when the process was started and when it ended.
    pub start: f64,
    pub end: f64,
}

/// Everything a scenario produced.
#[derive(Debug, Clone)]
pub struct ScenarioResult {
    pub id: ScenarioId,
    /// Why the scenario does not apply to this connector (it was not run).
    pub not_applicable: Option<String>,
    /// The scenario could not be set up (mock failed to start, ...).
    pub error: Option<String>,
    pub runs: Vec<RunRecord>,
    pub requests: Vec<RequestRecord>,
    pub streams: Vec<StreamData>,
    /// The config the connector got (credentials included; never print it unredacted).
    pub config: Value,
    /// Streams the runs synced.
    pub synced: Vec<String>,
    /// The stream and page the faults were aimed at.
    pub fault_stream: Option<String>,
    pub fault_page: usize,
    /// Every secret value of the scenario: credentials (right and wrong) and issued tokens.
    pub secrets: Vec<String>,
    pub duration_seconds: f64,
}

impl ScenarioResult {
    pub fn run(&self, label: &str) -> Option<&RunRecord> {
        self.runs.iter().find(|r| r.outcome.label == label)
    }

    pub fn first_run(&self) -> Option<&RunRecord> {
        self.runs.first()
    }

    pub fn stream(&self, name: &str) -> Option<&StreamData> {
        self.streams.iter().find(|s| s.name == name)
    }

    /// Stream requests (token endpoint excluded) that arrived during `run`.
    pub fn requests_during(&self, run: &RunRecord) -> Vec<&RequestRecord> {
        self.requests
            .iter()
            .filter(|r| !r.token_endpoint && r.at >= run.start - 0.001 && r.at <= run.end + 0.001)
            .collect()
    }

    pub fn retry_setting(&self, key: &str, fallback: f64) -> f64 {
        self.config
            .get("retry")
            .and_then(|r| r.get(key))
            .and_then(Value::as_f64)
            .unwrap_or(fallback)
    }
}

fn random_alnum(n: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

/// A test secret with characters that change under URL and form encoding, so leaks of encoded
/// forms are detectable too.
fn random_secret(prefix: &str) -> String {
    format!(
        "{prefix}_test_{}/{}+{}=",
        random_alnum(14),
        random_alnum(6),
        random_alnum(4)
    )
}

/// Test credentials for an auth type (the config's `credentials` object).
pub fn make_credentials(imp: &LoadedImpl) -> BTreeMap<String, String> {
    let mut c = BTreeMap::new();
    match imp.manifest.auth.kind.as_str() {
        "api_key" => {
            c.insert("api_key".into(), random_secret("key"));
        }
        "bearer" => {
            c.insert("token".into(), random_secret("tok"));
        }
        "basic" => {
            c.insert("username".into(), format!("user{}", random_alnum(12)));
            c.insert("password".into(), random_secret("pw"));
        }
        "oauth2" => {
            c.insert("client_id".into(), format!("client{}", random_alnum(12)));
            c.insert("client_secret".into(), random_secret("cs"));
            if imp.manifest.auth.uses_refresh_token() {
                c.insert("refresh_token".into(), random_secret("rt"));
            }
        }
        _ => {}
    }
    c
}

/// Values for every `{name}` placeholder in the stream paths.
pub fn make_params(imp: &LoadedImpl) -> BTreeMap<String, String> {
    let re = regex::Regex::new(r"\{([^{}/]+)\}").expect("placeholder regex");
    let mut params = BTreeMap::new();
    for s in &imp.streams {
        for cap in re.captures_iter(&s.spec.path) {
            params.insert(
                cap[1].to_string(),
                format!("cf-{}", cap[1].to_lowercase().replace('_', "-")),
            );
        }
    }
    params
}

/// The config given to the connector: mock base URL, test credentials, small pages, short timeouts.
pub fn base_config(
    base_url: &str,
    credentials: &BTreeMap<String, String>,
    params: &BTreeMap<String, String>,
    opts: &SuiteOptions,
    streams: &[String],
) -> Value {
    json!({
        "base_url": base_url,
        "credentials": credentials,
        "params": params,
        "start_date": START_DATE,
        "page_size": opts.page_size,
        "timeout_seconds": TIMEOUT_SECONDS,
        "retry": {
            "max_attempts": MAX_ATTEMPTS,
            "initial_delay_seconds": INITIAL_DELAY,
            "max_delay_seconds": MAX_DELAY,
            "budget_seconds": BUDGET_SECONDS,
            "max_retry_after_seconds": MAX_RETRY_AFTER
        },
        "rate_limit": { "requests_per_second": opts.requests_per_second, "burst": BURST },
        "circuit_breaker": { "failure_threshold": 1000, "reset_seconds": 1 },
        "streams": streams
    })
}

/// What a scenario needs set up before its runs.
struct Plan {
    terminal: TerminalMode,
    full_pages_only: bool,
    faults: Vec<FaultRule>,
    streams: Vec<String>,
    wrong_credentials: bool,
    retry_overrides: Vec<(&'static str, Value)>,
    modes: Vec<(&'static str, Mode)>,
    fault_stream: Option<String>,
    fault_page: usize,
}

fn plan(id: ScenarioId, imp: &LoadedImpl) -> Result<Plan, String> {
    let all: Vec<String> = imp.streams.iter().map(|s| s.spec.name.clone()).collect();
    let target = imp.target_stream();
    let paginated = target.spec.pagination.is_paginated();
    // Faults hit the second page when there is one, so pagination is under way when they come.
    let fault_page = if paginated { 2 } else { 1 };
    // When the target has a single page, sync everything so that requests follow the fault.
    let fault_streams = if paginated {
        vec![target.spec.name.clone()]
    } else {
        all.clone()
    };
    let mut p = Plan {
        terminal: TerminalMode::Normal,
        full_pages_only: false,
        faults: vec![],
        streams: all.clone(),
        wrong_credentials: false,
        retry_overrides: vec![],
        modes: vec![("sync", Mode::Sync)],
        fault_stream: None,
        fault_page: 0,
    };
    let fault = |actions: Vec<FaultAction>, repeat_last: bool| FaultRule {
        stream: target.spec.name.clone(),
        page: fault_page,
        actions,
        repeat_last,
    };
    let aim = |p: &mut Plan, rule: FaultRule| {
        p.fault_stream = Some(rule.stream.clone());
        p.fault_page = rule.page;
        p.faults.push(rule);
        p.streams = fault_streams.clone();
    };
    match id {
        ScenarioId::About => p.modes = vec![("about", Mode::About)],
        ScenarioId::Discover => p.modes = vec![("discover", Mode::Discover)],
        ScenarioId::Sync => {}
        ScenarioId::Resume => {
            let inc: Vec<String> = imp
                .incremental_streams()
                .iter()
                .map(|s| s.spec.name.clone())
                .collect();
            if inc.is_empty() {
                return Err("no stream declares incremental".into());
            }
            p.streams = inc;
            p.modes = vec![("first", Mode::Sync), ("resumed", Mode::Sync)];
        }
        ScenarioId::WrongCredentials => {
            if imp.manifest.auth.kind == "none" {
                return Err("auth.type is none: there are no credentials to get wrong".into());
            }
            p.wrong_credentials = true;
            p.streams = vec![target.spec.name.clone()];
        }
        ScenarioId::Transient5xx => {
            aim(
                &mut p,
                fault(
                    BURST_STATUSES
                        .iter()
                        .map(|s| FaultAction::Status(*s))
                        .collect(),
                    false,
                ),
            );
            p.retry_overrides = vec![
                ("max_attempts", json!(BURST_STATUSES.len() + 2)),
                ("budget_seconds", json!(10.0)),
            ];
        }
        ScenarioId::RetryAfterSeconds => aim(
            &mut p,
            fault(vec![FaultAction::RetryAfterSeconds(1)], false),
        ),
        ScenarioId::RetryAfterDate => {
            aim(&mut p, fault(vec![FaultAction::RetryAfterDate(2)], false))
        }
        ScenarioId::BadRequest => aim(&mut p, fault(vec![FaultAction::Status(400)], true)),
        ScenarioId::NotFound => aim(&mut p, fault(vec![FaultAction::Status(404)], true)),
        ScenarioId::Persistent503 => {
            aim(&mut p, fault(vec![FaultAction::Status(503)], true));
            p.retry_overrides = vec![
                ("max_attempts", json!(100)),
                ("max_delay_seconds", json!(0.4)),
                ("budget_seconds", json!(EXHAUST_BUDGET_SECONDS)),
            ];
        }
        ScenarioId::SlowResponse => {
            aim(&mut p, fault(vec![FaultAction::Slow(SLOW_RESPONSE)], true));
            p.retry_overrides = vec![("max_attempts", json!(2)), ("budget_seconds", json!(3.0))];
        }
        ScenarioId::MalformedJson => aim(&mut p, fault(vec![FaultAction::Malformed], false)),
        ScenarioId::RateLimitZero => {
            if !paginated && imp.streams.len() < 2 {
                return Err(
                    "a single unpaginated stream: no request follows the throttled response".into(),
                );
            }
            aim(&mut p, fault(vec![FaultAction::ZeroRemaining(2)], false));
        }
        ScenarioId::EmptyPage => {
            let names: Vec<String> = imp
                .streams
                .iter()
                .filter(|s| s.spec.pagination.is_paginated())
                .map(|s| s.spec.name.clone())
                .collect();
            if names.is_empty() {
                return Err("no stream is paginated".into());
            }
            p.streams = names;
            p.terminal = TerminalMode::EmptyTail;
            p.full_pages_only = true;
        }
        ScenarioId::LastPageCursor => {
            // A last_record cursor without has_more_path can only stop on an empty page, so the
            // last page is recognisable only with has_more_path or a cursor taken from the body.
            let names: Vec<String> = imp
                .streams
                .iter()
                .filter(|s| {
                    let p = &s.spec.pagination;
                    p.is_cursor() && (p.has_more_path.is_some() || p.cursor_from_body())
                })
                .map(|s| s.spec.name.clone())
                .collect();
            if names.is_empty() {
                return Err(
                    "no stream uses cursor pagination with has_more_path or a body cursor".into(),
                );
            }
            p.streams = names;
            p.terminal = TerminalMode::LastCarriesCursor;
        }
    }
    Ok(p)
}

/// Runs one scenario on its own mock; the mock is stopped before this returns.
pub async fn execute(id: ScenarioId, imp: &LoadedImpl, opts: &SuiteOptions) -> ScenarioResult {
    let started = Instant::now();
    let mut result = ScenarioResult {
        id,
        not_applicable: None,
        error: None,
        runs: vec![],
        requests: vec![],
        streams: vec![],
        config: Value::Null,
        synced: vec![],
        fault_stream: None,
        fault_page: 0,
        secrets: vec![],
        duration_seconds: 0.0,
    };
    let plan = match plan(id, imp) {
        Ok(p) => p,
        Err(reason) => {
            result.not_applicable = Some(reason);
            return result;
        }
    };
    let good = make_credentials(imp);
    let wrong = make_credentials(imp);
    let params = make_params(imp);
    let access_token = format!("at_{}", random_alnum(32));
    result.secrets = good.values().chain(wrong.values()).cloned().collect();
    result.secrets.push(access_token.clone());
    result.fault_stream = plan.fault_stream.clone();
    result.fault_page = plan.fault_page;
    result.synced = plan.streams.clone();

    let count = if plan.full_pages_only {
        opts.page_size * 4
    } else {
        record_count(opts.page_size)
    };
    let streams: Vec<StreamData> = imp
        .streams
        .iter()
        .map(|s| StreamData::generate(s, &params, count))
        .collect();
    result.streams = streams.clone();
    let setup = MockSetup {
        streams,
        auth: imp.manifest.auth.clone(),
        credentials: good.clone(),
        access_token,
        page_size: opts.page_size,
        faults: plan.faults.clone(),
        terminal: plan.terminal,
    };
    let mock = match MockServer::start(setup).await {
        Ok(m) => m,
        Err(e) => {
            result.error = Some(format!("the mock API did not start: {e}"));
            return result;
        }
    };
    let creds = if plan.wrong_credentials {
        &wrong
    } else {
        &good
    };
    let mut config = base_config(&mock.base_url(), creds, &params, opts, &plan.streams);
    if imp.manifest.auth.kind == "oauth2" {
        // The manifest may name the provider's real token endpoint; the config points it at the mock.
        config["token_url"] = json!(format!("{}{}", mock.base_url(), imp.manifest.auth.token_path()));
    }
    for (key, value) in &plan.retry_overrides {
        config["retry"][*key] = value.clone();
    }
    result.config = config.clone();

    let mut state: Option<Value> = None;
    for (label, mode) in &plan.modes {
        if *label == "resumed" {
            match result.runs.last().and_then(|r| final_state(&r.outcome)) {
                Some(s) => state = Some(s),
                None => break, // the check reports the missing state of the first run
            }
        }
        let req = RunRequest {
            label: label.to_string(),
            mode: mode.clone(),
            config: if *mode == Mode::About {
                None
            } else {
                Some(config.clone())
            },
            catalog: None,
            state: state.clone(),
            wall_limit: opts.wall_limit,
        };
        let start = mock.now();
        let outcome = run_connector(&imp.dir, &imp.manifest.run.command, req).await;
        let end = mock.now();
        result.runs.push(RunRecord {
            outcome,
            start,
            end,
        });
    }
    result.requests = mock.requests();
    result.secrets.extend(mock.issued_tokens());
    mock.shutdown().await;
    result.duration_seconds = started.elapsed().as_secs_f64();
    result
}

/// The `value` of the last STATE message on stdout.
pub fn final_state(outcome: &RunOutcome) -> Option<Value> {
    outcome
        .stdout
        .iter()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|m| m.get("type").and_then(Value::as_str) == Some("STATE"))
        .and_then(|m| m.get("value").cloned())
}

//! The agent end to end against the scripted fake LLM server (tests/support), in both wire
//! formats: a session that builds a passing connector, each budget, refusals, unknown tools,
//! giving up, provider retries, and the `generate --request` command line.

mod support;

use connector_factory::agent::llm::{LlmConfig, RetryPolicy, Secret, Wire};
use connector_factory::agent::session::BudgetKind;
use connector_factory::agent::{self, AgentRequest, Outcome, RunOptions, RunResult};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::fake_llm::{API_KEY, FakeLlm};

/// Sessions that run the spec-test suite take turns: the suite's timing checks are honest only
/// on a machine that is not running four other suites at once.
static SUITE_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A token-shaped value in the request, to prove the transcript redacts it.
const LEAKY: &str = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}


struct Env {
    tmp: tempfile::TempDir,
    opts: RunOptions,
}

/// A scratch registry (schemas and scaffolds copied from the repository) and a client for the
/// fake server with quick retries.
fn env_for(server: &FakeLlm, wire: Wire) -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let registry = tmp.path().join("registry");
    support::tree::copy_tree(&repo().join("registry/_schemas"), &registry.join("_schemas"));
    support::tree::copy_tree(&repo().join("registry/_scaffold"), &registry.join("_scaffold"));
    let mut opts = RunOptions::new(&repo(), &registry);
    let mut cfg = LlmConfig::new(wire, &server.base_url, &server.model(), Secret::new(API_KEY));
    cfg.retry = RetryPolicy {
        max_attempts: 5,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        max_retry_after: Duration::from_secs(5),
    };
    cfg.timeout = Duration::from_secs(60);
    opts.llm = Some(cfg);
    Env { tmp, opts }
}

fn request() -> AgentRequest {
    AgentRequest {
        name: "Acme Widgets".into(),
        slug: String::new(),
        docs_url: Some("https://docs.acme-widgets.test/api".into()),
        openapi_url: None,
        auth: Some("Bearer token".into()),
        streams: vec!["widgets".into()],
        language: "python".into(),
        notes: Some(format!("My test token is {LEAKY}, please ignore it.")),
        guidance: None,
    }
}

async fn run(server: &FakeLlm, env: &Env) -> RunResult {
    let result = agent::run(&request(), &env.opts).await.expect("the run starts");
    assert_eq!(server.problems(), Vec::<String>::new(), "the fake server saw malformed requests");
    result
}

fn events(result: &RunResult) -> Vec<Value> {
    let text = std::fs::read_to_string(result.transcript_jsonl.as_ref().unwrap()).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn exceeded(outcome: &Outcome) -> (BudgetKind, String) {
    match outcome {
        Outcome::BudgetExceeded { which } => (which.kind, outcome.to_string()),
        other => panic!("expected a budget to run out, got {other}"),
    }
}

/// Transcript checks every session must pass.
fn check_transcript(result: &RunResult) {
    let jsonl = std::fs::read_to_string(result.transcript_jsonl.as_ref().unwrap()).unwrap();
    let md = std::fs::read_to_string(result.transcript_md.as_ref().unwrap()).unwrap();
    for text in [&jsonl, &md] {
        assert!(!text.contains(API_KEY), "the API key leaked into the transcript");
        assert!(!text.contains(LEAKY), "a token-shaped value leaked into the transcript");
    }
    assert!(jsonl.contains("[REDACTED]"));
    assert!(md.chars().count() <= 60_000);
    let last: Value = serde_json::from_str(jsonl.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "outcome");
    assert_eq!(last["summary"], result.outcome.to_string());
}

async fn build_scenario(fixture: &str, wire: Wire) {
    let _turn = SUITE_TURN.lock().await;
    let server = FakeLlm::start(fixture).await;
    let env = env_for(&server, wire);
    let result = run(&server, &env).await;
    let Outcome::Succeeded { summary } = &result.outcome else { panic!("expected success, got {}", result.outcome) };
    assert!(summary.contains("Widgets"), "{summary}");
    assert_eq!(server.steps_left(), 0);
    let imp = &result.impl_dir;
    assert!(imp.ends_with("acme-widgets/v1/connector-factory/python/default"), "{}", imp.display());
    assert!(imp.join("connector_runtime/cli.py").is_file(), "the session set-up copies the runtime in");
    let findings = connector_factory::validate::validate_implementation(imp).unwrap();
    assert!(findings.iter().all(|f| f.severity != connector_factory::validate::Severity::Error), "{findings:#?}");
    let session = result.session.as_ref().unwrap();
    assert_eq!(session.turns, 6);
    assert!(session.cost_usd.unwrap() > 0.0);
    check_transcript(&result);
    let names: Vec<String> = events(&result).iter().filter(|e| e["event"] == "tool_call").map(|e| e["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, ["list_files", "read_file", "finish", "write_file", "write_file", "write_file", "validate", "spec_test", "finish"]);
    // The session says where its time went: the model, and each tool by name.
    let tools: Vec<&str> = session.tool_seconds.keys().map(String::as_str).collect();
    assert_eq!(tools, ["finish", "list_files", "read_file", "spec_test", "validate", "write_file"]);
    assert!(session.tool_seconds["spec_test"] > 0.0 && session.model_seconds > 0.0, "{session:?}");
    let accounted = session.model_seconds + session.tool_seconds.values().sum::<f64>();
    assert!(accounted <= session.duration_seconds + 1e-6, "{session:?}");
    // The last passing run of the whole suite is handed on (the pipeline takes it instead of
    // running the suite again), for exactly these files and options.
    let passed = result.passed_suite.as_ref().expect("the whole suite passed in the session");
    assert!(passed.report.passed && passed.report.implementations[0].summary.passed > 20, "{:?}", passed.report.implementations[0].summary);
    assert!(passed.still_holds(imp, &env.opts.spec_tests));
    let other = connector_factory::spectest::SuiteOptions { page_size: 7, ..env.opts.spec_tests.clone() };
    assert!(!passed.still_holds(imp, &other), "other options, another run");
    std::fs::write(imp.join("NOTES.txt"), "a file the suite did not see").unwrap();
    assert!(!passed.still_holds(imp, &env.opts.spec_tests), "other files, another run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_session_builds_a_passing_connector() {
    build_scenario("build.anthropic.json", Wire::Anthropic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_session_builds_a_passing_connector() {
    build_scenario("build.openai.json", Wire::Openai).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turn_budget_ends_the_session() {
    let server = FakeLlm::start("budget_turns.anthropic.json").await;
    let mut env = env_for(&server, Wire::Anthropic);
    env.opts.budgets.max_turns = 2;
    let result = run(&server, &env).await;
    assert_eq!(exceeded(&result.outcome), (BudgetKind::Turns, "Budget exceeded: turns (2/2)".into()));
    assert_eq!(server.steps_left(), 1, "no third call");
    check_transcript(&result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_budget_ends_the_session() {
    let server = FakeLlm::start("budget_tokens.openai.json").await;
    let mut env = env_for(&server, Wire::Openai);
    env.opts.budgets.max_tokens = 100_000;
    let result = run(&server, &env).await;
    assert_eq!(exceeded(&result.outcome), (BudgetKind::Tokens, "Budget exceeded: tokens (151000/100000)".into()));
    assert_eq!(server.steps_left(), 1);
    // The tools of an over-budget answer are not run.
    assert!(!events(&result).iter().any(|e| e["event"] == "tool_call"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dollar_budget_ends_the_session() {
    let server = FakeLlm::start("budget_dollars.anthropic.json").await;
    let mut env = env_for(&server, Wire::Anthropic);
    env.opts.budgets.max_dollars = 0.5;
    let result = run(&server, &env).await;
    // Two turns of 100k input + 2k output tokens at $3 / $15 per million.
    assert_eq!(exceeded(&result.outcome), (BudgetKind::Dollars, "Budget exceeded: dollars ($0.6600/$0.5000)".into()));
    assert_eq!(result.session.as_ref().unwrap().turns, 2);
    assert_eq!(server.steps_left(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wall_clock_budget_ends_a_slow_call() {
    let server = FakeLlm::start("budget_wall_clock.openai.json").await;
    let mut env = env_for(&server, Wire::Openai);
    env.opts.budgets.wall_clock = Duration::from_secs(1);
    let t0 = Instant::now();
    let result = run(&server, &env).await;
    let (kind, line) = exceeded(&result.outcome);
    assert_eq!(kind, BudgetKind::WallClock);
    assert!(line.starts_with("Budget exceeded: wall clock (1.0s/1.0s)") || line.starts_with("Budget exceeded: wall clock (1.1s/1.0s)"), "{line}");
    assert!(t0.elapsed() < Duration::from_millis(2500), "did not wait for the 3 s answer");
    check_transcript(&result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_outside_the_folder_are_refused_and_the_session_goes_on() {
    let _ = std::fs::remove_file("/tmp/connector-factory-escape-test.txt");
    let server = FakeLlm::start("escape.anthropic.json").await;
    let env = env_for(&server, Wire::Anthropic);
    let skill_before = std::fs::read_to_string(repo().join("skills/connector-building/SKILL.md")).unwrap();
    let result = run(&server, &env).await;
    assert_eq!(result.outcome, Outcome::GaveUp { reason: "test scenario over".into() });
    assert_eq!(server.steps_left(), 0);
    assert!(!env.tmp.path().join("outside.txt").exists());
    assert!(!Path::new("/tmp/connector-factory-escape-test.txt").exists());
    assert_eq!(std::fs::read_to_string(repo().join("skills/connector-building/SKILL.md")).unwrap(), skill_before);
    assert_eq!(std::fs::read_to_string(result.impl_dir.join("docs/notes.md")).unwrap(), "inside\n");
    let errors = events(&result).iter().filter(|e| e["event"] == "tool_result" && e["is_error"] == true).count();
    assert_eq!(errors, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tools_and_broken_arguments_are_error_results() {
    let server = FakeLlm::start("unknown_tool.openai.json").await;
    let env = env_for(&server, Wire::Openai);
    let result = run(&server, &env).await;
    assert_eq!(result.outcome, Outcome::GaveUp { reason: "I keep calling tools that do not exist".into() });
    assert_eq!(server.steps_left(), 0);
    // The broken arguments went back to the model exactly as it sent them.
    let second = &server.received()[1].body;
    let echoed = second["messages"].as_array().unwrap().iter().find(|m| m["role"] == "assistant").unwrap();
    assert_eq!(echoed["tool_calls"][1]["function"]["arguments"], "{\"path\": ");
}

async fn give_up_scenario(fixture: &str, wire: Wire) {
    let server = FakeLlm::start(fixture).await;
    let env = env_for(&server, wire);
    let result = run(&server, &env).await;
    assert_eq!(result.outcome, Outcome::GaveUp { reason: "The Acme API needs a partner contract; provide a sandbox key and docs.".into() });
    assert_eq!(server.steps_left(), 0);
    assert!(events(&result).iter().any(|e| e["event"] == "nudge"));
    check_transcript(&result);
    let md = std::fs::read_to_string(result.transcript_md.as_ref().unwrap()).unwrap();
    assert!(md.contains("Gave up: The Acme API needs a partner contract"), "{md}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_session_gives_up() {
    give_up_scenario("give_up.anthropic.json", Wire::Anthropic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_session_gives_up() {
    give_up_scenario("give_up.openai.json", Wire::Openai).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_429_529_500_are_retried_honouring_retry_after() {
    let server = FakeLlm::start("retry.anthropic.json").await;
    let env = env_for(&server, Wire::Anthropic);
    let result = run(&server, &env).await;
    assert_eq!(result.outcome, Outcome::GaveUp { reason: "retried fine".into() });
    let at: Vec<Instant> = server.received().iter().map(|r| r.at).collect();
    assert_eq!(at.len(), 4);
    assert!(at[1] - at[0] >= Duration::from_millis(990), "retry-after: 1 honoured ({:?})", at[1] - at[0]);
    assert!(at[2] - at[1] < Duration::from_millis(900), "no retry-after: quick backoff ({:?})", at[2] - at[1]);
    let response = events(&result).into_iter().find(|e| e["event"] == "model_response").unwrap();
    let statuses: Vec<u64> = response["retries"].as_array().unwrap().iter().map(|r| r["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [429, 529, 500]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_429_with_http_date_and_5xx_are_retried() {
    let server = FakeLlm::start("retry.openai.json").await;
    let env = env_for(&server, Wire::Openai);
    let result = run(&server, &env).await;
    assert_eq!(result.outcome, Outcome::GaveUp { reason: "retried fine".into() });
    let at: Vec<Instant> = server.received().iter().map(|r| r.at).collect();
    assert_eq!(at.len(), 4);
    // The date is 2 s ahead at one-second resolution: the wait is between 1 and 2 s.
    let gap = at[1] - at[0];
    assert!(gap >= Duration::from_millis(990) && gap < Duration::from_millis(3500), "{gap:?}");
}

async fn fatal_scenario(fixture: &str, wire: Wire, kind: &str) {
    let server = FakeLlm::start(fixture).await;
    let env = env_for(&server, wire);
    let result = run(&server, &env).await;
    let Outcome::Failed { error } = &result.outcome else { panic!("expected a failure, got {}", result.outcome) };
    assert!(error.contains("401") && error.contains(kind) && error.contains("invalid x-api-key"), "{error}");
    assert_eq!(server.received().len(), 1, "a 401 is not retried");
    check_transcript(&result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_bad_key_fails_without_retries() {
    fatal_scenario("fatal.anthropic.json", Wire::Anthropic, "authentication_error").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_bad_key_fails_without_retries() {
    fatal_scenario("fatal.openai.json", Wire::Openai, "invalid_request_error").await;
}

const REQUEST_MD: &str = "### Connector name\n\nAcme Widgets\n\n### API docs URL\n\nhttps://docs.acme-widgets.test/api\n\n### OpenAPI description URL\n\n_No response_\n\n### Auth type\n\nBearer token\n\n### Streams wanted\n\n- widgets\n\n### Language\n\nPython\n\n### Notes\n\n_No response_\n";

fn cli(tmp: &Path, envs: &[(&str, &str)]) -> std::process::Output {
    let req = tmp.join("request.md");
    std::fs::write(&req, REQUEST_MD).unwrap();
    let registry = tmp.join("registry");
    support::tree::copy_tree(&repo().join("registry/_schemas"), &registry.join("_schemas"));
    support::tree::copy_tree(&repo().join("registry/_scaffold"), &registry.join("_scaffold"));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_connector-factory"));
    cmd.args(["generate", "--request"]).arg(&req).arg("--tree").arg(repo()).arg("--out").arg(&registry);
    for k in ["FACTORY_LLM_PROVIDER", "FACTORY_LLM_BASE_URL", "FACTORY_LLM_MODEL", "FACTORY_LLM_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "FACTORY_LLM_PRICES"] {
        cmd.env_remove(k);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// `generate --issue` (the Actions runner's entry) names what it is missing and refuses to mix
/// with `--request`.
#[test]
fn cli_runner_mode_names_its_missing_environment() {
    let bin = env!("CARGO_BIN_EXE_connector-factory");
    let mut cmd = std::process::Command::new(bin);
    cmd.args(["generate", "--issue", "5", "--requested-by", "maya"]);
    for k in ["GITHUB_REPOSITORY", "FACTORY_GITHUB_TOKEN", "FACTORY_BOT_LOGIN"] {
        cmd.env_remove(k);
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for k in ["GITHUB_REPOSITORY", "FACTORY_GITHUB_TOKEN", "FACTORY_BOT_LOGIN"] {
        assert!(err.contains(k), "names {k}: {err}");
    }
    let both = std::process::Command::new(bin).args(["generate", "--issue", "5", "--request", "r.md"]).output().unwrap();
    assert_eq!(both.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&both.stderr).contains("cannot be used with"), "{both:?}");
}

#[test]
fn cli_without_llm_or_spec_names_the_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let out = cli(tmp.path(), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("ANTHROPIC_API_KEY") && err.contains("OPENAI_API_KEY") && err.contains("OpenAPI"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_runs_the_agent_on_a_request_file() {
    let server = FakeLlm::start("give_up.anthropic.json").await;
    let tmp = tempfile::tempdir().unwrap();
    let (path, base, model) = (tmp.path().to_path_buf(), server.base_url.clone(), server.model());
    let out = tokio::task::spawn_blocking(move || {
        cli(&path, &[("ANTHROPIC_API_KEY", API_KEY), ("FACTORY_LLM_BASE_URL", base.as_str()), ("FACTORY_LLM_MODEL", model.as_str())])
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(server.problems(), Vec::<String>::new());
    assert_eq!(out.status.code(), Some(1), "gave up: exit 1\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("Gave up: The Acme API needs a partner contract"), "{stdout}");
    assert!(!stdout.contains(API_KEY));
    let imp = tmp.path().join("registry/acme-widgets/v1/connector-factory/python/default");
    assert!(imp.join(".factory/transcript.jsonl").is_file() && imp.join(".factory/transcript.md").is_file());
    assert!(tmp.path().join("registry/acme-widgets/_meta/connector.json").is_file());
}

/// A small web server for fetch_url: an HTML page, a large body, and redirects.
async fn docs_server() -> String {
    use axum::response::{Html, IntoResponse, Redirect};
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/docs", get(|| async { Html("<html><head><script>steal()</script></head><body><h1>Widgets API</h1><p>List with <code>GET /v1/widgets</code> &amp; paginate.</p></body></html>") }))
        .route("/big", get(|| async { "x".repeat(3 * 1024 * 1024) }))
        .route("/to-private", get(|| async { Redirect::temporary("http://10.0.0.1/admin").into_response() }))
        .route("/to-docs", get(|| async { Redirect::temporary("/docs").into_response() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(60), axum::serve(listener, app)).await;
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_url_reads_pages_and_refuses_private_targets() {
    use connector_factory::agent::tools::ToolContext;
    use serde_json::json;
    let base = docs_server().await;
    let tmp = tempfile::tempdir().unwrap();
    let registry = tmp.path().join("registry");
    let imp = registry.join("acme/v1/me/python/default");
    std::fs::create_dir_all(&imp).unwrap();
    std::fs::create_dir_all(registry.join("_scaffold")).unwrap();
    let mut ctx = ToolContext::new(&imp, &repo().join("skills"), &registry, None).unwrap();

    // Without the test-only setting, loopback is refused like any private address.
    let r = ctx.call("fetch_url", &json!({"url": format!("{base}/docs")})).await;
    assert!(r.is_error && r.content.contains("loopback"), "{r:?}");

    ctx.fetch.allow_loopback = true;
    let r = ctx.call("fetch_url", &json!({"url": format!("{base}/to-docs")})).await;
    assert!(!r.is_error, "{r:?}");
    assert!(r.content.contains("# Widgets API") && r.content.contains("GET /v1/widgets & paginate."), "{}", r.content);
    assert!(!r.content.contains("steal"), "{}", r.content);

    let r = ctx.call("fetch_url", &json!({"url": format!("{base}/big"), "max_chars": 1000})).await;
    assert!(!r.is_error);
    assert!(r.content.contains("call again with offset 1000"), "{}", &r.content[r.content.len() - 200..]);
    assert!(r.content.len() < 1500);

    let r = ctx.call("fetch_url", &json!({"url": format!("{base}/to-private")})).await;
    assert!(r.is_error && r.content.contains("10.0.0.1") && r.content.contains("private"), "{r:?}");

    let r = ctx.call("fetch_url", &json!({"url": "ftp://example.com/x"})).await;
    assert!(r.is_error && r.content.contains("only http and https"), "{r:?}");
}

fn openapi_request() -> AgentRequest {
    AgentRequest {
        openapi_url: Some(repo().join("tests/fixtures/agent/acme-widgets.openapi.yaml").display().to_string()),
        ..request()
    }
}

async fn openapi_scenario(fixture: &str, wire: Wire) {
    let _turn = SUITE_TURN.lock().await;
    let server = FakeLlm::start(fixture).await;
    let env = env_for(&server, wire);
    let result = agent::run(&openapi_request(), &env.opts).await.unwrap();
    assert_eq!(server.problems(), Vec::<String>::new());
    assert_eq!(result.agent, agent::AgentKind::Llm, "with an LLM configured the LLM agent runs, spec or not");
    assert!(matches!(result.outcome, Outcome::Succeeded { .. }), "{}", result.outcome);
    assert_eq!(server.steps_left(), 0);
    // The OpenAPI tools are offered only when the request has a description.
    let tools = &server.received()[0].body["tools"];
    assert!(tools.to_string().contains("generate_from_openapi"));
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(result.impl_dir.join("connector.json")).unwrap()).unwrap();
    assert_eq!(manifest["streams"][0]["path"], "/v1/widgets");
    check_transcript(&result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_session_uses_the_openapi_tools_and_the_builtin_generator() {
    openapi_scenario("openapi.anthropic.json", Wire::Anthropic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_session_uses_the_openapi_tools_and_the_builtin_generator() {
    openapi_scenario("openapi.openai.json", Wire::Openai).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_llm_a_request_with_a_spec_goes_to_the_builtin_generator() {
    let _turn = SUITE_TURN.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let registry = tmp.path().join("registry");
    support::tree::copy_tree(&repo().join("registry/_schemas"), &registry.join("_schemas"));
    support::tree::copy_tree(&repo().join("registry/_scaffold"), &registry.join("_scaffold"));
    let opts = RunOptions::new(&repo(), &registry);
    let result = agent::run(&openapi_request(), &opts).await.unwrap();
    assert_eq!(result.agent, agent::AgentKind::Builtin);
    assert!(matches!(result.outcome, Outcome::Succeeded { .. }), "{}", result.outcome);
    assert!(result.session.is_none() && result.transcript_jsonl.is_none());
    let findings = connector_factory::validate::validate_implementation(&result.impl_dir).unwrap();
    assert!(findings.iter().all(|f| f.severity != connector_factory::validate::Severity::Error), "{findings:#?}");
    // Without an LLM and without a spec there is nothing to run.
    let err = agent::run(&request(), &opts).await.unwrap_err().to_string();
    assert!(err.contains("ANTHROPIC_API_KEY"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_bounded() {
    let server = FakeLlm::start("overloaded.anthropic.json").await;
    let mut env = env_for(&server, Wire::Anthropic);
    env.opts.llm.as_mut().unwrap().retry.max_attempts = 3;
    let result = run(&server, &env).await;
    let Outcome::Failed { error } = &result.outcome else { panic!("expected a failure, got {}", result.outcome) };
    assert!(error.contains("overloaded_error") && error.contains("after 3 attempts"), "{error}");
    assert_eq!(server.received().len(), 3);
    assert_eq!(server.steps_left(), 0);
}

#[test]
fn cli_reports_an_unusable_request_form() {
    let tmp = tempfile::tempdir().unwrap();
    let req = tmp.path().join("request.md");
    std::fs::write(&req, "### Streams wanted\n\nwidgets\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_connector-factory"))
        .args(["generate", "--request"])
        .arg(&req)
        .arg("--out")
        .arg(tmp.path().join("registry"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("Connector name"), "{err}");
    assert!(!tmp.path().join("registry").exists(), "nothing is written for an unusable request");
}

/// The generator tool fetches a URL under the session's fetch policy: with the default policy a
/// loopback (or private) address is refused before anything is generated.
#[tokio::test]
async fn generate_from_openapi_refuses_a_loopback_url_by_default() {
    use connector_factory::agent::tools::{FetchPolicy, adapters};
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("registry/_schemas")).unwrap();
    let impl_dir = tmp.path().join("registry/acme/v1/me/python/default");
    std::fs::create_dir_all(&impl_dir).unwrap();
    // A real description on a loopback server: without the policy the generator would load it.
    let spec = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tidepool-bookings.openapi.yaml")).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/openapi.yaml", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        if let Ok((mut conn, _)) = listener.accept() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/yaml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", spec.len());
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&spec);
        }
    });
    let refused = adapters::generate_from_openapi(&url, &FetchPolicy::default(), &impl_dir, &[]).await;
    let err = format!("{:#}", refused.expect_err("a loopback URL must be refused"));
    assert!(err.contains("loopback"), "refused by the fetch policy, not by a failed connection: {err}");
    assert_eq!(std::fs::read_dir(&impl_dir).unwrap().count(), 0, "nothing was generated");
}

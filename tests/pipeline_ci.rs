//! The learning loop's CI stage on a recording platform: a real bare repository as the remote,
//! a real SQLite store for the attempt counts, real spec-test reports zipped as CI artifacts,
//! and the scripted fake LLM for fix attempts.
//!
//! Each scene first runs the generate stage (builtin generator, Tidepool Bookings example) to get
//! a connector PR, then plants a pagination defect on the branch as the bot would have pushed it.

mod support;

use connector_factory::config::{LlmProvider, LlmSettings, Secret};
use connector_factory::git::Identity;
use connector_factory::pipeline::analysis::Source;
use connector_factory::pipeline::ci::{self, CiJob, CiOutcome, CiVerdict, FixOutcome};
use connector_factory::pipeline::generate::{self, GenerateJob, Trigger, Verdict};
use connector_factory::pipeline::improve::{IMPROVEMENT_LABEL, ImprovementProposal, Proposed};
use connector_factory::pipeline::status::MARKER;
use connector_factory::pipeline::{Control, PipelineConfig};
use connector_factory::platform::{JobLog, PullRequest, WorkflowRun};
use connector_factory::spectest::{self, SpecReport, SuiteOptions};
use connector_factory::store::{LedgerEntry, LedgerQuery, SqliteStore, Store};
use serde_json::{Value, json};
use std::io::Write as _;
use std::path::Path;
use support::fake_llm::{API_KEY, FakeLlm};
use support::files::FileServer;
use support::platform::FakePlatform;
use support::repo::{BareRepo, HUMAN};
use tokio_util::sync::CancellationToken;

const ISSUE: u64 = 7;
const REPO: &str = "acme/factory";
const IMPL: &str = "registry/tidepool-bookings/v1/connector-factory/python/default";
const SCHEMA: &str = "schemas/clients.json";
const CHECK: &str = "schema.records_valid";

fn bot() -> Identity {
    Identity::github_app("connector-factory", Some(4242))
}

fn request(name: &str, openapi: &str) -> String {
    format!(
        "### Connector name\n\n{name}\n\n### API docs URL\n\nhttps://docs.tidepool-bookings.example/api\n\n\
         ### OpenAPI description URL\n\n{openapi}\n\n### Auth type\n\nBearer token\n\n### Streams wanted\n\n\
         clients, appointments\n\n### Language\n\nPython\n\n### Notes\n\n_No response_\n"
    )
}

struct Scene {
    tmp: tempfile::TempDir,
    _files: FileServer,
    bare: BareRepo,
    platform: FakePlatform,
    store: SqliteStore,
    config: PipelineConfig,
    files_base: String,
}

fn ctl() -> Control {
    Control::standalone(CancellationToken::new())
}

async fn scene() -> Scene {
    let tmp = tempfile::tempdir().unwrap();
    let bare = BareRepo::factory(tmp.path(), &[]);
    let files = FileServer::start(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples"));
    let platform = FakePlatform::new(bare.url(), &["maya"]);
    let config = PipelineConfig {
        identity: bot(),
        workspace_parent: Some(tmp.path().join("workspaces")),
        fetch: connector_factory::agent::tools::FetchPolicy { allow_loopback: true, ..Default::default() },
        spec_tests: SuiteOptions { only: vec!["discover".into()], ..SuiteOptions::default() },
        ..PipelineConfig::default()
    };
    let store = SqliteStore::connect(&format!("sqlite://{}", tmp.path().join("factory.db").display())).await.unwrap();
    let files_base = files.base.clone();
    Scene { tmp, _files: files, bare, platform, store, config, files_base }
}

/// Builds a connector PR for `name` from request issue `issue`, then pushes (as the bot) a
/// clients schema that declares the string ids as integers, as a flawed generation would have.
/// Returns the PR and the branch's new tip.
async fn connector_pr(s: &Scene, issue: u64, name: &str) -> (PullRequest, String) {
    let body = request(name, &format!("{}/tidepool-bookings.openapi.yaml", s.files_base));
    s.platform.set_issue(issue, &body);
    let job = GenerateJob { number: issue, trigger: Trigger::Request { body, requester: "maya".into() }, local_base: None };
    let out = generate::run(&s.platform, &job, &s.config, &ctl()).await;
    assert_eq!(out.verdict, Verdict::PrOpened, "{:?}", out.error);
    let pull = out.pr.unwrap();
    let branch = pull.head.clone();
    let slug = branch.trim_start_matches("connector/");
    let schema_path = format!("registry/{slug}/v1/connector-factory/python/default/{SCHEMA}");
    let good = s.bare.read(&branch, &schema_path).unwrap();
    let mut broken: Value = serde_json::from_str(&good).unwrap();
    broken["properties"]["id"] = json!({ "type": "integer" });
    let broken = serde_json::to_string_pretty(&broken).unwrap() + "\n";
    let b = bot();
    let tip = s.bare.commit(&branch, &[(schema_path.as_str(), broken.as_bytes())], &[], (&b.name, &b.email), "Generated");
    (pull, tip.to_string())
}

/// The spec tests' own report on the branch as pushed, as the CI workflow would upload it.
async fn failing_report(s: &Scene, branch: &str, implementation: &str) -> SpecReport {
    let dir = s.tmp.path().join(format!("checkout-{}", branch.replace('/', "-")));
    let repo = git2::build::RepoBuilder::new().branch(branch).clone(&s.bare.url(), &dir).unwrap();
    drop(repo);
    let loaded = spectest::load_implementation(&dir.join(implementation)).unwrap();
    let opts = SuiteOptions { only: vec!["schema".into()], ..SuiteOptions::default() };
    let report = spectest::run_implementation(&loaded, implementation, &opts).await.unwrap();
    let report = SpecReport::new(vec![report]);
    assert!(!report.passed, "the planted defect must fail the schema check");
    report
}

fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in files {
        w.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn run_record(id: u64, path: &str, branch: &str, sha: &str, event: &str, conclusion: Option<&str>) -> WorkflowRun {
    WorkflowRun {
        id,
        path: path.into(),
        name: Some(path.rsplit('/').next().unwrap().trim_end_matches(".yml").into()),
        head_branch: Some(branch.into()),
        head_sha: sha.into(),
        head_repository: Some(REPO.into()),
        event: event.into(),
        status: if conclusion.is_some() { "completed".into() } else { "in_progress".into() },
        conclusion: conclusion.map(str::to_string),
        html_url: format!("https://github.com/{REPO}/actions/runs/{id}"),
        run_attempt: 1,
        display_title: None,
    }
}

/// A failed spec-test run on the PR's tip with its report, and a green default branch.
fn failed_run(s: &Scene, id: u64, pull: &PullRequest, sha: &str, report: Option<&SpecReport>) -> CiJob {
    s.platform.put_run(run_record(id, ".github/workflows/spec-tests.yml", &pull.head, sha, "pull_request", Some("failure")));
    s.platform.put_run(run_record(900 + id, ".github/workflows/ci.yml", "main", "0000", "push", Some("success")));
    if let Some(r) = report {
        let json = serde_json::to_vec_pretty(r).unwrap();
        s.platform.put_artifact(id, "spec-report", zip_of(&[("report.json", &json), ("summary.md", b"# x")]));
    }
    CiJob { run_id: id, head_branch: pull.head.clone(), pull_request: Some(pull.number) }
}

fn with_llm(cfg: &PipelineConfig, server: &FakeLlm) -> PipelineConfig {
    PipelineConfig {
        llm: LlmSettings {
            provider: Some(LlmProvider::Anthropic),
            base_url: Some(server.base_url.clone()),
            model: Some(server.model()),
            api_key: Some(Secret::new(API_KEY)),
        },
        ..cfg.clone()
    }
}

fn answer(id: &str, content: Value) -> Value {
    json!({
        "headers": {}, "expect": {}, "status": 200,
        "body": {
            "id": id, "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
            "content": content, "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 1500, "output_tokens": 300, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        }
    })
}

fn tool_use(id: &str, name: &str, input: Value) -> Value {
    json!([{ "type": "tool_use", "id": id, "name": name, "input": input }])
}

/// The improver's steps: write the given skill, then finish.
fn improver_steps(skill: &str) -> Vec<Value> {
    vec![
        answer("msg_imp1", tool_use("toolu_imp_write", "write_file", json!({ "path": "SKILL.md", "content": skill }))),
        answer("msg_imp2", tool_use("toolu_imp_finish", "finish", json!({ "summary": "Added the lesson and a rule on id types." }))),
    ]
}

/// The fixer's steps: write the given stream schema, then finish.
fn fix_steps(schema: &str) -> Vec<Value> {
    vec![
        answer("msg_fix1", tool_use("toolu_fix_write", "write_file", json!({ "path": SCHEMA, "content": schema }))),
        answer("msg_fix2", tool_use("toolu_fix_finish", "finish", json!({ "summary": "Client ids are strings again." }))),
    ]
}

fn script(steps: Vec<Value>) -> Value {
    json!({ "wire": "anthropic", "model": "claude-sonnet-4-5-20250929", "steps": steps })
}

/// Whether any request the fake LLM received came from a connector-building (fixing) session.
fn fixer_called(llm: &FakeLlm) -> bool {
    llm.received().iter().any(|r| !r.body["system"].as_str().unwrap_or_default().starts_with("You are the improver"))
}

async fn ci_run(s: &Scene, cfg: &PipelineConfig, job: &CiJob) -> CiOutcome {
    ci::run(&s.platform, &s.store, job, cfg, &ctl()).await
}

fn analysis_comment(s: &Scene, pr: u64) -> String {
    let found: Vec<_> = s
        .platform
        .bot_comments_on(pr)
        .into_iter()
        .filter(|(_, c)| c.body().contains(ci::ANALYSIS_MARKER))
        .collect();
    assert_eq!(found.len(), 1, "one analysis comment per run");
    found[0].1.body().to_string()
}

fn improvement_pulls(s: &Scene) -> Vec<support::platform::Pull> {
    s.platform.pulls().into_iter().filter(|p| p.pull.head.starts_with("factory/")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_run_gets_an_analysis_one_fix_and_one_improvement_pr() {
    let s = scene().await;
    let (pull, tip) = connector_pr(&s, ISSUE, "Tidepool Bookings").await;
    let report = failing_report(&s, &pull.head, IMPL).await;
    let job = failed_run(&s, 101, &pull, &tip, Some(&report));
    let good_schema = {
        // What the generator wrote before the defect: the parent of the planted commit.
        let repo = &s.bare.repo;
        let commit = repo.find_commit(git2::Oid::from_str(&tip).unwrap()).unwrap().parent(0).unwrap();
        let blob = commit.tree().unwrap().get_path(Path::new(&format!("{IMPL}/{SCHEMA}"))).unwrap();
        String::from_utf8(repo.find_blob(blob.id()).unwrap().content().to_vec()).unwrap()
    };
    // What the improver agent writes: the skill with a lesson and a corrected rule.
    let default_skill = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("skills/connector-building/SKILL.md")).unwrap();
    let improved_skill = default_skill.replace(
        "## Lessons\nNo lessons recorded yet.",
        &format!("## Lessons\n- `{CHECK}` (tidepool-bookings/v1): evidence: record id \"client_0001\" is a string, the schema said integer. Rule: Copy id types from the API's examples; ids like client_0001 are strings. Seen in [#{n}]({u}).", n = pull.number, u = pull.url),
    );
    assert_ne!(improved_skill, default_skill, "the skill has the placeholder this test replaces");
    let mut steps = improver_steps(&improved_skill);
    steps.extend(fix_steps(&good_schema));
    let llm = FakeLlm::start_script(script(steps)).await;
    let cfg = with_llm(&s.config, &llm);

    let out = ci_run(&s, &cfg, &job).await;
    assert_eq!(out.verdict, CiVerdict::Analysed, "{}", out.reason);
    assert_eq!(llm.problems(), Vec::<String>::new());

    // The analysis: grouped, mapped, with evidence.
    let analysis = out.analysis.as_ref().unwrap();
    assert_eq!(analysis.source, Source::Report);
    let cat = analysis.categories.iter().find(|c| c.name == "schema").expect("a schema category");
    assert!(cat.checks.iter().any(|c| c.id == CHECK && c.implementation == IMPL), "{cat:#?}");
    assert!(!cat.checks[0].evidence.is_empty(), "{cat:#?}");
    assert_eq!(cat.skill.as_deref(), Some("skills/connector-building/SKILL.md"));
    let comment = analysis_comment(&s, pull.number);
    assert!(comment.contains(CHECK) && comment.contains("**Likely cause:**"), "{comment}");
    assert!(comment.contains("Fix attempt 1/2: pushed"), "{comment}");
    assert!(comment.contains("opened the improvement PR"), "{comment}");
    assert!(s.platform.pull_labels(pull.number).contains(&"spec-tests-failed".to_string()));

    // One fix: pushed on the same branch by the bot, the schema right again, counted in the store.
    match out.fix.as_ref().unwrap() {
        FixOutcome::Pushed { attempt: 1, max: 2, local_checks_passed: true, commit } => {
            assert_eq!(s.bare.tip(&pull.head).unwrap().to_string(), *commit);
        }
        other => panic!("expected a pushed fix, got {other:?}"),
    }
    let fixed = s.bare.read(&pull.head, &format!("{IMPL}/{SCHEMA}")).unwrap();
    assert_eq!(fixed, good_schema);
    let ahead = s.bare.commits_ahead(&pull.head);
    assert_eq!(ahead.len(), 3, "{ahead:?}");
    assert!(ahead.iter().all(|(who, _)| who.contains("connector-factory[bot]")), "{ahead:?}");
    assert!(ahead[0].1.starts_with("Fix tidepool-bookings after failing spec tests (attempt 1/2)"), "{ahead:?}");
    let fixes = LedgerQuery { repository: REPO.into(), kind: ci::FIX_KIND.into(), subject: Some(format!("pr:{}", pull.number)), since: None };
    assert_eq!(s.store.ledger_count(&fixes).await.unwrap(), 1);

    // One improvement PR: a draft on factory/improve-schema touching only the skill.
    let improvements = improvement_pulls(&s);
    assert_eq!(improvements.len(), 1, "{improvements:#?}");
    let imp = &improvements[0];
    assert_eq!(imp.pull.head, "factory/improve-schema");
    assert!(imp.spec.draft);
    assert!(imp.labels.contains(&IMPROVEMENT_LABEL.to_string()));
    assert_eq!(s.bare.changed_by_tip("factory/improve-schema"), vec!["skills/connector-building/SKILL.md".to_string()]);
    let skill = s.bare.read("factory/improve-schema", "skills/connector-building/SKILL.md").unwrap();
    assert_eq!(skill, improved_skill, "the improver agent's skill, as written (its lesson names the check)");
    let proposal = ImprovementProposal::parse(&imp.spec.body).unwrap();
    assert_eq!(proposal.motivated_by, vec![pull.number]);
    assert!(proposal.written_by.as_deref().unwrap().starts_with("the improver agent (claude-sonnet-4-5"), "{proposal:?}");
    assert_eq!(llm.steps_left(), 0);

    // The request's status comment shows the CI result.
    let status: Vec<_> = s.platform.bot_comments_on(ISSUE).into_iter().filter(|(_, c)| c.body().contains(MARKER)).collect();
    assert!(status[0].1.body().contains("**CI:** ❌ CI spec tests failed"), "{}", status[0].1.body());

    // The same run seen again (redelivery, resumed job): no second comment, attempt or PR.
    let again = ci_run(&s, &s.config, &job).await;
    assert_eq!(again.verdict, CiVerdict::Analysed);
    analysis_comment(&s, pull.number);
    assert_eq!(improvement_pulls(&s).len(), 1);
    assert_eq!(s.store.ledger_count(&fixes).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connector_failing_the_same_way_adds_evidence_to_the_same_improvement_pr() {
    let s = scene().await;
    let (first, tip1) = connector_pr(&s, ISSUE, "Tidepool Bookings").await;
    let report1 = failing_report(&s, &first.head, IMPL).await;
    let out1 = ci_run(&s, &s.config, &failed_run(&s, 201, &first, &tip1, Some(&report1))).await;
    assert!(matches!(out1.fix, Some(FixOutcome::Skipped { ref reason }) if reason.contains("no LLM")), "{:?}", out1.fix);

    let (second, tip2) = connector_pr(&s, 8, "Tidepool Bookings Mirror").await;
    assert_ne!(first.number, second.number);
    let impl2 = "registry/tidepool-bookings-mirror/v1/connector-factory/python/default";
    let report2 = failing_report(&s, &second.head, impl2).await;
    let out2 = ci_run(&s, &s.config, &failed_run(&s, 202, &second, &tip2, Some(&report2))).await;
    assert!(out2.proposals.iter().any(|p| matches!(p, Proposed::Updated { category, .. } if category == "schema")), "{:?}", out2.proposals);

    let improvements = improvement_pulls(&s);
    assert_eq!(improvements.len(), 1, "one improvement PR per category: {improvements:#?}");
    assert_eq!(improvements[0].pull.head, "factory/improve-schema");
    let proposal = ImprovementProposal::parse(&improvements[0].spec.body).unwrap();
    assert_eq!(proposal.motivated_by, vec![first.number, second.number]);
    let skill = s.bare.read("factory/improve-schema", "skills/connector-building/SKILL.md").unwrap();
    assert!(skill.contains("(tidepool-bookings/v1)") && skill.contains("(tidepool-bookings-mirror/v1)"), "{skill}");
    assert_eq!(skill.matches("- `schema.records_valid` (tidepool-bookings/v1)").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_attempts_label_the_pr_needs_human() {
    let s = scene().await;
    let (pull, tip) = connector_pr(&s, ISSUE, "Tidepool Bookings").await;
    let report = failing_report(&s, &pull.head, IMPL).await;
    // Two earlier attempts, recorded before a restart of the app: a new store object, same file.
    let query = LedgerQuery { repository: REPO.into(), kind: ci::FIX_KIND.into(), subject: Some(format!("pr:{}", pull.number)), since: None };
    for run in [1, 2] {
        let e = LedgerEntry { subject: format!("pr:{}", pull.number), key: format!("earlier-{run}"), note: json!({}) };
        s.store.ledger_take(&query, 2, &e).await.unwrap();
    }
    let store = SqliteStore::connect(&format!("sqlite://{}", s.tmp.path().join("factory.db").display())).await.unwrap();
    // The improver gets no answer from this model, so the lesson writer takes over.
    let llm = FakeLlm::start_script(script(vec![])).await;
    let cfg = with_llm(&s.config, &llm);
    let job = failed_run(&s, 301, &pull, &tip, Some(&report));
    let out = ci::run(&s.platform, &store, &job, &cfg, &ctl()).await;
    assert_eq!(out.fix, Some(FixOutcome::Exhausted { attempts: 2 }));
    assert!(!fixer_called(&llm), "no fixing session once the attempts are used up");
    let skill = s.bare.read("factory/improve-schema", "skills/connector-building/SKILL.md").unwrap();
    assert!(skill.contains("- `schema.records_valid` (tidepool-bookings/v1): evidence:"), "the lesson writer's entry: {skill}");
    let imp = improvement_pulls(&s).pop().unwrap();
    assert!(ImprovementProposal::parse(&imp.spec.body).unwrap().written_by.unwrap().contains("improver agent ended"));
    assert!(s.platform.pull_labels(pull.number).contains(&"needs-human".to_string()));
    let comments = s.platform.bot_comments_on(pull.number);
    assert!(comments.iter().any(|(_, c)| c.body().contains("still fail") && c.body().contains("`needs-human`")), "{comments:#?}");
    assert_eq!(s.bare.tip(&pull.head).unwrap().to_string(), tip, "nothing pushed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_green_run_updates_the_status_and_proposes_nothing() {
    let s = scene().await;
    let (pull, tip) = connector_pr(&s, ISSUE, "Tidepool Bookings").await;
    s.platform.put_run(run_record(401, ".github/workflows/spec-tests.yml", &pull.head, &tip, "pull_request", Some("success")));
    let job = CiJob { run_id: 401, head_branch: pull.head.clone(), pull_request: Some(pull.number) };
    let out = ci_run(&s, &s.config, &job).await;
    assert_eq!(out.verdict, CiVerdict::Passed, "{}", out.reason);
    assert!(s.platform.pull_labels(pull.number).contains(&"spec-tests-passed".to_string()));
    assert!(improvement_pulls(&s).is_empty());
    assert!(s.platform.bot_comments_on(pull.number).iter().all(|(_, c)| !c.body().contains(ci::ANALYSIS_MARKER)));
    let status: Vec<_> = s.platform.bot_comments_on(ISSUE).into_iter().filter(|(_, c)| c.body().contains(MARKER)).collect();
    assert!(status[0].1.body().contains("**CI:** ✅ CI spec tests passed"), "{}", status[0].1.body());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn improvement_prs_are_rate_limited_per_day() {
    let s = scene().await;
    let (pull, tip) = connector_pr(&s, ISSUE, "Tidepool Bookings").await;
    let report = failing_report(&s, &pull.head, IMPL).await;
    let mut cfg = s.config.clone();
    cfg.learning.improvements_per_day = 0;
    let out = ci_run(&s, &cfg, &failed_run(&s, 1001, &pull, &tip, Some(&report))).await;
    assert_eq!(out.proposals, vec![Proposed::RateLimited { category: "schema".into(), limit: 0 }]);
    assert!(improvement_pulls(&s).is_empty());
    assert!(s.bare.tip("factory/improve-schema").is_none(), "nothing pushed");
    assert!(analysis_comment(&s, pull.number).contains("the limit of 0 per day is reached"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stage_waits_for_every_workflow_of_the_commit() {
    let s = scene().await;
    let (pull, tip) = connector_pr(&s, ISSUE, "Tidepool Bookings").await;
    s.platform.put_run(run_record(501, ".github/workflows/spec-tests.yml", &pull.head, &tip, "pull_request", Some("success")));
    s.platform.put_run(run_record(502, ".github/workflows/ci.yml", &pull.head, &tip, "pull_request", None));
    let mut cfg = s.config.clone();
    cfg.learning.poll_ci = std::time::Duration::from_millis(50);
    cfg.learning.wait_for_ci = std::time::Duration::from_millis(300);
    let job = CiJob { run_id: 501, head_branch: pull.head.clone(), pull_request: Some(pull.number) };
    let out = ci_run(&s, &cfg, &job).await;
    assert_eq!(out.verdict, CiVerdict::Failed);
    assert!(out.reason.contains("gave up waiting for 1 workflow run") && out.reason.contains("ci.yml"), "{}", out.reason);
    assert!(s.platform.pull_labels(pull.number).iter().all(|l| !l.starts_with("spec-tests")), "no verdict before all CI is done");
    // Once the other workflow completes, the result is taken.
    s.platform.put_run(run_record(502, ".github/workflows/ci.yml", &pull.head, &tip, "pull_request", Some("success")));
    assert_eq!(ci_run(&s, &cfg, &job).await.verdict, CiVerdict::Passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_the_factory_did_not_expect_are_ignored() {
    let s = scene().await;
    let (pull, tip) = connector_pr(&s, ISSUE, "Tidepool Bookings").await;
    let cases = [
        (601, run_record(601, ".github/workflows/spec-tests.yml", "factory/improve-pagination", &tip, "pull_request", Some("failure")), "improvement branch"),
        (602, run_record(602, ".github/workflows/lint.yml", &pull.head, &tip, "pull_request", Some("failure")), "not spec-tests.yml"),
        (603, run_record(603, ".github/workflows/spec-tests.yml", &pull.head, &tip, "workflow_dispatch", Some("failure")), "not spec-tests.yml on a pull request"),
        (604, WorkflowRun { head_repository: Some("someone/fork".into()), ..run_record(604, ".github/workflows/spec-tests.yml", &pull.head, &tip, "pull_request", Some("failure")) }, "fork"),
        (605, run_record(605, ".github/workflows/spec-tests.yml", "connector/nobody", &tip, "pull_request", Some("failure")), "no open pull request"),
    ];
    for (id, run, why) in cases {
        s.platform.put_run(run.clone());
        let job = CiJob { run_id: id, head_branch: run.head_branch.clone().unwrap(), pull_request: None };
        let out = ci_run(&s, &s.config, &job).await;
        assert_eq!(out.verdict, CiVerdict::Ignored, "run {id}: {}", out.reason);
        assert!(out.reason.contains(why), "run {id}: {}", out.reason);
    }
    assert!(s.platform.bot_comments_on(pull.number).is_empty(), "nothing said about ignored runs");
    assert!(improvement_pulls(&s).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_fix_when_the_base_is_red_or_a_person_pushed() {
    let s = scene().await;
    let (pull, tip) = connector_pr(&s, ISSUE, "Tidepool Bookings").await;
    let report = failing_report(&s, &pull.head, IMPL).await;
    let llm = FakeLlm::start_script(script(vec![])).await;
    let cfg = with_llm(&s.config, &llm);

    let job = failed_run(&s, 701, &pull, &tip, Some(&report));
    // A newer run on main failed.
    s.platform.put_run(run_record(1700, ".github/workflows/ci.yml", "main", "1111", "push", Some("failure")));
    let out = ci_run(&s, &cfg, &job).await;
    assert!(matches!(&out.fix, Some(FixOutcome::Skipped { reason }) if reason.contains("not green")), "{:?}", out.fix);

    // Main green again, but a person pushed to the connector branch.
    s.platform.put_run(run_record(1701, ".github/workflows/ci.yml", "main", "2222", "push", Some("success")));
    let theirs = s.bare.commit(&pull.head, &[("registry/tidepool-bookings/NOTES.md", b"mine")], &[], HUMAN, "notes").to_string();
    let job = failed_run(&s, 702, &pull, &theirs, Some(&report));
    let out = ci_run(&s, &cfg, &job).await;
    assert!(matches!(&out.fix, Some(FixOutcome::Skipped { reason }) if reason.contains("someone other than the factory")), "{:?}", out.fix);
    assert!(!fixer_called(&llm));
    let fixes = LedgerQuery { repository: REPO.into(), kind: ci::FIX_KIND.into(), subject: None, since: None };
    assert_eq!(s.store.ledger_count(&fixes).await.unwrap(), 0, "skipped fixes use no attempt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_report_the_failed_jobs_logs_are_read() {
    let s = scene().await;
    let (pull, tip) = connector_pr(&s, ISSUE, "Tidepool Bookings").await;
    let job = failed_run(&s, 801, &pull, &tip, None);
    let log = "2025-05-01T10:00:00.0000000Z ##[group]Run the spec tests\n\
               2025-05-01T10:00:01.0000000Z building...\n\
               2025-05-01T10:00:09.0000000Z ❌ pagination.stops_on_has_more_false: the mock saw 5 requests after has_more=false\n\
               2025-05-01T10:00:09.1000000Z ✅ pagination.all_pages\n\
               2025-05-01T10:00:09.5000000Z error: request failed with Authorization: Bearer ghp_abcdefghijklmnopqrstuvwxyz0123456789\n\
               2025-05-01T10:00:10.0000000Z ##[error]Process completed with exit code 1.\n";
    s.platform.put_job_logs(801, vec![JobLog { job_id: 1, name: "spec-test changed implementations".into(), html_url: None, text: log.into() }]);
    let out = ci_run(&s, &s.config, &job).await;
    let analysis = out.analysis.unwrap();
    assert_eq!(analysis.source, Source::Logs);
    let ids: Vec<&str> = analysis.categories.iter().flat_map(|c| c.checks.iter().map(|k| k.id.as_str())).collect();
    assert_eq!(ids, ["pagination.stops_on_has_more_false"], "only the failed check, not the passed one");
    let comment = analysis_comment(&s, pull.number);
    assert!(comment.contains("failed jobs' logs") && comment.contains("Relevant log lines"), "{comment}");
    assert!(comment.contains("##[error]Process completed with exit code 1."), "{comment}");
    assert!(!comment.contains("2025-05-01T10:00:10"), "timestamps are trimmed: {comment}");
    assert!(comment.contains("request failed") && !comment.contains("ghp_abcdefghijklmnopqrstuvwxyz0123456789"), "tokens in logs are masked: {comment}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_regression_guard_result_is_posted_on_the_improvement_pr() {
    let s = scene().await;
    let (pull, tip) = connector_pr(&s, ISSUE, "Tidepool Bookings").await;
    let report = failing_report(&s, &pull.head, IMPL).await;
    ci_run(&s, &s.config, &failed_run(&s, 901, &pull, &tip, Some(&report))).await;
    let improvement = improvement_pulls(&s).pop().expect("an improvement PR");
    let branch_tip = s.bare.tip(&improvement.pull.head).unwrap().to_string();
    s.platform.put_run(run_record(950, ".github/workflows/regression.yml", &improvement.pull.head, &branch_tip, "pull_request", Some("failure")));
    s.platform.put_artifact(950, "spec-report", zip_of(&[("report.json", &serde_json::to_vec(&report).unwrap())]));
    let job = CiJob { run_id: 950, head_branch: improvement.pull.head.clone(), pull_request: None };
    let out = ci_run(&s, &s.config, &job).await;
    assert_eq!(out.verdict, CiVerdict::RegressionReported, "{}", out.reason);
    let comments = s.platform.bot_comments_on(improvement.pull.number);
    assert_eq!(comments.len(), 1);
    let body = comments[0].1.body();
    assert!(body.contains("Regression guard") && body.contains("0 of 1 implementation(s) pass"), "{body}");
    assert!(body.contains(IMPL) && body.contains(CHECK), "{body}");
    assert_eq!(improvement_pulls(&s).len(), 1, "a regression run never proposes anything");
}

#[test]
fn a_report_artifact_is_checked_before_it_is_trusted() {
    assert!(ci::report_from_zip(b"not a zip").unwrap_err().to_string().contains("not a zip"));
    let no_report = zip_of(&[("summary.md", b"# hi")]);
    assert!(ci::report_from_zip(&no_report).unwrap_err().to_string().contains("no report.json"));
    let wrong = zip_of(&[("report.json", br#"{"schema_version": 1, "passed": "yes"}"#)]);
    let err = ci::report_from_zip(&wrong).unwrap_err().to_string();
    assert!(err.contains("does not match the SpecReport schema"), "{err}");
}

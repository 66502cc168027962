//! The generate stage end to end on a recording platform, with a real bare repository as the
//! remote and the Tidepool Bookings example served over 127.0.0.1 as the OpenAPI description.

mod support;

use connector_factory::config::Secret;
use connector_factory::git::Identity;
use connector_factory::pipeline::generate::{self, GenerateJob, Outcome, Trigger, Verdict};
use connector_factory::pipeline::status::{MARKER, Meta, Phase};
use connector_factory::pipeline::{Control, PipelineConfig};
use connector_factory::platform::GitCredentials;
use connector_factory::request::Field;
use connector_factory::spectest::SuiteOptions;
use std::path::{Path, PathBuf};
use support::files::FileServer;
use support::git_http::GitHttp;
use support::platform::FakePlatform;
use support::repo::{BareRepo, HUMAN};
use tokio_util::sync::CancellationToken;

const ISSUE: u64 = 7;
const BRANCH: &str = "connector/tidepool-bookings";
const FOLDER: &str = "registry/tidepool-bookings/";

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn request(openapi: &str, streams: &str) -> String {
    format!(
        "### Connector name\n\nTidepool Bookings\n\n### API docs URL\n\nhttps://docs.tidepool-bookings.example/api\n\n\
         ### OpenAPI description URL\n\n{openapi}\n\n### Auth type\n\nBearer token\n\n### Streams wanted\n\n{streams}\n\n\
         ### Language\n\nPython\n\n### Notes\n\n_No response_\n"
    )
}

struct Scene {
    _tmp: tempfile::TempDir,
    _files: FileServer,
    bare: BareRepo,
    platform: FakePlatform,
    body: String,
    config: PipelineConfig,
}

fn scene_with(extra: &[(&str, &[u8])]) -> Scene {
    let tmp = tempfile::tempdir().unwrap();
    let bare = BareRepo::factory(tmp.path(), extra);
    let files = FileServer::start(examples());
    let body = request(&format!("{}/tidepool-bookings.openapi.yaml", files.base), "clients, appointments, invoices");
    let platform = FakePlatform::new(bare.url(), &["maya", "maintainer"]);
    platform.set_issue(ISSUE, &body);
    let config = PipelineConfig {
        identity: Identity::github_app("connector-factory", Some(4242)),
        workspace_parent: Some(tmp.path().join("workspaces")),
        // The description is served on 127.0.0.1, which the fetch policy refuses outside tests.
        fetch: connector_factory::agent::tools::FetchPolicy { allow_loopback: true, ..Default::default() },
        ..PipelineConfig::default()
    };
    Scene { _tmp: tmp, _files: files, bare, platform, body, config }
}

fn scene() -> Scene {
    scene_with(&[])
}

fn opened(s: &Scene, requester: &str) -> GenerateJob {
    GenerateJob {
        number: ISSUE,
        trigger: Trigger::Request { body: s.body.clone(), requester: requester.into() },
        local_base: None,
    }
}

fn retry(number: u64, on_pull_request: bool, guidance: Option<&str>) -> GenerateJob {
    GenerateJob {
        number,
        trigger: Trigger::Retry {
            on_pull_request,
            comment_id: 9001,
            commenter: "maintainer".into(),
            guidance: guidance.map(str::to_string),
        },
        local_base: None,
    }
}

async fn run(s: &Scene, job: &GenerateJob) -> Outcome {
    generate::run(&s.platform, job, &s.config, &Control::standalone(CancellationToken::new())).await
}

fn status_comment(s: &Scene) -> (u64, support::platform::Comment) {
    let with_marker: Vec<_> =
        s.platform.bot_comments_on(ISSUE).into_iter().filter(|(_, c)| c.body().contains(MARKER)).collect();
    assert_eq!(with_marker.len(), 1, "exactly one status comment: {with_marker:#?}");
    with_marker.into_iter().next().unwrap()
}

fn phases(comment: &support::platform::Comment) -> Vec<Phase> {
    let mut out: Vec<Phase> = Vec::new();
    for v in &comment.versions {
        let p = Meta::parse(v).expect("every version carries metadata").phase;
        if out.last() != Some(&p) {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_becomes_one_pull_request_with_the_connector_and_its_report() {
    let s = scene();
    let out = run(&s, &opened(&s, "maya")).await;
    assert_eq!(out.verdict, Verdict::PrOpened, "{out:#?}");
    assert_eq!(out.checks_passed, Some(true), "{:?}", out.pr_body);

    // 👀 on the issue, one status comment edited in place through every phase.
    assert_eq!(s.platform.reactions(), vec![("issue".to_string(), ISSUE, "eyes".to_string())]);
    let (id, status) = status_comment(&s);
    assert_eq!(s.platform.bot_comments_on(ISSUE).len(), 1, "no other comment");
    assert_eq!(out.status_comment, Some(id));
    assert_eq!(
        phases(&status),
        vec![
            Phase::Queued,
            Phase::Preparing,
            Phase::Generating,
            Phase::Validating,
            Phase::SpecTests,
            Phase::Pushing,
            Phase::PrOpened
        ]
    );
    let meta = Meta::parse(status.body()).unwrap();
    let pulls = s.platform.pulls();
    assert_eq!(pulls.len(), 1);
    let pr = &pulls[0];
    assert_eq!(
        meta,
        Meta {
            issue: ISSUE,
            job: None,
            phase: Phase::PrOpened,
            branch: Some(BRANCH.into()),
            pr: Some(pr.pull.number),
            attempts: 1
        }
    );
    assert!(status.body().contains(&pr.pull.url), "{}", status.body());
    assert!(status.body().contains("- [ ] retry"));
    assert!(status.body().contains("29 passed, 0 failed"), "{}", status.body());

    // The PR: from the connector branch to main, labelled, ready for review.
    assert_eq!((pr.spec.branch.as_str(), pr.spec.base.as_str()), (BRANCH, "main"));
    assert_eq!(pr.spec.title, "Add Tidepool Bookings connector");
    assert!(!pr.spec.draft);
    assert!(pr.labels.contains(&"connector".to_string()) && pr.labels.contains(&"bot".to_string()));
    let body = &pr.spec.body;
    for needle in [
        "| `clients` | `GET /clients` | cursor | `id` | on `updated_at` |",
        "| `invoices` | `GET /invoices` |",
        "- Auth: `bearer`",
        "### Spec tests: ✅ passed",
        "`registry/tidepool-bookings/v1/connector-factory/python/default` — 29 passed",
        "Closes #7",
    ] {
        assert!(body.contains(needle), "PR body lacks {needle:?}:\n{body}");
    }
    assert!(!body.contains("<details><summary>Agent transcript"), "no transcript without an LLM");
    assert!(!body.contains("Tokens and cost"), "no cost without an LLM");

    // One bot commit touching only the connector's folder.
    let ahead = s.bare.commits_ahead(BRANCH);
    assert_eq!(ahead.len(), 1);
    assert_eq!(ahead[0].0, s.config.identity.email);
    let changed = s.bare.changed_by_tip(BRANCH);
    assert!(changed.len() > 10);
    assert!(changed.iter().all(|p| p.starts_with(FOLDER)), "{changed:?}");
    assert!(changed.iter().any(|p| p.ends_with("python/default/connector.json")));
    assert_eq!(out.commit.as_deref(), Some(s.bare.tip(BRANCH).unwrap().to_string().as_str()));

    // Where the time went: every phase once, in order; no model; the pipeline's spec-test run.
    let t = &out.timings;
    let names: Vec<&str> = t.phases.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(names, ["queued", "preparing", "generating", "validating", "spec_tests", "pushing", "pr_opened"]);
    assert_eq!(t.model_seconds, 0.0);
    let spec_phase = t.phases.iter().find(|(p, _)| p == "spec_tests").unwrap().1;
    assert!(t.spec_test_seconds > 0.0 && t.spec_test_seconds <= spec_phase + 1e-6, "{t:?}");
    let phase_sum: f64 = t.phases.iter().map(|(_, s)| s).sum();
    assert!(phase_sum <= t.total_seconds + 1e-6 && t.total_seconds > 0.0, "{t:?}");
    assert!((t.overhead_seconds - (t.total_seconds - t.spec_test_seconds)).abs() < 1e-6, "{t:?}");
}

/// With the LLM agent, whose session ends on a passing run of the whole suite, the pipeline
/// reports that run instead of running the suite again on the same files.
#[tokio::test(flavor = "multi_thread")]
async fn the_agent_s_passing_suite_is_reported_without_running_it_again() {
    use connector_factory::config::{LlmProvider, LlmSettings};
    use support::fake_llm::{API_KEY, FakeLlm};
    let s = scene();
    let body = "### Connector name\n\nAcme Widgets\n\n### API docs URL\n\nhttps://docs.acme.test/api\n\n\
                ### OpenAPI description URL\n\n_No response_\n\n### Auth type\n\nAPI key\n\n### Streams wanted\n\n\
                widgets\n\n### Language\n\nPython\n\n### Notes\n\n_No response_\n";
    s.platform.set_issue(ISSUE, body);
    let llm = FakeLlm::start("build.anthropic.json").await;
    let cfg = PipelineConfig {
        llm: LlmSettings {
            provider: Some(LlmProvider::Anthropic),
            base_url: Some(llm.base_url.clone()),
            model: Some(llm.model()),
            api_key: Some(Secret::new(API_KEY)),
        },
        ..s.config.clone()
    };
    let job = GenerateJob {
        number: ISSUE,
        trigger: Trigger::Request { body: body.into(), requester: "maya".into() },
        local_base: None,
    };
    let out = generate::run(&s.platform, &job, &cfg, &Control::standalone(CancellationToken::new())).await;
    assert_eq!(out.verdict, Verdict::PrOpened, "{:?}", out.error);
    assert_eq!(llm.problems(), Vec::<String>::new());
    assert_eq!(llm.steps_left(), 0);
    assert!(out.timings.spec_report_reused, "{:?}", out.timings);
    // The report is the agent's run, under the implementation's path in the repository.
    let report = out.spec_report.as_ref().unwrap();
    assert!(report.passed);
    assert_eq!(report.implementations[0].path, "registry/acme-widgets/v1/connector-factory/python/default");
    let pr = &s.platform.pulls()[0];
    assert!(pr.spec.body.contains("### Spec tests: ✅ passed"), "{}", pr.spec.body);
    assert!(pr.spec.body.contains("`registry/acme-widgets/v1/connector-factory/python/default` — "), "{}", pr.spec.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_request_gets_one_comment_naming_each_bad_field() {
    let s = scene();
    let body =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/requests/malformed.md"))
            .unwrap();
    let job = GenerateJob {
        number: ISSUE,
        trigger: Trigger::Request { body: body.clone(), requester: "maya".into() },
        local_base: None,
    };
    let out = run(&s, &job).await;
    assert_eq!(out.verdict, Verdict::InvalidRequest);
    let comments = s.platform.bot_comments_on(ISSUE);
    assert_eq!(comments.len(), 1);
    let text = comments[0].1.body();
    let bad = connector_factory::request::parse(&body).unwrap_err().fields();
    assert!(bad.len() >= 5, "{bad:?}");
    for field in bad {
        assert!(text.contains(&format!("**{}**", field.heading())), "{} not named:\n{text}", field.heading());
    }
    assert!(!text.contains(&format!("**{}**", Field::Notes.heading())));
    assert_eq!(Meta::parse(text).unwrap().phase, Phase::InvalidRequest);
    assert!(s.platform.pulls().is_empty());
    assert!(s.bare.tip(BRANCH).is_none());

    // Editing the issue runs again and reuses the same comment.
    let out = run(&s, &job).await;
    assert_eq!(out.verdict, Verdict::InvalidRequest);
    assert_eq!(s.platform.bot_comments_on(ISSUE).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn someone_without_write_access_is_refused_politely_and_nothing_happens() {
    let s = scene();
    for login in ["stranger", "unreachable"] {
        let out = run(&s, &opened(&s, login)).await;
        assert_eq!(out.verdict, Verdict::Refused, "{login}");
    }
    let comments = s.platform.bot_comments_on(ISSUE);
    assert_eq!(comments.len(), 2, "one refusal each");
    assert!(comments[0].1.body().contains("@stranger") && comments[0].1.body().contains("write access"));
    assert!(comments[1].1.body().contains("@unreachable"), "an unanswered permission check counts as no");
    assert!(comments.iter().all(|(_, c)| !c.body().contains(MARKER)), "no status comment");
    assert!(s.platform.reactions().is_empty());
    assert!(s.platform.pulls().is_empty());
    assert!(s.bare.tip(BRANCH).is_none(), "nothing pushed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connector_already_in_the_registry_is_linked_instead_of_built() {
    let s = scene_with(&[("registry/tidepool-bookings/v1/someone/python/default/connector.json", b"{}\n")]);
    let out = run(&s, &opened(&s, "maya")).await;
    assert_eq!(out.verdict, Verdict::Exists, "{out:#?}");
    let (_, status) = status_comment(&s);
    assert!(
        status.body().contains("(https://github.com/acme/factory/tree/main/registry/tidepool-bookings)"),
        "{}",
        status.body()
    );
    assert_eq!(Meta::parse(status.body()).unwrap().phase, Phase::Exists);
    assert!(s.platform.pulls().is_empty());
    assert!(s.bare.tip(BRANCH).is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_update_the_same_branch_and_pull_request() {
    let mut s = scene();
    // Retries run a few checks only; the first test runs the whole suite.
    s.config.spec_tests = SuiteOptions { only: vec!["discover".into()], ..SuiteOptions::default() };
    let first = run(&s, &opened(&s, "maya")).await;
    assert_eq!(first.verdict, Verdict::PrOpened, "{first:#?}");
    let number = first.pr.as_ref().unwrap().number;

    // The requester narrows the request, a maintainer retries on the issue with guidance.
    let narrowed = s.body.replace("clients, appointments, invoices", "clients, invoices");
    s.platform.set_issue(ISSUE, &narrowed);
    let out = run(&s, &retry(ISSUE, false, Some("Leave appointments out for now."))).await;
    assert_eq!(out.verdict, Verdict::PrOpened, "{out:#?}");
    assert_eq!(out.pr.as_ref().unwrap().number, number);
    let pulls = s.platform.pulls();
    assert_eq!(pulls.len(), 1, "never a second PR");
    assert_eq!(pulls[0].updates, 1);
    assert!(pulls[0].spec.body.contains("> Leave appointments out for now."), "{}", pulls[0].spec.body);
    assert!(!pulls[0].spec.body.contains("`appointments`"));
    assert!(s.platform.reactions().contains(&("comment".to_string(), 9001, "eyes".to_string())));
    let ahead = s.bare.commits_ahead(BRANCH);
    assert_eq!(ahead.len(), 2, "a second bot commit on the same branch: {ahead:?}");
    assert!(ahead.iter().all(|(email, _)| *email == s.config.identity.email));
    assert!(
        s.bare
            .read(BRANCH, "registry/tidepool-bookings/v1/connector-factory/python/default/schemas/appointments.json")
            .is_none()
    );

    // A retry asked on the PR finds the request through "Closes #7"; nothing changed, so
    // nothing is pushed, and the PR is refreshed.
    let tip = s.bare.tip(BRANCH);
    let out = run(&s, &retry(number, true, None)).await;
    assert_eq!(out.verdict, Verdict::PrOpened, "{out:#?}");
    assert_eq!(out.commit, None);
    assert_eq!(s.bare.tip(BRANCH), tip);
    assert_eq!(s.platform.pulls().len(), 1);
    assert_eq!(s.platform.pulls()[0].updates, 2);

    let (_, status) = status_comment(&s);
    let meta = Meta::parse(status.body()).unwrap();
    assert_eq!((meta.attempts, meta.pr, meta.phase), (3, Some(number), Phase::PrOpened));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_human_commit_on_the_branch_means_asking_instead_of_force_pushing() {
    let mut s = scene();
    s.config.spec_tests = SuiteOptions { only: vec!["discover".into()], ..SuiteOptions::default() };
    let first = run(&s, &opened(&s, "maya")).await;
    assert_eq!(first.verdict, Verdict::PrOpened, "{first:#?}");
    s.bare.commit(
        BRANCH,
        &[("registry/tidepool-bookings/NOTES.md", b"hand-tuned pagination\n")],
        &[],
        HUMAN,
        "Tune pagination by hand",
    );
    let before = s.bare.tip(BRANCH);

    let out = run(&s, &retry(ISSUE, false, Some("try again"))).await;
    assert_eq!(out.verdict, Verdict::NeedsDecision, "{out:#?}");
    assert_eq!(s.bare.tip(BRANCH), before, "the branch is untouched");
    assert_eq!(s.platform.pulls()[0].updates, 0, "the PR is untouched");
    let comments = s.platform.bot_comments_on(ISSUE);
    let question = comments.iter().map(|(_, c)| c.body()).find(|b| !b.contains(MARKER)).expect("a question");
    assert!(question.contains("@maintainer"), "{question}");
    assert!(question.contains("Tune pagination by hand") && question.contains("Ada Person"), "{question}");
    assert!(question.contains("/factory retry"), "{question}");
    let (_, status) = status_comment(&s);
    assert_eq!(Meta::parse(status.body()).unwrap().phase, Phase::NeedsDecision);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_refused_by_a_hook_fails_clearly_in_the_status_comment() {
    let mut s = scene();
    s.config.spec_tests = SuiteOptions { only: vec!["discover".into()], ..SuiteOptions::default() };
    let token = "ghs_HookTestTokenNeverShown";
    let server = GitHttp::start(s.bare.path.parent().unwrap().to_path_buf(), "x-access-token", token);
    s.platform.remote = server.url("remote.git");
    s.platform.credentials = Some(GitCredentials { username: "x-access-token".into(), password: Secret::new(token) });
    s.bare.refuse_pushes("connector branches are frozen until Monday");

    let out = run(&s, &opened(&s, "maya")).await;
    assert_eq!(out.verdict, Verdict::Failed, "{out:#?}");
    let (_, status) = status_comment(&s);
    let text = status.body();
    assert_eq!(Meta::parse(text).unwrap().phase, Phase::Failed);
    assert!(text.contains("Failed while committing and pushing"), "{text}");
    assert!(text.contains("hook declined") && text.contains("frozen until Monday"), "{text}");
    assert!(text.contains("- ❌ commit and push"), "{text}");
    assert!(s.platform.pulls().is_empty());
    assert!(s.bare.tip(BRANCH).is_none());
    for (_, c) in s.platform.comments_on(ISSUE) {
        assert!(c.versions.iter().all(|v| !v.contains(token)));
    }
    assert!(!out.error.unwrap_or_default().contains(token));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_job_stops_between_phases_and_says_so() {
    let s = scene();
    let cancel = CancellationToken::new();
    cancel.cancel();
    let out = generate::run(&s.platform, &opened(&s, "maya"), &s.config, &Control::standalone(cancel)).await;
    assert_eq!(out.verdict, Verdict::Cancelled);
    let (_, status) = status_comment(&s);
    assert_eq!(Meta::parse(status.body()).unwrap().phase, Phase::Cancelled);
    assert!(s.bare.tip(BRANCH).is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_without_an_openapi_description_fails_with_what_to_do() {
    let s = scene();
    let job = GenerateJob {
        number: ISSUE,
        trigger: Trigger::Request { body: request("_No response_", "clients"), requester: "maya".into() },
        local_base: None,
    };
    let out = run(&s, &job).await;
    assert_eq!(out.verdict, Verdict::Failed);
    let (_, status) = status_comment(&s);
    assert!(status.body().contains("add an OpenAPI description URL"), "{}", status.body());
    assert!(status.body().contains("- ❌ generate the connector"), "{}", status.body());
}

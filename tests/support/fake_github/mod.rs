//! A stateful fake of the GitHub REST API, for the bot's tests.
//!
//! An axum server on 127.0.0.1 (a free port) serving the endpoints the bot uses, over state the
//! test sets up and inspects: repositories, issues, comments, reactions, labels, pull requests,
//! collaborator roles, installations and their tokens, GitHub Actions workflow runs with their
//! jobs, logs and artifacts. Like GitHub it checks credentials: app
//! endpoints want an RS256 JWT signed with the app's key (issued at most 10 minutes ahead),
//! repository endpoints an installation token that is known, unexpired, not revoked and whose
//! installation covers the repository.
//!
//! Every request is recorded. Faults can be programmed (the next N answers 502, a secondary rate
//! limit, an exhausted quota), and every 2xx JSON body is checked against GitHub's published
//! schema for its operation ([`openapi`]); a mismatch is recorded, and dropping the fake with
//! unclaimed mismatches fails the test.
//!
//! Downloads (artifact archives, job logs) answer 302 to a short-lived URL on a second listener,
//! the "blob host": another origin, as GitHub's are on another host. It needs no credentials and
//! records whether an `Authorization` header arrived; dropping the fake after one did fails the
//! test, since the installation token must never leave GitHub's origin.

pub mod keys;
pub mod objects;
pub mod openapi;
pub mod state;

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Extension, Path, Query, Request, State as AxState};
use axum::http::Uri;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use connector_factory::config::Secret;
use keys::TestKey;
use objects as obj;
use openapi::{OpenApiChecker, Violation};
use serde_json::{Value, json};
use state::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub const APP_ID: u64 = 4242;
pub const APP_SLUG: &str = "connector-factory-test";

struct Shared {
    base: String,
    /// Where downloads are redirected: another origin.
    blob_base: String,
    state: Mutex<State>,
    checker: Option<Arc<OpenApiChecker>>,
    key: &'static TestKey,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct FakeGitHub {
    shared: Arc<Shared>,
    stop: tokio_util::sync::CancellationToken,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Validate every 2xx JSON answer against GitHub's REST description.
    pub check_schemas: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { check_schemas: true }
    }
}

impl FakeGitHub {
    pub async fn start() -> FakeGitHub {
        FakeGitHub::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> FakeGitHub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding the fake GitHub");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let blob_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding the fake blob host");
        let blob_base = format!("http://{}", blob_listener.local_addr().unwrap());
        let app = AppRecord {
            id: APP_ID,
            slug: APP_SLUG.into(),
            name: "Connector Factory (test)".into(),
            owner: UserRecord { login: "acme".into(), id: 7, kind: "Organization".into() },
            created_at: chrono::Utc::now(),
        };
        let checker = options.check_schemas.then(OpenApiChecker::github);
        let shared =
            Arc::new(Shared { base, blob_base, state: Mutex::new(State::new(app)), checker, key: TestKey::shared() });
        let router =
            routes().layer(middleware::from_fn_with_state(shared.clone(), intercept)).with_state(shared.clone());
        let blob_router = Router::new().route("/blob/{key}", get(get_blob)).with_state(shared.clone());
        let stop = tokio_util::sync::CancellationToken::new();
        for (listener, router) in [(listener, router), (blob_listener, blob_router)] {
            let stopped = stop.clone().cancelled_owned();
            tokio::spawn(async move {
                let _ = axum::serve(listener, router).with_graceful_shutdown(stopped).await;
            });
        }
        FakeGitHub { shared, stop }
    }

    /// The API base URL (`GITHUB_API_URL`).
    pub fn url(&self) -> String {
        self.shared.base.clone()
    }

    pub fn app_id(&self) -> u64 {
        APP_ID
    }

    /// The blob host's base URL, where downloads are redirected (another origin than [`url`](Self::url)).
    pub fn blob_url(&self) -> String {
        self.shared.blob_base.clone()
    }

    /// The app's private key, PEM, as `GITHUB_PRIVATE_KEY` holds it.
    pub fn private_key(&self) -> Secret {
        Secret::new(self.shared.key.private_pem.clone())
    }

    pub fn bot_login(&self) -> String {
        self.state().app.bot().login
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    // ---- setting up ----

    /// Adds `owner/name` (default branch `main`).
    pub fn add_repo(&self, full_name: &str) {
        let (owner, name) = full_name.split_once('/').expect("owner/name");
        let mut s = self.state();
        let owner = s.user(owner);
        let id = s.id();
        s.repos.insert(
            full_name.to_string(),
            RepoRecord {
                id,
                owner,
                name: name.into(),
                default_branch: "main".into(),
                private: false,
                clone_url: None,
                created_at: chrono::Utc::now(),
                labels: Vec::new(),
                roles: BTreeMap::new(),
                next_number: 1,
            },
        );
    }

    pub fn set_default_branch(&self, repo: &str, branch: &str) {
        self.state().repos.get_mut(repo).expect("known repo").default_branch = branch.into();
    }

    /// What `clone_url` says, e.g. a local bare repository for the pipeline's tests.
    pub fn set_clone_url(&self, repo: &str, url: &str) {
        self.state().repos.get_mut(repo).expect("known repo").clone_url = Some(url.into());
    }

    pub fn add_installation(&self, id: u64, repos: &[&str]) {
        self.state().installations.insert(id, repos.iter().map(|r| r.to_string()).collect());
    }

    pub fn set_role(&self, repo: &str, login: &str, role: &str) {
        let mut s = self.state();
        s.user(login);
        s.repos.get_mut(repo).expect("known repo").roles.insert(login.to_ascii_lowercase(), role.into());
    }

    pub fn add_label(&self, repo: &str, name: &str, color: &str) {
        let mut s = self.state();
        let id = s.id();
        s.repos.get_mut(repo).expect("known repo").labels.push(LabelRecord {
            id,
            name: name.into(),
            color: color.into(),
            description: None,
        });
    }

    /// Opens an issue; returns its number.
    pub fn add_issue(&self, repo: &str, title: &str, body: &str, author: &str) -> u64 {
        let mut s = self.state();
        let user = s.user(author);
        new_issue(&mut s, repo, title, Some(body.to_string()), user, false)
    }

    /// Replaces an issue's body, as an edit by its author would.
    pub fn set_issue_body(&self, repo: &str, number: u64, body: &str) {
        let mut s = self.state();
        let issue = s.issues.get_mut(&(repo.to_string(), number)).expect("a known issue");
        issue.body = Some(body.to_string());
        issue.updated_at = chrono::Utc::now();
    }

    /// Sets an issue's labels (each must exist in the repository, see [`add_label`](Self::add_label)).
    pub fn set_issue_labels(&self, repo: &str, number: u64, labels: &[&str]) {
        let mut s = self.state();
        let issue = s.issues.get_mut(&(repo.to_string(), number)).expect("a known issue");
        issue.labels = labels.iter().map(|l| l.to_string()).collect();
    }

    pub fn close_issue(&self, repo: &str, number: u64) {
        let mut s = self.state();
        let issue = s.issues.get_mut(&(repo.to_string(), number)).expect("a known issue");
        issue.state = "closed".into();
        issue.updated_at = chrono::Utc::now();
    }

    /// A comment by anyone (`name[bot]` logins are bots); returns its id.
    pub fn add_comment(&self, repo: &str, issue: u64, author: &str, body: &str) -> u64 {
        let mut s = self.state();
        let user = s.user(author);
        new_comment(&mut s, repo, issue, user, body)
    }

    /// A pull request opened by someone else, or earlier; returns its number.
    pub fn add_pull(&self, repo: &str, head: &str, base: &str, title: &str, state: &str) -> u64 {
        let mut s = self.state();
        let user = s.app.bot();
        let number = new_issue(&mut s, repo, title, None, user.clone(), true);
        let id = s.id();
        let now = chrono::Utc::now();
        s.pulls.insert(
            (repo.to_string(), number),
            PullRecord {
                id,
                number,
                title: title.into(),
                body: None,
                head: head.into(),
                base: base.into(),
                head_sha: sha(id),
                base_sha: sha(id + 1),
                draft: false,
                state: state.into(),
                user,
                labels: Vec::new(),
                created_at: now,
                updated_at: now,
            },
        );
        number
    }

    // ---- GitHub Actions ----

    /// A workflow run in `repo`; returns its id. Runs of one workflow file share a workflow id
    /// and count up their run numbers. A `conclusion` goes with status `completed` only.
    pub fn add_workflow_run(&self, repo: &str, spec: WorkflowRunSpec) -> u64 {
        assert_eq!(
            spec.status == "completed",
            spec.conclusion.is_some(),
            "a run has a conclusion exactly when it is completed: {spec:?}"
        );
        let mut s = self.state();
        assert!(s.repos.contains_key(repo), "unknown repo {repo}");
        let actor = s.user(&spec.actor);
        let workflow = (repo.to_string(), spec.path.clone());
        let workflow_id = match s.workflows.get(&workflow) {
            Some(id) => *id,
            None => {
                let id = s.id();
                s.workflows.insert(workflow, id);
                id
            }
        };
        let run_number = s.runs.values().filter(|r| r.workflow_id == workflow_id).count() as u64 + 1;
        let id = s.id();
        let now = chrono::Utc::now();
        s.runs.insert(
            id,
            RunRecord {
                id,
                repo: repo.to_string(),
                workflow_id,
                run_number,
                path: spec.path,
                name: spec.name,
                head_branch: spec.head_branch,
                head_sha: spec.head_sha,
                head_repository: spec.head_repository,
                event: spec.event,
                status: spec.status,
                conclusion: spec.conclusion,
                run_attempt: 1,
                actor,
                created_at: now,
                updated_at: now,
                display_title: None,
                inputs: BTreeMap::new(),
                cancel_requested: false,
            },
        );
        id
    }

    /// Makes `.github/workflows/<file>` of `repo` dispatchable, as its `on: workflow_dispatch`
    /// would: `run_name` is its `run-name:` (`${{ inputs.x }}` is filled in from the dispatch),
    /// `inputs` the names it declares. Dispatching anything else answers 404, and an input it
    /// does not declare 422, as on GitHub.
    pub fn add_dispatchable_workflow(&self, repo: &str, file: &str, name: &str, run_name: Option<&str>, inputs: &[&str]) {
        let mut s = self.state();
        assert!(s.repos.contains_key(repo), "unknown repo {repo}");
        let def = WorkflowDef {
            name: name.into(),
            run_name: run_name.map(str::to_string),
            inputs: inputs.iter().map(|i| i.to_string()).collect(),
        };
        s.dispatchable.insert((repo.to_string(), format!(".github/workflows/{file}")), def);
    }

    /// Dispatches answer 204 without naming the run, whatever the caller asks.
    pub fn without_dispatch_details(&self) {
        self.state().dispatch_details = false;
    }

    /// The runs started through `workflow_dispatch`, in order.
    pub fn dispatched_runs(&self) -> Vec<RunRecord> {
        let s = self.state();
        s.dispatched.iter().filter_map(|id| s.runs.get(id).cloned()).collect()
    }

    /// An installation token minted outside the app's own flow, as `actions/create-github-app-token`
    /// does on a runner.
    pub fn mint_installation_token(&self, installation_id: u64) -> String {
        let mut s = self.state();
        assert!(s.installations.contains_key(&installation_id), "unknown installation {installation_id}");
        let token = format!("ghs_{:032x}", rand::random::<u128>());
        let expires_at = chrono::Utc::now() + s.token_lifetime;
        s.tokens.insert(token.clone(), TokenRecord { installation_id, expires_at, revoked: false });
        token
    }

    /// The run finishes with `conclusion` (`success`, `failure`, `cancelled`, `timed_out`, ...).
    pub fn complete_run(&self, run_id: u64, conclusion: &str) {
        self.set_run_status(run_id, "completed", Some(conclusion));
    }

    /// Any status (`queued`, `in_progress`, `completed`, ...) with its conclusion.
    pub fn set_run_status(&self, run_id: u64, status: &str, conclusion: Option<&str>) {
        assert_eq!(status == "completed", conclusion.is_some(), "a conclusion goes with `completed` only");
        let mut s = self.state();
        let run = s.runs.get_mut(&run_id).expect("a known run");
        run.status = status.into();
        run.conclusion = conclusion.map(str::to_string);
        run.updated_at = chrono::Utc::now();
    }

    /// Re-runs a run: its attempt goes up and it is queued again. Jobs added from now on belong
    /// to the new attempt; the earlier ones only show with `filter=all`.
    pub fn rerun(&self, run_id: u64) {
        let mut s = self.state();
        let run = s.runs.get_mut(&run_id).expect("a known run");
        run.run_attempt += 1;
        run.status = "queued".into();
        run.conclusion = None;
        run.updated_at = chrono::Utc::now();
    }

    /// A completed job of the run's current attempt, with `conclusion` (`success`, `failure`,
    /// `cancelled`, `timed_out`, `skipped`, ...) and its plain-text log; returns the job id.
    pub fn add_job(&self, run_id: u64, name: &str, conclusion: &str, log_text: &str) -> u64 {
        const CONCLUSIONS: [&str; 7] =
            ["success", "failure", "neutral", "cancelled", "skipped", "timed_out", "action_required"];
        assert!(CONCLUSIONS.contains(&conclusion), "'{conclusion}' is not a job conclusion GitHub knows");
        let mut s = self.state();
        let run = s.runs.get(&run_id).expect("a known run").clone();
        let id = s.id();
        let now = chrono::Utc::now();
        s.jobs.insert(
            id,
            JobRecord {
                id,
                run_id,
                repo: run.repo,
                run_attempt: run.run_attempt,
                name: name.into(),
                status: "completed".into(),
                conclusion: Some(conclusion.into()),
                log: Some(log_text.as_bytes().to_vec()),
                created_at: now,
                completed_at: Some(now),
            },
        );
        id
    }

    /// The logs of the run's jobs are gone (deleted, or past the repository's retention): their
    /// downloads answer 410.
    pub fn delete_job_logs(&self, run_id: u64) {
        self.state().jobs.values_mut().filter(|j| j.run_id == run_id).for_each(|j| j.log = None);
    }

    /// An artifact of the run: a real zip archive of `files` (path, content), deflated, as
    /// `actions/upload-artifact` makes them. Returns the artifact id.
    pub fn add_artifact(&self, run_id: u64, name: &str, files: &[(&str, &[u8])]) -> u64 {
        let zip = zip_of(files);
        let mut s = self.state();
        let run = s.runs.get(&run_id).expect("a known run").clone();
        let id = s.id();
        let now = chrono::Utc::now();
        s.artifacts.insert(
            id,
            ArtifactRecord {
                id,
                run_id,
                repo: run.repo,
                name: name.into(),
                zip,
                expired: false,
                created_at: now,
                expires_at: now + chrono::Duration::days(90),
            },
        );
        id
    }

    /// The artifact passes its retention: still listed, `expired: true`, and its download 410.
    pub fn expire_artifact(&self, artifact_id: u64) {
        let mut s = self.state();
        let a = s.artifacts.get_mut(&artifact_id).expect("a known artifact");
        a.expired = true;
        a.expires_at = chrono::Utc::now() - chrono::Duration::seconds(1);
    }

    /// The exact bytes of an artifact's zip archive.
    pub fn artifact_zip(&self, artifact_id: u64) -> Vec<u8> {
        self.state().artifacts.get(&artifact_id).expect("a known artifact").zip.clone()
    }

    /// A code the manifest flow's redirect would carry.
    pub fn add_manifest_code(&self, code: &str) {
        self.state().manifest_codes.insert(code.into());
    }

    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.state().token_lifetime = chrono::Duration::from_std(lifetime).unwrap();
    }

    /// Every token handed out so far stops working (as when an app is reinstalled).
    pub fn revoke_tokens(&self) {
        self.state().tokens.values_mut().for_each(|t| t.revoked = true);
    }

    // ---- faults ----

    pub fn fail_next(&self, n: usize, status: u16) {
        self.push_faults(n, Fault::Status(status), None);
    }

    /// Like [`fail_next`](Self::fail_next), for requests whose path contains `fragment`.
    pub fn fail_next_on(&self, fragment: &str, n: usize, status: u16) {
        self.push_faults(n, Fault::Status(status), Some(fragment));
    }

    pub fn secondary_rate_limit_next(&self, fragment: &str, retry_after_secs: u64) {
        self.push_faults(1, Fault::SecondaryRateLimit { retry_after_secs }, Some(fragment));
    }

    pub fn quota_exhausted_next(&self, fragment: &str, reset_in_secs: u64) {
        self.push_faults(1, Fault::QuotaExhausted { reset_in_secs }, Some(fragment));
    }

    fn push_faults(&self, n: usize, fault: Fault, only: Option<&str>) {
        let mut s = self.state();
        for _ in 0..n {
            s.faults.push_back(PendingFault { fault: fault.clone(), only: only.map(str::to_string) });
        }
    }

    /// Changes the next 2xx JSON answer to a request whose path contains `fragment`, before the
    /// schema check sees it (to prove the check catches a wrong fake).
    pub fn corrupt_next(&self, fragment: &str, f: impl FnOnce(&mut Value) + Send + 'static) {
        self.state().corruptions.push_back((fragment.to_string(), Box::new(f)));
    }

    // ---- looking ----

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    pub fn requests_to(&self, fragment: &str) -> Vec<RecordedRequest> {
        self.requests().into_iter().filter(|r| r.path.contains(fragment)).collect()
    }

    pub fn tokens_minted(&self) -> usize {
        self.state().tokens.len()
    }

    pub fn comments(&self, repo: &str, issue: u64) -> Vec<CommentRecord> {
        self.state().comments.values().filter(|c| c.repo == repo && c.issue == issue).cloned().collect()
    }

    pub fn reactions(&self, repo: &str) -> Vec<ReactionRecord> {
        self.state().reactions.iter().filter(|r| r.repo == repo).cloned().collect()
    }

    pub fn issue_labels(&self, repo: &str, number: u64) -> Vec<String> {
        self.state().issues.get(&(repo.to_string(), number)).map(|i| i.labels.clone()).unwrap_or_default()
    }

    pub fn repo_labels(&self, repo: &str) -> Vec<LabelRecord> {
        self.state().repos.get(repo).map(|r| r.labels.clone()).unwrap_or_default()
    }

    pub fn pulls(&self, repo: &str) -> Vec<PullRecord> {
        self.state().pulls.iter().filter(|((r, _), _)| r == repo).map(|(_, p)| p.clone()).collect()
    }

    /// The runs of a repository, oldest first.
    pub fn runs(&self, repo: &str) -> Vec<RunRecord> {
        self.state().runs.values().filter(|r| r.repo == repo).cloned().collect()
    }

    pub fn run(&self, run_id: u64) -> RunRecord {
        self.state().runs.get(&run_id).expect("a known run").clone()
    }

    /// Requests that reached the blob host (artifact and log downloads after GitHub's 302).
    pub fn blob_requests(&self) -> Vec<BlobRequest> {
        self.state().blob_requests.clone()
    }

    /// Like [`blob_requests`](Self::blob_requests), and forgets them: a test that sent a
    /// credential there on purpose claims it so the drop check stays quiet.
    pub fn take_blob_requests(&self) -> Vec<BlobRequest> {
        std::mem::take(&mut self.state().blob_requests)
    }

    pub fn converted_apps(&self) -> Vec<ConvertedApp> {
        self.state().converted.clone()
    }

    /// Operation ids whose answers were schema-checked so far.
    pub fn checked_operations(&self) -> Vec<String> {
        self.state().checked.iter().cloned().collect()
    }

    /// Schema mismatches so far; taking them means the test has dealt with them.
    pub fn take_violations(&self) -> Vec<Violation> {
        std::mem::take(&mut self.state().violations)
    }
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.stop.cancel();
        let (violations, leaked) = {
            let mut s = self.shared.lock();
            let leaked: Vec<String> = s
                .blob_requests
                .iter()
                .filter(|r| r.authorization.is_some())
                .map(|r| format!("  {} {}", r.method, r.path))
                .collect();
            (std::mem::take(&mut s.violations), leaked)
        };
        if std::thread::panicking() {
            return;
        }
        if !violations.is_empty() {
            let list: Vec<String> = violations.iter().map(|v| format!("  {v}")).collect();
            panic!("the fake GitHub sent answers that do not match GitHub's REST description:\n{}", list.join("\n"));
        }
        if !leaked.is_empty() {
            panic!(
                "an Authorization header reached the blob host (another origin than GitHub's API):\n{}",
                leaked.join("\n")
            );
        }
    }
}

/// What [`FakeGitHub::add_workflow_run`] creates; start from `Default` and set what matters:
/// `WorkflowRunSpec { head_sha: sha.into(), conclusion: Some("failure".into()), ..Default::default() }`.
#[derive(Debug, Clone)]
pub struct WorkflowRunSpec {
    /// The workflow file. Default `.github/workflows/ci.yml`.
    pub path: String,
    /// The workflow's `name:`. Default `CI`.
    pub name: Option<String>,
    /// Default `main`.
    pub head_branch: Option<String>,
    /// Default forty `a`s.
    pub head_sha: String,
    /// `owner/name` of a fork the head commit lives in; `None` (default): the repository itself.
    pub head_repository: Option<String>,
    /// Default `push`.
    pub event: String,
    /// Default `completed`.
    pub status: String,
    /// Default `success`; `None` unless `status` is `completed`.
    pub conclusion: Option<String>,
    /// Who started it. Default `alice`.
    pub actor: String,
}

impl Default for WorkflowRunSpec {
    fn default() -> Self {
        WorkflowRunSpec {
            path: ".github/workflows/ci.yml".into(),
            name: Some("CI".into()),
            head_branch: Some("main".into()),
            head_sha: "a".repeat(40),
            head_repository: None,
            event: "push".into(),
            status: "completed".into(),
            conclusion: Some("success".into()),
            actor: "alice".into(),
        }
    }
}

/// A zip archive of `files`, deflated.
fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (path, content) in files {
        writer.start_file(*path, options).expect("adding a file to the zip");
        writer.write_all(content).expect("writing into the zip");
    }
    writer.finish().expect("finishing the zip").into_inner()
}

fn sha(seed: u64) -> String {
    format!("{:040x}", (seed as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))
}

fn new_issue(s: &mut State, repo: &str, title: &str, body: Option<String>, user: UserRecord, is_pull: bool) -> u64 {
    let id = s.id();
    let r = s.repos.get_mut(repo).expect("known repo");
    let number = r.next_number;
    r.next_number += 1;
    let now = chrono::Utc::now();
    s.issues.insert(
        (repo.to_string(), number),
        IssueRecord {
            id,
            number,
            title: title.into(),
            body,
            state: "open".into(),
            user,
            labels: Vec::new(),
            is_pull,
            created_at: now,
            updated_at: now,
        },
    );
    number
}

fn new_comment(s: &mut State, repo: &str, issue: u64, user: UserRecord, body: &str) -> u64 {
    let id = s.id();
    // Distinct, increasing timestamps keep "oldest first" meaningful within one second.
    let now = chrono::Utc::now();
    s.comments.insert(
        id,
        CommentRecord { id, repo: repo.into(), issue, user, body: body.into(), created_at: now, updated_at: now },
    );
    id
}

// ---- the HTTP side ----

fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/app", get(get_app))
        .route("/app/installations/{installation_id}/access_tokens", post(create_token))
        .route("/app-manifests/{code}/conversions", post(convert_manifest))
        .route("/repos/{owner}/{repo}", get(get_repo))
        .route("/repos/{owner}/{repo}/installation", get(get_repo_installation))
        .route("/repos/{owner}/{repo}/issues/{issue_number}", get(get_issue))
        .route("/repos/{owner}/{repo}/issues/{issue_number}/comments", get(list_comments).post(create_comment))
        .route("/repos/{owner}/{repo}/issues", get(list_issues))
        .route("/repos/{owner}/{repo}/issues/comments/{comment_id}", get(get_comment).patch(update_comment))
        .route("/repos/{owner}/{repo}/issues/{issue_number}/reactions", post(react_issue))
        .route("/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions", post(react_comment))
        .route("/repos/{owner}/{repo}/issues/{issue_number}/labels", post(add_issue_labels))
        .route("/repos/{owner}/{repo}/issues/{issue_number}/labels/{name}", delete(remove_issue_label))
        .route("/repos/{owner}/{repo}/labels", post(create_label))
        .route("/repos/{owner}/{repo}/labels/{name}", get(get_label))
        .route("/repos/{owner}/{repo}/pulls", get(list_pulls).post(create_pull))
        .route("/repos/{owner}/{repo}/pulls/{pull_number}", patch(update_pull))
        .route("/repos/{owner}/{repo}/collaborators/{username}/permission", get(get_permission))
        .route("/repos/{owner}/{repo}/actions/runs", get(list_runs))
        .route("/repos/{owner}/{repo}/actions/runs/{run_id}", get(get_run))
        .route("/repos/{owner}/{repo}/actions/runs/{run_id}/cancel", post(cancel_run))
        .route("/repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches", post(dispatch_workflow))
        .route("/repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs", get(list_workflow_runs))
        .route("/repos/{owner}/{repo}/actions/runs/{run_id}/artifacts", get(list_artifacts))
        .route("/repos/{owner}/{repo}/actions/runs/{run_id}/jobs", get(list_jobs))
        .route("/repos/{owner}/{repo}/actions/artifacts/{artifact_id}/{archive_format}", get(download_artifact))
        .route("/repos/{owner}/{repo}/actions/jobs/{job_id}/logs", get(download_job_logs))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "Not Found") })
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "message": message, "documentation_url": "https://docs.github.com/rest" }))).into_response()
}

fn validation_failed(resource: &str, field: &str, code: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({
            "message": "Validation Failed",
            "errors": [{ "resource": resource, "field": field, "code": code }],
            "documentation_url": "https://docs.github.com/rest"
        })),
    )
        .into_response()
}

/// Who the credentials say the caller is.
/// Endpoints that want the app's JWT rather than an installation token.
fn is_app_endpoint(path: &str) -> bool {
    path == "/app" || path.starts_with("/app/") || (path.starts_with("/repos/") && path.ends_with("/installation"))
}

fn authenticate(shared: &Shared, path: &str, headers: &HeaderMap) -> Caller {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Caller::Anonymous;
    };
    let Some((scheme, credential)) = value.split_once(' ') else {
        return Caller::Refused("malformed Authorization header");
    };
    let is_app_endpoint = is_app_endpoint(path);
    if is_app_endpoint {
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Caller::Refused("app endpoints need a JWT");
        }
        return match verify_jwt(shared, credential.trim()) {
            Ok(()) => Caller::App,
            Err(why) => Caller::Refused(why),
        };
    }
    if !(scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer")) {
        return Caller::Refused("unknown scheme");
    }
    let s = shared.lock();
    match s.tokens.get(credential.trim()) {
        None => Caller::Refused("unknown token"),
        Some(t) if t.revoked => Caller::Refused("revoked token"),
        Some(t) if t.expires_at <= chrono::Utc::now() => Caller::Refused("expired token"),
        Some(t) => Caller::Installation(t.installation_id),
    }
}

fn verify_jwt(shared: &Shared, jwt: &str) -> Result<(), &'static str> {
    use octocrab::jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
    let key = DecodingKey::from_rsa_der(&shared.key.public_der);
    let mut validation = Validation::new(Algorithm::RS256);
    // `iss` is the app id as a number, which jsonwebtoken's own `iss` check (strings) cannot
    // read; it is checked below.
    validation.set_required_spec_claims(&["exp"]);
    validation.validate_aud = false;
    validation.leeway = 0;
    let data = decode::<Value>(jwt, &key, &validation).map_err(|_| "JWT signature or expiry invalid")?;
    let claims = data.claims;
    let iss_ok = claims["iss"].as_u64() == Some(APP_ID) || claims["iss"].as_str() == Some(&APP_ID.to_string());
    if !iss_ok {
        return Err("JWT issuer is not this app");
    }
    let (iat, exp) = (claims["iat"].as_i64().unwrap_or(0), claims["exp"].as_i64().unwrap_or(0));
    let now = chrono::Utc::now().timestamp();
    if exp - iat > 600 || exp > now + 600 {
        return Err("JWT lives longer than 10 minutes");
    }
    if iat > now + 60 {
        return Err("JWT issued in the future");
    }
    Ok(())
}

/// Records, authenticates, injects faults and checks answers against the schema.
async fn intercept(AxState(shared): AxState<Arc<Shared>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, 16 << 20).await.unwrap_or_default();
    let method = parts.method.to_string();
    let path = parts.uri.path().to_string();
    let caller = authenticate(&shared, &path, &parts.headers);
    let index = {
        let mut s = shared.lock();
        s.requests.push(RecordedRequest {
            at: Instant::now(),
            method: method.clone(),
            path: path.clone(),
            query: parts.uri.query().map(str::to_string),
            caller: caller.clone(),
            body: serde_json::from_slice(&bytes).ok(),
            status: 0,
            fault: false,
        });
        s.requests.len() - 1
    };
    let finish = |status: u16, fault: bool| {
        let mut s = shared.lock();
        s.requests[index].status = status;
        s.requests[index].fault = fault;
    };

    let fault = shared.lock().take_fault(&path);
    if let Some(fault) = fault {
        let response = fault_response(&fault);
        finish(response.status().as_u16(), true);
        return response;
    }

    let allowed = if path.starts_with("/app-manifests/") {
        // The code itself is the credential.
        true
    } else if is_app_endpoint(&path) {
        caller == Caller::App
    } else {
        matches!(caller, Caller::Installation(_))
    };
    if !allowed {
        let message = match caller {
            Caller::Anonymous => "Requires authentication",
            _ => "Bad credentials",
        };
        finish(401, false);
        return error(StatusCode::UNAUTHORIZED, message);
    }

    let mut request = Request::from_parts(parts, Body::from(bytes));
    request.extensions_mut().insert(caller);
    let response = next.run(request).await;

    let (mut parts, body) = response.into_parts();
    let mut bytes: Bytes = to_bytes(body, 64 << 20).await.unwrap_or_default();
    let status = parts.status.as_u16();
    if parts.status.is_success()
        && !bytes.is_empty()
        && let Ok(mut value) = serde_json::from_slice::<Value>(&bytes)
    {
        let corruption = shared.lock().take_corruption(&path);
        if let Some(corrupt) = corruption {
            corrupt(&mut value);
            bytes = Bytes::from(serde_json::to_vec(&value).unwrap());
        }
        if let Some(checker) = &shared.checker {
            let outcome = checker.check(&method, &path, status, &value);
            let mut s = shared.lock();
            s.checked.insert(checker.operation_id(&method, &path).unwrap_or_else(|| format!("{method} {path}")));
            if let Err(violation) = outcome {
                s.violations.push(violation);
            }
        }
    }
    // The body may have changed size.
    parts.headers.remove(header::CONTENT_LENGTH);
    finish(status, false);
    Response::from_parts(parts, Body::from(bytes))
}

fn fault_response(fault: &Fault) -> Response {
    match fault {
        Fault::Status(status) => {
            let status = StatusCode::from_u16(*status).unwrap();
            error(status, status.canonical_reason().unwrap_or("error"))
        }
        Fault::SecondaryRateLimit { retry_after_secs } => {
            let mut r = error(
                StatusCode::FORBIDDEN,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            );
            r.headers_mut().insert("retry-after", HeaderValue::from_str(&retry_after_secs.to_string()).unwrap());
            r
        }
        Fault::QuotaExhausted { reset_in_secs } => {
            let mut r = error(StatusCode::FORBIDDEN, "API rate limit exceeded for installation.");
            let reset = chrono::Utc::now().timestamp() + *reset_in_secs as i64;
            let h = r.headers_mut();
            h.insert("x-ratelimit-limit", HeaderValue::from_static("5000"));
            h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
            h.insert("x-ratelimit-reset", HeaderValue::from_str(&reset.to_string()).unwrap());
            r
        }
    }
}

type Shd = AxState<Arc<Shared>>;

/// The repository, if the calling installation covers it (GitHub says 404 otherwise).
#[allow(clippy::result_large_err)] // the error is the response itself
fn repo_access<'a>(s: &'a State, caller: &Caller, owner: &str, repo: &str) -> Result<&'a RepoRecord, Response> {
    let full = format!("{owner}/{repo}");
    let Caller::Installation(id) = caller else {
        return Err(error(StatusCode::NOT_FOUND, "Not Found"));
    };
    let covered = s.installations.get(id).is_some_and(|repos| repos.contains(&full));
    match s.repos.get(&full) {
        Some(r) if covered => Ok(r),
        _ => Err(error(StatusCode::NOT_FOUND, "Not Found")),
    }
}

macro_rules! repo_or_return {
    ($s:expr, $caller:expr, $owner:expr, $repo:expr) => {
        match repo_access(&$s, &$caller, &$owner, &$repo) {
            Ok(r) => r.clone(),
            Err(resp) => return resp,
        }
    };
}

fn created(v: Value) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

fn ok(v: Value) -> Response {
    (StatusCode::OK, Json(v)).into_response()
}

async fn get_app(AxState(sh): Shd) -> Response {
    let s = sh.lock();
    let app = &s.app;
    ok(obj::integration(
        &sh.base,
        &obj::AppView { id: app.id, slug: &app.slug, name: &app.name, owner: &app.owner, created_at: app.created_at },
    ))
}

async fn create_token(AxState(sh): Shd, Path(installation_id): Path<u64>) -> Response {
    let mut s = sh.lock();
    if !s.installations.contains_key(&installation_id) {
        return error(StatusCode::NOT_FOUND, "Not Found");
    }
    let token = format!("ghs_{:032x}", rand::random::<u128>());
    let expires_at = chrono::Utc::now() + s.token_lifetime;
    s.tokens.insert(token.clone(), TokenRecord { installation_id, expires_at, revoked: false });
    created(obj::installation_token(&token, &expires_at))
}

async fn get_repo_installation(
    AxState(sh): Shd,
    Extension(_caller): Extension<Caller>,
    Path((owner, repo)): Path<(String, String)>,
) -> Response {
    let s = sh.lock();
    let full = format!("{owner}/{repo}");
    let Some(r) = s.repos.get(&full) else { return error(StatusCode::NOT_FOUND, "Not Found") };
    match s.installations.iter().find(|(_, repos)| repos.contains(&full)) {
        Some((id, _)) => ok(obj::installation(&sh.base, *id, &s.app, &r.owner)),
        None => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

async fn convert_manifest(AxState(sh): Shd, Path(code): Path<String>) -> Response {
    let mut s = sh.lock();
    if !s.manifest_codes.remove(&code) {
        return error(StatusCode::NOT_FOUND, "Not Found");
    }
    let id = s.id();
    let owner = s.app.owner.clone();
    let app = AppRecord {
        id,
        slug: format!("factory-{id}"),
        name: format!("Factory {id}"),
        owner,
        created_at: chrono::Utc::now(),
    };
    let pem = TestKey::generate().private_pem;
    let webhook_secret = format!("{:032x}", rand::random::<u128>());
    let client_secret = format!("{:040x}", rand::random::<u128>());
    let mut body = obj::integration(
        &sh.base,
        &obj::AppView { id, slug: &app.slug, name: &app.name, owner: &app.owner, created_at: app.created_at },
    );
    body["client_id"] = json!(format!("Iv1.{id:016x}"));
    body["client_secret"] = json!(client_secret);
    body["webhook_secret"] = json!(webhook_secret);
    body["pem"] = json!(pem);
    s.converted.push(ConvertedApp { code, app, pem, webhook_secret, client_secret });
    created(body)
}

async fn get_repo(
    AxState(sh): Shd,
    Extension(caller): Extension<Caller>,
    Path((owner, repo)): Path<(String, String)>,
) -> Response {
    let s = sh.lock();
    let r = repo_or_return!(s, caller, owner, repo);
    ok(obj::repository(&sh.base, &r))
}

fn comment_count(s: &State, repo: &str, issue: u64) -> usize {
    s.comments.values().filter(|c| c.repo == repo && c.issue == issue).count()
}

async fn get_issue(
    AxState(sh): Shd,
    Extension(caller): Extension<Caller>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
) -> Response {
    let s = sh.lock();
    let r = repo_or_return!(s, caller, owner, repo);
    match s.issues.get(&(r.full_name(), number)) {
        Some(i) => ok(obj::issue(&sh.base, &r, i, comment_count(&s, &r.full_name(), number))),
        None => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

async fn list_comments(
    AxState(sh): Shd,
    Extension(caller): Extension<Caller>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let s = sh.lock();
    let r = repo_or_return!(s, caller, owner, repo);
    let full = r.full_name();
    if !s.issues.contains_key(&(full.clone(), number)) {
        return error(StatusCode::NOT_FOUND, "Not Found");
    }
    let all: Vec<Value> = s
        .comments
        .values()
        .filter(|c| c.repo == full && c.issue == number)
        .map(|c| obj::issue_comment(&sh.base, &r, c))
        .collect();
    paged_array(&sh.base, &uri, &q, all)
}

fn body_text(body: &Value, field: &str) -> Option<String> {
    body.get(field).and_then(Value::as_str).map(str::to_string)
}

async fn create_comment(
    AxState(sh): Shd,
    Extension(caller): Extension<Caller>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    Json(body): Json<Value>,
) -> Response {
    let mut s = sh.lock();
    let r = repo_or_return!(s, caller, owner, repo);
    let full = r.full_name();
    let Some(text) = body_text(&body, "body") else {
        return validation_failed("IssueComment", "body", "missing_field");
    };
    if !s.issues.contains_key(&(full.clone(), number)) {
        return error(StatusCode::NOT_FOUND, "Not Found");
    }
    let bot = s.app.bot();
    let id = new_comment(&mut s, &full, number, bot, &text);
    created(obj::issue_comment(&sh.base, &r, &s.comments[&id]))
}

async fn update_comment(
    AxState(sh): Shd,
    Extension(caller): Extension<Caller>,
    Path((owner, repo, comment_id)): Path<(String, String, u64)>,
    Json(body): Json<Value>,
) -> Response {
    let mut s = sh.lock();
    let r = repo_or_return!(s, caller, owner, repo);
    let Some(text) = body_text(&body, "body") else {
        return validation_failed("IssueComment", "body", "missing_field");
    };
    let bot = s.app.bot();
    let Some(c) = s.comments.get_mut(&comment_id).filter(|c| c.repo == r.full_name()) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    if c.user != bot {
        // An installation may edit others' comments on GitHub too, but the bot never should.
        return error(StatusCode::FORBIDDEN, "the fake refuses edits to comments the app did not write");
    }
    c.body = text;
    c.updated_at = chrono::Utc::now();
    let c = c.clone();
    ok(obj::issue_comment(&sh.base, &r, &c))
}

const REACTIONS: [&str; 8] = ["+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"];

fn react(sh: &Shared, caller: &Caller, owner: &str, repo: &str, subject: Subject, body: &Value) -> Response {
    let mut s = sh.lock();
    let r = repo_or_return!(s, caller, owner, repo);
    let full = r.full_name();
    let Some(content) = body_text(body, "content").filter(|c| REACTIONS.contains(&c.as_str())) else {
        return validation_failed("Reaction", "content", "invalid");
    };
    let exists = match subject {
        Subject::Issue(n) => s.issues.contains_key(&(full.clone(), n)),
        Subject::Comment(id) => s.comments.get(&id).is_some_and(|c| c.repo == full),
    };
    if !exists {
        return error(StatusCode::NOT_FOUND, "Not Found");
    }
    let bot = s.app.bot();
    if let Some(existing) =
        s.reactions.iter().find(|x| x.repo == full && x.subject == subject && x.user == bot && x.content == content)
    {
        return ok(obj::reaction(&sh.base, existing));
    }
    let id = s.id();
    let reaction = ReactionRecord { id, repo: full, subject, user: bot, content, created_at: chrono::Utc::now() };
    s.reactions.push(reaction.clone());
    created(obj::reaction(&sh.base, &reaction))
}

async fn react_issue(
    AxState(sh): Shd,
    Extension(caller): Extension<Caller>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    Json(body): Json<Value>,
) -> Response {
    react(&sh, &caller, &owner, &repo, Subject::Issue(number), &body)
}

async fn react_comment(
    AxState(sh): Shd,
    Extension(caller): Extension<Caller>,
    Path((owner, repo, comment_id)): Path<(String, String, u64)>,
    Json(body): Json<Value>,
) -> Response {
    react(&sh, &caller, &owner, &repo, Subject::Comment(comment_id), &body)
}

async fn add_issue_labels(
    AxState(sh): Shd,
    Extension(caller): Extension<Caller>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    Json(body): Json<Value>,
) -> Response {
    let mut s = sh.lock();
    let r = repo_or_return!(s, caller, owner, repo);
    let full = r.full_name();
    // Either {"labels": [...]} or a bare array, names or {name} objects.
    let list = body.get("labels").unwrap_or(&body).as_array().cloned().unwrap_or_default();
    let names: Vec<String> =
        list.iter().filter_map(|v| v.as_str().map(str::to_string).or_else(|| body_text(v, "name"))).collect();
    if names.is_empty() {
        return validation_failed("Label", "labels", "missing_field");
    }
    if !s.issues.contains_key(&(full.clone(), number)) {
        return error(StatusCode::NOT_FOUND, "Not Found");
    }
    for name in &names {
        // Unknown labels are created on the fly with GitHub's default colour.
        if s.repos[&full].label(name).is_none() {
            let id = s.id();
            s.repos.get_mut(&full).unwrap().labels.push(LabelRecord {
                id,
                name: name.clone(),
                color: "ededed".into(),
                description: None,
            });
        }
        let canonical = s.repos[&full].label(name).unwrap().name.clone();
        let issue = s.issues.get_mut(&(full.clone(), number)).unwrap();
        if !issue.labels.iter().any(|l| l.eq_ignore_ascii_case(&canonical)) {
            issue.labels.push(canonical.clone());
        }
        if let Some(pull) = s.pulls.get_mut(&(full.clone(), number))
            && !pull.labels.iter().any(|l| l.eq_ignore_ascii_case(&canonical))
        {
            pull.labels.push(canonical);
        }
    }
    let r = s.repos[&full].clone();
    let labels: Vec<Value> = s.issues[&(full, number)]
        .labels
        .iter()
        .filter_map(|n| r.label(n))
        .map(|l| obj::label(&sh.base, &r, l))
        .collect();
    ok(Value::Array(labels))
}

async fn create_label(
    AxState(sh): Shd,
    Extension(caller): Extension<Caller>,
    Path((owner, repo)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let mut s = sh.lock();
    let r = repo_or_return!(s, caller, owner, repo);
    let full = r.full_name();
    let Some(name) = body_text(&body, "name").filter(|n| !n.is_empty()) else {
        return validation_failed("Label", "name", "missing_field");
    };
    if r.label(&name).is_some() {
        return validation_failed("Label", "name", "already_exists");
    }
    let color = body_text(&body, "color").unwrap_or_else(|| "ededed".into());
    if color.len() != 6 || !color.chars().all(|c| c.is_ascii_hexdigit()) {
        return validation_failed("Label", "color", "invalid");
    }
    let id = s.id();
    let label = LabelRecord { id, name, color, description: body_text(&body, "description") };
    s.repos.get_mut(&full).unwrap().labels.push(label.clone());
    let r = s.repos[&full].clone();
    created(obj::label(&sh.base, &r, &label))
}

async fn get_label(
    AxState(sh): Shd,
    Extension(caller): Extension<Caller>,
    Path((owner, repo, name)): Path<(String, String, String)>,
) -> Response {
    let s = sh.lock();
    let r = repo_or_return!(s, caller, owner, repo);
    match r.label(&name) {
        Some(l) => ok(obj::label(&sh.base, &r, l)),
        None => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

async fn list_pulls(
    AxState(sh): Shd,
    Extension(caller): Extension<Caller>,
    Path((owner, repo)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let s = sh.lock();
    let r = repo_or_return!(s, caller, owner, repo);
    let full = r.full_name();
    let state = q.get("state").map(String::as_str).unwrap_or("open");
    let head = q.get("head").cloned();
    let mut pulls: Vec<&PullRecord> = s
        .pulls
        .iter()
        .filter(|((repo, _), _)| *repo == full)
        .map(|(_, p)| p)
        .filter(|p| state == "all" || p.state == state)
        .filter(|p| match &head {
            // `owner:branch`; all our pulls come from the repository itself.
            Some(h) => *h == format!("{}:{}", r.owner.login, p.head),
            None => true,
        })
        .collect();
    pulls.sort_by_key(|p| std::cmp::Reverse(p.number));
    ok(Value::Array(pulls.into_iter().map(|p| obj::pull_request(&sh.base, &r, p)).collect()))
}

async fn create_pull(
    AxState(sh): Shd,
    Extension(caller): Extension<Caller>,
    Path((owner, repo)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let mut s = sh.lock();
    let r = repo_or_return!(s, caller, owner, repo);
    let full = r.full_name();
    let (Some(title), Some(head), Some(base)) =
        (body_text(&body, "title"), body_text(&body, "head"), body_text(&body, "base"))
    else {
        return validation_failed("PullRequest", "title/head/base", "missing_field");
    };
    let head = head.strip_prefix(&format!("{}:", r.owner.login)).unwrap_or(&head).to_string();
    if head == base {
        return validation_failed("PullRequest", "base", "invalid");
    }
    if s.pulls.iter().any(|((repo, _), p)| *repo == full && p.head == head && p.state == "open") {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "message": "Validation Failed",
                "errors": [{ "resource": "PullRequest", "code": "custom",
                             "message": format!("A pull request already exists for {}:{head}.", r.owner.login) }]
            })),
        )
            .into_response();
    }
    let bot = s.app.bot();
    let text = body_text(&body, "body");
    let number = new_issue(&mut s, &full, &title, text.clone(), bot.clone(), true);
    let id = s.id();
    let now = chrono::Utc::now();
    let pull = PullRecord {
        id,
        number,
        title,
        body: text,
        head,
        base,
        head_sha: sha(id),
        base_sha: sha(id + 7),
        draft: body.get("draft").and_then(Value::as_bool).unwrap_or(false),
        state: "open".into(),
        user: bot,
        labels: Vec::new(),
        created_at: now,
        updated_at: now,
    };
    s.pulls.insert((full, number), pull.clone());
    created(obj::pull_request(&sh.base, &r, &pull))
}

async fn update_pull(
    AxState(sh): Shd,
    Extension(caller): Extension<Caller>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    Json(body): Json<Value>,
) -> Response {
    let mut s = sh.lock();
    let r = repo_or_return!(s, caller, owner, repo);
    let full = r.full_name();
    let Some(pull) = s.pulls.get_mut(&(full.clone(), number)) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    if let Some(title) = body_text(&body, "title") {
        pull.title = title;
    }
    if let Some(text) = body_text(&body, "body") {
        pull.body = Some(text);
    }
    if let Some(state) = body_text(&body, "state") {
        if state != "open" && state != "closed" {
            return validation_failed("PullRequest", "state", "invalid");
        }
        pull.state = state;
    }
    pull.updated_at = chrono::Utc::now();
    let pull = pull.clone();
    if let Some(issue) = s.issues.get_mut(&(full, number)) {
        issue.title = pull.title.clone();
        issue.body = pull.body.clone();
        issue.state = pull.state.clone();
    }
    ok(obj::pull_request(&sh.base, &r, &pull))
}

async fn get_permission(
    AxState(sh): Shd,
    Extension(caller): Extension<Caller>,
    Path((owner, repo, username)): Path<(String, String, String)>,
) -> Response {
    let mut s = sh.lock();
    let r = repo_or_return!(s, caller, owner, repo);
    let Some(role) = r.roles.get(&username.to_ascii_lowercase()).cloned() else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let user = s.user(&username);
    ok(obj::collaborator_permission(&sh.base, &user, &role))
}

async fn remove_issue_label(
    AxState(sh): Shd,
    Extension(caller): Extension<Caller>,
    Path((owner, repo, number, name)): Path<(String, String, u64, String)>,
) -> Response {
    let mut s = sh.lock();
    let r = repo_or_return!(s, caller, owner, repo);
    let full = r.full_name();
    let Some(issue) = s.issues.get_mut(&(full.clone(), number)) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let before = issue.labels.len();
    issue.labels.retain(|l| !l.eq_ignore_ascii_case(&name));
    if issue.labels.len() == before {
        return error(StatusCode::NOT_FOUND, "Label does not exist");
    }
    let left = issue.labels.clone();
    if let Some(pull) = s.pulls.get_mut(&(full, number)) {
        pull.labels.retain(|l| !l.eq_ignore_ascii_case(&name));
    }
    ok(Value::Array(left.iter().filter_map(|n| r.label(n)).map(|l| obj::label(&sh.base, &r, l)).collect()))
}

// ---- GitHub Actions ----

/// The repository a run's head commit lives in: the repository itself, or a fork (made up
/// from its name when the fake does not hold it).
fn head_repo(s: &mut State, r: &RepoRecord, run: &RunRecord) -> RepoRecord {
    let Some(fork) = &run.head_repository else { return r.clone() };
    if let Some(known) = s.repos.get(fork) {
        return known.clone();
    }
    let (owner, name) = fork.split_once('/').expect("a fork is owner/name");
    let owner = s.user(owner);
    let mut made_up = r.clone();
    made_up.id = r.id + 1_000_000 + owner.id;
    made_up.owner = owner;
    made_up.name = name.into();
    made_up.labels.clear();
    made_up.roles.clear();
    made_up
}

fn run_json(base: &str, s: &mut State, r: &RepoRecord, run: &RunRecord) -> Value {
    let head = head_repo(s, r, run);
    // The open pull requests whose head is the run's branch, as GitHub lists them.
    let pulls: Vec<Value> = s
        .pulls
        .iter()
        .filter(|((repo, _), p)| {
            *repo == r.full_name()
                && p.state == "open"
                && run.head_repository.is_none()
                && Some(&p.head) == run.head_branch.as_ref()
        })
        .map(|(_, p)| obj::pull_request_minimal(base, r, p))
        .collect();
    obj::workflow_run(base, r, &head, run, pulls)
}

/// One page of `items` as `{total_count, <key>: [...]}`, with GitHub's `Link` header.
fn paged(base: &str, uri: &Uri, q: &HashMap<String, String>, key: &str, items: Vec<Value>) -> Response {
    let total = items.len();
    let (slice, link) = page_of(base, uri, q, items);
    with_link(ok(json!({ "total_count": total, key: slice })), link)
}

/// One page of `items` as a bare array (issues, comments), with GitHub's `Link` header.
fn paged_array(base: &str, uri: &Uri, q: &HashMap<String, String>, items: Vec<Value>) -> Response {
    let (slice, link) = page_of(base, uri, q, items);
    with_link(ok(Value::Array(slice)), link)
}

fn with_link(mut response: Response, link: Option<String>) -> Response {
    if let Some(link) = link {
        response.headers_mut().insert("link", HeaderValue::from_str(&link).unwrap());
    }
    response
}

/// The page `per_page`/`page` ask for, and the `Link` header pointing at the others (the same
/// query, another `page`).
fn page_of(base: &str, uri: &Uri, q: &HashMap<String, String>, items: Vec<Value>) -> (Vec<Value>, Option<String>) {
    let per_page = q.get("per_page").and_then(|v| v.parse::<usize>().ok()).unwrap_or(30).clamp(1, 100);
    let page = q.get("page").and_then(|v| v.parse::<usize>().ok()).unwrap_or(1).max(1);
    let pages = items.len().div_ceil(per_page).max(1);
    let slice: Vec<Value> = items.into_iter().skip((page - 1) * per_page).take(per_page).collect();
    let link_to = |p: usize| {
        let mut params: Vec<(&str, String)> =
            q.iter().filter(|(k, _)| k.as_str() != "page").map(|(k, v)| (k.as_str(), v.clone())).collect();
        params.sort();
        params.push(("page", p.to_string()));
        let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        format!("{base}{}?{query}", uri.path())
    };
    let mut links = Vec::new();
    if page < pages {
        links.push(format!("<{}>; rel=\"next\"", link_to(page + 1)));
        links.push(format!("<{}>; rel=\"last\"", link_to(pages)));
    }
    if page > 1 {
        links.push(format!("<{}>; rel=\"prev\"", link_to(page - 1)));
        links.push(format!("<{}>; rel=\"first\"", link_to(1)));
    }
    (slice, (!links.is_empty()).then(|| links.join(", ")))
}

async fn get_run(
    AxState(sh): Shd,
    Extension(caller): Extension<Caller>,
    Path((owner, repo, run_id)): Path<(String, String, u64)>,
) -> Response {
    let mut s = sh.lock();
    let r = repo_or_return!(s, caller, owner, repo);
    let Some(run) = s.runs.get(&run_id).filter(|run| run.repo == r.full_name()).cloned() else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    ok(run_json(&sh.base, &mut s, &r, &run))
}

async fn list_runs(
    AxState(sh): Shd,
    Extension(caller): Extension<Caller>,
    Path((owner, repo)): Path<(String, String)>,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = sh.lock();
    let r = repo_or_return!(s, caller, owner, repo);
    runs_page(&sh, &mut s, &r, None, &uri, &q)
}

/// One page of the repository's runs (of one workflow file when `path` is given), filtered by
/// the query as GitHub filters them, newest first.
fn runs_page(sh: &Shared, s: &mut State, r: &RepoRecord, path: Option<&str>, uri: &Uri, q: &HashMap<String, String>) -> Response {
    let full = r.full_name();
    let wanted = |key: &str, value: Option<&String>| q.get(key).is_none_or(|w| Some(w) == value);
    let mut runs: Vec<RunRecord> = s
        .runs
        .values()
        .filter(|run| run.repo == full && path.is_none_or(|p| run.path == p))
        .filter(|run| wanted("branch", run.head_branch.as_ref()))
        .filter(|run| wanted("head_sha", Some(&run.head_sha)))
        .filter(|run| wanted("event", Some(&run.event)))
        .filter(|run| wanted("actor", Some(&run.actor.login)))
        // `status` takes a status or a conclusion.
        .filter(|run| q.get("status").is_none_or(|w| *w == run.status || Some(w) == run.conclusion.as_ref()))
        .cloned()
        .collect();
    // Newest first (ids grow with creation).
    runs.sort_by_key(|run| std::cmp::Reverse(run.id));
    let items = runs.iter().map(|run| run_json(&sh.base, s, r, run)).collect();
    paged(&sh.base, uri, q, "workflow_runs", items)
}

async fn list_artifacts(
    AxState(sh): Shd,
    Extension(caller): Extension<Caller>,
    Path((owner, repo, run_id)): Path<(String, String, u64)>,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let s = sh.lock();
    let r = repo_or_return!(s, caller, owner, repo);
    let Some(run) = s.runs.get(&run_id).filter(|run| run.repo == r.full_name()) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let mut artifacts: Vec<&ArtifactRecord> =
        s.artifacts.values().filter(|a| a.run_id == run_id && q.get("name").is_none_or(|n| *n == a.name)).collect();
    if q.get("direction").map(String::as_str) != Some("asc") {
        artifacts.reverse();
    }
    let items = artifacts.into_iter().map(|a| obj::artifact(&sh.base, &r, a, run)).collect();
    paged(&sh.base, &uri, &q, "artifacts", items)
}

async fn list_jobs(
    AxState(sh): Shd,
    Extension(caller): Extension<Caller>,
    Path((owner, repo, run_id)): Path<(String, String, u64)>,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let s = sh.lock();
    let r = repo_or_return!(s, caller, owner, repo);
    let Some(run) = s.runs.get(&run_id).filter(|run| run.repo == r.full_name()) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let latest_only = match q.get("filter").map(String::as_str) {
        None | Some("latest") => true,
        Some("all") => false,
        Some(_) => return validation_failed("Job", "filter", "invalid"),
    };
    let items = s
        .jobs
        .values()
        .filter(|j| j.run_id == run_id && (!latest_only || j.run_attempt == run.run_attempt))
        .map(|j| obj::job(&sh.base, &r, j, run))
        .collect();
    paged(&sh.base, &uri, &q, "jobs", items)
}

/// A 302 to a new short-lived URL on the blob host that serves `blob`.
fn redirect_to_blob(sh: &Shared, s: &mut State, blob: Blob) -> Response {
    let key = format!("{:032x}", rand::random::<u128>());
    s.blobs.insert(key.clone(), blob);
    let expires = obj::time(&(chrono::Utc::now() + chrono::Duration::minutes(1)));
    let location = format!("{}/blob/{key}?se={}&sig={:016x}", sh.blob_base, obj::seg(&expires), rand::random::<u64>());
    let mut response = StatusCode::FOUND.into_response();
    response.headers_mut().insert(header::LOCATION, HeaderValue::from_str(&location).unwrap());
    response
}

async fn download_artifact(
    AxState(sh): Shd,
    Extension(caller): Extension<Caller>,
    Path((owner, repo, artifact_id, format)): Path<(String, String, u64, String)>,
) -> Response {
    let mut s = sh.lock();
    let r = repo_or_return!(s, caller, owner, repo);
    let Some(a) = s.artifacts.get(&artifact_id).filter(|a| a.repo == r.full_name() && format == "zip").cloned() else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    if a.expired {
        return error(StatusCode::GONE, "Artifact has expired");
    }
    redirect_to_blob(&sh, &mut s, Blob { content_type: "application/zip", body: a.zip })
}

async fn download_job_logs(
    AxState(sh): Shd,
    Extension(caller): Extension<Caller>,
    Path((owner, repo, job_id)): Path<(String, String, u64)>,
) -> Response {
    let mut s = sh.lock();
    let r = repo_or_return!(s, caller, owner, repo);
    let Some(job) = s.jobs.get(&job_id).filter(|j| j.repo == r.full_name()).cloned() else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let Some(log) = job.log else {
        return error(StatusCode::GONE, "Gone");
    };
    redirect_to_blob(&sh, &mut s, Blob { content_type: "text/plain; charset=utf-8", body: log })
}

/// The blob host: no credentials wanted; whether one arrived anyway is recorded.
async fn list_issues(
    AxState(sh): Shd,
    Extension(caller): Extension<Caller>,
    Path((owner, repo)): Path<(String, String)>,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let s = sh.lock();
    let r = repo_or_return!(s, caller, owner, repo);
    let full = r.full_name();
    let state = q.get("state").map(String::as_str).unwrap_or("open");
    let labels: Vec<&str> = q.get("labels").map(|l| l.split(',').map(str::trim).collect()).unwrap_or_default();
    let mut issues: Vec<&IssueRecord> = s
        .issues
        .iter()
        .filter(|((repo, _), i)| *repo == full && (state == "all" || i.state == state))
        .filter(|(_, i)| labels.iter().all(|l| i.labels.iter().any(|have| have.eq_ignore_ascii_case(l))))
        .map(|(_, i)| i)
        .collect();
    issues.sort_by_key(|i| i.number);
    if q.get("direction").map(String::as_str) != Some("asc") {
        issues.reverse();
    }
    let items = issues.iter().map(|i| obj::issue(&sh.base, &r, i, comment_count(&s, &full, i.number))).collect();
    paged_array(&sh.base, &uri, &q, items)
}

async fn get_comment(
    AxState(sh): Shd,
    Extension(caller): Extension<Caller>,
    Path((owner, repo, comment_id)): Path<(String, String, u64)>,
) -> Response {
    let s = sh.lock();
    let r = repo_or_return!(s, caller, owner, repo);
    match s.comments.get(&comment_id).filter(|c| c.repo == r.full_name()) {
        Some(c) => ok(obj::issue_comment(&sh.base, &r, c)),
        None => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// `workflow_id` is a file name (`generate.yml`) or a numeric id, as on GitHub.
fn workflow_path(s: &State, repo: &str, workflow_id: &str) -> Option<String> {
    if let Ok(id) = workflow_id.parse::<u64>() {
        return s.workflows.iter().find(|((r, _), wid)| r == repo && **wid == id).map(|((_, p), _)| p.clone());
    }
    Some(format!(".github/workflows/{workflow_id}"))
}

async fn dispatch_workflow(
    AxState(sh): Shd,
    Extension(caller): Extension<Caller>,
    Path((owner, repo, workflow_id)): Path<(String, String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let mut s = sh.lock();
    let r = repo_or_return!(s, caller, owner, repo);
    let full = r.full_name();
    let Some(path) = workflow_path(&s, &full, &workflow_id) else { return error(StatusCode::NOT_FOUND, "Not Found") };
    let Some(def) = s.dispatchable.get(&(full.clone(), path.clone())).cloned() else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let Some(git_ref) = body_text(&body, "ref") else { return validation_failed("Workflow", "ref", "missing_field") };
    let mut inputs = BTreeMap::new();
    for (k, v) in body.get("inputs").and_then(Value::as_object).into_iter().flatten() {
        if !def.inputs.contains(k) {
            let message = format!("Unexpected inputs provided: [\"{k}\"]");
            return (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"message": message, "documentation_url": "https://docs.github.com/rest"}))).into_response();
        }
        let Some(v) = v.as_str() else { return validation_failed("Workflow", k, "invalid") };
        inputs.insert(k.clone(), v.to_string());
    }
    let branch = git_ref.trim_start_matches("refs/heads/").to_string();
    let workflow_id = match s.workflows.get(&(full.clone(), path.clone())) {
        Some(id) => *id,
        None => {
            let id = s.id();
            s.workflows.insert((full.clone(), path.clone()), id);
            id
        }
    };
    let display_title = def.run_name.as_ref().map(|t| {
        let mut out = t.clone();
        for name in &def.inputs {
            let value = inputs.get(name).cloned().unwrap_or_default();
            for form in [format!("${{{{ inputs.{name} }}}}"), format!("${{{{inputs.{name}}}}}")] {
                out = out.replace(&form, &value);
            }
        }
        out
    });
    let run_number = s.runs.values().filter(|x| x.workflow_id == workflow_id).count() as u64 + 1;
    let id = s.id();
    let now = chrono::Utc::now();
    let actor = s.app.bot();
    let run = RunRecord {
        id,
        repo: full.clone(),
        workflow_id,
        run_number,
        path,
        name: Some(def.name.clone()),
        head_branch: Some(branch),
        head_sha: sha(id),
        head_repository: None,
        event: "workflow_dispatch".into(),
        status: "queued".into(),
        conclusion: None,
        run_attempt: 1,
        actor,
        created_at: now,
        updated_at: now,
        display_title,
        inputs,
        cancel_requested: false,
    };
    s.runs.insert(id, run);
    s.dispatched.push(id);
    if !s.dispatch_details || body.get("return_run_details").and_then(Value::as_bool) != Some(true) {
        return StatusCode::NO_CONTENT.into_response();
    }
    let html = format!("{}/{}/{}/actions/runs/{id}", sh.base, obj::seg(&owner), obj::seg(&repo));
    let api = format!("{}/repos/{}/{}/actions/runs/{id}", sh.base, obj::seg(&owner), obj::seg(&repo));
    ok(json!({ "workflow_run_id": id, "run_url": api, "html_url": html }))
}

async fn list_workflow_runs(
    AxState(sh): Shd,
    Extension(caller): Extension<Caller>,
    Path((owner, repo, workflow_id)): Path<(String, String, String)>,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = sh.lock();
    let r = repo_or_return!(s, caller, owner, repo);
    let full = r.full_name();
    let Some(path) = workflow_path(&s, &full, &workflow_id) else { return error(StatusCode::NOT_FOUND, "Not Found") };
    if !s.workflows.contains_key(&(full.clone(), path.clone())) && !s.dispatchable.contains_key(&(full.clone(), path.clone())) {
        return error(StatusCode::NOT_FOUND, "Not Found");
    }
    runs_page(&sh, &mut s, &r, Some(&path), &uri, &q)
}

/// GitHub accepts the request (202) and the run ends as `cancelled` soon after; the fake ends it
/// at once. A run that already finished answers 409.
async fn cancel_run(
    AxState(sh): Shd,
    Extension(caller): Extension<Caller>,
    Path((owner, repo, run_id)): Path<(String, String, u64)>,
) -> Response {
    let mut s = sh.lock();
    let r = repo_or_return!(s, caller, owner, repo);
    let Some(run) = s.runs.get_mut(&run_id).filter(|run| run.repo == r.full_name()) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    if run.status == "completed" {
        return error(StatusCode::CONFLICT, "Cannot cancel a workflow run that is completed.");
    }
    run.cancel_requested = true;
    run.status = "completed".into();
    run.conclusion = Some("cancelled".into());
    run.updated_at = chrono::Utc::now();
    (StatusCode::ACCEPTED, Json(json!({}))).into_response()
}

async fn get_blob(AxState(sh): Shd, Path(key): Path<String>, uri: Uri, headers: HeaderMap) -> Response {
    let mut s = sh.lock();
    let blob = s.blobs.get(&key).cloned();
    let response = match blob {
        Some(blob) => ([(header::CONTENT_TYPE, blob.content_type)], blob.body).into_response(),
        None => (StatusCode::NOT_FOUND, "BlobNotFound").into_response(),
    };
    s.blob_requests.push(BlobRequest {
        at: Instant::now(),
        method: "GET".into(),
        path: uri.path().to_string(),
        authorization: headers.get(header::AUTHORIZATION).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        status: response.status().as_u16(),
    });
    response
}

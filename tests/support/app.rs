//! The whole app as `serve` wires it, against the fakes: signed webhooks into the real router, the
//! SQLite store, the dispatcher and the worker pool running `PipelineHandler` with
//! `GitHubPlatform` against the fake GitHub; git clones from and pushes to a local bare
//! repository seeded with this project's schemas, scaffolds and skills; OpenAPI descriptions
//! (this project's `examples/`) served on 127.0.0.1. Used by `tests/app_e2e.rs` and the fleet
//! benchmark.

use super::fake_github::{APP_ID, APP_SLUG, FakeGitHub, Options};
use super::files::FileServer;
use super::repo::BareRepo;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use connector_factory::agent::tools::FetchPolicy;
use connector_factory::config::{Settings, Source};
use connector_factory::git::Identity;
use connector_factory::github::route::RouteContext;
use connector_factory::pipeline::{Executor, PipelineConfig, PipelineHandler, platforms_for_serve};
use connector_factory::server::dispatch::Dispatcher;
use connector_factory::server::webhook::sign;
use connector_factory::server::{AppState, router};
use connector_factory::spectest::SuiteOptions;
use connector_factory::store::{Job, JobFilter, SqliteStore, Store};
use connector_factory::worker::{JobQueue, PoolConfig, WorkerPool};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

pub const SECRET: &str = "e2e-webhook-secret";
pub const REPO: &str = "acme/connectors";
pub const INSTALLATION: u64 = 77;

/// The fake GitHub with [`REPO`] installed as [`INSTALLATION`], `maya` a writer, cloned from a
/// bare repository of the factory's tree under `tmp`, and the examples served for OpenAPI URLs.
pub async fn seeded_github(tmp: &Path, options: Options) -> (FakeGitHub, BareRepo, FileServer) {
    let fake = FakeGitHub::start_with(options).await;
    fake.add_repo(REPO);
    fake.add_installation(INSTALLATION, &[REPO]);
    fake.set_role(REPO, "maya", "write");
    let bare = BareRepo::factory(tmp, &[]);
    fake.set_clone_url(REPO, &bare.url());
    let files = FileServer::start(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples"));
    (fake, bare, files)
}

static DELIVERIES: AtomicU64 = AtomicU64::new(1);

pub fn delivery_id() -> String {
    format!("e2e-{}", DELIVERIES.fetch_add(1, Ordering::Relaxed))
}

/// A filled-in request form for the `examples/tidepool-bookings` description at `openapi`.
pub fn request_body(name: &str, openapi: &str, streams: &str) -> String {
    format!(
        "### Connector name\n\n{name}\n\n### API docs URL\n\nhttps://docs.tidepool-bookings.example/api\n\n\
         ### OpenAPI description URL\n\n{openapi}\n\n### Auth type\n\nBearer token\n\n### Streams wanted\n\n{streams}\n\n\
         ### Language\n\nPython\n\n### Notes\n\n_No response_\n"
    )
}

/// How the app is started.
pub struct AppOptions {
    /// `None`: what `serve` does, from the settings (`FACTORY_CONCURRENCY`, job timeout).
    pub pool: Option<PoolConfig>,
    /// Settings besides the GitHub App's and the store's (the LLM's, `FACTORY_CONCURRENCY`).
    pub env: Vec<(&'static str, String)>,
    pub spec_tests: SuiteOptions,
    /// Whether the fake GitHub checks its answers against GitHub's published schemas.
    pub check_schemas: bool,
    /// Where generate jobs run.
    pub executor: Executor,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            pool: Some(PoolConfig { concurrency: 2, ..PoolConfig::default() }),
            env: Vec::new(),
            spec_tests: SuiteOptions { only: vec!["discover".into()], ..SuiteOptions::default() },
            check_schemas: true,
            executor: Executor::Local,
        }
    }
}

pub struct App {
    pub tmp: tempfile::TempDir,
    pub files: FileServer,
    pub fake: FakeGitHub,
    pub bare: BareRepo,
    pub db_url: String,
    pub store: Arc<dyn Store>,
    pub queue: JobQueue,
    pub handler: Arc<PipelineHandler>,
    pub router: axum::Router,
    pub pool: Option<WorkerPool>,
    pub stop: CancellationToken,
    pub identity: Identity,
    pub settings: Settings,
}

impl App {
    pub async fn start_with(options: AppOptions) -> App {
        let tmp = tempfile::tempdir().unwrap();
        let (fake, bare, files) = seeded_github(tmp.path(), Options { check_schemas: options.check_schemas }).await;
        fake.set_role(REPO, "rita", "read");

        let db_url = format!("sqlite://{}", tmp.path().join("factory.db").display());
        // The settings `serve` reads, with GITHUB_API_URL pointing at the fake.
        let env: BTreeMap<String, String> = [
            ("GITHUB_APP_ID", APP_ID.to_string()),
            ("GITHUB_PRIVATE_KEY", fake.private_key().expose().to_string()),
            ("GITHUB_WEBHOOK_SECRET", SECRET.to_string()),
            ("GITHUB_API_URL", fake.url()),
            ("FACTORY_DATABASE_URL", db_url.clone()),
        ]
        .into_iter()
        .chain(options.env)
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let settings = Settings::load(&Source::new(env, None));
        let credentials = settings.require_serve().expect("complete settings");
        let platforms = platforms_for_serve(&settings, &credentials).unwrap();

        let identity = Identity::github_app(APP_SLUG, Some(40_000_000 + APP_ID));
        let config = PipelineConfig {
            identity: identity.clone(),
            workspace_parent: Some(tmp.path().join("ws")),
            // The description is on 127.0.0.1, which only a test may allow.
            fetch: FetchPolicy { allow_loopback: true, ..FetchPolicy::default() },
            spec_tests: options.spec_tests,
            executor: options.executor,
            ..PipelineConfig::from_settings(&settings)
        };
        let handler = Arc::new(PipelineHandler { platforms, config });
        let store: Arc<dyn Store> = Arc::new(SqliteStore::connect(&db_url).await.unwrap());
        let queue = JobQueue::new(store.clone());
        let stop = CancellationToken::new();
        let dispatcher = Dispatcher::new(queue.clone(), RouteContext { app_id: Some(APP_ID as i64) });
        let state = AppState::new(credentials.webhook_secret.clone(), store.clone(), dispatcher.waker());
        tokio::spawn(dispatcher.run(stop.clone()));
        let pool = options.pool.unwrap_or_else(|| PoolConfig {
            concurrency: settings.concurrency,
            job_timeout: settings.job_timeout,
            ..PoolConfig::default()
        });
        let pool = WorkerPool::start(queue.clone(), handler.clone(), pool);
        App {
            tmp,
            files,
            fake,
            bare,
            db_url,
            store,
            queue,
            handler,
            router: router(state, 1 << 20),
            pool: Some(pool),
            stop,
            identity,
            settings,
        }
    }

    pub async fn post(&self, event: &str, id: &str, payload: &Value, signature: Option<String>) -> StatusCode {
        let bytes = serde_json::to_vec(payload).unwrap();
        let sig = signature.unwrap_or_else(|| sign(SECRET.as_bytes(), &bytes));
        let req = Request::post("/webhook")
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header("x-github-delivery", id)
            .header("x-hub-signature-256", sig)
            .body(Body::from(bytes))
            .unwrap();
        self.router.clone().oneshot(req).await.unwrap().status()
    }

    pub async fn deliver(&self, event: &str, payload: &Value) -> StatusCode {
        self.post(event, &delivery_id(), payload, None).await
    }

    /// A request issue on the fake, and its `issues` `opened` event.
    pub fn open_request(&self, title: &str, body: &str, author: &str) -> (u64, Value) {
        let number = self.fake.add_issue(REPO, title, body, author);
        let event = json!({
            "action": "opened",
            "issue": issue_json(number, title, body, author),
            "repository": repository_json(),
            "sender": user(author),
            "installation": {"id": INSTALLATION},
        });
        (number, event)
    }

    /// The newest `limit` jobs.
    pub async fn jobs_up_to(&self, limit: u32) -> Vec<Job> {
        self.store.list_jobs(&JobFilter { limit: Some(limit), ..JobFilter::default() }).await.unwrap()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub fn user(login: &str) -> Value {
    json!({"login": login, "id": 1000 + login.len(), "type": "User"})
}

pub fn repository_json() -> Value {
    json!({"id": 5, "name": "connectors", "full_name": REPO, "default_branch": "main"})
}

pub fn issue_json(number: u64, title: &str, body: &str, author: &str) -> Value {
    json!({
        "number": number,
        "title": title,
        "body": body,
        "user": user(author),
        "labels": [{"name": "connector-request"}],
        "state": "open",
    })
}

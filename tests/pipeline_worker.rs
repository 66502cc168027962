//! The worker runs the pipeline: a generate job shaped like the webhook router's goes through
//! the SQLite queue, the pool and `PipelineHandler`, with a platform built per job.

mod support;

use anyhow::Result;
use async_trait::async_trait;
use connector_factory::pipeline::status::{MARKER, Meta, Phase};
use connector_factory::pipeline::{PipelineConfig, PipelineHandler, PlatformFactory};
use connector_factory::platform::Platform;
use connector_factory::spectest::SuiteOptions;
use connector_factory::store::{Job, JobKind, JobState, NewJob, SqliteStore, Store};
use connector_factory::worker::{JobQueue, PoolConfig, WorkerPool};
use serde_json::json;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::files::FileServer;
use support::platform::FakePlatform;
use support::repo::BareRepo;

/// Hands out one shared fake and remembers which jobs asked.
struct Factory {
    platform: Arc<FakePlatform>,
    asked: Mutex<Vec<(String, Option<i64>)>>,
}

#[async_trait]
impl PlatformFactory for Factory {
    async fn for_job(&self, job: &Job) -> Result<Arc<dyn Platform>> {
        self.asked.lock().unwrap().push((job.repository.clone(), job.installation_id));
        Ok(self.platform.clone())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_generate_job_runs_the_pipeline_and_records_its_phase() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = BareRepo::factory(tmp.path(), &[]);
    let files = FileServer::start(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples"));
    let body = format!(
        "### Connector name\n\nTidepool Bookings\n\n### API docs URL\n\nhttps://docs.tidepool-bookings.example/api\n\n\
         ### OpenAPI description URL\n\n{}/tidepool-bookings.openapi.yaml\n\n### Auth type\n\nBearer token\n\n\
         ### Streams wanted\n\nclients\n",
        files.base
    );
    let platform = Arc::new(FakePlatform::new(bare.url(), &["maya"]));
    let factory = Arc::new(Factory { platform: platform.clone(), asked: Mutex::new(Vec::new()) });
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::connect(&format!("sqlite://{}", tmp.path().join("f.db").display())).await.unwrap());
    let queue = JobQueue::new(store.clone());
    let handler = Arc::new(PipelineHandler {
        platforms: factory.clone(),
        config: PipelineConfig {
            workspace_parent: Some(tmp.path().join("ws")),
            // The description is served on 127.0.0.1, which the fetch policy refuses outside tests.
            fetch: connector_factory::agent::tools::FetchPolicy { allow_loopback: true, ..Default::default() },
            spec_tests: SuiteOptions { only: vec!["discover".into()], ..SuiteOptions::default() },
            ..PipelineConfig::default()
        },
    });
    let pool = WorkerPool::start(queue.clone(), handler, PoolConfig { concurrency: 1, ..PoolConfig::default() });

    let payload = json!({
        "delivery": "d-1",
        "issue": { "number": 3, "title": "Connector request: Tidepool", "body": body, "author": "maya" },
        "requested_by": "maya",
    });
    let id = queue
        .enqueue(&NewJob::new(JobKind::Generate, "acme/factory", Some(3), payload).installation(Some(77)))
        .await
        .unwrap()
        .job_id();
    let job = loop {
        let job = store.get_job(id).await.unwrap().unwrap();
        if !job.state.is_active() {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    pool.shutdown().await;

    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    assert_eq!(job.phase.as_deref(), Some("pr_opened"));
    let result = job.result.unwrap();
    assert_eq!(result["verdict"], "pr_opened");
    assert_eq!(result["branch"], "connector/tidepool-bookings");
    assert_eq!(factory.asked.lock().unwrap().clone(), vec![("acme/factory".to_string(), Some(77))]);

    let status = platform.bot_comments_on(3).into_iter().find(|(_, c)| c.body().contains(MARKER)).unwrap().1;
    let meta = Meta::parse(status.body()).unwrap();
    assert_eq!((meta.job, meta.phase), (Some(id.0), Phase::PrOpened));
    assert_eq!(platform.pulls().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ci_job_without_a_run_fails_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let platform = Arc::new(FakePlatform::new("unused".into(), &[]));
    let factory = Arc::new(Factory { platform, asked: Mutex::new(Vec::new()) });
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::connect(&format!("sqlite://{}", tmp.path().join("f.db").display())).await.unwrap());
    let queue = JobQueue::new(store.clone());
    let handler = Arc::new(PipelineHandler { platforms: factory, config: PipelineConfig::default() });
    let pool = WorkerPool::start(queue.clone(), handler, PoolConfig { concurrency: 1, ..PoolConfig::default() });
    let id =
        queue.enqueue(&NewJob::new(JobKind::CiFinished, "acme/factory", Some(3), json!({}))).await.unwrap().job_id();
    let job = loop {
        let job = store.get_job(id).await.unwrap().unwrap();
        if !job.state.is_active() {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    pool.shutdown().await;
    assert_eq!(job.state, JobState::Failed);
    let error = job.error.unwrap();
    assert!(error.contains("the job names no workflow run"), "{error}");
}

//! `connector-factory serve`: settings → store → worker pool → dispatcher → HTTP server.

use super::dispatch::Dispatcher;
use super::{AppState, router};
use crate::config::{AppCredentials, Settings, Source};
use crate::github::route::RouteContext;
use crate::pipeline::{PipelineConfig, PipelineHandler, platforms_for_serve};
use crate::store;
use crate::worker::{JobHandler, JobQueue, PoolConfig, WorkerPool};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Settings file (default: $FACTORY_CONFIG, else ./factory.toml if it exists).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn run(args: ServeArgs) -> Result<u8> {
    let settings = Settings::load(&Source::from_process(args.config.as_deref()));
    let credentials = match settings.require_serve() {
        Ok(c) => c,
        Err(err) => {
            eprintln!("connector-factory serve: {err}");
            return Ok(2);
        }
    };
    init_tracing();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve(settings, credentials, shutdown_signal()))?;
    Ok(0)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    // A second call (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).try_init();
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Runs the app until `stop` resolves, then drains: the server stops taking requests, running
/// jobs go back to the queue, the dispatcher stops.
pub async fn serve(
    settings: Settings,
    credentials: AppCredentials,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let store = store::open(&settings.database_url).await?;
    let queue = JobQueue::new(store.clone());
    let handler: Arc<dyn JobHandler> = Arc::new(PipelineHandler {
        platforms: platforms_for_serve(&settings, &credentials)?,
        config: PipelineConfig::from_settings(&settings),
    });
    let pool = WorkerPool::start(
        queue.clone(),
        handler,
        PoolConfig { concurrency: settings.concurrency, job_timeout: settings.job_timeout, ..PoolConfig::default() },
    );
    let dispatcher = Dispatcher::new(queue, RouteContext { app_id: i64::try_from(credentials.app_id).ok() });
    let state = AppState::new(credentials.webhook_secret, store, dispatcher.waker());
    let shutdown = CancellationToken::new();
    let dispatching = tokio::spawn(dispatcher.run(shutdown.clone()));

    let listener =
        tokio::net::TcpListener::bind(settings.bind).await.with_context(|| format!("binding {}", settings.bind))?;
    tracing::info!(
        address = %listener.local_addr()?,
        app_id = credentials.app_id,
        concurrency = settings.concurrency,
        "connector-factory serving webhooks on /webhook"
    );
    let served = axum::serve(listener, router(state, settings.max_body_bytes)).with_graceful_shutdown(stop).await;
    tracing::info!("shutting down: returning running jobs to the queue");
    shutdown.cancel();
    pool.shutdown().await;
    let _ = dispatching.await;
    served.context("the HTTP server failed")
}

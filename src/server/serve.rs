//! `connector-factory serve`: settings → store → worker pool → dispatcher → HTTP server.

use super::dispatch::Dispatcher;
use super::{AppState, router};
use super::dashboard::DashboardState;
use crate::config::{AppCredentials, Settings, Source};
use crate::github::route::RouteContext;
use crate::github::app::GitHubApp;
use crate::pipeline::{GitHubPlatforms, PipelineConfig, PipelineHandler};
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

/// Logs to stderr; `FACTORY_LOG_FORMAT=json` writes one JSON object per line, each carrying the
/// fields of the spans it happened in (delivery id, job id, issue), for log pipelines.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let json = std::env::var("FACTORY_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    // A second call (tests) keeps the first subscriber.
    let _ = if json {
        tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init()
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_writer(std::io::stderr).try_init()
    };
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

/// `GET /metrics`: Prometheus's text format.
pub async fn metrics_page(
    store: &dyn crate::store::Store,
    github: Option<&crate::github::client::ApiMetrics>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let jobs = match store.job_counts().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("metrics: reading the job counts failed: {e:#}");
            return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "the job store could not be read\n").into_response();
        }
    };
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        crate::metrics::global().render(&jobs, github),
    )
        .into_response()
}

/// GitHub's web address for an API URL: `https://api.github.com` → `https://github.com`,
/// GitHub Enterprise Server's `https://host/api/v3` → `https://host`.
pub fn web_url(api_url: &str) -> String {
    let trimmed = api_url.trim_end_matches('/');
    if let Some(rest) = trimmed.strip_suffix("/api/v3") {
        return rest.to_string();
    }
    trimmed.replace("://api.github.com", "://github.com")
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
    let github = Arc::new(GitHubApp::from_credentials(&credentials, &settings.api_url)?);
    let handler: Arc<dyn JobHandler> = Arc::new(PipelineHandler {
        platforms: Arc::new(GitHubPlatforms::new(github.clone())),
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
    let dashboard = DashboardState {
        store: state.store.clone(),
        token: settings.dashboard_token.clone(),
        web_url: web_url(&settings.api_url),
    };
    let scrape = (state.store.clone(), github.clone());
    let mut app = router(state, settings.max_body_bytes).route(
        "/metrics",
        axum::routing::get(move || {
            let (store, github) = scrape.clone();
            async move { metrics_page(store.as_ref(), Some(&github.metrics())).await }
        }),
    );
    if dashboard.token.is_some() || settings.bind.ip().is_loopback() {
        app = app.merge(super::dashboard::router(dashboard));
    } else {
        tracing::warn!("the sessions dashboard is off: {} is not a loopback address and FACTORY_DASHBOARD_TOKEN is not set", settings.bind);
    }
    let served = axum::serve(listener, app).with_graceful_shutdown(stop).await;
    tracing::info!("shutting down: returning running jobs to the queue");
    shutdown.cancel();
    pool.shutdown().await;
    let _ = dispatching.await;
    served.context("the HTTP server failed")
}

#[cfg(test)]
mod web_url_tests {
    #[test]
    fn links_go_to_the_web_host_of_the_api() {
        assert_eq!(super::web_url("https://api.github.com"), "https://github.com");
        assert_eq!(super::web_url("https://ghe.example.com/api/v3/"), "https://ghe.example.com");
        assert_eq!(super::web_url("http://127.0.0.1:9000"), "http://127.0.0.1:9000");
    }
}

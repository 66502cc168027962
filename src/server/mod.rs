//! The GitHub App's HTTP side: the webhook intake and a health check, on axum.

pub mod dashboard;
pub mod dispatch;
pub mod intake;
pub mod serve;
pub mod webhook;

use crate::config::Secret;
use crate::store::Store;
use intake::IntakeWriter;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;
use tokio::sync::Notify;
use tower_http::limit::RequestBodyLimitLayer;

/// What request handlers share.
#[derive(Clone)]
pub struct AppState {
    pub webhook_secret: Secret,
    pub store: Arc<dyn Store>,
    /// Group commit: persists deliveries in batches and answers each once its batch committed.
    pub writer: IntakeWriter,
}

impl AppState {
    /// Starts the intake writer (on the current tokio runtime); `intake` is woken after each batch
    /// that stored new events (give it [`dispatch::Dispatcher::waker`]).
    pub fn new(webhook_secret: Secret, store: Arc<dyn Store>, intake: Arc<Notify>) -> Self {
        let writer = IntakeWriter::start(store.clone(), intake);
        AppState { webhook_secret, store, writer }
    }
}

/// `POST /webhook` and `GET /healthz`. Bodies above `max_body_bytes` get 413 before anything
/// reads them: the limit layer refuses an announced Content-Length at once and cuts off a
/// streamed body as it arrives.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let webhook = Router::new()
        .route("/webhook", post(webhook::receive))
        // axum's own 2 MB default would answer first with a smaller limit; ours is the one.
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(max_body_bytes));
    Router::new().merge(webhook).route("/healthz", get(healthz)).with_state(state)
}

async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ok", "db": "ok" }))).into_response(),
        Err(err) => {
            tracing::warn!("health check: database unreachable: {err:#}");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "degraded", "db": "unreachable" })))
                .into_response()
        }
    }
}

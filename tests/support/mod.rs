//! Shared test helpers: bare repositories, a git smart-HTTP server, a static file server, a
//! recording platform, the scripted fake LLM server, the fake GitHub, and the whole app wired
//! against them.
#![allow(dead_code)]

pub mod app;
pub mod fake_github;
pub mod fake_llm;
pub mod files;
pub mod git_http;
pub mod platform;
pub mod repo;
pub mod tree;

/// Serves `app` on its own thread and runtime, so tests can use it from sync and async code
/// alike; cancel the token to stop it.
pub fn serve_in_background(listener: std::net::TcpListener, app: axum::Router) -> tokio_util::sync::CancellationToken {
    let stop = tokio_util::sync::CancellationToken::new();
    let until = stop.clone();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let _ = axum::serve(listener, app).with_graceful_shutdown(until.cancelled_owned()).await;
        });
    });
    stop
}

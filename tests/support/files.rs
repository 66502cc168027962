//! Static files over HTTP on 127.0.0.1 (OpenAPI descriptions for requests that name a URL).

use std::path::PathBuf;

pub struct FileServer {
    pub base: String,
    stop: tokio_util::sync::CancellationToken,
}

impl FileServer {
    /// Serves the files in `dir` by name.
    pub fn start(dir: PathBuf) -> FileServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let dir = dir.clone();
            async move {
                let name = uri.path().trim_start_matches('/').to_string();
                match std::fs::read(dir.join(&name)) {
                    Ok(bytes) if !name.contains("..") => (axum::http::StatusCode::OK, bytes),
                    _ => (axum::http::StatusCode::NOT_FOUND, Vec::new()),
                }
            }
        });
        let stop = super::serve_in_background(listener, app);
        FileServer { base, stop }
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

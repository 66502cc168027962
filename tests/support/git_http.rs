//! A git smart-HTTP server on 127.0.0.1: `git http-backend` (the CGI program that ships with
//! git) behind a small axum handler that asks for HTTP Basic credentials. It runs the bare
//! repository's hooks on push, which libgit2's in-process `file://` transport never does, and it
//! records each request so tests can check where the token travelled.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query as requested.
    pub uri: String,
    pub authorization: Option<String>,
}

pub struct GitHttp {
    pub base: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: tokio_util::sync::CancellationToken,
}

impl GitHttp {
    /// Serves the repositories below `root`; every request must carry `user`:`password`.
    pub fn start(root: PathBuf, user: &str, password: &str) -> GitHttp {
        let seen = Arc::new(Mutex::new(Vec::new()));
        use base64::Engine as _;
        let expected =
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = (root, expected, user.to_string(), seen.clone());
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (root, expected, user, seen) = state.clone();
            async move { handle(root, expected, user, seen, method, uri, headers, body).await }
        });
        let stop = super::serve_in_background(listener, app);
        GitHttp { base, seen, stop }
    }

    pub fn url(&self, repo: &str) -> String {
        format!("{}/{repo}", self.base)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for GitHttp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    root: PathBuf,
    expected: String,
    user: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        uri: uri.to_string(),
        authorization: authorization.clone(),
    });
    if authorization.as_deref() != Some(expected.as_str()) {
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("WWW-Authenticate", "Basic realm=\"git\"")
            .body(Body::empty())
            .unwrap();
    }
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let output = tokio::task::spawn_blocking(move || {
        let mut child = Command::new("git")
            .arg("http-backend")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GIT_PROJECT_ROOT", &root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("REMOTE_USER", &user)
            .env("REMOTE_ADDR", "127.0.0.1")
            .env("REQUEST_METHOD", method.as_str())
            .env("PATH_INFO", uri.path())
            .env("QUERY_STRING", uri.query().unwrap_or_default())
            .env("CONTENT_TYPE", content_type)
            .env("CONTENT_LENGTH", body.len().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("git http-backend runs");
        child.stdin.take().unwrap().write_all(&body).unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    cgi_response(&output.stdout)
}

/// A CGI answer (headers, a blank line, the body) as an HTTP response.
fn cgi_response(raw: &[u8]) -> Response {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, 4));
    let split = split.or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((at, gap)) = split else {
        return Response::builder().status(500).body(Body::from(raw.to_vec())).unwrap();
    };
    let head = String::from_utf8_lossy(&raw[..at]);
    let mut response = Response::builder();
    let mut status = 200;
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            status = value.split_whitespace().next().and_then(|s| s.parse().ok()).unwrap_or(500);
        } else {
            response = response.header(name.trim(), value);
        }
    }
    response.status(status).body(Body::from(raw[at + gap..].to_vec())).unwrap()
}

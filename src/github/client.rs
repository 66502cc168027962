//! The GitHub REST calls the bot makes, sent through octocrab's HTTP stack.
//!
//! octocrab supplies the client (rustls, timeouts, base URI handling, the API version header) and
//! the app JWT (see `app.rs`). Requests go out through [`Octocrab::execute`] rather than the typed
//! handlers so that status and headers stay visible: retries need `retry-after` and the rate-limit
//! headers, which octocrab's typed errors drop, and installation tokens are sent as
//! `Authorization: token …` from our own cache. Bodies are read into small serde types that hold
//! only what the bot uses, so a GitHub object gaining or reshaping an unrelated field cannot break
//! a call.
//!
//! Nothing here logs a token, a JWT or a request body.

use super::app::GitHubApp;
use crate::config::Secret;
use anyhow::{Context, Result, anyhow, bail};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, HeaderValue, USER_AGENT};
use http::{HeaderMap, Method, StatusCode};
use octocrab::Octocrab;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How hard a call tries before giving up.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included.
    pub max_attempts: u32,
    /// First back-off after a 502/503/504; doubled on each further attempt.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// The longest wait a rate limit may ask for. A longer one fails the call instead of
    /// stalling a worker; the job can be retried later.
    pub max_rate_limit_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            max_rate_limit_wait: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.base_delay.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let capped = exp.min(self.max_delay);
        // Up to 20% jitter, so workers that failed together do not come back together.
        let jitter = capped.mul_f64(rand::random::<f64>() * 0.2);
        capped + jitter
    }
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    server_errors: AtomicU64,
    rate_limited: AtomicU64,
    transport_errors: AtomicU64,
    token_mints: AtomicU64,
}

/// Totals since start, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ApiMetrics {
    /// HTTP requests sent, retries included.
    pub requests: u64,
    /// Requests sent again after a 5xx, a rate limit or a transport error.
    pub retries: u64,
    /// 502/503/504 answers.
    pub server_errors: u64,
    /// Rate-limit answers (403/429 with retry-after or an exhausted quota).
    pub rate_limited: u64,
    /// Requests that got no HTTP answer at all.
    pub transport_errors: u64,
    /// Installation tokens minted.
    pub token_mints: u64,
}

/// An answer from GitHub that the call did not expect. Kept as a type so callers can
/// `downcast_ref` and look at the status.
#[derive(Debug, Clone, thiserror::Error)]
#[error("GitHub {method} {path} answered {status}: {message}")]
pub struct ApiError {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub message: String,
}

/// The status of the [`ApiError`] behind an error, if there is one.
pub fn api_status(err: &anyhow::Error) -> Option<u16> {
    err.downcast_ref::<ApiError>().map(|e| e.status)
}

/// How a request authenticates.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    None,
    /// As the app itself: a JWT (`Authorization: Bearer`).
    App(&'a Secret),
    /// As an installation: an installation token (`Authorization: token`).
    Installation(&'a Secret),
}

/// A response, read whole.
#[derive(Debug)]
pub struct ApiResponse {
    pub method: Method,
    pub path: String,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl ApiResponse {
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// `Err(ApiError)` unless the status is 2xx.
    pub fn success(self) -> Result<ApiResponse> {
        if self.is_success() { Ok(self) } else { Err(self.error().into()) }
    }

    pub fn error(&self) -> ApiError {
        // GitHub's error bodies carry `message`; anything else is cut short, never echoed whole.
        let message = serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| self.body.chars().take(200).collect());
        ApiError {
            method: self.method.to_string(),
            path: self.path.clone(),
            status: self.status.as_u16(),
            message: if message.trim().is_empty() { "(no message)".into() } else { message },
        }
    }

    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.body)
            .with_context(|| format!("GitHub {} {}: unexpected response body", self.method, self.path))
    }

    /// The `rel="next"` target of the `Link` header.
    pub fn next_link(&self) -> Option<String> {
        let link = self.headers.get("link")?.to_str().ok()?;
        link.split(',').find_map(|part| {
            let (url, params) = part.split_once(';')?;
            let is_next = params.split(';').any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
            is_next.then(|| url.trim().trim_start_matches('<').trim_end_matches('>').to_string())
        })
    }
}

/// How much of a downloaded body to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLimit {
    /// All of it, or [`TooLarge`] once it passes this many bytes.
    AtMost(u64),
    /// Only its last this many bytes (the end of a log is where a job failed).
    Tail(usize),
}

/// A download: the answer, whose `body` is empty for a 2xx (the bytes are in `bytes`) and holds
/// the error text otherwise.
#[derive(Debug)]
pub struct ApiDownload {
    pub response: ApiResponse,
    pub bytes: Vec<u8>,
    /// Bytes [`BodyLimit::Tail`] dropped from the front.
    pub dropped: u64,
}

/// A download bigger than its [`BodyLimit::AtMost`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("GitHub GET {path}: the download is larger than the {limit} bytes allowed; not reading further")]
pub struct TooLarge {
    pub path: String,
    pub limit: u64,
}

/// The HTTP side shared by the app and all its installations: one octocrab client, the retry
/// policy and the counters.
pub struct Api {
    octo: Octocrab,
    base: url::Url,
    retry: RetryPolicy,
    counters: Arc<Counters>,
}

impl Api {
    pub fn new(api_url: &str) -> Result<Api> {
        let base = url::Url::parse(api_url).with_context(|| format!("GitHub API URL '{api_url}' is not a URL"))?;
        if !matches!(base.scheme(), "http" | "https") {
            bail!("GitHub API URL '{api_url}' must be http(s)");
        }
        let octo = Octocrab::builder()
            .base_uri(api_url.trim_end_matches('/'))
            .context("GitHub API URL")?
            .add_header(USER_AGENT, "connector-factory".to_string())
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(Duration::from_secs(60)))
            .set_write_timeout(Some(Duration::from_secs(60)))
            .build()
            .context("building the GitHub HTTP client")?;
        Ok(Api { octo, base, retry: RetryPolicy::default(), counters: Arc::default() })
    }

    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    pub fn base_url(&self) -> &url::Url {
        &self.base
    }

    pub fn metrics(&self) -> ApiMetrics {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ApiMetrics {
            requests: get(&c.requests),
            retries: get(&c.retries),
            server_errors: get(&c.server_errors),
            rate_limited: get(&c.rate_limited),
            transport_errors: get(&c.transport_errors),
            token_mints: get(&c.token_mints),
        }
    }

    pub(crate) fn count_token_mint(&self) {
        self.counters.token_mints.fetch_add(1, Ordering::Relaxed);
    }

    /// A link GitHub handed out (pagination), as a path below the API root; `None` when it
    /// points elsewhere, so a token is never sent to another host.
    fn relative(&self, absolute: &str) -> Option<String> {
        let url = url::Url::parse(absolute).ok()?;
        if url.origin() != self.base.origin() {
            return None;
        }
        let root = self.base.path().trim_end_matches('/');
        let path = url.path().strip_prefix(root).unwrap_or(url.path());
        Some(match url.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.to_string(),
        })
    }

    /// Sends a request, retrying 502/503/504 and rate limits within the policy. The final
    /// response is returned whatever its status; `Err` only when no answer came.
    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>, auth: Auth<'_>) -> Result<ApiResponse> {
        Ok(self.exchange(method, path, body, auth, None).await?.response)
    }

    /// A `GET` whose 2xx body is kept as bytes, within `limit`: an artifact archive, a log.
    /// Retries like [`send`](Self::send); a body over an [`BodyLimit::AtMost`] fails at once
    /// with [`TooLarge`], without a retry.
    ///
    /// GitHub answers these with a 302 to a short-lived URL on another host (blob storage).
    /// octocrab's HTTP stack follows it (its `follow-redirect` feature: tower-http's
    /// `FollowRedirect` with the standard policy), and that policy drops `Authorization` (and
    /// cookies) whenever a redirect leaves the origin, so the installation token never reaches
    /// the storage host. The follow-up request counts as part of this one in the metrics.
    pub async fn download(&self, path: &str, auth: Auth<'_>, limit: BodyLimit) -> Result<ApiDownload> {
        self.exchange(Method::GET, path, None, auth, Some(limit)).await
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        auth: Auth<'_>,
        bytes: Option<BodyLimit>,
    ) -> Result<ApiDownload> {
        let mut attempt = 1;
        loop {
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            let outcome = match self.send_once(&method, path, body, auth, bytes).await {
                Err(Failure::TooLarge(err)) => return Err(err.into()),
                Err(Failure::Transport(err)) => Err(err),
                Ok(answer) => Ok(answer),
            };
            let wait = match &outcome {
                Err(err) => {
                    self.counters.transport_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%method, path, attempt, "GitHub request failed: {err}");
                    // Only reads are repeated blindly: a write may have landed before the
                    // connection broke, and repeating it would comment twice.
                    (method == Method::GET).then(|| self.retry.backoff(attempt))
                }
                Ok(answer) => self.retry_wait(&answer.response, attempt),
            };
            match (wait, outcome) {
                (Some(wait), _) if attempt < self.retry.max_attempts => {
                    tracing::info!(%method, path, attempt, wait_ms = wait.as_millis() as u64, "retrying GitHub request");
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                (_, Ok(answer)) => return Ok(answer),
                (_, Err(err)) => return Err(anyhow!(err).context(format!("GitHub {method} {path}: no answer"))),
            }
        }
    }

    /// How long to wait before trying again, or `None` when the answer is final.
    fn retry_wait(&self, resp: &ApiResponse, attempt: u32) -> Option<Duration> {
        let status = resp.status.as_u16();
        if matches!(status, 502..=504) {
            self.counters.server_errors.fetch_add(1, Ordering::Relaxed);
            return Some(self.retry.backoff(attempt));
        }
        if !matches!(status, 403 | 429) {
            return None;
        }
        let header = |name: &str| resp.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let wait = if let Some(after) = header("retry-after") {
            parse_retry_after(after)
        } else if header("x-ratelimit-remaining") == Some("0") {
            header("x-ratelimit-reset").and_then(|r| r.parse::<i64>().ok()).map(|reset| {
                let now = chrono::Utc::now().timestamp_millis();
                // A quarter second past the reset, so the first request after it is not early.
                Duration::from_millis((reset * 1000 - now).max(0) as u64 + 250)
            })
        } else if status == 429 || resp.body.to_ascii_lowercase().contains("secondary rate limit") {
            // GitHub's advice when a secondary limit names no time: wait at least a minute.
            Some(Duration::from_secs(60))
        } else {
            None // a plain 403: no permission, not worth repeating
        }?;
        self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
        if wait > self.retry.max_rate_limit_wait {
            tracing::warn!(path = %resp.path, wait_secs = wait.as_secs(), "GitHub rate limit asks for a longer wait than allowed; giving up");
            return None;
        }
        Some(wait)
    }

    async fn send_once(
        &self,
        method: &Method,
        path: &str,
        body: Option<&Value>,
        auth: Auth<'_>,
        bytes: Option<BodyLimit>,
    ) -> std::result::Result<ApiDownload, Failure> {
        let mut builder = http::Request::builder()
            .method(method.clone())
            .uri(path)
            .header(ACCEPT, HeaderValue::from_static("application/vnd.github+json"));
        let credential = match auth {
            Auth::None => None,
            Auth::App(jwt) => Some(format!("Bearer {}", jwt.expose())),
            Auth::Installation(token) => Some(format!("token {}", token.expose())),
        };
        if let Some(credential) = credential {
            // Marked sensitive so that no layer below prints it.
            let mut value = HeaderValue::from_str(&credential).map_err(|e| octocrab::Error::Other {
                source: Box::new(e),
                backtrace: std::backtrace::Backtrace::capture(),
            })?;
            value.set_sensitive(true);
            builder = builder.header(AUTHORIZATION, value);
        }
        let request = self.octo.build_request(builder, body)?;
        let response = self.octo.execute(request).await?;
        let status = response.status();
        let headers = response.headers().clone();
        tracing::debug!(%method, path, status = status.as_u16(), "GitHub answered");
        let declared = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let answer =
            |body: String| ApiResponse { method: method.clone(), path: path.to_string(), status, headers, body };
        match bytes {
            Some(limit) if status.is_success() => {
                // Refused before reading when the size is announced.
                if let (BodyLimit::AtMost(max), Some(len)) = (limit, declared)
                    && len > max
                {
                    return Err(Failure::TooLarge(TooLarge { path: path.to_string(), limit: max }));
                }
                let (bytes, dropped) = read_limited(response.into_body(), limit, path).await?;
                Ok(ApiDownload { response: answer(String::new()), bytes, dropped })
            }
            _ => {
                let body = self.octo.body_to_string(response).await?;
                Ok(ApiDownload { response: answer(body), bytes: Vec::new(), dropped: 0 })
            }
        }
    }
}

/// Why one attempt got no usable answer.
enum Failure {
    /// No answer, or the connection broke while reading it: worth another try for a read.
    Transport(octocrab::Error),
    /// An answer too big to keep: final.
    TooLarge(TooLarge),
}

impl From<octocrab::Error> for Failure {
    fn from(e: octocrab::Error) -> Self {
        Failure::Transport(e)
    }
}

/// Reads a body frame by frame within `limit`: `(bytes kept, bytes dropped from the front)`.
async fn read_limited(
    mut body: http_body_util::combinators::BoxBody<bytes::Bytes, octocrab::Error>,
    limit: BodyLimit,
    path: &str,
) -> std::result::Result<(Vec<u8>, u64), Failure> {
    use http_body_util::BodyExt;
    let mut kept: Vec<u8> = Vec::new();
    let mut dropped = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else { continue };
        kept.extend_from_slice(&data);
        match limit {
            BodyLimit::AtMost(max) if kept.len() as u64 > max => {
                return Err(Failure::TooLarge(TooLarge { path: path.to_string(), limit: max }));
            }
            // Trimmed once it is twice the size kept, so a long log is not shifted per frame.
            BodyLimit::Tail(max) if kept.len() > max.saturating_mul(2).max(1 << 16) => {
                let cut = kept.len() - max;
                kept.drain(..cut);
                dropped += cut as u64;
            }
            _ => {}
        }
    }
    if let BodyLimit::Tail(max) = limit
        && kept.len() > max
    {
        let cut = kept.len() - max;
        kept.drain(..cut);
        dropped += cut as u64;
    }
    Ok((kept, dropped))
}

/// `Retry-After` is seconds or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(std::time::SystemTime::now()).unwrap_or_default())
}

/// One path segment, percent-encoded (label names have spaces, branches have slashes).
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn query(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

// ---- what the bot reads from GitHub's objects ----

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct User {
    pub login: String,
    pub id: u64,
    #[serde(rename = "type", default)]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Repository {
    pub id: u64,
    pub full_name: String,
    pub default_branch: String,
    pub clone_url: String,
    pub html_url: String,
    #[serde(default)]
    pub private: bool,
    #[serde(default)]
    pub archived: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum IssueLabel {
    Name(String),
    Label { name: String },
}

impl IssueLabel {
    pub fn name(&self) -> &str {
        match self {
            IssueLabel::Name(n) | IssueLabel::Label { name: n } => n,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Issue {
    pub number: u64,
    pub title: String,
    #[serde(default)]
    pub body: Option<String>,
    pub state: String,
    #[serde(default)]
    pub user: Option<User>,
    #[serde(default)]
    pub labels: Vec<IssueLabel>,
    pub html_url: String,
    /// Present when the issue is a pull request.
    #[serde(default)]
    pub pull_request: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct IssueComment {
    pub id: u64,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub user: Option<User>,
    pub html_url: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Reaction {
    pub id: u64,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Label {
    pub id: u64,
    pub name: String,
    pub color: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct PullRef {
    #[serde(rename = "ref")]
    pub ref_name: String,
    pub label: String,
    pub sha: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct PullRequestInfo {
    pub number: u64,
    pub html_url: String,
    pub state: String,
    pub title: String,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub draft: Option<bool>,
    pub head: PullRef,
    pub base: PullRef,
    #[serde(default)]
    pub merged_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct CollaboratorPermission {
    /// The legacy level: `admin`, `write`, `read` or `none` (maintain shows as write).
    pub permission: String,
    /// The role itself: `admin`, `maintain`, `write`, `triage`, `read`, or a custom role.
    #[serde(default)]
    pub role_name: String,
}

impl CollaboratorPermission {
    /// Write, maintain or admin. Custom roles count by their base level, which `permission` shows.
    pub fn grants_write(&self) -> bool {
        let writes = |p: &str| matches!(p, "admin" | "maintain" | "write");
        writes(&self.permission) || writes(&self.role_name)
    }
}

/// `GET /app`: who the app is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct AppInfo {
    pub id: u64,
    #[serde(default)]
    pub slug: Option<String>,
    pub name: String,
    pub html_url: String,
}

impl AppInfo {
    /// The login GitHub shows on what the app writes: `<slug>[bot]`.
    pub fn bot_login(&self) -> Option<String> {
        self.slug.as_ref().map(|s| format!("{s}[bot]"))
    }
}

/// `owner/name` of a repository inside another object.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct RepoName {
    pub full_name: String,
}

/// A GitHub Actions workflow run.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct WorkflowRunInfo {
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
    /// The workflow file, `.github/workflows/<file>`.
    pub path: String,
    #[serde(default)]
    pub head_branch: Option<String>,
    pub head_sha: String,
    #[serde(default)]
    pub head_repository: Option<RepoName>,
    pub event: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub conclusion: Option<String>,
    pub html_url: String,
    #[serde(default)]
    pub run_attempt: Option<u32>,
    /// What the Actions page shows: the workflow's `run-name` once rendered.
    #[serde(default)]
    pub display_title: Option<String>,
}

/// `POST .../dispatches` with `return_run_details`: the run it started.
#[derive(Debug, Clone, Deserialize)]
pub struct DispatchedRun {
    pub workflow_run_id: u64,
    pub html_url: String,
}

#[derive(Debug, Clone, Deserialize)]
struct WorkflowRunList {
    workflow_runs: Vec<WorkflowRunInfo>,
}

/// A file a workflow run uploaded (`actions/upload-artifact`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Artifact {
    pub id: u64,
    pub name: String,
    pub size_in_bytes: u64,
    pub expired: bool,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub expires_at: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct ArtifactList {
    artifacts: Vec<Artifact>,
}

/// One job of a workflow run.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Job {
    pub id: u64,
    pub run_id: u64,
    pub name: String,
    pub status: String,
    #[serde(default)]
    pub conclusion: Option<String>,
    #[serde(default)]
    pub html_url: Option<String>,
    #[serde(default)]
    pub run_attempt: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
struct JobList {
    jobs: Vec<Job>,
}

/// The end of a job's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTail {
    /// The log's last bytes as text, from the start of a line (invalid UTF-8 becomes U+FFFD).
    pub text: String,
    /// Bytes left out before `text`; 0 when the log is whole.
    pub dropped: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewPull<'a> {
    pub title: &'a str,
    /// The branch with the changes (same repository).
    pub head: &'a str,
    pub base: &'a str,
    pub body: &'a str,
    pub draft: bool,
}

/// The reactions GitHub accepts.
pub const REACTIONS: [&str; 8] = ["+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"];

/// Label colour for labels the bot creates (GitHub's light grey-blue).
pub const DEFAULT_LABEL_COLOR: &str = "c5def5";

/// More pages than this means something is wrong; stop rather than loop.
const MAX_PAGES: usize = 50;

/// Calls made as one installation of the app.
#[derive(Clone)]
pub struct InstallationClient {
    creds: Credentials,
}

/// Where the installation token comes from.
#[derive(Clone)]
enum Credentials {
    /// The app's key: tokens are minted, cached and renewed by [`GitHubApp`].
    App { app: Arc<GitHubApp>, installation_id: u64 },
    /// A token someone else minted for the installation (a GitHub Actions runner that ran
    /// `actions/create-github-app-token`): used as it is, never renewed. The app's bot login
    /// comes with it, since `GET /app` needs the app's key.
    Token { api: Arc<Api>, token: Secret, bot_login: String },
}

impl InstallationClient {
    pub fn new(app: Arc<GitHubApp>, installation_id: u64) -> Self {
        InstallationClient { creds: Credentials::App { app, installation_id } }
    }

    /// A client on a ready-made installation token, acting as the app whose bot is `bot_login`
    /// (`<slug>[bot]`).
    pub fn with_token(api_url: &str, token: Secret, bot_login: &str) -> Result<Self> {
        if bot_login.trim().is_empty() {
            bail!("the app's bot login is empty (expected '<app-slug>[bot]')");
        }
        let api = Arc::new(Api::new(api_url)?);
        Ok(InstallationClient { creds: Credentials::Token { api, token, bot_login: bot_login.trim().to_string() } })
    }

    fn api(&self) -> &Api {
        match &self.creds {
            Credentials::App { app, .. } => app.api(),
            Credentials::Token { api, .. } => api,
        }
    }

    /// The app's bot account (`<slug>[bot]`): what its comments are written by.
    pub async fn bot_login(&self) -> Result<String> {
        match &self.creds {
            Credentials::App { app, .. } => app.bot_login().await,
            Credentials::Token { bot_login, .. } => Ok(bot_login.clone()),
        }
    }

    /// A token valid for at least the app's renewal margin (git pushes use it).
    pub async fn token(&self) -> Result<Secret> {
        match &self.creds {
            Credentials::App { app, installation_id } => app.installation_token(*installation_id).await,
            Credentials::Token { token, .. } => Ok(token.clone()),
        }
    }

    /// Drops a token GitHub refused so the next call mints another; `false` when there is no
    /// other to get (a ready-made token).
    async fn renew(&self, refused: &Secret, path: &str) -> bool {
        match &self.creds {
            Credentials::App { app, installation_id } => {
                tracing::info!(installation = installation_id, path, "installation token refused; minting a new one");
                app.forget_token(*installation_id, refused).await;
                true
            }
            Credentials::Token { .. } => false,
        }
    }

    /// Sends with the installation token. A 401 means the token died early (revoked, app
    /// re-installed): it is dropped and the call is made once more with a fresh one.
    pub async fn request(&self, method: Method, path: &str, body: Option<&Value>) -> Result<ApiResponse> {
        let token = self.token().await?;
        let resp = self.api().send(method.clone(), path, body, Auth::Installation(&token)).await?;
        if resp.status != StatusCode::UNAUTHORIZED || !self.renew(&token, path).await {
            return Ok(resp);
        }
        let token = self.token().await?;
        self.api().send(method, path, body, Auth::Installation(&token)).await
    }

    /// Like [`request`](Self::request), for [`Api::download`]: a `GET` whose body is kept as
    /// bytes within `limit`.
    pub async fn download(&self, path: &str, limit: BodyLimit) -> Result<ApiDownload> {
        let token = self.token().await?;
        let download = self.api().download(path, Auth::Installation(&token), limit).await?;
        if download.response.status != StatusCode::UNAUTHORIZED || !self.renew(&token, path).await {
            return Ok(download);
        }
        let token = self.token().await?;
        self.api().download(path, Auth::Installation(&token), limit).await
    }

    async fn call<T: DeserializeOwned>(&self, method: Method, path: &str, body: Option<&Value>) -> Result<T> {
        self.request(method, path, body).await?.success()?.json()
    }

    fn repo_path(owner: &str, repo: &str) -> String {
        format!("/repos/{}/{}", segment(owner), segment(repo))
    }

    pub async fn get_repository(&self, owner: &str, repo: &str) -> Result<Repository> {
        self.call(Method::GET, &Self::repo_path(owner, repo), None).await
    }

    pub async fn get_issue(&self, owner: &str, repo: &str, number: u64) -> Result<Issue> {
        self.call(Method::GET, &format!("{}/issues/{number}", Self::repo_path(owner, repo)), None).await
    }

    /// Every comment on an issue or pull request, oldest first, following `Link: rel="next"`.
    pub async fn list_issue_comments(&self, owner: &str, repo: &str, number: u64) -> Result<Vec<IssueComment>> {
        let first =
            format!("{}/issues/{number}/comments?{}", Self::repo_path(owner, repo), query(&[("per_page", "100")]));
        self.paginate(first).await
    }

    async fn paginate<T: DeserializeOwned>(&self, first: String) -> Result<Vec<T>> {
        self.paginate_in(first, |items: Vec<T>| items).await
    }

    /// Follows `Link: rel="next"` from `first`; `items` takes each page's list out of its body
    /// (a bare array, or an object such as `{total_count, workflow_runs}`).
    async fn paginate_in<P: DeserializeOwned, T>(&self, first: String, items: impl Fn(P) -> Vec<T>) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                bail!("GitHub pagination went past {MAX_PAGES} pages; stopping");
            }
            let resp = self.request(Method::GET, &path, None).await?.success()?;
            out.append(&mut items(resp.json()?));
            next = match resp.next_link() {
                Some(link) => Some(
                    self.api()
                        .relative(&link)
                        .ok_or_else(|| anyhow!("GitHub's next page link points at another host"))?,
                ),
                None => None,
            };
        }
        Ok(out)
    }

    pub async fn create_issue_comment(&self, owner: &str, repo: &str, number: u64, body: &str) -> Result<IssueComment> {
        let path = format!("{}/issues/{number}/comments", Self::repo_path(owner, repo));
        self.call(Method::POST, &path, Some(&json!({ "body": body }))).await
    }

    pub async fn update_issue_comment(
        &self,
        owner: &str,
        repo: &str,
        comment_id: u64,
        body: &str,
    ) -> Result<IssueComment> {
        let path = format!("{}/issues/comments/{comment_id}", Self::repo_path(owner, repo));
        self.call(Method::PATCH, &path, Some(&json!({ "body": body }))).await
    }

    fn reaction_body(content: &str) -> Result<Value> {
        if !REACTIONS.contains(&content) {
            bail!("'{content}' is not a GitHub reaction (one of {})", REACTIONS.join(", "));
        }
        Ok(json!({ "content": content }))
    }

    pub async fn react_to_issue(&self, owner: &str, repo: &str, number: u64, content: &str) -> Result<Reaction> {
        let body = Self::reaction_body(content)?;
        let path = format!("{}/issues/{number}/reactions", Self::repo_path(owner, repo));
        self.call(Method::POST, &path, Some(&body)).await
    }

    pub async fn react_to_comment(&self, owner: &str, repo: &str, comment_id: u64, content: &str) -> Result<Reaction> {
        let body = Self::reaction_body(content)?;
        let path = format!("{}/issues/comments/{comment_id}/reactions", Self::repo_path(owner, repo));
        self.call(Method::POST, &path, Some(&body)).await
    }

    /// `None` when the repository has no such label.
    pub async fn get_label(&self, owner: &str, repo: &str, name: &str) -> Result<Option<Label>> {
        let path = format!("{}/labels/{}", Self::repo_path(owner, repo), segment(name));
        let resp = self.request(Method::GET, &path, None).await?;
        if resp.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        resp.success()?.json().map(Some)
    }

    pub async fn create_label(
        &self,
        owner: &str,
        repo: &str,
        name: &str,
        color: &str,
        description: &str,
    ) -> Result<Label> {
        let path = format!("{}/labels", Self::repo_path(owner, repo));
        let body = json!({ "name": name, "color": color, "description": description });
        let resp = self.request(Method::POST, &path, Some(&body)).await?;
        if resp.status == StatusCode::UNPROCESSABLE_ENTITY {
            // Someone (another worker) created it in between: use theirs.
            if let Some(existing) = self.get_label(owner, repo, name).await? {
                return Ok(existing);
            }
        }
        resp.success()?.json()
    }

    /// Creates the labels the repository lacks, so they get our colour rather than GitHub's default.
    pub async fn ensure_labels(&self, owner: &str, repo: &str, names: &[String]) -> Result<()> {
        for name in names {
            if self.get_label(owner, repo, name).await?.is_none() {
                self.create_label(owner, repo, name, DEFAULT_LABEL_COLOR, "").await?;
            }
        }
        Ok(())
    }

    /// Adds labels to an issue or pull request, creating missing ones first; returns the
    /// issue's labels afterwards.
    pub async fn add_labels(&self, owner: &str, repo: &str, number: u64, names: &[String]) -> Result<Vec<Label>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        self.ensure_labels(owner, repo, names).await?;
        let path = format!("{}/issues/{number}/labels", Self::repo_path(owner, repo));
        self.call(Method::POST, &path, Some(&json!({ "labels": names }))).await
    }

    /// Removes a label from an issue or pull request; returns the labels left. A 404 (GitHub's
    /// answer when the issue does not carry the label) is taken as done, with no labels to
    /// report; GitHub gives the same status for an issue that does not exist.
    pub async fn remove_label(&self, owner: &str, repo: &str, number: u64, name: &str) -> Result<Vec<Label>> {
        let path = format!("{}/issues/{number}/labels/{}", Self::repo_path(owner, repo), segment(name));
        let resp = self.request(Method::DELETE, &path, None).await?;
        if resp.status == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        resp.success()?.json()
    }

    /// One comment on an issue or pull request, by its id.
    pub async fn get_issue_comment(&self, owner: &str, repo: &str, comment_id: u64) -> Result<IssueComment> {
        self.call(Method::GET, &format!("{}/issues/comments/{comment_id}", Self::repo_path(owner, repo)), None).await
    }

    /// Every open issue carrying `label`, oldest first. GitHub lists pull requests as issues
    /// too; they are left out.
    pub async fn list_open_issues(&self, owner: &str, repo: &str, label: &str) -> Result<Vec<Issue>> {
        let first = format!(
            "{}/issues?{}",
            Self::repo_path(owner, repo),
            query(&[("state", "open"), ("labels", label), ("sort", "created"), ("direction", "asc"), ("per_page", "100")])
        );
        let mut issues: Vec<Issue> = self.paginate(first).await?;
        issues.retain(|i| i.pull_request.is_none());
        Ok(issues)
    }

    // ---- GitHub Actions ----

    /// Starts `workflow` (its file name or id) on `git_ref` with `inputs`. GitHub answers with
    /// the run it started when it can (`return_run_details`); `None` when it answered 204 (a
    /// server that predates run details), and the caller finds the run by its name.
    pub async fn dispatch_workflow(
        &self,
        owner: &str,
        repo: &str,
        workflow: &str,
        git_ref: &str,
        inputs: &Value,
    ) -> Result<Option<DispatchedRun>> {
        let path = format!("{}/actions/workflows/{}/dispatches", Self::repo_path(owner, repo), segment(workflow));
        let body = json!({ "ref": git_ref, "inputs": inputs, "return_run_details": true });
        let resp = self.request(Method::POST, &path, Some(&body)).await?.success()?;
        if resp.status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        Ok(Some(resp.json()?))
    }

    /// The most recent runs of one workflow started by `event`, newest first.
    pub async fn list_workflow_runs(
        &self,
        owner: &str,
        repo: &str,
        workflow: &str,
        event: &str,
        count: u32,
    ) -> Result<Vec<WorkflowRunInfo>> {
        let per_page = count.clamp(1, 100).to_string();
        let path = format!(
            "{}/actions/workflows/{}/runs?{}",
            Self::repo_path(owner, repo),
            segment(workflow),
            query(&[("event", event), ("per_page", &per_page)])
        );
        Ok(self.call::<WorkflowRunList>(Method::GET, &path, None).await?.workflow_runs)
    }

    /// Asks GitHub to cancel a run. A run that already finished (409) is not an error.
    pub async fn cancel_workflow_run(&self, owner: &str, repo: &str, run_id: u64) -> Result<()> {
        let path = format!("{}/actions/runs/{run_id}/cancel", Self::repo_path(owner, repo));
        let resp = self.request(Method::POST, &path, None).await?;
        if resp.status == StatusCode::CONFLICT {
            return Ok(());
        }
        resp.success()?;
        Ok(())
    }

    pub async fn get_workflow_run(&self, owner: &str, repo: &str, run_id: u64) -> Result<WorkflowRunInfo> {
        self.call(Method::GET, &format!("{}/actions/runs/{run_id}", Self::repo_path(owner, repo)), None).await
    }

    /// Every run of one commit (all workflows and events), newest first, across pages.
    pub async fn list_runs_for_commit(&self, owner: &str, repo: &str, head_sha: &str) -> Result<Vec<WorkflowRunInfo>> {
        let first = format!(
            "{}/actions/runs?{}",
            Self::repo_path(owner, repo),
            query(&[("head_sha", head_sha), ("per_page", "100")])
        );
        self.paginate_in(first, |r: WorkflowRunList| r.workflow_runs).await
    }

    /// The latest `count` (at most 100) runs on a branch, newest first: one page.
    pub async fn list_runs_on_branch(
        &self,
        owner: &str,
        repo: &str,
        branch: &str,
        count: u32,
    ) -> Result<Vec<WorkflowRunInfo>> {
        let per_page = count.clamp(1, 100).to_string();
        let path = format!(
            "{}/actions/runs?{}",
            Self::repo_path(owner, repo),
            query(&[("branch", branch), ("per_page", &per_page)])
        );
        Ok(self.call::<WorkflowRunList>(Method::GET, &path, None).await?.workflow_runs)
    }

    /// A run's artifacts, expired ones included; with `name`, only those called exactly that.
    pub async fn list_run_artifacts(
        &self,
        owner: &str,
        repo: &str,
        run_id: u64,
        name: Option<&str>,
    ) -> Result<Vec<Artifact>> {
        let mut params = vec![("per_page", "100")];
        if let Some(name) = name {
            params.push(("name", name));
        }
        let first = format!("{}/actions/runs/{run_id}/artifacts?{}", Self::repo_path(owner, repo), query(&params));
        let mut artifacts = self.paginate_in(first, |r: ArtifactList| r.artifacts).await?;
        // GitHub's `name` filter is the documented exact match; holding it to that costs nothing.
        if let Some(name) = name {
            artifacts.retain(|a| a.name == name);
        }
        Ok(artifacts)
    }

    /// An artifact's zip archive; `None` when GitHub says it is gone (expired or deleted: 410
    /// or 404). Bigger than `max_bytes`: an error ([`TooLarge`]), read no further.
    pub async fn download_artifact(
        &self,
        owner: &str,
        repo: &str,
        artifact_id: u64,
        max_bytes: u64,
    ) -> Result<Option<Vec<u8>>> {
        let path = format!("{}/actions/artifacts/{artifact_id}/zip", Self::repo_path(owner, repo));
        let download = self.download(&path, BodyLimit::AtMost(max_bytes)).await?;
        if matches!(download.response.status, StatusCode::GONE | StatusCode::NOT_FOUND) {
            return Ok(None);
        }
        download.response.success()?;
        Ok(Some(download.bytes))
    }

    /// The jobs of a run's latest attempt, across pages.
    pub async fn list_run_jobs(&self, owner: &str, repo: &str, run_id: u64) -> Result<Vec<Job>> {
        let first = format!(
            "{}/actions/runs/{run_id}/jobs?{}",
            Self::repo_path(owner, repo),
            query(&[("filter", "latest"), ("per_page", "100")])
        );
        self.paginate_in(first, |r: JobList| r.jobs).await
    }

    /// The end of a job's plain-text log: at most its last `tail_bytes`, cut at a line start;
    /// `None` when GitHub no longer has it
    /// (410 or 404: logs expire with the repository's retention setting).
    pub async fn job_log(&self, owner: &str, repo: &str, job_id: u64, tail_bytes: usize) -> Result<Option<LogTail>> {
        let path = format!("{}/actions/jobs/{job_id}/logs", Self::repo_path(owner, repo));
        let download = self.download(&path, BodyLimit::Tail(tail_bytes)).await?;
        if matches!(download.response.status, StatusCode::GONE | StatusCode::NOT_FOUND) {
            return Ok(None);
        }
        download.response.success()?;
        let (mut bytes, mut dropped) = (download.bytes, download.dropped);
        if dropped > 0 {
            // The cut lands mid-line (or mid-character): start at the next whole line.
            let partial = bytes.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
            bytes.drain(..partial);
            dropped += partial as u64;
        }
        Ok(Some(LogTail { text: String::from_utf8_lossy(&bytes).into_owned(), dropped }))
    }

    /// Pull requests whose head is `branch` of this repository. `state`: open, closed or all.
    pub async fn list_pulls_by_head(
        &self,
        owner: &str,
        repo: &str,
        branch: &str,
        state: &str,
    ) -> Result<Vec<PullRequestInfo>> {
        let head = format!("{owner}:{branch}");
        let path = format!(
            "{}/pulls?{}",
            Self::repo_path(owner, repo),
            query(&[("head", &head), ("state", state), ("per_page", "100")])
        );
        self.paginate(path).await
    }

    pub async fn create_pull(&self, owner: &str, repo: &str, pull: &NewPull<'_>) -> Result<PullRequestInfo> {
        let path = format!("{}/pulls", Self::repo_path(owner, repo));
        self.call(Method::POST, &path, Some(&serde_json::to_value(pull)?)).await
    }

    pub async fn update_pull(
        &self,
        owner: &str,
        repo: &str,
        number: u64,
        title: &str,
        body: &str,
    ) -> Result<PullRequestInfo> {
        let path = format!("{}/pulls/{number}", Self::repo_path(owner, repo));
        self.call(Method::PATCH, &path, Some(&json!({ "title": title, "body": body }))).await
    }

    pub async fn collaborator_permission(
        &self,
        owner: &str,
        repo: &str,
        login: &str,
    ) -> Result<CollaboratorPermission> {
        let path = format!("{}/collaborators/{}/permission", Self::repo_path(owner, repo), segment(login));
        self.call(Method::GET, &path, None).await
    }

    /// Write, maintain or admin on the repository. Fails closed: a 404 (not a collaborator), any
    /// other error status or no answer at all means no.
    pub async fn can_write(&self, owner: &str, repo: &str, login: &str) -> bool {
        match self.collaborator_permission(owner, repo, login).await {
            Ok(p) => p.grants_write(),
            Err(err) => {
                if api_status(&err) != Some(404) {
                    tracing::warn!(login, repository = %format!("{owner}/{repo}"), "permission check failed, treating as no write access: {err:#}");
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("connector request"), "connector%20request");
        assert_eq!(segment("a/b"), "a%2Fb");
        assert_eq!(segment("dependabot[bot]"), "dependabot%5Bbot%5D");
        assert_eq!(segment("plain-name_1.0~x"), "plain-name_1.0~x");
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
            ..RetryPolicy::default()
        };
        assert!(p.backoff(1) >= Duration::from_millis(100) && p.backoff(1) <= Duration::from_millis(120));
        assert!(p.backoff(2) >= Duration::from_millis(200));
        assert!(p.backoff(9) <= Duration::from_millis(420));
    }

    // octocrab's client needs a Tokio runtime to start its request buffer.
    #[tokio::test]
    async fn next_link() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "link",
            HeaderValue::from_static(
                "<https://api.github.com/repositories/1/issues/2/comments?page=3>; rel=\"next\", <https://api.github.com/repositories/1/issues/2/comments?page=9>; rel=\"last\"",
            ),
        );
        let resp = ApiResponse {
            method: Method::GET,
            path: "/x".into(),
            status: StatusCode::OK,
            headers,
            body: String::new(),
        };
        assert_eq!(resp.next_link().as_deref(), Some("https://api.github.com/repositories/1/issues/2/comments?page=3"));
        let api = Api::new("https://api.github.com").unwrap();
        assert_eq!(
            api.relative("https://api.github.com/repositories/1/issues?page=3").as_deref(),
            Some("/repositories/1/issues?page=3")
        );
        assert_eq!(api.relative("https://elsewhere.example/x"), None);
        let ghes = Api::new("https://ghe.example/api/v3").unwrap();
        assert_eq!(ghes.relative("https://ghe.example/api/v3/repos/a/b?page=2").as_deref(), Some("/repos/a/b?page=2"));
    }

    fn body_of(frames: usize, size: usize) -> http_body_util::combinators::BoxBody<bytes::Bytes, octocrab::Error> {
        use http_body_util::BodyExt;
        let chunks = (0..frames).map(move |i| {
            let chunk: Vec<u8> = (0..size).map(|j| ((i * size + j) % 251) as u8).collect();
            Ok::<_, octocrab::Error>(http_body::Frame::data(bytes::Bytes::from(chunk)))
        });
        http_body_util::StreamBody::new(futures_util::stream::iter(chunks)).boxed()
    }

    #[tokio::test]
    async fn bodies_are_read_within_their_limit() {
        let whole: Vec<u8> = (0..300 * 1000).map(|j| (j % 251) as u8).collect();
        // The tail of a long body, trimmed on the way (never more than twice the tail held).
        let (kept, dropped) = read_limited(body_of(300, 1000), BodyLimit::Tail(10_000), "/x").await.ok().unwrap();
        assert_eq!((kept.as_slice(), dropped), (&whole[290_000..], 290_000));
        let (kept, dropped) = read_limited(body_of(3, 1000), BodyLimit::Tail(10_000), "/x").await.ok().unwrap();
        assert_eq!((kept.as_slice(), dropped), (&whole[..3000], 0));
        // A body over the limit with no Content-Length is stopped while streaming.
        match read_limited(body_of(300, 1000), BodyLimit::AtMost(50_000), "/x").await {
            Err(Failure::TooLarge(e)) => assert_eq!((e.path.as_str(), e.limit), ("/x", 50_000)),
            _ => panic!("not refused"),
        }
        let (kept, _) = read_limited(body_of(50, 1000), BodyLimit::AtMost(50_000), "/x").await.ok().unwrap();
        assert_eq!(kept, &whole[..50_000]);
    }

    #[test]
    fn write_levels() {
        let p = |permission: &str, role: &str| CollaboratorPermission {
            permission: permission.into(),
            role_name: role.into(),
        };
        assert!(p("admin", "admin").grants_write());
        assert!(p("write", "maintain").grants_write());
        assert!(p("write", "write").grants_write());
        assert!(!p("read", "triage").grants_write());
        assert!(!p("read", "read").grants_write());
        assert!(!p("none", "").grants_write());
    }
}

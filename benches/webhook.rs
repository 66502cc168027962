//! Webhook intake on loopback: signed deliveries per second and answer latency (p50, p99) for
//! receivers that verify and persist each delivery before answering.
//!
//! `cargo bench --bench webhook` (knobs: BENCH_DELIVERIES, BENCH_CONCURRENCY, BENCH_SECONDS,
//! BENCH_WARMUP, BENCH_JSON=<file> to also write the results as JSON; BENCH_PEERS=factory,
//! intake or ceiling and BENCH_PAYLOADS=real or small run a part, e.g. under a profiler, without
//! touching BENCHMARKS.md). It rewrites the `## Webhook intake` section of BENCHMARKS.md.
//!
//! Each receiver is a [`Peer`]: the factory's full serve stack, the factory's intake path alone,
//! a ceiling receiver (the same server and checks, nothing stored), and a Probot app
//! (`benches/probot/server.mjs`, npm `probot` pinned there) that verifies with Probot's own
//! middleware and appends each delivery to a file before answering. Probot is skipped, with a
//! note, when node/npm are missing or `npm ci` fails. All get the same signed payloads, in the
//! same order, from the same client with the same concurrency, once with GitHub's example
//! payloads and once with small made-up ones.


mod support;
use support::{load_average, replace_section};
use anyhow::{Context, Result, ensure};
use async_trait::async_trait;
use axum::body::Bytes;
use connector_factory::config::Secret;
use connector_factory::github::route::RouteContext;
use connector_factory::server::dispatch::Dispatcher;
use connector_factory::server::webhook::{sign, verify_signature};
use connector_factory::server::{AppState, router};
use connector_factory::store::{SqliteStore, Store};
use connector_factory::worker::{JobQueue, PlaceholderPipelineHandler, PoolConfig, WorkerPool};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "bench-secret";

/// A webhook receiver under test.
#[async_trait]
trait Peer: Send {
    fn name(&self) -> &str;
    /// Starts listening on 127.0.0.1 and returns the address.
    async fn start(&mut self, secret: &str) -> Result<SocketAddr>;
    /// How many distinct deliveries the receiver has persisted.
    async fn persisted(&self) -> Result<u64>;
    async fn stop(&mut self) -> Result<()>;
    /// Waits for whatever the receiver does after answering (the factory's routing) to finish;
    /// how long that took after the last answer, if it does anything.
    async fn settle(&mut self) -> Result<Option<Duration>> {
        Ok(None)
    }
    /// Whether an answer with this status means "verified and stored".
    fn accepts(&self, status: u16) -> bool {
        status == 202
    }
}

/// The factory's own stack, as `serve` wires it: router, intake writer, dispatcher, worker pool
/// (placeholder pipeline), SQLite. `intake_only` leaves the dispatcher and the pool out, to show
/// what the HTTP + verify + persist path alone does on the same machine.
struct Factory {
    intake_only: bool,
    dir: tempfile::TempDir,
    store: Option<SqliteStore>,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pool: Option<WorkerPool>,
}

impl Factory {
    fn new(intake_only: bool) -> Result<Self> {
        Ok(Factory {
            intake_only,
            dir: tempfile::tempdir()?,
            store: None,
            stop: CancellationToken::new(),
            tasks: Vec::new(),
            pool: None,
        })
    }
}

#[async_trait]
impl Peer for Factory {
    fn name(&self) -> &str {
        if self.intake_only { "factory intake only" } else { "connector-factory" }
    }

    async fn start(&mut self, secret: &str) -> Result<SocketAddr> {
        let sqlite = SqliteStore::connect(&format!("sqlite://{}", self.dir.path().join("bench.db").display())).await?;
        let store: Arc<dyn Store> = Arc::new(sqlite.clone());
        let queue = JobQueue::new(store.clone());
        let dispatcher = Dispatcher::new(queue.clone(), RouteContext::default());
        let state = AppState::new(Secret::new(secret), store, dispatcher.waker());
        if !self.intake_only {
            self.pool = Some(WorkerPool::start(queue, Arc::new(PlaceholderPipelineHandler), PoolConfig::default()));
            self.tasks.push(tokio::spawn(dispatcher.run(self.stop.clone())));
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stop = self.stop.clone();
        self.tasks.push(tokio::spawn(async move {
            let _ = axum::serve(listener, router(state, 25 * 1024 * 1024))
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
        }));
        self.store = Some(sqlite);
        Ok(addr)
    }

    async fn persisted(&self) -> Result<u64> {
        let store = self.store.as_ref().context("not started")?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events").fetch_one(store.pool()).await?;
        Ok(u64::try_from(n)?)
    }

    /// Until every stored event is routed (the dispatcher runs on after the answers).
    async fn settle(&mut self) -> Result<Option<Duration>> {
        if self.intake_only {
            return Ok(None);
        }
        let store = self.store.as_ref().context("not started")?;
        let started = Instant::now();
        loop {
            let unrouted: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE routed_at IS NULL")
                .fetch_one(store.pool())
                .await?;
            if unrouted == 0 {
                return Ok(Some(started.elapsed()));
            }
            ensure!(started.elapsed() < Duration::from_secs(120), "{unrouted} events still unrouted after 120 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn stop(&mut self) -> Result<()> {
        self.stop.cancel();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        if let Some(pool) = self.pool.take() {
            pool.shutdown().await;
        }
        Ok(())
    }
}

/// The ceiling for any receiver in this process layout: the same HTTP server (axum on hyper, in
/// this process, sharing the CPUs with the load generator) doing the same checks (HMAC over the
/// raw body, JSON) and answering 202 without storing anything. Its rate bounds what a store,
/// however fast, could reach here.
struct VerifyOnly {
    verified: Arc<AtomicUsize>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl VerifyOnly {
    fn new() -> Self {
        VerifyOnly { verified: Arc::default(), stop: CancellationToken::new(), task: None }
    }
}

#[async_trait]
impl Peer for VerifyOnly {
    fn name(&self) -> &str {
        "verify only"
    }

    async fn start(&mut self, secret: &str) -> Result<SocketAddr> {
        use axum::http::{HeaderMap, StatusCode};
        let (secret, verified) = (Arc::new(secret.as_bytes().to_vec()), self.verified.clone());
        let app = axum::Router::new().route(
            "/webhook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let (secret, verified) = (secret.clone(), verified.clone());
                async move {
                    let sig = headers.get("x-hub-signature-256").and_then(|v| v.to_str().ok());
                    if verify_signature(&secret, &body, sig).is_err() {
                        return StatusCode::UNAUTHORIZED;
                    }
                    if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() {
                        return StatusCode::BAD_REQUEST;
                    }
                    verified.fetch_add(1, Ordering::Relaxed);
                    StatusCode::ACCEPTED
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stop = self.stop.clone();
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await;
        }));
        Ok(addr)
    }

    /// Nothing is stored: this counts verified deliveries, so the run's checks still hold.
    async fn persisted(&self) -> Result<u64> {
        Ok(self.verified.load(Ordering::Relaxed) as u64)
    }

    async fn stop(&mut self) -> Result<()> {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        Ok(())
    }
}

/// A Probot app (npm `probot`, pinned in benches/probot/package.json) on node: Probot's own
/// signature check, then an `onAny` handler that appends the delivery (id, event, payload) as one
/// JSON line to a file before the 200 goes out.
struct ProbotPeer {
    app_dir: std::path::PathBuf,
    dir: tempfile::TempDir,
    child: Option<tokio::process::Child>,
    version: String,
}

impl ProbotPeer {
    /// Installs the pinned dependencies once (`npm ci`); `None`, with a printed note, when node or
    /// npm is missing or the install fails.
    fn prepare() -> Result<Option<Self>> {
        let app_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/probot");
        let version_of = |tool: &str| {
            std::process::Command::new(tool)
                .arg("--version")
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        let (Some(node), Some(_npm)) = (version_of("node"), version_of("npm")) else {
            println!("note: node/npm not found; the Probot peer is skipped");
            return Ok(None);
        };
        let status = std::process::Command::new("npm")
            .args(["ci", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&app_dir)
            .env("NO_UPDATE_NOTIFIER", "1")
            .env("npm_config_update_notifier", "false")
            .stdout(std::process::Stdio::null())
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            println!("note: `npm ci` in {} failed; the Probot peer is skipped", app_dir.display());
            return Ok(None);
        }
        let lock: serde_json::Value = serde_json::from_slice(&std::fs::read(app_dir.join("package-lock.json"))?)?;
        let probot = lock["packages"]["node_modules/probot"]["version"].as_str().unwrap_or("?");
        Ok(Some(ProbotPeer {
            app_dir,
            dir: tempfile::tempdir()?,
            child: None,
            version: format!("probot {probot} on node {node}"),
        }))
    }

    /// Another peer like this one, with a store file of its own (a peer is started once).
    fn fresh(&self) -> Result<Self> {
        Ok(ProbotPeer { app_dir: self.app_dir.clone(), dir: tempfile::tempdir()?, child: None, version: self.version.clone() })
    }

    fn store_file(&self) -> std::path::PathBuf {
        self.dir.path().join("deliveries.jsonl")
    }
}

#[async_trait]
impl Peer for ProbotPeer {
    fn name(&self) -> &str {
        "probot"
    }

    async fn start(&mut self, secret: &str) -> Result<SocketAddr> {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new("node")
            .arg("server.mjs")
            .current_dir(&self.app_dir)
            .env("WEBHOOK_SECRET", secret)
            .env("STORE_FILE", self.store_file())
            .env("PORT", "0")
            .env("WEBHOOK_PATH", "/webhook")
            .env("NODE_ENV", "production")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting node server.mjs")?;
        let stdout = child.stdout.take().context("no stdout")?;
        self.child = Some(child);
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("the Probot peer did not listen within 30 s")??
            .context("the Probot peer exited before listening")?;
        let addr = line.strip_prefix("listening ").context("unexpected first line from the Probot peer")?;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(addr.parse()?)
    }

    /// Distinct delivery ids among the well-formed lines of the peer's file.
    async fn persisted(&self) -> Result<u64> {
        let text = tokio::fs::read_to_string(self.store_file()).await.unwrap_or_default();
        let mut ids = std::collections::HashSet::new();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line)?;
            if let (Some(id), true, true) = (v["id"].as_str(), v["event"].is_string(), v["payload"].is_object()) {
                ids.insert(id.to_string());
            }
        }
        Ok(ids.len() as u64)
    }

    async fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
            }
            if tokio::time::timeout(Duration::from_secs(5), child.wait()).await.is_err() {
                child.kill().await?;
            }
        }
        Ok(())
    }

    fn accepts(&self, status: u16) -> bool {
        status == 200
    }
}

struct Knobs {
    deliveries: usize,
    warmup: usize,
    concurrency: usize,
    max_time: Duration,
}

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Which bodies the deliveries carry. Each set alternates `issues.opened` (a connector request:
/// the Stripe request of `tests/fixtures/requests/stripe.md`, labelled `connector-request`, so
/// routing makes a job) with `issue_comment.created`.
#[derive(Clone, Copy, PartialEq)]
enum PayloadSet {
    /// GitHub's own example payloads (npm @octokit/webhooks-examples, fetched by
    /// `.ci/fetch-webhook-examples.sh`) with the request put into the issue: whole repository,
    /// user and issue objects, as GitHub sends them (about 12 KB).
    Real,
    /// Bodies made here with only the fields the factory reads (under 1 KB).
    Small,
}

impl PayloadSet {
    fn name(self) -> &'static str {
        match self {
            PayloadSet::Real => "GitHub's example payloads",
            PayloadSet::Small => "Small made-up payloads",
        }
    }
}

/// The two bodies of a set, before each delivery gets its own issue number.
struct Templates {
    issue: serde_json::Value,
    comment: serde_json::Value,
}

impl Templates {
    fn load(set: PayloadSet) -> Result<Self> {
        let request = include_str!("../tests/fixtures/requests/stripe.md");
        let (mut issue, mut comment) = match set {
            PayloadSet::Small => {
                let user = json!({"login": "octocat", "id": 1, "type": "User"});
                let repo = json!({"id": 5, "name": "connectors", "full_name": "acme/connectors"});
                let issue = json!({"number": 1, "title": "", "body": "", "user": user, "labels": [], "state": "open"});
                let comment = json!({"id": 1, "body": "Looks good, thanks!", "user": user, "author_association": "OWNER"});
                (
                    json!({"action": "opened", "issue": issue, "repository": repo, "sender": user}),
                    json!({"action": "created", "issue": issue, "comment": comment, "repository": repo, "sender": user}),
                )
            }
            PayloadSet::Real => (github_example("issues", "opened")?, github_example("issue_comment", "created")?),
        };
        for body in [&mut issue, &mut comment] {
            body["issue"]["title"] = json!("Connector request: Stripe");
            body["issue"]["body"] = json!(request);
            // The example's own label, renamed: the shape GitHub sends.
            let mut label = body["issue"]["labels"].get(0).cloned().unwrap_or_else(|| json!({}));
            label["name"] = json!("connector-request");
            body["issue"]["labels"] = json!([label]);
            // Deliveries to a GitHub App carry its installation; repository webhooks do not.
            body["installation"] = json!({"id": 1, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMQ=="});
        }
        Ok(Templates { issue, comment })
    }

    /// Signed-to-be bodies: the connector request and the comment in turn, each on issue `i + 1`.
    /// Delivery ids are `{prefix}-{i}`.
    fn payloads(&self, prefix: &str, n: usize) -> Vec<(String, &'static str, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let (event, template) = if i % 2 == 0 { ("issues", &self.issue) } else { ("issue_comment", &self.comment) };
                let mut body = template.clone();
                body["issue"]["number"] = json!(i + 1);
                if let Some(comment) = body.get_mut("comment") {
                    comment["id"] = json!(i + 1);
                }
                (format!("{prefix}-{i:08}"), event, serde_json::to_vec(&body).unwrap())
            })
            .collect()
    }
}

/// The first example of `event` with `action` for api.github.com, fetching the package first
/// when it is not cached.
fn github_example(event: &str, action: &str) -> Result<serde_json::Value> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let index = root.join(".cache/webhooks-examples/package/api.github.com/index.json");
    if !index.is_file() {
        let status = std::process::Command::new("bash").arg(root.join(".ci/fetch-webhook-examples.sh")).status()?;
        ensure!(status.success(), "fetching @octokit/webhooks-examples failed (.ci/fetch-webhook-examples.sh)");
    }
    let all: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(&index)?)?;
    all.iter()
        .filter(|e| e["name"] == event)
        .flat_map(|e| e["examples"].as_array().into_iter().flatten())
        .find(|x| x["action"] == action)
        .cloned()
        .with_context(|| format!("no {event}.{action} example in {}", index.display()))
}

struct Outcome {
    peer: String,
    sent: usize,
    accepted: usize,
    /// Persisted deliveries, warm-up ones excluded.
    persisted: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// How long after the last answer the receiver finished what it does behind the answer.
    settled: Option<Duration>,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Each delivery as the whole HTTP/1.1 request, ready to write.
type Work = Arc<Vec<Bytes>>;

/// Sends every delivery of `work` with `concurrency` requests in flight, one keep-alive HTTP/1.1
/// connection per request in flight (what a pooled client opens for that many); per request,
/// the latency and the answer's status (0 when there was none). The load generator shares the
/// CPUs with the receivers it measures, so it does as little as a client can: each request is
/// written from ready bytes in one call, and each answer's head is parsed (httparse) and its body
/// skipped, on one task per connection.
async fn blast(addr: SocketAddr, work: Work, concurrency: usize, deadline: Instant) -> Result<Vec<(Duration, u16)>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (work, next) = (work.clone(), next.clone());
        workers.spawn(async move {
            let mut answers = Vec::new();
            let mut conn: Option<Connection> = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= work.len() || Instant::now() > deadline {
                    break;
                }
                let t = Instant::now();
                let status = match send(&mut conn, addr, &work[i]).await {
                    Ok(status) => status,
                    Err(_) => {
                        conn = None;
                        0
                    }
                };
                answers.push((t.elapsed(), status));
            }
            answers
        });
    }
    let mut answers = Vec::new();
    while let Some(r) = workers.join_next().await {
        answers.extend(r?);
    }
    Ok(answers)
}

/// A keep-alive connection of the load generator and what it has read but not used yet.
struct Connection {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

/// One request on `conn`, connecting first when there is none (or the last answer closed it);
/// the answer's status.
async fn send(conn: &mut Option<Connection>, addr: SocketAddr, request: &[u8]) -> Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if conn.is_none() {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        *conn = Some(Connection { stream, buf: Vec::with_capacity(4096) });
    }
    let c = conn.as_mut().context("connected above")?;
    c.stream.write_all(request).await?;
    loop {
        if let Some((status, len, close)) = parse_answer(&c.buf)? {
            c.buf.drain(..len);
            if close {
                *conn = None;
            }
            return Ok(status);
        }
        c.buf.reserve(4096);
        ensure!(c.stream.read_buf(&mut c.buf).await? > 0, "the receiver closed the connection");
    }
}

/// A whole HTTP/1.1 answer at the start of `buf`: its status, its length in bytes and whether
/// the receiver closes the connection after it; `None` while incomplete. The body is framed by
/// Content-Length or chunked encoding (without trailers), as both servers here send it.
fn parse_answer(buf: &[u8]) -> Result<Option<(u16, usize, bool)>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut res = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head) = res.parse(buf)? else { return Ok(None) };
    let status = res.code.context("no status code")?;
    let (mut length, mut chunked, mut close) = (None, false, false);
    for h in res.headers.iter() {
        let value = std::str::from_utf8(h.value)?.trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>()?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    if !chunked {
        let end = head + length.unwrap_or(0);
        return Ok((buf.len() >= end).then_some((status, end, close)));
    }
    let mut at = head;
    loop {
        let httparse::Status::Complete((size_len, size)) = httparse::parse_chunk_size(&buf[at..])
            .map_err(|_| anyhow::anyhow!("malformed chunk size"))?
        else {
            return Ok(None);
        };
        // The chunk's data and its CRLF; after the last (empty) chunk, the final CRLF.
        at += size_len + usize::try_from(size)? + 2;
        if buf.len() < at {
            return Ok(None);
        }
        if size == 0 {
            return Ok(Some((status, at, close)));
        }
    }
}

fn signed(templates: &Templates, prefix: &str, n: usize) -> Work {
    Arc::new(
        templates
            .payloads(prefix, n)
            .into_iter()
            .map(|(id, event, body)| {
                let head = format!(
                    "POST /webhook HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nx-github-event: {event}\r\nx-github-delivery: {id}\r\n\
                     x-hub-signature-256: {}\r\n\r\n",
                    body.len(),
                    sign(SECRET.as_bytes(), &body)
                );
                Bytes::from([head.as_bytes(), &body].concat())
            })
            .collect(),
    )
}

async fn run(peer: &mut dyn Peer, knobs: &Knobs, templates: &Templates) -> Result<Outcome> {
    let addr = peer.start(SECRET).await?;
    ensure!(addr.ip().is_loopback(), "peers must listen on loopback only");
    // Warm-up (untimed, own delivery ids): connections, JIT, caches.
    let warm = blast(addr, signed(templates, "warmup", knobs.warmup), knobs.concurrency, Instant::now() + knobs.max_time).await?;
    let warm_ok = warm.iter().filter(|(_, s)| peer.accepts(*s)).count();
    let work = signed(templates, "bench", knobs.deliveries);
    let started = Instant::now();
    let answers = blast(addr, work, knobs.concurrency, started + knobs.max_time).await?;
    let elapsed = started.elapsed();
    let persisted = peer.persisted().await?.saturating_sub(warm_ok as u64);
    let settled = peer.settle().await?;
    peer.stop().await?;
    let accepted = answers.iter().filter(|(_, s)| peer.accepts(*s)).count();
    let mut latencies: Vec<Duration> = answers.iter().map(|(l, _)| *l).collect();
    latencies.sort();
    Ok(Outcome { peer: peer.name().to_string(), sent: latencies.len(), accepted, persisted, elapsed, latencies, settled })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo test --all-targets` runs this without --bench; it then must not start servers, run
    // npm or rewrite BENCHMARKS.md. A name filter that is not ours means "not me".
    if !args.iter().any(|a| a == "--bench") {
        println!("webhook benchmark: run it with `cargo bench --bench webhook`");
        return Ok(());
    }
    if args.iter().any(|a| !a.starts_with('-') && !"webhook".contains(a.as_str())) {
        return Ok(());
    }
    let knobs = Knobs {
        deliveries: knob("BENCH_DELIVERIES", 20000) as usize,
        warmup: knob("BENCH_WARMUP", 1000) as usize,
        concurrency: knob("BENCH_CONCURRENCY", 16).max(1) as usize,
        max_time: Duration::from_secs(knob("BENCH_SECONDS", 60)),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    // BENCH_PEERS=factory runs the factory's two peers alone, =intake the intake-only one, and
    // =ceiling adds the verify-only receiver (for profiling); BENCHMARKS.md is then left alone,
    // as it is with BENCH_PAYLOADS=real or =small (one set instead of both).
    let peers_knob = std::env::var("BENCH_PEERS").unwrap_or_default();
    let payloads_knob = std::env::var("BENCH_PAYLOADS").unwrap_or_default();
    let partial = ["factory", "intake", "ceiling"].contains(&peers_knob.as_str()) || !payloads_knob.is_empty();
    let probot = if partial && !peers_knob.is_empty() { None } else { ProbotPeer::prepare()? };
    let sets: Vec<PayloadSet> = match payloads_knob.as_str() {
        "real" => vec![PayloadSet::Real],
        "small" => vec![PayloadSet::Small],
        _ => vec![PayloadSet::Real, PayloadSet::Small],
    };
    let load_before = load_average();
    println!(
        "webhook intake on loopback: {} signed deliveries (+{} warm-up), {} in flight, verified and persisted before the answer",
        knobs.deliveries, knobs.warmup, knobs.concurrency
    );
    let mut tables = Vec::new();
    for set in sets {
        let templates = Templates::load(set)?;
        let sample = templates.payloads("bench", 2);
        let sizes = (sample[0].2.len(), sample[1].2.len());
        let mut peers: Vec<Box<dyn Peer>> = Vec::new();
        if peers_knob != "intake" {
            peers.push(Box::new(Factory::new(false)?));
        }
        peers.push(Box::new(Factory::new(true)?));
        if peers_knob.is_empty() || peers_knob == "ceiling" {
            peers.push(Box::new(VerifyOnly::new()));
        }
        if let Some(p) = &probot {
            peers.push(Box::new(p.fresh()?));
        }
        println!("\n{} ({} B and {} B)", set.name(), sizes.0, sizes.1);
        println!(
            "{:<20} {:>8} {:>9} {:>10} {:>12} {:>10} {:>10} {:>9}",
            "peer", "sent", "accepted", "persisted", "deliv/s", "p50", "p99", "settled"
        );
        let mut outcomes = Vec::new();
        for mut peer in peers {
            let o = runtime.block_on(run(peer.as_mut(), &knobs, &templates))?;
            // Its files go, and what it left in the page cache is written out before the next
            // peer starts: otherwise the next one would share the CPUs with that writeback.
            drop(peer);
            let _ = std::process::Command::new("sync").status();
            let (p50, p99) = (percentile(&o.latencies, 50.0), percentile(&o.latencies, 99.0));
            println!(
                "{:<20} {:>8} {:>9} {:>10} {:>12.0} {:>8.2}ms {:>8.2}ms {:>9}",
                o.peer,
                o.sent,
                o.accepted,
                o.persisted,
                o.rate(),
                ms(p50),
                ms(p99),
                o.settled.map(|d| format!("{:.2}s", d.as_secs_f64())).unwrap_or_default()
            );
            ensure!(
                o.accepted == o.sent && o.persisted as usize == o.accepted,
                "{}: not every delivery was accepted and persisted",
                o.peer
            );
            outcomes.push(o);
        }
        let table = Table { set, sizes, outcomes };
        if let Some(r) = table.ratio("connector-factory") {
            let ri = table.ratio("factory intake only").unwrap_or(0.0);
            let rc = table.ratio("verify only").unwrap_or(0.0);
            println!("throughput / probot: full stack {r:.1}x, intake only {ri:.1}x, verify only {rc:.1}x (aim: at least 10x)");
        }
        tables.push(table);
    }
    let load_after = load_average();
    if let Ok(path) = std::env::var("BENCH_JSON") {
        let results: Vec<_> = tables
            .iter()
            .flat_map(|t| t.outcomes.iter().map(move |o| (t.set, o)))
            .map(|(set, o)| {
                json!({
                    "payloads": set.name(), "peer": o.peer, "deliveries": o.sent, "accepted": o.accepted,
                    "persisted": o.persisted, "concurrency": knobs.concurrency, "seconds": o.elapsed.as_secs_f64(),
                    "per_second": o.rate(), "p50_ms": ms(percentile(&o.latencies, 50.0)),
                    "p99_ms": ms(percentile(&o.latencies, 99.0)), "settled_seconds": o.settled.map(|d| d.as_secs_f64()),
                })
            })
            .collect();
        std::fs::write(&path, serde_json::to_string_pretty(&results)?).with_context(|| format!("writing {path}"))?;
    }
    if partial {
        return Ok(());
    }
    let section = report(&tables, &knobs, probot.as_ref().map(|p| p.version.as_str()), &load_before, &load_after);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
    let existing = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".to_string());
    std::fs::write(&path, replace_section(&existing, "## Webhook intake", &section)).context("writing BENCHMARKS.md")?;
    println!("wrote the ## Webhook intake section of {}", path.display());
    Ok(())
}

/// One payload set's outcomes, every peer.
struct Table {
    set: PayloadSet,
    /// Bytes of the connector-request body and of the comment body.
    sizes: (usize, usize),
    outcomes: Vec<Outcome>,
}

impl Table {
    /// `peer`'s throughput over Probot's.
    fn ratio(&self, peer: &str) -> Option<f64> {
        let of = |name: &str| self.outcomes.iter().find(|o| o.peer == name).map(Outcome::rate);
        Some(of(peer)? / of("probot")?)
    }
}

/// The `## Webhook intake` section of BENCHMARKS.md.
fn report(tables: &[Table], knobs: &Knobs, probot: Option<&str>, load_before: &str, load_after: &str) -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let date = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    let mut out = format!(
        "## Webhook intake\n\n\
         Measured by `cargo bench --bench webhook` (release build) on {date}, {cpus} CPU(s); 1-minute load average \
         {load_before} before and {load_after} after (other work on the machine shares the CPUs, so figures move \
         between runs). Loopback HTTP/1.1, keep-alive: the load generator runs in the bench process with {conc} \
         requests in flight, each on its own connection and task, writing each request from ready bytes and \
         parsing the answer's head with httparse; the same client for every peer. {n} timed deliveries per peer \
         after {warm} untimed warm-up deliveries, signed (HMAC-SHA256, `X-Hub-Signature-256`); every peer gets \
         the same bytes, ids and order. The deliveries alternate `issues.opened` (a connector request: the Stripe \
         request of `tests/fixtures/requests/stripe.md` with the `connector-request` label, so routing makes a \
         job) and `issue_comment.created`, each on its own issue number. Latency is from send to the full answer. \
         *Settled* is how long after the last answer the factory's dispatcher had routed every stored event.\n",
        conc = knobs.concurrency,
        n = knobs.deliveries,
        warm = knobs.warmup,
    );
    for t in tables {
        let heading = match t.set {
            PayloadSet::Real => format!(
                "\n### {} ({} B and {} B)\n\nGitHub's example payloads (npm `@octokit/webhooks-examples`, api.github.com, the \
                 first `issues.opened` and `issue_comment.created`), as GitHub sends them: whole repository, user and issue \
                 objects, serialized without spaces. The request text, the label, the issue number and an `installation` \
                 (App deliveries carry one) are put in.\n\n",
                t.set.name(), t.sizes.0, t.sizes.1
            ),
            PayloadSet::Small => format!(
                "\n### {} ({} B and {} B)\n\nBodies made by the bench with only the fields the factory reads: the figures of \
                 earlier sessions were taken with these.\n\n",
                t.set.name(), t.sizes.0, t.sizes.1
            ),
        };
        out.push_str(&heading);
        out.push_str("| Receiver | Deliveries/s | p50 | p99 | sent / accepted / persisted | settled |\n|---|---|---|---|---|---|\n");
        for o in &t.outcomes {
            let what = match o.peer.as_str() {
                "probot" => format!("Peer: {}", probot.unwrap_or("probot")),
                "connector-factory" => {
                    "connector-factory, full serve stack (router, intake writer, dispatcher, worker pool, SQLite)".to_string()
                }
                "factory intake only" => {
                    "connector-factory, intake only (router, intake writer, SQLite; no dispatcher, no workers)".to_string()
                }
                _ => "Ceiling: the same HTTP server and checks, nothing stored (not a receiver GitHub could use)".to_string(),
            };
            out.push_str(&format!(
                "| {what} | {:.0} | {:.2} ms | {:.2} ms | {} / {} / {} | {} |\n",
                o.rate(),
                ms(percentile(&o.latencies, 50.0)),
                ms(percentile(&o.latencies, 99.0)),
                o.sent,
                o.accepted,
                o.persisted,
                o.settled.map(|d| format!("{:.2} s", d.as_secs_f64())).unwrap_or_else(|| "–".to_string())
            ));
        }
        match (t.ratio("connector-factory"), t.ratio("factory intake only"), t.ratio("verify only")) {
            (Some(r), Some(ri), Some(rc)) => {
                out.push_str(&format!(
                    "| Ratio to Probot (throughput) | {r:.1}x full stack, {ri:.1}x intake only, {rc:.1}x ceiling | | | | |\n\n"
                ));
                out.push_str(&if r >= 10.0 {
                    "The aim of at least 10x Probot's throughput is met with the whole stack running.\n".to_string()
                } else {
                    format!(
                        "The aim of at least 10x Probot's throughput is **not met** here: {r:.1}x with the whole stack \
                         running, {ri:.1}x for the intake path alone; a receiver that stores nothing reaches {rc:.1}x.\n"
                    )
                });
            }
            _ => out.push_str(
                "\nThe Probot peer did not run (node/npm missing or `npm ci` failed), so there is no ratio.\n",
            ),
        }
    }
    out.push_str(
        "\nWhat each receiver does before answering:\n\
         - **connector-factory** (202): body-size cap, HMAC check over the raw bytes, header checks, the envelope fields \
         (action, installation, repository) read from the JSON while the rest is checked and skipped, then the delivery \
         goes to the intake writer (group commit): a thread of its own that takes every delivery waiting, writes them \
         in one SQLite transaction (WAL, `synchronous=NORMAL`, delivery ids deduplicated, also within the batch) and \
         answers each request only after that transaction has committed. In the full-stack row the dispatcher routes \
         the stored events (a job for each connector request) and the worker pool runs the placeholder pipeline, in \
         the same process while the load runs; the placeholder finishes a job at once, so the pool works through about \
         one job per two deliveries as fast as it can, which a real pipeline (minutes per job) never asks of it. The \
         intake-only row starts neither. The load generator shares the process and the CPUs.\n\
         - **Ceiling** (202): the same axum server in the same process, HMAC check and a JSON check over the body, then \
         the answer; nothing is stored, routed or deduplicated. No receiver that persists before answering can pass \
         it here; it shows how much of the machine the HTTP side and the load generator take.\n\
         - **Probot** (200, `benches/probot/server.mjs`): Probot's `createNodeMiddleware` (@octokit/webhooks: HMAC check \
         over the raw body, JSON parse), then an `onAny` handler that checks the delivery id against an in-memory set \
         and appends one JSON line (id, event, payload) to a file with a single `write(2)` (O_APPEND, no fsync), \
         awaited before the answer. That is lighter than our transaction: no SQL, no index, no routing or workers \
         behind it, and its duplicate check is lost on restart; its durability is similar (page cache, no fsync per \
         delivery, like WAL with `synchronous=NORMAL`). Node runs one thread for JavaScript, so Probot uses one of the \
         two CPUs; fake app id, a private key generated at start and discarded, log level `warn`, Octokit's `fetch` \
         replaced by one that refuses, so nothing reaches the network.\n\
         - Counts are checked after each run: every timed delivery answered with the receiver's success status and \
         stored exactly once (factory: rows in `events`; Probot: distinct ids among the file's well-formed lines; \
         ceiling: verified deliveries).\n",
    );
    out
}

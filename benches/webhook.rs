//! Webhook intake on loopback: signed deliveries per second and answer latency (p50, p99) for
//! receivers that verify and persist each delivery before answering.
//!
//! `cargo bench --bench webhook` (knobs: BENCH_DELIVERIES, BENCH_CONCURRENCY, BENCH_SECONDS,
//! BENCH_JSON=<file> to also write the results as JSON).
//!
//! Each receiver is a [`Peer`]; the factory is the only one so far. Another implementation (a
//! Probot app, say) joins by implementing `Peer`: start it on a loopback port with the shared
//! secret, tell how many deliveries it stored, stop it.

use anyhow::{Context, Result, ensure};
use async_trait::async_trait;
use connector_factory::config::Secret;
use connector_factory::github::route::RouteContext;
use connector_factory::server::dispatch::Dispatcher;
use connector_factory::server::webhook::sign;
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
}

/// The factory's own stack, as `serve` wires it: router, dispatcher, worker pool, SQLite.
struct Factory {
    dir: tempfile::TempDir,
    store: Option<SqliteStore>,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pool: Option<WorkerPool>,
}

impl Factory {
    fn new() -> Result<Self> {
        Ok(Factory {
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
        "connector-factory"
    }

    async fn start(&mut self, secret: &str) -> Result<SocketAddr> {
        let sqlite = SqliteStore::connect(&format!("sqlite://{}", self.dir.path().join("bench.db").display())).await?;
        let store: Arc<dyn Store> = Arc::new(sqlite.clone());
        let queue = JobQueue::new(store.clone());
        self.pool = Some(WorkerPool::start(queue.clone(), Arc::new(PlaceholderPipelineHandler), PoolConfig::default()));
        let dispatcher = Dispatcher::new(queue, RouteContext::default());
        let state = AppState { webhook_secret: Secret::new(secret), store, intake: dispatcher.waker() };
        self.tasks.push(tokio::spawn(dispatcher.run(self.stop.clone())));
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

struct Knobs {
    deliveries: usize,
    concurrency: usize,
    max_time: Duration,
}

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Signed bodies alternating between a connector request and a plain comment, so routing does
/// real work (jobs for half of them) while intake is measured.
fn payloads(n: usize) -> Vec<(String, &'static str, Vec<u8>)> {
    let request = include_str!("../tests/fixtures/requests/stripe.md");
    (0..n)
        .map(|i| {
            let user = json!({"login": "octocat", "id": 1, "type": "User"});
            let repo = json!({"id": 5, "name": "connectors", "full_name": "acme/connectors"});
            let issue = json!({
                "number": i + 1, "title": "Connector request: Stripe", "body": request, "user": user,
                "labels": [{"name": "connector-request"}], "state": "open",
            });
            let (event, body) = if i % 2 == 0 {
                ("issues", json!({"action": "opened", "issue": issue, "repository": repo, "sender": user, "installation": {"id": 1}}))
            } else {
                let comment = json!({"id": i, "body": "Looks good, thanks!", "user": user, "author_association": "OWNER"});
                ("issue_comment", json!({"action": "created", "issue": issue, "comment": comment, "repository": repo, "sender": user, "installation": {"id": 1}}))
            };
            (format!("bench-{i:08}"), event, serde_json::to_vec(&body).unwrap())
        })
        .collect()
}

struct Outcome {
    peer: String,
    sent: usize,
    accepted: usize,
    persisted: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn run(peer: &mut dyn Peer, knobs: &Knobs) -> Result<Outcome> {
    let addr = peer.start(SECRET).await?;
    ensure!(addr.ip().is_loopback(), "peers must listen on loopback only");
    let url = format!("http://{addr}/webhook");
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build()?;
    let work = Arc::new(
        payloads(knobs.deliveries)
            .into_iter()
            .map(|(id, event, body)| (id, event, sign(SECRET.as_bytes(), &body), body))
            .collect::<Vec<_>>(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + knobs.max_time;
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..knobs.concurrency {
        let (client, url, work, next) = (client.clone(), url.clone(), work.clone(), next.clone());
        workers.spawn(async move {
            let mut latencies = Vec::new();
            let mut accepted = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= work.len() || Instant::now() > deadline {
                    break;
                }
                let (id, event, sig, body) = &work[i];
                let t = Instant::now();
                let res = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-github-event", *event)
                    .header("x-github-delivery", id)
                    .header("x-hub-signature-256", sig)
                    .body(body.clone())
                    .send()
                    .await;
                latencies.push(t.elapsed());
                if matches!(&res, Ok(r) if r.status() == 202) {
                    accepted += 1;
                }
            }
            (latencies, accepted)
        });
    }
    let mut latencies = Vec::new();
    let mut accepted = 0;
    while let Some(r) = workers.join_next().await {
        let (l, a) = r?;
        latencies.extend(l);
        accepted += a;
    }
    let elapsed = started.elapsed();
    let persisted = peer.persisted().await?;
    peer.stop().await?;
    latencies.sort();
    Ok(Outcome { peer: peer.name().to_string(), sent: latencies.len(), accepted, persisted, elapsed, latencies })
}

fn main() -> Result<()> {
    let knobs = Knobs {
        deliveries: knob("BENCH_DELIVERIES", 2000) as usize,
        concurrency: knob("BENCH_CONCURRENCY", 16).max(1) as usize,
        max_time: Duration::from_secs(knob("BENCH_SECONDS", 60)),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut peers: Vec<Box<dyn Peer>> = vec![Box::new(Factory::new()?)];
    let mut results = Vec::new();
    println!(
        "webhook intake on loopback: {} signed deliveries, {} in flight, verified and persisted before the answer",
        knobs.deliveries, knobs.concurrency
    );
    println!(
        "{:<20} {:>8} {:>9} {:>10} {:>12} {:>10} {:>10}",
        "peer", "sent", "accepted", "persisted", "deliv/s", "p50", "p99"
    );
    for peer in peers.iter_mut() {
        let o = runtime.block_on(run(peer.as_mut(), &knobs))?;
        let rate = o.sent as f64 / o.elapsed.as_secs_f64();
        let (p50, p99) = (percentile(&o.latencies, 50.0), percentile(&o.latencies, 99.0));
        println!(
            "{:<20} {:>8} {:>9} {:>10} {:>12.0} {:>8.2}ms {:>8.2}ms",
            o.peer,
            o.sent,
            o.accepted,
            o.persisted,
            rate,
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
        ensure!(
            o.accepted == o.sent && o.persisted as usize == o.accepted,
            "{}: not every delivery was accepted and persisted",
            o.peer
        );
        results.push(json!({
            "peer": o.peer, "deliveries": o.sent, "accepted": o.accepted, "persisted": o.persisted,
            "concurrency": knobs.concurrency, "seconds": o.elapsed.as_secs_f64(), "per_second": rate,
            "p50_ms": p50.as_secs_f64() * 1e3, "p99_ms": p99.as_secs_f64() * 1e3,
        }));
    }
    if let Ok(path) = std::env::var("BENCH_JSON") {
        std::fs::write(&path, serde_json::to_string_pretty(&results)?).with_context(|| format!("writing {path}"))?;
    }
    Ok(())
}

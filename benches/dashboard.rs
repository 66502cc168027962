//! The sessions dashboard with 10,000 jobs in the store: time to answer each page through the
//! router (store queries, HTML rendering, escaping and redaction), against the peer measured in
//! the same run: the same page's store reads alone, serialized to JSON (what a bare JSON API
//! would do). Rewrites the `## Dashboard` section of BENCHMARKS.md.
//!
//! `cargo bench --bench dashboard` (DASHBOARD_BENCH_JOBS, DASHBOARD_BENCH_ROUNDS).


mod support;
use support::replace_section;
use axum::body::{Body, to_bytes};
use axum::http::Request;
use connector_factory::server::dashboard::{self, DashboardState};
use connector_factory::store::{Finish, JobFilter, JobId, JobKind, NewJob, SqliteStore, Store};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[i]
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("dashboard benchmark: run it with `cargo bench --bench dashboard`");
        return;
    }
    if args.iter().any(|a| !a.starts_with('-') && !"dashboard".contains(a.as_str())) {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let jobs = env_num("DASHBOARD_BENCH_JOBS", 10_000);
    let rounds = env_num("DASHBOARD_BENCH_ROUNDS", 200);
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&format!("sqlite://{}", dir.path().join("bench.db").display())).await.unwrap();
    let transcript = "### Turn\n\n**assistant** wrote `schemas/clients.json` and ran `spec_test`.\n\n".repeat(400);
    let filled = Instant::now();
    // Claims take the oldest queued job, so the queued tenth is added after the finished ones.
    let mut with_transcript = None;
    let queued = jobs / 10;
    for i in 0..jobs {
        let kind = [JobKind::Generate, JobKind::Retry, JobKind::CiFinished, JobKind::Status][i % 4];
        let payload = json!({"issue": {"number": i, "title": format!("Connector request: API {i}")}, "requested_by": "maya", "delivery": format!("d-{i}")});
        let id = store.enqueue(&NewJob::new(kind, "acme/connectors", Some(i as i64), payload)).await.unwrap().job_id();
        if i >= jobs - queued {
            continue; // the newest tenth stays queued
        }
        let c = store.claim("bench", Duration::from_secs(600)).await.unwrap().unwrap();
        assert_eq!(c.job.id, id, "only the newest job is claimable here");
        let n = id.0 as usize;
        let long = n % 100 == 1;
        if long && with_transcript.is_none() && n > 100 {
            with_transcript = Some(id.0);
        }
        let result = json!({
            "verdict": "pr_opened", "branch": format!("connector/api-{n}"),
            "pr": {"number": 10_000 + n, "url": format!("https://github.com/acme/connectors/pull/{}", 10_000 + n), "head": "x", "state": "open", "draft": false},
            "usage": {"input_tokens": 20_000 + n, "output_tokens": 4_000, "cost_usd": 0.12},
            "transcript": if long { Some(transcript.clone()) } else { None },
        });
        let finish = if n.is_multiple_of(7) {
            Finish::Failed { error: "spec tests failed".into(), result: Some(result) }
        } else {
            Finish::Succeeded { result }
        };
        store.finish(&c.lease, &finish).await.unwrap();
    }
    let fill_seconds = filled.elapsed().as_secs_f64();
    let store: Arc<dyn Store> = Arc::new(store);
    let app = dashboard::router(DashboardState { store: store.clone(), token: None, web_url: "https://github.com".into() });
    let detail_id = with_transcript.expect("a job with a long transcript");

    let pages: [(&str, String); 4] = [
        ("list, newest 100", "/dashboard".into()),
        ("list, failed only", "/dashboard?state=failed".into()),
        ("list, page 50 (older than job 5000)", "/dashboard?before=5000".into()),
        ("one session with a 40 KB transcript", format!("/dashboard/jobs/{detail_id}")),
    ];
    let mut rows = String::new();
    let mut worst_p99: f64 = 0.0;
    let mut worst_p50: f64 = 0.0;
    for (label, uri) in &pages {
        let mut page_ms = Vec::new();
        let mut peer_ms = Vec::new();
        let mut bytes = 0;
        for _ in 0..rounds {
            let t = Instant::now();
            let resp = app.clone().oneshot(Request::get(uri.as_str()).body(Body::empty()).unwrap()).await.unwrap();
            assert!(resp.status().is_success(), "{uri}: {}", resp.status());
            bytes = to_bytes(resp.into_body(), 1 << 24).await.unwrap().len();
            page_ms.push(t.elapsed().as_secs_f64() * 1000.0);

            // The peer: the same reads, as JSON.
            let t = Instant::now();
            let json = if uri.contains("/jobs/") {
                serde_json::to_vec(&store.get_job(JobId(detail_id)).await.unwrap()).unwrap()
            } else {
                let filter = JobFilter {
                    states: if uri.contains("failed") { vec![connector_factory::store::JobState::Failed] } else { vec![] },
                    before: uri.contains("before").then_some(JobId(5000)),
                    ..JobFilter::default()
                };
                let (list, counts) = tokio::join!(store.list_jobs(&filter), store.job_counts());
                serde_json::to_vec(&(list.unwrap(), counts.unwrap().len())).unwrap()
            };
            std::hint::black_box(json);
            peer_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let (p50, p99) = (percentile(&mut page_ms, 0.5), percentile(&mut page_ms, 0.99));
        let peer = percentile(&mut peer_ms, 0.5);
        worst_p99 = worst_p99.max(p99);
        worst_p50 = worst_p50.max(p50);
        rows.push_str(&format!(
            "| {label} | {p50:.2} ms | {p99:.2} ms | {peer:.2} ms | {:.1}x | {} KB |\n",
            p50 / peer,
            bytes / 1024
        ));
    }
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let date = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    let section = format!(
        "## Dashboard\n\n\
         Measured by `cargo bench --bench dashboard` (release build) on {date}, {cpus} CPU(s): {jobs} jobs in a SQLite \
         store (filled in {fill_seconds:.1} s; the newest tenth queued, one in seven failed, one in a hundred with a 40 KB \
         transcript), {rounds} requests per page through the router in process (no network). The peer, measured in the \
         same run, is the same page's store reads alone, serialized as JSON.\n\n\
         | Page | p50 | p99 | Peer p50 (store reads + JSON) | Page / peer | Size |\n|---|---|---|---|---|---|\n{rows}\n\
         Target: pages render under 50 ms with 10,000 jobs. Worst median here: {worst_p50:.2} ms (target **{}**); \
         worst p99: {worst_p99:.2} ms ({}). The p99 column moves with whatever else runs on the 2 CPUs.\n",
        if worst_p50 < 50.0 { "met" } else { "not met" },
        if worst_p99 < 50.0 { "also under 50 ms" } else { "over 50 ms" }
    );
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
    let existing = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
    std::fs::write(&path, replace_section(&existing, "## Dashboard", &section)).unwrap();
    println!("{section}");
}


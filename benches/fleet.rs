//! A fleet of connector requests end to end: N request issues (distinct connectors) opened on
//! the fake GitHub, their signed `issues` webhooks delivered through the real router, and the
//! app (SQLite store, dispatcher, worker pool at concurrency C running `PipelineHandler` with
//! `GitHubPlatform`) building every connector with the LLM agent against the scripted fake LLM
//! (a fixed latency per answer), cloning from and pushing to a local bare repository, and
//! opening one pull request per request. Every generate job's `timings` are read back from the
//! store: total, model, spec tests and the bot's own overhead (the rest), per phase.
//!
//! The peer, measured in the same run, is the git work a plain script would do for a sample of
//! the same connectors with the `git` command line: a shallow clone of the default branch, the
//! same generated folder added, a commit, a push to a new branch. It runs one at a time while the
//! fleet runs (the same load as the bot's), then one at a time and C at once after it.
//!
//! `cargo bench --bench fleet` (FLEET_BENCH_REQUESTS, default 200; FLEET_BENCH_CONCURRENCY,
//! default 10; FLEET_BENCH_MODEL_MS, the fake model's latency per answer, default 300;
//! FLEET_BENCH_PEER_SAMPLE, default 20; FLEET_BENCH_TIMEOUT_SECS bounds the wait for the fleet).
//! Rewrites the `## Fleet: requests end to end` section of BENCHMARKS.md, unless a request did
//! not end with its pull request: then it says which and exits with status 1.

mod support;
#[path = "../tests/support/mod.rs"]
mod test_support;

use axum::http::StatusCode;
use connector_factory::pipeline::generate::Timings;
use connector_factory::spectest::SuiteOptions;
use connector_factory::store::{Job, JobFilter, JobKind, JobState};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{load_average, replace_section};
use test_support::app::{App, AppOptions, REPO, request_body};
use test_support::fake_llm::{API_KEY, FakeLlm};

const HEADING: &str = "## Fleet: requests end to end";
const MODEL: &str = "claude-sonnet-4-5-20250929";
/// Every `git` command of the peer is bounded by this.
const GIT_WAIT: Duration = Duration::from_secs(60);

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo test --all-targets` runs benches without --bench: this one (minutes long, and it
    // rewrites BENCHMARKS.md) must not run then. A name filter that is not ours means "not me".
    if !args.iter().any(|a| a == "--bench") {
        println!("fleet benchmark: run it with `cargo bench --bench fleet`");
        return;
    }
    if args.iter().any(|a| !a.starts_with('-') && !"fleet".contains(a.as_str())) {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let code = runtime.block_on(run());
    runtime.shutdown_timeout(Duration::from_secs(5));
    std::process::exit(code);
}

/// One answer of the fake model: the tool calls `calls` (id, name, input), after `delay_ms`,
/// checking that the previous answer's calls came back with results containing `expect`.
fn step(n: usize, delay_ms: u64, calls: &[(&str, &str, Value)], expect: &[(&str, &str)]) -> Value {
    let content: Vec<Value> =
        calls.iter().map(|(id, name, input)| json!({"type": "tool_use", "id": id, "name": name, "input": input})).collect();
    let expect: serde_json::Map<String, Value> =
        expect.iter().map(|(id, text)| (id.to_string(), json!({"is_error": false, "contains": text}))).collect();
    json!({
        "headers": {}, "status": 200, "delay_ms": delay_ms,
        "expect": {"tool_results": expect},
        "body": {
            "id": format!("msg_fleet_{n}"), "type": "message", "role": "assistant", "model": MODEL,
            "content": content, "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 9000 + 1500 * n, "output_tokens": OUTPUT_TOKENS, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        }
    })
}

/// Output tokens the fake model reports per answer, so a job's usage tells how many it got.
const OUTPUT_TOKENS: u64 = 200;

/// What every session does: a first draft with the builtin generator, validate, spec_test,
/// finish; four answers of the model. Under load a spec-test run can fail (a scenario past its
/// wall-clock limit), and `finish` is then refused after running the suite again; the model
/// asks to finish up to twice more, as a model would, and the report counts such sessions.
fn script(delay_ms: u64) -> Value {
    let finish = |n: usize| {
        let summary = "Clients, drafted by the builtin generator, validated and spec-tested.";
        let id = format!("toolu_fleet_finish{n}");
        step(n, delay_ms, &[(id.as_str(), "finish", json!({"summary": summary}))], &[])
    };
    let steps = vec![
        step(1, delay_ms, &[("toolu_fleet_generate", "generate_from_openapi", json!({"streams": ["clients"]}))], &[]),
        step(2, delay_ms, &[("toolu_fleet_validate", "validate", json!({}))], &[("toolu_fleet_generate", "generated 1 stream")]),
        step(3, delay_ms, &[("toolu_fleet_spec", "spec_test", json!({}))], &[("toolu_fleet_validate", "validate passed")]),
        finish(4),
        finish(5),
        finish(6),
    ];
    json!({"wire": "anthropic", "model": MODEL, "steps": steps})
}

/// Nearest-rank percentile (`p` in 0..=1) of `values`; NaN when empty.
fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn median(values: &[f64]) -> f64 {
    percentile(values, 0.5)
}

fn secs(a: chrono::DateTime<chrono::Utc>, b: chrono::DateTime<chrono::Utc>) -> f64 {
    (b - a).num_milliseconds() as f64 / 1000.0
}

/// What one generate job's result says about its time.
struct Measured {
    slug: String,
    timings: Timings,
    /// The pipeline's own spec-test run (its report's duration); the rest of `spec_test_seconds`
    /// is the agent's `spec_test` call, made while generating.
    pipeline_spec: f64,
    queue_wait: f64,
    created_to_finished: f64,
    /// How many answers the model gave (4 unless `finish` was refused).
    answers: u64,
    /// Whether the pipeline's own checks passed (else the PR is a draft).
    checks_passed: bool,
    /// Seconds in each tool of the agent's session, from its transcript.
    tools: BTreeMap<String, f64>,
    /// How many times a worker claimed the job (more than once after a lost lease).
    claims: u32,
}

/// Seconds per tool from a session transcript's Markdown, whose results read
/// ``← `name` (12 ms)`` (with ` **error**` after the name for a refused call).
fn tool_seconds(transcript: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in transcript.lines() {
        let Some(rest) = line.strip_prefix("← `") else { continue };
        let Some((name, tail)) = rest.split_once('`') else { continue };
        let ms = tail.rsplit_once('(').and_then(|(_, t)| t.strip_suffix(" ms)")).and_then(|t| t.trim().parse::<f64>().ok());
        if let Some(ms) = ms {
            *out.entry(name.to_string()).or_default() += ms / 1000.0;
        }
    }
    out
}

async fn run() -> i32 {
    let n = env_num("FLEET_BENCH_REQUESTS", 200).max(1) as usize;
    let concurrency = env_num("FLEET_BENCH_CONCURRENCY", 10).max(1) as usize;
    let model_ms = env_num("FLEET_BENCH_MODEL_MS", 300);
    let peer_sample = (env_num("FLEET_BENCH_PEER_SAMPLE", 20).max(1) as usize).min(n);
    // Generous: on 2 CPUs a connector with its two spec-test runs takes tens of seconds of CPU.
    let timeout = Duration::from_secs(env_num("FLEET_BENCH_TIMEOUT_SECS", 600 + (n as u64 * 60) / concurrency as u64));
    let cpus = std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1);
    let load_before = load_average();

    let llm = FakeLlm::start_per_conversation(script(model_ms), timeout + Duration::from_secs(60)).await;
    let app = App::start_with(AppOptions {
        pool: None, // from FACTORY_CONCURRENCY, as `serve` does
        env: vec![
            ("FACTORY_CONCURRENCY", concurrency.to_string()),
            ("ANTHROPIC_API_KEY", API_KEY.to_string()),
            ("FACTORY_LLM_BASE_URL", llm.base_url.clone()),
            ("FACTORY_LLM_MODEL", MODEL.to_string()),
        ],
        // What `serve` runs: the whole suite.
        spec_tests: SuiteOptions::default(),
        // GitHub checks nothing of ours on our CPUs; the fake's schema checks would.
        check_schemas: false,
        executor: connector_factory::pipeline::Executor::Local,
    })
    .await;
    assert_eq!(app.settings.concurrency, concurrency);
    let openapi = format!("{}/tidepool-bookings.openapi.yaml", app.files.base);
    println!("fleet: {n} requests, concurrency {concurrency}, model latency {model_ms} ms per answer, {cpus} CPU(s)");

    // The requests: distinct names, so distinct folders, branches and pull requests.
    let names: Vec<String> = (1..=n).map(|i| format!("Tidepool Bookings {i:03}")).collect();
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    for name in &names {
        let body = request_body(name, &openapi, "clients");
        let (_, event) = app.open_request(&format!("Connector request: {name}"), &body, "maya");
        let status = app.deliver("issues", &event).await;
        assert_eq!(status, StatusCode::ACCEPTED, "the webhook for {name} was not accepted");
    }
    let delivered = started.elapsed().as_secs_f64();
    println!("fleet: {n} webhooks delivered in {delivered:.2} s");

    // The peer's first part runs while the fleet does, under the same load.
    let (waited, during) = tokio::join!(wait_for_jobs(&app, n, timeout), peer_during(&app, n, peer_sample, timeout));
    if let Err(why) = waited {
        eprintln!("fleet: FAILED: {why}");
        return 1;
    }
    let jobs = app.jobs_up_to((n + 100) as u32).await;
    let (measured, problems) = check(&app, &llm, &jobs, &names);
    if !problems.is_empty() {
        eprintln!("fleet: FAILED, {} problem(s):", problems.len());
        for p in problems.iter().take(50) {
            eprintln!("  - {p}");
        }
        return 1;
    }
    let last_finished = jobs.iter().filter_map(|j| j.finished_at).max().expect("finished jobs");
    let wall = secs(started_at, last_finished);
    println!("fleet: all {n} requests ended with their pull request in {wall:.1} s");

    // The rest of the peer: the same connectors' git work again, on a machine the fleet has left.
    let peer = match async { peer_after(&app, during?, concurrency).await }.await {
        Ok(p) => p,
        Err(why) => {
            eprintln!("fleet: FAILED: the git peer: {why:#}");
            return 1;
        }
    };
    let load_after = load_average();

    let section = report(&Report { n, concurrency, model_ms, cpus, load_before, load_after, wall, delivered, measured: &measured, peer });
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
    let existing = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
    std::fs::write(&path, replace_section(&existing, HEADING, &section)).unwrap();
    println!("{section}");
    let mut app = app;
    if let Some(pool) = app.pool.take() {
        let _ = tokio::time::timeout(Duration::from_secs(10), pool.shutdown()).await;
    }
    0
}

/// Waits until `n` jobs exist and none is queued or running, saying how far it got now and
/// then; an error after `timeout`.
async fn wait_for_jobs(app: &App, n: usize, timeout: Duration) -> Result<(), String> {
    let started = Instant::now();
    let mut said = Instant::now();
    loop {
        let counts = app.store.job_counts().await.map_err(|e| format!("{e:#}"))?;
        let count = |wanted: &[JobState]| -> u64 { counts.iter().filter(|(s, _)| wanted.contains(s)).map(|(_, c)| c).sum() };
        let open = count(&[JobState::Queued, JobState::Running]);
        let total: u64 = counts.iter().map(|(_, c)| c).sum();
        if total >= n as u64 && open == 0 {
            return Ok(());
        }
        if started.elapsed() > timeout {
            return Err(format!("the jobs did not finish within {timeout:?}: {counts:?}"));
        }
        if said.elapsed() >= Duration::from_secs(15) {
            println!("fleet: {:.0} s: {} finished, {} running, {} queued", started.elapsed().as_secs_f64(), total - open, count(&[JobState::Running]), count(&[JobState::Queued]));
            said = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every request must have ended with its pull request: one succeeded generate job each, a PR
/// on the fake for each `connector/<slug>` branch and no other, the branch in the bare
/// repository, and a fake LLM that saw nothing wrong.
fn check(app: &App, llm: &FakeLlm, jobs: &[Job], names: &[String]) -> (Vec<Measured>, Vec<String>) {
    let mut problems = Vec::new();
    let mut measured = Vec::new();
    let generate: Vec<&Job> = jobs.iter().filter(|j| j.kind == JobKind::Generate).collect();
    if generate.len() != names.len() || jobs.len() != names.len() {
        problems.push(format!("{} jobs, {} of them generate jobs, for {} requests", jobs.len(), generate.len(), names.len()));
    }
    let expected: BTreeSet<String> = names.iter().map(|n| connector_factory::registry::slug(n)).collect();
    for job in &generate {
        let result = job.result.clone().unwrap_or(Value::Null);
        let slug = result["branch"].as_str().unwrap_or_default().trim_start_matches("connector/").to_string();
        if job.state != JobState::Succeeded || result["verdict"] != "pr_opened" || !result["pr"]["number"].is_u64() {
            problems.push(format!(
                "job {} (issue {:?}) ended {:?} with verdict {} and no pull request: {}",
                job.id, job.issue_number, job.state, result["verdict"], job.error.as_deref().unwrap_or_default()
            ));
            continue;
        }
        let timings: Timings = match serde_json::from_value(result["timings"].clone()) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("job {}: no timings in its result ({e})", job.id));
                continue;
            }
        };
        let (Some(claimed), Some(finished)) = (job.started_at, job.finished_at) else {
            problems.push(format!("job {} has no start or finish time", job.id));
            continue;
        };
        // A report taken over from the agent's passing run cost the pipeline nothing to make.
        let pipeline_spec = if timings.spec_report_reused {
            0.0
        } else {
            result["spec_report"]["implementations"][0]["duration_seconds"].as_f64().unwrap_or(0.0)
        };
        measured.push(Measured {
            slug,
            timings,
            pipeline_spec,
            queue_wait: secs(job.created_at, claimed),
            created_to_finished: secs(job.created_at, finished),
            answers: result["usage"]["output_tokens"].as_u64().unwrap_or(0) / OUTPUT_TOKENS,
            checks_passed: result["checks_passed"] == true,
            tools: tool_seconds(result["transcript"].as_str().unwrap_or_default()),
            claims: job.attempts,
        });
    }
    let pulls = app.fake.pulls(REPO);
    let heads: BTreeSet<String> = pulls.iter().map(|p| p.head.trim_start_matches("connector/").to_string()).collect();
    if pulls.len() != names.len() || heads != expected {
        let missing: Vec<&String> = expected.difference(&heads).take(10).collect();
        let extra: Vec<&String> = heads.difference(&expected).take(10).collect();
        problems.push(format!(
            "{} pull requests for {} requests; missing (first 10): {missing:?}; unexpected: {extra:?}",
            pulls.len(),
            names.len()
        ));
    }
    for slug in &expected {
        if app.bare.tip(&format!("connector/{slug}")).is_none() {
            problems.push(format!("connector/{slug} was not pushed"));
        }
    }
    let measured_slugs: BTreeSet<&String> = measured.iter().map(|m| &m.slug).collect();
    if measured_slugs.len() != measured.len() {
        problems.push("two jobs built the same connector".into());
    }
    problems.extend(llm.problems().into_iter().take(20).map(|p| format!("fake LLM: {p}")));
    measured.sort_by(|a, b| a.slug.cmp(&b.slug));
    (measured, problems)
}

/// The git command line's times for the same connectors, in seconds.
struct Peer {
    slugs: Vec<String>,
    /// One at a time while the fleet ran, and how many of those runs had jobs running throughout.
    during: Vec<f64>,
    during_under_load: usize,
    /// One at a time after the fleet.
    sequential: Vec<f64>,
    /// `concurrency` at once after the fleet, and the wall time of that batch.
    concurrent: Vec<f64>,
    concurrent_wall: f64,
}

/// Once `sample` connectors are pushed, their git work with the command line (see
/// [`git_script`]) one at a time, while the rest of the fleet runs.
async fn peer_during(app: &App, n: usize, sample: usize, timeout: Duration) -> anyhow::Result<Peer> {
    let until = Instant::now() + timeout;
    let slugs: Vec<String> = loop {
        let filter = JobFilter {
            states: vec![JobState::Succeeded],
            kinds: vec![JobKind::Generate],
            limit: Some(sample as u32),
            ..JobFilter::default()
        };
        let done = app.store.list_jobs(&filter).await?;
        if done.len() >= sample {
            let branches = done.iter().filter_map(|j| j.result.as_ref()?["branch"].as_str().map(str::to_string));
            break branches.map(|b| b.trim_start_matches("connector/").to_string()).collect();
        }
        let counts = app.store.job_counts().await?;
        let total: u64 = counts.iter().map(|(_, c)| c).sum();
        let open = counts.iter().any(|(s, c)| matches!(s, JobState::Queued | JobState::Running) && *c > 0);
        anyhow::ensure!(total < n as u64 || open, "the fleet ended with {} connectors, fewer than the peer's sample", done.len());
        anyhow::ensure!(Instant::now() < until, "fewer than {sample} connectors were done within {timeout:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let root = app.tmp.path().join("peer");
    // The generated folders, as the bot pushed them (not timed).
    for slug in &slugs {
        export_folder(app, slug, &root.join("folders").join(slug))?;
    }
    let (url, mut during, mut during_under_load) = (app.bare.url(), Vec::new(), 0);
    let running = || async { app.store.job_counts().await.map(|c| c.iter().any(|(s, c)| *s == JobState::Running && *c > 0)) };
    for slug in &slugs {
        let before = running().await?;
        during.push(git_script(&url, &root, slug, "peer-during").await?);
        during_under_load += usize::from(before && running().await?);
    }
    Ok(Peer { slugs, during, during_under_load, sequential: vec![], concurrent: vec![], concurrent_wall: 0.0 })
}

/// The same connectors' git work after the fleet: one at a time, then `concurrency` at once.
async fn peer_after(app: &App, mut peer: Peer, concurrency: usize) -> anyhow::Result<Peer> {
    let root = app.tmp.path().join("peer");
    let url = app.bare.url();
    for slug in &peer.slugs {
        peer.sequential.push(git_script(&url, &root, slug, "peer-after").await?);
    }
    let gate = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for slug in &peer.slugs {
        let (url, root, slug, gate) = (url.clone(), root.clone(), slug.clone(), gate.clone());
        tasks.spawn(async move {
            let _turn = gate.acquire_owned().await?;
            git_script(&url, &root, &slug, "peer-concurrent").await
        });
    }
    while let Some(done) = tasks.join_next().await {
        peer.concurrent.push(done??);
    }
    peer.concurrent_wall = started.elapsed().as_secs_f64();
    Ok(peer)
}

/// Writes `registry/<slug>` of the bare repository's `connector/<slug>` into `dest`.
fn export_folder(app: &App, slug: &str, dest: &Path) -> anyhow::Result<()> {
    let repo = &app.bare.repo;
    let tip = app.bare.tip(&format!("connector/{slug}")).ok_or_else(|| anyhow::anyhow!("no branch for {slug}"))?;
    let tree = repo.find_commit(tip)?.tree()?;
    let folder = tree.get_path(Path::new(&format!("registry/{slug}")))?.to_object(repo)?.peel_to_tree()?;
    let mut failed = None;
    folder.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        if entry.kind() == Some(git2::ObjectType::Blob) {
            let path = dest.join(dir).join(entry.name().unwrap_or_default());
            let written = repo.find_blob(entry.id()).map_err(anyhow::Error::from).and_then(|blob| {
                std::fs::create_dir_all(path.parent().unwrap())?;
                std::fs::write(&path, blob.content())?;
                Ok(())
            });
            if let Err(e) = written {
                failed = Some(e);
                return git2::TreeWalkResult::Abort;
            }
        }
        git2::TreeWalkResult::Ok
    })?;
    failed.map_or(Ok(()), Err)
}

/// One connector's git work as a plain script would do it with the command line: a shallow
/// clone of the default branch, the generated folder copied in, `git add`, `git commit`, `git
/// push` to a new branch (`<prefix>/<slug>`). Its wall time in seconds.
async fn git_script(url: &str, root: &Path, slug: &str, prefix: &str) -> anyhow::Result<f64> {
    let work = root.join(prefix).join(slug);
    let folder = root.join("folders").join(slug);
    let started = Instant::now();
    git(root, &["clone", "--quiet", "--depth", "1", "--single-branch", "--branch", "main", url, &work.display().to_string()]).await?;
    run_bounded(
        tokio::process::Command::new("cp").arg("-R").arg(&folder).arg(work.join("registry").join(slug)),
        "cp",
    )
    .await?;
    git(&work, &["add", "--", &format!("registry/{slug}")]).await?;
    git(&work, &["commit", "--quiet", "-m", &format!("Add the {slug} connector")]).await?;
    git(&work, &["push", "--quiet", "origin", &format!("HEAD:refs/heads/{prefix}/{slug}")]).await?;
    Ok(started.elapsed().as_secs_f64())
}

async fn git(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let mut cmd = tokio::process::Command::new("git");
    cmd.current_dir(dir)
        .args(["-c", "user.name=Peer Script", "-c", "user.email=peer@example.com"])
        .args(args)
        // A plain git: no system or personal configuration.
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    run_bounded(&mut cmd, &format!("git {}", args[0])).await
}

async fn run_bounded(cmd: &mut tokio::process::Command, what: &str) -> anyhow::Result<()> {
    cmd.kill_on_drop(true).stdin(std::process::Stdio::null());
    let out = tokio::time::timeout(GIT_WAIT, cmd.output())
        .await
        .map_err(|_| anyhow::anyhow!("{what} took over {GIT_WAIT:?}"))??;
    anyhow::ensure!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

struct Report<'a> {
    n: usize,
    concurrency: usize,
    model_ms: u64,
    cpus: usize,
    load_before: String,
    load_after: String,
    wall: f64,
    delivered: f64,
    measured: &'a [Measured],
    peer: Peer,
}

fn report(r: &Report) -> String {
    let m = r.measured;
    let col = |f: &dyn Fn(&Measured) -> f64| -> Vec<f64> { m.iter().map(f).collect() };
    let total = col(&|x| x.timings.total_seconds);
    let model = col(&|x| x.timings.model_seconds);
    let spec = col(&|x| x.timings.spec_test_seconds);
    let overhead = col(&|x| x.timings.overhead_seconds);
    let queue = col(&|x| x.queue_wait);
    let end_to_end = col(&|x| x.created_to_finished);
    let row = |what: &str, v: &[f64]| format!("| {what} | {:.2} s | {:.2} s |\n", median(v), percentile(v, 0.9));
    let mut rows = String::new();
    rows.push_str(&row("Total (the generate run, claim to PR)", &total));
    rows.push_str(&row(&format!("Model (answers at {} ms each, and their HTTP)", r.model_ms), &model));
    rows.push_str(&row("Spec tests (the agent's `spec_test`, and the pipeline's run when it made one)", &spec));
    rows.push_str(&row("**Bot overhead** (total − model − spec tests)", &overhead));
    rows.push_str(&row("Queue wait (job created → claimed by a worker)", &queue));
    rows.push_str(&row("Request to PR (job created → finished)", &end_to_end));
    rows.push_str(&row("Peer: git CLI, one connector at a time while the fleet runs", &r.peer.during));
    rows.push_str(&row("Peer: git CLI, one connector at a time after the fleet", &r.peer.sequential));
    rows.push_str(&row(&format!("Peer: git CLI, {} at once after the fleet", r.concurrency), &r.peer.concurrent));

    // Per phase: its wall time, and the bot's own part of it (the model and the agent's spec
    // tests run while generating; the pipeline's suite in spec_tests).
    let mut phase_names: Vec<String> = Vec::new();
    let mut wall: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut own: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for x in m {
        let agent_spec = (x.timings.spec_test_seconds - x.pipeline_spec).max(0.0);
        for (name, s) in &x.timings.phases {
            if !phase_names.contains(name) {
                phase_names.push(name.clone());
            }
            let not_ours = match name.as_str() {
                "generating" => x.timings.model_seconds + agent_spec,
                "spec_tests" => x.pipeline_spec,
                _ => 0.0,
            };
            wall.entry(name.clone()).or_default().push(*s);
            own.entry(name.clone()).or_default().push((s - not_ours).max(0.0));
        }
    }
    let overhead_sum: f64 = overhead.iter().sum();
    let mut phases = String::new();
    let mut by_share: Vec<(f64, String)> = Vec::new();
    for name in &phase_names {
        let own_sum: f64 = own[name].iter().sum();
        let share = 100.0 * own_sum / overhead_sum.max(f64::EPSILON);
        by_share.push((share, name.clone()));
        phases.push_str(&format!(
            "| `{name}` | {:.2} s | {:.2} s | {share:.0} % |\n",
            median(&wall[name]),
            median(&own[name])
        ));
    }
    by_share.sort_by(|a, b| b.0.total_cmp(&a.0));

    // Inside `generating`: the model, each tool (from the transcripts), and the rest.
    let phase = |x: &Measured, name: &str| x.timings.phases.iter().filter(|(p, _)| p == name).map(|(_, s)| s).sum::<f64>();
    let tool = |x: &Measured, name: &str| x.tools.get(name).copied().unwrap_or(0.0);
    let mut inside = row("Model answers", &model);
    for name in ["generate_from_openapi", "validate", "spec_test", "finish"] {
        inside.push_str(&row(&format!("Tool `{name}`"), &col(&|x| tool(x, name))));
    }
    let rest = col(&|x| phase(x, "generating") - x.timings.model_seconds - x.tools.values().sum::<f64>());
    inside.push_str(&row("The rest: session set-up (folder, prompt), messages, transcript, status comment", &rest));

    let over = median(&overhead);
    let ratio_during = over / median(&r.peer.during);
    let ratio_seq = over / median(&r.peer.sequential);
    let ratio_par = over / median(&r.peer.concurrent);
    let share_total = 100.0 * overhead_sum / total.iter().sum::<f64>();
    let met = over < 1.0;
    let date = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    let per_minute = r.n as f64 / (r.wall / 60.0);
    let retried = m.iter().filter(|x| x.answers > 4).count();
    let drafts = m.iter().filter(|x| !x.checks_passed).count();
    let reused = m.iter().filter(|x| x.timings.spec_report_reused).count();
    let reclaimed = m.iter().filter(|x| x.claims > 1).count();
    let holds = |phase: &str| match phase {
        "queued" => "the permission check, the reaction and the first status comment",
        "preparing" => "cloning and checking out the default branch, and a few GitHub calls",
        "generating" => "setting up the agent's session and running its tools, besides the model and the suite",
        "validating" => "the pipeline's validation",
        "spec_tests" => "loading the implementation for the suite",
        "pushing" => "the commit and the push, then opening the PR",
        "pr_opened" => "the last status-comment edit",
        _ => "",
    };
    let largest: Vec<String> = by_share.iter().take(3).map(|(s, n)| format!("`{n}` ({s:.0} %: {})", holds(n))).collect();
    let (git_during, git_after) = (median(&r.peer.during), median(&r.peer.sequential));
    format!(
        "{HEADING}\n\n\
         Measured by `cargo bench --bench fleet` ({build}) on {date}: {n} requests \
         (`FLEET_BENCH_REQUESTS`), worker concurrency {c} (`FLEET_BENCH_CONCURRENCY`, set as \
         `FACTORY_CONCURRENCY`), the scripted fake LLM answering after {ms} ms (`FLEET_BENCH_MODEL_MS`), \
         {cpus} CPU(s) (`nproc`), 1-minute load average {lb} before and {la} after. Everything runs in one \
         process on this machine: the real router, SQLite store, dispatcher and worker pool (`PipelineHandler`, \
         `GitHubPlatform`), the fake GitHub (schema checks off), the fake LLM, the file server with the \
         OpenAPI description, and a local bare repository. Each request is a distinct connector \
         (`Tidepool Bookings 001`…), so a distinct `connector/<slug>` branch and PR; in each session the model \
         answers four times, asking for `generate_from_openapi`, `validate`, `spec_test` and `finish` in turn; the \
         pipeline reports the agent's passing suite when the files are unchanged since (it was, {reused} of {n} \
         times) and runs the suite itself otherwise, as `serve` does. All {n} requests ended with their PR (checked \
         on the fake GitHub and in the bare repository).\n\n\
         Wall time for all {n}: **{wall:.1} s** (first webhook → last job finished; the {n} webhooks were \
         delivered in {delivered:.2} s), **{per_minute:.1} connectors per minute**.\n\n\
         | Per connector | Median | p90 |\n|---|---|---|\n{rows}\n\
         Bot overhead / git CLI peer, medians: **{ratio_during:.1}x** against the peer run while the fleet runs \
         (the same load; {under} of its {peer_n} runs had jobs running from start to end), {ratio_seq:.1}x against \
         the same {peer_n} connectors one at a time after the fleet, {ratio_par:.1}x against them {c} at once after \
         it (that batch took {pw:.1} s). The peer's connectors are the first {peer_n} to finish; each peer run clones, \
         copies the bot's folder in, commits and pushes to a new branch of the same bare repository. The overhead \
         is {share_total:.0} % of the summed total time.\n\n\
         Spec tests under this load: in {retried} of the {n} sessions the agent's suite failed at first (a \
         scenario past its wall-clock limit, or a connector request repeated), so `finish` ran it again and the \
         model asked once or twice more; the pipeline's own suite failed for {drafts}, whose PRs are drafts. Jobs claimed more than once (a \
         lease lost under load): {reclaimed}.\n\n\
         | Phase | Median wall | Median bot's own part | Share of all overhead |\n|---|---|---|---|\n{phases}\n\
         | Inside `generating` | Median | p90 |\n|---|---|---|\n{inside}\n\
         Each phase begins with an edit of the status comment and a phase write to the store. `queued` is the \
         run's first phase (permission check, 👀 reaction, the status comment), not the wait in the queue, which \
         is the queue-wait row. `pushing` ends only once the PR is open and labelled; `pr_opened` is the last \
         status edit. A phase's own part is its wall time less the model's answers and the agent's `spec_test` \
         (in `generating`) or the pipeline's suite (in `spec_tests`).\n\n\
         Target: bot overhead per connector under 1 s median. Measured: **{over:.2} s** (target **{verdict}**).\n\n\
         Where the overhead goes: most of it is in {largest}. Most of that time is spent waiting for a CPU, \
         not working: the same git work by the command line took {git_during:.2} s while the fleet ran and \
         {git_after:.2} s after it, because at concurrency {c} on {cpus} CPU(s) the spec-test suites (a Python \
         connector process per scenario) keep the CPUs busy.\n",
        build = if cfg!(debug_assertions) { "a debug build" } else { "release build" },
        n = r.n,
        c = r.concurrency,
        ms = r.model_ms,
        cpus = r.cpus,
        lb = r.load_before,
        la = r.load_after,
        wall = r.wall,
        delivered = r.delivered,
        peer_n = r.peer.during.len(),
        under = r.peer.during_under_load,
        pw = r.peer.concurrent_wall,
        verdict = if met { "met" } else { "not met" },
        largest = largest.join("; "),
    )
}

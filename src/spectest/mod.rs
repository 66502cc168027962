//! Spec tests: a language-agnostic conformance suite for connector implementations.
//!
//! For each implementation folder the suite reads the manifest and fixtures
//! ([`manifest`]), starts a fault-injecting mock of the API per scenario ([`mock_api`],
//! [`scenarios`]), runs the connector's CLI against it ([`runner`]), evaluates the checks
//! ([`checks`]) and renders a report ([`report`]). Scenarios run in parallel, each with its own
//! mock, so the whole suite takes a few seconds.
//!
//! Library entry points for other stages: [`run_suite`] (one folder → [`SpecReport`]),
//! [`run_implementation`] and [`plain_sync`] (one fault-free sync, for benchmarks).

pub mod checks;
pub mod manifest;
pub mod mock_api;
pub mod report;
pub mod runner;
pub mod scenarios;

pub use checks::{CheckResult, Status};
pub use manifest::InputError;
pub use report::{ImplementationReport, SpecReport};

use checks::{CHECKS, CheckDef, Ctx};
use manifest::LoadedImpl;
use report::{RunSummary, ScenarioSummary, Summary};
use scenarios::{ScenarioId, ScenarioResult};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct SpecTestArgs {
    /// Implementation folders to test (each holds a connector.json).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Write the JSON SpecReport here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write a Markdown summary here (for a PR comment or $GITHUB_STEP_SUMMARY).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Write JUnit XML here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Run only these checks: ids (pagination.all_pages) or whole categories (retry), comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "ID,...")]
    pub only: Vec<String>,
    /// Wall-clock limit of one connector run, in seconds; a run past it is killed as hung.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub run_timeout: f64,
    /// How many scenarios run at once.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub parallel: usize,
}

/// How a suite run is tuned.
#[derive(Debug, Clone, PartialEq)]
pub struct SuiteOptions {
    /// Check ids or categories to run; empty means all.
    pub only: Vec<String>,
    /// Wall-clock limit of one connector run.
    pub wall_limit: Duration,
    /// Scenarios running at once.
    pub parallelism: usize,
    /// `page_size` in the generated config (the mock serves 3.5 pages of it per stream).
    pub page_size: usize,
    /// `rate_limit.requests_per_second` in the generated config.
    pub requests_per_second: f64,
}

impl Default for SuiteOptions {
    fn default() -> Self {
        SuiteOptions {
            only: vec![],
            wall_limit: Duration::from_secs(10),
            parallelism: 16,
            page_size: 5,
            requests_per_second: 10.0,
        }
    }
}

/// The checks named by `only` (ids or categories), in suite order; all of them when empty.
pub fn select_checks(only: &[String]) -> Result<Vec<&'static CheckDef>, String> {
    let wanted: Vec<String> = only
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if wanted.is_empty() {
        return Ok(CHECKS.iter().collect());
    }
    for w in &wanted {
        if !CHECKS.iter().any(|c| c.id == w || c.category() == w) {
            let ids: Vec<&str> = CHECKS.iter().map(|c| c.id).collect();
            return Err(format!(
                "--only: unknown check or category {w:?}; known checks: {}",
                ids.join(", ")
            ));
        }
    }
    Ok(CHECKS
        .iter()
        .filter(|c| wanted.iter().any(|w| c.id == w || c.category() == w))
        .collect())
}

/// Scenarios the selected checks read.
fn needed_scenarios(selected: &[&CheckDef]) -> BTreeSet<ScenarioId> {
    let mut set = BTreeSet::new();
    for c in selected {
        if c.scenarios.is_empty() {
            return ScenarioId::ALL.into_iter().collect();
        }
        set.extend(c.scenarios.iter().copied());
    }
    set
}

/// Reads an implementation folder (manifest, schemas, fixtures).
/// Load an implementation and run its declared build step, so what the scenarios run exists.
pub fn load_implementation(dir: &Path) -> Result<LoadedImpl, InputError> {
    let imp = manifest::load(dir)?;
    runner::build_implementation(&imp)?;
    Ok(imp)
}

/// Runs the suite on one implementation folder and wraps the result in a [`SpecReport`].
/// Unusable input comes back as an error that downcasts to [`InputError`].
pub async fn run_suite(impl_dir: &Path, opts: &SuiteOptions) -> anyhow::Result<SpecReport> {
    let imp = load_implementation(impl_dir)?;
    let report = run_implementation(&imp, &impl_dir.display().to_string(), opts).await?;
    Ok(SpecReport::new(vec![report]))
}

/// Scenarios running at once in this process, whatever the number of suites: 8 per CPU, and at
/// least one suite's default parallelism. Each scenario runs a connector process against its
/// mock, and the checks that time things (retry waits, back-off, request timeouts, the run's
/// wall-clock limit) fail once the CPUs are oversubscribed: on 2 CPUs, 4 suites at once pass and
/// 6 fail about half their checks. A worker pool runs one suite per job, so without this cap
/// `FACTORY_CONCURRENCY` above a few made every job's spec tests fail. Waiting here counts in
/// the suite's duration, not in a connector run's wall-clock limit.
fn process_gate() -> Arc<tokio::sync::Semaphore> {
    static GATE: std::sync::OnceLock<Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();
    GATE.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Arc::new(tokio::sync::Semaphore::new((8 * cpus).max(SuiteOptions::default().parallelism)))
    })
    .clone()
}

async fn run_scenarios(
    imp: &LoadedImpl,
    ids: impl IntoIterator<Item = ScenarioId>,
    opts: &SuiteOptions,
) -> BTreeMap<ScenarioId, ScenarioResult> {
    let imp = Arc::new(imp.clone());
    let opts_arc = Arc::new(opts.clone());
    let gate = Arc::new(tokio::sync::Semaphore::new(opts.parallelism.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for id in ids {
        let (imp, opts, gate, process) = (imp.clone(), opts_arc.clone(), gate.clone(), process_gate());
        set.spawn(async move {
            // The suite's own slot first, then the process's: one order, so no deadlock.
            let _permit = gate.acquire_owned().await.expect("semaphore");
            let _process = process.acquire_owned().await.expect("semaphore");
            scenarios::execute(id, &imp, &opts).await
        });
    }
    let mut results = BTreeMap::new();
    while let Some(joined) = set.join_next().await {
        if let Ok(result) = joined {
            results.insert(result.id, result);
        }
    }
    results
}

/// Runs the selected checks on a loaded implementation; `shown_path` is what the report calls it.
pub async fn run_implementation(
    imp: &LoadedImpl,
    shown_path: &str,
    opts: &SuiteOptions,
) -> anyhow::Result<ImplementationReport> {
    let selected = select_checks(&opts.only).map_err(anyhow::Error::msg)?;
    let started = Instant::now();
    let results = run_scenarios(imp, needed_scenarios(&selected), opts).await;
    let mut secrets: Vec<String> = results
        .values()
        .flat_map(|r| r.secrets.iter().cloned())
        .collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    let ctx = Ctx {
        imp,
        results: &results,
        secrets,
    };
    let checks = checks::evaluate(&ctx, &selected);
    let summary = Summary::of(&checks);
    let m = &imp.manifest;
    Ok(ImplementationReport {
        path: shown_path.to_string(),
        name: m.name.clone(),
        version: m.version.clone(),
        language: m.language.clone(),
        author: m.author.clone(),
        implementation: m.implementation.clone(),
        passed: summary.failed == 0,
        duration_seconds: started.elapsed().as_secs_f64(),
        summary,
        checks,
        scenarios: results.values().map(scenario_summary).collect(),
    })
}

fn scenario_summary(r: &ScenarioResult) -> ScenarioSummary {
    let (outcome, note) = match (&r.not_applicable, &r.error) {
        (Some(reason), _) => ("not_applicable", Some(reason.clone())),
        (_, Some(err)) => ("error", Some(err.clone())),
        _ => ("ran", None),
    };
    ScenarioSummary {
        id: r.id.name().to_string(),
        outcome: outcome.to_string(),
        note,
        duration_seconds: r.duration_seconds,
        requests: r.requests.len(),
        runs: r
            .runs
            .iter()
            .map(|run| RunSummary {
                label: run.outcome.label.clone(),
                exit_code: run.outcome.exit_code,
                hung: run.outcome.hung,
                duration_seconds: run.outcome.duration_seconds,
            })
            .collect(),
    }
}

/// One fault-free sync of every stream against a fresh mock; returns the connector process's
/// wall time and whether it succeeded (the benchmark's peer figure).
pub async fn plain_sync(impl_dir: &Path, opts: &SuiteOptions) -> anyhow::Result<(Duration, bool)> {
    let imp = load_implementation(impl_dir)?;
    let result = scenarios::execute(ScenarioId::Sync, &imp, opts).await;
    if let Some(err) = result.error {
        anyhow::bail!(err);
    }
    let run = result
        .run("sync")
        .ok_or_else(|| anyhow::anyhow!("the sync did not run"))?;
    Ok((
        Duration::from_secs_f64(run.outcome.duration_seconds),
        run.outcome.succeeded(),
    ))
}

/// The `spec-test` subcommand: exit 0 when every selected check passes everywhere, 1 on
/// failures, 2 on unusable input.
pub fn run(args: SpecTestArgs) -> anyhow::Result<u8> {
    if let Err(msg) = select_checks(&args.only) {
        eprintln!("spec-test: {msg}");
        return Ok(2);
    }
    if args.run_timeout.is_nan() || args.run_timeout <= 0.0 {
        eprintln!("spec-test: --run-timeout must be a positive number of seconds");
        return Ok(2);
    }
    let mut loaded = Vec::new();
    for dir in &args.dirs {
        match load_implementation(dir) {
            Ok(imp) => loaded.push((dir.display().to_string(), imp)),
            Err(err) => {
                eprintln!("spec-test: unusable implementation: {err}");
                return Ok(2);
            }
        }
    }
    let opts = SuiteOptions {
        only: args.only.clone(),
        wall_limit: Duration::from_secs_f64(args.run_timeout),
        parallelism: args.parallel.max(1),
        ..SuiteOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let reports = runtime.block_on(async {
        let mut reports = Vec::new();
        for (shown, imp) in &loaded {
            reports.push(run_implementation(imp, shown, &opts).await?);
        }
        anyhow::Ok(reports)
    })?;
    runtime.shutdown_timeout(Duration::from_secs(2));
    let report = SpecReport::new(reports);

    let write = |path: &Option<PathBuf>, text: String| -> anyhow::Result<()> {
        if let Some(p) = path {
            if let Some(parent) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(p, text)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
        }
        Ok(())
    };
    write(&args.json, report.to_json())?;
    write(&args.markdown, report.to_markdown())?;
    write(&args.junit, report.to_junit())?;
    print!("{}", report.to_text());
    Ok(if report.passed { 0 } else { 1 })
}

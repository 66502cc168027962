//! OpenAPI toolkit benchmark (run with `cargo bench --bench openapi`, release profile).
//!
//! On GitHub's REST description (fetched by `.ci/fetch-fixtures.sh`):
//! - load + index time, against a plain `serde_json::from_slice` of the same bytes (the peer);
//! - latency of each query kind;
//! - the bytes of the query answers an agent needs to build a 5-stream connector, as a fraction
//!   of the document's size (target < 2 %);
//! - when `.cache/dlt-venv` exists (made by `.ci/compare-dlt.sh`), the wall time of
//!   `dlt-init-openapi` on the same file, as a second peer.

use connector_factory::openapi::query::{self, Budget, Format, ListFilter};
use connector_factory::openapi::{Spec, detect};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let out = f();
        times.push(t.elapsed());
        last = Some(out);
    }
    (median(times), last.unwrap())
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let path = root.join(".cache/fixtures/github/api.github.com.json");
    if !path.exists() {
        println!(
            "SKIPPED: {} is missing; run .ci/fetch-fixtures.sh",
            path.display()
        );
        return;
    }
    let bytes = std::fs::read(&path).unwrap();
    let size = bytes.len();
    println!(
        "GitHub REST description: {} bytes ({:.1} MB)",
        size,
        size as f64 / 1e6
    );

    let (peer, _) = time(7, || {
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
    });
    let (load, spec) = time(7, || {
        Spec::from_bytes(&bytes, "api.github.com.json").unwrap()
    });
    let (from_file, _) = time(3, || Spec::load(path.to_str().unwrap()).unwrap());
    println!(
        "load + index (bytes in memory):  {}  ({} operations, {} schemas)",
        ms(load),
        spec.index.operations.len(),
        spec.index.schema_names.len()
    );
    println!("load + index (from the file):    {}", ms(from_file));
    println!(
        "peer serde_json::from_slice:     {}  (ratio load+index / parse = {:.2})",
        ms(peer),
        load.as_secs_f64() / peer.as_secs_f64()
    );

    let b = Budget::new(query::DEFAULT_BUDGET, Format::Text);
    let (t_list, list) = time(20, || {
        query::list_operations(
            &spec,
            &ListFilter {
                tag: Some("issues".into()),
                ..Default::default()
            },
            b,
        )
    });
    let (t_list_col, _) = time(5, || {
        query::list_operations(
            &spec,
            &ListFilter {
                collections_only: true,
                ..Default::default()
            },
            b,
        )
    });
    let (t_show, show) = time(20, || {
        query::show_operation(&spec, "issues/list-for-repo", b).unwrap()
    });
    let (t_show_big, _) = time(20, || query::show_operation(&spec, "repos/get", b).unwrap());
    let (t_schema, _) = time(20, || query::show_schema(&spec, "repository", b).unwrap());
    let (t_summary, _) = time(5, || query::summary(&spec, b));
    let (t_rank, ranked) = time(5, || detect::rank_streams(&spec));
    println!("query latency (median, budget {} B):", b.bytes);
    println!(
        "  list --tag issues              {}  ({} B)",
        ms(t_list),
        list.rendered.len()
    );
    println!("  list --collections (all)       {}", ms(t_list_col));
    println!(
        "  show issues/list-for-repo      {}  ({} B)",
        ms(t_show),
        show.rendered.len()
    );
    println!("  show repos/get                 {}", ms(t_show_big));
    println!("  schema repository              {}", ms(t_schema));
    println!("  summary                        {}", ms(t_summary));
    println!(
        "  detect: rank all streams       {}  ({} collection endpoints)",
        ms(t_rank),
        ranked.len()
    );

    // Every query an agent may send, each kind over many inputs: max and median per kind
    // (target: each under 5 ms). Each input is run 3 times and its fastest run kept: the machine
    // is shared (2 CPUs, other builds), and a run that lost the CPU for a few ms would otherwise
    // be the maximum. For `show`/`schema`, the most schema nodes one answer expanded is printed
    // too (a count of work, not of time). The first `--collections` call also detects collection
    // endpoints over the whole description (kept in the index afterwards); it is timed on a
    // fresh load.
    let cold = Spec::from_bytes(&bytes, "api.github.com.json").unwrap();
    let t = Instant::now();
    let _ = query::list_operations(
        &cold,
        &ListFilter {
            collections_only: true,
            ..Default::default()
        },
        b,
    );
    let t_cold_col = t.elapsed();
    drop(cold);
    let mut tags: Vec<String> = spec
        .index
        .operations
        .iter()
        .flat_map(|o| o.tags.iter().cloned())
        .collect();
    tags.sort();
    tags.dedup();
    let mut kinds: Vec<(String, Vec<Duration>)> = Vec::new();
    let fastest = |runs: usize, f: &mut dyn FnMut() -> usize| {
        let mut best = Duration::MAX;
        let mut out = 0;
        for _ in 0..runs {
            let t = Instant::now();
            out = f();
            best = best.min(t.elapsed());
        }
        (best, out)
    };
    let mut measure = |name: &str, filters: Vec<ListFilter>| {
        let mut ts = Vec::new();
        for f in &filters {
            let (d, _) = fastest(3, &mut || {
                query::list_operations(&spec, f, b).rendered.len()
            });
            ts.push(d);
        }
        kinds.push((format!("{name} ({} filters)", filters.len()), ts));
    };
    measure("list (no filter)", vec![ListFilter::default()]);
    measure(
        "list --tag",
        tags.iter()
            .map(|t| ListFilter {
                tag: Some(t.clone()),
                ..Default::default()
            })
            .collect(),
    );
    measure(
        "list --method",
        ["get", "post", "put", "patch", "delete"]
            .iter()
            .map(|m| ListFilter {
                method: Some(m.to_string()),
                ..Default::default()
            })
            .collect(),
    );
    measure(
        "list --path",
        ["issues", "repos", "/orgs/{org}", "pulls", "actions", "zzz"]
            .iter()
            .map(|p| ListFilter {
                path_contains: Some(p.to_string()),
                ..Default::default()
            })
            .collect(),
    );
    measure(
        "list --collections (warm)",
        vec![
            ListFilter {
                collections_only: true,
                ..Default::default()
            },
            ListFilter {
                collections_only: true,
                tag: Some("repos".into()),
                ..Default::default()
            },
            ListFilter {
                collections_only: true,
                limit: Some(500),
                ..Default::default()
            },
        ],
    );
    let json_b = Budget::new(query::DEFAULT_BUDGET, Format::Json);
    let mut most_nodes: Vec<String> = Vec::new();
    for (label, bb) in [("text", b), ("json", json_b)] {
        let mut ts = Vec::new();
        let mut worst = (Duration::ZERO, String::new());
        let mut nodes = (0, String::new());
        for op in &spec.index.operations {
            let key = op.key();
            let (d, n) = fastest(3, &mut || {
                query::show_operation(&spec, &key, bb)
                    .unwrap()
                    .expanded_nodes
            });
            if d > worst.0 {
                worst = (d, key.clone());
            }
            if n > nodes.0 {
                nodes = (n, key);
            }
            ts.push(d);
        }
        kinds.push((
            format!("show, every operation, {label} (slowest: {})", worst.1),
            ts,
        ));
        most_nodes.push(format!("show, {label}: {} ({})", nodes.0, nodes.1));
        let mut ts = Vec::new();
        let mut worst = (Duration::ZERO, String::new());
        let mut nodes = (0, String::new());
        for name in &spec.index.schema_names {
            let (d, n) = fastest(3, &mut || {
                query::show_schema(&spec, name, bb).unwrap().expanded_nodes
            });
            if d > worst.0 {
                worst = (d, name.clone());
            }
            if n > nodes.0 {
                nodes = (n, name.clone());
            }
            ts.push(d);
        }
        kinds.push((
            format!("schema, every schema, {label} (slowest: {})", worst.1),
            ts,
        ));
        most_nodes.push(format!("schema, {label}: {} ({})", nodes.0, nodes.1));
    }
    println!(
        "query latency per kind (budget {} B; fastest of 3 runs per input; target < 5 ms each):",
        b.bytes
    );
    println!(
        "  list --collections, first call on a fresh load (detects all): {}",
        ms(t_cold_col)
    );
    for (name, ts) in &kinds {
        let n = ts.len();
        let max = ts.iter().max().copied().unwrap_or_default();
        println!(
            "  {name:<62} median {}  max {}  ({n} queries)",
            ms(median(ts.clone())),
            ms(max)
        );
    }
    println!(
        "most schema nodes expanded by one answer: {}",
        most_nodes.join("; ")
    );

    // Generating a 5-stream connector with the builtin generator (load, detect, write files;
    // no spec-test), target < 2 s.
    let (t_gen, outcome) = time(3, || {
        let tmp = tempfile::tempdir().unwrap();
        let opts = connector_factory::agent::builtin::GenerateOptions::new(
            path.to_str().unwrap(),
            "github",
            tmp.path(),
        );
        let out = connector_factory::agent::builtin::generate(&opts);
        (
            out.map(|o| o.streams.len()).map_err(|e| format!("{e:#}")),
            tmp,
        )
    });
    println!(
        "generate a 5-stream connector (builtin, from the file): {}  (streams: {:?}, target < 2 s)",
        ms(t_gen),
        outcome.0
    );

    // What an agent reads to build a 5-stream connector: the summary (auth, base URL, tags,
    // suggested streams), one filtered list of collection endpoints, and each chosen operation.
    let picked = detect::pick_streams(&spec, 5);
    let mut answers = vec![
        (
            "summary".to_string(),
            query::summary(&spec, b).rendered.len(),
        ),
        (
            "list --collections --limit 50".to_string(),
            query::list_operations(
                &spec,
                &ListFilter {
                    collections_only: true,
                    limit: Some(50),
                    ..Default::default()
                },
                b,
            )
            .rendered
            .len(),
        ),
    ];
    for s in &picked {
        let key = format!("GET {}", s.collection.value.path);
        let a = query::show_operation(&spec, &key, b).unwrap();
        answers.push((format!("show {key}"), a.rendered.len()));
    }
    let total: usize = answers.iter().map(|(_, n)| n).sum();
    println!("answers for a 5-stream connector:");
    for (q, n) in &answers {
        println!("  {q:<52} {n:>6} B");
    }
    println!(
        "  total {total} B = {:.3} % of the document (target < 2 %)",
        total as f64 * 100.0 / size as f64
    );

    let dlt = root.join(".cache/dlt-venv/bin/dlt-init-openapi");
    if dlt.exists() {
        let out = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let status = std::process::Command::new(&dlt)
            .arg("github")
            .arg("--path")
            .arg(&path)
            .arg("--output-path")
            .arg(out.path().join("github"))
            .arg("--no-interactive")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let took = t.elapsed();
        match status {
            Ok(s) => println!(
                "peer dlt-init-openapi (whole generator, same file): {:.2} s, exit {:?}; our load+index+rank = {}",
                took.as_secs_f64(),
                s.code(),
                ms(load + t_rank)
            ),
            Err(e) => println!("peer dlt-init-openapi could not run: {e}"),
        }
    } else {
        println!("peer dlt-init-openapi: not installed (run .ci/compare-dlt.sh first)");
    }
}

//! `connector-factory batch` on the local platform: several requests at once through the real
//! pipeline (builtin generator, real git, real spec tests), a durable job store that makes an
//! interrupted batch resumable, and the summary.

mod support;

use connector_factory::batch::{self, BatchArgs};
use connector_factory::git::Identity;
use connector_factory::pipeline::PipelineConfig;
use connector_factory::spectest::SuiteOptions;
use connector_factory::store::{JobFilter, SqliteStore, Store};
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::repo::BareRepo;
use tokio_util::sync::CancellationToken;

fn request(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tidepool-bookings.md"))
        .unwrap()
        .replace("### Connector name\n\nTidepool Bookings", &format!("### Connector name\n\n{name}"))
        .replace("- invoices\n", "")
}

struct Scene {
    _tmp: tempfile::TempDir,
    clone: PathBuf,
    requests: PathBuf,
}

fn scene() -> Scene {
    let tmp = tempfile::tempdir().unwrap();
    let openapi = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tidepool-bookings.openapi.yaml")).unwrap();
    let (a, b, c) = (request("Tidepool Bookings"), request("Tidepool Bookings Mirror"), request("Tidepool Bookings Annex"));
    let broken = "### Connector name\n\n\n\n### API docs URL\n\nnot a url\n";
    let upstream = BareRepo::factory(
        tmp.path(),
        &[
            ("requests/tidepool-bookings.openapi.yaml", &openapi),
            ("requests/a-tidepool.md", a.as_bytes()),
            ("requests/b-mirror.md", b.as_bytes()),
            ("requests/c-annex.md", c.as_bytes()),
            ("requests/d-broken.md", broken.as_bytes()),
        ],
    );
    let clone = tmp.path().join("clone");
    git2::Repository::clone(&upstream.url(), &clone).unwrap();
    let requests = clone.join("requests");
    Scene { _tmp: tmp, clone, requests }
}

fn args(s: &Scene) -> BatchArgs {
    BatchArgs {
        requests: vec![s.requests.clone()],
        repo: s.clone.clone(),
        out: None,
        concurrency: 2,
        db: None,
        retry_failed: false,
        base: None,
        github: None,
        label: "connector-request".into(),
        requested_by: None,
        dry_run: false,
    }
}

fn config() -> PipelineConfig {
    PipelineConfig {
        identity: Identity::github_app("connector-factory", None),
        spec_tests: SuiteOptions { only: vec!["discover".into(), "schema".into()], ..SuiteOptions::default() },
        ..PipelineConfig::default()
    }
}

fn branch_tip(repo: &Path, branch: &str) -> Option<git2::Oid> {
    git2::Repository::open(repo).unwrap().refname_to_id(&format!("refs/heads/{branch}")).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_batch_resumes_without_redoing_finished_requests() {
    let s = scene();
    // First run: stopped as soon as one request has finished.
    let stop = CancellationToken::new();
    let watcher = {
        let stop = stop.clone();
        let db = format!("sqlite://{}", s.clone.join(".factory/batch/batch.db").display());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let Ok(store) = SqliteStore::connect(&db).await else { continue };
                let jobs = store.list_jobs(&JobFilter::default()).await.unwrap_or_default();
                store.pool().close().await;
                if jobs.iter().any(|j| !j.state.is_active()) {
                    stop.cancel();
                    return;
                }
            }
        })
    };
    let first = batch::run_batch(&args(&s), config(), stop).await.unwrap();
    watcher.await.unwrap();
    assert_eq!(first.requests.len(), 4);
    let finished_first: Vec<_> = first.requests.iter().filter(|r| r.outcome != "queued" && r.outcome != "running").collect();
    assert!(!finished_first.is_empty() && finished_first.len() < 4, "stopped part way: {first:#?}");

    // Second run: the same command finishes the rest and leaves the finished ones alone.
    let second = batch::run_batch(&args(&s), config(), CancellationToken::new()).await.unwrap();
    for r in &finished_first {
        let again = second.requests.iter().find(|x| x.request == r.request).unwrap();
        assert!(again.resumed, "{} was finished and is not run again", r.request);
        assert_eq!(again.job, r.job);
    }
    let by_name = |n: &str| second.requests.iter().find(|r| r.request.ends_with(n)).unwrap();
    for good in ["a-tidepool.md", "b-mirror.md", "c-annex.md"] {
        let r = by_name(good);
        assert_eq!(r.outcome, "pr_opened", "{r:#?}");
        assert!(r.ok && r.duration_seconds.is_some(), "{r:#?}");
    }
    let broken = by_name("d-broken.md");
    assert_eq!(broken.outcome, "invalid_request");
    assert!(!broken.ok && broken.reason.as_deref().unwrap_or_default().to_lowercase().contains("connector name"), "{broken:#?}");
    assert_eq!((second.succeeded, second.failed), (3, 1));
    for b in ["connector/tidepool-bookings", "connector/tidepool-bookings-mirror", "connector/tidepool-bookings-annex"] {
        assert!(branch_tip(&s.clone, b).is_some(), "{b} has the bot's commit");
    }

    // The summary is on disk, as a table and as JSON.
    let out = s.clone.join(".factory/batch");
    let table = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(table.contains("| a-tidepool.md | ✅ pr_opened |"), "{table}");
    assert!(table.contains("| d-broken.md | ❌ invalid_request |"), "{table}");
    assert!(table.contains("3 of 4 requests ended with a pull request; 1 failed"), "{table}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(json["requests"].as_array().unwrap().len(), 4);

    // --retry-failed runs only the failed one again.
    let mut retry = args(&s);
    retry.retry_failed = true;
    let third = batch::run_batch(&retry, config(), CancellationToken::new()).await.unwrap();
    let broken_again = third.requests.iter().find(|r| r.request.ends_with("d-broken.md")).unwrap();
    assert!(broken_again.job > broken.job && !broken_again.resumed, "{broken_again:#?}");
    assert!(third.requests.iter().filter(|r| !r.request.ends_with("d-broken.md")).all(|r| r.resumed));
}

#[test]
fn progress_lines_show_counts_rate_and_eta() {
    let line = batch::progress_line(10, 4, 1, 2, 4, Duration::from_secs(120));
    assert_eq!(line, "batch: 4/10 done (1 failed), 2 running, 4 queued · 2.0/min · ETA 3m 00s");
    assert_eq!(batch::progress_line(3, 0, 0, 0, 0, Duration::ZERO), "batch: 0/3 done (0 failed), 0 running, 3 queued");
}

#[test]
fn request_paths_are_checked() {
    let err = batch::request_files(&[PathBuf::from("/nonexistent/requests")]).unwrap_err().to_string();
    assert!(err.contains("neither a request file nor a folder"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let err = batch::request_files(&[empty.path().to_path_buf()]).unwrap_err().to_string();
    assert!(err.contains("no request files found"), "{err}");
}

// ---- batch over a GitHub repository's open request issues ----

mod github {
    use super::*;
    use connector_factory::agent::tools::FetchPolicy;
    use connector_factory::config::{Settings, Source};
    use std::collections::BTreeMap;
    use support::app::{REPO, seeded_github};
    use support::fake_github::{APP_ID, FakeGitHub};
    use support::files::FileServer;

    struct Hub {
        tmp: tempfile::TempDir,
        fake: FakeGitHub,
        bare: BareRepo,
        _files: FileServer,
        settings: Settings,
        built: u64,
        with_pr: u64,
        malformed: u64,
    }

    async fn hub() -> Hub {
        let tmp = tempfile::tempdir().unwrap();
        let (fake, bare, files) = seeded_github(tmp.path(), Default::default()).await;
        fake.add_label(REPO, "connector-request", "0e8a16");
        let openapi = format!("{}/tidepool-bookings.openapi.yaml", files.base);
        let body = |name: &str| {
            request(name).replace(
                "### OpenAPI description URL\n\ntidepool-bookings.openapi.yaml",
                &format!("### OpenAPI description URL\n\n{openapi}"),
            )
        };
        let labelled = |title: &str, text: &str| {
            let n = fake.add_issue(REPO, title, text, "maya");
            fake.set_issue_labels(REPO, n, &["connector-request"]);
            n
        };
        let built = labelled("Connector request: Tidepool Bookings", &body("Tidepool Bookings"));
        let with_pr = labelled("Connector request: Tidepool Mirror", &body("Tidepool Mirror"));
        fake.add_pull(REPO, "connector/tidepool-mirror", "main", "Add Tidepool Mirror connector", "open");
        let malformed = labelled("Connector request: ???", "### Connector name\n\n\n\n### API docs URL\n\nnot a url\n");
        // Neither labelled nor open: never looked at.
        fake.add_issue(REPO, "Unrelated", &body("Tidepool Other"), "maya");
        let closed = labelled("Connector request: Closed", &body("Tidepool Closed"));
        fake.close_issue(REPO, closed);

        let env: BTreeMap<String, String> = [
            ("GITHUB_APP_ID", APP_ID.to_string()),
            ("GITHUB_PRIVATE_KEY", fake.private_key().expose().to_string()),
            ("GITHUB_API_URL", fake.url()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let settings = Settings::load(&Source::new(env, None));
        Hub { tmp, fake, bare, _files: files, settings, built, with_pr, malformed }
    }

    fn github_args(h: &Hub, out: &str, dry_run: bool) -> BatchArgs {
        BatchArgs {
            requests: Vec::new(),
            repo: PathBuf::from("."),
            out: Some(h.tmp.path().join(out)),
            concurrency: 2,
            db: None,
            retry_failed: false,
            base: None,
            github: Some(REPO.into()),
            label: "connector-request".into(),
            requested_by: None,
            dry_run,
        }
    }

    fn github_config(h: &Hub) -> PipelineConfig {
        PipelineConfig {
            identity: Identity::github_app(support::fake_github::APP_SLUG, Some(40_000_000 + APP_ID)),
            workspace_parent: Some(h.tmp.path().join("ws")),
            fetch: FetchPolicy { allow_loopback: true, ..FetchPolicy::default() },
            ..config()
        }
    }

    /// A dry run reads the open request issues and builds the one without a PR, and GitHub
    /// stays exactly as it was: no comment, reaction, label, branch or pull request.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dry_run_builds_open_requests_and_writes_nothing_to_github() {
        let h = hub().await;
        let before = h.fake.requests().iter().filter(|r| r.method != "GET").count();
        let summary = batch::run_batch_with(&github_args(&h, "dry", true), &h.settings, github_config(&h), CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(summary.requests.len(), 1, "{summary:#?}");
        let r = &summary.requests[0];
        assert!(r.request.starts_with(&format!("#{} ", h.built)) && r.ok, "{r:#?}");
        let skipped = summary.skipped.join("\n");
        assert!(skipped.contains(&format!("#{} ", h.with_pr)) && skipped.contains("pull request"), "{skipped}");
        assert!(skipped.contains(&format!("#{} ", h.malformed)) && skipped.contains("malformed"), "{skipped}");
        assert_eq!(summary.skipped.len(), 2, "closed and unlabelled issues are not looked at: {skipped}");

        let writes: Vec<String> = h.fake.requests().iter().filter(|r| r.method != "GET").map(|r| format!("{} {}", r.method, r.path)).collect();
        // Minting the installation token is the only POST a dry run makes.
        assert!(writes.iter().skip(before).all(|w| w.contains("/access_tokens")), "{writes:#?}");
        assert!(h.fake.comments(REPO, h.built).is_empty() && h.fake.reactions(REPO).is_empty());
        assert_eq!(h.fake.pulls(REPO).len(), 1, "only the PR that was there");
        assert!(h.bare.tip("connector/tidepool-bookings").is_none(), "nothing pushed");

        let out = h.tmp.path().join("dry").join(format!("issue-{}", h.built));
        let pr = std::fs::read_to_string(out.join("pull-request-1.md")).unwrap();
        assert!(pr.contains(&format!("Closes #{}", h.built)), "{pr}");
        let manifest = out.join("files/registry/tidepool-bookings/v1/connector-factory/python/default/connector.json");
        assert!(manifest.is_file(), "the built connector is kept for review");
    }

    /// Without --dry-run the same batch opens the PR as the app would, and a second run finds
    /// the request has a PR now and leaves it alone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_github_batch_opens_pull_requests_like_the_app() {
        let h = hub().await;
        let summary = batch::run_batch_with(&github_args(&h, "real", false), &h.settings, github_config(&h), CancellationToken::new())
            .await
            .unwrap();
        assert_eq!((summary.succeeded, summary.failed), (1, 0), "{summary:#?}");
        let pulls = h.fake.pulls(REPO);
        let opened = pulls.iter().find(|p| p.head == "connector/tidepool-bookings").expect("a PR for the built request");
        assert!(h.bare.tip("connector/tidepool-bookings").is_some());
        let bot = h.fake.bot_login();
        let status: Vec<_> = h.fake.comments(REPO, h.built).into_iter().filter(|c| c.user.login == bot).collect();
        assert_eq!(status.len(), 1, "one status comment");
        assert!(status[0].body.contains(&format!("#{}", opened.number)), "{}", status[0].body);

        let again = batch::run_batch_with(&github_args(&h, "again", false), &h.settings, github_config(&h), CancellationToken::new())
            .await
            .unwrap();
        assert!(again.requests.is_empty(), "{again:#?}");
        assert_eq!(again.skipped.len(), 3, "{:#?}", again.skipped);
    }
}

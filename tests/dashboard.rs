//! The sessions dashboard: pages over a real SQLite store, through the router and in headless
//! Chromium (Debian `chromium`, installed by `.ci/run`), with a screenshot check.

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use connector_factory::config::Secret;
use connector_factory::server::dashboard::{self, DashboardState};
use connector_factory::store::{Finish, JobKind, NewJob, SqliteStore, Store};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const TOKEN: &str = "dash-token-123";
const LEAK: &str = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";

async fn store_with_jobs(dir: &Path, extra: usize) -> Arc<dyn Store> {
    let store = SqliteStore::connect(&format!("sqlite://{}", dir.join("f.db").display())).await.unwrap();
    let transcript = format!(
        "### Session\n\n**model** said hello <script>alert('x')</script> and leaked {LEAK}\n\n- wrote `connector.json`\n"
    );
    // A succeeded job with a PR, tokens, a report and a transcript.
    let payload = json!({"issue": {"number": 7, "title": "Connector request: <b>Tidepool</b>"}, "requested_by": "maya"});
    store.enqueue(&NewJob::new(JobKind::Generate, "acme/connectors", Some(7), payload)).await.unwrap();
    let c = store.claim("t", Duration::from_secs(30)).await.unwrap().unwrap();
    let result = json!({
        "verdict": "pr_opened", "branch": "connector/tidepool",
        "pr": {"number": 12, "url": "https://github.com/acme/connectors/pull/12", "head": "connector/tidepool", "state": "open", "draft": false},
        "usage": {"input_tokens": 12000, "output_tokens": 3400, "cost_usd": 0.087},
        "agent": "LLM agent (claude-sonnet-4-5)",
        "transcript": transcript,
        "timings": {"total_seconds": 41.0, "model_seconds": 30.5, "spec_test_seconds": 9.5, "overhead_seconds": 1.0,
                    "phases": [["queued", 0.1], ["generating", 32.0], ["spec_tests", 8.0], ["<pushing>", 0.9]]},
        "spec_report": {"implementations": [{"path": "registry/tidepool/v1/connector-factory/python/default", "checks": [
            {"id": "pagination.all_pages", "status": "passed", "message": "4 pages"},
            {"id": "schema.records_valid", "status": "failed", "message": "id is a string"}]}]}
    });
    store.set_phase(&c.lease, "pr_opened").await.unwrap();
    store.finish(&c.lease, &Finish::Succeeded { result }).await.unwrap();
    // A failed one.
    store.enqueue(&NewJob::new(JobKind::Generate, "acme/connectors", Some(8), json!({}))).await.unwrap();
    let c = store.claim("t", Duration::from_secs(30)).await.unwrap().unwrap();
    store.finish(&c.lease, &Finish::Failed { error: format!("the LLM agent gave up; token {LEAK}"), result: None }).await.unwrap();
    // Queued ones.
    for i in 0..extra {
        store.enqueue(&NewJob::new(JobKind::Status, "acme/connectors", Some(100 + i as i64), json!({}))).await.unwrap();
    }
    Arc::new(store)
}

fn state(store: Arc<dyn Store>, token: Option<&str>) -> DashboardState {
    DashboardState { store, token: token.map(Secret::new), web_url: "https://github.com".into() }
}

async fn get(app: &axum::Router, uri: &str, auth: Option<&str>) -> (StatusCode, String, Option<String>) {
    let mut req = Request::get(uri);
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, format!("Bearer {a}"));
    }
    let resp = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = resp.status();
    let cookie = resp.headers().get(header::SET_COOKIE).map(|v| v.to_str().unwrap().to_string());
    let body = String::from_utf8(to_bytes(resp.into_body(), 1 << 22).await.unwrap().to_vec()).unwrap();
    (status, body, cookie)
}

#[tokio::test]
async fn pages_list_filter_and_show_a_session_without_secrets_or_markup() {
    let dir = tempfile::tempdir().unwrap();
    let app = dashboard::router(state(store_with_jobs(dir.path(), 150).await, Some(TOKEN)));

    let (status, body, _) = get(&app, "/dashboard", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(get(&app, "/dashboard", Some("wrong")).await.0, StatusCode::UNAUTHORIZED);
    let (status, _, cookie) = get(&app, &format!("/dashboard?token={TOKEN}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(cookie.unwrap().contains("HttpOnly; SameSite=Strict"));

    let (status, body, _) = get(&app, "/dashboard", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("(152)") && body.contains("succeeded</a> (1)") && body.contains("queued</a> (150)"), "{body}");
    assert_eq!(body.matches("<tr><td><a href=\"/dashboard/jobs/").count(), 100, "one page of 100");
    assert!(body.contains("older →"), "a next page");
    let (_, older, _) = get(&app, "/dashboard?before=53", Some(TOKEN)).await;
    assert_eq!(older.matches("<tr><td><a href=\"/dashboard/jobs/").count(), 52);
    assert!(older.contains("https://github.com/acme/connectors/pull/12") && older.contains("12000 / 3400") && older.contains("$0.09"));

    let (_, failed, _) = get(&app, "/dashboard?state=failed", Some(TOKEN)).await;
    assert_eq!(failed.matches("<tr><td><a href=\"/dashboard/jobs/").count(), 1, "{failed}");
    assert_eq!(get(&app, "/dashboard?state=sideways", Some(TOKEN)).await.0, StatusCode::BAD_REQUEST);

    let (status, session, _) = get(&app, "/dashboard/jobs/1", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(session.contains("<code>schema.records_valid</code>") && session.contains("id is a string"), "{session}");
    assert!(session.contains("&lt;script&gt;") && !session.contains("<script>"), "markup in a transcript is text");
    assert!(session.contains("&lt;b&gt;Tidepool&lt;/b&gt;"), "markup in an issue title is text");
    assert!(session.contains("<code>connector.json</code>"), "the transcript is rendered Markdown");
    assert!(
        session.contains("generating 32.0s → spec_tests 8.0s → &lt;pushing&gt; 0.9s")
            && session.contains("model 30.5s, spec tests 9.5s, the bot's own work 1.0s"),
        "phase durations and the time split are shown, escaped: {session}"
    );
    let (_, failed_job, _) = get(&app, "/dashboard/jobs/2", Some(TOKEN)).await;
    for page in [&body, &older, &session, &failed_job] {
        assert!(!page.contains(LEAK), "a token-shaped value reached a page");
    }
    assert!(failed_job.contains("the LLM agent gave up"));
    assert_eq!(get(&app, "/dashboard/jobs/9999", Some(TOKEN)).await.0, StatusCode::NOT_FOUND);
}

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"].iter().map(PathBuf::from).find(|p| p.is_file())
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    let n = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (n(16), n(20))
}

fn browser(args: &[&str]) -> std::process::Output {
    let bin = chromium().expect("checked by the caller");
    let profile = tempfile::tempdir().unwrap();
    Command::new(bin)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_chromium_renders_the_pages() {
    let Some(_) = chromium() else {
        assert!(std::env::var_os("CI").is_none(), "CI must have Debian's chromium (.ci/run installs it)");
        eprintln!("skipping: no chromium here (apt-get install chromium)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let app = dashboard::router(state(store_with_jobs(dir.path(), 20).await, Some(TOKEN)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let shots = tempfile::tempdir().unwrap();
    let (all_png, failed_png) = (shots.path().join("all.png"), shots.path().join("failed.png"));
    let (b, a, f) = (base.clone(), all_png.clone(), failed_png.clone());
    let (dom, shot_all, shot_failed) = tokio::task::spawn_blocking(move || {
        let dom = browser(&["--dump-dom", &format!("{b}/dashboard/jobs/1?token={TOKEN}")]);
        let all = browser(&["--window-size=1280,900", &format!("--screenshot={}", a.display()), &format!("{b}/dashboard?token={TOKEN}")]);
        let failed = browser(&["--window-size=1280,900", &format!("--screenshot={}", f.display()), &format!("{b}/dashboard?state=failed&token={TOKEN}")]);
        (dom, all, failed)
    })
    .await
    .unwrap();
    server.abort();

    let dom_text = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.status.success(), "{}", String::from_utf8_lossy(&dom.stderr));
    assert!(dom_text.contains("schema.records_valid") && dom_text.contains("Transcript"), "{dom_text}");
    assert!(!dom_text.contains("<script>alert"), "no script element reached the browser's DOM");
    assert!(!dom_text.contains(LEAK));
    for (out, png) in [(&shot_all, &all_png), (&shot_failed, &failed_png)] {
        assert!(out.status.success() && png.is_file(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let (all, failed) = (std::fs::read(&all_png).unwrap(), std::fs::read(&failed_png).unwrap());
    assert_eq!(png_size(&all), (1280, 900));
    assert_eq!(png_size(&failed), (1280, 900));
    // A blank or unstyled page compresses to almost nothing; a table of 22 jobs does not.
    assert!(all.len() > 20_000, "the screenshot looks empty ({} bytes)", all.len());
    assert!(all.len() > failed.len() + 5_000, "the full list shows more than the one failed job ({} vs {} bytes)", all.len(), failed.len());
}

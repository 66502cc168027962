//! Settings: environment over factory.toml, every missing setting named at once, and
//! `connector-factory serve` from start to a clean stop.

#[path = "support/fake_github/keys.rs"]
#[allow(dead_code)] // only the private key is needed here
mod keys;

use connector_factory::config::{LlmProvider, Settings, Source};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PEM: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END RSA PRIVATE KEY-----\n";

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn environment_wins_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("app.pem");
    std::fs::write(&key, PEM).unwrap();
    let file = dir.path().join("factory.toml");
    std::fs::write(
        &file,
        format!(
            "[github]\napp_id = 11\nprivate_key = \"{}\"\nwebhook_secret = \"from-file\"\n\
             [worker]\nconcurrency = 4\njob_timeout_secs = 60\n[server]\nbind = \"127.0.0.1:4000\"\n\
             [llm]\nprovider = \"openai\"\napi_key = \"sk-file\"\nmodel = \"gpt-x\"\n",
            key.display()
        ),
    )
    .unwrap();
    let s = Settings::load(&Source::new(env(&[("GITHUB_APP_ID", "22"), ("FACTORY_CONCURRENCY", "3")]), Some(&file)));
    assert!(s.problems().is_empty(), "{:?}", s.problems());
    assert_eq!(s.app_id, Some(22), "environment wins");
    assert_eq!(s.concurrency, 3);
    assert_eq!(s.job_timeout, Duration::from_secs(60), "file fills the rest");
    assert_eq!(s.bind.to_string(), "127.0.0.1:4000");
    assert_eq!(s.private_key.as_ref().unwrap().expose(), PEM, "a path is read");
    assert_eq!(s.llm.provider, Some(LlmProvider::Openai));
    assert_eq!(s.llm.model.as_deref(), Some("gpt-x"));
    let creds = s.require_serve().unwrap();
    assert_eq!(creds.webhook_secret.expose(), "from-file");
    // Nothing secret shows in debug output.
    let shown = format!("{s:?} {creds:?}");
    assert!(!shown.contains("from-file") && !shown.contains("MIIB") && !shown.contains("sk-file"), "{shown}");
}

#[test]
fn every_missing_and_invalid_setting_is_reported_together() {
    let s = Settings::load(&Source::new(
        env(&[("FACTORY_CONCURRENCY", "lots"), ("FACTORY_LLM_PROVIDER", "anthropic"), ("FACTORY_BIND", "localhost")]),
        None,
    ));
    let err = s.require_serve().unwrap_err();
    let names: Vec<&str> = err.problems.iter().map(|p| p.env).collect();
    for name in [
        "GITHUB_APP_ID",
        "GITHUB_PRIVATE_KEY",
        "GITHUB_WEBHOOK_SECRET",
        "FACTORY_CONCURRENCY",
        "FACTORY_BIND",
        "ANTHROPIC_API_KEY",
    ] {
        assert!(names.contains(&name), "{name} not reported: {err}");
    }
    let text = err.to_string();
    assert!(
        text.contains("FACTORY_CONCURRENCY (or worker.concurrency in factory.toml): expected a whole number"),
        "{text}"
    );
    assert!(
        text.contains("GITHUB_APP_ID (or github.app_id in factory.toml): missing: the GitHub App's numeric id"),
        "{text}"
    );
}

#[test]
fn a_bad_private_key_is_reported_without_its_content() {
    let s = Settings::load(&Source::new(env(&[("GITHUB_PRIVATE_KEY", "-----BEGIN nonsense topsecretvalue")]), None));
    let text = s.require_serve().unwrap_err().to_string();
    assert!(text.contains("GITHUB_PRIVATE_KEY") && text.contains("does not look like a PEM private key"), "{text}");
    assert!(!text.contains("topsecretvalue"), "{text}");
}

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_connector-factory"));
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd
}

#[test]
fn serve_without_settings_exits_2_naming_each_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin().arg("serve").current_dir(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for (name, about) in [
        ("GITHUB_APP_ID", "numeric id"),
        ("GITHUB_PRIVATE_KEY", "private key"),
        ("GITHUB_WEBHOOK_SECRET", "webhook secret"),
    ] {
        assert!(stderr.lines().any(|l| l.contains(name) && l.contains(about)), "{name}: {stderr}");
    }
    assert!(!dir.path().join(".factory").exists(), "nothing is created before the settings are complete");
}

/// Kills the child if the test fails before stopping it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn serve_starts_answers_health_checks_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Running(
        bin()
            .arg("serve")
            .current_dir(dir.path())
            .env("GITHUB_APP_ID", "1234")
            // serve checks the key at start-up, so this one must be a real RSA key.
            .env("GITHUB_PRIVATE_KEY", &keys::TestKey::shared().private_pem)
            .env("GITHUB_WEBHOOK_SECRET", "s3cret")
            .env("FACTORY_BIND", format!("127.0.0.1:{port}"))
            .env("FACTORY_LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let client = reqwest::blocking::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build().unwrap();
    let start = Instant::now();
    let health = loop {
        match client.get(format!("http://127.0.0.1:{port}/healthz")).send() {
            Ok(res) => break res,
            Err(_) if start.elapsed() < Duration::from_secs(20) => std::thread::sleep(Duration::from_millis(50)),
            Err(err) => panic!("serve never answered: {err}"),
        }
    };
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<serde_json::Value>().unwrap()["db"], "ok");
    assert!(Path::new(&dir.path().join(".factory/factory.db")).is_file(), "the default database is created");

    // Two deliveries, one forged, then the metrics and the dashboard.
    let base = format!("http://127.0.0.1:{port}");
    let body = br#"{"zen":"Keep it logically awesome.","hook_id":1,"hook":{}}"#.to_vec();
    let post = |sig: String| {
        client
            .post(format!("{base}/webhook"))
            .header("content-type", "application/json")
            .header("x-github-event", "ping")
            .header("x-github-delivery", "metrics-1")
            .header("x-hub-signature-256", sig)
            .body(body.clone())
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(post(connector_factory::server::webhook::sign(b"s3cret", &body)), 202);
    assert_eq!(post(connector_factory::server::webhook::sign(b"forged", &body)), 401);
    let metrics = client.get(format!("{base}/metrics")).send().unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(metrics.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = metrics.text().unwrap();
    for want in [
        "# TYPE factory_webhooks_received_total counter",
        "factory_webhooks_received_total{event=\"ping\"} 1",
        "factory_webhooks_rejected_total{reason=\"signature\"} 1",
        "factory_jobs{state=\"queued\"} 0",
        "# TYPE factory_job_duration_seconds histogram",
        "factory_github_requests_total ",
        "factory_llm_cost_dollars_total",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "not a sample line: {line}");
    }
    let dashboard = client.get(format!("{base}/dashboard")).send().unwrap();
    assert_eq!(dashboard.status(), 200, "on a loopback address the dashboard needs no token");

    // SAFETY: signalling a child process this test started.
    unsafe { libc::kill(child.0.id() as libc::pid_t, libc::SIGTERM) };
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut logs = String::new();
    child.0.stdout.take().unwrap().read_to_string(&mut logs).unwrap();
    child.0.stderr.take().unwrap().read_to_string(&mut logs).unwrap();
    assert!(status.success(), "{status:?}\n{logs}");
    assert!(!logs.contains("s3cret") && !logs.contains("MIIB"), "{logs}");
    // JSON logs: every line an object; the intake line names its delivery.
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{line}");
    }
    assert!(
        logs.lines().any(|l| l.contains("\"webhook accepted\"") && l.contains("\"delivery\":\"metrics-1\"")),
        "{logs}"
    );
}

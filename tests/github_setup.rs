//! `connector-factory setup`: the manifest page, GitHub's redirect, the code exchange against the
//! fake GitHub, and the files it writes (which `serve`'s settings then accept).

mod support;

use connector_factory::config::{Settings, Source};
use connector_factory::setup::{self, SetupOptions};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use support::fake_github::FakeGitHub;

fn options(api_url: &str, out: &Path) -> SetupOptions {
    SetupOptions {
        name: "Connector Factory".into(),
        webhook_url: "https://factory.example.com/webhook".into(),
        homepage: None,
        org: Some("acme".into()),
        github_url: "https://github.com".into(),
        api_url: api_url.into(),
        out: out.to_path_buf(),
        force: false,
    }
}

/// The `value` of the page's hidden `manifest` input, unescaped.
fn manifest_from(html: &str) -> Value {
    let start = html.find("name=\"manifest\" value=\"").unwrap() + "name=\"manifest\" value=\"".len();
    let end = start + html[start..].find('"').unwrap();
    let raw = html[start..end]
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    serde_json::from_str(&raw).unwrap()
}

fn state_from(html: &str) -> String {
    let start = html.find("state=").unwrap() + "state=".len();
    html[start..].chars().take_while(|c| c.is_ascii_alphanumeric()).collect()
}

fn env_file(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_string(), v.trim_matches('\'').to_string())
        })
        .collect()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn the_whole_flow_writes_credentials_serve_accepts() {
    let fake = FakeGitHub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(".factory/app.env");
    let server = setup::start(options(&fake.url(), &out), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let http = reqwest::Client::new();

    let page = http.get(server.url()).send().await.unwrap();
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(html.contains("action=\"https://github.com/organizations/acme/settings/apps/new?state="), "{html}");
    let manifest = manifest_from(&html);
    assert_eq!(manifest["hook_attributes"]["url"], "https://factory.example.com/webhook");
    assert_eq!(manifest["redirect_url"], format!("http://{}/callback", server.addr));
    assert_eq!(manifest["public"], false);
    assert_eq!(manifest["default_permissions"]["contents"], "write");
    assert_eq!(manifest["default_permissions"]["checks"], "read");
    assert_eq!(manifest["default_permissions"]["actions"], "write", "the Actions executor dispatches and cancels runs");
    assert!(manifest["default_events"].as_array().unwrap().contains(&"workflow_run".into()));
    let state = state_from(&html);

    // A redirect that does not carry our state is refused and changes nothing.
    let stray = http.get(format!("http://{}/callback?code=abc&state=wrong", server.addr)).send().await.unwrap();
    assert_eq!(stray.status(), 400);
    assert!(!out.exists());

    // GitHub's redirect after the user confirmed.
    fake.add_manifest_code("abc123");
    let done = http.get(format!("http://{}/callback?code=abc123&state={state}", server.addr)).send().await.unwrap();
    assert_eq!(done.status(), 200);
    let written = server.wait(Duration::from_secs(5)).await.unwrap();

    let app = &fake.converted_apps()[0];
    assert_eq!(written.app_id, app.app.id);
    assert_eq!(written.env_file, out);
    assert_eq!(std::fs::read_to_string(&written.key_file).unwrap(), app.pem);
    #[cfg(unix)]
    {
        assert_eq!(mode(&out), 0o600);
        assert_eq!(mode(&written.key_file), 0o600);
    }
    let env = env_file(&out);
    assert_eq!(env["GITHUB_APP_ID"], app.app.id.to_string());
    assert_eq!(env["GITHUB_WEBHOOK_SECRET"], app.webhook_secret);
    assert_eq!(Path::new(&env["GITHUB_PRIVATE_KEY"]), std::fs::canonicalize(&written.key_file).unwrap());
    assert_eq!(env["GITHUB_API_URL"], fake.url());
    assert!(!std::fs::read_to_string(&out).unwrap().contains(&app.client_secret));

    // `serve` reads exactly these variables.
    let settings = Settings::load(&Source::new(env.clone(), None));
    let credentials = settings.require_serve().unwrap();
    assert_eq!(credentials.app_id, app.app.id);
    assert_eq!(credentials.private_key.expose(), app.pem);

    let exchange = fake.requests_to("/app-manifests/");
    assert_eq!(exchange.len(), 1);
    assert_eq!(exchange[0].method, "POST");
    assert_eq!(exchange[0].status, 201);
}

#[tokio::test]
async fn an_existing_env_file_is_kept_unless_forced() {
    let fake = FakeGitHub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("app.env");
    std::fs::write(&out, "GITHUB_APP_ID=1\n").unwrap();
    let refused = setup::start(options(&fake.url(), &out), "127.0.0.1:0".parse().unwrap()).await;
    assert!(refused.err().unwrap().to_string().contains("--force"));
    assert!(setup::start(options(&fake.url(), &out), "0.0.0.0:0".parse().unwrap()).await.is_err());

    fake.add_manifest_code("c1");
    let conv = setup::exchange_code(&fake.url(), "c1").await.unwrap();
    assert!(setup::write_credentials(&out, &fake.url(), &conv, false).is_err());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "GITHUB_APP_ID=1\n");
    let written = setup::write_credentials(&out, &fake.url(), &conv, true).unwrap();
    assert_eq!(env_file(&written.env_file)["GITHUB_APP_ID"], conv.id.to_string());
}

#[tokio::test]
async fn a_used_or_unknown_code_is_an_error() {
    let fake = FakeGitHub::start().await;
    fake.add_manifest_code("once");
    setup::exchange_code(&fake.url(), "once").await.unwrap();
    let err = setup::exchange_code(&fake.url(), "once").await.unwrap_err();
    assert!(format!("{err:#}").contains("single-use"), "{err:#}");
    assert!(setup::exchange_code(&fake.url(), "never-issued").await.is_err());
}

#[test]
fn the_setup_subcommand_is_wired_and_refuses_a_public_bind() {
    let bin = env!("CARGO_BIN_EXE_connector-factory");
    let help = std::process::Command::new(bin).args(["setup", "--help"]).output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--webhook-url"));
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin)
        .args(["setup", "--webhook-url", "https://x.example/webhook", "--bind", "0.0.0.0:0", "--out"])
        .arg(dir.path().join("app.env"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

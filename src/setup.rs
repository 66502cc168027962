//! `connector-factory setup`: creates the GitHub App with GitHub's manifest flow.
//!
//! 1. A page on 127.0.0.1 posts the app manifest (name, webhook URL, permissions, events) to
//!    GitHub's "new app" form, for the user's account or an organization.
//! 2. The user confirms on GitHub, which redirects back to this server with a one-time `code`
//!    and the `state` the page sent (checked, so no other page can feed us a code).
//! 3. The code is exchanged at `POST /app-manifests/{code}/conversions` for the app's id, private
//!    key and webhook secret, which are written to an env file (default `.factory/app.env`) and a
//!    PEM file beside it, both 0600. Nothing secret is printed.

use crate::config::Secret;
use crate::github::client::{Api, Auth, segment};
use anyhow::{Context, Result, bail};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(clap::Args, Debug, Clone)]
pub struct SetupArgs {
    /// Where GitHub sends webhooks: the public URL of `serve`'s /webhook endpoint.
    #[arg(long)]
    pub webhook_url: String,
    /// The app's name on GitHub (unique across GitHub).
    #[arg(long, default_value = "Connector Factory")]
    pub name: String,
    /// The app's homepage (default: the webhook URL's origin).
    #[arg(long)]
    pub homepage: Option<String>,
    /// Create the app under this organization instead of your own account.
    #[arg(long)]
    pub org: Option<String>,
    /// GitHub's web address (GitHub Enterprise Server: your server).
    #[arg(long, default_value = "https://github.com")]
    pub github_url: String,
    /// GitHub's REST API base URL.
    #[arg(long, env = "GITHUB_API_URL", default_value = crate::config::DEFAULT_API_URL)]
    pub api_url: String,
    /// Where the local setup page listens; must be a loopback address.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub bind: SocketAddr,
    /// The env file to write; the private key goes beside it.
    #[arg(long, default_value = ".factory/app.env")]
    pub out: PathBuf,
    /// Replace an existing env file and key.
    #[arg(long)]
    pub force: bool,
    /// Give up after this many seconds without GitHub's redirect.
    #[arg(long, default_value_t = 1800)]
    pub timeout_secs: u64,
}

/// What the app manifest says and where the results go.
#[derive(Debug, Clone)]
pub struct SetupOptions {
    pub name: String,
    pub webhook_url: String,
    pub homepage: Option<String>,
    pub org: Option<String>,
    pub github_url: String,
    pub api_url: String,
    pub out: PathBuf,
    pub force: bool,
}

impl From<&SetupArgs> for SetupOptions {
    fn from(a: &SetupArgs) -> Self {
        SetupOptions {
            name: a.name.clone(),
            webhook_url: a.webhook_url.clone(),
            homepage: a.homepage.clone(),
            org: a.org.clone(),
            github_url: a.github_url.clone(),
            api_url: a.api_url.clone(),
            out: a.out.clone(),
            force: a.force,
        }
    }
}

/// Permissions the bot needs. No `workflows`: the bot never writes `.github/workflows`, and
/// without the permission GitHub refuses any push that would. Actions `write` lets the Actions
/// executor start and cancel `generate.yml` runs; reading runs and artifacts needs only `read`.
pub fn permissions() -> Value {
    json!({
        "issues": "write",
        "pull_requests": "write",
        "contents": "write",
        "metadata": "read",
        "actions": "write",
        "checks": "read"
    })
}

pub const EVENTS: [&str; 5] = ["issues", "issue_comment", "pull_request", "workflow_run", "check_suite"];

fn http_url(value: &str, what: &str) -> Result<url::Url> {
    let url = url::Url::parse(value).with_context(|| format!("{what} '{value}' is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!("{what} '{value}' must be an http(s) URL");
    }
    Ok(url)
}

/// The manifest GitHub's form receives.
pub fn manifest(opts: &SetupOptions, redirect_url: &str) -> Result<Value> {
    let hook = http_url(&opts.webhook_url, "the webhook URL")?;
    let homepage = match &opts.homepage {
        Some(h) => http_url(h, "the homepage")?.to_string(),
        None => hook.origin().ascii_serialization(),
    };
    Ok(json!({
        "name": opts.name,
        "url": homepage,
        "description": "Turns connector requests into pull requests with tested API connectors.",
        "hook_attributes": { "url": hook.as_str(), "active": true },
        "redirect_url": redirect_url,
        "public": false,
        "default_permissions": permissions(),
        "default_events": EVENTS
    }))
}

/// Where the form posts: the user's or the organization's "new GitHub App" page.
pub fn form_action(opts: &SetupOptions, state: &str) -> String {
    let base = opts.github_url.trim_end_matches('/');
    let state = url::form_urlencoded::byte_serialize(state.as_bytes()).collect::<String>();
    match &opts.org {
        Some(org) => format!("{base}/organizations/{}/settings/apps/new?state={state}", segment(org)),
        None => format!("{base}/settings/apps/new?state={state}"),
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// The page that sends the browser to GitHub with the manifest.
pub fn page(opts: &SetupOptions, state: &str, redirect_url: &str) -> Result<String> {
    let manifest = manifest(opts, redirect_url)?;
    Ok(format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Create the GitHub App</title></head>
<body>
<form id="manifest-form" method="post" action="{action}">
<input type="hidden" name="manifest" value="{manifest}">
<p>Taking you to GitHub to create the app <strong>{name}</strong>…</p>
<noscript><button type="submit">Create the GitHub App on GitHub</button></noscript>
</form>
<script>document.getElementById("manifest-form").submit();</script>
</body></html>
"#,
        action = html_escape(&form_action(opts, state)),
        manifest = html_escape(&manifest.to_string()),
        name = html_escape(&opts.name),
    ))
}

/// What `POST /app-manifests/{code}/conversions` hands back.
#[derive(Debug, Clone)]
pub struct Conversion {
    pub id: u64,
    pub slug: String,
    pub name: String,
    pub html_url: String,
    pub pem: Secret,
    pub webhook_secret: Option<Secret>,
}

#[derive(Deserialize)]
struct ConversionBody {
    id: u64,
    #[serde(default)]
    slug: Option<String>,
    name: String,
    html_url: String,
    pem: String,
    webhook_secret: Option<String>,
}

/// Trades the redirect's one-time code for the app's credentials.
pub async fn exchange_code(api_url: &str, code: &str) -> Result<Conversion> {
    let api = Api::new(api_url)?;
    let path = format!("/app-manifests/{}/conversions", segment(code));
    let body: ConversionBody = api
        .send(http::Method::POST, &path, None, Auth::None)
        .await?
        .success()
        .context("GitHub did not accept the setup code (codes are single-use and expire after an hour)")?
        .json()?;
    Ok(Conversion {
        id: body.id,
        slug: body.slug.unwrap_or_default(),
        name: body.name,
        html_url: body.html_url,
        pem: Secret::new(body.pem),
        webhook_secret: body.webhook_secret.filter(|s| !s.is_empty()).map(Secret::new),
    })
}

/// The files setup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub app_id: u64,
    pub slug: String,
    pub html_url: String,
    pub env_file: PathBuf,
    pub key_file: PathBuf,
}

/// The key file beside the env file.
pub fn key_path(env_file: &Path, slug: &str) -> PathBuf {
    let name = if slug.is_empty() { "github-app".to_string() } else { slug.to_string() };
    env_file.with_file_name(format!("{name}.private-key.pem"))
}

fn refuse_existing(path: &Path, force: bool) -> Result<()> {
    if path.exists() && !force {
        bail!("{} already exists; pass --force to replace it", path.display());
    }
    Ok(())
}

/// Shell-safe value for an env file line.
fn env_value(v: &str) -> String {
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-:+@%,".contains(&b)) {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', r"'\''"))
    }
}

/// Writes `contents` to `path` with mode 0600, through a temporary file in the same folder so a
/// crash never leaves half a key behind.
fn write_private(path: &Path, contents: &str, force: bool) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // tempfile creates its files 0600 on Unix.
    let mut tmp = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("writing in {}", dir.display()))?;
    tmp.write_all(contents.as_bytes())?;
    tmp.as_file().sync_all()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o600))?;
    }
    let persisted = if force { tmp.persist(path) } else { tmp.persist_noclobber(path) };
    persisted.map_err(|e| e.error).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Writes the PEM and the env file pointing at it.
pub fn write_credentials(out: &Path, api_url: &str, conv: &Conversion, force: bool) -> Result<Written> {
    let key_file = key_path(out, &conv.slug);
    refuse_existing(out, force)?;
    refuse_existing(&key_file, force)?;
    write_private(&key_file, conv.pem.expose(), force)?;
    let key_abs = std::fs::canonicalize(&key_file).unwrap_or_else(|_| key_file.clone());
    let mut env = format!(
        "# GitHub App \"{}\" ({}), created by `connector-factory setup`.\n\
         # Load it into serve's environment, e.g.: set -a; . {}; set +a\n\
         GITHUB_APP_ID={}\n\
         GITHUB_PRIVATE_KEY={}\n",
        conv.name.replace('\n', " "),
        conv.html_url,
        out.display(),
        conv.id,
        env_value(&key_abs.to_string_lossy()),
    );
    match &conv.webhook_secret {
        Some(secret) => env.push_str(&format!("GITHUB_WEBHOOK_SECRET={}\n", env_value(secret.expose()))),
        None => env.push_str(
            "# GitHub returned no webhook secret: set one in the App's settings and add GITHUB_WEBHOOK_SECRET here.\n",
        ),
    }
    if api_url.trim_end_matches('/') != crate::config::DEFAULT_API_URL {
        env.push_str(&format!("GITHUB_API_URL={}\n", env_value(api_url)));
    }
    write_private(out, &env, force)?;
    Ok(Written {
        app_id: conv.id,
        slug: conv.slug.clone(),
        html_url: conv.html_url.clone(),
        env_file: out.to_path_buf(),
        key_file,
    })
}

struct Flow {
    opts: SetupOptions,
    state: String,
    redirect_url: String,
    done: Mutex<Option<tokio::sync::oneshot::Sender<Result<Written>>>>,
}

/// The running local server.
pub struct SetupServer {
    pub addr: SocketAddr,
    done: tokio::sync::oneshot::Receiver<Result<Written>>,
    stop: tokio_util::sync::CancellationToken,
}

impl SetupServer {
    /// The page to open in a browser.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Waits for GitHub's redirect and the files, then stops the server.
    pub async fn wait(self, timeout: Duration) -> Result<Written> {
        let outcome = tokio::time::timeout(timeout, self.done).await;
        self.stop.cancel();
        match outcome {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => bail!("the setup server stopped unexpectedly"),
            Err(_) => bail!("no redirect from GitHub within {}s; run setup again", timeout.as_secs()),
        }
    }
}

/// Starts the local page and callback. Refuses non-loopback addresses (the callback writes
/// secrets) and an existing env file unless `force`.
pub async fn start(opts: SetupOptions, bind: SocketAddr) -> Result<SetupServer> {
    if !bind.ip().is_loopback() {
        bail!("setup listens on loopback only; {bind} is not a loopback address");
    }
    refuse_existing(&opts.out, opts.force)?;
    let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| format!("binding {bind}"))?;
    let addr = listener.local_addr()?;
    let redirect_url = format!("http://{addr}/callback");
    // Checks the options now rather than in the browser.
    manifest(&opts, &redirect_url)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let flow = Arc::new(Flow {
        opts,
        state: format!("{:032x}", rand::random::<u128>()),
        redirect_url,
        done: Mutex::new(Some(tx)),
    });
    let app = Router::new().route("/", get(show_page)).route("/callback", get(callback)).with_state(flow);
    let stop = tokio_util::sync::CancellationToken::new();
    let stopped = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(stopped.cancelled_owned()).await;
    });
    Ok(SetupServer { addr, done: rx, stop })
}

fn no_store(status: StatusCode, body: String) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store"), (header::REFERRER_POLICY, "no-referrer")], Html(body))
        .into_response()
}

async fn show_page(State(flow): State<Arc<Flow>>) -> Response {
    match page(&flow.opts, &flow.state, &flow.redirect_url) {
        Ok(html) => no_store(StatusCode::OK, html),
        Err(err) => no_store(StatusCode::INTERNAL_SERVER_ERROR, format!("<p>{}</p>", html_escape(&format!("{err:#}")))),
    }
}

#[derive(Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
}

async fn callback(State(flow): State<Arc<Flow>>, Query(q): Query<Callback>) -> Response {
    if q.state.as_deref() != Some(flow.state.as_str()) {
        // Not from our page: ignore it and keep waiting for the real redirect.
        return no_store(StatusCode::BAD_REQUEST, "<p>This link does not belong to this setup run.</p>".into());
    }
    let Some(code) = q.code.filter(|c| !c.is_empty()) else {
        return no_store(StatusCode::BAD_REQUEST, "<p>GitHub's redirect carried no code.</p>".into());
    };
    let Some(done) = flow.done.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return no_store(StatusCode::CONFLICT, "<p>This setup run has already finished.</p>".into());
    };
    let result = match exchange_code(&flow.opts.api_url, &code).await {
        Ok(conv) => write_credentials(&flow.opts.out, &flow.opts.api_url, &conv, flow.opts.force),
        Err(err) => Err(err),
    };
    let page = match &result {
        Ok(w) => no_store(
            StatusCode::OK,
            format!(
                "<p>The GitHub App <a href=\"{url}\">{slug}</a> exists; its credentials are in <code>{env}</code>.</p>\
                 <p>Next: <a href=\"{url}/installations/new\">install it</a> on the repository, then start <code>connector-factory serve</code>. You can close this tab.</p>",
                url = html_escape(&w.html_url),
                slug = html_escape(&w.slug),
                env = html_escape(&w.env_file.display().to_string()),
            ),
        ),
        Err(err) => {
            no_store(StatusCode::BAD_GATEWAY, format!("<p>Setup failed: {}</p>", html_escape(&format!("{err:#}"))))
        }
    };
    let _ = done.send(result);
    page
}

pub fn run(args: SetupArgs) -> Result<u8> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let server = start(SetupOptions::from(&args), args.bind).await?;
        println!("Open {} in a browser signed in to GitHub to create the app.", server.url());
        let written = server.wait(Duration::from_secs(args.timeout_secs)).await?;
        println!("Created the GitHub App '{}' (id {}): {}", written.slug, written.app_id, written.html_url);
        println!("Wrote {} and {} (mode 0600).", written.env_file.display(), written.key_file.display());
        println!("Install it on your repository: {}/installations/new", written.html_url);
        Ok(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> SetupOptions {
        SetupOptions {
            name: "Factory <test>".into(),
            webhook_url: "https://hooks.example.com/webhook".into(),
            homepage: None,
            org: None,
            github_url: "https://github.com".into(),
            api_url: "https://api.github.com".into(),
            out: PathBuf::from(".factory/app.env"),
            force: false,
        }
    }

    #[test]
    fn manifest_fields() {
        let m = manifest(&opts(), "http://127.0.0.1:9/callback").unwrap();
        assert_eq!(m["url"], "https://hooks.example.com");
        assert_eq!(m["hook_attributes"]["url"], "https://hooks.example.com/webhook");
        assert_eq!(m["public"], false);
        assert_eq!(m["default_permissions"]["pull_requests"], "write");
        assert_eq!(m["default_events"].as_array().unwrap().len(), 5);
        assert!(manifest(&SetupOptions { webhook_url: "ftp://x".into(), ..opts() }, "x").is_err());
    }

    #[test]
    fn form_targets() {
        assert_eq!(form_action(&opts(), "abc"), "https://github.com/settings/apps/new?state=abc");
        let org = SetupOptions { org: Some("acme corp".into()), ..opts() };
        assert_eq!(
            form_action(&org, "abc"),
            "https://github.com/organizations/acme%20corp/settings/apps/new?state=abc"
        );
    }

    #[test]
    fn page_escapes() {
        let html = page(&opts(), "s1", "http://127.0.0.1:9/callback").unwrap();
        assert!(html.contains("Factory &lt;test&gt;"));
        assert!(html.contains("&quot;hook_attributes&quot;"));
        assert!(!html.contains("\"hook_attributes\""));
    }

    #[test]
    fn env_values_are_quoted_when_needed() {
        assert_eq!(env_value("/a/b.pem"), "/a/b.pem");
        assert_eq!(env_value("/a b/it's.pem"), r"'/a b/it'\''s.pem'");
    }
}

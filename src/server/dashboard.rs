//! The sessions dashboard: server-rendered, read-only HTML over the job store.
//!
//! - `GET /dashboard`: counts per state (each a filter), and the jobs newest first, 100 a page
//!   (`?state=failed`, `?kind=generate`, `?before=<job id>` for the next page): kind, state,
//!   phase, issue and PR links, duration, tokens and cost.
//! - `GET /dashboard/jobs/{id}`: one session: the job's facts, its error, the spec-test report and
//!   the rendered transcript.
//!
//! With `FACTORY_DASHBOARD_TOKEN` set every page wants it, as `Authorization: Bearer <token>` or
//! once as `?token=` (which sets an HttpOnly, SameSite=Strict cookie). Everything shown is
//! escaped, Markdown is rendered with raw HTML turned into text, and every string passes the
//! transcript redactor, so a token pasted into an issue does not show here either.

use crate::agent::transcript::Redactor;
use crate::config::Secret;
use crate::store::{Job, JobFilter, JobId, JobKind, JobState, Store};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::Value;
use std::fmt::Write as _;
use std::sync::Arc;

pub const COOKIE: &str = "factory_dashboard";
const PAGE: u32 = 100;

#[derive(Clone)]
pub struct DashboardState {
    pub store: Arc<dyn Store>,
    /// `None`: no token asked (bind the server to loopback then).
    pub token: Option<Secret>,
    /// Where issue and PR links point, e.g. `https://github.com`.
    pub web_url: String,
}

pub fn router(state: DashboardState) -> Router {
    Router::new()
        .route("/dashboard", get(index))
        .route("/dashboard/jobs/{id}", get(job_page))
        .with_state(state)
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    state: Option<String>,
    kind: Option<String>,
    before: Option<i64>,
    token: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct TokenQuery {
    token: Option<String>,
}

fn same(a: &[u8], b: &[u8]) -> bool {
    // Constant time for equal lengths; the length itself is not a secret worth hiding.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `Ok(Some(cookie))` when the token came in the query and should be remembered.
#[allow(clippy::result_large_err)] // the error is the response itself
fn authorize(state: &DashboardState, headers: &HeaderMap, query_token: Option<&str>) -> Result<Option<String>, Response> {
    let Some(token) = &state.token else { return Ok(None) };
    let want = token.expose().as_bytes();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let cookie = headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        v.split(';').map(str::trim).find_map(|kv| kv.strip_prefix(&format!("{COOKIE}=")))
    });
    if bearer.is_some_and(|t| same(t.as_bytes(), want)) || cookie.is_some_and(|t| same(t.as_bytes(), want)) {
        return Ok(None);
    }
    if let Some(t) = query_token
        && same(t.as_bytes(), want)
    {
        return Ok(Some(format!("{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/dashboard", token.expose())));
    }
    Err((StatusCode::UNAUTHORIZED, Html(page("Sign in", "<p>This dashboard needs its token: open it as <code>/dashboard?token=…</code> or send <code>Authorization: Bearer …</code>.</p>"))).into_response())
}

fn with_cookie(mut r: Response, cookie: Option<String>) -> Response {
    if let Some(c) = cookie
        && let Ok(v) = HeaderValue::from_str(&c)
    {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r.headers_mut().insert("content-security-policy", HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"));
    r.headers_mut().insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · Connector Factory</title><style>{STYLE}</style></head><body><header><a href=\"/dashboard\">🏭 Connector Factory</a> · sessions</header><main><h1>{}</h1>{body}</main></body></html>",
        esc(title),
        esc(title)
    )
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}\
header{background:#24292f;color:#fff;padding:10px 20px}header a{color:#fff;text-decoration:none;font-weight:600}\
main{padding:16px 20px}table{border-collapse:collapse;width:100%;background:#fff}\
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}th{background:#eaeef2}\
.s-succeeded{color:#1a7f37}.s-failed{color:#cf222e}.s-running{color:#9a6700}.s-queued{color:#57606a}\
.s-cancelled,.s-superseded{color:#6e7781}.counts a{margin-right:14px}pre{background:#fff;border:1px solid #d0d7de;padding:8px;overflow:auto;white-space:pre-wrap}\
.transcript{background:#fff;border:1px solid #d0d7de;padding:8px 16px}";

fn duration(job: &Job) -> String {
    match (job.started_at, job.finished_at) {
        (Some(a), Some(b)) => crate::pipeline::status::human_duration((b - a).to_std().unwrap_or_default()),
        (Some(_), None) => "running".into(),
        _ => "-".into(),
    }
}

fn usage(result: &Value) -> (String, String) {
    let u = &result["usage"];
    match (u["input_tokens"].as_u64(), u["output_tokens"].as_u64()) {
        (Some(i), Some(o)) => (
            format!("{i} / {o}"),
            u["cost_usd"].as_f64().map(|c| format!("${c:.2}")).unwrap_or_else(|| "-".into()),
        ),
        _ => ("-".into(), "-".into()),
    }
}

fn issue_link(state: &DashboardState, job: &Job, r: &Redactor) -> String {
    match job.issue_number {
        Some(n) if job.repository.contains('/') => format!(
            "<a href=\"{}/{}/issues/{n}\">{}#{n}</a>",
            esc(&state.web_url),
            esc(&job.repository),
            esc(&r.text(&job.repository))
        ),
        Some(n) => format!("{}#{n}", esc(&job.repository)),
        None => esc(&job.repository),
    }
}

fn pr_link(result: &Value) -> String {
    match (result["pr"]["url"].as_str(), result["pr"]["number"].as_u64()) {
        (Some(url), Some(n)) if url.starts_with("https://") || url.starts_with("http://") => {
            format!("<a href=\"{}\">#{n}</a>", esc(url))
        }
        (_, Some(n)) => format!("#{n}"),
        _ => "-".into(),
    }
}

async fn index(State(state): State<DashboardState>, headers: HeaderMap, Query(q): Query<ListQuery>) -> Response {
    let cookie = match authorize(&state, &headers, q.token.as_deref()) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let states: Vec<JobState> = match q.state.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => match s.parse() {
            Ok(st) => vec![st],
            Err(_) => return (StatusCode::BAD_REQUEST, Html(page("Bad filter", &format!("<p>Unknown state <code>{}</code>; the states are {}.</p>", esc(s), JobState::ALL.map(|s| s.as_str()).join(", "))))).into_response(),
        },
        None => vec![],
    };
    let kinds: Vec<JobKind> = match q.kind.as_deref().filter(|s| !s.is_empty()) {
        Some(k) => match k.parse() {
            Ok(kind) => vec![kind],
            Err(_) => return (StatusCode::BAD_REQUEST, Html(page("Bad filter", &format!("<p>Unknown kind <code>{}</code>.</p>", esc(k))))).into_response(),
        },
        None => vec![],
    };
    let filter = JobFilter { states, kinds, limit: Some(PAGE), before: q.before.map(JobId), ..JobFilter::default() };
    let (jobs, counts) = match tokio::try_join!(state.store.list_jobs(&filter), state.store.job_counts()) {
        Ok(found) => found,
        Err(e) => {
            tracing::error!("dashboard: reading the store failed: {e:#}");
            return (StatusCode::SERVICE_UNAVAILABLE, Html(page("Unavailable", "<p>The job store could not be read.</p>"))).into_response();
        }
    };
    let r = Redactor::token_shapes();
    let mut body = String::from("<p class=\"counts\"><a href=\"/dashboard\">all</a>");
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    let _ = write!(body, " ({total}) ");
    for (st, n) in &counts {
        let _ = write!(body, "<a class=\"s-{0}\" href=\"/dashboard?state={0}\">{0}</a> ({n}) ", st.as_str());
    }
    body.push_str("</p><table><thead><tr><th>job</th><th>kind</th><th>state</th><th>phase</th><th>issue</th><th>PR</th><th>duration</th><th>tokens in / out</th><th>cost</th><th>created</th></tr></thead><tbody>");
    for job in &jobs {
        let result = job.result.clone().unwrap_or(Value::Null);
        let (tokens, cost) = usage(&result);
        let _ = write!(
            body,
            "<tr><td><a href=\"/dashboard/jobs/{id}\">{id}</a></td><td>{kind}</td><td class=\"s-{st}\">{st}</td><td>{phase}</td><td>{issue}</td><td>{pr}</td><td>{dur}</td><td>{tokens}</td><td>{cost}</td><td>{created}</td></tr>",
            id = job.id,
            kind = job.kind,
            st = job.state,
            phase = esc(&r.text(job.phase.as_deref().unwrap_or("-"))),
            issue = issue_link(&state, job, &r),
            pr = pr_link(&result),
            dur = duration(job),
            created = job.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
        );
    }
    body.push_str("</tbody></table>");
    if jobs.is_empty() {
        body.push_str("<p>No jobs.</p>");
    }
    if jobs.len() as u32 == PAGE
        && let Some(last) = jobs.last()
    {
        let mut next = format!("/dashboard?before={}", last.id);
        if let Some(s) = q.state.as_deref().filter(|s| !s.is_empty()) {
            let _ = write!(next, "&state={}", esc(s));
        }
        if let Some(k) = q.kind.as_deref().filter(|s| !s.is_empty()) {
            let _ = write!(next, "&kind={}", esc(k));
        }
        let _ = write!(body, "<p><a href=\"{next}\">older →</a></p>");
    }
    with_cookie(Html(page("Sessions", &body)).into_response(), cookie)
}

async fn job_page(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(q): Query<TokenQuery>,
) -> Response {
    let cookie = match authorize(&state, &headers, q.token.as_deref()) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let job = match state.store.get_job(JobId(id)).await {
        Ok(Some(job)) => job,
        Ok(None) => return (StatusCode::NOT_FOUND, Html(page("Not found", &format!("<p>There is no job {id}.</p>")))).into_response(),
        Err(e) => {
            tracing::error!("dashboard: reading job {id} failed: {e:#}");
            return (StatusCode::SERVICE_UNAVAILABLE, Html(page("Unavailable", "<p>The job store could not be read.</p>"))).into_response();
        }
    };
    let r = Redactor::token_shapes();
    let result = job.result.clone().unwrap_or(Value::Null);
    let (tokens, cost) = usage(&result);
    let text = |v: &Value| v.as_str().map(|s| esc(&r.text(s))).unwrap_or_else(|| "-".into());
    let mut body = String::from("<table><tbody>");
    let mut row = |k: &str, v: String| {
        let _ = write!(body, "<tr><th>{k}</th><td>{v}</td></tr>");
    };
    row("kind", job.kind.to_string());
    row("state", format!("<span class=\"s-{0}\">{0}</span>", job.state));
    row("phase", esc(&r.text(job.phase.as_deref().unwrap_or("-"))));
    row("verdict", text(&result["verdict"]));
    row("issue", issue_link(&state, &job, &r));
    row("title", text(&job.payload["issue"]["title"]));
    row("requested by", text(&job.payload["requested_by"]));
    row("pull request", pr_link(&result));
    row("branch", text(&result["branch"]));
    row("agent", text(&result["agent"]));
    row("duration", duration(&job));
    row("time", time_split(&result["timings"]));
    row("tokens in / out", tokens);
    row("cost", cost);
    row("attempts", job.attempts.to_string());
    row("created", job.created_at.format("%Y-%m-%d %H:%M:%S UTC").to_string());
    if let Some(e) = &job.error {
        row("error", format!("<pre>{}</pre>", esc(&r.text(e))));
    }
    body.push_str("</tbody></table>");

    if let Some(report) = result.get("spec_report").filter(|v| !v.is_null()) {
        body.push_str("<h2>Spec tests</h2>");
        for imp in report["implementations"].as_array().into_iter().flatten() {
            let _ = write!(
                body,
                "<h3>{}</h3><table><thead><tr><th>check</th><th>status</th><th>message</th></tr></thead><tbody>",
                esc(&r.text(imp["path"].as_str().unwrap_or("?")))
            );
            for c in imp["checks"].as_array().into_iter().flatten() {
                let status = c["status"].as_str().unwrap_or("?");
                let class = match status {
                    "passed" => "s-succeeded",
                    "failed" => "s-failed",
                    _ => "s-queued",
                };
                let _ = write!(
                    body,
                    "<tr><td><code>{}</code></td><td class=\"{class}\">{}</td><td>{}</td></tr>",
                    esc(c["id"].as_str().unwrap_or("?")),
                    esc(status),
                    esc(&r.text(c["message"].as_str().unwrap_or("")))
                );
            }
            body.push_str("</tbody></table>");
        }
    }
    match result["transcript"].as_str() {
        Some(t) => {
            let _ = write!(body, "<h2>Transcript</h2><div class=\"transcript\">{}</div>", markdown(&r.text(t)));
        }
        None => body.push_str("<h2>Transcript</h2><p>No LLM session (the builtin generator, or the job never reached one).</p>"),
    }
    with_cookie(Html(page(&format!("Job {}", job.id), &body)).into_response(), cookie)
}

/// A generate job's phases with their seconds, and how much was the model and the spec tests.
fn time_split(t: &Value) -> String {
    let Some(phases) = t["phases"].as_array().filter(|p| !p.is_empty()) else { return "-".into() };
    let secs = |v: &Value| v.as_f64().unwrap_or(0.0);
    let list: Vec<String> = phases
        .iter()
        .filter_map(|p| Some(format!("{} {:.1}s", esc(p[0].as_str()?), secs(&p[1]))))
        .collect();
    format!(
        "{}<br>model {:.1}s, spec tests {:.1}s{}, the bot's own work {:.1}s",
        list.join(" → "),
        secs(&t["model_seconds"]),
        secs(&t["spec_test_seconds"]),
        if t["spec_report_reused"] == true { " (the agent's passing run, reused)" } else { "" },
        secs(&t["overhead_seconds"])
    )
}

/// Markdown to HTML with every piece of raw HTML shown as text, and links limited to http(s).
pub fn markdown(md: &str) -> String {
    use pulldown_cmark::{Event, Options, Parser, Tag};
    let events = Parser::new_ext(md, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH).map(|e| match e {
        Event::Html(h) | Event::InlineHtml(h) => Event::Text(h),
        Event::Start(Tag::Link { link_type, dest_url, title, id })
            if !(dest_url.starts_with("https://") || dest_url.starts_with("http://")) =>
        {
            Event::Start(Tag::Link { link_type, dest_url: "#".into(), title, id })
        }
        Event::Start(Tag::Image { link_type, dest_url, title, id }) => {
            // No remote images: the page's policy blocks them anyway; show the address instead.
            let _ = (link_type, title, id);
            Event::Text(format!("[image: {dest_url}]").into())
        }
        Event::End(pulldown_cmark::TagEnd::Image) => Event::Text("".into()),
        other => other,
    });
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, events);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_html_in_markdown_is_shown_as_text() {
        let html = markdown("hi <script>alert(1)</script> **bold** [x](javascript:alert(1)) [y](https://ok.example)");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("<strong>bold</strong>"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(html.contains("href=\"https://ok.example\""), "{html}");
    }

    #[test]
    fn escaping_covers_attributes() {
        assert_eq!(esc("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }
}

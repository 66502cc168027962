//! Session transcripts: every event as one JSON line, secrets redacted before anything is kept,
//! and a Markdown rendering small enough for a PR `<details>` block.

use serde::Serialize;
use serde_json::{Map, Value, json};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// What replaces a secret.
pub const REDACTED: &str = "[REDACTED]";
/// Upper bound of the Markdown rendering, in characters.
pub const MARKDOWN_LIMIT: usize = 60_000;

/// Removes secrets from text: the configured values, and token shapes that are secrets
/// whatever their origin.
#[derive(Clone)]
pub struct Redactor {
    values: Vec<String>,
    patterns: Vec<regex::Regex>,
}

/// Keys whose values are secrets whatever they hold.
const SECRET_KEYS: &[&str] = &[
    "api_key", "apikey", "x-api-key", "authorization", "password", "client_secret", "access_token",
    "refresh_token", "secret", "token",
];

impl Redactor {
    /// Masks token shapes only (no known secret values): for text from outside, such as CI
    /// output or issue bodies.
    pub fn token_shapes() -> Redactor {
        Redactor::new(Vec::<String>::new())
    }

    pub fn new(secret_values: impl IntoIterator<Item = String>) -> Redactor {
        // Very short values would blank out ordinary words.
        let mut values: Vec<String> = secret_values.into_iter().filter(|v| v.trim().len() >= 4).collect();
        // Longest first, so a secret containing another is removed whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        let patterns = [
            r"sk-[A-Za-z0-9_\-]{12,}",                    // OpenAI / Anthropic (sk-ant-...) keys
            r"\b[rsp]k_(?:live|test)_[A-Za-z0-9]{8,}",    // Stripe-style keys
            r"\bgh[pousr]_[A-Za-z0-9]{20,}",              // GitHub tokens (ghp_, ghs_, ...)
            r"\bgithub_pat_[A-Za-z0-9_]{20,}",
            r"\bxox[abprs]-[A-Za-z0-9-]{10,}",            // Slack
            r"\bAKIA[0-9A-Z]{16}\b",                      // AWS access key ids
            r"(?i)\bbearer\s+[A-Za-z0-9._~+/=\-]{8,}",    // Authorization values
            r"(?i)\bbasic\s+[A-Za-z0-9+/=]{12,}",
            r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", // JWTs
        ]
        .iter()
        .map(|p| regex::Regex::new(p).expect("static pattern"))
        .collect();
        Redactor { values, patterns }
    }

    pub fn text(&self, s: &str) -> String {
        let mut out = s.to_string();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), REDACTED);
            }
        }
        for re in &self.patterns {
            if re.is_match(&out) {
                out = re.replace_all(&out, REDACTED).into_owned();
            }
        }
        out
    }

    /// Redacts every string in a JSON value, and whole values under secret-looking keys.
    pub fn value(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.value(x)).collect()),
            Value::Object(o) => {
                let mut m = Map::new();
                for (k, x) in o {
                    let key = self.text(k);
                    let secret_key = SECRET_KEYS.contains(&k.to_ascii_lowercase().as_str());
                    let redacted = match x {
                        Value::String(s) if secret_key && !s.is_empty() => Value::String(REDACTED.into()),
                        _ => self.value(x),
                    };
                    m.insert(key, redacted);
                }
                Value::Object(m)
            }
            other => other.clone(),
        }
    }
}

/// A session's record. Events are redacted as they arrive, kept in memory and, when a path
/// is given, appended to a JSONL file at once (so a crash leaves what happened so far).
pub struct Transcript {
    redactor: Redactor,
    started: Instant,
    events: Vec<Value>,
    file: Option<std::fs::File>,
}

impl Transcript {
    pub fn new(redactor: Redactor) -> Transcript {
        Transcript { redactor, started: Instant::now(), events: Vec::new(), file: None }
    }

    /// Also write every event to `path` (created or truncated).
    pub fn to_file(redactor: Redactor, path: &Path) -> anyhow::Result<Transcript> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = std::fs::File::create(path)?;
        Ok(Transcript { file: Some(file), ..Transcript::new(redactor) })
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Records `{"event": kind, "elapsed_ms": .., ..fields}`.
    pub fn record(&mut self, kind: &str, fields: impl Serialize) {
        let mut obj = Map::new();
        obj.insert("event".into(), json!(kind));
        obj.insert("elapsed_ms".into(), json!(self.started.elapsed().as_millis() as u64));
        match serde_json::to_value(fields) {
            Ok(Value::Object(f)) => obj.extend(f),
            Ok(Value::Null) => {}
            Ok(other) => {
                obj.insert("data".into(), other);
            }
            Err(e) => {
                obj.insert("data_error".into(), json!(e.to_string()));
            }
        }
        let event = self.redactor.value(&Value::Object(obj));
        if let Some(f) = &mut self.file {
            // A transcript that cannot be written must not stop the session.
            if let Err(e) = writeln!(f, "{event}") {
                tracing::warn!("cannot append to the transcript: {e}");
            }
        }
        self.events.push(event);
    }

    pub fn events(&self) -> &[Value] {
        &self.events
    }

    pub fn to_jsonl(&self) -> String {
        self.events.iter().map(|e| format!("{e}\n")).collect()
    }

    pub fn to_markdown(&self) -> String {
        render_markdown(&self.events, MARKDOWN_LIMIT)
    }
}

/// Keeps the start and the end of a long text, with a marker saying how much was cut.
pub fn trim_middle(s: &str, max_chars: usize) -> String {
    let n = s.chars().count();
    if n <= max_chars {
        return s.to_string();
    }
    let keep = max_chars.saturating_sub(40).max(20);
    let head: String = s.chars().take(keep * 2 / 3).collect();
    let tail_len = keep - keep * 2 / 3;
    let tail: String = s.chars().skip(n - tail_len).collect();
    format!("{head}\n… [{} characters cut] …\n{tail}", n - head.chars().count() - tail_len)
}

/// A fence longer than any backtick run inside `s`, so content cannot close it.
fn fence_for(s: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in s.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    "`".repeat((longest + 1).max(3))
}

fn code(s: &str, lang: &str) -> String {
    let f = fence_for(s);
    format!("{f}{lang}\n{s}\n{f}\n")
}

/// Renders events as Markdown within `limit` characters: long pieces are trimmed harder until
/// the whole fits, and as a last resort the middle of the document is cut.
pub fn render_markdown(events: &[Value], limit: usize) -> String {
    for piece in [6000, 3000, 1500, 700, 300, 120] {
        let md = render_with(events, piece);
        if md.chars().count() <= limit {
            return md;
        }
    }
    trim_middle(&render_with(events, 120), limit)
}

fn render_with(events: &[Value], piece: usize) -> String {
    let mut out = String::new();
    let get = |e: &Value, k: &str| e.get(k).cloned().unwrap_or(Value::Null);
    for e in events {
        let kind = e.get("event").and_then(Value::as_str).unwrap_or("");
        let at = e.get("elapsed_ms").and_then(Value::as_u64).unwrap_or(0) as f64 / 1000.0;
        match kind {
            "session_start" => {
                out.push_str("### Agent session\n\n");
                for k in ["provider", "model", "implementation"] {
                    if let Some(v) = e.get(k).and_then(Value::as_str) {
                        out.push_str(&format!("- {k}: `{v}`\n"));
                    }
                }
                if let Some(b) = e.get("budgets") {
                    out.push_str(&format!("- budgets: `{b}`\n"));
                }
                out.push('\n');
            }
            "system_prompt" => {
                out.push_str(&format!(
                    "System prompt: {} characters (skills: {}).\n\n",
                    get(e, "chars"),
                    e.get("skills").map(|s| s.to_string()).unwrap_or_default()
                ));
            }
            "user_message" => {
                out.push_str(&format!("**Request** (+{at:.1}s)\n\n"));
                out.push_str(&code(&trim_middle(e.get("text").and_then(Value::as_str).unwrap_or(""), piece), ""));
                out.push('\n');
            }
            "model_response" => {
                let usage = get(e, "usage");
                out.push_str(&format!(
                    "**Turn {}** (+{at:.1}s, {} in / {} out tokens, stop `{}`)\n\n",
                    get(e, "turn"),
                    usage.get("input_tokens").cloned().unwrap_or(json!(0)),
                    usage.get("output_tokens").cloned().unwrap_or(json!(0)),
                    e.get("stop_reason").and_then(Value::as_str).unwrap_or("")
                ));
                if let Some(r) = e.get("retries").and_then(Value::as_array).filter(|r| !r.is_empty()) {
                    out.push_str(&format!("_{} retried attempt(s) before this answer_\n\n", r.len()));
                }
                for b in e.get("content").and_then(Value::as_array).into_iter().flatten() {
                    match b.get("type").and_then(Value::as_str) {
                        Some("text") => {
                            let t = trim_middle(b.get("text").and_then(Value::as_str).unwrap_or(""), piece);
                            for line in t.lines() {
                                out.push_str(&format!("> {line}\n"));
                            }
                            out.push('\n');
                        }
                        Some("tool_use") => {
                            let input = b.get("input").map(|i| i.to_string()).unwrap_or_default();
                            out.push_str(&format!(
                                "→ `{}` `{}`\n\n",
                                b.get("name").and_then(Value::as_str).unwrap_or("?"),
                                trim_middle(&input, piece / 2).replace('`', "'")
                            ));
                        }
                        _ => {}
                    }
                }
            }
            "tool_result" => {
                let err = e.get("is_error").and_then(Value::as_bool).unwrap_or(false);
                out.push_str(&format!(
                    "← `{}`{} ({} ms)\n\n",
                    e.get("name").and_then(Value::as_str).unwrap_or("?"),
                    if err { " **error**" } else { "" },
                    get(e, "duration_ms")
                ));
                out.push_str(&code(&trim_middle(e.get("content").and_then(Value::as_str).unwrap_or(""), piece), ""));
                out.push('\n');
            }
            "warning" => {
                out.push_str(&format!("_warning: {}_\n\n", e.get("text").and_then(Value::as_str).unwrap_or("")));
            }
            "nudge" => {
                out.push_str(&format!("_factory: {}_\n\n", e.get("text").and_then(Value::as_str).unwrap_or("")));
            }
            "llm_error" => {
                out.push_str(&format!("**LLM error:** {}\n\n", trim_middle(e.get("error").and_then(Value::as_str).unwrap_or(""), piece)));
            }
            "outcome" => {
                out.push_str(&format!(
                    "**Outcome:** {} — {} turns, {} tokens, ${:.4} (estimated), {:.1}s\n",
                    e.get("summary").and_then(Value::as_str).unwrap_or(""),
                    get(e, "turns"),
                    get(e, "total_tokens"),
                    e.get("cost_usd").and_then(Value::as_f64).unwrap_or(0.0),
                    at
                ));
            }
            _ => {}
        }
    }
    out
}

/// The Markdown rendering wrapped for a PR body, within [`MARKDOWN_LIMIT`] characters overall.
pub fn details_block(summary_line: &str, events: &[Value]) -> String {
    let head = format!("<details><summary>{}</summary>\n\n", summary_line.replace('<', "&lt;"));
    let tail = "\n</details>\n";
    let room = MARKDOWN_LIMIT.saturating_sub(head.chars().count() + tail.len());
    format!("{head}{}{tail}", render_markdown(events, room))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_values_patterns_and_keys() {
        let r = Redactor::new(vec!["hunter2-secret".to_string(), "ab".to_string()]);
        let s = r.text("key=hunter2-secret sk-ant-api03-abcdefghijklmnop ghp_abcdefghijklmnopqrstuvwxyz0123 ghs_ABCDEFGHIJKLMNOPQRSTUV Authorization: Bearer abc.def-ghi_jkl about");
        assert!(!s.contains("hunter2"), "{s}");
        assert!(!s.contains("sk-ant"), "{s}");
        assert!(!s.contains("ghp_"), "{s}");
        assert!(!s.contains("ghs_"), "{s}");
        assert!(!s.contains("abc.def"), "{s}");
        assert!(s.contains("about"), "short configured values are not redacted: {s}");
        let v = r.value(&json!({"headers": {"Authorization": "whatever", "x": ["hunter2-secret"]}, "token": "t0k3n"}));
        assert_eq!(v, json!({"headers": {"Authorization": REDACTED, "x": [REDACTED]}, "token": REDACTED}));
    }

    #[test]
    fn trims_keep_both_ends() {
        let long = format!("START{}END", "x".repeat(10_000));
        let t = trim_middle(&long, 200);
        assert!(t.starts_with("START") && t.ends_with("END"), "{t}");
        assert!(t.contains("characters cut"));
        assert!(t.chars().count() < 300);
        assert_eq!(trim_middle("short", 200), "short");
    }

    #[test]
    fn markdown_stays_under_the_limit() {
        let mut t = Transcript::new(Redactor::new(vec![]));
        t.record("session_start", json!({"provider": "anthropic", "model": "m"}));
        for i in 0..200 {
            t.record("model_response", json!({"turn": i, "content": [{"type": "text", "text": "y".repeat(5000)}], "usage": {"input_tokens": 1, "output_tokens": 1}}));
            t.record("tool_result", json!({"name": "read_file", "content": format!("BEGIN{}```{}FINISH", "z".repeat(20_000), "q"), "is_error": false}));
        }
        t.record("outcome", json!({"summary": "Succeeded"}));
        let md = t.to_markdown();
        assert!(md.chars().count() <= MARKDOWN_LIMIT, "{}", md.chars().count());
        let d = details_block("Agent transcript", t.events());
        assert!(d.chars().count() <= MARKDOWN_LIMIT);
        assert!(d.starts_with("<details>") && d.ends_with("</details>\n"));
        // A small transcript keeps tool results whole, with a fence the content cannot close.
        let mut small = Transcript::new(Redactor::new(vec![]));
        small.record("tool_result", json!({"name": "read_file", "content": "a ``` b", "is_error": true}));
        let md = small.to_markdown();
        assert!(md.contains("a ``` b") && md.contains("````") && md.contains("**error**"), "{md}");
    }
}

//! LLM providers behind one trait. The session speaks a small provider-neutral conversation
//! model ([`Message`], [`Block`]); each provider module translates it to and from its own wire
//! format. Both clients are thin layers over `reqwest` (see "LLM providers" in docs/design.md).

pub mod anthropic;
pub mod limiter;
pub mod openai;
pub mod pricing;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

pub use pricing::{Price, PriceTable};

/// Who said something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// One piece of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Text {
        text: String,
    },
    /// A tool call. `input` is the arguments object; when a provider sent arguments that are not
    /// valid JSON, it is the raw string, so the tool layer can say so and the history round-trips.
    ToolUse { id: String, name: String, input: Value },
    ToolResult {
        tool_use_id: String,
        content: String,
        #[serde(default)]
        is_error: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: Vec<Block>,
}

impl Message {
    pub fn user_text(text: impl Into<String>) -> Message {
        Message { role: Role::User, content: vec![Block::Text { text: text.into() }] }
    }
}

/// A tool the model may call, with a JSON Schema for its arguments. Both wire formats are
/// rendered from this one definition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolDef {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
}

/// One model call.
#[derive(Debug, Clone)]
pub struct ChatRequest<'a> {
    pub system: &'a str,
    pub messages: &'a [Message],
    pub tools: &'a [ToolDef],
    pub max_tokens: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model finished its answer.
    EndTurn,
    /// The model wants tool results.
    ToolUse,
    /// The answer hit the output token limit.
    MaxTokens,
    /// Anything else the provider reported, verbatim.
    Other(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
    pub fn add(&mut self, other: Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
    }
}

/// A retried attempt, kept for the transcript.
#[derive(Debug, Clone, Serialize)]
pub struct RetryNote {
    pub attempt: u32,
    pub status: Option<u16>,
    pub error: String,
    pub waited_ms: u64,
}

#[derive(Debug, Clone)]
pub struct ChatResponse {
    pub content: Vec<Block>,
    pub stop: StopReason,
    /// The provider's own stop/finish reason string.
    pub raw_stop: String,
    pub usage: Usage,
    pub model: String,
    pub retries: Vec<RetryNote>,
}

impl ChatResponse {
    pub fn tool_uses(&self) -> impl Iterator<Item = (&str, &str, &Value)> {
        self.content.iter().filter_map(|b| match b {
            Block::ToolUse { id, name, input } => Some((id.as_str(), name.as_str(), input)),
            _ => None,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The provider answered with an error status and (usually) an error body.
    #[error("{provider} answered HTTP {status}: {kind}: {message}")]
    Api { provider: &'static str, status: u16, kind: String, message: String, retryable: bool },
    #[error("{provider} request failed: {message}")]
    Transport { provider: &'static str, message: String, retryable: bool },
    #[error("{provider} sent a response this client cannot read: {message}")]
    Decode { provider: &'static str, message: String },
    #[error("{last} (gave up after {attempts} attempts)")]
    RetriesExhausted { attempts: u32, last: Box<LlmError> },
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A chat model with tool use.
pub trait LlmProvider: Send + Sync {
    /// `anthropic` or `openai`.
    fn wire(&self) -> &'static str;
    fn model(&self) -> &str;
    fn chat<'a>(&'a self, req: &'a ChatRequest<'a>) -> BoxFuture<'a, Result<ChatResponse, LlmError>>;
}

/// A value that must never be printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "<empty>" } else { "***" })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Wire {
    Anthropic,
    Openai,
}

/// How hard to try before giving up on a call.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Total attempts, the first included.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// A longer `retry-after` is cut to this.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// Everything needed to talk to one model.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    pub wire: Wire,
    /// Without the `/v1/...` path, e.g. `https://api.anthropic.com`.
    pub base_url: String,
    pub model: String,
    pub api_key: Secret,
    /// Whole-request timeout of one attempt.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
    /// Output token limit of one answer.
    pub max_output_tokens: u32,
    /// OpenAI-compatible only: the name of the output limit field (`max_tokens`, understood by
    /// vLLM, Ollama and llama.cpp; OpenAI's reasoning models want `max_completion_tokens`).
    pub token_limit_field: String,
    /// Requests and tokens per minute shared by every session of this process on this endpoint.
    pub limits: limiter::Limits,
}

pub const ENV_PROVIDER: &str = "FACTORY_LLM_PROVIDER";
pub const ENV_BASE_URL: &str = "FACTORY_LLM_BASE_URL";
pub const ENV_MODEL: &str = "FACTORY_LLM_MODEL";
pub const ENV_API_KEY: &str = "FACTORY_LLM_API_KEY";
pub const ENV_ANTHROPIC_KEY: &str = "ANTHROPIC_API_KEY";
pub const ENV_OPENAI_KEY: &str = "OPENAI_API_KEY";
pub const ENV_TIMEOUT: &str = "FACTORY_LLM_TIMEOUT_SECONDS";
pub const ENV_MAX_ATTEMPTS: &str = "FACTORY_LLM_MAX_ATTEMPTS";
pub const ENV_TOKEN_FIELD: &str = "FACTORY_LLM_TOKEN_LIMIT_FIELD";
pub const ENV_PRICES: &str = "FACTORY_LLM_PRICES";
pub const ENV_MAX_OUTPUT: &str = "FACTORY_LLM_MAX_OUTPUT_TOKENS";

impl LlmConfig {
    pub fn new(wire: Wire, base_url: &str, model: &str, api_key: Secret) -> LlmConfig {
        LlmConfig {
            wire,
            base_url: base_url.trim_end_matches('/').to_string(),
            model: model.to_string(),
            api_key,
            timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            // Room for a whole schema or fixture file in one tool call.
            max_output_tokens: 16_000,
            token_limit_field: "max_tokens".into(),
            limits: limiter::Limits { requests_per_minute: None, tokens_per_minute: None },
        }
    }

    /// Reads the configuration from environment variables through `get` (so tests need not
    /// touch the process environment). `Ok(None)` when no LLM is configured.
    ///
    /// - `FACTORY_LLM_PROVIDER` = `anthropic` | `openai` (optional when exactly one of
    ///   `ANTHROPIC_API_KEY` / `OPENAI_API_KEY` is set);
    /// - `FACTORY_LLM_API_KEY`, else the provider's own key variable; an OpenAI-compatible local
    ///   server (`FACTORY_LLM_BASE_URL` set) may run without a key;
    /// - `FACTORY_LLM_BASE_URL`, `FACTORY_LLM_MODEL`, `FACTORY_LLM_TIMEOUT_SECONDS`,
    ///   `FACTORY_LLM_MAX_ATTEMPTS`, `FACTORY_LLM_MAX_OUTPUT_TOKENS`, `FACTORY_LLM_TOKEN_LIMIT_FIELD`.
    pub fn from_env_with(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<LlmConfig>> {
        let get = |k: &str| get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let wire = match get(ENV_PROVIDER).as_deref() {
            Some("anthropic") => Wire::Anthropic,
            Some("openai") | Some("openai-compatible") => Wire::Openai,
            Some(other) => anyhow::bail!("{ENV_PROVIDER}={other:?}: expected \"anthropic\" or \"openai\""),
            None => match (get(ENV_ANTHROPIC_KEY).is_some(), get(ENV_OPENAI_KEY).is_some()) {
                (true, false) => Wire::Anthropic,
                (false, true) => Wire::Openai,
                (true, true) => anyhow::bail!(
                    "both {ENV_ANTHROPIC_KEY} and {ENV_OPENAI_KEY} are set; choose one with {ENV_PROVIDER}=anthropic|openai"
                ),
                (false, false) => return Ok(None),
            },
        };
        let own_key = match wire {
            Wire::Anthropic => ENV_ANTHROPIC_KEY,
            Wire::Openai => ENV_OPENAI_KEY,
        };
        let key = get(ENV_API_KEY).or_else(|| get(own_key));
        let base = get(ENV_BASE_URL);
        if key.is_none() && (wire == Wire::Anthropic || base.is_none()) {
            anyhow::bail!("{ENV_PROVIDER} is set but no API key: set {own_key} (or {ENV_API_KEY})");
        }
        let (default_base, default_model) = match wire {
            Wire::Anthropic => ("https://api.anthropic.com", "claude-sonnet-4-5"),
            Wire::Openai => ("https://api.openai.com", "gpt-4.1"),
        };
        let mut cfg = LlmConfig::new(
            wire,
            base.as_deref().unwrap_or(default_base),
            get(ENV_MODEL).as_deref().unwrap_or(default_model),
            Secret::new(key.unwrap_or_default()),
        );
        if let Some(t) = get(ENV_TIMEOUT) {
            let secs: f64 = t.parse().map_err(|_| anyhow::anyhow!("{ENV_TIMEOUT}={t:?} is not a number of seconds"))?;
            cfg.timeout = Duration::from_secs_f64(secs.max(0.001));
        }
        if let Some(n) = get(ENV_MAX_ATTEMPTS) {
            cfg.retry.max_attempts = n.parse().map_err(|_| anyhow::anyhow!("{ENV_MAX_ATTEMPTS}={n:?} is not a count"))?;
        }
        if let Some(n) = get(ENV_MAX_OUTPUT) {
            cfg.max_output_tokens = n.parse().map_err(|_| anyhow::anyhow!("{ENV_MAX_OUTPUT}={n:?} is not a count"))?;
        }
        if let Some(f) = get(ENV_TOKEN_FIELD) {
            cfg.token_limit_field = f;
        }
        cfg.limits = limits_with(&get)?;
        Ok(Some(cfg))
    }

    pub fn from_env() -> anyhow::Result<Option<LlmConfig>> {
        LlmConfig::from_env_with(|k| std::env::var(k).ok())
    }

    /// From the app's settings (`config::Settings::llm`, read from the same variables or
    /// `factory.toml`); `None` when no provider is configured. The finer knobs (timeouts,
    /// attempts, output limit) keep their defaults here.
    pub fn from_settings(s: &crate::config::LlmSettings) -> Option<LlmConfig> {
        let wire = match s.provider? {
            crate::config::LlmProvider::Anthropic => Wire::Anthropic,
            crate::config::LlmProvider::Openai => Wire::Openai,
        };
        let (default_base, default_model) = match wire {
            Wire::Anthropic => ("https://api.anthropic.com", "claude-sonnet-4-5"),
            Wire::Openai => ("https://api.openai.com", "gpt-4.1"),
        };
        let key = s.api_key.as_ref().map(|k| Secret::new(k.expose())).unwrap_or_default();
        let mut cfg = LlmConfig::new(wire, s.base_url.as_deref().unwrap_or(default_base), s.model.as_deref().unwrap_or(default_model), key);
        // The shared rate limits come from the process environment only.
        cfg.limits = limits_with(&|k| std::env::var(k).ok()).unwrap_or_else(|e| {
            tracing::warn!("ignoring the LLM rate limits: {e:#}");
            limiter::Limits { requests_per_minute: None, tokens_per_minute: None }
        });
        Some(cfg)
    }

    /// The provider client for this configuration, behind the process-wide limiter of its
    /// endpoint when limits are set.
    pub fn provider(&self) -> anyhow::Result<Box<dyn LlmProvider>> {
        let client: Box<dyn LlmProvider> = match self.wire {
            Wire::Anthropic => Box::new(anthropic::AnthropicClient::new(self.clone())?),
            Wire::Openai => Box::new(openai::OpenAiClient::new(self.clone())?),
        };
        if self.limits.is_unlimited() {
            return Ok(client);
        }
        let endpoint = format!("{}|{}", self.base_url, self.model);
        Ok(Box::new(limiter::RateLimited { inner: client, limiter: limiter::shared(&endpoint, self.limits) }))
    }
}

/// `FACTORY_LLM_REQUESTS_PER_MINUTE` and `FACTORY_LLM_TOKENS_PER_MINUTE`.
fn limits_with(get: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<limiter::Limits> {
    let rpm = match get(limiter::ENV_RPM) {
        Some(v) => Some(v.trim().parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
            anyhow::anyhow!("{}={v:?}: expected a whole number of requests per minute, at least 1", limiter::ENV_RPM)
        })?),
        None => None,
    };
    let tpm = match get(limiter::ENV_TPM) {
        Some(v) => Some(v.trim().parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            anyhow::anyhow!("{}={v:?}: expected a whole number of tokens per minute, at least 1", limiter::ENV_TPM)
        })?),
        None => None,
    };
    Ok(limiter::Limits { requests_per_minute: rpm, tokens_per_minute: tpm })
}

pub(crate) fn http_client(cfg: &LlmConfig) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(cfg.timeout)
        .connect_timeout(cfg.connect_timeout)
        .user_agent(concat!("connector-factory/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// `retry-after` as seconds or an HTTP-date, relative to `now`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Statuses worth another attempt: rate limiting, server errors and Anthropic's 529
/// (overloaded), which is also a 5xx.
pub fn retryable_status(status: u16) -> bool {
    status == 429 || status == 408 || (500..=599).contains(&status)
}

/// Sends a JSON body, retrying as the policy allows. `parse_error` turns an error answer into
/// an [`LlmError::Api`]. Returns the success body text and the notes of retried attempts.
pub(crate) async fn send_json(
    provider: &'static str,
    policy: &RetryPolicy,
    build: impl Fn() -> reqwest::RequestBuilder,
    parse_error: impl Fn(u16, &str) -> LlmError,
) -> Result<(String, Vec<RetryNote>), LlmError> {
    let mut notes = Vec::new();
    let attempts = policy.max_attempts.max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (err, announced) = match build().send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let announced = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                let text = resp.text().await.map_err(|e| LlmError::Transport {
                    provider,
                    message: format!("reading the body: {}", e.without_url()),
                    retryable: true,
                });
                match text {
                    Ok(body) if (200..300).contains(&status) => return Ok((body, notes)),
                    Ok(body) => (parse_error(status, &body), announced),
                    Err(e) => (e, announced),
                }
            }
            // `without_url` keeps query strings (where some gateways put keys) out of messages.
            Err(e) => {
                let retryable = e.is_timeout() || e.is_connect() || e.is_request();
                let e = e.without_url();
                (LlmError::Transport { provider, message: error_chain(&e), retryable }, None)
            }
        };
        let retryable = match &err {
            LlmError::Api { retryable, .. } | LlmError::Transport { retryable, .. } => *retryable,
            _ => false,
        };
        if !retryable {
            return Err(err);
        }
        if attempt >= attempts {
            return Err(LlmError::RetriesExhausted { attempts: attempt, last: Box::new(err) });
        }
        let backoff = policy
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(attempt - 1))
            .min(policy.max_backoff);
        let wait = match announced {
            Some(d) => d.min(policy.max_retry_after),
            None => backoff,
        };
        let status = match &err {
            LlmError::Api { status, .. } => Some(*status),
            _ => None,
        };
        notes.push(RetryNote { attempt, status, error: err.to_string(), waited_ms: wait.as_millis() as u64 });
        tracing::warn!(provider, attempt, ?status, wait_ms = wait.as_millis() as u64, "retrying LLM call");
        tokio::time::sleep(wait).await;
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// A short excerpt of a body that could not be understood.
pub(crate) fn excerpt(body: &str) -> String {
    let mut end = body.len().min(300);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    if end < body.len() { format!("{}…", &body[..end]) } else { body.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("0.5", now), Some(Duration::from_millis(500)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(7)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn retryable_statuses() {
        for s in [429, 500, 502, 503, 504, 529] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 413, 422] {
            assert!(!retryable_status(s), "{s}");
        }
    }

    #[test]
    fn env_config() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert!(LlmConfig::from_env_with(env(&[])).unwrap().is_none());
        let c = LlmConfig::from_env_with(env(&[(ENV_ANTHROPIC_KEY, "sk-ant-abc")])).unwrap().unwrap();
        assert_eq!(c.wire, Wire::Anthropic);
        assert_eq!(c.base_url, "https://api.anthropic.com");
        assert!(!format!("{c:?}").contains("sk-ant-abc"), "the key must not show in Debug");
        let c = LlmConfig::from_env_with(env(&[(ENV_PROVIDER, "openai"), (ENV_BASE_URL, "http://127.0.0.1:11434/")]))
            .unwrap()
            .unwrap();
        assert_eq!(c.wire, Wire::Openai);
        assert_eq!(c.base_url, "http://127.0.0.1:11434");
        assert!(c.api_key.is_empty());
        assert!(LlmConfig::from_env_with(env(&[(ENV_PROVIDER, "anthropic")])).is_err());
        assert!(LlmConfig::from_env_with(env(&[(ENV_PROVIDER, "gemini"), (ENV_API_KEY, "k")])).is_err());
        assert!(LlmConfig::from_env_with(env(&[(ENV_ANTHROPIC_KEY, "a"), (ENV_OPENAI_KEY, "b")])).is_err());
    }

    #[test]
    fn from_app_settings() {
        use crate::config::{LlmProvider, LlmSettings, Secret as AppSecret};
        let none = LlmSettings { provider: None, base_url: None, model: None, api_key: None };
        assert!(LlmConfig::from_settings(&none).is_none());
        let s = LlmSettings {
            provider: Some(LlmProvider::Openai),
            base_url: Some("http://127.0.0.1:8000/".into()),
            model: Some("qwen".into()),
            api_key: Some(AppSecret::new("k-123")),
        };
        let c = LlmConfig::from_settings(&s).unwrap();
        assert_eq!((c.wire, c.base_url.as_str(), c.model.as_str(), c.api_key.expose()), (Wire::Openai, "http://127.0.0.1:8000", "qwen", "k-123"));
    }
}

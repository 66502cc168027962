//! Settings, from the environment and an optional `factory.toml` (the environment wins).
//!
//! Loading never stops at the first problem: invalid values are collected, and
//! [`Settings::require_serve`] adds the missing required ones, so an operator sees everything to
//! fix in one message. Secrets are held in [`Secret`], which never prints its value.
//!
//! `factory.toml` uses one table per area; each setting's key is listed in [`SETTINGS`]:
//!
//! ```toml
//! [github]
//! app_id = 12345
//! private_key = "/etc/connector-factory/app.pem"   # or the PEM text itself
//! [server]
//! bind = "127.0.0.1:3000"
//! [worker]
//! concurrency = 2
//! ```

use anyhow::Result;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A value that must not end up in logs or error messages.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself; call it only where the secret is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The store's URL. A Postgres URL may carry a password, so it prints with the password replaced
/// by `***` (see [`crate::store::redact_database_url`]); it derefs to the URL itself for opening
/// the store.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseUrl(url.into())
    }
}

impl std::ops::Deref for DatabaseUrl {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<&str> for DatabaseUrl {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", crate::store::redact_database_url(&self.0))
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::store::redact_database_url(&self.0))
    }
}

/// One setting: its environment variable, its key in `factory.toml`, and what it is.
pub struct SettingDef {
    pub env: &'static str,
    pub file_key: &'static str,
    pub about: &'static str,
}

const fn def(env: &'static str, file_key: &'static str, about: &'static str) -> SettingDef {
    SettingDef { env, file_key, about }
}

pub const APP_ID: SettingDef =
    def("GITHUB_APP_ID", "github.app_id", "the GitHub App's numeric id (App settings, 'App ID')");
pub const PRIVATE_KEY: SettingDef = def(
    "GITHUB_PRIVATE_KEY",
    "github.private_key",
    "the GitHub App's private key: the PEM text, or the path of the .pem file GitHub generated",
);
pub const WEBHOOK_SECRET: SettingDef = def(
    "GITHUB_WEBHOOK_SECRET",
    "github.webhook_secret",
    "the webhook secret entered in the App's settings; every delivery's X-Hub-Signature-256 is checked with it",
);
pub const API_URL: SettingDef = def("GITHUB_API_URL", "github.api_url", "GitHub's REST API base URL");
pub const DATABASE_URL: SettingDef =
    def("FACTORY_DATABASE_URL", "store.database_url", "where jobs and deliveries are kept");
pub const BIND: SettingDef = def("FACTORY_BIND", "server.bind", "address the webhook server listens on");
pub const CONCURRENCY: SettingDef = def("FACTORY_CONCURRENCY", "worker.concurrency", "jobs run at once");
pub const JOB_TIMEOUT: SettingDef = def("FACTORY_JOB_TIMEOUT_SECS", "worker.job_timeout_secs", "seconds a job may run");
pub const MAX_BODY: SettingDef =
    def("FACTORY_MAX_BODY_BYTES", "server.max_body_bytes", "largest webhook body accepted");
pub const MAX_FIX_ATTEMPTS: SettingDef = def(
    "FACTORY_MAX_FIX_ATTEMPTS",
    "learning.max_fix_attempts",
    "automatic fix attempts per connector PR after failing CI (0 turns them off)",
);
pub const IMPROVEMENTS_PER_DAY: SettingDef = def(
    "FACTORY_IMPROVEMENTS_PER_DAY",
    "learning.improvements_per_day",
    "improvement PRs opened or updated per repository in 24 hours",
);
pub const DASHBOARD_TOKEN: SettingDef = def(
    "FACTORY_DASHBOARD_TOKEN",
    "dashboard.token",
    "the token the sessions dashboard asks for (without one it is served only on a loopback address)",
);
pub const EXECUTOR: SettingDef = def(
    "FACTORY_EXECUTOR",
    "worker.executor",
    "where generation runs: 'local' (this server's workers) or 'actions' (.github/workflows/generate.yml on GitHub Actions)",
);
pub const ACTIONS_POLL: SettingDef = def(
    "FACTORY_ACTIONS_POLL_SECS",
    "worker.actions_poll_secs",
    "seconds between looks at a generation run on GitHub Actions",
);
pub const LLM_PROVIDER: SettingDef = def("FACTORY_LLM_PROVIDER", "llm.provider", "'anthropic' or 'openai'");
pub const LLM_BASE_URL: SettingDef = def("FACTORY_LLM_BASE_URL", "llm.base_url", "the LLM API's base URL");
pub const LLM_MODEL: SettingDef = def("FACTORY_LLM_MODEL", "llm.model", "the model name");
pub const ANTHROPIC_KEY: SettingDef = def("ANTHROPIC_API_KEY", "llm.api_key", "the Anthropic API key");
pub const OPENAI_KEY: SettingDef = def("OPENAI_API_KEY", "llm.api_key", "the OpenAI API key");
/// Names the settings file when it is not `./factory.toml`.
pub const CONFIG_FILE_ENV: &str = "FACTORY_CONFIG";

pub const SETTINGS: [&SettingDef; 19] = [
    &APP_ID,
    &PRIVATE_KEY,
    &WEBHOOK_SECRET,
    &API_URL,
    &DATABASE_URL,
    &BIND,
    &CONCURRENCY,
    &JOB_TIMEOUT,
    &MAX_BODY,
    &MAX_FIX_ATTEMPTS,
    &IMPROVEMENTS_PER_DAY,
    &DASHBOARD_TOKEN,
    &EXECUTOR,
    &ACTIONS_POLL,
    &LLM_PROVIDER,
    &LLM_BASE_URL,
    &LLM_MODEL,
    &ANTHROPIC_KEY,
    &OPENAI_KEY,
];

pub const DEFAULT_API_URL: &str = "https://api.github.com";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://.factory/factory.db";
pub const DEFAULT_BIND: &str = "127.0.0.1:3000";
pub const DEFAULT_CONCURRENCY: usize = 2;
pub const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(30 * 60);
pub const DEFAULT_MAX_FIX_ATTEMPTS: u32 = 2;
pub const DEFAULT_IMPROVEMENTS_PER_DAY: u32 = 10;
pub const DEFAULT_ACTIONS_POLL: Duration = Duration::from_secs(15);

/// Where the app runs generation (`FACTORY_EXECUTOR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorKind {
    Local,
    Actions,
}
/// GitHub caps webhook payloads at 25 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 25 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlmProvider {
    Anthropic,
    Openai,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmSettings {
    /// `None`: no LLM; the builtin generator does what it can.
    pub provider: Option<LlmProvider>,
    pub base_url: Option<String>,
    pub model: Option<String>,
    pub api_key: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub app_id: Option<u64>,
    pub private_key: Option<Secret>,
    pub webhook_secret: Option<Secret>,
    pub api_url: String,
    pub database_url: DatabaseUrl,
    pub bind: SocketAddr,
    pub concurrency: usize,
    pub job_timeout: Duration,
    pub max_body_bytes: usize,
    pub max_fix_attempts: u32,
    pub improvements_per_day: u32,
    pub dashboard_token: Option<Secret>,
    pub executor: ExecutorKind,
    pub actions_poll: Duration,
    pub llm: LlmSettings,
    /// The settings file that was read, if any.
    pub file: Option<PathBuf>,
    problems: Vec<Problem>,
}

/// What `serve` needs on top of the defaults.
#[derive(Debug, Clone)]
pub struct AppCredentials {
    pub app_id: u64,
    pub private_key: Secret,
    pub webhook_secret: Secret,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub env: &'static str,
    pub file_key: &'static str,
    pub message: String,
}

/// Every setting that is missing or invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SettingsError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the settings are incomplete; fix these and start again:")?;
        for p in &self.problems {
            writeln!(f, "  {} (or {} in factory.toml): {}", p.env, p.file_key, p.message)?;
        }
        write!(
            f,
            "Settings come from the environment and from factory.toml (or the file {CONFIG_FILE_ENV} names); the environment wins."
        )
    }
}

/// Where settings are read from; built from the process environment, or by tests.
pub struct Source {
    env: BTreeMap<String, String>,
    file: Option<(PathBuf, toml::Table)>,
    problems: Vec<Problem>,
}

impl Source {
    /// The process environment, plus `config_file` (or `$FACTORY_CONFIG`, or `./factory.toml`
    /// when it exists).
    pub fn from_process(config_file: Option<&Path>) -> Source {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let explicit = config_file.map(Path::to_path_buf).or_else(|| env.get(CONFIG_FILE_ENV).map(PathBuf::from));
        let path = match explicit {
            Some(p) => Some(p),
            None => Some(PathBuf::from("factory.toml")).filter(|p| p.is_file()),
        };
        Source::new(env, path.as_deref())
    }

    pub fn new(env: BTreeMap<String, String>, file: Option<&Path>) -> Source {
        let mut problems = Vec::new();
        let file = file.and_then(|path| {
            let loaded = std::fs::read_to_string(path)
                .map_err(|e| e.to_string())
                .and_then(|text| text.parse::<toml::Table>().map_err(|e| e.to_string()));
            match loaded {
                Ok(table) => Some((path.to_path_buf(), table)),
                Err(err) => {
                    problems.push(Problem {
                        env: CONFIG_FILE_ENV,
                        file_key: "-",
                        message: format!("cannot read the settings file {}: {err}", path.display()),
                    });
                    None
                }
            }
        });
        Source { env, file, problems }
    }

    fn has_env(&self, name: &str) -> bool {
        self.env.get(name).is_some_and(|v| !v.trim().is_empty())
    }

    /// The raw value of a setting, environment first; empty values count as unset.
    fn get(&self, def: &SettingDef) -> Option<String> {
        if let Some(v) = self.env.get(def.env).filter(|v| !v.trim().is_empty()) {
            return Some(v.clone());
        }
        let (_, table) = self.file.as_ref()?;
        let mut parts = def.file_key.split('.');
        let section = table.get(parts.next()?)?.as_table()?;
        let value = section.get(parts.next()?)?;
        let text = match value {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        Some(text).filter(|t| !t.trim().is_empty())
    }
}

fn problem(def: &SettingDef, message: impl Into<String>) -> Problem {
    Problem { env: def.env, file_key: def.file_key, message: message.into() }
}

fn parse_number<T>(src: &Source, def: &SettingDef, default: T, problems: &mut Vec<Problem>, min: T) -> T
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    match src.get(def) {
        None => default,
        Some(raw) => match raw.trim().parse::<T>() {
            Ok(v) if v >= min => v,
            _ => {
                problems.push(problem(
                    def,
                    format!("expected a whole number of at least {min} ({}), got '{}'", def.about, raw.trim()),
                ));
                default
            }
        },
    }
}

/// PEM text as given, or read from the path given.
fn private_key(raw: &str) -> Result<Secret, String> {
    let text = if raw.trim_start().starts_with("-----BEGIN") {
        // Environment variables often carry the PEM with literal "\n" for line breaks.
        raw.replace("\\n", "\n")
    } else {
        let path = Path::new(raw.trim());
        std::fs::read_to_string(path)
            .map_err(|e| format!("not PEM text, and the file '{}' cannot be read: {e}", path.display()))?
    };
    if !text.contains("-----BEGIN") || !text.contains("PRIVATE KEY-----") {
        return Err("does not look like a PEM private key (expected '-----BEGIN ... PRIVATE KEY-----')".into());
    }
    Ok(Secret::new(text))
}

impl Settings {
    pub fn load(src: &Source) -> Settings {
        let mut problems = src.problems.clone();

        let app_id = src.get(&APP_ID).and_then(|raw| match raw.trim().parse::<u64>() {
            Ok(id) if id > 0 => Some(id),
            _ => {
                problems.push(problem(&APP_ID, format!("expected a positive whole number, got '{}'", raw.trim())));
                None
            }
        });
        let private_key = src.get(&PRIVATE_KEY).and_then(|raw| match private_key(&raw) {
            Ok(k) => Some(k),
            Err(msg) => {
                problems.push(problem(&PRIVATE_KEY, msg));
                None
            }
        });
        let webhook_secret = src.get(&WEBHOOK_SECRET).map(Secret::new);
        let dashboard_token = src.get(&DASHBOARD_TOKEN).map(Secret::new);

        let api_url = src.get(&API_URL).unwrap_or_else(|| DEFAULT_API_URL.to_string());
        if !matches!(url::Url::parse(&api_url), Ok(u) if matches!(u.scheme(), "http" | "https")) {
            problems.push(problem(&API_URL, format!("expected an http(s) URL, got '{api_url}'")));
        }
        let api_url = api_url.trim_end_matches('/').to_string();

        let database_url = DatabaseUrl::new(src.get(&DATABASE_URL).unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string()));
        // Messages name the scheme or the redacted URL only: a Postgres URL may carry a password.
        match crate::store::Backend::of(&database_url) {
            Some(crate::store::Backend::Sqlite) => {}
            Some(crate::store::Backend::Postgres) => {
                if let Err(e) = url::Url::parse(&database_url) {
                    problems.push(problem(&DATABASE_URL, format!("not a valid Postgres URL ({database_url}): {e}")));
                }
            }
            None => {
                let scheme = database_url.split(':').next().unwrap_or_default();
                problems.push(problem(
                    &DATABASE_URL,
                    format!("expected a sqlite://, postgres:// or postgresql:// URL, got a '{scheme}:' URL"),
                ));
            }
        }

        let bind_raw = src.get(&BIND).unwrap_or_else(|| DEFAULT_BIND.to_string());
        let bind = bind_raw.trim().parse::<SocketAddr>().unwrap_or_else(|_| {
            problems.push(problem(
                &BIND,
                format!("expected host:port with an IP address, e.g. 127.0.0.1:3000, got '{bind_raw}'"),
            ));
            DEFAULT_BIND.parse().expect("default bind address")
        });

        let concurrency = parse_number(src, &CONCURRENCY, DEFAULT_CONCURRENCY, &mut problems, 1);
        let timeout_secs = parse_number(src, &JOB_TIMEOUT, DEFAULT_JOB_TIMEOUT.as_secs(), &mut problems, 1);
        let max_body_bytes = parse_number(src, &MAX_BODY, DEFAULT_MAX_BODY_BYTES, &mut problems, 1024);
        let max_fix_attempts = parse_number(src, &MAX_FIX_ATTEMPTS, DEFAULT_MAX_FIX_ATTEMPTS, &mut problems, 0);
        let improvements_per_day =
            parse_number(src, &IMPROVEMENTS_PER_DAY, DEFAULT_IMPROVEMENTS_PER_DAY, &mut problems, 0);

        let executor = match src.get(&EXECUTOR).map(|e| e.trim().to_ascii_lowercase()) {
            None => ExecutorKind::Local,
            Some(e) if e == "local" => ExecutorKind::Local,
            Some(e) if e == "actions" => ExecutorKind::Actions,
            Some(e) => {
                problems.push(problem(&EXECUTOR, format!("expected 'local' or 'actions', got '{e}'")));
                ExecutorKind::Local
            }
        };
        let actions_poll =
            Duration::from_secs(parse_number(src, &ACTIONS_POLL, DEFAULT_ACTIONS_POLL.as_secs(), &mut problems, 1));

        let provider = match src.get(&LLM_PROVIDER).map(|p| p.trim().to_ascii_lowercase()) {
            // No provider named: the key in the environment tells which one is meant.
            None if src.has_env(ANTHROPIC_KEY.env) => Some(LlmProvider::Anthropic),
            None if src.has_env(OPENAI_KEY.env) => Some(LlmProvider::Openai),
            None => None,
            Some(p) if p == "anthropic" => Some(LlmProvider::Anthropic),
            Some(p) if p == "openai" => Some(LlmProvider::Openai),
            Some(p) => {
                problems.push(problem(&LLM_PROVIDER, format!("expected 'anthropic' or 'openai', got '{p}'")));
                None
            }
        };
        let api_key = match provider {
            Some(LlmProvider::Anthropic) => src.get(&ANTHROPIC_KEY),
            Some(LlmProvider::Openai) => src.get(&OPENAI_KEY),
            None => None,
        }
        .map(Secret::new);
        match provider {
            Some(LlmProvider::Anthropic) if api_key.is_none() => problems.push(problem(
                &ANTHROPIC_KEY,
                format!("missing: {}, needed because the LLM provider is anthropic", ANTHROPIC_KEY.about),
            )),
            Some(LlmProvider::Openai) if api_key.is_none() => problems.push(problem(
                &OPENAI_KEY,
                format!("missing: {}, needed because the LLM provider is openai", OPENAI_KEY.about),
            )),
            _ => {}
        }
        let base_url = src.get(&LLM_BASE_URL);
        if let Some(u) = &base_url
            && !matches!(url::Url::parse(u), Ok(p) if matches!(p.scheme(), "http" | "https"))
        {
            problems.push(problem(&LLM_BASE_URL, format!("expected an http(s) URL, got '{u}'")));
        }

        Settings {
            app_id,
            private_key,
            webhook_secret,
            api_url,
            database_url,
            bind,
            concurrency,
            job_timeout: Duration::from_secs(timeout_secs),
            max_body_bytes,
            max_fix_attempts,
            improvements_per_day,
            dashboard_token,
            executor,
            actions_poll,
            llm: LlmSettings { provider, base_url, model: src.get(&LLM_MODEL), api_key },
            file: src.file.as_ref().map(|(p, _)| p.clone()),
            problems,
        }
    }

    /// Problems found while loading (invalid values, an unreadable file).
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// What `serve` needs, or every missing or invalid setting.
    pub fn require_serve(&self) -> Result<AppCredentials, SettingsError> {
        let mut problems = self.problems.clone();
        let mut missing = |def: &SettingDef, present: bool| {
            // An invalid value was already reported; do not call it missing too.
            if !present && !problems.iter().any(|p| p.env == def.env) {
                problems.push(problem(def, format!("missing: {}", def.about)));
            }
        };
        missing(&APP_ID, self.app_id.is_some());
        missing(&PRIVATE_KEY, self.private_key.is_some());
        missing(&WEBHOOK_SECRET, self.webhook_secret.is_some());
        match (self.app_id, &self.private_key, &self.webhook_secret) {
            (Some(app_id), Some(key), Some(secret)) if problems.is_empty() => {
                Ok(AppCredentials { app_id, private_key: key.clone(), webhook_secret: secret.clone() })
            }
            _ => Err(SettingsError { problems }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        let settings = Settings::load(&Source::new(env(&[("GITHUB_WEBHOOK_SECRET", "hunter2")]), None));
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

    #[test]
    fn database_urls_postgres_accepted_and_passwords_never_print() {
        let url = "postgres://factory:hunter2@db.internal:5432/factory";
        let s = Settings::load(&Source::new(env(&[("FACTORY_DATABASE_URL", url)]), None));
        assert!(s.problems().is_empty(), "{:?}", s.problems());
        assert_eq!(&*s.database_url, url, "the store gets the URL itself");
        assert!(!format!("{s:?} {}", s.database_url).contains("hunter2"));
        assert!(format!("{}", s.database_url).contains("factory:***@db.internal"));
        let s = Settings::load(&Source::new(env(&[("FACTORY_DATABASE_URL", "postgresql://h/db")]), None));
        assert!(s.problems().is_empty(), "{:?}", s.problems());

        let s = Settings::load(&Source::new(env(&[("FACTORY_DATABASE_URL", "postgres://u:hunter2@h:nope/db")]), None));
        let shown = format!("{:?}", s.problems());
        assert!(shown.contains("not a valid Postgres URL") && !shown.contains("hunter2"), "{shown}");
        let s = Settings::load(&Source::new(env(&[("FACTORY_DATABASE_URL", "mysql://u:hunter2@h/db")]), None));
        let shown = format!("{:?}", s.problems());
        assert!(shown.contains("'mysql:'") && !shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn defaults() {
        let s = Settings::load(&Source::new(env(&[]), None));
        assert_eq!(s.api_url, DEFAULT_API_URL);
        assert_eq!(s.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(s.bind.to_string(), DEFAULT_BIND);
        assert_eq!(s.concurrency, 2);
        assert_eq!(s.max_body_bytes, 25 * 1024 * 1024);
        assert_eq!(s.llm.provider, None);
        assert!(s.problems().is_empty());
    }

    #[test]
    fn pem_with_escaped_newlines() {
        let k = private_key("-----BEGIN RSA PRIVATE KEY-----\\nabc\\n-----END RSA PRIVATE KEY-----").unwrap();
        assert!(k.expose().contains("\nabc\n"));
        assert!(private_key("/definitely/not/here.pem").unwrap_err().contains("cannot be read"));
    }
}

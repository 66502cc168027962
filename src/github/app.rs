//! Authenticating as the GitHub App, and as its installations.
//!
//! The app proves itself with a short-lived JWT signed (RS256) with its private key; octocrab
//! mints it (`octocrab::auth::create_jwt`). With the JWT it asks
//! `POST /app/installations/{id}/access_tokens` for an installation token, which is what every
//! repository call and every git push uses. Tokens live an hour; each is cached per installation
//! and replaced `renew_before` (5 minutes) ahead of its expiry, so a token handed to a git push
//! cannot die half-way.
//!
//! The cache is ours rather than octocrab's installation mode because that one renews only 30
//! seconds early, sends its own `Authorization` header (which hides the rate-limit headers our
//! retries need behind typed errors) and reads the system clock, which tests cannot move.

use super::client::{Api, ApiMetrics, AppInfo, Auth, InstallationClient, RetryPolicy};
use crate::config::{AppCredentials, Secret};
use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, Utc};
use http::Method;
use octocrab::jsonwebtoken::EncodingKey;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where "now" comes from, so tests can move time instead of waiting.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told.
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock(Mutex::new(start))
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += chrono::Duration::from_std(by).expect("a sane duration");
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Clone)]
struct CachedToken {
    token: Secret,
    expires_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct TokenResponse {
    token: String,
    expires_at: String,
}

/// The app: its identity, its key, and the installation tokens it holds.
pub struct GitHubApp {
    app_id: u64,
    key: EncodingKey,
    api: Api,
    clock: Arc<dyn Clock>,
    renew_before: Duration,
    // Held across a mint, so concurrent jobs of one installation share one new token.
    tokens: tokio::sync::Mutex<HashMap<u64, CachedToken>>,
    identity: tokio::sync::OnceCell<AppInfo>,
}

impl std::fmt::Debug for GitHubApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubApp")
            .field("app_id", &self.app_id)
            .field("api", &self.api.base_url().as_str())
            .finish_non_exhaustive()
    }
}

impl GitHubApp {
    pub const DEFAULT_RENEW_BEFORE: Duration = Duration::from_secs(5 * 60);

    /// `private_key` is the PEM text (PKCS#1 as GitHub issues it, or PKCS#8).
    pub fn new(app_id: u64, private_key: &Secret, api_url: &str) -> Result<GitHubApp> {
        // The key's bytes never reach an error message.
        let key = EncodingKey::from_rsa_pem(private_key.expose().as_bytes())
            .map_err(|e| anyhow!("the GitHub App private key is not a usable RSA key in PEM form ({e})"))?;
        Ok(GitHubApp {
            app_id,
            key,
            api: Api::new(api_url)?,
            clock: Arc::new(SystemClock),
            renew_before: Self::DEFAULT_RENEW_BEFORE,
            tokens: tokio::sync::Mutex::new(HashMap::new()),
            identity: tokio::sync::OnceCell::new(),
        })
    }

    pub fn from_credentials(credentials: &AppCredentials, api_url: &str) -> Result<GitHubApp> {
        GitHubApp::new(credentials.app_id, &credentials.private_key, api_url)
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn with_renew_before(mut self, renew_before: Duration) -> Self {
        self.renew_before = renew_before;
        self
    }

    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.api = self.api.with_retry_policy(retry);
        self
    }

    pub fn app_id(&self) -> u64 {
        self.app_id
    }

    pub fn api(&self) -> &Api {
        &self.api
    }

    pub fn metrics(&self) -> ApiMetrics {
        self.api.metrics()
    }

    /// A fresh app JWT (issued a minute in the past, valid 9 minutes, as GitHub allows 10).
    pub fn jwt(&self) -> Result<Secret> {
        octocrab::auth::create_jwt(octocrab::models::AppId(self.app_id), &self.key)
            .map(Secret::new)
            .map_err(|e| anyhow!("signing the GitHub App JWT failed: {e}"))
    }

    /// Calls made as the installation.
    pub fn installation(self: &Arc<Self>, installation_id: u64) -> InstallationClient {
        InstallationClient::new(self.clone(), installation_id)
    }

    /// A token for the installation that stays valid for at least `renew_before`: the cached
    /// one, or a new one.
    pub async fn installation_token(&self, installation_id: u64) -> Result<Secret> {
        let mut tokens = self.tokens.lock().await;
        let now = self.clock.now();
        let margin = chrono::Duration::from_std(self.renew_before).unwrap_or_default();
        if let Some(cached) = tokens.get(&installation_id).filter(|c| c.expires_at - margin > now) {
            return Ok(cached.token.clone());
        }
        let fresh = self.mint(installation_id).await?;
        let token = fresh.token.clone();
        tokens.insert(installation_id, fresh);
        Ok(token)
    }

    /// Drops the cached token if it is still `stale` (GitHub refused it); a token another
    /// task already replaced is kept.
    pub async fn forget_token(&self, installation_id: u64, stale: &Secret) {
        let mut tokens = self.tokens.lock().await;
        if tokens.get(&installation_id).is_some_and(|c| &c.token == stale) {
            tokens.remove(&installation_id);
        }
    }

    /// When the cached token of an installation expires, if one is cached.
    pub async fn cached_token_expiry(&self, installation_id: u64) -> Option<DateTime<Utc>> {
        self.tokens.lock().await.get(&installation_id).map(|c| c.expires_at)
    }

    async fn mint(&self, installation_id: u64) -> Result<CachedToken> {
        let jwt = self.jwt()?;
        let path = format!("/app/installations/{installation_id}/access_tokens");
        let resp = self.api.send(Method::POST, &path, None, Auth::App(&jwt)).await?.success()?;
        self.api.count_token_mint();
        let body: TokenResponse = resp.json()?;
        let expires_at = DateTime::parse_from_rfc3339(&body.expires_at)
            .with_context(|| format!("installation token expiry '{}' is not a timestamp", body.expires_at))?
            .with_timezone(&Utc);
        tracing::info!(installation = installation_id, %expires_at, "minted an installation token");
        Ok(CachedToken { token: Secret::new(body.token), expires_at })
    }

    /// `GET /app`, asked once.
    pub async fn identity(&self) -> Result<AppInfo> {
        self.identity
            .get_or_try_init(|| async {
                let jwt = self.jwt()?;
                self.api.send(Method::GET, "/app", None, Auth::App(&jwt)).await?.success()?.json::<AppInfo>()
            })
            .await
            .cloned()
    }

    /// The installation of the app that covers `owner/repo` (`GET /repos/{owner}/{repo}/installation`).
    pub async fn repository_installation(&self, owner: &str, repo: &str) -> Result<u64> {
        #[derive(serde::Deserialize)]
        struct Found {
            id: u64,
        }
        let jwt = self.jwt()?;
        let path = format!("/repos/{}/{}/installation", super::client::segment(owner), super::client::segment(repo));
        let resp = self.api.send(Method::GET, &path, None, Auth::App(&jwt)).await?;
        if resp.status == http::StatusCode::NOT_FOUND {
            anyhow::bail!("the app is not installed on {owner}/{repo} (install it there first)");
        }
        Ok(resp.success()?.json::<Found>()?.id)
    }

    /// The login on the app's own comments and commits: `<slug>[bot]`.
    pub async fn bot_login(&self) -> Result<String> {
        self.identity().await?.bot_login().ok_or_else(|| anyhow!("GitHub's GET /app answer has no slug"))
    }
}

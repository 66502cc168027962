//! The app's authentication against the fake GitHub: JWTs, installation tokens, their cache
//! and renewal, and what happens when GitHub stops accepting a token.

mod support;

use chrono::Utc;
use connector_factory::config::Secret;
use connector_factory::github::app::{GitHubApp, ManualClock};
use connector_factory::github::client::{RetryPolicy, api_status};
use std::sync::Arc;
use std::time::Duration;
use support::fake_github::FakeGitHub;
use support::fake_github::keys::TestKey;
use support::fake_github::state::Caller;

const REPO: &str = "acme/widgets";

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_rate_limit_wait: Duration::from_secs(5),
    }
}

async fn fake() -> FakeGitHub {
    let fake = FakeGitHub::start().await;
    fake.add_repo(REPO);
    fake.add_installation(77, &[REPO]);
    fake.add_repo("acme/other");
    fake.add_installation(78, &["acme/other"]);
    fake
}

fn app(fake: &FakeGitHub) -> GitHubApp {
    GitHubApp::new(fake.app_id(), &fake.private_key(), &fake.url()).unwrap().with_retry_policy(fast_retries())
}

#[tokio::test]
async fn mints_with_a_signed_jwt_and_caches_per_installation() {
    let fake = fake().await;
    let app = Arc::new(app(&fake));

    let first = app.installation_token(77).await.unwrap();
    let again = app.installation_token(77).await.unwrap();
    assert_eq!(first, again, "the cached token is reused");
    let other = app.installation_token(78).await.unwrap();
    assert_ne!(first, other, "each installation has its own token");
    assert_eq!(app.installation_token(78).await.unwrap(), other);

    let mints = fake.requests_to("/access_tokens");
    assert_eq!(mints.len(), 2, "one mint per installation");
    assert!(mints.iter().all(|r| r.caller == Caller::App && r.status == 201), "{mints:?}");
    assert_eq!(app.metrics().token_mints, 2);
    // The token is used as `Authorization: token ...` on repository calls.
    let repo = app.installation(77).get_repository("acme", "widgets").await.unwrap();
    assert_eq!(repo.full_name, REPO);
    assert_eq!(fake.requests_to("/repos/acme/widgets")[0].caller, Caller::Installation(77));
}

#[tokio::test]
async fn renews_five_minutes_before_expiry() {
    let fake = fake().await;
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = app(&fake).with_clock(clock.clone());

    let first = app.installation_token(77).await.unwrap();
    let expiry = app.cached_token_expiry(77).await.unwrap();
    assert!(expiry > Utc::now() + chrono::Duration::minutes(55), "GitHub's tokens live an hour");

    clock.advance(Duration::from_secs(54 * 60));
    assert_eq!(app.installation_token(77).await.unwrap(), first, "six minutes left: still good");

    clock.advance(Duration::from_secs(2 * 60));
    let renewed = app.installation_token(77).await.unwrap();
    assert_ne!(renewed, first, "four minutes left: renewed");
    assert_eq!(fake.tokens_minted(), 2);
    assert!(app.cached_token_expiry(77).await.unwrap() >= expiry);
}

#[tokio::test]
async fn tokens_shorter_lived_than_the_margin_are_never_reused() {
    let fake = fake().await;
    fake.set_token_lifetime(Duration::from_secs(120));
    let app = app(&fake);
    let a = app.installation_token(77).await.unwrap();
    let b = app.installation_token(77).await.unwrap();
    assert_ne!(a, b);
    assert_eq!(fake.tokens_minted(), 2);

    let lenient = self::app(&fake).with_renew_before(Duration::from_secs(30));
    let c = lenient.installation_token(77).await.unwrap();
    assert_eq!(lenient.installation_token(77).await.unwrap(), c, "a 30 s margin keeps a 2 min token");
}

#[tokio::test]
async fn a_revoked_token_is_replaced_and_the_call_repeated() {
    let fake = fake().await;
    let app = Arc::new(app(&fake));
    let client = app.installation(77);
    let before = client.token().await.unwrap();
    fake.revoke_tokens();

    let repo = client.get_repository("acme", "widgets").await.unwrap();
    assert_eq!(repo.default_branch, "main");
    let after = client.token().await.unwrap();
    assert_ne!(before, after);
    let statuses: Vec<u16> = fake.requests_to("/repos/acme/widgets").iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 200]);
}

#[tokio::test]
async fn an_expired_token_is_refused_by_the_fake_and_renewed_by_the_client() {
    let fake = fake().await;
    fake.set_token_lifetime(Duration::from_secs(1));
    // A zero margin makes the client keep the token until it is really gone.
    let app = Arc::new(app(&fake).with_renew_before(Duration::ZERO));
    let client = app.installation(77);
    client.get_repository("acme", "widgets").await.unwrap();
    fake.set_token_lifetime(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The clock says the token expired, so a new one is minted before the call.
    client.get_repository("acme", "widgets").await.unwrap();
    assert_eq!(fake.tokens_minted(), 2);
}

#[tokio::test]
async fn a_jwt_signed_with_another_key_is_refused() {
    let fake = fake().await;
    let stranger = TestKey::generate();
    let app = GitHubApp::new(fake.app_id(), &Secret::new(stranger.private_pem), &fake.url())
        .unwrap()
        .with_retry_policy(fast_retries());
    let err = app.installation_token(77).await.unwrap_err();
    assert_eq!(api_status(&err), Some(401), "{err:#}");
    assert!(fake.requests_to("/access_tokens").iter().all(|r| matches!(r.caller, Caller::Refused(_))));

    let wrong_id = GitHubApp::new(99, &fake.private_key(), &fake.url()).unwrap();
    assert_eq!(api_status(&wrong_id.installation_token(77).await.unwrap_err()), Some(401));
}

#[tokio::test]
async fn an_unknown_installation_is_an_error() {
    let fake = fake().await;
    let err = app(&fake).installation_token(5).await.unwrap_err();
    assert_eq!(api_status(&err), Some(404));
}

#[tokio::test]
async fn the_installation_only_reaches_its_repositories() {
    let fake = fake().await;
    let app = Arc::new(app(&fake));
    let err = app.installation(78).get_repository("acme", "widgets").await.unwrap_err();
    assert_eq!(api_status(&err), Some(404));
}

#[tokio::test]
async fn the_bot_login_comes_from_get_app_once() {
    let fake = fake().await;
    let app = app(&fake);
    assert_eq!(app.bot_login().await.unwrap(), "connector-factory-test[bot]");
    assert_eq!(app.bot_login().await.unwrap(), fake.bot_login());
    let identity = app.identity().await.unwrap();
    assert_eq!(identity.id, fake.app_id());
    let calls = fake.requests_to("/app");
    assert_eq!(calls.iter().filter(|r| r.path == "/app").count(), 1);
    assert_eq!(calls[0].caller, Caller::App);
}

#[tokio::test]
async fn secrets_stay_out_of_debug_output_and_errors() {
    let fake = fake().await;
    let app = Arc::new(app(&fake));
    let token = app.installation_token(77).await.unwrap();
    assert_eq!(format!("{token:?}"), "***");
    assert!(!format!("{app:?}").contains(token.expose()));
    fake.revoke_tokens();
    fake.fail_next_on("/access_tokens", 1, 401);
    let err = app.installation(77).get_repository("acme", "widgets").await.unwrap_err();
    let text = format!("{err:#} {err:?}");
    assert!(!text.contains(token.expose()), "{text}");
    assert!(!text.contains("BEGIN PRIVATE KEY"));

    let bad = GitHubApp::new(
        1,
        &Secret::new("-----BEGIN RSA PRIVATE KEY-----\nnope\n-----END RSA PRIVATE KEY-----"),
        "http://127.0.0.1:9",
    )
    .unwrap_err();
    assert!(!format!("{bad:#}").contains("nope"));
}

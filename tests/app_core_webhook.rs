//! The webhook endpoint: signatures, body cap, headers, redelivery, persistence, health, logs,
//! and one delivery followed all the way to a job on a real loopback socket.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use connector_factory::config::Secret;
use connector_factory::github::route::RouteContext;
use connector_factory::server::dispatch::Dispatcher;
use connector_factory::server::webhook::sign;
use connector_factory::server::{AppState, router};
use connector_factory::store::{JobFilter, JobKind, JobState, SqliteStore, Store};
use connector_factory::worker::{
    JobQueue, PIPELINE_NOT_YET_AVAILABLE, PlaceholderPipelineHandler, PoolConfig, WorkerPool,
};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tower::ServiceExt;

const SECRET: &str = "webhook-secret-for-tests";

struct App {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    dispatcher: Dispatcher,
    router: axum::Router,
}

async fn app(max_body: usize) -> App {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::connect(&format!("sqlite://{}", dir.path().join("f.db").display())).await.unwrap());
    let dispatcher = Dispatcher::new(JobQueue::new(store.clone()), RouteContext { app_id: Some(99) });
    let state = AppState::new(Secret::new(SECRET), store.clone(), dispatcher.waker());
    App { _dir: dir, store, dispatcher, router: router(state, max_body) }
}

fn request_issue(delivery_hint: i64) -> Value {
    json!({
        "action": "opened",
        "issue": {
            "number": delivery_hint,
            "title": "Connector request: Stripe",
            "body": include_str!("fixtures/requests/stripe.md"),
            "user": {"login": "octocat", "id": 1, "type": "User"},
            "labels": [{"name": "connector-request"}],
            "state": "open",
        },
        "repository": {"id": 5, "name": "connectors", "full_name": "acme/connectors", "default_branch": "main"},
        "sender": {"login": "octocat", "id": 1, "type": "User"},
        "installation": {"id": 777},
    })
}

fn delivery(body: &[u8], event: &str, id: &str, signature: Option<String>) -> Request<Body> {
    let mut req = Request::post("/webhook")
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", id);
    if let Some(sig) = signature {
        req = req.header("x-hub-signature-256", sig);
    }
    req.body(Body::from(body.to_vec())).unwrap()
}

async fn send(app: &App, req: Request<Body>) -> (StatusCode, Value) {
    let res = app.router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn event_count(store: &Arc<dyn Store>) -> usize {
    store.unrouted_events(1000).await.unwrap().len()
}

#[tokio::test]
async fn a_signed_delivery_is_persisted_and_answered_202() {
    let app = app(1 << 20).await;
    let body = serde_json::to_vec(&request_issue(1)).unwrap();
    let (status, reply) = send(&app, delivery(&body, "issues", "d-1", Some(sign(SECRET.as_bytes(), &body)))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    assert_eq!(reply["status"], "accepted");

    let events = app.store.unrouted_events(10).await.unwrap();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!((e.delivery_id.as_str(), e.event.as_str(), e.action.as_deref()), ("d-1", "issues", Some("opened")));
    assert_eq!(e.installation_id, Some(777));
    assert_eq!(e.repository.as_deref(), Some("acme/connectors"));
    assert_eq!(e.payload.as_bytes(), body.as_slice(), "the raw payload is kept as received");

    // Routing happens after the answer.
    assert_eq!(app.dispatcher.drain().await.unwrap(), 1);
    let jobs = app.store.list_jobs(&JobFilter::default()).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].kind, JobKind::Generate);
    assert_eq!(jobs[0].installation_id, Some(777));
    assert_eq!(jobs[0].payload["request"]["streams"], json!(["customers", "invoices", "payment_intents"]));
    let routed = app.store.get_event(e.id).await.unwrap().unwrap().route.unwrap();
    assert_eq!(routed["decision"], "generate");
}

#[tokio::test]
async fn bad_missing_sha1_and_tampered_signatures_are_refused() {
    let app = app(1 << 20).await;
    let body = serde_json::to_vec(&request_issue(1)).unwrap();
    let good = sign(SECRET.as_bytes(), &body);
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let cases = [
        ("wrong secret", body.clone(), Some(sign(b"not-the-secret", &body))),
        ("missing", body.clone(), None),
        ("sha1", body.clone(), Some("sha1=0123456789abcdef0123456789abcdef01234567".to_string())),
        ("tampered body", tampered, Some(good.clone())),
        ("garbage", body.clone(), Some("sha256=not-hex".to_string())),
    ];
    for (what, body, sig) in cases {
        let (status, reply) = send(&app, delivery(&body, "issues", "d-x", sig)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {reply}");
        if what == "sha1" {
            assert!(reply["error"].as_str().unwrap().contains("sha1"), "{reply}");
        }
    }
    assert_eq!(event_count(&app.store).await, 0);
    assert!(app.store.delivery("d-x").await.unwrap().is_none(), "a refused delivery is not remembered");
}

#[tokio::test]
async fn signature_is_checked_before_the_body_is_parsed() {
    let app = app(1 << 20).await;
    let (status, _) = send(&app, delivery(b"not json at all", "issues", "d-1", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let body = b"not json at all";
    let (status, _) = send(&app, delivery(body, "issues", "d-1", Some(sign(SECRET.as_bytes(), body)))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn event_and_delivery_headers_are_required() {
    let app = app(1 << 20).await;
    let body = br#"{"zen":"hi"}"#;
    let sig = sign(SECRET.as_bytes(), body);
    let req = Request::post("/webhook")
        .header("x-hub-signature-256", &sig)
        .header("x-github-event", "ping")
        .body(Body::from(&body[..]))
        .unwrap();
    assert_eq!(send(&app, req).await.0, StatusCode::BAD_REQUEST);
    let req = Request::post("/webhook")
        .header("x-hub-signature-256", &sig)
        .header("x-github-delivery", "d")
        .body(Body::from(&body[..]))
        .unwrap();
    assert_eq!(send(&app, req).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(event_count(&app.store).await, 0);
}

#[tokio::test]
async fn oversized_bodies_get_413_before_verification() {
    let app = app(1024).await;
    let body = vec![b' '; 4096];
    // Announced length: refused at once, even with a valid signature.
    let (status, _) = send(&app, delivery(&body, "issues", "d-big", Some(sign(SECRET.as_bytes(), &body)))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // With a bad signature, the cap still answers first: the body is never read.
    let (status, _) = send(&app, delivery(&body, "issues", "d-big", Some("sha256=00".into()))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Streamed without a length: cut off while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..8).map(|_| Ok(vec![b' '; 512])).collect();
    let stream = futures_util::stream::iter(chunks);
    let req = Request::post("/webhook")
        .header("x-github-event", "issues")
        .header("x-github-delivery", "d-stream")
        .header("x-hub-signature-256", "sha256=00")
        .body(Body::from_stream(stream))
        .unwrap();
    assert_eq!(send(&app, req).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(event_count(&app.store).await, 0);
}

#[tokio::test]
async fn a_redelivered_event_is_handled_once() {
    let app = app(1 << 20).await;
    let body = serde_json::to_vec(&request_issue(3)).unwrap();
    let sig = sign(SECRET.as_bytes(), &body);
    let (first, _) = send(&app, delivery(&body, "issues", "same-id", Some(sig.clone()))).await;
    assert_eq!(first, StatusCode::ACCEPTED);
    app.dispatcher.drain().await.unwrap();
    let (second, reply) = send(&app, delivery(&body, "issues", "same-id", Some(sig))).await;
    assert_eq!(second, StatusCode::OK);
    assert_eq!(reply["status"], "duplicate");
    assert_eq!(app.dispatcher.drain().await.unwrap(), 0);
    assert_eq!(app.store.list_jobs(&JobFilter::default()).await.unwrap().len(), 1);
    assert_eq!(app.store.delivery("same-id").await.unwrap().unwrap().redeliveries, 1);
}

#[tokio::test]
async fn healthz_reports_the_database() {
    let app = app(1024).await;
    let res = app.router.clone().oneshot(Request::get("/healthz").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = serde_json::from_slice(&axum::body::to_bytes(res.into_body(), 1024).await.unwrap()).unwrap();
    assert_eq!(body, json!({"status": "ok", "db": "ok"}));
}

/// Collects log output in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_never_contain_the_secret_or_the_signature() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber =
        tracing_subscriber::fmt().with_max_level(tracing::Level::TRACE).with_writer(move || writer.clone()).finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // Tests run in parallel, and tracing caches per call site whether anyone listens. While this
    // is the only subscriber alive, a call site first reached by another test's thread asks that
    // thread's (absent) subscriber and is cached as "nobody listens"; with a second one alive,
    // tracing asks every live subscriber instead. Then recompute what is cached already.
    let _second = tracing::Dispatch::new(tracing_subscriber::registry());
    tracing::callsite::rebuild_interest_cache();
    let app = app(1 << 20).await;
    let body = serde_json::to_vec(&request_issue(1)).unwrap();
    let good = sign(SECRET.as_bytes(), &body);
    let bad = sign(b"wrong", &body);
    send(&app, delivery(&body, "issues", "d-log", Some(good.clone()))).await;
    send(&app, delivery(&body, "issues", "d-log2", Some(bad.clone()))).await;
    app.dispatcher.drain().await.unwrap();

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("webhook accepted"), "the capture works: {logs}");
    assert!(logs.contains("bad signature"), "{logs}");
    for needle in [SECRET, good.trim_start_matches("sha256="), bad.trim_start_matches("sha256=")] {
        assert!(!logs.contains(needle), "logs leak '{needle}':\n{logs}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_loopback_a_delivery_becomes_a_job_that_a_worker_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::connect(&format!("sqlite://{}", dir.path().join("f.db").display())).await.unwrap());
    let queue = JobQueue::new(store.clone());
    let pool = WorkerPool::start(
        queue.clone(),
        Arc::new(PlaceholderPipelineHandler),
        PoolConfig { poll_every: Duration::from_millis(50), ..PoolConfig::default() },
    );
    let dispatcher = Dispatcher::new(queue, RouteContext::default());
    let state = AppState::new(Secret::new(SECRET), store.clone(), dispatcher.waker());
    let stop = tokio_util::sync::CancellationToken::new();
    let routing = tokio::spawn(dispatcher.run(stop.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_stop = stop.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, router(state, 1 << 20))
            .with_graceful_shutdown(async move { server_stop.cancelled().await })
            .await
            .unwrap()
    });

    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let body = serde_json::to_vec(&request_issue(8)).unwrap();
    let started = Instant::now();
    let res = client
        .post(format!("http://{addr}/webhook"))
        .header("x-github-event", "issues")
        .header("x-github-delivery", "loopback-1")
        .header("x-hub-signature-256", sign(SECRET.as_bytes(), &body))
        .body(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    let answered = started.elapsed();
    assert_eq!(res.status(), 202);
    assert!(answered < Duration::from_secs(2), "answered in {answered:?}");

    let deadline = Instant::now() + Duration::from_secs(10);
    let job = loop {
        let jobs = store.list_jobs(&JobFilter::default()).await.unwrap();
        if let Some(j) = jobs.into_iter().find(|j| j.state == JobState::Failed) {
            break j;
        }
        assert!(Instant::now() < deadline, "no job finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(job.kind, JobKind::Generate);
    assert_eq!(job.issue_number, Some(8));
    assert_eq!(job.error.as_deref(), Some(PIPELINE_NOT_YET_AVAILABLE));

    stop.cancel();
    server.await.unwrap();
    routing.await.unwrap();
    pool.shutdown().await;
}

/// Group commit under load: many deliveries at once, some of them the same delivery sent again
/// while the first copy is still in flight. Every id is stored exactly once, exactly one of its
/// copies gets the 202, and a 202 means committed: another connection sees the delivery the
/// moment the answer arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_and_duplicates_in_one_batch_are_stored_once() {
    let app = app(1 << 20).await;
    let url = format!("sqlite://{}", app._dir.path().join("f.db").display());
    let observer = SqliteStore::connect(&url).await.unwrap();
    let distinct = 120;
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..distinct * 2 {
        // Every id twice, the copies far apart and next to each other in turn.
        let id = if i % 4 < 2 { format!("c-{}", i / 2) } else { format!("c-{}", (i / 2 + distinct / 2) % distinct) };
        let body = serde_json::to_vec(&request_issue(i64::try_from(i).unwrap())).unwrap();
        let sig = sign(SECRET.as_bytes(), &body);
        let (router, observer) = (app.router.clone(), observer.clone());
        sends.spawn(async move {
            let res = router.oneshot(delivery(&body, "issues", &id, Some(sig))).await.unwrap();
            let status = res.status();
            if status == StatusCode::ACCEPTED {
                assert!(observer.delivery(&id).await.unwrap().is_some(), "{id} answered 202 before it was committed");
            }
            (id, status)
        });
    }
    let mut accepted = std::collections::HashMap::<String, usize>::new();
    while let Some(r) = sends.join_next().await {
        let (id, status) = r.unwrap();
        assert!(status == StatusCode::ACCEPTED || status == StatusCode::OK, "{id}: {status}");
        *accepted.entry(id).or_default() += usize::from(status == StatusCode::ACCEPTED);
    }
    assert_eq!(accepted.len(), distinct);
    assert!(accepted.values().all(|&n| n == 1), "one 202 per delivery id: {accepted:?}");
    let events = app.store.unrouted_events(1000).await.unwrap();
    assert_eq!(events.len(), distinct);
    for e in &events {
        assert_eq!(app.store.delivery(&e.delivery_id).await.unwrap().unwrap().redeliveries, 1);
    }
}

#[tokio::test]
async fn a_delivery_the_store_cannot_take_gets_503_and_can_be_redelivered() {
    let app = app(1 << 20).await;
    let url = format!("sqlite://{}", app._dir.path().join("f.db").display());
    let admin = SqliteStore::connect(&url).await.unwrap();
    sqlx::query("CREATE TRIGGER refuse BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'disk on fire'); END")
        .execute(admin.pool())
        .await
        .unwrap();
    let body = serde_json::to_vec(&request_issue(4)).unwrap();
    let sig = sign(SECRET.as_bytes(), &body);
    let sends: Vec<_> = (0..8)
        .map(|i| app.router.clone().oneshot(delivery(&body, "issues", &format!("f-{i}"), Some(sig.clone()))))
        .collect();
    for res in futures_util::future::join_all(sends).await {
        let res = res.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("disk on fire"), "store errors are not echoed");
    }
    assert!(app.store.delivery("f-0").await.unwrap().is_none(), "a failed delivery is not remembered");
    sqlx::query("DROP TRIGGER refuse").execute(admin.pool()).await.unwrap();
    let (status, _) = send(&app, delivery(&body, "issues", "f-0", Some(sig))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "the redelivery is taken once the store is back");
}

//! The store on every backend (SQLite, and Postgres when `FACTORY_TEST_POSTGRES_URL` is set; see
//! `store_backends`): persistence across restarts, enqueue and supersession, claims and leases;
//! and, for Postgres, several replicas on one database.

#[macro_use]
mod store_backends;

use chrono::Utc;
use connector_factory::store::{
    Enqueued, EventId, Finish, Intake, JobFilter, JobKind, JobState, NewEvent, NewJob, SqliteStore, Store,
};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;
use store_backends::TestDb;

on_every_backend!(
    creates_the_database_and_survives_a_restart,
    a_new_job_supersedes_the_active_ones_for_the_same_issue,
    status_disturbs_nothing_and_ci_results_do_not_stop_a_generation,
    only_if_first_skips_a_second_generate,
    claim_takes_the_oldest_and_hands_each_job_out_once,
    an_expired_lease_makes_a_running_job_claimable_again,
    heartbeats_keep_the_lease,
    a_job_that_keeps_killing_its_worker_is_failed_after_max_attempts,
    release_puts_the_job_back_without_counting_the_attempt,
    route_event_enqueues_and_marks_routed_once,
    list_jobs_filters,
);

fn job(kind: JobKind, issue: i64) -> NewJob {
    NewJob::new(kind, "acme/connectors", Some(issue), json!({ "issue": issue })).installation(Some(7))
}

fn event(delivery: &str) -> NewEvent {
    NewEvent {
        delivery_id: delivery.into(),
        event: "issues".into(),
        action: Some("opened".into()),
        installation_id: Some(7),
        repository: Some("acme/connectors".into()),
        payload: r#"{"action":"opened"}"#.into(),
        received_at: Utc::now(),
    }
}

async fn creates_the_database_and_survives_a_restart(db: &TestDb) {
    let (event_id, job_id) = {
        let store = db.open().await;
        let Intake::Recorded(event_id) = store.record_event(&event("d-1")).await.unwrap() else { panic!() };
        let id = store.enqueue(&job(JobKind::Generate, 1)).await.unwrap().job_id();
        db.close_all().await;
        (event_id, id)
    };
    if let Some(file) = db.sqlite_file() {
        assert!(file.is_file());
    }

    // Migrating an up-to-date database again is a no-op.
    let store = db.open().await;
    let stored = store.get_event(event_id).await.unwrap().unwrap();
    assert_eq!(stored.delivery_id, "d-1");
    assert_eq!(stored.repository.as_deref(), Some("acme/connectors"));
    assert_eq!(stored.installation_id, Some(7));
    let j = store.get_job(job_id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Queued);
    assert_eq!(j.payload, json!({ "issue": 1 }));
    // The redelivery of an event seen before the restart is still a duplicate.
    assert_eq!(store.record_event(&event("d-1")).await.unwrap(), Intake::Duplicate);
    assert_eq!(store.delivery("d-1").await.unwrap().unwrap().redeliveries, 1);
}

async fn a_new_job_supersedes_the_active_ones_for_the_same_issue(db: &TestDb) {
    let store = db.open().await;
    let first = store.enqueue(&job(JobKind::Generate, 1)).await.unwrap().job_id();
    let other_issue = store.enqueue(&job(JobKind::Generate, 2)).await.unwrap().job_id();
    let claimed = store.claim("w", Duration::from_secs(60)).await.unwrap().unwrap();
    assert_eq!(claimed.job.id, first);

    let Enqueued::Created { id: retry, replaced } = store.enqueue(&job(JobKind::Retry, 1)).await.unwrap() else {
        panic!()
    };
    assert_eq!(replaced.len(), 1);
    assert_eq!(replaced[0].id, first);
    assert!(replaced[0].was_running);

    let old = store.get_job(first).await.unwrap().unwrap();
    assert_eq!(old.state, JobState::Superseded);
    assert_eq!(old.superseded_by, Some(retry));
    assert!(old.error.unwrap().contains(&format!("superseded by job {retry}")));
    // The superseded worker's writes are refused from now on.
    assert!(!store.heartbeat(&claimed.lease, Duration::from_secs(60)).await.unwrap());
    assert!(!store.set_phase(&claimed.lease, "agent").await.unwrap());
    assert!(!store.finish(&claimed.lease, &Finish::Succeeded { result: json!({}) }).await.unwrap());
    assert_eq!(store.get_job(first).await.unwrap().unwrap().state, JobState::Superseded);
    // Other issues are untouched.
    assert_eq!(store.get_job(other_issue).await.unwrap().unwrap().state, JobState::Queued);

    // Queuing a cancel stops nothing (anyone may comment it; its handler checks write access)...
    let Enqueued::Created { id: cancel, replaced } = store.enqueue(&job(JobKind::Cancel, 1)).await.unwrap() else {
        panic!()
    };
    assert!(replaced.is_empty(), "{replaced:?}");
    assert_eq!(store.get_job(retry).await.unwrap().unwrap().state, JobState::Queued);
    // ...an authorised cancel then marks the active work as cancelled by it.
    let stopped = store.cancel_active("acme/connectors", 1, cancel).await.unwrap();
    assert_eq!(stopped.iter().map(|r| r.id).collect::<Vec<_>>(), vec![retry]);
    let r = store.get_job(retry).await.unwrap().unwrap();
    assert_eq!(r.state, JobState::Cancelled);
    assert_eq!(r.superseded_by, Some(cancel));
    assert_eq!(store.get_job(other_issue).await.unwrap().unwrap().state, JobState::Queued, "other issues untouched");
}

async fn status_disturbs_nothing_and_ci_results_do_not_stop_a_generation(db: &TestDb) {
    let store = db.open().await;
    let generate = store.enqueue(&job(JobKind::Generate, 5)).await.unwrap().job_id();
    let Enqueued::Created { replaced, .. } = store.enqueue(&job(JobKind::Status, 5)).await.unwrap() else { panic!() };
    assert!(replaced.is_empty());
    let ci = store.enqueue(&job(JobKind::CiFinished, 5)).await.unwrap().job_id();
    assert_eq!(store.get_job(generate).await.unwrap().unwrap().state, JobState::Queued);
    let Enqueued::Created { replaced, .. } = store.enqueue(&job(JobKind::CiFinished, 5)).await.unwrap() else {
        panic!()
    };
    assert_eq!(replaced.iter().map(|r| r.id).collect::<Vec<_>>(), vec![ci], "a newer CI result replaces an older one");
    let Enqueued::Created { replaced, .. } = store.enqueue(&job(JobKind::Retry, 5)).await.unwrap() else { panic!() };
    assert_eq!(replaced.len(), 2, "a retry replaces the generation and the pending CI analysis: {replaced:?}");
}

async fn only_if_first_skips_a_second_generate(db: &TestDb) {
    let store = db.open().await;
    let first = store.enqueue(&job(JobKind::Generate, 3).only_if_first()).await.unwrap();
    let second = store.enqueue(&job(JobKind::Generate, 3).only_if_first()).await.unwrap();
    assert_eq!(second, Enqueued::Skipped { existing: first.job_id() });
    assert_eq!(store.list_jobs(&JobFilter::default()).await.unwrap().len(), 1);
}

async fn claim_takes_the_oldest_and_hands_each_job_out_once(db: &TestDb) {
    let store = db.open().await;
    let ids: Vec<_> = [1, 2, 3].iter().map(|i| job(JobKind::Generate, *i)).collect();
    let mut enqueued = Vec::new();
    for j in &ids {
        enqueued.push(store.enqueue(j).await.unwrap().job_id());
    }
    // Concurrent claimers never get the same job.
    let mut handles = Vec::new();
    for n in 0..6 {
        let store = store.clone();
        handles
            .push(tokio::spawn(async move { store.claim(&format!("w{n}"), Duration::from_secs(60)).await.unwrap() }));
    }
    let mut got: Vec<_> = Vec::new();
    for h in handles {
        if let Some(c) = h.await.unwrap() {
            assert_eq!(c.job.state, JobState::Running);
            assert_eq!(c.job.attempts, 1);
            got.push(c.job.id);
        }
    }
    got.sort();
    assert_eq!(got, enqueued);
    assert!(store.claim("late", Duration::from_secs(60)).await.unwrap().is_none());
}

async fn an_expired_lease_makes_a_running_job_claimable_again(db: &TestDb) {
    let store = db.open().await;
    let id = store.enqueue(&job(JobKind::Generate, 1)).await.unwrap().job_id();
    // Leases long enough for a busy machine to make the next two calls inside them.
    let first = store.claim("crashed", Duration::from_millis(800)).await.unwrap().unwrap();
    assert!(store.set_phase(&first.lease, "agent").await.unwrap());
    assert!(store.claim("other", Duration::from_secs(60)).await.unwrap().is_none(), "lease still valid");

    tokio::time::sleep(Duration::from_millis(1000)).await;
    let second = store.claim("other", Duration::from_secs(60)).await.unwrap().unwrap();
    assert_eq!(second.job.id, id);
    assert_eq!(second.job.attempts, 2);
    assert_eq!(second.job.phase.as_deref(), Some("agent"), "the phase survives for the resumed run");
    assert_eq!(second.job.lease_owner.as_deref(), Some("other"));

    // The first holder lost the job for good.
    assert!(!store.heartbeat(&first.lease, Duration::from_secs(60)).await.unwrap());
    assert!(!store.finish(&first.lease, &Finish::Succeeded { result: json!(1) }).await.unwrap());
    assert!(store.heartbeat(&second.lease, Duration::from_secs(60)).await.unwrap());
    assert!(store.finish(&second.lease, &Finish::Succeeded { result: json!({"pr": 9}) }).await.unwrap());
    let done = store.get_job(id).await.unwrap().unwrap();
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.result, Some(json!({"pr": 9})));
    assert!(done.finished_at.is_some());
    assert!(done.lease_until.is_none());
}

async fn heartbeats_keep_the_lease(db: &TestDb) {
    let store = db.open().await;
    store.enqueue(&job(JobKind::Generate, 1)).await.unwrap();
    // Four beats span twice the lease; each leaves a busy machine 400 ms of slack.
    let c = store.claim("w", Duration::from_millis(600)).await.unwrap().unwrap();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(store.heartbeat(&c.lease, Duration::from_millis(600)).await.unwrap());
        assert!(store.claim("thief", Duration::from_secs(1)).await.unwrap().is_none());
    }
}

async fn a_job_that_keeps_killing_its_worker_is_failed_after_max_attempts(db: &TestDb) {
    let store = db.open_with_max_attempts(2).await;
    let id = store.enqueue(&job(JobKind::Generate, 1)).await.unwrap().job_id();
    for _ in 0..2 {
        store.claim("w", Duration::from_millis(50)).await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
    assert!(store.claim("w", Duration::from_millis(50)).await.unwrap().is_none());
    let j = store.get_job(id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Failed);
    assert!(j.error.unwrap().contains("gave up after 2 attempts"));
}

async fn release_puts_the_job_back_without_counting_the_attempt(db: &TestDb) {
    let store = db.open().await;
    let id = store.enqueue(&job(JobKind::Generate, 1)).await.unwrap().job_id();
    let c = store.claim("w", Duration::from_secs(60)).await.unwrap().unwrap();
    assert!(store.release(&c.lease).await.unwrap());
    let j = store.get_job(id).await.unwrap().unwrap();
    assert_eq!((j.state, j.attempts), (JobState::Queued, 0));
    assert!(store.claim("w", Duration::from_secs(60)).await.unwrap().is_some());
}

async fn route_event_enqueues_and_marks_routed_once(db: &TestDb) {
    let store = db.open().await;
    let Intake::Recorded(ev) = store.record_event(&event("d-9")).await.unwrap() else { panic!() };
    assert_eq!(store.unrouted_events(10).await.unwrap().len(), 1);
    let route = json!({"decision": "generate", "reason": "test"});
    let out = store.route_event(ev, &route, &[job(JobKind::Generate, 1)]).await.unwrap();
    assert_eq!(out.len(), 1);
    // A second router arriving late does nothing.
    assert!(store.route_event(ev, &route, &[job(JobKind::Generate, 1)]).await.unwrap().is_empty());
    assert!(store.unrouted_events(10).await.unwrap().is_empty());
    let stored = store.get_event(ev).await.unwrap().unwrap();
    assert_eq!(stored.route.unwrap()["jobs"][0]["id"], json!(out[0].job_id().0));
    let j = store.get_job(out[0].job_id()).await.unwrap().unwrap();
    assert_eq!(j.event_id, Some(ev));
}

async fn list_jobs_filters(db: &TestDb) {
    let store = db.open().await;
    store.enqueue(&job(JobKind::Generate, 1)).await.unwrap();
    store.enqueue(&job(JobKind::Status, 1)).await.unwrap();
    store.enqueue(&job(JobKind::Generate, 2)).await.unwrap();
    store.enqueue(&NewJob::new(JobKind::Generate, "other/repo", Some(1), json!({}))).await.unwrap();
    let c = store.claim("w", Duration::from_secs(60)).await.unwrap().unwrap();
    store.finish(&c.lease, &Finish::Failed { error: "boom".into(), result: None }).await.unwrap();

    let by = |f: JobFilter| {
        let store = store.clone();
        async move { store.list_jobs(&f).await.unwrap() }
    };
    assert_eq!(by(JobFilter::default()).await.len(), 4);
    let failed = by(JobFilter { states: vec![JobState::Failed], ..Default::default() }).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].error.as_deref(), Some("boom"));
    assert_eq!(by(JobFilter { kinds: vec![JobKind::Status], ..Default::default() }).await.len(), 1);
    let issue1 =
        by(JobFilter { repository: Some("acme/connectors".into()), issue_number: Some(1), ..Default::default() }).await;
    assert_eq!(issue1.len(), 2);
    assert!(issue1[0].id > issue1[1].id, "newest first");
    assert_eq!(by(JobFilter { limit: Some(1), ..Default::default() }).await.len(), 1);
    // Pages: everything older than a job.
    let all = by(JobFilter::default()).await;
    let older = by(JobFilter { before: Some(all[1].id), ..Default::default() }).await;
    assert_eq!(older.iter().map(|j| j.id).collect::<Vec<_>>(), all[2..].iter().map(|j| j.id).collect::<Vec<_>>());
    // Counts per state, from one aggregate.
    let counts = store.job_counts().await.unwrap();
    assert_eq!(counts, vec![(JobState::Queued, 3), (JobState::Failed, 1)]);
}

#[tokio::test]
async fn open_picks_the_backend_by_url_and_errors_never_show_a_password() {
    let err = connector_factory::store::open("postgres://factory:hunter2-secret@127.0.0.1:port/factory").await.err();
    let shown = format!("{:#}", err.expect("not a port"));
    assert!(shown.contains("invalid Postgres URL") && !shown.contains("hunter2"), "{shown}");
    let err = connector_factory::store::open("mysql://factory:hunter2-secret@db/factory").await.err();
    let shown = format!("{:#}", err.expect("no MySQL store"));
    assert!(shown.contains("'mysql:'") && !shown.contains("hunter2"), "{shown}");

    let Some(db) = TestDb::postgres("open_by_url").await else { return };
    let url = db.postgres_database_url();
    let store = connector_factory::store::open(&url).await.unwrap();
    store.ping().await.unwrap();
    store.enqueue(&job(JobKind::Generate, 1)).await.unwrap();
    drop(store);
    // A refused password (where the server asks for one) is reported without it.
    let mut wrong = url::Url::parse(&url).unwrap();
    if wrong.password().is_some() {
        wrong.set_password(Some("hunter2-wrong")).unwrap();
        let shown = format!("{:#}", connector_factory::store::open(wrong.as_str()).await.err().expect("wrong password"));
        assert!(shown.contains(":***@") && !shown.contains("hunter2"), "{shown}");
    }
    db.cleanup().await;
}

/// Two `serve` replicas, each with its own connection pool, on one Postgres database.
mod replicas {
    use super::*;
    use connector_factory::store::{Store, Intake};
    use std::sync::Arc;

    async fn two_replicas(test: &str) -> Option<(TestDb, Arc<dyn Store>, Arc<dyn Store>)> {
        let db = TestDb::postgres(test).await?;
        let a = db.open().await;
        let b = db.open().await;
        Some((db, a, b))
    }

    /// Every claimer of both replicas claims until the queue is empty.
    async fn drain(replicas: &[Arc<dyn Store>], lease: Duration) -> Vec<connector_factory::store::Claimed> {
        let mut tasks = Vec::new();
        for (r, store) in replicas.iter().enumerate() {
            for w in 0..6 {
                let store = store.clone();
                tasks.push(tokio::spawn(async move {
                    let mut got = Vec::new();
                    while let Some(c) = store.claim(&format!("replica{r}-worker{w}"), lease).await.unwrap() {
                        got.push(c);
                    }
                    got
                }));
            }
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_claims_never_hand_a_job_to_two_replicas() {
        let Some((db, a, b)) = two_replicas("claims_across_replicas").await else { return };
        let mut queued = BTreeSet::new();
        for issue in 0..40 {
            let store = if issue % 2 == 0 { &a } else { &b };
            queued.insert(store.enqueue(&job(JobKind::Generate, issue)).await.unwrap().job_id());
        }
        // Long enough that no lease expires while the queue drains, even on a busy machine.
        let lease = Duration::from_secs(2);
        let started = std::time::Instant::now();
        let claims = drain(&[a.clone(), b.clone()], lease).await;
        assert!(started.elapsed() < lease, "draining took {:?}, longer than the lease", started.elapsed());
        let ids: Vec<_> = claims.iter().map(|c| c.job.id).collect();
        let distinct: BTreeSet<_> = ids.iter().copied().collect();
        assert_eq!(ids.len(), distinct.len(), "a job was handed out twice: {ids:?}");
        assert_eq!(distinct, queued, "every job is claimed once");
        assert!(claims.iter().all(|c| c.job.attempts == 1));

        // Once the leases expire, the replicas race to take the jobs over: each once again.
        tokio::time::sleep(lease + Duration::from_millis(200)).await;
        let again = drain(&[a.clone(), b.clone()], Duration::from_secs(60)).await;
        let ids: Vec<_> = again.iter().map(|c| c.job.id).collect();
        let distinct: BTreeSet<_> = ids.iter().copied().collect();
        assert_eq!(ids.len(), distinct.len(), "an expired job was taken over twice: {ids:?}");
        assert_eq!(distinct, queued);
        assert!(again.iter().all(|c| c.job.attempts == 2));
        // The first holders lost their jobs, whichever replica they ask.
        for c in &claims {
            assert!(!b.heartbeat(&c.lease, Duration::from_secs(60)).await.unwrap());
        }
        db.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_delivery_received_by_both_replicas_is_stored_once() {
        let Some((db, a, b)) = two_replicas("delivery_across_replicas").await else { return };
        for round in 0..10 {
            let delivery = format!("d-{round}");
            let mut tasks = Vec::new();
            for store in [&a, &b, &a, &b] {
                let (store, delivery) = (store.clone(), delivery.clone());
                tasks.push(tokio::spawn(async move { store.record_event(&event(&delivery)).await.unwrap() }));
            }
            let mut recorded = 0;
            for t in tasks {
                if let Intake::Recorded(_) = t.await.unwrap() {
                    recorded += 1;
                }
            }
            assert_eq!(recorded, 1, "delivery {delivery} was stored {recorded} times");
            assert_eq!(b.delivery(&delivery).await.unwrap().unwrap().redeliveries, 3);
        }
        assert_eq!(a.unrouted_events(100).await.unwrap().len(), 10);
        db.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_dispatchers_routing_one_event_enqueue_once() {
        let Some((db, a, b)) = two_replicas("route_across_replicas").await else { return };
        for round in 0..10 {
            let Intake::Recorded(ev) = a.record_event(&event(&format!("r-{round}"))).await.unwrap() else { panic!() };
            let route = json!({"decision": "generate"});
            let jobs = vec![job(JobKind::Generate, round), job(JobKind::Status, round + 100)];
            let (ra, rb) = tokio::join!(a.route_event(ev, &route, &jobs), b.route_event(ev, &route, &jobs));
            let (ra, rb) = (ra.unwrap(), rb.unwrap());
            assert_eq!(ra.len() + rb.len(), 2, "one router enqueued, the other found the event routed");
        }
        assert_eq!(a.list_jobs(&JobFilter::default()).await.unwrap().len(), 20);
        db.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_enqueues_for_one_issue_leave_one_active_job() {
        let Some((db, a, b)) = two_replicas("enqueue_across_replicas").await else { return };
        for issue in 0..5 {
            // `opened` and `labeled` of one issue form, arriving at both replicas at once.
            let mut tasks = Vec::new();
            for store in [&a, &b, &a, &b] {
                let store = store.clone();
                tasks.push(tokio::spawn(async move {
                    store.enqueue(&job(JobKind::Generate, issue).only_if_first()).await.unwrap()
                }));
            }
            let mut created = 0;
            for t in tasks {
                if let Enqueued::Created { .. } = t.await.unwrap() {
                    created += 1;
                }
            }
            assert_eq!(created, 1, "only the first generate of issue {issue} counts");

            // Retries that race each other: each supersedes the others, and exactly one survives.
            let mut tasks = Vec::new();
            for store in [&a, &b, &a, &b, &a, &b] {
                let store = store.clone();
                tasks.push(tokio::spawn(async move { store.enqueue(&job(JobKind::Retry, issue)).await.unwrap() }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            let filter = JobFilter {
                repository: Some("acme/connectors".into()),
                issue_number: Some(issue),
                states: vec![JobState::Queued, JobState::Running],
                ..Default::default()
            };
            let active = a.list_jobs(&filter).await.unwrap();
            assert_eq!(active.len(), 1, "issue {issue}: {active:?}");
            assert_eq!(active[0].kind, JobKind::Retry);
            let all = a
                .list_jobs(&JobFilter { issue_number: Some(issue), ..Default::default() })
                .await
                .unwrap();
            assert_eq!(all.len(), 7);
            assert!(all.iter().filter(|j| j.id != active[0].id).all(|j| j.state == JobState::Superseded));
        }
        db.cleanup().await;
    }
}

#[tokio::test]
async fn record_events_writes_a_batch_once_and_dedupes_inside_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&db_url(&dir)).await.unwrap();
    assert_eq!(store.record_event(&event("old")).await.unwrap(), Intake::Recorded(EventId(1)));

    // More rows than one multi-row statement takes, with copies inside the batch and an id
    // stored before.
    let mut batch: Vec<NewEvent> = (0..70).map(|i| event(&format!("b-{i}"))).collect();
    batch.insert(5, event("old"));
    batch.push(event("b-3"));
    batch.push(event("b-3"));
    batch.push(event("b-69"));
    let answers = store.record_events(&batch).await.unwrap();
    assert_eq!(answers.len(), batch.len());
    let mut seen = std::collections::HashSet::new();
    let mut ids = std::collections::HashSet::new();
    for (e, a) in batch.iter().zip(&answers) {
        let first = e.delivery_id != "old" && seen.insert(e.delivery_id.clone());
        match a {
            Intake::Recorded(id) => {
                assert!(first, "{} recorded twice", e.delivery_id);
                assert!(ids.insert(*id));
                assert_eq!(store.get_event(*id).await.unwrap().unwrap().delivery_id, e.delivery_id);
            }
            Intake::Duplicate => assert!(!first, "the first copy of {} is a duplicate", e.delivery_id),
        }
    }
    assert_eq!(ids.len(), 70);
    assert_eq!(store.unrouted_events(1000).await.unwrap().len(), 71);
    assert_eq!(store.delivery("b-3").await.unwrap().unwrap().redeliveries, 2);
    assert_eq!(store.delivery("b-69").await.unwrap().unwrap().redeliveries, 1);
    assert_eq!(store.delivery("old").await.unwrap().unwrap().redeliveries, 1);
    assert_eq!(store.delivery("b-0").await.unwrap().unwrap().redeliveries, 0);
    assert!(store.record_events(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_failing_batch_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&db_url(&dir)).await.unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.delivery_id = 'poison' \
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let batch = [event("ok-1"), event("poison"), event("ok-2")];
    let err = store.record_events(&batch).await.unwrap_err();
    assert!(format!("{err:#}").contains("refused by the test"), "{err:#}");
    for id in ["ok-1", "poison", "ok-2"] {
        assert!(store.delivery(id).await.unwrap().is_none(), "{id} was kept from a failed batch");
    }
    assert!(store.unrouted_events(10).await.unwrap().is_empty());
    // The intake connection is usable afterwards (the transaction was rolled back).
    assert!(matches!(store.record_events(&batch[..1]).await.unwrap()[..], [Intake::Recorded(_)]));
}

#[tokio::test]
async fn route_events_routes_a_batch_in_order_and_each_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&db_url(&dir)).await.unwrap();
    let mut ids = Vec::new();
    for d in ["r-1", "r-2", "r-3"] {
        let Intake::Recorded(id) = store.record_event(&event(d)).await.unwrap() else { panic!() };
        ids.push(id);
    }
    let generate = json!({"decision": "generate", "reason": "test"});
    let ignore = json!({"decision": "ignore", "reason": "a comment"});
    // r-1 was routed before; r-2 appears twice in the batch.
    store.route_event(ids[0], &ignore, &[]).await.unwrap();
    let batch = vec![
        (ids[0], generate.clone(), vec![job(JobKind::Generate, 1)]),
        (ids[1], generate.clone(), vec![job(JobKind::Generate, 2)]),
        (ids[2], ignore.clone(), vec![]),
        (ids[1], generate.clone(), vec![job(JobKind::Generate, 2)]),
    ];
    let out = store.route_events(&batch).await.unwrap();
    assert_eq!(out.len(), 4);
    assert!(out[0].is_empty() && out[2].is_empty() && out[3].is_empty(), "{out:?}");
    assert_eq!(out[1].len(), 1);
    assert!(store.unrouted_events(10).await.unwrap().is_empty());
    assert_eq!(store.get_event(ids[0]).await.unwrap().unwrap().route.unwrap()["decision"], "ignore");
    let r2 = store.get_event(ids[1]).await.unwrap().unwrap().route.unwrap();
    assert_eq!((r2["decision"].as_str(), r2["jobs"][0]["id"].as_i64()), (Some("generate"), Some(out[1][0].job_id().0)));
    assert_eq!(store.get_event(ids[2]).await.unwrap().unwrap().route.unwrap()["reason"], "a comment");
    assert_eq!(store.list_jobs(&JobFilter::default()).await.unwrap().len(), 1);

    // An unknown event fails the whole batch, which then changes nothing.
    let Intake::Recorded(r4) = store.record_event(&event("r-4")).await.unwrap() else { panic!() };
    let bad = vec![(r4, generate.clone(), vec![job(JobKind::Generate, 4)]), (EventId(999), ignore, vec![])];
    assert!(store.route_events(&bad).await.is_err());
    assert_eq!(store.unrouted_events(10).await.unwrap().len(), 1);
    assert_eq!(store.list_jobs(&JobFilter::default()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_write_ahead_log_is_checkpointed_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&db_url(&dir)).await.unwrap();
    let file = dir.path().join("nested/folder/factory.db");
    let before = std::fs::metadata(&file).unwrap().len();
    let big = "x".repeat(4000);
    let batch: Vec<NewEvent> = (0..200).map(|i| NewEvent { payload: format!(r#"{{"pad":"{big}"}}"#), ..event(&format!("w-{i}")) }).collect();
    store.record_events(&batch).await.unwrap();
    // Commits no longer checkpoint themselves; the background task copies the log into the file.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&file).unwrap().len() < before + 200 * 4000 {
        assert!(std::time::Instant::now() < deadline, "the log was not checkpointed into {}", file.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_write_ahead_log_is_cut_back_after_a_flood() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&db_url(&dir)).await.unwrap();
    let wal = dir.path().join("nested/folder/factory.db-wal");
    let wal_size = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    // One transaction twice the cap: the log grows past it, as under a flood.
    let big = "x".repeat(20_000);
    let flood: Vec<NewEvent> =
        (0..400).map(|i| NewEvent { payload: format!(r#"{{"pad":"{big}"}}"#), ..event(&format!("f-{i}")) }).collect();
    store.record_events(&flood).await.unwrap();
    assert!(wal_size() > 2 * connector_factory::store::sqlite::WAL_SIZE_LIMIT, "the log did not grow: {} B", wal_size());
    // Once a background checkpoint has caught up, the next commit starts the log over and cuts
    // the file back.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut i = 0;
    while wal_size() > connector_factory::store::sqlite::WAL_SIZE_LIMIT {
        assert!(std::time::Instant::now() < deadline, "the log stayed at {} B", wal_size());
        tokio::time::sleep(Duration::from_millis(100)).await;
        store.record_event(&event(&format!("after-{i}"))).await.unwrap();
        i += 1;
    }
}

/// A SQLite database in a nested folder (the SQLite-only tests of batched intake above).
fn db_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("nested/folder/factory.db").display())
}

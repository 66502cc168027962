//! The SQLite store: persistence across restarts, enqueue and supersession, claims and leases.

use chrono::Utc;
use connector_factory::store::{
    Enqueued, EventId, Finish, Intake, JobFilter, JobKind, JobState, NewEvent, NewJob, SqliteStore, Store,
};
use serde_json::json;
use std::time::Duration;

fn db_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("nested/folder/factory.db").display())
}

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

#[tokio::test]
async fn creates_the_database_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = db_url(&dir);
    let (event_id, job_id) = {
        let store = SqliteStore::connect(&url).await.unwrap();
        let Intake::Recorded(event_id) = store.record_event(&event("d-1")).await.unwrap() else { panic!() };
        let id = store.enqueue(&job(JobKind::Generate, 1)).await.unwrap().job_id();
        store.pool().close().await;
        (event_id, id)
    };
    assert!(dir.path().join("nested/folder/factory.db").is_file());

    let store = SqliteStore::connect(&url).await.unwrap();
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

#[tokio::test]
async fn a_new_job_supersedes_the_active_ones_for_the_same_issue() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&db_url(&dir)).await.unwrap();
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

#[tokio::test]
async fn status_disturbs_nothing_and_ci_results_do_not_stop_a_generation() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&db_url(&dir)).await.unwrap();
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

#[tokio::test]
async fn only_if_first_skips_a_second_generate() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&db_url(&dir)).await.unwrap();
    let first = store.enqueue(&job(JobKind::Generate, 3).only_if_first()).await.unwrap();
    let second = store.enqueue(&job(JobKind::Generate, 3).only_if_first()).await.unwrap();
    assert_eq!(second, Enqueued::Skipped { existing: first.job_id() });
    assert_eq!(store.list_jobs(&JobFilter::default()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn claim_takes_the_oldest_and_hands_each_job_out_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&db_url(&dir)).await.unwrap();
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

#[tokio::test]
async fn an_expired_lease_makes_a_running_job_claimable_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&db_url(&dir)).await.unwrap();
    let id = store.enqueue(&job(JobKind::Generate, 1)).await.unwrap().job_id();
    let first = store.claim("crashed", Duration::from_millis(150)).await.unwrap().unwrap();
    assert!(store.set_phase(&first.lease, "agent").await.unwrap());
    assert!(store.claim("other", Duration::from_secs(60)).await.unwrap().is_none(), "lease still valid");

    tokio::time::sleep(Duration::from_millis(250)).await;
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

#[tokio::test]
async fn heartbeats_keep_the_lease() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&db_url(&dir)).await.unwrap();
    store.enqueue(&job(JobKind::Generate, 1)).await.unwrap();
    let c = store.claim("w", Duration::from_millis(200)).await.unwrap().unwrap();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(store.heartbeat(&c.lease, Duration::from_millis(200)).await.unwrap());
        assert!(store.claim("thief", Duration::from_secs(1)).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn a_job_that_keeps_killing_its_worker_is_failed_after_max_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&db_url(&dir)).await.unwrap().with_max_attempts(2);
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

#[tokio::test]
async fn release_puts_the_job_back_without_counting_the_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&db_url(&dir)).await.unwrap();
    let id = store.enqueue(&job(JobKind::Generate, 1)).await.unwrap().job_id();
    let c = store.claim("w", Duration::from_secs(60)).await.unwrap().unwrap();
    assert!(store.release(&c.lease).await.unwrap());
    let j = store.get_job(id).await.unwrap().unwrap();
    assert_eq!((j.state, j.attempts), (JobState::Queued, 0));
    assert!(store.claim("w", Duration::from_secs(60)).await.unwrap().is_some());
}

#[tokio::test]
async fn route_event_enqueues_and_marks_routed_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&db_url(&dir)).await.unwrap();
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

#[tokio::test]
async fn list_jobs_filters() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&db_url(&dir)).await.unwrap();
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

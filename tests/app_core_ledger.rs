//! The store's ledger: counted actions of the learning loop (fix attempts, improvement PRs) with
//! limits that hold across restarts, concurrent workers and (Postgres) replicas. Every test runs
//! on every backend (see `store_backends`).

#[macro_use]
mod store_backends;

use chrono::{Duration as ChronoDuration, Utc};
use connector_factory::store::{LedgerEntry, LedgerQuery, LedgerTake, Store};
use futures_util::future::BoxFuture;
use serde_json::json;
use std::sync::Arc;
use store_backends::TestDb;

on_every_backend!(
    takes_up_to_the_limit_and_remembers_across_a_restart,
    the_same_key_is_one_action_even_past_the_limit,
    counts_all_subjects_in_a_time_window,
    concurrent_takes_never_pass_the_limit,
    takes_for_different_subjects_share_an_all_subjects_limit,
);

fn fixes(pr: u64) -> LedgerQuery {
    LedgerQuery {
        repository: "acme/connectors".into(),
        kind: "fix_attempt".into(),
        subject: Some(format!("pr:{pr}")),
        since: None,
    }
}

fn entry(pr: u64, run: u64) -> LedgerEntry {
    LedgerEntry { subject: format!("pr:{pr}"), key: format!("pr:{pr}:run:{run}"), note: json!({ "run": run }) }
}

async fn takes_up_to_the_limit_and_remembers_across_a_restart(db: &TestDb) {
    {
        let store = db.open().await;
        assert_eq!(store.ledger_take(&fixes(12), 2, &entry(12, 1)).await.unwrap(), LedgerTake::Taken(1));
        db.close_all().await;
    }
    let store = db.open().await;
    assert_eq!(store.ledger_count(&fixes(12)).await.unwrap(), 1);
    assert_eq!(store.ledger_take(&fixes(12), 2, &entry(12, 2)).await.unwrap(), LedgerTake::Taken(2));
    assert_eq!(store.ledger_take(&fixes(12), 2, &entry(12, 3)).await.unwrap(), LedgerTake::LimitReached(2));
    assert_eq!(store.ledger_count(&fixes(12)).await.unwrap(), 2, "a refused take records nothing");
    // Another pull request has its own count.
    assert_eq!(store.ledger_take(&fixes(13), 2, &entry(13, 3)).await.unwrap(), LedgerTake::Taken(1));
}

async fn the_same_key_is_one_action_even_past_the_limit(db: &TestDb) {
    let store = db.open().await;
    assert_eq!(store.ledger_take(&fixes(5), 1, &entry(5, 9)).await.unwrap(), LedgerTake::Taken(1));
    assert_eq!(store.ledger_take(&fixes(5), 1, &entry(5, 9)).await.unwrap(), LedgerTake::AlreadyTaken(1));
    assert_eq!(store.ledger_count(&fixes(5)).await.unwrap(), 1);
}

async fn counts_all_subjects_in_a_time_window(db: &TestDb) {
    let store = db.open().await;
    let per_day = |since| LedgerQuery {
        repository: "acme/connectors".into(),
        kind: "improvement".into(),
        subject: None,
        since: Some(since),
    };
    let day_ago = Utc::now() - ChronoDuration::hours(24);
    for (i, category) in ["pagination", "auth", "schema"].iter().enumerate() {
        let e = LedgerEntry { subject: category.to_string(), key: format!("k{i}"), note: json!({}) };
        assert_eq!(store.ledger_take(&per_day(day_ago), 3, &e).await.unwrap(), LedgerTake::Taken(i as u32 + 1));
    }
    let e = LedgerEntry { subject: "state".into(), key: "k4".into(), note: json!({}) };
    assert_eq!(store.ledger_take(&per_day(day_ago), 3, &e).await.unwrap(), LedgerTake::LimitReached(3));
    // A window that starts after the entries counts none of them.
    let later = Utc::now() + ChronoDuration::seconds(5);
    assert_eq!(store.ledger_count(&per_day(later)).await.unwrap(), 0);
    assert_eq!(store.ledger_take(&per_day(later), 3, &e).await.unwrap(), LedgerTake::Taken(1));
}

/// Two stores on one database (two replicas for Postgres, two processes' pools for SQLite), each
/// with its connections open, and `n` takes started together, alternating between the stores.
/// Returns how many were taken.
async fn race(db: &TestDb, n: u64, take: fn(Arc<dyn Store>, u64) -> BoxFuture<'static, LedgerTake>) -> u32 {
    let stores = [db.open().await, db.open().await];
    // Open the pools' connections first, so the takes race each other rather than the connects.
    let none = fixes(0);
    for store in &stores {
        for counted in futures_util::future::join_all((0..6).map(|_| store.ledger_count(&none))).await {
            counted.unwrap();
        }
    }
    let start = Arc::new(tokio::sync::Barrier::new(n as usize));
    let mut tasks = Vec::new();
    for run in 0..n {
        let (store, start) = (stores[run as usize % 2].clone(), start.clone());
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            take(store, run).await
        }));
    }
    let mut taken = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), LedgerTake::Taken(_)) {
            taken += 1;
        }
    }
    taken
}

async fn concurrent_takes_never_pass_the_limit(db: &TestDb) {
    let taken = race(db, 20, |store, run| {
        Box::pin(async move { store.ledger_take(&fixes(1), 3, &entry(1, run)).await.unwrap() })
    })
    .await;
    assert_eq!(taken, 3);
    assert_eq!(db.open().await.ledger_count(&fixes(1)).await.unwrap(), 3);
}

/// Takes for different subjects counted against one all-subjects limit (the shape of the daily
/// improvement PR limit), racing on two stores, never pass it.
async fn takes_for_different_subjects_share_an_all_subjects_limit(db: &TestDb) {
    fn all() -> LedgerQuery {
        LedgerQuery { repository: "acme/connectors".into(), kind: "improvement".into(), subject: None, since: None }
    }
    let taken = race(db, 16, |store, n| {
        Box::pin(async move {
            let e = LedgerEntry { subject: format!("category-{}", n % 4), key: format!("k{n}"), note: json!({}) };
            store.ledger_take(&all(), 5, &e).await.unwrap()
        })
    })
    .await;
    assert_eq!(taken, 5);
    assert_eq!(db.open().await.ledger_count(&all()).await.unwrap(), 5);
}

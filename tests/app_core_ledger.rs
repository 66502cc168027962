//! The store's ledger: counted actions of the learning loop (fix attempts, improvement PRs) with
//! limits that hold across restarts and concurrent workers.

use chrono::{Duration as ChronoDuration, Utc};
use connector_factory::store::{LedgerEntry, LedgerQuery, LedgerTake, SqliteStore, Store};
use serde_json::json;
use std::sync::Arc;

fn url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("factory.db").display())
}

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

#[tokio::test]
async fn takes_up_to_the_limit_and_remembers_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::connect(&url(&dir)).await.unwrap();
        assert_eq!(store.ledger_take(&fixes(12), 2, &entry(12, 1)).await.unwrap(), LedgerTake::Taken(1));
        store.pool().close().await;
    }
    let store = SqliteStore::connect(&url(&dir)).await.unwrap();
    assert_eq!(store.ledger_count(&fixes(12)).await.unwrap(), 1);
    assert_eq!(store.ledger_take(&fixes(12), 2, &entry(12, 2)).await.unwrap(), LedgerTake::Taken(2));
    assert_eq!(store.ledger_take(&fixes(12), 2, &entry(12, 3)).await.unwrap(), LedgerTake::LimitReached(2));
    assert_eq!(store.ledger_count(&fixes(12)).await.unwrap(), 2, "a refused take records nothing");
    // Another pull request has its own count.
    assert_eq!(store.ledger_take(&fixes(13), 2, &entry(13, 3)).await.unwrap(), LedgerTake::Taken(1));
}

#[tokio::test]
async fn the_same_key_is_one_action_even_past_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&url(&dir)).await.unwrap();
    assert_eq!(store.ledger_take(&fixes(5), 1, &entry(5, 9)).await.unwrap(), LedgerTake::Taken(1));
    assert_eq!(store.ledger_take(&fixes(5), 1, &entry(5, 9)).await.unwrap(), LedgerTake::AlreadyTaken(1));
    assert_eq!(store.ledger_count(&fixes(5)).await.unwrap(), 1);
}

#[tokio::test]
async fn counts_all_subjects_in_a_time_window() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&url(&dir)).await.unwrap();
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

#[tokio::test]
async fn concurrent_takes_never_pass_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::connect(&url(&dir)).await.unwrap());
    let mut tasks = Vec::new();
    for run in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move { store.ledger_take(&fixes(1), 3, &entry(1, run)).await.unwrap() }));
    }
    let mut taken = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), LedgerTake::Taken(_)) {
            taken += 1;
        }
    }
    assert_eq!(taken, 3);
    assert_eq!(store.ledger_count(&fixes(1)).await.unwrap(), 3);
}

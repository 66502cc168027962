//! The SQLite store's batch write for the webhook intake, on plain SQLite calls.
//!
//! sqlx runs every SQLite connection on a thread of its own, and each statement (BEGIN, each
//! INSERT, COMMIT) is a hand-off to that thread and back; on a busy 2-CPU machine each hand-off
//! is a wake-up of tens of microseconds. A batch of deliveries took about 340 µs that way, of
//! which SQLite's own work was a small part. So the intake writes through rusqlite (linked
//! against the same libsqlite3 as sqlx) with cached prepared statements, on a connection its own
//! thread owns (see `crate::server::intake`): a batch costs one hand-off from the request
//! handlers to that thread, and none per statement.
//!
//! The semantics are those of [`super::Store::record_events`]: the first copy of a delivery id
//! is recorded, later copies (stored before, or earlier in the same batch) are duplicates and
//! count as redeliveries; an error means nothing of the batch was stored.

use super::{EventId, Intake, NewEvent};
use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// Opens the intake's own connection to the (already migrated) database file, with the settings
/// of the store's pool: WAL, NORMAL sync, foreign keys, checkpoints left to the background task,
/// the same cap on the log file.
pub(super) fn open(file: &Path, busy_timeout: Duration) -> Result<Connection> {
    let conn = Connection::open(file).with_context(|| format!("opening the database {}", file.display()))?;
    conn.busy_timeout(busy_timeout)?;
    conn.pragma_update(None, "journal_mode", "wal")?;
    conn.pragma_update(None, "synchronous", "normal")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.pragma_update(None, "journal_size_limit", super::sqlite::WAL_SIZE_LIMIT.to_string())?;
    Ok(conn)
}

/// Writes `events` in one immediate transaction on `conn`.
pub(super) fn write(conn: &mut Connection, events: &[NewEvent]) -> Result<Vec<Intake>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut answers = Vec::with_capacity(events.len());
    // Redeliveries per id: (count, latest time seen), applied once per id below.
    let mut redelivered: HashMap<&str, (i64, i64)> = HashMap::new();
    {
        let mut new_delivery = tx.prepare_cached(
            "INSERT INTO deliveries (delivery_id, event, received_at, last_seen_at) VALUES (?1, ?2, ?3, ?3) \
             ON CONFLICT (delivery_id) DO NOTHING",
        )?;
        let mut new_event = tx.prepare_cached(
            "INSERT INTO events (delivery_id, event, action, installation_id, repository, payload, received_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for e in events {
            let at = e.received_at.timestamp_millis();
            // No row inserted: the id was stored before, or earlier in this batch.
            if new_delivery.execute(params![e.delivery_id, e.event, at])? == 0 {
                let entry = redelivered.entry(e.delivery_id.as_str()).or_insert((0, at));
                entry.0 += 1;
                entry.1 = entry.1.max(at);
                answers.push(Intake::Duplicate);
                continue;
            }
            new_event.execute(params![
                e.delivery_id,
                e.event,
                e.action,
                e.installation_id,
                e.repository,
                e.payload,
                at
            ])?;
            answers.push(Intake::Recorded(EventId(tx.last_insert_rowid())));
        }
        let mut seen_again = tx.prepare_cached(
            "UPDATE deliveries SET redeliveries = redeliveries + ?1, last_seen_at = MAX(last_seen_at, ?2) \
             WHERE delivery_id = ?3 RETURNING 1",
        )?;
        for (id, (count, last_seen)) in &redelivered {
            seen_again
                .query_row(params![count, last_seen, id], |_| Ok(()))
                .optional()?
                .with_context(|| format!("delivery {id} was neither new nor stored before"))?;
        }
    }
    tx.commit()?;
    Ok(answers)
}

//! Persisted events → jobs. Runs beside the HTTP server so the webhook answers without waiting
//! for routing; a crash between the two loses nothing, because events stay marked unrouted
//! until their jobs are enqueued (in the same transaction).

use crate::github::events::WebhookEvent;
use crate::github::route::{RouteContext, route};
use crate::store::{EventId, NewJob, StoredEvent};
use crate::worker::JobQueue;
use anyhow::Result;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Events read, and routed in one transaction, per round trip to the store.
const BATCH: u32 = 50;

pub struct Dispatcher {
    queue: JobQueue,
    ctx: RouteContext,
    wake: Arc<Notify>,
    /// Looks for unrouted events this often even without a wake-up (events stored by another
    /// replica, or left over from a crash).
    poll_every: Duration,
}

impl Dispatcher {
    pub fn new(queue: JobQueue, ctx: RouteContext) -> Self {
        Dispatcher { queue, ctx, wake: Arc::new(Notify::new()), poll_every: Duration::from_secs(5) }
    }

    /// Give this to [`super::AppState::new`]: the intake writer wakes it after each batch.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Routes every event not yet routed; returns how many.
    pub async fn drain(&self) -> Result<usize> {
        let mut total = 0;
        loop {
            let events = self.queue.store().unrouted_events(BATCH).await?;
            if events.is_empty() {
                return Ok(total);
            }
            self.dispatch(&events).await?;
            total += events.len();
        }
    }

    /// Decides each event, then stores every decision and its jobs in one transaction.
    async fn dispatch(&self, events: &[StoredEvent]) -> Result<()> {
        let routes: Vec<(EventId, Value, Vec<NewJob>)> = events
            .iter()
            .map(|stored| match WebhookEvent::parse(&stored.event, stored.payload.as_bytes()) {
                Ok(event) => {
                    let route = route(&event, &stored.delivery_id, &self.ctx);
                    (stored.id, route.record(), route.jobs)
                }
                // Recorded and not retried: the same bytes would fail the same way.
                Err(err) => (stored.id, json!({ "decision": "error", "reason": err.to_string() }), Vec::new()),
            })
            .collect();
        let enqueued = self.queue.route_events(&routes).await?;
        for ((stored, (_, record, _)), enqueued) in events.iter().zip(&routes).zip(&enqueued) {
            tracing::info!(
                delivery = %stored.delivery_id,
                event = %stored.event,
                decision = %record["decision"].as_str().unwrap_or(""),
                reason = %record["reason"].as_str().unwrap_or(""),
                jobs = ?enqueued.iter().map(|e| e.job_id().0).collect::<Vec<_>>(),
                "event routed"
            );
        }
        Ok(())
    }

    /// Routes events as they arrive until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(200);
        while !shutdown.is_cancelled() {
            match self.drain().await {
                Ok(_) => {
                    backoff = Duration::from_millis(200);
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(self.poll_every) => {}
                        _ = shutdown.cancelled() => {}
                    }
                }
                Err(err) => {
                    tracing::warn!("routing events failed, retrying: {err:#}");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.cancelled() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}

//! Group commit for the webhook intake.
//!
//! Request handlers do not write to the store themselves. Each hands its verified delivery to
//! one writer through a channel and waits on a oneshot. The writer takes everything that is
//! waiting (up to [`MAX_BATCH`] deliveries or [`MAX_BATCH_BYTES`] of payload), records it in one
//! transaction, and only after that transaction has committed answers every waiter. So a 202
//! still means "this delivery is in the database", but N deliveries that arrive together cost one
//! commit instead of N, and no two intake transactions ever wait for the write lock behind each
//! other.
//!
//! The writer is a thread of its own when the store offers a [`BatchWriter`] (SQLite on a file:
//! the handlers' channel leads straight to the thread that owns the connection, so a batch costs
//! one wake-up there and one back), otherwise a task calling [`Store::record_events`].
//!
//! A failed batch is reported to every waiter in it (each answers 503 and GitHub can redeliver);
//! a panicking store call is caught and reported the same way, so no waiter hangs and the writer
//! keeps running. The writer ends when the last [`IntakeWriter`] handle is dropped, after
//! answering what it already took.

use crate::store::{BatchWriter, Intake, NewEvent, Store};
use anyhow::{Result, anyhow};
use std::sync::Arc;
use tokio::sync::{Notify, mpsc, oneshot};

/// Most deliveries written in one transaction.
pub const MAX_BATCH: usize = 256;
/// Payload bytes after which a batch is closed (a batch always takes at least one delivery).
pub const MAX_BATCH_BYTES: usize = 8 << 20;
/// Deliveries that may wait for the writer before senders wait too.
const QUEUE: usize = 4096;

type Reply = oneshot::Sender<Result<Intake>>;
type Queue = mpsc::Receiver<(NewEvent, Reply)>;

/// A handle on the writer; cheap to clone.
#[derive(Clone)]
pub struct IntakeWriter {
    queue: mpsc::Sender<(NewEvent, Reply)>,
}

impl IntakeWriter {
    /// Starts the writer: on a thread of its own with the store's [`BatchWriter`] if it has one,
    /// else as a task on the current tokio runtime. `wake` is notified after each batch that
    /// stored at least one new event (the dispatcher's waker).
    pub fn start(store: Arc<dyn Store>, wake: Arc<Notify>) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        match store.intake_batch_writer() {
            Ok(Some(write)) => {
                // Without the thread nothing would answer: every delivery would get a 503, which
                // is loud, and GitHub redelivers once the factory is restarted.
                if let Err(err) = std::thread::Builder::new()
                    .name("factory-intake".into())
                    .spawn(move || run_on_thread(write, wake, rx))
                {
                    tracing::error!("starting the intake writer thread failed: {err}");
                }
            }
            Ok(None) => {
                tokio::spawn(run(store, wake, rx));
            }
            Err(err) => {
                tracing::warn!("the store's own intake connection failed to open ({err:#}); writing through its pool");
                tokio::spawn(run(store, wake, rx));
            }
        }
        IntakeWriter { queue }
    }

    /// Deliveries handed over and not yet taken by the writer.
    pub fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Records one delivery; returns once the transaction that holds it has committed.
    pub async fn record(&self, event: NewEvent) -> Result<Intake> {
        let (reply, answer) = oneshot::channel();
        self.queue.send((event, reply)).await.map_err(|_| anyhow!("the intake writer has stopped"))?;
        answer.await.map_err(|_| anyhow!("the intake writer stopped before answering"))?
    }
}

/// Adds to `first` whatever else is waiting, within the batch limits; a delivery that would
/// overflow the byte limit is kept in `carry` for the next batch.
fn take_batch(
    first: (NewEvent, Reply),
    rx: &mut Queue,
    carry: &mut Option<(NewEvent, Reply)>,
) -> (Vec<NewEvent>, Vec<Reply>) {
    let mut bytes = first.0.payload.len();
    let (mut events, mut replies) = (Vec::with_capacity(16), Vec::with_capacity(16));
    events.push(first.0);
    replies.push(first.1);
    while events.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
        let Ok(item) = rx.try_recv() else { break };
        if bytes + item.0.payload.len() > MAX_BATCH_BYTES {
            *carry = Some(item);
            break;
        }
        bytes += item.0.payload.len();
        events.push(item.0);
        replies.push(item.1);
    }
    (events, replies)
}

/// Answers every waiter of a batch with the store's outcome (an error is each waiter's error).
fn answer(n: usize, outcome: Result<Vec<Intake>>, replies: Vec<Reply>, wake: &Notify) {
    let outcome = match outcome {
        Ok(answers) if answers.len() == n => Ok(answers),
        Ok(answers) => Err(format!("the store answered {} of {n} deliveries", answers.len())),
        Err(err) => Err(format!("{err:#}")),
    };
    match outcome {
        Ok(answers) => {
            if answers.iter().any(|a| matches!(a, Intake::Recorded(_))) {
                wake.notify_one();
            }
            for (reply, answer) in replies.into_iter().zip(answers) {
                // A waiter that went away (client disconnected) is not an error: its delivery
                // is stored and a redelivery will be answered as a duplicate.
                let _ = reply.send(Ok(answer));
            }
        }
        Err(err) => {
            tracing::error!(deliveries = n, "recording a batch of deliveries failed: {err}");
            for reply in replies {
                let _ = reply.send(Err(anyhow!("{err}")));
            }
        }
    }
}

async fn run(store: Arc<dyn Store>, wake: Arc<Notify>, mut rx: Queue) {
    let mut carry = None;
    loop {
        let first = match carry.take() {
            Some(item) => item,
            None => match rx.recv().await {
                Some(item) => item,
                None => return,
            },
        };
        let (events, replies) = take_batch(first, &mut rx, &mut carry);
        let n = events.len();
        // Its own task, so that a panic in the store is an error for this batch and not the end
        // of the writer.
        let writing = tokio::spawn({
            let store = store.clone();
            async move { store.record_events(&events).await }
        });
        let outcome = writing.await.unwrap_or_else(|err| Err(anyhow!("the store failed: {err}")));
        answer(n, outcome, replies, &wake);
    }
}

/// How long the writer thread keeps looking for the next delivery before it sleeps. Waking a
/// sleeping thread costs tens of microseconds on a busy machine, and under load the next delivery
/// is usually closer than that (measured: about +30 % deliveries per second at 16 in flight);
/// when idle the thread sleeps after this and costs nothing.
const SPIN: std::time::Duration = std::time::Duration::from_micros(200);

/// The next delivery, or `None` once every [`IntakeWriter`] is gone.
fn next_delivery(rx: &mut Queue) -> Option<(NewEvent, Reply)> {
    let until = std::time::Instant::now() + SPIN;
    loop {
        match rx.try_recv() {
            Ok(item) => return Some(item),
            Err(mpsc::error::TryRecvError::Disconnected) => return None,
            // Yielding, not busy-waiting: another thread that wants this CPU gets it.
            Err(mpsc::error::TryRecvError::Empty) if std::time::Instant::now() < until => std::thread::yield_now(),
            Err(mpsc::error::TryRecvError::Empty) => return rx.blocking_recv(),
        }
    }
}

fn run_on_thread(mut write: BatchWriter, wake: Arc<Notify>, mut rx: Queue) {
    let mut carry = None;
    loop {
        let first = match carry.take().or_else(|| next_delivery(&mut rx)) {
            Some(item) => item,
            None => return,
        };
        let (events, replies) = take_batch(first, &mut rx, &mut carry);
        // A panic fails this batch (its transaction rolls back as it unwinds), not the thread.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write(&events)))
            .unwrap_or_else(|_| Err(anyhow!("the store failed: recording the batch panicked")));
        answer(events.len(), outcome, replies, &wake);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{
        Claimed, DeliveryRecord, Enqueued, EventId, Finish, Job, JobFilter, JobId, Lease, NewJob, Replaced, StoredEvent,
    };
    use async_trait::async_trait;
    use std::collections::HashSet;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    use tokio::sync::Semaphore;

    /// How the fake store answers a batch.
    #[derive(Clone, Copy, PartialEq)]
    enum Mode {
        Ok,
        Fail,
        Panic,
        /// Answers one delivery fewer than it was given.
        Short,
    }

    /// Records batch sizes; dedupes like the real store; each call first takes a permit from
    /// `gate`, so a test can hold the writer inside a batch while more deliveries queue up.
    /// `threaded` offers a [`BatchWriter`], so the writer runs on its own thread.
    struct Fake {
        me: std::sync::Weak<Fake>,
        threaded: bool,
        batches: Mutex<Vec<Vec<String>>>,
        seen: Mutex<HashSet<String>>,
        mode: Mutex<Mode>,
        gate: Semaphore,
        calls: AtomicUsize,
    }

    impl Fake {
        fn new(permits: usize, threaded: bool) -> Arc<Self> {
            Arc::new_cyclic(|me| Fake {
                me: me.clone(),
                threaded,
                batches: Mutex::default(),
                seen: Mutex::default(),
                mode: Mutex::new(Mode::Ok),
                gate: Semaphore::new(permits),
                calls: AtomicUsize::new(0),
            })
        }
        fn sizes(&self) -> Vec<usize> {
            self.batches.lock().unwrap().iter().map(Vec::len).collect()
        }
        /// A batch, once the gate let it through.
        fn write(&self, events: &[NewEvent]) -> Result<Vec<Intake>> {
            self.batches.lock().unwrap().push(events.iter().map(|e| e.delivery_id.clone()).collect());
            let mode = *self.mode.lock().unwrap();
            match mode {
                Mode::Ok => {}
                Mode::Fail => anyhow::bail!("disk full"),
                Mode::Panic => panic!("the fake store panics"),
                Mode::Short => return Ok(vec![Intake::Duplicate; events.len() - 1]),
            }
            let mut seen = self.seen.lock().unwrap();
            Ok(events
                .iter()
                .map(|e| {
                    if seen.insert(e.delivery_id.clone()) {
                        Intake::Recorded(EventId(seen.len() as i64))
                    } else {
                        Intake::Duplicate
                    }
                })
                .collect())
        }
    }

    #[async_trait]
    impl Store for Fake {
        async fn record_events(&self, events: &[NewEvent]) -> Result<Vec<Intake>> {
            assert!(!self.threaded, "a store with a batch writer is written through it");
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.gate.acquire().await.unwrap().forget();
            self.write(events)
        }
        fn intake_batch_writer(&self) -> Result<Option<BatchWriter>> {
            if !self.threaded {
                return Ok(None);
            }
            let me = self.me.upgrade().expect("the fake is alive");
            Ok(Some(Box::new(move |events: &[NewEvent]| {
                me.calls.fetch_add(1, Ordering::SeqCst);
                loop {
                    match me.gate.try_acquire() {
                        Ok(permit) => break permit.forget(),
                        Err(_) => std::thread::sleep(Duration::from_millis(1)),
                    }
                }
                me.write(events)
            })))
        }
        async fn record_event(&self, _: &NewEvent) -> Result<Intake> {
            unreachable!("the writer records in batches")
        }
        async fn ping(&self) -> Result<()> {
            Ok(())
        }
        async fn delivery(&self, _: &str) -> Result<Option<DeliveryRecord>> {
            unreachable!()
        }
        async fn get_event(&self, _: EventId) -> Result<Option<StoredEvent>> {
            unreachable!()
        }
        async fn unrouted_events(&self, _: u32) -> Result<Vec<StoredEvent>> {
            unreachable!()
        }
        async fn route_event(&self, _: EventId, _: &serde_json::Value, _: &[NewJob]) -> Result<Vec<Enqueued>> {
            unreachable!()
        }
        async fn enqueue(&self, _: &NewJob) -> Result<Enqueued> {
            unreachable!()
        }
        async fn claim(&self, _: &str, _: Duration) -> Result<Option<Claimed>> {
            unreachable!()
        }
        async fn heartbeat(&self, _: &Lease, _: Duration) -> Result<bool> {
            unreachable!()
        }
        async fn set_phase(&self, _: &Lease, _: &str) -> Result<bool> {
            unreachable!()
        }
        async fn finish(&self, _: &Lease, _: &Finish) -> Result<bool> {
            unreachable!()
        }
        async fn release(&self, _: &Lease) -> Result<bool> {
            unreachable!()
        }
        async fn get_job(&self, _: JobId) -> Result<Option<Job>> {
            unreachable!()
        }
        async fn list_jobs(&self, _: &JobFilter) -> Result<Vec<Job>> {
            unreachable!()
        }
        async fn cancel_active(&self, _: &str, _: i64, _: JobId) -> Result<Vec<Replaced>> {
            unreachable!()
        }
        async fn ledger_count(&self, _: &crate::store::LedgerQuery) -> Result<u32> {
            unreachable!("not used by the intake writer")
        }
        async fn ledger_take(
            &self,
            _: &crate::store::LedgerQuery,
            _: u32,
            _: &crate::store::LedgerEntry,
        ) -> Result<crate::store::LedgerTake> {
            unreachable!("not used by the intake writer")
        }
    }

    fn event(id: &str) -> NewEvent {
        NewEvent {
            delivery_id: id.into(),
            event: "issues".into(),
            action: None,
            installation_id: None,
            repository: None,
            payload: "{}".into(),
            received_at: chrono::Utc::now(),
        }
    }

    /// Holds the writer inside a first batch (of `first`), queues `ids` behind it, and returns
    /// the pending answers once all of them are queued.
    async fn queue_behind_a_held_batch(
        fake: &Fake,
        writer: &IntakeWriter,
        first: &str,
        ids: &[&str],
    ) -> (tokio::task::JoinHandle<Result<Intake>>, Vec<tokio::task::JoinHandle<Result<Intake>>>) {
        let w = writer.clone();
        let first = event(first);
        let calls = fake.calls.load(Ordering::SeqCst);
        let held = tokio::spawn(async move { w.record(first).await });
        while fake.calls.load(Ordering::SeqCst) == calls {
            tokio::task::yield_now().await;
        }
        let pending: Vec<_> = ids
            .iter()
            .map(|id| {
                let (w, e) = (writer.clone(), event(id));
                tokio::spawn(async move { w.record(e).await })
            })
            .collect();
        while writer.queued() < ids.len() {
            tokio::task::yield_now().await;
        }
        (held, pending)
    }

    async fn within<T>(f: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), f).await.expect("a waiter hung")
    }

    #[tokio::test]
    async fn waiting_deliveries_share_one_batch_and_duplicates_in_it_count_once() {
        for threaded in [false, true] {
            waiting_deliveries_share_one_batch(threaded).await;
        }
    }

    #[tokio::test]
    async fn the_writer_thread_ends_when_the_last_handle_is_dropped() {
        let fake = Fake::new(10, true);
        let writer = IntakeWriter::start(fake.clone(), Arc::new(Notify::new()));
        let copy = writer.clone();
        assert!(matches!(within(writer.record(event("t1"))).await.unwrap(), Intake::Recorded(_)));
        drop(writer);
        assert!(matches!(within(copy.record(event("t2"))).await.unwrap(), Intake::Recorded(_)));
        drop(copy);
        // The thread's batch writer holds the other reference to the fake; it goes with the thread.
        within(async {
            while Arc::strong_count(&fake) > 1 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
    }

    async fn waiting_deliveries_share_one_batch(threaded: bool) {
        let fake = Fake::new(0, threaded);
        let wake = Arc::new(Notify::new());
        let writer = IntakeWriter::start(fake.clone(), wake.clone());
        let ids = ["a", "b", "a", "c", "b", "a"];
        let (held, pending) = queue_behind_a_held_batch(&fake, &writer, "first", &ids).await;
        fake.gate.add_permits(2);
        assert!(matches!(within(held).await.unwrap().unwrap(), Intake::Recorded(_)));
        let mut answers = Vec::new();
        for p in pending {
            answers.push(within(p).await.unwrap().unwrap());
        }
        assert_eq!(fake.sizes(), vec![1, ids.len()], "everything that waited went in one batch");
        let recorded: Vec<_> = ids
            .iter()
            .zip(&answers)
            .filter(|(_, a)| matches!(a, Intake::Recorded(_)))
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(recorded, ["a", "b", "c"], "the first copy of each id is recorded, later copies are duplicates");
        // The dispatcher was told.
        within(wake.notified()).await;
    }

    #[tokio::test]
    async fn a_failed_batch_is_reported_to_every_waiter_and_the_writer_goes_on() {
        for threaded in [false, true] {
            a_failed_batch_is_reported(threaded).await;
        }
    }

    async fn a_failed_batch_is_reported(threaded: bool) {
        let fake = Fake::new(0, threaded);
        let writer = IntakeWriter::start(fake.clone(), Arc::new(Notify::new()));
        let ids = ["x1", "x2", "x3", "x4"];
        let (held, pending) = queue_behind_a_held_batch(&fake, &writer, "first", &ids).await;
        *fake.mode.lock().unwrap() = Mode::Fail;
        fake.gate.add_permits(2);
        assert!(within(held).await.unwrap().is_err());
        for p in pending {
            let err = within(p).await.unwrap().unwrap_err();
            assert!(format!("{err:#}").contains("disk full"), "{err:#}");
        }
        assert_eq!(fake.sizes(), vec![1, 4]);
        *fake.mode.lock().unwrap() = Mode::Ok;
        fake.gate.add_permits(1);
        assert!(matches!(within(writer.record(event("x1"))).await.unwrap(), Intake::Recorded(_)));
    }

    #[tokio::test]
    async fn a_panicking_or_short_store_fails_its_batch_without_killing_the_writer() {
        for threaded in [false, true] {
            a_panicking_or_short_store_fails_its_batch(threaded).await;
        }
    }

    async fn a_panicking_or_short_store_fails_its_batch(threaded: bool) {
        let fake = Fake::new(0, threaded);
        let writer = IntakeWriter::start(fake.clone(), Arc::new(Notify::new()));
        for mode in [Mode::Panic, Mode::Short] {
            *fake.mode.lock().unwrap() = mode;
            let (held, pending) = queue_behind_a_held_batch(&fake, &writer, "first", &["p1", "p2"]).await;
            fake.gate.add_permits(2);
            assert!(within(held).await.unwrap().is_err());
            for p in pending {
                assert!(within(p).await.unwrap().is_err());
            }
        }
        *fake.mode.lock().unwrap() = Mode::Ok;
        fake.gate.add_permits(1);
        assert!(matches!(within(writer.record(event("p1"))).await.unwrap(), Intake::Recorded(_)));
    }

    #[tokio::test]
    async fn batches_are_capped() {
        for threaded in [false, true] {
            batches_are_capped_on(threaded).await;
        }
    }

    async fn batches_are_capped_on(threaded: bool) {
        let fake = Fake::new(0, threaded);
        let writer = IntakeWriter::start(fake.clone(), Arc::new(Notify::new()));
        let ids: Vec<String> = (0..MAX_BATCH + 10).map(|i| format!("d{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let (held, pending) = queue_behind_a_held_batch(&fake, &writer, "first", &refs).await;
        fake.gate.add_permits(3);
        within(held).await.unwrap().unwrap();
        for p in pending {
            assert!(matches!(within(p).await.unwrap().unwrap(), Intake::Recorded(_)));
        }
        assert_eq!(fake.sizes(), vec![1, MAX_BATCH, 10]);
    }
}

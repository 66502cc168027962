//! One limiter for every session of a process that talks to the same LLM endpoint, so ten agents
//! in parallel slow down together instead of tripping the provider's rate limits one by one.
//!
//! Limits are per rolling minute: requests, and tokens (input plus output). Before a call the
//! limiter waits until both fit, counting the request's input tokens estimated from its size
//! (about four characters a token) plus its output cap; after the answer the estimate is replaced
//! by what the provider reported. Waiters are served in arrival order (a fair mutex), so a large
//! request is not starved by small ones.

use super::{BoxFuture, ChatRequest, ChatResponse, LlmError, LlmProvider};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::time::Instant;

pub const ENV_RPM: &str = "FACTORY_LLM_REQUESTS_PER_MINUTE";
pub const ENV_TPM: &str = "FACTORY_LLM_TOKENS_PER_MINUTE";

const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u64>,
}

impl Limits {
    pub fn is_unlimited(&self) -> bool {
        self.requests_per_minute.is_none() && self.tokens_per_minute.is_none()
    }
}

struct Entry {
    at: Instant,
    tokens: u64,
}

#[derive(Default)]
struct Window {
    entries: VecDeque<Entry>,
    next_id: u64,
    ids: VecDeque<u64>,
}

impl Window {
    fn prune(&mut self, now: Instant) {
        while self.entries.front().is_some_and(|e| now.duration_since(e.at) >= WINDOW) {
            self.entries.pop_front();
            self.ids.pop_front();
        }
    }
    fn tokens(&self) -> u64 {
        self.entries.iter().map(|e| e.tokens).sum()
    }
}

/// The shared state of one endpoint's limits.
pub struct Limiter {
    limits: Limits,
    window: Mutex<Window>,
    /// Held while waiting for room: arrival order.
    queue: tokio::sync::Mutex<()>,
}

/// A reservation made before a call; [`Limiter::settle`] corrects its token count.
pub struct Ticket {
    id: u64,
}

impl Limiter {
    pub fn new(limits: Limits) -> Limiter {
        Limiter { limits, window: Mutex::new(Window::default()), queue: tokio::sync::Mutex::new(()) }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Waits until a request of `estimate` tokens fits in the last minute, then records it.
    pub async fn acquire(&self, estimate: u64) -> Ticket {
        let _turn = self.queue.lock().await;
        loop {
            let now = Instant::now();
            let wait = {
                let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
                w.prune(now);
                let requests_full =
                    self.limits.requests_per_minute.is_some_and(|max| w.entries.len() as u64 >= u64::from(max.max(1)));
                // A request larger than the whole budget goes alone in an empty window.
                let tokens_full = self
                    .limits
                    .tokens_per_minute
                    .is_some_and(|max| !w.entries.is_empty() && w.tokens() + estimate > max);
                if !requests_full && !tokens_full {
                    let id = w.next_id;
                    w.next_id += 1;
                    w.entries.push_back(Entry { at: now, tokens: estimate });
                    w.ids.push_back(id);
                    return Ticket { id };
                }
                // Room comes when the oldest entry leaves the window.
                let oldest = w.entries.front().map(|e| e.at).unwrap_or(now);
                (oldest + WINDOW).saturating_duration_since(now).max(Duration::from_millis(1))
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Replaces the estimate with the tokens the call really used.
    pub fn settle(&self, ticket: Ticket, used: u64) {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pos) = w.ids.iter().position(|id| *id == ticket.id) {
            w.entries[pos].tokens = used;
        }
    }

    /// Requests and tokens in the current window, for progress displays and tests.
    pub fn usage(&self) -> (usize, u64) {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        w.prune(Instant::now());
        (w.entries.len(), w.tokens())
    }
}

/// The process-wide limiter for an endpoint (base URL and key's provider), created on first use
/// with `limits`.
pub fn shared(endpoint: &str, limits: Limits) -> Arc<Limiter> {
    static ALL: OnceLock<Mutex<HashMap<String, Arc<Limiter>>>> = OnceLock::new();
    let all = ALL.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = all.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(endpoint.to_string()).or_insert_with(|| Arc::new(Limiter::new(limits))).clone()
}

/// A provider whose calls pass the limiter first.
pub struct RateLimited {
    pub inner: Box<dyn LlmProvider>,
    pub limiter: Arc<Limiter>,
}

/// Input tokens of a request, estimated from its size, plus its output cap.
pub fn estimate(req: &ChatRequest<'_>) -> u64 {
    let chars = req.system.len()
        + serde_json::to_string(req.messages).map(|s| s.len()).unwrap_or(0)
        + serde_json::to_string(req.tools).map(|s| s.len()).unwrap_or(0);
    (chars as u64).div_ceil(4) + u64::from(req.max_tokens)
}

impl LlmProvider for RateLimited {
    fn wire(&self) -> &'static str {
        self.inner.wire()
    }

    fn model(&self) -> &str {
        self.inner.model()
    }

    fn chat<'a>(&'a self, req: &'a ChatRequest<'a>) -> BoxFuture<'a, Result<ChatResponse, LlmError>> {
        Box::pin(async move {
            let ticket = self.limiter.acquire(estimate(req)).await;
            let result = self.inner.chat(req).await;
            let used = match &result {
                Ok(r) => r.usage.input_tokens + r.usage.output_tokens,
                // A refused call used no tokens but still counts as a request.
                Err(_) => 0,
            };
            self.limiter.settle(ticket, used);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_per_minute_make_the_next_caller_wait_for_the_window() {
        let l = Limiter::new(Limits { requests_per_minute: Some(2), tokens_per_minute: None });
        let start = Instant::now();
        l.acquire(10).await;
        l.acquire(10).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        l.acquire(10).await;
        assert!(start.elapsed() >= WINDOW, "the third request waits a minute: {:?}", start.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_are_settled_to_what_was_used() {
        let l = Limiter::new(Limits { requests_per_minute: None, tokens_per_minute: Some(1000) });
        let t = l.acquire(900).await;
        l.settle(t, 100);
        assert_eq!(l.usage(), (1, 100));
        let start = Instant::now();
        l.acquire(800).await;
        assert_eq!(start.elapsed(), Duration::ZERO, "settled usage left room");
        l.acquire(500).await;
        assert!(start.elapsed() >= WINDOW);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_larger_than_the_budget_still_goes_alone() {
        let l = Limiter::new(Limits { requests_per_minute: None, tokens_per_minute: Some(100) });
        let start = Instant::now();
        l.acquire(5000).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn ten_parallel_sessions_stay_under_the_limit_together() {
        let l = Arc::new(Limiter::new(Limits { requests_per_minute: Some(6), tokens_per_minute: None }));
        let mut tasks = Vec::new();
        let times = Arc::new(Mutex::new(Vec::new()));
        for _ in 0..10 {
            let (l, times) = (l.clone(), times.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..3 {
                    l.acquire(1).await;
                    times.lock().unwrap().push(Instant::now());
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut times = times.lock().unwrap().clone();
        times.sort();
        assert_eq!(times.len(), 30);
        for (i, t) in times.iter().enumerate() {
            let in_window = times[..=i].iter().filter(|s| t.duration_since(**s) < WINDOW).count();
            assert!(in_window <= 6, "{in_window} requests within one minute");
        }
    }
}

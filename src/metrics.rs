//! The process's counters, and `GET /metrics` in Prometheus's text format (version 0.0.4).
//!
//! Counters live in one process-wide [`Metrics`] that the stages bump as things happen
//! (webhooks in, jobs finished, LLM tokens and cost); gauges that the store or the GitHub
//! client already know (jobs per state, API calls and retries) are read when scraped, so they
//! agree with the database across restarts and replicas.

use crate::github::client::ApiMetrics;
use crate::store::JobState;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

/// Upper bounds (seconds) of the job duration histogram's buckets.
pub const DURATION_BUCKETS: [f64; 10] = [1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0];

#[derive(Default)]
struct Histogram {
    /// Per bucket, observations at most that bound (not cumulative; summed when rendered).
    buckets: [u64; DURATION_BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Inner {
    /// By event name.
    webhooks_received: BTreeMap<String, u64>,
    /// By reason (`signature`, `too_large`, `malformed`, `duplicate`).
    webhooks_rejected: BTreeMap<String, u64>,
    /// By (kind, outcome).
    job_durations: BTreeMap<(String, String), Histogram>,
    /// By model: (input tokens, output tokens, micro-dollars).
    llm: BTreeMap<String, (u64, u64, u64)>,
}

/// The counters of this process.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A verified delivery was accepted (stored or recognised as a redelivery).
    pub fn webhook_received(&self, event: &str) {
        self.with(|m| *m.webhooks_received.entry(event.to_string()).or_default() += 1);
    }

    pub fn webhook_rejected(&self, reason: &str) {
        self.with(|m| *m.webhooks_rejected.entry(reason.to_string()).or_default() += 1);
    }

    /// A job ended (`succeeded`, `failed`, `released`, ...) after `seconds`.
    pub fn job_finished(&self, kind: &str, outcome: &str, seconds: f64) {
        self.with(|m| {
            let h = m.job_durations.entry((kind.to_string(), outcome.to_string())).or_default();
            if let Some(i) = DURATION_BUCKETS.iter().position(|b| seconds <= *b) {
                h.buckets[i] += 1;
            }
            h.count += 1;
            h.sum += seconds;
        });
    }

    pub fn llm_usage(&self, model: &str, input_tokens: u64, output_tokens: u64, cost_usd: Option<f64>) {
        self.with(|m| {
            let e = m.llm.entry(model.to_string()).or_default();
            e.0 += input_tokens;
            e.1 += output_tokens;
            e.2 += cost_usd.map(|c| (c * 1e6).round() as u64).unwrap_or(0);
        });
    }

    /// The exposition: this process's counters, plus the jobs per state and the GitHub client's
    /// counters as read now.
    pub fn render(&self, jobs: &[(JobState, u64)], github: Option<&ApiMetrics>) -> String {
        let mut out = String::new();
        self.with(|m| {
            family(&mut out, "factory_webhooks_received_total", "counter", "Verified webhook deliveries accepted, by event.");
            for (event, n) in &m.webhooks_received {
                sample(&mut out, "factory_webhooks_received_total", &[("event", event)], *n as f64);
            }
            family(&mut out, "factory_webhooks_rejected_total", "counter", "Webhook deliveries refused or not stored, by reason.");
            for (reason, n) in &m.webhooks_rejected {
                sample(&mut out, "factory_webhooks_rejected_total", &[("reason", reason)], *n as f64);
            }
            family(&mut out, "factory_job_duration_seconds", "histogram", "Wall time of jobs run by this process, by kind and outcome.");
            for ((kind, outcome), h) in &m.job_durations {
                let mut cumulative = 0;
                for (i, bound) in DURATION_BUCKETS.iter().enumerate() {
                    cumulative += h.buckets[i];
                    let le = format!("{bound}");
                    sample(&mut out, "factory_job_duration_seconds_bucket", &[("kind", kind), ("outcome", outcome), ("le", &le)], cumulative as f64);
                }
                sample(&mut out, "factory_job_duration_seconds_bucket", &[("kind", kind), ("outcome", outcome), ("le", "+Inf")], h.count as f64);
                sample(&mut out, "factory_job_duration_seconds_sum", &[("kind", kind), ("outcome", outcome)], h.sum);
                sample(&mut out, "factory_job_duration_seconds_count", &[("kind", kind), ("outcome", outcome)], h.count as f64);
            }
            family(&mut out, "factory_llm_tokens_total", "counter", "LLM tokens used by this process, by model and direction.");
            for (model, (i, o, _)) in &m.llm {
                sample(&mut out, "factory_llm_tokens_total", &[("model", model), ("direction", "input")], *i as f64);
                sample(&mut out, "factory_llm_tokens_total", &[("model", model), ("direction", "output")], *o as f64);
            }
            family(&mut out, "factory_llm_cost_dollars_total", "counter", "Estimated LLM cost in US dollars, by model.");
            for (model, (_, _, micro)) in &m.llm {
                sample(&mut out, "factory_llm_cost_dollars_total", &[("model", model)], *micro as f64 / 1e6);
            }
        });
        family(&mut out, "factory_jobs", "gauge", "Jobs in the store, by state.");
        for state in JobState::ALL {
            let n = jobs.iter().find(|(s, _)| *s == state).map(|(_, n)| *n).unwrap_or(0);
            sample(&mut out, "factory_jobs", &[("state", state.as_str())], n as f64);
        }
        if let Some(g) = github {
            family(&mut out, "factory_github_requests_total", "counter", "GitHub API requests sent, retries included.");
            sample(&mut out, "factory_github_requests_total", &[], g.requests as f64);
            family(&mut out, "factory_github_retries_total", "counter", "GitHub API requests sent again, by cause.");
            sample(&mut out, "factory_github_retries_total", &[], g.retries as f64);
            family(&mut out, "factory_github_answers_total", "counter", "GitHub API answers that were not a success, by kind.");
            sample(&mut out, "factory_github_answers_total", &[("kind", "server_error")], g.server_errors as f64);
            sample(&mut out, "factory_github_answers_total", &[("kind", "rate_limited")], g.rate_limited as f64);
            sample(&mut out, "factory_github_answers_total", &[("kind", "transport_error")], g.transport_errors as f64);
            family(&mut out, "factory_github_token_mints_total", "counter", "Installation tokens minted.");
            sample(&mut out, "factory_github_token_mints_total", &[], g.token_mints as f64);
        }
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape_label(v));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// Label values escape backslash, double quote and line feed.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_end_with_inf() {
        let m = Metrics::default();
        m.job_finished("generate", "succeeded", 0.5);
        m.job_finished("generate", "succeeded", 20.0);
        m.job_finished("generate", "succeeded", 5000.0);
        let text = m.render(&[], None);
        assert!(text.contains("factory_job_duration_seconds_bucket{kind=\"generate\",outcome=\"succeeded\",le=\"1\"} 1\n"), "{text}");
        assert!(text.contains("le=\"30\"} 2\n"), "{text}");
        assert!(text.contains("le=\"1800\"} 2\n"), "{text}");
        assert!(text.contains("le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("factory_job_duration_seconds_sum{kind=\"generate\",outcome=\"succeeded\"} 5020.5\n"), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::default();
        m.webhook_received("we\"ird\\\nname");
        assert!(m.render(&[], None).contains("event=\"we\\\"ird\\\\\\nname\"} 1"));
    }
}

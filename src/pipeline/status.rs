//! The status comment: one comment per request issue, posted as soon as a job starts and edited
//! in place as it moves through its phases.
//!
//! It ends with hidden metadata, `<!-- factory:{json} -->` ([`Meta`]), so the factory can rebuild
//! what it knows about an issue (branch, PR, attempts) from GitHub alone, and so it finds its
//! own comment again through [`crate::platform::Platform::find_bot_comment`] with [`MARKER`]
//! instead of posting a second one.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::time::Duration;

/// What the factory's status comment contains, and nobody else's comment should.
pub const MARKER: &str = "<!-- factory:";
/// How much of an LLM transcript the status comment shows.
pub const STATUS_TRANSCRIPT_LIMIT: usize = 20_000;

/// Where a request is. The names are also what the job store records (`set_phase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Queued,
    /// Cloning the repository, looking the connector up in the registry.
    Preparing,
    Generating,
    Validating,
    SpecTests,
    Pushing,
    PrOpened,
    Failed,
    /// The issue form has problems; the requester edits the issue.
    InvalidRequest,
    /// The registry already has this connector.
    Exists,
    /// Someone else committed to the connector branch; the bot waits for a person.
    NeedsDecision,
    Cancelled,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Queued => "queued",
            Phase::Preparing => "preparing",
            Phase::Generating => "generating",
            Phase::Validating => "validating",
            Phase::SpecTests => "spec_tests",
            Phase::Pushing => "pushing",
            Phase::PrOpened => "pr_opened",
            Phase::Failed => "failed",
            Phase::InvalidRequest => "invalid_request",
            Phase::Exists => "exists",
            Phase::NeedsDecision => "needs_decision",
            Phase::Cancelled => "cancelled",
        }
    }

    fn headline(self) -> &'static str {
        match self {
            Phase::Queued => "⏳ Queued",
            Phase::Preparing => "⏳ Preparing a workspace from the default branch",
            Phase::Generating => "⏳ Generating the connector",
            Phase::Validating => "⏳ Validating",
            Phase::SpecTests => "⏳ Running spec tests",
            Phase::Pushing => "⏳ Pushing the branch",
            Phase::PrOpened => "✅ Pull request ready",
            Phase::Failed => "❌ Failed",
            Phase::InvalidRequest => "✋ The request needs changes",
            Phase::Exists => "ℹ️ Already in the registry",
            Phase::NeedsDecision => "✋ Waiting for you",
            Phase::Cancelled => "⏹️ Cancelled",
        }
    }

    /// The phases a successful run goes through, in order, for the checklist.
    const STEPS: [(Phase, &'static str); 6] = [
        (Phase::Preparing, "workspace from the default branch"),
        (Phase::Generating, "generate the connector"),
        (Phase::Validating, "validate"),
        (Phase::SpecTests, "spec tests"),
        (Phase::Pushing, "commit and push"),
        (Phase::PrOpened, "pull request"),
    ];

    fn step_index(self) -> Option<usize> {
        Phase::STEPS.iter().position(|(p, _)| *p == self)
    }

    pub fn is_running(self) -> bool {
        matches!(
            self,
            Phase::Queued
                | Phase::Preparing
                | Phase::Generating
                | Phase::Validating
                | Phase::SpecTests
                | Phase::Pushing
        )
    }
}

/// The machine-readable part of the status comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The request issue.
    pub issue: u64,
    /// The job store's id of the job that last wrote the comment (none for local runs).
    pub job: Option<i64>,
    pub phase: Phase,
    pub branch: Option<String>,
    pub pr: Option<u64>,
    /// How many times the factory started building this request.
    pub attempts: u32,
}

impl Meta {
    /// The hidden HTML comment. `<` and `>` are escaped inside the JSON so no value can close
    /// the comment early.
    pub fn to_html_comment(&self) -> String {
        let json = serde_json::to_string(self).expect("metadata serializes");
        format!("{MARKER}{} -->", json.replace('<', "\\u003c").replace('>', "\\u003e"))
    }

    /// The metadata in a comment body, if it has any.
    pub fn parse(body: &str) -> Option<Meta> {
        let start = body.find(MARKER)? + MARKER.len();
        let end = start + body[start..].find("-->")?;
        serde_json::from_str(body[start..end].trim()).ok()
    }
}

/// Token use and cost of an LLM session.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// US dollars, when the model's price is known.
    pub cost_usd: Option<f64>,
}

impl Usage {
    pub fn describe(&self) -> String {
        let mut s = format!("{} tokens in, {} out", thousands(self.input_tokens), thousands(self.output_tokens));
        if let Some(c) = self.cost_usd {
            let _ = write!(s, ", about ${c:.2}");
        }
        s
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 { format!("{}m {:02}s", s / 60, s % 60) } else { format!("{:.1}s", d.as_secs_f64()) }
}

/// Everything the comment shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub meta: Meta,
    /// The connector's name as requested.
    pub name: Option<String>,
    pub elapsed: Duration,
    /// Which agent wrote the connector ("builtin OpenAPI generator", "LLM agent (model)").
    pub agent: Option<String>,
    pub usage: Option<Usage>,
    /// The LLM session's transcript (Markdown), shown folded.
    pub transcript: Option<String>,
    pub pr_url: Option<String>,
    /// One line on the local spec tests, e.g. "29 passed, 0 failed".
    pub spec_summary: Option<String>,
    /// Markdown shown under the headline: the error, the request problems, the question.
    pub detail: Option<String>,
    /// The phase a failure happened in, for the checklist.
    pub failed_in: Option<Phase>,
    /// Where the job runs when not on the app's own server: a GitHub Actions run's page.
    pub runner_url: Option<String>,
}

impl Status {
    pub fn new(meta: Meta) -> Status {
        Status {
            meta,
            name: None,
            elapsed: Duration::ZERO,
            agent: None,
            usage: None,
            transcript: None,
            pr_url: None,
            spec_summary: None,
            detail: None,
            failed_in: None,
            runner_url: None,
        }
    }

    pub fn render(&self) -> String {
        let mut md = String::new();
        let title = match &self.name {
            Some(n) => format!("Connector Factory: {}", n.replace(['\n', '\r'], " ")),
            None => "Connector Factory".to_string(),
        };
        let _ = writeln!(md, "### 🏭 {title}\n");
        let mut facts = vec![format!("**{}**", self.meta.phase.headline())];
        if self.meta.attempts > 0 {
            facts.push(format!("attempt {}", self.meta.attempts));
        }
        if self.elapsed > Duration::ZERO {
            facts.push(human_duration(self.elapsed));
        }
        let _ = writeln!(md, "{}\n", facts.join(" · "));
        if let Some(detail) = &self.detail {
            let _ = writeln!(md, "{}\n", detail.trim_end());
        }
        if self.shows_checklist() {
            let current = self.failed_in.unwrap_or(self.meta.phase);
            let at = current.step_index().unwrap_or(0);
            for (i, (_, label)) in Phase::STEPS.iter().enumerate() {
                let mark = if self.meta.phase == Phase::PrOpened || i < at {
                    "✅"
                } else if i == at && self.meta.phase == Phase::Failed {
                    "❌"
                } else if i == at && self.meta.phase.is_running() {
                    "⏳"
                } else {
                    "▫️"
                };
                let _ = writeln!(md, "- {mark} {label}");
            }
            md.push('\n');
        }
        let mut lines = Vec::new();
        if let Some(url) = &self.pr_url {
            let number = self.meta.pr.map(|n| format!("#{n}")).unwrap_or_else(|| "pull request".into());
            lines.push(format!("**Pull request:** [{number}]({url})"));
        }
        if let Some(branch) = &self.meta.branch {
            lines.push(format!("**Branch:** `{branch}`"));
        }
        if let Some(agent) = &self.agent {
            lines.push(format!("**Built by:** {agent}"));
        }
        if let Some(s) = &self.spec_summary {
            lines.push(format!("**Local spec tests:** {s}"));
        }
        if let Some(url) = &self.runner_url {
            lines.push(format!("**Runs on:** [GitHub Actions]({url})"));
        }
        if let Some(u) = &self.usage {
            lines.push(format!("**Tokens and cost:** {}", u.describe()));
        }
        if !lines.is_empty() {
            let _ = writeln!(md, "{}\n", lines.join("  \n"));
        }
        if let Some(t) = &self.transcript {
            // A comment holds 65,536 characters; the PR body carries the longer version.
            let mut text = t.clone();
            if text.len() > STATUS_TRANSCRIPT_LIMIT {
                let mut end = STATUS_TRANSCRIPT_LIMIT;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.truncate(end);
                text.push_str("\n\n… cut here; the pull request has more.\n");
            }
            let _ = writeln!(md, "<details><summary>Agent transcript</summary>\n\n{text}\n\n</details>\n");
        }
        if matches!(self.meta.phase, Phase::PrOpened | Phase::Failed | Phase::Cancelled) {
            let _ = writeln!(
                md,
                "- [ ] retry (tick to build again on the same branch, or comment `/factory retry <guidance>`)\n"
            );
        }
        md.push_str(&self.meta.to_html_comment());
        md.push('\n');
        md
    }

    fn shows_checklist(&self) -> bool {
        self.meta.phase.is_running() || matches!(self.meta.phase, Phase::PrOpened | Phase::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(phase: Phase) -> Meta {
        Meta { issue: 7, job: Some(3), phase, branch: Some("connector/acme".into()), pr: Some(12), attempts: 2 }
    }

    #[test]
    fn metadata_survives_a_round_trip_and_cannot_close_the_comment() {
        let mut m = meta(Phase::SpecTests);
        m.branch = Some("connector/a-->b<".into());
        let hidden = m.to_html_comment();
        assert_eq!(hidden.matches("-->").count(), 1, "{hidden}");
        assert!(hidden.ends_with(" -->"));
        let body = Status::new(m.clone()).render();
        assert_eq!(Meta::parse(&body), Some(m));
        assert_eq!(Meta::parse("no metadata here"), None);
    }

    #[test]
    fn the_checklist_follows_the_phase() {
        let running = Status::new(meta(Phase::Validating)).render();
        assert!(running.contains("- ✅ generate the connector\n- ⏳ validate\n- ▫️ spec tests"), "{running}");
        assert!(!running.contains("- [ ] retry"));
        let mut failed = Status::new(meta(Phase::Failed));
        failed.failed_in = Some(Phase::Pushing);
        let text = failed.render();
        assert!(text.contains("- ✅ spec tests\n- ❌ commit and push"), "{text}");
        assert!(text.contains("- [ ] retry"));
    }

    #[test]
    fn usage_reads_well() {
        let u = Usage { input_tokens: 1_234_567, output_tokens: 890, cost_usd: Some(1.234) };
        assert_eq!(u.describe(), "1,234,567 tokens in, 890 out, about $1.23");
    }
}

//! The tool loop: ask the model, run the tools it calls, hand back the results, until it
//! finishes (and the checks agree), gives up, fails, or a budget runs out.

use super::llm::{Block, ChatRequest, LlmProvider, Message, PriceTable, Role, StopReason, Usage};
use super::tools::{Control, ToolContext};
use super::transcript::Transcript;
use serde::Serialize;
use serde_json::json;
use std::time::{Duration, Instant};

/// Limits of one session. Exceeding any ends it cleanly.
#[derive(Debug, Clone, Serialize)]
pub struct Budgets {
    /// Model calls.
    pub max_turns: u32,
    /// Input plus output tokens over the whole session.
    pub max_tokens: u64,
    /// Estimated cost in USD (from the price table).
    pub max_dollars: f64,
    #[serde(serialize_with = "secs")]
    pub wall_clock: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets { max_turns: 40, max_tokens: 3_000_000, max_dollars: 10.0, wall_clock: Duration::from_secs(30 * 60) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetKind {
    Turns,
    Tokens,
    Dollars,
    WallClock,
}

/// Which budget ran out, with what was used against what was allowed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exceeded {
    pub kind: BudgetKind,
    pub used: String,
    pub limit: String,
}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.kind {
            BudgetKind::Turns => "turns",
            BudgetKind::Tokens => "tokens",
            BudgetKind::Dollars => "dollars",
            BudgetKind::WallClock => "wall clock",
        };
        write!(f, "{name} ({}/{})", self.used, self.limit)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Succeeded { summary: String },
    GaveUp { reason: String },
    BudgetExceeded { which: Exceeded },
    Failed { error: String },
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Succeeded { summary } => write!(f, "Succeeded: {summary}"),
            Outcome::GaveUp { reason } => write!(f, "Gave up: {reason}"),
            Outcome::BudgetExceeded { which } => write!(f, "Budget exceeded: {which}"),
            Outcome::Failed { error } => write!(f, "Failed: {error}"),
        }
    }
}

/// What a session did.
#[derive(Debug, Clone, Serialize)]
pub struct SessionReport {
    pub outcome: Outcome,
    pub turns: u32,
    pub usage: Usage,
    /// `None` when the model has no price in the table.
    pub cost_usd: Option<f64>,
    pub duration_seconds: f64,
    /// Time spent waiting for the model, summed over the session's calls.
    pub model_seconds: f64,
    /// Time spent in each tool, by tool name (`spec_test` is what the bot-overhead figure leaves
    /// out next to the model's time).
    pub tool_seconds: std::collections::BTreeMap<String, f64>,
}

pub struct Session<'a> {
    pub provider: &'a dyn LlmProvider,
    pub tools: &'a ToolContext,
    pub system: String,
    /// Names of the skills in the system prompt, for the transcript.
    pub skills: Vec<String>,
    pub first_message: String,
    pub budgets: Budgets,
    pub prices: PriceTable,
    pub max_output_tokens: u32,
}

const NUDGE: &str = "Your last answer called no tool. Continue with the tools; end the session with finish(summary) once validate and spec_test pass, or give_up(reason).";

impl Session<'_> {
    pub async fn run(&self, transcript: &mut Transcript) -> SessionReport {
        let started = Instant::now();
        let model = self.provider.model().to_string();
        transcript.record(
            "session_start",
            json!({
                "provider": self.provider.wire(),
                "model": model,
                "implementation": self.tools.impl_label(),
                "budgets": self.budgets,
                "tools": self.tools.definitions().iter().map(|d| d.name.clone()).collect::<Vec<_>>(),
            }),
        );
        transcript.record("system_prompt", json!({"chars": self.system.chars().count(), "skills": self.skills, "text": self.system}));
        transcript.record("user_message", json!({"text": self.first_message}));
        if self.prices.price(&model).is_none() {
            transcript.record("warning", json!({"text": format!("no price for model {model:?}: the dollar budget cannot be enforced")}));
        }

        let mut st = State {
            turns: 0,
            usage: Usage::default(),
            cost: self.prices.cost(&model, Usage::default()),
            model_seconds: 0.0,
            tool_seconds: Default::default(),
        };
        let outcome = self.run_loop(transcript, &model, started, &mut st).await;
        let report = SessionReport {
            outcome,
            turns: st.turns,
            usage: st.usage,
            cost_usd: st.cost,
            duration_seconds: started.elapsed().as_secs_f64(),
            model_seconds: st.model_seconds,
            tool_seconds: std::mem::take(&mut st.tool_seconds),
        };
        transcript.record(
            "outcome",
            json!({
                "summary": report.outcome.to_string(),
                "result": report.outcome,
                "turns": report.turns,
                "usage": report.usage,
                "total_tokens": report.usage.total(),
                "cost_usd": report.cost_usd,
                "duration_seconds": report.duration_seconds,
            }),
        );
        report
    }

    fn wall_clock(&self, started: Instant) -> Exceeded {
        Exceeded {
            kind: BudgetKind::WallClock,
            used: format!("{:.1}s", started.elapsed().as_secs_f64()),
            limit: format!("{:.1}s", self.budgets.wall_clock.as_secs_f64()),
        }
    }

    async fn run_loop(&self, transcript: &mut Transcript, model: &str, started: Instant, st: &mut State) -> Outcome {
        let deadline = started + self.budgets.wall_clock;
        let tools = self.tools.definitions();
        let mut messages = vec![Message::user_text(self.first_message.clone())];
        loop {
            if st.turns >= self.budgets.max_turns {
                let limit = self.budgets.max_turns.to_string();
                return Outcome::BudgetExceeded { which: Exceeded { kind: BudgetKind::Turns, used: st.turns.to_string(), limit } };
            }
            let Some(remaining) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
                return Outcome::BudgetExceeded { which: self.wall_clock(started) };
            };
            let req = ChatRequest { system: &self.system, messages: &messages, tools: &tools, max_tokens: self.max_output_tokens };
            let call_started = Instant::now();
            let answered = tokio::time::timeout(remaining, self.provider.chat(&req)).await;
            st.model_seconds += call_started.elapsed().as_secs_f64();
            let resp = match answered {
                Err(_) => return Outcome::BudgetExceeded { which: self.wall_clock(started) },
                Ok(Err(e)) => {
                    transcript.record("llm_error", json!({"error": e.to_string()}));
                    return Outcome::Failed { error: format!("the model could not be reached: {e}") };
                }
                Ok(Ok(r)) => r,
            };
            st.turns += 1;
            st.usage.add(resp.usage);
            st.cost = self.prices.cost(model, st.usage);
            transcript.record(
                "model_response",
                json!({
                    "turn": st.turns,
                    "content": resp.content,
                    "stop_reason": resp.raw_stop,
                    "usage": resp.usage,
                    "session_usage": st.usage,
                    "cost_usd": st.cost,
                    "duration_ms": call_started.elapsed().as_millis() as u64,
                    "retries": resp.retries,
                }),
            );
            if st.usage.total() > self.budgets.max_tokens {
                let which = Exceeded { kind: BudgetKind::Tokens, used: st.usage.total().to_string(), limit: self.budgets.max_tokens.to_string() };
                return Outcome::BudgetExceeded { which };
            }
            if let Some(cost) = st.cost.filter(|c| *c > self.budgets.max_dollars) {
                let which = Exceeded { kind: BudgetKind::Dollars, used: format!("${cost:.4}"), limit: format!("${:.4}", self.budgets.max_dollars) };
                return Outcome::BudgetExceeded { which };
            }

            let calls: Vec<(String, String, serde_json::Value)> =
                resp.tool_uses().map(|(id, name, input)| (id.to_string(), name.to_string(), input.clone())).collect();
            let mut content = resp.content;
            if content.is_empty() {
                // Both APIs refuse an assistant turn with nothing in it.
                content.push(Block::Text { text: "(no answer)".into() });
            }
            messages.push(Message { role: Role::Assistant, content });
            if calls.is_empty() {
                let text = if resp.stop == StopReason::MaxTokens {
                    format!("Your answer was cut at the output limit. Write smaller pieces. {NUDGE}")
                } else {
                    NUDGE.to_string()
                };
                transcript.record("nudge", json!({"text": text}));
                messages.push(Message::user_text(text));
                continue;
            }

            let mut results = Vec::new();
            let mut ending: Option<(&'static str, Outcome)> = None;
            for (id, name, input) in calls {
                if let Some((tool, _)) = &ending {
                    // The session already ended in this turn; nothing after it runs.
                    let note = format!("not run: the session ended with {tool}");
                    results.push(Block::ToolResult { tool_use_id: id, content: note, is_error: true });
                    continue;
                }
                let Some(remaining) = deadline.checked_duration_since(Instant::now()) else {
                    return Outcome::BudgetExceeded { which: self.wall_clock(started) };
                };
                transcript.record("tool_call", json!({"id": id, "name": name, "input": input}));
                let t0 = Instant::now();
                let ran = tokio::time::timeout(remaining, self.tools.call(&name, &input)).await;
                *st.tool_seconds.entry(name.clone()).or_default() += t0.elapsed().as_secs_f64();
                let out = match ran {
                    Ok(out) => out,
                    Err(_) => return Outcome::BudgetExceeded { which: self.wall_clock(started) },
                };
                transcript.record(
                    "tool_result",
                    json!({"id": id, "name": name, "is_error": out.is_error, "content": out.content, "duration_ms": t0.elapsed().as_millis() as u64}),
                );
                results.push(Block::ToolResult { tool_use_id: id, content: out.content, is_error: out.is_error });
                match out.control {
                    Some(Control::Finish(summary)) => ending = Some(("finish", Outcome::Succeeded { summary })),
                    Some(Control::GiveUp(reason)) => ending = Some(("give_up", Outcome::GaveUp { reason })),
                    None => {}
                }
            }
            messages.push(Message { role: Role::User, content: results });
            if let Some((_, outcome)) = ending {
                return outcome;
            }
        }
    }
}

struct State {
    turns: u32,
    usage: Usage,
    cost: Option<f64>,
    model_seconds: f64,
    tool_seconds: std::collections::BTreeMap<String, f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_lines() {
        let o = Outcome::BudgetExceeded { which: Exceeded { kind: BudgetKind::Turns, used: "25".into(), limit: "25".into() } };
        assert_eq!(o.to_string(), "Budget exceeded: turns (25/25)");
        assert_eq!(Outcome::GaveUp { reason: "no API".into() }.to_string(), "Gave up: no API");
    }
}

//! Failure analysis: a failing CI run (its SpecReport, or when there is none the failed jobs'
//! logs) becomes a [`FailureAnalysis`]: failures grouped by check category, each category mapped
//! to the skill and the scaffold file that should have prevented it, with the evidence, the
//! likely cause and the fix.
//!
//! Pure: no I/O, so every mapping is testable on its own. The category → skill table is the
//! one `skills/failure-analysis/SKILL.md` teaches the agent; a test keeps the two in step.

use crate::spectest::checks;
use crate::spectest::{SpecReport, Status};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Categories in the order they should be fixed: an upstream failure (wrong auth, a broken
/// catalog) makes everything after it fail too.
pub const CATEGORY_ORDER: [&str; 11] =
    ["discover", "protocol", "auth", "pagination", "schema", "state", "retry", "rate_limit", "timeout", "errors", "security"];

/// The skill that owns a category's lessons (as in the failure-analysis skill).
pub fn skill_for(category: &str) -> Option<&'static str> {
    Some(match category {
        "discover" | "schema" => "connector-building",
        "protocol" | "retry" | "rate_limit" | "timeout" | "errors" => "api-connector-spec",
        "auth" | "security" => "auth",
        "pagination" | "state" => "pagination",
        _ => return None,
    })
}

/// The runtime module, as a path inside a language's scaffold template folder, that implements
/// a category's behaviour.
pub fn runtime_file(category: &str, language: &str) -> Option<String> {
    let module = match category {
        "protocol" => "singer",
        "auth" => "auth",
        "pagination" => "pagination",
        "state" => "state",
        "retry" => "retry",
        "rate_limit" => "ratelimit",
        "timeout" => "http",
        "errors" => "errors",
        "security" => "log",
        _ => return None,
    };
    let base = "{connector}/{version}/{author}";
    Some(match language {
        "typescript" => format!("registry/_scaffold/typescript/{base}/typescript/{{implementation}}/src/runtime/{module}.ts"),
        _ => format!("registry/_scaffold/python/{base}/python/{{implementation}}/connector_runtime/{module}.py"),
    })
}

/// Checks that a correct manifest and the unmodified runtime pass: when one fails and the
/// connector has no hooks, the runtime copied from the scaffold is the suspect.
const RUNTIME_BEHAVIOUR: [&str; 16] = [
    "protocol.schema_before_record",
    "auth.no_retry_on_401",
    "auth.failed_code",
    "pagination.stops_on_empty_page",
    "retry.transient_retried",
    "retry.backoff_growing",
    "retry.retry_after_seconds",
    "retry.retry_after_date",
    "retry.no_retry_on_4xx",
    "retry.budget_exhausted",
    "timeout.slow_response",
    "rate_limit.rps_respected",
    "rate_limit.zero_remaining_respected",
    "errors.malformed_json",
    "errors.error_line_shape",
    "security.no_secret_leak",
];

/// Where the fault most likely is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Something the connector declared or wrote (manifest, schema, fixtures, hooks).
    Connector,
    /// The runtime the scaffold copies into every connector.
    Runtime,
}

/// Where an analysis came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The `spec-report` artifact.
    Report,
    /// No usable report: the failed jobs' logs.
    Logs,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedCheck {
    pub id: String,
    /// The implementation folder, e.g. `registry/acme/v1/connector-factory/python/default`.
    pub implementation: String,
    pub message: String,
    pub hint: String,
    /// At most [`EVIDENCE_LINES`] lines, each cut to [`EVIDENCE_CHARS`].
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureCategory {
    pub name: String,
    pub checks: Vec<FailedCheck>,
    /// `skills/<name>/SKILL.md`, when the category has an owner.
    pub skill: Option<String>,
    /// The scaffold's runtime module for the category, in the implementation's language.
    pub scaffold_file: Option<String>,
    pub fault: Fault,
    pub cause: String,
    pub fix: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureAnalysis {
    pub source: Source,
    pub categories: Vec<FailureCategory>,
    /// The relevant log lines when the analysis came from logs.
    pub log_excerpt: Option<String>,
}

pub const EVIDENCE_LINES: usize = 4;
pub const EVIDENCE_CHARS: usize = 240;

impl FailureAnalysis {
    /// Groups a report's failed checks. `hooks` says, per implementation path, whether the
    /// connector has a hooks file (unknown → assume it may, so the connector is suspected first).
    pub fn from_report(report: &SpecReport, hooks: &dyn Fn(&str) -> Option<bool>) -> FailureAnalysis {
        let mut grouped: BTreeMap<String, Vec<(FailedCheck, String)>> = BTreeMap::new();
        for imp in &report.implementations {
            for c in imp.checks.iter().filter(|c| c.status == Status::Failed) {
                let failed = FailedCheck {
                    id: c.id.clone(),
                    implementation: imp.path.clone(),
                    message: cut(&c.message, EVIDENCE_CHARS * 2),
                    hint: c.hint.clone(),
                    evidence: c.evidence.iter().take(EVIDENCE_LINES).map(|l| cut(l, EVIDENCE_CHARS)).collect(),
                };
                grouped.entry(c.category.clone()).or_default().push((failed, imp.language.clone()));
            }
        }
        let categories = order(grouped)
            .into_iter()
            .map(|(name, checks)| {
                let language = checks.first().map(|(_, l)| l.clone()).unwrap_or_else(|| "python".into());
                let all_runtime = checks.iter().all(|(c, _)| RUNTIME_BEHAVIOUR.contains(&c.id.as_str()));
                let no_hooks = checks.iter().all(|(c, _)| hooks(&c.implementation) == Some(false));
                let fault = if all_runtime && no_hooks { Fault::Runtime } else { Fault::Connector };
                category(&name, checks.into_iter().map(|(c, _)| c).collect(), &language, fault)
            })
            .collect();
        FailureAnalysis { source: Source::Report, categories, log_excerpt: None }
    }

    /// Without a report: the check ids the logs name (the spec-test command prints them), with
    /// the lines that name them as evidence, and an excerpt of the relevant lines.
    pub fn from_logs(logs: &[(String, String)]) -> FailureAnalysis {
        let mut grouped: BTreeMap<String, Vec<(FailedCheck, String)>> = BTreeMap::new();
        let mut excerpt = String::new();
        for (job, text) in logs {
            let lines: Vec<String> = text.lines().map(strip_timestamp).collect();
            let relevant = relevant_lines(&lines);
            if !relevant.is_empty() {
                let _ = writeln!(excerpt, "== {job} ==");
                for l in &relevant {
                    let _ = writeln!(excerpt, "{}", cut(l, EVIDENCE_CHARS));
                }
            }
            for def in checks::CHECKS {
                let naming: Vec<&String> = lines.iter().filter(|l| names_failed_check(l, def.id)).collect();
                if naming.is_empty() || grouped.values().flatten().any(|(c, _)| c.id == def.id) {
                    continue;
                }
                let failed = FailedCheck {
                    id: def.id.to_string(),
                    implementation: String::new(),
                    message: cut(naming[0].trim(), EVIDENCE_CHARS * 2),
                    hint: def.hint.to_string(),
                    evidence: naming.iter().take(EVIDENCE_LINES).map(|l| cut(l.trim(), EVIDENCE_CHARS)).collect(),
                };
                grouped.entry(def.category().to_string()).or_default().push((failed, "python".into()));
            }
        }
        let categories = order(grouped)
            .into_iter()
            .map(|(name, checks)| category(&name, checks.into_iter().map(|(c, _)| c).collect(), "python", Fault::Connector))
            .collect();
        let excerpt = trim_lines(&excerpt, LOG_EXCERPT_LINES);
        FailureAnalysis { source: Source::Logs, categories, log_excerpt: (!excerpt.trim().is_empty()).then_some(excerpt) }
    }

    pub fn failed_checks(&self) -> usize {
        self.categories.iter().map(|c| c.checks.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.categories.is_empty()
    }

    /// The analysis comment for the connector PR.
    pub fn to_markdown(&self, run_url: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "### 🔎 Why the spec tests failed\n");
        let from = match self.source {
            Source::Report => "the `spec-report` artifact",
            Source::Logs => "the failed jobs' logs (the run left no usable `spec-report` artifact)",
        };
        if self.is_empty() {
            let _ = writeln!(
                s,
                "The [CI run]({run_url}) failed, but {from} names no failed spec-test check: the failure happened \
                 outside the spec tests (building, setting up, or the workflow itself)."
            );
        } else {
            let _ = writeln!(
                s,
                "[CI run]({run_url}), read from {from}: {} failed check(s) in {} categor{}. Fix them in this order; an \
                 earlier category often causes the later ones.\n",
                self.failed_checks(),
                self.categories.len(),
                if self.categories.len() == 1 { "y" } else { "ies" }
            );
        }
        for cat in &self.categories {
            let ids: Vec<String> = cat.checks.iter().map(|c| format!("`{}`", c.id)).collect();
            let _ = writeln!(s, "#### `{}`: {}\n", cat.name, ids.join(", "));
            for c in &cat.checks {
                let _ = writeln!(s, "- `{}`: {}", c.id, one_line(&c.message));
                if !c.evidence.is_empty() {
                    let _ = writeln!(s, "  ```text");
                    for e in &c.evidence {
                        let _ = writeln!(s, "  {}", e.replace("```", "'''"));
                    }
                    let _ = writeln!(s, "  ```");
                }
            }
            let _ = writeln!(s, "\n**Likely cause:** {}\n", cat.cause);
            let _ = writeln!(s, "**Fix:** {}\n", cat.fix);
            if let Some(skill) = &cat.skill {
                let _ = write!(s, "The factory's lesson goes into `{skill}`");
                match &cat.scaffold_file {
                    Some(file) if cat.fault == Fault::Runtime => {
                        let _ = writeln!(s, "; the runtime module to look at is `{file}`.\n");
                    }
                    _ => {
                        let _ = writeln!(s, ".\n");
                    }
                }
            }
        }
        if let Some(excerpt) = &self.log_excerpt {
            let _ = writeln!(
                s,
                "<details><summary>Relevant log lines</summary>\n\n```text\n{}\n```\n</details>\n",
                excerpt.replace("```", "'''")
            );
        }
        s
    }

    /// What the fixing agent is told: the failures, compactly, and what to do about them.
    pub fn to_guidance(&self) -> String {
        let mut s = String::from(
            "The connector in the implementation folder failed the spec tests in CI. Keep what works, change only \
             what the failures below point at, and finish only when validate and spec_test pass.\n",
        );
        for cat in &self.categories {
            let _ = writeln!(s, "\nCategory `{}` (likely cause: {}):", cat.name, cat.cause);
            for c in &cat.checks {
                let _ = writeln!(s, "- {}: {} Hint: {}", c.id, one_line(&c.message), c.hint);
                for e in &c.evidence {
                    let _ = writeln!(s, "    {e}");
                }
            }
        }
        s
    }
}

const LOG_EXCERPT_LINES: usize = 60;

fn order(mut grouped: BTreeMap<String, Vec<(FailedCheck, String)>>) -> Vec<(String, Vec<(FailedCheck, String)>)> {
    let mut out = Vec::new();
    for name in CATEGORY_ORDER {
        if let Some(checks) = grouped.remove(name) {
            out.push((name.to_string(), checks));
        }
    }
    // Categories this version does not know (a newer report): after the known ones.
    out.extend(grouped);
    out
}

fn category(name: &str, checks: Vec<FailedCheck>, language: &str, fault: Fault) -> FailureCategory {
    let (cause, fix) = cause_and_fix(name, fault, &checks);
    FailureCategory {
        name: name.to_string(),
        skill: skill_for(name).map(|s| format!("skills/{s}/SKILL.md")),
        scaffold_file: runtime_file(name, language),
        fault,
        cause,
        fix,
        checks,
    }
}

fn cause_and_fix(category: &str, fault: Fault, checks: &[FailedCheck]) -> (String, String) {
    let first_hint = checks.first().map(|c| c.hint.clone()).unwrap_or_default();
    if fault == Fault::Runtime {
        return (
            "the runtime copied from the scaffold: these checks pass with a correct manifest and no hooks, and this \
             connector has no hooks"
                .into(),
            format!(
                "do not patch `connector_runtime/` in the connector; fix the scaffold's runtime so every connector gets \
                 it. {first_hint}."
            ),
        );
    }
    let cause = match category {
        "discover" => "a stream schema that is not valid JSON Schema, or a `primary_key` that is not a top-level property",
        "protocol" => "output on stdout that is not a Singer message (prints in hooks), or `--about` disagreeing with the manifest",
        "auth" => "the manifest's `auth` block (type, header or parameter name, prefix) does not match how the API takes credentials, or a hook retries on 401",
        "pagination" => "the manifest's `pagination` block (style, cursor or has-more path, page parameters) or `record_selector` does not match the API's pages",
        "schema" => "stream schemas stricter than the data: non-null types where the API sends null, integer ids that are strings, asserted formats",
        "state" => "the `incremental` block: a `cursor_field` missing from the records, the wrong `format`, or a `request_param` that does not filter",
        "retry" | "rate_limit" | "timeout" | "errors" => "a hook that sleeps, retries, swallows errors or sends requests of its own",
        "security" => "a hook or document that logs headers, URLs or config values",
        _ => "see the evidence",
    };
    (cause.to_string(), format!("{first_hint}."))
}

/// `2024-05-01T10:00:00.1234567Z ` prefixes of Actions logs, removed.
fn strip_timestamp(line: &str) -> String {
    let l = line.trim_end_matches('\r');
    let b = l.as_bytes();
    let looks_like_time = b.len() > 20 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[10] == b'T';
    // "Z " within the first 32 bytes, all ASCII before it, so the cut is on a char boundary.
    match b.iter().take(32).position(|&c| c == b'Z') {
        Some(pos) if looks_like_time && b.get(pos + 1) == Some(&b' ') && b[..pos].is_ascii() => l[pos + 2..].to_string(),
        _ => l.to_string(),
    }
}

/// Whether a log line reports `id` as failed (a spec-test summary line names the check with a
/// failure word or mark next to it).
fn names_failed_check(line: &str, id: &str) -> bool {
    let Some(pos) = line.find(id) else { return false };
    let after = line[pos + id.len()..].chars().next();
    if after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
        return false;
    }
    let lower = line.to_ascii_lowercase();
    lower.contains("fail") || line.contains('❌') || line.contains("✗") || lower.contains("error")
}

/// Error lines of a log with a line of context either side; the tail when nothing matches.
fn relevant_lines(lines: &[String]) -> Vec<String> {
    let hit = |l: &str| {
        let lower = l.to_ascii_lowercase();
        l.starts_with("##[error]")
            || lower.contains("error")
            || lower.contains("fail")
            || l.contains('❌')
            || lower.contains("panicked")
            || lower.contains("traceback")
    };
    let mut keep = vec![false; lines.len()];
    for (i, l) in lines.iter().enumerate() {
        if hit(l) {
            keep[i.saturating_sub(1)..(i + 2).min(lines.len())].fill(true);
        }
    }
    let picked: Vec<String> = lines.iter().zip(&keep).filter(|(_, k)| **k).map(|(l, _)| l.clone()).collect();
    if picked.is_empty() {
        lines.iter().rev().take(20).rev().cloned().collect()
    } else {
        picked
    }
}

fn trim_lines(text: &str, max: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= max {
        return text.trim_end().to_string();
    }
    let head = max / 2;
    let tail = max - head;
    let mut out: Vec<String> = lines[..head].iter().map(|l| l.to_string()).collect();
    out.push(format!("... {} lines left out ...", lines.len() - max));
    out.extend(lines[lines.len() - tail..].iter().map(|l| l.to_string()));
    out.join("\n")
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_check_category_has_an_owner_skill_and_a_place_in_the_order() {
        for def in checks::CHECKS {
            let cat = def.category();
            assert!(skill_for(cat).is_some(), "no skill owns category {cat}");
            assert!(CATEGORY_ORDER.contains(&cat), "category {cat} has no place in the order");
        }
        for id in RUNTIME_BEHAVIOUR {
            assert!(checks::find(id).is_some(), "{id} is not a check");
        }
    }

    #[test]
    fn the_skill_table_matches_the_failure_analysis_skill() {
        let text = include_str!("../../skills/failure-analysis/SKILL.md");
        let table = text.split("## Writing a lesson").nth(1).expect("the lesson section");
        for line in table.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let skill = cells[2].trim_matches('`').split('`').next().unwrap();
            for cat in cells[1].split(',').map(|c| c.trim().trim_matches('`')) {
                assert_eq!(skill_for(cat), Some(skill), "category {cat}: the skill says {skill}");
            }
        }
    }

    #[test]
    fn log_timestamps_are_removed_and_failed_ids_found() {
        assert_eq!(strip_timestamp("2025-01-02T03:04:05.1234567Z ##[error]boom"), "##[error]boom");
        assert_eq!(strip_timestamp("plain line"), "plain line");
        assert_eq!(strip_timestamp("2025-01-02T03:04:05Zé… no space"), "2025-01-02T03:04:05Zé… no space");
        assert_eq!(strip_timestamp("ééééééééééééééééééééééééZ x"), "ééééééééééééééééééééééééZ x");
        assert!(names_failed_check("❌ pagination.all_pages: 3 of 4 pages", "pagination.all_pages"));
        assert!(!names_failed_check("✅ pagination.all_pages passed", "pagination.all_pages"));
        assert!(!names_failed_check("FAIL pagination.all_pages_x", "pagination.all_pages"));
    }

    #[test]
    fn the_tail_is_kept_when_no_line_looks_like_an_error() {
        let lines: Vec<String> = (0..50).map(|i| format!("step {i}")).collect();
        let kept = relevant_lines(&lines);
        assert_eq!(kept.len(), 20);
        assert_eq!(kept.last().unwrap(), "step 49");
    }
}

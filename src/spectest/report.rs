//! The SpecReport and its renderings: JSON (stable, for machines; schema in
//! `registry/_schemas/spec-report.schema.json`), Markdown (PR comment / job summary), JUnit XML
//! and a plain-text summary for the terminal.

use super::checks::{CATEGORIES, CheckResult, Status};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Bumped when a field changes meaning or disappears; additions keep the number.
pub const SCHEMA_VERSION: u32 = 1;
/// Markdown output stays below this many characters (GitHub's comment limit is 65 536).
pub const MARKDOWN_LIMIT: usize = 60_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpecReport {
    pub schema_version: u32,
    pub tool: ToolInfo,
    /// RFC 3339 time the report was made.
    pub generated_at: String,
    /// Every selected check passed or was skipped, in every implementation.
    pub passed: bool,
    pub implementations: Vec<ImplementationReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolInfo {
    pub name: String,
    pub version: String,
}

impl ToolInfo {
    pub fn current() -> ToolInfo {
        ToolInfo {
            name: env!("CARGO_PKG_NAME").to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImplementationReport {
    /// The implementation folder as given on the command line.
    pub path: String,
    pub name: String,
    pub version: String,
    pub language: String,
    pub author: Option<String>,
    pub implementation: Option<String>,
    pub passed: bool,
    pub duration_seconds: f64,
    pub summary: Summary,
    pub checks: Vec<CheckResult>,
    pub scenarios: Vec<ScenarioSummary>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub total: usize,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Summary {
    pub fn of(checks: &[CheckResult]) -> Summary {
        let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
        Summary {
            total: checks.len(),
            passed: count(Status::Passed),
            failed: count(Status::Failed),
            skipped: count(Status::Skipped),
        }
    }
}

/// What one scenario did, for orientation when reading failures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioSummary {
    pub id: String,
    /// `ran`, `not_applicable` or `error`.
    pub outcome: String,
    pub note: Option<String>,
    pub duration_seconds: f64,
    pub requests: usize,
    pub runs: Vec<RunSummary>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    pub label: String,
    pub exit_code: Option<i32>,
    pub hung: bool,
    pub duration_seconds: f64,
}

impl SpecReport {
    pub fn new(implementations: Vec<ImplementationReport>) -> SpecReport {
        let passed = implementations.iter().all(|i| i.passed);
        SpecReport {
            schema_version: SCHEMA_VERSION,
            tool: ToolInfo::current(),
            generated_at: super::mock_api::format_rfc3339(super::mock_api::now_epoch() as i64),
            passed,
            implementations,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serializes")
    }

    /// Markdown for a PR comment or `$GITHUB_STEP_SUMMARY`: failures (with hints and collapsed
    /// evidence) first, then passed counts per category. Evidence is shortened until the whole
    /// text fits in [`MARKDOWN_LIMIT`].
    pub fn to_markdown(&self) -> String {
        for evidence_lines in [30usize, 12, 5, 2, 0] {
            let text = self.markdown_with(evidence_lines, true);
            if text.len() <= MARKDOWN_LIMIT {
                return text;
            }
        }
        let mut text = self.markdown_with(0, false);
        if text.len() > MARKDOWN_LIMIT {
            let mut end = MARKDOWN_LIMIT - 200;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push_str("\n\n… report cut to fit; see the JSON report for everything.\n");
        }
        text
    }

    fn markdown_with(&self, evidence_lines: usize, show_messages: bool) -> String {
        let mut md = String::new();
        let verdict = if self.passed {
            "✅ passed"
        } else {
            "❌ failed"
        };
        let _ = writeln!(md, "## Spec tests: {verdict}\n");
        for imp in &self.implementations {
            let icon = if imp.passed { "✅" } else { "❌" };
            let s = &imp.summary;
            let _ = writeln!(
                md,
                "### {icon} {} {} ({})\n\n`{}` — {} passed, {} failed, {} skipped in {:.1} s\n",
                md_text(&imp.name),
                md_text(&imp.version),
                md_text(&imp.language),
                imp.path.replace('`', "'"),
                s.passed,
                s.failed,
                s.skipped,
                imp.duration_seconds
            );
            let failed: Vec<&CheckResult> = imp
                .checks
                .iter()
                .filter(|c| c.status == Status::Failed)
                .collect();
            if !failed.is_empty() {
                let _ = writeln!(
                    md,
                    "| Failed check | What happened | How to fix |\n|---|---|---|"
                );
                for c in &failed {
                    let message = if show_messages {
                        cell(&c.message, 400)
                    } else {
                        String::new()
                    };
                    let _ = writeln!(md, "| `{}` | {} | {} |", c.id, message, cell(&c.hint, 300));
                }
                md.push('\n');
                if evidence_lines > 0 {
                    for c in failed.iter().filter(|c| !c.evidence.is_empty()) {
                        let _ = writeln!(
                            md,
                            "<details><summary>Evidence: <code>{}</code></summary>\n",
                            html_escape(&c.id)
                        );
                        let fence = "~~~~";
                        let _ = writeln!(md, "{fence}text");
                        for line in c.evidence.iter().take(evidence_lines) {
                            let _ = writeln!(md, "{}", line.replace(fence, "~ ~ ~ ~"));
                        }
                        if c.evidence.len() > evidence_lines {
                            let _ = writeln!(
                                md,
                                "… {} more lines in the JSON report",
                                c.evidence.len() - evidence_lines
                            );
                        }
                        let _ = writeln!(md, "{fence}\n</details>\n");
                    }
                }
            }
            let _ = writeln!(
                md,
                "| Category | Passed | Failed | Skipped |\n|---|---|---|---|"
            );
            for (category, counts) in per_category(&imp.checks) {
                let _ = writeln!(
                    md,
                    "| {category} | {} | {} | {} |",
                    counts.passed, counts.failed, counts.skipped
                );
            }
            let skipped: Vec<&CheckResult> = imp
                .checks
                .iter()
                .filter(|c| c.status == Status::Skipped)
                .collect();
            if !skipped.is_empty() {
                let _ = writeln!(md, "\n<details><summary>Skipped checks</summary>\n");
                for c in skipped {
                    let _ = writeln!(md, "- `{}`: {}", c.id, md_text(&c.message));
                }
                let _ = writeln!(md, "\n</details>");
            }
            md.push('\n');
        }
        md
    }

    /// JUnit XML: one testsuite per implementation, one testcase per check.
    pub fn to_junit(&self) -> String {
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let total: usize = self.implementations.iter().map(|i| i.summary.total).sum();
        let failures: usize = self.implementations.iter().map(|i| i.summary.failed).sum();
        let skipped: usize = self.implementations.iter().map(|i| i.summary.skipped).sum();
        let time: f64 = self
            .implementations
            .iter()
            .map(|i| i.duration_seconds)
            .sum();
        let _ = writeln!(
            x,
            "<testsuites name=\"connector-factory spec-test\" tests=\"{total}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time:.3}\">"
        );
        for imp in &self.implementations {
            let s = &imp.summary;
            let suite = format!(
                "{} {} ({}) {}",
                imp.name, imp.version, imp.language, imp.path
            );
            let _ = writeln!(
                x,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{:.3}\">",
                xml_escape(&suite),
                s.total,
                s.failed,
                s.skipped,
                imp.duration_seconds
            );
            for c in &imp.checks {
                let _ = write!(
                    x,
                    "    <testcase classname=\"spectest.{}\" name=\"{}\" time=\"0\"",
                    xml_escape(&c.category),
                    xml_escape(&c.id)
                );
                match c.status {
                    Status::Passed => {
                        let _ = writeln!(x, "/>");
                    }
                    Status::Skipped => {
                        let _ = writeln!(
                            x,
                            ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                            xml_escape(&c.message)
                        );
                    }
                    Status::Failed => {
                        let mut body = format!("{}\nHint: {}\n", c.message, c.hint);
                        for line in &c.evidence {
                            body.push_str(line);
                            body.push('\n');
                        }
                        let _ = writeln!(
                            x,
                            ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>",
                            xml_escape(&c.message),
                            xml_escape(&c.category),
                            xml_escape(&body)
                        );
                    }
                }
            }
            let _ = writeln!(x, "  </testsuite>");
        }
        x.push_str("</testsuites>\n");
        x
    }

    /// A readable terminal summary.
    pub fn to_text(&self) -> String {
        let mut t = String::new();
        for imp in &self.implementations {
            let _ = writeln!(
                t,
                "spec-test {} {} ({}) — {}",
                imp.name, imp.version, imp.language, imp.path
            );
            for c in &imp.checks {
                let mark = match c.status {
                    Status::Passed => "PASS",
                    Status::Failed => "FAIL",
                    Status::Skipped => "SKIP",
                };
                let _ = writeln!(t, "  {mark}  {:<38} {}", c.id, one_line(&c.message, 110));
                if c.status == Status::Failed {
                    let _ = writeln!(t, "        hint: {}", c.hint);
                    for line in c.evidence.iter().take(6) {
                        let _ = writeln!(t, "        | {}", one_line(line, 150));
                    }
                    if c.evidence.len() > 6 {
                        let _ = writeln!(
                            t,
                            "        | … {} more evidence lines in the JSON report",
                            c.evidence.len() - 6
                        );
                    }
                }
            }
            let s = &imp.summary;
            let _ = writeln!(
                t,
                "  {} passed, {} failed, {} skipped in {:.1} s\n",
                s.passed, s.failed, s.skipped, imp.duration_seconds
            );
        }
        let _ = writeln!(
            t,
            "spec-test: {}",
            if self.passed {
                "all selected checks passed"
            } else {
                "FAILED"
            }
        );
        t
    }
}

/// Counts per category, in the canonical category order.
pub fn per_category(checks: &[CheckResult]) -> Vec<(String, Summary)> {
    let mut map: BTreeMap<usize, (String, Vec<CheckResult>)> = BTreeMap::new();
    for c in checks {
        let rank = CATEGORIES
            .iter()
            .position(|k| *k == c.category)
            .unwrap_or(CATEGORIES.len());
        map.entry(rank)
            .or_insert_with(|| (c.category.clone(), vec![]))
            .1
            .push(c.clone());
    }
    map.into_values()
        .map(|(name, cs)| (name, Summary::of(&cs)))
        .collect()
}

fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        format!("{}…", flat.chars().take(max).collect::<String>())
    } else {
        flat
    }
}

/// Text safe inside a Markdown table cell (no pipes, no line breaks, no raw HTML).
fn cell(s: &str, max: usize) -> String {
    md_text(&one_line(s, max)).replace('|', "\\|")
}

fn md_text(s: &str) -> String {
    html_escape(s).replace('\n', " ")
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Escapes the five XML specials and drops characters XML 1.0 does not allow.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(id: &str, status: Status) -> CheckResult {
        CheckResult {
            id: id.into(),
            category: id.split('.').next().unwrap().into(),
            status,
            message: "msg with <xml> & | pipes \u{1} ctrl".into(),
            hint: "do the thing".into(),
            evidence: if status == Status::Failed {
                vec!["line ~~~~ one".into(), "line two".into()]
            } else {
                vec![]
            },
        }
    }

    fn sample() -> SpecReport {
        let checks = vec![
            check("retry.backoff_growing", Status::Failed),
            check("auth.failed_code", Status::Passed),
            check("state.resume_rereads_nothing", Status::Skipped),
        ];
        SpecReport::new(vec![ImplementationReport {
            path: "registry/x".into(),
            name: "x".into(),
            version: "v1".into(),
            language: "python".into(),
            author: None,
            implementation: Some("default".into()),
            passed: false,
            duration_seconds: 1.0,
            summary: Summary::of(&checks),
            checks,
            scenarios: vec![],
        }])
    }

    #[test]
    fn junit_is_escaped() {
        let x = sample().to_junit();
        assert!(x.contains("&lt;xml&gt; &amp; | pipes \u{FFFD} ctrl"));
        assert!(!x.contains('\u{1}'));
        assert!(x.contains("<failure message="));
        assert!(x.contains("<skipped message="));
        assert_eq!(x.matches("<testcase ").count(), 3);
    }

    #[test]
    fn markdown_lists_failures_first_and_fits() {
        let md = sample().to_markdown();
        let failed_at = md.find("retry.backoff_growing").unwrap();
        let table_at = md.find("| Category |").unwrap();
        assert!(failed_at < table_at);
        assert!(md.contains("\\|"));
        assert!(!md.contains("<xml>"));
        assert!(md.contains("~ ~ ~ ~"));

        let mut big = sample();
        let evidence: Vec<String> = (0..30)
            .map(|i| format!("{i} {}", "x".repeat(390)))
            .collect();
        let template = big.implementations[0].checks[0].clone();
        big.implementations[0].checks = (0..29)
            .map(|i| CheckResult {
                id: format!("retry.c{i}"),
                evidence: evidence.clone(),
                ..template.clone()
            })
            .collect();
        big.implementations = vec![big.implementations[0].clone(); 4];
        let md = big.to_markdown();
        assert!(md.len() <= MARKDOWN_LIMIT, "{}", md.len());
    }
}

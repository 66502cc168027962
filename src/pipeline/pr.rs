//! The connector pull request's title and body.

use super::produce::Produced;
use crate::request::ConnectorRequest;
use crate::spectest::SpecReport;
use crate::validate::{Finding, Severity};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// Labels every connector PR carries.
pub const LABELS: [&str; 2] = ["connector", "bot"];

/// GitHub refuses bodies above 65 536 characters; leave room for the rest of the body.
const TRANSCRIPT_LIMIT: usize = 30_000;

/// What went into the PR, gathered by the generate stage.
pub struct PrContent<'a> {
    pub issue: u64,
    pub request: &'a ConnectorRequest,
    pub produced: &'a Produced,
    /// `registry/<connector>/...` of the implementation, relative to the repository root.
    pub impl_rel: &'a Path,
    pub findings: &'a [Finding],
    /// `Err` holds why the suite could not run.
    pub spec: &'a Result<SpecReport, String>,
    pub guidance: Option<&'a str>,
}

impl PrContent<'_> {
    /// Every check passed locally: the PR is ready for review rather than a draft.
    pub fn passed(&self) -> bool {
        !self.findings.iter().any(|f| f.severity == Severity::Error) && matches!(self.spec, Ok(r) if r.passed)
    }

    pub fn title(&self) -> String {
        format!("Add {} connector", self.request.name.replace(['\n', '\r'], " "))
    }

    pub fn body(&self) -> String {
        let mut md = String::new();
        let manifest = read_manifest(&self.produced.impl_dir);
        let _ = writeln!(
            md,
            "Connector for **{}**, requested in #{}, built by the {}.\n",
            self.request.name, self.issue, self.produced.agent
        );
        let _ = writeln!(md, "Implementation: `{}`\n", self.impl_rel.display());
        if let Some(g) = self.guidance {
            let _ = writeln!(md, "Retry guidance:\n\n{}\n", quote(g));
        }

        let _ = writeln!(md, "## What was built\n");
        if let Some(m) = &manifest {
            let auth = m.pointer("/auth/type").and_then(Value::as_str).unwrap_or("none");
            let base = m.get("base_url").and_then(Value::as_str).unwrap_or("(not set)");
            let _ = writeln!(md, "- Base URL: `{base}`\n- Auth: `{auth}`\n");
            let _ =
                writeln!(md, "| Stream | Endpoint | Pagination | Primary key | Incremental |\n|---|---|---|---|---|");
            for s in m.get("streams").and_then(Value::as_array).into_iter().flatten() {
                let text = |p: &str| s.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
                let pk: Vec<&str> = s
                    .get("primary_key")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let incremental = match s.pointer("/incremental/cursor_field").and_then(Value::as_str) {
                    Some(f) => format!("on `{f}`"),
                    None => "full refresh".into(),
                };
                let pagination = s.pointer("/pagination/type").and_then(Value::as_str).unwrap_or("none");
                let _ = writeln!(
                    md,
                    "| `{}` | `{} {}` | {} | `{}` | {} |",
                    text("/name"),
                    s.get("method").and_then(Value::as_str).unwrap_or("GET"),
                    text("/path"),
                    pagination,
                    pk.join(", "),
                    incremental
                );
            }
            md.push('\n');
        } else {
            let _ = writeln!(md, "The manifest (`connector.json`) could not be read.\n");
        }
        if !self.produced.notes.is_empty() {
            let _ = writeln!(md, "Worth a reviewer's look:\n");
            for n in &self.produced.notes {
                let _ = writeln!(md, "- {}", n.replace('\n', " "));
            }
            md.push('\n');
        }

        let _ = writeln!(md, "## Local checks\n");
        let errors = self.findings.iter().filter(|f| f.severity == Severity::Error).count();
        let warnings = self.findings.len() - errors;
        if self.findings.is_empty() {
            let _ = writeln!(md, "Validation: ✅ no findings\n");
        } else {
            let _ = writeln!(md, "Validation: {} error(s), {} warning(s)\n", errors, warnings);
            for f in self.findings.iter().take(30) {
                let _ = writeln!(md, "- `{}` {}: {}", f.rule, f.file.display(), f.message.replace('\n', " "));
            }
            md.push('\n');
        }
        match self.spec {
            Ok(report) => {
                // The report's own Markdown starts with a level-2 heading; nest it under ours.
                md.push_str(&report.to_markdown().replace("\n## ", "\n### ").replacen("## ", "### ", 1));
                md.push('\n');
            }
            Err(why) => {
                let _ = writeln!(md, "Spec tests could not run: {}\n", why.replace('\n', " "));
            }
        }

        if let Some(u) = &self.produced.usage {
            let _ = writeln!(md, "**Tokens and cost:** {}\n", u.describe());
        }
        if let Some(t) = &self.produced.transcript {
            let mut text = t.clone();
            if text.len() > TRANSCRIPT_LIMIT {
                let mut end = TRANSCRIPT_LIMIT;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.truncate(end);
                text.push_str("\n\n… transcript cut; the full one is in the job's result.\n");
            }
            let _ = writeln!(md, "<details><summary>Agent transcript</summary>\n\n{text}\n\n</details>\n");
        }
        if !self.passed() {
            let _ = writeln!(
                md,
                "This PR is a draft because local checks failed. Comment `/factory retry <guidance>` on #{} to build \
                 it again on this branch.\n",
                self.issue
            );
        }
        let _ = writeln!(md, "Closes #{}", self.issue);
        md
    }
}

fn read_manifest(dir: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(dir.join(crate::registry::MANIFEST)).ok()?).ok()
}

fn quote(text: &str) -> String {
    text.lines().map(|l| format!("> {l}")).collect::<Vec<_>>().join("\n")
}

/// The request issue a PR body says it closes (`Closes #N`), for retries asked on the PR.
pub fn closed_issue(body: &str) -> Option<u64> {
    body.lines().rev().find_map(|line| {
        let rest = line.trim().strip_prefix("Closes #")?;
        rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_closed_issue() {
        assert_eq!(closed_issue("body\n\nCloses #42\n"), Some(42));
        assert_eq!(closed_issue("nothing"), None);
    }
}

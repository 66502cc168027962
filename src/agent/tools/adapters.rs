//! The boundary between the agent's tools and the other stages (request parsing, validation,
//! spec tests, the OpenAPI toolkit, the builtin generator). Each is one small function, so
//! wiring a stage's real API is a few lines here and nothing else changes.

use crate::agent::AgentRequest;
use anyhow::Result;
use std::path::Path;

/// One spec-test check as the agent needs it.
#[derive(Debug, Clone)]
pub struct SpecCheck {
    pub id: String,
    pub passed: bool,
    pub skipped: bool,
    pub message: String,
    pub hint: String,
    pub evidence: Vec<String>,
}

/// Validation findings, as (is_error, one-line text with paths relative to the folder).
pub fn validate(dir: &Path) -> Result<Vec<(bool, String)>> {
    let findings = crate::validate::validate_implementation(dir)?;
    let base = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    Ok(findings
        .into_iter()
        .map(|f| {
            let is_error = f.severity == crate::validate::Severity::Error;
            let file = f.file.strip_prefix(&base).or_else(|_| f.file.strip_prefix(dir)).unwrap_or(&f.file).display().to_string();
            let mut line = format!("{}[{}] {}#{}: {}", if is_error { "error" } else { "warning" }, f.rule, file, f.pointer, f.message);
            if !f.expected.is_empty() {
                line.push_str(&format!(" (expected {})", f.expected));
            }
            (is_error, line)
        })
        .collect())
}

/// Runs the spec-test suite (all checks, or those named in `only`).
pub async fn spec_test(dir: &Path, only: &[String]) -> Result<Vec<SpecCheck>> {
    use crate::spectest::{Status, SuiteOptions, run_suite};
    let opts = SuiteOptions { only: only.to_vec(), ..SuiteOptions::default() };
    let report = run_suite(dir, &opts).await?;
    Ok(report
        .implementations
        .into_iter()
        .flat_map(|i| i.checks)
        .map(|c| SpecCheck {
            passed: c.status == Status::Passed,
            skipped: c.status == Status::Skipped,
            id: c.id,
            message: c.message,
            hint: c.hint,
            evidence: c.evidence,
        })
        .collect())
}

/// A loaded OpenAPI description.
pub struct LoadedSpec {
    _not_yet: (),
}

/// Largest description the agent loads (the biggest public ones are around 10 MB).
pub const SPEC_MAX_BYTES: usize = 32 * 1024 * 1024;

/// Loads the request's description. URLs go through the fetch policy (public addresses only),
/// so a request cannot point the loader at an internal service.
pub async fn load_spec(location: &str, policy: &super::FetchPolicy) -> Result<LoadedSpec> {
    let _ = (location, policy);
    anyhow::bail!("the OpenAPI toolkit is not part of this build yet (src/openapi is being built)")
}

/// One bounded query on a loaded description.
#[derive(Debug, Clone, Copy)]
pub enum OpenapiQuery<'a> {
    List { path_contains: Option<&'a str>, tag: Option<&'a str> },
    Show(&'a str),
    Schema(&'a str),
}

pub fn openapi_query(spec: &LoadedSpec, query: OpenapiQuery<'_>) -> Result<String> {
    let _ = (spec, query);
    anyhow::bail!("the OpenAPI toolkit is not part of this build yet (src/openapi is being built)")
}

/// Runs the builtin generator into `impl_dir`, returning what it reports.
pub async fn generate_from_openapi(spec_location: &str, impl_dir: &Path, streams: &[String]) -> Result<String> {
    let _ = (spec_location, impl_dir, streams);
    anyhow::bail!("the builtin generator is not part of this build yet (src/agent/builtin.rs is being built)")
}

/// Reads a request written like the issue form (`### Label` headings, each followed by the
/// answer; `_No response_` for an empty one).
pub fn parse_request(markdown: &str) -> Result<AgentRequest> {
    let mut sections: Vec<(String, String)> = Vec::new();
    for line in markdown.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            sections.push((h.trim().to_ascii_lowercase(), String::new()));
        } else if let Some((_, body)) = sections.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    let mut req = AgentRequest { language: "python".into(), ..Default::default() };
    for (label, body) in sections {
        let value = body.trim();
        if value.is_empty() || value == "_No response_" {
            continue;
        }
        let has = |words: &[&str]| words.iter().any(|w| label.contains(w));
        if has(&["openapi", "swagger", "spec"]) {
            req.openapi_url = Some(value.to_string());
        } else if has(&["doc"]) {
            req.docs_url = Some(value.to_string());
        } else if has(&["auth"]) {
            req.auth = Some(value.to_string());
        } else if has(&["stream", "endpoint", "resource"]) {
            req.streams = value
                .split(['\n', ','])
                .map(|s| s.trim().trim_start_matches(['-', '*']).trim().trim_matches('`').to_string())
                .filter(|s| !s.is_empty())
                .collect();
        } else if has(&["language"]) {
            req.language = value.to_ascii_lowercase();
        } else if has(&["name", "api"]) && req.name.is_empty() {
            req.name = value.to_string();
        } else {
            req.notes = Some(match req.notes.take() {
                Some(n) => format!("{n}\n\n{value}"),
                None => value.to_string(),
            });
        }
    }
    if req.name.trim().is_empty() {
        anyhow::bail!("the request has no connector name (a `### Connector name` section followed by the name)");
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_form() {
        let req = parse_request(
            "### Connector name\n\nAcme Widgets\n\n### API documentation URL\n\nhttps://docs.acme.test\n\n### OpenAPI description URL\n\n_No response_\n\n### Authentication\n\nBearer token\n\n### Streams\n\n- widgets\n- orders, refunds\n\n### Language\n\nPython\n\n### Notes\n\nOnly v2.\n",
        )
        .unwrap();
        assert_eq!(req.name, "Acme Widgets");
        assert_eq!(req.docs_url.as_deref(), Some("https://docs.acme.test"));
        assert_eq!(req.openapi_url, None);
        assert_eq!(req.auth.as_deref(), Some("Bearer token"));
        assert_eq!(req.streams, ["widgets", "orders", "refunds"]);
        assert_eq!(req.language, "python");
        assert_eq!(req.notes.as_deref(), Some("Only v2."));
        assert!(parse_request("### Streams\n\nx\n").is_err());
    }
}

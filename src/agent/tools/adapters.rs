//! The boundary between the agent's tools and the other stages (request parsing, validation,
//! spec tests, the OpenAPI toolkit, the builtin generator). Each is one small function, so
//! wiring a stage's real API is a few lines here and nothing else changes.

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

/// Runs the spec-test suite with `opts` (all checks, or those named in `only`): the checks as
/// the agent reads them, and the whole report.
pub async fn spec_test(
    dir: &Path,
    only: &[String],
    opts: &crate::spectest::SuiteOptions,
) -> Result<(Vec<SpecCheck>, crate::spectest::SpecReport)> {
    use crate::spectest::{Status, SuiteOptions, run_suite};
    let opts = SuiteOptions { only: only.to_vec(), ..opts.clone() };
    let report = run_suite(dir, &opts).await?;
    let checks = report
        .implementations
        .iter()
        .flat_map(|i| i.checks.iter().cloned())
        .map(|c| SpecCheck {
            passed: c.status == Status::Passed,
            skipped: c.status == Status::Skipped,
            id: c.id,
            message: c.message,
            hint: c.hint,
            evidence: c.evidence,
        })
        .collect();
    Ok((checks, report))
}

/// A loaded OpenAPI description.
pub type LoadedSpec = crate::openapi::Spec;

/// Largest description the agent loads (the biggest public ones are around 10 MB).
pub const SPEC_MAX_BYTES: usize = 32 * 1024 * 1024;

/// Loads the request's description. URLs go through the fetch policy (public addresses only),
/// so a request cannot point the loader at an internal service.
pub async fn load_spec(location: &str, policy: &super::FetchPolicy) -> Result<LoadedSpec> {
    if location.starts_with("http://") || location.starts_with("https://") {
        let got = super::fetch::fetch_bytes(location, policy, SPEC_MAX_BYTES).await.map_err(anyhow::Error::msg)?;
        if !(200..300).contains(&got.status) {
            anyhow::bail!("GET {} answered HTTP {}", got.shown, got.status);
        }
        if got.cut {
            anyhow::bail!("{} is larger than {SPEC_MAX_BYTES} bytes", got.shown);
        }
        let name = location.to_string();
        return tokio::task::spawn_blocking(move || LoadedSpec::from_bytes(&got.body, &name).map_err(anyhow::Error::from)).await?;
    }
    let path = location.to_string();
    tokio::task::spawn_blocking(move || LoadedSpec::load(&path)).await?
}

/// One bounded query on a loaded description.
#[derive(Debug, Clone, Copy)]
pub enum OpenapiQuery<'a> {
    List { path_contains: Option<&'a str>, tag: Option<&'a str> },
    Show(&'a str),
    Schema(&'a str),
}

pub fn openapi_query(spec: &LoadedSpec, query: OpenapiQuery<'_>) -> Result<String> {
    use crate::openapi::query::{Budget, ListFilter, list_operations, show_operation, show_schema};
    let budget = Budget::default();
    Ok(match query {
        OpenapiQuery::List { path_contains, tag } => {
            let filter = ListFilter { path_contains: path_contains.map(String::from), tag: tag.map(String::from), ..Default::default() };
            list_operations(spec, &filter, budget).rendered
        }
        OpenapiQuery::Show(op) => show_operation(spec, op, budget)?.rendered,
        OpenapiQuery::Schema(name) => show_schema(spec, name, budget)?.rendered,
    })
}

/// Runs the builtin generator into `impl_dir`, returning what it reports. A URL is fetched
/// under the session's fetch policy first (the generator's own loader checks no addresses), and
/// the generated files then name the URL rather than the temporary copy.
pub async fn generate_from_openapi(
    spec_location: &str,
    policy: &super::FetchPolicy,
    impl_dir: &Path,
    streams: &[String],
) -> Result<String> {
    use crate::agent::builtin::{GenerateOptions, generate, replace_spec_location};
    let (registry, place) = crate::registry::Registry::containing(impl_dir)
        .ok_or_else(|| anyhow::anyhow!("{} is not an implementation folder inside a registry", impl_dir.display()))?;
    let copy_dir = tempfile::tempdir()?;
    let is_url = spec_location.starts_with("http://") || spec_location.starts_with("https://");
    let local = if is_url {
        super::fetch::fetch_to_file(spec_location, policy, copy_dir.path(), SPEC_MAX_BYTES).await?
    } else {
        spec_location.to_string()
    };
    let connector_dir = registry.root.join(&place.connector);
    let mut opts = GenerateOptions::new(&local, place.connector.clone(), registry.root.clone());
    opts.streams = streams.to_vec();
    opts.author = place.author.clone();
    opts.version = Some(place.version.clone());
    opts.implementation = place.implementation.clone();
    // The session set-up already wrote the scaffold there; the generator replaces its files.
    opts.force = true;
    let outcome = tokio::task::spawn_blocking(move || generate(&opts)).await??;
    if is_url {
        replace_spec_location(&connector_dir, &local, spec_location)?;
    }
    let mut out = format!("generated {} stream(s) into your folder; base URL {}, auth {}", outcome.streams.len(), outcome.base_url, outcome.auth);
    for s in &outcome.streams {
        out.push_str(&format!(
            "\n- {} {} (pagination {}, primary key {:?}{})",
            s.name,
            s.path,
            s.pagination,
            s.primary_key,
            if s.incremental { ", incremental" } else { "" }
        ));
    }
    for u in &outcome.unsure {
        out.push_str(&format!("\nunsure: {u}"));
    }
    for w in &outcome.warnings {
        out.push_str(&format!("\nwarning: {w}"));
    }
    out.push_str("\nRead connector.json and the schemas, check them against the docs, then validate and spec_test.");
    Ok(out)
}

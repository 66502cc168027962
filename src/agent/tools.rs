//! The agent's tools: one JSON-schema'd definition each, shared by both wire formats, and one
//! dispatcher. A tool never fails the session: bad arguments, unknown tools and refusals come
//! back as error results the model can read and act on.

pub mod adapters;
pub mod fetch;
pub mod files;

use crate::agent::llm::ToolDef;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

pub use fetch::FetchPolicy;
pub use files::Roots;

/// What a tool call produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    pub content: String,
    pub is_error: bool,
    /// Set when the call ends the session.
    pub control: Option<Control>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    Finish(String),
    GiveUp(String),
}

impl ToolOutput {
    fn ok(content: impl Into<String>) -> ToolOutput {
        ToolOutput { content: content.into(), is_error: false, control: None }
    }
    fn err(content: impl Into<String>) -> ToolOutput {
        ToolOutput { content: content.into(), is_error: true, control: None }
    }
}

/// Caps of what one result may hand back to the model.
pub const RESULT_LIMIT: usize = 24_000;
const FETCH_DEFAULT_CHARS: usize = 20_000;
const FINDINGS_SHOWN: usize = 30;
const EVIDENCE_LINES: usize = 4;
const EVIDENCE_CHARS: usize = 240;

/// What a session is for, which decides its tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Writes a connector implementation: every tool, `finish` gated on validate and spec_test.
    Builder,
    /// Improves one skill after CI failures: its writable folder is that skill's folder, the
    /// tools are the file tools, `finish` (gated on the skill still being a skill) and `give_up`.
    Improver,
}

/// Everything the tools act on in one session.
pub struct ToolContext {
    pub roots: Roots,
    pub role: Role,
    /// OpenAPI description (path or URL), when the request has one.
    pub spec: Option<String>,
    pub fetch: FetchPolicy,
    /// How `spec_test` runs the suite: the pipeline's own options, so its verdict is the one
    /// the pipeline would reach.
    pub suite_options: crate::spectest::SuiteOptions,
    /// The last run of the whole suite that passed, with the folder's fingerprint then: `finish`
    /// right after it does not run the suite again on the same files, and neither does the
    /// pipeline after the session (see [`PassedSuite`]).
    passed_suite: std::sync::Mutex<Option<PassedSuite>>,
    /// The description, loaded on first use.
    loaded_spec: tokio::sync::OnceCell<adapters::LoadedSpec>,
}

impl ToolContext {
    pub fn new(impl_dir: &Path, skills_dir: &Path, registry_root: &Path, spec: Option<String>) -> anyhow::Result<ToolContext> {
        Ok(ToolContext {
            roots: Roots::new(impl_dir, skills_dir, registry_root)?,
            role: Role::Builder,
            spec,
            fetch: FetchPolicy::default(),
            suite_options: crate::spectest::SuiteOptions::default(),
            passed_suite: std::sync::Mutex::new(None),
            loaded_spec: tokio::sync::OnceCell::new(),
        })
    }

    pub fn impl_dir(&self) -> &PathBuf {
        &self.roots.impl_dir
    }

    /// The last passing run of the whole suite, if any.
    pub fn passed_suite(&self) -> Option<PassedSuite> {
        self.passed_suite.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The implementation folder as `registry/<connector>/...`, for transcripts (no host paths).
    pub fn impl_label(&self) -> String {
        let base = self.roots.registry.parent().unwrap_or(&self.roots.registry);
        self.roots.impl_dir.strip_prefix(base).unwrap_or(&self.roots.impl_dir).display().to_string()
    }

    /// The tool definitions for this session (the OpenAPI tools only with a spec).
    pub fn definitions(&self) -> Vec<ToolDef> {
        let def = |name: &str, description: &str, properties: Value, required: &[&str]| ToolDef {
            name: name.into(),
            description: description.into(),
            input_schema: json!({
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": false,
            }),
        };
        let mut tools = vec![
            def(
                "list_files",
                "List files (recursively, with sizes) under a folder. Paths are relative to your implementation folder; read-only material is under @skills/, @scaffold/ and @registry/.",
                json!({"path": {"type": "string", "description": "Folder to list; \".\" (default) is your implementation folder."}}),
                &[],
            ),
            def(
                "read_file",
                "Read a UTF-8 text file, up to 40000 characters per call (use offset for more).",
                json!({
                    "path": {"type": "string", "description": "File path, relative to your implementation folder or under @skills/, @scaffold/, @registry/."},
                    "offset": {"type": "integer", "minimum": 0, "description": "First character to return (default 0)."},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 40000, "description": "Characters to return (default 40000)."}
                }),
                &["path"],
            ),
            def(
                "write_file",
                "Create or replace a file inside your implementation folder (the only writable place). Folders are created as needed. Write whole files.",
                json!({
                    "path": {"type": "string", "description": "Path relative to your implementation folder, e.g. schemas/widgets.json."},
                    "content": {"type": "string", "description": "The complete new content of the file."}
                }),
                &["path", "content"],
            ),
            def(
                "fetch_url",
                "GET a public web page or document (API docs, a sample response, an OpenAPI file) as readable text. Only http(s) to public addresses; responses are size-capped.",
                json!({
                    "url": {"type": "string", "description": "http:// or https:// URL."},
                    "offset": {"type": "integer", "minimum": 0, "description": "First character of the text to return, for long pages (default 0)."},
                    "max_chars": {"type": "integer", "minimum": 500, "maximum": 50000, "description": "Characters to return (default 20000)."}
                }),
                &["url"],
            ),
            def(
                "validate",
                "Check your implementation folder: metadata, manifest against its schema, stream schemas, primary keys, cursors, fixtures, layout. Returns the findings.",
                json!({}),
                &[],
            ),
            def(
                "spec_test",
                "Run the conformance suite against a fault-injecting mock of your API built from your manifest and fixtures. Returns the failing checks with hints and evidence.",
                json!({"only": {"type": "array", "items": {"type": "string"}, "description": "Check ids or categories to run (e.g. pagination.all_pages, retry); all when omitted."}}),
                &[],
            ),
            def(
                "finish",
                "Declare the connector done. Accepted only when validate and spec_test both pass on the current files; otherwise you get what still fails.",
                json!({"summary": {"type": "string", "description": "What the connector reads and anything a reviewer should know (assumptions, limits)."}}),
                &["summary"],
            ),
            def(
                "give_up",
                "End the session without a connector, when it cannot be built. Say why and what a person would need to provide.",
                json!({"reason": {"type": "string", "description": "Why the connector cannot be built, and what would unblock it."}}),
                &["reason"],
            ),
        ];
        if self.role == Role::Improver {
            const IMPROVER_TOOLS: [&str; 5] = ["list_files", "read_file", "write_file", "finish", "give_up"];
            tools.retain(|t| IMPROVER_TOOLS.contains(&t.name.as_str()));
            for t in &mut tools {
                if t.name == "finish" {
                    t.description = "Declare the skill change done. Accepted when SKILL.md still has its front matter (same name) and a ## Lessons section.".into();
                }
            }
            return tools;
        }
        if self.spec.is_some() {
            let at = tools.len() - 2;
            tools.splice(
                at..at,
                [
                    def(
                        "openapi_list",
                        "List the operations of the request's OpenAPI description (method, path, summary), optionally filtered by path text or tag.",
                        json!({
                            "path_contains": {"type": "string", "description": "Only paths containing this text."},
                            "tag": {"type": "string", "description": "Only operations with this tag."}
                        }),
                        &[],
                    ),
                    def(
                        "openapi_show",
                        "Show one operation: parameters, responses and the success response's schema, compacted.",
                        json!({"operation": {"type": "string", "description": "Operation as `METHOD /path` (e.g. `GET /v1/widgets`) or its operationId."}}),
                        &["operation"],
                    ),
                    def(
                        "openapi_schema",
                        "Show a named schema from the description's components (or definitions), compacted.",
                        json!({"name": {"type": "string", "description": "Schema name, e.g. Widget."}}),
                        &["name"],
                    ),
                    def(
                        "generate_from_openapi",
                        "Run the builtin generator on the request's OpenAPI description: writes a complete first draft (manifest, schemas, fixtures) into your folder, replacing those files. Check and fix it afterwards.",
                        json!({"streams": {"type": "array", "items": {"type": "string"}, "description": "Stream names or paths to generate; the generator picks when omitted."}}),
                        &[],
                    ),
                ],
            );
        }
        tools
    }

    /// Runs one tool call.
    pub async fn call(&self, name: &str, input: &Value) -> ToolOutput {
        let Some(args) = input.as_object() else {
            let shown = crate::agent::transcript::trim_middle(&input.to_string(), 300);
            return ToolOutput::err(format!("the arguments of {name} must be a JSON object; got {shown}"));
        };
        let known: Vec<String> = self.definitions().into_iter().map(|d| d.name).collect();
        if !known.iter().any(|k| k == name) {
            return ToolOutput::err(format!("unknown tool {name:?}; the tools are: {}", known.join(", ")));
        }
        let out = match name {
            "list_files" => opt_str(args, "path").map(|p| self.roots.list(p.unwrap_or("."))),
            "read_file" => (|| {
                let path = req_str(args, "path")?;
                let offset = opt_uint(args, "offset")?.unwrap_or(0);
                let limit = opt_uint(args, "limit")?.unwrap_or(files::READ_LIMIT);
                Ok(self.roots.read(path, offset, limit))
            })(),
            "write_file" => (|| Ok(self.roots.write(req_str(args, "path")?, req_str(args, "content")?)))(),
            "fetch_url" => match (req_str(args, "url"), opt_uint(args, "offset"), opt_uint(args, "max_chars")) {
                (Ok(url), Ok(offset), Ok(max)) => Ok(fetch::fetch(url, &self.fetch)
                    .await
                    .map(|text| window(&text, offset.unwrap_or(0), max.unwrap_or(FETCH_DEFAULT_CHARS).clamp(500, 50_000)))),
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
            },
            "validate" => Ok(self.validate().map(|(_, text)| text)),
            "spec_test" => match opt_str_list(args, "only") {
                Ok(only) => Ok(self.spec_test(&only).await.map(|(_, text)| text)),
                Err(e) => Err(e),
            },
            "openapi_list" | "openapi_show" | "openapi_schema" => {
                let query = match name {
                    "openapi_list" => match (opt_str(args, "path_contains"), opt_str(args, "tag")) {
                        (Ok(path_contains), Ok(tag)) => Ok(adapters::OpenapiQuery::List { path_contains, tag }),
                        (Err(e), _) | (_, Err(e)) => Err(e),
                    },
                    "openapi_show" => req_str(args, "operation").map(adapters::OpenapiQuery::Show),
                    _ => req_str(args, "name").map(adapters::OpenapiQuery::Schema),
                };
                match query {
                    Ok(q) => Ok(match self.spec().await {
                        Ok(spec) => adapters::openapi_query(spec, q).map_err(|e| format!("{e:#}")),
                        Err(e) => Err(e),
                    }),
                    Err(e) => Err(e),
                }
            }
            "generate_from_openapi" => match opt_str_list(args, "streams") {
                Ok(streams) => {
                    let spec = self.spec.as_deref().unwrap_or_default();
                    Ok(adapters::generate_from_openapi(spec, &self.fetch, self.impl_dir(), &streams).await.map_err(|e| format!("{e:#}")))
                }
                Err(e) => Err(e),
            },
            "finish" => match req_str(args, "summary") {
                Ok(summary) => return self.finish(summary).await,
                Err(e) => Err(e),
            },
            "give_up" => match req_str(args, "reason") {
                Ok(reason) => {
                    return ToolOutput {
                        content: "Understood; the session ends without a connector.".into(),
                        is_error: false,
                        control: Some(Control::GiveUp(reason.to_string())),
                    };
                }
                Err(e) => Err(e),
            },
            _ => unreachable!("checked against the definitions above"),
        };
        match out {
            Ok(Ok(text)) => ToolOutput::ok(crate::agent::transcript::trim_middle(&text, RESULT_LIMIT)),
            Ok(Err(msg)) => ToolOutput::err(msg),
            Err(arg_problem) => ToolOutput::err(format!("{name}: {arg_problem}")),
        }
    }

    /// The request's description, loaded once.
    async fn spec(&self) -> Result<&adapters::LoadedSpec, String> {
        let location = self.spec.as_deref().ok_or("this request has no OpenAPI description")?;
        self.loaded_spec
            .get_or_try_init(|| adapters::load_spec(location, &self.fetch))
            .await
            .map_err(|e| format!("cannot load the OpenAPI description {location}: {e:#}"))
    }

    /// (passed, compact report).
    pub fn validate(&self) -> Result<(bool, String), String> {
        let findings = adapters::validate(self.impl_dir()).map_err(|e| format!("validate could not run: {e:#}"))?;
        let errors = findings.iter().filter(|(e, _)| *e).count();
        let warnings = findings.len() - errors;
        let mut out = if errors == 0 {
            format!("validate passed ({warnings} warning(s))")
        } else {
            format!("validate failed: {errors} error(s), {warnings} warning(s)")
        };
        for (_, line) in findings.iter().take(FINDINGS_SHOWN) {
            out.push('\n');
            out.push_str(line);
        }
        if findings.len() > FINDINGS_SHOWN {
            out.push_str(&format!("\n… {} more; fix these first", findings.len() - FINDINGS_SHOWN));
        }
        Ok((errors == 0, out))
    }

    /// (passed, failing checks with ids, hints and trimmed evidence).
    pub async fn spec_test(&self, only: &[String]) -> Result<(bool, String), String> {
        let before = fingerprint(self.impl_dir());
        let (checks, report) = adapters::spec_test(self.impl_dir(), only, &self.suite_options)
            .await
            .map_err(|e| format!("spec_test could not run: {e:#}"))?;
        let failed: Vec<&adapters::SpecCheck> = checks.iter().filter(|c| !c.passed && !c.skipped).collect();
        let passed = checks.iter().filter(|c| c.passed).count();
        let skipped = checks.iter().filter(|c| c.skipped).count();
        let mut out = format!(
            "spec_test {}: {passed} passed, {} failed, {skipped} skipped",
            if failed.is_empty() { "passed" } else { "failed" },
            failed.len()
        );
        for c in &failed {
            out.push_str(&format!("\nFAIL {}: {}", c.id, c.message.trim()));
            if !c.hint.trim().is_empty() {
                out.push_str(&format!("\n  hint: {}", c.hint.trim()));
            }
            for line in c.evidence.iter().take(EVIDENCE_LINES) {
                out.push_str(&format!("\n  evidence: {}", crate::agent::transcript::trim_middle(line.trim(), EVIDENCE_CHARS)));
            }
            if c.evidence.len() > EVIDENCE_LINES {
                out.push_str(&format!("\n  (+{} more evidence lines)", c.evidence.len() - EVIDENCE_LINES));
            }
        }
        let passed = failed.is_empty() && !checks.is_empty();
        *self.passed_suite.lock().unwrap_or_else(|e| e.into_inner()) = (passed && only.is_empty()).then(|| PassedSuite {
            fingerprint: before,
            options: self.suite_options.clone(),
            report,
        });
        Ok((passed, out))
    }

    /// `finish` is accepted only when both checks pass on the files as they are now.
    async fn finish(&self, summary: &str) -> ToolOutput {
        if self.role == Role::Improver {
            return match check_skill(self.impl_dir()) {
                Ok(()) => ToolOutput {
                    content: "The skill change is accepted.".into(),
                    is_error: false,
                    control: Some(Control::Finish(summary.to_string())),
                },
                Err(why) => ToolOutput::err(format!("finish refused: {why}")),
            };
        }
        let validated = self.validate();
        if let Ok((true, _)) = &validated {
            let unchanged = self.passed_suite().is_some_and(|p| p.fingerprint == fingerprint(self.impl_dir()));
            let suite = if unchanged { Ok((true, String::new())) } else { self.spec_test(&[]).await };
            match suite {
                Ok((true, _)) => {
                    return ToolOutput {
                        content: "validate and spec_test pass; the connector is accepted.".into(),
                        is_error: false,
                        control: Some(Control::Finish(summary.to_string())),
                    };
                }
                Ok((false, report)) | Err(report) => {
                    return ToolOutput::err(format!("finish refused: spec_test does not pass yet.\n{report}"));
                }
            }
        }
        let report = match validated {
            Ok((_, r)) | Err(r) => r,
        };
        ToolOutput::err(format!("finish refused: validate does not pass yet (spec_test not run).\n{report}"))
    }
}

/// What an improver must leave behind: `SKILL.md` with front matter naming this skill's folder
/// and a `## Lessons` section.
pub fn check_skill(dir: &Path) -> Result<(), String> {
    let file = dir.join("SKILL.md");
    let text = std::fs::read_to_string(&file).map_err(|e| format!("SKILL.md cannot be read: {e}"))?;
    let folder = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let front = text
        .strip_prefix("---\n")
        .and_then(|rest| rest.split_once("\n---"))
        .map(|(front, _)| front)
        .ok_or("SKILL.md must start with its front matter between --- lines")?;
    let name = front.lines().find_map(|l| l.strip_prefix("name:")).map(str::trim).unwrap_or_default();
    if name != folder {
        return Err(format!("the front matter must keep `name: {folder}` (found {name:?})"));
    }
    if !front.lines().any(|l| l.starts_with("description:") && l.len() > "description:".len() + 1) {
        return Err("the front matter must keep its description".into());
    }
    if !text.lines().any(|l| l.trim_end() == "## Lessons") {
        return Err("SKILL.md must keep its `## Lessons` section".into());
    }
    Ok(())
}

/// A run of the whole spec-test suite that passed, and on what.
#[derive(Debug, Clone)]
pub struct PassedSuite {
    /// [`fingerprint`] of the implementation folder when the run started.
    pub fingerprint: [u8; 32],
    pub options: crate::spectest::SuiteOptions,
    pub report: crate::spectest::SpecReport,
}

impl PassedSuite {
    /// The report, if it still stands for `dir` run with `options`: the same files (the
    /// fingerprint taken now) and the same options.
    pub fn still_holds(&self, dir: &Path, options: &crate::spectest::SuiteOptions) -> bool {
        self.options == *options && self.fingerprint == fingerprint(dir)
    }
}

/// A digest of every file's path and content in the folder (reserved folders skipped).
fn fingerprint(dir: &Path) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let walker = walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| ![".factory", ".git", "__pycache__"].contains(&e.file_name().to_string_lossy().as_ref()));
    for entry in walker.flatten() {
        if entry.file_type().is_file() {
            h.update(entry.path().strip_prefix(dir).unwrap_or(entry.path()).to_string_lossy().as_bytes());
            h.update([0]);
            h.update(std::fs::read(entry.path()).unwrap_or_default());
            h.update([0]);
        }
    }
    h.finalize().into()
}

/// A window of `text` starting at character `offset`, with a note when more follows.
fn window(text: &str, offset: usize, max: usize) -> String {
    let total = text.chars().count();
    let piece: String = text.chars().skip(offset).take(max).collect();
    let end = offset + piece.chars().count();
    if end < total {
        format!("{piece}\n[characters {offset}..{end} of {total}; call again with offset {end} for more]")
    } else {
        piece
    }
}

type Args = serde_json::Map<String, Value>;

fn req_str<'a>(args: &'a Args, key: &str) -> Result<&'a str, String> {
    match args.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!("argument `{key}` must be a string, got {}", kind(other))),
        None => Err(format!("missing required argument `{key}` (a string)")),
    }
}

fn opt_str<'a>(args: &'a Args, key: &str) -> Result<Option<&'a str>, String> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => req_str(args, key).map(Some),
    }
}

fn opt_uint(args: &Args, key: &str) -> Result<Option<usize>, String> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(Some(n.as_u64().unwrap_or(0) as usize)),
        Some(other) => Err(format!("argument `{key}` must be a non-negative integer, got {}", kind(other))),
    }
}

fn opt_str_list(args: &Args, key: &str) -> Result<Vec<String>, String> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(String::from).ok_or_else(|| format!("argument `{key}` must be an array of strings")))
            .collect(),
        Some(other) => Err(format!("argument `{key}` must be an array of strings, got {}", kind(other))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(spec: Option<String>) -> (tempfile::TempDir, ToolContext) {
        let t = tempfile::tempdir().unwrap();
        let reg = t.path().join("registry");
        let imp = reg.join("acme/v1/me/python/default");
        std::fs::create_dir_all(&imp).unwrap();
        std::fs::create_dir_all(reg.join("_scaffold")).unwrap();
        std::fs::create_dir_all(t.path().join("skills")).unwrap();
        let c = ToolContext::new(&imp, &t.path().join("skills"), &reg, spec).unwrap();
        (t, c)
    }

    #[test]
    fn definitions_are_well_formed_and_spec_dependent() {
        let (_t, c) = ctx(None);
        let names: Vec<String> = c.definitions().into_iter().map(|d| d.name).collect();
        assert!(!names.iter().any(|n| n.starts_with("openapi_") || n == "generate_from_openapi"));
        let (_t2, c2) = ctx(Some("spec.yaml".into()));
        let defs = c2.definitions();
        assert_eq!(defs.len(), names.len() + 4);
        assert_eq!(defs.last().unwrap().name, "give_up");
        for d in defs {
            assert_eq!(d.input_schema["type"], "object", "{}", d.name);
            for r in d.input_schema["required"].as_array().unwrap() {
                assert!(d.input_schema["properties"].get(r.as_str().unwrap()).is_some(), "{}: {r}", d.name);
            }
        }
    }

    #[tokio::test]
    async fn bad_calls_become_error_results() {
        let (_t, c) = ctx(None);
        let r = c.call("rm_rf", &json!({})).await;
        assert!(r.is_error && r.content.contains("unknown tool") && r.content.contains("write_file"), "{r:?}");
        let r = c.call("write_file", &json!({"path": "a.txt"})).await;
        assert!(r.is_error && r.content.contains("missing required argument `content`"), "{r:?}");
        let r = c.call("read_file", &json!("{broken")).await;
        assert!(r.is_error && r.content.contains("JSON object"), "{r:?}");
        let r = c.call("read_file", &json!({"path": "a.txt", "offset": -1})).await;
        assert!(r.is_error && r.content.contains("non-negative"), "{r:?}");
        let r = c.call("openapi_list", &json!({})).await;
        assert!(r.is_error, "no spec, no openapi tools");
        let r = c.call("give_up", &json!({"reason": "no API"})).await;
        assert_eq!(r.control, Some(Control::GiveUp("no API".into())));
        let r = c.call("finish", &json!({"summary": "done"})).await;
        assert!(r.is_error && r.control.is_none() && r.content.contains("finish refused"), "{r:?}");
    }
}

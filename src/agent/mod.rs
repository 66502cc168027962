//! Agents that write connectors: the LLM tool loop ([`session`], over [`llm`] providers, with
//! [`tools`], a [`prompt`] of skills and a [`transcript`]) and the builtin OpenAPI generator
//! ([`builtin`]). [`choose`] picks one; [`run`] prepares the folder and runs it.
pub mod builtin;
pub mod cli;
pub mod improver;
pub mod llm;
pub mod prompt;
pub mod session;
pub mod tools;
pub mod transcript;
pub mod workspace;

use anyhow::Result;
use serde::Serialize;
use std::path::{Path, PathBuf};

pub use session::{Budgets, Outcome, SessionReport};

/// A connector request as the agent sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AgentRequest {
    pub name: String,
    /// Registry folder name; derived from `name` when empty.
    pub slug: String,
    pub docs_url: Option<String>,
    pub openapi_url: Option<String>,
    /// Free-text hints on authentication.
    pub auth: Option<String>,
    pub streams: Vec<String>,
    pub language: String,
    pub notes: Option<String>,
    /// `/factory retry <guidance>` text, when the job is a retry.
    pub guidance: Option<Guidance>,
}

impl AgentRequest {
    /// The parsed issue form as the agent sees it (no guidance: a retry adds its own).
    pub fn from_request(r: &crate::request::ConnectorRequest) -> AgentRequest {
        AgentRequest {
            name: r.name.clone(),
            slug: r.slug.clone(),
            docs_url: Some(r.docs_url.clone()).filter(|d| !d.trim().is_empty()),
            openapi_url: r.openapi_url.clone(),
            auth: Some(r.auth.label().to_string()),
            streams: r.streams.clone(),
            language: r.language.label().to_ascii_lowercase(),
            notes: r.notes.clone(),
            guidance: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Guidance {
    pub text: String,
    /// Whether its author has write access to the repository (only then does the model see it).
    pub from_write_access: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    Llm,
    Builtin,
}

/// With an LLM configured, the LLM agent (which can call the builtin generator as a tool);
/// without one, the builtin generator when there is an OpenAPI description; otherwise an error
/// that says what to set.
pub fn choose(llm_configured: bool, has_spec: bool) -> Result<AgentKind> {
    match (llm_configured, has_spec) {
        (true, _) => Ok(AgentKind::Llm),
        (false, true) => Ok(AgentKind::Builtin),
        (false, false) => anyhow::bail!(
            "this request has no OpenAPI description and no LLM is configured, so nothing can build it. \
Either add an OpenAPI description URL to the request (the builtin generator then works without an LLM), \
or configure an LLM: set {} (Anthropic) or {} (OpenAI), or {}=openai with {} for an OpenAI-compatible \
server (vLLM, Ollama, llama.cpp); {} picks the model.",
            llm::ENV_ANTHROPIC_KEY,
            llm::ENV_OPENAI_KEY,
            llm::ENV_PROVIDER,
            llm::ENV_BASE_URL,
            llm::ENV_MODEL
        ),
    }
}

/// How to run one request.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Checkout of the default branch: skills and scaffolds are read from here.
    pub tree: PathBuf,
    /// Registry the connector is written into.
    pub registry: PathBuf,
    pub version: String,
    pub author: String,
    pub implementation: String,
    pub llm: Option<llm::LlmConfig>,
    pub budgets: Budgets,
    pub prices: llm::PriceTable,
    pub fetch: tools::FetchPolicy,
    /// Values to redact from the transcript besides the LLM key and token patterns.
    pub secrets: Vec<String>,
    /// Where the transcript goes; default `<impl>/.factory/`.
    pub transcript_dir: Option<PathBuf>,
    /// Go on from the implementation already in the registry (a CI fix) instead of setting up a
    /// new one. Only the LLM agent can: the builtin generator would write the same files again.
    pub resume: bool,
    /// How the agent's `spec_test` runs the suite (the pipeline passes its own).
    pub spec_tests: crate::spectest::SuiteOptions,
}

impl RunOptions {
    pub fn new(tree: &Path, registry: &Path) -> RunOptions {
        RunOptions {
            tree: tree.to_path_buf(),
            registry: registry.to_path_buf(),
            version: "v1".into(),
            author: "connector-factory".into(),
            implementation: "default".into(),
            llm: None,
            budgets: Budgets::default(),
            prices: llm::PriceTable::default(),
            fetch: tools::FetchPolicy::default(),
            secrets: vec![],
            transcript_dir: None,
            resume: false,
            spec_tests: crate::spectest::SuiteOptions::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub agent: AgentKind,
    pub impl_dir: PathBuf,
    pub outcome: Outcome,
    /// The LLM session's numbers (none for the builtin generator).
    pub session: Option<SessionReport>,
    pub transcript_jsonl: Option<PathBuf>,
    pub transcript_md: Option<PathBuf>,
    /// The session's last passing run of the whole spec-test suite.
    #[serde(skip)]
    pub passed_suite: Option<tools::PassedSuite>,
}

/// Prepares the implementation folder and runs the chosen agent on it.
pub async fn run(req: &AgentRequest, opts: &RunOptions) -> Result<RunResult> {
    let kind = choose(opts.llm.is_some(), req.openapi_url.is_some())?;
    let language = if req.language.is_empty() { "python".to_string() } else { req.language.clone() };
    let ids = workspace::ImplIds {
        connector: if req.slug.is_empty() { crate::registry::slug(&req.name) } else { req.slug.clone() },
        version: opts.version.clone(),
        author: opts.author.clone(),
        language: language.clone(),
        implementation: opts.implementation.clone(),
    };
    if ids.connector.is_empty() {
        anyhow::bail!("the connector name {:?} gives no usable folder name", req.name);
    }
    let impl_dir = if opts.resume {
        let dir = opts.registry.join(ids.rel());
        if kind != AgentKind::Llm {
            anyhow::bail!("only the LLM agent can go on from an existing implementation; configure an LLM provider");
        }
        if !dir.join(crate::registry::MANIFEST).is_file() {
            anyhow::bail!("there is no implementation to go on from at {}", dir.display());
        }
        dir
    } else {
        workspace::prepare(&opts.tree, &opts.registry, &ids, req)?
    };

    match kind {
        AgentKind::Builtin => {
            let spec = req.openapi_url.as_deref().unwrap_or_default();
            let outcome = match tools::adapters::generate_from_openapi(spec, &opts.fetch, &impl_dir, &req.streams).await {
                Ok(summary) => Outcome::Succeeded { summary },
                Err(e) => Outcome::Failed { error: format!("{e:#}") },
            };
            Ok(RunResult {
                agent: kind,
                impl_dir,
                outcome,
                session: None,
                transcript_jsonl: None,
                transcript_md: None,
                passed_suite: None,
            })
        }
        AgentKind::Llm => {
            let cfg = opts.llm.as_ref().expect("chosen because configured");
            let provider = cfg.provider()?;
            let mut tool_ctx = tools::ToolContext::new(&impl_dir, &opts.tree.join("skills"), &opts.registry, req.openapi_url.clone())?;
            tool_ctx.fetch = opts.fetch.clone();
            tool_ctx.suite_options = opts.spec_tests.clone();
            let impl_rel = Path::new("registry").join(ids.rel()).display().to_string();
            let ctx = prompt::PromptContext { impl_rel, language, has_spec: req.openapi_url.is_some() };
            let (system, skills) = prompt::system_prompt(&opts.tree, &ctx)?;
            let dir = opts.transcript_dir.clone().unwrap_or_else(|| impl_dir.join(".factory"));
            let jsonl = dir.join("transcript.jsonl");
            let md = dir.join("transcript.md");
            let mut secrets = opts.secrets.clone();
            secrets.push(cfg.api_key.expose().to_string());
            let mut transcript = transcript::Transcript::to_file(transcript::Redactor::new(secrets), &jsonl)?;
            let session = session::Session {
                provider: provider.as_ref(),
                tools: &tool_ctx,
                system,
                skills,
                first_message: prompt::user_message(req),
                budgets: opts.budgets.clone(),
                prices: opts.prices.clone(),
                max_output_tokens: cfg.max_output_tokens,
            };
            let report = session.run(&mut transcript).await;
            std::fs::write(&md, transcript.to_markdown())?;
            Ok(RunResult {
                agent: kind,
                impl_dir,
                outcome: report.outcome.clone(),
                session: Some(report),
                transcript_jsonl: Some(jsonl),
                transcript_md: Some(md),
                passed_suite: tool_ctx.passed_suite(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_the_issue_form() {
        let form = "### Connector name\n\nAcme Widgets\n\n### API docs URL\n\nhttps://docs.acme.test\n\n### OpenAPI description URL\n\n_No response_\n\n### Auth type\n\nAPI key\n\n### Streams wanted\n\nwidgets\n\n### Language\n\nTypeScript\n\n### Notes\n\n_No response_\n";
        let r = AgentRequest::from_request(&crate::request::parse(form).unwrap());
        assert_eq!((r.slug.as_str(), r.language.as_str(), r.auth.as_deref()), ("acme-widgets", "typescript", Some("API key")));
        assert!(r.docs_url.as_deref().is_some_and(|d| d.starts_with("https://docs.acme.test")));
        assert!(r.openapi_url.is_none() && r.guidance.is_none());
    }

    #[test]
    fn choice() {
        assert_eq!(choose(true, false).unwrap(), AgentKind::Llm);
        assert_eq!(choose(true, true).unwrap(), AgentKind::Llm);
        assert_eq!(choose(false, true).unwrap(), AgentKind::Builtin);
        let e = choose(false, false).unwrap_err().to_string();
        assert!(e.contains("ANTHROPIC_API_KEY") && e.contains("OPENAI_API_KEY") && e.contains("FACTORY_LLM_BASE_URL"), "{e}");
    }
}

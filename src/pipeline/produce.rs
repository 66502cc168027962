//! The pipeline's one door to the agents: [`produce_connector`] writes a connector
//! implementation into the workspace's registry and says who wrote it and what it cost.
//!
//! The agent is picked by [`agent::choose`]: the LLM agent when one is configured, else the
//! builtin OpenAPI generator when the request names an OpenAPI description, else an error that
//! says what to set.

use super::PipelineConfig;
use super::status::Usage;
use crate::agent::builtin::{self, GenerateOptions};
use crate::agent::llm::{LlmConfig, PriceTable};
use crate::agent::tools::{FetchPolicy, PassedSuite};
use crate::agent::tools::adapters::SPEC_MAX_BYTES;
use crate::agent::builtin::replace_spec_location;
use crate::agent::tools::fetch::fetch_to_file;
use crate::agent::{self, AgentKind, AgentRequest, Guidance, RunOptions};
use crate::request::ConnectorRequest;
use anyhow::{Context, Result, bail};
use std::path::PathBuf;

/// What the agent gets.
#[derive(Debug, Clone)]
pub struct ProduceInput {
    pub request: ConnectorRequest,
    /// The registry folder name (`registry::slug` of the request's name).
    pub connector: String,
    /// Checkout of the default branch: skills and scaffolds are read from here only.
    pub tree: PathBuf,
    /// `/factory retry` guidance. Only ever set for someone with write access: the pipeline
    /// refuses everyone else before it gets here.
    pub guidance: Option<String>,
    /// The `<author>` level of the registry layout.
    pub author: String,
    /// A CI fix: the implementation (relative to the registry, `<connector>/<version>/<author>/
    /// <language>/<implementation>`) to go on from, with the failures in `guidance`.
    pub resume: Option<PathBuf>,
}

/// What the agent produced.
#[derive(Debug, Clone)]
pub struct Produced {
    pub impl_dir: PathBuf,
    /// Who wrote it, for people: "builtin OpenAPI generator", "LLM agent (model)".
    pub agent: String,
    /// Guesses the agent was unsure of and problems it noticed, one line each.
    pub notes: Vec<String>,
    /// Token use and cost when an LLM was involved.
    pub usage: Option<Usage>,
    /// The session transcript as Markdown, when there was a session.
    pub transcript: Option<String>,
    /// Seconds spent waiting for the model, and in the agent's own spec-test runs.
    pub model_seconds: f64,
    pub spec_test_seconds: f64,
    /// The agent's last passing run of the whole suite (LLM agent only), which the pipeline
    /// takes instead of running the suite again when the files and options are the same.
    pub passed_suite: Option<PassedSuite>,
}

/// Writes the connector for `input` below `<tree>/registry/`.
pub async fn produce_connector(input: &ProduceInput, cfg: &PipelineConfig) -> Result<Produced> {
    let llm = LlmConfig::from_settings(&cfg.llm);
    if input.resume.is_some() && llm.is_none() {
        bail!("fixing a connector needs the LLM agent: the builtin generator would write the same files again");
    }
    match agent::choose(llm.is_some(), input.request.openapi_url.is_some())? {
        AgentKind::Builtin => builtin_generator(input, &cfg.fetch).await,
        AgentKind::Llm => llm_agent(input, cfg, llm.expect("chosen because configured")).await,
    }
}

async fn builtin_generator(input: &ProduceInput, fetch: &FetchPolicy) -> Result<Produced> {
    let openapi = input.request.openapi_url.clone().context("the builtin generator needs an OpenAPI description")?;
    // The generator's own loader fetches without address checks, so a URL is fetched here under
    // the fetch policy (public addresses only) and the generator reads the copy.
    let fetched = tempfile::tempdir().context("making a folder for the OpenAPI description")?;
    let location = if is_http(&openapi) { fetch_to_file(&openapi, fetch, fetched.path(), SPEC_MAX_BYTES).await? } else { openapi.clone() };

    let registry = input.tree.join("registry");
    let mut opts = GenerateOptions::new(location.clone(), input.connector.clone(), registry.clone());
    opts.streams = input.request.streams.clone();
    opts.author = input.author.clone();
    opts.language = input.request.language;
    opts.scaffolds = Some(registry.join("_scaffold"));
    let outcome = tokio::task::spawn_blocking(move || builtin::generate(&opts))
        .await
        .context("the builtin generator stopped unexpectedly")??;
    if location != openapi {
        // The manifest and `_meta` name their source: the URL people gave, not our copy's path.
        replace_spec_location(&registry.join(&input.connector), &location, &openapi)?;
    }
    let mut notes: Vec<String> = outcome.unsure.iter().map(|u| format!("unsure: {u}")).collect();
    notes.extend(outcome.warnings.iter().cloned());
    if input.guidance.is_some() {
        notes.push("the retry guidance was not used: the builtin generator takes no guidance (configure an LLM)".into());
    }
    Ok(Produced {
        impl_dir: outcome.impl_dir,
        agent: "builtin OpenAPI generator".into(),
        notes,
        usage: None,
        transcript: None,
        model_seconds: 0.0,
        spec_test_seconds: 0.0,
        passed_suite: None,
    })
}

async fn llm_agent(input: &ProduceInput, cfg: &PipelineConfig, llm: LlmConfig) -> Result<Produced> {
    let model = llm.model.clone();
    let mut req = AgentRequest::from_request(&input.request);
    req.slug = input.connector.clone();
    req.guidance = input.guidance.clone().map(|text| Guidance { text, from_write_access: true });

    let mut opts = RunOptions::new(&input.tree, &input.tree.join("registry"));
    opts.author = input.author.clone();
    if let Some(rel) = &input.resume {
        let parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        let [_, version, author, language, implementation] = parts.as_slice() else {
            bail!("{} is not <connector>/<version>/<author>/<language>/<implementation>", rel.display());
        };
        opts.version = version.clone();
        opts.author = author.clone();
        opts.implementation = implementation.clone();
        req.language = language.clone();
        opts.resume = true;
    }
    opts.llm = Some(llm);
    opts.budgets = cfg.budgets.clone();
    opts.prices = PriceTable::from_env().unwrap_or_default();
    opts.fetch = cfg.fetch.clone();
    opts.spec_tests = cfg.spec_tests.clone();
    // Outside the workspace, so the transcript is never committed with the connector.
    let transcripts = tempfile::tempdir().context("making a folder for the transcript")?;
    opts.transcript_dir = Some(transcripts.path().to_path_buf());

    let ran = agent::run(&req, &opts).await?;
    let report = ran.session.as_ref();
    let usage = report.map(|r| Usage {
        input_tokens: r.usage.input_tokens,
        output_tokens: r.usage.output_tokens,
        cost_usd: r.cost_usd,
    });
    if let Some(u) = &usage {
        crate::metrics::global().llm_usage(&model, u.input_tokens, u.output_tokens, u.cost_usd);
    }
    let transcript = ran.transcript_md.as_deref().and_then(|p| std::fs::read_to_string(p).ok());
    match &ran.outcome {
        agent::Outcome::Succeeded { summary } => Ok(Produced {
            impl_dir: ran.impl_dir,
            agent: format!("LLM agent ({model})"),
            notes: summary.lines().filter(|l| l.to_ascii_lowercase().contains("unsure")).map(str::to_string).collect(),
            usage,
            transcript,
            model_seconds: report.map(|r| r.model_seconds).unwrap_or_default(),
            spec_test_seconds: report.and_then(|r| r.tool_seconds.get("spec_test").copied()).unwrap_or_default(),
            passed_suite: ran.passed_suite.clone(),
        }),
        other => bail!(
            "the LLM agent did not finish: {other}{}",
            usage.map(|u| format!(" ({})", u.describe())).unwrap_or_default()
        ),
    }
}

fn is_http(location: &str) -> bool {
    location.starts_with("http://") || location.starts_with("https://")
}


//! The pipeline's one door to the agents: [`produce_connector`] writes a connector
//! implementation into the workspace's registry and says who wrote it and what it cost.
//!
//! Today it runs the builtin OpenAPI generator. When the LLM agent lands, this function is where
//! it is chosen (LLM when configured, else the builtin generator when there is an OpenAPI
//! description, else a clear error); nothing else in the pipeline needs to change.

use super::status::Usage;
use crate::agent::builtin::{self, GenerateOptions};
use crate::config::LlmSettings;
use crate::request::{ConnectorRequest, Language};
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
    /// `/factory retry` guidance from someone with write access.
    pub guidance: Option<String>,
    /// The `<author>` level of the registry layout.
    pub author: String,
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
}

/// Writes the connector for `input` below `<tree>/registry/`.
pub async fn produce_connector(input: &ProduceInput, llm: &LlmSettings) -> Result<Produced> {
    let Some(openapi) = input.request.openapi_url.clone() else {
        bail!(
            "this request has no OpenAPI description and this build of the factory has no LLM agent, so \
             nothing can build it yet: add an OpenAPI description URL to the request (the builtin generator \
             then builds it){}",
            if llm.provider.is_some() { "; the configured LLM is not used by this build" } else { "" }
        );
    };
    if input.request.language != Language::Python {
        bail!(
            "the builtin generator writes Python connectors only, and {} was asked for; choose Python in the \
             request, or wait for the LLM agent",
            input.request.language.label()
        );
    }
    let registry = input.tree.join("registry");
    let mut opts = GenerateOptions::new(openapi, input.connector.clone(), registry.clone());
    opts.streams = input.request.streams.clone();
    opts.author = input.author.clone();
    opts.scaffolds = Some(registry.join("_scaffold"));
    // The generator reads the description (possibly over HTTP) and writes files: blocking work.
    let outcome = tokio::task::spawn_blocking(move || builtin::generate(&opts))
        .await
        .context("the builtin generator stopped unexpectedly")??;
    let mut notes: Vec<String> = outcome.unsure.iter().map(|u| format!("unsure: {u}")).collect();
    notes.extend(outcome.warnings.iter().cloned());
    if input.guidance.is_some() {
        notes.push("the retry guidance was not used: the builtin generator takes no guidance".into());
    }
    Ok(Produced {
        impl_dir: outcome.impl_dir,
        agent: "builtin OpenAPI generator".into(),
        notes,
        usage: None,
        transcript: None,
    })
}

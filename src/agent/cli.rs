//! `connector-factory generate`: the builtin generator's flags as they are, plus `--request`,
//! which runs the whole agent on a request written like the issue form. With `--request`, the
//! builtin flags `--out` (registry), `--author`, `--version` and `--implementation` place the
//! connector as they do for the generator.

use super::{AgentRequest, RunOptions, builtin, llm};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct GenerateCommand {
    #[command(flatten)]
    pub builtin: builtin::GenerateArgs,
    /// Run the agent on a connector request written like the issue form (Markdown with
    /// `### Label` sections). The connector goes into the registry, its transcript into
    /// `<implementation>/.factory/transcript.{jsonl,md}`. The registry is `--out`.
    #[arg(long, value_name = "FILE")]
    pub request: Option<PathBuf>,
    /// Checkout whose skills/ and registry/_scaffold/ the agent reads (the default branch).
    #[arg(long, value_name = "DIR", default_value = ".", requires = "request")]
    pub tree: PathBuf,
    #[arg(long, default_value_t = 40, requires = "request")]
    pub max_turns: u32,
    #[arg(long, default_value_t = 3_000_000, requires = "request")]
    pub max_tokens: u64,
    /// Estimated USD, from the price table (FACTORY_LLM_PRICES overrides it).
    #[arg(long, default_value_t = 10.0, requires = "request")]
    pub max_dollars: f64,
    #[arg(long, default_value_t = 30.0, requires = "request")]
    pub max_minutes: f64,
    /// Where to write the transcript (default: <implementation>/.factory).
    #[arg(long, value_name = "DIR", requires = "request")]
    pub transcript_dir: Option<PathBuf>,
    /// On a GitHub Actions runner: build a request issue, as the app's Actions executor asks.
    #[command(flatten)]
    pub runner: crate::pipeline::actions::RunnerArgs,
}

pub fn run(args: GenerateCommand) -> anyhow::Result<u8> {
    if args.runner.issue.is_some() {
        return crate::pipeline::actions::run_on_runner(args.runner);
    }
    let Some(request_path) = args.request.clone() else {
        return builtin::run(args.builtin);
    };
    let text = std::fs::read_to_string(&request_path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", request_path.display()))?;
    let parsed = match crate::request::parse(&text) {
        Ok(r) => r,
        Err(invalid) => {
            eprintln!("{} is not a usable connector request:\n{}", request_path.display(), invalid.to_markdown());
            return Ok(2);
        }
    };
    let req = AgentRequest::from_request(&parsed);
    let mut opts = RunOptions::new(&args.tree, &args.builtin.out);
    opts.version = args.builtin.version.clone().unwrap_or_else(|| "v1".into());
    opts.author = args.builtin.author.clone();
    opts.implementation = args.builtin.implementation.clone();
    opts.llm = llm::LlmConfig::from_env()?;
    opts.prices = llm::PriceTable::from_env()?;
    opts.budgets.max_turns = args.max_turns;
    opts.budgets.max_tokens = args.max_tokens;
    opts.budgets.max_dollars = args.max_dollars;
    opts.budgets.wall_clock = Duration::from_secs_f64(args.max_minutes.max(0.0) * 60.0);
    opts.transcript_dir = args.transcript_dir;
    opts.secrets = secret_env_values();
    let rt = tokio::runtime::Runtime::new()?;
    let result = rt.block_on(super::run(&req, &opts))?;
    println!("agent: {:?}", result.agent);
    println!("implementation: {}", result.impl_dir.display());
    if let Some(s) = &result.session {
        let cost = s.cost_usd.map(|c| format!("${c:.4}")).unwrap_or_else(|| "unknown".into());
        println!(
            "session: {} turns, {} input + {} output tokens, estimated cost {cost}, {:.1}s",
            s.turns, s.usage.input_tokens, s.usage.output_tokens, s.duration_seconds
        );
    }
    if let (Some(j), Some(m)) = (&result.transcript_jsonl, &result.transcript_md) {
        println!("transcript: {} and {}", j.display(), m.display());
    }
    println!("{}", result.outcome);
    Ok(if matches!(result.outcome, super::Outcome::Succeeded { .. }) { 0 } else { 1 })
}

/// Values of environment variables that look like secrets, so the transcript never holds them.
pub fn secret_env_values() -> Vec<String> {
    std::env::vars()
        .filter(|(k, v)| {
            let k = k.to_ascii_uppercase();
            v.len() >= 8 && ["_KEY", "_TOKEN", "_SECRET", "_PASSWORD", "_PAT"].iter().any(|s| k.ends_with(s))
        })
        .map(|(_, v)| v)
        .collect()
}

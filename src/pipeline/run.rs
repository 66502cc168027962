//! `connector-factory run`: the app's pipeline on a local repository, offline.
//!
//! The request file plays the issue, the repository plays GitHub ([`LocalPlatform`]): the
//! workspace is cloned from the repository's default branch, the connector is generated,
//! validated and spec-tested, the bot's commit lands on a local branch `connector/<slug>`, and
//! the pull request it would open is printed and written to the output folder.

use super::generate::{self, GenerateJob, Trigger, Verdict};
use super::{Control, PipelineConfig};
use crate::config::{Settings, Source};
use crate::platform::local::{LocalPlatform, REQUEST_ISSUE};
use anyhow::{Context, Result};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The connector request: Markdown as the issue form renders it (see examples/). Its
    /// OpenAPI field may be a path relative to the request file.
    #[arg(long, value_name = "FILE")]
    pub request: PathBuf,
    /// The repository that plays GitHub: cloned at its default branch, and where the branch
    /// `connector/<slug>` is created.
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub repo: PathBuf,
    /// Where the status comment and the pull request are written (default: <repo>/.factory/run).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The branch to start from (default: what origin/HEAD names, else the current branch).
    #[arg(long, value_name = "BRANCH")]
    pub base: Option<String>,
}

/// Warnings and errors on stderr (`RUST_LOG` for more), for the local commands.
pub fn init_cli_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

/// Exit 0 when the pull request is ready and every local check passed, 1 for any other ending.
pub fn run(args: RunArgs) -> Result<u8> {
    let body = std::fs::read_to_string(&args.request)
        .with_context(|| format!("cannot read the request {}", args.request.display()))?;
    let request_dir =
        args.request.canonicalize()?.parent().map(PathBuf::from).context("the request file has no folder")?;
    let out = args.out.clone().unwrap_or_else(|| args.repo.join(".factory").join("run"));
    let platform = LocalPlatform::open(&args.repo, &out, body.clone(), args.base.clone())?;
    let settings = Settings::load(&Source::from_process(None));
    let config = PipelineConfig::from_settings(&settings);
    init_cli_tracing();

    let job = GenerateJob {
        number: REQUEST_ISSUE,
        trigger: Trigger::Request { body, requester: std::env::var("USER").unwrap_or_else(|_| "you".into()) },
        local_base: Some(request_dir),
    };
    eprintln!(
        "connector-factory run: {} → {} (output in {})",
        args.request.display(),
        platform.repo_dir().display(),
        platform.out_dir().display()
    );
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let outcome = runtime.block_on(async {
        let cancel = CancellationToken::new();
        let on_ctrl_c = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_ctrl_c.cancel();
            }
        });
        generate::run(&platform, &job, &config, &Control::standalone(cancel)).await
    });

    if let Some(id) = outcome.status_comment {
        let status = std::fs::read_to_string(platform.comment_path(id)).unwrap_or_default();
        println!("── status comment ({}) ──\n{status}", platform.comment_path(id).display());
    }
    if let (Some(pr), Some(title), Some(body)) = (&outcome.pr, &outcome.pr_title, &outcome.pr_body) {
        println!(
            "── pull request #{} ({}) ──\n# {title}\n\n{body}",
            pr.number,
            platform.pull_path(pr.number).display()
        );
    }
    match outcome.verdict {
        Verdict::PrOpened => {
            let branch = outcome.branch.as_deref().unwrap_or_default();
            eprintln!(
                "branch {branch} in {}{}",
                platform.repo_dir().display(),
                match &outcome.commit {
                    Some(c) => format!(" has the bot's commit {}", &c[..c.len().min(10)]),
                    None => " is unchanged (the connector was already committed)".into(),
                }
            );
            if outcome.checks_passed == Some(true) {
                eprintln!("every local check passed");
                Ok(0)
            } else {
                eprintln!("local checks failed; the pull request would be a draft");
                Ok(1)
            }
        }
        verdict => {
            eprintln!(
                "ended as {}: {}",
                serde_json::to_value(verdict)?.as_str().unwrap_or("?"),
                outcome.error.as_deref().unwrap_or("see the status comment")
            );
            Ok(1)
        }
    }
}

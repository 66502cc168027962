//! The stages a job runs through, on any [`Platform`].
//!
//! - [`generate`]: request issue → connector PR (also for `/factory retry`).
//! - [`status`]: the status comment, edited in place.
//! - [`produce`]: the door to the agents.
//! - [`pr`]: the pull request's title and body.
//! - [`run`]: `connector-factory run`, the same pipeline on a local repository.
//!
//! [`PipelineHandler`] is the worker's [`JobHandler`]: it builds a [`Platform`] for each job
//! through a [`PlatformFactory`] and runs the stage the job's kind asks for.

pub mod actions;
pub mod analysis;
pub mod ci;
pub mod commands;
pub mod generate;
pub mod improve;
pub mod pr;
pub mod produce;
pub mod run;
pub mod status;

use crate::agent::Budgets;
use crate::agent::tools::FetchPolicy;
use crate::config::{AppCredentials, LlmSettings, Settings};
use crate::github::app::GitHubApp;
use crate::github::platform::GitHubPlatform;
use crate::git::Identity;
use crate::platform::Platform;
use crate::spectest::SuiteOptions;
use crate::store::{Job, JobKind};
use crate::worker::{JobContext, JobHandler, JobOutcome};
use anyhow::{Context, Result};
use async_trait::async_trait;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// How the pipeline works, the same for every job.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Who the connector commits are by.
    pub identity: Identity,
    /// The `<author>` level in the registry layout of generated connectors.
    pub author: String,
    /// Where workspaces are made (the system's temporary folder when `None`).
    pub workspace_parent: Option<PathBuf>,
    pub llm: LlmSettings,
    /// The LLM agent's limits per job.
    pub budgets: Budgets,
    /// How OpenAPI descriptions and pages are fetched: public addresses only, unless a test
    /// allows loopback.
    pub fetch: FetchPolicy,
    pub spec_tests: SuiteOptions,
    pub learning: LearningConfig,
    /// Where generate jobs run: in this process, or on GitHub Actions.
    pub executor: Executor,
    /// Set on an Actions runner: the run's page, shown on the status comment.
    pub runner_url: Option<String>,
}

/// Where the app runs generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Executor {
    /// Workers of this process clone, generate, test and push.
    Local,
    /// Each generate job is dispatched to a `workflow_dispatch` workflow and tracked there.
    Actions(actions::ActionsConfig),
}

/// Limits of the learning loop (CI results, fixes, improvement PRs).
#[derive(Debug, Clone)]
pub struct LearningConfig {
    /// Automatic fix attempts per connector PR, counted in the store.
    pub max_fix_attempts: u32,
    /// Improvement PRs opened or updated per repository in 24 hours.
    pub improvements_per_day: u32,
    /// How long a CI job waits for the other workflows of the same commit to finish.
    pub wait_for_ci: std::time::Duration,
    /// How often it looks meanwhile.
    pub poll_ci: std::time::Duration,
}

impl Default for LearningConfig {
    fn default() -> Self {
        LearningConfig {
            max_fix_attempts: crate::config::DEFAULT_MAX_FIX_ATTEMPTS,
            improvements_per_day: crate::config::DEFAULT_IMPROVEMENTS_PER_DAY,
            wait_for_ci: std::time::Duration::from_secs(20 * 60),
            poll_ci: std::time::Duration::from_secs(20),
        }
    }
}

impl PipelineConfig {
    pub fn from_settings(settings: &Settings) -> PipelineConfig {
        PipelineConfig {
            identity: Identity::default(),
            author: "connector-factory".into(),
            workspace_parent: None,
            llm: settings.llm.clone(),
            budgets: Budgets::default(),
            fetch: FetchPolicy::default(),
            spec_tests: SuiteOptions::default(),
            learning: LearningConfig {
                max_fix_attempts: settings.max_fix_attempts,
                improvements_per_day: settings.improvements_per_day,
                ..LearningConfig::default()
            },
            executor: match settings.executor {
                crate::config::ExecutorKind::Local => Executor::Local,
                crate::config::ExecutorKind::Actions => Executor::Actions(actions::ActionsConfig {
                    poll: settings.actions_poll,
                    ..actions::ActionsConfig::default()
                }),
            },
            runner_url: None,
        }
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            identity: Identity::default(),
            author: "connector-factory".into(),
            workspace_parent: None,
            llm: LlmSettings { provider: None, base_url: None, model: None, api_key: None },
            budgets: Budgets::default(),
            fetch: FetchPolicy::default(),
            spec_tests: SuiteOptions::default(),
            learning: LearningConfig::default(),
            executor: Executor::Local,
            runner_url: None,
        }
    }
}

/// Phase reports and cancellation for one run: the worker's job context in the app, nothing
/// but a token for a local run.
#[derive(Clone)]
pub struct Control {
    job: Option<JobContext>,
    cancel: CancellationToken,
    /// The app's job id when the run happens elsewhere on its behalf (an Actions runner).
    on_behalf_of: Option<i64>,
}

/// Returned between phases once the job was asked to stop.
#[derive(Debug, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

impl Control {
    pub fn for_job(ctx: JobContext) -> Control {
        let cancel = ctx.cancelled().clone();
        Control { job: Some(ctx), cancel, on_behalf_of: None }
    }

    pub fn standalone(cancel: CancellationToken) -> Control {
        Control { job: None, cancel, on_behalf_of: None }
    }

    /// A run without a job store of its own, doing the app's job `job` (on an Actions runner):
    /// the status comment keeps naming that job.
    pub fn on_behalf_of(cancel: CancellationToken, job: Option<i64>) -> Control {
        Control { job: None, cancel, on_behalf_of: job }
    }

    pub fn job_id(&self) -> Option<i64> {
        self.job.as_ref().map(|c| c.job_id().0).or(self.on_behalf_of)
    }

    /// Cancelled when the job should stop.
    pub fn cancelled(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Records the phase in the store; `false` when the job is no longer ours (a newer job or
    /// an authorised cancel took over), so the caller must not touch the status comment any more.
    /// A failed write is logged and treated as still ours: the lease check happens on heartbeat.
    pub async fn phase(&self, phase: status::Phase) -> bool {
        match &self.job {
            None => true,
            Some(ctx) => match ctx.phase(phase.as_str()).await {
                Ok(ours) => ours,
                Err(err) => {
                    tracing::warn!(job = %ctx.job_id(), "recording phase {} failed: {err:#}", phase.as_str());
                    true
                }
            },
        }
    }

    /// Runs `work` unless the job is cancelled first; the work is dropped then (child processes
    /// of the spec tests are killed with it).
    pub async fn until_cancelled<T>(&self, work: impl Future<Output = T>) -> Result<T, Cancelled> {
        tokio::select! {
            done = work => Ok(done),
            _ = self.cancel.cancelled() => Err(Cancelled),
        }
    }

    /// `Err(Cancelled)` once the job should stop; called between phases.
    pub fn check(&self) -> Result<(), Cancelled> {
        if self.cancel.is_cancelled() { Err(Cancelled) } else { Ok(()) }
    }
}

/// Builds the platform a job works on. The GitHub App's factory makes an installation client for
/// `job.installation_id` and `job.repository`; tests hand out fakes.
#[async_trait]
pub trait PlatformFactory: Send + Sync {
    async fn for_job(&self, job: &Job) -> Result<Arc<dyn Platform>>;
}

/// The GitHub App's platforms: one app (key, HTTP client, token cache) shared by every job, and
/// a [`GitHubPlatform`] per job for the job's installation and repository.
pub struct GitHubPlatforms {
    app: Arc<GitHubApp>,
}

impl GitHubPlatforms {
    pub fn new(app: Arc<GitHubApp>) -> GitHubPlatforms {
        GitHubPlatforms { app }
    }
}

#[async_trait]
impl PlatformFactory for GitHubPlatforms {
    async fn for_job(&self, job: &Job) -> Result<Arc<dyn Platform>> {
        let installation = job
            .installation_id
            .and_then(|id| u64::try_from(id).ok())
            .with_context(|| format!("job {} names no installation of the app, so it cannot act on GitHub", job.id))?;
        let platform = GitHubPlatform::new(self.app.installation(installation), &job.repository)?;
        Ok(Arc::new(platform))
    }
}

/// The platforms `serve` uses: the GitHub App built once from the settings. Needs a running
/// Tokio runtime (the HTTP client is built here).
pub fn platforms_for_serve(settings: &Settings, credentials: &AppCredentials) -> Result<Arc<dyn PlatformFactory>> {
    let app = GitHubApp::from_credentials(credentials, &settings.api_url)?;
    Ok(Arc::new(GitHubPlatforms::new(Arc::new(app))))
}

/// The worker's job handler: generate and retry jobs run [`generate::run`].
pub struct PipelineHandler {
    pub platforms: Arc<dyn PlatformFactory>,
    pub config: PipelineConfig,
}

#[async_trait]
impl JobHandler for PipelineHandler {
    async fn handle(&self, job: Job, ctx: JobContext) -> Result<JobOutcome> {
        match job.kind {
            JobKind::Generate | JobKind::Retry => {
                let platform = self.platforms.for_job(&job).await?;
                if let Executor::Actions(actions) = &self.config.executor {
                    return actions::run(platform.as_ref(), &job, actions, &Control::for_job(ctx)).await;
                }
                let input = generate::GenerateJob::from_job(&job)?;
                let outcome = generate::run(platform.as_ref(), &input, &self.config, &Control::for_job(ctx)).await;
                Ok(outcome.into_job_outcome())
            }
            JobKind::CiFinished => {
                let input = ci::CiJob::from_job(&job)?;
                let platform = self.platforms.for_job(&job).await?;
                let store = ctx.store().clone();
                let outcome = ci::run(platform.as_ref(), store.as_ref(), &input, &self.config, &Control::for_job(ctx)).await;
                Ok(outcome.into_job_outcome())
            }
            JobKind::Cancel => {
                let platform = self.platforms.for_job(&job).await?;
                commands::cancel(platform.as_ref(), ctx.store(), &job).await
            }
            JobKind::Status => {
                let platform = self.platforms.for_job(&job).await?;
                commands::status(platform.as_ref(), ctx.store(), &job).await
            }

        }
    }
}

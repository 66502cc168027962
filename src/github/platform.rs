//! [`Platform`] on GitHub: what the pipeline asks of the code host, as one installation of the
//! app working on one repository.

use super::client::{InstallationClient, NewPull, PullRequestInfo, Repository};
use crate::platform::{GitCredentials, Platform, PrSpec, PullRequest};
use anyhow::{Result, bail};
use async_trait::async_trait;

/// The user name GitHub expects with an installation token over HTTPS git.
pub const GIT_TOKEN_USER: &str = "x-access-token";

pub struct GitHubPlatform {
    client: InstallationClient,
    owner: String,
    repo: String,
    // Default branch and clone URL do not change while a job runs: asked once.
    info: tokio::sync::OnceCell<Repository>,
}

impl GitHubPlatform {
    /// `repository` is `owner/name`.
    pub fn new(client: InstallationClient, repository: &str) -> Result<Self> {
        let Some((owner, repo)) =
            repository.split_once('/').filter(|(o, r)| !o.is_empty() && !r.is_empty() && !r.contains('/'))
        else {
            bail!("'{repository}' is not of the form owner/name");
        };
        Ok(GitHubPlatform {
            client,
            owner: owner.to_string(),
            repo: repo.to_string(),
            info: tokio::sync::OnceCell::new(),
        })
    }

    pub fn client(&self) -> &InstallationClient {
        &self.client
    }

    async fn info(&self) -> Result<&Repository> {
        self.info.get_or_try_init(|| self.client.get_repository(&self.owner, &self.repo)).await
    }
}

fn pull(p: PullRequestInfo) -> PullRequest {
    PullRequest {
        number: p.number,
        url: p.html_url,
        head: p.head.ref_name,
        state: p.state,
        draft: p.draft.unwrap_or(false),
    }
}

#[async_trait]
impl Platform for GitHubPlatform {
    fn repository(&self) -> String {
        format!("{}/{}", self.owner, self.repo)
    }

    async fn default_branch(&self) -> Result<String> {
        Ok(self.info().await?.default_branch.clone())
    }

    async fn remote_url(&self) -> Result<String> {
        Ok(self.info().await?.clone_url.clone())
    }

    async fn git_credentials(&self) -> Result<Option<GitCredentials>> {
        let token = self.client.token().await?;
        Ok(Some(GitCredentials { username: GIT_TOKEN_USER.to_string(), password: token }))
    }

    async fn can_write(&self, login: &str) -> Result<bool> {
        Ok(self.client.can_write(&self.owner, &self.repo, login).await)
    }

    async fn react_issue(&self, issue: u64, content: &str) -> Result<()> {
        self.client.react_to_issue(&self.owner, &self.repo, issue, content).await.map(drop)
    }

    async fn react_comment(&self, comment_id: u64, content: &str) -> Result<()> {
        self.client.react_to_comment(&self.owner, &self.repo, comment_id, content).await.map(drop)
    }

    async fn create_comment(&self, issue: u64, body: &str) -> Result<u64> {
        Ok(self.client.create_issue_comment(&self.owner, &self.repo, issue, body).await?.id)
    }

    async fn update_comment(&self, comment_id: u64, body: &str) -> Result<()> {
        self.client.update_issue_comment(&self.owner, &self.repo, comment_id, body).await.map(drop)
    }

    /// The oldest comment written by this app that contains `marker`. Comments by anyone else
    /// never match, even when they quote the marker.
    async fn find_bot_comment(&self, issue: u64, marker: &str) -> Result<Option<(u64, String)>> {
        let bot = self.client.app().bot_login().await?;
        let comments = self.client.list_issue_comments(&self.owner, &self.repo, issue).await?;
        Ok(comments.into_iter().find_map(|c| {
            let by_bot = c.user.as_ref().is_some_and(|u| u.login.eq_ignore_ascii_case(&bot));
            let body = c.body.unwrap_or_default();
            (by_bot && body.contains(marker)).then_some((c.id, body))
        }))
    }

    /// The open pull request from `branch`; if none is open, the most recent closed one (its
    /// `state` says so, and the caller decides whether to open a new one).
    async fn find_pull_by_head(&self, branch: &str) -> Result<Option<PullRequest>> {
        let mut pulls = self.client.list_pulls_by_head(&self.owner, &self.repo, branch, "all").await?;
        // Same repository only: a fork's branch of the same name is not ours.
        pulls.retain(|p| p.head.ref_name == branch && p.head.label == format!("{}:{branch}", self.owner));
        pulls.sort_by_key(|p| std::cmp::Reverse(p.number));
        let open = pulls.iter().position(|p| p.state == "open");
        Ok(match open {
            Some(i) => Some(pull(pulls.swap_remove(i))),
            None => pulls.into_iter().next().map(pull),
        })
    }

    async fn create_pull(&self, spec: &PrSpec) -> Result<PullRequest> {
        let created = self
            .client
            .create_pull(
                &self.owner,
                &self.repo,
                &NewPull {
                    title: &spec.title,
                    head: &spec.branch,
                    base: &spec.base,
                    body: &spec.body,
                    draft: spec.draft,
                },
            )
            .await?;
        if !spec.labels.is_empty() {
            self.client.add_labels(&self.owner, &self.repo, created.number, &spec.labels).await?;
        }
        Ok(pull(created))
    }

    async fn update_pull(&self, number: u64, title: &str, body: &str) -> Result<()> {
        self.client.update_pull(&self.owner, &self.repo, number, title, body).await.map(drop)
    }

    async fn add_labels(&self, issue: u64, labels: &[String]) -> Result<()> {
        self.client.add_labels(&self.owner, &self.repo, issue, labels).await.map(drop)
    }

    async fn issue_body(&self, number: u64) -> Result<String> {
        // Pull requests are served as issues too, so a retry asked on a PR reads its body here.
        Ok(self.client.get_issue(&self.owner, &self.repo, number).await?.body.unwrap_or_default())
    }
}

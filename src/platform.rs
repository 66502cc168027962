pub struct PullRequest { pub number: u64, pub url: String, pub head: String, pub state: String, pub draft: bool }
pub struct PrSpec { pub branch: String, pub base: String, pub title: String, pub body: String, pub labels: Vec<String>, pub draft: bool }
pub struct GitCredentials { pub username: String, pub password: crate::config::Secret }
#[async_trait::async_trait]
pub trait Platform: Send + Sync {
    fn repository(&self) -> String;
    async fn default_branch(&self) -> anyhow::Result<String>;
    async fn remote_url(&self) -> anyhow::Result<String>;
    async fn git_credentials(&self) -> anyhow::Result<Option<GitCredentials>>;
    async fn can_write(&self, login: &str) -> anyhow::Result<bool>;
    async fn react_issue(&self, issue: u64, content: &str) -> anyhow::Result<()>;
    async fn react_comment(&self, comment_id: u64, content: &str) -> anyhow::Result<()>;
    async fn create_comment(&self, issue: u64, body: &str) -> anyhow::Result<u64>;
    async fn update_comment(&self, comment_id: u64, body: &str) -> anyhow::Result<()>;
    async fn find_bot_comment(&self, issue: u64, marker: &str) -> anyhow::Result<Option<(u64, String)>>;
    async fn find_pull_by_head(&self, branch: &str) -> anyhow::Result<Option<PullRequest>>;
    async fn create_pull(&self, spec: &PrSpec) -> anyhow::Result<PullRequest>;
    async fn update_pull(&self, number: u64, title: &str, body: &str) -> anyhow::Result<()>;
    async fn add_labels(&self, issue: u64, labels: &[String]) -> anyhow::Result<()>;
}

//! The pipeline's git work, on libgit2: a throwaway workspace cloned from the platform's
//! remote at the default branch, one commit of one connector folder on `connector/<slug>`, and
//! a push that reports what the server said.
//!
//! - The working tree always shows the default branch. The commit is built from trees, not by
//!   checking the connector branch out, so skills and scaffolds are read from the default branch
//!   whatever the connector branch holds, and nothing outside the connector folder can change.
//! - Credentials reach libgit2 only through its credentials callback: never in a URL, a config
//!   file or a command line. Every libgit2 message is scrubbed of the token before it is used.
//! - A connector branch is the bot's. When it already exists and holds only the bot's commits,
//!   the new commit goes on top of it (a plain fast-forward), or, when the default branch moved on
//!   since, on the default branch with a force-push. One commit by anybody else stops the work
//!   with [`GitError::ForeignCommits`], so a person's edits are never overwritten.

use crate::platform::GitCredentials;
use git2::{
    Commit, CredentialType, Direction, ErrorCode, FetchOptions, ObjectType, Oid, PushOptions, RemoteCallbacks,
    Repository, Signature, Tree,
};
use serde::Serialize;
use std::cell::{Cell, RefCell};
use std::path::{Component, Path, PathBuf};

/// Who the bot's commits are by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub name: String,
    pub email: String,
}

impl Identity {
    /// How GitHub shows commits made by an app's bot user: `<slug>[bot]` with the noreply
    /// address `<bot-user-id>+<slug>[bot]@users.noreply.github.com`.
    pub fn github_app(slug: &str, bot_user_id: Option<u64>) -> Identity {
        let name = format!("{slug}[bot]");
        let email = match bot_user_id {
            Some(id) => format!("{id}+{name}@users.noreply.github.com"),
            None => format!("{name}@users.noreply.github.com"),
        };
        Identity { name, email }
    }

    /// Commits by this identity are the bot's own, matched on the e-mail address.
    pub fn authored(&self, commit: &Commit<'_>) -> bool {
        String::from_utf8_lossy(commit.author().email_bytes()).eq_ignore_ascii_case(&self.email)
    }

    fn signature(&self) -> Result<Signature<'static>, GitError> {
        Signature::now(&self.name, &self.email).map_err(|e| GitError::Git(e.message().to_string()))
    }
}

impl Default for Identity {
    fn default() -> Self {
        Identity::github_app("connector-factory", None)
    }
}

/// Where to clone from and push to.
#[derive(Debug, Clone)]
pub struct Remote {
    /// Without credentials: `https://github.com/o/r.git`, `file:///...` or a local path.
    pub url: String,
    pub credentials: Option<GitCredentials>,
}

/// Why a server refused a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    /// The branch moved on the remote (someone pushed while the factory worked).
    NonFastForward,
    /// Branch protection rules refused it.
    ProtectedBranch,
    /// A server-side hook (pre-receive, update) declined it.
    HookDeclined,
    Other,
}

impl Rejection {
    fn classify(status: &str) -> Rejection {
        let s = status.to_ascii_lowercase();
        if s.contains("non-fast-forward") || s.contains("fetch first") || s.contains("stale") {
            Rejection::NonFastForward
        } else if s.contains("protected") || s.contains("gh006") {
            Rejection::ProtectedBranch
        } else if s.contains("hook declined") || s.contains("pre-receive") || s.contains("update hook") {
            Rejection::HookDeclined
        } else {
            Rejection::Other
        }
    }

    fn explain(self) -> &'static str {
        match self {
            Rejection::NonFastForward => "the branch changed on the remote while the factory worked",
            Rejection::ProtectedBranch => "the branch is protected",
            Rejection::HookDeclined => "a server-side hook declined it",
            Rejection::Other => "the server refused it",
        }
    }
}

/// A commit on a connector branch that the bot did not make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForeignCommit {
    /// Abbreviated id.
    pub id: String,
    /// `Name <email>`.
    pub author: String,
    pub summary: String,
}

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("the remote has no branch '{0}' to start from")]
    NoBaseBranch(String),
    #[error(
        "branch '{branch}' has {} commit(s) not made by {bot}, so the factory will not rewrite it",
        commits.len()
    )]
    ForeignCommits { branch: String, bot: String, commits: Vec<ForeignCommit> },
    #[error("the push to '{refname}' was refused: {} ({status}){}", kind.explain(), remote_lines(messages))]
    PushRejected { refname: String, kind: Rejection, status: String, messages: Vec<String> },
    #[error("the connector folder {0} holds a symbolic link; connectors are plain files")]
    Symlink(PathBuf),
    #[error("{0} is not a relative path inside the workspace")]
    BadPath(PathBuf),
    #[error("git: {0}")]
    Git(String),
    #[error("workspace: {0}")]
    Io(#[from] std::io::Error),
}

fn remote_lines(messages: &[String]) -> String {
    if messages.is_empty() { String::new() } else { format!("; the remote said: {}", messages.join(" | ")) }
}

/// Replaces every form of the secret in a libgit2 message: the token itself, URL-encoded, and as
/// the base64 of an HTTP Basic header.
fn scrub(text: &str, credentials: Option<&GitCredentials>) -> String {
    let Some(c) = credentials else {
        return text.to_string();
    };
    let secret = c.password.expose();
    if secret.is_empty() {
        return text.to_string();
    }
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{secret}", c.username));
    let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let mut out = text.replace(&basic, "***");
    for form in [secret, encoded.as_str()] {
        out = out.replace(form, "***");
    }
    out
}

/// Callbacks that answer the server's credentials request once. libgit2 asks again after a
/// refusal, and answering again would loop forever on a bad token.
fn callbacks<'a>(credentials: Option<&'a GitCredentials>, asked: &'a Cell<u32>) -> RemoteCallbacks<'a> {
    let mut cb = RemoteCallbacks::new();
    cb.credentials(move |_url, _user_in_url, allowed| {
        let Some(c) = credentials else {
            return Err(git2::Error::from_str("the remote asked for credentials and the platform has none"));
        };
        if asked.get() > 0 {
            return Err(git2::Error::from_str("the remote refused the platform's credentials"));
        }
        asked.set(asked.get() + 1);
        if !allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            return Err(git2::Error::from_str("the remote wants a kind of credentials other than a token"));
        }
        git2::Cred::userpass_plaintext(&c.username, c.password.expose())
    });
    cb
}

/// How the connector branch will be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BranchStart {
    /// No such branch on the remote: start from the default branch.
    New,
    /// The branch exists and already contains the default branch's tip: add a commit on top.
    OnTop,
    /// The branch exists but the default branch moved on: start again from the default branch
    /// and force-push (allowed because every commit on it is the bot's).
    Rebuild,
}

/// The commit [`Workspace::commit_connector`] made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Committed {
    pub id: String,
    pub branch: String,
    pub start: BranchStart,
    /// Paths (relative to the repository root) that differ from the commit it was built on.
    pub changed: Vec<String>,
}

/// A throwaway clone, removed when dropped.
pub struct Workspace {
    dir: tempfile::TempDir,
    repo: Repository,
    remote: Remote,
    default_branch: String,
    default_tip: Oid,
    branch: String,
    /// The connector branch's tip on the remote when the workspace was made.
    remote_branch_tip: Option<Oid>,
    shallow: bool,
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace")
            .field("root", &self.dir.path())
            .field("default_branch", &self.default_branch)
            .field("branch", &self.branch)
            .finish_non_exhaustive()
    }
}

impl Workspace {
    /// Clones `remote` at `default_branch` into a new temporary folder (below `parent` when
    /// given) and looks up `branch` there. Shallow (one commit) when `branch` does not exist yet;
    /// with history when it does, because deciding whose commits are on it needs the history.
    pub fn open(remote: Remote, default_branch: &str, branch: &str, parent: Option<&Path>) -> Result<Self, GitError> {
        let builder = {
            let mut b = tempfile::Builder::new();
            b.prefix("factory-workspace-");
            b
        };
        let dir = match parent {
            Some(p) => {
                std::fs::create_dir_all(p)?;
                builder.tempdir_in(p)?
            }
            None => builder.tempdir()?,
        };
        let repo = Repository::init(dir.path()).map_err(|e| git_error(&e, None))?;
        let creds = remote.credentials.as_ref();
        let (default_present, remote_branch_tip) = {
            let mut origin = repo.remote("origin", &remote.url).map_err(|e| git_error(&e, creds))?;
            let asked = Cell::new(0);
            let conn = origin
                .connect_auth(Direction::Fetch, Some(callbacks(creds, &asked)), None)
                .map_err(|e| git_error(&e, creds))?;
            let heads = conn.list().map_err(|e| git_error(&e, creds))?;
            let find = |name: &str| heads.iter().find(|h| h.name() == format!("refs/heads/{name}")).map(|h| h.oid());
            (find(default_branch).is_some(), find(branch))
        };
        if !default_present {
            return Err(GitError::NoBaseBranch(default_branch.to_string()));
        }
        let mut refspecs = vec![format!("+refs/heads/{default_branch}:refs/remotes/origin/{default_branch}")];
        if remote_branch_tip.is_some() {
            refspecs.push(format!("+refs/heads/{branch}:refs/remotes/origin/{branch}"));
        }
        let shallow = remote_branch_tip.is_none();
        let fetched = fetch(&repo, &remote, &refspecs, shallow);
        let shallow = match fetched {
            Ok(()) => shallow,
            // Some transports (libgit2's local one) cannot fetch shallow; take everything then.
            Err(_) if shallow => {
                fetch(&repo, &remote, &refspecs, false)?;
                false
            }
            Err(e) => return Err(e),
        };
        let default_tip =
            repo.refname_to_id(&format!("refs/remotes/origin/{default_branch}")).map_err(|e| git_error(&e, creds))?;
        {
            let commit = repo.find_commit(default_tip).map_err(|e| git_error(&e, creds))?;
            repo.branch(default_branch, &commit, true).map_err(|e| git_error(&e, creds))?;
            repo.set_head(&format!("refs/heads/{default_branch}")).map_err(|e| git_error(&e, creds))?;
            repo.checkout_head(Some(git2::build::CheckoutBuilder::new().force())).map_err(|e| git_error(&e, creds))?;
        }
        Ok(Workspace {
            dir,
            repo,
            remote,
            default_branch: default_branch.to_string(),
            default_tip,
            branch: branch.to_string(),
            remote_branch_tip,
            shallow,
        })
    }

    /// The working tree: the default branch's files.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn default_branch(&self) -> &str {
        &self.default_branch
    }

    pub fn default_tip(&self) -> String {
        self.default_tip.to_string()
    }

    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// Whether the connector branch already existed on the remote.
    pub fn branch_exists(&self) -> bool {
        self.remote_branch_tip.is_some()
    }

    /// The branch exists and already contains the default branch's tip, so work can go on from
    /// its files (otherwise a commit starts again from the default branch).
    pub fn branch_has_default(&self) -> Result<bool, GitError> {
        Ok(self.start()?.0 == BranchStart::OnTop)
    }

    /// The branch's tip on the remote when the workspace was made.
    pub fn branch_tip(&self) -> Option<String> {
        self.remote_branch_tip.map(|id| id.to_string())
    }

    /// Replaces `folder` in the working tree with the branch's version of it, so work can go on
    /// from what the branch holds (a CI fix starts from the connector as pushed). Returns whether
    /// the branch has that folder; without one the working tree is left alone.
    pub fn restore_from_branch(&self, folder: &Path) -> Result<bool, GitError> {
        match self.remote_branch_tip {
            Some(tip) => self.restore_from(tip, folder),
            None => Ok(false),
        }
    }

    /// Puts the default branch's version of `folder` back into the working tree (undoing edits).
    pub fn restore_from_default(&self, folder: &Path) -> Result<bool, GitError> {
        self.restore_from(self.default_tip, folder)
    }

    fn restore_from(&self, tip: Oid, folder: &Path) -> Result<bool, GitError> {
        relative_parts(folder)?;
        let err = |e: git2::Error| git_error(&e, self.remote.credentials.as_ref());
        let commit = self.repo.find_commit(tip).map_err(err)?;
        let root = commit.tree().map_err(err)?;
        let entry = match root.get_path(folder) {
            Ok(entry) => entry,
            Err(e) if e.code() == git2::ErrorCode::NotFound => {
                let target = self.root().join(folder);
                if target.exists() {
                    std::fs::remove_dir_all(&target)?;
                }
                return Ok(false);
            }
            Err(e) => return Err(err(e)),
        };
        let object = entry.to_object(&self.repo).map_err(err)?;
        let Some(tree) = object.as_tree() else { return Err(GitError::BadPath(folder.to_path_buf())) };
        let target = self.root().join(folder);
        if target.exists() {
            std::fs::remove_dir_all(&target)?;
        }
        self.write_tree(tree, &target)?;
        Ok(true)
    }

    fn write_tree(&self, tree: &Tree<'_>, dir: &Path) -> Result<(), GitError> {
        let err = |e: git2::Error| git_error(&e, self.remote.credentials.as_ref());
        std::fs::create_dir_all(dir)?;
        for entry in tree.iter() {
            let name = entry.name().map_err(|_| GitError::BadPath(dir.to_path_buf()))?;
            if name == ".." || name == "." || name.contains('/') {
                return Err(GitError::BadPath(dir.join(name)));
            }
            let path = dir.join(name);
            match entry.kind() {
                Some(git2::ObjectType::Tree) => {
                    let sub = entry.to_object(&self.repo).map_err(err)?;
                    self.write_tree(sub.as_tree().expect("a tree entry is a tree"), &path)?;
                }
                Some(git2::ObjectType::Blob) if entry.filemode() != 0o120000 => {
                    let blob = self.repo.find_blob(entry.id()).map_err(err)?;
                    std::fs::write(&path, blob.content())?;
                    #[cfg(unix)]
                    if entry.filemode() == 0o100755 {
                        use std::os::unix::fs::PermissionsExt;
                        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
                    }
                }
                // Symbolic links and submodules are never restored into a workspace.
                _ => return Err(GitError::Symlink(path)),
            }
        }
        Ok(())
    }

    /// Whether the default branch was fetched with depth 1.
    pub fn is_shallow(&self) -> bool {
        self.shallow
    }

    /// Commits on the remote connector branch that are not on the default branch and were not
    /// authored by `bot`, newest first.
    pub fn foreign_commits(&self, bot: &Identity) -> Result<Vec<ForeignCommit>, GitError> {
        let Some(tip) = self.remote_branch_tip else {
            return Ok(Vec::new());
        };
        let err = |e: git2::Error| git_error(&e, self.remote.credentials.as_ref());
        let mut walk = self.repo.revwalk().map_err(err)?;
        walk.push(tip).map_err(err)?;
        walk.hide(self.default_tip).map_err(err)?;
        let mut out = Vec::new();
        for id in walk {
            let commit = self.repo.find_commit(id.map_err(err)?).map_err(err)?;
            if !bot.authored(&commit) {
                let author = commit.author();
                out.push(ForeignCommit {
                    id: id_short(commit.id()),
                    author: format!(
                        "{} <{}>",
                        String::from_utf8_lossy(author.name_bytes()),
                        String::from_utf8_lossy(author.email_bytes())
                    ),
                    summary: String::from_utf8_lossy(commit.summary_bytes().unwrap_or_default()).into_owned(),
                });
            }
        }
        Ok(out)
    }

    /// Fails with [`GitError::ForeignCommits`] when someone else committed to the branch.
    /// Called before any work is done, and again before committing.
    pub fn ensure_branch_is_ours(&self, bot: &Identity) -> Result<(), GitError> {
        let commits = self.foreign_commits(bot)?;
        if commits.is_empty() {
            Ok(())
        } else {
            Err(GitError::ForeignCommits { branch: self.branch.clone(), bot: bot.name.clone(), commits })
        }
    }

    fn start(&self) -> Result<(BranchStart, Oid), GitError> {
        let Some(tip) = self.remote_branch_tip else {
            return Ok((BranchStart::New, self.default_tip));
        };
        let contains_default = tip == self.default_tip
            || self
                .repo
                .graph_descendant_of(tip, self.default_tip)
                .map_err(|e| git_error(&e, self.remote.credentials.as_ref()))?;
        Ok(if contains_default { (BranchStart::OnTop, tip) } else { (BranchStart::Rebuild, self.default_tip) })
    }

    /// Commits the working tree's `folder` (e.g. `registry/acme`) on the connector branch, as
    /// `bot`. Everything outside `folder` is taken from the commit the branch starts from, and
    /// files the default branch's `.gitignore` ignores are left out. `None` when the folder is
    /// already exactly as committed.
    pub fn commit_connector(
        &self,
        folder: &Path,
        message: &str,
        bot: &Identity,
    ) -> Result<Option<Committed>, GitError> {
        let parts = relative_parts(folder)?;
        self.ensure_branch_is_ours(bot)?;
        let creds = self.remote.credentials.as_ref();
        let err = |e: git2::Error| git_error(&e, creds);
        let (start, base_id) = self.start()?;
        let base = self.repo.find_commit(base_id).map_err(err)?;
        let base_tree = base.tree().map_err(err)?;
        let source = self.root().join(folder);
        let folder_tree = if source.is_dir() { self.tree_of_dir(&source, folder)? } else { None };
        let tree_id = replace_subtree(&self.repo, Some(&base_tree), &parts, folder_tree)?;
        if tree_id == base_tree.id() {
            return Ok(None);
        }
        let tree = self.repo.find_tree(tree_id).map_err(err)?;
        let changed = changed_paths(&self.repo, &base_tree, &tree)?;
        let signature = bot.signature()?;
        let id = self.repo.commit(None, &signature, &signature, message, &tree, &[&base]).map_err(err)?;
        let commit = self.repo.find_commit(id).map_err(err)?;
        self.repo.branch(&self.branch, &commit, true).map_err(err)?;
        Ok(Some(Committed { id: id.to_string(), branch: self.branch.clone(), start, changed }))
    }

    /// A tree object of a folder in the working tree; `None` when nothing in it is committed.
    fn tree_of_dir(&self, dir: &Path, rel: &Path) -> Result<Option<Oid>, GitError> {
        let err = |e: git2::Error| git_error(&e, self.remote.credentials.as_ref());
        let mut builder = self.repo.treebuilder(None).map_err(err)?;
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name();
            let rel_path = rel.join(&name);
            let kind = entry.file_type()?;
            if kind.is_symlink() {
                return Err(GitError::Symlink(rel_path));
            }
            if self.repo.is_path_ignored(&rel_path).map_err(err)? {
                continue;
            }
            if kind.is_dir() {
                if let Some(id) = self.tree_of_dir(&entry.path(), &rel_path)? {
                    builder.insert(&name, id, 0o040000).map_err(err)?;
                }
            } else if kind.is_file() {
                let id = self.repo.blob_path(&entry.path()).map_err(err)?;
                builder.insert(&name, id, file_mode(&entry.metadata()?)).map_err(err)?;
            }
        }
        if builder.is_empty() { Ok(None) } else { Ok(Some(builder.write().map_err(err)?)) }
    }

    /// Pushes the connector branch. A plain push when the branch is new or only grew; a forced
    /// one when it was rebuilt, and only if the remote branch is still where it was when the
    /// workspace was made (a lease, so a push that raced ours is not thrown away).
    pub fn push(&self, committed: &Committed) -> Result<(), GitError> {
        let creds = self.remote.credentials.as_ref();
        let refname = format!("refs/heads/{}", self.branch);
        let force = committed.start == BranchStart::Rebuild;
        if force {
            let now = self.remote_tip_now()?;
            if now != self.remote_branch_tip {
                return Err(GitError::PushRejected {
                    refname,
                    kind: Rejection::NonFastForward,
                    status: "stale: the remote branch is no longer where the factory found it".into(),
                    messages: vec![],
                });
            }
        }
        if let Some(target) = self.local_working_repository() {
            return self.push_into_working_repository(&target, &refname);
        }
        let mut origin = self.repo.find_remote("origin").map_err(|e| git_error(&e, creds))?;
        let asked = Cell::new(0);
        let refused: RefCell<Vec<(String, String)>> = RefCell::new(Vec::new());
        let said: RefCell<Vec<String>> = RefCell::new(Vec::new());
        let pushed = {
            let mut cb = callbacks(creds, &asked);
            cb.push_update_reference(|name, status| {
                if let Some(status) = status {
                    refused.borrow_mut().push((name.to_string(), status.to_string()));
                }
                Ok(())
            });
            cb.sideband_progress(|bytes| {
                let text = String::from_utf8_lossy(bytes);
                for line in text.split(['\n', '\r']).map(str::trim).filter(|l| !l.is_empty()) {
                    said.borrow_mut().push(line.to_string());
                }
                true
            });
            let mut opts = PushOptions::new();
            opts.remote_callbacks(cb);
            let spec = format!("{}{refname}:{refname}", if force { "+" } else { "" });
            origin.push(&[spec.as_str()], Some(&mut opts))
        };
        let messages: Vec<String> = said.into_inner().iter().map(|m| scrub(m, creds)).collect();
        if let Err(e) = pushed {
            if e.code() == ErrorCode::NotFastForward {
                return Err(GitError::PushRejected {
                    refname,
                    kind: Rejection::NonFastForward,
                    status: scrub(e.message(), creds),
                    messages,
                });
            }
            return Err(GitError::Git(format!("{}{}", scrub(e.message(), creds), remote_lines(&messages))));
        }
        if let Some((name, status)) = refused.into_inner().into_iter().next() {
            let status = scrub(&status, creds);
            let kind = Rejection::classify(&format!("{status} {}", messages.join(" ")));
            return Err(GitError::PushRejected { refname: name, kind, status, messages });
        }
        Ok(())
    }

    /// The remote, when it is a repository on this machine with a working tree: libgit2 cannot
    /// push into those (`connector-factory run` on a developer's clone).
    fn local_working_repository(&self) -> Option<Repository> {
        if self.remote.url.contains("://") && !self.remote.url.starts_with("file://") {
            return None;
        }
        let path = match url::Url::parse(&self.remote.url) {
            Ok(u) if u.scheme() == "file" => u.to_file_path().ok()?,
            _ => PathBuf::from(&self.remote.url),
        };
        Repository::open(path).ok().filter(|r| !r.is_bare())
    }

    /// A push into a working repository, done as a fetch from the workspace on its side, with the
    /// checks a server would make: the branch must be where the factory found it, and it must
    /// not be the one checked out there.
    fn push_into_working_repository(&self, target: &Repository, refname: &str) -> Result<(), GitError> {
        let err = |e: git2::Error| GitError::Git(e.message().to_string());
        let reject = |kind, status: &str| GitError::PushRejected {
            refname: refname.to_string(),
            kind,
            status: status.to_string(),
            messages: vec![],
        };
        if target.head().ok().and_then(|h| h.name().ok().map(str::to_string)).as_deref() == Some(refname) {
            return Err(reject(Rejection::Other, "the branch is checked out in the target repository"));
        }
        if target.refname_to_id(refname).ok() != self.remote_branch_tip {
            return Err(reject(Rejection::NonFastForward, "the branch changed in the target repository"));
        }
        let source = self.root().display().to_string();
        let mut from_workspace = target.remote_anonymous(&source).map_err(err)?;
        from_workspace.fetch(&[format!("+{refname}:{refname}")], None, None).map_err(err)
    }

    /// The connector branch's tip on the remote right now.
    fn remote_tip_now(&self) -> Result<Option<Oid>, GitError> {
        let creds = self.remote.credentials.as_ref();
        let mut origin = self.repo.find_remote("origin").map_err(|e| git_error(&e, creds))?;
        let asked = Cell::new(0);
        let conn = origin
            .connect_auth(Direction::Fetch, Some(callbacks(creds, &asked)), None)
            .map_err(|e| git_error(&e, creds))?;
        let wanted = format!("refs/heads/{}", self.branch);
        let heads = conn.list().map_err(|e| git_error(&e, creds))?;
        Ok(heads.iter().find(|h| h.name() == wanted).map(|h| h.oid()))
    }
}

fn fetch(repo: &Repository, remote: &Remote, refspecs: &[String], shallow: bool) -> Result<(), GitError> {
    let creds = remote.credentials.as_ref();
    let mut origin = repo.find_remote("origin").map_err(|e| git_error(&e, creds))?;
    let asked = Cell::new(0);
    let mut opts = FetchOptions::new();
    opts.remote_callbacks(callbacks(creds, &asked));
    if shallow {
        opts.depth(1);
    }
    let specs: Vec<&str> = refspecs.iter().map(String::as_str).collect();
    origin.fetch(&specs, Some(&mut opts), None).map_err(|e| git_error(&e, creds))
}

fn git_error(e: &git2::Error, credentials: Option<&GitCredentials>) -> GitError {
    GitError::Git(scrub(e.message(), credentials))
}

fn id_short(id: Oid) -> String {
    id.to_string().chars().take(10).collect()
}

#[cfg(unix)]
fn file_mode(meta: &std::fs::Metadata) -> i32 {
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o111 != 0 { 0o100755 } else { 0o100644 }
}

#[cfg(not(unix))]
fn file_mode(_meta: &std::fs::Metadata) -> i32 {
    0o100644
}

fn relative_parts(folder: &Path) -> Result<Vec<String>, GitError> {
    let mut parts = Vec::new();
    for c in folder.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::CurDir => {}
            _ => return Err(GitError::BadPath(folder.to_path_buf())),
        }
    }
    if parts.is_empty() {
        return Err(GitError::BadPath(folder.to_path_buf()));
    }
    Ok(parts)
}

/// `base` with the subtree at `path` replaced by `new` (removed when `None`); returns the new
/// root tree's id. Trees along the path are rewritten, everything else is shared.
fn replace_subtree(
    repo: &Repository,
    base: Option<&Tree<'_>>,
    path: &[String],
    new: Option<Oid>,
) -> Result<Oid, GitError> {
    let err = |e: git2::Error| GitError::Git(e.message().to_string());
    let mut builder = repo.treebuilder(base).map_err(err)?;
    let (first, rest) = path.split_first().expect("a non-empty path");
    let replacement = if rest.is_empty() {
        new
    } else {
        let child = match base.and_then(|t| t.get_name(first)) {
            Some(entry) if entry.kind() == Some(ObjectType::Tree) => Some(repo.find_tree(entry.id()).map_err(err)?),
            _ => None,
        };
        let id = replace_subtree(repo, child.as_ref(), rest, new)?;
        let empty = repo.find_tree(id).map_err(err)?.is_empty();
        (!empty).then_some(id)
    };
    match replacement {
        Some(id) => {
            builder.insert(first, id, 0o040000).map_err(err)?;
        }
        None => {
            if builder.get(first).map_err(err)?.is_some() {
                builder.remove(first).map_err(err)?;
            }
        }
    }
    builder.write().map_err(err)
}

fn changed_paths(repo: &Repository, old: &Tree<'_>, new: &Tree<'_>) -> Result<Vec<String>, GitError> {
    let err = |e: git2::Error| GitError::Git(e.message().to_string());
    let diff = repo.diff_tree_to_tree(Some(old), Some(new), None).map_err(err)?;
    let mut out: Vec<String> = diff
        .deltas()
        .filter_map(|d| d.new_file().path().or_else(|| d.old_file().path()).map(|p| p.to_string_lossy().into_owned()))
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn scrubs_every_form_of_the_token() {
        let creds = GitCredentials { username: "x-access-token".into(), password: Secret::new("ghs_a/b+c") };
        use base64::Engine as _;
        let basic = base64::engine::general_purpose::STANDARD.encode("x-access-token:ghs_a/b+c");
        let text = format!("failed ghs_a/b+c and ghs_a%2Fb%2Bc and Basic {basic}");
        let out = scrub(&text, Some(&creds));
        assert!(!out.contains("ghs_a"), "{out}");
        assert!(!out.contains(&basic), "{out}");
    }

    #[test]
    fn rejections_are_told_apart() {
        assert_eq!(Rejection::classify("pre-receive hook declined"), Rejection::HookDeclined);
        assert_eq!(
            Rejection::classify("protected branch hook declined GH006: Protected branch update failed"),
            Rejection::ProtectedBranch
        );
        assert_eq!(Rejection::classify("non-fast-forward"), Rejection::NonFastForward);
        assert_eq!(Rejection::classify("funny"), Rejection::Other);
    }

    #[test]
    fn bot_identity() {
        let id = Identity::github_app("connector-factory", Some(41898282));
        assert_eq!(id.name, "connector-factory[bot]");
        assert_eq!(id.email, "41898282+connector-factory[bot]@users.noreply.github.com");
    }
}

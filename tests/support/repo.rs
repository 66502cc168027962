//! Bare repositories made with git2, standing in for the platform's remote.

use git2::{Oid, Repository, Signature};
use std::path::{Path, PathBuf};

pub const HUMAN: (&str, &str) = ("Ada Person", "ada@example.com");

pub struct BareRepo {
    pub path: PathBuf,
    pub repo: Repository,
}

impl BareRepo {
    /// A bare repository at `<dir>/remote.git` whose `main` holds `files`.
    pub fn create(dir: &Path, files: &[(&str, &[u8])]) -> BareRepo {
        let path = dir.join("remote.git");
        let repo = Repository::init_bare(&path).unwrap();
        repo.set_head("refs/heads/main").unwrap();
        let bare = BareRepo { path, repo };
        bare.commit("main", files, &[], HUMAN, "Initial commit");
        bare
    }

    pub fn url(&self) -> String {
        url::Url::from_file_path(&self.path).unwrap().to_string()
    }

    pub fn tip(&self, branch: &str) -> Option<Oid> {
        self.repo.refname_to_id(&format!("refs/heads/{branch}")).ok()
    }

    /// Commits on `branch` (created from `main` when missing): adds or replaces `files`, removes
    /// `remove`.
    pub fn commit(
        &self,
        branch: &str,
        files: &[(&str, &[u8])],
        remove: &[&str],
        who: (&str, &str),
        message: &str,
    ) -> Oid {
        let parent = self.tip(branch).or_else(|| self.tip("main")).map(|id| self.repo.find_commit(id).unwrap());
        let mut index = git2::Index::new().unwrap();
        if let Some(p) = &parent {
            index.read_tree(&p.tree().unwrap()).unwrap();
        }
        for (name, data) in files {
            let entry = git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode: 0o100644,
                uid: 0,
                gid: 0,
                file_size: data.len() as u32,
                id: self.repo.blob(data).unwrap(),
                flags: 0,
                flags_extended: 0,
                path: name.as_bytes().to_vec(),
            };
            index.add(&entry).unwrap();
        }
        for name in remove {
            index.remove_path(Path::new(name)).unwrap();
        }
        let tree = self.repo.find_tree(index.write_tree_to(&self.repo).unwrap()).unwrap();
        let sig = Signature::now(who.0, who.1).unwrap();
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        self.repo.commit(Some(&format!("refs/heads/{branch}")), &sig, &sig, message, &tree, &parents).unwrap()
    }

    /// Paths changed by the commit at `branch`'s tip, relative to its first parent.
    pub fn changed_by_tip(&self, branch: &str) -> Vec<String> {
        let commit = self.repo.find_commit(self.tip(branch).unwrap()).unwrap();
        let parent = commit.parent(0).unwrap();
        let diff =
            self.repo.diff_tree_to_tree(Some(&parent.tree().unwrap()), Some(&commit.tree().unwrap()), None).unwrap();
        diff.deltas().map(|d| d.new_file().path().unwrap().to_string_lossy().into_owned()).collect()
    }

    /// The text of a file at a branch's tip.
    pub fn read(&self, branch: &str, path: &str) -> Option<String> {
        let commit = self.repo.find_commit(self.tip(branch)?).ok()?;
        let entry = commit.tree().ok()?.get_path(Path::new(path)).ok()?;
        let blob = self.repo.find_blob(entry.id()).ok()?;
        Some(String::from_utf8_lossy(blob.content()).into_owned())
    }

    /// Commits reachable from `branch` but not from `main`, newest first, with their authors.
    pub fn commits_ahead(&self, branch: &str) -> Vec<(String, String)> {
        let mut walk = self.repo.revwalk().unwrap();
        walk.push(self.tip(branch).unwrap()).unwrap();
        walk.hide(self.tip("main").unwrap()).unwrap();
        walk.map(|id| {
            let c = self.repo.find_commit(id.unwrap()).unwrap();
            (
                String::from_utf8_lossy(c.author().email_bytes()).into_owned(),
                String::from_utf8_lossy(c.summary_bytes().unwrap_or_default()).into_owned(),
            )
        })
        .collect()
    }

    /// Installs a `pre-receive` hook that refuses every push with `reason`.
    pub fn refuse_pushes(&self, reason: &str) {
        let hooks = self.path.join("hooks");
        std::fs::create_dir_all(&hooks).unwrap();
        let hook = hooks.join("pre-receive");
        std::fs::write(&hook, format!("#!/bin/sh\necho '{reason}' >&2\nexit 1\n")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
}

/// What a factory repository's default branch needs for the pipeline: the registry's scaffolds
/// and schemas, the skills, and the `.gitignore` (taken from this project).
pub fn factory_files() -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![(".gitignore".to_string(), std::fs::read(root.join(".gitignore")).unwrap())];
    for folder in ["registry/_scaffold", "registry/_schemas", "skills"] {
        for entry in walkdir::WalkDir::new(root.join(folder)).into_iter().map(Result::unwrap) {
            let rel = entry.path().strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let packed_scaffold = rel.starts_with("registry/_scaffold/") && rel.matches('/').count() == 2;
            let keep = entry.file_type().is_file() && (!rel.starts_with("registry/_scaffold/") || packed_scaffold);
            if keep {
                files.push((rel, std::fs::read(entry.path()).unwrap()));
            }
        }
    }
    files
}

impl BareRepo {
    /// A bare repository whose `main` holds [`factory_files`] and `extra`.
    pub fn factory(dir: &Path, extra: &[(&str, &[u8])]) -> BareRepo {
        let owned = factory_files();
        let mut files: Vec<(&str, &[u8])> = owned.iter().map(|(p, d)| (p.as_str(), d.as_slice())).collect();
        files.extend_from_slice(extra);
        BareRepo::create(dir, &files)
    }
}

//! File tools confined to the implementation folder, with read-only views of the skills, the
//! scaffolds and the registry. Every refusal is a plain message for the model.

use std::path::{Component, Path, PathBuf};

/// Where a model path points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    Impl,
    Skills,
    Scaffold,
    Registry,
}

impl Area {
    fn label(self) -> &'static str {
        match self {
            Area::Impl => "your implementation folder",
            Area::Skills => "@skills",
            Area::Scaffold => "@scaffold",
            Area::Registry => "@registry",
        }
    }
}

/// The places the file tools may touch, all canonical.
#[derive(Debug, Clone)]
pub struct Roots {
    pub impl_dir: PathBuf,
    pub skills: PathBuf,
    pub scaffold: PathBuf,
    pub registry: PathBuf,
}

/// Folders the model never sees or writes: our own records, VCS data, caches.
const HIDDEN: &[&str] = &[".factory", ".git", "__pycache__", "node_modules"];

pub const READ_LIMIT: usize = 40_000;
pub const WRITE_LIMIT: usize = 512 * 1024;
const LIST_LIMIT: usize = 300;

impl Roots {
    pub fn new(impl_dir: &Path, skills: &Path, registry: &Path) -> anyhow::Result<Roots> {
        let canon = |p: &Path| p.canonicalize().map_err(|e| anyhow::anyhow!("{}: {e}", p.display()));
        let registry = canon(registry)?;
        Ok(Roots {
            impl_dir: canon(impl_dir)?,
            skills: canon(skills)?,
            scaffold: canon(&registry.join("_scaffold"))?,
            registry,
        })
    }

    fn base(&self, area: Area) -> &Path {
        match area {
            Area::Impl => &self.impl_dir,
            Area::Skills => &self.skills,
            Area::Scaffold => &self.scaffold,
            Area::Registry => &self.registry,
        }
    }

    /// Maps a model path to a real one, refusing anything that could leave its area.
    pub fn resolve(&self, raw: &str, write: bool) -> Result<(Area, PathBuf), String> {
        let raw_t = raw.trim();
        if raw_t.contains('\0') {
            return Err("refused: the path contains a NUL byte".into());
        }
        let (area, rest) = [("@skills", Area::Skills), ("@scaffold", Area::Scaffold), ("@registry", Area::Registry)]
            .iter()
            .find_map(|(prefix, area)| {
                let rest = raw_t.strip_prefix(prefix)?;
                (rest.is_empty() || rest.starts_with('/')).then(|| (*area, rest.trim_start_matches('/')))
            })
            .unwrap_or((Area::Impl, raw_t));
        if write && area != Area::Impl {
            return Err(format!("refused: {raw:?} is in {}, which is read-only; you may write only inside your implementation folder", area.label()));
        }
        let mut clean = PathBuf::new();
        for comp in Path::new(rest).components() {
            match comp {
                Component::Normal(c) => {
                    if HIDDEN.contains(&c.to_string_lossy().as_ref()) {
                        return Err(format!("refused: {raw:?} is inside a reserved folder ({})", c.to_string_lossy()));
                    }
                    clean.push(c)
                }
                Component::CurDir => {}
                Component::ParentDir => {
                    return Err(format!("refused: {raw:?} contains `..`; paths must stay inside {}", area.label()));
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(format!(
                        "refused: {raw:?} is an absolute path; use a path relative to your implementation folder, or @skills/, @scaffold/, @registry/"
                    ));
                }
            }
        }
        let base = self.base(area);
        let full = base.join(&clean);
        // Follow whatever exists of the path: a symbolic link anywhere on it must not lead out.
        let mut existing = full.as_path();
        while std::fs::symlink_metadata(existing).is_err() {
            existing = match existing.parent() {
                Some(p) => p,
                None => break,
            };
        }
        let real = existing.canonicalize().map_err(|e| format!("cannot resolve {raw:?}: {e}"))?;
        if !real.starts_with(base) {
            return Err(format!("refused: {raw:?} leads outside {} through a symbolic link", area.label()));
        }
        if write && std::fs::symlink_metadata(&full).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(format!("refused: {raw:?} is a symbolic link; write a regular file instead"));
        }
        Ok((area, full))
    }

    /// Relative display of a real path for the model.
    fn show(&self, area: Area, p: &Path) -> String {
        let rel = p.strip_prefix(self.base(area)).unwrap_or(p).display().to_string();
        match area {
            Area::Impl => if rel.is_empty() { ".".into() } else { rel },
            Area::Skills => format!("@skills/{rel}"),
            Area::Scaffold => format!("@scaffold/{rel}"),
            Area::Registry => format!("@registry/{rel}"),
        }
    }

    pub fn list(&self, raw: &str) -> Result<String, String> {
        let (area, dir) = self.resolve(if raw.trim().is_empty() { "." } else { raw }, false)?;
        if !dir.is_dir() {
            return Err(format!("{raw:?} is not a folder"));
        }
        let mut lines = Vec::new();
        let mut more = 0usize;
        let walker = walkdir::WalkDir::new(&dir)
            .min_depth(1)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| !HIDDEN.contains(&e.file_name().to_string_lossy().as_ref()));
        for entry in walker.flatten() {
            if entry.file_type().is_dir() {
                continue;
            }
            if lines.len() >= LIST_LIMIT {
                more += 1;
                continue;
            }
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            let link = if entry.file_type().is_symlink() { " (symbolic link)" } else { "" };
            lines.push(format!("{} ({size} bytes){link}", self.show(area, entry.path())));
        }
        if lines.is_empty() {
            return Ok(format!("{} is empty", self.show(area, &dir)));
        }
        if more > 0 {
            lines.push(format!("… and {more} more files; list a subfolder to see them"));
        }
        Ok(lines.join("\n"))
    }

    pub fn read(&self, raw: &str, offset: usize, limit: usize) -> Result<String, String> {
        let (_, path) = self.resolve(raw, false)?;
        if path.is_dir() {
            return Err(format!("{raw:?} is a folder; use list_files"));
        }
        let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {raw:?}: {}", io_reason(&e)))?;
        let text = String::from_utf8(bytes).map_err(|_| format!("{raw:?} is not UTF-8 text"))?;
        let total = text.chars().count();
        let limit = limit.clamp(1, READ_LIMIT);
        let chunk: String = text.chars().skip(offset).take(limit).collect();
        let end = offset + chunk.chars().count();
        if offset == 0 && end >= total {
            return Ok(text);
        }
        let note = if end < total {
            format!("\n[characters {offset}..{end} of {total}; call read_file with offset {end} for more]")
        } else {
            format!("\n[characters {offset}..{end} of {total}; end of file]")
        };
        Ok(chunk + &note)
    }

    pub fn write(&self, raw: &str, content: &str) -> Result<String, String> {
        if content.len() > WRITE_LIMIT {
            return Err(format!("refused: {} bytes is over the {WRITE_LIMIT}-byte limit of one file", content.len()));
        }
        let (_, path) = self.resolve(raw, true)?;
        if path == self.impl_dir || path.is_dir() {
            return Err(format!("{raw:?} is a folder; give a file path"));
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create the folder for {raw:?}: {}", io_reason(&e)))?;
        }
        let existed = path.exists();
        std::fs::write(&path, content).map_err(|e| format!("cannot write {raw:?}: {}", io_reason(&e)))?;
        let mut msg = format!("{} {} ({} bytes)", if existed { "replaced" } else { "created" }, self.show(Area::Impl, &path), content.len());
        // Catch broken JSON at once rather than at the next validate.
        if path.extension().is_some_and(|e| e == "json") {
            if let Err(e) = serde_json::from_str::<serde_json::Value>(content) {
                msg.push_str(&format!("\nwarning: this is not valid JSON (line {}, column {}): {e}", e.line(), e.column()));
            }
        }
        Ok(msg)
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots() -> (tempfile::TempDir, Roots) {
        let t = tempfile::tempdir().unwrap();
        let reg = t.path().join("registry");
        let imp = reg.join("acme/v1/me/python/default");
        std::fs::create_dir_all(&imp).unwrap();
        std::fs::create_dir_all(reg.join("_scaffold")).unwrap();
        std::fs::create_dir_all(t.path().join("skills/x")).unwrap();
        std::fs::write(t.path().join("skills/x/SKILL.md"), "skill").unwrap();
        std::fs::write(t.path().join("secret.txt"), "top secret").unwrap();
        let r = Roots::new(&imp, &t.path().join("skills"), &reg).unwrap();
        (t, r)
    }

    #[test]
    fn confinement() {
        let (t, r) = roots();
        assert!(r.write("schemas/a.json", "{}").unwrap().contains("created schemas/a.json"));
        assert!(r.write("../../../../../secret.txt", "x").unwrap_err().contains("`..`"));
        assert!(r.write("/etc/passwd", "x").unwrap_err().contains("absolute"));
        assert!(r.write("@skills/x/SKILL.md", "x").unwrap_err().contains("read-only"));
        assert!(r.write(".factory/transcript.jsonl", "x").unwrap_err().contains("reserved"));
        assert_eq!(r.read("@skills/x/SKILL.md", 0, 100).unwrap(), "skill");
        assert!(r.read("@skills/../secret.txt", 0, 100).is_err());
        // A link planted in the folder cannot lead out, for reading or writing.
        std::os::unix::fs::symlink(t.path(), r.impl_dir.join("out")).unwrap();
        assert!(r.read("out/secret.txt", 0, 100).unwrap_err().contains("symbolic link"));
        assert!(r.write("out/new.txt", "x").unwrap_err().contains("symbolic link"));
        assert!(!t.path().join("new.txt").exists());
        std::os::unix::fs::symlink(t.path().join("secret.txt"), r.impl_dir.join("s.txt")).unwrap();
        assert!(r.write("s.txt", "x").is_err());
        assert_eq!(std::fs::read_to_string(t.path().join("secret.txt")).unwrap(), "top secret");
        assert!(r.write("bad.json", "{").unwrap().contains("not valid JSON"));
        let listing = r.list(".").unwrap();
        assert!(listing.contains("schemas/a.json") && listing.contains("(symbolic link)"), "{listing}");
        assert!(r.list("@skills").unwrap().contains("@skills/x/SKILL.md"));
    }

    #[test]
    fn reads_in_pieces() {
        let (_t, r) = roots();
        r.write("big.txt", &"ab".repeat(100)).unwrap();
        let first = r.read("big.txt", 0, 50).unwrap();
        assert!(first.contains("offset 50"), "{first}");
        let last = r.read("big.txt", 190, 50).unwrap();
        assert!(last.starts_with("ababababab\n") && last.contains("end of file"), "{last}");
    }
}

//! The registry layout: `registry/<connector>/<version>/<author>/<language>/<implementation>/`,
//! with `_meta/` at connector, version and author level and reserved `_`-prefixed folders
//! (`_scaffold`, `_schemas`) at the top.

use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::path::{Path, PathBuf};

pub const LANGUAGES: &[&str] = &["python", "typescript"];
pub const MANIFEST: &str = "connector.json";
/// The SpecReport's JSON Schema, to check reports that come back from CI.
pub const SPEC_REPORT_SCHEMA: &str = include_str!("../registry/_schemas/spec-report.schema.json");

/// Compiled-in copies of the registry's schemas and scaffolds, used when a folder is checked
/// outside a registry (a copied implementation, a generated one in a temp folder).
pub mod embedded {
    pub const SCHEMAS: &[(&str, &str)] = &[
        ("connector-root", include_str!("../registry/_schemas/connector-root.schema.json")),
        ("version", include_str!("../registry/_schemas/version.schema.json")),
        ("author", include_str!("../registry/_schemas/author.schema.json")),
        ("implementation", include_str!("../registry/_schemas/implementation.schema.json")),
        ("scaffold", include_str!("../registry/_schemas/scaffold.schema.json")),
    ];
    pub const SCAFFOLDS: &[(&str, &str)] = &[
        ("meta", include_str!("../registry/_scaffold/meta.json")),
        ("python", include_str!("../registry/_scaffold/python.json")),
        ("typescript", include_str!("../registry/_scaffold/typescript.json")),
    ];
}

/// Where one implementation sits in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImplRef {
    pub connector: String,
    pub version: String,
    pub author: String,
    pub language: String,
    pub implementation: String,
    pub dir: PathBuf,
}

impl ImplRef {
    /// `<connector>/<version>/<author>/<language>/<implementation>`
    pub fn rel_path(&self) -> PathBuf {
        [&self.connector, &self.version, &self.author, &self.language, &self.implementation].iter().collect()
    }
}

#[derive(Debug, Clone)]
pub struct Registry {
    pub root: PathBuf,
}

fn name_of(p: &Path) -> Option<String> {
    p.file_name().map(|n| n.to_string_lossy().into_owned())
}

impl Registry {
    pub fn open(root: &Path) -> Result<Registry> {
        if !root.is_dir() {
            bail!("{} is not a folder", root.display());
        }
        Ok(Registry { root: root.to_path_buf() })
    }

    /// The registry an implementation folder belongs to: five levels up, recognised by its
    /// `_schemas` or `_scaffold` folder. `None` for a folder outside any registry.
    pub fn containing(impl_dir: &Path) -> Option<(Registry, ImplRef)> {
        let dir = impl_dir.canonicalize().ok()?;
        let ancestors: Vec<&Path> = dir.ancestors().take(6).collect();
        if ancestors.len() < 6 {
            return None;
        }
        let root = ancestors[5];
        if !(root.join("_schemas").is_dir() || root.join("_scaffold").is_dir()) {
            return None;
        }
        let r = ImplRef {
            implementation: name_of(ancestors[0])?,
            language: name_of(ancestors[1])?,
            author: name_of(ancestors[2])?,
            version: name_of(ancestors[3])?,
            connector: name_of(ancestors[4])?,
            dir: dir.clone(),
        };
        Some((Registry { root: root.to_path_buf() }, r))
    }

    pub fn schema_path(&self, name: &str) -> PathBuf {
        self.root.join("_schemas").join(format!("{name}.schema.json"))
    }

    pub fn scaffold_path(&self, name: &str) -> PathBuf {
        self.root.join("_scaffold").join(format!("{name}.json"))
    }

    /// Every implementation folder (one holding a manifest) in layout position, sorted.
    pub fn implementations(&self) -> Result<Vec<ImplRef>> {
        let mut found = Vec::new();
        let walker = walkdir::WalkDir::new(&self.root)
            .min_depth(5)
            .max_depth(5)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| {
                // Skip reserved folders (`_meta`, `_scaffold`, ...) and hidden ones at every level.
                e.depth() == 0 || !e.file_name().to_string_lossy().starts_with(['_', '.'])
            });
        for entry in walker {
            let entry = entry.with_context(|| format!("cannot list {}", self.root.display()))?;
            if !entry.file_type().is_dir() || !entry.path().join(MANIFEST).is_file() {
                continue;
            }
            let rel = entry.path().strip_prefix(&self.root).expect("walked below root");
            let parts: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
            found.push(ImplRef {
                connector: parts[0].clone(),
                version: parts[1].clone(),
                author: parts[2].clone(),
                language: parts[3].clone(),
                implementation: parts[4].clone(),
                dir: entry.path().to_path_buf(),
            });
        }
        Ok(found)
    }

    /// Implementations of a connector, matched on the normalised name (`Stripe API` finds
    /// `stripe`), so a request for an existing connector can be answered with a link.
    pub fn find_connector(&self, name: &str) -> Result<Vec<ImplRef>> {
        let wanted = slug(name);
        Ok(self.implementations()?.into_iter().filter(|i| slug(&i.connector) == wanted).collect())
    }
}

/// A connector name as a registry slug: lower-case kebab, with noise words such as "api" and
/// "connector" dropped.
pub fn slug(name: &str) -> String {
    let lowered = name.to_lowercase();
    let words: Vec<&str> = lowered
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty() && !matches!(*w, "api" | "connector" | "rest" | "the"))
        .collect();
    words.join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_drop_noise() {
        assert_eq!(slug("Stripe API"), "stripe");
        assert_eq!(slug("  Google Analytics 4 connector"), "google-analytics-4");
        assert_eq!(slug("open_weather-map"), "open-weather-map");
    }
}

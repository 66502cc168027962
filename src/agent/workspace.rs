//! Session set-up: the connector's `_meta` folders and the language scaffold (with its copied-in
//! runtime) written into the registry before the agent starts, from the scaffolds of the given
//! tree (the default branch). The agent then only writes inside the implementation folder.

use super::AgentRequest;
use crate::scaffold::{Rendered, Scaffold};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the implementation goes.
#[derive(Debug, Clone)]
pub struct ImplIds {
    pub connector: String,
    pub version: String,
    pub author: String,
    pub language: String,
    pub implementation: String,
}

impl ImplIds {
    pub fn rel(&self) -> PathBuf {
        [&self.connector, &self.version, &self.author, &self.language, &self.implementation].iter().collect()
    }
}

/// Writes the scaffolds and fills the `_meta` fields the request answers. Refuses when the
/// implementation folder already holds a manifest (an existing connector is not overwritten).
pub fn prepare(tree: &Path, registry: &Path, ids: &ImplIds, req: &AgentRequest) -> Result<PathBuf> {
    let impl_dir = registry.join(ids.rel());
    if impl_dir.join(crate::registry::MANIFEST).exists() {
        bail!("{} already exists; remove it or choose another --implementation", impl_dir.display());
    }
    let vars: BTreeMap<String, String> = [
        ("connector", &ids.connector),
        ("version", &ids.version),
        ("author", &ids.author),
        ("implementation", &ids.implementation),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.clone()))
    .collect();

    // _meta: only the files that are missing, so a new version or author keeps what exists.
    let meta = Scaffold::load(&tree.join("registry/_scaffold/meta.json"))?;
    let meta_vars: BTreeMap<String, String> = vars.iter().filter(|(k, _)| k.as_str() != "implementation").map(|(k, v)| (k.clone(), v.clone())).collect();
    let meta_vars = meta.resolve_vars(&meta_vars)?;
    let mut meta_files = Vec::new();
    for item in meta.render(&meta_vars)? {
        if let Rendered::File(rel, text) = item {
            let target = registry.join(&rel);
            if !target.exists() {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
                }
                std::fs::write(&target, text).with_context(|| format!("cannot write {}", target.display()))?;
            }
            meta_files.push(target);
        }
    }
    for file in meta_files.iter().filter(|f| f.extension().is_some_and(|e| e == "json")) {
        fill_meta(file, ids, req)?;
    }

    let lang = Scaffold::load(&tree.join("registry/_scaffold").join(format!("{}.json", ids.language)))
        .with_context(|| format!("no scaffold for language {:?}", ids.language))?;
    crate::scaffold::materialize(&lang, &vars, registry, false)?;
    Ok(impl_dir)
}

/// Fills empty fields of a `_meta` JSON file from the request.
fn fill_meta(path: &Path, ids: &ImplIds, req: &AgentRequest) -> Result<()> {
    let text = std::fs::read_to_string(path)?;
    let Ok(mut doc) = serde_json::from_str::<Value>(&text) else { return Ok(()) };
    let description = format!("Reads data from the {} API.", req.name.trim());
    let mut set_if_empty = |ptr: &str, value: Value| {
        if let Some(slot) = doc.pointer_mut(ptr) {
            let empty = match slot {
                Value::String(s) => s.is_empty(),
                Value::Array(a) => a.is_empty(),
                Value::Null => true,
                _ => false,
            };
            if empty {
                *slot = value;
            }
        }
    };
    set_if_empty("/description", json!(description));
    set_if_empty("/languages", json!([ids.language]));
    // The schemas accept only http(s) URLs there.
    if let Some(d) = req.docs_url.as_ref().filter(|d| d.starts_with("https://") || d.starts_with("http://")) {
        set_if_empty("/source/docs", json!(d));
        set_if_empty("/homepage", json!(d));
    }
    if let Some(s) = &req.openapi_url {
        set_if_empty("/source/spec", json!(s));
    }
    if let Some(langs) = doc.get_mut("languages").and_then(Value::as_array_mut) {
        if !langs.iter().any(|l| l == ids.language.as_str()) {
            langs.push(json!(ids.language));
        }
    }
    let mut out = serde_json::to_string_pretty(&doc)?;
    out.push('\n');
    if out != text {
        std::fs::write(path, out)?;
    }
    Ok(())
}

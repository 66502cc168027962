//! Scaffold interpreter: reads the scaffold JSON format (declared `variables` plus a `structure`
//! tree of `dir`/`file` nodes whose names and templates carry `{var}` placeholders) and writes
//! the tree into a folder, never outside it.
//!
//! The same format is produced from a plain template folder by [`pack`], so the templates we
//! maintain (`registry/_scaffold/<name>/`) are edited as ordinary files and shipped as JSON.

pub mod cli;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// A parsed scaffold file. Unknown top-level keys (`$schema`, ...) are kept in `extra` so that
/// [`pack`] and the interpreter agree on what a scaffold is without losing anything.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scaffold {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaffold: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub variables: serde_json::Map<String, Value>,
    pub structure: Vec<Node>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Node {
    Dir {
        name: String,
        #[serde(default)]
        children: Vec<Node>,
    },
    File {
        name: String,
        #[serde(default)]
        template: String,
    },
}

/// One declared variable, read leniently from the JSON (every field is optional in the format).
#[derive(Debug, Clone, Default)]
pub struct Variable {
    pub name: String,
    pub description: Option<String>,
    pub example: Option<String>,
    pub pattern: Option<String>,
    pub default: Option<String>,
}

/// What [`materialize`] wrote, relative to the output folder.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MaterializeReport {
    pub out: PathBuf,
    pub created_dirs: Vec<PathBuf>,
    pub created_files: Vec<PathBuf>,
    pub overwritten_files: Vec<PathBuf>,
    pub unchanged_dirs: Vec<PathBuf>,
}

impl Scaffold {
    pub fn load(path: &Path) -> Result<Scaffold> {
        let text = fs::read_to_string(path)
            .with_context(|| format!("cannot read scaffold file {}", path.display()))?;
        Scaffold::from_json(&text).with_context(|| format!("in scaffold file {}", path.display()))
    }

    pub fn from_json(text: &str) -> Result<Scaffold> {
        let doc: Value = serde_json::from_str(text).context("not valid JSON")?;
        let Value::Object(mut map) = doc else { bail!("a scaffold is a JSON object") };
        let structure = match map.remove("structure") {
            Some(v) => parse_nodes(&v, "structure")?,
            None => bail!("at `structure`: missing; a scaffold needs a `structure` array of dir/file nodes"),
        };
        let variables = match map.remove("variables") {
            None => serde_json::Map::new(),
            Some(Value::Object(vars)) => vars,
            Some(_) => bail!("at `variables`: expected an object of variable declarations"),
        };
        for (name, v) in &variables {
            let Some(decl) = v.as_object() else {
                bail!("at `variables.{name}`: expected an object with description/example/pattern/default");
            };
            for key in ["description", "pattern", "default"] {
                if decl.get(key).is_some_and(|x| !x.is_string() && !x.is_null()) {
                    bail!("at `variables.{name}.{key}`: expected a string");
                }
            }
        }
        let text_field = |map: &mut serde_json::Map<String, Value>, key: &str| -> Result<Option<String>> {
            match map.remove(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(_) => bail!("at `{key}`: expected a string"),
            }
        };
        Ok(Scaffold {
            scaffold: text_field(&mut map, "scaffold")?,
            version: text_field(&mut map, "version")?,
            description: text_field(&mut map, "description")?,
            variables,
            structure,
            extra: map,
        })
    }

    /// The declared variables, in declaration order.
    pub fn variables(&self) -> Vec<Variable> {
        let text = |v: Option<&Value>| match v {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Null) | None => None,
            Some(other) => Some(other.to_string()),
        };
        self.variables
            .iter()
            .map(|(name, v)| Variable {
                name: name.clone(),
                description: text(v.get("description")),
                example: text(v.get("example")),
                pattern: text(v.get("pattern")),
                default: text(v.get("default")),
            })
            .collect()
    }

    /// Check the given values against the declarations: every given name must be declared, every
    /// declared one given or defaulted, and every value must match its pattern. All problems are
    /// reported together so a person can fix them in one go.
    pub fn resolve_vars(&self, given: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
        let declared = self.variables();
        let names: Vec<&str> = declared.iter().map(|v| v.name.as_str()).collect();
        let mut problems = Vec::new();
        for key in given.keys() {
            if !names.contains(&key.as_str()) {
                problems.push(format!(
                    "unknown variable `{key}`: this scaffold declares {}",
                    list_or_none(&names)
                ));
            }
        }
        let mut resolved = BTreeMap::new();
        for var in &declared {
            let value = match given.get(&var.name).or(var.default.as_ref()) {
                Some(v) => v.clone(),
                None => {
                    problems.push(format!(
                        "missing variable `{}`{}: pass --var {}=<value>{}",
                        var.name,
                        describe(var),
                        var.name,
                        var.example.as_ref().map(|e| format!(" (for example {e})")).unwrap_or_default()
                    ));
                    continue;
                }
            };
            if let Some(pattern) = &var.pattern {
                match fancy_regex::Regex::new(pattern) {
                    Ok(re) => {
                        if !re.is_match(&value).unwrap_or(false) {
                            problems.push(format!(
                                "variable `{}` = {:?} does not match the pattern {}{}",
                                var.name,
                                value,
                                pattern,
                                describe(var)
                            ));
                        }
                    }
                    Err(e) => problems.push(format!(
                        "variable `{}` declares an invalid pattern {pattern:?}: {e}",
                        var.name
                    )),
                }
            }
            resolved.insert(var.name.clone(), value);
        }
        if !problems.is_empty() {
            bail!("{}", problems.join("\n"));
        }
        Ok(resolved)
    }

    /// Every file the scaffold would write, as (relative path, contents), in tree order.
    /// Fails on names that would leave the output folder.
    pub fn render(&self, vars: &BTreeMap<String, String>) -> Result<Vec<Rendered>> {
        let mut out = Vec::new();
        render_nodes(&self.structure, vars, &PathBuf::new(), "structure", &mut out)?;
        Ok(out)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Rendered {
    Dir(PathBuf),
    File(PathBuf, String),
}

/// Read a `structure` array by hand so that every error names the exact node
/// (`structure[2].children[0]`), which serde's tagged enums cannot do.
fn parse_nodes(v: &Value, location: &str) -> Result<Vec<Node>> {
    let Some(items) = v.as_array() else { bail!("at `{location}`: expected an array of dir/file nodes") };
    let mut nodes = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let here = format!("{location}[{i}]");
        let Some(obj) = item.as_object() else { bail!("at `{here}`: expected an object with `type` and `name`") };
        let name = match obj.get("name") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => bail!("at `{here}.name`: expected a string"),
            None => bail!("at `{here}`: missing `name`"),
        };
        match obj.get("type").and_then(Value::as_str) {
            Some("dir") => {
                let children = match obj.get("children") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(c) => parse_nodes(c, &format!("{here}.children"))?,
                };
                nodes.push(Node::Dir { name, children });
            }
            Some("file") => {
                let template = match obj.get("template") {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(_) => bail!("at `{here}.template`: expected a string"),
                };
                nodes.push(Node::File { name, template });
            }
            Some(other) => bail!("at `{here}.type`: unknown node type {other:?}; expected \"dir\" or \"file\""),
            None => bail!("at `{here}`: missing `type` (\"dir\" or \"file\")"),
        }
    }
    Ok(nodes)
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() { "no variables".into() } else { names.join(", ") }
}

fn describe(var: &Variable) -> String {
    var.description.as_ref().map(|d| format!(" ({d})")).unwrap_or_default()
}

/// Replace `{name}` where `name` is a known variable; everything else (code braces, JSON,
/// undeclared placeholders) is left exactly as written.
pub fn substitute(template: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}');
        let replaced = close.and_then(|c| {
            let name = &after[..c];
            let ident = !name.is_empty()
                && name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-');
            if ident { vars.get(name).map(|v| (v, c)) } else { None }
        });
        match replaced {
            Some((value, c)) => {
                out.push_str(value);
                rest = &after[c + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A node name after substitution must be one or more plain path components: no `..`, no root,
/// no drive prefix, nothing empty.
fn safe_relative(name: &str, location: &str) -> Result<PathBuf> {
    if name.is_empty() {
        bail!("at `{location}`: empty name");
    }
    if name.contains('\0') || name.contains('\\') {
        bail!("at `{location}`: name {name:?} contains a forbidden character");
    }
    let path = Path::new(name);
    let mut clean = PathBuf::new();
    for comp in path.components() {
        match comp {
            Component::Normal(c) => clean.push(c),
            Component::CurDir => {}
            Component::ParentDir => bail!("at `{location}`: name {name:?} would leave the output folder (`..`)"),
            Component::RootDir | Component::Prefix(_) => {
                bail!("at `{location}`: name {name:?} is absolute; names must be relative")
            }
        }
    }
    if clean.as_os_str().is_empty() {
        bail!("at `{location}`: name {name:?} names no file");
    }
    Ok(clean)
}

fn render_nodes(
    nodes: &[Node],
    vars: &BTreeMap<String, String>,
    base: &Path,
    location: &str,
    out: &mut Vec<Rendered>,
) -> Result<()> {
    for (i, node) in nodes.iter().enumerate() {
        let here = format!("{location}[{i}]");
        match node {
            Node::Dir { name, children } => {
                let path = base.join(safe_relative(&substitute(name, vars), &here)?);
                out.push(Rendered::Dir(path.clone()));
                render_nodes(children, vars, &path, &format!("{here}.children"), out)?;
            }
            Node::File { name, template } => {
                let path = base.join(safe_relative(&substitute(name, vars), &here)?);
                out.push(Rendered::File(path, substitute(template, vars)));
            }
        }
    }
    Ok(())
}

/// Refuse to go through a symlink anywhere below `out`: a link planted in the output folder
/// must not let the scaffold write elsewhere.
fn check_no_symlink(out: &Path, rel: &Path) -> Result<()> {
    let mut cur = out.to_path_buf();
    for comp in rel.components() {
        cur.push(comp);
        if let Ok(meta) = fs::symlink_metadata(&cur) {
            if meta.file_type().is_symlink() {
                bail!("{} is a symbolic link; refusing to write through it", cur.display());
            }
        } else {
            break;
        }
    }
    Ok(())
}

/// Write the scaffold into `out`. Everything is checked before the first byte is written, so a
/// refused run leaves the folder as it was.
pub fn materialize(
    scaffold: &Scaffold,
    vars: &BTreeMap<String, String>,
    out: &Path,
    force: bool,
) -> Result<MaterializeReport> {
    let vars = scaffold.resolve_vars(vars)?;
    let items = scaffold.render(&vars)?;
    let mut report = MaterializeReport { out: out.to_path_buf(), ..Default::default() };

    let mut conflicts = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for item in &items {
        let rel = match item {
            Rendered::Dir(p) | Rendered::File(p, _) => p,
        };
        check_no_symlink(out, rel)?;
        let target = out.join(rel);
        match item {
            Rendered::File(p, _) => {
                if !seen.insert(p.clone()) {
                    bail!("the scaffold writes {} twice", p.display());
                }
                if target.is_dir() {
                    bail!("{} exists and is a folder, but the scaffold writes a file there", target.display());
                }
                if target.exists() && !force {
                    conflicts.push(target.display().to_string());
                }
            }
            Rendered::Dir(_) => {
                if target.exists() && !target.is_dir() {
                    bail!("{} exists and is a file, but the scaffold makes a folder there", target.display());
                }
            }
        }
    }
    if !conflicts.is_empty() {
        bail!(
            "refusing to overwrite existing files (pass --force to replace them):\n  {}",
            conflicts.join("\n  ")
        );
    }

    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for item in items {
        match item {
            Rendered::Dir(rel) => {
                let target = out.join(&rel);
                if target.is_dir() {
                    report.unchanged_dirs.push(rel);
                } else {
                    fs::create_dir_all(&target)
                        .with_context(|| format!("cannot create {}", target.display()))?;
                    report.created_dirs.push(rel);
                }
            }
            Rendered::File(rel, contents) => {
                let target = out.join(&rel);
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent)
                        .with_context(|| format!("cannot create {}", parent.display()))?;
                }
                let existed = target.exists();
                fs::write(&target, contents.as_bytes())
                    .with_context(|| format!("cannot write {}", target.display()))?;
                if existed { report.overwritten_files.push(rel) } else { report.created_files.push(rel) }
            }
        }
    }
    Ok(report)
}

/// Name of the header file inside a template folder: everything but `structure`.
pub const PACK_HEADER: &str = "_scaffold.json";

/// Build a scaffold from a template folder: `_scaffold.json` supplies the header, every other
/// file and folder becomes the structure (sorted by name, so packing is deterministic).
pub fn pack(dir: &Path) -> Result<Scaffold> {
    let header_path = dir.join(PACK_HEADER);
    let header_text = fs::read_to_string(&header_path)
        .with_context(|| format!("a template folder needs {}", header_path.display()))?;
    let mut header: serde_json::Map<String, Value> = serde_json::from_str(&header_text)
        .with_context(|| format!("{} is not a JSON object", header_path.display()))?;
    if header.contains_key("structure") {
        bail!("{} must not contain `structure`; the folder is the structure", header_path.display());
    }
    header.insert("structure".into(), Value::Array(vec![]));
    let mut scaffold: Scaffold = serde_json::from_value(Value::Object(header))
        .with_context(|| format!("in {}", header_path.display()))?;
    scaffold.structure = pack_dir(dir, true)?;
    Ok(scaffold)
}

fn pack_dir(dir: &Path, top: bool) -> Result<Vec<Node>> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    let mut nodes = Vec::new();
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if top && name == PACK_HEADER {
            continue;
        }
        // Build droppings never belong in a scaffold.
        if matches!(name.as_str(), "__pycache__" | "node_modules" | "dist" | "dist-test") || name.ends_with(".pyc") {
            continue;
        }
        let ft = entry.file_type()?;
        if ft.is_symlink() {
            bail!("{} is a symbolic link; scaffolds hold only files and folders", entry.path().display());
        } else if ft.is_dir() {
            nodes.push(Node::Dir { name, children: pack_dir(&entry.path(), false)? });
        } else {
            let template = fs::read_to_string(entry.path())
                .with_context(|| format!("{} is not UTF-8 text", entry.path().display()))?;
            nodes.push(Node::File { name, template });
        }
    }
    Ok(nodes)
}

/// The JSON text a scaffold is stored as: two-space indentation and a final newline.
pub fn to_json(scaffold: &Scaffold) -> Result<String> {
    let mut text = serde_json::to_string_pretty(scaffold)?;
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn substitutes_only_declared_names() {
        let v = vars(&[("connector", "stripe")]);
        assert_eq!(substitute("{connector}/{other} {} {x.y} {connector", &v), "stripe/{other} {} {x.y} {connector");
        assert_eq!(substitute("{{connector}}", &v), "{stripe}");
    }

    #[test]
    fn names_may_not_escape() {
        assert!(safe_relative("../x", "s").is_err());
        assert!(safe_relative("/etc/passwd", "s").is_err());
        assert!(safe_relative("a/../../b", "s").is_err());
        assert!(safe_relative("", "s").is_err());
        assert_eq!(safe_relative("a/b", "s").unwrap(), PathBuf::from("a/b"));
    }
}

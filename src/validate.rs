//! `connector-factory validate`: checks an implementation folder against the registry's
//! schemas (metadata, manifest), meta-validates stream schemas, checks primary keys, cursors
//! and fixtures, and compares the folder layout with what the scaffolds create.
//!
//! Every finding names the file, a JSON pointer inside it and what was expected. Unusable input
//! (a folder with no manifest) is an `Err`, which the CLI turns into exit code 2.

use crate::registry::{ImplRef, MANIFEST, Registry, embedded};
use crate::scaffold::{Rendered, Scaffold};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    /// Implementation folders (registry/<connector>/<version>/<author>/<language>/<implementation>),
    /// or a registry root to check every implementation in it.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Print findings as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// Stable rule id, e.g. `fixtures.invalid_record`.
    pub rule: &'static str,
    pub file: PathBuf,
    /// JSON pointer inside `file` ("" for the whole document).
    pub pointer: String,
    pub message: String,
    pub expected: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{sev}[{}] {}#{}: {}", self.rule, self.file.display(), self.pointer, self.message)?;
        if !self.expected.is_empty() {
            write!(f, " (expected {})", self.expected)?;
        }
        Ok(())
    }
}

/// Collects findings for one implementation.
struct Checker {
    findings: Vec<Finding>,
    schemas: SchemaSource,
}

impl Checker {
    fn add(&mut self, rule: &'static str, file: &Path, pointer: impl Into<String>, message: impl Into<String>, expected: impl Into<String>) {
        self.push(Severity::Error, rule, file, pointer, message, expected);
    }
    fn warn(&mut self, rule: &'static str, file: &Path, pointer: impl Into<String>, message: impl Into<String>, expected: impl Into<String>) {
        self.push(Severity::Warning, rule, file, pointer, message, expected);
    }
    fn push(&mut self, severity: Severity, rule: &'static str, file: &Path, pointer: impl Into<String>, message: impl Into<String>, expected: impl Into<String>) {
        self.findings.push(Finding {
            severity,
            rule,
            file: file.to_path_buf(),
            pointer: pointer.into(),
            message: message.into(),
            expected: expected.into(),
        });
    }

    /// Parse a JSON file, turning a read or syntax error into a finding.
    fn read_json(&mut self, rule: &'static str, file: &Path) -> Option<Value> {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                self.add(rule, file, "", format!("cannot read the file: {e}"), "a readable UTF-8 JSON file");
                return None;
            }
        };
        match serde_json::from_str(&text) {
            Ok(v) => Some(v),
            Err(e) => {
                self.add(rule, file, "", format!("not valid JSON at line {}, column {}: {e}", e.line(), e.column()), "valid JSON");
                None
            }
        }
    }

    /// Validate `doc` against one of the registry schemas, one finding per violation.
    fn against_schema(&mut self, rule: &'static str, file: &Path, doc: &Value, schema_name: &str) {
        let validator = match self.schemas.validator(schema_name) {
            Ok(v) => v,
            Err(e) => {
                self.add(rule, file, "", format!("cannot load the {schema_name} schema: {e:#}"), "a usable registry/_schemas");
                return;
            }
        };
        let errors: Vec<(String, String, String)> = validator
            .iter_errors(doc)
            .map(|e| (e.instance_path().to_string(), e.to_string(), describe_expectation(&e)))
            .collect();
        for (pointer, message, expected) in errors {
            self.add(rule, file, pointer, message, expected);
        }
    }
}

/// A short phrase for what the schema wanted, from the failing keyword.
fn describe_expectation(e: &jsonschema::ValidationError<'_>) -> String {
    format!("to satisfy `{}` at schema path {}", e.kind().keyword(), e.schema_path())
}

/// Schemas come from the implementation's own registry when it has them (so a change to
/// `registry/_schemas` takes effect at once), else from the copies compiled into the binary.
struct SchemaSource {
    registry: Option<Registry>,
    cache: HashMap<String, std::sync::Arc<jsonschema::Validator>>,
}

impl SchemaSource {
    fn text(&self, name: &str) -> Result<String> {
        if let Some(reg) = &self.registry {
            let path = reg.schema_path(name);
            if path.is_file() {
                return std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()));
            }
        }
        embedded::SCHEMAS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t.to_string())
            .with_context(|| format!("no schema named {name}"))
    }

    fn validator(&mut self, name: &str) -> Result<std::sync::Arc<jsonschema::Validator>> {
        if let Some(v) = self.cache.get(name) {
            return Ok(v.clone());
        }
        let schema: Value = serde_json::from_str(&self.text(name)?).with_context(|| format!("schema {name} is not JSON"))?;
        let v = std::sync::Arc::new(
            jsonschema::options()
                .should_validate_formats(true)
                .build(&schema)
                .map_err(|e| anyhow::anyhow!("schema {name} does not compile: {e}"))?,
        );
        self.cache.insert(name.to_string(), v.clone());
        Ok(v)
    }

    fn scaffold(&self, name: &str) -> Result<Option<Scaffold>> {
        if let Some(reg) = &self.registry {
            let path = reg.scaffold_path(name);
            if path.is_file() {
                return Scaffold::load(&path).map(Some);
            }
        }
        match embedded::SCAFFOLDS.iter().find(|(n, _)| *n == name) {
            Some((_, text)) => Scaffold::from_json(text).map(Some),
            None => Ok(None),
        }
    }
}

/// Where the registry's known drafts are declared; anything else in `$schema` is refused
/// rather than fetched.
const KNOWN_DRAFTS: &[&str] = &[
    "https://json-schema.org/draft/2020-12/schema",
    "https://json-schema.org/draft/2019-09/schema",
    "http://json-schema.org/draft-07/schema",
    "http://json-schema.org/draft-06/schema",
    "http://json-schema.org/draft-04/schema",
];

/// Collect every `$ref` that does not point inside the same document.
fn remote_refs(v: &Value, pointer: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let p = format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1"));
                if (k == "$ref" || k == "$dynamicRef") && child.as_str().is_some_and(|r| !r.starts_with('#')) {
                    out.push((p.clone(), child.as_str().unwrap_or_default().to_string()));
                }
                remote_refs(child, &p, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                remote_refs(child, &format!("{pointer}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Validate one implementation folder. `Err` means the input is unusable (no such folder, no
/// manifest); everything else is a finding.
pub fn validate_implementation(dir: &Path) -> Result<Vec<Finding>> {
    if !dir.is_dir() {
        bail!("{} is not a folder", dir.display());
    }
    let manifest_path = dir.join(MANIFEST);
    if !manifest_path.is_file() {
        bail!(
            "{} has no {MANIFEST}; an implementation folder is registry/<connector>/<version>/<author>/<language>/<implementation>/ with a {MANIFEST} manifest",
            dir.display()
        );
    }
    let placed = Registry::containing(dir);
    let mut ck = Checker {
        findings: Vec::new(),
        schemas: SchemaSource { registry: placed.as_ref().map(|(r, _)| r.clone()), cache: HashMap::new() },
    };

    let manifest = ck.read_json("manifest.parse", &manifest_path);
    if let Some(m) = &manifest {
        ck.against_schema("manifest.schema", &manifest_path, m, "implementation");
    }

    match &placed {
        Some((reg, r)) => check_registry_layout(&mut ck, reg, r, manifest.as_ref(), &manifest_path),
        None => ck.warn(
            "layout.outside_registry",
            dir,
            "",
            "this folder is not inside a registry, so its _meta folders and folder names were not checked",
            "registry/<connector>/<version>/<author>/<language>/<implementation>/ next to registry/_schemas",
        ),
    }

    if let Some(m) = &manifest {
        check_scaffold_files(&mut ck, dir, m);
        check_streams(&mut ck, dir, &manifest_path, m);
        if let Some(hooks) = m.get("hooks").and_then(Value::as_str) {
            if !dir.join(hooks).is_file() {
                ck.add("hooks.missing", &manifest_path, "/hooks", format!("the hooks file {hooks} does not exist"), "a file in the implementation folder");
            }
        }
        // With a build step, the run command names build output (git-ignored), not a source file.
        let has_build = m.pointer("/run/build").and_then(Value::as_array).is_some_and(|b| !b.is_empty());
        if let Some(cmd) = m.pointer("/run/command").and_then(Value::as_array).filter(|_| !has_build) {
            for (i, arg) in cmd.iter().enumerate().skip(1) {
                let Some(a) = arg.as_str() else { continue };
                let looks_like_file = [".py", ".js", ".mjs", ".cjs", ".ts"].iter().any(|ext| a.ends_with(ext));
                if looks_like_file && !a.starts_with('/') && !dir.join(a).is_file() {
                    ck.add("run.missing_file", &manifest_path, format!("/run/command/{i}"), format!("the run command names {a}, which does not exist"), "a file in the implementation folder");
                }
            }
        }
    }
    Ok(ck.findings)
}

/// Folder names, the `_meta` files the meta scaffold creates and their schemas, and agreement
/// between folder names and what the metadata says.
fn check_registry_layout(ck: &mut Checker, reg: &Registry, r: &ImplRef, manifest: Option<&Value>, manifest_path: &Path) {
    let meta = match ck.schemas.scaffold("meta") {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => {
            ck.add("layout.scaffold", &reg.scaffold_path("meta"), "", format!("cannot read the meta scaffold: {e:#}"), "a valid scaffold file");
            return;
        }
    };
    let names = [("connector", &r.connector, 4), ("version", &r.version, 3), ("author", &r.author, 2)];
    let given: BTreeMap<String, String> = names.iter().map(|(k, v, _)| (k.to_string(), v.to_string())).collect();
    if let Err(e) = meta.resolve_vars(&given) {
        for line in e.to_string().lines() {
            ck.add("layout.name", &r.dir, "", format!("folder names do not fit the registry layout: {line}"), "names matching the meta scaffold's variable patterns");
        }
        return;
    }
    if !crate::registry::LANGUAGES.contains(&r.language.as_str()) {
        ck.add("layout.language", &r.dir, "", format!("the language folder is {:?}", r.language), format!("one of {}", crate::registry::LANGUAGES.join(", ")));
    }
    let rendered = match meta.render(&given) {
        Ok(items) => items,
        Err(e) => {
            ck.add("layout.scaffold", &reg.scaffold_path("meta"), "", format!("{e:#}"), "a scaffold whose names stay inside the registry");
            return;
        }
    };
    for item in rendered {
        let Rendered::File(rel, _) = item else { continue };
        let path = reg.root.join(&rel);
        if !path.is_file() {
            ck.add("layout.missing_file", &path, "", "missing: the meta scaffold creates this file", "the file to exist (run `connector-factory scaffold registry/_scaffold/meta.json ...`)");
            continue;
        }
        let schema = match (rel.iter().count(), rel.file_name().and_then(|n| n.to_str())) {
            (3, Some("connector.json")) => "connector-root",
            (4, Some("version.json")) => "version",
            (5, Some("connector.json")) => "author",
            _ => continue,
        };
        let Some(doc) = ck.read_json("meta.parse", &path) else { continue };
        ck.against_schema("meta.schema", &path, &doc, schema);
        let mut expect = |ptr: &str, want: &str| {
            if let Some(got) = doc.pointer(ptr).and_then(Value::as_str) {
                if got != want {
                    ck.add("meta.mismatch", &path, ptr, format!("says {got:?}, but the folder is {want:?}"), format!("{want:?}"));
                }
            }
        };
        match schema {
            "connector-root" => expect("/identifier", &r.connector),
            "version" => {
                expect("/name", &r.connector);
                expect("/version", &r.version);
            }
            _ => {
                expect("/identifier", &r.connector);
                expect("/author", &r.author);
                expect("/version", &r.version);
                let langs: Vec<&str> = doc.get("languages").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
                if doc.get("languages").is_some() && !langs.contains(&r.language.as_str()) {
                    ck.add("meta.mismatch", &path, "/languages", format!("does not list {:?}, but an implementation exists in that language", r.language), format!("an array containing {:?}", r.language));
                }
            }
        }
    }
    if let Some(m) = manifest {
        let fields = [("name", &r.connector), ("version", &r.version), ("author", &r.author), ("language", &r.language), ("implementation", &r.implementation)];
        for (field, want) in fields {
            if let Some(got) = m.get(field).and_then(Value::as_str) {
                if got != want.as_str() {
                    ck.add("manifest.mismatch", manifest_path, format!("/{field}"), format!("says {got:?}, but the folder says {want:?}"), format!("{want:?}"));
                }
            }
        }
    }
}

/// The files the language scaffold puts in an implementation must all be there (their content
/// is the connector's own to change).
fn check_scaffold_files(ck: &mut Checker, dir: &Path, m: &Value) {
    let Some(lang) = m.get("language").and_then(Value::as_str) else { return };
    let scaffold = match ck.schemas.scaffold(lang) {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => {
            ck.add("layout.scaffold", dir, "", format!("cannot read the {lang} scaffold: {e:#}"), "a valid scaffold file");
            return;
        }
    };
    // Render with placeholder values: only the part below the implementation folder matters.
    let vars: BTreeMap<String, String> = scaffold
        .variables()
        .into_iter()
        .map(|v| {
            let value = v.default.clone().or(v.example.clone()).unwrap_or_else(|| v.name.clone());
            (v.name, value)
        })
        .collect();
    let Ok(items) = scaffold.render(&vars) else { return };
    let prefix: PathBuf = ["connector", "version", "author"]
        .iter()
        .map(|k| vars.get(*k).cloned().unwrap_or_default())
        .chain([lang.to_string(), vars.get("implementation").cloned().unwrap_or_default()])
        .collect();
    for item in items {
        let Rendered::File(rel, _) = item else { continue };
        let Ok(inside) = rel.strip_prefix(&prefix) else { continue };
        if !dir.join(inside).is_file() {
            ck.add("layout.missing_file", &dir.join(inside), "", format!("missing: the {lang} scaffold creates this file"), "the file to exist (copy it from the scaffold)");
        }
    }
}

fn check_streams(ck: &mut Checker, dir: &Path, manifest_path: &Path, m: &Value) {
    let Some(streams) = m.get("streams").and_then(Value::as_array) else { return };
    let mut names = BTreeSet::new();
    for (i, stream) in streams.iter().enumerate() {
        let base = format!("/streams/{i}");
        if let Some(name) = stream.get("name").and_then(Value::as_str) {
            if !names.insert(name.to_string()) {
                ck.add("manifest.duplicate_stream", manifest_path, format!("{base}/name"), format!("stream {name:?} is declared twice"), "unique stream names");
            }
        }
        let Some(schema_rel) = stream.get("schema").and_then(Value::as_str) else { continue };
        let schema_path = dir.join(schema_rel);
        if !schema_path.is_file() {
            ck.add("stream_schema.missing", manifest_path, format!("{base}/schema"), format!("{schema_rel} does not exist"), "a JSON Schema file in the implementation folder");
            continue;
        }
        let Some(schema) = ck.read_json("stream_schema.parse", &schema_path) else { continue };
        let Some(validator) = check_stream_schema(ck, &schema_path, &schema) else { continue };
        let props: Vec<String> = schema.get("properties").and_then(Value::as_object).map(|p| p.keys().cloned().collect()).unwrap_or_default();
        let keys: Vec<String> = stream.get("primary_key").and_then(Value::as_array).map(|a| a.iter().filter_map(|k| k.as_str().map(String::from)).collect()).unwrap_or_default();
        for (j, key) in keys.iter().enumerate() {
            if !props.contains(key) {
                ck.add("primary_key.missing", manifest_path, format!("{base}/primary_key/{j}"), format!("primary key {key:?} is not a property of {schema_rel}"), format!("one of: {}", props.join(", ")));
            }
        }
        if let Some(cursor) = stream.pointer("/incremental/cursor_field").and_then(Value::as_str) {
            if !props.iter().any(|p| p == cursor) {
                ck.add("cursor.missing", manifest_path, format!("{base}/incremental/cursor_field"), format!("cursor field {cursor:?} is not a property of {schema_rel}"), format!("one of: {}", props.join(", ")));
            }
        }
        if let Some(fixtures_rel) = stream.get("fixtures").and_then(Value::as_str) {
            // A key the schema lacks was reported above; repeating it for every record is noise.
            let known_keys: Vec<String> = keys.iter().filter(|k| props.contains(k)).cloned().collect();
            check_fixtures(ck, dir, manifest_path, &base, fixtures_rel, &validator, &known_keys);
        }
    }
}

/// Meta-validate a stream schema and compile it (formats on, no remote references).
fn check_stream_schema(ck: &mut Checker, path: &Path, schema: &Value) -> Option<jsonschema::Validator> {
    if !schema.is_object() {
        ck.add("stream_schema.invalid", path, "", "a stream schema must be a JSON object", "a JSON Schema object with type \"object\"");
        return None;
    }
    if let Some(draft) = schema.get("$schema").and_then(Value::as_str) {
        if !KNOWN_DRAFTS.contains(&draft.trim_end_matches('#')) {
            ck.add("stream_schema.invalid", path, "/$schema", format!("unknown meta-schema {draft:?}"), format!("one of {}", KNOWN_DRAFTS.join(", ")));
            return None;
        }
    }
    let mut remote = Vec::new();
    remote_refs(schema, "", &mut remote);
    if !remote.is_empty() {
        for (ptr, target) in remote {
            ck.add("stream_schema.remote_ref", path, ptr, format!("reference {target:?} points outside the file; remote references are not resolved"), "a local reference such as #/$defs/name");
        }
        return None;
    }
    let mut meta_ok = true;
    match jsonschema::meta::validator_for(schema) {
        Ok(meta) => {
            for e in meta.iter_errors(schema) {
                meta_ok = false;
                ck.add("stream_schema.invalid", path, e.instance_path().to_string(), format!("not a valid JSON Schema: {e}"), describe_expectation(&e));
            }
        }
        Err(e) => {
            ck.add("stream_schema.invalid", path, "", format!("cannot find its meta-schema: {e}"), "a JSON Schema draft this tool knows");
            return None;
        }
    }
    if !meta_ok {
        return None;
    }
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        let is_object_union = schema.get("type").and_then(Value::as_array).is_some_and(|t| t.iter().any(|x| x == "object"));
        if !is_object_union {
            ck.add("stream_schema.not_object", path, "/type", "records are JSON objects, but the schema does not say type \"object\"", "\"type\": \"object\"");
        }
    }
    match jsonschema::options().should_validate_formats(true).build(schema) {
        Ok(v) => Some(v),
        Err(e) => {
            ck.add("stream_schema.invalid", path, e.instance_path().to_string(), format!("does not compile: {e}"), "a schema the validator can compile");
            None
        }
    }
}

fn check_fixtures(
    ck: &mut Checker,
    dir: &Path,
    manifest_path: &Path,
    base: &str,
    fixtures_rel: &str,
    validator: &jsonschema::Validator,
    keys: &[String],
) {
    let path = dir.join(fixtures_rel);
    if !path.is_file() {
        ck.add("fixtures.missing", manifest_path, format!("{base}/fixtures"), format!("{fixtures_rel} does not exist"), "a JSON array of sample records");
        return;
    }
    let Some(doc) = ck.read_json("fixtures.parse", &path) else { return };
    let Some(records) = doc.as_array() else {
        ck.add("fixtures.not_array", &path, "", "fixtures must be a JSON array of records", "a JSON array");
        return;
    };
    if records.is_empty() {
        ck.add("fixtures.empty", &path, "", "no sample records", "at least one record (three or more make better mock pages)");
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, record) in records.iter().enumerate() {
        if !record.is_object() {
            ck.add("fixtures.invalid_record", &path, format!("/{i}"), "a record must be a JSON object", "an object");
            continue;
        }
        let errors: Vec<(String, String, String)> = validator
            .iter_errors(record)
            .map(|e| (format!("/{i}{}", e.instance_path()), e.to_string(), describe_expectation(&e)))
            .collect();
        for (ptr, msg, expected) in errors {
            ck.add("fixtures.invalid_record", &path, ptr, format!("does not match the stream schema: {msg}"), expected);
        }
        let mut key_parts = Vec::new();
        for key in keys {
            match record.get(key) {
                None | Some(Value::Null) => ck.add("fixtures.missing_key", &path, format!("/{i}"), format!("record has no value for primary key {key:?}"), format!("a non-null {key:?}")),
                Some(v) => key_parts.push(v.to_string()),
            }
        }
        if key_parts.len() == keys.len() && !keys.is_empty() {
            let k = key_parts.join("|");
            if let Some(first) = seen.insert(k.clone(), i) {
                ck.add("fixtures.duplicate_key", &path, format!("/{i}"), format!("same primary key {k} as record {first}"), "unique primary keys");
            }
        }
    }
}

/// The implementation folders named on the command line: a registry root (with `_schemas`)
/// stands for every implementation in it.
fn expand_dirs(dirs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for dir in dirs {
        if !dir.join(MANIFEST).exists() && dir.join("_schemas").is_dir() {
            let found = Registry::open(dir)?.implementations()?;
            if found.is_empty() {
                bail!("the registry {} holds no implementations", dir.display());
            }
            out.extend(found.into_iter().map(|i| i.dir));
        } else {
            out.push(dir.clone());
        }
    }
    Ok(out)
}

pub fn run(args: ValidateArgs) -> Result<u8> {
    let mut all = Vec::new();
    for dir in expand_dirs(&args.dirs)? {
        let findings = validate_implementation(&dir)?;
        all.push((dir, findings));
    }
    let errors: usize = all.iter().map(|(_, f)| f.iter().filter(|x| x.severity == Severity::Error).count()).sum();
    let warnings: usize = all.iter().map(|(_, f)| f.iter().filter(|x| x.severity == Severity::Warning).count()).sum();
    if args.json {
        let out = serde_json::json!({
            "errors": errors,
            "warnings": warnings,
            "implementations": all.iter().map(|(d, f)| serde_json::json!({"dir": d, "findings": f})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for (dir, findings) in &all {
            if findings.is_empty() {
                println!("ok {}", dir.display());
            }
            for f in findings {
                println!("{f}");
            }
        }
        println!("{} implementation(s): {errors} error(s), {warnings} warning(s)", all.len());
    }
    Ok(if errors > 0 { 1 } else { 0 })
}

//! The builtin generator: an OpenAPI description in, a connector implementation out, in Python
//! (the default) or TypeScript.
//!
//! It materialises the `_meta` scaffold and the language's scaffold (`python` or `typescript`),
//! then fills the manifest from the
//! detection heuristics of [`crate::openapi::detect`], writes one JSON Schema (draft 2020-12)
//! and one fixture file per stream, and records what it guessed (and how sure it was) in
//! `docs/detection.md` and in the manifest's `detection` / `notes`.

use crate::openapi::Spec;
use crate::openapi::detect::{self, Detected, StreamDetection};
use crate::openapi::resolve::{deref, ref_of};
use crate::request::{ConnectorRequest, Language};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

/// Below this confidence a guess is reported as unsure.
pub const UNSURE_BELOW: f64 = 0.6;

#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// OpenAPI / Swagger description (file or http(s) URL).
    #[arg(long)]
    pub openapi: Option<String>,
    /// Connector name (kebab-case slug).
    #[arg(long)]
    pub name: Option<String>,
    /// Streams to generate, comma-separated: stream names, operationIds or "GET /path".
    /// Without it, up to --max-streams collection endpoints are picked by ranking.
    #[arg(long, value_delimiter = ',')]
    pub streams: Vec<String>,
    /// Registry folder to write into.
    #[arg(long, default_value = "registry")]
    pub out: PathBuf,
    /// GitHub handle of the implementation's author.
    #[arg(long, default_value = "connector-factory")]
    pub author: String,
    /// The API's version label (default: from the base URL or the description).
    #[arg(long)]
    pub version: Option<String>,
    /// Implementation folder name.
    #[arg(long, default_value = "default")]
    pub implementation: String,
    /// Language of the implementation: which scaffold and runtime it is built on.
    #[arg(long, default_value = "python", value_parser = ["python", "typescript"])]
    pub language: String,
    /// How many streams to pick without --streams.
    #[arg(long, default_value_t = 5)]
    pub max_streams: usize,
    /// Replace an existing implementation folder's files.
    #[arg(long)]
    pub force: bool,
    /// Folder holding meta.json and the language's scaffold, python.json or typescript.json
    /// (default: <out>/_scaffold, else ./registry/_scaffold).
    #[arg(long)]
    pub scaffolds: Option<PathBuf>,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Library entry point options.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub openapi: String,
    pub name: String,
    pub streams: Vec<String>,
    pub out: PathBuf,
    pub author: String,
    pub version: Option<String>,
    pub implementation: String,
    /// Which scaffold and runtime the implementation is built on.
    pub language: Language,
    pub max_streams: usize,
    pub force: bool,
    pub scaffolds: Option<PathBuf>,
}

impl GenerateOptions {
    pub fn new(
        openapi: impl Into<String>,
        name: impl Into<String>,
        out: impl Into<PathBuf>,
    ) -> Self {
        GenerateOptions {
            openapi: openapi.into(),
            name: name.into(),
            streams: Vec::new(),
            out: out.into(),
            author: "connector-factory".into(),
            version: None,
            implementation: "default".into(),
            language: Language::Python,
            max_streams: 5,
            force: false,
            scaffolds: None,
        }
    }

    /// The options for a connector request from an issue: its slug, OpenAPI URL, streams and
    /// language. `None` when the request names no OpenAPI description (the builtin generator
    /// needs one).
    pub fn from_request(request: &ConnectorRequest, out: impl Into<PathBuf>) -> Option<Self> {
        let openapi = request.openapi_url.clone()?;
        let mut opts = GenerateOptions::new(openapi, request.slug.clone(), out);
        opts.streams = request.streams.clone();
        opts.language = request.language;
        Some(opts)
    }
}

/// The language's folder name in the registry and the name of its scaffold (`<name>.json`).
pub fn language_dir(language: Language) -> &'static str {
    match language {
        Language::Python => "python",
        Language::Typescript => "typescript",
    }
}

/// The inverse of [`language_dir`].
pub fn parse_language(text: &str) -> Option<Language> {
    [Language::Python, Language::Typescript]
        .into_iter()
        .find(|l| language_dir(*l) == text)
}

/// What [`generate`] produced.
#[derive(Debug, Clone, Serialize)]
pub struct GenerateOutcome {
    /// The implementation folder.
    pub impl_dir: PathBuf,
    pub connector: String,
    pub version: String,
    pub streams: Vec<StreamSummary>,
    pub base_url: String,
    pub auth: String,
    /// Guesses below [`UNSURE_BELOW`], one line each.
    pub unsure: Vec<String>,
    /// Problems found while writing (fixtures that did not validate, skipped candidates, ...).
    pub warnings: Vec<String>,
    /// Files written, relative to the registry folder.
    pub files: Vec<PathBuf>,
    /// The manifest as written.
    #[serde(skip)]
    pub manifest: Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamSummary {
    pub name: String,
    pub path: String,
    pub pagination: String,
    pub primary_key: Vec<String>,
    pub incremental: bool,
}

pub fn run(args: GenerateArgs) -> Result<u8> {
    let Some(openapi) = args.openapi else {
        bail!("--openapi <file|url> is required")
    };
    let Some(name) = args.name else {
        bail!("--name <slug> is required")
    };
    let Some(language) = parse_language(&args.language) else {
        bail!(
            "--language must be python or typescript, not `{}`",
            args.language
        )
    };
    let opts = GenerateOptions {
        openapi,
        name,
        streams: args
            .streams
            .into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        out: args.out,
        author: args.author,
        version: args.version,
        implementation: args.implementation,
        language,
        max_streams: args.max_streams,
        force: args.force,
        scaffolds: args.scaffolds,
    };
    let outcome = generate(&opts)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        println!("generated {}", outcome.impl_dir.display());
        println!("  base_url {}  auth {}", outcome.base_url, outcome.auth);
        for s in &outcome.streams {
            println!(
                "  stream {:<28} {:<40} pagination {:<12} pk {}{}",
                s.name,
                s.path,
                s.pagination,
                s.primary_key.join(","),
                if s.incremental { "  incremental" } else { "" }
            );
        }
        for u in &outcome.unsure {
            println!("  unsure: {u}");
        }
        for w in &outcome.warnings {
            eprintln!("  warning: {w}");
        }
    }
    Ok(0)
}

fn slug_ok(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
}

fn version_ok(s: &str) -> bool {
    let mut cs = s.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphanumeric())
        && cs.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && s.len() <= 40
}

/// The API version label: a `/vN` segment of the base URL, else `info.version` when it is a
/// clean label, else `v1`.
pub fn version_label(spec: &Spec, base_url: &str) -> String {
    let path = base_url
        .split("://")
        .nth(1)
        .and_then(|r| r.split_once('/'))
        .map(|(_, p)| p)
        .unwrap_or("");
    for seg in path.split('/') {
        let s = seg.to_ascii_lowercase();
        if s.len() >= 2
            && s.starts_with('v')
            && s[1..].chars().all(|c| c.is_ascii_digit() || c == '.')
        {
            return s;
        }
    }
    match spec.api_version() {
        Some(v) if version_ok(&v) => v,
        _ => "v1".into(),
    }
}

/// Where the scaffold JSON files (`meta.json` and the language's) are.
fn scaffold_dir(opts: &GenerateOptions) -> Result<PathBuf> {
    let lang_file = format!("{}.json", language_dir(opts.language));
    let mut candidates = Vec::new();
    if let Some(d) = &opts.scaffolds {
        candidates.push(d.clone());
    }
    candidates.push(opts.out.join("_scaffold"));
    candidates.push(PathBuf::from("registry/_scaffold"));
    candidates.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("registry/_scaffold"));
    for c in &candidates {
        if c.join(&lang_file).is_file() && c.join("meta.json").is_file() {
            return Ok(c.clone());
        }
    }
    bail!(
        "no scaffolds (meta.json, {lang_file}) found in {}",
        candidates
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Generate a connector implementation from an OpenAPI description.
pub fn generate(opts: &GenerateOptions) -> Result<GenerateOutcome> {
    if !slug_ok(&opts.name) {
        bail!("--name `{}` must be kebab-case (a-z, 0-9, -)", opts.name);
    }
    let spec = Spec::load(&opts.openapi).with_context(|| format!("loading {}", opts.openapi))?;
    let mut warnings = Vec::new();
    let mut unsure = Vec::new();

    // ---- what the whole API looks like
    let base = detect::base_url(&spec);
    let mut base_url = base.value.clone();
    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
        warnings.push(format!("no absolute base URL in the description (`{base_url}`); wrote a placeholder, set it in the manifest or the config"));
        base_url = format!(
            "https://api.example.com{}",
            if base_url.starts_with('/') {
                base_url.as_str()
            } else {
                ""
            }
        );
    }
    if base.confidence < UNSURE_BELOW {
        unsure.push(format!("base URL `{base_url}` ({:.2})", base.confidence));
    }
    let auth = detect::auth(&spec);
    let (auth_json, auth_conf, auth_note) = manifest_auth(&auth);
    if let Some(n) = &auth_note {
        warnings.push(n.clone());
    }
    if auth_conf < UNSURE_BELOW {
        unsure.push(format!(
            "auth `{}` ({auth_conf:.2})",
            auth_json["type"].as_str().unwrap_or("")
        ));
    }
    let version = match &opts.version {
        Some(v) if version_ok(v) => v.clone(),
        Some(v) => bail!("--version `{v}` is not a valid label (letters, digits, . _ -)"),
        None => version_label(&spec, &base_url),
    };

    // ---- which streams
    let streams = choose_streams(&spec, opts, &mut warnings)?;
    if streams.is_empty() {
        bail!(
            "no collection endpoint usable as a stream in {} (GET operations returning a list of objects with an identifier); pass --streams to choose operations",
            opts.openapi
        );
    }

    // ---- scaffolds
    let sdir = scaffold_dir(opts)?;
    let mut vars = BTreeMap::new();
    vars.insert("connector".to_string(), opts.name.clone());
    vars.insert("version".to_string(), version.clone());
    vars.insert("author".to_string(), opts.author.clone());
    let meta = crate::scaffold::Scaffold::load(&sdir.join("meta.json"))?;
    let lang = language_dir(opts.language);
    let lang_scaffold = crate::scaffold::Scaffold::load(&sdir.join(format!("{lang}.json")))?;
    let impl_rel = PathBuf::from(&opts.name)
        .join(&version)
        .join(&opts.author)
        .join(lang)
        .join(&opts.implementation);
    let impl_dir = opts.out.join(&impl_rel);
    if impl_dir.join("connector.json").exists() && !opts.force {
        bail!(
            "{} already exists (pass --force to regenerate it)",
            impl_dir.display()
        );
    }
    let mut files: Vec<PathBuf> = Vec::new();
    // meta folders: written only where they do not exist yet (they may belong to other versions)
    let staging = tempfile::tempdir()?;
    crate::scaffold::materialize(&meta, &vars, staging.path(), true)?;
    for entry in walkdir::WalkDir::new(staging.path())
        .into_iter()
        .filter_map(|e| e.ok())
    {
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry.path().strip_prefix(staging.path())?.to_path_buf();
        let target = opts.out.join(&rel);
        if target.exists() {
            // The author's metadata may already exist for another language: list this one too.
            if is_author_meta(&rel) && add_language(&target, lang)? {
                files.push(rel);
            }
            continue;
        }
        if let Some(p) = target.parent() {
            std::fs::create_dir_all(p)?;
        }
        let mut text = std::fs::read_to_string(entry.path())?;
        if rel.extension().map(|e| e == "json").unwrap_or(false) {
            text = fill_meta(&text, &spec, &opts.openapi, lang);
        }
        std::fs::write(&target, text)?;
        files.push(rel);
    }
    let mut pvars = vars.clone();
    pvars.insert("implementation".to_string(), opts.implementation.clone());
    let report = crate::scaffold::materialize(&lang_scaffold, &pvars, &opts.out, opts.force)?;
    files.extend(report.created_files.iter().cloned());
    files.extend(report.overwritten_files.iter().cloned());

    // ---- manifest, schemas, fixtures
    let template: Value =
        serde_json::from_str(&std::fs::read_to_string(impl_dir.join("connector.json"))?)
            .context("the scaffold's connector.json is not JSON")?;
    let mut manifest = template.as_object().cloned().unwrap_or_default();
    let title = spec.title().unwrap_or(&opts.name).to_string();
    let stream_names: Vec<String> = streams.iter().map(|s| s.name.clone()).collect();
    let api = if title.to_ascii_lowercase().ends_with("api") {
        title.clone()
    } else {
        format!("{title} API")
    };
    manifest.insert(
        "description".into(),
        json!(format!(
            "{} from the {api} ({} streams).",
            stream_names.join(", "),
            streams.len()
        )),
    );
    manifest.insert("base_url".into(), json!(base_url));
    manifest.insert("auth".into(), auth_json.clone());
    manifest.entry("headers").or_insert(json!({}));
    let page_size = streams
        .iter()
        .filter_map(|s| s.page_size)
        .filter(|n| *n >= 1)
        .min();
    let mut defaults = manifest
        .get("defaults")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(ps) = page_size {
        defaults.insert("page_size".into(), json!(ps));
    }
    defaults.entry("timeout_seconds").or_insert(json!(30));
    manifest.insert("defaults".into(), Value::Object(defaults));

    let mut stream_entries = Vec::new();
    let mut summaries = Vec::new();
    let mut detection_streams = Map::new();
    std::fs::create_dir_all(impl_dir.join("schemas"))?;
    std::fs::create_dir_all(impl_dir.join("tests/fixtures"))?;
    for s in &streams {
        let (entry, det, stream_unsure) = stream_entry(&spec, s, &mut warnings);
        unsure.extend(stream_unsure);
        let per_stream = (MAX_CATALOG_BYTES / streams.len()).min(MAX_SCHEMA_BYTES);
        let (mut schema, cut) = json_schema_within(
            &spec,
            &s.collection.value.item_schema,
            &format!("{} record", s.name),
            per_stream,
        );
        if let Some(d) = cut {
            warnings.push(format!("stream {}: schema cut below nesting depth {d} (deeper values keep only their type) to stay under {per_stream} bytes", s.name));
        }
        ensure_properties(
            &mut schema,
            &s.primary_key.value,
            s.incremental.as_ref().map(|i| &i.value),
        );
        let fixtures = fixtures_for(&spec, s, &schema, &mut warnings);
        let schema_rel = format!("schemas/{}.json", s.name);
        let fix_rel = format!("tests/fixtures/{}.json", s.name);
        std::fs::write(
            impl_dir.join(&schema_rel),
            serde_json::to_string_pretty(&schema)? + "\n",
        )?;
        std::fs::write(
            impl_dir.join(&fix_rel),
            serde_json::to_string_pretty(&fixtures)? + "\n",
        )?;
        files.push(impl_rel.join(&schema_rel));
        files.push(impl_rel.join(&fix_rel));
        summaries.push(StreamSummary {
            name: s.name.clone(),
            path: s.collection.value.path.clone(),
            pagination: s.pagination.value.kind().to_string(),
            primary_key: s.primary_key.value.clone(),
            incremental: s.incremental.is_some(),
        });
        detection_streams.insert(s.name.clone(), det);
        stream_entries.push(entry);
    }
    manifest.insert("streams".into(), Value::Array(stream_entries));
    unsure.sort();
    unsure.dedup();
    manifest.insert(
        "detection".into(),
        json!({
            "generator": "connector-factory builtin OpenAPI generator",
            "source": opts.openapi,
            "spec_format": spec.doc.version.label(),
            "threshold": UNSURE_BELOW,
            "base_url": {"value": base_url, "confidence": base.confidence},
            "auth": {"value": auth_json, "confidence": auth_conf},
            "streams": detection_streams,
            "unsure": unsure,
        }),
    );
    let notes = if unsure.is_empty() {
        "Generated by the builtin OpenAPI generator; every guess was confident. See docs/detection.md.".to_string()
    } else {
        format!(
            "Generated by the builtin OpenAPI generator. Detection is unsure about: {}. Check these against the API docs; see docs/detection.md.",
            unsure.join("; ")
        )
    };
    manifest.insert("notes".into(), json!(notes));
    let manifest = Value::Object(manifest);
    std::fs::write(
        impl_dir.join("connector.json"),
        serde_json::to_string_pretty(&manifest)? + "\n",
    )?;
    files.push(impl_rel.join("connector.json"));

    // ---- docs and README
    std::fs::create_dir_all(impl_dir.join("docs"))?;
    let doc = detection_markdown(
        &spec, opts, &base, &base_url, &auth, &auth_json, auth_conf, &streams, &unsure, &warnings,
    );
    std::fs::write(impl_dir.join("docs/detection.md"), doc)?;
    files.push(impl_rel.join("docs/detection.md"));
    let readme = readme_markdown(&title, opts, &version, &base_url, &auth_json, &streams);
    std::fs::write(impl_dir.join("README.md"), readme)?;
    files.sort();
    files.dedup();

    Ok(GenerateOutcome {
        impl_dir,
        connector: opts.name.clone(),
        version,
        streams: summaries,
        base_url,
        auth: auth_json["type"].as_str().unwrap_or("none").to_string(),
        unsure,
        warnings,
        files,
        manifest,
    })
}

/// `<connector>/<version>/<author>/_meta/connector.json`, the file that lists the languages.
fn is_author_meta(rel: &std::path::Path) -> bool {
    rel.components().count() == 5 && rel.ends_with("_meta/connector.json")
}

/// Add `lang` to the `languages` array of an existing author-level `_meta/connector.json`;
/// true when the file was changed.
fn add_language(path: &std::path::Path, lang: &str) -> Result<bool> {
    let text = std::fs::read_to_string(path)?;
    let Ok(Value::Object(mut m)) = serde_json::from_str::<Value>(&text) else {
        return Ok(false);
    };
    let Some(Value::Array(langs)) = m.get_mut("languages") else {
        return Ok(false);
    };
    if langs.iter().any(|l| l.as_str() == Some(lang)) {
        return Ok(false);
    }
    langs.push(json!(lang));
    std::fs::write(
        path,
        serde_json::to_string_pretty(&Value::Object(m))? + "\n",
    )?;
    Ok(true)
}

/// Fill empty fields of a freshly made `_meta` JSON file from the description.
fn fill_meta(text: &str, spec: &Spec, source: &str, lang: &str) -> String {
    let Ok(Value::Object(mut m)) = serde_json::from_str::<Value>(text) else {
        return text.to_string();
    };
    let desc = spec
        .doc
        .root
        .pointer("/info/description")
        .and_then(Value::as_str)
        .map(|d| {
            d.split("\n\n")
                .next()
                .unwrap_or(d)
                .trim()
                .chars()
                .take(300)
                .collect::<String>()
        })
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| {
            format!(
                "Connector for the {} API.",
                spec.title().unwrap_or("described")
            )
        });
    if m.get("description").and_then(Value::as_str) == Some("") {
        m.insert("description".into(), json!(desc));
    }
    if let Some(Value::Array(langs)) = m.get_mut("languages") {
        if langs.is_empty() {
            langs.push(json!(lang));
        }
    }
    if let Some(Value::Object(src)) = m.get_mut("source") {
        if src.get("spec").and_then(Value::as_str) == Some("")
            && (source.starts_with("http://") || source.starts_with("https://"))
        {
            src.insert("spec".into(), json!(source));
        }
        if let Some(docs) = spec
            .doc
            .root
            .pointer("/externalDocs/url")
            .and_then(Value::as_str)
        {
            if src.get("docs").and_then(Value::as_str) == Some("") {
                src.insert("docs".into(), json!(docs));
            }
        }
    }
    serde_json::to_string_pretty(&Value::Object(m))
        .map(|s| s + "\n")
        .unwrap_or_else(|_| text.to_string())
}

/// Map a detected auth onto the manifest's `auth` object. Returns (auth, confidence, note).
fn manifest_auth(a: &Detected<detect::Auth>) -> (Value, f64, Option<String>) {
    let v = &a.value;
    match v.kind.as_str() {
        "api_key" => {
            let (loc, name) = match (&v.header, &v.query_param) {
                (_, Some(q)) => ("query", q.clone()),
                (Some(h), _) => ("header", h.clone()),
                _ => ("header", "X-API-Key".to_string()),
            };
            (
                json!({"type": "api_key", "in": loc, "name": name}),
                a.confidence,
                None,
            )
        }
        "oauth2" => {
            let flow = v.flow.as_deref().unwrap_or("");
            match (&v.token_url, flow) {
                (Some(t), "client_credentials" | "refresh_token") => {
                    let mut o = json!({"type": "oauth2", "flow": flow, "token_url": t});
                    if !v.scopes.is_empty() && v.scopes.len() <= 20 {
                        o["scopes"] = json!(v.scopes);
                    }
                    (o, a.confidence, None)
                }
                _ => (
                    json!({"type": "bearer"}),
                    a.confidence.min(0.4),
                    Some(format!(
                        "oauth2 {} flow without a usable token URL: wrote bearer (pass an access token)",
                        if flow.is_empty() { "unknown" } else { flow }
                    )),
                ),
            }
        }
        "bearer" | "basic" | "none" => (json!({"type": v.kind}), a.confidence, None),
        other => (
            json!({"type": "none"}),
            0.2,
            Some(format!("auth `{other}` is not supported: wrote none")),
        ),
    }
}

/// Pick the streams: the user's list, else the ranking.
fn choose_streams(
    spec: &Spec,
    opts: &GenerateOptions,
    warnings: &mut Vec<String>,
) -> Result<Vec<StreamDetection>> {
    let ranked = detect::rank_streams(spec);
    if opts.streams.is_empty() {
        let usable: Vec<StreamDetection> = ranked
            .iter()
            .filter(|s| {
                s.collection.confidence >= 0.5
                    && !s.primary_key.value.is_empty()
                    && s.required_query_params.is_empty()
            })
            .cloned()
            .collect();
        let skipped = ranked.len() - usable.len();
        if skipped > 0 {
            warnings.push(format!("{skipped} candidate endpoint(s) skipped: weak list detection, no identifier, or required query parameters"));
        }
        return Ok(detect::pick_diverse(spec, usable, opts.max_streams));
    }
    let mut out = Vec::new();
    let mut used = HashSet::new();
    for want in &opts.streams {
        let found = ranked.iter().find(|s| {
            let c = &s.collection.value;
            s.name == *want
                || c.operation_id.as_deref() == Some(want.as_str())
                || format!("GET {}", c.path).eq_ignore_ascii_case(want)
                || c.path == *want
        });
        let s = match found {
            Some(s) => s.clone(),
            None => {
                let hint = match spec.index.find(want) {
                    Some(i) => format!(
                        "`{}` is not a collection endpoint (a GET returning a list)",
                        spec.op(i).key()
                    ),
                    None => format!("no stream or operation `{want}`"),
                };
                bail!(
                    "--streams: {hint}; candidates: {}",
                    ranked
                        .iter()
                        .take(12)
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        };
        if !used.insert(s.name.clone()) {
            continue;
        }
        if s.primary_key.value.is_empty() {
            bail!("--streams: `{want}` has no property that could serve as a primary key");
        }
        out.push(s);
    }
    Ok(out)
}

/// The manifest entry of one stream, its detection record, and its unsure lines.
fn stream_entry(
    spec: &Spec,
    s: &StreamDetection,
    warnings: &mut Vec<String>,
) -> (Value, Value, Vec<String>) {
    let c = &s.collection.value;
    let op = spec.op(c.op);
    let mut params = Map::new();
    for p in spec
        .parameters(op)
        .iter()
        .filter(|p| p.location == "query" && p.required)
    {
        if s.required_query_params.contains(&p.name) {
            let sch = crate::openapi::resolve::deref_lossy(&spec.doc.root, &p.schema);
            let v = sch
                .get("default")
                .cloned()
                .or_else(|| {
                    sch.get("enum")
                        .and_then(Value::as_array)
                        .and_then(|e| e.first().cloned())
                })
                .or_else(|| sch.get("example").cloned())
                .filter(|v| v.is_string() || v.is_number() || v.is_boolean());
            match v {
                Some(v) => {
                    params.insert(p.name.clone(), v);
                }
                None => {
                    params.insert(p.name.clone(), json!(""));
                    warnings.push(format!("stream {}: required query parameter `{}` has no default; set streams[].params.{}", s.name, p.name, p.name));
                }
            }
        }
    }
    let mut entry = json!({
        "name": s.name,
        "path": c.path,
        "method": "GET",
        "params": params,
        "record_selector": c.record_selector,
        "primary_key": s.primary_key.value,
        "pagination": s.pagination.value,
        "schema": format!("schemas/{}.json", s.name),
        "fixtures": format!("tests/fixtures/{}.json", s.name),
    });
    if let Some(sum) = &op.summary {
        entry
            .as_object_mut()
            .map(|m| m.insert("description".into(), json!(sum)));
    }
    if let Some(inc) = &s.incremental {
        entry["incremental"] = json!(inc.value);
    }
    // keep the manifest's key order readable: name, description, path, ...
    let order = [
        "name",
        "description",
        "path",
        "method",
        "params",
        "record_selector",
        "primary_key",
        "pagination",
        "incremental",
        "schema",
        "fixtures",
    ];
    let mut ordered = Map::new();
    for k in order {
        if let Some(v) = entry.get(k) {
            ordered.insert(k.to_string(), v.clone());
        }
    }
    let mut unsure = Vec::new();
    let mut check = |what: &str, conf: f64| {
        if conf < UNSURE_BELOW {
            unsure.push(format!("{} {what} ({conf:.2})", s.name));
        }
    };
    check(
        &format!("record selector `{}`", c.record_selector),
        s.collection.confidence,
    );
    check(
        &format!("pagination `{}`", s.pagination.value.kind()),
        s.pagination.confidence,
    );
    check(
        &format!("primary key `{}`", s.primary_key.value.join(",")),
        s.primary_key.confidence,
    );
    if let Some(inc) = &s.incremental {
        check(
            &format!("incremental cursor `{}`", inc.value.cursor_field),
            inc.confidence,
        );
    }
    let det = json!({
        "operation": op.key(),
        "operation_id": op.operation_id,
        "record_selector": {"value": c.record_selector, "confidence": s.collection.confidence},
        "pagination": {"value": s.pagination.value.kind(), "confidence": s.pagination.confidence},
        "primary_key": {"value": s.primary_key.value, "confidence": s.primary_key.confidence},
        "incremental": s.incremental.as_ref().map(|i| json!({"value": i.value.cursor_field, "confidence": i.confidence})),
    });
    (Value::Object(ordered), det, unsure)
}

// ---------------------------------------------------------------- JSON Schema

const STANDARD_FORMATS: [&str; 19] = [
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];
const MAX_SCHEMA_DEPTH: usize = 8;
/// Bytes of compact JSON all stream schemas may take together (a catalog is one output line).
const MAX_CATALOG_BYTES: usize = 48 * 1024;
const MAX_SCHEMA_BYTES: usize = 24 * 1024;

/// Convert an OpenAPI schema into a self-contained JSON Schema (draft 2020-12): refs inlined
/// (recursion cut to `{}`), `nullable` folded into type unions, `oneOf` relaxed to `anyOf`,
/// non-standard formats, patterns and OpenAPI-only keywords dropped.
pub fn json_schema(spec: &Spec, schema: &Value, title: &str) -> Value {
    json_schema_at_depth(spec, schema, title, MAX_SCHEMA_DEPTH)
}

/// [`json_schema`], shrunk (by cutting nesting depth) until its compact JSON fits `max_bytes`.
/// Singer tools read a whole catalog as one line, so the schemas of a connector must stay small.
pub fn json_schema_within(
    spec: &Spec,
    schema: &Value,
    title: &str,
    max_bytes: usize,
) -> (Value, Option<usize>) {
    for depth in (1..=MAX_SCHEMA_DEPTH).rev() {
        let s = json_schema_at_depth(spec, schema, title, depth);
        if serde_json::to_string(&s).map(|t| t.len()).unwrap_or(0) <= max_bytes {
            return (
                s,
                if depth < MAX_SCHEMA_DEPTH {
                    Some(depth)
                } else {
                    None
                },
            );
        }
    }
    (json_schema_at_depth(spec, schema, title, 0), Some(0))
}

fn json_schema_at_depth(spec: &Spec, schema: &Value, title: &str, max_depth: usize) -> Value {
    let mut stack = Vec::new();
    let mut out = convert(spec, schema, 0, max_depth, &mut stack);
    if let Value::Object(m) = &mut out {
        let mut head = Map::new();
        head.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        head.insert("title".into(), json!(title));
        for (k, v) in std::mem::take(m) {
            if k != "title" {
                head.insert(k, v);
            }
        }
        *m = head;
    }
    out
}

fn convert(
    spec: &Spec,
    schema: &Value,
    depth: usize,
    max_depth: usize,
    stack: &mut Vec<String>,
) -> Value {
    let root = &spec.doc.root;
    let mut pushed = false;
    let mut node = schema;
    let mut siblings: Option<&Map<String, Value>> = None;
    if ref_of(schema).is_some() {
        match deref(root, schema) {
            Ok((t, Some(at))) => {
                if stack.contains(&at) {
                    return json!({});
                }
                stack.push(at);
                pushed = true;
                siblings = schema.as_object();
                node = t;
            }
            Ok((t, None)) => node = t,
            Err(_) => return json!({}),
        }
    }
    if depth > max_depth {
        // past the depth limit keep only the type, so the value is still described a little
        let v = crate::openapi::resolve::view(&spec.doc.root, node);
        if pushed {
            stack.pop();
        }
        let mut types: Vec<Value> = v.types.iter().map(|t| json!(t)).collect();
        if types.is_empty() || !v.variants.is_empty() {
            return json!({});
        }
        if v.nullable {
            types.push(json!("null"));
        }
        return if types.len() == 1 {
            json!({"type": types[0]})
        } else {
            json!({"type": types})
        };
    }
    let Some(obj) = node.as_object() else {
        return if node.as_bool() == Some(false) {
            json!(false)
        } else {
            json!({})
        };
    };
    let mut out = Map::new();
    let mut nullable = obj.get("nullable").and_then(Value::as_bool) == Some(true)
        || obj.get("x-nullable").and_then(Value::as_bool) == Some(true);
    for (k, v) in obj.iter().chain(
        siblings
            .into_iter()
            .flat_map(|m| m.iter())
            .filter(|(k, _)| k.as_str() != "$ref"),
    ) {
        match k.as_str() {
            "type" => match v {
                Value::String(t) if t == "file" => {
                    out.insert("type".into(), json!("string"));
                }
                other => {
                    out.insert("type".into(), other.clone());
                }
            },
            "format" => {
                if let Some(f) = v.as_str().filter(|f| STANDARD_FORMATS.contains(f)) {
                    out.insert("format".into(), json!(f));
                }
            }
            "properties" => {
                if let Some(p) = v.as_object() {
                    let mut props = Map::new();
                    for (name, s) in p {
                        props.insert(name.clone(), convert(spec, s, depth + 1, max_depth, stack));
                    }
                    out.insert("properties".into(), Value::Object(props));
                }
            }
            "items" | "additionalProperties" | "not" | "contains" => {
                if v.is_boolean() {
                    out.insert(k.clone(), v.clone());
                } else if k != "not" {
                    out.insert(k.clone(), convert(spec, v, depth + 1, max_depth, stack));
                }
            }
            "allOf" | "anyOf" | "oneOf" => {
                if let Some(list) = v.as_array() {
                    let conv: Vec<Value> = list
                        .iter()
                        .map(|s| convert(spec, s, depth + 1, max_depth, stack))
                        .collect();
                    let key = if k == "oneOf" { "anyOf" } else { k.as_str() };
                    if key == "anyOf" && out.contains_key("anyOf") {
                        // both anyOf and oneOf present: keep both via allOf
                        let prev = out.remove("anyOf").unwrap_or(Value::Null);
                        out.insert("allOf".into(), json!([{"anyOf": prev}, {"anyOf": conv}]));
                    } else {
                        out.insert(key.into(), Value::Array(conv));
                    }
                }
            }
            "required" | "enum" | "const" | "minimum" | "maximum" | "exclusiveMinimum"
            | "exclusiveMaximum" | "multipleOf" | "minItems" | "maxItems" | "uniqueItems"
            | "minLength" | "default" => {
                out.insert(k.clone(), v.clone());
            }
            "description" if depth <= 1 => {
                if let Some(d) = v.as_str() {
                    let d: String = d.split_whitespace().collect::<Vec<_>>().join(" ");
                    let cut: String = d.chars().take(160).collect();
                    out.insert("description".into(), json!(cut));
                }
            }
            _ => {} // nullable, discriminator, readOnly, xml, pattern, maxLength, x-*, ...
        }
    }
    // OpenAPI 3.0 boolean exclusive bounds
    for (flag, bound) in [
        ("exclusiveMinimum", "minimum"),
        ("exclusiveMaximum", "maximum"),
    ] {
        if let Some(b) = out.get(flag).and_then(Value::as_bool) {
            out.remove(flag);
            if b {
                if let Some(n) = out.remove(bound) {
                    out.insert(flag.into(), n);
                }
            }
        }
    }
    if let Some(Value::Array(ts)) = out.get("type") {
        if ts.iter().any(|t| t == "null") {
            nullable = true;
        }
    }
    // schema keywords on a list: required only makes sense with properties
    if let Some(Value::Array(req)) = out.get("required") {
        if req.is_empty() {
            out.remove("required");
        }
    }
    if nullable {
        match out.get("type").cloned() {
            Some(Value::String(t)) => {
                out.insert("type".into(), json!([t, "null"]));
            }
            Some(Value::Array(mut ts)) => {
                if !ts.iter().any(|t| t == "null") {
                    ts.push(json!("null"));
                }
                out.insert("type".into(), Value::Array(ts));
            }
            _ => {
                let inner = Value::Object(std::mem::take(&mut out));
                out.insert("anyOf".into(), json!([inner, {"type": "null"}]));
            }
        }
        if let Some(Value::Array(e)) = out.get_mut("enum") {
            if !e.iter().any(Value::is_null) {
                e.push(Value::Null);
            }
        }
    }
    if pushed {
        stack.pop();
    }
    Value::Object(out)
}

/// Make sure the primary key and cursor fields exist as properties (the contract requires it).
fn ensure_properties(schema: &mut Value, pk: &[String], inc: Option<&detect::Incremental>) {
    let Some(m) = schema.as_object_mut() else {
        return;
    };
    let props = m.entry("properties").or_insert_with(|| json!({}));
    let Some(props) = props.as_object_mut() else {
        return;
    };
    for k in pk {
        props.entry(k.clone()).or_insert(json!({"type": "string"}));
    }
    if let Some(i) = inc {
        let t = if i.format == "unix" {
            json!({"type": "integer"})
        } else {
            json!({"type": "string", "format": "date-time"})
        };
        props.entry(i.cursor_field.clone()).or_insert(t);
    }
    if !m.contains_key("type") {
        m.insert("type".into(), json!("object"));
    }
}

// ---------------------------------------------------------------- fixtures

const FIXTURE_COUNT: usize = 3;

/// Sample records: the description's example when it validates, else synthesised from the schema.
fn fixtures_for(
    spec: &Spec,
    s: &StreamDetection,
    schema: &Value,
    warnings: &mut Vec<String>,
) -> Value {
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .ok();
    let valid = |r: &Value| validator.as_ref().map(|v| v.is_valid(r)).unwrap_or(true);
    let mut records: Vec<Value> = Vec::new();
    if let Some(ex) = spec
        .success_response(spec.op(s.collection.value.op))
        .and_then(|r| r.example)
    {
        let arr = if s.collection.value.record_selector.is_empty() {
            ex.as_array().cloned()
        } else {
            let mut cur = Some(&ex);
            for seg in s.collection.value.record_selector.split('.') {
                cur = cur.and_then(|c| c.get(seg));
            }
            cur.and_then(Value::as_array).cloned()
        };
        if let Some(arr) = arr {
            records = arr
                .into_iter()
                .filter(|r| r.is_object() && valid(r))
                .take(FIXTURE_COUNT)
                .collect();
        }
    }
    let from_example = !records.is_empty();
    let mut i = records.len();
    while records.len() < FIXTURE_COUNT {
        let r = if from_example {
            records[i % records.len().max(1)].clone()
        } else {
            synth(schema, &s.name, i, 0)
        };
        records.push(r);
        i += 1;
    }
    // unique primary keys and distinct, increasing cursor values
    for (i, r) in records.iter_mut().enumerate() {
        for k in &s.primary_key.value {
            let prop = schema
                .pointer(&format!(
                    "/properties/{}",
                    crate::openapi::resolve::escape_pointer_token(k)
                ))
                .cloned()
                .unwrap_or(json!({}));
            let current = r.get(k).cloned();
            let fresh = unique_value(&prop, current.as_ref(), &s.name, i);
            if let Some(m) = r.as_object_mut() {
                m.insert(k.clone(), fresh);
            }
        }
        if let Some(inc) = &s.incremental {
            let prop = schema
                .pointer(&format!(
                    "/properties/{}",
                    crate::openapi::resolve::escape_pointer_token(&inc.value.cursor_field)
                ))
                .cloned()
                .unwrap_or(json!({}));
            let v = if inc.value.format == "unix"
                || first_type(&prop) == "integer"
                || first_type(&prop) == "number"
            {
                json!(1_704_067_200i64 + i as i64 * 86_400)
            } else if prop.get("format").and_then(Value::as_str) == Some("date") {
                json!(format!("2024-01-{:02}", i + 1))
            } else {
                json!(format!("2024-01-{:02}T12:00:00Z", i + 1))
            };
            if let Some(m) = r.as_object_mut() {
                m.insert(inc.value.cursor_field.clone(), v);
            }
        }
    }
    for (i, r) in records.iter().enumerate() {
        if let Some(v) = &validator {
            if let Some(e) = v.iter_errors(r).next() {
                warnings.push(format!(
                    "stream {}: fixture {i} does not validate: {} at {}",
                    s.name,
                    e,
                    e.instance_path()
                ));
            }
        }
    }
    Value::Array(records)
}

fn first_type(s: &Value) -> String {
    match s.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null")
            .to_string(),
        _ => {
            if s.get("properties").is_some() {
                "object".into()
            } else if s.get("items").is_some() {
                "array".into()
            } else {
                String::new()
            }
        }
    }
}

fn unique_value(prop: &Value, current: Option<&Value>, stream: &str, i: usize) -> Value {
    let v = unique_value_raw(prop, current, stream, i);
    match (v, prop.get("minLength").and_then(Value::as_u64)) {
        (Value::String(s), Some(min)) if (s.chars().count() as u64) < min => {
            let pad = min as usize - s.chars().count();
            // pad in the middle so the value stays unique and readable: `account_000…0001`
            let (head, tail) = s.split_at(s.rfind('_').map(|p| p + 1).unwrap_or(0));
            Value::String(format!("{head}{}{tail}", "0".repeat(pad)))
        }
        (v, _) => v,
    }
}

fn unique_value_raw(prop: &Value, current: Option<&Value>, stream: &str, i: usize) -> Value {
    let t = first_type(prop);
    let t = if t.is_empty() {
        match current {
            Some(Value::Number(_)) => "integer".to_string(),
            _ => "string".to_string(),
        }
    } else {
        t
    };
    match t.as_str() {
        "integer" => json!(1001 + i as i64),
        "number" => json!(1001.0 + i as f64),
        _ => match prop.get("format").and_then(Value::as_str) {
            Some("uuid") => json!(format!("7f3c2a10-5b6e-4c1d-9a8b-{:012x}", i + 1)),
            Some("email") => json!(format!("{stream}{}@example.com", i + 1)),
            Some("uri") => json!(format!("https://example.com/{stream}/{}", i + 1)),
            Some("date-time") => json!(format!("2023-06-{:02}T08:00:00Z", i + 1)),
            Some("date") => json!(format!("2023-06-{:02}", i + 1)),
            _ => match prop.get("enum").and_then(Value::as_array) {
                Some(e) if !e.is_empty() => e[i % e.len()].clone(),
                _ => json!(format!("{}_{:04}", stream.trim_end_matches('s'), i + 1)),
            },
        },
    }
}

/// A value that validates against `schema` (a converted JSON Schema), varied by `i`.
pub fn synth(schema: &Value, name: &str, i: usize, depth: usize) -> Value {
    let Some(m) = schema.as_object() else {
        return json!(null);
    };
    if let Some(c) = m.get("const") {
        return c.clone();
    }
    if let Some(Value::Array(e)) = m.get("enum") {
        let non_null: Vec<&Value> = e.iter().filter(|v| !v.is_null()).collect();
        if !non_null.is_empty() {
            return non_null[i % non_null.len()].clone();
        }
        return json!(null);
    }
    if let Some(ex) = m
        .get("examples")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        if jsonschema::options()
            .should_validate_formats(true)
            .build(schema)
            .map(|v| v.is_valid(ex))
            .unwrap_or(false)
            && i == 0
        {
            return ex.clone();
        }
    }
    if let Some(Value::Array(all)) = m.get("allOf") {
        let mut merged = Map::new();
        for part in all {
            if let Value::Object(o) = synth(part, name, i, depth) {
                merged.extend(o);
            }
        }
        let own = synth_typed(m, name, i, depth);
        if let Value::Object(o) = own {
            merged.extend(o);
        }
        return Value::Object(merged);
    }
    if let Some(Value::Array(any)) = m.get("anyOf") {
        if !m.contains_key("type") || any.iter().any(|v| v.get("type").is_none()) {
            let pick = any
                .iter()
                .find(|v| v.get("type") != Some(&json!("null")))
                .or(any.first());
            return pick
                .map(|p| synth(p, name, i, depth))
                .unwrap_or(json!(null));
        }
    }
    synth_typed(m, name, i, depth)
}

fn synth_typed(m: &Map<String, Value>, name: &str, i: usize, depth: usize) -> Value {
    let schema = Value::Object(m.clone());
    let t = first_type(&schema);
    match t.as_str() {
        "object" | "" if m.contains_key("properties") || t == "object" => {
            let mut out = Map::new();
            let required: Vec<&str> = m
                .get("required")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(Value::Object(props)) = m.get("properties") {
                for (k, s) in props {
                    if depth >= 3 && !required.contains(&k.as_str()) {
                        continue;
                    }
                    out.insert(k.clone(), synth(s, k, i, depth + 1));
                }
            }
            Value::Object(out)
        }
        "array" => {
            let n = m
                .get("minItems")
                .and_then(Value::as_u64)
                .unwrap_or(if depth >= 3 { 0 } else { 1 }) as usize;
            let items = m.get("items").cloned().unwrap_or(json!({}));
            Value::Array(
                (0..n)
                    .map(|k| synth(&items, name, i + k, depth + 1))
                    .collect(),
            )
        }
        "integer" => {
            let min = m
                .get("minimum")
                .and_then(Value::as_i64)
                .or_else(|| {
                    m.get("exclusiveMinimum")
                        .and_then(Value::as_i64)
                        .map(|x| x + 1)
                })
                .unwrap_or(1);
            let max = m.get("maximum").and_then(Value::as_i64).or_else(|| {
                m.get("exclusiveMaximum")
                    .and_then(Value::as_i64)
                    .map(|x| x - 1)
            });
            let v = min + i as i64;
            json!(match max {
                Some(mx) if v > mx => min,
                _ => v,
            })
        }
        "number" => {
            let min = m.get("minimum").and_then(Value::as_f64).unwrap_or(1.0);
            let max = m.get("maximum").and_then(Value::as_f64);
            let v = min + i as f64 + 0.5;
            json!(match max {
                Some(mx) if v > mx => min,
                _ => v,
            })
        }
        "boolean" => json!(i % 2 == 0),
        "null" => json!(null),
        _ => {
            let s = match m.get("format").and_then(Value::as_str) {
                Some("date-time") => format!("2024-02-{:02}T09:30:00Z", i + 1),
                Some("date") => format!("2024-02-{:02}", i + 1),
                Some("time") => "09:30:00Z".to_string(),
                Some("duration") => "P1D".to_string(),
                Some("email") | Some("idn-email") => {
                    format!("{}{}@example.com", clean(name), i + 1)
                }
                Some("uri") | Some("iri") => {
                    format!("https://example.com/{}/{}", clean(name), i + 1)
                }
                Some("uri-reference") | Some("iri-reference") => {
                    format!("/{}/{}", clean(name), i + 1)
                }
                Some("uuid") => format!("3f2b8c4e-1d2a-4e5f-8a7b-{:012x}", i + 1),
                Some("ipv4") => format!("192.0.2.{}", i + 1),
                Some("ipv6") => format!("2001:db8::{}", i + 1),
                Some("hostname") | Some("idn-hostname") => format!("host{}.example.com", i + 1),
                Some("uri-template") => "https://example.com/{id}".to_string(),
                Some("json-pointer") => "/a/b".to_string(),
                Some("relative-json-pointer") => "0/a".to_string(),
                Some("regex") => "^a+$".to_string(),
                _ => format!("{} {}", clean(name).replace('_', " "), i + 1),
            };
            let min = m.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
            let mut s = s;
            while s.chars().count() < min {
                s.push('x');
            }
            json!(s)
        }
    }
}

fn clean(name: &str) -> String {
    let s: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if s.is_empty() {
        "value".into()
    } else {
        s.to_ascii_lowercase()
    }
}

// ---------------------------------------------------------------- docs

fn conf_cell(c: f64) -> String {
    if c < UNSURE_BELOW {
        format!("{c:.2} **unsure**")
    } else {
        format!("{c:.2}")
    }
}

#[allow(clippy::too_many_arguments)]
fn detection_markdown(
    spec: &Spec,
    opts: &GenerateOptions,
    base: &Detected<String>,
    base_url: &str,
    auth: &Detected<detect::Auth>,
    auth_json: &Value,
    auth_conf: f64,
    streams: &[StreamDetection],
    unsure: &[String],
    warnings: &[String],
) -> String {
    let mut d = String::new();
    d.push_str("# What the builtin generator detected\n\n");
    d.push_str(&format!(
        "Source: `{}` ({}, {} operations, {} schemas). Guesses with a confidence below {UNSURE_BELOW} are marked **unsure**: check them against the API's documentation before relying on this connector.\n\n",
        opts.openapi,
        spec.doc.version.label(),
        spec.index.operations.len(),
        spec.index.schema_names.len()
    ));
    if unsure.is_empty() {
        d.push_str("Nothing was unsure.\n\n");
    } else {
        d.push_str("## Unsure\n\n");
        for u in unsure {
            d.push_str(&format!("- {u}\n"));
        }
        d.push('\n');
    }
    d.push_str("## API\n\n| what | value | confidence | evidence |\n|---|---|---|---|\n");
    d.push_str(&format!(
        "| base URL | `{base_url}` | {} | {} |\n",
        conf_cell(base.confidence),
        base.evidence.join("; ").replace('|', "\\|")
    ));
    d.push_str(&format!(
        "| auth | `{}` | {} | {} |\n\n",
        serde_json::to_string(auth_json)
            .unwrap_or_default()
            .replace('|', "\\|"),
        conf_cell(auth_conf),
        auth.evidence.join("; ").replace('|', "\\|")
    ));
    d.push_str("## Streams\n\n");
    for s in streams {
        let c = &s.collection.value;
        d.push_str(&format!("### {}\n\n`GET {}`", s.name, c.path));
        if let Some(id) = &c.operation_id {
            d.push_str(&format!(" (operationId `{id}`)"));
        }
        d.push_str("\n\n| what | value | confidence | evidence |\n|---|---|---|---|\n");
        let row = |what: &str, value: String, conf: f64, ev: &[String]| {
            format!(
                "| {what} | {} | {} | {} |\n",
                value.replace('|', "\\|"),
                conf_cell(conf),
                ev.join("; ").replace('|', "\\|")
            )
        };
        d.push_str(&row(
            "records",
            format!(
                "`{}`",
                if c.record_selector.is_empty() {
                    "(the body)"
                } else {
                    &c.record_selector
                }
            ),
            s.collection.confidence,
            &s.collection.evidence,
        ));
        d.push_str(&row(
            "pagination",
            format!(
                "`{}`",
                serde_json::to_string(&s.pagination.value).unwrap_or_default()
            ),
            s.pagination.confidence,
            &s.pagination.evidence,
        ));
        d.push_str(&row(
            "primary key",
            format!("`{}`", s.primary_key.value.join(", ")),
            s.primary_key.confidence,
            &s.primary_key.evidence,
        ));
        match &s.incremental {
            Some(i) => d.push_str(&row(
                "incremental",
                format!(
                    "`{}` via `{}` ({})",
                    i.value.cursor_field, i.value.request_param, i.value.format
                ),
                i.confidence,
                &i.evidence,
            )),
            None => {
                let cands = detect::cursor_field_candidates(spec, &c.item_schema);
                let text = if cands.is_empty() {
                    "none: no updated/modified-like field".to_string()
                } else {
                    format!(
                        "none: candidate field(s) {} but no server-side filter parameter",
                        cands
                            .iter()
                            .map(|(n, f, _)| format!("`{n}` ({f})"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                d.push_str(&format!("| incremental | {text} | | |\n"));
            }
        }
        if !s.path_params.is_empty() {
            d.push_str(&format!(
                "\nPath parameters to set in the config's `params`: {}.\n",
                s.path_params
                    .iter()
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        d.push('\n');
    }
    if !warnings.is_empty() {
        d.push_str("## Warnings\n\n");
        for w in warnings {
            d.push_str(&format!("- {w}\n"));
        }
        d.push('\n');
    }
    d.push_str("Schemas were converted from the description's response schemas (refs inlined, recursion cut, `nullable` as type unions, only standard formats kept). Fixtures come from the description's examples when they validate, otherwise they are synthesised from the schema.\n");
    d
}

fn readme_markdown(
    title: &str,
    opts: &GenerateOptions,
    version: &str,
    base_url: &str,
    auth: &Value,
    streams: &[StreamDetection],
) -> String {
    let mut r = format!(
        "# {} connector ({} / {} / {} / {})\n\nGenerated from the OpenAPI description of the {title} API by `connector-factory generate`. Base URL `{base_url}`, auth `{}`.\n\n| stream | endpoint | pagination | primary key | incremental |\n|---|---|---|---|---|\n",
        opts.name,
        version,
        opts.author,
        language_dir(opts.language),
        opts.implementation,
        auth["type"].as_str().unwrap_or("none")
    );
    for s in streams {
        r.push_str(&format!(
            "| {} | `GET {}` | {} | {} | {} |\n",
            s.name,
            s.collection.value.path,
            s.pagination.value.kind(),
            s.primary_key.value.join(", "),
            s.incremental
                .as_ref()
                .map(|i| i.value.cursor_field.clone())
                .unwrap_or_else(|| "-".into())
        ));
    }
    let run = match opts.language {
        Language::Python => {
            "Run it: `python3 main.py --about`, `python3 main.py --config config.json --discover`, `python3 main.py --config config.json`."
        }
        Language::Typescript => {
            "Build it once with `npm run setup` (installs the pinned TypeScript compiler, then compiles `src/` to `dist/`; Node.js 20+), then run it: `node dist/main.js --about`, `node dist/main.js --config config.json --discover`, `node dist/main.js --config config.json`."
        }
    };
    r.push_str(&format!("\n{run} See `docs/detection.md` for what was guessed and how sure the generator was, and `docs/connector-contract.md` in the factory for the config format.\n"));
    r
}

/// Puts `url` back where the generator wrote the path of `copy` below `folder`, and fills the
/// `_meta` files' empty `source.spec` with it (the generator fills that for URLs only).
pub fn replace_spec_location(folder: &std::path::Path, copy: &str, url: &str) -> Result<()> {
    let (json_from, json_to) = (serde_json::to_string(copy)?, serde_json::to_string(url)?);
    for entry in walkdir::WalkDir::new(folder).into_iter().filter_map(Result::ok) {
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(entry.path()) else { continue };
        let is_json = entry.path().extension().is_some_and(|e| e == "json");
        let mut fixed = if is_json { text.replace(&json_from, &json_to) } else { text.replace(copy, url) };
        if is_json && entry.path().components().any(|c| c.as_os_str() == "_meta")
            && let Ok(mut meta) = serde_json::from_str::<serde_json::Value>(&fixed)
            && meta.pointer("/source/spec").and_then(serde_json::Value::as_str) == Some("")
        {
            meta["source"]["spec"] = serde_json::Value::String(url.to_string());
            fixed = format!("{}\n", serde_json::to_string_pretty(&meta)?);
        }
        if fixed != text {
            std::fs::write(entry.path(), fixed)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec::parse(
            r##"{"openapi": "3.0.0", "info": {"title": "t", "version": "1"}, "paths": {},
                "components": {"schemas": {
                  "A": {"type": "object", "required": ["id"], "properties": {
                    "id": {"type": "integer", "format": "int64"},
                    "when": {"type": "string", "format": "date-time", "nullable": true},
                    "colour": {"type": "string", "enum": ["red", "blue"], "nullable": true},
                    "code": {"type": "string", "pattern": "^[A-Z]{3}$", "maxLength": 3},
                    "kind": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                    "self": {"$ref": "#/components/schemas/A"},
                    "odd": {"type": "string", "format": "colour-name"}}}}}}"##,
            "t.json",
        )
        .unwrap()
    }

    #[test]
    fn converts_openapi_schema_to_2020_12() {
        let s = spec();
        let j = json_schema(&s, &json!({"$ref": "#/components/schemas/A"}), "a");
        assert_eq!(j["$schema"], "https://json-schema.org/draft/2020-12/schema");
        assert!(
            j["properties"]["id"].get("format").is_none(),
            "int64 is not a standard format"
        );
        assert_eq!(j["properties"]["when"]["type"], json!(["string", "null"]));
        assert_eq!(j["properties"]["when"]["format"], "date-time");
        assert_eq!(
            j["properties"]["colour"]["enum"],
            json!(["red", "blue", null])
        );
        assert!(j["properties"]["code"].get("pattern").is_none());
        assert!(j["properties"]["kind"].get("anyOf").is_some());
        assert_eq!(j["properties"]["self"], json!({}), "recursion is cut");
        assert!(j["properties"]["odd"].get("format").is_none());
        jsonschema::validator_for(&j).expect("a valid schema");
    }

    #[test]
    fn synthesised_records_validate() {
        let s = spec();
        let j = json_schema(&s, &json!({"$ref": "#/components/schemas/A"}), "a");
        let v = jsonschema::options()
            .should_validate_formats(true)
            .build(&j)
            .unwrap();
        for i in 0..5 {
            let r = synth(&j, "a", i, 0);
            assert!(v.is_valid(&r), "{r}");
        }
    }
}

//! The slice of an implementation manifest (`connector.json`) the spec tests need, plus the
//! loader that reads the manifest, every stream's schema and fixtures, and reports unusable input
//! as [`InputError`] (the CLI turns it into exit code 2).

use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Input the suite cannot work with: the message names the file and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct InputError {
    pub path: PathBuf,
    pub problem: String,
}

impl InputError {
    pub(crate) fn new(path: &Path, problem: impl Into<String>) -> Self {
        InputError {
            path: path.to_path_buf(),
            problem: problem.into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub author: Option<String>,
    pub language: String,
    #[serde(default)]
    pub implementation: Option<String>,
    pub run: RunSpec,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub auth: AuthSpec,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub defaults: Map<String, Value>,
    pub streams: Vec<StreamSpec>,
    #[serde(default)]
    pub hooks: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RunSpec {
    pub command: Vec<String>,
    /// Run once in the implementation folder before any scenario (compile, install dev tools).
    #[serde(default)]
    pub build: Vec<String>,
}

/// `auth`: the contract fixes `type`; the other fields follow the `auth` skill
/// (`in`/`name`/`prefix` for api keys, `grant_type`/`token_url`/`scopes` for oauth2).
#[derive(Debug, Clone, Deserialize)]
pub struct AuthSpec {
    #[serde(rename = "type", default = "default_auth_type")]
    pub kind: String,
    #[serde(rename = "in", default)]
    pub location: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    /// `grant_type` in the auth skill and the runtime; `flow` in implementation.schema.json.
    #[serde(default, alias = "flow")]
    pub grant_type: Option<String>,
    #[serde(default)]
    pub token_url: Option<String>,
}

fn default_auth_type() -> String {
    "none".to_string()
}

impl Default for AuthSpec {
    fn default() -> Self {
        AuthSpec {
            kind: default_auth_type(),
            location: None,
            name: None,
            prefix: None,
            grant_type: None,
            token_url: None,
        }
    }
}

impl AuthSpec {
    /// Where an api key goes: `header` (the default) or `query`.
    pub fn key_in_query(&self) -> bool {
        self.location.as_deref() == Some("query")
    }

    /// Header or query parameter name of an api key.
    pub fn key_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            if self.key_in_query() {
                "api_key".to_string()
            } else {
                "X-Api-Key".to_string()
            }
        })
    }

    /// The oauth2 grant: `client_credentials` unless `refresh_token` is declared.
    pub fn uses_refresh_token(&self) -> bool {
        self.grant_type.as_deref() == Some("refresh_token")
    }

    /// The path part of `token_url` (absolute or relative); the mock serves the token endpoint there.
    pub fn token_path(&self) -> String {
        let raw = self
            .token_url
            .clone()
            .unwrap_or_else(|| "/oauth/token".to_string());
        let path = match url::Url::parse(&raw) {
            Ok(parsed) => parsed.path().to_string(),
            Err(_) => raw.split('?').next().unwrap_or("").to_string(),
        };
        if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct StreamSpec {
    pub name: String,
    pub path: String,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub params: Map<String, Value>,
    #[serde(default)]
    pub record_selector: String,
    #[serde(default)]
    pub primary_key: Vec<String>,
    #[serde(default)]
    pub pagination: Pagination,
    #[serde(default)]
    pub incremental: Option<Incremental>,
    pub schema: String,
    pub fixtures: String,
}

fn default_method() -> String {
    "GET".to_string()
}

/// Every pagination style's fields in one struct; `kind` says which apply.
#[derive(Debug, Clone, Deserialize)]
pub struct Pagination {
    #[serde(rename = "type", default = "default_pagination")]
    pub kind: String,
    #[serde(default)]
    pub cursor_param: Option<String>,
    #[serde(default)]
    pub cursor_source: Option<String>,
    #[serde(default)]
    pub cursor_path: Option<String>,
    #[serde(default)]
    pub has_more_path: Option<String>,
    #[serde(default)]
    pub size_param: Option<String>,
    #[serde(default)]
    pub offset_param: Option<String>,
    #[serde(default)]
    pub total_path: Option<String>,
    #[serde(default)]
    pub page_param: Option<String>,
    #[serde(default)]
    pub start_page: Option<i64>,
    #[serde(default)]
    pub total_pages_path: Option<String>,
    #[serde(default)]
    pub next_url_path: Option<String>,
}

fn default_pagination() -> String {
    "none".to_string()
}

impl Default for Pagination {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("empty pagination")
    }
}

impl Pagination {
    pub fn is_paginated(&self) -> bool {
        self.kind != "none"
    }

    pub fn is_cursor(&self) -> bool {
        self.kind == "cursor"
    }

    pub fn cursor_from_body(&self) -> bool {
        self.cursor_source.as_deref() == Some("body")
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Incremental {
    pub cursor_field: String,
    pub request_param: String,
    #[serde(default = "default_format")]
    pub format: String,
}

fn default_format() -> String {
    "iso8601".to_string()
}

/// One stream with its schema and fixtures read from disk.
#[derive(Debug, Clone)]
pub struct LoadedStream {
    pub spec: StreamSpec,
    pub schema: Value,
    pub fixtures: Vec<Value>,
}

/// An implementation folder, ready for the suite.
#[derive(Debug, Clone)]
pub struct LoadedImpl {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub streams: Vec<LoadedStream>,
}

impl LoadedImpl {
    pub fn stream(&self, name: &str) -> Option<&LoadedStream> {
        self.streams.iter().find(|s| s.spec.name == name)
    }

    pub fn incremental_streams(&self) -> Vec<&LoadedStream> {
        self.streams
            .iter()
            .filter(|s| s.spec.incremental.is_some())
            .collect()
    }

    /// The stream fault scenarios aim at: the first paginated stream, else the first stream.
    pub fn target_stream(&self) -> &LoadedStream {
        self.streams
            .iter()
            .find(|s| s.spec.pagination.is_paginated())
            .unwrap_or(&self.streams[0])
    }
}

const AUTH_TYPES: &[&str] = &["none", "api_key", "bearer", "basic", "oauth2"];
const PAGINATION_TYPES: &[&str] = &[
    "none",
    "cursor",
    "offset",
    "page",
    "link_header",
    "next_url",
];

/// Reads `<dir>/connector.json`, the schema and fixtures of every stream, and checks that the
/// mock can be built from them.
pub fn load(dir: &Path) -> Result<LoadedImpl, InputError> {
    if !dir.is_dir() {
        return Err(InputError::new(dir, "not a directory"));
    }
    let dir = dir
        .canonicalize()
        .map_err(|e| InputError::new(dir, format!("cannot resolve: {e}")))?;
    let manifest_path = dir.join("connector.json");
    let text = std::fs::read_to_string(&manifest_path).map_err(|e| {
        InputError::new(
            &manifest_path,
            format!(
                "cannot read the manifest ({e}); an implementation folder needs a connector.json"
            ),
        )
    })?;
    let raw: Value = serde_json::from_str(&text)
        .map_err(|e| InputError::new(&manifest_path, format!("not valid JSON: {e}")))?;
    let manifest: Manifest = serde_json::from_value(raw).map_err(|e| {
        InputError::new(
            &manifest_path,
            format!("does not match the manifest shape: {e}"),
        )
    })?;

    if manifest.run.command.is_empty() {
        return Err(InputError::new(&manifest_path, "run.command is empty"));
    }
    if manifest.streams.is_empty() {
        return Err(InputError::new(&manifest_path, "streams is empty"));
    }
    if !AUTH_TYPES.contains(&manifest.auth.kind.as_str()) {
        return Err(InputError::new(
            &manifest_path,
            format!(
                "auth.type {:?} is not one of {}",
                manifest.auth.kind,
                AUTH_TYPES.join(", ")
            ),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut streams = Vec::new();
    for spec in &manifest.streams {
        if !seen.insert(spec.name.clone()) {
            return Err(InputError::new(
                &manifest_path,
                format!("stream {:?} is declared twice", spec.name),
            ));
        }
        check_pagination(&manifest_path, spec)?;
        let schema_path = dir.join(&spec.schema);
        let schema = read_json(&schema_path, &format!("schema of stream {:?}", spec.name))?;
        if !schema.is_object() {
            return Err(InputError::new(
                &schema_path,
                "a stream schema must be a JSON object",
            ));
        }
        let fixtures_path = dir.join(&spec.fixtures);
        let fixtures = match read_json(
            &fixtures_path,
            &format!("fixtures of stream {:?}", spec.name),
        )? {
            Value::Array(items) => items,
            _ => {
                return Err(InputError::new(
                    &fixtures_path,
                    "fixtures must be a JSON array of records",
                ));
            }
        };
        if fixtures.is_empty() {
            return Err(InputError::new(
                &fixtures_path,
                "fixtures are empty: the mock needs at least one sample record",
            ));
        }
        if let Some(bad) = fixtures.iter().position(|r| !r.is_object()) {
            return Err(InputError::new(
                &fixtures_path,
                format!("fixture #{bad} is not a JSON object"),
            ));
        }
        if spec.primary_key.is_empty() {
            return Err(InputError::new(
                &manifest_path,
                format!(
                    "stream {:?} has no primary_key: the suite matches records by primary key",
                    spec.name
                ),
            ));
        }
        if let Some(inc) = &spec.incremental
            && inc.format != "unix"
            && inc.format != "iso8601"
        {
            return Err(InputError::new(
                &manifest_path,
                format!(
                    "stream {:?}: incremental.format {:?} is neither unix nor iso8601",
                    spec.name, inc.format
                ),
            ));
        }
        streams.push(LoadedStream {
            spec: spec.clone(),
            schema,
            fixtures,
        });
    }
    Ok(LoadedImpl {
        dir,
        manifest,
        streams,
    })
}

fn check_pagination(manifest_path: &Path, spec: &StreamSpec) -> Result<(), InputError> {
    let p = &spec.pagination;
    if !PAGINATION_TYPES.contains(&p.kind.as_str()) {
        return Err(InputError::new(
            manifest_path,
            format!(
                "stream {:?}: pagination.type {:?} is not one of {}",
                spec.name,
                p.kind,
                PAGINATION_TYPES.join(", ")
            ),
        ));
    }
    let missing = |field: &str| {
        InputError::new(
            manifest_path,
            format!(
                "stream {:?}: pagination type {} needs {field}",
                spec.name, p.kind
            ),
        )
    };
    match p.kind.as_str() {
        "cursor" => {
            if p.cursor_param.is_none() {
                return Err(missing("cursor_param"));
            }
            if p.cursor_path.is_none() {
                return Err(missing("cursor_path"));
            }
        }
        "offset" => {
            if p.offset_param.is_none() {
                return Err(missing("offset_param"));
            }
            if p.size_param.is_none() {
                return Err(missing("size_param"));
            }
        }
        "page" if p.page_param.is_none() => {
            return Err(missing("page_param"));
        }
        "next_url" if p.next_url_path.is_none() => {
            return Err(missing("next_url_path"));
        }
        _ => {}
    }
    Ok(())
}

fn read_json(path: &Path, what: &str) -> Result<Value, InputError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::new(path, format!("cannot read the {what}: {e}")))?;
    serde_json::from_str(&text)
        .map_err(|e| InputError::new(path, format!("the {what} is not valid JSON: {e}")))
}

/// Reads a dotted path (`a.b.c`) in a JSON value; `""` is the value itself.
pub fn get_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(value);
    }
    let mut current = value;
    for part in path.split('.') {
        current = match current {
            Value::Object(map) => map.get(part)?,
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// Writes `new` at a dotted path, creating objects on the way (replacing non-objects).
pub fn set_path(target: &mut Value, path: &str, new: Value) {
    if path.is_empty() {
        *target = new;
        return;
    }
    let mut current = target;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !current.is_object() {
            *current = Value::Object(Map::new());
        }
        let map = current.as_object_mut().expect("object");
        if i + 1 == parts.len() {
            map.insert(part.to_string(), new);
            return;
        }
        current = map
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

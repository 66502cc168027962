//! Reading an OpenAPI description from a file or an http(s) URL and checking its outline.
//!
//! The document is parsed once into a `serde_json::Value` (YAML is converted on the way in, with
//! non-string mapping keys such as response codes turned into strings). Only the outline is
//! checked here: a version field, and `paths` being an object. Everything else is looked at lazily
//! by the index and the queries, so a description with a broken corner still answers questions
//! about the rest.

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};
use std::io::Read;
use std::path::Path;
use std::time::Duration;

/// Largest description accepted, in bytes (GitHub's is about 13 MB).
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Which family of the format a document belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SpecVersion {
    /// Swagger 2.0 (`swagger: "2.0"`).
    Swagger2,
    /// OpenAPI 3.0.x.
    OpenApi30,
    /// OpenAPI 3.1.x.
    OpenApi31,
}

impl SpecVersion {
    pub fn label(self) -> &'static str {
        match self {
            SpecVersion::Swagger2 => "swagger 2.0",
            SpecVersion::OpenApi30 => "openapi 3.0",
            SpecVersion::OpenApi31 => "openapi 3.1",
        }
    }
}

/// A parsed description plus where it came from.
#[derive(Debug, Clone)]
pub struct Document {
    pub root: Value,
    pub version: SpecVersion,
    /// The version string exactly as written (`3.0.3`, `2.0`, ...).
    pub version_string: String,
    /// File path or URL it was read from (or a caller-chosen label).
    pub source: String,
    /// Size of the raw text in bytes.
    pub size_bytes: usize,
}

/// Errors that say what is wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{source_name}: not valid JSON at line {line}, column {column}: {message}")]
    Json {
        source_name: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{source_name}: not valid YAML{location}: {message}")]
    Yaml {
        source_name: String,
        location: String,
        message: String,
    },
    #[error("{source_name}: invalid description at {pointer}: {message}")]
    Structure {
        source_name: String,
        pointer: String,
        message: String,
    },
    #[error("{source_name}: larger than the {limit} byte limit")]
    TooLarge { source_name: String, limit: usize },
}

/// Load a description from a file path or an http(s) URL.
pub fn load(location: &str) -> Result<Document> {
    load_with_limit(location, DEFAULT_MAX_BYTES)
}

/// Like [`load`], with an explicit size cap.
pub fn load_with_limit(location: &str, max_bytes: usize) -> Result<Document> {
    let bytes = if location.starts_with("http://") || location.starts_with("https://") {
        fetch_url(location, max_bytes)?
    } else {
        read_file(Path::new(location), max_bytes)?
    };
    Ok(parse_bytes(&bytes, location)?)
}

fn read_file(path: &Path, max_bytes: usize) -> Result<Vec<u8>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.len() as usize > max_bytes {
        return Err(LoadError::TooLarge {
            source_name: path.display().to_string(),
            limit: max_bytes,
        }
        .into());
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn fetch_url(url: &str, max_bytes: usize) -> Result<Vec<u8>> {
    let loopback = url::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| h == "localhost" || h.starts_with("127.") || h == "[::1]")
        })
        .unwrap_or(false);
    let mut builder = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .user_agent("connector-factory");
    if loopback {
        builder = builder.no_proxy();
    }
    let client = builder.build()?;
    let resp = client
        .get(url)
        .send()
        .with_context(|| format!("cannot fetch {url}"))?;
    let status = resp.status();
    if !status.is_success() {
        bail!("cannot fetch {url}: HTTP {status}");
    }
    if let Some(len) = resp.content_length() {
        if len as usize > max_bytes {
            return Err(LoadError::TooLarge {
                source_name: url.to_string(),
                limit: max_bytes,
            }
            .into());
        }
    }
    let mut buf = Vec::new();
    resp.take(max_bytes as u64 + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("cannot read the body of {url}"))?;
    if buf.len() > max_bytes {
        return Err(LoadError::TooLarge {
            source_name: url.to_string(),
            limit: max_bytes,
        }
        .into());
    }
    Ok(buf)
}

/// Parse raw text (JSON or YAML, detected from the first non-blank character) and check the outline.
pub fn parse_bytes(bytes: &[u8], source_name: &str) -> Result<Document, LoadError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let first = bytes.iter().copied().find(|b| !b.is_ascii_whitespace());
    let root: Value = if matches!(first, Some(b'{') | Some(b'[')) {
        serde_json::from_slice(bytes).map_err(|e| LoadError::Json {
            source_name: source_name.to_string(),
            line: e.line(),
            column: e.column(),
            message: strip_position(&e.to_string()),
        })?
    } else {
        let yaml: serde_yaml::Value =
            serde_yaml::from_slice(bytes).map_err(|e| LoadError::Yaml {
                source_name: source_name.to_string(),
                location: e
                    .location()
                    .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
                    .unwrap_or_default(),
                message: strip_position(&e.to_string()),
            })?;
        yaml_to_json(yaml, "").map_err(|(pointer, message)| LoadError::Structure {
            source_name: source_name.to_string(),
            pointer,
            message,
        })?
    };
    check_outline(root, source_name, bytes.len())
}

fn strip_position(msg: &str) -> String {
    // serde_json appends " at line L column C"; serde_yaml similar. The position is reported separately.
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn structure(source_name: &str, pointer: &str, message: impl Into<String>) -> LoadError {
    LoadError::Structure {
        source_name: source_name.to_string(),
        pointer: if pointer.is_empty() {
            "/ (the document root)".to_string()
        } else {
            pointer.to_string()
        },
        message: message.into(),
    }
}

fn check_outline(root: Value, source_name: &str, size: usize) -> Result<Document, LoadError> {
    let obj = match &root {
        Value::Object(o) => o,
        other => {
            return Err(structure(
                source_name,
                "",
                format!("the document must be an object, found {}", kind(other)),
            ));
        }
    };
    let (version, version_string) = if let Some(v) = obj.get("openapi") {
        let s = version_text(v).ok_or_else(|| {
            structure(
                source_name,
                "/openapi",
                "`openapi` must be a string like \"3.0.3\"",
            )
        })?;
        if s.starts_with("3.0") {
            (SpecVersion::OpenApi30, s)
        } else if s.starts_with("3.1") || s.starts_with("3.2") {
            (SpecVersion::OpenApi31, s)
        } else {
            return Err(structure(
                source_name,
                "/openapi",
                format!("unsupported OpenAPI version `{s}` (3.0.x and 3.1.x are)"),
            ));
        }
    } else if let Some(v) = obj.get("swagger") {
        let s = version_text(v).ok_or_else(|| {
            structure(
                source_name,
                "/swagger",
                "`swagger` must be the string \"2.0\"",
            )
        })?;
        if s == "2.0" || s == "2" {
            (SpecVersion::Swagger2, s)
        } else {
            return Err(structure(
                source_name,
                "/swagger",
                format!("unsupported Swagger version `{s}` (only 2.0 is)"),
            ));
        }
    } else {
        return Err(structure(
            source_name,
            "",
            "no `openapi` or `swagger` field: this is not an OpenAPI or Swagger description",
        ));
    };
    match obj.get("paths") {
        None if version == SpecVersion::OpenApi31 => {} // 3.1 allows webhooks-only documents
        None => {
            return Err(structure(
                source_name,
                "/paths",
                "missing `paths` (required in this version)",
            ));
        }
        Some(Value::Object(paths)) => {
            for (p, item) in paths {
                let ptr = format!(
                    "/paths/{}",
                    crate::openapi::resolve::escape_pointer_token(p)
                );
                if !p.starts_with('/') && !p.starts_with("x-") {
                    return Err(structure(
                        source_name,
                        &ptr,
                        format!("path `{p}` must start with `/`"),
                    ));
                }
                if !item.is_object() {
                    return Err(structure(
                        source_name,
                        &ptr,
                        format!("a path item must be an object, found {}", kind(item)),
                    ));
                }
            }
        }
        Some(other) => {
            return Err(structure(
                source_name,
                "/paths",
                format!("paths must be an object, found {}", kind(other)),
            ));
        }
    }
    if let Some(c) = obj.get("components") {
        if !c.is_object() {
            return Err(structure(
                source_name,
                "/components",
                format!("components must be an object, found {}", kind(c)),
            ));
        }
    }
    if let Some(d) = obj.get("definitions") {
        if !d.is_object() {
            return Err(structure(
                source_name,
                "/definitions",
                format!("definitions must be an object, found {}", kind(d)),
            ));
        }
    }
    Ok(Document {
        root,
        version,
        version_string,
        source: source_name.to_string(),
        size_bytes: size,
    })
}

fn version_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        // YAML `swagger: 2.0` without quotes parses as a number
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A short name for a JSON value's type, for error messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Convert YAML to JSON. Mapping keys that are numbers or booleans become strings (`200:`).
fn yaml_to_json(v: serde_yaml::Value, pointer: &str) -> Result<Value, (String, String)> {
    Ok(match v {
        serde_yaml::Value::Null => Value::Null,
        serde_yaml::Value::Bool(b) => Value::Bool(b),
        serde_yaml::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(0.0);
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
        }
        serde_yaml::Value::String(s) => Value::String(s),
        serde_yaml::Value::Sequence(seq) => {
            let mut out = Vec::with_capacity(seq.len());
            for (i, item) in seq.into_iter().enumerate() {
                out.push(yaml_to_json(item, &format!("{pointer}/{i}"))?);
            }
            Value::Array(out)
        }
        serde_yaml::Value::Mapping(m) => {
            let mut out = Map::new();
            for (k, val) in m {
                let key = match k {
                    serde_yaml::Value::String(s) => s,
                    serde_yaml::Value::Number(n) => n.to_string(),
                    serde_yaml::Value::Bool(b) => b.to_string(),
                    serde_yaml::Value::Null => "null".to_string(),
                    _ => {
                        return Err((
                            if pointer.is_empty() {
                                "/".to_string()
                            } else {
                                pointer.to_string()
                            },
                            "a mapping key must be a scalar".to_string(),
                        ));
                    }
                };
                let child = format!(
                    "{pointer}/{}",
                    crate::openapi::resolve::escape_pointer_token(&key)
                );
                let converted = yaml_to_json(val, &child)?;
                out.insert(key, converted);
            }
            Value::Object(out)
        }
        serde_yaml::Value::Tagged(t) => yaml_to_json(t.value, pointer)?,
    })
}

/// Parse a description given as a string (tests, agents).
pub fn parse_str(text: &str, source_name: &str) -> Result<Document, LoadError> {
    parse_bytes(text.as_bytes(), source_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_integer_keys_become_strings() {
        let doc = parse_str("openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get:\n      responses:\n        200:\n          description: ok\n", "t.yaml").unwrap();
        assert!(doc.root["paths"]["/a"]["get"]["responses"]["200"].is_object());
        assert_eq!(doc.version, SpecVersion::OpenApi30);
    }

    #[test]
    fn unquoted_swagger_version_is_accepted() {
        let doc = parse_str(
            "swagger: 2.0\ninfo: {title: t, version: '1'}\npaths: {}\n",
            "t.yaml",
        )
        .unwrap();
        assert_eq!(doc.version, SpecVersion::Swagger2);
    }

    #[test]
    fn json_error_has_line_and_column() {
        let err = parse_str(
            "{\n  \"openapi\": \"3.0.0\",\n  \"paths\": {,}\n}",
            "bad.json",
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn missing_version_field_is_reported_at_root() {
        let err = parse_str("{\"paths\": {}}", "x.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no `openapi` or `swagger` field"), "{err}");
        assert!(err.contains("document root"), "{err}");
    }

    #[test]
    fn paths_must_be_object() {
        let err = parse_str("{\"openapi\": \"3.0.1\", \"paths\": []}", "x.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("paths must be an object"), "{err}");
        assert!(err.contains("/paths"), "{err}");
    }
}

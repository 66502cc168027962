//! The operation index, and version-neutral views of operations (parameters, responses,
//! request bodies) over Swagger 2.0 and OpenAPI 3.x.

use super::Spec;
use super::detect::{Collection, Detected};
use super::load::SpecVersion;
use super::resolve::{deref, deref_lossy, escape_pointer_token};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;

/// HTTP methods a path item may hold, in the order they are listed.
pub const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// One operation of the description.
#[derive(Debug, Clone, Serialize)]
pub struct Operation {
    /// Upper-case method (`GET`).
    pub method: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deprecated: bool,
    /// JSON pointer of the operation object (`/paths/~1users/get`).
    pub pointer: String,
}

impl Operation {
    /// `GET /users`.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// Operations and schema names, built once after loading.
#[derive(Debug, Clone, Default)]
pub struct Index {
    pub operations: Vec<Operation>,
    by_id: HashMap<String, usize>,
    by_key: HashMap<String, usize>,
    /// Names under `components/schemas` (3.x) or `definitions` (2.0), sorted.
    pub schema_names: Vec<String>,
    /// Things skipped while indexing (unresolvable path item refs, non-object operations).
    pub problems: Vec<String>,
    /// Collection detection per operation, computed once on first use (see
    /// [`super::detect::collection`]).
    pub(crate) collections: std::sync::OnceLock<Vec<Option<Detected<Collection>>>>,
}

impl Index {
    pub fn build(root: &Value, version: SpecVersion) -> Index {
        let mut idx = Index::default();
        if let Some(paths) = root.get("paths").and_then(Value::as_object) {
            idx.operations.reserve(paths.len() * 2);
            for (path, raw_item) in paths {
                if !path.starts_with('/') {
                    continue; // x- extensions
                }
                let item = match deref(root, raw_item) {
                    Ok((v, _)) => v,
                    Err(e) => {
                        idx.problems
                            .push(format!("/paths/{}: {e}", escape_pointer_token(path)));
                        continue;
                    }
                };
                let Some(item) = item.as_object() else {
                    continue;
                };
                let path_ptr = format!("/paths/{}", escape_pointer_token(path));
                for m in METHODS {
                    let Some(op) = item.get(m) else { continue };
                    let Some(op) = op.as_object() else {
                        idx.problems
                            .push(format!("{path_ptr}/{m}: an operation must be an object"));
                        continue;
                    };
                    let operation_id = op
                        .get("operationId")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    let tags = op
                        .get("tags")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default();
                    let summary = op
                        .get("summary")
                        .and_then(Value::as_str)
                        .filter(|s| !s.trim().is_empty())
                        .map(|s| s.trim().to_string());
                    let deprecated = op
                        .get("deprecated")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    let o = Operation {
                        method: m.to_ascii_uppercase(),
                        path: path.clone(),
                        operation_id,
                        tags,
                        summary,
                        deprecated,
                        pointer: format!("{path_ptr}/{m}"),
                    };
                    let i = idx.operations.len();
                    if let Some(id) = &o.operation_id {
                        idx.by_id.entry(id.clone()).or_insert(i);
                    }
                    idx.by_key.insert(o.key(), i);
                    idx.operations.push(o);
                }
            }
        }
        let schemas = match version {
            SpecVersion::Swagger2 => root.get("definitions"),
            _ => root.pointer("/components/schemas"),
        };
        if let Some(s) = schemas.and_then(Value::as_object) {
            idx.schema_names = s.keys().cloned().collect();
            idx.schema_names.sort();
        }
        idx
    }

    /// Find an operation by operationId, by `METHOD /path`, or by a bare `/path` (meaning GET).
    pub fn find(&self, key: &str) -> Option<usize> {
        let key = key.trim();
        if let Some(&i) = self.by_id.get(key) {
            return Some(i);
        }
        if let Some((m, p)) = key.split_once(char::is_whitespace) {
            let k = format!("{} {}", m.to_ascii_uppercase(), p.trim());
            if let Some(&i) = self.by_key.get(&k) {
                return Some(i);
            }
        }
        if key.starts_with('/') {
            if let Some(&i) = self.by_key.get(&format!("GET {key}")) {
                return Some(i);
            }
        }
        let lower = key.to_ascii_lowercase();
        self.operations.iter().position(|o| {
            o.operation_id
                .as_deref()
                .map(|id| id.to_ascii_lowercase() == lower)
                .unwrap_or(false)
        })
    }
}

/// A parameter with refs resolved and Swagger 2.0 differences smoothed over.
#[derive(Debug, Clone, Serialize)]
pub struct Param {
    pub name: String,
    /// `query`, `path`, `header`, `cookie`, `body` or `formData`.
    #[serde(rename = "in")]
    pub location: String,
    pub required: bool,
    /// The parameter's schema (3.x `schema`, 2.0 the parameter itself or its body `schema`).
    #[serde(skip)]
    pub schema: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub style: Option<String>,
    /// Where it is defined (`#/components/parameters/per-page` or the operation's pointer).
    pub pointer: String,
}

/// One response of an operation, with its JSON body schema when it has one.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: String,
    pub description: Option<String>,
    pub content_types: Vec<String>,
    /// The body schema as written (may be a `$ref`).
    pub schema: Option<Value>,
    /// JSON pointer of the body schema.
    pub schema_pointer: Option<String>,
    /// Header names the response documents.
    pub headers: Vec<String>,
    /// An example body, when the description gives one.
    pub example: Option<Value>,
    pub pointer: String,
}

/// The status [`Spec::success_response`] picks among `statuses` (sorted), if any.
pub fn pick_success_status<'s>(statuses: &[&'s str]) -> Option<&'s str> {
    statuses
        .iter()
        .find(|s| **s == "200")
        .or_else(|| {
            statuses
                .iter()
                .find(|s| s.starts_with('2') && s.len() == 3 && **s != "204")
        })
        .or_else(|| statuses.iter().find(|s| s.eq_ignore_ascii_case("2XX")))
        .or_else(|| statuses.iter().find(|s| **s == "default"))
        .copied()
}

/// A request body summary.
#[derive(Debug, Clone)]
pub struct RequestBody {
    pub required: bool,
    pub content_types: Vec<String>,
    pub schema: Option<Value>,
    pub schema_pointer: Option<String>,
}

fn pick_json_media<'a>(
    content: &'a serde_json::Map<String, Value>,
) -> Option<(&'a String, &'a Value)> {
    content
        .iter()
        .find(|(k, _)| k.as_str() == "application/json")
        .or_else(|| content.iter().find(|(k, _)| k.contains("json")))
        .or_else(|| content.iter().find(|(k, _)| k.as_str() == "*/*"))
}

impl Spec {
    /// The operation object.
    pub fn operation_value(&self, op: &Operation) -> &Value {
        self.doc.root.pointer(&op.pointer).unwrap_or(&Value::Null)
    }

    /// Parameters of an operation: path-level ones overridden by operation-level ones.
    pub fn parameters(&self, op: &Operation) -> Vec<Param> {
        let root = &self.doc.root;
        let op_v = self.operation_value(op);
        let item_ptr = op.pointer.rsplit_once('/').map(|(a, _)| a).unwrap_or("");
        let item = root.pointer(item_ptr).map(|v| deref_lossy(root, v));
        let mut out: Vec<Param> = Vec::new();
        let lists = [
            (
                item.and_then(|i| i.get("parameters")),
                format!("{item_ptr}/parameters"),
            ),
            (op_v.get("parameters"), format!("{}/parameters", op.pointer)),
        ];
        for (list, base) in lists {
            let Some(list) = list.and_then(Value::as_array) else {
                continue;
            };
            for (i, raw) in list.iter().enumerate() {
                let (p, at) = match deref(root, raw) {
                    Ok(x) => x,
                    Err(_) => continue,
                };
                let Some(name) = p.get("name").and_then(Value::as_str) else {
                    continue;
                };
                let location = p
                    .get("in")
                    .and_then(Value::as_str)
                    .unwrap_or("query")
                    .to_string();
                let schema = if let Some(s) = p.get("schema") {
                    s.clone()
                } else if let Some(content) = p.get("content").and_then(Value::as_object) {
                    pick_json_media(content)
                        .and_then(|(_, m)| m.get("schema"))
                        .cloned()
                        .unwrap_or(Value::Null)
                } else {
                    // Swagger 2.0 non-body parameter: the type keywords sit on the parameter itself.
                    let mut s = serde_json::Map::new();
                    if let Some(obj) = p.as_object() {
                        for (k, v) in obj {
                            if matches!(
                                k.as_str(),
                                "type"
                                    | "format"
                                    | "items"
                                    | "enum"
                                    | "default"
                                    | "minimum"
                                    | "maximum"
                                    | "pattern"
                                    | "collectionFormat"
                            ) {
                                s.insert(k.clone(), v.clone());
                            }
                        }
                    }
                    Value::Object(s)
                };
                let param = Param {
                    name: name.to_string(),
                    required: p
                        .get("required")
                        .and_then(Value::as_bool)
                        .unwrap_or(location == "path"),
                    location,
                    schema,
                    description: p
                        .get("description")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    style: p.get("style").and_then(Value::as_str).map(str::to_string),
                    pointer: at.unwrap_or_else(|| format!("#{base}/{i}")),
                };
                if let Some(existing) = out
                    .iter_mut()
                    .find(|e| e.name == param.name && e.location == param.location)
                {
                    *existing = param;
                } else {
                    out.push(param);
                }
            }
        }
        out
    }

    /// All responses of an operation, in status order.
    pub fn responses(&self, op: &Operation) -> Vec<Response> {
        let op_v = self.operation_value(op);
        let Some(resps) = op_v.get("responses").and_then(Value::as_object) else {
            return Vec::new();
        };
        let mut out: Vec<Response> = resps
            .iter()
            .filter(|(status, _)| !status.starts_with("x-"))
            .filter_map(|(status, raw)| self.build_response(op, op_v, status, raw))
            .collect();
        out.sort_by(|a, b| a.status.cmp(&b.status));
        out
    }

    fn build_response(
        &self,
        op: &Operation,
        op_v: &Value,
        status: &str,
        raw: &Value,
    ) -> Option<Response> {
        let root = &self.doc.root;
        let (r, at) = deref(root, raw).ok()?;
        let base = match at {
            Some(a) => a.trim_start_matches('#').to_string(),
            None => format!("{}/responses/{}", op.pointer, escape_pointer_token(status)),
        };
        let mut content_types = Vec::new();
        let mut schema = None;
        let mut schema_pointer = None;
        let mut example = None;
        if let Some(content) = r.get("content").and_then(Value::as_object) {
            content_types = content.keys().cloned().collect();
            if let Some((ct, media)) = pick_json_media(content) {
                if let Some(s) = media.get("schema") {
                    schema = Some(s.clone());
                    schema_pointer = Some(format!(
                        "#{base}/content/{}/schema",
                        escape_pointer_token(ct)
                    ));
                }
                example = media.get("example").cloned().or_else(|| {
                    media
                        .get("examples")
                        .and_then(Value::as_object)
                        .and_then(|ex| ex.values().next())
                        .map(|e| deref_lossy(root, e))
                        .and_then(|e| e.get("value").cloned())
                });
            }
        } else if let Some(s) = r.get("schema") {
            schema = Some(s.clone());
            schema_pointer = Some(format!("#{base}/schema"));
            content_types = op_v
                .get("produces")
                .or_else(|| root.get("produces"))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            example = r
                .get("examples")
                .and_then(Value::as_object)
                .and_then(|ex| {
                    ex.iter()
                        .find(|(k, _)| k.contains("json"))
                        .or_else(|| ex.iter().next())
                })
                .map(|(_, v)| v.clone());
        }
        let headers = r
            .get("headers")
            .and_then(Value::as_object)
            .map(|h| h.keys().cloned().collect())
            .unwrap_or_default();
        Some(Response {
            status: status.to_string(),
            description: r
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_string),
            content_types,
            schema,
            schema_pointer,
            headers,
            example,
            pointer: format!("#{base}"),
        })
    }

    /// The main success response: 200, else the first 2xx, else `2XX`, else `default`.
    /// Only that response is built (examples of the others are not copied).
    pub fn success_response(&self, op: &Operation) -> Option<Response> {
        let op_v = self.operation_value(op);
        let resps = op_v.get("responses").and_then(Value::as_object)?;
        let root = &self.doc.root;
        // only responses that resolve take part, as in `responses()`
        let mut statuses: Vec<&str> = resps
            .iter()
            .filter(|(status, raw)| !status.starts_with("x-") && deref(root, raw).is_ok())
            .map(|(s, _)| s.as_str())
            .collect();
        statuses.sort();
        let status = pick_success_status(&statuses)?;
        self.build_response(op, op_v, status, resps.get(status)?)
    }

    /// The body schema of the main success response and its pointer, without copying anything
    /// but the pointer.
    pub fn success_schema(&self, op: &Operation) -> Option<(&Value, String)> {
        let op_v = self.operation_value(op);
        let resps = op_v.get("responses").and_then(Value::as_object)?;
        let root = &self.doc.root;
        let mut statuses: Vec<&str> = resps
            .iter()
            .filter(|(status, raw)| !status.starts_with("x-") && deref(root, raw).is_ok())
            .map(|(s, _)| s.as_str())
            .collect();
        statuses.sort();
        let status = pick_success_status(&statuses)?;
        let raw = resps.get(status)?;
        let (r, at) = deref(root, raw).ok()?;
        let base = match at {
            Some(a) => a.trim_start_matches('#').to_string(),
            None => format!("{}/responses/{}", op.pointer, escape_pointer_token(status)),
        };
        if let Some(content) = r.get("content").and_then(Value::as_object) {
            let (ct, media) = pick_json_media(content)?;
            let s = media.get("schema")?;
            Some((
                s,
                format!("#{base}/content/{}/schema", escape_pointer_token(ct)),
            ))
        } else {
            r.get("schema").map(|s| (s, format!("#{base}/schema")))
        }
    }

    /// The request body (3.x `requestBody`, 2.0 `in: body` / `formData` parameters).
    pub fn request_body(&self, op: &Operation) -> Option<RequestBody> {
        let root = &self.doc.root;
        let op_v = self.operation_value(op);
        if let Some(raw) = op_v.get("requestBody") {
            let (rb, at) = deref(root, raw).ok()?;
            let base = at
                .map(|a| a.trim_start_matches('#').to_string())
                .unwrap_or(format!("{}/requestBody", op.pointer));
            let content = rb.get("content").and_then(Value::as_object);
            let content_types = content
                .map(|c| c.keys().cloned().collect())
                .unwrap_or_default();
            let picked = content.and_then(|c| pick_json_media(c).or_else(|| c.iter().next()));
            let (schema, schema_pointer) = match picked {
                Some((ct, media)) => match media.get("schema") {
                    Some(s) => (
                        Some(s.clone()),
                        Some(format!(
                            "#{base}/content/{}/schema",
                            escape_pointer_token(ct)
                        )),
                    ),
                    None => (None, None),
                },
                None => (None, None),
            };
            return Some(RequestBody {
                required: rb.get("required").and_then(Value::as_bool).unwrap_or(false),
                content_types,
                schema,
                schema_pointer,
            });
        }
        let params = self.parameters(op);
        if let Some(body) = params.iter().find(|p| p.location == "body") {
            let consumes = op_v
                .get("consumes")
                .or_else(|| root.get("consumes"))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_else(|| vec!["application/json".to_string()]);
            return Some(RequestBody {
                required: body.required,
                content_types: consumes,
                schema: Some(body.schema.clone()),
                schema_pointer: Some(format!("{}/schema", body.pointer)),
            });
        }
        let form: Vec<&Param> = params.iter().filter(|p| p.location == "formData").collect();
        if !form.is_empty() {
            let mut props = serde_json::Map::new();
            let mut required = Vec::new();
            for p in &form {
                props.insert(p.name.clone(), p.schema.clone());
                if p.required {
                    required.push(Value::String(p.name.clone()));
                }
            }
            return Some(RequestBody {
                required: !required.is_empty(),
                content_types: vec!["application/x-www-form-urlencoded".to_string()],
                schema: Some(
                    serde_json::json!({"type": "object", "properties": props, "required": required}),
                ),
                schema_pointer: None,
            });
        }
        None
    }

    /// Pointer of a named schema (`components/schemas` or `definitions`), accepting a full `#/...` ref too.
    pub fn schema_pointer(&self, name: &str) -> Option<String> {
        if let Some(p) = name.strip_prefix('#') {
            return self.doc.root.pointer(p).map(|_| name.to_string());
        }
        let base = match self.doc.version {
            SpecVersion::Swagger2 => "/definitions",
            _ => "/components/schemas",
        };
        let ptr = format!("{base}/{}", escape_pointer_token(name));
        if self.doc.root.pointer(&ptr).is_some() {
            return Some(format!("#{ptr}"));
        }
        // case-insensitive fallback
        let lower = name.to_ascii_lowercase();
        self.index
            .schema_names
            .iter()
            .find(|n| n.to_ascii_lowercase() == lower)
            .map(|n| format!("#{base}/{}", escape_pointer_token(n)))
    }
}

//! Checks response bodies against GitHub's own REST description (npm `@octokit/openapi`,
//! `generated/api.github.com.json`, fetched by `.ci/fetch-fixtures.sh`).
//!
//! The operation is found by method and path (the description's path templates, `{param}`
//! matching one segment; the template with the most literal segments wins). Its documented 2xx
//! `application/json` schema is validated with `jsonschema`: the whole description is the root
//! schema and a top-level `$ref` points at the response schema by JSON pointer, so every
//! `#/components/...` reference inside resolves against the same document.
//!
//! The description is OpenAPI 3.0, whose `nullable: true` JSON Schema does not know; it is
//! rewritten once on load into `type: [.., "null"]` (or an `anyOf` with `{"type": "null"}`).
//! Draft 4 is the closest JSON Schema draft to OpenAPI 3.0's dialect (boolean
//! `exclusiveMinimum`, `$ref` replacing its siblings).

use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// A response that does not match its documented schema.
#[derive(Debug, Clone)]
pub struct Violation {
    pub operation_id: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// Where in the response body (JSON pointer; empty for the root).
    pub instance_pointer: String,
    /// Which part of the schema refused it.
    pub schema_pointer: String,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} {} -> {}): at '{}': {} [schema {}]",
            self.operation_id,
            self.method,
            self.path,
            self.status,
            self.instance_pointer,
            self.message,
            self.schema_pointer
        )
    }
}

struct Operation {
    id: String,
    template: String,
}

pub struct OpenApiChecker {
    document: Arc<Value>,
    templates: Vec<(String, Vec<Option<String>>)>,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

static FETCH: Mutex<()> = Mutex::new(());
static GITHUB: OnceLock<Arc<OpenApiChecker>> = OnceLock::new();

/// `.cache/fixtures/github/api.github.com.json`, fetched from the npm registry when missing.
pub fn github_description_path() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let file = root.join(".cache/fixtures/github/api.github.com.json");
    let _guard = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    if !file.is_file() {
        let out = std::process::Command::new("bash")
            .arg(root.join(".ci/fetch-fixtures.sh"))
            .output()
            .expect("running .ci/fetch-fixtures.sh");
        assert!(
            out.status.success() && file.is_file(),
            "GitHub's REST description is not cached and fetching it failed \
             (run .ci/fetch-fixtures.sh by hand to see why):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    file
}

impl OpenApiChecker {
    /// The checker for GitHub's description, loaded once per test binary.
    pub fn github() -> Arc<OpenApiChecker> {
        GITHUB
            .get_or_init(|| {
                let text = std::fs::read_to_string(github_description_path()).expect("reading the GitHub description");
                let document: Value = serde_json::from_str(&text).expect("the GitHub description is JSON");
                Arc::new(OpenApiChecker::new(document))
            })
            .clone()
    }

    pub fn new(mut document: Value) -> OpenApiChecker {
        rewrite_nullable(&mut document);
        let templates = document["paths"]
            .as_object()
            .map(|paths| {
                paths
                    .keys()
                    .map(|t| {
                        let segs = t
                            .split('/')
                            .map(|s| if s.starts_with('{') && s.ends_with('}') { None } else { Some(s.to_string()) })
                            .collect();
                        (t.clone(), segs)
                    })
                    .collect()
            })
            .unwrap_or_default();
        OpenApiChecker { document: Arc::new(document), templates, validators: Mutex::new(HashMap::new()) }
    }

    /// The path template a concrete path belongs to.
    pub fn template_for(&self, path: &str) -> Option<&str> {
        let path = path.split('?').next().unwrap_or(path);
        let segs: Vec<&str> = path.split('/').collect();
        self.templates
            .iter()
            .filter(|(_, t)| {
                t.len() == segs.len()
                    && t.iter().zip(&segs).all(|(t, s)| match t {
                        Some(lit) => lit == s,
                        None => !s.is_empty(),
                    })
            })
            .max_by_key(|(_, t)| t.iter().filter(|s| s.is_some()).count())
            .map(|(name, _)| name.as_str())
    }

    fn operation(&self, method: &str, path: &str) -> Option<Operation> {
        let template = self.template_for(path)?;
        let op = self.document["paths"][template].get(method.to_ascii_lowercase())?;
        Some(Operation { id: op["operationId"].as_str().unwrap_or("?").to_string(), template: template.to_string() })
    }

    /// The operation id for a method and concrete path, if the description has one.
    pub fn operation_id(&self, method: &str, path: &str) -> Option<String> {
        self.operation(method, path).map(|o| o.id)
    }

    /// Checks one response. Only 2xx JSON bodies are checked (errors are GitHub's generic
    /// `basic-error` and the fake's faults are deliberately not GitHub objects).
    #[allow(clippy::result_large_err)] // one per test failure; boxing buys nothing
    pub fn check(&self, method: &str, path: &str, status: u16, body: &Value) -> Result<(), Violation> {
        let violation = |op: &str, instance: String, schema: String, message: String| Violation {
            operation_id: op.to_string(),
            method: method.to_string(),
            path: path.to_string(),
            status,
            instance_pointer: instance,
            schema_pointer: schema,
            message,
        };
        let Some(op) = self.operation(method, path) else {
            return Err(violation(
                "(unknown)",
                String::new(),
                String::new(),
                "no such operation in GitHub's REST description".into(),
            ));
        };
        let method_key = method.to_ascii_lowercase();
        let responses = &self.document["paths"][&op.template][&method_key]["responses"];
        let status_key = status.to_string();
        let Some(response) = responses.get(&status_key) else {
            return Err(violation(
                &op.id,
                String::new(),
                String::new(),
                format!("status {status} is not documented for this operation"),
            ));
        };
        if response.pointer("/content/application~1json/schema").is_none() {
            return Err(violation(
                &op.id,
                String::new(),
                String::new(),
                format!("status {status} documents no JSON body"),
            ));
        }
        let pointer = format!(
            "#/paths/{}/{}/responses/{}/content/application~1json/schema",
            escape(&op.template),
            method_key,
            status_key
        );
        let validator = self.validator(&pointer);
        match validator.iter_errors(body).next() {
            None => Ok(()),
            Some(err) => {
                Err(violation(&op.id, err.instance_path().to_string(), err.schema_path().to_string(), err.to_string()))
            }
        }
    }

    fn validator(&self, pointer: &str) -> Arc<jsonschema::Validator> {
        // Held while compiling: two tests wanting the same schema compile it once.
        let mut validators = self.validators.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = validators.get(pointer) {
            return v.clone();
        }
        // Root = the whole description plus a `$ref` at the response schema; Draft 4 ignores
        // the `$ref`'s siblings, so only the pointed-at schema (and what it references) applies.
        let mut root = (*self.document).clone();
        root.as_object_mut().unwrap().insert("$ref".into(), Value::String(pointer.to_string()));
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("compiling the schema at {pointer}: {e}"));
        let validator = Arc::new(validator);
        validators.insert(pointer.to_string(), validator.clone());
        validator
    }
}

/// One JSON pointer token, escaped for use in a URI fragment (`{` and `}` are not allowed
/// there bare).
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1").replace('{', "%7B").replace('}', "%7D")
}

/// OpenAPI 3.0 `nullable: true` → plain JSON Schema.
pub fn rewrite_nullable(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(rewrite_nullable),
        Value::Object(map) => {
            map.values_mut().for_each(rewrite_nullable);
            if map.get("nullable") == Some(&Value::Bool(true)) {
                map.remove("nullable");
                nullable(map);
            }
        }
        _ => {}
    }
}

fn nullable(map: &mut Map<String, Value>) {
    if let Some(Value::Array(options)) = map.get_mut("enum")
        && !options.contains(&Value::Null)
    {
        options.push(Value::Null);
    }
    match map.get_mut("type") {
        Some(Value::String(t)) => {
            let t = t.clone();
            map.insert("type".into(), json!([t, "null"]));
        }
        Some(Value::Array(types)) => {
            if !types.contains(&json!("null")) {
                types.push(json!("null"));
            }
        }
        _ => {
            // No `type` (allOf / oneOf / $ref): null, or whatever the schema allowed.
            let rest = std::mem::take(map);
            map.insert("anyOf".into(), json!([{ "type": "null" }, Value::Object(rest)]));
        }
    }
}

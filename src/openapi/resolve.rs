//! Local `$ref` resolution: JSON pointers (`#/a/b~1c`), ref chains with cycle detection, and
//! bounded inlining of a whole schema tree.

use serde_json::{Map, Value};
use std::collections::HashSet;

/// How far a chain of refs (a ref whose target is itself a ref) may go.
pub const MAX_REF_CHAIN: usize = 32;

/// Escape one token for use in a JSON pointer (`~` → `~0`, `/` → `~1`).
pub fn escape_pointer_token(token: &str) -> String {
    if !token.contains(['~', '/']) {
        return token.to_string();
    }
    token.replace('~', "~0").replace('/', "~1")
}

/// Undo [`escape_pointer_token`] (and percent-encoding, which URI fragments may carry).
pub fn unescape_pointer_token(token: &str) -> String {
    let decoded = if token.contains('%') {
        percent_decode(token)
    } else {
        token.to_string()
    };
    decoded.replace("~1", "/").replace("~0", "~")
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Build a pointer from tokens.
pub fn pointer(tokens: &[&str]) -> String {
    let mut s = String::new();
    for t in tokens {
        s.push('/');
        s.push_str(&escape_pointer_token(t));
    }
    s
}

/// Errors from resolving a reference.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RefError {
    #[error("`{0}` is not a local reference (only `#/...` refs are supported)")]
    External(String),
    #[error("`{reference}` points at nothing: `{missing}` not found")]
    Missing { reference: String, missing: String },
    #[error("reference cycle: {0}")]
    Cycle(String),
    #[error("reference chain longer than {MAX_REF_CHAIN} starting at `{0}`")]
    TooDeep(String),
}

/// Look up a JSON pointer (`/a/b`, without the `#`) in `root`.
pub fn get_pointer<'a>(root: &'a Value, ptr: &str) -> Option<&'a Value> {
    if ptr.is_empty() {
        return Some(root);
    }
    let mut cur = root;
    for raw in ptr.strip_prefix('/')?.split('/') {
        let token = unescape_pointer_token(raw);
        cur = match cur {
            Value::Object(m) => m.get(&token)?,
            Value::Array(a) => a.get(token.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// The `$ref` string of a value, if it is a reference object.
pub fn ref_of(v: &Value) -> Option<&str> {
    v.as_object()?.get("$ref")?.as_str()
}

/// Resolve one reference string to its target, following ref chains.
/// Returns the target and the pointer (with `#`) it was found at.
pub fn resolve_ref<'a>(root: &'a Value, reference: &str) -> Result<(&'a Value, String), RefError> {
    let mut seen: Vec<String> = Vec::new();
    let mut current = reference.to_string();
    loop {
        if seen.iter().any(|s| s == &current) {
            seen.push(current);
            return Err(RefError::Cycle(seen.join(" -> ")));
        }
        if seen.len() >= MAX_REF_CHAIN {
            return Err(RefError::TooDeep(reference.to_string()));
        }
        let frag = current
            .strip_prefix('#')
            .ok_or_else(|| RefError::External(current.clone()))?;
        let target = get_pointer(root, frag).ok_or_else(|| RefError::Missing {
            reference: reference.to_string(),
            missing: current.clone(),
        })?;
        seen.push(current.clone());
        match ref_of(target) {
            Some(next) => current = next.to_string(),
            None => return Ok((target, current)),
        }
    }
}

/// If `v` is a reference, resolve it; otherwise return it as is.
/// The second value is the pointer of the resolved target when `v` was a reference.
pub fn deref<'a>(root: &'a Value, v: &'a Value) -> Result<(&'a Value, Option<String>), RefError> {
    match ref_of(v) {
        Some(r) => resolve_ref(root, r).map(|(t, p)| (t, Some(p))),
        None => Ok((v, None)),
    }
}

/// Like [`deref`] but never fails: an unresolvable reference is returned unchanged.
pub fn deref_lossy<'a>(root: &'a Value, v: &'a Value) -> &'a Value {
    deref(root, v).map(|(t, _)| t).unwrap_or(v)
}

/// Limits for [`expand`].
#[derive(Debug, Clone, Copy)]
pub struct ExpandLimits {
    /// Nesting depth (containers) after which references are no longer inlined.
    pub max_depth: usize,
    /// Total nodes produced; past it, references are left as they are.
    pub max_nodes: usize,
}

impl Default for ExpandLimits {
    fn default() -> Self {
        ExpandLimits {
            max_depth: 64,
            max_nodes: 200_000,
        }
    }
}

/// Result of inlining the references of a value.
#[derive(Debug, Clone)]
pub struct Expanded {
    pub value: Value,
    /// Refs left in place because inlining them would recurse (pointer of the ref target).
    pub cycles: Vec<String>,
    /// Refs that could not be resolved, with the reason.
    pub errors: Vec<String>,
    /// True when a depth or node limit stopped the inlining somewhere.
    pub limited: bool,
}

/// Inline every local reference reachable from `v`. A reference already being inlined further up
/// the same branch is a cycle: it is left as `{"$ref": ..., "x-cycle": true}`. Inlined objects
/// carry `"x-ref"` with the pointer they came from, so a reader can ask for them by name.
pub fn expand(root: &Value, v: &Value, limits: ExpandLimits) -> Expanded {
    let mut st = ExpandState {
        root,
        limits,
        nodes: 0,
        stack: Vec::new(),
        cycles: HashSet::new(),
        errors: Vec::new(),
        limited: false,
    };
    let value = st.walk(v, 0);
    let mut cycles: Vec<String> = st.cycles.into_iter().collect();
    cycles.sort();
    Expanded {
        value,
        cycles,
        errors: st.errors,
        limited: st.limited,
    }
}

struct ExpandState<'a> {
    root: &'a Value,
    limits: ExpandLimits,
    nodes: usize,
    stack: Vec<String>,
    cycles: HashSet<String>,
    errors: Vec<String>,
    limited: bool,
}

impl<'a> ExpandState<'a> {
    fn walk(&mut self, v: &'a Value, depth: usize) -> Value {
        self.nodes += 1;
        match v {
            Value::Object(map) => {
                if let Some(r) = map.get("$ref").and_then(Value::as_str) {
                    return self.inline_ref(r, map, depth);
                }
                if depth >= self.limits.max_depth || self.nodes > self.limits.max_nodes {
                    self.limited = true;
                    return Value::String(format!("… ({} keys not expanded: limit)", map.len()));
                }
                let mut out = Map::new();
                for (k, child) in map {
                    out.insert(k.clone(), self.walk(child, depth + 1));
                }
                Value::Object(out)
            }
            Value::Array(items) => {
                if depth >= self.limits.max_depth || self.nodes > self.limits.max_nodes {
                    self.limited = true;
                    return Value::String(format!("… ({} items not expanded: limit)", items.len()));
                }
                Value::Array(items.iter().map(|i| self.walk(i, depth + 1)).collect())
            }
            other => other.clone(),
        }
    }

    fn inline_ref(&mut self, r: &str, map: &'a Map<String, Value>, depth: usize) -> Value {
        let (target, at) = match resolve_ref(self.root, r) {
            Ok(t) => t,
            Err(e) => {
                let mut kept = map.clone();
                match &e {
                    RefError::Cycle(_) | RefError::TooDeep(_) => {
                        self.cycles.insert(r.to_string());
                        kept.insert("x-cycle".into(), Value::Bool(true));
                    }
                    _ => {
                        kept.insert("x-unresolved".into(), Value::String(e.to_string()));
                    }
                }
                self.errors.push(e.to_string());
                return Value::Object(kept);
            }
        };
        if self.stack.iter().any(|s| s == &at) {
            self.cycles.insert(at.clone());
            let mut kept = Map::new();
            kept.insert("$ref".into(), Value::String(at));
            kept.insert("x-cycle".into(), Value::Bool(true));
            return Value::Object(kept);
        }
        if depth >= self.limits.max_depth || self.nodes > self.limits.max_nodes {
            self.limited = true;
            let mut kept = Map::new();
            kept.insert("$ref".into(), Value::String(at));
            kept.insert("x-not-expanded".into(), Value::String("limit".into()));
            return Value::Object(kept);
        }
        self.stack.push(at.clone());
        let mut value = self.walk(target, depth);
        self.stack.pop();
        if let Value::Object(obj) = &mut value {
            // OpenAPI 3.1 allows keywords beside `$ref`; they apply on top of the target.
            for (k, sib) in map {
                if k != "$ref" {
                    let w = self.walk(sib, depth + 1);
                    obj.insert(k.clone(), w);
                }
            }
            obj.entry("x-ref").or_insert(Value::String(at));
        }
        value
    }
}

/// A flattened look at one schema: refs followed, `allOf` merged, a lone non-null `anyOf`/`oneOf`
/// variant unwrapped, `nullable` / `x-nullable` / `type: [.., "null"]` folded into one flag.
#[derive(Debug, Clone, Default)]
pub struct SchemaView<'a> {
    /// JSON types other than `null` (`object`, `array`, `string`, ...); inferred when `type` is absent.
    pub types: Vec<String>,
    pub nullable: bool,
    pub format: Option<&'a str>,
    /// Properties in declaration order; later `allOf` members override earlier ones.
    pub properties: Vec<(String, &'a Value)>,
    pub required: Vec<String>,
    pub items: Option<&'a Value>,
    pub enum_values: Option<&'a Vec<Value>>,
    /// Pointer of the (last) ref followed to get here.
    pub pointer: Option<String>,
    /// Variants of an `anyOf`/`oneOf` that could not be reduced to one.
    pub variants: Vec<&'a Value>,
    pub description: Option<&'a str>,
    pub example: Option<&'a Value>,
}

impl<'a> SchemaView<'a> {
    pub fn is_object(&self) -> bool {
        self.types.iter().any(|t| t == "object")
    }
    pub fn is_array(&self) -> bool {
        self.types.iter().any(|t| t == "array")
    }
    pub fn has_type(&self, t: &str) -> bool {
        self.types.iter().any(|x| x == t)
    }
    pub fn property(&self, name: &str) -> Option<&'a Value> {
        self.properties
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }
}

/// Build a [`SchemaView`] of `schema` (which may be a ref).
pub fn view<'a>(root: &'a Value, schema: &'a Value) -> SchemaView<'a> {
    let mut out = SchemaView::default();
    collect_view(root, schema, &mut out, 0);
    if out.types.is_empty() {
        if !out.properties.is_empty() {
            out.types.push("object".into());
        } else if out.items.is_some() {
            out.types.push("array".into());
        }
    }
    out
}

fn is_null_schema(root: &Value, s: &Value) -> bool {
    let s = deref_lossy(root, s);
    matches!(s.get("type"), Some(Value::String(t)) if t == "null")
        || s.get("enum")
            .and_then(Value::as_array)
            .map(|e| e.len() == 1 && e[0].is_null())
            .unwrap_or(false)
}

fn collect_view<'a>(root: &'a Value, schema: &'a Value, out: &mut SchemaView<'a>, depth: usize) {
    if depth > 12 {
        return;
    }
    let (s, at) = match deref(root, schema) {
        Ok(x) => x,
        Err(_) => return,
    };
    if at.is_some() {
        out.pointer = at;
    }
    let Some(obj) = s.as_object() else { return };
    match obj.get("type") {
        Some(Value::String(t)) if t == "null" => out.nullable = true,
        Some(Value::String(t)) => push_unique(&mut out.types, t),
        Some(Value::Array(ts)) => {
            for t in ts.iter().filter_map(Value::as_str) {
                if t == "null" {
                    out.nullable = true;
                } else {
                    push_unique(&mut out.types, t);
                }
            }
        }
        _ => {}
    }
    if obj.get("nullable").and_then(Value::as_bool) == Some(true)
        || obj.get("x-nullable").and_then(Value::as_bool) == Some(true)
    {
        out.nullable = true;
    }
    if let Some(f) = obj.get("format").and_then(Value::as_str) {
        out.format = Some(f);
    }
    if let Some(d) = obj.get("description").and_then(Value::as_str) {
        out.description.get_or_insert(d);
    }
    if let Some(e) = obj.get("example") {
        out.example.get_or_insert(e);
    }
    if let Some(e) = obj.get("enum").and_then(Value::as_array) {
        out.enum_values = Some(e);
    }
    if let Some(items) = obj.get("items") {
        out.items = Some(items);
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            if let Some(slot) = out.properties.iter_mut().find(|(n, _)| n == k) {
                slot.1 = v;
            } else {
                out.properties.push((k.clone(), v));
            }
        }
    }
    if let Some(req) = obj.get("required").and_then(Value::as_array) {
        for r in req.iter().filter_map(Value::as_str) {
            push_unique(&mut out.required, r);
        }
    }
    if let Some(all) = obj.get("allOf").and_then(Value::as_array) {
        for part in all {
            collect_view(root, part, out, depth + 1);
        }
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(vars) = obj.get(key).and_then(Value::as_array) {
            let non_null: Vec<&Value> = vars.iter().filter(|v| !is_null_schema(root, v)).collect();
            if non_null.len() < vars.len() {
                out.nullable = true;
            }
            if non_null.len() == 1 {
                collect_view(root, non_null[0], out, depth + 1);
            } else {
                for v in non_null {
                    let sub = view(root, v);
                    for t in &sub.types {
                        push_unique(&mut out.types, t);
                    }
                    out.variants.push(v);
                }
            }
        }
    }
}

fn push_unique(v: &mut Vec<String>, s: &str) {
    if !v.iter().any(|x| x == s) {
        v.push(s.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escaping_round_trips() {
        let t = "/repos/{owner}~x";
        assert_eq!(escape_pointer_token(t), "~1repos~1{owner}~0x");
        assert_eq!(unescape_pointer_token(&escape_pointer_token(t)), t);
        assert_eq!(unescape_pointer_token("a%20b"), "a b");
    }

    #[test]
    fn pointer_lookup_with_escapes() {
        let root = json!({"paths": {"/a/b": {"get": {"x": [1, 2]}}}});
        assert_eq!(get_pointer(&root, "/paths/~1a~1b/get/x/1"), Some(&json!(2)));
        assert_eq!(get_pointer(&root, "/paths/~1a~1b/put"), None);
    }

    #[test]
    fn chain_and_cycle() {
        let root = json!({"d": {"a": {"$ref": "#/d/b"}, "b": {"$ref": "#/d/c"}, "c": {"type": "string"},
                                "x": {"$ref": "#/d/y"}, "y": {"$ref": "#/d/x"}}});
        let (t, at) = resolve_ref(&root, "#/d/a").unwrap();
        assert_eq!(t, &json!({"type": "string"}));
        assert_eq!(at, "#/d/c");
        assert!(matches!(
            resolve_ref(&root, "#/d/x"),
            Err(RefError::Cycle(_))
        ));
        assert!(matches!(
            resolve_ref(&root, "other.yaml#/x"),
            Err(RefError::External(_))
        ));
        assert!(matches!(
            resolve_ref(&root, "#/d/nope"),
            Err(RefError::Missing { .. })
        ));
    }

    #[test]
    fn expand_marks_recursion() {
        let root = json!({"s": {"node": {"type": "object", "properties": {
            "name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/s/node"}}}}}});
        let e = expand(&root, &json!({"$ref": "#/s/node"}), ExpandLimits::default());
        assert_eq!(e.cycles, vec!["#/s/node".to_string()]);
        let items = &e.value["properties"]["children"]["items"];
        assert_eq!(items["x-cycle"], json!(true));
        assert_eq!(e.value["x-ref"], json!("#/s/node"));
    }
}

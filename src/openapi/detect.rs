//! Heuristics that read what a connector needs out of a description. Each returns a value, a
//! confidence in 0..1 and its evidence: short strings that point at the spec locations (JSON
//! pointers) the guess rests on, so a person or an agent can check it.

use super::Spec;
use super::index::{Operation, Param};
use super::load::SpecVersion;
use super::resolve::{SchemaView, deref_lossy, view};
use serde::Serialize;
use serde_json::Value;

/// A guess with its confidence and the evidence behind it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Detected<T> {
    pub value: T,
    pub confidence: f64,
    pub evidence: Vec<String>,
}

impl<T> Detected<T> {
    pub fn new(value: T, confidence: f64, evidence: Vec<String>) -> Self {
        Detected {
            value,
            confidence: round2(confidence.clamp(0.0, 1.0)),
            evidence,
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Lower-case and drop separators, so `per_page`, `perPage` and `page[size]` compare easily.
pub fn norm(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

// ---------------------------------------------------------------- collections and selectors

/// A GET endpoint that returns a list of records.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Collection {
    /// Position in the index.
    #[serde(skip)]
    pub op: usize,
    pub method: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
    /// Dotted path to the records array; `""` when the body is the array.
    pub record_selector: String,
    /// The records' item schema as written (may be a `$ref`).
    #[serde(skip)]
    pub item_schema: Value,
    /// Where the item schema lives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_pointer: Option<String>,
    /// The resource name taken from the path (`issues` for `/repos/{owner}/{repo}/issues`).
    pub resource: String,
}

/// Words that name the records array in list envelopes.
const LIST_WORDS: [&str; 16] = [
    "data",
    "items",
    "results",
    "records",
    "entries",
    "values",
    "list",
    "objects",
    "elements",
    "content",
    "hits",
    "rows",
    "collection",
    "resources",
    "nodes",
    "edges",
];
const NOT_RECORDS: [&str; 8] = [
    "errors",
    "warnings",
    "links",
    "messages",
    "included",
    "facets",
    "aggregations",
    "scopes",
];

/// The last literal segment of a path (`/repos/{owner}/issues` → `issues`).
pub fn resource_name(path: &str) -> String {
    path.split('/')
        .filter(|s| !s.is_empty() && !s.starts_with('{') && !s.starts_with(':'))
        .next_back()
        .map(|s| s.trim_end_matches(".json").to_string())
        .unwrap_or_else(|| "root".to_string())
}

fn singular(word: &str) -> String {
    let w = word.to_ascii_lowercase();
    if let Some(s) = w.strip_suffix("ies") {
        format!("{s}y")
    } else if w.ends_with("sses") || w.ends_with("xes") {
        w[..w.len() - 2].to_string()
    } else if let Some(s) = w.strip_suffix('s') {
        if s.ends_with('s') { w } else { s.to_string() }
    } else {
        w
    }
}

/// Decide whether a GET operation is a collection endpoint, and where its records are.
/// Detection runs over every operation once, on first use, and is kept in the index.
pub fn collection(spec: &Spec, op_index: usize) -> Option<Detected<Collection>> {
    collection_ref(spec, op_index).cloned()
}

/// Like [`collection`], without copying the cached answer.
pub fn collection_ref(spec: &Spec, op_index: usize) -> Option<&Detected<Collection>> {
    spec.index
        .collections
        .get_or_init(|| {
            (0..spec.index.operations.len())
                .map(|i| detect_collection(spec, i))
                .collect()
        })
        .get(op_index)?
        .as_ref()
}

fn detect_collection(spec: &Spec, op_index: usize) -> Option<Detected<Collection>> {
    let op = spec.op(op_index);
    if op.method != "GET" {
        return None;
    }
    let last = op
        .path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("");
    if last.starts_with('{') || last.starts_with(':') {
        return None; // a single item
    }
    let (schema, schema_pointer) = spec.success_schema(op)?;
    let resource = resource_name(&op.path);
    let sel = record_selector(spec, schema, &resource, &schema_pointer)?;
    let (selector, item, item_ptr) = sel.value;
    let mut evidence = vec![format!(
        "{}: GET without a trailing path parameter",
        op.pointer
    )];
    evidence.extend(sel.evidence);
    let mut conf = sel.confidence;
    if op.deprecated {
        conf -= 0.1;
        evidence.push(format!("{}: deprecated", op.pointer));
    }
    Some(Detected::new(
        Collection {
            op: op_index,
            method: op.method.clone(),
            path: op.path.clone(),
            operation_id: op.operation_id.clone(),
            record_selector: selector,
            item_schema: item,
            item_pointer: item_ptr,
            resource,
        },
        conf,
        evidence,
    ))
}

/// Every collection endpoint of the description, in index order.
pub fn collections(spec: &Spec) -> Vec<Detected<Collection>> {
    (0..spec.index.operations.len())
        .filter_map(|i| collection(spec, i))
        .collect()
}

fn item_is_record(root: &Value, items: &Value) -> (bool, String) {
    let v = view(root, items);
    let is_obj = v.is_object()
        || !v.properties.is_empty()
        || (!v.variants.is_empty() && v.types.iter().all(|t| t == "object"));
    let desc = match (&v.pointer, is_obj) {
        (Some(p), _) => p.clone(),
        (None, true) => "an inline object".to_string(),
        (None, false) => format!("{}", v.types.join("|")),
    };
    (is_obj, desc)
}

/// Find the records array in a response schema. Returns (selector, item schema, item pointer).
pub fn record_selector(
    spec: &Spec,
    schema: &Value,
    resource: &str,
    schema_pointer: &str,
) -> Option<Detected<(String, Value, Option<String>)>> {
    let root = &spec.doc.root;
    let top = view(root, schema);
    if top.is_array() {
        let items = top.items?;
        let (is_rec, desc) = item_is_record(root, items);
        let ptr = view(root, items).pointer;
        return Some(Detected::new(
            (String::new(), items.clone(), ptr),
            if is_rec { 0.9 } else { 0.35 },
            vec![format!("{schema_pointer}: the body is an array of {desc}")],
        ));
    }
    if !top.is_object() {
        return None;
    }
    struct Cand {
        path: String,
        items: Value,
        score: f64,
        record: bool,
        desc: String,
    }
    let mut cands: Vec<Cand> = Vec::new();
    let res_norm = norm(resource);
    let res_single = norm(&singular(resource));
    let consider = |path: String, name: &str, s: &Value, nested: bool, cands: &mut Vec<Cand>| {
        let v = view(root, s);
        if !v.is_array() {
            return;
        }
        let Some(items) = v.items else { return };
        let (record, desc) = item_is_record(root, items);
        let n = norm(name);
        let mut score = 0.5;
        if LIST_WORDS.contains(&n.as_str()) {
            score += 0.25;
        }
        if !res_norm.is_empty() && (n == res_norm || n == res_single || n.ends_with(&res_norm)) {
            score += 0.3;
        }
        if NOT_RECORDS.contains(&n.as_str()) {
            score -= 0.4;
        }
        if record {
            score += 0.15;
        } else {
            score -= 0.35;
        }
        if nested {
            score -= 0.1;
        }
        cands.push(Cand {
            path,
            items: items.clone(),
            score,
            record,
            desc,
        });
    };
    for (name, s) in &top.properties {
        consider(name.clone(), name, s, false, &mut cands);
        let inner = view(root, s);
        if inner.is_object() {
            for (n2, s2) in &inner.properties {
                consider(format!("{name}.{n2}"), n2, s2, true, &mut cands);
            }
        }
    }
    if cands.is_empty() {
        return None;
    }
    cands.sort_by(|a, b| {
        b.score
            .partial_cmp(&a.score)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let best = &cands[0];
    let mut conf = best.score.min(0.95);
    let record_count = cands.iter().filter(|c| c.record).count();
    if record_count == 1 && best.record {
        conf = conf.max(0.8);
    }
    if cands.len() > 1 && (best.score - cands[1].score) < 0.1 {
        conf -= 0.15;
    }
    let mut evidence = vec![format!(
        "{schema_pointer}: property `{}` is an array of {}",
        best.path, best.desc
    )];
    if cands.len() > 1 {
        let others: Vec<&str> = cands[1..].iter().map(|c| c.path.as_str()).take(4).collect();
        evidence.push(format!("other array properties: {}", others.join(", ")));
    }
    let expected_dots = usize::from(
        best.path.contains('.')
            && top
                .properties
                .iter()
                .all(|(n, _)| !best.path.starts_with(&format!("{n}.")) || !n.contains('.')),
    );
    if top
        .properties
        .iter()
        .any(|(n, _)| n.contains('.') && best.path.starts_with(n.as_str()))
        || best.path.matches('.').count() > expected_dots
    {
        conf = conf.min(0.4);
        evidence.push(format!(
            "`{}` contains a key with a dot: a dotted selector cannot address it",
            best.path
        ));
    }
    let ptr = view(root, &best.items).pointer;
    Some(Detected::new(
        (best.path.clone(), best.items.clone(), ptr),
        conf,
        evidence,
    ))
}

// ---------------------------------------------------------------- pagination

/// A pagination style with the contract's field names (section 6).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Pagination {
    None,
    Cursor {
        cursor_param: String,
        cursor_source: String,
        cursor_path: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        has_more_path: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        size_param: Option<String>,
    },
    Offset {
        offset_param: String,
        size_param: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        total_path: Option<String>,
    },
    Page {
        page_param: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        size_param: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        start_page: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        total_pages_path: Option<String>,
    },
    LinkHeader {
        #[serde(skip_serializing_if = "Option::is_none")]
        size_param: Option<String>,
    },
    NextUrl {
        next_url_path: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        size_param: Option<String>,
    },
}

impl Pagination {
    pub fn kind(&self) -> &'static str {
        match self {
            Pagination::None => "none",
            Pagination::Cursor { .. } => "cursor",
            Pagination::Offset { .. } => "offset",
            Pagination::Page { .. } => "page",
            Pagination::LinkHeader { .. } => "link_header",
            Pagination::NextUrl { .. } => "next_url",
        }
    }
    pub fn size_param(&self) -> Option<&str> {
        match self {
            Pagination::None => None,
            Pagination::Cursor { size_param, .. }
            | Pagination::Page { size_param, .. }
            | Pagination::LinkHeader { size_param }
            | Pagination::NextUrl { size_param, .. } => size_param.as_deref(),
            Pagination::Offset { size_param, .. } => Some(size_param),
        }
    }
}

const SIZE_PARAMS: [&str; 17] = [
    "limit",
    "perpage",
    "pagesize",
    "size",
    "count",
    "maxresults",
    "top",
    "max",
    "pagelimit",
    "resultsperpage",
    "num",
    "first",
    "maxitems",
    "rows",
    "take",
    "numresults",
    "itemsperpage",
];
const CURSOR_PARAMS: [&str; 15] = [
    "cursor",
    "startingafter",
    "after",
    "pagetoken",
    "nexttoken",
    "continuationtoken",
    "startcursor",
    "nextcursor",
    "pagecursor",
    "continuation",
    "marker",
    "startafter",
    "pageafter",
    "nextpagetoken",
    "afterid",
];
const OFFSET_PARAMS: [&str; 6] = ["offset", "skip", "start", "startindex", "startat", "from"];
const PAGE_PARAMS: [&str; 6] = ["page", "pagenumber", "pageno", "p", "pageindex", "pagenum"];
const HAS_MORE: [&str; 7] = [
    "hasmore",
    "hasnext",
    "hasnextpage",
    "more",
    "moreresults",
    "hasmoreitems",
    "hasmorepages",
];
const NEXT_CURSOR_FIELDS: [&str; 9] = [
    "nextcursor",
    "nextpagetoken",
    "nexttoken",
    "continuationtoken",
    "endcursor",
    "nextpagecursor",
    "cursor",
    "nextmarker",
    "after",
];
const NEXT_URL_FIELDS: [&str; 10] = [
    "next",
    "nexturl",
    "nextlink",
    "nextpage",
    "nextpageurl",
    "nextpageuri",
    "odatanextlink",
    "nexthref",
    "nexturi",
    "href",
];
const TOTAL_FIELDS: [&str; 6] = [
    "total",
    "totalcount",
    "totalresults",
    "count",
    "totalitems",
    "totalrecords",
];
const TOTAL_PAGES_FIELDS: [&str; 5] = ["totalpages", "pages", "pagecount", "lastpage", "numpages"];

/// A scalar field of the response body (outside the records), as a dotted path.
#[derive(Debug, Clone)]
struct BodyField {
    path: String,
    /// Some key on the way contains a dot.
    dotted: bool,
    leaf: String,
    parent: String,
    types: Vec<String>,
    format: Option<String>,
}

fn body_fields(root: &Value, schema: &Value, selector: &str) -> Vec<BodyField> {
    let mut out = Vec::new();
    fn walk(
        root: &Value,
        v: &SchemaView,
        prefix: &str,
        parent: &str,
        selector: &str,
        depth: usize,
        out: &mut Vec<BodyField>,
    ) {
        for (name, s) in &v.properties {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            if path == selector {
                continue;
            }
            let sv = view(root, s);
            if sv.is_object() && depth < 3 {
                // the object itself may be the "next" thing (HAL `_links.next`), keep it too
                out.push(BodyField {
                    path: path.clone(),
                    dotted: path.matches('.').count() != depth,
                    leaf: name.clone(),
                    parent: parent.to_string(),
                    types: sv.types.clone(),
                    format: None,
                });
                walk(root, &sv, &path, name, selector, depth + 1, out);
            } else if !sv.is_array() {
                out.push(BodyField {
                    dotted: path.matches('.').count() != depth,
                    path,
                    leaf: name.clone(),
                    parent: parent.to_string(),
                    types: sv.types.clone(),
                    format: sv.format.map(str::to_string),
                });
            }
        }
    }
    let top = view(root, schema);
    if top.is_object() {
        walk(root, &top, "", "", selector, 0, &mut out);
    }
    out
}

fn find_param<'a>(params: &'a [Param], names: &[&str]) -> Option<&'a Param> {
    for n in names {
        if let Some(p) = params.iter().find(|p| norm(&p.name) == *n) {
            return Some(p);
        }
    }
    None
}

/// Pagination of one collection endpoint. `pk` is the primary key used for `last_record` cursors.
pub fn pagination(spec: &Spec, c: &Collection, pk: Option<&str>) -> Detected<Pagination> {
    let mut d = pagination_inner(spec, c, pk);
    // A body key that itself contains a dot (`@odata.nextLink`) cannot be addressed by the
    // contract's dotted paths.
    let paths: Vec<&str> = match &d.value {
        Pagination::Cursor {
            cursor_path,
            has_more_path,
            cursor_source,
            ..
        } if cursor_source == "body" => [Some(cursor_path.as_str()), has_more_path.as_deref()]
            .into_iter()
            .flatten()
            .collect(),
        Pagination::Cursor { has_more_path, .. } => {
            has_more_path.iter().map(|s| s.as_str()).collect()
        }
        Pagination::Offset { total_path, .. } => total_path.iter().map(|s| s.as_str()).collect(),
        Pagination::Page {
            total_pages_path, ..
        } => total_pages_path.iter().map(|s| s.as_str()).collect(),
        Pagination::NextUrl { next_url_path, .. } => vec![next_url_path.as_str()],
        _ => vec![],
    };
    let root = &spec.doc.root;
    let resp = spec.success_response(spec.op(c.op));
    if let Some(schema) = resp.as_ref().and_then(|r| r.schema.as_ref()) {
        let fields = body_fields(root, schema, &c.record_selector);
        for p in paths {
            if fields.iter().any(|f| f.path == p && f.dotted) {
                d.confidence = d.confidence.min(0.4);
                d.evidence.push(format!("`{p}` is a key with a dot in it: a dotted path cannot address it, a hook is needed"));
            }
        }
    }
    d
}

fn pagination_inner(spec: &Spec, c: &Collection, pk: Option<&str>) -> Detected<Pagination> {
    let root = &spec.doc.root;
    let op = spec.op(c.op);
    let params: Vec<Param> = spec
        .parameters(op)
        .into_iter()
        .filter(|p| p.location == "query")
        .collect();
    let resp = spec.success_response(op);
    let fields = resp
        .as_ref()
        .and_then(|r| r.schema.as_ref())
        .map(|s| body_fields(root, s, &c.record_selector))
        .unwrap_or_default();
    let resp_ptr = resp.as_ref().map(|r| r.pointer.clone()).unwrap_or_default();
    let schema_ptr = resp
        .as_ref()
        .and_then(|r| r.schema_pointer.clone())
        .unwrap_or_default();
    let link_header = resp
        .as_ref()
        .map(|r| r.headers.iter().any(|h| h.eq_ignore_ascii_case("link")))
        .unwrap_or(false);

    let size = find_param(&params, &SIZE_PARAMS);
    let size_name = size.map(|p| p.name.clone());
    let mut ev: Vec<String> = Vec::new();
    if let Some(p) = size {
        ev.push(format!("{}: page size parameter `{}`", p.pointer, p.name));
    }
    let has_more = fields.iter().find(|f| {
        HAS_MORE.contains(&norm(&f.leaf).as_str()) && f.types.iter().any(|t| t == "boolean")
    });
    let next_cursor = fields.iter().find(|f| {
        let n = norm(&f.leaf);
        let is_scalar = !f.types.iter().any(|t| t == "object");
        let looks_url = f
            .format
            .as_deref()
            .map(|x| x.starts_with("ur"))
            .unwrap_or(false);
        is_scalar && !looks_url && NEXT_CURSOR_FIELDS.contains(&n.as_str())
            || (is_scalar && n == "offset" && norm(&f.parent).starts_with("next"))
    });
    let next_url = fields.iter().find(|f| {
        let n = norm(&f.leaf);
        let p = norm(&f.parent);
        let is_string = f.types.iter().any(|t| t == "string");
        if !is_string {
            return false;
        }
        if n == "href" || n == "uri" || n == "url" {
            return p == "next" || p == "nextpage";
        }
        if n == "next" {
            return true;
        }
        NEXT_URL_FIELDS.contains(&n.as_str()) && n != "href"
    });
    let field_ev =
        |f: &BodyField, what: &str| format!("{schema_ptr}: body field `{}` ({what})", f.path);

    // 1. cursor parameters
    let cursor_param = find_param(&params, &CURSOR_PARAMS).or_else(|| {
        // `offset` that takes an opaque token handed back in the body (Asana's next_page.offset)
        next_cursor
            .filter(|f| norm(&f.leaf) == "offset")
            .and_then(|_| find_param(&params, &["offset"]))
    });
    if let Some(cp) = cursor_param {
        ev.push(format!("{}: cursor parameter `{}`", cp.pointer, cp.name));
        if let Some(hm) = has_more {
            ev.push(field_ev(hm, "has-more flag"));
        }
        let cpn = norm(&cp.name);
        let id_style = matches!(
            cpn.as_str(),
            "startingafter" | "startafter" | "afterid" | "pageafter"
        );
        if let (Some(nc), false) = (next_cursor, id_style) {
            ev.push(field_ev(nc, "next cursor"));
            let conf = if has_more.is_some() { 0.9 } else { 0.85 };
            return Detected::new(
                Pagination::Cursor {
                    cursor_param: cp.name.clone(),
                    cursor_source: "body".into(),
                    cursor_path: nc.path.clone(),
                    has_more_path: has_more.map(|f| f.path.clone()),
                    size_param: size_name,
                },
                conf,
                ev,
            );
        }
        if id_style
            || cpn == "after"
            || (has_more.is_some() && next_cursor.is_none() && next_url.is_none())
        {
            let key = pk.unwrap_or("id").to_string();
            ev.push(format!("the cursor is the last record's `{key}`"));
            let conf = if has_more.is_some() && id_style {
                0.85
            } else if has_more.is_some() || id_style {
                0.7
            } else {
                0.55
            };
            return Detected::new(
                Pagination::Cursor {
                    cursor_param: cp.name.clone(),
                    cursor_source: "last_record".into(),
                    cursor_path: key,
                    has_more_path: has_more.map(|f| f.path.clone()),
                    size_param: size_name,
                },
                conf,
                ev,
            );
        }
        if let Some(nu) = next_url {
            ev.push(field_ev(nu, "next page URL"));
            return Detected::new(
                Pagination::NextUrl {
                    next_url_path: nu.path.clone(),
                    size_param: size_name,
                },
                0.7,
                ev,
            );
        }
        if link_header {
            ev.push(format!("{resp_ptr}/headers: documents a `Link` header"));
            return Detected::new(
                Pagination::LinkHeader {
                    size_param: size_name,
                },
                0.75,
                ev,
            );
        }
        ev.push("no field in the body hands back the next cursor; guessed `next_cursor`".into());
        return Detected::new(
            Pagination::Cursor {
                cursor_param: cp.name.clone(),
                cursor_source: "body".into(),
                cursor_path: "next_cursor".into(),
                has_more_path: has_more.map(|f| f.path.clone()),
                size_param: size_name,
            },
            0.35,
            ev,
        );
    }

    // 2. Link header (GitHub and friends)
    if link_header {
        ev.push(format!("{resp_ptr}/headers: documents a `Link` header"));
        if let Some(pp) = find_param(&params, &PAGE_PARAMS) {
            ev.push(format!(
                "{}: page parameter `{}` (the Link header carries it)",
                pp.pointer, pp.name
            ));
        }
        let conf = if size.is_some() { 0.9 } else { 0.8 };
        return Detected::new(
            Pagination::LinkHeader {
                size_param: size_name,
            },
            conf,
            ev,
        );
    }

    // 3. offset + limit
    if let Some(op_) = find_param(&params, &OFFSET_PARAMS) {
        ev.push(format!("{}: offset parameter `{}`", op_.pointer, op_.name));
        let total = fields.iter().find(|f| {
            TOTAL_FIELDS.contains(&norm(&f.leaf).as_str())
                && f.types.iter().any(|t| t == "integer" || t == "number")
        });
        if let Some(t) = total {
            ev.push(field_ev(t, "total count"));
        }
        if let Some(nu) = next_url {
            ev.push(format!(
                "{} (a next_url style would work too)",
                field_ev(nu, "next page URL")
            ));
        }
        let token_like = view(root, &op_.schema).has_type("string")
            && op_
                .description
                .as_deref()
                .map(|d| d.to_ascii_lowercase().contains("token"))
                .unwrap_or(false);
        let conf = if token_like {
            ev.push(format!(
                "{}: `{}` is described as an opaque token, not a number: offsets may not work",
                op_.pointer, op_.name
            ));
            0.4
        } else {
            0.85
        };
        match size_name {
            Some(sz) => {
                return Detected::new(
                    Pagination::Offset {
                        offset_param: op_.name.clone(),
                        size_param: sz,
                        total_path: total.map(|t| t.path.clone()),
                    },
                    conf,
                    ev,
                );
            }
            None => {
                if let Some(nu) = next_url {
                    return Detected::new(
                        Pagination::NextUrl {
                            next_url_path: nu.path.clone(),
                            size_param: None,
                        },
                        0.6,
                        ev,
                    );
                }
                ev.push("no page size parameter next to the offset; assumed `limit`".into());
                return Detected::new(
                    Pagination::Offset {
                        offset_param: op_.name.clone(),
                        size_param: "limit".into(),
                        total_path: total.map(|t| t.path.clone()),
                    },
                    0.35,
                    ev,
                );
            }
        }
    }

    // 4. page numbers
    if let Some(pp) = find_param(&params, &PAGE_PARAMS) {
        ev.push(format!("{}: page parameter `{}`", pp.pointer, pp.name));
        let ps = view(root, &pp.schema);
        let starts_at_zero = deref_lossy(root, &pp.schema)
            .get("minimum")
            .and_then(Value::as_i64)
            == Some(0)
            || deref_lossy(root, &pp.schema)
                .get("default")
                .and_then(Value::as_i64)
                == Some(0);
        let _ = ps;
        let total_pages = fields.iter().find(|f| {
            TOTAL_PAGES_FIELDS.contains(&norm(&f.leaf).as_str())
                && f.types.iter().any(|t| t == "integer" || t == "number")
        });
        if let Some(t) = total_pages {
            ev.push(field_ev(t, "total pages"));
        }
        if starts_at_zero {
            ev.push(format!("{}: pages start at 0", pp.pointer));
        }
        if let Some(nu) = next_url {
            ev.push(format!(
                "{} (a next_url style would work too)",
                field_ev(nu, "next page URL")
            ));
        }
        let conf = if size.is_some() { 0.8 } else { 0.55 };
        return Detected::new(
            Pagination::Page {
                page_param: pp.name.clone(),
                size_param: size_name,
                start_page: if starts_at_zero { Some(0) } else { None },
                total_pages_path: total_pages.map(|t| t.path.clone()),
            },
            conf,
            ev,
        );
    }

    // 5. a next URL in the body
    if let Some(nu) = next_url {
        ev.push(field_ev(nu, "next page URL"));
        return Detected::new(
            Pagination::NextUrl {
                next_url_path: nu.path.clone(),
                size_param: size_name,
            },
            0.75,
            ev,
        );
    }

    // 6. nothing recognisable
    if let Some(nc) = next_cursor {
        ev.push(format!(
            "{} but no parameter to send it back with",
            field_ev(nc, "next cursor")
        ));
        return Detected::new(Pagination::None, 0.3, ev);
    }
    if size.is_some() {
        ev.push("only a page size parameter: the endpoint may not paginate, or its paging is undocumented".into());
        return Detected::new(Pagination::None, 0.45, ev);
    }
    ev.push(format!(
        "{}: no pagination parameters, headers or body fields documented",
        op.pointer
    ));
    Detected::new(Pagination::None, 0.6, ev)
}

// ---------------------------------------------------------------- auth

/// An auth scheme mapped onto the contract's `auth.type` values.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Auth {
    /// `none`, `api_key`, `bearer`, `basic` or `oauth2`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Name of the security scheme in the description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// api_key: header that carries the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// api_key: query parameter that carries the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_param: Option<String>,
    /// oauth2: token endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// oauth2: `client_credentials`, `refresh_token` (authorization code), `password`, `implicit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

/// The auth scheme a connector should use.
pub fn auth(spec: &Spec) -> Detected<Auth> {
    let root = &spec.doc.root;
    let (schemes_ptr, schemes) = match spec.doc.version {
        SpecVersion::Swagger2 => ("/securityDefinitions", root.get("securityDefinitions")),
        _ => (
            "/components/securitySchemes",
            root.pointer("/components/securitySchemes"),
        ),
    };
    let Some(schemes) = schemes.and_then(Value::as_object).filter(|m| !m.is_empty()) else {
        // Undocumented: look for an Authorization header parameter before giving up.
        let auth_param = spec.index.operations.iter().take(2000).find_map(|op| {
            spec.parameters(op)
                .into_iter()
                .find(|p| p.location == "header" && p.name.eq_ignore_ascii_case("authorization"))
        });
        if let Some(p) = auth_param {
            return Detected::new(
                Auth {
                    kind: "bearer".into(),
                    ..Default::default()
                },
                0.45,
                vec![format!(
                    "{}: an `Authorization` header parameter, no security schemes",
                    p.pointer
                )],
            );
        }
        return Detected::new(
            Auth {
                kind: "none".into(),
                ..Default::default()
            },
            0.3,
            vec![format!(
                "{schemes_ptr}: no security schemes documented (the API may still need a token)"
            )],
        );
    };
    // Usage counts: global `security` first, then per-operation.
    let mut uses: Vec<(String, usize)> = schemes.keys().map(|k| (k.clone(), 0)).collect();
    let mut count = |req: &Value, weight: usize| {
        if let Some(list) = req.as_array() {
            for alt in list {
                if let Some(obj) = alt.as_object() {
                    for k in obj.keys() {
                        if let Some(u) = uses.iter_mut().find(|(n, _)| n == k) {
                            u.1 += weight;
                        }
                    }
                }
            }
        }
    };
    if let Some(g) = root.get("security") {
        count(g, 1000);
    }
    for op in &spec.index.operations {
        if let Some(s) = spec.operation_value(op).get("security") {
            count(s, 1);
        }
    }
    let rank = |kind: &str| match kind {
        "bearer" => 5,
        "api_key" => 4,
        "basic" => 3,
        "oauth2" => 2,
        _ => 0,
    };
    let mut mapped: Vec<(Detected<Auth>, usize)> = Vec::new();
    for (name, raw) in schemes {
        let s = deref_lossy(root, raw);
        let used = uses
            .iter()
            .find(|(n, _)| n == name)
            .map(|u| u.1)
            .unwrap_or(0);
        if let Some(d) = map_scheme(
            spec,
            name,
            s,
            &format!(
                "{schemes_ptr}/{}",
                super::resolve::escape_pointer_token(name)
            ),
        ) {
            mapped.push((d, used));
        }
    }
    if mapped.is_empty() {
        return Detected::new(
            Auth {
                kind: "none".into(),
                ..Default::default()
            },
            0.2,
            vec![format!(
                "{schemes_ptr}: no scheme maps onto a supported auth type"
            )],
        );
    }
    mapped.sort_by(|(a, ua), (b, ub)| {
        ub.cmp(ua)
            .then(rank(&b.value.kind).cmp(&rank(&a.value.kind)))
            .then(
                b.confidence
                    .partial_cmp(&a.confidence)
                    .unwrap_or(std::cmp::Ordering::Equal),
            )
    });
    let total = mapped.len();
    let (mut best, used) = mapped.remove(0);
    if used == 0 && total > 1 {
        best.confidence = round2(best.confidence - 0.1);
        best.evidence
            .push("no operation says which scheme it uses; picked by preference".into());
    } else if used > 0 {
        best.evidence.push(format!(
            "used by {} operation(s) or globally",
            if used >= 1000 {
                "all".to_string()
            } else {
                used.to_string()
            }
        ));
    }
    if !mapped.is_empty() {
        let others: Vec<String> = mapped
            .iter()
            .map(|(d, _)| {
                format!(
                    "{} ({})",
                    d.value.scheme.clone().unwrap_or_default(),
                    d.value.kind
                )
            })
            .collect();
        best.evidence
            .push(format!("alternatives: {}", others.join(", ")));
    }
    best
}

fn map_scheme(_spec: &Spec, name: &str, s: &Value, ptr: &str) -> Option<Detected<Auth>> {
    let ty = s.get("type").and_then(Value::as_str).unwrap_or("");
    let mut a = Auth {
        scheme: Some(name.to_string()),
        ..Default::default()
    };
    let ev = |what: &str| vec![format!("{ptr}: {what}")];
    match ty {
        "apiKey" => {
            let loc = s.get("in").and_then(Value::as_str).unwrap_or("header");
            let key = s
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("X-API-Key")
                .to_string();
            // An API key in the Authorization header is usually a bearer-like token.
            if loc == "header" && key.eq_ignore_ascii_case("authorization") {
                a.kind = "bearer".into();
                let desc = s
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_ascii_lowercase();
                let conf = if desc.contains("bearer") { 0.8 } else { 0.55 };
                return Some(Detected::new(
                    a,
                    conf,
                    ev("apiKey in the `Authorization` header: treated as a bearer token"),
                ));
            }
            a.kind = "api_key".into();
            match loc {
                "query" => a.query_param = Some(key.clone()),
                "cookie" => {
                    return Some(Detected::new(
                        Auth {
                            kind: "api_key".into(),
                            header: Some("Cookie".into()),
                            scheme: Some(name.into()),
                            ..Default::default()
                        },
                        0.3,
                        ev("apiKey in a cookie: not supported directly"),
                    ));
                }
                _ => a.header = Some(key.clone()),
            }
            Some(Detected::new(
                a,
                0.9,
                ev(&format!("apiKey in {loc} `{key}`")),
            ))
        }
        "http" => {
            let scheme = s
                .get("scheme")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_ascii_lowercase();
            match scheme.as_str() {
                "bearer" => {
                    a.kind = "bearer".into();
                    Some(Detected::new(a, 0.95, ev("http bearer")))
                }
                "basic" => {
                    a.kind = "basic".into();
                    Some(Detected::new(a, 0.95, ev("http basic")))
                }
                other => {
                    a.kind = "bearer".into();
                    Some(Detected::new(
                        a,
                        0.3,
                        ev(&format!(
                            "http scheme `{other}`: not supported, bearer assumed"
                        )),
                    ))
                }
            }
        }
        "basic" => {
            a.kind = "basic".into();
            Some(Detected::new(a, 0.95, ev("basic (Swagger 2.0)")))
        }
        "oauth2" => {
            a.kind = "oauth2".into();
            // 3.x: flows.{clientCredentials,authorizationCode,password,implicit}; 2.0: flow + tokenUrl
            let mut picked: Option<(String, Option<String>, Vec<String>)> = None;
            if let Some(flows) = s.get("flows").and_then(Value::as_object) {
                for (fname, flow_id) in [
                    ("clientCredentials", "client_credentials"),
                    ("authorizationCode", "refresh_token"),
                    ("password", "password"),
                    ("implicit", "implicit"),
                ] {
                    if let Some(f) = flows.get(fname) {
                        let scopes = f
                            .get("scopes")
                            .and_then(Value::as_object)
                            .map(|m| m.keys().cloned().collect())
                            .unwrap_or_default();
                        picked = Some((
                            flow_id.to_string(),
                            f.get("tokenUrl")
                                .and_then(Value::as_str)
                                .map(str::to_string),
                            scopes,
                        ));
                        break;
                    }
                }
            } else if let Some(flow) = s.get("flow").and_then(Value::as_str) {
                let id = match flow {
                    "application" => "client_credentials",
                    "accessCode" => "refresh_token",
                    "password" => "password",
                    _ => "implicit",
                };
                let scopes = s
                    .get("scopes")
                    .and_then(Value::as_object)
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default();
                picked = Some((
                    id.to_string(),
                    s.get("tokenUrl")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    scopes,
                ));
            }
            let (flow, token_url, scopes) =
                picked.unwrap_or(("client_credentials".into(), None, vec![]));
            let conf = match (&token_url, flow.as_str()) {
                (Some(_), "client_credentials" | "refresh_token") => 0.85,
                (Some(_), _) => 0.6,
                (None, _) => 0.4,
            };
            let what = format!(
                "oauth2 {flow} flow{}",
                token_url
                    .as_ref()
                    .map(|t| format!(", token URL {t}"))
                    .unwrap_or_else(|| ", no token URL".into())
            );
            a.flow = Some(flow);
            a.token_url = token_url;
            a.scopes = scopes;
            Some(Detected::new(a, conf, ev(&what)))
        }
        "openIdConnect" => {
            a.kind = "oauth2".into();
            Some(Detected::new(
                a,
                0.35,
                ev("openIdConnect: token URL is in the discovery document, not the description"),
            ))
        }
        _ => None,
    }
}

// ---------------------------------------------------------------- primary key

/// Primary key of the records described by `item_schema`.
pub fn primary_key(spec: &Spec, item_schema: &Value, resource: &str) -> Detected<Vec<String>> {
    let root = &spec.doc.root;
    let v = view(root, item_schema);
    let at = v
        .pointer
        .clone()
        .unwrap_or_else(|| "the item schema".into());
    let has = |n: &str| v.property(n).is_some();
    let req = |n: &str| v.required.iter().any(|r| r == n);
    let scalar = |n: &str| {
        v.property(n)
            .map(|s| {
                let sv = view(root, s);
                sv.types
                    .iter()
                    .any(|t| t == "string" || t == "integer" || t == "number")
                    || sv.types.is_empty()
            })
            .unwrap_or(false)
    };
    let one = |name: &str, conf: f64, why: &str| {
        let bonus = if req(name) { 0.05 } else { 0.0 };
        Detected::new(
            vec![name.to_string()],
            conf + bonus,
            vec![format!(
                "{at}: property `{name}` ({why}{})",
                if req(name) { ", required" } else { "" }
            )],
        )
    };
    for (name, conf) in [
        ("id", 0.9),
        ("uuid", 0.8),
        ("gid", 0.8),
        ("sid", 0.75),
        ("ID", 0.85),
        ("Id", 0.85),
        ("_id", 0.8),
    ] {
        if has(name) && scalar(name) {
            return one(name, conf, "identifier name");
        }
    }
    let single = singular(resource);
    let cands = [
        format!("{single}_id"),
        format!("{single}id"),
        format!("{}_id", resource.to_ascii_lowercase()),
    ];
    for (name, _) in &v.properties {
        let n = name.to_ascii_lowercase();
        if cands.iter().any(|c| *c == n || norm(c) == norm(&n)) && scalar(name) {
            return one(name, 0.75, "resource identifier name");
        }
    }
    for name in ["key", "slug", "uid", "guid"] {
        if has(name) && scalar(name) {
            return one(name, 0.6, "key-like name");
        }
    }
    if let Some((name, _)) = v.properties.iter().find(|(n, _)| {
        let l = n.to_ascii_lowercase();
        (l.ends_with("_id") || l.ends_with("id")) && req(n) && scalar(n)
    }) {
        return one(name, 0.5, "a required identifier-like property");
    }
    if let Some((name, _)) = v.properties.iter().find(|(n, _)| {
        let l = n.to_ascii_lowercase();
        l.ends_with("_id") && scalar(n)
    }) {
        return one(name, 0.4, "the first identifier-like property");
    }
    if let Some(name) = v.required.iter().find(|n| scalar(n)) {
        return one(name, 0.3, "first required scalar, no identifier found");
    }
    if let Some((name, _)) = v.properties.iter().find(|(n, _)| scalar(n)) {
        return one(name, 0.2, "first scalar property, no identifier found");
    }
    Detected::new(
        Vec::new(),
        0.1,
        vec![format!("{at}: no property that could identify a record")],
    )
}

// ---------------------------------------------------------------- incremental

/// An incremental sync setup (contract `streams[].incremental`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Incremental {
    pub cursor_field: String,
    pub request_param: String,
    /// `iso8601` or `unix`.
    pub format: String,
}

const UPDATED_FIELDS: [&str; 14] = [
    "updatedat",
    "updated",
    "modifiedat",
    "modified",
    "lastmodified",
    "lastmodifiedat",
    "lastupdated",
    "updatedtime",
    "modifiedtime",
    "datemodified",
    "dateupdated",
    "lastmodifieddatetime",
    "updatedon",
    "lastupdatedat",
];
const CREATED_FIELDS: [&str; 7] = [
    "createdat",
    "created",
    "datecreated",
    "createdtime",
    "creationdate",
    "createdon",
    "createddatetime",
];
const SINCE_PARAMS: [&str; 12] = [
    "since",
    "updatedsince",
    "updatedafter",
    "modifiedsince",
    "modifiedafter",
    "lastmodifiedsince",
    "updatedatgte",
    "updatedatfrom",
    "updatedatmin",
    "changedsince",
    "modifiedsincedate",
    "updatedmin",
];
const CREATED_PARAMS: [&str; 5] = [
    "createdgte",
    "createdafter",
    "createdsince",
    "createdatgte",
    "createdatfrom",
];

/// Fields that could serve as an incremental cursor (date-time or unix-time like names).
pub fn cursor_field_candidates(spec: &Spec, item_schema: &Value) -> Vec<(String, String, bool)> {
    let root = &spec.doc.root;
    let v = view(root, item_schema);
    let mut out = Vec::new();
    for (name, s) in &v.properties {
        let n = norm(name);
        let sv = view(root, s);
        let is_updated = UPDATED_FIELDS.contains(&n.as_str());
        let is_created = CREATED_FIELDS.contains(&n.as_str());
        let fmt_dt = sv
            .format
            .map(|f| f == "date-time" || f == "date")
            .unwrap_or(false);
        if !(is_updated
            || is_created
            || (fmt_dt && (n.contains("updated") || n.contains("modified"))))
        {
            continue;
        }
        let format = if sv.has_type("integer") || sv.has_type("number") {
            "unix"
        } else if sv.has_type("string") || fmt_dt {
            "iso8601"
        } else {
            continue;
        };
        out.push((
            name.clone(),
            format.to_string(),
            is_updated || n.contains("updated") || n.contains("modified"),
        ));
    }
    out
}

/// The incremental setup of a collection, when the description offers a server-side filter.
pub fn incremental(spec: &Spec, c: &Collection) -> Option<Detected<Incremental>> {
    let root = &spec.doc.root;
    let op = spec.op(c.op);
    let params: Vec<Param> = spec
        .parameters(op)
        .into_iter()
        .filter(|p| p.location == "query")
        .collect();
    let fields = cursor_field_candidates(spec, &c.item_schema);
    if fields.is_empty() {
        return None;
    }
    let item_at = view(root, &c.item_schema)
        .pointer
        .unwrap_or_else(|| "the item schema".into());
    // (request_param, wants updated?, param)
    let mut found: Vec<(String, bool, &Param, f64)> = Vec::new();
    for p in &params {
        let n = norm(&p.name);
        let desc = p.description.as_deref().unwrap_or("").to_ascii_lowercase();
        if SINCE_PARAMS.contains(&n.as_str()) {
            let conf = if n == "since" && !desc.contains("updat") && !desc.contains("modif") {
                0.55
            } else {
                0.8
            };
            found.push((p.name.clone(), true, p, conf));
        } else if CREATED_PARAMS.contains(&n.as_str()) {
            found.push((p.name.clone(), false, p, 0.75));
        } else {
            // deepObject / object filter with a `gte` (or `gt`) member: `created[gte]`
            let ps = view(root, &p.schema);
            let mut members: Vec<String> = ps.properties.iter().map(|(k, _)| k.clone()).collect();
            for var in &ps.variants {
                members.extend(view(root, var).properties.iter().map(|(k, _)| k.clone()));
            }
            let op_name = ["gte", "gt"]
                .into_iter()
                .find(|m| members.iter().any(|x| x == m));
            if let Some(m) = op_name {
                let is_upd = UPDATED_FIELDS.contains(&n.as_str());
                let is_cre = CREATED_FIELDS.contains(&n.as_str());
                if is_upd || is_cre {
                    found.push((format!("{}[{m}]", p.name), is_upd, p, 0.8));
                }
            }
        }
    }
    let mut best: Option<Detected<Incremental>> = None;
    for (req_param, wants_updated, p, conf) in found {
        // pair the parameter with a field: same stem first, then updated-like or created-like
        let stem = norm(&p.name);
        let field = fields
            .iter()
            .find(|(f, _, _)| norm(f) == stem)
            .or_else(|| {
                fields.iter().find(|(f, _, upd)| {
                    *upd == wants_updated && (stem.contains(&norm(f)) || norm(f).contains(&stem))
                })
            })
            .or_else(|| fields.iter().find(|(_, _, upd)| *upd == wants_updated));
        let Some((fname, fmt, _)) = field else {
            continue;
        };
        let param_is_int = view(root, &p.schema).has_type("integer");
        let format = if param_is_int || fmt == "unix" {
            "unix"
        } else {
            "iso8601"
        };
        let d = Detected::new(
            Incremental {
                cursor_field: fname.clone(),
                request_param: req_param.clone(),
                format: format.to_string(),
            },
            conf,
            vec![
                format!("{}: filter parameter `{}`", p.pointer, req_param),
                format!("{item_at}: cursor field `{fname}` ({format})"),
            ],
        );
        if best
            .as_ref()
            .map(|b| d.confidence > b.confidence)
            .unwrap_or(true)
        {
            best = Some(d);
        }
    }
    best
}

// ---------------------------------------------------------------- base URL

/// The production base URL.
pub fn base_url(spec: &Spec) -> Detected<String> {
    let root = &spec.doc.root;
    let source_base =
        if spec.doc.source.starts_with("http://") || spec.doc.source.starts_with("https://") {
            url::Url::parse(&spec.doc.source).ok()
        } else {
            None
        };
    if spec.doc.version == SpecVersion::Swagger2 {
        let schemes: Vec<&str> = root
            .get("schemes")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let scheme = if schemes.contains(&"https") || schemes.is_empty() {
            "https"
        } else {
            schemes[0]
        };
        let base_path = root.get("basePath").and_then(Value::as_str).unwrap_or("");
        return match root.get("host").and_then(Value::as_str) {
            Some(host) => Detected::new(
                format!("{scheme}://{host}{}", base_path.trim_end_matches('/')),
                if schemes.is_empty() { 0.8 } else { 0.9 },
                vec![format!(
                    "/host `{host}`, /basePath `{base_path}`, /schemes {schemes:?}"
                )],
            ),
            None => match source_base {
                Some(u) => Detected::new(
                    format!(
                        "{}://{}{}",
                        u.scheme(),
                        u.host_str().unwrap_or(""),
                        base_path.trim_end_matches('/')
                    ),
                    0.5,
                    vec!["no /host: taken from the URL the description was fetched from".into()],
                ),
                None => Detected::new(
                    base_path.trim_end_matches('/').to_string(),
                    0.1,
                    vec!["/host: missing, base URL unknown".into()],
                ),
            },
        };
    }
    let servers = root
        .get("servers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if servers.is_empty() {
        return match source_base {
            Some(u) => Detected::new(
                format!("{}://{}", u.scheme(), u.host_str().unwrap_or("")),
                0.4,
                vec!["/servers: none; taken from the description's own URL".into()],
            ),
            None => Detected::new(
                String::new(),
                0.1,
                vec!["/servers: none documented, base URL unknown".into()],
            ),
        };
    }
    // prefer an absolute https server that does not look like a sandbox
    let score = |u: &str| {
        let l = u.to_ascii_lowercase();
        let mut s = 0;
        if l.starts_with("https://") {
            s += 3;
        } else if l.starts_with("http://") {
            s += 2;
        }
        if l.contains("sandbox")
            || l.contains("staging")
            || l.contains("test")
            || l.contains("localhost")
            || l.contains("mock")
        {
            s -= 2;
        }
        s
    };
    let mut best_i = 0;
    let mut best_s = i32::MIN;
    for (i, s) in servers.iter().enumerate() {
        let u = s.get("url").and_then(Value::as_str).unwrap_or("");
        let sc = score(u);
        if sc > best_s {
            best_s = sc;
            best_i = i;
        }
    }
    let server = &servers[best_i];
    let raw = server
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut url = raw.clone();
    let mut ev = vec![format!("/servers/{best_i}/url `{raw}`")];
    let mut conf: f64 = 0.9;
    if let Some(vars) = server.get("variables").and_then(Value::as_object) {
        for (k, v) in vars {
            let val = v
                .get("default")
                .and_then(|d| {
                    d.as_str()
                        .map(str::to_string)
                        .or_else(|| Some(d.to_string()))
                })
                .or_else(|| {
                    v.get("enum")
                        .and_then(Value::as_array)
                        .and_then(|e| e.first())
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .unwrap_or_default();
            url = url.replace(&format!("{{{k}}}"), &val);
            ev.push(format!("/servers/{best_i}/variables/{k}: default `{val}`"));
            conf -= 0.05;
        }
    }
    if url.contains('{') {
        conf = 0.3;
        ev.push("a server variable has no default".into());
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        match source_base.as_ref().and_then(|b| b.join(&url).ok()) {
            Some(j) => {
                url = j.to_string();
                conf = 0.6;
                ev.push("relative server URL resolved against the description's URL".into());
            }
            None => {
                conf = 0.2;
                ev.push("relative server URL: the host is unknown".into());
            }
        }
    }
    if servers.len() > 1 {
        ev.push(format!(
            "{} servers listed; picked the most production-like",
            servers.len()
        ));
        conf -= 0.05;
    }
    Detected::new(url.trim_end_matches('/').to_string(), conf, ev)
}

// ---------------------------------------------------------------- streams

/// Everything detected about one candidate stream.
#[derive(Debug, Clone, Serialize)]
pub struct StreamDetection {
    /// Suggested stream name (snake_case, unique within one ranking).
    pub name: String,
    pub collection: Detected<Collection>,
    pub pagination: Detected<Pagination>,
    pub primary_key: Detected<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incremental: Option<Detected<Incremental>>,
    /// Required query parameters that are not about paging or filtering by time.
    pub required_query_params: Vec<String>,
    /// Path placeholders the config's `params` must fill.
    pub path_params: Vec<String>,
    /// Largest page size the description allows, or its default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_size: Option<i64>,
    /// Ranking score (higher first).
    pub score: f64,
}

/// A snake_case name.
pub fn snake(s: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else {
            if !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
            prev_lower = false;
        }
    }
    let t = out.trim_matches('_').to_string();
    if t.is_empty() {
        "stream".into()
    } else if t.starts_with(|c: char| c.is_ascii_digit()) {
        format!("s_{t}")
    } else {
        t
    }
}

/// Analyse one operation as a stream, if it is a collection endpoint.
pub fn analyze(spec: &Spec, op_index: usize) -> Option<StreamDetection> {
    let col = collection(spec, op_index)?;
    Some(analyze_collection(spec, col))
}

/// Analyse a detected collection.
pub fn analyze_collection(spec: &Spec, col: Detected<Collection>) -> StreamDetection {
    let root = &spec.doc.root;
    let c = &col.value;
    let pk = primary_key(spec, &c.item_schema, &c.resource);
    let pag = pagination(spec, c, pk.value.first().map(String::as_str));
    let inc = incremental(spec, c);
    let op: &Operation = spec.op(c.op);
    let params = spec.parameters(op);
    let paging_names: Vec<String> = match &pag.value {
        Pagination::None => vec![],
        Pagination::Cursor {
            cursor_param,
            size_param,
            ..
        } => [Some(cursor_param.clone()), size_param.clone()]
            .into_iter()
            .flatten()
            .collect(),
        Pagination::Offset {
            offset_param,
            size_param,
            ..
        } => vec![offset_param.clone(), size_param.clone()],
        Pagination::Page {
            page_param,
            size_param,
            ..
        } => [Some(page_param.clone()), size_param.clone()]
            .into_iter()
            .flatten()
            .collect(),
        Pagination::LinkHeader { size_param } | Pagination::NextUrl { size_param, .. } => {
            size_param.iter().cloned().collect()
        }
    };
    let required_query_params: Vec<String> = params
        .iter()
        .filter(|p| p.location == "query" && p.required && !paging_names.contains(&p.name))
        .filter(|p| {
            inc.as_ref()
                .map(|i| !i.value.request_param.starts_with(&p.name))
                .unwrap_or(true)
        })
        .map(|p| p.name.clone())
        .collect();
    let path_params: Vec<String> = op
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(str::to_string)
        .collect();
    let page_size = pag
        .value
        .size_param()
        .and_then(|sp| params.iter().find(|p| p.name == sp))
        .and_then(|p| {
            let s = deref_lossy(root, &p.schema);
            let max = s.get("maximum").and_then(Value::as_i64);
            let def = s.get("default").and_then(Value::as_i64);
            match (max, def) {
                (Some(m), _) => Some(m.min(100)),
                (None, Some(d)) => Some(d.min(100)),
                _ => None,
            }
        });
    let item = view(root, &c.item_schema);
    let mut score = col.confidence * 2.0 + pk.confidence * 0.8 + pag.confidence * 0.6;
    if !matches!(pag.value, Pagination::None) {
        score += 0.3;
    }
    if inc.is_some() {
        score += 0.3;
    }
    score -= 0.6 * path_params.len() as f64;
    score -= 1.5 * required_query_params.len() as f64;
    if op.deprecated {
        score -= 0.5;
    }
    if item.properties.len() >= 3 {
        score += 0.2;
    }
    let depth = op.path.split('/').filter(|s| !s.is_empty()).count();
    score -= 0.05 * depth as f64;
    let lname = op.path.to_ascii_lowercase();
    if lname.contains("search") || lname.contains("/admin") || lname.contains("/internal") {
        score -= 0.5;
    }
    StreamDetection {
        name: snake(&c.resource),
        required_query_params,
        path_params,
        page_size,
        score: round2(score),
        collection: col,
        pagination: pag,
        primary_key: pk,
        incremental: inc,
    }
}

/// All collection endpoints as streams, best first, with unique names.
pub fn rank_streams(spec: &Spec) -> Vec<StreamDetection> {
    let mut all: Vec<StreamDetection> = collections(spec)
        .into_iter()
        .map(|c| analyze_collection(spec, c))
        .collect();
    all.sort_by(|a, b| {
        b.score
            .partial_cmp(&a.score)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.collection.value.path.cmp(&b.collection.value.path))
    });
    unique_names(spec, &mut all);
    all
}

/// Make stream names unique: later duplicates get the previous literal path segment as prefix.
pub fn unique_names(_spec: &Spec, streams: &mut [StreamDetection]) {
    let mut used: std::collections::HashSet<String> = std::collections::HashSet::new();
    for s in streams.iter_mut() {
        let mut name = s.name.clone();
        if used.contains(&name) {
            let lits: Vec<&str> = s
                .collection
                .value
                .path
                .split('/')
                .filter(|x| !x.is_empty() && !x.starts_with('{'))
                .collect();
            let mut i = lits.len().saturating_sub(1);
            while used.contains(&name) && i > 0 {
                i -= 1;
                name = snake(&format!("{}_{}", lits[i], name));
            }
            let mut n = 2;
            let base = name.clone();
            while used.contains(&name) {
                name = format!("{base}_{n}");
                n += 1;
            }
        }
        used.insert(name.clone());
        s.name = name;
    }
}

/// Pick up to `max` streams: best score first, preferring different tags so the set covers the API.
pub fn pick_streams(spec: &Spec, max: usize) -> Vec<StreamDetection> {
    pick_diverse(spec, rank_streams(spec), max)
}

/// The greedy rule behind [`pick_streams`], on any pool of ranked candidates (the generator
/// filters the pool first): take the best score, penalising a tag or resource already covered.
pub fn pick_diverse(spec: &Spec, pool: Vec<StreamDetection>, max: usize) -> Vec<StreamDetection> {
    let mut picked: Vec<StreamDetection> = Vec::new();
    let mut pool = pool;
    while picked.len() < max && !pool.is_empty() {
        let mut best_i = 0;
        let mut best = f64::MIN;
        for (i, s) in pool.iter().enumerate() {
            let tags = &spec.op(s.collection.value.op).tags;
            let mut sc = s.score;
            let shared_tag = picked.iter().any(|p| {
                let pt = &spec.op(p.collection.value.op).tags;
                !tags.is_empty() && pt.iter().any(|t| tags.contains(t))
            });
            if shared_tag {
                sc -= 0.4;
            }
            if picked
                .iter()
                .any(|p| p.collection.value.resource == s.collection.value.resource)
            {
                sc -= 0.8;
            }
            if sc > best {
                best = sc;
                best_i = i;
            }
        }
        picked.push(pool.remove(best_i));
    }
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(snake("pullRequests"), "pull_requests");
        assert_eq!(snake("gists-public"), "gists_public");
        assert_eq!(snake("2fa"), "s_2fa");
        assert_eq!(singular("repositories"), "repository");
        assert_eq!(singular("addresses"), "address");
        assert_eq!(singular("users"), "user");
        assert_eq!(resource_name("/repos/{owner}/{repo}/issues"), "issues");
        assert_eq!(norm("page[size]"), "pagesize");
        assert_eq!(norm("@odata.nextLink"), "odatanextlink");
    }
}

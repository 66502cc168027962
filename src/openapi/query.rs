//! Bounded queries over a loaded description: list operations, show one operation, show one
//! schema, summarise the whole API. Each answer is a JSON value that fits a byte budget when
//! rendered (as compact JSON or as text) and carries a `truncated` list saying what was cut and
//! where, so an agent knows to ask a narrower question.

use super::Spec;
use super::detect;
use super::resolve::{deref, deref_lossy, ref_of, view};
use serde_json::{Map, Value, json};

/// Default answer budget in bytes.
pub const DEFAULT_BUDGET: usize = 6144;
/// Smallest budget accepted (smaller ones are raised to it).
pub const MIN_BUDGET: usize = 256;

/// How an answer is rendered (and so measured).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// Size limits of one answer.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub bytes: usize,
    pub format: Format,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            bytes: DEFAULT_BUDGET,
            format: Format::Text,
        }
    }
}

impl Budget {
    pub fn new(bytes: usize, format: Format) -> Budget {
        Budget {
            bytes: bytes.max(MIN_BUDGET),
            format,
        }
    }
}

/// An answer: the value, and its rendering within the budget.
#[derive(Debug, Clone)]
pub struct Answer {
    pub value: Value,
    pub rendered: String,
    /// Notes about what was cut (also inside `value["truncated"]`).
    pub truncated: Vec<String>,
    /// Schema nodes expanded to make this answer (see [`ExpandStats::nodes`]); 0 for answers
    /// without schemas.
    pub expanded_nodes: usize,
}

impl Answer {
    fn finish(
        mut value: Value,
        mut notes: Vec<String>,
        budget: Budget,
        render: fn(&Value) -> String,
    ) -> Answer {
        if !notes.is_empty() {
            value["truncated"] = json!(notes);
        }
        let mut rendered = render(&value);
        if rendered.len() > budget.bytes {
            // Still too large: cut the whole answer with the generic fitter.
            let (v, more) = fit(&value, budget.bytes, render, "");
            notes.extend(more);
            value = v;
            value["truncated"] = json!(notes);
            rendered = render(&value);
            if rendered.len() > budget.bytes {
                let note = format!(
                    "answer cut at byte {} of {}",
                    budget.bytes.saturating_sub(80),
                    rendered.len()
                );
                let mut cut = budget.bytes.saturating_sub(80);
                while !rendered.is_char_boundary(cut) {
                    cut -= 1;
                }
                rendered.truncate(cut);
                rendered.push_str(&format!("\n[truncated: {note}]"));
                notes.push(note);
            }
        }
        Answer {
            value,
            rendered,
            truncated: notes,
            expanded_nodes: 0,
        }
    }
}

fn renderer(format: Format) -> fn(&Value) -> String {
    match format {
        Format::Json => |v| serde_json::to_string(v).unwrap_or_default(),
        Format::Text => render_text,
    }
}

// ---------------------------------------------------------------- compact schemas

/// Keep the structural part of a schema: type, format, enum, required, properties, items,
/// variants, and short descriptions near the top. Refs are inlined with their pointer kept in
/// `ref`; a ref already open further up is left as `{ "ref": ..., "cycle": true }`. Expands the
/// whole tree (up to `max_depth` and [`MAX_COMPACT_NODES`]); see [`compact_schema_within`] for
/// the expansion that stops once a byte budget is spent.
pub fn compact_schema(spec: &Spec, schema: &Value, max_depth: usize) -> Value {
    compact_schema_within(spec, schema, max_depth, usize::MAX).value
}

/// Most schema nodes one compacted schema makes, whatever the budget (past it, the nodes still
/// waiting are left unexpanded, so a node with many properties may overshoot it by those).
pub const MAX_COMPACT_NODES: usize = 20_000;

/// A compacted schema and the work it took.
#[derive(Debug, Clone)]
pub struct Compact {
    pub value: Value,
    pub stats: ExpandStats,
}

/// How much of a schema tree [`compact_schema_within`] expanded, and where it stopped.
///
/// Levels are counted the way the fitter counts them: a schema's own properties are one level
/// below it, `oneOf` variants too, array `items` are on the level of their array (and so is a
/// property named `items`, `properties` or `oneOf`, since the fitter goes by key names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpandStats {
    /// Schema nodes looked at: each one's ref resolved and, unless it is a cycle or past a
    /// limit, read with `view` (refs followed, `allOf` merged). Nodes left as stubs below the
    /// level where expansion stopped are not counted.
    pub nodes: usize,
    /// Levels expanded (level 0 is the schema itself).
    pub levels: usize,
    /// Set when expansion stopped because what levels `0..=n` take at the least, when shown,
    /// exceeds the byte budget: the schemas one level further down are left as stubs, and no
    /// answer within the budget can show them.
    pub stopped_at_level: Option<usize>,
    /// True when [`MAX_COMPACT_NODES`] stopped the expansion somewhere.
    pub node_cap_hit: bool,
}

fn short(s: &str, n: usize) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() <= n {
        s
    } else {
        let mut out: String = s.chars().take(n).collect();
        out.push('…');
        out
    }
}

/// [`compact_schema`], expanded breadth-first and only as far as an answer of `budget` bytes can
/// show. Every level is expanded whole before the next one is started, so the top-level
/// properties and their types come before any nesting. After each level, the fewest bytes the
/// levels expanded so far take when shown ([`min_bytes_by_level`]: each node's type, format and
/// ref, each property's name) are summed: any answer that shows the next level shows all of
/// them, so once the sum exceeds the budget the answer cannot go deeper than this level, and
/// the schemas below it are left as stubs (`{"ref"?, "more": "not expanded"}`) without being
/// read. The level where it stopped is in [`ExpandStats::stopped_at_level`]; [`fit_compact`]
/// never shows anything below it. At least levels 0 and 1 are expanded, since the fitter always
/// shows the top-level properties with a one-line summary each.
///
/// With an unlimited budget (`usize::MAX`) this expands the whole tree up to `max_depth` and
/// [`MAX_COMPACT_NODES`], shallow levels first.
pub fn compact_schema_within(
    spec: &Spec,
    schema: &Value,
    max_depth: usize,
    budget: usize,
) -> Compact {
    let mut b = Bfs {
        root: &spec.doc.root,
        max_depth,
        slots: vec![Slot {
            schema,
            depth: 0,
            parent: None,
            opened: None,
            node: Node::Pending,
        }],
        stats: ExpandStats::default(),
    };
    let mut level_nodes = vec![0usize];
    let mut shown_bytes = 0usize;
    for level in 0.. {
        let mut next = Vec::new();
        let mut k = 0;
        // array items stay on their array's level, so the list grows while it is walked
        while k < level_nodes.len() {
            let i = level_nodes[k];
            k += 1;
            shown_bytes += b.expand(i, &mut level_nodes, &mut next);
        }
        b.stats.levels = level + 1;
        if next.is_empty() {
            break;
        }
        if shown_bytes > budget && level >= 1 {
            b.stats.stopped_at_level = Some(level);
            break;
        }
        level_nodes = next;
    }
    let value = b.assemble(0);
    Compact {
        value,
        stats: b.stats,
    }
}

struct Slot<'a> {
    schema: &'a Value,
    /// Nesting of compact schemas (properties, items and variants each add one); `max_depth`
    /// applies to it.
    depth: usize,
    parent: Option<usize>,
    /// The ref this node inlined, for cycle detection below it.
    opened: Option<String>,
    node: Node,
}

enum Node {
    /// Not expanded (below the level where expansion stopped).
    Pending,
    /// Complete: a cycle, an unresolvable ref, a ref or object past the depth or node limit.
    Done(Value),
    /// Expanded: its own keys, and slots for its children.
    Open {
        out: Map<String, Value>,
        required: Option<Value>,
        properties: Vec<(String, usize)>,
        items: Option<usize>,
        variants: Vec<usize>,
    },
}

struct Bfs<'a> {
    root: &'a Value,
    max_depth: usize,
    slots: Vec<Slot<'a>>,
    stats: ExpandStats,
}

impl<'a> Bfs<'a> {
    fn child(&mut self, schema: &'a Value, parent: usize) -> usize {
        self.slots.push(Slot {
            schema,
            depth: self.slots[parent].depth + 1,
            parent: Some(parent),
            opened: None,
            node: Node::Pending,
        });
        self.slots.len() - 1
    }

    /// Is `at` inlined by `i` or one of its ancestors?
    fn open_above(&self, mut i: usize, at: &str) -> bool {
        loop {
            if self.slots[i].opened.as_deref() == Some(at) {
                return true;
            }
            match self.slots[i].parent {
                Some(p) => i = p,
                None => return false,
            }
        }
    }

    /// Past the depth limit, or past the node cap? The cap counts the nodes made so far, those
    /// waiting on the next level included, so it bounds the whole tree.
    fn past_limits(&mut self, depth: usize) -> bool {
        if self.slots.len() > MAX_COMPACT_NODES {
            self.stats.node_cap_hit = true;
            return true;
        }
        depth >= self.max_depth
    }

    /// Record a finished node; returns its [`own_bytes`].
    fn done(&mut self, i: usize, v: Value) -> usize {
        let bytes = v.as_object().map(own_bytes).unwrap_or(0);
        self.slots[i].node = Node::Done(v);
        bytes
    }

    /// Expand slot `i`: its own keys now, its children as new slots (items on this level, the
    /// rest on the next). Returns the fewest bytes it takes when shown whole (as
    /// [`min_bytes_by_level`] counts them).
    fn expand(&mut self, i: usize, this_level: &mut Vec<usize>, next: &mut Vec<usize>) -> usize {
        let root = self.root;
        self.stats.nodes += 1;
        let schema = self.slots[i].schema;
        let depth = self.slots[i].depth;
        let mut out = Map::new();
        let mut current = schema;
        if let Some(r) = ref_of(schema) {
            match deref(root, schema) {
                Ok((t, Some(at))) => {
                    if self.slots[i]
                        .parent
                        .is_some_and(|p| self.open_above(p, &at))
                    {
                        return self.done(i, json!({"ref": at, "cycle": true}));
                    }
                    out.insert("ref".into(), Value::String(at.clone()));
                    if self.past_limits(depth) {
                        out.insert("more".into(), Value::String("not expanded".into()));
                        return self.done(i, Value::Object(out));
                    }
                    self.slots[i].opened = Some(at);
                    current = t;
                }
                Ok((t, None)) => current = t,
                Err(e) => {
                    return self.done(i, json!({"ref": r, "error": e.to_string()}));
                }
            }
        }
        let v = view(root, current);
        let mut types: Vec<Value> = v.types.iter().map(|t| Value::String(t.clone())).collect();
        if v.nullable {
            types.push(Value::String("null".into()));
        }
        match types.len() {
            0 => {}
            1 => {
                out.insert("type".into(), types.pop().unwrap_or(Value::Null));
            }
            _ => {
                out.insert("type".into(), Value::Array(types));
            }
        }
        if let Some(f) = v.format {
            out.insert("format".into(), Value::String(f.into()));
        }
        if let Some(e) = v.enum_values {
            let mut vals: Vec<Value> = e.iter().take(12).cloned().collect();
            if e.len() > 12 {
                vals.push(Value::String(format!("… {} more", e.len() - 12)));
            }
            out.insert("enum".into(), Value::Array(vals));
        }
        if depth <= 1 {
            if let Some(d) = v.description.filter(|d| !d.trim().is_empty()) {
                out.insert(
                    "description".into(),
                    Value::String(short(d, if depth == 0 { 200 } else { 90 })),
                );
            }
        }
        if self.past_limits(depth) {
            if !v.properties.is_empty() {
                out.insert(
                    "more".into(),
                    Value::String(format!("{} properties not expanded", v.properties.len())),
                );
            }
            return self.done(i, Value::Object(out));
        }
        let required =
            (!v.required.is_empty() && !v.properties.is_empty()).then(|| json!(v.required));
        let mut bytes = own_bytes(&out);
        let mut properties = Vec::with_capacity(v.properties.len());
        for (name, s) in &v.properties {
            bytes += entry_bytes(name);
            let c = self.child(s, i);
            // the fitter counts levels by key, so a property named like a transparent key
            // (`items`, `properties`, `oneOf`) stays on its parent's level there; so here
            if is_transparent(name) {
                this_level.push(c);
            } else {
                next.push(c);
            }
            properties.push((name.clone(), c));
        }
        let items = v.items.map(|s| {
            let c = self.child(s, i);
            this_level.push(c);
            c
        });
        let mut variants = Vec::with_capacity(v.variants.len());
        for s in &v.variants {
            let c = self.child(s, i);
            next.push(c);
            variants.push(c);
        }
        self.slots[i].node = Node::Open {
            out,
            required,
            properties,
            items,
            variants,
        };
        bytes
    }

    fn assemble(&mut self, i: usize) -> Value {
        match std::mem::replace(&mut self.slots[i].node, Node::Pending) {
            Node::Pending => {
                let mut m = Map::new();
                if let Some(r) = ref_of(self.slots[i].schema) {
                    m.insert("ref".into(), Value::String(r.to_string()));
                }
                m.insert("more".into(), Value::String("not expanded".into()));
                Value::Object(m)
            }
            Node::Done(v) => v,
            Node::Open {
                mut out,
                required,
                properties,
                items,
                variants,
            } => {
                if let Some(r) = required {
                    out.insert("required".into(), r);
                }
                if !properties.is_empty() {
                    let mut props = Map::new();
                    for (name, c) in properties {
                        let v = self.assemble(c);
                        props.insert(name, v);
                    }
                    out.insert("properties".into(), Value::Object(props));
                }
                if let Some(c) = items {
                    let v = self.assemble(c);
                    out.insert("items".into(), v);
                }
                if !variants.is_empty() {
                    let vars: Vec<Value> = variants.into_iter().map(|c| self.assemble(c)).collect();
                    out.insert("oneOf".into(), Value::Array(vars));
                }
                Value::Object(out)
            }
        }
    }
}

/// One-line type of a schema (`integer`, `string enum[open,closed]`, `array of #/…/issue`).
pub fn type_line(spec: &Spec, schema: &Value) -> String {
    let root = &spec.doc.root;
    let v = view(root, schema);
    let mut t = if v.types.is_empty() {
        "any".to_string()
    } else {
        v.types.join("|")
    };
    if let Some(f) = v.format {
        t.push_str(&format!("({f})"));
    }
    if v.is_array() {
        if let Some(items) = v.items {
            let iv = view(root, items);
            let inner = iv.pointer.clone().unwrap_or_else(|| {
                if iv.types.is_empty() {
                    "any".into()
                } else {
                    iv.types.join("|")
                }
            });
            t = format!("array of {inner}");
        }
    } else if let Some(p) = v.pointer.as_ref().filter(|_| v.is_object()) {
        t = format!("object {p}");
    }
    if v.nullable {
        t.push_str("|null");
    }
    if let Some(e) = v.enum_values {
        let vals: Vec<String> = e
            .iter()
            .take(8)
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| x.to_string())
            })
            .collect();
        t.push_str(&format!(
            " enum[{}{}]",
            vals.join(","),
            if e.len() > 8 { ",…" } else { "" }
        ));
    }
    let raw = deref_lossy(root, schema);
    if let Some(d) = raw.get("default") {
        t.push_str(&format!(" default {}", d));
    }
    if let Some(m) = raw.get("maximum") {
        t.push_str(&format!(" max {}", m));
    }
    t
}

// ---------------------------------------------------------------- fitting

/// Cut `value` until `render(value)` fits `budget` bytes. Strings are shortened first, then deep
/// containers are replaced by a one-line summary, then long lists and objects lose their tails.
/// Returns the cut value and notes naming the JSON pointers (relative to `base`) that were cut.
pub fn fit(
    value: &Value,
    budget: usize,
    render: fn(&Value) -> String,
    base: &str,
) -> (Value, Vec<String>) {
    if render(value).len() <= budget {
        return (value.clone(), Vec::new());
    }
    fit_owned(value.clone(), budget, render, base, None, None)
}

/// [`fit`] for a schema value made by [`compact_schema`] and rendered by [`schema_render`]: the
/// same cuts, but candidates that cannot fit are skipped without being built or rendered. A
/// candidate cut below level `d` shows every schema node above that level whole, so the sum of
/// [`min_bytes_by_level`] over those levels is a lower bound of its rendered size.
pub fn fit_schema(
    value: Value,
    budget: usize,
    render: fn(&Value) -> String,
    base: &str,
) -> (Value, Vec<String>) {
    fit_schema_to_level(value, budget, render, base, None)
}

/// [`fit_schema`] for a schema from [`compact_schema_within`], made for the same `budget`: when
/// its expansion stopped at a level, no candidate deeper than that level is tried (none could
/// fit, and the stubs below it are never shown).
pub fn fit_compact(
    compact: Compact,
    budget: usize,
    render: fn(&Value) -> String,
    base: &str,
) -> (Value, Vec<String>) {
    fit_schema_to_level(
        compact.value,
        budget,
        render,
        base,
        compact.stats.stopped_at_level,
    )
}

fn fit_schema_to_level(
    value: Value,
    budget: usize,
    render: fn(&Value) -> String,
    base: &str,
    max_level: Option<usize>,
) -> (Value, Vec<String>) {
    let mut hist = Vec::new();
    min_bytes_by_level(&value, 0, &mut hist);
    let whole: usize = hist.iter().sum();
    if max_level.is_some() || whole > budget || render(&value).len() > budget {
        fit_owned(value, budget, render, base, Some(&hist), max_level)
    } else {
        (value, Vec::new())
    }
}

/// Fewest bytes a schema node's own keys take in any rendering that shows it, whole or as a
/// one-line summary ([`summary_of`]), in text or JSON: its type names, its format and its `#/...`
/// ref. Texts may be cut to 40 characters before rendering; refs are never cut.
fn own_bytes(m: &Map<String, Value>) -> usize {
    let cut = |s: &str| s.trim().len().min(40);
    let mut n = 0;
    match m.get("type") {
        Some(Value::String(t)) => n += cut(t),
        Some(Value::Array(ts)) => n += ts.iter().filter_map(Value::as_str).map(cut).sum::<usize>(),
        _ => {}
    }
    if let Some(f) = m.get("format").and_then(Value::as_str) {
        n += cut(f);
    }
    if let Some(r) = m
        .get("ref")
        .and_then(Value::as_str)
        .filter(|r| r.starts_with("#/"))
    {
        n += r.len();
    }
    n
}

/// Fewest bytes one entry of a `properties` map takes besides its value's own keys: the name, and
/// `  ` + `: ` + a newline in text, `"` `":` and the value's two delimiters in JSON.
fn entry_bytes(name: &str) -> usize {
    name.len() + 5
}

/// Per level (in [`limit_depth`]'s sense: a property one level below its schema, unless its name
/// is a transparent key; `items` on its array's level; `oneOf` variants one below), the fewest
/// bytes the schema nodes of that level take when shown whole: [`own_bytes`] of each node and
/// [`entry_bytes`] of each of its properties. A candidate cut below level `d` shows every node
/// of the levels above `d` whole.
fn min_bytes_by_level(node: &Value, level: usize, hist: &mut Vec<usize>) {
    let Value::Object(m) = node else { return };
    if hist.len() <= level {
        hist.resize(level + 1, 0);
    }
    hist[level] += own_bytes(m);
    if let Some(Value::Object(p)) = m.get("properties") {
        hist[level] += p.keys().map(|k| entry_bytes(k)).sum::<usize>();
        for (k, c) in p {
            let l = if is_transparent(k) { level } else { level + 1 };
            min_bytes_by_level(c, l, hist);
        }
    }
    if let Some(items) = m.get("items") {
        min_bytes_by_level(items, level, hist);
    }
    if let Some(Value::Array(vars)) = m.get("oneOf") {
        for c in vars {
            min_bytes_by_level(c, level + 1, hist);
        }
    }
}

fn fit_owned(
    value: Value,
    budget: usize,
    render: fn(&Value) -> String,
    base: &str,
    hist: Option<&[usize]>,
    max_level: Option<usize>,
) -> (Value, Vec<String>) {
    // lower bound of the rendered size of a candidate cut below depth `d` (all depths: None)
    let lower = |d: Option<usize>| -> usize {
        match hist {
            Some(h) => h.iter().take(d.unwrap_or(usize::MAX)).sum(),
            None => 0,
        }
    };
    let fits = |v: &Value, d: Option<usize>| {
        d.unwrap_or(usize::MAX) <= max_level.unwrap_or(usize::MAX)
            && lower(d) <= budget
            && render(v).len() <= budget
    };
    let mut notes = Vec::new();
    let mut v = value;
    for n in [160usize, 80, 40] {
        cut_strings(&mut v, n);
        if fits(&v, None) {
            notes.push(format!("{}texts shortened to {n} characters", label(base)));
            return (v, notes);
        }
    }
    notes.push(format!("{}texts shortened to 40 characters", label(base)));
    let total_depth = level_depth(&v) + 1;
    let mut best: Option<(Value, Vec<String>, usize)> = None;
    for d in (1..total_depth).rev() {
        if d > 1 && (lower(Some(d)) > budget || max_level.is_some_and(|m| d > m)) {
            continue;
        }
        let mut cut_at = Vec::new();
        let candidate = limit_depth(&v, d, 0, base, &mut cut_at);
        if render(&candidate).len() <= budget {
            best = Some((candidate, cut_at, d));
            break;
        }
        if d == 1 {
            best = Some((candidate, cut_at, d));
        }
    }
    if let Some((candidate, cut_at, depth)) = best {
        v = candidate;
        if !cut_at.is_empty() {
            let shown: Vec<&String> = cut_at.iter().take(6).collect();
            let more = if cut_at.len() > 6 {
                format!(" and {} more", cut_at.len() - 6)
            } else {
                String::new()
            };
            notes.push(format!(
                "{}nested parts below depth {depth} replaced by summaries at {}{more}",
                label(base),
                shown
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    if render(&v).len() <= budget {
        return (v, notes);
    }
    for w in [40usize, 20, 10, 5, 2, 1] {
        let mut cut_at = Vec::new();
        let candidate = limit_width(&v, w, base, &mut cut_at);
        if render(&candidate).len() <= budget || w == 1 {
            v = candidate;
            let shown: Vec<&String> = cut_at.iter().take(6).collect();
            notes.push(format!(
                "{}lists and objects cut to their first {w} entries at {}{}",
                label(base),
                shown
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                if cut_at.len() > 6 {
                    format!(" and {} more", cut_at.len() - 6)
                } else {
                    String::new()
                }
            ));
            break;
        }
    }
    (v, notes)
}

fn label(base: &str) -> String {
    if base.is_empty() {
        String::new()
    } else {
        format!("{base}: ")
    }
}

fn cut_strings(v: &mut Value, n: usize) {
    match v {
        Value::String(s) => {
            if s.chars().count() > n && !s.starts_with("#/") {
                let mut t: String = s.chars().take(n).collect();
                t.push('…');
                *s = t;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| cut_strings(x, n)),
        Value::Object(m) => m.values_mut().for_each(|x| cut_strings(x, n)),
        _ => {}
    }
}

/// Nesting depth where `properties`, `items` and `oneOf` levels do not count, so a schema's
/// top-level properties are all at depth 1.
fn level_depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(level_depth).max().unwrap_or(0),
        Value::Object(m) => m
            .iter()
            .map(|(k, c)| level_depth(c) + usize::from(!is_transparent(k)))
            .max()
            .unwrap_or(0)
            .max(1),
        _ => 0,
    }
}

fn is_transparent(key: &str) -> bool {
    matches!(key, "properties" | "items" | "oneOf")
}

fn depth_of(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth_of).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth_of).max().unwrap_or(0),
        _ => 0,
    }
}

fn summary_of(v: &Value) -> String {
    match v {
        Value::Object(m) if m.contains_key("type") || m.contains_key("ref") => {
            let mut out = String::from("…");
            match m.get("type") {
                Some(Value::String(t)) => out.push_str(t),
                Some(Value::Array(ts)) => {
                    out.push_str(&ts.iter().map(scalar_text).collect::<Vec<_>>().join("|"))
                }
                _ => {}
            }
            if let Some(f) = m.get("format").and_then(Value::as_str) {
                out.push_str(&format!("({f})"));
            }
            if let Some(r) = m.get("ref").and_then(Value::as_str) {
                out.push_str(&format!(" {r}"));
            }
            if let Some(p) = m.get("properties").and_then(Value::as_object) {
                out.push_str(&format!(" ({} properties)", p.len()));
            }
            if let Some(items) = m.get("items") {
                out.push_str(&format!(
                    " of {}",
                    summary_of(items).trim_start_matches('…')
                ));
            }
            out
        }
        Value::Object(m) => {
            let what = m
                .get("ref")
                .and_then(Value::as_str)
                .map(|r| format!(" {r}"))
                .unwrap_or_default();
            let props = m
                .get("properties")
                .and_then(Value::as_object)
                .map(|p| p.len());
            match props {
                Some(n) => format!("…{what} ({n} properties)"),
                None => format!("…{what} ({} keys)", m.len()),
            }
        }
        Value::Array(a) => format!("… ({} items)", a.len()),
        _ => "…".into(),
    }
}

/// Path of a child in notes: `properties` levels are skipped, `items` shows as `[]`.
fn child_path(at: &str, key: &str) -> String {
    match key {
        "properties" => at.to_string(),
        "items" => format!("{at}[]"),
        _ if at.is_empty() => key.to_string(),
        _ => format!("{at}.{key}"),
    }
}

/// Append the path of child `key` to `at`, as [`child_path`] makes it.
fn push_child_path(at: &mut String, key: &str) {
    match key {
        "properties" => {}
        "items" => at.push_str("[]"),
        _ if at.is_empty() => at.push_str(key),
        _ => {
            at.push('.');
            at.push_str(key);
        }
    }
}

fn limit_depth(v: &Value, max: usize, depth: usize, at: &str, cut: &mut Vec<String>) -> Value {
    let mut path = at.to_string();
    limit_depth_at(v, max, depth, &mut path, cut)
}

/// [`limit_depth`] with the path of `v` in a buffer that children append to and truncate back.
fn limit_depth_at(
    v: &Value,
    max: usize,
    depth: usize,
    at: &mut String,
    cut: &mut Vec<String>,
) -> Value {
    match v {
        Value::Object(m) => {
            if depth >= max
                && !m.is_empty()
                && !(m.len() == 1 && m.keys().all(|k| is_transparent(k)))
            {
                // keep small leaf-like objects (a type and a format) as they are
                if depth_of(v) <= 1 && m.len() <= 3 {
                    return v.clone();
                }
                cut.push(if at.is_empty() {
                    "(top)".into()
                } else {
                    at.clone()
                });
                return Value::String(summary_of(v));
            }
            let mut out = Map::new();
            let len = at.len();
            for (k, c) in m {
                let d = if is_transparent(k) { depth } else { depth + 1 };
                push_child_path(at, k);
                out.insert(k.clone(), limit_depth_at(c, max, d, at, cut));
                at.truncate(len);
            }
            Value::Object(out)
        }
        Value::Array(a) => {
            if depth >= max && !a.is_empty() && depth_of(v) > 1 {
                cut.push(if at.is_empty() {
                    "(top)".into()
                } else {
                    at.clone()
                });
                return Value::String(summary_of(v));
            }
            let len = at.len();
            let out = a
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    use std::fmt::Write as _;
                    let _ = write!(at, "[{i}]");
                    let out = limit_depth_at(c, max, depth + 1, at, cut);
                    at.truncate(len);
                    out
                })
                .collect();
            Value::Array(out)
        }
        other => other.clone(),
    }
}

fn limit_width(v: &Value, w: usize, at: &str, cut: &mut Vec<String>) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            let top = at.is_empty()
                || !at.contains(['.', '['])
                    && at.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && m.contains_key("truncated");
            for (i, (k, c)) in m.iter().enumerate() {
                if i >= w && k != "truncated" && !top {
                    if i == w {
                        cut.push(if at.is_empty() {
                            "(top)".into()
                        } else {
                            at.to_string()
                        });
                        out.insert(
                            "…".into(),
                            Value::String(format!("{} more keys", m.len() - w)),
                        );
                    }
                    continue;
                }
                out.insert(k.clone(), limit_width(c, w, &child_path(at, k), cut));
            }
            Value::Object(out)
        }
        Value::Array(a) => {
            let mut out: Vec<Value> = a
                .iter()
                .take(w)
                .enumerate()
                .map(|(i, c)| limit_width(c, w, &format!("{at}[{i}]"), cut))
                .collect();
            if a.len() > w {
                cut.push(if at.is_empty() {
                    "(top)".into()
                } else {
                    at.to_string()
                });
                out.push(Value::String(format!("… {} more", a.len() - w)));
            }
            Value::Array(out)
        }
        other => other.clone(),
    }
}

// ---------------------------------------------------------------- text rendering

/// Render an answer as indented text: `key: value` lines, lists as `- item`, schemas (objects
/// with `type`/`properties`) in a compact type notation.
pub fn render_text(v: &Value) -> String {
    let mut out = String::new();
    text_value(v, 0, &mut out);
    out
}

fn is_schema_like(m: &Map<String, Value>) -> bool {
    m.contains_key("type")
        && (m.contains_key("properties") || m.contains_key("items") || m.len() <= 4)
        || m.contains_key("ref")
            && (m.contains_key("cycle") || m.contains_key("more") || m.contains_key("type"))
        || m.contains_key("oneOf")
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn text_value(v: &Value, indent: usize, out: &mut String) {
    let pad = "  ".repeat(indent);
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                match c {
                    Value::Object(cm) if is_schema_like(cm) => {
                        out.push_str(&format!("{pad}{k}: "));
                        schema_text(c, indent, out);
                        out.push('\n');
                    }
                    Value::Object(cm) if cm.is_empty() => {
                        out.push_str(&format!("{pad}{k}: {{}}\n"))
                    }
                    Value::Object(_) => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        text_value(c, indent + 1, out);
                    }
                    Value::Array(a) if a.is_empty() => out.push_str(&format!("{pad}{k}: []\n")),
                    Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
                        let items: Vec<String> = a.iter().map(scalar_text).collect();
                        let joined = items.join(", ");
                        if joined.len() < 100 {
                            out.push_str(&format!("{pad}{k}: [{joined}]\n"));
                        } else {
                            out.push_str(&format!("{pad}{k}:\n"));
                            for i in items {
                                out.push_str(&format!("{pad}  - {i}\n"));
                            }
                        }
                    }
                    Value::Array(a) => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        for item in a {
                            list_item(item, indent + 1, out);
                        }
                    }
                    other => out.push_str(&format!("{pad}{k}: {}\n", scalar_text(other))),
                }
            }
        }
        Value::Array(a) => {
            for item in a {
                list_item(item, indent, out);
            }
        }
        other => {
            out.push_str(&pad);
            out.push_str(&scalar_text(other));
            out.push('\n');
        }
    }
}

fn list_item(item: &Value, indent: usize, out: &mut String) {
    let pad = "  ".repeat(indent);
    match item {
        Value::Object(m) if is_schema_like(m) => {
            out.push_str(&format!("{pad}- "));
            schema_text(item, indent + 1, out);
            out.push('\n');
        }
        Value::Object(m) => {
            // first key on the dash line, the rest indented under it
            let mut first = true;
            for (k, c) in m {
                let mut one = Map::new();
                one.insert(k.clone(), c.clone());
                let mut s = String::new();
                text_value(&Value::Object(one), indent + 1, &mut s);
                if first {
                    out.push_str(&format!("{pad}- {}", s.trim_start()));
                    first = false;
                } else {
                    out.push_str(&s);
                }
            }
            if first {
                out.push_str(&format!("{pad}- {{}}\n"));
            }
        }
        Value::Array(_) => {
            out.push_str(&format!("{pad}-\n"));
            text_value(item, indent + 1, out);
        }
        other => out.push_str(&format!("{pad}- {}\n", scalar_text(other))),
    }
}

/// Append a scalar as [`scalar_text`] shows it.
fn push_scalar(out: &mut String, v: &Value) {
    match v {
        Value::String(s) => out.push_str(s),
        other => {
            use std::fmt::Write as _;
            let _ = write!(out, "{other}");
        }
    }
}

fn push_pad(out: &mut String, levels: usize) {
    for _ in 0..levels {
        out.push_str("  ");
    }
}

/// Compact type notation for a compact schema value: `object #/…/issue {id*: integer, …}`.
fn schema_text(v: &Value, indent: usize, out: &mut String) {
    let Value::Object(m) = v else {
        push_scalar(out, v);
        return;
    };
    let mut head = String::new();
    match m.get("type") {
        Some(Value::String(s)) => head.push_str(s),
        Some(Value::Array(a)) => {
            for (i, t) in a.iter().enumerate() {
                if i > 0 {
                    head.push('|');
                }
                push_scalar(&mut head, t);
            }
        }
        _ => {}
    }
    if let Some(f) = m.get("format").and_then(Value::as_str) {
        head.push('(');
        head.push_str(f);
        head.push(')');
    }
    if let Some(r) = m.get("ref").and_then(Value::as_str) {
        if !head.is_empty() {
            head.push(' ');
        }
        head.push_str(r);
    }
    if m.get("cycle").and_then(Value::as_bool) == Some(true) {
        head.push_str(" (recursive, see above)");
    }
    if let Some(more) = m.get("more").and_then(Value::as_str) {
        head.push_str(" (");
        head.push_str(more);
        head.push(')');
    }
    if let Some(e) = m.get("enum").and_then(Value::as_array) {
        head.push_str(" enum[");
        for (i, x) in e.iter().enumerate() {
            if i > 0 {
                head.push(',');
            }
            push_scalar(&mut head, x);
        }
        head.push(']');
    }
    if let Some(d) = m.get("description").and_then(Value::as_str) {
        head.push_str("  // ");
        head.push_str(d);
    }
    if head.is_empty() {
        head.push_str("any");
    }
    out.push_str(head.trim_start());
    if let Some(items) = m.get("items") {
        out.push_str(" of ");
        schema_text(items, indent, out);
    }
    if let Some(props) = m.get("properties") {
        match props {
            Value::Object(p) => {
                let req: Vec<&str> = m
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                out.push_str(" {\n");
                for (k, c) in p {
                    push_pad(out, indent + 1);
                    out.push_str(k);
                    if req.contains(&k.as_str()) {
                        out.push('*');
                    }
                    out.push_str(": ");
                    schema_text(c, indent + 1, out);
                    out.push('\n');
                }
                push_pad(out, indent);
                out.push('}');
            }
            other => {
                out.push_str(" {");
                push_scalar(out, other);
                out.push('}');
            }
        }
    }
    if let Some(Value::Array(vars)) = m.get("oneOf") {
        out.push_str(" one of:");
        for var in vars {
            out.push('\n');
            push_pad(out, indent + 1);
            out.push_str("| ");
            schema_text(var, indent + 1, out);
        }
    }
    for (k, c) in m {
        if !matches!(
            k.as_str(),
            "type"
                | "format"
                | "ref"
                | "cycle"
                | "more"
                | "enum"
                | "description"
                | "items"
                | "properties"
                | "required"
                | "oneOf"
        ) {
            out.push(' ');
            out.push_str(k);
            out.push('=');
            push_scalar(out, c);
        }
    }
}

// ---------------------------------------------------------------- list

/// Filters for [`list_operations`].
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only operations with this tag (case-insensitive).
    pub tag: Option<String>,
    /// Only this method (case-insensitive).
    pub method: Option<String>,
    /// Only paths containing this text (case-insensitive).
    pub path_contains: Option<String>,
    /// Only collection (list) endpoints.
    pub collections_only: bool,
    /// At most this many (default 50).
    pub limit: Option<usize>,
}

/// List operations matching the filter.
pub fn list_operations(spec: &Spec, filter: &ListFilter, budget: Budget) -> Answer {
    let render = renderer(budget.format);
    let limit = filter.limit.unwrap_or(50);
    let tag = filter.tag.as_ref().map(|t| t.to_ascii_lowercase());
    let method = filter.method.as_ref().map(|m| m.to_ascii_uppercase());
    let needle = filter
        .path_contains
        .as_ref()
        .map(|p| p.to_ascii_lowercase());
    let mut matched = Vec::new();
    for (i, op) in spec.index.operations.iter().enumerate() {
        if let Some(t) = &tag {
            if !op.tags.iter().any(|x| x.to_ascii_lowercase() == *t) {
                continue;
            }
        }
        if let Some(m) = &method {
            if &op.method != m {
                continue;
            }
        }
        if let Some(n) = &needle {
            if !op.path.to_ascii_lowercase().contains(n.as_str()) {
                continue;
            }
        }
        let col = if filter.collections_only {
            match detect::collection_ref(spec, i) {
                Some(c) => Some(c),
                None => continue,
            }
        } else {
            None
        };
        matched.push((i, col));
    }
    let total = matched.len();
    let mut entries = Vec::new();
    let mut notes = Vec::new();
    let mut used = 64;
    for (n, (i, col)) in matched.iter().enumerate() {
        if n >= limit {
            notes.push(format!(
                "showing {limit} of {total} matches (limit); narrow the filter or raise the limit"
            ));
            break;
        }
        let op = spec.op(*i);
        let mut e = Map::new();
        e.insert("op".into(), Value::String(op.key()));
        if let Some(id) = &op.operation_id {
            e.insert("id".into(), Value::String(id.clone()));
        }
        if !op.tags.is_empty() {
            e.insert("tags".into(), json!(op.tags));
        }
        if let Some(s) = &op.summary {
            e.insert("summary".into(), Value::String(short(s, 80)));
        }
        if op.deprecated {
            e.insert("deprecated".into(), Value::Bool(true));
        }
        if let Some(c) = col {
            e.insert(
                "records".into(),
                Value::String(if c.value.record_selector.is_empty() {
                    "<body>".into()
                } else {
                    c.value.record_selector.clone()
                }),
            );
        }
        let v = Value::Object(e);
        let size = if budget.format == Format::Json {
            render(&v).len() + 1
        } else {
            list_line(&v).len() + 1
        };
        if used + size + 120 > budget.bytes {
            notes.push(format!("showing {n} of {total} matches (budget {} bytes); narrow the filter or raise the budget", budget.bytes));
            break;
        }
        used += size;
        entries.push(v);
    }
    let value = json!({"total": total, "shown": entries.len(), "operations": entries});
    Answer::finish(
        value,
        notes,
        budget,
        if budget.format == Format::Json {
            render
        } else {
            render_list_text
        },
    )
}

fn list_line(e: &Value) -> String {
    let mut s = e["op"].as_str().unwrap_or("").to_string();
    if let Some(id) = e.get("id").and_then(Value::as_str) {
        s.push_str(&format!("  ({id})"));
    }
    if let Some(t) = e.get("tags").and_then(Value::as_array) {
        s.push_str(&format!(
            "  [{}]",
            t.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    if let Some(r) = e.get("records").and_then(Value::as_str) {
        s.push_str(&format!("  records: {r}"));
    }
    if e.get("deprecated").is_some() {
        s.push_str("  DEPRECATED");
    }
    if let Some(sum) = e.get("summary").and_then(Value::as_str) {
        s.push_str(&format!("  — {sum}"));
    }
    s
}

fn render_list_text(v: &Value) -> String {
    let mut out = format!(
        "{} operations match, {} shown\n",
        v["total"].as_u64().unwrap_or(0),
        v["shown"].as_u64().unwrap_or(0)
    );
    if let Some(ops) = v["operations"].as_array() {
        for e in ops {
            if e.is_object() {
                out.push_str(&list_line(e));
            } else {
                out.push_str(&scalar_text(e));
            }
            out.push('\n');
        }
    }
    if let Some(t) = v.get("truncated").and_then(Value::as_array) {
        for n in t {
            out.push_str(&format!("[truncated: {}]\n", scalar_text(n)));
        }
    }
    out
}

// ---------------------------------------------------------------- show operation

/// Show one operation (by operationId, `METHOD /path`, or `/path` for GET).
pub fn show_operation(spec: &Spec, key: &str, budget: Budget) -> anyhow::Result<Answer> {
    let Some(i) = spec.index.find(key) else {
        let suggestions: Vec<String> = spec
            .index
            .operations
            .iter()
            .filter(|o| {
                let k = key.to_ascii_lowercase();
                o.path.to_ascii_lowercase().contains(&k)
                    || o.operation_id
                        .as_deref()
                        .map(|id| id.to_ascii_lowercase().contains(&k))
                        .unwrap_or(false)
            })
            .take(5)
            .map(|o| o.key())
            .collect();
        anyhow::bail!(
            "no operation `{key}` (give an operationId or `METHOD /path`){}",
            if suggestions.is_empty() {
                String::new()
            } else {
                format!("; close matches: {}", suggestions.join(", "))
            }
        );
    };
    let render = renderer(budget.format);
    let op = spec.op(i).clone();
    let op_v = spec.operation_value(&op);
    let mut a = Map::new();
    a.insert("operation".into(), Value::String(op.key()));
    if let Some(id) = &op.operation_id {
        a.insert("operationId".into(), Value::String(id.clone()));
    }
    a.insert("at".into(), Value::String(format!("#{}", op.pointer)));
    if let Some(s) = &op.summary {
        a.insert("summary".into(), Value::String(short(s, 160)));
    }
    if let Some(d) = op_v.get("description").and_then(Value::as_str) {
        a.insert("description".into(), Value::String(short(d, 300)));
    }
    if !op.tags.is_empty() {
        a.insert("tags".into(), json!(op.tags));
    }
    if op.deprecated {
        a.insert("deprecated".into(), Value::Bool(true));
    }
    // one line per parameter: `name (in, required) type — description`
    let params: Vec<Value> = spec
        .parameters(&op)
        .iter()
        .map(|p| {
            let mut line = format!(
                "{} ({}{})",
                p.name,
                p.location,
                if p.required { ", required" } else { "" }
            );
            if p.location != "body" {
                line.push_str(&format!(" {}", type_line(spec, &p.schema)));
            }
            if let Some(st) = &p.style {
                line.push_str(&format!(" style={st}"));
            }
            if let Some(d) = p.description.as_deref().filter(|d| !d.trim().is_empty()) {
                line.push_str(&format!(" — {}", short(d, 70)));
            }
            Value::String(line)
        })
        .collect();
    if !params.is_empty() {
        a.insert("parameters".into(), Value::Array(params));
    }
    let body = spec.request_body(&op);
    if let Some(b) = &body {
        let mut e = Map::new();
        e.insert("required".into(), Value::Bool(b.required));
        e.insert("content_types".into(), json!(b.content_types));
        if let Some(p) = &b.schema_pointer {
            e.insert("at".into(), Value::String(p.clone()));
        }
        a.insert("request_body".into(), Value::Object(e));
    }
    let responses = spec.responses(&op);
    let success = {
        let statuses: Vec<&str> = responses.iter().map(|r| r.status.as_str()).collect();
        super::index::pick_success_status(&statuses).map(str::to_string)
    };
    let mut resp_list = Vec::new();
    for r in &responses {
        let mut line = r.status.clone();
        if let Some(s) = &r.schema {
            line.push_str(&format!(" {}", type_line(spec, s)));
        }
        if !r.content_types.is_empty() {
            line.push_str(&format!(" [{}]", r.content_types.join(", ")));
        }
        if !r.headers.is_empty() {
            line.push_str(&format!(" headers: {}", r.headers.join(", ")));
        }
        if let Some(d) = r.description.as_deref().filter(|d| !d.trim().is_empty()) {
            line.push_str(&format!(" — {}", short(d, 60)));
        }
        resp_list.push(Value::String(line));
    }
    a.insert("responses".into(), Value::Array(resp_list));

    // the skeleton first; it gets up to 45% of the budget
    let mut notes: Vec<String> = Vec::new();
    let skeleton = Value::Object(a);
    let (mut skeleton, n1) = fit(&skeleton, budget.bytes * 45 / 100, render, "");
    notes.extend(n1);
    let used = render(&skeleton).len();
    let remaining = budget.bytes.saturating_sub(used + 200);

    // then the schemas, success response first
    let success_resp = responses
        .iter()
        .find(|r| Some(&r.status) == success.as_ref());
    let body_schema = body.as_ref().and_then(|b| b.schema.as_ref());
    let (resp_share, body_share) = match (success_resp.and_then(|r| r.schema.as_ref()), body_schema)
    {
        (Some(_), Some(_)) => (remaining * 7 / 10, remaining * 3 / 10),
        (Some(_), None) => (remaining, 0),
        (None, Some(_)) => (0, remaining),
        (None, None) => (0, 0),
    };
    let mut expanded_nodes = 0;
    if let Some(r) = success_resp {
        if let Some(s) = &r.schema {
            let share = resp_share.max(64);
            let compact = compact_schema_within(spec, s, 8, share);
            expanded_nodes += compact.stats.nodes;
            let at = r.schema_pointer.clone().unwrap_or_default();
            let (fitted, n) = fit_compact(
                compact,
                share,
                schema_render(budget.format),
                "response_schema",
            );
            notes.extend(n);
            skeleton["response_schema"] = json!({"status": r.status, "at": at, "schema": fitted});
        }
    }
    if let Some(s) = body_schema {
        let share = body_share.max(64);
        let compact = compact_schema_within(spec, s, 6, share);
        expanded_nodes += compact.stats.nodes;
        let at = body
            .as_ref()
            .and_then(|b| b.schema_pointer.clone())
            .unwrap_or_default();
        let (fitted, n) = fit_compact(
            compact,
            share,
            schema_render(budget.format),
            "request_body_schema",
        );
        notes.extend(n);
        skeleton["request_body_schema"] = json!({"at": at, "schema": fitted});
    }
    let mut answer = Answer::finish(skeleton, notes, budget, render);
    answer.expanded_nodes = expanded_nodes;
    Ok(answer)
}

/// The renderer a compact schema is measured with when it is fitted to its share of an answer:
/// the compact type notation in text, compact JSON otherwise.
pub fn schema_render(format: Format) -> fn(&Value) -> String {
    match format {
        Format::Json => |v| serde_json::to_string(v).unwrap_or_default(),
        Format::Text => |v| {
            let mut s = String::new();
            schema_text(v, 0, &mut s);
            s
        },
    }
}

// ---------------------------------------------------------------- show schema

/// Show one named schema (`components/schemas` / `definitions` name, or a `#/...` pointer).
pub fn show_schema(spec: &Spec, name: &str, budget: Budget) -> anyhow::Result<Answer> {
    let Some(ptr) = spec.schema_pointer(name) else {
        let lower = name.to_ascii_lowercase();
        let close: Vec<&String> = spec
            .index
            .schema_names
            .iter()
            .filter(|n| n.to_ascii_lowercase().contains(&lower))
            .take(8)
            .collect();
        anyhow::bail!(
            "no schema `{name}`{}",
            if close.is_empty() {
                String::new()
            } else {
                format!(
                    "; close matches: {}",
                    close
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
    };
    let render = renderer(budget.format);
    let schema = json!({"$ref": ptr});
    let mut value = json!({"schema": name, "at": ptr});
    let head = render(&value).len() + 40;
    let share = budget.bytes.saturating_sub(head).max(64);
    let compact = compact_schema_within(spec, &schema, 8, share);
    let expanded_nodes = compact.stats.nodes;
    let (fitted, notes) = fit_compact(compact, share, schema_render(budget.format), "definition");
    value["definition"] = fitted;
    let mut answer = Answer::finish(value, notes, budget, render);
    answer.expanded_nodes = expanded_nodes;
    Ok(answer)
}

// ---------------------------------------------------------------- summary

/// A one-screen summary: title, version, base URL, auth, counts, tags, top collection endpoints.
pub fn summary(spec: &Spec, budget: Budget) -> Answer {
    let render = renderer(budget.format);
    let base = detect::base_url(spec);
    let auth = detect::auth(spec);
    let mut tags: Vec<(String, usize)> = Vec::new();
    for op in &spec.index.operations {
        for t in &op.tags {
            match tags.iter_mut().find(|(n, _)| n == t) {
                Some(x) => x.1 += 1,
                None => tags.push((t.clone(), 1)),
            }
        }
    }
    tags.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let streams = detect::pick_streams(spec, 8);
    let value = json!({
        "title": spec.title(),
        "api_version": spec.api_version(),
        "format": format!("{} ({})", spec.doc.version.label(), spec.doc.version_string),
        "size_bytes": spec.doc.size_bytes,
        "operations": spec.index.operations.len(),
        "schemas": spec.index.schema_names.len(),
        "base_url": {"value": base.value, "confidence": base.confidence},
        "auth": {"value": auth.value, "confidence": auth.confidence},
        "tags": tags.iter().take(30).map(|(t, n)| format!("{t} ({n})")).collect::<Vec<_>>(),
        "suggested_streams": streams.iter().map(|s| json!({
            "name": s.name,
            "op": format!("GET {}", s.collection.value.path),
            "records": s.collection.value.record_selector,
            "pagination": s.pagination.value.kind(),
            "primary_key": s.primary_key.value,
        })).collect::<Vec<_>>(),
    });
    let (v, notes) = fit(&value, budget.bytes, render, "");
    Answer::finish(v, notes, budget, render)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_cuts_depth_and_reports_where() {
        let v = json!({"a": {"b": {"c": {"d": {"e": "x".repeat(50)}}}}, "list": (0..100).collect::<Vec<_>>()});
        let render: fn(&Value) -> String = |v| serde_json::to_string(v).unwrap();
        let (out, notes) = fit(&v, 120, render, "#/x");
        assert!(render(&out).len() <= 120, "{}", render(&out));
        assert!(!notes.is_empty());
        assert!(notes.iter().any(|n| n.starts_with("#/x: ")), "{notes:?}");
        assert!(
            notes
                .iter()
                .any(|n| n.contains("depth") && n.contains("x.a")),
            "{notes:?}"
        );
    }

    #[test]
    fn fit_leaves_small_values_alone() {
        let v = json!({"a": 1});
        let (out, notes) = fit(&v, 100, render_text, "");
        assert_eq!(out, v);
        assert!(notes.is_empty());
    }

    /// The lower bound that lets expansion stop early and the fitter skip candidates never
    /// exceeds what a candidate really takes, in text or JSON, with texts cut or not.
    #[test]
    fn least_size_by_level_is_a_lower_bound_of_every_candidate() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files: Vec<std::path::PathBuf> =
            std::fs::read_dir(root.join("tests/fixtures/openapi"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with("bad-"))
                .collect();
        files.sort();
        // GitHub's description when fetched (`.ci/fetch-fixtures.sh`): every 25th schema
        let github = root.join(".cache/fixtures/github/api.github.com.json");
        if github.exists() {
            files.push(github);
        }
        let mut checked = 0;
        for f in &files {
            let spec = Spec::load(f.to_str().unwrap()).unwrap();
            let step = if spec.index.schema_names.len() > 100 {
                25
            } else {
                1
            };
            for name in spec.index.schema_names.iter().step_by(step) {
                let schema = json!({"$ref": spec.schema_pointer(name).unwrap()});
                let whole = compact_schema(&spec, &schema, 8);
                let mut hist = Vec::new();
                min_bytes_by_level(&whole, 0, &mut hist);
                let lower = |d: usize| hist.iter().take(d).sum::<usize>();
                let mut cut = whole.clone();
                cut_strings(&mut cut, 40);
                for format in [Format::Text, Format::Json] {
                    let render = schema_render(format);
                    for v in [&whole, &cut] {
                        assert!(lower(usize::MAX) <= render(v).len(), "{name} {format:?}");
                        for d in 1..=level_depth(v) + 1 {
                            let candidate = limit_depth(v, d, 0, "", &mut Vec::new());
                            let n = render(&candidate).len();
                            assert!(
                                lower(d) <= n,
                                "{}: {name} {format:?} depth {d}: bound {} > {n}",
                                f.display(),
                                lower(d)
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 50, "{checked}");
    }
}

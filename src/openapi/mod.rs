//! OpenAPI toolkit: load a description (OpenAPI 3.0 / 3.1, Swagger 2.0; JSON or YAML; file or
//! URL), index its operations, resolve local refs, answer bounded queries about it, and detect
//! what a connector needs (collection endpoints, record selectors, pagination, auth, primary keys,
//! incremental cursors, base URL).
//!
//! The query functions are what an LLM agent gets as tools: every answer fits a byte budget and
//! says where it was cut. `cli.rs` exposes the same queries as `connector-factory openapi ...`.

pub mod cli;
pub mod detect;
pub mod index;
pub mod load;
pub mod query;
pub mod resolve;

pub use index::{Index, Operation, Param, RequestBody, Response};
pub use load::{Document, LoadError, SpecVersion};

/// A loaded and indexed description.
#[derive(Debug, Clone)]
pub struct Spec {
    pub doc: Document,
    pub index: Index,
}

impl Spec {
    /// Load from a file path or an http(s) URL and index it.
    pub fn load(location: &str) -> anyhow::Result<Spec> {
        Ok(Spec::from_document(load::load(location)?))
    }

    /// Parse from text (JSON or YAML) and index it.
    pub fn parse(text: &str, source_name: &str) -> Result<Spec, LoadError> {
        Ok(Spec::from_document(load::parse_str(text, source_name)?))
    }

    /// Parse from bytes and index it.
    pub fn from_bytes(bytes: &[u8], source_name: &str) -> Result<Spec, LoadError> {
        Ok(Spec::from_document(load::parse_bytes(bytes, source_name)?))
    }

    pub fn from_document(doc: Document) -> Spec {
        let index = Index::build(&doc.root, doc.version);
        let spec = Spec { doc, index };
        // Collection detection runs here, once, rather than inside the first query that needs
        // it, so every query stays cheap (it is part of "load + index" in the benchmark).
        let _ = detect::collection_ref(&spec, 0);
        spec
    }

    /// The API's title, when the description gives one.
    pub fn title(&self) -> Option<&str> {
        self.doc
            .root
            .pointer("/info/title")
            .and_then(|v| v.as_str())
    }

    /// `info.version`, when given.
    pub fn api_version(&self) -> Option<String> {
        match self.doc.root.pointer("/info/version")? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// The operation at a position in the index.
    pub fn op(&self, i: usize) -> &Operation {
        &self.index.operations[i]
    }
}

//! Estimated cost of a session: per-million-token prices by model, from a built-in table that a
//! TOML or JSON file can extend or override.
//!
//! File shape (TOML; JSON is the same structure):
//! ```toml
//! [models."claude-sonnet-4"]
//! input = 3.0     # USD per million input tokens
//! output = 15.0   # USD per million output tokens
//! [models."*"]    # optional fallback for models not listed
//! input = 0.0
//! output = 0.0
//! ```
//! A model matches the longest listed name that is a prefix of it, so `claude-sonnet-4` prices
//! `claude-sonnet-4-5-20250929` too.

use super::Usage;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Price {
    /// USD per million input tokens.
    pub input: f64,
    /// USD per million output tokens.
    pub output: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceTable {
    pub models: BTreeMap<String, Price>,
}

/// List prices when this was written (USD per million tokens). They change: override them with
/// a file rather than trusting these for billing.
const DEFAULTS: &[(&str, f64, f64)] = &[
    ("claude-opus-4-5", 5.0, 25.0),
    ("claude-opus-4", 15.0, 75.0),
    ("claude-sonnet-4", 3.0, 15.0),
    ("claude-3-7-sonnet", 3.0, 15.0),
    ("claude-3-5-sonnet", 3.0, 15.0),
    ("claude-haiku-4-5", 1.0, 5.0),
    ("claude-3-5-haiku", 0.8, 4.0),
    ("gpt-5-mini", 0.25, 2.0),
    ("gpt-5-nano", 0.05, 0.4),
    ("gpt-5", 1.25, 10.0),
    ("gpt-4.1-nano", 0.1, 0.4),
    ("gpt-4.1-mini", 0.4, 1.6),
    ("gpt-4.1", 2.0, 8.0),
    ("gpt-4o-mini", 0.15, 0.6),
    ("gpt-4o", 2.5, 10.0),
    ("o4-mini", 1.1, 4.4),
    ("o3", 2.0, 8.0),
];

impl Default for PriceTable {
    fn default() -> Self {
        PriceTable {
            models: DEFAULTS.iter().map(|(m, i, o)| (m.to_string(), Price { input: *i, output: *o })).collect(),
        }
    }
}

impl PriceTable {
    /// Parses an override file by extension (`.json`, else TOML).
    pub fn parse(text: &str, json: bool) -> Result<PriceTable> {
        let table: PriceTable = if json {
            serde_json::from_str(text).context("price table JSON: expected {\"models\": {name: {input, output}}}")?
        } else {
            toml::from_str(text).context("price table TOML: expected [models.\"name\"] tables with input and output")?
        };
        for (name, p) in &table.models {
            if !(p.input.is_finite() && p.output.is_finite() && p.input >= 0.0 && p.output >= 0.0) {
                anyhow::bail!("price of {name:?}: prices must be non-negative numbers");
            }
        }
        Ok(table)
    }

    /// The defaults with the file's entries laid over them.
    pub fn with_overrides_from(path: &Path) -> Result<PriceTable> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let json = path.extension().is_some_and(|e| e == "json");
        let extra = PriceTable::parse(&text, json).with_context(|| format!("in {}", path.display()))?;
        let mut table = PriceTable::default();
        table.models.extend(extra.models);
        Ok(table)
    }

    /// The defaults, or the defaults plus the file named by `FACTORY_LLM_PRICES`.
    pub fn from_env() -> Result<PriceTable> {
        match std::env::var(super::ENV_PRICES) {
            Ok(p) if !p.trim().is_empty() => PriceTable::with_overrides_from(Path::new(p.trim())),
            _ => Ok(PriceTable::default()),
        }
    }

    pub fn price(&self, model: &str) -> Option<Price> {
        self.models
            .iter()
            .filter(|(name, _)| name.as_str() != "*" && model.starts_with(name.as_str()))
            .max_by_key(|(name, _)| name.len())
            .or_else(|| self.models.get_key_value("*"))
            .map(|(_, p)| *p)
    }

    /// Estimated USD for some usage; `None` when the model has no price.
    pub fn cost(&self, model: &str, usage: Usage) -> Option<f64> {
        let p = self.price(model)?;
        Some((usage.input_tokens as f64 * p.input + usage.output_tokens as f64 * p.output) / 1_000_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        let t = PriceTable::default();
        assert_eq!(t.price("claude-opus-4-5-20251101").unwrap().input, 5.0);
        assert_eq!(t.price("claude-opus-4-1-20250805").unwrap().input, 15.0);
        assert_eq!(t.price("gpt-4o-mini-2024-07-18").unwrap().output, 0.6);
        assert!(t.price("llama3.1:8b").is_none());
        let cost = t.cost("claude-sonnet-4-5", Usage { input_tokens: 1_000_000, output_tokens: 100_000 }).unwrap();
        assert!((cost - 4.5).abs() < 1e-9, "{cost}");
    }

    #[test]
    fn overrides_in_toml_and_json() {
        let t = PriceTable::parse("[models.\"llama3\"]\ninput = 0.1\noutput = 0.2\n[models.\"*\"]\ninput = 1\noutput = 1\n", false).unwrap();
        assert_eq!(t.price("llama3.1:8b").unwrap().output, 0.2);
        assert_eq!(t.price("other").unwrap().input, 1.0);
        let j = PriceTable::parse(r#"{"models":{"m":{"input":2,"output":3}}}"#, true).unwrap();
        assert_eq!(j.price("m-1").unwrap(), Price { input: 2.0, output: 3.0 });
        assert!(PriceTable::parse(r#"{"models":{"m":{"input":-2,"output":3}}}"#, true).is_err());
        assert!(PriceTable::parse("models = 3", false).is_err());
    }
}

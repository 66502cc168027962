//! Agents that write connectors: the builtin OpenAPI generator now, the LLM agent later.
pub mod builtin;

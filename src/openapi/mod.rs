//! OpenAPI toolkit: placeholder until it lands (issue 4).
pub mod cli;

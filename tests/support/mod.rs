//! Shared test helpers: bare repositories, a git smart-HTTP server and a recording platform.
#![allow(dead_code)]

pub mod git_http;
pub mod repo;

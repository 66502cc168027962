//! Connector Factory: turns connector requests into tested connector pull requests.
//!
//! One module per stage; see `docs/design.md` for the flow and `docs/connector-contract.md`
//! for what a generated connector must do.

pub mod agent;
pub mod batch;
pub mod openapi;
pub mod registry;
pub mod scaffold;
pub mod spectest;
pub mod validate;
pub mod store;
pub mod worker;
pub mod github;
pub mod command;
pub mod request;
pub mod config;
pub mod server;
pub mod git;
pub mod pipeline;
pub mod metrics;
pub mod platform;
pub mod setup;

// glibc's allocator showed up as a tenth of the webhook intake's CPU (frees of buffers made on
// another thread, arena locks); with mimalloc's thread-local free lists the intake took about
// 10 % more deliveries per second. Set here so the binary, the tests and the benches all run on it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

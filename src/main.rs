//! The `connector-factory` binary: one subcommand per stage of the factory.
//! Each subcommand's arguments and entry point live in the module that owns the stage,
//! so this file stays a table of contents.

use clap::{Parser, Subcommand};
use connector_factory::{agent, batch, openapi, pipeline, scaffold, server, setup, spectest, validate};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "connector-factory", version, about = "Turns connector requests into tested connectors")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the app's pipeline on a local repository: a request file in, a connector branch and
    /// the pull request it would open out.
    Run(pipeline::run::RunArgs),
    /// Build many requests at once on the local platform: durable, resumable, with progress and
    /// a summary table.
    Batch(batch::BatchArgs),
    /// Materialize a scaffold JSON file into a folder (or pack a template tree into one).
    Scaffold(scaffold::cli::ScaffoldArgs),
    /// Check connector implementations against the registry's schemas and layout.
    Validate(validate::ValidateArgs),
    /// Run the conformance suite against connector implementations using a fault-injecting mock API.
    SpecTest(spectest::SpecTestArgs),
    /// Query an OpenAPI description a piece at a time.
    Openapi(openapi::cli::OpenapiArgs),
    /// Generate a connector implementation (builtin OpenAPI generator, or the agent with --request).
    Generate(agent::cli::GenerateCommand),
    /// Run the GitHub App: webhook server, job queue and workers.
    Serve(server::serve::ServeArgs),
    /// Create the GitHub App through GitHub's manifest flow and write its credentials locally.
    Setup(setup::SetupArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => pipeline::run::run(args),
        Command::Batch(args) => batch::run(args),
        Command::Scaffold(args) => scaffold::cli::run(args),
        Command::Validate(args) => validate::run(args),
        Command::SpecTest(args) => spectest::run(args),
        Command::Openapi(args) => openapi::cli::run(args),
        Command::Generate(args) => agent::cli::run(args),
        Command::Serve(args) => server::serve::run(args),
        Command::Setup(args) => setup::run(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

//! `connector-factory openapi <spec> <query>`: the toolkit's queries on the command line.

use super::Spec;
use super::detect;
use super::query::{self, Budget, Format, ListFilter};
use clap::Subcommand;
use serde_json::json;

#[derive(clap::Args, Debug)]
pub struct OpenapiArgs {
    /// Path or http(s) URL of the OpenAPI / Swagger description (JSON or YAML).
    pub spec: String,
    #[command(subcommand)]
    pub command: OpenapiCommand,
    /// Print the answer as compact JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Size limit of the answer in bytes.
    #[arg(long, global = true, default_value_t = query::DEFAULT_BUDGET)]
    pub budget: usize,
}

#[derive(Subcommand, Debug)]
pub enum OpenapiCommand {
    /// Title, version, base URL, auth, counts, tags and suggested streams.
    Summary,
    /// List operations, optionally filtered.
    List {
        /// Only operations with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// Only this HTTP method.
        #[arg(long)]
        method: Option<String>,
        /// Only paths containing this text.
        #[arg(long)]
        path: Option<String>,
        /// Only collection (list) endpoints.
        #[arg(long)]
        collections: bool,
        /// At most this many operations.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show one operation: parameters, request body, responses and the success response schema.
    Show {
        /// operationId, or "METHOD /path".
        #[arg(required = true, num_args = 1..)]
        operation: Vec<String>,
    },
    /// Show one named schema (components/schemas or definitions), or a `#/...` pointer.
    Schema { name: String },
    /// Detected streams with pagination, primary key and incremental guesses, plus auth and base URL.
    Detect {
        /// How many streams (ranked best first).
        #[arg(long, default_value_t = 10)]
        max: usize,
    },
}

pub fn run(args: OpenapiArgs) -> anyhow::Result<u8> {
    let spec = Spec::load(&args.spec)?;
    let budget = Budget::new(
        args.budget,
        if args.json {
            Format::Json
        } else {
            Format::Text
        },
    );
    let answer = match &args.command {
        OpenapiCommand::Summary => query::summary(&spec, budget),
        OpenapiCommand::List {
            tag,
            method,
            path,
            collections,
            limit,
        } => query::list_operations(
            &spec,
            &ListFilter {
                tag: tag.clone(),
                method: method.clone(),
                path_contains: path.clone(),
                collections_only: *collections,
                limit: Some(*limit),
            },
            budget,
        ),
        OpenapiCommand::Show { operation } => {
            query::show_operation(&spec, &operation.join(" "), budget)?
        }
        OpenapiCommand::Schema { name } => query::show_schema(&spec, name, budget)?,
        OpenapiCommand::Detect { max } => {
            let streams = detect::pick_streams(&spec, *max);
            let value = json!({
                "base_url": detect::base_url(&spec),
                "auth": detect::auth(&spec),
                "streams": streams,
            });
            let render: fn(&serde_json::Value) -> String = if args.json {
                |v| serde_json::to_string(v).unwrap_or_default()
            } else {
                query::render_text
            };
            // detection output is for people checking the guesses: bounded, but by 16x the budget
            let (v, notes) = query::fit(&value, budget.bytes * 16, render, "");
            let mut out = render(&v);
            for n in notes {
                out.push_str(&format!("\n[truncated: {n}]"));
            }
            print_out(&out);
            return Ok(0);
        }
    };
    print_out(&answer.rendered);
    Ok(0)
}

/// Print to stdout, ignoring a closed pipe (`... | head`).
fn print_out(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", text.trim_end());
}

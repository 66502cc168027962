//! `connector-factory scaffold`: materialize a scaffold file, or pack a template folder into one.

use super::{Scaffold, materialize, pack, to_json};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  connector-factory scaffold registry/_scaffold/meta.json --var connector=acme --var version=v1 --var author=me --out registry\n  connector-factory scaffold --pack registry/_scaffold/python --check registry/_scaffold/python.json")]
pub struct ScaffoldArgs {
    /// Scaffold JSON file to materialize.
    #[arg(required_unless_present = "pack")]
    pub file: Option<PathBuf>,
    /// A variable value, as name=value (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Folder to write into (created if missing). Nothing is written outside it.
    #[arg(long, required_unless_present = "pack")]
    pub out: Option<PathBuf>,
    /// Replace files that already exist.
    #[arg(long)]
    pub force: bool,
    /// Print what was created as JSON.
    #[arg(long)]
    pub json: bool,
    /// Pack a template folder (with `_scaffold.json`) into scaffold JSON instead.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["file", "out", "vars", "force"])]
    pub pack: Option<PathBuf>,
    /// With --pack: write the JSON to this file (default: stdout).
    #[arg(long, value_name = "FILE", requires = "pack")]
    pub write: Option<PathBuf>,
    /// With --pack: fail if this file differs from the packed folder.
    #[arg(long, value_name = "FILE", requires = "pack", conflicts_with = "write")]
    pub check: Option<PathBuf>,
}

pub fn parse_vars(raw: &[String]) -> Result<BTreeMap<String, String>> {
    let mut vars = BTreeMap::new();
    for item in raw {
        let Some((k, v)) = item.split_once('=') else {
            bail!("--var {item:?}: expected NAME=VALUE");
        };
        if k.is_empty() {
            bail!("--var {item:?}: the name before `=` is empty");
        }
        if vars.insert(k.to_string(), v.to_string()).is_some() {
            bail!("--var {k} is given twice");
        }
    }
    Ok(vars)
}

pub fn run(args: ScaffoldArgs) -> Result<u8> {
    if let Some(dir) = &args.pack {
        let text = to_json(&pack(dir)?)?;
        if let Some(check) = &args.check {
            let current = std::fs::read_to_string(check)
                .with_context(|| format!("cannot read {}", check.display()))?;
            if current != text {
                eprintln!(
                    "{} is out of date with {}; regenerate it with: connector-factory scaffold --pack {} --write {}",
                    check.display(),
                    dir.display(),
                    dir.display(),
                    check.display()
                );
                return Ok(1);
            }
            println!("{} is up to date", check.display());
        } else if let Some(path) = &args.write {
            std::fs::write(path, &text).with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        } else {
            print!("{text}");
        }
        return Ok(0);
    }

    let file = args.file.expect("clap requires a file without --pack");
    let out = args.out.expect("clap requires --out without --pack");
    let scaffold = Scaffold::load(&file)?;
    let vars = parse_vars(&args.vars)?;
    let report = materialize(&scaffold, &vars, &out, args.force)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for d in &report.created_dirs {
            println!("created  {}/", out.join(d).display());
        }
        for f in &report.created_files {
            println!("created  {}", out.join(f).display());
        }
        for f in &report.overwritten_files {
            println!("replaced {}", out.join(f).display());
        }
        println!(
            "{} files and {} folders created, {} files replaced",
            report.created_files.len(),
            report.created_dirs.len(),
            report.overwritten_files.len()
        );
    }
    Ok(0)
}

//! Spec tests: placeholder until the suite lands (issue 3).
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct SpecTestArgs {
    /// Implementation folders to test.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
}

pub fn run(_args: SpecTestArgs) -> anyhow::Result<u8> {
    anyhow::bail!("spec-test is not available in this build yet")
}

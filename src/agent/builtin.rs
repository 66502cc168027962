//! Builtin generator (in progress).
#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// OpenAPI description (file or URL).
    #[arg(long)]
    pub openapi: Option<String>,
}
pub fn run(_args: GenerateArgs) -> anyhow::Result<u8> {
    anyhow::bail!("generate is not available in this build yet")
}

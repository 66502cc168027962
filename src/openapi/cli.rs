#[derive(clap::Args, Debug)]
pub struct OpenapiArgs {
    /// Path or URL of the OpenAPI description.
    pub spec: String,
}

pub fn run(_args: OpenapiArgs) -> anyhow::Result<u8> {
    anyhow::bail!("openapi is not available in this build yet")
}

//! `mdfh book` (being written).

/// Arguments of `mdfh book`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `mdfh book`.
pub fn run(_args: &Args) -> anyhow::Result<()> {
    anyhow::bail!("mdfh book is not built yet")
}

//! `mdfh export` (being written).

/// Arguments of `mdfh export`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `mdfh export`.
pub fn run(_args: &Args) -> anyhow::Result<()> {
    anyhow::bail!("mdfh export is not built yet")
}

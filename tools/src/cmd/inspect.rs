//! `mdfh inspect` (being written).

/// Arguments of `mdfh inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `mdfh inspect`.
pub fn run(_args: &Args) -> anyhow::Result<()> {
    anyhow::bail!("mdfh inspect is not built yet")
}

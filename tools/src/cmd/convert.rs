//! `mdfh convert` (being written).

/// Arguments of `mdfh convert`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `mdfh convert`.
pub fn run(_args: &Args) -> anyhow::Result<()> {
    anyhow::bail!("mdfh convert is not built yet")
}

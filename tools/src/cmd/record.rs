//! `mdfh record` (being written).

/// Arguments of `mdfh record`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `mdfh record`.
pub fn run(_args: &Args) -> anyhow::Result<()> {
    anyhow::bail!("mdfh record is not built yet")
}

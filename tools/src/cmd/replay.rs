//! `mdfh replay` (being written).

/// Arguments of `mdfh replay`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `mdfh replay`.
pub fn run(_args: &Args) -> anyhow::Result<()> {
    anyhow::bail!("mdfh replay is not built yet")
}

//! `mdfh generate`: write a synthetic ITCH 5.0 order flow to a BinaryFILE. The flow is for load and
//! recovery tests at volumes beyond the real samples; it is no stand-in for real data.

use std::path::PathBuf;

use anyhow::Context;

use crate::synthetic::synthetic_flow;

/// Arguments of `mdfh generate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output BinaryFILE. It appears only when complete.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Messages of order flow, after one stock directory message per instrument.
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: usize,
    /// Instruments, named SYN1, SYN2, ... with stock locates 1, 2, ...
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub instruments: u16,
    /// Seed of the flow: the same seed gives the same file.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Runs `mdfh generate`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let flow = synthetic_flow(args.messages, args.instruments, args.seed);
    let mut bytes = Vec::with_capacity(flow.len() * 40);
    let mut message = Vec::with_capacity(64);
    for item in &flow {
        message.clear();
        item.encode(&mut message);
        let len = u16::try_from(message.len()).context("an encoded message is longer than a BinaryFILE block")?;
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(&message);
    }
    super::convert::write_atomically(&args.output, &bytes)?;
    eprintln!(
        "wrote {}: {} messages over {} instruments (seed {})",
        args.output.display(),
        flow.len(),
        args.instruments,
        args.seed
    );
    Ok(())
}

use clap::{Parser, Subcommand};
use mdfh::cmd;

/// mdfh: a low-latency market data feed handler for NASDAQ TotalView-ITCH 5.0.
#[derive(Debug, Parser)]
#[command(name = "mdfh", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Convert a LOBSTER message file into an ITCH 5.0 BinaryFILE.
    Convert(cmd::convert::Args),
    /// Decode a BinaryFILE or pcap and print one JSON object per ITCH message.
    Inspect(cmd::inspect::Args),
    /// Replay a file through the order books and print one instrument's book as CSV.
    Book(cmd::book::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Command::Convert(args) => cmd::convert::run(args),
        Command::Inspect(args) => cmd::inspect::run(args),
        Command::Book(args) => cmd::book::run(args),
    }
}

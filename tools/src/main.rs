use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mdfh::cmd;
use tracing_subscriber::EnvFilter;

/// mdfh: a low-latency market data feed handler for NASDAQ TotalView-ITCH 5.0.
#[derive(Debug, Parser)]
#[command(name = "mdfh", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the feed handler (with no options: the built-in simulator on the bundled sample).
    Run(cmd::run::Args),
    /// Serve a BinaryFILE or pcap as a live feed: MoldUDP64 over UDP, or a SoupBinTCP server.
    Sim(cmd::sim::Args),
    /// Connect to a running handler as a TCP subscriber and print what arrives.
    Subscribe(cmd::subscribe::Args),
    /// Decode a BinaryFILE or pcap and print one JSON object per ITCH message.
    Inspect(cmd::inspect::Args),
    /// Replay a file through the order books and print one instrument's book as CSV.
    Book(cmd::book::Args),
    /// Convert other formats into an ITCH 5.0 BinaryFILE.
    Convert(cmd::convert::Args),
    /// Write a synthetic ITCH 5.0 order flow to a BinaryFILE, for load tests.
    Generate(cmd::generate::Args),
    /// Record a live MoldUDP64 feed to nanosecond pcap files.
    Record(cmd::record::Args),
    /// Replay recorded files through the pipeline, with subscribers, at any speed.
    Replay(cmd::replay::Args),
    /// Export books, trades or orders of a recorded file to Parquet, CSV or DBN.
    Export(cmd::export::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("MDFH_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let result = match &cli.command {
        Command::Run(args) => cmd::run::run(args),
        Command::Sim(args) => cmd::sim::run(args),
        Command::Subscribe(args) => cmd::subscribe::run(args),
        Command::Inspect(args) => cmd::inspect::run(args),
        Command::Book(args) => cmd::book::run(args),
        Command::Convert(args) => cmd::convert::run(args),
        Command::Generate(args) => cmd::generate::run(args),
        Command::Record(args) => cmd::record::run(args),
        Command::Replay(args) => cmd::replay::run(args),
        Command::Export(args) => cmd::export::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mdfh: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

//! `mdfh export`: replays a recorded file through the order books and writes the best bid and
//! offer, the top levels, the trades or the order events to Parquet, CSV or DBN. The columns
//! are listed in [`crate::export`].

use std::path::PathBuf;

use anyhow::Context;

use super::inspect::ErrorLines;
use crate::export::{self, ExportOptions, OutputFormat, TradingDate, What};

/// Arguments of `mdfh export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// BinaryFILE, pcap, pcapng or DBN file (plain or zstd) to replay. The format is detected
    /// from the first bytes.
    pub file: PathBuf,
    /// Output format: parquet, csv or dbn. DBN output is zstd-compressed when OUT ends in .zst.
    #[arg(long = "to", value_name = "FORMAT")]
    pub format: OutputFormat,
    /// Rows to write: bbo, levels:N (top N levels per side), trades or orders.
    #[arg(long, value_name = "WHAT")]
    pub what: What,
    /// Write bbo or levels rows once per interval of exchange time (100ms, 1s, 5m, ...) instead
    /// of after every message.
    #[arg(long, value_name = "DURATION", value_parser = export::parse_duration)]
    pub every: Option<u64>,
    /// Export only the instrument with this symbol.
    #[arg(long)]
    pub symbol: Option<String>,
    /// Output file. It is written under a temporary name in the same directory and renamed when
    /// complete.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: PathBuf,
    /// Trading date (YYYY-MM-DD) of ITCH input, which DBN output needs to turn ITCH's time since
    /// midnight in New York into time since the Unix epoch.
    #[arg(long)]
    pub date: Option<TradingDate>,
    /// Dataset code in the metadata of DBN output: by default the DBN input's, or XNAS.ITCH.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Write the output even when input errors or MoldUDP64 sequence gaps left messages out
    /// (they are reported either way).
    #[arg(long)]
    pub keep_going: bool,
}

/// Runs `mdfh export`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let options = ExportOptions {
        input: args.file.clone(),
        output: args.output.clone(),
        format: args.format,
        what: args.what,
        every_ns: args.every,
        symbol: args.symbol.clone(),
        date: args.date,
        dataset: args.dataset.clone(),
        keep_going: args.keep_going,
    };
    let mut errors = ErrorLines::new(&args.file);
    let summary = export::export(&options, &mut |error| errors.report(error))
        .with_context(|| format!("cannot export {} to {}", args.file.display(), args.output.display()))?;
    eprintln!(
        "{}: rows: {}, messages: {}, input errors: {}, book errors: {}, skipped frames: {}, duplicates skipped: {}, sequence gaps: {} ({} messages missing), written to {}",
        args.file.display(),
        summary.rows,
        summary.messages,
        summary.input_errors,
        summary.book_errors,
        summary.skipped_frames,
        summary.duplicates,
        summary.gaps,
        summary.missed,
        args.output.display()
    );
    Ok(())
}

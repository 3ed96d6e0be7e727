//! `mdfh convert`: conversion of other market data formats into an ITCH 5.0 BinaryFILE.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::lobster::{self, ConvertOptions, DEFAULT_LOCATE};

/// Seed warnings printed before the rest are only counted.
const MAX_PRINTED_WARNINGS: usize = 20;

/// Arguments of `mdfh convert`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub format: Format,
}

/// Input formats `mdfh convert` reads.
#[derive(Debug, clap::Subcommand)]
pub enum Format {
    /// Convert a LOBSTER message file and its orderbook file into an ITCH 5.0 BinaryFILE.
    Lobster(LobsterArgs),
}

/// Arguments of `mdfh convert lobster`.
#[derive(Debug, clap::Args)]
pub struct LobsterArgs {
    /// LOBSTER message file: CSV rows of time, type, order id, size, price, direction.
    pub message_csv: PathBuf,
    /// LOBSTER orderbook file of the same request. Its first row seeds the book.
    pub orderbook_csv: PathBuf,
    /// Output BinaryFILE. It appears only when the conversion succeeds.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Stock symbol, 1 to 8 ASCII characters [default: the message file name up to its first `_`].
    #[arg(long)]
    pub symbol: Option<String>,
    /// Stock locate of the instrument in the output.
    #[arg(long, default_value_t = DEFAULT_LOCATE)]
    pub locate: u16,
}

/// Runs `mdfh convert`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    match &args.format {
        Format::Lobster(lobster_args) => run_lobster(lobster_args),
    }
}

fn run_lobster(args: &LobsterArgs) -> anyhow::Result<()> {
    let symbol = match &args.symbol {
        Some(symbol) => symbol.clone(),
        None => lobster::symbol_from_file_name(&args.message_csv).with_context(|| {
            format!(
                "cannot take the symbol from the file name {} because it has no `_`. Pass --symbol",
                args.message_csv.display()
            )
        })?,
    };
    let message_csv = read_text(&args.message_csv)?;
    let orderbook_csv = read_text(&args.orderbook_csv)?;
    let opts = ConvertOptions { symbol, locate: args.locate };

    let conversion = lobster::convert_with_report(&message_csv, &orderbook_csv, &opts)
        .with_context(|| format!("cannot convert {}", args.message_csv.display()))?;

    for warning in conversion.warnings.iter().take(MAX_PRINTED_WARNINGS) {
        eprintln!("warning: {warning}");
    }
    if conversion.warnings.len() > MAX_PRINTED_WARNINGS {
        eprintln!("warning: {} more seed warnings not shown", conversion.warnings.len() - MAX_PRINTED_WARNINGS);
    }

    write_atomically(&args.output, &conversion.binary_file)?;
    eprintln!(
        "wrote {}: {} seed orders, {} event messages, {} seed warnings",
        args.output.display(),
        conversion.seed_orders,
        conversion.event_messages,
        conversion.warnings.len()
    );
    Ok(())
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Writes `bytes` to a temporary file in the directory of `path`, then renames it to `path`, so
/// that `path` is either absent, unchanged or complete. The temporary file is removed on error.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let file_name = path
        .file_name()
        .with_context(|| format!("invalid output path {}: it names no file", path.display()))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(".tmp{}", std::process::id()));
    let temp_path = path.with_file_name(temp_name);

    let result = write_and_sync(&temp_path, bytes).and_then(|()| {
        fs::rename(&temp_path, path)
            .with_context(|| format!("cannot rename {} to {}", temp_path.display(), path.display()))
    });
    if result.is_err() {
        // The write or rename already failed, so removing the temporary file is all that is left.
        // A removal error would hide the first error, so it is ignored.
        let _ = fs::remove_file(&temp_path);
    }
    result
}

fn write_and_sync(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file = fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes).with_context(|| format!("cannot write {}", path.display()))?;
    file.sync_all().with_context(|| format!("cannot flush {} to disk", path.display()))?;
    Ok(())
}

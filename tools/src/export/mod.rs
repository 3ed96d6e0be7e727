//! Export of books, trades and orders from a recorded file to Parquet, CSV or DBN
//! (`mdfh export`), and DBN input for the replay tools.
//!
//! The input is an ITCH 5.0 BinaryFILE, a pcap or pcapng capture of MoldUDP64, or a Databento
//! DBN file (plain or zstd), detected from its first bytes. Every message is applied to
//! [`mdfh_matcher::Books`], as `mdfh book` does, and the export writes one of four row kinds.
//!
//! Every row starts with these columns:
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `exchange_ts` | u64 | exchange time in ns: since midnight New York time for ITCH, since the Unix epoch for DBN (`ts_event`) |
//! | `receive_ts` | u64, null | capture time in ns since the Unix epoch: the pcap frame time or DBN `ts_recv`; null for a BinaryFILE |
//! | `locate` | u16 | ITCH stock locate; for DBN, the locate the conversion gave the instrument (see [`dbn_convert`]) |
//! | `symbol` | string | symbol without padding; empty when no message names the instrument |
//! | `sequence` | u64 | MoldUDP64 sequence number (pcap), message position from 1 (BinaryFILE) or DBN `sequence` |
//!
//! Prices are integers in 1/10000 of the price unit (dollars for NASDAQ), as in ITCH.
//!
//! - `bbo`: `ask_price`, `ask_shares`, `ask_orders`, `bid_price`, `bid_shares`, `bid_orders`.
//!   An empty side has a null price and 0 shares and orders.
//! - `levels:N`: for each level `i` from 1 (best) to N, `ask_price_i`, `ask_shares_i`,
//!   `ask_orders_i`, `bid_price_i`, `bid_shares_i`, `bid_orders_i`, empty levels as in `bbo`.
//!   This is the column order of a LOBSTER orderbook file and of `mdfh book`, with order counts
//!   added.
//! - `trades`: `msg_type` (`E` or `C` execution of a displayed order, `P` non-displayed, `Q`
//!   cross), `price`, `shares`, `side` (of the resting order, `B` or `S`, and null for `Q`),
//!   `match_number`, `order_ref` (null for `Q`). A `C` marked non-printable is not a trade.
//! - `orders`: `msg_type` (`A`, `F`, `E`, `C`, `X`, `D`, `U`), `order_ref` (for `U` the
//!   original), `new_order_ref` (`U` only), `side`, `price` (limit price; for `U` the new one),
//!   `shares` (added, executed, cancelled, deleted or, for `U`, new), `shares_before` and
//!   `price_before` (the resting order before the event), `execution_price` (`E`, `C`),
//!   `match_number` (`E`, `C`), `printable` (`E`, `C`), `mpid` (`F`). Side, price and the
//!   `_before` columns come from the books, and are null when the order is not on the book.
//!
//! A `bbo` or `levels:N` row follows every message whose stock locate is the instrument's, as in
//! `mdfh book`; for DBN input, every record, because one record can convert to several ITCH
//! messages and the book is consistent only after the last. With `--every DURATION`, rows are instead sampled on exchange time: the
//! intervals are multiples of DURATION counted from the time base, and each instrument gets one
//! row at the end of every interval in which it had a message, with `exchange_ts` the end of
//! the interval and the book after the interval's last message. Intervals without a message
//! have no row, so a reader that wants a regular grid fills them forward.
//!
//! Parquet files carry the units in their key-value metadata (`mdfh.exchange_ts`,
//! `mdfh.receive_ts`, `mdfh.price`) and use zstd compression. CSV files have a header row with
//! the column names and empty fields for nulls. DBN output is described in [`dbn_out`].
//!
//! The output is written to `.NAME.PID.tmp` in the directory of the output and renamed to the
//! output's name once complete, so a failed export leaves nothing that looks finished.

pub mod clock;
pub mod dbn_convert;
pub mod dbn_input;
pub mod dbn_out;
pub mod error;

mod csv_out;
mod input;
mod output;
mod parquet_out;
mod replay;
mod rows;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use dbn::Schema;

pub use clock::TradingDate;
pub use error::ExportError;
pub use input::TimeBase;

use input::{InputFile, Instrument};
use output::TempOutput;
use rows::Row;

/// Dataset code written into DBN metadata for ITCH input when none is given.
pub const DEFAULT_DBN_DATASET: &str = "XNAS.ITCH";
/// Maximum levels per side of a `levels:N` export.
pub const MAX_LEVELS: u16 = 1000;

/// Output file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Parquet,
    Csv,
    Dbn,
}

impl FromStr for OutputFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<OutputFormat, String> {
        match text {
            "parquet" => Ok(OutputFormat::Parquet),
            "csv" => Ok(OutputFormat::Csv),
            "dbn" => Ok(OutputFormat::Dbn),
            _ => Err(format!("unknown output format {text:?}: expected parquet, csv or dbn")),
        }
    }
}

/// Kind of rows an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    /// Best bid and offer.
    Bbo,
    /// The top N levels per side, N from 1 to [`MAX_LEVELS`].
    Levels(u16),
    /// Trade prints.
    Trades,
    /// Order events.
    Orders,
}

impl FromStr for What {
    type Err = String;

    fn from_str(text: &str) -> Result<What, String> {
        match text {
            "bbo" => return Ok(What::Bbo),
            "trades" => return Ok(What::Trades),
            "orders" => return Ok(What::Orders),
            _ => {}
        }
        let levels = text
            .strip_prefix("levels:")
            .and_then(|depth| depth.parse::<u16>().ok())
            .filter(|depth| (1..=MAX_LEVELS).contains(depth));
        match levels {
            Some(depth) => Ok(What::Levels(depth)),
            None => Err(format!(
                "unknown export {text:?}: expected bbo, levels:N (N from 1 to {MAX_LEVELS}), trades or orders"
            )),
        }
    }
}

impl fmt::Display for What {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            What::Bbo => f.write_str("bbo"),
            What::Levels(depth) => write!(f, "levels:{depth}"),
            What::Trades => f.write_str("trades"),
            What::Orders => f.write_str("orders"),
        }
    }
}

/// Parses a duration of exchange time: a positive integer and a unit, `ns`, `us`, `ms`, `s`,
/// `m` or `h` (`100ms`, `1s`). Returns nanoseconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let invalid = || format!("invalid duration {text:?}: expected a positive integer and a unit, ns, us, ms, s, m or h (100ms, 1s)");
    let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let unit_ns: u64 = match unit {
        "ns" => 1,
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(invalid()),
    };
    number.checked_mul(unit_ns).filter(|&ns| ns > 0).ok_or_else(invalid)
}

/// Input, output and row selection of one export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub input: PathBuf,
    pub output: PathBuf,
    pub format: OutputFormat,
    pub what: What,
    /// Sampling interval in nanoseconds of exchange time, for `bbo` and `levels:N`.
    pub every_ns: Option<u64>,
    /// The one instrument to export; every instrument when `None`.
    pub symbol: Option<String>,
    /// Trading date of ITCH input, needed for DBN output.
    pub date: Option<TradingDate>,
    /// Dataset code of DBN output: the DBN input's by default, else [`DEFAULT_DBN_DATASET`].
    pub dataset: Option<String>,
    /// Write the output even when input errors or sequence gaps left messages out; by default
    /// such an export fails and leaves nothing behind.
    pub keep_going: bool,
}

/// Counts of one export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportSummary {
    pub rows: u64,
    /// Messages applied to the books.
    pub messages: u64,
    /// Messages or records of the input that could not be read, reported and skipped.
    pub input_errors: u64,
    /// Messages the books reported an integrity problem for (unknown order, crossed book, ...).
    pub book_errors: u64,
    /// Capture frames without a UDP over IPv4 datagram, skipped.
    pub skipped_frames: u64,
    /// Repeated capture messages (same MoldUDP64 session and sequence), skipped.
    pub duplicates: u64,
    /// MoldUDP64 sequence gaps in the capture, and the messages missing in them.
    pub gaps: u64,
    pub missed: u64,
}

/// One output under construction: rows go in through [`RowWriter::write`], and
/// [`RowWriter::finish`] writes what the format puts at the end and flushes every buffer to the
/// file.
pub(crate) trait RowWriter {
    fn write(&mut self, row: &Row<'_>) -> Result<(), ExportError>;
    fn finish(self: Box<Self>) -> Result<(), ExportError>;
}

/// Runs an export. Each message or record the input cannot read and each book error is passed
/// to `report` with its byte offset, counted, and skipped.
///
/// # Errors
///
/// An input that cannot be opened, an unknown symbol, an option the output format does not
/// support, and any failure to write the output. The output path is then left as it was.
pub fn export(options: &ExportOptions, report: &mut dyn FnMut(&dyn fmt::Display)) -> Result<ExportSummary, ExportError> {
    if let (Some(_), What::Trades | What::Orders) = (options.every_ns, options.what) {
        return Err(ExportError::EveryWithoutBook { what: options.what.to_string() });
    }
    reject_unsafe_output(&options.input, &options.output)?;
    let input = InputFile::open(&options.input)?;
    let instruments = input.instruments();
    let locate = select_instrument(&options.input, &instruments, options.symbol.as_deref())?;
    let exported: Vec<&Instrument> = instruments
        .values()
        .filter(|instrument| locate.is_none_or(|only| only == instrument.locate))
        .collect();

    let columns = rows::columns(options.what);
    let depth = match options.what {
        What::Levels(depth) => usize::from(depth),
        What::Bbo | What::Trades | What::Orders => 1,
    };
    let dbn_output = match options.format {
        OutputFormat::Dbn => Some(dbn_output(options, &input)?),
        OutputFormat::Parquet | OutputFormat::Csv => None,
    };

    let (temp, file) = TempOutput::create(&options.output)?;
    let temp_path = temp.temp_path().to_owned();
    let sync_handle = file
        .try_clone()
        .map_err(|source| ExportError::CreateOutput { path: options.output.clone(), source })?;
    let mut writer: Box<dyn RowWriter> = match dbn_output {
        Some(dbn_output) => {
            let compressed = options.output.extension().is_some_and(|extension| extension == "zst");
            Box::new(dbn_out::DbnWriter::new(file, temp_path, compressed, dbn_output, &exported)?)
        }
        None if options.format == OutputFormat::Csv => {
            Box::new(csv_out::CsvWriter::new(file, temp_path, &columns, depth)?)
        }
        None => {
            let metadata = parquet_metadata(options, input.time_base());
            Box::new(parquet_out::ParquetWriter::new(file, temp_path, &columns, depth, metadata)?)
        }
    };

    let mut summary = ExportSummary::default();
    let mut replay = replay::Replay::new(options.what, options.every_ns, locate, &instruments, writer.as_mut());
    let mut events = input.events();
    for event in events.by_ref() {
        let event = match event {
            Ok(event) => event,
            Err(err) => {
                summary.input_errors += 1;
                report(&err);
                continue;
            }
        };
        summary.messages += 1;
        if let Some((expected, received)) = event.gap {
            summary.gaps += 1;
            summary.missed += received - expected;
            report(&format_args!(
                "byte offset {}: sequence gap, {} messages from {expected} missing; the books may be wrong from here",
                event.offset,
                received - expected
            ));
        }
        if let Some(err) = replay.apply(&event)? {
            summary.book_errors += 1;
            report(&format_args!("byte offset {}: {err}", event.offset));
        }
    }
    replay.finish()?;
    summary.rows = replay.rows();
    summary.skipped_frames = events.skipped_frames();
    summary.duplicates = events.duplicates();
    if !options.keep_going && (summary.input_errors > 0 || summary.gaps > 0) {
        // Dropping the writer and the temporary file removes the partial output.
        return Err(ExportError::IncompleteInput {
            path: options.input.clone(),
            input_errors: summary.input_errors,
            gaps: summary.gaps,
        });
    }
    writer.finish()?;
    temp.commit(sync_handle)?;
    Ok(summary)
}

/// Rejects an output path that is the input itself, or that exists and is not a regular file
/// (a device, a symlink, a pipe): the export replaces the output by renaming a temporary file
/// over it, which would destroy such a path instead of writing through it.
fn reject_unsafe_output(input: &Path, output: &Path) -> Result<(), ExportError> {
    let Ok(metadata) = std::fs::symlink_metadata(output) else {
        return Ok(());
    };
    if !metadata.is_file() {
        return Err(ExportError::UnsafeOutput {
            path: output.to_owned(),
            reason: "it exists and is not a regular file; name a new or regular file",
        });
    }
    let same = match (std::fs::canonicalize(input), std::fs::canonicalize(output)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        return Err(ExportError::UnsafeOutput { path: output.to_owned(), reason: "it is the input file" });
    }
    Ok(())
}

/// Returns the locate of `symbol`, or `None` for every instrument when `symbol` is `None`.
fn select_instrument(
    path: &Path,
    instruments: &BTreeMap<u16, Instrument>,
    symbol: Option<&str>,
) -> Result<Option<u16>, ExportError> {
    if instruments.is_empty() {
        return Err(ExportError::NoInstrument { path: path.to_owned() });
    }
    let Some(symbol) = symbol else {
        return Ok(None);
    };
    match instruments.values().find(|instrument| instrument.symbol == symbol) {
        Some(instrument) => Ok(Some(instrument.locate)),
        None => Err(ExportError::SymbolNotFound {
            path: path.to_owned(),
            symbol: symbol.to_owned(),
            instruments: describe(instruments),
        }),
    }
}

/// Instruments named in full in an error message; the rest are only counted.
const MAX_LISTED_INSTRUMENTS: usize = 20;

fn describe(instruments: &BTreeMap<u16, Instrument>) -> String {
    let mut names: Vec<String> = instruments
        .values()
        .take(MAX_LISTED_INSTRUMENTS)
        .map(|instrument| match instrument.symbol.as_str() {
            "" => format!("locate {} (no symbol)", instrument.locate),
            symbol => format!("{symbol} (locate {})", instrument.locate),
        })
        .collect();
    if instruments.len() > MAX_LISTED_INSTRUMENTS {
        names.push(format!("and {} more", instruments.len() - MAX_LISTED_INSTRUMENTS));
    }
    names.join(", ")
}

fn parquet_metadata(options: &ExportOptions, time_base: TimeBase) -> Vec<(String, String)> {
    let exchange_ts = match time_base {
        TimeBase::NewYorkMidnight => "nanoseconds since midnight, America/New_York",
        TimeBase::UnixEpoch => "nanoseconds since the Unix epoch",
    };
    vec![
        ("mdfh.export".to_owned(), options.what.to_string()),
        ("mdfh.exchange_ts".to_owned(), exchange_ts.to_owned()),
        ("mdfh.receive_ts".to_owned(), "nanoseconds since the Unix epoch".to_owned()),
        ("mdfh.price".to_owned(), "1/10000 of the price unit (dollars for NASDAQ)".to_owned()),
    ]
}

/// Returns the settings of a DBN output, or the reason the export cannot be written as DBN.
fn dbn_output(options: &ExportOptions, input: &InputFile) -> Result<dbn_out::DbnOutput, ExportError> {
    let schema = match options.what {
        What::Bbo | What::Levels(1) => Schema::Mbp1,
        What::Levels(10) => Schema::Mbp10,
        What::Levels(levels) => return Err(ExportError::DbnLevels { levels }),
        What::Trades => Schema::Trades,
        What::Orders => Schema::Mbo,
    };
    match input {
        InputFile::Itch(_) => {
            let Some(date) = options.date else {
                return Err(ExportError::DateRequired { path: options.input.clone() });
            };
            let dataset = options.dataset.clone().unwrap_or_else(|| DEFAULT_DBN_DATASET.to_owned());
            let default_publisher_id = dataset
                .parse::<dbn::Dataset>()
                .ok()
                .and_then(|known| known.publishers().first().map(|publisher| *publisher as u16))
                .unwrap_or(0);
            let start_ns = date.midnight_ns();
            Ok(dbn_out::DbnOutput {
                schema,
                dataset,
                epoch_offset_ns: start_ns,
                start_ns,
                end_ns: Some(start_ns + clock::DAY_NS),
                mapping_dates: (date.date(), date.next_date()),
                default_publisher_id,
            })
        }
        InputFile::Dbn(dbn) => {
            let metadata = dbn.metadata();
            let end_ns = metadata.end.map(u64::from);
            let first_date = utc_date(metadata.start);
            let last_date = utc_date(end_ns.unwrap_or(metadata.start).saturating_sub(1));
            let dataset = options.dataset.clone().unwrap_or_else(|| metadata.dataset.clone());
            Ok(dbn_out::DbnOutput {
                schema,
                dataset,
                epoch_offset_ns: 0,
                start_ns: metadata.start,
                end_ns,
                mapping_dates: (first_date, last_date.next_day().unwrap_or(last_date)),
                default_publisher_id: 0,
            })
        }
    }
}

/// Returns the UTC calendar date of a time in nanoseconds since the Unix epoch.
fn utc_date(ns: u64) -> time::Date {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .map_or(time::Date::MIN, |moment| moment.date())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_parses_every_kind() {
        assert_eq!("bbo".parse::<What>(), Ok(What::Bbo));
        assert_eq!("levels:10".parse::<What>(), Ok(What::Levels(10)));
        assert_eq!("trades".parse::<What>(), Ok(What::Trades));
        assert_eq!("orders".parse::<What>(), Ok(What::Orders));
        for invalid in ["levels:0", "levels:", "levels:1001", "levels:x", "book", ""] {
            assert!(invalid.parse::<What>().is_err(), "{invalid:?} was accepted");
        }
    }

    #[test]
    fn durations_convert_to_nanoseconds() {
        assert_eq!(parse_duration("100ms"), Ok(100_000_000));
        assert_eq!(parse_duration("1s"), Ok(1_000_000_000));
        assert_eq!(parse_duration("5m"), Ok(300_000_000_000));
        assert_eq!(parse_duration("250us"), Ok(250_000));
        assert_eq!(parse_duration("1h"), Ok(3_600_000_000_000));
        for invalid in ["0s", "1", "s", "1.5s", "-1s", "1 s", "99999999999h"] {
            assert!(parse_duration(invalid).is_err(), "{invalid:?} was accepted");
        }
    }
}

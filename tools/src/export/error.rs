//! Errors that stop an export. Errors in single messages of the input are not among them: they
//! are reported, counted and skipped (see [`super::ExportSummary`]).

use std::path::PathBuf;

use mdfh_feed::file::FileError;

use super::dbn_input::DbnError;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{} is not a safe output: {reason}", path.display())]
    UnsafeOutput { path: PathBuf, reason: &'static str },

    #[error("{}: {input_errors} input errors and {gaps} sequence gaps left messages out, so no output was written; pass --keep-going to write it anyway", path.display())]
    IncompleteInput { path: PathBuf, input_errors: u64, gaps: u64 },

    #[error("failed to read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },

    #[error("cannot replay {}: {source}", path.display())]
    Feed { path: PathBuf, source: FileError },

    #[error("cannot replay DBN file {}: {source}", path.display())]
    Dbn { path: PathBuf, source: DbnError },

    #[error("{} has no message about an instrument (every stock locate is 0)", path.display())]
    NoInstrument { path: PathBuf },

    #[error("symbol {symbol:?} not found in {}; its instruments are: {instruments}", path.display())]
    SymbolNotFound { path: PathBuf, symbol: String, instruments: String },

    #[error("--every samples books, so it applies to bbo and levels:N, not to {what}")]
    EveryWithoutBook { what: String },

    #[error("DBN has MBP-1 and MBP-10 records only: export bbo, levels:1 or levels:10 to DBN, not levels:{levels}")]
    DbnLevels { levels: u16 },

    #[error(
        "ITCH timestamps count from midnight in New York and DBN from the Unix epoch: pass --date YYYY-MM-DD, the trading date of {}",
        path.display()
    )]
    DateRequired { path: PathBuf },

    #[error("cannot create a temporary file for {} next to it: {source}", path.display())]
    CreateOutput { path: PathBuf, source: std::io::Error },

    #[error("failed to write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },

    #[error("failed to write CSV to {}: {source}", path.display())]
    Csv { path: PathBuf, source: csv::Error },

    #[error("failed to write Parquet to {}: {source}", path.display())]
    Parquet { path: PathBuf, source: parquet::errors::ParquetError },

    #[error("failed to build an Arrow record batch for {}: {source}", path.display())]
    Arrow { path: PathBuf, source: arrow_schema::ArrowError },

    #[error("failed to encode DBN to {}: {source}", path.display())]
    DbnEncode { path: PathBuf, source: dbn::Error },

    #[error("{field} {value} of the row with sequence {sequence} does not fit the u32 DBN field; export to Parquet or CSV instead")]
    DbnField { field: &'static str, value: u64, sequence: u64 },

    #[error("failed to rename {} to {}: {source}", from.display(), to.display())]
    Rename { from: PathBuf, to: PathBuf, source: std::io::Error },
}

//! `mdfh book`: replays a recorded file through the order books and prints one instrument's book
//! after every message about it, as CSV rows in the layout of a LOBSTER orderbook file.
//!
//! Each row has, for levels 1 to N (best first), the ask price, ask size, bid price and bid size.
//! Prices are in 1/10000 dollars and sizes in shares. An empty level is `9999999999,0` on the
//! ask side and `-9999999999,0` on the bid side. There is no header row. A row follows every
//! message whose stock locate is the instrument's, whatever its type.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use mdfh_feed::session::{FileSequence, FileVerdict};
use mdfh_feed::file::FeedFile;
use mdfh_feed::itch::{Message, Side, Stock};
use mdfh_matcher::{Book, Books};

use super::inspect::{end_of_output, ErrorLines};
use crate::lobster::{EMPTY_ASK_PRICE, EMPTY_BID_PRICE};

/// Arguments of `mdfh book`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// BinaryFILE, pcap or pcapng capture to replay. The format is detected from the first bytes.
    pub file: PathBuf,
    /// Price levels per side in each row.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    pub levels: u16,
    /// Symbol of the instrument to print. Required when the file has more than one instrument.
    #[arg(long)]
    pub symbol: Option<String>,
}

/// Runs `mdfh book`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let feed = open_feed(&args.file).with_context(|| format!("cannot replay {}", args.file.display()))?;
    let locate = select_instrument(&feed, args.symbol.as_deref())
        .with_context(|| format!("cannot choose the instrument of {}", args.file.display()))?;

    let mut books = Books::default();
    let mut decode_errors = ErrorLines::new(&args.file);
    let mut book_errors = ErrorLines::new(&args.file);
    let mut out = BufWriter::new(io::stdout().lock());
    let mut rows: u64 = 0;

    let mut sequence = FileSequence::default();
    for item in feed.messages() {
        let file_message = match item {
            Ok(file_message) => file_message,
            Err(err) => {
                decode_errors.report(&err);
                continue;
            }
        };
        match sequence.check(file_message.session, file_message.moldudp64_sequence) {
            FileVerdict::Apply => {}
            FileVerdict::Duplicate => continue,
            FileVerdict::Gap { expected, received } => {
                book_errors.report(&format_args!(
                    "byte offset {}: sequence gap, messages {expected}..{received} missing; the book may be wrong from here",
                    file_message.offset
                ));
            }
        }
        let message = match file_message.decode() {
            Ok(message) => message,
            Err(err) => {
                decode_errors.report(&err);
                continue;
            }
        };
        if let Err(err) = books.apply(&message, &mut |_| {}) {
            book_errors.report(&format_args!("byte offset {}: {err}", file_message.offset));
        }
        if message.header().stock_locate != locate {
            continue;
        }
        let written = match books.book(locate) {
            Some(book) => write_row(&mut out, book, usize::from(args.levels)),
            None => write_empty_row(&mut out, usize::from(args.levels)),
        };
        if let Err(err) = written {
            return end_of_output(err);
        }
        rows += 1;
    }
    if let Err(err) = out.flush() {
        return end_of_output(err);
    }
    eprintln!(
        "{}: rows: {rows} (locate {locate}), decode errors: {}, book errors: {}",
        args.file.display(),
        decode_errors.count(),
        book_errors.count()
    );
    Ok(())
}

/// Returns the locate of the instrument to print: the one named `symbol`, or the only non-zero
/// locate in the file when `symbol` is `None`.
fn select_instrument(feed: &FeedFile, symbol: Option<&str>) -> anyhow::Result<u16> {
    let instruments = list_instruments(feed);
    if let Some(symbol) = symbol {
        let requested = Stock::new(symbol);
        let found = instruments.iter().find(|(_, stock)| symbol.len() <= 8 && **stock == Some(requested));
        return match found {
            Some((&locate, _)) => Ok(locate),
            None => bail!("symbol {symbol:?} not found among {}", describe(&instruments)),
        };
    }
    let mut locates = instruments.keys();
    match (locates.next(), locates.next()) {
        (Some(&locate), None) => Ok(locate),
        (None, _) => bail!("the file has no message about an instrument (every stock locate is 0)"),
        (Some(_), Some(_)) => bail!("choose one with --symbol among {}", describe(&instruments)),
    }
}

/// Returns every non-zero stock locate of the file with its symbol: the one from its stock
/// directory message, or else the first message that carries a symbol.
fn list_instruments(feed: &FeedFile) -> BTreeMap<u16, Option<Stock>> {
    let mut instruments: BTreeMap<u16, Option<Stock>> = BTreeMap::new();
    for message in feed.messages().flatten().filter_map(|m| m.decode().ok()) {
        let locate = message.header().stock_locate;
        if locate == 0 {
            continue;
        }
        let symbol = instruments.entry(locate).or_default();
        match (&message, message.stock()) {
            (Message::StockDirectory(directory), _) => *symbol = Some(directory.stock),
            (_, Some(stock)) if symbol.is_none() => *symbol = Some(stock),
            _ => {}
        }
    }
    instruments
}

/// Opens a BinaryFILE, pcap, pcapng or DBN file (plain or zstd); DBN is converted to ITCH first.
/// NOTE: for DBN input, the byte offsets of later errors are those of the converted ITCH stream,
/// not of the DBN file; conversion errors themselves name the DBN offset.
fn open_feed(path: &std::path::Path) -> anyhow::Result<FeedFile> {
    let bytes = std::fs::read(path).with_context(|| format!("failed to read {}", path.display()))?;
    if !crate::export::dbn_input::is_dbn(&bytes) {
        return Ok(FeedFile::from_bytes(bytes)?);
    }
    let mut errors = ErrorLines::new(path);
    let itch = crate::export::dbn_input::to_binary_file(bytes, &mut |error| errors.report(error))?;
    Ok(FeedFile::from_bytes(itch)?)
}

/// Instruments named in full in an error message; the rest are only counted.
const MAX_LISTED_INSTRUMENTS: usize = 20;

fn describe(instruments: &BTreeMap<u16, Option<Stock>>) -> String {
    let mut names: Vec<String> = instruments
        .iter()
        .take(MAX_LISTED_INSTRUMENTS)
        .map(|(locate, stock)| match stock {
            Some(stock) => format!("{stock} (locate {locate})"),
            None => format!("locate {locate} (no symbol)"),
        })
        .collect();
    if instruments.len() > MAX_LISTED_INSTRUMENTS {
        names.push(format!("and {} more", instruments.len() - MAX_LISTED_INSTRUMENTS));
    }
    format!("the {} instruments of the file: {}", instruments.len(), names.join(", "))
}

/// Writes the top `levels` levels of `book` as one CSV row.
fn write_row(out: &mut impl Write, book: &Book, levels: usize) -> io::Result<()> {
    let mut asks = book.top_levels(Side::Sell, levels);
    let mut bids = book.top_levels(Side::Buy, levels);
    for level in 0..levels {
        if level > 0 {
            out.write_all(b",")?;
        }
        match asks.next() {
            Some(ask) => write!(out, "{},{},", ask.price, ask.shares)?,
            None => write!(out, "{EMPTY_ASK_PRICE},0,")?,
        }
        match bids.next() {
            Some(bid) => write!(out, "{},{}", bid.price, bid.shares)?,
            None => write!(out, "{EMPTY_BID_PRICE},0")?,
        }
    }
    out.write_all(b"\n")
}

/// Writes a row of empty levels, for a message about an instrument that has no book yet.
fn write_empty_row(out: &mut impl Write, levels: usize) -> io::Result<()> {
    for level in 0..levels {
        if level > 0 {
            out.write_all(b",")?;
        }
        write!(out, "{EMPTY_ASK_PRICE},0,{EMPTY_BID_PRICE},0")?;
    }
    out.write_all(b"\n")
}

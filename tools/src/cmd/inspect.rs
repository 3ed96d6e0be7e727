//! `mdfh inspect`: decodes a BinaryFILE or a pcap/pcapng capture and prints one JSON object per
//! ITCH message (JSON lines) on stdout.
//!
//! Every object has `type` (the letter), `stock_locate`, `tracking_number`, `timestamp`
//! (nanoseconds since midnight) and `offset` (byte offset of the message in the file), then
//! every field of the message under its snake_case name. Prices are integers in 1/10000
//! dollars (the `V` levels have 8 decimals), one-byte codes are one-letter strings, `side` is
//! `"B"` or `"S"`, and `stock` has its trailing spaces trimmed. A `U` carries its original
//! reference as both `order_ref` and `original_order_ref`. Messages read from a capture also
//! carry `moldudp64_sequence`, `session` and `capture_ts_ns` (nanoseconds since the Unix epoch).
//!
//! Decode errors go to stderr, one line each, and decoding goes on. The exit status is 0 unless
//! the file cannot be opened.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use mdfh_feed::file::{self, FileMessage};
use mdfh_feed::itch::{Header, Message, Side, Stock};
use serde_json::{Map, Value};

/// Arguments of `mdfh inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// BinaryFILE, pcap or pcapng capture to decode. The format is detected from the first bytes.
    pub file: PathBuf,
}

/// Runs `mdfh inspect`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let feed = file::open(&args.file).with_context(|| format!("cannot inspect {}", args.file.display()))?;
    let mut out = BufWriter::new(io::stdout().lock());
    let mut errors = ErrorLines::new(&args.file);
    let mut messages: u64 = 0;

    for item in feed.messages() {
        let decoded = item.map_err(|err| err.to_string()).and_then(|file_message| {
            file_message
                .decode()
                .map(|message| (file_message, message))
                .map_err(|err| err.to_string())
        });
        match decoded {
            Ok((file_message, message)) => {
                messages += 1;
                let object = message_json(&file_message, &message);
                if let Err(err) = write_line(&mut out, &object) {
                    return end_of_output(err);
                }
            }
            Err(err) => errors.report(&err),
        }
    }
    if let Err(err) = out.flush() {
        return end_of_output(err);
    }
    eprintln!("{}: messages: {messages}, decode errors: {}", args.file.display(), errors.count());
    Ok(())
}

fn write_line(out: &mut impl Write, object: &Map<String, Value>) -> io::Result<()> {
    serde_json::to_writer(&mut *out, object)?;
    out.write_all(b"\n")
}

/// Ends quietly when the reader of stdout went away (`mdfh inspect FILE | head`), and fails on
/// any other write error.
pub(crate) fn end_of_output(err: io::Error) -> anyhow::Result<()> {
    if err.kind() == io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(err).context("cannot write to stdout")
    }
}

/// Error lines printed in full before the rest are only counted.
pub(crate) const MAX_PRINTED_ERRORS: u64 = 20;

/// Prints the first [`MAX_PRINTED_ERRORS`] errors to stderr, prefixed with the file name, and
/// counts every error.
pub(crate) struct ErrorLines {
    prefix: String,
    count: u64,
}

impl ErrorLines {
    pub(crate) fn new(path: &Path) -> ErrorLines {
        ErrorLines { prefix: path.display().to_string(), count: 0 }
    }

    pub(crate) fn report(&mut self, error: &dyn std::fmt::Display) {
        self.count += 1;
        if self.count <= MAX_PRINTED_ERRORS {
            eprintln!("{}: {error}", self.prefix);
        } else if self.count == MAX_PRINTED_ERRORS + 1 {
            eprintln!("{}: further errors are counted but not printed", self.prefix);
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.count
    }
}

/// A JSON object under construction.
struct Object(Map<String, Value>);

impl Object {
    fn num(&mut self, key: &str, value: impl Into<u64>) -> &mut Self {
        self.0.insert(key.to_owned(), Value::from(value.into()));
        self
    }

    fn char(&mut self, key: &str, value: u8) -> &mut Self {
        self.0.insert(key.to_owned(), Value::from(char::from(value).to_string()));
        self
    }

    fn text(&mut self, key: &str, value: &[u8]) -> &mut Self {
        self.0.insert(key.to_owned(), Value::from(String::from_utf8_lossy(value).into_owned()));
        self
    }

    fn stock(&mut self, value: &Stock) -> &mut Self {
        self.0.insert("stock".to_owned(), Value::from(value.as_str()));
        self
    }

    fn side(&mut self, value: Side) -> &mut Self {
        self.char("side", value.as_byte())
    }

    fn header(&mut self, msg_type: u8, header: &Header) -> &mut Self {
        self.char("type", msg_type)
            .num("stock_locate", header.stock_locate)
            .num("tracking_number", header.tracking_number)
            .num("timestamp", header.timestamp)
    }
}

/// Builds the JSON object of one decoded message.
pub fn message_json(file_message: &FileMessage<'_>, message: &Message) -> Map<String, Value> {
    let mut o = Object(Map::new());
    o.header(message.msg_type(), message.header());
    o.num("offset", file_message.offset as u64);
    if let Some(sequence) = file_message.moldudp64_sequence {
        o.num("moldudp64_sequence", sequence);
    }
    if let Some(session) = &file_message.session {
        o.text("session", session);
    }
    if let Some(capture_ts_ns) = file_message.capture_ts_ns {
        o.num("capture_ts_ns", capture_ts_ns);
    }
    add_fields(&mut o, message);
    o.0
}

/// Adds the fields after the common header, under the names of the `itch` structs.
fn add_fields(o: &mut Object, message: &Message) {
    match message {
        Message::SystemEvent(m) => {
            o.char("event_code", m.event_code);
        }
        Message::StockDirectory(m) => {
            o.stock(&m.stock)
                .char("market_category", m.market_category)
                .char("financial_status_indicator", m.financial_status_indicator)
                .num("round_lot_size", m.round_lot_size)
                .char("round_lots_only", m.round_lots_only)
                .char("issue_classification", m.issue_classification)
                .text("issue_sub_type", &m.issue_sub_type)
                .char("authenticity", m.authenticity)
                .char("short_sale_threshold_indicator", m.short_sale_threshold_indicator)
                .char("ipo_flag", m.ipo_flag)
                .char("luld_reference_price_tier", m.luld_reference_price_tier)
                .char("etp_flag", m.etp_flag)
                .num("etp_leverage_factor", m.etp_leverage_factor)
                .char("inverse_indicator", m.inverse_indicator);
        }
        Message::StockTradingAction(m) => {
            o.stock(&m.stock)
                .char("trading_state", m.trading_state)
                .char("reserved", m.reserved)
                .text("reason", &m.reason);
        }
        Message::RegShoRestriction(m) => {
            o.stock(&m.stock).char("reg_sho_action", m.reg_sho_action);
        }
        Message::MarketParticipantPosition(m) => {
            o.text("mpid", &m.mpid)
                .stock(&m.stock)
                .char("primary_market_maker", m.primary_market_maker)
                .char("market_maker_mode", m.market_maker_mode)
                .char("market_participant_state", m.market_participant_state);
        }
        Message::MwcbDeclineLevel(m) => {
            o.num("level1", m.level1).num("level2", m.level2).num("level3", m.level3);
        }
        Message::MwcbStatus(m) => {
            o.char("breached_level", m.breached_level);
        }
        Message::IpoQuotingPeriodUpdate(m) => {
            o.stock(&m.stock)
                .num("ipo_quotation_release_time", m.ipo_quotation_release_time)
                .char("ipo_quotation_release_qualifier", m.ipo_quotation_release_qualifier)
                .num("ipo_price", m.ipo_price);
        }
        Message::LuldAuctionCollar(m) => {
            o.stock(&m.stock)
                .num("auction_collar_reference_price", m.auction_collar_reference_price)
                .num("upper_auction_collar_price", m.upper_auction_collar_price)
                .num("lower_auction_collar_price", m.lower_auction_collar_price)
                .num("auction_collar_extension", m.auction_collar_extension);
        }
        Message::OperationalHalt(m) => {
            o.stock(&m.stock)
                .char("market_code", m.market_code)
                .char("operational_halt_action", m.operational_halt_action);
        }
        Message::AddOrder(m) => {
            o.num("order_ref", m.order_ref)
                .side(m.side)
                .num("shares", m.shares)
                .stock(&m.stock)
                .num("price", m.price);
            if let Some(attribution) = &m.attribution {
                o.text("attribution", attribution);
            }
        }
        Message::OrderExecuted(m) => {
            o.num("order_ref", m.order_ref)
                .num("executed_shares", m.executed_shares)
                .num("match_number", m.match_number);
        }
        Message::OrderExecutedWithPrice(m) => {
            o.num("order_ref", m.order_ref)
                .num("executed_shares", m.executed_shares)
                .num("match_number", m.match_number)
                .char("printable", m.printable)
                .num("execution_price", m.execution_price);
        }
        Message::OrderCancel(m) => {
            o.num("order_ref", m.order_ref).num("cancelled_shares", m.cancelled_shares);
        }
        Message::OrderDelete(m) => {
            o.num("order_ref", m.order_ref);
        }
        Message::OrderReplace(m) => {
            o.num("order_ref", m.original_order_ref)
                .num("original_order_ref", m.original_order_ref)
                .num("new_order_ref", m.new_order_ref)
                .num("shares", m.shares)
                .num("price", m.price);
        }
        Message::Trade(m) => {
            o.num("order_ref", m.order_ref)
                .side(m.side)
                .num("shares", m.shares)
                .stock(&m.stock)
                .num("price", m.price)
                .num("match_number", m.match_number);
        }
        Message::CrossTrade(m) => {
            o.num("shares", m.shares)
                .stock(&m.stock)
                .num("cross_price", m.cross_price)
                .num("match_number", m.match_number)
                .char("cross_type", m.cross_type);
        }
        Message::BrokenTrade(m) => {
            o.num("match_number", m.match_number);
        }
        Message::Noii(m) => {
            o.num("paired_shares", m.paired_shares)
                .num("imbalance_shares", m.imbalance_shares)
                .char("imbalance_direction", m.imbalance_direction)
                .stock(&m.stock)
                .num("far_price", m.far_price)
                .num("near_price", m.near_price)
                .num("current_reference_price", m.current_reference_price)
                .char("cross_type", m.cross_type)
                .char("price_variation_indicator", m.price_variation_indicator);
        }
        Message::Rpii(m) => {
            o.stock(&m.stock).char("interest_flag", m.interest_flag);
        }
        Message::Dlcr(m) => {
            o.stock(&m.stock)
                .char("open_eligibility_status", m.open_eligibility_status)
                .num("minimum_allowable_price", m.minimum_allowable_price)
                .num("maximum_allowable_price", m.maximum_allowable_price)
                .num("near_execution_price", m.near_execution_price)
                .num("near_execution_time", m.near_execution_time)
                .num("lower_price_range_collar", m.lower_price_range_collar)
                .num("upper_price_range_collar", m.upper_price_range_collar);
        }
    }
}

//! DBN output through the `dbn` crate's encoder, version 3, zstd-compressed when the output
//! name ends in `.zst`.
//!
//! - `bbo` and `levels:1` are MBP-1 records, `levels:10` MBP-10 records. They carry the book
//!   after the event in their levels, and action `N` (none), side `N`, an undefined price and
//!   size 0, because a row is a book state, not the event that led to it.
//! - `trades` are trade records with action `T`. Their side is the aggressor's, the opposite of
//!   the resting order's side, and `N` for a cross.
//! - `orders` are MBO records, with the actions as Databento defines them:
//!   - `A` and `F` become an Add.
//!   - `X` becomes a Cancel of the cancelled shares, and `D` a Cancel of the shares that rested.
//!   - `E` and `C` become a Fill of the executed shares at the execution price, then a Cancel of
//!     them at the order's price, because a fill does not change a Databento book.
//!   - `U` becomes a Cancel of the original order and an Add of the new one.
//!
//! The last record of each row has the LAST flag. A row without a receive time gets its
//! exchange time as `ts_recv` and the BAD_TS_RECV flag. Instrument ids are DBN input's own, or
//! the ITCH locate; the metadata maps each exported symbol to its id.

use std::ffi::c_char;
use std::fs::File;
use std::io::BufWriter;
use std::num::NonZeroU64;
use std::path::PathBuf;

use dbn::encode::{DbnEncodable, DbnEncoder, DynWriter, EncodeRecord};
use dbn::{
    flags, rtype, BidAskPair, Compression, FlagSet, HasRType, MappingInterval, MboMsg, Mbp10Msg, Mbp1Msg, Metadata,
    RecordHeader, SType, Schema, SymbolMapping, TradeMsg, UNDEF_PRICE,
};
use mdfh_feed::itch::Side;
use mdfh_matcher::Level;
use time::Date;

use super::error::ExportError;
use super::rows::{OrderRow, Row, RowBody, TradeRow};
use super::{Instrument, RowWriter};

/// 1e-9 price units in one 1/10000 unit.
const PRICE_MULTIPLIER: i64 = 100_000;

/// Settings of a DBN output, besides the rows.
#[derive(Debug, Clone)]
pub(crate) struct DbnOutput {
    pub schema: Schema,
    pub dataset: String,
    /// Added to each row's exchange time to make it nanoseconds since the Unix epoch: midnight
    /// of the trading date in New York for ITCH input, 0 for DBN input.
    pub epoch_offset_ns: u64,
    /// Start and end of the data in nanoseconds since the Unix epoch.
    pub start_ns: u64,
    pub end_ns: Option<u64>,
    /// Calendar dates the symbol mappings cover: from the first up to, not including, the last.
    pub mapping_dates: (Date, Date),
    /// Publisher id of instruments that have none (ITCH input).
    pub default_publisher_id: u16,
}

pub(crate) struct DbnWriter {
    encoder: DbnEncoder<DynWriter<'static, BufWriter<File>>>,
    /// Instrument id and publisher id by locate.
    ids: Vec<Option<(u32, u16)>>,
    output: DbnOutput,
    /// The temporary path being written, for error messages.
    path: PathBuf,
}

impl DbnWriter {
    /// Writes the metadata for `instruments` to `file`.
    pub(crate) fn new(
        file: File,
        path: PathBuf,
        compressed: bool,
        output: DbnOutput,
        instruments: &[&Instrument],
    ) -> Result<DbnWriter, ExportError> {
        let encode_error = |source| ExportError::DbnEncode { path: path.clone(), source };
        let mut ids = vec![None; usize::from(u16::MAX) + 1];
        let mut mappings = Vec::new();
        for instrument in instruments {
            let publisher_id = instrument.publisher_id.unwrap_or(output.default_publisher_id);
            if let Some(slot) = ids.get_mut(usize::from(instrument.locate)) {
                *slot = Some((instrument.instrument_id, publisher_id));
            }
            if !instrument.symbol.is_empty() {
                mappings.push(SymbolMapping {
                    raw_symbol: instrument.symbol.clone(),
                    intervals: vec![MappingInterval {
                        start_date: output.mapping_dates.0,
                        end_date: output.mapping_dates.1,
                        symbol: instrument.instrument_id.to_string(),
                    }],
                });
            }
        }
        let metadata = Metadata::builder()
            .dataset(output.dataset.clone())
            .schema(Some(output.schema))
            .start(output.start_ns)
            .end(output.end_ns.and_then(NonZeroU64::new))
            .stype_in(Some(SType::RawSymbol))
            .stype_out(SType::InstrumentId)
            .symbols(mappings.iter().map(|mapping| mapping.raw_symbol.clone()).collect())
            .mappings(mappings)
            .build();
        let compression = if compressed { Compression::Zstd } else { Compression::None };
        let writer = DynWriter::new(BufWriter::new(file), compression).map_err(encode_error)?;
        let encoder = DbnEncoder::new(writer, &metadata).map_err(encode_error)?;
        Ok(DbnWriter { encoder, ids, output, path })
    }

    fn encode<R: DbnEncodable>(&mut self, record: &R) -> Result<(), ExportError> {
        self.encoder
            .encode_record(record)
            .map_err(|source| ExportError::DbnEncode { path: self.path.clone(), source })
    }
}

/// Fields every record of one row shares.
struct RecordBase {
    rtype: u8,
    publisher_id: u16,
    instrument_id: u32,
    ts_event: u64,
    ts_recv: u64,
    /// BAD_TS_RECV when the row has no receive time.
    flags: u8,
    sequence: u32,
}

impl RecordBase {
    fn header<R: HasRType>(&self) -> RecordHeader {
        RecordHeader::new::<R>(self.rtype, self.publisher_id, self.instrument_id, self.ts_event)
    }

    fn flags(&self, last: bool) -> FlagSet {
        FlagSet::new(self.flags | if last { flags::LAST } else { 0 })
    }
}

impl RowWriter for DbnWriter {
    fn write(&mut self, row: &Row<'_>) -> Result<(), ExportError> {
        let head = &row.head;
        let (instrument_id, publisher_id) = self
            .ids
            .get(usize::from(head.locate))
            .copied()
            .flatten()
            .unwrap_or((u32::from(head.locate), self.output.default_publisher_id));
        let ts_event = head.exchange_ts.saturating_add(self.output.epoch_offset_ns);
        let sequence = u32::try_from(head.sequence).map_err(|_| ExportError::DbnField {
            field: "sequence",
            value: head.sequence,
            sequence: head.sequence,
        })?;
        let mut base = RecordBase {
            rtype: 0,
            publisher_id,
            instrument_id,
            ts_event,
            ts_recv: head.receive_ts.unwrap_or(ts_event),
            flags: if head.receive_ts.is_some() { 0 } else { flags::BAD_TS_RECV },
            sequence,
        };
        match &row.body {
            RowBody::Book { asks, bids } if self.output.schema == Schema::Mbp10 => {
                base.rtype = rtype::MBP_10;
                let mut levels: [BidAskPair; 10] = Default::default();
                for (index, pair) in levels.iter_mut().enumerate() {
                    *pair = level_pair(asks.get(index), bids.get(index), head.sequence)?;
                }
                let record = Mbp10Msg {
                    hd: base.header::<Mbp10Msg>(),
                    price: UNDEF_PRICE,
                    size: 0,
                    action: b'N' as c_char,
                    side: b'N' as c_char,
                    flags: base.flags(true),
                    depth: 0,
                    ts_recv: base.ts_recv,
                    ts_in_delta: 0,
                    sequence,
                    levels,
                };
                self.encode(&record)
            }
            RowBody::Book { asks, bids } => {
                base.rtype = rtype::MBP_1;
                let record = Mbp1Msg {
                    hd: base.header::<Mbp1Msg>(),
                    price: UNDEF_PRICE,
                    size: 0,
                    action: b'N' as c_char,
                    side: b'N' as c_char,
                    flags: base.flags(true),
                    depth: 0,
                    ts_recv: base.ts_recv,
                    ts_in_delta: 0,
                    sequence,
                    levels: [level_pair(asks.first(), bids.first(), head.sequence)?],
                };
                self.encode(&record)
            }
            RowBody::Trade(trade) => {
                base.rtype = rtype::MBP_0;
                let record = trade_record(&base, trade, head.sequence)?;
                self.encode(&record)
            }
            RowBody::Order(order) => {
                base.rtype = rtype::MBO;
                for record in mbo_records(&base, order) {
                    self.encode(&record)?;
                }
                Ok(())
            }
        }
    }

    fn finish(mut self: Box<Self>) -> Result<(), ExportError> {
        let encode_error = |source| ExportError::DbnEncode { path: self.path.clone(), source };
        self.encoder.flush().map_err(encode_error)?;
        // Writes the end of the zstd frame, if any, and flushes the file's buffer.
        self.encoder.get_mut().finish().map_err(encode_error)
    }
}

/// Converts an ITCH price (1/10000) to DBN's 1e-9 units.
fn dbn_price(price: u32) -> i64 {
    i64::from(price) * PRICE_MULTIPLIER
}

fn dbn_size(shares: u64, sequence: u64) -> Result<u32, ExportError> {
    u32::try_from(shares).map_err(|_| ExportError::DbnField { field: "size", value: shares, sequence })
}

fn level_pair(ask: Option<&Level>, bid: Option<&Level>, sequence: u64) -> Result<BidAskPair, ExportError> {
    Ok(BidAskPair {
        bid_px: bid.map_or(UNDEF_PRICE, |level| dbn_price(level.price)),
        ask_px: ask.map_or(UNDEF_PRICE, |level| dbn_price(level.price)),
        bid_sz: dbn_size(bid.map_or(0, |level| level.shares), sequence)?,
        ask_sz: dbn_size(ask.map_or(0, |level| level.shares), sequence)?,
        bid_ct: bid.map_or(0, |level| level.orders),
        ask_ct: ask.map_or(0, |level| level.orders),
    })
}

/// Returns the DBN side letter of an order on `side`: `B` bid for a buy, `A` ask for a sell.
fn order_side(side: Option<Side>) -> c_char {
    (match side {
        Some(Side::Buy) => b'B',
        Some(Side::Sell) => b'A',
        None => b'N',
    }) as c_char
}

fn trade_record(base: &RecordBase, trade: &TradeRow, sequence: u64) -> Result<TradeMsg, ExportError> {
    // The aggressor is on the other side of the resting order.
    let aggressor = trade.side.map(|side| match side {
        Side::Buy => Side::Sell,
        Side::Sell => Side::Buy,
    });
    Ok(TradeMsg {
        hd: base.header::<TradeMsg>(),
        price: dbn_price(trade.price),
        size: dbn_size(trade.shares, sequence)?,
        action: b'T' as c_char,
        side: order_side(aggressor),
        flags: base.flags(true),
        depth: 0,
        ts_recv: base.ts_recv,
        ts_in_delta: 0,
        sequence: base.sequence,
    })
}

/// Returns the MBO records of one order event, in order.
fn mbo_records(base: &RecordBase, order: &OrderRow) -> Vec<MboMsg> {
    let side = order_side(order.side);
    let resting_price = order.price.map_or(UNDEF_PRICE, dbn_price);
    let record = |action: u8, order_id: u64, price: i64, size: u32| MboMsg {
        hd: base.header::<MboMsg>(),
        order_id,
        price,
        size,
        flags: base.flags(false),
        channel_id: 0,
        action: action as c_char,
        side,
        ts_recv: base.ts_recv,
        ts_in_delta: 0,
        sequence: base.sequence,
    };
    let mut records = match order.msg_type {
        b'A' | b'F' => vec![record(b'A', order.order_ref, resting_price, order.shares)],
        b'X' => vec![record(b'C', order.order_ref, resting_price, order.shares)],
        b'D' => vec![record(b'C', order.order_ref, resting_price, order.shares)],
        b'E' | b'C' => {
            let execution_price = order.execution_price.map_or(resting_price, dbn_price);
            vec![
                record(b'F', order.order_ref, execution_price, order.shares),
                record(b'C', order.order_ref, resting_price, order.shares),
            ]
        }
        b'U' => {
            let original_price = order.price_before.map_or(UNDEF_PRICE, dbn_price);
            let original = record(b'C', order.order_ref, original_price, order.shares_before.unwrap_or(0));
            let new_order_ref = order.new_order_ref.unwrap_or(order.order_ref);
            vec![original, record(b'A', new_order_ref, resting_price, order.shares)]
        }
        _ => Vec::new(),
    };
    if let Some(last) = records.last_mut() {
        last.flags = base.flags(true);
    }
    records
}

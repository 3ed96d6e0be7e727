//! Conversion of DBN records to ITCH 5.0 messages, so that DBN data replays through
//! [`mdfh_matcher::Books`] like an ITCH feed.
//!
//! Instruments: each DBN `instrument_id` gets the next free locate, from 1, in the order of its
//! first record, and a stock directory (`R`) message announces it before its first other
//! message. Its symbol is the raw symbol the metadata maps to that instrument id, or the id in
//! decimal when the metadata has no mapping for it. ITCH symbols have 8 bytes, so the `R`
//! message carries the first 8; [`DbnInstrument::symbol`] keeps the whole symbol.
//!
//! MBO records, by action:
//! - Add: `A` with the order id as reference.
//! - Cancel: `X` of the cancelled size, or `D` when it cancels the rest of the order.
//! - Modify: `D` of the order and `A` of it at its new price and size, or only the `A` when the
//!   order is not resting.
//! - Clear: `D` of every resting order of the instrument, in order id order.
//! - Trade and Fill: `P`, which prints the trade and leaves the book alone, as Databento
//!   specifies for these actions (the cancels that follow a fill update the book). The `P`
//!   side is the resting side: the record's side for a fill, the opposite of the aggressor
//!   side for a trade. A trade or fill with no side becomes a `Q` (cross trade), the only
//!   ITCH trade message without a side, with cross type `' '`.
//! - None: no message.
//!
//! Trade records become `P` or `Q` the same way. MBP-1 and MBP-10 records become the orders of
//! a synthetic book with one order per visible level, numbered from 1. A level that appears is
//! an `A`, a level whose size changes is a `D` and an `A`, and a level that leaves the record
//! is a `D`. Deletes come before adds so that the book does not cross for a moment. An MBP
//! record with action Trade also gives a `P`.
//!
//! Every message carries the record's `ts_event` (nanoseconds since the Unix epoch) in its
//! header timestamp. That value does not fit the 48 bits of the ITCH wire timestamp, so these
//! messages must not be encoded to ITCH bytes. Prices are converted from 1e-9 to 1/10000 units;
//! a price that is negative, above `u32::MAX` in 1/10000, or finer than 1/10000 is an error for
//! that record. Trade messages get match number 0, because DBN has none.

use std::collections::{HashMap, VecDeque};
use std::ffi::c_char;

use dbn::{BidAskPair, MboMsg, Metadata, RecordHeader, SType, UNDEF_PRICE, UNDEF_TIMESTAMP};
use mdfh_feed::itch::{
    AddOrder, CrossTrade, Header, Message, OrderCancel, OrderDelete, Side, Stock, StockDirectory, Trade,
};

use super::dbn_input::{DbnError, DbnRecord};

/// 1e-9 price units in one 1/10000 unit.
const PRICE_DIVISOR: i64 = 100_000;

/// One ITCH message converted from a DBN record, with the record's identity and timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbnMessage {
    /// The message. Its header timestamp is `ts_event`, in nanoseconds since the Unix epoch.
    pub message: Message,
    /// Byte offset of the record in the decompressed stream.
    pub offset: usize,
    pub instrument_id: u32,
    pub publisher_id: u16,
    /// Exchange time in nanoseconds since the Unix epoch.
    pub ts_event: u64,
    /// Capture time in nanoseconds since the Unix epoch, or `None` when the record has none.
    pub ts_recv: Option<u64>,
    /// The venue's sequence number, or 0 where the schema has none.
    pub sequence: u32,
    /// Whether this is the last message converted from its record. A book is consistent only
    /// after the last message of a record, and not, for example, between the delete and the
    /// add of a modify.
    pub last_of_record: bool,
}

/// One instrument of a DBN file as the conversion numbers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbnInstrument {
    pub instrument_id: u32,
    pub locate: u16,
    /// The raw symbol from the metadata, or the instrument id in decimal.
    pub symbol: String,
    /// Publisher of the instrument's first record.
    pub publisher_id: u16,
}

/// A resting MBO order, as far as the conversion needs to follow it.
#[derive(Debug, Clone, Copy)]
struct RestingOrder {
    instrument_id: u32,
    shares: u32,
}

/// One visible level of an MBP record's synthetic book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LevelOrder {
    price: u32,
    shares: u32,
    order_ref: u64,
}

/// The state of the conversion: instruments, resting MBO orders and synthetic MBP levels.
pub(crate) struct Converter {
    /// Raw symbol by instrument id, from the metadata's mappings.
    symbols: HashMap<u32, String>,
    instruments: Vec<DbnInstrument>,
    locates: HashMap<u32, u16>,
    /// NOTE: keyed by order id alone, as ITCH order references are unique across a feed. A
    /// file whose instruments reuse each other's order ids mixes their orders up here and in
    /// the books.
    orders: HashMap<u64, RestingOrder>,
    /// Visible levels per instrument and side: the bid side first.
    levels: HashMap<u32, [Vec<LevelOrder>; 2]>,
    next_level_ref: u64,
}

/// Fields every message converted from one record shares.
#[derive(Clone, Copy)]
struct Origin {
    offset: usize,
    header: Header,
    instrument_id: u32,
    publisher_id: u16,
    ts_recv: Option<u64>,
    sequence: u32,
    stock: Stock,
}

impl Converter {
    pub(crate) fn new(metadata: &Metadata) -> Converter {
        Converter {
            symbols: symbols_by_instrument(metadata),
            instruments: Vec::new(),
            locates: HashMap::new(),
            orders: HashMap::new(),
            levels: HashMap::new(),
            next_level_ref: 1,
        }
    }

    pub(crate) fn instruments(&self) -> &[DbnInstrument] {
        &self.instruments
    }

    /// Appends the messages of one record to `out`. On error nothing of the record is appended,
    /// except the `R` of an instrument met for the first time.
    pub(crate) fn convert(
        &mut self,
        offset: usize,
        record: &DbnRecord,
        out: &mut VecDeque<DbnMessage>,
    ) -> Result<(), DbnError> {
        let (header, ts_recv, sequence) = match record {
            DbnRecord::Mbo(r) => (&r.hd, r.ts_recv, r.sequence),
            DbnRecord::Mbp1(r) => (&r.hd, r.ts_recv, r.sequence),
            DbnRecord::Mbp10(r) => (&r.hd, r.ts_recv, r.sequence),
            DbnRecord::Trade(r) => (&r.hd, r.ts_recv, r.sequence),
            DbnRecord::Other { .. } => return Ok(()),
        };
        let queued_before = out.len();
        let origin = self.origin(offset, header, ts_recv, sequence, out)?;
        let mut messages = Vec::new();
        match record {
            DbnRecord::Mbo(r) => self.convert_mbo(&origin, r, &mut messages)?,
            DbnRecord::Trade(r) => {
                let price = convert_price(&origin, r.price)?;
                messages.push(trade_message(&origin, r.action, r.side, price, r.size, 0)?);
            }
            DbnRecord::Mbp1(r) => {
                let trade = mbp_trade(&origin, r.action, r.side, r.price, r.size)?;
                self.convert_mbp(&origin, &r.levels, &mut messages)?;
                messages.extend(trade);
            }
            DbnRecord::Mbp10(r) => {
                let trade = mbp_trade(&origin, r.action, r.side, r.price, r.size)?;
                self.convert_mbp(&origin, &r.levels, &mut messages)?;
                messages.extend(trade);
            }
            DbnRecord::Other { .. } => {}
        }
        out.extend(messages.into_iter().map(|message| origin.wrap(message)));
        if out.len() > queued_before {
            if let Some(last) = out.back_mut() {
                last.last_of_record = true;
            }
        }
        Ok(())
    }

    /// Returns the shared fields of the record's messages, and gives the instrument a locate and
    /// queues its `R` when it is new.
    fn origin(
        &mut self,
        offset: usize,
        header: &RecordHeader,
        ts_recv: u64,
        sequence: u32,
        out: &mut VecDeque<DbnMessage>,
    ) -> Result<Origin, DbnError> {
        let instrument_id = header.instrument_id;
        let mut created = false;
        let locate = match self.locates.get(&instrument_id) {
            Some(&locate) => locate,
            None => {
                let Some(locate) = u16::try_from(self.instruments.len() + 1).ok() else {
                    return Err(DbnError::TooManyInstruments { offset, instrument_id });
                };
                let symbol = self.symbols.get(&instrument_id).cloned().unwrap_or_else(|| instrument_id.to_string());
                self.locates.insert(instrument_id, locate);
                self.instruments.push(DbnInstrument {
                    instrument_id,
                    locate,
                    symbol,
                    publisher_id: header.publisher_id,
                });
                created = true;
                locate
            }
        };
        let stock = self
            .instruments
            .get(usize::from(locate) - 1)
            .map_or_else(Stock::default, |instrument| Stock::new(&instrument.symbol));
        let origin = Origin {
            offset,
            header: Header { stock_locate: locate, tracking_number: 0, timestamp: header.ts_event },
            instrument_id,
            publisher_id: header.publisher_id,
            ts_recv: (ts_recv != UNDEF_TIMESTAMP).then_some(ts_recv),
            sequence,
            stock,
        };
        if created {
            out.push_back(origin.wrap(directory(&origin)));
        }
        Ok(origin)
    }

    fn convert_mbo(&mut self, origin: &Origin, record: &MboMsg, out: &mut Vec<Message>) -> Result<(), DbnError> {
        let action = record.action as u8;
        let order_ref = record.order_id;
        let header = origin.header;
        match action {
            b'A' => {
                let side = order_side(origin, record)?;
                let price = convert_price(origin, record.price)?;
                out.push(add_message(origin, order_ref, side, price, record.size));
                self.orders.entry(order_ref).or_insert(RestingOrder {
                    instrument_id: origin.instrument_id,
                    shares: record.size,
                });
            }
            b'C' => {
                let resting = self.orders.get(&order_ref).copied();
                match resting {
                    Some(order) if record.size == order.shares => {
                        self.orders.remove(&order_ref);
                        out.push(Message::OrderDelete(OrderDelete { header, order_ref }));
                    }
                    Some(order) => {
                        let remaining = order.shares.saturating_sub(record.size);
                        if remaining == 0 {
                            self.orders.remove(&order_ref);
                        } else if let Some(resting) = self.orders.get_mut(&order_ref) {
                            resting.shares = remaining;
                        }
                        out.push(cancel_message(header, order_ref, record.size));
                    }
                    None => out.push(cancel_message(header, order_ref, record.size)),
                }
            }
            b'M' => {
                let side = order_side(origin, record)?;
                let price = convert_price(origin, record.price)?;
                if self.orders.remove(&order_ref).is_some() {
                    out.push(Message::OrderDelete(OrderDelete { header, order_ref }));
                }
                out.push(add_message(origin, order_ref, side, price, record.size));
                self.orders.insert(order_ref, RestingOrder { instrument_id: origin.instrument_id, shares: record.size });
            }
            b'R' => {
                let mut cleared: Vec<u64> = self
                    .orders
                    .iter()
                    .filter(|(_, order)| order.instrument_id == origin.instrument_id)
                    .map(|(&order_ref, _)| order_ref)
                    .collect();
                cleared.sort_unstable();
                for order_ref in cleared {
                    self.orders.remove(&order_ref);
                    out.push(Message::OrderDelete(OrderDelete { header, order_ref }));
                }
            }
            b'T' | b'F' => {
                // NOTE: a venue that publishes both the trade and the fills of one execution
                // gives a `P` for each, so summing their shares counts the volume twice.
                let price = convert_price(origin, record.price)?;
                out.push(trade_message(origin, record.action, record.side, price, record.size, order_ref)?);
            }
            b'N' => {}
            _ => {
                return Err(DbnError::InvalidAction {
                    offset: origin.offset,
                    instrument_id: origin.instrument_id,
                    order_id: order_ref,
                    action: char::from(action),
                })
            }
        }
        Ok(())
    }

    /// Turns the levels of an MBP record into the deletes and adds that make the synthetic book
    /// of the instrument show exactly those levels.
    fn convert_mbp(&mut self, origin: &Origin, levels: &[BidAskPair], out: &mut Vec<Message>) -> Result<(), DbnError> {
        let mut target: [Vec<(u32, u32)>; 2] = [Vec::new(), Vec::new()];
        for pair in levels {
            if pair.bid_px != UNDEF_PRICE && pair.bid_sz > 0 {
                target[0].push((convert_price(origin, pair.bid_px)?, pair.bid_sz));
            }
            if pair.ask_px != UNDEF_PRICE && pair.ask_sz > 0 {
                target[1].push((convert_price(origin, pair.ask_px)?, pair.ask_sz));
            }
        }

        let header = origin.header;
        let book = self.levels.entry(origin.instrument_id).or_default();
        let mut adds = Vec::new();
        for (side_index, side) in [Side::Buy, Side::Sell].into_iter().enumerate() {
            let (Some(current), Some(wanted)) = (book.get_mut(side_index), target.get(side_index)) else {
                continue;
            };
            current.retain(|level| {
                let kept = wanted.contains(&(level.price, level.shares));
                if !kept {
                    out.push(Message::OrderDelete(OrderDelete { header, order_ref: level.order_ref }));
                }
                kept
            });
            for &(price, shares) in wanted {
                if current.iter().any(|level| level.price == price) {
                    continue;
                }
                let order_ref = self.next_level_ref;
                self.next_level_ref += 1;
                current.push(LevelOrder { price, shares, order_ref });
                adds.push(add_message(origin, order_ref, side, price, shares));
            }
        }
        out.extend(adds);
        Ok(())
    }
}

impl Origin {
    fn wrap(&self, message: Message) -> DbnMessage {
        DbnMessage {
            message,
            offset: self.offset,
            instrument_id: self.instrument_id,
            publisher_id: self.publisher_id,
            ts_event: self.header.timestamp,
            ts_recv: self.ts_recv,
            sequence: self.sequence,
            last_of_record: false,
        }
    }
}

/// Returns the raw symbol of every instrument id the metadata maps, when it maps raw symbols to
/// instrument ids. The last mapping of an id wins.
fn symbols_by_instrument(metadata: &Metadata) -> HashMap<u32, String> {
    let mut symbols = HashMap::new();
    if metadata.stype_out != SType::InstrumentId {
        return symbols;
    }
    for mapping in &metadata.mappings {
        for interval in &mapping.intervals {
            if let Ok(instrument_id) = interval.symbol.parse::<u32>() {
                symbols.insert(instrument_id, mapping.raw_symbol.clone());
            }
        }
    }
    symbols
}

fn directory(origin: &Origin) -> Message {
    Message::StockDirectory(StockDirectory {
        header: origin.header,
        stock: origin.stock,
        market_category: b' ',
        financial_status_indicator: b' ',
        round_lot_size: 1,
        round_lots_only: b'N',
        issue_classification: b' ',
        issue_sub_type: [b' '; 2],
        authenticity: b'P',
        short_sale_threshold_indicator: b' ',
        ipo_flag: b' ',
        luld_reference_price_tier: b' ',
        etp_flag: b' ',
        etp_leverage_factor: 0,
        inverse_indicator: b' ',
    })
}

fn add_message(origin: &Origin, order_ref: u64, side: Side, price: u32, shares: u32) -> Message {
    Message::AddOrder(AddOrder {
        header: origin.header,
        order_ref,
        side,
        shares,
        stock: origin.stock,
        price,
        attribution: None,
    })
}

fn cancel_message(header: Header, order_ref: u64, cancelled_shares: u32) -> Message {
    Message::OrderCancel(OrderCancel { header, order_ref, cancelled_shares })
}

/// Returns a `P` for a trade or fill with a side, or a `Q` for one without. `action` is `T`
/// (whose side is the aggressor's) or `F` (whose side is the resting order's).
fn trade_message(
    origin: &Origin,
    action: c_char,
    side: c_char,
    price: u32,
    shares: u32,
    order_ref: u64,
) -> Result<Message, DbnError> {
    let aggressor = action as u8 == b'T';
    let resting = match (side as u8, aggressor) {
        (b'A', true) | (b'B', false) => Some(Side::Buy),
        (b'B', true) | (b'A', false) => Some(Side::Sell),
        (b'N', _) => None,
        (other, _) => {
            return Err(DbnError::InvalidSide {
                offset: origin.offset,
                instrument_id: origin.instrument_id,
                order_id: order_ref,
                side: char::from(other),
                action: char::from(action as u8),
            })
        }
    };
    Ok(match resting {
        Some(side) => Message::Trade(Trade {
            header: origin.header,
            order_ref,
            side,
            shares,
            stock: origin.stock,
            price,
            match_number: 0,
        }),
        None => Message::CrossTrade(CrossTrade {
            header: origin.header,
            shares: u64::from(shares),
            stock: origin.stock,
            cross_price: price,
            match_number: 0,
            cross_type: b' ',
        }),
    })
}

/// Returns the `P` or `Q` of an MBP record whose action is Trade, and `None` for other actions.
fn mbp_trade(origin: &Origin, action: c_char, side: c_char, price: i64, size: u32) -> Result<Option<Message>, DbnError> {
    if action as u8 != b'T' {
        return Ok(None);
    }
    let price = convert_price(origin, price)?;
    trade_message(origin, action, side, price, size, 0).map(Some)
}

/// Returns the side of an MBO add or modify: `B` bid is a buy order and `A` ask a sell order.
fn order_side(origin: &Origin, record: &MboMsg) -> Result<Side, DbnError> {
    match record.side as u8 {
        b'B' => Ok(Side::Buy),
        b'A' => Ok(Side::Sell),
        other => Err(DbnError::InvalidSide {
            offset: origin.offset,
            instrument_id: origin.instrument_id,
            order_id: record.order_id,
            side: char::from(other),
            action: char::from(record.action as u8),
        }),
    }
}

/// Converts a DBN price (1e-9 units) to ITCH's u32 in 1/10000 units.
fn convert_price(origin: &Origin, price: i64) -> Result<u32, DbnError> {
    let (offset, instrument_id) = (origin.offset, origin.instrument_id);
    if price % PRICE_DIVISOR != 0 && price != UNDEF_PRICE {
        return Err(DbnError::PricePrecision { offset, instrument_id, price });
    }
    u32::try_from(price / PRICE_DIVISOR)
        .ok()
        .filter(|_| price != UNDEF_PRICE)
        .ok_or(DbnError::PriceOutOfRange { offset, instrument_id, price })
}

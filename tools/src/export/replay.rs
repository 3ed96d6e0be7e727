//! The replay behind an export: applies each input message to the order books and writes the
//! rows the export requests.

use std::collections::BTreeMap;

use mdfh_feed::itch::{Message, Side};
use mdfh_matcher::{BookError, BookEvent, Books, Level, TradeEvent};

use super::error::ExportError;
use super::input::{InputEvent, Instrument};
use super::rows::{OrderRow, Row, RowBody, RowHead, TradeRow};
use super::{RowWriter, What};

/// The last message of an instrument in the current sampling interval.
#[derive(Debug, Clone, Copy)]
struct LastMessage {
    sequence: u64,
    receive_ts: Option<u64>,
}

/// Sampling of books every `every_ns` of exchange time.
struct Sampler {
    every_ns: u64,
    /// End of the current interval: the first multiple of `every_ns` after the last message
    /// seen; `None` before the first message.
    interval_end: Option<u64>,
    /// Instruments with a message in the current interval.
    active: BTreeMap<u16, LastMessage>,
}

/// Applies messages to the books and writes the rows of one export.
pub(crate) struct Replay<'a> {
    what: What,
    /// Levels per side of a book row.
    depth: usize,
    /// The only locate to export, or `None` for every non-zero locate.
    locate: Option<u16>,
    instruments: &'a BTreeMap<u16, Instrument>,
    books: Books,
    sampler: Option<Sampler>,
    writer: &'a mut dyn RowWriter,
    asks: Vec<Level>,
    bids: Vec<Level>,
    trades: Vec<(u16, TradeEvent)>,
    rows: u64,
}

impl<'a> Replay<'a> {
    pub(crate) fn new(
        what: What,
        every_ns: Option<u64>,
        locate: Option<u16>,
        instruments: &'a BTreeMap<u16, Instrument>,
        writer: &'a mut dyn RowWriter,
    ) -> Replay<'a> {
        let depth = match what {
            What::Levels(depth) => usize::from(depth),
            What::Bbo | What::Trades | What::Orders => 1,
        };
        let sampler = every_ns.map(|every_ns| Sampler { every_ns, interval_end: None, active: BTreeMap::new() });
        Replay {
            what,
            depth,
            locate,
            instruments,
            books: Books::default(),
            sampler,
            writer,
            asks: Vec::with_capacity(depth),
            bids: Vec::with_capacity(depth),
            trades: Vec::new(),
            rows: 0,
        }
    }

    /// Returns the rows written so far.
    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    fn exported(&self, locate: u16) -> bool {
        locate != 0 && self.locate.is_none_or(|only| only == locate)
    }

    /// Applies one message and writes the rows it gives. Returns the book error the message
    /// caused, if any; it is already counted in the books and does not stop the export.
    pub(crate) fn apply(&mut self, event: &InputEvent) -> Result<Option<BookError>, ExportError> {
        let locate = event.message.header().stock_locate;
        self.write_due_samples(event.exchange_ts)?;
        let order_row = match self.what {
            What::Orders if self.exported(locate) => order_row(&self.books, &event.message),
            _ => None,
        };

        self.trades.clear();
        let trades = &mut self.trades;
        let result = self.books.apply(&event.message, &mut |book_event| {
            if let BookEvent::Trade { locate, trade } = book_event {
                trades.push((locate, trade));
            }
        });

        match self.what {
            What::Bbo | What::Levels(_) if self.exported(locate) && event.ends_record => match &mut self.sampler {
                Some(sampler) => {
                    let last = LastMessage { sequence: event.sequence, receive_ts: event.receive_ts };
                    sampler.active.insert(locate, last);
                }
                None => self.write_book(locate, event.exchange_ts, event.receive_ts, event.sequence)?,
            },
            What::Trades => {
                for index in 0..self.trades.len() {
                    let Some(&(trade_locate, trade)) = self.trades.get(index) else { continue };
                    if self.exported(trade_locate) {
                        let row = trade_row(&event.message, &trade);
                        self.write(trade_locate, event, RowBody::Trade(row))?;
                    }
                }
            }
            What::Orders => {
                if let Some(row) = order_row {
                    self.write(locate, event, RowBody::Order(row))?;
                }
            }
            What::Bbo | What::Levels(_) => {}
        }
        Ok(result.err())
    }

    /// Writes the samples still due at the end of the input.
    pub(crate) fn finish(&mut self) -> Result<(), ExportError> {
        self.write_due_samples(u64::MAX)
    }

    /// Writes one book row per instrument active in the current interval when `exchange_ts`
    /// is at or past the interval's end, and starts the interval `exchange_ts` falls in.
    fn write_due_samples(&mut self, exchange_ts: u64) -> Result<(), ExportError> {
        let Some(sampler) = &mut self.sampler else {
            return Ok(());
        };
        let every_ns = sampler.every_ns;
        let next_end = |ts: u64| (ts / every_ns).saturating_add(1).saturating_mul(every_ns);
        let interval_end = match sampler.interval_end {
            Some(end) if exchange_ts < end => return Ok(()),
            Some(end) => end,
            None => {
                sampler.interval_end = Some(next_end(exchange_ts));
                return Ok(());
            }
        };
        let active = std::mem::take(&mut sampler.active);
        sampler.interval_end = Some(next_end(exchange_ts));
        for (locate, last) in active {
            self.write_book(locate, interval_end, last.receive_ts, last.sequence)?;
        }
        Ok(())
    }

    /// Writes the top of the book of `locate` as it is now. An instrument without a book yet
    /// gets a row of empty levels.
    fn write_book(
        &mut self,
        locate: u16,
        exchange_ts: u64,
        receive_ts: Option<u64>,
        sequence: u64,
    ) -> Result<(), ExportError> {
        self.asks.clear();
        self.bids.clear();
        if let Some(book) = self.books.book(locate) {
            self.asks.extend(book.top_levels(Side::Sell, self.depth));
            self.bids.extend(book.top_levels(Side::Buy, self.depth));
        }
        let row = Row {
            head: RowHead { exchange_ts, receive_ts, locate, symbol: symbol(self.instruments, locate), sequence },
            body: RowBody::Book { asks: &self.asks, bids: &self.bids },
        };
        self.writer.write(&row)?;
        self.rows += 1;
        Ok(())
    }

    fn write(&mut self, locate: u16, event: &InputEvent, body: RowBody<'_>) -> Result<(), ExportError> {
        let head = RowHead {
            exchange_ts: event.exchange_ts,
            receive_ts: event.receive_ts,
            locate,
            symbol: symbol(self.instruments, locate),
            sequence: event.sequence,
        };
        self.writer.write(&Row { head, body })?;
        self.rows += 1;
        Ok(())
    }
}

fn symbol(instruments: &BTreeMap<u16, Instrument>, locate: u16) -> &str {
    instruments.get(&locate).map_or("", |instrument| instrument.symbol.as_str())
}

/// Returns the row of a trade event that `message` caused.
fn trade_row(message: &Message, trade: &TradeEvent) -> TradeRow {
    let order_ref = match message {
        Message::OrderExecuted(m) => Some(m.order_ref),
        Message::OrderExecutedWithPrice(m) => Some(m.order_ref),
        Message::Trade(m) => Some(m.order_ref),
        _ => None,
    };
    TradeRow {
        msg_type: message.msg_type(),
        price: trade.price,
        shares: trade.shares,
        side: trade.resting_side,
        match_number: trade.match_number,
        order_ref,
    }
}

/// Returns the row of an order event, with the side, price and shares of the resting order as
/// the books hold it before the message, or `None` when `message` is not an order event.
fn order_row(books: &Books, message: &Message) -> Option<OrderRow> {
    let msg_type = message.msg_type();
    let blank = OrderRow {
        msg_type,
        order_ref: 0,
        new_order_ref: None,
        side: None,
        price: None,
        shares: 0,
        shares_before: None,
        price_before: None,
        execution_price: None,
        match_number: None,
        printable: None,
        mpid: None,
    };
    let resting = |order_ref: u64| {
        let order = books.order(order_ref);
        OrderRow {
            order_ref,
            side: order.map(|o| o.side),
            price: order.map(|o| o.price),
            shares_before: order.map(|o| o.shares),
            price_before: order.map(|o| o.price),
            ..blank
        }
    };
    Some(match message {
        Message::AddOrder(add) => OrderRow {
            order_ref: add.order_ref,
            side: Some(add.side),
            price: Some(add.price),
            shares: add.shares,
            mpid: add.attribution,
            ..blank
        },
        Message::OrderExecuted(exec) => {
            let row = resting(exec.order_ref);
            OrderRow {
                shares: exec.executed_shares,
                execution_price: row.price,
                match_number: Some(exec.match_number),
                printable: Some(true),
                ..row
            }
        }
        Message::OrderExecutedWithPrice(exec) => OrderRow {
            shares: exec.executed_shares,
            execution_price: Some(exec.execution_price),
            match_number: Some(exec.match_number),
            printable: Some(exec.printable != b'N'),
            ..resting(exec.order_ref)
        },
        Message::OrderCancel(cancel) => OrderRow { shares: cancel.cancelled_shares, ..resting(cancel.order_ref) },
        Message::OrderDelete(delete) => {
            let row = resting(delete.order_ref);
            OrderRow { shares: row.shares_before.unwrap_or(0), ..row }
        }
        Message::OrderReplace(replace) => {
            let row = resting(replace.original_order_ref);
            OrderRow {
                new_order_ref: Some(replace.new_order_ref),
                price: Some(replace.price),
                shares: replace.shares,
                ..row
            }
        }
        _ => return None,
    })
}

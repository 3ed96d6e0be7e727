//! Exported rows and their columns: the layout the Parquet and CSV writers share. The module
//! documentation of [`super`] lists the columns with their meaning.

use mdfh_feed::itch::Side;
use mdfh_matcher::Level;

use super::What;

/// Fields every row starts with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowHead<'a> {
    /// Nanoseconds since midnight in New York (ITCH) or since the Unix epoch (DBN).
    pub exchange_ts: u64,
    /// Nanoseconds since the Unix epoch, or `None` when the input has no capture time.
    pub receive_ts: Option<u64>,
    pub locate: u16,
    pub symbol: &'a str,
    pub sequence: u64,
}

/// One trade print: an `E` or printable `C` execution, a `P` or a `Q`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TradeRow {
    pub msg_type: u8,
    /// 1/10000 dollars.
    pub price: u32,
    pub shares: u64,
    /// Side of the resting order; `None` for a cross.
    pub side: Option<Side>,
    pub match_number: u64,
    /// The executed order (`E`, `C`, `P`); `None` for a cross.
    pub order_ref: Option<u64>,
}

/// One order event: `A`, `F`, `E`, `C`, `X`, `D` or `U`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OrderRow {
    pub msg_type: u8,
    /// The order the event is about; for `U` the original order.
    pub order_ref: u64,
    /// The new reference of a `U`.
    pub new_order_ref: Option<u64>,
    /// From the message for `A` and `F`, else from the resting order; `None` when the order is
    /// not on the book.
    pub side: Option<Side>,
    /// Limit price in 1/10000 dollars: the new order's for `A`, `F` and `U`, and the resting
    /// order's for the others. `None` when the order is not on the book.
    pub price: Option<u32>,
    /// Added (`A`, `F`), executed (`E`, `C`), cancelled (`X`), deleted (`D`: what rested) or
    /// new (`U`) shares.
    pub shares: u32,
    /// Shares the order had on the book before the event; `None` for `A` and `F`, and when
    /// the order is not on the book.
    pub shares_before: Option<u32>,
    /// Limit price the order had before the event, which differs from `price` only for `U`;
    /// `None` when `shares_before` is.
    pub price_before: Option<u32>,
    /// Execution price of a `C`, or the order's price for an `E`.
    pub execution_price: Option<u32>,
    pub match_number: Option<u64>,
    /// Whether a `C` prints as a trade.
    pub printable: Option<bool>,
    /// Market participant of an `F`.
    pub mpid: Option<[u8; 4]>,
}

/// Columns of a row after its head.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RowBody<'a> {
    /// The top levels of the book, best first. Sides with fewer levels than the depth are
    /// padded with empty levels when written.
    Book { asks: &'a [Level], bids: &'a [Level] },
    Trade(TradeRow),
    Order(OrderRow),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Row<'a> {
    pub head: RowHead<'a>,
    pub body: RowBody<'a>,
}

/// Column types, named after the Arrow types they are written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnType {
    UInt16,
    UInt32,
    UInt64,
    Utf8,
    Boolean,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    pub name: String,
    pub column_type: ColumnType,
    pub nullable: bool,
}

/// One value of a row, in column order. `None` is a null.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    UInt16(u16),
    UInt32(Option<u32>),
    UInt64(Option<u64>),
    Utf8(Option<&'a str>),
    Boolean(Option<bool>),
}

fn column(name: impl Into<String>, column_type: ColumnType, nullable: bool) -> Column {
    Column { name: name.into(), column_type, nullable }
}

/// Returns the columns of an export of `what`.
pub(crate) fn columns(what: What) -> Vec<Column> {
    use ColumnType::{Boolean, UInt16, UInt32, UInt64, Utf8};
    let mut columns = vec![
        column("exchange_ts", UInt64, false),
        column("receive_ts", UInt64, true),
        column("locate", UInt16, false),
        column("symbol", Utf8, false),
        column("sequence", UInt64, false),
    ];
    match what {
        What::Bbo => {
            for side in ["ask", "bid"] {
                columns.push(column(format!("{side}_price"), UInt32, true));
                columns.push(column(format!("{side}_shares"), UInt64, false));
                columns.push(column(format!("{side}_orders"), UInt32, false));
            }
        }
        What::Levels(depth) => {
            for level in 1..=depth {
                for side in ["ask", "bid"] {
                    columns.push(column(format!("{side}_price_{level}"), UInt32, true));
                    columns.push(column(format!("{side}_shares_{level}"), UInt64, false));
                    columns.push(column(format!("{side}_orders_{level}"), UInt32, false));
                }
            }
        }
        What::Trades => {
            columns.push(column("msg_type", Utf8, false));
            columns.push(column("price", UInt32, false));
            columns.push(column("shares", UInt64, false));
            columns.push(column("side", Utf8, true));
            columns.push(column("match_number", UInt64, false));
            columns.push(column("order_ref", UInt64, true));
        }
        What::Orders => {
            columns.push(column("msg_type", Utf8, false));
            columns.push(column("order_ref", UInt64, false));
            columns.push(column("new_order_ref", UInt64, true));
            columns.push(column("side", Utf8, true));
            columns.push(column("price", UInt32, true));
            columns.push(column("shares", UInt32, false));
            columns.push(column("shares_before", UInt32, true));
            columns.push(column("price_before", UInt32, true));
            columns.push(column("execution_price", UInt32, true));
            columns.push(column("match_number", UInt64, true));
            columns.push(column("printable", Boolean, true));
            columns.push(column("mpid", Utf8, true));
        }
    }
    columns
}

impl Row<'_> {
    /// Passes the values of the row to `visit`, one per column of [`columns`] and in that
    /// order, with `depth` levels per side for a book row.
    pub(crate) fn visit_values(&self, depth: usize, visit: &mut impl FnMut(Value<'_>)) {
        let head = &self.head;
        visit(Value::UInt64(Some(head.exchange_ts)));
        visit(Value::UInt64(head.receive_ts));
        visit(Value::UInt16(head.locate));
        visit(Value::Utf8(Some(head.symbol)));
        visit(Value::UInt64(Some(head.sequence)));
        match &self.body {
            RowBody::Book { asks, bids } => {
                for level in 0..depth {
                    for side in [asks, bids] {
                        let level = side.get(level);
                        visit(Value::UInt32(level.map(|l| l.price)));
                        visit(Value::UInt64(Some(level.map_or(0, |l| l.shares))));
                        visit(Value::UInt32(Some(level.map_or(0, |l| l.orders))));
                    }
                }
            }
            RowBody::Trade(trade) => {
                visit(Value::Utf8(Some(letter(trade.msg_type))));
                visit(Value::UInt32(Some(trade.price)));
                visit(Value::UInt64(Some(trade.shares)));
                visit(Value::Utf8(trade.side.map(side_letter)));
                visit(Value::UInt64(Some(trade.match_number)));
                visit(Value::UInt64(trade.order_ref));
            }
            RowBody::Order(order) => {
                visit(Value::Utf8(Some(letter(order.msg_type))));
                visit(Value::UInt64(Some(order.order_ref)));
                visit(Value::UInt64(order.new_order_ref));
                visit(Value::Utf8(order.side.map(side_letter)));
                visit(Value::UInt32(order.price));
                visit(Value::UInt32(Some(order.shares)));
                visit(Value::UInt32(order.shares_before));
                visit(Value::UInt32(order.price_before));
                visit(Value::UInt32(order.execution_price));
                visit(Value::UInt64(order.match_number));
                visit(Value::Boolean(order.printable));
                visit(Value::Utf8(order.mpid.as_ref().map(mpid_text)));
            }
        }
    }
}

/// Returns `B` for a buy order and `S` for a sell order.
pub(crate) fn side_letter(side: Side) -> &'static str {
    match side {
        Side::Buy => "B",
        Side::Sell => "S",
    }
}

/// Returns an ITCH message type as text: one of the types an exported row can have.
fn letter(msg_type: u8) -> &'static str {
    match msg_type {
        b'A' => "A",
        b'F' => "F",
        b'E' => "E",
        b'C' => "C",
        b'X' => "X",
        b'D' => "D",
        b'U' => "U",
        b'P' => "P",
        b'Q' => "Q",
        _ => "?",
    }
}

/// Returns an MPID without trailing spaces; one that is not UTF-8 gives an empty string.
fn mpid_text(mpid: &[u8; 4]) -> &str {
    let text = std::str::from_utf8(mpid).unwrap_or("");
    text.trim_end_matches(' ')
}

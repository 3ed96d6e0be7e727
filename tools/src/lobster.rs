//! Conversion of a LOBSTER message file and its orderbook file into an ITCH 5.0 BinaryFILE.
//!
//! LOBSTER (lobsterdata.com) publishes NASDAQ books as two CSV files without a header. Row k of
//! the message file is one event: time (seconds after midnight, up to 9 decimals), type, order
//! id, size (shares), price (dollars x 10000) and direction (1 buy, -1 sell). Row k of the
//! orderbook file is the visible book after event k: for each of L levels, best first, the ask
//! price, ask size, bid price and bid size. An empty level is 9999999999 (ask) or -9999999999
//! (bid) with size 0.
//!
//! The BinaryFILE contains, in this order:
//! 1. a system event `S` with event code `O` (start of messages),
//! 2. a stock directory `R` for the symbol at the locate of [`ConvertOptions`],
//! 3. a stock trading action `H` with state `T` (or the state of event 1 if that is a halt row),
//! 4. the seed: add orders `A` that build the book of orderbook row 1,
//! 5. exactly one ITCH message per LOBSTER event 2..N, in order, and nothing after.
//!
//! The first three and the seed carry the timestamp of event 1, and every tracking number is 0.
//!
//! Event types map as follows: 1 new order to `A` (the order id is the order reference),
//! 2 partial cancel to `X`, 3 delete to `D`, 4 visible execution to `E`, 5 hidden execution to
//! `P` (order reference 0, side from the direction), 6 cross to `Q` and 7 halt indicator to `H`.
//! For type 6 LOBSTER writes the cross kind as a negative order id: -1 opening (`O`),
//! -2 closing (`C`), -3 IPO or halt (`H`) and -4 intraday (`I`). For type 7 the price is the
//! state: -1 halted (`H`), 0 quoting resumes (`Q`) and 1 trading resumes (`T`). Match numbers
//! of `E`, `P` and `Q` count up from 1.
//!
//! # The seed
//! The book before event 1 is unknown, so the seed rebuilds the book after event 1 (orderbook
//! row 1) and event 1 itself is not written. A pre-window order is one that events 2..N cancel,
//! delete or execute before any type 1 event adds it. Each pre-window order is seeded with its
//! own id, side and price, and with the total shares that events 2..N remove from it. The rest
//! of each row 1 level becomes one seed order with a fresh id that the message file does not
//! use, so that every seeded level equals row 1 in price and shares.
//!
//! What this guarantees: every cancel, delete and execution of events 2..N names an order that
//! the seed or an earlier event added, and a pre-window order holds exactly the shares that
//! events 2..N remove from it. Unless a [`SeedWarning`] is returned, the book after the seed
//! equals row 1 on every level. Each warning marks a price where row 1 and the message file
//! disagree: the order is seeded as the messages describe it, and the book differs from row 1
//! at that price.
//!
//! What it cannot guarantee: LOBSTER writes only the events that change the L visible levels,
//! so the converted book misses every event at a price that is out of view at the time.
//! Levels beyond the L of row 1 are unknown. A level that slides into view from below can hold
//! orders that no row of the message file adds. A level that leaves the visible L can lose
//! orders without a message, and the converted book keeps them. An order that enters the book
//! out of view and is later cancelled or executed in view is seeded at row 1, before it existed
//! (a [`SeedWarning::MissingLevel`]). Queue positions within a level are synthetic, because one
//! seed order stands for all unreferenced orders of its level. The trade print of event 1
//! (types 4 to 6) is lost.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use mdfh_feed::binaryfile;
use mdfh_feed::itch::{
    AddOrder, CrossTrade, Header, Message, OrderCancel, OrderDelete, OrderExecuted, Side, Stock,
    StockDirectory, StockTradingAction, SystemEvent, Trade,
};

/// Stock locate used when the caller names none.
pub const DEFAULT_LOCATE: u16 = 1;

/// Price LOBSTER writes for an empty ask level.
pub const EMPTY_ASK_PRICE: i64 = 9_999_999_999;

/// Price LOBSTER writes for an empty bid level.
pub const EMPTY_BID_PRICE: i64 = -9_999_999_999;

/// Columns of the message file.
const MESSAGE_COLUMNS: usize = 6;

/// Nanoseconds in one day. ITCH timestamps count nanoseconds since midnight.
const NANOS_PER_DAY: u64 = 86_400 * 1_000_000_000;

/// Input file named by a [`LobsterError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsvFile {
    Message,
    Orderbook,
}

impl fmt::Display for CsvFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CsvFile::Message => "message file",
            CsvFile::Orderbook => "orderbook file",
        })
    }
}

/// Instrument the converted messages are about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertOptions {
    /// Stock symbol, 1 to 8 printable ASCII characters.
    pub symbol: String,
    /// Stock locate of every message about the instrument. Must not be 0, which ITCH reserves
    /// for messages about no instrument.
    pub locate: u16,
}

/// Symbol of [`ConvertOptions::default`], a placeholder for callers that do not care which
/// symbol the output names.
pub const PLACEHOLDER_SYMBOL: &str = "LOBSTER";

impl Default for ConvertOptions {
    /// Returns symbol [`PLACEHOLDER_SYMBOL`] at locate [`DEFAULT_LOCATE`].
    fn default() -> ConvertOptions {
        ConvertOptions { symbol: PLACEHOLDER_SYMBOL.to_owned(), locate: DEFAULT_LOCATE }
    }
}

/// Error that stops the conversion of a LOBSTER file pair. Lines and columns count from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LobsterError {
    #[error("{file} is empty")]
    Empty { file: CsvFile },

    #[error("{file} line {line}: expected {expected} columns, found {found}")]
    ColumnCount { file: CsvFile, line: usize, expected: usize, found: usize },

    #[error("{file} line {line} column {column} ({field}): invalid value {value:?}: {reason}")]
    InvalidValue {
        file: CsvFile,
        line: usize,
        column: usize,
        field: &'static str,
        value: String,
        reason: &'static str,
    },

    #[error("orderbook file line {line}: expected 4 columns per level (ask price, ask size, bid price, bid size), found {found} columns")]
    LevelColumns { line: usize, found: usize },

    #[error("the orderbook file has {orderbook_rows} rows but the message file has {message_rows}; both files must come from the same LOBSTER request")]
    RowCountMismatch { message_rows: usize, orderbook_rows: usize },

    #[error("invalid symbol {symbol:?}: expected 1 to 8 printable ASCII characters")]
    InvalidSymbol { symbol: String },

    #[error("invalid stock locate 0: ITCH reserves locate 0 for messages about no instrument")]
    InvalidLocate,

    #[error("message file line {line}: order {order_ref} has no add in the message file and loses {shares} shares in it, more than an ITCH add order can carry (4294967295)")]
    SeedTooLarge { line: usize, order_ref: u64, shares: u64 },

    #[error("no unused order reference is left above {max_order_ref} for the seed orders")]
    OrderRefsExhausted { max_order_ref: u64 },
}

/// A disagreement between orderbook row 1 and the message file, found while seeding. The
/// conversion goes on, and the converted book differs from row 1 at `price`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeedWarning {
    #[error("message file line {line}: order {order_ref} ({} {shares} @ {price}) has no add in the message file, and its price lies beyond the visible levels of orderbook row 1; it is seeded at row 1 without a check", side_name(*side))]
    OutsideVisibleLevels { line: usize, order_ref: u64, side: Side, price: u32, shares: u64 },

    #[error("message file line {line}: order {order_ref} ({} {shares} @ {price}) has no add in the message file, and orderbook row 1 shows no level at its price although the price is in view; it is seeded at row 1 anyway, but it likely entered the book out of view after row 1", side_name(*side))]
    MissingLevel { line: usize, order_ref: u64, side: Side, price: u32, shares: u64 },

    #[error("orderbook row 1 has {level_shares} shares on the {} level at {price}, but orders without an add in the message file lose {seeded_shares} shares there; the level is seeded with {seeded_shares}", side_name(*side))]
    LevelExceeded { side: Side, price: u32, level_shares: u32, seeded_shares: u64 },
}

/// A converted file pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversion {
    /// The ITCH messages, each preceded by its length as a big-endian u16.
    pub binary_file: Vec<u8>,
    /// Number of seed add orders.
    pub seed_orders: usize,
    /// Number of ITCH messages after the seed: one per LOBSTER event 2..N.
    pub event_messages: usize,
    /// Disagreements between orderbook row 1 and the message file.
    pub warnings: Vec<SeedWarning>,
}

/// Converts a LOBSTER message file and its orderbook file, both given as text, into BinaryFILE
/// bytes. It drops the seed warnings, which [`convert_with_report`] returns.
pub fn convert(
    message_csv: &str,
    orderbook_csv: &str,
    opts: &ConvertOptions,
) -> Result<Vec<u8>, LobsterError> {
    convert_with_report(message_csv, orderbook_csv, opts).map(|conversion| conversion.binary_file)
}

/// Converts like [`convert`] and also returns the message counts and the seed warnings.
pub fn convert_with_report(
    message_csv: &str,
    orderbook_csv: &str,
    opts: &ConvertOptions,
) -> Result<Conversion, LobsterError> {
    let stock = validate_options(opts)?;
    let events = parse_message_file(message_csv)?;
    let row1 = parse_orderbook_file(orderbook_csv, events.len())?;
    let Some((first, window)) = events.split_first() else {
        return Err(LobsterError::Empty { file: CsvFile::Message });
    };

    let header = Header { stock_locate: opts.locate, tracking_number: 0, timestamp: first.time_ns };
    let mut writer = Writer { out: Vec::new(), stock, locate: opts.locate, next_match_number: 1 };

    writer.push(&Message::SystemEvent(SystemEvent {
        header: Header { stock_locate: 0, ..header },
        event_code: b'O',
    }));
    writer.push(&stock_directory(header, stock));
    let initial_state = match first.kind {
        EventKind::Halt { state } => state,
        _ => b'T',
    };
    writer.push(&trading_action(header, stock, initial_state));

    let max_order_ref = events
        .iter()
        .filter_map(|event| match event.kind {
            EventKind::Add { order_ref, .. } | EventKind::Remove { order_ref, .. } => Some(order_ref),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let seed = build_seed(window, &row1, max_order_ref)?;
    for order in &seed.orders {
        writer.push(&Message::AddOrder(AddOrder {
            header,
            order_ref: order.order_ref,
            side: order.side,
            shares: order.shares,
            stock,
            price: order.price,
            attribution: None,
        }));
    }

    for event in window {
        let message = writer.event_message(event);
        writer.push(&message);
    }

    Ok(Conversion {
        binary_file: writer.out,
        seed_orders: seed.orders.len(),
        event_messages: window.len(),
        warnings: seed.warnings,
    })
}

/// Returns the symbol LOBSTER puts at the start of its file names, the text before the first
/// `_` (`AAPL` for `AAPL_2012-06-21_34200000_57600000_message_10.csv`), or `None` if the file
/// name has no `_`.
pub fn symbol_from_file_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let (symbol, _) = name.split_once('_')?;
    (!symbol.is_empty()).then(|| symbol.to_owned())
}

fn validate_options(opts: &ConvertOptions) -> Result<Stock, LobsterError> {
    let symbol = &opts.symbol;
    let printable = symbol.bytes().all(|b| b.is_ascii_graphic());
    if symbol.is_empty() || symbol.len() > 8 || !printable {
        return Err(LobsterError::InvalidSymbol { symbol: symbol.clone() });
    }
    if opts.locate == 0 {
        return Err(LobsterError::InvalidLocate);
    }
    Ok(Stock::new(symbol))
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Buy => "bid",
        Side::Sell => "ask",
    }
}

/// One parsed row of the message file.
#[derive(Debug, Clone, Copy)]
struct Event {
    line: usize,
    time_ns: u64,
    kind: EventKind,
}

#[derive(Debug, Clone, Copy)]
enum EventKind {
    Add { order_ref: u64, side: Side, shares: u32, price: u32 },
    /// Types 2 (partial cancel), 3 (delete) and 4 (visible execution): shares leave a resting order.
    Remove { action: RemoveAction, order_ref: u64, side: Side, shares: u32, price: u32 },
    HiddenExecution { side: Side, shares: u32, price: u32 },
    Cross { cross_type: u8, shares: u64, price: u32 },
    Halt { state: u8 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RemoveAction {
    Cancel,
    Delete,
    Execute,
}

/// Fields of one CSV line, with the position needed to report a bad value.
struct Fields<'a> {
    file: CsvFile,
    line: usize,
    fields: Vec<&'a str>,
}

impl<'a> Fields<'a> {
    fn split(file: CsvFile, line: usize, text: &'a str, expected: Option<usize>) -> Result<Self, LobsterError> {
        let fields: Vec<&str> = text.split(',').map(str::trim).collect();
        if let Some(expected) = expected {
            if fields.len() != expected {
                return Err(LobsterError::ColumnCount { file, line, expected, found: fields.len() });
            }
        }
        Ok(Fields { file, line, fields })
    }

    fn text(&self, column: usize) -> &'a str {
        column.checked_sub(1).and_then(|index| self.fields.get(index)).copied().unwrap_or("")
    }

    fn invalid(&self, column: usize, field: &'static str, reason: &'static str) -> LobsterError {
        LobsterError::InvalidValue {
            file: self.file,
            line: self.line,
            column,
            field,
            value: self.text(column).to_owned(),
            reason,
        }
    }

    fn int(&self, column: usize, field: &'static str) -> Result<i64, LobsterError> {
        self.text(column)
            .parse::<i64>()
            .map_err(|_| self.invalid(column, field, "expected an integer"))
    }

    /// Parses an integer of at least `min` that fits `T`. `reason` describes the valid range.
    fn int_in<T: TryFrom<i64>>(&self, column: usize, field: &'static str, min: i64, reason: &'static str) -> Result<T, LobsterError> {
        let value = self.int(column, field)?;
        if value < min {
            return Err(self.invalid(column, field, reason));
        }
        T::try_from(value).map_err(|_| self.invalid(column, field, reason))
    }

    fn side(&self, column: usize) -> Result<Side, LobsterError> {
        match self.int(column, "direction")? {
            1 => Ok(Side::Buy),
            -1 => Ok(Side::Sell),
            _ => Err(self.invalid(column, "direction", "expected 1 (buy) or -1 (sell)")),
        }
    }

    /// Parses seconds after midnight with up to 9 decimals into nanoseconds, without floating
    /// point, so that `34200.004241176` becomes exactly 34200004241176.
    fn time_ns(&self, column: usize) -> Result<u64, LobsterError> {
        let text = self.text(column);
        let invalid = |reason| self.invalid(column, "time", reason);
        let (seconds, fraction) = text.split_once('.').unwrap_or((text, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if seconds.is_empty() || !all_digits(seconds) || !all_digits(fraction) {
            return Err(invalid("expected seconds after midnight such as 34200.004241176"));
        }
        if fraction.len() > 9 {
            return Err(invalid("more than 9 decimals (finer than a nanosecond)"));
        }
        let seconds: u64 = seconds.parse().map_err(|_| invalid("seconds out of range"))?;
        let mut nanos: u64 = 0;
        for i in 0..9 {
            let digit = fraction.as_bytes().get(i).map_or(0, |b| u64::from(b - b'0'));
            nanos = nanos * 10 + digit;
        }
        let time_ns = seconds
            .checked_mul(1_000_000_000)
            .and_then(|ns| ns.checked_add(nanos))
            .filter(|&ns| ns < NANOS_PER_DAY)
            .ok_or_else(|| invalid("not within one day (86400 seconds)"))?;
        Ok(time_ns)
    }
}

fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, line)| (i + 1, line))
}

fn parse_message_file(text: &str) -> Result<Vec<Event>, LobsterError> {
    let mut events = Vec::new();
    for (line, row) in lines(text) {
        let fields = Fields::split(CsvFile::Message, line, row, Some(MESSAGE_COLUMNS))?;
        events.push(parse_event(&fields)?);
    }
    if events.is_empty() {
        return Err(LobsterError::Empty { file: CsvFile::Message });
    }
    Ok(events)
}

fn parse_event(f: &Fields<'_>) -> Result<Event, LobsterError> {
    const POSITIVE_ID: &str = "expected an order id from 1 to 9223372036854775807";
    const ORDER_SHARES: &str = "expected shares from 1 to 4294967295";
    const ORDER_PRICE: &str = "expected a price from 1 to 4294967295 (dollars x 10000)";
    const TRADE_SHARES: &str = "expected shares from 0 to 4294967295";
    const TRADE_PRICE: &str = "expected a price from 0 to 4294967295 (dollars x 10000)";

    let time_ns = f.time_ns(1)?;
    let event_type = f.int(2, "type")?;
    let kind = match event_type {
        1..=4 => {
            let order_ref = f.int_in(3, "order id", 1, POSITIVE_ID)?;
            let shares = f.int_in(4, "size", 1, ORDER_SHARES)?;
            let price = f.int_in(5, "price", 1, ORDER_PRICE)?;
            let side = f.side(6)?;
            let action = match event_type {
                1 => None,
                2 => Some(RemoveAction::Cancel),
                3 => Some(RemoveAction::Delete),
                _ => Some(RemoveAction::Execute),
            };
            match action {
                None => EventKind::Add { order_ref, side, shares, price },
                Some(action) => EventKind::Remove { action, order_ref, side, shares, price },
            }
        }
        5 => EventKind::HiddenExecution {
            side: f.side(6)?,
            shares: f.int_in(4, "size", 0, TRADE_SHARES)?,
            price: f.int_in(5, "price", 0, TRADE_PRICE)?,
        },
        6 => {
            let cross_type = match f.int(3, "order id")? {
                -1 => b'O',
                -2 => b'C',
                -3 => b'H',
                -4 => b'I',
                _ => return Err(f.invalid(3, "order id", "a cross (type 6) needs -1 opening, -2 closing, -3 IPO or halt, or -4 intraday")),
            };
            EventKind::Cross {
                cross_type,
                shares: f.int_in(4, "size", 0, "expected shares from 0 to 9223372036854775807")?,
                price: f.int_in(5, "price", 0, TRADE_PRICE)?,
            }
        }
        7 => {
            let state = match f.int(5, "price")? {
                -1 => b'H',
                0 => b'Q',
                1 => b'T',
                _ => return Err(f.invalid(5, "price", "a halt indicator (type 7) needs -1 halted, 0 quoting or 1 trading")),
            };
            EventKind::Halt { state }
        }
        _ => return Err(f.invalid(2, "type", "expected an event type from 1 to 7")),
    };
    Ok(Event { line: f.line, time_ns, kind })
}

/// The non-empty levels of one orderbook row, best first.
#[derive(Debug, Default)]
struct BookRow {
    /// Levels per side, including empty ones: the L of an L-level file.
    depth: usize,
    asks: Vec<(u32, u32)>,
    bids: Vec<(u32, u32)>,
}

impl BookRow {
    fn side(&self, side: Side) -> &[(u32, u32)] {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    /// Returns whether `price` is within the prices this row shows on `side`: every price if
    /// the side has fewer than `depth` levels, otherwise prices up to the worst level.
    fn is_visible(&self, side: Side, price: u32) -> bool {
        let levels = self.side(side);
        match levels.last() {
            Some(&(worst, _)) if levels.len() >= self.depth => match side {
                Side::Buy => price >= worst,
                Side::Sell => price <= worst,
            },
            _ => true,
        }
    }
}

/// Checks every row of the orderbook file and returns row 1.
fn parse_orderbook_file(text: &str, message_rows: usize) -> Result<BookRow, LobsterError> {
    let mut row1 = None;
    let mut rows = 0;
    let mut columns = None;
    for (line, row) in lines(text) {
        let fields = Fields::split(CsvFile::Orderbook, line, row, columns)?;
        let found = fields.fields.len();
        if columns.is_none() && found % 4 != 0 {
            return Err(LobsterError::LevelColumns { line, found });
        }
        columns = Some(found);
        let parsed = parse_book_row(&fields)?;
        if row1.is_none() {
            row1 = Some(parsed);
        }
        rows += 1;
    }
    let Some(row1) = row1 else {
        return Err(LobsterError::Empty { file: CsvFile::Orderbook });
    };
    if rows != message_rows {
        return Err(LobsterError::RowCountMismatch { message_rows, orderbook_rows: rows });
    }
    Ok(row1)
}

fn parse_book_row(f: &Fields<'_>) -> Result<BookRow, LobsterError> {
    let depth = f.fields.len() / 4;
    let mut row = BookRow { depth, ..BookRow::default() };
    for level in 0..depth {
        let column = level * 4 + 1;
        parse_level(f, column, Side::Sell, &mut row.asks)?;
        parse_level(f, column + 2, Side::Buy, &mut row.bids)?;
    }
    Ok(row)
}

/// Parses the price at `column` and the size after it, and appends the level to `levels` unless
/// it is empty.
fn parse_level(f: &Fields<'_>, column: usize, side: Side, levels: &mut Vec<(u32, u32)>) -> Result<(), LobsterError> {
    let (field, empty_price) = match side {
        Side::Sell => ("ask price", EMPTY_ASK_PRICE),
        Side::Buy => ("bid price", EMPTY_BID_PRICE),
    };
    let price = f.int(column, field)?;
    let size_field = match side {
        Side::Sell => "ask size",
        Side::Buy => "bid size",
    };
    let size: u32 = f.int_in(column + 1, size_field, 0, "expected shares from 0 to 4294967295")?;
    if price == empty_price {
        if size != 0 {
            return Err(f.invalid(column + 1, size_field, "an empty level must have size 0"));
        }
        return Ok(());
    }
    let price: u32 = f.int_in(column, field, 1, "expected a price from 1 to 4294967295 (dollars x 10000) or the empty-level value")?;
    if size == 0 {
        return Err(f.invalid(column + 1, size_field, "a level with a price must have shares"));
    }
    if let Some(&(previous, _)) = levels.last() {
        let worse = match side {
            Side::Sell => price > previous,
            Side::Buy => price < previous,
        };
        if !worse {
            return Err(f.invalid(column, field, "levels must be best first with distinct prices"));
        }
    }
    levels.push((price, size));
    Ok(())
}

/// An add order of the seed.
#[derive(Debug)]
struct SeedOrder {
    order_ref: u64,
    side: Side,
    shares: u32,
    price: u32,
}

struct Seed {
    orders: Vec<SeedOrder>,
    warnings: Vec<SeedWarning>,
}

/// An order that events 2..N reference before adding it.
struct PreWindowOrder {
    /// Line of the first event that references the order.
    line: usize,
    order_ref: u64,
    side: Side,
    price: u32,
    /// Shares that events 2..N remove from the order.
    shares: u64,
}

fn find_pre_window_orders(window: &[Event]) -> Vec<PreWindowOrder> {
    let mut added = HashSet::new();
    let mut index: HashMap<u64, usize> = HashMap::new();
    let mut orders: Vec<PreWindowOrder> = Vec::new();
    for event in window {
        match event.kind {
            EventKind::Add { order_ref, .. } => {
                added.insert(order_ref);
            }
            EventKind::Remove { order_ref, side, shares, price, .. } if !added.contains(&order_ref) => {
                let slot = *index.entry(order_ref).or_insert_with(|| {
                    orders.push(PreWindowOrder { line: event.line, order_ref, side, price, shares: 0 });
                    orders.len() - 1
                });
                if let Some(order) = orders.get_mut(slot) {
                    order.shares += u64::from(shares);
                }
            }
            _ => {}
        }
    }
    orders
}

/// Builds the add orders that reproduce `row1`, given the events after it. Fresh order
/// references count up from `max_order_ref`, the largest order id of the message file.
fn build_seed(window: &[Event], row1: &BookRow, max_order_ref: u64) -> Result<Seed, LobsterError> {
    let pre_window = find_pre_window_orders(window);
    let mut by_level: HashMap<(Side, u32), Vec<&PreWindowOrder>> = HashMap::new();
    for order in &pre_window {
        by_level.entry((order.side, order.price)).or_default().push(order);
    }

    let mut next_fresh_ref = max_order_ref;
    let mut orders = Vec::new();
    let mut warnings = Vec::new();
    for side in [Side::Sell, Side::Buy] {
        for &(price, level_shares) in row1.side(side) {
            let at_level = by_level.remove(&(side, price)).unwrap_or_default();
            let seeded_shares: u64 = at_level.iter().map(|order| order.shares).sum();
            if seeded_shares > u64::from(level_shares) {
                warnings.push(SeedWarning::LevelExceeded { side, price, level_shares, seeded_shares });
            }
            // The rest is at most `level_shares`, so it fits in u32.
            let rest = u32::try_from(u64::from(level_shares).saturating_sub(seeded_shares)).unwrap_or(0);
            if rest > 0 {
                next_fresh_ref = next_fresh_ref
                    .checked_add(1)
                    .ok_or(LobsterError::OrderRefsExhausted { max_order_ref })?;
                orders.push(SeedOrder { order_ref: next_fresh_ref, side, shares: rest, price });
            }
            for order in at_level {
                orders.push(seed_order(order)?);
            }
        }
    }

    // What is left lies at prices that row 1 does not list, and is seeded in the order of the
    // events that first reference it.
    for order in pre_window.iter().filter(|order| by_level.contains_key(&(order.side, order.price))) {
        let (line, order_ref, side, price, shares) = (order.line, order.order_ref, order.side, order.price, order.shares);
        warnings.push(if row1.is_visible(side, price) {
            SeedWarning::MissingLevel { line, order_ref, side, price, shares }
        } else {
            SeedWarning::OutsideVisibleLevels { line, order_ref, side, price, shares }
        });
        orders.push(seed_order(order)?);
    }
    Ok(Seed { orders, warnings })
}

fn seed_order(order: &PreWindowOrder) -> Result<SeedOrder, LobsterError> {
    let shares = u32::try_from(order.shares).map_err(|_| LobsterError::SeedTooLarge {
        line: order.line,
        order_ref: order.order_ref,
        shares: order.shares,
    })?;
    Ok(SeedOrder { order_ref: order.order_ref, side: order.side, shares, price: order.price })
}

fn stock_directory(header: Header, stock: Stock) -> Message {
    // LOBSTER carries no reference data, so every field except the symbol is "not available"
    // where ITCH defines such a value, and the usual US equity value otherwise.
    Message::StockDirectory(StockDirectory {
        header,
        stock,
        market_category: b' ',
        financial_status_indicator: b' ',
        round_lot_size: 100,
        round_lots_only: b'N',
        issue_classification: b' ',
        issue_sub_type: *b"  ",
        authenticity: b'P',
        short_sale_threshold_indicator: b' ',
        ipo_flag: b' ',
        luld_reference_price_tier: b' ',
        etp_flag: b' ',
        etp_leverage_factor: 0,
        inverse_indicator: b'N',
    })
}

fn trading_action(header: Header, stock: Stock, trading_state: u8) -> Message {
    Message::StockTradingAction(StockTradingAction {
        header,
        stock,
        trading_state,
        reserved: b' ',
        reason: *b"    ",
    })
}

/// Output buffer and the state shared by the messages written to it.
struct Writer {
    out: Vec<u8>,
    stock: Stock,
    locate: u16,
    next_match_number: u64,
}

impl Writer {
    fn push(&mut self, message: &Message) {
        binaryfile::write_message(&mut self.out, message);
    }

    fn match_number(&mut self) -> u64 {
        let number = self.next_match_number;
        self.next_match_number += 1;
        number
    }

    fn event_message(&mut self, event: &Event) -> Message {
        let header = Header { stock_locate: self.locate, tracking_number: 0, timestamp: event.time_ns };
        let stock = self.stock;
        match event.kind {
            EventKind::Add { order_ref, side, shares, price } => {
                Message::AddOrder(AddOrder { header, order_ref, side, shares, stock, price, attribution: None })
            }
            EventKind::Remove { action: RemoveAction::Cancel, order_ref, shares, .. } => {
                Message::OrderCancel(OrderCancel { header, order_ref, cancelled_shares: shares })
            }
            EventKind::Remove { action: RemoveAction::Delete, order_ref, .. } => {
                Message::OrderDelete(OrderDelete { header, order_ref })
            }
            EventKind::Remove { action: RemoveAction::Execute, order_ref, shares, .. } => {
                Message::OrderExecuted(OrderExecuted {
                    header,
                    order_ref,
                    executed_shares: shares,
                    match_number: self.match_number(),
                })
            }
            EventKind::HiddenExecution { side, shares, price } => Message::Trade(Trade {
                header,
                order_ref: 0,
                side,
                shares,
                stock,
                price,
                match_number: self.match_number(),
            }),
            EventKind::Cross { cross_type, shares, price } => Message::CrossTrade(CrossTrade {
                header,
                shares,
                stock,
                cross_price: price,
                match_number: self.match_number(),
                cross_type,
            }),
            EventKind::Halt { state } => trading_action(header, stock, state),
        }
    }
}

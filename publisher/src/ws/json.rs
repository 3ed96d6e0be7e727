//! The JSON messages of the WebSocket and SSE interface. `docs/protocol.md`, section "WebSocket
//! and SSE", lists every field. Prices are integers in 1/10000 dollars, as on the TCP protocol, so
//! that no client has to round a float.

use axum::extract::ws::Utf8Bytes;
use mdfh_feed::itch::Side;
use mdfh_matcher::{BookStatus, FeedQuality, QualityState, TradeEvent, TradeKind};
use serde::{Deserialize, Serialize};

use crate::mirror::Book;
use crate::protocol::Level;

/// A client request, tagged by `op`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Subscribe {
        symbol: String,
        /// Levels per side: absent means the server's default depth, 0 means the full book.
        #[serde(default)]
        depth: Option<u16>,
        /// Updates per second: absent or 0 means the server's `max_rate_per_client`.
        #[serde(default)]
        max_rate: Option<u32>,
    },
    Unsubscribe {
        symbol: String,
    },
}

/// Returns the JSON name of a book side.
pub fn side_name(side: Side) -> &'static str {
    match side {
        Side::Buy => "bid",
        Side::Sell => "ask",
    }
}

fn status_name(status: BookStatus) -> &'static str {
    match status {
        BookStatus::Ok => "ok",
        BookStatus::Stale => "stale",
    }
}

fn trading_state_name(state: u8) -> String {
    if state.is_ascii_alphabetic() {
        char::from(state).to_string()
    } else {
        String::new()
    }
}

fn to_text<T: Serialize>(message: &T) -> Utf8Bytes {
    // Serializing these plain structs into a String cannot fail: every key is a string and no
    // value is a map with non-string keys.
    Utf8Bytes::from(serde_json::to_string(message).unwrap_or_default())
}

/// `[price, shares, orders]`.
type LevelTriple = (u32, u64, u32);

fn triple(level: Level) -> LevelTriple {
    (level.price, level.shares, level.orders)
}

#[derive(Serialize)]
struct Snapshot<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    symbol: &'a str,
    locate: u16,
    feed_seq: u64,
    status: &'static str,
    trading_state: String,
    depth: u16,
    conflated: bool,
    bids: Vec<LevelTriple>,
    asks: Vec<LevelTriple>,
}

/// Encodes the top `depth` levels per side of `book` (every level when `depth` is 0).
pub fn snapshot(
    symbol: &str,
    locate: u16,
    book: &Book,
    status: BookStatus,
    depth: u16,
    feed_seq: u64,
    conflated: bool,
) -> Utf8Bytes {
    let take = if depth == 0 { usize::MAX } else { usize::from(depth) };
    to_text(&Snapshot {
        kind: "snapshot",
        symbol,
        locate,
        feed_seq,
        status: status_name(status),
        trading_state: trading_state_name(book.trading_state),
        depth,
        conflated,
        bids: book.levels(Side::Buy).take(take).map(triple).collect(),
        asks: book.levels(Side::Sell).take(take).map(triple).collect(),
    })
}

#[derive(Serialize)]
struct LevelMessage<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    symbol: &'a str,
    side: &'static str,
    price: u32,
    shares: u64,
    orders: u32,
    feed_seq: u64,
}

/// Encodes the new state of one level; `shares == 0` means the level was removed.
pub fn level(symbol: &str, side: Side, level: Level, feed_seq: u64) -> Utf8Bytes {
    to_text(&LevelMessage {
        kind: "level",
        symbol,
        side: side_name(side),
        price: level.price,
        shares: level.shares,
        orders: level.orders,
        feed_seq,
    })
}

#[derive(Serialize)]
struct Bbo<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    symbol: &'a str,
    /// `[price, shares]`, or null for an empty side.
    bid: Option<(u32, u64)>,
    ask: Option<(u32, u64)>,
    feed_seq: u64,
}

/// Encodes the best bid and ask of `book`.
pub fn bbo(symbol: &str, book: &Book, feed_seq: u64) -> Utf8Bytes {
    let top = |side| book.level_at_rank(side, 0).map(|l| (l.price, l.shares));
    to_text(&Bbo { kind: "bbo", symbol, bid: top(Side::Buy), ask: top(Side::Sell), feed_seq })
}

#[derive(Serialize)]
struct Trade<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    symbol: &'a str,
    price: u32,
    shares: u64,
    match_number: u64,
    /// Side of the resting order that executed; null for crosses.
    resting_side: Option<&'static str>,
    trade_kind: &'static str,
    feed_seq: u64,
}

/// Encodes one trade print.
pub fn trade(symbol: &str, trade: &TradeEvent, feed_seq: u64) -> Utf8Bytes {
    let trade_kind = match trade.kind {
        TradeKind::Execution => "execution",
        TradeKind::NonDisplayed => "non_displayed",
        TradeKind::Cross => "cross",
    };
    to_text(&Trade {
        kind: "trade",
        symbol,
        price: trade.price,
        shares: trade.shares,
        match_number: trade.match_number,
        resting_side: trade.resting_side.map(side_name),
        trade_kind,
        feed_seq,
    })
}

#[derive(Serialize)]
struct Status<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    symbol: &'a str,
    status: &'static str,
    trading_state: String,
    /// Why the book is stale: "feed" (the pipeline marked it) or "bridge_overflow" (this bridge
    /// lost events); null when the status is ok.
    reason: Option<&'static str>,
    feed_seq: u64,
}

/// Encodes a book status change.
pub fn status(
    symbol: &str,
    book: &Book,
    status: BookStatus,
    reason: Option<&'static str>,
    feed_seq: u64,
) -> Utf8Bytes {
    to_text(&Status {
        kind: "status",
        symbol,
        status: status_name(status),
        trading_state: trading_state_name(book.trading_state),
        reason,
        feed_seq,
    })
}

/// Returns the JSON name of a feed quality state.
pub fn quality_state_name(state: QualityState) -> &'static str {
    match state {
        QualityState::Ok => "ok",
        QualityState::Recovering => "recovering",
        QualityState::Recovered => "recovered",
        QualityState::Stale => "stale",
    }
}

#[derive(Serialize)]
struct Quality {
    #[serde(rename = "type")]
    kind: &'static str,
    state: &'static str,
    /// First missing feed sequence number while recovering or stale; 0 otherwise.
    since: u64,
    feed_seq: u64,
}

/// Encodes the feed-wide quality, which applies to every book.
pub fn quality(quality: FeedQuality, feed_seq: u64) -> Utf8Bytes {
    to_text(&Quality { kind: "quality", state: quality_state_name(quality.state), since: quality.since, feed_seq })
}

#[derive(Serialize)]
struct Directory<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    symbols: &'a [String],
}

/// Encodes the list of instruments a client can subscribe to.
pub fn directory(symbols: &[String]) -> Utf8Bytes {
    to_text(&Directory { kind: "directory", symbols })
}

#[derive(Serialize)]
struct Simple<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    symbol: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    feed_seq: Option<u64>,
}

/// Encodes an `error` message about a request.
pub fn error(symbol: Option<&str>, message: &str) -> Utf8Bytes {
    to_text(&Simple { kind: "error", symbol, message: Some(message), feed_seq: None })
}

/// Encodes the confirmation of an unsubscribe.
pub fn unsubscribed(symbol: &str) -> Utf8Bytes {
    to_text(&Simple { kind: "unsubscribed", symbol: Some(symbol), message: None, feed_seq: None })
}

/// Encodes a `reset`: every book was cleared because a new feed session started.
pub fn reset(feed_seq: u64) -> Utf8Bytes {
    to_text(&Simple { kind: "reset", symbol: None, message: None, feed_seq: Some(feed_seq) })
}

/// Wraps the pipeline's stats JSON document as `{"type":"stats","stats":DOCUMENT}`. Returns `None`
/// when the document is not valid JSON.
pub fn stats(document: &str) -> Option<Utf8Bytes> {
    let value: serde_json::Value = serde_json::from_str(document).ok()?;
    Some(to_text(&serde_json::json!({ "type": "stats", "stats": value })))
}

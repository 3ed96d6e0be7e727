//! Encoders: each appends one frame to a caller's buffer and allocates nothing once the buffer
//! has the capacity. Encoders do not validate their input (a test can encode a bad symbol); the
//! decoder does.

use mdfh_feed::itch::{Side, Stock};
use mdfh_matcher::{BookStatus, TradeKind};

use crate::protocol::{
    frame_type, quality_state_byte, AckState, Catchup, CatchupPhase, DigestUpdate, ErrorCode, Frame,
    SlowConsumerPolicy, GoodbyeReason, Level, LevelUpdate, SnapshotHeader,
    QualityUpdate, StatusUpdate, SubscribeAck, Target, TradeUpdate, TradingStateUpdate, LENGTH_PREFIX_LEN,
    MAX_SNAPSHOT_LEVELS, MAX_TEXT_LEN,
};

/// Bit 0 of the flags byte of Subscribe, Unsubscribe, SubscribeAck and SubscribeReject: the
/// request is about every instrument, and the symbol field is 8 spaces.
pub(crate) const FLAG_ALL: u8 = 0x01;
/// Symbol field of a request about every instrument.
pub(crate) const ALL_SYMBOL: [u8; 8] = [b' '; 8];

/// Appends a Subscribe request.
pub fn encode_subscribe(buf: &mut Vec<u8>, target: Target, depth: u16) {
    let start = begin(buf, frame_type::SUBSCRIBE);
    put_target(buf, target);
    buf.extend_from_slice(&depth.to_le_bytes());
    finish(buf, start);
}

/// Appends an Unsubscribe request.
pub fn encode_unsubscribe(buf: &mut Vec<u8>, target: Target) {
    let start = begin(buf, frame_type::UNSUBSCRIBE);
    put_target(buf, target);
    finish(buf, start);
}

/// Appends a client Heartbeat.
pub fn encode_client_heartbeat(buf: &mut Vec<u8>) {
    let start = begin(buf, frame_type::CLIENT_HEARTBEAT);
    finish(buf, start);
}

/// Appends a SetPolicy request.
pub fn encode_set_policy(buf: &mut Vec<u8>, policy: SlowConsumerPolicy) {
    let start = begin(buf, frame_type::SET_POLICY);
    buf.push(policy.as_byte());
    finish(buf, start);
}

/// Appends a Resnapshot request.
pub fn encode_resnapshot(buf: &mut Vec<u8>, target: Target) {
    let start = begin(buf, frame_type::RESNAPSHOT);
    put_target(buf, target);
    finish(buf, start);
}

/// Appends a DigestRequest.
pub fn encode_digest_request(buf: &mut Vec<u8>, stock: Stock, depth: u16) {
    let start = begin(buf, frame_type::DIGEST_REQUEST);
    put_target(buf, Target::Symbol(stock));
    buf.extend_from_slice(&depth.to_le_bytes());
    finish(buf, start);
}

/// Appends a Digest.
pub fn encode_digest(buf: &mut Vec<u8>, digest: &DigestUpdate) {
    let start = begin(buf, frame_type::DIGEST);
    buf.extend_from_slice(&digest.seq.to_le_bytes());
    buf.extend_from_slice(&digest.locate.to_le_bytes());
    buf.extend_from_slice(&digest.depth.to_le_bytes());
    buf.extend_from_slice(&digest.feed_seq.to_le_bytes());
    buf.extend_from_slice(&digest.crc.to_le_bytes());
    finish(buf, start);
}

/// Appends a Catchup.
pub fn encode_catchup(buf: &mut Vec<u8>, catchup: &Catchup) {
    let start = begin(buf, frame_type::CATCHUP);
    buf.extend_from_slice(&catchup.seq.to_le_bytes());
    buf.push(match catchup.phase {
        CatchupPhase::Begin => b'B',
        CatchupPhase::End => b'E',
    });
    buf.extend_from_slice(&catchup.levels.to_le_bytes());
    buf.extend_from_slice(&catchup.conflated.to_le_bytes());
    buf.extend_from_slice(&catchup.dropped_trades.to_le_bytes());
    finish(buf, start);
}

/// Appends a SubscribeAck.
pub fn encode_subscribe_ack(buf: &mut Vec<u8>, ack: &SubscribeAck) {
    let start = begin(buf, frame_type::SUBSCRIBE_ACK);
    put_target(buf, ack.target);
    buf.extend_from_slice(&ack.depth.to_le_bytes());
    buf.extend_from_slice(&ack.locate.to_le_bytes());
    buf.push(ack_state_byte(ack.state));
    finish(buf, start);
}

/// Appends a SubscribeReject; `text` is cut to [`MAX_TEXT_LEN`] bytes.
pub fn encode_subscribe_reject(buf: &mut Vec<u8>, target: Target, code: ErrorCode, text: &str) {
    let start = begin(buf, frame_type::SUBSCRIBE_REJECT);
    put_target(buf, target);
    buf.extend_from_slice(&(code as u16).to_le_bytes());
    put_text(buf, text);
    finish(buf, start);
}

/// Appends an Error; `text` is cut to [`MAX_TEXT_LEN`] bytes.
pub fn encode_error(buf: &mut Vec<u8>, code: ErrorCode, text: &str) {
    let start = begin(buf, frame_type::ERROR);
    buf.extend_from_slice(&(code as u16).to_le_bytes());
    put_text(buf, text);
    finish(buf, start);
}

/// Appends a server Heartbeat.
pub fn encode_heartbeat(buf: &mut Vec<u8>, last_seq: u64, send_ns: u64) {
    let start = begin(buf, frame_type::HEARTBEAT);
    buf.extend_from_slice(&last_seq.to_le_bytes());
    buf.extend_from_slice(&send_ns.to_le_bytes());
    finish(buf, start);
}

/// Appends a Goodbye; `text` is cut to [`MAX_TEXT_LEN`] bytes.
pub fn encode_goodbye(buf: &mut Vec<u8>, reason: GoodbyeReason, last_seq: u64, text: &str) {
    let start = begin(buf, frame_type::GOODBYE);
    buf.extend_from_slice(&(reason as u16).to_le_bytes());
    buf.extend_from_slice(&last_seq.to_le_bytes());
    put_text(buf, text);
    finish(buf, start);
}

/// Appends a Snapshot. `bids` and `asks` are given best first; levels past
/// [`MAX_SNAPSHOT_LEVELS`] on a side are left out.
pub fn encode_snapshot(
    buf: &mut Vec<u8>,
    header: &SnapshotHeader,
    bids: impl IntoIterator<Item = Level>,
    asks: impl IntoIterator<Item = Level>,
) {
    let start = begin(buf, frame_type::SNAPSHOT);
    buf.extend_from_slice(&header.seq.to_le_bytes());
    buf.extend_from_slice(&header.locate.to_le_bytes());
    buf.extend_from_slice(&header.stock.0);
    buf.push(status_byte(header.status));
    buf.push(header.trading_state);
    buf.extend_from_slice(&header.feed_seq.to_le_bytes());
    buf.extend_from_slice(&header.depth.to_le_bytes());

    // The two counts are written after the levels, when they are known.
    let counts_at = buf.len();
    buf.extend_from_slice(&[0; 4]);
    let bid_count = put_levels(buf, bids);
    let ask_count = put_levels(buf, asks);
    buf[counts_at..counts_at + 2].copy_from_slice(&bid_count.to_le_bytes());
    buf[counts_at + 2..counts_at + 4].copy_from_slice(&ask_count.to_le_bytes());
    finish(buf, start);
}

/// Appends a LevelUpdate.
pub fn encode_level_update(buf: &mut Vec<u8>, update: &LevelUpdate) {
    let start = begin(buf, frame_type::LEVEL_UPDATE);
    buf.extend_from_slice(&update.seq.to_le_bytes());
    buf.extend_from_slice(&update.locate.to_le_bytes());
    buf.push(update.side.as_byte());
    put_level(buf, &update.level);
    buf.extend_from_slice(&update.feed_seq.to_le_bytes());
    buf.extend_from_slice(&update.send_ns.to_le_bytes());
    finish(buf, start);
}

/// Appends a Trade.
pub fn encode_trade(buf: &mut Vec<u8>, update: &TradeUpdate) {
    let start = begin(buf, frame_type::TRADE);
    buf.extend_from_slice(&update.seq.to_le_bytes());
    buf.extend_from_slice(&update.locate.to_le_bytes());
    buf.push(trade_kind_byte(update.trade.kind));
    buf.push(update.trade.resting_side.map_or(b' ', Side::as_byte));
    buf.extend_from_slice(&update.trade.price.to_le_bytes());
    buf.extend_from_slice(&update.trade.shares.to_le_bytes());
    buf.extend_from_slice(&update.trade.match_number.to_le_bytes());
    buf.extend_from_slice(&update.feed_seq.to_le_bytes());
    buf.extend_from_slice(&update.send_ns.to_le_bytes());
    finish(buf, start);
}

/// Appends a BookStatus.
pub fn encode_book_status(buf: &mut Vec<u8>, update: &StatusUpdate) {
    let start = begin(buf, frame_type::BOOK_STATUS);
    buf.extend_from_slice(&update.seq.to_le_bytes());
    buf.extend_from_slice(&update.locate.to_le_bytes());
    buf.push(status_byte(update.status));
    buf.extend_from_slice(&update.feed_seq.to_le_bytes());
    finish(buf, start);
}

/// Appends a TradingState.
pub fn encode_trading_state(buf: &mut Vec<u8>, update: &TradingStateUpdate) {
    let start = begin(buf, frame_type::TRADING_STATE);
    buf.extend_from_slice(&update.seq.to_le_bytes());
    buf.extend_from_slice(&update.locate.to_le_bytes());
    buf.push(update.state);
    buf.extend_from_slice(&update.feed_seq.to_le_bytes());
    finish(buf, start);
}

/// Appends a Reset.
pub fn encode_reset(buf: &mut Vec<u8>, seq: u64, feed_seq: u64) {
    let start = begin(buf, frame_type::RESET);
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&feed_seq.to_le_bytes());
    finish(buf, start);
}

/// Appends a FeedQuality.
pub fn encode_feed_quality(buf: &mut Vec<u8>, update: &QualityUpdate) {
    let start = begin(buf, frame_type::FEED_QUALITY);
    buf.extend_from_slice(&update.seq.to_le_bytes());
    buf.extend_from_slice(&update.feed_seq.to_le_bytes());
    buf.push(quality_state_byte(update.quality.state));
    buf.extend_from_slice(&update.quality.since.to_le_bytes());
    finish(buf, start);
}

impl Frame<'_> {
    /// Appends the frame in its wire form.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        match *self {
            Frame::Subscribe { target, depth } => encode_subscribe(buf, target, depth),
            Frame::Unsubscribe { target } => encode_unsubscribe(buf, target),
            Frame::ClientHeartbeat => encode_client_heartbeat(buf),
            Frame::SetPolicy { policy } => encode_set_policy(buf, policy),
            Frame::Resnapshot { target } => encode_resnapshot(buf, target),
            Frame::DigestRequest { stock, depth } => encode_digest_request(buf, stock, depth),
            Frame::SubscribeAck(ack) => encode_subscribe_ack(buf, &ack),
            Frame::SubscribeReject { target, code, text } => {
                encode_subscribe_reject(buf, target, code, text)
            }
            Frame::Error { code, text } => encode_error(buf, code, text),
            Frame::Heartbeat { last_seq, send_ns } => encode_heartbeat(buf, last_seq, send_ns),
            Frame::Goodbye { reason, last_seq, text } => encode_goodbye(buf, reason, last_seq, text),
            Frame::Snapshot(s) => encode_snapshot(buf, &s.header, s.bids.iter(), s.asks.iter()),
            Frame::LevelUpdate(u) => encode_level_update(buf, &u),
            Frame::Trade(t) => encode_trade(buf, &t),
            Frame::BookStatus(s) => encode_book_status(buf, &s),
            Frame::TradingState(s) => encode_trading_state(buf, &s),
            Frame::Reset { seq, feed_seq } => encode_reset(buf, seq, feed_seq),
            Frame::Digest(d) => encode_digest(buf, &d),
            Frame::Catchup(c) => encode_catchup(buf, &c),
            Frame::FeedQuality(q) => encode_feed_quality(buf, &q),
        }
    }
}

/// Wire byte of a book status: `O` ok, `S` stale.
pub(crate) fn status_byte(status: BookStatus) -> u8 {
    match status {
        BookStatus::Ok => b'O',
        BookStatus::Stale => b'S',
    }
}

/// Wire byte of a trade kind: `E` execution, `N` non-displayed, `X` cross.
pub(crate) fn trade_kind_byte(kind: TradeKind) -> u8 {
    match kind {
        TradeKind::Execution => b'E',
        TradeKind::NonDisplayed => b'N',
        TradeKind::Cross => b'X',
    }
}

/// Wire byte of an ack state: `A` active, `P` pending.
pub(crate) fn ack_state_byte(state: AckState) -> u8 {
    match state {
        AckState::Active => b'A',
        AckState::Pending => b'P',
    }
}

/// Writes the length placeholder and the type byte; returns where the frame starts.
fn begin(buf: &mut Vec<u8>, frame_type: u8) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0; LENGTH_PREFIX_LEN]);
    buf.push(frame_type);
    start
}

/// Writes the length field of the frame that starts at `start`, counting everything after it.
fn finish(buf: &mut [u8], start: usize) {
    let len = (buf.len() - start - LENGTH_PREFIX_LEN) as u32;
    buf[start..start + LENGTH_PREFIX_LEN].copy_from_slice(&len.to_le_bytes());
}

fn put_target(buf: &mut Vec<u8>, target: Target) {
    match target {
        Target::All => {
            buf.push(FLAG_ALL);
            buf.extend_from_slice(&ALL_SYMBOL);
        }
        Target::Symbol(stock) => {
            buf.push(0);
            buf.extend_from_slice(&stock.0);
        }
    }
}

fn put_level(buf: &mut Vec<u8>, level: &Level) {
    buf.extend_from_slice(&level.price.to_le_bytes());
    buf.extend_from_slice(&level.shares.to_le_bytes());
    buf.extend_from_slice(&level.orders.to_le_bytes());
}

/// Writes at most [`MAX_SNAPSHOT_LEVELS`] levels; returns how many it wrote.
fn put_levels(buf: &mut Vec<u8>, levels: impl IntoIterator<Item = Level>) -> u16 {
    let mut count: u16 = 0;
    for level in levels.into_iter().take(MAX_SNAPSHOT_LEVELS) {
        put_level(buf, &level);
        count += 1;
    }
    count
}

fn put_text(buf: &mut Vec<u8>, text: &str) {
    buf.extend_from_slice(truncate_text(text).as_bytes());
}

/// Cuts `text` to at most [`MAX_TEXT_LEN`] bytes at a character boundary.
pub(crate) fn truncate_text(text: &str) -> &str {
    if text.len() <= MAX_TEXT_LEN {
        return text;
    }
    let mut end = MAX_TEXT_LEN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or("")
}


//! Frames of the subscriber protocol: type codes, field values and the decoded frame types.
//!
//! Every frame is `u32 length (little-endian) | u8 type | body`, where `length` counts the type
//! byte and the body. Bodies have a fixed layout except for a trailing text field (Error,
//! SubscribeReject, Goodbye) and the level array of a Snapshot. Integers are little-endian, prices
//! are u32 in 1/10000 dollars, shares are u64 and timestamps are u64 nanoseconds. Client requests
//! use lower-case type letters and server frames upper-case ones. `docs/protocol.md` gives every
//! byte offset, the session flow and the sequencing rules.
//!
//! Encoding is in [`crate::encode`], decoding in [`crate::decode`].

use mdfh_feed::itch::{Side, Stock};
use mdfh_matcher::{BookStatus, FeedQuality, QualityState, TradeEvent};

/// Bytes of the length prefix.
pub const LENGTH_PREFIX_LEN: usize = 4;
/// Bytes before the body: the length prefix and the type byte.
pub const FRAME_HEADER_LEN: usize = 5;
/// Largest length field the server accepts in a client request; a larger one closes the
/// connection because the stream cannot be resynchronized.
pub const MAX_REQUEST_LEN: u32 = 1024;
/// Largest number of levels a Snapshot carries per side (the counts are u16).
pub const MAX_SNAPSHOT_LEVELS: usize = u16::MAX as usize;
/// Bytes of one level in a Snapshot: price u32, shares u64, orders u32.
pub const LEVEL_LEN: usize = 16;
/// Length field of a Snapshot without levels.
pub const SNAPSHOT_FIXED_LEN: u32 = 35;
/// Largest length field of any frame: a Snapshot with the maximum number of levels on both sides.
pub const MAX_FRAME_LEN: u32 = SNAPSHOT_FIXED_LEN + (2 * MAX_SNAPSHOT_LEVELS * LEVEL_LEN) as u32;
/// Largest text field (Error, SubscribeReject, Goodbye) in bytes of UTF-8. Encoders cut longer
/// text at a character boundary, and the decoder rejects longer text.
pub const MAX_TEXT_LEN: usize = 255;
/// Byte range of the sequence number in every data frame, counted from the frame start.
pub const SEQ_RANGE: std::ops::Range<usize> = 5..13;
/// Trading state of an instrument whose trading action message has not been received.
pub const TRADING_STATE_UNKNOWN: u8 = b' ';

/// Type bytes, one per frame kind.
pub mod frame_type {
    /// Client request: subscribe to one instrument or to all.
    pub const SUBSCRIBE: u8 = b's';
    /// Client request: end one subscription or all of them.
    pub const UNSUBSCRIBE: u8 = b'u';
    /// Client keep-alive; the server reads it and sends nothing back.
    pub const CLIENT_HEARTBEAT: u8 = b'h';
    /// Client request: choose the connection's slow-consumer policy before subscribing.
    pub const SET_POLICY: u8 = b'p';
    /// Client request: send a fresh Snapshot of one subscribed instrument or of all of them.
    pub const RESNAPSHOT: u8 = b'r';
    /// Client request: send a Digest of one subscribed instrument.
    pub const DIGEST_REQUEST: u8 = b'd';
    /// Server: a subscription was accepted (active or pending).
    pub const SUBSCRIBE_ACK: u8 = b'A';
    /// Server: a subscription was rejected.
    pub const SUBSCRIBE_REJECT: u8 = b'J';
    /// Server: a request was malformed or could not be carried out.
    pub const ERROR: u8 = b'E';
    /// Server keep-alive after an idle interval.
    pub const HEARTBEAT: u8 = b'H';
    /// Server: the last frame before the server closes the connection.
    pub const GOODBYE: u8 = b'G';
    /// Data: the top levels of one instrument.
    pub const SNAPSHOT: u8 = b'S';
    /// Data: one price level changed.
    pub const LEVEL_UPDATE: u8 = b'L';
    /// Data: one trade print.
    pub const TRADE: u8 = b'T';
    /// Data: the book of one instrument became ok or stale.
    pub const BOOK_STATUS: u8 = b'B';
    /// Data: the trading state of one instrument changed.
    pub const TRADING_STATE: u8 = b'V';
    /// Data: every book was cleared because a new feed session started.
    pub const RESET: u8 = b'R';
    /// Data: CRC-32 of the top levels of one instrument, to check a client's copy.
    pub const DIGEST: u8 = b'D';
    /// Data: start or end of a conflated catch-up batch.
    pub const CATCHUP: u8 = b'C';
    /// Data: the feed-wide quality changed; it applies to every book.
    pub const FEED_QUALITY: u8 = b'Q';
}

/// Returns whether frames of type `frame_type` are data frames, which carry a sequence number at
/// [`SEQ_RANGE`].
pub fn is_data_frame(frame_type: u8) -> bool {
    matches!(
        frame_type,
        frame_type::SNAPSHOT
            | frame_type::LEVEL_UPDATE
            | frame_type::TRADE
            | frame_type::BOOK_STATUS
            | frame_type::TRADING_STATE
            | frame_type::RESET
            | frame_type::DIGEST
            | frame_type::CATCHUP
            | frame_type::FEED_QUALITY
    )
}

/// What the server does with a connection whose outbound queue falls behind (wire byte in
/// SetPolicy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SlowConsumerPolicy {
    /// Close the connection with a Goodbye `SlowConsumer` when a frame does not fit (`'D'`).
    #[default]
    Disconnect,
    /// Stop sending level updates and trades, then send the latest state of every changed level
    /// in one catch-up batch (`'C'`).
    Conflate,
    /// Drop the queued frames, then send a fresh Snapshot of every subscription (`'R'`).
    Resnapshot,
}

impl SlowConsumerPolicy {
    /// Every policy, in wire-byte order.
    pub const ALL: [SlowConsumerPolicy; 3] =
        [SlowConsumerPolicy::Conflate, SlowConsumerPolicy::Disconnect, SlowConsumerPolicy::Resnapshot];

    /// Returns the wire byte.
    pub fn as_byte(self) -> u8 {
        match self {
            SlowConsumerPolicy::Disconnect => b'D',
            SlowConsumerPolicy::Conflate => b'C',
            SlowConsumerPolicy::Resnapshot => b'R',
        }
    }

    /// Returns the policy of a wire byte, or `None` for an unknown one.
    pub fn from_byte(byte: u8) -> Option<SlowConsumerPolicy> {
        match byte {
            b'D' => Some(SlowConsumerPolicy::Disconnect),
            b'C' => Some(SlowConsumerPolicy::Conflate),
            b'R' => Some(SlowConsumerPolicy::Resnapshot),
            _ => None,
        }
    }
}

/// Error code of a failed request, in Error and SubscribeReject frames (u16 on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// The type byte is not a known frame type.
    UnknownType = 1,
    /// The length field does not match the frame type, or is 0.
    BadLength = 2,
    /// A field has a value outside its domain (flags, symbol bytes).
    InvalidField = 3,
    /// A server-to-client frame type arrived from a client.
    UnexpectedType = 4,
    /// The requested depth is above the server's maximum (or 0 when the server has a maximum).
    DepthTooLarge = 10,
    /// The connection already has this subscription, or mixes a symbol with "all".
    AlreadySubscribed = 11,
    /// The connection already has the maximum number of symbol subscriptions.
    TooManySubscriptions = 12,
    /// An Unsubscribe named a subscription the connection does not have.
    NotSubscribed = 13,
    /// The server's configuration does not allow the requested slow-consumer policy.
    PolicyNotAllowed = 14,
    /// A SetPolicy arrived while the connection has subscriptions.
    SubscriptionsActive = 15,
    /// A Resnapshot or DigestRequest named an instrument without an active subscription.
    UnknownInstrument = 16,
    /// A DigestRequest arrived while the connection is behind, so its book is known to differ.
    CatchingUp = 17,
}

impl ErrorCode {
    /// Returns the code for a wire value, or `None` for an unknown one.
    pub fn from_u16(value: u16) -> Option<ErrorCode> {
        Some(match value {
            1 => ErrorCode::UnknownType,
            2 => ErrorCode::BadLength,
            3 => ErrorCode::InvalidField,
            4 => ErrorCode::UnexpectedType,
            10 => ErrorCode::DepthTooLarge,
            11 => ErrorCode::AlreadySubscribed,
            12 => ErrorCode::TooManySubscriptions,
            13 => ErrorCode::NotSubscribed,
            14 => ErrorCode::PolicyNotAllowed,
            15 => ErrorCode::SubscriptionsActive,
            16 => ErrorCode::UnknownInstrument,
            17 => ErrorCode::CatchingUp,
            _ => return None,
        })
    }
}

/// Reason code of a Goodbye: the cause of the server closing the connection (u16 on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum GoodbyeReason {
    /// The server is shutting down.
    Shutdown = 1,
    /// The connection's outbound queue was full; unsent frames were dropped.
    SlowConsumer = 2,
    /// The client sent a frame whose length is above the request maximum.
    ProtocolViolation = 3,
    /// The server already has its maximum number of subscriber connections.
    ServerFull = 4,
}

impl GoodbyeReason {
    /// Returns the reason for a wire value, or `None` for an unknown one.
    pub fn from_u16(value: u16) -> Option<GoodbyeReason> {
        Some(match value {
            1 => GoodbyeReason::Shutdown,
            2 => GoodbyeReason::SlowConsumer,
            3 => GoodbyeReason::ProtocolViolation,
            4 => GoodbyeReason::ServerFull,
            _ => return None,
        })
    }
}

/// Instruments a Subscribe or Unsubscribe applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// Every instrument, present and future.
    All,
    /// One instrument by its 8-byte space-padded symbol.
    Symbol(Stock),
}

/// Whether an accepted subscription is already served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckState {
    /// The instrument is known; its Snapshot follows the ack (`'A'` on the wire).
    Active,
    /// The symbol is not in the directory yet; the Snapshot follows when it appears (`'P'`).
    Pending,
}

/// Body of a SubscribeAck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeAck {
    pub target: Target,
    /// Levels per side the subscription carries; 0 means the full book.
    pub depth: u16,
    /// Locate code of the instrument; 0 for "all" and for pending subscriptions.
    pub locate: u16,
    pub state: AckState,
}

/// One aggregated price level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Level {
    /// Price in 1/10000 dollars.
    pub price: u32,
    /// Total visible shares at the price; 0 in a LevelUpdate means the level was removed.
    pub shares: u64,
    /// Number of orders at the price.
    pub orders: u32,
}

/// Fixed fields of a Snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// Per-connection sequence number.
    pub seq: u64,
    pub locate: u16,
    pub stock: Stock,
    pub status: BookStatus,
    /// ITCH trading state letter (`H`, `P`, `Q`, `T`), or [`TRADING_STATE_UNKNOWN`].
    pub trading_state: u8,
    /// Feed sequence number of the last event the server applied before taking the snapshot.
    pub feed_seq: u64,
    /// Levels per side of the subscription; 0 means the full book.
    pub depth: u16,
}

/// The levels of one side of a decoded Snapshot, best first, read from the frame's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels<'a> {
    /// `len() * LEVEL_LEN` bytes.
    bytes: &'a [u8],
}

impl<'a> Levels<'a> {
    /// Wraps level bytes; the decoder has checked that the length is a multiple of `LEVEL_LEN`.
    pub(crate) fn new(bytes: &'a [u8]) -> Levels<'a> {
        Levels { bytes }
    }

    pub fn len(&self) -> usize {
        self.bytes.len() / LEVEL_LEN
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.len() < LEVEL_LEN
    }

    /// Iterates over the levels, best first.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Level> + 'a {
        self.bytes.chunks_exact(LEVEL_LEN).map(crate::decode::read_level)
    }
}

/// A decoded Snapshot whose levels borrow from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot<'a> {
    pub header: SnapshotHeader,
    pub bids: Levels<'a>,
    pub asks: Levels<'a>,
}

/// A Snapshot that owns its levels, both sides best first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedSnapshot {
    pub header: SnapshotHeader,
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
}

/// Body of a LevelUpdate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelUpdate {
    pub seq: u64,
    pub locate: u16,
    pub side: Side,
    /// The level's new state; `shares == 0` means the level was removed.
    pub level: Level,
    /// Feed sequence number of the ITCH message that changed the level.
    pub feed_seq: u64,
    /// Wall-clock nanoseconds since the Unix epoch at which the server queued the frame.
    pub send_ns: u64,
}

/// Body of a Trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TradeUpdate {
    pub seq: u64,
    pub locate: u16,
    pub trade: TradeEvent,
    pub feed_seq: u64,
    /// Wall-clock nanoseconds since the Unix epoch at which the server queued the frame.
    pub send_ns: u64,
}

/// Body of a BookStatus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusUpdate {
    pub seq: u64,
    pub locate: u16,
    pub status: BookStatus,
    pub feed_seq: u64,
}

/// Body of a TradingState.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TradingStateUpdate {
    pub seq: u64,
    pub locate: u16,
    /// ITCH trading state letter: `H` halted, `P` paused, `Q` quotation only, `T` trading.
    pub state: u8,
    pub feed_seq: u64,
}

/// Body of a Digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestUpdate {
    pub seq: u64,
    pub locate: u16,
    /// Levels per side the checksum covers; 0 means every level.
    pub depth: u16,
    /// Feed sequence number of the last event the server applied before computing the digest.
    pub feed_seq: u64,
    /// CRC-32 (IEEE) over the levels in the layout of [`crate::digest`].
    pub crc: u32,
}

/// Body of a FeedQuality.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QualityUpdate {
    pub seq: u64,
    /// Feed sequence number of the event that changed the quality; the Reset's after a Reset.
    pub feed_seq: u64,
    pub quality: FeedQuality,
}

/// Returns the wire byte of a quality state: `O` ok, `R` recovering, `C` recovered, `S` stale.
pub fn quality_state_byte(state: QualityState) -> u8 {
    match state {
        QualityState::Ok => b'O',
        QualityState::Recovering => b'R',
        QualityState::Recovered => b'C',
        QualityState::Stale => b'S',
    }
}

/// Returns the quality state of a wire byte, or `None` for an unknown one.
pub fn quality_state_from_byte(byte: u8) -> Option<QualityState> {
    match byte {
        b'O' => Some(QualityState::Ok),
        b'R' => Some(QualityState::Recovering),
        b'C' => Some(QualityState::Recovered),
        b'S' => Some(QualityState::Stale),
        _ => None,
    }
}

/// Whether a Catchup frame opens or closes a conflated batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CatchupPhase {
    /// LevelUpdates with the latest state of each changed level follow (`'B'` on the wire).
    Begin,
    /// The batch is complete and the client's book is current again (`'E'`).
    End,
}

/// Body of a Catchup. The Begin and End frames of one batch carry the same counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Catchup {
    pub seq: u64,
    pub phase: CatchupPhase,
    /// LevelUpdates between the Begin and End frames.
    pub levels: u32,
    /// Level updates the batch replaces.
    pub conflated: u64,
    /// Trades dropped while the connection was behind; trades are never conflated.
    pub dropped_trades: u64,
}

/// One decoded frame. Text and snapshot levels borrow from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    Subscribe { target: Target, depth: u16 },
    Unsubscribe { target: Target },
    ClientHeartbeat,
    SetPolicy { policy: SlowConsumerPolicy },
    Resnapshot { target: Target },
    /// `depth` 0 asks for the subscription's depth.
    DigestRequest { stock: Stock, depth: u16 },
    SubscribeAck(SubscribeAck),
    SubscribeReject { target: Target, code: ErrorCode, text: &'a str },
    Error { code: ErrorCode, text: &'a str },
    /// `last_seq` is the sequence number of the last data frame sent, 0 before the first.
    Heartbeat { last_seq: u64, send_ns: u64 },
    /// `last_seq` is the last sequence number the server assigned on this connection.
    Goodbye { reason: GoodbyeReason, last_seq: u64, text: &'a str },
    Snapshot(Snapshot<'a>),
    LevelUpdate(LevelUpdate),
    Trade(TradeUpdate),
    BookStatus(StatusUpdate),
    TradingState(TradingStateUpdate),
    Reset { seq: u64, feed_seq: u64 },
    Digest(DigestUpdate),
    Catchup(Catchup),
    FeedQuality(QualityUpdate),
}

impl Frame<'_> {
    /// Returns the frame's type byte.
    pub fn frame_type(&self) -> u8 {
        match self {
            Frame::Subscribe { .. } => frame_type::SUBSCRIBE,
            Frame::Unsubscribe { .. } => frame_type::UNSUBSCRIBE,
            Frame::ClientHeartbeat => frame_type::CLIENT_HEARTBEAT,
            Frame::SetPolicy { .. } => frame_type::SET_POLICY,
            Frame::Resnapshot { .. } => frame_type::RESNAPSHOT,
            Frame::DigestRequest { .. } => frame_type::DIGEST_REQUEST,
            Frame::SubscribeAck(_) => frame_type::SUBSCRIBE_ACK,
            Frame::SubscribeReject { .. } => frame_type::SUBSCRIBE_REJECT,
            Frame::Error { .. } => frame_type::ERROR,
            Frame::Heartbeat { .. } => frame_type::HEARTBEAT,
            Frame::Goodbye { .. } => frame_type::GOODBYE,
            Frame::Snapshot(_) => frame_type::SNAPSHOT,
            Frame::LevelUpdate(_) => frame_type::LEVEL_UPDATE,
            Frame::Trade(_) => frame_type::TRADE,
            Frame::BookStatus(_) => frame_type::BOOK_STATUS,
            Frame::TradingState(_) => frame_type::TRADING_STATE,
            Frame::Reset { .. } => frame_type::RESET,
            Frame::Digest(_) => frame_type::DIGEST,
            Frame::Catchup(_) => frame_type::CATCHUP,
            Frame::FeedQuality(_) => frame_type::FEED_QUALITY,
        }
    }

    /// Returns the per-connection sequence number of a data frame, or `None` for a request or a
    /// session frame.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Frame::Snapshot(s) => Some(s.header.seq),
            Frame::LevelUpdate(u) => Some(u.seq),
            Frame::Trade(t) => Some(t.seq),
            Frame::BookStatus(s) => Some(s.seq),
            Frame::TradingState(s) => Some(s.seq),
            Frame::Reset { seq, .. } => Some(*seq),
            Frame::Digest(d) => Some(d.seq),
            Frame::Catchup(c) => Some(c.seq),
            Frame::FeedQuality(q) => Some(q.seq),
            _ => None,
        }
    }

    /// Copies the frame's text and levels out of the input buffer.
    pub fn to_owned_frame(&self) -> OwnedFrame {
        match *self {
            Frame::Subscribe { target, depth } => OwnedFrame::Subscribe { target, depth },
            Frame::Unsubscribe { target } => OwnedFrame::Unsubscribe { target },
            Frame::ClientHeartbeat => OwnedFrame::ClientHeartbeat,
            Frame::SetPolicy { policy } => OwnedFrame::SetPolicy { policy },
            Frame::Resnapshot { target } => OwnedFrame::Resnapshot { target },
            Frame::DigestRequest { stock, depth } => OwnedFrame::DigestRequest { stock, depth },
            Frame::SubscribeAck(ack) => OwnedFrame::SubscribeAck(ack),
            Frame::SubscribeReject { target, code, text } => {
                OwnedFrame::SubscribeReject { target, code, text: text.to_owned() }
            }
            Frame::Error { code, text } => OwnedFrame::Error { code, text: text.to_owned() },
            Frame::Heartbeat { last_seq, send_ns } => OwnedFrame::Heartbeat { last_seq, send_ns },
            Frame::Goodbye { reason, last_seq, text } => {
                OwnedFrame::Goodbye { reason, last_seq, text: text.to_owned() }
            }
            Frame::Snapshot(s) => OwnedFrame::Snapshot(OwnedSnapshot {
                header: s.header,
                bids: s.bids.iter().collect(),
                asks: s.asks.iter().collect(),
            }),
            Frame::LevelUpdate(u) => OwnedFrame::LevelUpdate(u),
            Frame::Trade(t) => OwnedFrame::Trade(t),
            Frame::BookStatus(s) => OwnedFrame::BookStatus(s),
            Frame::TradingState(s) => OwnedFrame::TradingState(s),
            Frame::Reset { seq, feed_seq } => OwnedFrame::Reset { seq, feed_seq },
            Frame::Digest(d) => OwnedFrame::Digest(d),
            Frame::Catchup(c) => OwnedFrame::Catchup(c),
            Frame::FeedQuality(q) => OwnedFrame::FeedQuality(q),
        }
    }
}

/// A frame that owns its text and levels, as [`crate::Client::next_frame`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedFrame {
    Subscribe { target: Target, depth: u16 },
    Unsubscribe { target: Target },
    ClientHeartbeat,
    SetPolicy { policy: SlowConsumerPolicy },
    Resnapshot { target: Target },
    DigestRequest { stock: Stock, depth: u16 },
    SubscribeAck(SubscribeAck),
    SubscribeReject { target: Target, code: ErrorCode, text: String },
    Error { code: ErrorCode, text: String },
    Heartbeat { last_seq: u64, send_ns: u64 },
    Goodbye { reason: GoodbyeReason, last_seq: u64, text: String },
    Snapshot(OwnedSnapshot),
    LevelUpdate(LevelUpdate),
    Trade(TradeUpdate),
    BookStatus(StatusUpdate),
    TradingState(TradingStateUpdate),
    Reset { seq: u64, feed_seq: u64 },
    Digest(DigestUpdate),
    Catchup(Catchup),
    FeedQuality(QualityUpdate),
}

impl OwnedFrame {
    /// Returns the per-connection sequence number of a data frame, or `None` for a request or a
    /// session frame.
    pub fn seq(&self) -> Option<u64> {
        match self {
            OwnedFrame::Snapshot(s) => Some(s.header.seq),
            OwnedFrame::LevelUpdate(u) => Some(u.seq),
            OwnedFrame::Trade(t) => Some(t.seq),
            OwnedFrame::BookStatus(s) => Some(s.seq),
            OwnedFrame::TradingState(s) => Some(s.seq),
            OwnedFrame::Reset { seq, .. } => Some(*seq),
            OwnedFrame::Digest(d) => Some(d.seq),
            OwnedFrame::Catchup(c) => Some(c.seq),
            OwnedFrame::FeedQuality(q) => Some(q.seq),
            _ => None,
        }
    }
}

/// Returns whether `symbol` is valid in a request: printable ASCII (0x20..=0x7E), not starting
/// with a space. Trailing spaces are padding; the server does not accept an all-space symbol.
pub fn is_valid_symbol(symbol: &[u8; 8]) -> bool {
    symbol[0] != b' ' && symbol.iter().all(|&b| (0x20..=0x7e).contains(&b))
}

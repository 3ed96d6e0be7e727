//! What the matcher emits for the publisher: level changes, trades and book state, one event at a
//! time through a caller-supplied sink so that applying a message allocates nothing.

use mdfh_feed::itch::{Side, Stock};

/// The new state of one aggregated price level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelChange {
    pub side: Side,
    /// Price in 1/10000 dollars.
    pub price: u32,
    /// Total visible shares now resting at `price`; 0 means the level was removed.
    pub shares: u64,
    /// Number of orders now resting at `price`; 0 when the level was removed.
    pub orders: u32,
}

/// Source of a trade print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradeKind {
    /// A displayed resting order executed (`E` or `C`).
    Execution,
    /// A non-displayed order executed (`P`); the visible book does not change.
    NonDisplayed,
    /// The bulk print of a cross (`Q`).
    Cross,
}

/// One trade print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TradeEvent {
    /// Price in 1/10000 dollars.
    pub price: u32,
    pub shares: u64,
    pub match_number: u64,
    /// Side of the resting order that was executed; `None` for crosses.
    pub resting_side: Option<Side>,
    pub kind: TradeKind,
}

/// Whether a book can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookStatus {
    /// Every message for the book has been applied without an integrity problem.
    Ok,
    /// Messages were lost or could not be applied; the book may differ from the exchange's.
    Stale,
}

/// Feed-wide quality of the books, from gap recovery of the input feed. It applies to every book
/// at once, on top of each book's own [`BookStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QualityState {
    /// No message has been lost since the session started.
    Ok,
    /// Messages are missing and being recovered. Books are behind, because later messages are held
    /// back, but not wrong.
    Recovering,
    /// Every gap was filled, so the books are right again.
    Recovered,
    /// Recovery was abandoned. Books may differ from the exchange's until the next session
    /// ([`BookEvent::Reset`]).
    Stale,
}

/// Feed-wide quality and the first missing sequence number it refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedQuality {
    pub state: QualityState,
    /// Recovering / Stale: the first feed sequence number that is missing; 0 otherwise.
    pub since: u64,
}

impl FeedQuality {
    /// Quality at the start of a session: nothing lost.
    pub const OK: FeedQuality = FeedQuality { state: QualityState::Ok, since: 0 };

    /// Returns true when the feed quality lets books be trusted (`Ok` or `Recovered`). Each book's
    /// own [`BookStatus`] must be `Ok` too.
    pub fn is_trustworthy(&self) -> bool {
        matches!(self.state, QualityState::Ok | QualityState::Recovered)
    }
}

impl Default for FeedQuality {
    fn default() -> Self {
        FeedQuality::OK
    }
}

/// One output of [`crate::Books::apply`] or of a session-level action on the books.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookEvent {
    /// A price level of instrument `locate` changed. `top_changed` is true when the best bid or
    /// best ask (price or size) differs from before this change.
    Level { locate: u16, change: LevelChange, top_changed: bool },
    /// A trade in instrument `locate`.
    Trade { locate: u16, trade: TradeEvent },
    /// Instrument `locate` is named `stock` (from a stock directory or the first add order).
    Directory { locate: u16, stock: Stock },
    /// The trading state of `locate` changed (`H` halted, `P` paused, `Q` quotation only, `T` trading).
    TradingState { locate: u16, state: u8 },
    /// The status of the book of `locate` changed.
    Status { locate: u16, status: BookStatus },
    /// Every book was cleared, because a new feed session started. The feed quality is
    /// [`QualityState::Ok`] afterwards.
    Reset,
    /// The feed-wide quality changed, which applies to every book. The book stage emits it on each
    /// change; [`crate::Books`] does not.
    Quality { quality: FeedQuality },
}

impl BookEvent {
    /// Returns the instrument the event is about, or `None` for the feed-wide
    /// [`BookEvent::Reset`] and [`BookEvent::Quality`].
    pub fn locate(&self) -> Option<u16> {
        match *self {
            BookEvent::Level { locate, .. }
            | BookEvent::Trade { locate, .. }
            | BookEvent::Directory { locate, .. }
            | BookEvent::TradingState { locate, .. }
            | BookEvent::Status { locate, .. } => Some(locate),
            BookEvent::Reset | BookEvent::Quality { .. } => None,
        }
    }
}

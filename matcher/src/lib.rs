//! Order books for mdfh, built order by order from ITCH 5.0 messages.
//!
//! - [`books`]: [`Books`], every instrument's book indexed by stock locate, the shared order
//!   map, and [`Books::apply`], which turns one ITCH message into book changes and events.
//! - [`book`]: [`Book`], one instrument's price levels, top of book, status and error counts.
//! - [`level`]: [`Level`], one aggregated price level, and the sorted per-side level storage.
//! - [`order`]: [`Order`], one resting order.
//! - [`event`]: [`BookEvent`], what applying a message emits for the publisher.
//! - [`error`]: [`BookError`], the integrity problems `apply` reports, and [`ErrorCounts`].
//!
//! Prices are u32 in 1/10000 dollars throughout, as on the ITCH wire.
#![forbid(unsafe_code)]

pub mod book;
pub mod books;
pub mod error;
pub mod event;
pub mod level;
pub mod order;

pub use book::{Book, TRADING_STATE_UNKNOWN};
pub use books::{Books, DEFAULT_LEVELS_PER_SIDE};
pub use error::{BookError, ErrorCounts};
pub use event::{
    BookEvent, BookStatus, FeedQuality, LevelChange, QualityState, TradeEvent, TradeKind,
};
pub use level::Level;
pub use order::Order;

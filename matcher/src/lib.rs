//! Order books for mdfh, built order by order from ITCH 5.0 messages.

pub mod event;

pub use event::{BookEvent, BookStatus, LevelChange, TradeEvent, TradeKind};

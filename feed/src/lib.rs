//! Wire formats and network input for mdfh.
//!
//! - [`itch`]: NASDAQ TotalView-ITCH 5.0 messages, decoded from and encoded to byte slices.
//! - [`error`]: decode errors with the byte offset, the message type and what was wrong.

pub mod error;
pub mod itch;

pub use error::DecodeError;

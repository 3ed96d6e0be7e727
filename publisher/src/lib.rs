//! Subscriber protocol and fan-out for mdfh: stage 3 of the pipeline republishes book updates to
//! TCP subscribers.
//!
//! - [`protocol`]: frame types and field values; [`encode`] and [`decode`]: the wire form.
//! - [`mirror`]: the server's own L2 copy of every book, used for snapshots and depth limits.
//! - [`server`]: [`Publisher`], which accepts subscribers and fans events out to them.
//! - [`client`]: a blocking [`Client`], used by `mdfh subscribe` and tests; [`client_book`]:
//!   [`ClientBook`], which applies received frames into L2 books and detects sequence gaps.
//! - [`envelope`]: [`Envelope`], the unit the pipeline hands to this stage.
//!
//! `docs/protocol.md` at the repository root specifies the protocol byte by byte.

#![forbid(unsafe_code)]

pub mod client;
pub mod client_book;
pub mod decode;
pub mod digest;
pub mod encode;
pub mod envelope;
pub mod error;
pub mod mirror;
pub mod protocol;
mod queue;
pub mod server;
pub mod ws;

#[cfg(test)]
mod codec_tests;

pub use client::Client;
pub use client_book::{ClientBook, InstrumentBook, InstrumentKey};
pub use decode::{decode_frame, decode_frame_with_limit};
pub use envelope::Envelope;
pub use error::ProtocolError;
pub use mirror::Mirror;
pub use protocol::{Frame, OwnedFrame};
pub use server::{Publisher, PublisherConfig, PublisherStats};

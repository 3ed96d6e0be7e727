//! Recovery of lost MoldUDP64 messages.
//!
//! - [`request`]: the retransmission request packet.
//! - [`sequencer`]: holds packets back after a gap, merges lines A and B (first copy wins),
//!   schedules retransmission requests and releases messages in sequence order, each once.
//! - [`line`]: per-line counters: packets, duplicates, reordering and messages never seen.
//! - [`server`]: a retransmission server that serves requests from a bounded history.

pub mod line;
pub mod request;
pub mod sequencer;
pub mod server;

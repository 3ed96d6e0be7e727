//! SoupBinTCP 3.0: sequenced messages from a server to a client over one TCP connection.
//!
//! Every packet is a big-endian u16 length, which counts the type byte and the payload, then a
//! type byte and the payload. The server sends `+` debug, `A` login accepted, `J` login rejected,
//! `S` sequenced data (one ITCH message here), `H` heartbeat and `Z` end of session. The client
//! sends `+` debug, `L` login request, `U` unsequenced data, `R` heartbeat and `O` logout request.
//! Sequenced data carries no sequence number: the client numbers messages on from the number in
//! Login Accepted, and logs in again after a reconnect with the next number it expects.
//!
//! - [`frame`]: packet encoding and decoding, and [`FrameReader`], the streaming decoder.
//! - [`client`]: [`SoupClient`], a non-blocking client with heartbeats and reconnects.
//! - [`server`]: [`SoupServer`], a thread-per-connection server that replays a list of messages.

pub mod client;
pub mod frame;
pub mod server;

pub use client::{ClientCounters, ClientState, SoupClient, SoupClientConfig, SoupEvent};
pub use frame::{ClientPacket, FrameReader, LoginRequest, RejectReason, ServerPacket, SessionId};
pub use server::{ServerCounters, SoupServer, SoupServerConfig};

use std::io;
use std::net::SocketAddr;

/// Error from SoupBinTCP decoding or encoding, or the reason a client connection ended. Stream
/// offsets count bytes from the start of the TCP connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SoupError {
    #[error("SoupBinTCP packet at stream offset {offset} has length 0, but every packet has a type byte")]
    EmptyPacket { offset: u64 },

    #[error("unknown SoupBinTCP packet type 0x{packet_type:02x} at stream offset {offset}")]
    UnknownType { offset: u64, packet_type: u8 },

    #[error("SoupBinTCP packet '{}' at stream offset {offset} has length {len}, expected {expected}", *packet_type as char)]
    WrongLength { offset: u64, packet_type: u8, len: usize, expected: usize },

    #[error("SoupBinTCP packet '{}' at stream offset {offset}: {field} {:?} is not a decimal number below 2^64", *packet_type as char, String::from_utf8_lossy(value))]
    InvalidNumber { offset: u64, packet_type: u8, field: &'static str, value: [u8; 20] },

    #[error("SoupBinTCP payload of {len} bytes is longer than the maximum of 65534")]
    PayloadTooLong { len: usize },

    #[error("{field} {value:?} does not fit its {max}-byte SoupBinTCP field, or is not printable ASCII")]
    InvalidField { field: &'static str, value: String, max: usize },

    #[error("login rejected by the server: {reason}")]
    LoginRejected { reason: RejectReason },

    #[error("unexpected SoupBinTCP packet '{}' at stream offset {offset} while {state:?}", *packet_type as char)]
    UnexpectedPacket { offset: u64, packet_type: u8, state: ClientState },

    #[error("server {addr} accepted a login to session {}, which ended, so the client waits for the next session", frame::trim(session).escape_ascii())]
    SessionEnded { addr: SocketAddr, session: SessionId },

    #[error("server {addr} accepted the login at sequence number {sequence}, which is 0 or beyond any real session")]
    InvalidLoginSequence { addr: SocketAddr, sequence: u64 },

    #[error("connecting to {addr} failed: {kind}")]
    Connect { addr: SocketAddr, kind: io::ErrorKind },

    #[error("SoupBinTCP connection to {addr} failed: {kind}")]
    Io { addr: SocketAddr, kind: io::ErrorKind },

    #[error("server {addr} closed the connection; next expected sequence number {next_sequence}")]
    ServerClosed { addr: SocketAddr, next_sequence: u64 },

    #[error("no packet from server {addr} for {silent_ms} ms, so the link counts as lost")]
    ServerTimeout { addr: SocketAddr, silent_ms: u64 },
}

impl SoupError {
    /// Returns whether the error is a malformed packet, rather than a protocol or link event.
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            SoupError::EmptyPacket { .. }
                | SoupError::UnknownType { .. }
                | SoupError::WrongLength { .. }
                | SoupError::InvalidNumber { .. }
                | SoupError::InvalidLoginSequence { .. }
        )
    }
}

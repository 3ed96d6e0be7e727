//! Wire formats and network input for mdfh.
//!
//! - [`itch`]: NASDAQ TotalView-ITCH 5.0 messages, decoded from and encoded to byte slices.
//! - [`moldudp64`]: MoldUDP64 packets: header, message blocks, heartbeats, end of session.
//! - [`binaryfile`]: NASDAQ BinaryFILE, a big-endian u16 length before each message.
//! - [`pcap`]: pcap and pcapng captures of Ethernet / IPv4 / UDP / MoldUDP64.
//! - [`file`](mod@file): one reader over every recorded format, with the format detected from the bytes.
//! - [`udp`]: MoldUDP64 receive over UDP unicast and multicast, batched where the OS allows.
//! - [`soupbintcp`]: SoupBinTCP 3.0 framing, client and server.
//! - [`session`]: MoldUDP64 session and sequence tracking: duplicates, gaps, session changes.
//! - [`error`]: decode errors with the byte offset, the message type and what was wrong.

pub mod binaryfile;
pub mod error;
pub mod file;
pub mod itch;
pub mod moldudp64;
pub mod pcap;
pub mod recovery;
pub mod session;
pub mod soupbintcp;
pub mod udp;

pub use error::DecodeError;

//! The simulator: replays recorded ITCH messages as a live MoldUDP64 feed over UDP at a steady
//! rate. `mdfh run` embeds it (on the bundled LOBSTER AAPL sample) and `mdfh sim` runs it alone.
//!
//! Lines A and B carry the same packets, each with its own seeded faults ([`faults`]). An
//! optional retransmission server serves requests from the history of the pass, and an
//! optional SoupBinTCP server replays the pass's session as a fallback.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use mdfh_feed::file;
use mdfh_feed::moldudp64;
use mdfh_feed::session::{FileSequence, FileVerdict};

pub mod faults;
mod lines;
pub mod report;
mod runner;

pub use faults::{FaultConfig, FaultTarget};
pub use mdfh_feed::recovery::server::RetransmitConfig;
pub use report::{LineReport, RetransmitReport, SimReport, SoupReport};
pub use runner::UdpSim;

/// The bundled real sample: LOBSTER's AAPL 2012-06-21 message and 10-level orderbook files (first
/// 600 events), converted to ITCH 5.0 at start.
const SAMPLE_MESSAGES: &str = include_str!("../../../tests/data/lobster/AAPL_2012-06-21_34200000_57600000_message_10.csv");
const SAMPLE_ORDERBOOK: &str = include_str!("../../../tests/data/lobster/AAPL_2012-06-21_34200000_57600000_orderbook_10.csv");

/// Largest MoldUDP64 packet the simulator sends, in bytes (fits a 1500-byte Ethernet MTU).
pub const MAX_PACKET_BYTES: usize = 1400;

/// Raw ITCH messages, in order, in one buffer.
#[derive(Debug, Clone, Default)]
pub struct Messages {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Messages {
    /// Reads every message of a BinaryFILE, pcap or pcapng file. Messages that fail to frame are
    /// reported on the log and left out.
    pub fn load(path: &Path) -> anyhow::Result<Messages> {
        let feed = file::open(path).with_context(|| format!("failed to open {}", path.display()))?;
        let mut messages = Messages::default();
        let mut errors = 0u64;
        let mut sequence = FileSequence::default();
        for item in feed.messages() {
            match item {
                Ok(message) => {
                    // A capture can hold the same packet twice (both lines, or a resend):
                    // replaying it twice would apply its executions twice.
                    if sequence.check(message.session, message.moldudp64_sequence) != FileVerdict::Duplicate {
                        messages.push(message.bytes);
                    }
                }
                Err(error) => {
                    errors += 1;
                    if errors <= 10 {
                        tracing::warn!(file = %path.display(), %error, "message left out of the replay");
                    }
                }
            }
        }
        if sequence.duplicates > 0 || sequence.gaps > 0 {
            tracing::warn!(
                file = %path.display(),
                duplicates = sequence.duplicates,
                gaps = sequence.gaps,
                missed = sequence.missed,
                "the capture's MoldUDP64 sequence numbers have duplicates (left out) or gaps"
            );
        }
        if errors > 10 {
            tracing::warn!(file = %path.display(), errors, "messages left out of the replay in all");
        }
        anyhow::ensure!(!messages.is_empty(), "{} contains no ITCH message", path.display());
        Ok(messages)
    }

    /// Converts the bundled LOBSTER AAPL sample to ITCH.
    pub fn embedded_sample() -> anyhow::Result<Messages> {
        let options = crate::lobster::ConvertOptions {
            symbol: "AAPL".to_string(),
            ..crate::lobster::ConvertOptions::default()
        };
        let itch = crate::lobster::convert(SAMPLE_MESSAGES, SAMPLE_ORDERBOOK, &options)
            .context("failed to convert the bundled LOBSTER sample")?;
        Messages::from_binary_file(&itch)
    }

    /// Reads the messages of a BinaryFILE held in memory.
    pub fn from_binary_file(bytes: &[u8]) -> anyhow::Result<Messages> {
        let mut messages = Messages::default();
        for item in mdfh_feed::binaryfile::Reader::new(bytes) {
            let (_, message) = item?;
            messages.push(message);
        }
        Ok(messages)
    }

    pub fn push(&mut self, message: &[u8]) {
        self.bytes.extend_from_slice(message);
        self.ends.push(self.bytes.len());
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Returns message `i`.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.bytes.get(start..end)
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// Returns the messages as the list the servers take: element `i` is sequence `i + 1`.
    pub fn to_shared(&self) -> Arc<[Box<[u8]>]> {
        self.iter().map(|m| m.to_vec().into_boxed_slice()).collect()
    }
}

/// Settings of the UDP simulator. [`UdpSimConfig::new`] gives one line, no faults and no
/// servers.
#[derive(Debug, Clone)]
pub struct UdpSimConfig {
    /// Line A.
    pub target: SocketAddr,
    /// Line B: every packet is also sent here, with its own faults.
    pub target_b: Option<SocketAddr>,
    /// Messages per second; 0 sends as fast as the socket takes them.
    pub rate: u64,
    /// Start again, as a new session, after each pass.
    pub repeat: bool,
    /// Time to wait after a pass before the next one.
    pub pause_between_passes: Duration,
    /// Maximum size of a data packet in bytes, MoldUDP64 header included.
    pub max_packet_bytes: usize,
    /// A line that has sent nothing for this long sends a heartbeat.
    pub heartbeat_interval: Duration,
    pub faults: FaultConfig,
    /// The retransmission server, started with the session and the messages of each pass.
    pub retransmit: Option<RetransmitConfig>,
    /// The retransmission server stops responding once this many messages of the pass are sent.
    pub retransmit_stop_after: Option<u64>,
    /// Address of the SoupBinTCP fallback server, which replays each pass's session at full
    /// speed from the sequence number a login requests.
    pub soup: Option<SocketAddr>,
    /// Time the servers stay up after the last message of a pass, before the end of session.
    /// The lines send heartbeats meanwhile.
    pub linger: Duration,
}

impl UdpSimConfig {
    /// Returns the settings of one line to `target`, at full speed, with no faults and no
    /// servers.
    pub fn new(target: SocketAddr) -> UdpSimConfig {
        UdpSimConfig {
            target,
            target_b: None,
            rate: 0,
            repeat: false,
            pause_between_passes: Duration::from_millis(500),
            max_packet_bytes: MAX_PACKET_BYTES,
            heartbeat_interval: Duration::from_secs(1),
            faults: FaultConfig::default(),
            retransmit: None,
            retransmit_stop_after: None,
            soup: None,
            linger: Duration::ZERO,
        }
    }

    /// Checks the fault probabilities and that no two lines or servers share an address.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.faults.validate()?;
        let mut addresses = vec![("line A", self.target)];
        addresses.extend(self.target_b.map(|a| ("line B", a)));
        addresses.extend(self.retransmit.as_ref().map(|r| ("the retransmission server", r.bind)));
        addresses.extend(self.soup.map(|a| ("the SoupBinTCP server", a)));
        for (i, (name, address)) in addresses.iter().enumerate() {
            let port_zero = address.port() == 0;
            for (other, other_address) in addresses.iter().skip(i + 1) {
                anyhow::ensure!(
                    port_zero || address != other_address,
                    "{name} and {other} both use {address}: give each a different address"
                );
            }
        }
        anyhow::ensure!(
            self.max_packet_bytes > moldudp64::HEADER_LEN,
            "invalid max_packet_bytes {}: a packet needs more than the {}-byte header",
            self.max_packet_bytes,
            moldudp64::HEADER_LEN
        );
        anyhow::ensure!(!self.heartbeat_interval.is_zero(), "the heartbeat interval must be longer than 0");
        Ok(())
    }
}

/// Returns the session id of pass `pass`: 10 ASCII characters.
pub fn session_id(pass: u64) -> moldudp64::SessionId {
    let text = format!("SIM{:07}", pass % 10_000_000);
    let mut id = [b' '; 10];
    id.copy_from_slice(&text.as_bytes()[..10]);
    id
}

/// Sends `messages` as MoldUDP64 to the lines of `config` until done (or `stop` is set): each
/// pass is a new session numbered from sequence 1 and ends with a heartbeat, the linger and
/// three end-of-session packets. Messages due at the same moment share a packet, up to
/// `max_packet_bytes`. Use [`UdpSim`] to learn the servers' addresses before the first packet.
pub fn run_udp(messages: &Messages, config: &UdpSimConfig, stop: &AtomicBool) -> anyhow::Result<SimReport> {
    UdpSim::start(messages, config)?.run(stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_sample_converts() {
        let messages = Messages::embedded_sample().unwrap();
        // Seed and directory first, then one message per LOBSTER row after the first.
        assert!(messages.len() > 599, "{} messages", messages.len());
        for message in messages.iter() {
            mdfh_feed::itch::decode(message).unwrap();
        }
    }

    #[test]
    fn session_ids_are_ten_bytes_and_distinct() {
        assert_eq!(&session_id(1), b"SIM0000001");
        assert_ne!(session_id(1), session_id(2));
    }

    #[test]
    fn due_count_follows_rate() {
        use runner::due_count;
        assert_eq!(due_count(1000, Duration::from_millis(0), 600), 1);
        assert_eq!(due_count(1000, Duration::from_millis(100), 600), 101);
        assert_eq!(due_count(1000, Duration::from_secs(10), 600), 600);
        assert_eq!(due_count(0, Duration::ZERO, 600), 600);
    }
}

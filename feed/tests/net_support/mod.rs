//! Helpers shared by the network tests: real MoldUDP64 datagrams and ITCH messages taken from the
//! NASDAQ captures under `tests/data/itch-pcaps`, and a bounded wait.

#![allow(dead_code)]

use std::fs::File;
use std::time::{Duration, Instant};

use etherparse::{SlicedPacket, TransportSlice};
use pcap_file::pcap::PcapReader;

const PCAP_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/itch-pcaps");

/// Captures with real MoldUDP64 headers (session and sequence numbers kept).
pub const REAL_HEADER_PCAPS: &[&str] = &[
    "Nasdaq.Equities.TotalView.Itch.v5.0/Multiple.Packets.pcap",
    "Nasdaq.Equities.TotalView.Itch.v5.0/AddOrderNoMpidAttributionMessage.pcap",
    "Nasdaq.Equities.TotalView.Itch.v5.0/OrderExecutedMessage.pcap",
    "Nasdaq.Equities.TotalView.Itch.v5.0/OrderReplaceMessage.pcap",
    "Nasdaq.Equities.TotalView.Itch.v5.0/OrderDeleteMessage.pcap",
    "Nasdaq.Equities.TotalView.Itch.v5.0/StockTradingActionMessage.pcap",
];

/// Captures whose MoldUDP64 headers are zeroed but whose ITCH payloads are real.
pub const ZEROED_HEADER_PCAPS: &[&str] = &[
    "Nasdaq.Equities.TotalView.Itch.v5.0.20230822/AddOrderNoMPID.pcap",
    "Nasdaq.Equities.TotalView.Itch.v5.0.20230822/AddOrderWithMPID.pcap",
    "Nasdaq.Equities.TotalView.Itch.v5.0.20230822/OrderExecuted.pcap",
    "Nasdaq.Equities.TotalView.Itch.v5.0.20230822/OrderCancel.pcap",
    "Nasdaq.Equities.TotalView.Itch.v5.0.20230822/OrderReplace.pcap",
    "Nasdaq.Equities.TotalView.Itch.v5.0.20230822/OrderDelete.pcap",
    "Nasdaq.Equities.TotalView.Itch.v5.0.20230822/NonCrossTrade.pcap",
    "Nasdaq.Equities.TotalView.Itch.v5.0.20230822/CrossTrade.pcap",
    "Nasdaq.Equities.TotalView.Itch.v5.0.20230822/NetOrderImbalanceIndicator.pcap",
    "Nasdaq.Equities.TotalView.Itch.v5.0.20230822/SystemEvent.pcap",
];

/// Returns the UDP payloads (MoldUDP64 packets) of a capture, in capture order.
pub fn udp_payloads(relative_path: &str) -> Vec<Vec<u8>> {
    let path = format!("{PCAP_DIR}/{relative_path}");
    let file = File::open(&path).unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
    let mut reader = PcapReader::new(file).unwrap_or_else(|e| panic!("{path} is not a pcap: {e}"));
    let mut payloads = Vec::new();
    while let Some(packet) = reader.next_packet() {
        let packet = packet.unwrap_or_else(|e| panic!("bad record in {path}: {e}"));
        let sliced = SlicedPacket::from_ethernet(&packet.data).unwrap_or_else(|e| panic!("bad frame in {path}: {e}"));
        if let Some(TransportSlice::Udp(udp)) = sliced.transport {
            payloads.push(udp.payload().to_vec());
        }
    }
    payloads
}

/// The 20-byte MoldUDP64 header, parsed here so the tests do not depend on the crate's parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoldHeader {
    pub session: [u8; 10],
    pub sequence: u64,
    pub count: u16,
}

/// Splits a MoldUDP64 packet into its header and message blocks.
pub fn split_moldudp64(packet: &[u8]) -> (MoldHeader, Vec<Vec<u8>>) {
    assert!(packet.len() >= 20, "MoldUDP64 packet of {} bytes is shorter than its header", packet.len());
    let header = MoldHeader {
        session: packet[..10].try_into().unwrap(),
        sequence: u64::from_be_bytes(packet[10..18].try_into().unwrap()),
        count: u16::from_be_bytes(packet[18..20].try_into().unwrap()),
    };
    let mut messages = Vec::new();
    let mut rest = &packet[20..];
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        messages.push(rest[2..2 + len].to_vec());
        rest = &rest[2 + len..];
    }
    assert!(rest.is_empty(), "MoldUDP64 packet has {} stray bytes after its blocks", rest.len());
    (header, messages)
}

/// Returns every MoldUDP64 datagram of the captures listed above.
pub fn real_datagrams() -> Vec<Vec<u8>> {
    REAL_HEADER_PCAPS
        .iter()
        .chain(ZEROED_HEADER_PCAPS)
        .flat_map(|p| udp_payloads(p))
        .collect()
}

/// Returns every ITCH message of the captures listed above, in capture order.
pub fn real_itch_messages() -> Vec<Vec<u8>> {
    real_datagrams()
        .iter()
        .flat_map(|d| split_moldudp64(d).1)
        .collect()
}

/// Calls `step` until it returns true, and panics with `what` after `limit`. The limit only
/// keeps a broken test from hanging, because the tests assert outcomes, never durations.
pub fn wait_for(what: &str, limit: Duration, mut step: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !step() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

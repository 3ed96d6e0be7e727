//! Damaged recorded files: bytes of real captures and BinaryFILEs changed or cut at random.
//! Reading them must never panic, every message must sit at the offset it reports, and every
//! error offset must lie within the file.

mod framing_support;

use framing_support::{pcap_path, read_frames};
use mdfh_feed::binaryfile;
use mdfh_feed::file::{self, FeedFile};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;
use proptest::prelude::*;

const MULTIPLE_PACKETS: &str = "Nasdaq.Equities.TotalView.Itch.v5.0/Multiple.Packets.pcap";

fn pcap_bytes() -> Vec<u8> {
    std::fs::read(pcap_path(MULTIPLE_PACKETS)).unwrap()
}

fn pcapng_bytes() -> Vec<u8> {
    let (_, frames) = read_frames(MULTIPLE_PACKETS);
    let mut writer = PcapNgWriter::new(Vec::new()).unwrap();
    writer.write_pcapng_block(InterfaceDescriptionBlock::new(DataLink::ETHERNET, 65535)).unwrap();
    for frame in &frames {
        let block = EnhancedPacketBlock {
            interface_id: 0,
            timestamp: frame.timestamp,
            original_len: frame.data.len() as u32,
            data: frame.data.as_slice().into(),
            options: vec![],
        };
        writer.write_pcapng_block(block).unwrap();
    }
    writer.into_inner()
}

fn binary_file_bytes() -> Vec<u8> {
    let feed = file::open(&pcap_path(MULTIPLE_PACKETS)).unwrap();
    let mut out = Vec::new();
    for message in feed.messages() {
        binaryfile::write_message(&mut out, &message.unwrap().decode().unwrap());
    }
    out
}

/// Applies `changes` (position and new value, positions taken modulo the length), then cuts
/// the file to `keep_per_mille` thousandths of its length.
fn damage(mut bytes: Vec<u8>, changes: &[(usize, u8)], keep_per_mille: usize) -> Vec<u8> {
    let len = bytes.len();
    for &(position, value) in changes {
        bytes[position % len] = value;
    }
    bytes.truncate(len * keep_per_mille / 1000);
    bytes
}

/// Reads every message and datagram of `bytes` and checks the offsets reported.
fn read_everything(bytes: Vec<u8>) {
    let len = bytes.len();
    let Ok(feed) = FeedFile::from_bytes(bytes) else {
        return;
    };
    for item in feed.messages() {
        match item {
            Ok(message) => {
                let end = message.offset + message.bytes.len();
                assert_eq!(feed.bytes().get(message.offset..end), Some(message.bytes));
                if let Err(err) = message.decode() {
                    assert!(err.offset() < len, "{err} outside a {len}-byte file");
                }
            }
            Err(err) => {
                let offset = err.offset().unwrap();
                assert!(offset <= len, "{err} outside a {len}-byte file");
            }
        }
    }
    for datagram in feed.packets().into_iter().flatten().flatten() {
        let end = datagram.payload_offset + datagram.payload.len();
        assert_eq!(feed.bytes().get(datagram.payload_offset..end), Some(datagram.payload));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn damaged_pcap(changes in prop::collection::vec((any::<usize>(), any::<u8>()), 0..8), keep in 0usize..=1000) {
        read_everything(damage(pcap_bytes(), &changes, keep));
    }

    #[test]
    fn damaged_pcapng(changes in prop::collection::vec((any::<usize>(), any::<u8>()), 0..8), keep in 0usize..=1000) {
        read_everything(damage(pcapng_bytes(), &changes, keep));
    }

    #[test]
    fn damaged_binary_file(changes in prop::collection::vec((any::<usize>(), any::<u8>()), 0..8), keep in 0usize..=1000) {
        read_everything(damage(binary_file_bytes(), &changes, keep));
    }
}

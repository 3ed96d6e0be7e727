//! Helpers shared by the framing and real-data tests: paths to the bundled captures, and pcap
//! files read and rewritten with the `pcap-file` crate, independently of the code under test.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use mdfh_feed::file::{FeedFile, FileError, FileMessage};
use mdfh_feed::itch::Message;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};

/// Folder of the NASDAQ and BX ITCH captures.
pub const PCAP_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/itch-pcaps");

/// Returns the path of a capture under the ITCH capture folder.
pub fn pcap_path(relative: &str) -> PathBuf {
    PathBuf::from(PCAP_DIR).join(relative)
}

/// A captured frame: its capture time and its bytes from the Ethernet header on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawFrame {
    pub timestamp: Duration,
    pub data: Vec<u8>,
}

/// Reads the global header and every frame of a pcap file.
pub fn read_frames(relative: &str) -> (PcapHeader, Vec<RawFrame>) {
    let file = std::fs::File::open(pcap_path(relative)).unwrap();
    let mut reader = PcapReader::new(file).unwrap();
    let mut frames = Vec::new();
    while let Some(packet) = reader.next_packet() {
        let packet = packet.unwrap();
        frames.push(RawFrame { timestamp: packet.timestamp, data: packet.data.into_owned() });
    }
    (reader.header(), frames)
}

/// Writes a pcap file with `header` and `frames`.
pub fn write_pcap(header: PcapHeader, frames: &[RawFrame]) -> Vec<u8> {
    let mut writer = PcapWriter::with_header(Vec::new(), header).unwrap();
    for frame in frames {
        let packet = PcapPacket::new(frame.timestamp, frame.data.len() as u32, &frame.data);
        writer.write_packet(&packet).unwrap();
    }
    writer.into_writer()
}

/// A message read from a feed file and decoded, with everything the file reader reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    pub sequence: Option<u64>,
    pub session: Option<[u8; 10]>,
    pub capture_ts_ns: Option<u64>,
    pub message: Message,
}

/// Reads every message of `feed`, checks that each message's offset points at its bytes in the
/// file, and decodes it. Returns the decoded messages and the errors, in file order.
pub fn decode_all(feed: &FeedFile) -> (Vec<Decoded>, Vec<FileError>) {
    let mut decoded = Vec::new();
    let mut errors = Vec::new();
    for item in feed.messages() {
        let message: FileMessage<'_> = match item {
            Ok(message) => message,
            Err(err) => {
                errors.push(err);
                continue;
            }
        };
        let in_file = &feed.bytes()[message.offset..message.offset + message.bytes.len()];
        assert_eq!(in_file, message.bytes, "message at offset {} is not at that offset in the file", message.offset);
        match message.decode() {
            Ok(decoded_message) => decoded.push(Decoded {
                sequence: message.moldudp64_sequence,
                session: message.session,
                capture_ts_ns: message.capture_ts_ns,
                message: decoded_message,
            }),
            Err(err) => errors.push(FileError::Decode(err)),
        }
    }
    (decoded, errors)
}

/// Returns the count of each message type in `decoded` as `<type>x<count>`, sorted by type
/// letter, e.g. "Ax36 Dx1 Fx2".
pub fn type_counts(decoded: &[Decoded]) -> String {
    let mut counts: Vec<(u8, usize)> = Vec::new();
    for d in decoded {
        let t = d.message.msg_type();
        match counts.iter_mut().find(|(letter, _)| *letter == t) {
            Some((_, n)) => *n += 1,
            None => counts.push((t, 1)),
        }
    }
    counts.sort();
    counts.iter().map(|(t, n)| format!("{}x{n}", *t as char)).collect::<Vec<_>>().join(" ")
}

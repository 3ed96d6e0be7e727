//! Recorded files cut into the units that the replay hands to stage 1.
//!
//! A capture yields its MoldUDP64 packets as they were captured. A BinaryFILE yields each ITCH
//! message framed as a MoldUDP64 packet with one message, numbered 1..N in a session of its own,
//! and then an end-of-session packet.
//! In step mode a capture is cut per message too, into one-message packets that keep the
//! captured session and sequence numbers. Either way stage 1 receives MoldUDP64 packets, so
//! session, gap and duplicate handling work as on a live feed.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use mdfh_feed::binaryfile;
use mdfh_feed::file::Format;
use mdfh_feed::itch;
use mdfh_feed::moldudp64::{self, PacketHeader, SessionId};
use mdfh_feed::pcap;
use mdfh_feed::DecodeError;

use super::{FileReport, ReplayError, StartPoint};

/// Bytes read from the start of a file to check its header before the replay starts. A pcap
/// header is 24 bytes. A pcapng section header block longer than this is checked again on the
/// whole file.
const HEADER_CHECK_BYTES: u64 = 1 << 20;

/// File errors logged one by one per file; later ones are only counted.
const MAX_LOGGED_ERRORS: u64 = 10;

/// Length of the big-endian u16 length prefix before each message, the same in a BinaryFILE and
/// in a MoldUDP64 message block.
const PREFIX_LEN: usize = binaryfile::PREFIX_LEN;

/// Size of the units a file is cut into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Granularity {
    /// A capture yields whole packets.
    Packet,
    /// A capture yields one message per unit, for step mode and for finding the start point.
    Message,
}

/// The clock a unit's time was read from. Times of different clocks cannot be compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ClockKind {
    /// Capture time, nanoseconds since the Unix epoch.
    Capture,
    /// ITCH timestamp, nanoseconds since midnight exchange time.
    Exchange,
}

/// The recorded time of a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Clock {
    pub kind: ClockKind,
    pub ns: u64,
}

/// The bytes of a unit, as ranges of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum UnitBytes {
    /// A captured MoldUDP64 packet, handed on as it is.
    Packet { start: usize, end: usize },
    /// Message blocks (each a u16 length prefix and a message), handed on after `header`.
    Blocks { start: usize, end: usize, header: PacketHeader },
}

/// One packet to hand to stage 1, with what the replay needs to pace it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Unit {
    pub bytes: UnitBytes,
    pub clock: Option<Clock>,
    /// ITCH messages in the unit: 0 for heartbeats, end-of-session packets and packets whose
    /// header cannot be read.
    pub messages: u16,
    /// True when the unit contains the start point of the replay or a message after it.
    pub reaches_start: bool,
    /// Feed sequence number of the unit's first message.
    pub sequence: u64,
    /// ITCH timestamp of the unit's first message, when it has one.
    pub timestamp: Option<u64>,
    /// Byte offset in the file of the unit's first message, or of the packet without messages.
    pub offset: usize,
}

/// A UDP payload of a capture: its byte range in the file and its capture time.
#[derive(Clone, Copy, Debug)]
struct CapturedPacket {
    start: usize,
    end: usize,
    ts_ns: u64,
}

enum Cursor {
    BinaryFile {
        /// Byte offset of the next length prefix.
        pos: usize,
        next_sequence: u64,
        session: SessionId,
        /// The last message has been read.
        done: bool,
        /// The end-of-session packet that follows the last message has been yielded.
        ended: bool,
    },
    Capture {
        packets: Vec<CapturedPacket>,
        /// Index of the packet being read.
        next: usize,
        /// In [`Granularity::Message`], the number of message blocks of that packet already
        /// yielded.
        block: u16,
    },
}

/// A recorded file, read whole into memory, with a cursor over its units.
pub(super) struct LoadedFile {
    bytes: Vec<u8>,
    cursor: Cursor,
    pub report: FileReport,
    /// Log each file error (up to [`MAX_LOGGED_ERRORS`]) as it is found.
    log_errors: bool,
}

/// Returns the session id of the BinaryFILE at position `index` (from 0) of the replay:
/// `FILE000001` for the first. Each BinaryFILE is a session of its own, because each one
/// numbers its messages from 1.
fn binary_file_session(index: usize) -> SessionId {
    let text = format!("FILE{:06}", (index + 1) % 1_000_000);
    let mut id = [b' '; 10];
    for (dst, src) in id.iter_mut().zip(text.bytes()) {
        *dst = src;
    }
    id
}

/// Returns the ITCH timestamp of a raw message: a big-endian u48 at byte 5.
fn itch_timestamp(message: &[u8]) -> Option<u64> {
    let bytes = message.get(5..itch::HEADER_LEN)?;
    Some(bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

impl StartPoint {
    /// Returns true when the message numbered `sequence` is at or after the start point.
    fn is_reached_by(self, sequence: u64, message: &[u8]) -> bool {
        match self {
            StartPoint::Sequence(first) => sequence >= first,
            StartPoint::Time(first) => itch_timestamp(message).is_some_and(|ts| ts >= first),
        }
    }
}

/// Checks that `path` can be replayed: it can be read, and it starts with a valid pcap or
/// pcapng header, or with a known ITCH message as a BinaryFILE does.
pub(super) fn check_file(path: &Path) -> Result<(), ReplayError> {
    let io_error = |source| ReplayError::Io { path: path.to_owned(), source };
    let file = File::open(path).map_err(io_error)?;
    let metadata = file.metadata().map_err(io_error)?;
    if !metadata.is_file() {
        return Err(ReplayError::NotAFile { path: path.to_owned() });
    }
    let mut head = Vec::new();
    file.take(HEADER_CHECK_BYTES).read_to_end(&mut head).map_err(io_error)?;

    if crate::export::dbn_input::is_dbn(&head) {
        return Ok(());
    }
    if Format::detect(&head) != Format::BinaryFile {
        if pcap::datagrams(&head).is_ok() {
            return Ok(());
        }
        // The header may run past the bytes read: check again on the whole file.
        let whole = if (head.len() as u64) < metadata.len() { std::fs::read(path).map_err(io_error)? } else { head };
        return match pcap::datagrams(&whole) {
            Ok(_) => Ok(()),
            Err(source) => Err(ReplayError::Capture { path: path.to_owned(), source }),
        };
    }

    let not_a_feed = |reason: String| ReplayError::NotAFeed { path: path.to_owned(), reason };
    match binaryfile::Reader::new(&head).next() {
        None => Err(not_a_feed("the file is empty".into())),
        Some(Err(error)) => Err(not_a_feed(error.to_string())),
        Some(Ok((_, message))) => {
            let msg_type = message.first().copied().unwrap_or(0);
            match itch::message_len(msg_type) {
                Some(expected) if message.len() >= expected => Ok(()),
                Some(expected) => Err(not_a_feed(format!(
                    "the first message, type {:?} at byte offset {PREFIX_LEN}, is {} bytes instead of {expected}",
                    char::from(msg_type),
                    message.len()
                ))),
                None => Err(not_a_feed(format!(
                    "the first message at byte offset {PREFIX_LEN} has type 0x{msg_type:02x}, which ITCH 5.0 does not define"
                ))),
            }
        }
    }
}

impl LoadedFile {
    /// Reads the file at `path`, the replay's file number `index` (from 0), and indexes the
    /// packets of a capture. Errors in capture records are counted in the report and, with
    /// `log_errors`, logged with the file and byte offset.
    pub(super) fn load(path: &Path, index: usize, log_errors: bool) -> Result<LoadedFile, ReplayError> {
        let mut bytes = std::fs::read(path).map_err(|source| ReplayError::Io { path: path.to_owned(), source })?;
        if crate::export::dbn_input::is_dbn(&bytes) {
            // DBN is replayed as the ITCH messages it converts to, like a BinaryFILE.
            let mut on_error = |error: &crate::export::dbn_input::DbnError| {
                if log_errors {
                    tracing::warn!(file = %path.display(), %error, "DBN record left out of the replay");
                }
            };
            bytes = crate::export::dbn_input::to_binary_file(bytes, &mut on_error)
                .map_err(|error| ReplayError::NotAFeed { path: path.to_owned(), reason: error.to_string() })?;
        }
        let format = Format::detect(&bytes);
        let mut report = FileReport::new(path, format);
        let cursor = match format {
            Format::BinaryFile => Cursor::BinaryFile {
                pos: 0,
                next_sequence: 1,
                session: binary_file_session(index),
                done: false,
                ended: false,
            },
            Format::Pcap | Format::PcapNg => {
                let mut datagrams =
                    pcap::datagrams(&bytes).map_err(|source| ReplayError::Capture { path: path.to_owned(), source })?;
                let mut packets = Vec::new();
                for item in datagrams.by_ref() {
                    match item {
                        Ok(datagram) => packets.push(CapturedPacket {
                            start: datagram.payload_offset,
                            end: datagram.payload_offset + datagram.payload.len(),
                            ts_ns: datagram.ts_ns,
                        }),
                        Err(error) => record_error(&mut report, log_errors, &error),
                    }
                }
                report.capture = Some(*datagrams.summary());
                Cursor::Capture { packets, next: 0, block: 0 }
            }
        };
        Ok(LoadedFile { bytes, cursor, report, log_errors })
    }

    /// Returns the bytes of the file in `start..end`; empty if the range is outside the file.
    pub(super) fn slice(&self, start: usize, end: usize) -> &[u8] {
        self.bytes.get(start..end).unwrap_or_default()
    }

    /// Returns the next unit, or `None` at the end of the file. `start` is the replay's start
    /// point while it has not been reached, and `None` after.
    pub(super) fn next_unit(&mut self, granularity: Granularity, start: Option<StartPoint>) -> Option<Unit> {
        let LoadedFile { bytes, cursor, report, log_errors } = self;
        match cursor {
            Cursor::BinaryFile { pos, next_sequence, session, done, ended } => {
                let mut on_error = |error: &DecodeError| record_error(report, *log_errors, error);
                let unit = next_binary_file_unit(bytes, pos, next_sequence, *session, done, start, &mut on_error);
                if unit.is_some() || *ended {
                    return unit;
                }
                // The session ends with the file, as a MoldUDP64 server ends it with an
                // end-of-session packet, so that the next file's session starts at once.
                *ended = true;
                (*next_sequence > 1).then(|| end_of_session_unit(*session, *next_sequence, bytes.len()))
            }
            Cursor::Capture { packets, next, block } => match granularity {
                Granularity::Packet => {
                    let packet = *packets.get(*next)?;
                    *next += 1;
                    Some(packet_unit(bytes, packet, start))
                }
                Granularity::Message => next_message_unit(bytes, packets, next, block, start),
            },
        }
    }
}

/// Counts a file error in `report` and logs the first few.
fn record_error(report: &mut FileReport, log: bool, error: &dyn std::fmt::Display) {
    report.errors += 1;
    if !log {
        return;
    }
    if report.errors <= MAX_LOGGED_ERRORS {
        tracing::warn!(file = %report.path.display(), "{error}; the replay goes on");
    } else if report.errors == MAX_LOGGED_ERRORS + 1 {
        tracing::warn!(file = %report.path.display(), "more errors in this file; only their count is reported from here on");
    }
}

/// Reads the next message of a BinaryFILE and passes each framing error found on the way to
/// `on_error`. An empty message is passed over. A length that runs past the end of the file
/// ends it.
fn next_binary_file_unit(
    bytes: &[u8],
    pos: &mut usize,
    next_sequence: &mut u64,
    session: SessionId,
    done: &mut bool,
    start: Option<StartPoint>,
    on_error: &mut dyn FnMut(&DecodeError),
) -> Option<Unit> {
    while !*done {
        let mut reader = binaryfile::Reader::new(bytes.get(*pos..).unwrap_or_default());
        match reader.next() {
            None => *done = true,
            Some(Ok((prefix_offset, message))) => {
                let block_start = *pos + prefix_offset;
                let block_end = block_start + PREFIX_LEN + message.len();
                *pos = block_end;
                let sequence = *next_sequence;
                *next_sequence += 1;
                let timestamp = itch_timestamp(message);
                return Some(Unit {
                    bytes: UnitBytes::Blocks {
                        start: block_start,
                        end: block_end,
                        header: PacketHeader { session, sequence, count: 1 },
                    },
                    clock: timestamp.map(|ns| Clock { kind: ClockKind::Exchange, ns }),
                    messages: 1,
                    reaches_start: start.is_some_and(|s| s.is_reached_by(sequence, message)),
                    sequence,
                    timestamp,
                    offset: block_start + PREFIX_LEN,
                });
            }
            Some(Err(error)) => {
                let error = error.at(*pos);
                match error {
                    DecodeError::EmptyMessage { .. } => *pos += reader.position(),
                    _ => *done = true,
                }
                on_error(&error);
            }
        }
    }
    None
}

/// Builds an end-of-session packet of `session`, whose next sequence number would have been
/// `next_sequence`, for the end of a file `file_len` bytes long.
fn end_of_session_unit(session: SessionId, next_sequence: u64, file_len: usize) -> Unit {
    Unit {
        bytes: UnitBytes::Blocks {
            start: file_len,
            end: file_len,
            header: PacketHeader { session, sequence: next_sequence, count: moldudp64::END_OF_SESSION },
        },
        clock: None,
        messages: 0,
        reaches_start: false,
        sequence: next_sequence,
        timestamp: None,
        offset: file_len,
    }
}

/// Builds the unit of a whole captured packet.
fn packet_unit(bytes: &[u8], packet: CapturedPacket, start: Option<StartPoint>) -> Unit {
    let capture_clock = (packet.ts_ns != 0).then_some(Clock { kind: ClockKind::Capture, ns: packet.ts_ns });
    let payload = bytes.get(packet.start..packet.end).unwrap_or_default();
    let mut unit = Unit {
        bytes: UnitBytes::Packet { start: packet.start, end: packet.end },
        clock: capture_clock,
        messages: 0,
        reaches_start: false,
        sequence: 0,
        timestamp: None,
        offset: packet.start,
    };
    let Ok(parsed) = moldudp64::parse(payload) else {
        return unit;
    };
    unit.sequence = parsed.header.sequence;
    unit.messages = parsed.header.message_count();
    let mut blocks = parsed.messages();
    let mut index = 0u64;
    while let Some(Ok((offset, message))) = blocks.next_with_offset() {
        if index == 0 {
            unit.timestamp = itch_timestamp(message);
            unit.offset = packet.start + offset;
        }
        let sequence = parsed.header.sequence.wrapping_add(index);
        if start.is_some_and(|s| s.is_reached_by(sequence, message)) {
            unit.reaches_start = true;
            break;
        }
        if start.is_none() {
            break;
        }
        index += 1;
    }
    if unit.clock.is_none() {
        unit.clock = unit.timestamp.map(|ns| Clock { kind: ClockKind::Exchange, ns });
    }
    unit
}

/// Returns the next message of a capture as a one-message packet. Packets without messages, and
/// packets whose header cannot be read, are returned whole. When a message block cannot be
/// framed, the rest of the packet from that block on is returned as one packet, so that stage 1
/// finds and counts the same error as live.
fn next_message_unit(
    bytes: &[u8],
    packets: &[CapturedPacket],
    next: &mut usize,
    block: &mut u16,
    start: Option<StartPoint>,
) -> Option<Unit> {
    loop {
        let packet = *packets.get(*next)?;
        let whole = packet_unit(bytes, packet, None);
        let payload = bytes.get(packet.start..packet.end).unwrap_or_default();
        let parsed = match moldudp64::parse(payload) {
            Ok(parsed) if parsed.header.message_count() > 0 => parsed,
            _ => {
                *next += 1;
                *block = 0;
                return Some(whole);
            }
        };
        let header = parsed.header;
        let mut blocks = parsed.messages();
        for _ in 0..*block {
            blocks.next_with_offset();
        }
        let sequence = header.sequence.wrapping_add(u64::from(*block));
        match blocks.next_with_offset() {
            None => {
                *next += 1;
                *block = 0;
            }
            Some(Ok((offset, message))) => {
                *block += 1;
                let timestamp = itch_timestamp(message);
                let clock = whole.clock.filter(|c| c.kind == ClockKind::Capture);
                return Some(Unit {
                    bytes: UnitBytes::Blocks {
                        start: packet.start + offset - PREFIX_LEN,
                        end: packet.start + offset + message.len(),
                        header: PacketHeader { session: header.session, sequence, count: 1 },
                    },
                    clock: clock.or(timestamp.map(|ns| Clock { kind: ClockKind::Exchange, ns })),
                    messages: 1,
                    reaches_start: start.is_some_and(|s| s.is_reached_by(sequence, message)),
                    sequence,
                    timestamp,
                    offset: packet.start + offset,
                });
            }
            Some(Err(error)) => {
                let remaining = header.count.saturating_sub(*block);
                *next += 1;
                *block = 0;
                return Some(Unit {
                    bytes: UnitBytes::Blocks {
                        start: packet.start + error.offset(),
                        end: packet.end,
                        header: PacketHeader { session: header.session, sequence, count: remaining },
                    },
                    clock: whole.clock,
                    messages: remaining,
                    reaches_start: false,
                    sequence,
                    timestamp: None,
                    offset: packet.start + error.offset(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_file_sessions_are_ten_bytes() {
        assert_eq!(&binary_file_session(0), b"FILE000001");
        assert_eq!(&binary_file_session(41), b"FILE000042");
    }

    #[test]
    fn itch_timestamp_reads_u48_at_byte_5() {
        let message = [b'A', 0, 1, 0, 2, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0xff];
        assert_eq!(itch_timestamp(&message), Some(0x0001_0203_0405));
        assert_eq!(itch_timestamp(&message[..10]), None);
    }

    #[test]
    fn start_point_compares_sequence_and_time() {
        let message = [b'S', 0, 0, 0, 0, 0, 0, 0, 0, 0, 100, b'O'];
        assert!(StartPoint::Sequence(5).is_reached_by(5, &message));
        assert!(!StartPoint::Sequence(6).is_reached_by(5, &message));
        assert!(StartPoint::Time(100).is_reached_by(1, &message));
        assert!(!StartPoint::Time(101).is_reached_by(1, &message));
        assert!(!StartPoint::Time(0).is_reached_by(1, &message[..4]));
    }
}

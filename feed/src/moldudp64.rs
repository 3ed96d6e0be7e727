//! MoldUDP64 packets: the 20-byte header, the message blocks after it, and a builder for senders.
//!
//! A packet is a header followed by `count` message blocks. The header contains the session (10
//! ASCII bytes), the sequence number of the first message (u64) and the message count (u16).
//! Each block is a big-endian u16 length followed by that many bytes of one message. A count of
//! 0 is a heartbeat and 0xFFFF marks the end of the session. Neither carries messages, and the
//! sequence number in both is the next one the sender will use.
//!
//! [`parse`] and [`MessageBlocks`] run on the receive path: they borrow the packet, never
//! allocate and never panic.

use crate::error::DecodeError;

/// Length of the MoldUDP64 header: session, sequence number, message count.
pub const HEADER_LEN: usize = 20;
/// Message count of a heartbeat packet.
pub const HEARTBEAT: u16 = 0;
/// Message count of an end-of-session packet.
pub const END_OF_SESSION: u16 = 0xFFFF;
/// Session name: 10 ASCII bytes, space padded.
pub type SessionId = [u8; 10];

/// Length of the big-endian u16 length prefix of each message block.
const BLOCK_PREFIX_LEN: usize = 2;

/// The fixed header at the start of every MoldUDP64 packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketHeader {
    pub session: SessionId,
    /// Sequence number of the first message in the packet. For heartbeats and end of session it
    /// is the sequence number of the next message the sender will send.
    pub sequence: u64,
    /// Number of message blocks, or [`HEARTBEAT`], or [`END_OF_SESSION`].
    pub count: u16,
}

impl PacketHeader {
    /// Returns true for a heartbeat (count 0).
    pub fn is_heartbeat(&self) -> bool {
        self.count == HEARTBEAT
    }

    /// Returns true for an end-of-session packet (count 0xFFFF).
    pub fn is_end_of_session(&self) -> bool {
        self.count == END_OF_SESSION
    }

    /// Returns the number of messages the packet carries: `count`, or 0 for a heartbeat or an
    /// end of session.
    pub fn message_count(&self) -> u16 {
        if self.is_end_of_session() {
            0
        } else {
            self.count
        }
    }

    /// Returns the sequence number that follows the last message of the packet.
    pub fn next_sequence(&self) -> u64 {
        self.sequence.wrapping_add(u64::from(self.message_count()))
    }

    /// Encodes the header in its 20-byte wire form.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..10].copy_from_slice(&self.session);
        out[10..18].copy_from_slice(&self.sequence.to_be_bytes());
        out[18..20].copy_from_slice(&self.count.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8; HEADER_LEN]) -> PacketHeader {
        let mut session = [0u8; 10];
        session.copy_from_slice(&bytes[..10]);
        let mut sequence = [0u8; 8];
        sequence.copy_from_slice(&bytes[10..18]);
        PacketHeader {
            session,
            sequence: u64::from_be_bytes(sequence),
            count: u16::from_be_bytes([bytes[18], bytes[19]]),
        }
    }
}

/// A parsed MoldUDP64 packet that borrows the receive buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    pub header: PacketHeader,
    body: &'a [u8],
}

/// Parses the header of the packet in `buf`. The message blocks are read lazily by
/// [`Packet::messages`].
///
/// Returns [`DecodeError::ShortPacket`] with offset 0 when `buf` is shorter than the header.
pub fn parse(buf: &[u8]) -> Result<Packet<'_>, DecodeError> {
    let Some((header, body)) = buf.split_first_chunk::<HEADER_LEN>() else {
        return Err(DecodeError::ShortPacket { offset: 0, len: buf.len() });
    };
    Ok(Packet { header: PacketHeader::decode(header), body })
}

impl<'a> Packet<'a> {
    /// Returns the bytes after the header: the message blocks and anything that follows them.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// Returns an iterator over the packet's message blocks. Heartbeats and end-of-session
    /// packets yield nothing, whatever bytes follow their header.
    pub fn messages(&self) -> MessageBlocks<'a> {
        MessageBlocks {
            body: self.body,
            pos: 0,
            index: 0,
            count: self.header.message_count(),
        }
    }

    /// Checks that every one of the header's message blocks lies inside the packet, without
    /// decoding the messages. Returns the first [`DecodeError::BlockPastEnd`] otherwise, and
    /// [`DecodeError::BytesAfterHeader`] for a heartbeat or end-of-session packet with a body:
    /// such a packet is corrupt or forged, and an end of session would stop recovery.
    pub fn check_blocks(&self) -> Result<(), DecodeError> {
        let what = match self.header.count {
            HEARTBEAT => Some("heartbeat"),
            END_OF_SESSION => Some("end-of-session"),
            _ => None,
        };
        if let Some(what) = what.filter(|_| !self.body().is_empty()) {
            return Err(DecodeError::BytesAfterHeader { offset: HEADER_LEN, what, len: self.body().len() });
        }
        let mut blocks = self.messages();
        while let Some(block) = blocks.next_with_offset() {
            block?;
        }
        Ok(())
    }
}

/// Iterator over the message blocks of one packet, yielding each message without its length
/// prefix.
///
/// A block whose length runs past the end of the packet yields [`DecodeError::BlockPastEnd`]
/// and ends the iteration. Its offset counts from the start of the packet (header included).
/// When the packet ends inside a length prefix, the error reports `len` 2, the size of the
/// prefix. Bytes after the last of `count` blocks are ignored.
#[derive(Clone, Debug)]
pub struct MessageBlocks<'a> {
    body: &'a [u8],
    /// Offset in `body` of the next block's length prefix.
    pos: usize,
    /// Index of the next block, from 0.
    index: u16,
    count: u16,
}

impl<'a> MessageBlocks<'a> {
    /// Returns the next message together with its byte offset from the start of the packet
    /// (header included), so that callers can place it in a larger buffer.
    pub fn next_with_offset(&mut self) -> Option<Result<(usize, &'a [u8]), DecodeError>> {
        if self.index >= self.count {
            return None;
        }
        let index = self.index;
        let block_offset = HEADER_LEN + self.pos;
        let rest = self.body.get(self.pos..).unwrap_or_default();

        let Some((prefix, after_prefix)) = rest.split_first_chunk::<BLOCK_PREFIX_LEN>() else {
            self.index = self.count;
            return Some(Err(DecodeError::BlockPastEnd {
                offset: block_offset,
                index,
                len: BLOCK_PREFIX_LEN,
                remaining: rest.len(),
            }));
        };
        let len = usize::from(u16::from_be_bytes(*prefix));
        let Some(message) = after_prefix.get(..len) else {
            self.index = self.count;
            return Some(Err(DecodeError::BlockPastEnd {
                offset: block_offset,
                index,
                len,
                remaining: after_prefix.len(),
            }));
        };

        self.pos += BLOCK_PREFIX_LEN + len;
        self.index += 1;
        Some(Ok((block_offset + BLOCK_PREFIX_LEN, message)))
    }

    /// Returns the index of the next block, which is also the number of blocks read so far.
    pub fn index(&self) -> u16 {
        self.index
    }
}

impl<'a> Iterator for MessageBlocks<'a> {
    type Item = Result<&'a [u8], DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_with_offset().map(|block| block.map(|(_, message)| message))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(usize::from(self.count.saturating_sub(self.index))))
    }
}

/// Builds MoldUDP64 packets one after the other into a buffer that is reused, so building does
/// not allocate once the buffer has grown to `max_payload_bytes`.
///
/// Push messages with [`PacketBuilder::try_push`] until it returns false, send the bytes that
/// [`PacketBuilder::finish`] returns, then push into the next packet: its sequence number
/// continues after the last message of the finished one.
#[derive(Clone, Debug)]
pub struct PacketBuilder {
    buf: Vec<u8>,
    session: SessionId,
    /// Sequence number of the first message of the packet being built.
    sequence: u64,
    count: u16,
    max_payload_bytes: usize,
    /// `finish` has returned the buffer, and the next push starts a new packet.
    finished: bool,
}

impl PacketBuilder {
    /// Creates a builder whose first packet starts at `first_sequence`. `max_payload_bytes` is
    /// the largest packet to build, header included: the UDP payload size, e.g. 1400 to stay
    /// under a 1500-byte Ethernet MTU.
    pub fn new(session: SessionId, first_sequence: u64, max_payload_bytes: usize) -> PacketBuilder {
        // No UDP payload is longer than 65535 bytes, so a larger limit reserves no more.
        let mut buf = Vec::with_capacity(max_payload_bytes.clamp(HEADER_LEN, usize::from(u16::MAX)));
        buf.resize(HEADER_LEN, 0);
        PacketBuilder {
            buf,
            session,
            sequence: first_sequence,
            count: 0,
            max_payload_bytes,
            finished: false,
        }
    }

    /// Appends `msg` as the next message block. Returns false, and leaves the packet as it
    /// was, when the block would make the packet longer than `max_payload_bytes`, when `msg` is
    /// longer than a u16 length can describe, or when the count would reach 0xFFFF (the
    /// end-of-session marker).
    pub fn try_push(&mut self, msg: &[u8]) -> bool {
        self.start_if_finished();
        let Ok(len) = u16::try_from(msg.len()) else {
            return false;
        };
        if self.count >= END_OF_SESSION - 1 {
            return false;
        }
        if self.buf.len() + BLOCK_PREFIX_LEN + msg.len() > self.max_payload_bytes {
            return false;
        }
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(msg);
        self.count += 1;
        true
    }

    /// Writes the header and returns the packet bytes. The next push starts a new packet whose
    /// sequence number follows this packet's last message. A packet with no message is a
    /// heartbeat.
    pub fn finish(&mut self) -> &[u8] {
        self.start_if_finished();
        let header = PacketHeader {
            session: self.session,
            sequence: self.sequence,
            count: self.count,
        };
        if let Some(dst) = self.buf.first_chunk_mut::<HEADER_LEN>() {
            *dst = header.encode();
        }
        self.sequence = header.next_sequence();
        self.count = 0;
        self.finished = true;
        &self.buf
    }

    /// Returns the number of messages in the packet being built.
    pub fn count(&self) -> u16 {
        if self.finished {
            0
        } else {
            self.count
        }
    }

    /// Returns true when the packet being built contains no message.
    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// Returns the sequence number the next pushed message will get.
    pub fn next_sequence(&self) -> u64 {
        self.sequence.wrapping_add(u64::from(self.count()))
    }

    fn start_if_finished(&mut self) {
        if self.finished {
            self.buf.truncate(HEADER_LEN);
            self.finished = false;
        }
    }
}

/// Replaces the contents of `out` with a heartbeat packet: a header with count 0 whose sequence
/// number is the next one the sender will use.
pub fn heartbeat(session: SessionId, next_seq: u64, out: &mut Vec<u8>) {
    write_header_only(session, next_seq, HEARTBEAT, out);
}

/// Replaces the contents of `out` with an end-of-session packet: a header with count 0xFFFF
/// whose sequence number is the one after the session's last message.
pub fn end_of_session(session: SessionId, next_seq: u64, out: &mut Vec<u8>) {
    write_header_only(session, next_seq, END_OF_SESSION, out);
}

fn write_header_only(session: SessionId, sequence: u64, count: u16, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&PacketHeader { session, sequence, count }.encode());
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: SessionId = *b"000010059B";

    #[test]
    fn header_encode_decode_round_trip() {
        let header = PacketHeader { session: SESSION, sequence: 0x0102_0304_0506_0708, count: 0x0A0B };
        let bytes = header.encode();
        assert_eq!(&bytes[..10], b"000010059B");
        assert_eq!(&bytes[10..18], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&bytes[18..], &[0x0A, 0x0B]);
        assert_eq!(PacketHeader::decode(&bytes), header);
    }

    #[test]
    fn packet_ending_inside_length_prefix() {
        let mut buf = PacketHeader { session: SESSION, sequence: 1, count: 2 }.encode().to_vec();
        buf.extend_from_slice(&[0, 1, b'x', 0]);
        let packet = parse(&buf).unwrap();
        let mut blocks = packet.messages();
        assert_eq!(blocks.next(), Some(Ok(&b"x"[..])));
        assert_eq!(
            blocks.next(),
            Some(Err(DecodeError::BlockPastEnd { offset: 23, index: 1, len: 2, remaining: 1 }))
        );
        assert_eq!(blocks.next(), None);
    }

    #[test]
    fn check_blocks_finds_a_missing_block() {
        let mut buf = PacketHeader { session: SESSION, sequence: 1, count: 2 }.encode().to_vec();
        buf.extend_from_slice(&[0, 1, b'x']);
        let short = parse(&buf).unwrap();
        assert_eq!(
            short.check_blocks(),
            Err(DecodeError::BlockPastEnd { offset: 23, index: 1, len: 2, remaining: 0 })
        );
        buf.extend_from_slice(&[0, 1, b'y']);
        assert_eq!(parse(&buf).unwrap().check_blocks(), Ok(()));
        let heartbeat = PacketHeader { session: SESSION, sequence: 3, count: HEARTBEAT }.encode();
        assert_eq!(parse(&heartbeat).unwrap().check_blocks(), Ok(()));
    }

    #[test]
    fn check_blocks_rejects_bytes_after_heartbeat_and_end() {
        for (count, what) in [(HEARTBEAT, "heartbeat"), (END_OF_SESSION, "end-of-session")] {
            let mut buf = PacketHeader { session: SESSION, sequence: 9, count }.encode().to_vec();
            assert_eq!(parse(&buf).unwrap().check_blocks(), Ok(()));
            buf.extend_from_slice(&[0, 1, b'x']);
            assert_eq!(
                parse(&buf).unwrap().check_blocks(),
                Err(DecodeError::BytesAfterHeader { offset: HEADER_LEN, what, len: 3 })
            );
        }
    }

    #[test]
    fn builder_rejects_push_at_count_limit() {
        let mut builder = PacketBuilder::new(SESSION, 1, usize::MAX);
        for _ in 0..(END_OF_SESSION - 1) {
            assert!(builder.try_push(b""));
        }
        assert!(!builder.try_push(b""));
        assert_eq!(builder.count(), END_OF_SESSION - 1);
    }
}

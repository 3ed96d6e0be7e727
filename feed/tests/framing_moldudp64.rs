//! MoldUDP64 framing: `PacketBuilder` packets parsed back, heartbeat and end-of-session packets,
//! and damaged packets, alone and inside a real NASDAQ capture.

mod framing_support;

use framing_support::{decode_all, pcap_path, read_frames, write_pcap, RawFrame};
use mdfh_feed::error::DecodeError;
use mdfh_feed::file::{self, FeedFile, FileError};
use mdfh_feed::moldudp64::{self, PacketBuilder, SessionId, END_OF_SESSION, HEADER_LEN};

const MULTIPLE_PACKETS: &str = "Nasdaq.Equities.TotalView.Itch.v5.0/Multiple.Packets.pcap";
const SESSION: SessionId = *b"TEST000001";

fn real_feed() -> FeedFile {
    file::open(&pcap_path(MULTIPLE_PACKETS)).unwrap()
}

/// Returns the raw bytes of the 39 ITCH messages of the real capture.
fn real_messages() -> Vec<Vec<u8>> {
    real_feed().messages().map(|m| m.unwrap().bytes.to_vec()).collect()
}

#[test]
fn builder_round_trip_real_messages() {
    let messages = real_messages();
    assert_eq!(messages.len(), 39);
    let max = 200;
    let mut builder = PacketBuilder::new(SESSION, 1000, max);
    let mut packets: Vec<Vec<u8>> = Vec::new();
    let mut buffer_address = None;
    for message in &messages {
        if !builder.try_push(message) {
            let count_before = builder.count();
            let packet = builder.finish();
            // A rejected push leaves the packet as it was.
            assert_eq!(packet.get(18..20), Some(&count_before.to_be_bytes()[..]));
            // The builder reuses one buffer for every packet.
            assert_eq!(*buffer_address.get_or_insert(packet.as_ptr()), packet.as_ptr());
            packets.push(packet.to_vec());
            assert!(builder.try_push(message), "a {}-byte message must fit an empty packet", message.len());
        }
    }
    packets.push(builder.finish().to_vec());
    assert!(packets.len() > 1, "200-byte packets cannot hold all 39 messages");

    let mut expected_sequence = 1000;
    let mut parsed_messages = Vec::new();
    for bytes in &packets {
        assert!(bytes.len() <= max, "packet of {} bytes", bytes.len());
        let packet = moldudp64::parse(bytes).unwrap();
        assert_eq!(packet.header.session, SESSION);
        assert_eq!(packet.header.sequence, expected_sequence);
        assert!(packet.header.count > 0);
        expected_sequence += u64::from(packet.header.count);
        let blocks: Vec<&[u8]> = packet.messages().map(Result::unwrap).collect();
        assert_eq!(blocks.len(), usize::from(packet.header.count));
        let framed_len: usize = blocks.iter().map(|block| 2 + block.len()).sum();
        assert_eq!(bytes.len(), HEADER_LEN + framed_len, "bytes after the last block");
        parsed_messages.extend(blocks.into_iter().map(<[u8]>::to_vec));
    }
    assert_eq!(parsed_messages, messages);
    assert_eq!(builder.next_sequence(), 1039);
}

#[test]
fn builder_rejects_message_over_limit() {
    let mut builder = PacketBuilder::new(SESSION, 7, HEADER_LEN + 2 + 10);
    assert!(!builder.try_push(&[b'S'; 11]));
    assert!(builder.try_push(&[b'S'; 10]));
    assert!(!builder.try_push(b""));
    assert_eq!(builder.count(), 1);
    assert_eq!(builder.finish().len(), HEADER_LEN + 2 + 10);
}

#[test]
fn builder_empty_finish_is_heartbeat() {
    let mut builder = PacketBuilder::new(SESSION, 42, 1400);
    let packet = moldudp64::parse(builder.finish()).unwrap();
    assert!(packet.header.is_heartbeat());
    assert_eq!(packet.header.sequence, 42);
    assert_eq!(builder.next_sequence(), 42);

    assert!(builder.try_push(b"S0123456789a"));
    let packet = moldudp64::parse(builder.finish()).unwrap();
    assert_eq!(packet.header.sequence, 42);
    assert_eq!(packet.header.count, 1);
    assert_eq!(builder.next_sequence(), 43);
}

#[test]
fn heartbeat_and_end_of_session_helpers() {
    let mut out = vec![0xAA; 50];
    moldudp64::heartbeat(SESSION, 77, &mut out);
    assert_eq!(out.len(), HEADER_LEN);
    let packet = moldudp64::parse(&out).unwrap();
    assert!(packet.header.is_heartbeat());
    assert!(!packet.header.is_end_of_session());
    assert_eq!(packet.header.session, SESSION);
    assert_eq!(packet.header.sequence, 77);
    assert_eq!(packet.header.next_sequence(), 77);
    assert_eq!(packet.messages().count(), 0);

    moldudp64::end_of_session(SESSION, 78, &mut out);
    assert_eq!(out.len(), HEADER_LEN);
    let packet = moldudp64::parse(&out).unwrap();
    assert!(packet.header.is_end_of_session());
    assert_eq!(packet.header.count, END_OF_SESSION);
    assert_eq!(packet.header.sequence, 78);
    assert_eq!(packet.header.next_sequence(), 78);
    assert_eq!(packet.messages().count(), 0);
}

#[test]
fn heartbeat_ignores_trailing_bytes() {
    for count in [0u16, END_OF_SESSION] {
        let mut bytes = moldudp64::PacketHeader { session: SESSION, sequence: 5, count }.encode().to_vec();
        bytes.extend_from_slice(&[0, 3, b'S', 1, 2]);
        let packet = moldudp64::parse(&bytes).unwrap();
        assert_eq!(packet.messages().next(), None, "count {count:#x}");
    }
}

#[test]
fn packet_shorter_than_header() {
    assert_eq!(moldudp64::parse(&[0; 19]), Err(DecodeError::ShortPacket { offset: 0, len: 19 }));
    assert_eq!(moldudp64::parse(&[]), Err(DecodeError::ShortPacket { offset: 0, len: 0 }));
    let packet = moldudp64::parse(&[0; HEADER_LEN]).unwrap();
    assert!(packet.header.is_heartbeat());
}

#[test]
fn block_length_past_end() {
    let messages = real_messages();
    let (first, second) = (&messages[1], &messages[2]);
    let mut builder = PacketBuilder::new(SESSION, 1, 1400);
    assert!(builder.try_push(first));
    assert!(builder.try_push(second));
    let mut bytes = builder.finish().to_vec();
    let second_block = HEADER_LEN + 2 + first.len();
    bytes[second_block..second_block + 2].copy_from_slice(&200u16.to_be_bytes());

    let packet = moldudp64::parse(&bytes).unwrap();
    let mut blocks = packet.messages();
    assert_eq!(blocks.next(), Some(Ok(&first[..])));
    let expected = DecodeError::BlockPastEnd { offset: second_block, index: 1, len: 200, remaining: second.len() };
    assert_eq!(blocks.next(), Some(Err(expected)));
    assert_eq!(blocks.next(), None);
}

#[test]
fn count_beyond_blocks_is_past_end() {
    let messages = real_messages();
    let mut builder = PacketBuilder::new(SESSION, 1, 1400);
    assert!(builder.try_push(&messages[0]));
    let mut bytes = builder.finish().to_vec();
    bytes[18..20].copy_from_slice(&2u16.to_be_bytes());

    let packet = moldudp64::parse(&bytes).unwrap();
    let mut blocks = packet.messages();
    assert_eq!(blocks.next(), Some(Ok(&messages[0][..])));
    let end = bytes.len();
    assert_eq!(blocks.next(), Some(Err(DecodeError::BlockPastEnd { offset: end, index: 1, len: 2, remaining: 0 })));
    assert_eq!(blocks.next(), None);
}

#[test]
fn unknown_type_in_real_packet() {
    let feed = real_feed();
    let target = feed.messages().nth(6).unwrap().unwrap();
    let (bad_offset, bad_sequence) = (target.offset, target.moldudp64_sequence.unwrap());
    let mut bytes = feed.bytes().to_vec();
    bytes[bad_offset] = b'Z';

    let damaged = FeedFile::from_bytes(bytes).unwrap();
    let (decoded, errors) = decode_all(&damaged);
    assert_eq!(errors.len(), 1, "errors: {errors:?}");
    match &errors[0] {
        FileError::Decode(err) => {
            assert_eq!(*err, DecodeError::UnknownType { offset: bad_offset, msg_type: b'Z' });
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    assert_eq!(decoded.len(), 38);
    let sequences: Vec<u64> = decoded[1..].iter().map(|d| d.sequence.unwrap()).collect();
    let expected: Vec<u64> = (19_009_117..19_009_155).filter(|&seq| seq != bad_sequence).collect();
    assert_eq!(sequences, expected);
}

#[test]
fn count_past_end_in_real_packet() {
    let feed = real_feed();
    let packets: Vec<_> = feed.packets().unwrap().map(Result::unwrap).collect();
    let count_offset = packets[1].payload_offset + 18;
    let packet_end = packets[1].payload_offset + packets[1].payload.len();
    let mut bytes = feed.bytes().to_vec();
    bytes[count_offset..count_offset + 2].copy_from_slice(&40u16.to_be_bytes());

    let damaged = FeedFile::from_bytes(bytes).unwrap();
    let (decoded, errors) = decode_all(&damaged);
    assert_eq!(decoded.len(), 39);
    assert_eq!(errors.len(), 1, "errors: {errors:?}");
    let expected = DecodeError::BlockPastEnd { offset: packet_end, index: 38, len: 2, remaining: 0 };
    assert!(matches!(&errors[0], FileError::Decode(err) if *err == expected), "got {:?}", errors[0]);
}

#[test]
fn short_packet_in_capture() {
    let (header, frames) = read_frames(MULTIPLE_PACKETS);
    let builder = etherparse::PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4([10, 0, 0, 1], [233, 54, 12, 111], 8).udp(5000, 26477);
    let mut short = Vec::new();
    builder.write(&mut short, &[0u8; 10]).unwrap();
    let with_short = vec![frames[0].clone(), RawFrame { timestamp: frames[0].timestamp, data: short }, frames[1].clone()];

    let feed = FeedFile::from_bytes(write_pcap(header, &with_short)).unwrap();
    let short_packet = feed.packets().unwrap().nth(1).unwrap().unwrap();
    assert_eq!(short_packet.payload, &[0u8; 10]);
    let (decoded, errors) = decode_all(&feed);
    assert_eq!(decoded.len(), 39);
    assert_eq!(errors.len(), 1, "errors: {errors:?}");
    let expected = DecodeError::ShortPacket { offset: short_packet.payload_offset, len: 10 };
    assert!(matches!(&errors[0], FileError::Decode(err) if *err == expected), "got {:?}", errors[0]);
}

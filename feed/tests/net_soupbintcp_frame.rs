//! SoupBinTCP packet encoding, decoding and the streaming decoder, without sockets.

mod net_support;

use mdfh_feed::soupbintcp::frame::{self, MAX_FRAME, MAX_PAYLOAD};
use mdfh_feed::soupbintcp::{ClientPacket, FrameReader, LoginRequest, RejectReason, ServerPacket, SoupError};

fn encode_server(packet: ServerPacket<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    packet.encode(&mut out).unwrap();
    out
}

fn encode_client(packet: ClientPacket<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    packet.encode(&mut out).unwrap();
    out
}

#[test]
fn login_request_wire_layout() {
    let login = LoginRequest::new("ab", "pw", "SESS", 42).unwrap();
    let bytes = encode_client(ClientPacket::LoginRequest(login));
    let mut expected = vec![0x00, 47, b'L'];
    expected.extend_from_slice(b"ab    ");
    expected.extend_from_slice(b"pw        ");
    expected.extend_from_slice(b"      SESS");
    expected.extend_from_slice(b"                  42");
    assert_eq!(bytes, expected);
    assert_eq!(ClientPacket::decode(&bytes[2..], 0).unwrap(), ClientPacket::LoginRequest(login));
}

#[test]
fn login_accepted_wire_layout() {
    let session = frame::session_id("000010059B").unwrap();
    let bytes = encode_server(ServerPacket::LoginAccepted { session, sequence: 14757721 });
    let mut expected = vec![0x00, 31, b'A'];
    expected.extend_from_slice(b"000010059B");
    expected.extend_from_slice(b"            14757721");
    assert_eq!(bytes, expected);
}

#[test]
fn server_packets_round_trip() {
    let message = net_support::real_itch_messages().remove(0);
    let session = frame::session_id("S1").unwrap();
    let packets = [
        ServerPacket::Debug(b"hello"),
        ServerPacket::LoginAccepted { session, sequence: 0 },
        ServerPacket::LoginAccepted { session, sequence: u64::MAX },
        ServerPacket::LoginRejected(RejectReason::NotAuthorized),
        ServerPacket::LoginRejected(RejectReason::SessionNotAvailable),
        ServerPacket::LoginRejected(RejectReason::Other(b'X')),
        ServerPacket::SequencedData(&message),
        ServerPacket::SequencedData(&[]),
        ServerPacket::Heartbeat,
        ServerPacket::EndOfSession,
    ];
    for packet in packets {
        let bytes = encode_server(packet);
        let len = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
        assert_eq!(len, bytes.len() - 2, "length prefix of {packet:?}");
        assert_eq!(ServerPacket::decode(&bytes[2..], 0).unwrap(), packet);
    }
}

#[test]
fn client_packets_round_trip() {
    let login = LoginRequest::new("user01", "0123456789", "", 0).unwrap();
    let packets = [
        ClientPacket::Debug(b"x"),
        ClientPacket::LoginRequest(login),
        ClientPacket::UnsequencedData(b"order"),
        ClientPacket::Heartbeat,
        ClientPacket::LogoutRequest,
    ];
    for packet in packets {
        let bytes = encode_client(packet);
        assert_eq!(ClientPacket::decode(&bytes[2..], 0).unwrap(), packet);
    }
}

#[test]
fn numbers_accept_either_padding() {
    let mut body = b"A".to_vec();
    body.extend_from_slice(b"SESSION001");
    body.extend_from_slice(b"7                   ");
    assert_eq!(
        ServerPacket::decode(&body, 0).unwrap(),
        ServerPacket::LoginAccepted { session: *b"SESSION001", sequence: 7 }
    );
}

#[test]
fn malformed_bodies_are_typed_errors() {
    assert_eq!(ServerPacket::decode(&[], 9), Err(SoupError::EmptyPacket { offset: 9 }));
    assert_eq!(
        ServerPacket::decode(b"Q", 3),
        Err(SoupError::UnknownType { offset: 3, packet_type: b'Q' })
    );
    // A client packet type is unknown to the server-packet decoder, and the other way round.
    assert!(matches!(ServerPacket::decode(b"R", 0), Err(SoupError::UnknownType { .. })));
    assert!(matches!(ClientPacket::decode(b"H", 0), Err(SoupError::UnknownType { .. })));
    assert_eq!(
        ServerPacket::decode(b"Hx", 5),
        Err(SoupError::WrongLength { offset: 5, packet_type: b'H', len: 2, expected: 1 })
    );
    assert_eq!(
        ServerPacket::decode(b"J", 0),
        Err(SoupError::WrongLength { offset: 0, packet_type: b'J', len: 1, expected: 2 })
    );
    assert!(matches!(ClientPacket::decode(b"Labc", 0), Err(SoupError::WrongLength { expected: 47, .. })));
}

#[test]
fn invalid_sequence_numbers_rejected() {
    let cases: [&[u8; 20]; 4] = [
        b"         12x4       ",
        b"                    ",
        b"        1 2         ",
        b"99999999999999999999",
    ];
    for digits in cases {
        let mut body = b"A".to_vec();
        body.extend_from_slice(b"SESSION001");
        body.extend_from_slice(digits);
        let result = ServerPacket::decode(&body, 100);
        assert_eq!(
            result,
            Err(SoupError::InvalidNumber {
                offset: 100,
                packet_type: b'A',
                field: "sequence number",
                value: *digits,
            }),
            "sequence field {:?}",
            String::from_utf8_lossy(digits)
        );
    }
}

#[test]
fn login_fields_checked() {
    assert!(matches!(LoginRequest::new("toolong", "", "", 1), Err(SoupError::InvalidField { field: "username", .. })));
    assert!(matches!(LoginRequest::new("", "01234567890", "", 1), Err(SoupError::InvalidField { field: "password", .. })));
    assert!(matches!(LoginRequest::new("", "", "SESSION0001", 1), Err(SoupError::InvalidField { field: "session", .. })));
    assert!(matches!(LoginRequest::new("é", "", "", 1), Err(SoupError::InvalidField { .. })));
}

#[test]
fn oversized_payload_not_encoded() {
    let big = vec![0u8; MAX_PAYLOAD + 1];
    let mut out = Vec::new();
    assert_eq!(
        ServerPacket::SequencedData(&big).encode(&mut out),
        Err(SoupError::PayloadTooLong { len: MAX_PAYLOAD + 1 })
    );
    assert!(out.is_empty(), "a failed encode must leave the output untouched");
    ServerPacket::SequencedData(&big[..MAX_PAYLOAD]).encode(&mut out).unwrap();
    assert_eq!(out.len(), MAX_FRAME);
}

/// Collects `(offset, body)` of every whole packet the reader holds.
fn drain(reader: &mut FrameReader) -> Vec<(u64, Vec<u8>)> {
    let mut frames = Vec::new();
    while let Some((offset, body)) = reader.next_frame().unwrap() {
        frames.push((offset, body.to_vec()));
    }
    frames
}

#[test]
fn reader_handles_one_byte_at_a_time() {
    let messages = net_support::real_itch_messages();
    let mut stream = Vec::new();
    let mut expected = Vec::new();
    for m in &messages {
        expected.push((stream.len() as u64, [&[b'S'][..], m].concat()));
        ServerPacket::SequencedData(m).encode(&mut stream).unwrap();
    }

    let mut reader = FrameReader::new();
    let mut frames = Vec::new();
    for byte in &stream {
        assert_eq!(reader.push(std::slice::from_ref(byte)), 1);
        frames.extend(drain(&mut reader));
    }
    assert_eq!(frames.len(), messages.len());
    assert!(frames == expected, "frames differ from the packets encoded");
    assert_eq!(reader.buffered(), 0);
    assert_eq!(reader.stream_offset(), stream.len() as u64);
}

#[test]
fn reader_compacts_across_many_reads() {
    // Packets of varied sizes, far more bytes than the buffer, read in chunks that split packets.
    let mut stream = Vec::new();
    let mut sizes = Vec::new();
    for i in 0..400usize {
        let size = (i * 7919) % 3000;
        sizes.push(size);
        let payload: Vec<u8> = (0..size).map(|j| (i + j) as u8).collect();
        ServerPacket::SequencedData(&payload).encode(&mut stream).unwrap();
    }
    let big = vec![0x5A; MAX_PAYLOAD];
    ServerPacket::SequencedData(&big).encode(&mut stream).unwrap();
    sizes.push(MAX_PAYLOAD);
    assert!(stream.len() > 2 * MAX_FRAME);

    let mut reader = FrameReader::new();
    let mut source = &stream[..];
    let mut got = Vec::new();
    loop {
        let mut chunk = &source[..source.len().min(1500)];
        let n = reader.read_from(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        source = &source[n..];
        for (_, body) in drain(&mut reader) {
            got.push(body);
        }
    }
    assert_eq!(got.len(), sizes.len());
    for (i, (body, size)) in got.iter().zip(&sizes).enumerate() {
        assert_eq!(body.len(), size + 1, "packet {i} length");
        assert_eq!(body[0], b'S');
    }
    assert!(got[400][1..].iter().all(|&b| b == 0x5A));
}

#[test]
fn reader_zero_length_is_error() {
    let mut reader = FrameReader::new();
    let mut bytes = Vec::new();
    ServerPacket::Heartbeat.encode(&mut bytes).unwrap();
    bytes.extend_from_slice(&[0, 0, b'H']);
    reader.push(&bytes);
    assert_eq!(reader.next_frame().unwrap(), Some((0, &b"H"[..])));
    assert_eq!(reader.next_frame(), Err(SoupError::EmptyPacket { offset: 3 }));
    reader.reset();
    assert_eq!(reader.buffered(), 0);
    assert_eq!(reader.next_frame().unwrap(), None);
}

//! Round trips of every frame through the encoders and the decoder, the wire layout, and every
//! decode error.

use mdfh_feed::itch::{Side, Stock};
use mdfh_matcher::{BookStatus, FeedQuality, QualityState, TradeEvent, TradeKind};

use crate::decode::{decode_frame, decode_frame_with_limit};
use crate::encode::{encode_error, encode_goodbye, encode_snapshot, encode_subscribe};
use crate::error::ProtocolError;
use crate::protocol::*;

const LEVELS: [Level; 3] = [
    Level { price: 1_000_100, shares: 300, orders: 2 },
    Level { price: 1_000_000, shares: 5, orders: 1 },
    Level { price: 999_900, shares: u64::MAX, orders: u32::MAX },
];

fn snapshot_header() -> SnapshotHeader {
    SnapshotHeader {
        seq: 7,
        locate: 13,
        stock: Stock::new("AAPL"),
        status: BookStatus::Stale,
        trading_state: b'T',
        feed_seq: 123_456,
        depth: 10,
    }
}

/// Encodes one frame of every type, some types several times with edge values.
fn sample_frames() -> Vec<Vec<u8>> {
    let trade = TradeEvent {
        price: 1_234_500,
        shares: 100,
        match_number: 99,
        resting_side: Some(Side::Sell),
        kind: TradeKind::Execution,
    };
    let cross = TradeEvent { resting_side: None, kind: TradeKind::Cross, ..trade };
    let hidden = TradeEvent { resting_side: Some(Side::Buy), kind: TradeKind::NonDisplayed, ..trade };
    let ack = SubscribeAck { target: Target::Symbol(Stock::new("MSFT")), depth: 5, locate: 2, state: AckState::Active };
    let pending = SubscribeAck { target: Target::Symbol(Stock::new("ZVZZT")), depth: 0, locate: 0, state: AckState::Pending };
    let update = LevelUpdate {
        seq: u64::MAX,
        locate: u16::MAX,
        side: Side::Buy,
        level: Level { price: u32::MAX, shares: 0, orders: 0 },
        feed_seq: 42,
        send_ns: 1_700_000_000_000_000_000,
    };

    let frames = [
        Frame::Subscribe { target: Target::Symbol(Stock::new("AAPL")), depth: 10 },
        Frame::Subscribe { target: Target::All, depth: 0 },
        Frame::Unsubscribe { target: Target::Symbol(Stock::new("BRK.A")) },
        Frame::Unsubscribe { target: Target::All },
        Frame::ClientHeartbeat,
        Frame::SubscribeAck(ack),
        Frame::SubscribeAck(pending),
        Frame::SubscribeAck(SubscribeAck { target: Target::All, depth: 3, locate: 0, state: AckState::Active }),
        Frame::SubscribeReject { target: Target::All, code: ErrorCode::DepthTooLarge, text: "depth 99 is above 50" },
        Frame::Error { code: ErrorCode::UnknownType, text: "" },
        Frame::Error { code: ErrorCode::NotSubscribed, text: "not subscribed to ÄÖÜ" },
        Frame::Heartbeat { last_seq: 0, send_ns: 1 },
        Frame::Goodbye { reason: GoodbyeReason::SlowConsumer, last_seq: 77, text: "queue full" },
        Frame::LevelUpdate(update),
        Frame::LevelUpdate(LevelUpdate { side: Side::Sell, level: LEVELS[0], ..update }),
        Frame::Trade(TradeUpdate { seq: 1, locate: 2, trade, feed_seq: 3, send_ns: 4 }),
        Frame::Trade(TradeUpdate { seq: 1, locate: 2, trade: cross, feed_seq: 3, send_ns: 4 }),
        Frame::Trade(TradeUpdate { seq: 1, locate: 2, trade: hidden, feed_seq: 3, send_ns: 4 }),
        Frame::BookStatus(StatusUpdate { seq: 9, locate: 1, status: BookStatus::Ok, feed_seq: 8 }),
        Frame::TradingState(TradingStateUpdate { seq: 10, locate: 1, state: b'H', feed_seq: 8 }),
        Frame::Reset { seq: 11, feed_seq: 0 },
        Frame::FeedQuality(QualityUpdate { seq: 12, feed_seq: 0, quality: FeedQuality::OK }),
        Frame::FeedQuality(QualityUpdate {
            seq: 13,
            feed_seq: 900,
            quality: FeedQuality { state: QualityState::Recovering, since: 881 },
        }),
        Frame::FeedQuality(QualityUpdate {
            seq: 14,
            feed_seq: 950,
            quality: FeedQuality { state: QualityState::Recovered, since: 0 },
        }),
        Frame::FeedQuality(QualityUpdate {
            seq: u64::MAX,
            feed_seq: u64::MAX,
            quality: FeedQuality { state: QualityState::Stale, since: u64::MAX },
        }),
    ];
    let mut encoded: Vec<Vec<u8>> = frames
        .iter()
        .map(|frame| {
            let mut buf = Vec::new();
            frame.encode(&mut buf);
            buf
        })
        .collect();

    let mut snapshot = Vec::new();
    encode_snapshot(&mut snapshot, &snapshot_header(), LEVELS, LEVELS.iter().rev().copied().take(2));
    encoded.push(snapshot);
    let mut empty_snapshot = Vec::new();
    encode_snapshot(&mut empty_snapshot, &snapshot_header(), [], []);
    encoded.push(empty_snapshot);
    encoded
}

fn decode_one(bytes: &[u8]) -> Frame<'_> {
    match decode_frame(bytes) {
        Ok(Some((frame, consumed))) => {
            assert_eq!(consumed, bytes.len(), "consumed bytes of {frame:?}");
            frame
        }
        other => panic!("expected one frame from {bytes:02x?}, got {other:?}"),
    }
}

#[test]
fn every_frame_round_trips() {
    for bytes in sample_frames() {
        let frame = decode_one(&bytes);
        let mut again = Vec::new();
        frame.encode(&mut again);
        assert_eq!(again, bytes, "re-encoding {frame:?}");
        assert_eq!(frame.to_owned_frame().seq(), frame.seq(), "sequence of {frame:?}");
        assert_eq!(bytes.get(4), Some(&frame.frame_type()), "type byte of {frame:?}");
    }
}

#[test]
fn length_field_counts_type_and_body() {
    for bytes in sample_frames() {
        let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        assert_eq!(len, bytes.len() - 4, "frame {bytes:02x?}");
    }
}

#[test]
fn every_prefix_needs_more() {
    for bytes in sample_frames() {
        for end in 0..bytes.len() {
            assert_eq!(decode_frame(&bytes[..end]), Ok(None), "prefix of {end} bytes of {bytes:02x?}");
        }
    }
}

#[test]
fn concatenated_stream_decodes_in_order() {
    let frames = sample_frames();
    let stream: Vec<u8> = frames.concat();
    let mut at = 0;
    for expected in &frames {
        let Ok(Some((frame, consumed))) = decode_frame(&stream[at..]) else {
            panic!("no frame at byte offset {at}");
        };
        assert_eq!(consumed, expected.len());
        assert_eq!(frame, decode_one(expected));
        at += consumed;
    }
    assert_eq!(at, stream.len());
}

#[test]
fn fixed_frame_sizes() {
    let sizes: Vec<(u8, usize)> =
        sample_frames().iter().map(|b| (b[4], b.len())).filter(|(t, _)| *t != b'S' && *t != b'J' && *t != b'E' && *t != b'G').collect();
    for (frame_type, size) in sizes {
        let expected = match frame_type {
            b's' => 16,
            b'u' => 14,
            b'h' => 5,
            b'A' => 19,
            b'H' => 21,
            b'L' => 48,
            b'T' => 53,
            b'B' | b'V' => 24,
            b'R' => 21,
            b'Q' => 30,
            other => panic!("unexpected type {other}"),
        };
        assert_eq!(size, expected, "size of frame type '{}'", frame_type as char);
    }
}

#[test]
fn level_update_layout() {
    let update = LevelUpdate {
        seq: 0x1111_1111_1111_1111,
        locate: 0x2222,
        side: Side::Sell,
        level: Level { price: 0x3333_3333, shares: 0x4444_4444_4444_4444, orders: 0x5555_5555 },
        feed_seq: 0x6666_6666_6666_6666,
        send_ns: 0x7777_7777_7777_7777,
    };
    let mut bytes = Vec::new();
    crate::encode::encode_level_update(&mut bytes, &update);
    assert_eq!(&bytes[0..4], &44u32.to_le_bytes());
    assert_eq!(bytes[4], b'L');
    assert_eq!(&bytes[5..13], &[0x11; 8]);
    assert_eq!(&bytes[13..15], &[0x22; 2]);
    assert_eq!(bytes[15], b'S');
    assert_eq!(&bytes[16..20], &[0x33; 4]);
    assert_eq!(&bytes[20..28], &[0x44; 8]);
    assert_eq!(&bytes[28..32], &[0x55; 4]);
    assert_eq!(&bytes[32..40], &[0x66; 8]);
    assert_eq!(&bytes[40..48], &[0x77; 8]);
}

#[test]
fn feed_quality_layout() {
    let update = QualityUpdate {
        seq: 0x1111_1111_1111_1111,
        feed_seq: 0x2222_2222_2222_2222,
        quality: FeedQuality { state: QualityState::Recovering, since: 0x3333_3333_3333_3333 },
    };
    let mut bytes = Vec::new();
    crate::encode::encode_feed_quality(&mut bytes, &update);
    assert_eq!(bytes.len(), 30);
    assert_eq!(&bytes[0..4], &26u32.to_le_bytes());
    assert_eq!(bytes[4], b'Q');
    assert_eq!(&bytes[5..13], &[0x11; 8]);
    assert_eq!(&bytes[13..21], &[0x22; 8]);
    assert_eq!(bytes[21], b'R');
    assert_eq!(&bytes[22..30], &[0x33; 8]);
    assert!(is_data_frame(b'Q'));
}

#[test]
fn quality_state_bytes() {
    let cases =
        [(QualityState::Ok, b'O'), (QualityState::Recovering, b'R'), (QualityState::Recovered, b'C'), (QualityState::Stale, b'S')];
    for (state, byte) in cases {
        assert_eq!(quality_state_byte(state), byte, "byte of {state:?}");
        assert_eq!(quality_state_from_byte(byte), Some(state), "state of '{}'", byte as char);
    }
    assert_eq!(quality_state_from_byte(b'X'), None);
}

#[test]
fn snapshot_layout() {
    let mut bytes = Vec::new();
    encode_snapshot(&mut bytes, &snapshot_header(), LEVELS.iter().copied().take(1), LEVELS.iter().copied().take(2));
    assert_eq!(bytes.len(), 39 + 3 * 16);
    assert_eq!(&bytes[5..13], &7u64.to_le_bytes());
    assert_eq!(&bytes[13..15], &13u16.to_le_bytes());
    assert_eq!(&bytes[15..23], b"AAPL    ");
    assert_eq!(bytes[23], b'S');
    assert_eq!(bytes[24], b'T');
    assert_eq!(&bytes[25..33], &123_456u64.to_le_bytes());
    assert_eq!(&bytes[33..35], &10u16.to_le_bytes());
    assert_eq!(&bytes[35..37], &1u16.to_le_bytes());
    assert_eq!(&bytes[37..39], &2u16.to_le_bytes());
    assert_eq!(&bytes[39..43], &1_000_100u32.to_le_bytes());
    assert_eq!(&bytes[43..51], &300u64.to_le_bytes());
    assert_eq!(&bytes[51..55], &2u32.to_le_bytes());
}

#[test]
fn subscribe_layout() {
    let mut bytes = Vec::new();
    encode_subscribe(&mut bytes, Target::Symbol(Stock::new("IBM")), 0x0102);
    assert_eq!(bytes, [12, 0, 0, 0, b's', 0, b'I', b'B', b'M', b' ', b' ', b' ', b' ', b' ', 0x02, 0x01]);
    bytes.clear();
    encode_subscribe(&mut bytes, Target::All, 0);
    assert_eq!(bytes, [12, 0, 0, 0, b's', 1, b' ', b' ', b' ', b' ', b' ', b' ', b' ', b' ', 0, 0]);
}

#[test]
fn long_text_is_cut_at_char_boundary() {
    let text = "é".repeat(200);
    let mut bytes = Vec::new();
    encode_error(&mut bytes, ErrorCode::InvalidField, &text);
    let Frame::Error { text: decoded, .. } = decode_one(&bytes) else {
        panic!("not an Error frame");
    };
    assert_eq!(decoded.len(), 254);
    assert!(text.starts_with(decoded));
}

/// Returns a frame with the given type and body, with a correct length field.
fn raw_frame(frame_type: u8, body: &[u8]) -> Vec<u8> {
    let mut bytes = ((body.len() + 1) as u32).to_le_bytes().to_vec();
    bytes.push(frame_type);
    bytes.extend_from_slice(body);
    bytes
}

fn subscribe_body(flags: u8, symbol: &[u8; 8]) -> Vec<u8> {
    let mut body = vec![flags];
    body.extend_from_slice(symbol);
    body.extend_from_slice(&5u16.to_le_bytes());
    body
}

#[test]
fn too_long_frame_is_rejected_before_body() {
    let bytes = 1025u32.to_le_bytes();
    let result = decode_frame_with_limit(&bytes, MAX_REQUEST_LEN);
    let expected = ProtocolError::FrameTooLong { offset: 0, len: 1025, max: 1024 };
    assert_eq!(result, Err(expected.clone()));
    assert_eq!(expected.skip_len(), None);
    assert_eq!(decode_frame(&(MAX_FRAME_LEN + 1).to_le_bytes()).map(|_| ()).map_err(|e| e.skip_len()), Err(None));
}

#[test]
fn empty_frame_is_error() {
    let result = decode_frame(&[0, 0, 0, 0, b's']);
    assert_eq!(result, Err(ProtocolError::EmptyFrame { offset: 0 }));
    assert_eq!(ProtocolError::EmptyFrame { offset: 0 }.skip_len(), Some(4));
}

#[test]
fn unknown_type_is_error() {
    let bytes = raw_frame(b'z', &[1, 2, 3]);
    let Err(error) = decode_frame(&bytes) else {
        panic!("decoded an unknown type");
    };
    assert_eq!(error, ProtocolError::UnknownType { offset: 0, frame_type: b'z', len: 4 });
    assert_eq!(error.skip_len(), Some(bytes.len()));
    assert_eq!(error.error_code(), ErrorCode::UnknownType);
}

#[test]
fn bad_lengths_are_errors() {
    let cases: Vec<Vec<u8>> = vec![
        raw_frame(b's', &[0; 4]),
        raw_frame(b'u', &[0; 11]),
        raw_frame(b'h', &[0]),
        raw_frame(b'A', &[0; 13]),
        raw_frame(b'H', &[0; 15]),
        raw_frame(b'L', &[0; 42]),
        raw_frame(b'T', &[0; 49]),
        raw_frame(b'B', &[0; 18]),
        raw_frame(b'V', &[0; 20]),
        raw_frame(b'R', &[0; 8]),
        raw_frame(b'Q', &[0; 24]),
        raw_frame(b'Q', &[0; 26]),
        raw_frame(b'E', &[1]),
        raw_frame(b'G', &[1, 0]),
        raw_frame(b'S', &[0; 20]),
        // Error with a text one byte over the maximum.
        raw_frame(b'E', &[&1u16.to_le_bytes()[..], &[b'x'; MAX_TEXT_LEN + 1]].concat()),
    ];
    for bytes in cases {
        let result = decode_frame(&bytes);
        let Err(ProtocolError::BadLength { offset, frame_type, len, .. }) = result else {
            panic!("expected BadLength for {bytes:02x?}, got {result:?}");
        };
        assert_eq!((offset, frame_type, len as usize), (0, bytes[4], bytes.len() - 4));
    }
}

#[test]
fn snapshot_counts_must_match_length() {
    let mut bytes = Vec::new();
    encode_snapshot(&mut bytes, &snapshot_header(), LEVELS, []);
    // Claim one more ask than the frame carries.
    bytes[37] = 1;
    let result = decode_frame(&bytes);
    assert!(matches!(result, Err(ProtocolError::BadLength { frame_type: b'S', .. })), "got {result:?}");
}

#[test]
fn invalid_fields_name_field_and_offset() {
    let bad_symbol = raw_frame(b's', &subscribe_body(0, b"AA\xffL    "));
    let leading_space = raw_frame(b's', &subscribe_body(0, b" AAPL   "));
    let control_byte = raw_frame(b'u', &subscribe_body(0, b"AAPL\n   ")[..9]);
    let bad_flags = raw_frame(b's', &subscribe_body(2, b"AAPL    "));
    let all_with_symbol = raw_frame(b's', &subscribe_body(1, b"AAPL    "));
    let mut level_update = Vec::new();
    Frame::LevelUpdate(LevelUpdate {
        seq: 1,
        locate: 1,
        side: Side::Buy,
        level: LEVELS[0],
        feed_seq: 1,
        send_ns: 1,
    })
    .encode(&mut level_update);
    let mut bad_side = level_update.clone();
    bad_side[15] = b'X';
    let mut status = Vec::new();
    Frame::BookStatus(StatusUpdate { seq: 1, locate: 1, status: BookStatus::Ok, feed_seq: 1 }).encode(&mut status);
    let mut bad_status = status.clone();
    bad_status[15] = b'Q';
    let mut trade = Vec::new();
    let event = TradeEvent { price: 1, shares: 1, match_number: 1, resting_side: None, kind: TradeKind::Cross };
    Frame::Trade(TradeUpdate { seq: 1, locate: 1, trade: event, feed_seq: 1, send_ns: 1 }).encode(&mut trade);
    let mut bad_kind = trade.clone();
    bad_kind[15] = b'Z';
    let mut bad_resting_side = trade.clone();
    bad_resting_side[16] = b'?';
    let mut ack = Vec::new();
    Frame::SubscribeAck(SubscribeAck { target: Target::All, depth: 0, locate: 0, state: AckState::Active }).encode(&mut ack);
    let mut bad_ack = ack.clone();
    bad_ack[18] = b'X';
    let mut goodbye = Vec::new();
    encode_goodbye(&mut goodbye, GoodbyeReason::Shutdown, 0, "bye");
    let mut bad_reason = goodbye.clone();
    bad_reason[5] = 99;
    let mut error = Vec::new();
    encode_error(&mut error, ErrorCode::BadLength, "x");
    let mut bad_code = error.clone();
    bad_code[5] = 0;
    let mut quality = Vec::new();
    Frame::FeedQuality(QualityUpdate { seq: 1, feed_seq: 1, quality: FeedQuality::OK }).encode(&mut quality);
    let mut bad_quality = quality.clone();
    bad_quality[21] = b'X';

    let cases: [(&str, Vec<u8>, usize, &str); 13] = [
        ("bad symbol byte", bad_symbol, 6, "symbol"),
        ("leading space", leading_space, 6, "symbol"),
        ("control byte", control_byte, 6, "symbol"),
        ("bad flags", bad_flags, 5, "flags"),
        ("all with symbol", all_with_symbol, 6, "symbol with the all-instruments flag"),
        ("bad side", bad_side, 15, "side"),
        ("bad status", bad_status, 15, "book status"),
        ("bad trade kind", bad_kind, 15, "trade kind"),
        ("bad resting side", bad_resting_side, 16, "side"),
        ("bad ack state", bad_ack, 18, "ack state"),
        ("bad goodbye reason", bad_reason, 5, "goodbye reason"),
        ("bad error code", bad_code, 5, "error code"),
        ("bad quality state", bad_quality, 21, "quality state"),
    ];
    for (name, bytes, expected_offset, expected_field) in cases {
        let result = decode_frame(&bytes);
        let Err(ProtocolError::InvalidField { offset, field, len, .. }) = result else {
            panic!("{name}: expected InvalidField, got {result:?}");
        };
        assert_eq!(offset, expected_offset, "{name}: offset");
        assert_eq!(field, expected_field, "{name}: field");
        assert_eq!(len as usize, bytes.len() - 4, "{name}: length");
    }
}

#[test]
fn invalid_utf8_text_is_error() {
    let mut bytes = Vec::new();
    encode_error(&mut bytes, ErrorCode::BadLength, "ab");
    let last = bytes.len() - 1;
    bytes[last] = 0xff;
    let result = decode_frame(&bytes);
    assert_eq!(result, Err(ProtocolError::InvalidText { offset: 7, frame_type: b'E', len: 5 }));
}

#[test]
fn at_shifts_offsets() {
    let error = ProtocolError::InvalidField { offset: 6, frame_type: b's', len: 12, field: "symbol", value: 0 };
    assert_eq!(
        error.at(100),
        ProtocolError::InvalidField { offset: 106, frame_type: b's', len: 12, field: "symbol", value: 0 }
    );
    let gap = ProtocolError::SequenceGap { expected: 1, received: 2 };
    assert_eq!(gap.clone().at(100), gap);
}

#[test]
fn symbol_validation() {
    assert!(is_valid_symbol(b"AAPL    "));
    assert!(is_valid_symbol(b"BRK.A   "));
    assert!(is_valid_symbol(b"ABCDEFGH"));
    assert!(!is_valid_symbol(b"        "));
    assert!(!is_valid_symbol(b"AB\x7fC    "));
    assert!(!is_valid_symbol(b"\0AAPL   "));
}

//! Malformed requests get an Error frame (or a Goodbye when the stream cannot be resynchronized)
//! and are counted, while the server keeps serving other clients.

mod common;

use common::*;
use mdfh_feed::itch::Side;
use mdfh_publisher::encode::{encode_heartbeat, encode_subscribe};
use mdfh_publisher::protocol::{ErrorCode, GoodbyeReason, Target};
use mdfh_publisher::{Client, OwnedFrame, Publisher};

fn raw_frame(frame_type: u8, body: &[u8]) -> Vec<u8> {
    let mut bytes = ((body.len() + 1) as u32).to_le_bytes().to_vec();
    bytes.push(frame_type);
    bytes.extend_from_slice(body);
    bytes
}

fn subscribe_bytes(flags: u8, symbol: [u8; 8]) -> Vec<u8> {
    let mut body = vec![flags];
    body.extend_from_slice(&symbol);
    body.extend_from_slice(&0u16.to_le_bytes());
    raw_frame(b's', &body)
}

/// Sends one level event and checks that the healthy client receives it as the next data frame.
fn check_healthy(publisher: &mut Publisher, healthy: &mut Client, feed_seq: u64) {
    publisher.on_event(&level(feed_seq, 1, Side::Buy, 1_000_000 + feed_seq as u32, 10, 1));
    let frame = next_frame(publisher, healthy);
    assert!(
        matches!(frame, OwnedFrame::LevelUpdate(u) if u.feed_seq == feed_seq),
        "healthy client after malformed request {feed_seq}: got {frame:?}"
    );
}

#[test]
fn malformed_requests_get_errors() {
    let mut publisher = bind(&config());
    publisher.on_event(&directory(1, 1, "GOOD"));
    let mut healthy = connect(&mut publisher);
    healthy.subscribe(Some("GOOD"), 0).expect("send subscribe");
    next_frame(&mut publisher, &mut healthy);
    next_frame(&mut publisher, &mut healthy);

    let mut server_heartbeat = Vec::new();
    encode_heartbeat(&mut server_heartbeat, 1, 2);
    let cases: [(&str, Vec<u8>, ErrorCode); 7] = [
        ("unknown type", raw_frame(b'z', &[1, 2, 3]), ErrorCode::UnknownType),
        ("short subscribe", raw_frame(b's', &[0; 4]), ErrorCode::BadLength),
        ("empty frame", vec![0, 0, 0, 0], ErrorCode::BadLength),
        ("symbol bytes", subscribe_bytes(0, *b"GO\xffD    "), ErrorCode::InvalidField),
        ("symbol control byte", subscribe_bytes(0, *b"GOOD\t   "), ErrorCode::InvalidField),
        ("flags", subscribe_bytes(0x80, *b"GOOD    "), ErrorCode::InvalidField),
        ("server frame type", server_heartbeat, ErrorCode::UnexpectedType),
    ];

    let mut client = connect(&mut publisher);
    for (i, (name, bytes, expected)) in cases.into_iter().enumerate() {
        client.send_raw(&bytes).expect("send malformed request");
        let frame = next_frame(&mut publisher, &mut client);
        let OwnedFrame::Error { code, text } = frame else {
            panic!("{name}: expected an Error frame, got {frame:?}");
        };
        assert_eq!(code, expected, "{name}: {text}");
        assert!(!text.is_empty(), "{name}: empty error text");
        assert_eq!(publisher.stats().malformed_requests, i as u64 + 1, "{name}: counter");
        check_healthy(&mut publisher, &mut healthy, 10 + i as u64);
    }

    // The connection still works after the errors.
    let mut subscribe = Vec::new();
    encode_subscribe(&mut subscribe, Target::Symbol(mdfh_feed::itch::Stock::new("GOOD")), 1);
    client.send_raw(&subscribe).expect("send subscribe");
    let ack = next_frame(&mut publisher, &mut client);
    assert!(matches!(ack, OwnedFrame::SubscribeAck(_)), "got {ack:?}");
    let stats = publisher.stats();
    assert!(stats.last_error.is_some_and(|e| e.contains("sent by servers")));
    assert_eq!(stats.active, 2);
}

#[test]
fn unframeable_input_gets_goodbye() {
    let mut publisher = bind(&config());
    publisher.on_event(&directory(1, 1, "GOOD"));
    let mut healthy = connect(&mut publisher);
    healthy.subscribe(Some("GOOD"), 0).expect("send subscribe");
    next_frame(&mut publisher, &mut healthy);
    next_frame(&mut publisher, &mut healthy);

    let mut oversized = 2000u32.to_le_bytes().to_vec();
    oversized.push(b's');
    oversized.extend_from_slice(&[0; 1999]);
    let cases: [(&str, Vec<u8>); 2] = [
        ("text protocol", b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec()),
        ("oversized length", oversized),
    ];
    for (i, (name, bytes)) in cases.into_iter().enumerate() {
        let mut client = connect(&mut publisher);
        client.send_raw(&bytes).expect("send garbage");
        let frames = read_until_closed(&mut publisher, &mut client);
        let [OwnedFrame::Goodbye { reason, text, .. }] = frames.as_slice() else {
            panic!("{name}: expected one Goodbye, got {frames:?}");
        };
        assert_eq!(*reason, GoodbyeReason::ProtocolViolation, "{name}");
        assert!(text.contains("above the maximum 1024"), "{name}: {text}");
        assert_eq!(publisher.stats().malformed_requests, i as u64 + 1, "{name}: counter");
        check_healthy(&mut publisher, &mut healthy, 10 + i as u64);
    }
    assert_eq!(publisher.stats().active, 1);
}

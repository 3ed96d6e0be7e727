//! Digest frames and the new requests over real sockets: periodic and requested digests match a
//! correct client book, a corrupted one is detected, and invalid requests get Error frames.

mod common;

use common::*;
use mdfh_feed::itch::Side;
use mdfh_publisher::protocol::{ErrorCode, SlowConsumerPolicy};
use mdfh_publisher::{ClientBook, OwnedFrame, PublisherConfig, ProtocolError};

const LOCATE: u16 = 1;

#[test]
fn digests_match_and_detect_corruption() {
    let cfg = PublisherConfig { digest_interval: 50, digest_depth: 5, ..config() };
    let mut publisher = bind(&cfg);
    publisher.on_event(&directory(1, LOCATE, "DIGS"));
    let mut client = connect(&mut publisher);
    client.subscribe(Some("DIGS"), 0).expect("send subscribe");
    let mut book = ClientBook::new();
    for frame in drain(&mut publisher, &mut client, 20) {
        book.apply(&frame).expect("apply");
    }

    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    for feed_seq in 2..1002u64 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let side = if state & 1 == 0 { Side::Buy } else { Side::Sell };
        let price = if side == Side::Buy { 10_000 } else { 10_500 } + 10 * ((state >> 1) % 20) as u32;
        let present = publisher.mirror().book(LOCATE).and_then(|b| b.find(side, price)).is_some();
        let shares = if present && state.is_multiple_of(3) { 0 } else { 1 + (state >> 20) % 500 };
        publisher.on_event(&level(feed_seq, LOCATE, side, price, shares, u32::from(shares > 0)));
    }
    client.request_digest("DIGS", 0).expect("send digest request");
    for frame in drain(&mut publisher, &mut client, 50) {
        book.apply(&frame).unwrap_or_else(|e| panic!("applying {frame:?}: {e}"));
    }
    assert_eq!(book.gaps(), 0);
    assert_eq!(book.digest_mismatches(), 0);
    assert_eq!(book.digests_checked(), 21, "20 periodic digests and 1 requested");

    let Some(bids) = book.levels_mut(LOCATE, Side::Buy) else {
        panic!("no bids for locate {LOCATE}");
    };
    let Some(best) = bids.first_mut() else {
        panic!("empty bid side");
    };
    best.shares += 1;
    client.request_digest("DIGS", 3).expect("send digest request");
    let frame = next_frame(&mut publisher, &mut client);
    assert!(matches!(frame, OwnedFrame::Digest(d) if d.depth == 3), "got {frame:?}");
    assert!(matches!(book.apply(&frame), Err(ProtocolError::DigestMismatch { .. })));
    assert_eq!(book.digest_mismatches(), 1);
}

#[test]
fn invalid_requests_get_errors() {
    let allowed = vec![SlowConsumerPolicy::Disconnect, SlowConsumerPolicy::Conflate];
    let cfg = PublisherConfig { allowed_policies: allowed, ..config() };
    let mut publisher = bind(&cfg);
    publisher.on_event(&directory(1, LOCATE, "REQS"));
    let mut client = connect(&mut publisher);

    let expect_error = |publisher: &mut _, client: &mut _, code: ErrorCode| {
        let frame = next_frame(publisher, client);
        assert!(matches!(frame, OwnedFrame::Error { code: c, .. } if c == code), "expected {code:?}, got {frame:?}");
    };

    client.set_policy(SlowConsumerPolicy::Resnapshot).expect("send set policy");
    expect_error(&mut publisher, &mut client, ErrorCode::PolicyNotAllowed);

    client.send_raw(&[2, 0, 0, 0, b'p', b'X']).expect("send raw");
    expect_error(&mut publisher, &mut client, ErrorCode::InvalidField);
    assert_eq!(publisher.stats().malformed_requests, 1);

    client.request_digest("NOPE", 0).expect("send digest request");
    expect_error(&mut publisher, &mut client, ErrorCode::UnknownInstrument);

    client.request_resnapshot(Some("NOPE")).expect("send resnapshot");
    expect_error(&mut publisher, &mut client, ErrorCode::UnknownInstrument);

    client.subscribe(Some("REQS"), 0).expect("send subscribe");
    assert!(matches!(next_frame(&mut publisher, &mut client), OwnedFrame::SubscribeAck(_)));
    assert!(matches!(next_frame(&mut publisher, &mut client), OwnedFrame::Snapshot(_)));
    client.set_policy(SlowConsumerPolicy::Conflate).expect("send set policy");
    expect_error(&mut publisher, &mut client, ErrorCode::SubscriptionsActive);

    client.request_resnapshot(Some("REQS")).expect("send resnapshot");
    let frame = next_frame(&mut publisher, &mut client);
    assert!(matches!(frame, OwnedFrame::Snapshot(ref s) if s.header.seq == 2), "got {frame:?}");

    assert_eq!(publisher.stats().rejected_requests, 4);
}

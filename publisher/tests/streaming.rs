//! Subscriptions over real sockets: snapshots, updates and their sequence numbers, pending
//! symbols, resets, heartbeats and subscribe requests the server rejects.

mod common;

use std::time::Duration;

use common::*;
use mdfh_feed::itch::{Side, Stock};
use mdfh_matcher::{BookEvent, BookStatus};
use mdfh_publisher::protocol::{AckState, ErrorCode, GoodbyeReason, SubscribeAck, Target};
use mdfh_publisher::{ClientBook, OwnedFrame};

fn expect_ack(frame: OwnedFrame) -> SubscribeAck {
    match frame {
        OwnedFrame::SubscribeAck(ack) => ack,
        other => panic!("expected SubscribeAck, got {other:?}"),
    }
}

#[test]
fn snapshot_then_contiguous_updates() {
    let mut publisher = bind(&config());
    publisher.on_event(&directory(1, 7, "AAPL"));
    publisher.on_event(&level(2, 7, Side::Buy, 1_500_000, 100, 1));
    publisher.on_event(&level(3, 7, Side::Sell, 1_500_100, 200, 2));

    let mut client = connect(&mut publisher);
    client.subscribe(Some("AAPL"), 0).expect("send subscribe");
    let ack = expect_ack(next_frame(&mut publisher, &mut client));
    assert_eq!(ack.target, Target::Symbol(Stock::new("AAPL")));
    assert_eq!((ack.locate, ack.state), (7, AckState::Active));

    let mut book = ClientBook::new();
    let OwnedFrame::Snapshot(snapshot) = next_frame(&mut publisher, &mut client) else {
        panic!("expected a snapshot after the ack");
    };
    assert_eq!(snapshot.header.seq, 1);
    assert_eq!(snapshot.header.feed_seq, 3);
    assert_eq!(snapshot.header.stock, Stock::new("AAPL"));
    assert_eq!(snapshot.bids, mirror_levels(&publisher, 7, Side::Buy, 0));
    assert_eq!(snapshot.asks, mirror_levels(&publisher, 7, Side::Sell, 0));
    book.apply(&OwnedFrame::Snapshot(snapshot)).expect("apply snapshot");

    publisher.on_event(&level(4, 7, Side::Buy, 1_500_050, 10, 1));
    publisher.on_event(&trade(5, 7, 1_500_100, 50));
    publisher.on_event(&level(6, 7, Side::Sell, 1_500_100, 150, 1));
    publisher.on_event(&status(7, 7, BookStatus::Stale));
    publisher.on_event(&envelope(8, BookEvent::TradingState { locate: 7, state: b'H' }));
    // Another instrument's events do not reach this subscriber.
    publisher.on_event(&directory(9, 8, "MSFT"));
    publisher.on_event(&level(10, 8, Side::Buy, 3_000_000, 5, 1));
    publisher.on_event(&level(11, 7, Side::Buy, 1_500_000, 0, 0));

    let expected_feed_seqs = [4, 5, 6, 7, 8, 11];
    for (i, expected_feed_seq) in expected_feed_seqs.into_iter().enumerate() {
        let frame = next_frame(&mut publisher, &mut client);
        assert_eq!(frame.seq(), Some(i as u64 + 2), "sequence of {frame:?}");
        let feed_seq = match &frame {
            OwnedFrame::LevelUpdate(u) => u.feed_seq,
            OwnedFrame::Trade(t) => t.feed_seq,
            OwnedFrame::BookStatus(s) => s.feed_seq,
            OwnedFrame::TradingState(s) => s.feed_seq,
            other => panic!("unexpected frame {other:?}"),
        };
        assert_eq!(feed_seq, expected_feed_seq, "feed sequence of {frame:?}");
        book.apply(&frame).expect("apply frame");
    }

    let Some((bids, asks)) = book.levels("AAPL") else {
        panic!("client has no AAPL book");
    };
    assert_eq!(bids, mirror_levels(&publisher, 7, Side::Buy, 0));
    assert_eq!(asks, mirror_levels(&publisher, 7, Side::Sell, 0));
    assert_eq!(book.book(7).map(|b| (b.status, b.trading_state)), Some((BookStatus::Stale, b'H')));
    assert_eq!(book.gaps(), 0);
}

#[test]
fn pending_symbol_gets_snapshot_when_listed() {
    let mut publisher = bind(&config());
    let mut client = connect(&mut publisher);
    client.subscribe(Some("ZVZZT"), 5).expect("send subscribe");
    let ack = expect_ack(next_frame(&mut publisher, &mut client));
    assert_eq!((ack.locate, ack.state, ack.depth), (0, AckState::Pending, 5));

    publisher.on_event(&level(1, 3, Side::Buy, 100_000, 10, 1));
    publisher.on_event(&directory(2, 3, "ZVZZT"));

    let OwnedFrame::Snapshot(snapshot) = next_frame(&mut publisher, &mut client) else {
        panic!("expected a snapshot when the symbol appeared");
    };
    assert_eq!((snapshot.header.seq, snapshot.header.locate, snapshot.header.depth), (1, 3, 5));
    assert_eq!(snapshot.header.feed_seq, 2);
    assert_eq!(snapshot.bids.len(), 1);

    publisher.on_event(&level(3, 3, Side::Sell, 100_100, 10, 1));
    let OwnedFrame::LevelUpdate(update) = next_frame(&mut publisher, &mut client) else {
        panic!("expected a LevelUpdate after the snapshot");
    };
    assert_eq!(update.seq, 2);
    assert_eq!(update.side, Side::Sell);
}

#[test]
fn reset_clears_client_book() {
    let mut publisher = bind(&config());
    publisher.on_event(&directory(1, 1, "IBM"));
    publisher.on_event(&level(2, 1, Side::Buy, 1_000_000, 10, 1));
    let mut client = connect(&mut publisher);
    client.subscribe(Some("IBM"), 0).expect("send subscribe");
    expect_ack(next_frame(&mut publisher, &mut client));

    let mut book = ClientBook::new();
    book.apply(&next_frame(&mut publisher, &mut client)).expect("apply snapshot");
    assert_eq!(book.levels("IBM").map(|(bids, _)| bids.len()), Some(1));

    publisher.on_event(&envelope(0, BookEvent::Reset));
    let reset = next_frame(&mut publisher, &mut client);
    assert!(matches!(reset, OwnedFrame::Reset { seq: 2, .. }), "got {reset:?}");
    book.apply(&reset).expect("apply reset");
    assert_eq!(book.instrument_count(), 0);
    assert_eq!(publisher.mirror().locate_of(&Stock::new("IBM")), None);

    // The subscription waits for the symbol again, here under another locate.
    publisher.on_event(&directory(1, 4, "IBM"));
    publisher.on_event(&level(2, 4, Side::Sell, 1_000_100, 20, 1));
    book.apply(&next_frame(&mut publisher, &mut client)).expect("apply new snapshot");
    book.apply(&next_frame(&mut publisher, &mut client)).expect("apply update");
    let Some((bids, asks)) = book.levels("IBM") else {
        panic!("no IBM book after the reset");
    };
    assert!(bids.is_empty());
    assert_eq!(asks.len(), 1);
    assert_eq!(book.book("IBM").map(|b| b.stock), Some(Stock::new("IBM")));
    assert_eq!(book.gaps(), 0);
}

#[test]
fn heartbeats_when_idle() {
    let cfg = mdfh_publisher::PublisherConfig { heartbeat_interval: Duration::from_millis(20), ..config() };
    let mut publisher = bind(&cfg);
    publisher.on_event(&directory(1, 1, "QQQ"));
    let mut client = connect(&mut publisher);
    client.subscribe(Some("QQQ"), 1).expect("send subscribe");
    expect_ack(next_frame(&mut publisher, &mut client));
    let snapshot = next_frame(&mut publisher, &mut client);
    assert_eq!(snapshot.seq(), Some(1));

    for _ in 0..3 {
        let frame = next_frame(&mut publisher, &mut client);
        assert!(matches!(frame, OwnedFrame::Heartbeat { last_seq: 1, .. }), "got {frame:?}");
    }
    client.send_heartbeat().expect("send client heartbeat");
    let frame = next_frame(&mut publisher, &mut client);
    assert!(matches!(frame, OwnedFrame::Heartbeat { last_seq: 1, .. }), "got {frame:?}");
    assert_eq!(publisher.stats().malformed_requests, 0);
}

#[test]
fn subscribe_all_gets_every_instrument() {
    let mut publisher = bind(&config());
    publisher.on_event(&directory(1, 1, "AAA"));
    publisher.on_event(&directory(2, 2, "BBB"));
    publisher.on_event(&level(3, 2, Side::Buy, 10_000, 1, 1));

    let mut client = connect(&mut publisher);
    client.subscribe(None, 2).expect("send subscribe");
    let ack = expect_ack(next_frame(&mut publisher, &mut client));
    assert_eq!((ack.target, ack.state, ack.depth), (Target::All, AckState::Active, 2));

    let mut book = ClientBook::new();
    for _ in 0..2 {
        book.apply(&next_frame(&mut publisher, &mut client)).expect("apply snapshot");
    }
    assert_eq!(book.instrument_count(), 2);

    // A new instrument comes with its snapshot before its updates.
    publisher.on_event(&directory(4, 9, "CCC"));
    publisher.on_event(&level(5, 9, Side::Sell, 20_000, 3, 1));
    publisher.on_event(&level(6, 1, Side::Sell, 30_000, 4, 1));
    for _ in 0..3 {
        book.apply(&next_frame(&mut publisher, &mut client)).expect("apply frame");
    }
    assert_eq!(book.levels("CCC").map(|(_, asks)| asks.len()), Some(1));
    assert_eq!(book.levels(1).map(|(_, asks)| asks.len()), Some(1));
    assert_eq!(book.last_seq(), 5);
    assert_eq!(book.gaps(), 0);
}

#[test]
fn unsubscribe_stops_updates() {
    let mut publisher = bind(&config());
    publisher.on_event(&directory(1, 1, "AAA"));
    publisher.on_event(&directory(2, 2, "BBB"));
    let mut client = connect(&mut publisher);
    client.subscribe(Some("AAA"), 0).expect("send subscribe");
    client.subscribe(Some("BBB"), 0).expect("send subscribe");
    for _ in 0..4 {
        next_frame(&mut publisher, &mut client);
    }

    client.unsubscribe(Some("AAA")).expect("send unsubscribe");
    client.unsubscribe(Some("CCC")).expect("send unsubscribe");
    let error = next_frame(&mut publisher, &mut client);
    assert!(matches!(&error, OwnedFrame::Error { code: ErrorCode::NotSubscribed, text } if text.contains("CCC")), "got {error:?}");

    publisher.on_event(&level(3, 1, Side::Buy, 100, 1, 1));
    publisher.on_event(&level(4, 2, Side::Buy, 200, 1, 1));
    let OwnedFrame::LevelUpdate(update) = next_frame(&mut publisher, &mut client) else {
        panic!("expected a LevelUpdate of BBB");
    };
    assert_eq!(update.locate, 2);
    assert_eq!(update.seq, 3);

    client.unsubscribe(None).expect("send unsubscribe all");
    drain(&mut publisher, &mut client, 20);
    publisher.on_event(&level(5, 2, Side::Buy, 201, 1, 1));
    let frames = drain(&mut publisher, &mut client, 20);
    assert!(frames.iter().all(|f| f.seq().is_none()), "data after unsubscribe all: {frames:?}");
}

#[test]
fn rejected_subscriptions() {
    let cfg = mdfh_publisher::PublisherConfig { max_depth: 10, max_subscriptions: 2, ..config() };
    let mut publisher = bind(&cfg);
    let mut client = connect(&mut publisher);

    let requests: [(Option<&str>, u16, ErrorCode); 5] = [
        (Some("AAA"), 11, ErrorCode::DepthTooLarge),
        (Some("AAA"), 0, ErrorCode::DepthTooLarge),
        (Some("AAA"), 10, ErrorCode::AlreadySubscribed),
        (Some("CCC"), 1, ErrorCode::TooManySubscriptions),
        (None, 1, ErrorCode::AlreadySubscribed),
    ];
    client.subscribe(Some("AAA"), 10).expect("send subscribe");
    client.subscribe(Some("BBB"), 1).expect("send subscribe");
    for _ in 0..2 {
        expect_ack(next_frame(&mut publisher, &mut client));
    }
    for (symbol, depth, expected) in requests {
        client.subscribe(symbol, depth).expect("send subscribe");
        let frame = next_frame(&mut publisher, &mut client);
        let OwnedFrame::SubscribeReject { code, text, .. } = frame else {
            panic!("{symbol:?} depth {depth}: expected a reject, got {frame:?}");
        };
        assert_eq!(code, expected, "{symbol:?} depth {depth}: {text}");
    }
    assert_eq!(publisher.stats().rejected_subscriptions, 5);
}

#[test]
fn server_full_says_goodbye() {
    let cfg = mdfh_publisher::PublisherConfig { max_subscribers: 1, ..config() };
    let mut publisher = bind(&cfg);
    let _first = connect(&mut publisher);
    let mut second = connect(&mut publisher);
    let frames = read_until_closed(&mut publisher, &mut second);
    assert!(
        matches!(frames.as_slice(), [OwnedFrame::Goodbye { reason: GoodbyeReason::ServerFull, .. }]),
        "got {frames:?}"
    );
    let stats = publisher.stats();
    assert_eq!((stats.connections_rejected, stats.active), (1, 1));
}

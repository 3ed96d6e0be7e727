//! The WebSocket bridge end to end over 127.0.0.1: snapshots, updates, depth, conflation and slow
//! clients.

mod ws_common;

use std::time::Duration;

use mdfh_feed::itch::Side;
use mdfh_publisher::ws::WsConfig;
use ws_common::*;

/// Feeds `envelopes` to the tap. Each test uses a ring larger than any batch it sends, so no
/// envelope is dropped.
fn feed(tap: &mut mdfh_publisher::ws::WsTap, envelopes: &[mdfh_publisher::Envelope]) {
    for env in envelopes {
        tap.on_event(env);
    }
}

/// Reads messages into `book` until a `trade` with `feed_seq` arrives.
async fn read_until_trade(socket: &mut Socket, book: &mut ClientBook, feed_seq: u64) {
    loop {
        let message = next_of(socket, &["snapshot", "level", "bbo", "trade", "status"]).await;
        book.apply(&message);
        if message["type"] == "trade" && message["feed_seq"] == feed_seq {
            return;
        }
    }
}

#[tokio::test]
async fn snapshot_then_updates_match_reference() {
    // One burst of 3,000 updates queues about 600 KiB per client, and every update must arrive one
    // by one, so pausing is off: `pause_queue_bytes` equals `client_queue_bytes`.
    let cfg = WsConfig { max_rate_per_client: 0, ..config() };
    let (mut tap, server) = start(WsConfig { pause_queue_bytes: cfg.client_queue_bytes, ..cfg });
    let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15);
    let mut reference = Reference::default();
    tap.on_event(&directory(1, "AAPL"));
    feed(&mut tap, &random_levels(&mut rng, &mut reference, 1, 1, 300));

    let mut top5 = connect(&server).await;
    let mut full = connect(&server).await;
    send_json(&mut top5, r#"{"op":"subscribe","symbol":"AAPL","depth":5}"#).await;
    send_json(&mut full, r#"{"op":"subscribe","symbol":"AAPL","depth":0}"#).await;

    let mut book5 = ClientBook::default();
    let snapshot = next_of(&mut top5, &["snapshot"]).await;
    book5.apply(&snapshot);
    assert_eq!(snapshot["symbol"], "AAPL");
    assert_eq!(snapshot["status"], "ok");
    assert_eq!(snapshot["feed_seq"], 300);
    let (bids, asks) = reference.top(5);
    assert_eq!(book5.bids, bids, "snapshot bids");
    assert_eq!(book5.asks, asks, "snapshot asks");

    let mut book_full = ClientBook::default();
    book_full.apply(&next_of(&mut full, &["snapshot"]).await);

    feed(&mut tap, &random_levels(&mut rng, &mut reference, 1, 301, 3000));
    tap.on_event(&trade(5000, 1, 10_000));

    read_until_trade(&mut top5, &mut book5, 5000).await;
    read_until_trade(&mut full, &mut book_full, 5000).await;
    let (bids, asks) = reference.top(5);
    assert_eq!(book5.bids, bids, "depth-5 bids after updates");
    assert_eq!(book5.asks, asks, "depth-5 asks after updates");
    let (bids, asks) = reference.top(0);
    assert_eq!(book_full.bids, bids, "full bids after updates");
    assert_eq!(book_full.asks, asks, "full asks after updates");
    assert_eq!(server.stats().unmatched_level_events, 0);
    assert_eq!(server.stats().dropped, 0);
}

#[tokio::test]
async fn bbo_follows_top_of_book() {
    let (mut tap, server) = start(config());
    tap.on_event(&directory(3, "MSFT"));
    let mut socket = connect(&server).await;
    send_json(&mut socket, r#"{"op":"subscribe","symbol":"MSFT"}"#).await;
    let snapshot = next_of(&mut socket, &["snapshot"]).await;
    assert_eq!(snapshot["depth"], 10, "default depth applies");

    tap.on_event(&level(1, 3, Side::Buy, 4_000_000, 100));
    tap.on_event(&level(2, 3, Side::Sell, 4_000_100, 50));
    let _ = next_of(&mut socket, &["bbo"]).await;
    let bbo = next_of(&mut socket, &["bbo"]).await;
    assert_eq!(bbo["bid"], serde_json::json!([4_000_000, 100]));
    assert_eq!(bbo["ask"], serde_json::json!([4_000_100, 50]));
    assert_eq!(bbo["feed_seq"], 2);
}

#[tokio::test]
async fn rate_limited_client_converges() {
    let (mut tap, server) = start(WsConfig { max_rate_per_client: 0, ..config() });
    let mut rng = Xorshift(42);
    let mut reference = Reference::default();
    tap.on_event(&directory(1, "AAPL"));

    let mut limited = connect(&server).await;
    send_json(&mut limited, r#"{"op":"subscribe","symbol":"AAPL","depth":0,"max_rate":5}"#).await;
    let mut book = ClientBook::default();
    book.apply(&next_of(&mut limited, &["snapshot"]).await);

    let events = random_levels(&mut rng, &mut reference, 1, 1, 2000);
    feed(&mut tap, &events);
    let (bids, asks) = reference.top(0);

    let mut received = 0usize;
    let mut conflated_snapshots = 0usize;
    let deadline = tokio::time::Instant::now() + WAIT;
    while book.bids != bids || book.asks != asks {
        assert!(tokio::time::Instant::now() < deadline, "limited client did not converge: {book:?}");
        let message = next_of(&mut limited, &["snapshot", "level", "bbo"]).await;
        received += 1;
        if message["type"] == "snapshot" && message["conflated"] == true {
            conflated_snapshots += 1;
        }
        book.apply(&message);
    }
    assert!(conflated_snapshots >= 1, "a conflated snapshot ends the stretch");
    assert!(received < events.len(), "got {received} messages for {} events", events.len());
    assert!(server.stats().conflated > 0);
}

#[tokio::test]
async fn slow_client_is_disconnected_others_continue() {
    let cfg = WsConfig { client_queue_bytes: 64 * 1024, max_rate_per_client: 0, ring_capacity: 1 << 18, ..config() };
    let (mut tap, server) = start(cfg);
    tap.on_event(&directory(1, "AAPL"));

    let mut slow = connect(&server).await;
    send_json(&mut slow, r#"{"op":"subscribe","symbol":"AAPL","depth":0,"max_rate":0}"#).await;
    let mut normal = connect(&server).await;
    send_json(&mut normal, r#"{"op":"subscribe","symbol":"AAPL","depth":0,"max_rate":0}"#).await;
    let _ = next_of(&mut normal, &["snapshot"]).await;
    let _ = next_of(&mut slow, &["snapshot"]).await;

    // The slow client stops reading here. Each round sends 300 level messages of about 100 bytes,
    // less than the 64 KiB queue, and waits until the normal client has read them. The slow
    // client's socket buffers and then its queue fill up within a few hundred rounds.
    let mut seq = 1;
    for round in 0..3_000u32 {
        for i in 0..300u32 {
            let price = 10_000 + (i % 50);
            tap.on_event(&level(seq, 1, Side::Sell, price, u64::from(round * 300 + i + 1)));
            seq += 1;
        }
        tap.on_event(&trade(seq, 1, 10_000));
        let mut book = ClientBook::default();
        read_until_trade(&mut normal, &mut book, seq).await;
        seq += 1;
        if server.stats().slow_client_disconnects > 0 {
            break;
        }
    }
    assert_eq!(server.stats().slow_client_disconnects, 1);
    assert_eq!(server.stats().dropped, 0);

    // The normal client still receives updates after the slow one was dropped.
    tap.on_event(&trade(seq, 1, 10_001));
    let mut book = ClientBook::default();
    read_until_trade(&mut normal, &mut book, seq).await;
    drop(slow);

    let deadline = tokio::time::Instant::now() + WAIT;
    while server.stats().clients != 1 {
        assert!(tokio::time::Instant::now() < deadline, "slow client still counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn ring_overflow_marks_books_stale() {
    let (mut tap, server) = start(WsConfig { ring_capacity: 4, max_rate_per_client: 0, ..config() });
    tap.on_event(&directory(1, "AAPL"));
    let mut socket = connect(&server).await;
    send_json(&mut socket, r#"{"op":"subscribe","symbol":"AAPL"}"#).await;
    assert_eq!(next_of(&mut socket, &["snapshot"]).await["status"], "ok");

    // 1,000 envelopes in one burst overflow a 4-slot ring before the bridge drains it.
    for seq in 1..=1000u64 {
        tap.on_event(&level(seq, 1, Side::Buy, 10_000, seq));
    }
    assert!(tap.dropped() > 0);
    let snapshot = next_of(&mut socket, &["snapshot"]).await;
    assert_eq!(snapshot["status"], "stale", "resnapshot after overflow is marked stale");
    assert_eq!(server.stats().dropped, tap.dropped());
}

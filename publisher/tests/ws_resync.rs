//! Resynchronisation of the WebSocket bridge over 127.0.0.1: after its 4-slot ring overflows, the
//! bridge reports its books stale, then replaces them with a copy of the TCP publisher's mirror,
//! and later updates apply on top of that copy.

mod ws_common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use mdfh_feed::itch::Side;
use mdfh_matcher::{BookEvent, FeedQuality, QualityState};
use mdfh_publisher::ws::{ResyncOutcome, WsConfig, WsServer, WsTap};
use mdfh_publisher::{Envelope, Publisher, PublisherConfig};
use serde_json::Value;
use ws_common::*;

/// Envelopes per burst: far more than the 4-slot ring takes before the bridge drains it.
const BURST: usize = 1000;

/// The publish stage in miniature: every envelope goes to the TCP publisher and to the tap.
struct Pipeline {
    publisher: Publisher,
    tap: WsTap,
    server: WsServer,
    reference: Reference,
    rng: Xorshift,
    next_seq: u64,
}

impl Pipeline {
    fn start(seed: u64) -> Pipeline {
        let publisher_config = PublisherConfig { listen: SocketAddr::from(([127, 0, 0, 1], 0)), ..PublisherConfig::default() };
        let publisher = Publisher::bind(&publisher_config).expect("bind the TCP publisher on 127.0.0.1");
        let (tap, server) = start(WsConfig { ring_capacity: 4, max_rate_per_client: 0, ..config() });
        Pipeline { publisher, tap, server, reference: Reference::default(), rng: Xorshift(seed), next_seq: 1 }
    }

    fn feed(&mut self, env: &Envelope) {
        self.publisher.on_event(env);
        self.tap.on_event(env);
    }

    /// Feeds `count` random level changes of AAPL (locate 1) and returns their envelopes.
    fn levels(&mut self, count: usize) -> Vec<Envelope> {
        let envelopes = random_levels(&mut self.rng, &mut self.reference, 1, self.next_seq, count);
        self.next_seq += count as u64;
        for env in &envelopes {
            self.feed(env);
        }
        envelopes
    }

    /// Queues a resync, retrying while the bridge has not drained the ring yet.
    async fn resync(&mut self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match self.tap.resync(&self.publisher) {
                ResyncOutcome::Queued => return,
                ResyncOutcome::RingFull => {
                    assert!(tokio::time::Instant::now() < deadline, "ring still full after {WAIT:?}");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                ResyncOutcome::NotNeeded => panic!("resync not needed after {} drops", self.tap.dropped()),
            }
        }
    }

    /// Returns the publisher's levels of one side of `locate` as price to shares.
    fn publisher_side(&self, locate: u16, side: Side) -> BTreeMap<u64, u64> {
        let book = self.publisher.mirror().book(locate).expect("the publisher has the book");
        book.levels(side).map(|l| (u64::from(l.price), l.shares)).collect()
    }
}

/// A WebSocket client that records the state of every `quality` message it reads.
struct Client {
    socket: Socket,
    quality: String,
}

impl Client {
    async fn connect(server: &WsServer) -> Client {
        Client { socket: connect(server).await, quality: String::new() }
    }

    /// Returns the next message of one of `kinds`, reading `quality` messages on the way.
    async fn next(&mut self, kinds: &[&str]) -> Value {
        loop {
            let message = next_of(&mut self.socket, &[kinds, &["quality"]].concat()).await;
            if message["type"] == "quality" {
                self.quality = message["state"].as_str().unwrap_or("").to_string();
                if !kinds.contains(&"quality") {
                    continue;
                }
            }
            return message;
        }
    }

    /// Reads snapshots until one with status `ok` and returns it with the statuses of the
    /// snapshots before it.
    async fn read_until_ok_snapshot(&mut self) -> (Value, Vec<String>) {
        let mut earlier = Vec::new();
        loop {
            let message = self.next(&["snapshot"]).await;
            let status = message["status"].as_str().unwrap_or("").to_string();
            if status == "ok" {
                return (message, earlier);
            }
            earlier.push(status);
        }
    }
}

/// Feeds one level change at a time and reads its `level` message before the next, so the ring
/// never contains more than one envelope, and applies each to `book`.
async fn feed_one_by_one(pipeline: &mut Pipeline, client: &mut Client, book: &mut ClientBook, count: usize) {
    for _ in 0..count {
        let env = pipeline.levels(1).pop().expect("one envelope");
        loop {
            let message = client.next(&["level"]).await;
            book.apply(&message);
            if message["feed_seq"] == env.feed_seq {
                break;
            }
        }
    }
}

#[tokio::test]
async fn overflow_then_resync_restores_books() {
    let mut pipeline = Pipeline::start(0x2e5f_11c0_de5e_ed01);
    pipeline.feed(&directory(1, "AAPL"));
    assert_eq!(pipeline.tap.resync(&pipeline.publisher), ResyncOutcome::NotNeeded, "no drop, no resync");

    let mut client = Client::connect(&pipeline.server).await;
    send_json(&mut client.socket, r#"{"op":"subscribe","symbol":"AAPL","depth":0,"max_rate":0}"#).await;
    assert_eq!(client.next(&["snapshot"]).await["status"], "ok");

    // One burst overflows the ring. It carries a new symbol with levels, a trading state and a
    // quality change, which the bridge most likely never receives one by one.
    pipeline.levels(BURST / 2);
    pipeline.feed(&directory(2, "MSFT"));
    pipeline.feed(&level(0, 2, Side::Buy, 4_000, 300));
    pipeline.feed(&level(0, 2, Side::Sell, 4_100, 200));
    pipeline.feed(&envelope(0, BookEvent::TradingState { locate: 1, state: b'T' }));
    let recovering = FeedQuality { state: QualityState::Recovering, since: 77 };
    pipeline.feed(&envelope(0, BookEvent::Quality { quality: recovering }));
    pipeline.levels(BURST / 2);
    let dropped = pipeline.tap.dropped();
    assert!(dropped > 0, "the burst did not overflow the 4-slot ring");

    // Before the resync, the client learns that its book is stale.
    let stale = client.next(&["snapshot"]).await;
    assert_eq!(stale["status"], "stale", "snapshot after the overflow");

    pipeline.resync().await;
    let (snapshot, earlier) = client.read_until_ok_snapshot().await;
    assert!(earlier.iter().all(|status| status == "stale"), "snapshots before the resync: {earlier:?}");

    // The resync snapshot equals the publisher's book, stamped with its last feed sequence number.
    let mut book = ClientBook::default();
    book.apply(&snapshot);
    assert_eq!(snapshot["feed_seq"], pipeline.publisher.last_feed_seq(), "resync snapshot feed_seq");
    assert_eq!(snapshot["trading_state"], "T", "resync snapshot trading state");
    assert_eq!(book.bids, pipeline.publisher_side(1, Side::Buy), "resync snapshot bids");
    assert_eq!(book.asks, pipeline.publisher_side(1, Side::Sell), "resync snapshot asks");
    let (bids, asks) = pipeline.reference.top(0);
    assert_eq!(book.bids, bids, "publisher's bids against the reference");
    assert_eq!(book.asks, asks, "publisher's asks against the reference");

    let stats = pipeline.server.stats();
    assert_eq!(stats.resyncs, 1);
    assert_eq!(stats.dropped, dropped, "no drop after the burst");

    // Later updates apply on top of the resync snapshot.
    feed_one_by_one(&mut pipeline, &mut client, &mut book, 50).await;
    let (bids, asks) = pipeline.reference.top(0);
    assert_eq!(book.bids, bids, "bids after live updates");
    assert_eq!(book.asks, asks, "asks after live updates");
    assert_eq!(pipeline.tap.dropped(), dropped, "one-by-one updates never overflow");

    // Status messages report the book's own status again, without the overflow reason.
    pipeline.feed(&envelope(0, BookEvent::TradingState { locate: 1, state: b'H' }));
    let status = client.next(&["status"]).await;
    assert_eq!(status["status"], "ok", "status after the resync");
    assert_eq!(status["reason"], Value::Null, "no stale reason after the resync");
    assert_eq!(status["trading_state"], "H");
    assert_eq!(client.quality, "recovering", "quality changed inside the burst");

    // The symbol named inside the burst is known, with the publisher's levels.
    send_json(&mut client.socket, r#"{"op":"subscribe","symbol":"MSFT","depth":0}"#).await;
    let msft = client.next(&["snapshot", "error"]).await;
    assert_eq!(msft["type"], "snapshot", "subscribe to a symbol named inside the burst: {msft}");
    assert_eq!(msft["status"], "ok");
    let mut msft_book = ClientBook::default();
    msft_book.apply(&msft);
    assert_eq!(msft_book.bids, pipeline.publisher_side(2, Side::Buy), "MSFT bids");
    assert_eq!(msft_book.asks, pipeline.publisher_side(2, Side::Sell), "MSFT asks");
}

#[tokio::test]
async fn second_overflow_resyncs_again() {
    let mut pipeline = Pipeline::start(0x0bad_5eed_c0ff_ee00);
    pipeline.feed(&directory(1, "AAPL"));
    let mut client = Client::connect(&pipeline.server).await;
    send_json(&mut client.socket, r#"{"op":"subscribe","symbol":"AAPL","depth":5,"max_rate":0}"#).await;
    assert_eq!(client.next(&["snapshot"]).await["status"], "ok");

    for round in 1..=2u64 {
        let dropped_before = pipeline.tap.dropped();
        pipeline.levels(BURST);
        assert!(pipeline.tap.dropped() > dropped_before, "round {round}: burst did not overflow");
        assert_eq!(client.next(&["snapshot"]).await["status"], "stale", "round {round}: overflow snapshot");

        pipeline.resync().await;
        let (snapshot, _) = client.read_until_ok_snapshot().await;
        let mut book = ClientBook::default();
        book.apply(&snapshot);
        let (bids, asks) = pipeline.reference.top(5);
        assert_eq!(book.bids, bids, "round {round}: resync snapshot bids at depth 5");
        assert_eq!(book.asks, asks, "round {round}: resync snapshot asks at depth 5");
        assert_eq!(pipeline.server.stats().resyncs, round);
        assert_eq!(pipeline.tap.resync(&pipeline.publisher), ResyncOutcome::NotNeeded, "round {round}: drops covered");
    }
}

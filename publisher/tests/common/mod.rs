//! Helpers shared by the integration tests: a publisher on 127.0.0.1 with a free port, clients,
//! and a driver that polls the publisher while a client waits for frames, all on one thread.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use mdfh_feed::itch::{Side, Stock};
use mdfh_matcher::{BookEvent, BookStatus, LevelChange, TradeEvent, TradeKind};
use mdfh_publisher::protocol::Level;
use mdfh_publisher::{Client, Envelope, OwnedFrame, Publisher, PublisherConfig};

/// Read timeout of test clients: each driver round waits this long for data.
pub const ROUND: Duration = Duration::from_millis(1);
/// Driver rounds before a test gives up waiting for a frame (a few seconds of rounds).
pub const MAX_ROUNDS: usize = 5000;

pub fn config() -> PublisherConfig {
    PublisherConfig { listen: "127.0.0.1:0".parse().expect("valid address"), ..PublisherConfig::default() }
}

pub fn bind(cfg: &PublisherConfig) -> Publisher {
    Publisher::bind(cfg).expect("bind publisher on 127.0.0.1")
}

/// Connects a client and polls until the publisher has accepted it.
pub fn connect(publisher: &mut Publisher) -> Client {
    let before = publisher.stats().connections_accepted;
    let mut client = Client::connect(publisher.local_addr(), Duration::from_secs(5)).expect("connect to publisher");
    client.set_read_timeout(ROUND).expect("set read timeout");
    for _ in 0..MAX_ROUNDS {
        publisher.poll_io(Instant::now());
        if publisher.stats().connections_accepted > before {
            return client;
        }
        std::thread::sleep(ROUND);
    }
    panic!("publisher did not accept the connection");
}

/// Polls the publisher until `client` receives a frame.
pub fn next_frame(publisher: &mut Publisher, client: &mut Client) -> OwnedFrame {
    for _ in 0..MAX_ROUNDS {
        publisher.poll_io(Instant::now());
        if let Some(frame) = client.next_frame().expect("read frame") {
            return frame;
        }
    }
    panic!("no frame within {MAX_ROUNDS} rounds");
}

/// Polls the publisher for `rounds` rounds and returns every frame `client` received.
pub fn drain(publisher: &mut Publisher, client: &mut Client, rounds: usize) -> Vec<OwnedFrame> {
    let mut frames = Vec::new();
    for _ in 0..rounds {
        publisher.poll_io(Instant::now());
        while let Some(frame) = client.next_frame().expect("read frame") {
            frames.push(frame);
        }
    }
    frames
}

/// Polls the publisher until the client reads end of stream; returns the frames before it.
pub fn read_until_closed(publisher: &mut Publisher, client: &mut Client) -> Vec<OwnedFrame> {
    let mut frames = Vec::new();
    for _ in 0..MAX_ROUNDS {
        publisher.poll_io(Instant::now());
        match client.next_frame() {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return frames,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return frames,
            Err(e) => panic!("read failed: {e}"),
        }
    }
    panic!("connection not closed within {MAX_ROUNDS} rounds; frames so far: {frames:?}");
}

pub fn envelope(feed_seq: u64, event: BookEvent) -> Envelope {
    Envelope { feed_seq, recv_ns: 0, booked_ns: 0, event }
}

pub fn directory(feed_seq: u64, locate: u16, symbol: &str) -> Envelope {
    envelope(feed_seq, BookEvent::Directory { locate, stock: Stock::new(symbol) })
}

pub fn level(feed_seq: u64, locate: u16, side: Side, price: u32, shares: u64, orders: u32) -> Envelope {
    let change = LevelChange { side, price, shares, orders };
    envelope(feed_seq, BookEvent::Level { locate, change, top_changed: false })
}

pub fn trade(feed_seq: u64, locate: u16, price: u32, shares: u64) -> Envelope {
    let trade = TradeEvent {
        price,
        shares,
        match_number: feed_seq,
        resting_side: Some(Side::Sell),
        kind: TradeKind::Execution,
    };
    envelope(feed_seq, BookEvent::Trade { locate, trade })
}

pub fn status(feed_seq: u64, locate: u16, status: BookStatus) -> Envelope {
    envelope(feed_seq, BookEvent::Status { locate, status })
}

/// Returns the top `depth` levels (0 = all) of one side of the publisher's mirror, best first.
pub fn mirror_levels(publisher: &Publisher, locate: u16, side: Side, depth: usize) -> Vec<Level> {
    let limit = if depth == 0 { usize::MAX } else { depth };
    publisher
        .mirror()
        .book(locate)
        .map(|book| book.levels(side).take(limit).collect())
        .unwrap_or_default()
}

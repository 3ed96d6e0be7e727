//! Slow-consumer policies over real sockets: a subscriber stops reading while level events and
//! trades flow, then reads again. Under conflate it ends with the server's book through a
//! catch-up batch, under resnapshot through a fresh Snapshot, and under disconnect it gets a
//! Goodbye. A second subscriber that keeps reading is never affected.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use mdfh_feed::itch::Side;
use mdfh_matcher::{BookEvent, FeedQuality, QualityState};
use mdfh_publisher::protocol::{GoodbyeReason, SlowConsumerPolicy};
use mdfh_publisher::{Client, ClientBook, OwnedFrame, Publisher, PublisherConfig};
use socket2::{Domain, Socket, Type};

const LOCATE: u16 = 1;
const SYMBOL: &str = "SLOW";
/// Level events at most before a test gives up waiting for the policy to act.
const MAX_EVENTS: u64 = 2_000_000;
/// Driver rounds at most while the slow client catches up.
const CATCHUP_ROUNDS: usize = 20_000;

/// Connects a client whose socket has a small receive buffer, so the server's queue for it fills
/// after little traffic.
fn connect_small_buffer(publisher: &mut Publisher) -> Client {
    let addr: SocketAddr = publisher.local_addr();
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("create socket");
    socket.set_recv_buffer_size(4096).expect("set receive buffer size");
    socket.connect(&addr.into()).expect("connect to publisher");
    let stream: TcpStream = socket.into();
    let client = Client::from_stream(stream, ROUND).expect("wrap stream");
    for _ in 0..50 {
        publisher.poll_io(Instant::now());
    }
    client
}

/// Subscribes `client` to SYMBOL at `depth` and applies the ack and the snapshot.
fn subscribe(publisher: &mut Publisher, client: &mut Client, depth: u16) -> ClientBook {
    client.subscribe(Some(SYMBOL), depth).expect("send subscribe");
    let ack = next_frame(publisher, client);
    assert!(matches!(ack, OwnedFrame::SubscribeAck(_)), "got {ack:?}");
    let snapshot = next_frame(publisher, client);
    assert!(matches!(snapshot, OwnedFrame::Snapshot(_)), "got {snapshot:?}");
    let mut book = ClientBook::new();
    book.apply(&snapshot).expect("apply snapshot");
    book
}

/// Feeds level events and trades on 32 prices per side, deterministic from `step`. Removes a
/// level only when the mirror has it.
struct Feed {
    step: u64,
    state: u64,
}

impl Feed {
    fn new() -> Feed {
        Feed { step: 100, state: 0x9E37_79B9_7F4A_7C15 }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64: a fixed sequence, so a failure reproduces.
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    fn send(&mut self, publisher: &mut Publisher) {
        self.step += 1;
        let r = self.next_random();
        let side = if r & 1 == 0 { Side::Buy } else { Side::Sell };
        let base = if side == Side::Buy { 1_000_000 } else { 1_010_000 };
        let price = base + 100 * ((r >> 1) % 32) as u32;
        if r.is_multiple_of(97) {
            publisher.on_event(&trade(self.step, LOCATE, price, 100));
            return;
        }
        let present = publisher.mirror().book(LOCATE).and_then(|b| b.find(side, price)).is_some();
        let shares = if present && (r >> 8).is_multiple_of(4) { 0 } else { 1 + (r >> 16) % 1000 };
        let orders = u32::from(shares > 0) * (1 + ((r >> 32) % 5) as u32);
        publisher.on_event(&level(self.step, LOCATE, side, price, shares, orders));
    }
}

/// Reads every frame the client has ready and applies it, failing on any error.
fn read_ready(client: &mut Client, book: &mut ClientBook, frames: &mut Vec<OwnedFrame>) {
    while let Some(frame) = client.next_frame().expect("read frame") {
        book.apply(&frame).unwrap_or_else(|e| panic!("applying {frame:?}: {e}"));
        frames.push(frame);
    }
}

/// Polls and reads until the client has applied every data frame queued for it and is not in a
/// catch-up batch.
fn catch_up(publisher: &mut Publisher, client: &mut Client, book: &mut ClientBook) -> Vec<OwnedFrame> {
    let mut frames = Vec::new();
    let local = client.local_addr().expect("local address");
    for _ in 0..CATCHUP_ROUNDS {
        publisher.poll_io(Instant::now());
        read_ready(client, book, &mut frames);
        let stats = publisher.subscriber_stats();
        let Some(mine) = stats.iter().find(|s| s.peer == local) else {
            panic!("no subscriber stats for {local}");
        };
        if !mine.behind && !book.in_catchup() && mine.last_seq == book.last_seq() {
            return frames;
        }
    }
    panic!("client did not catch up: last_seq {}, in catch-up {}", book.last_seq(), book.in_catchup());
}

/// Polls and reads every frame until the server closes the connection.
fn read_to_end(publisher: &mut Publisher, client: &mut Client) -> Vec<OwnedFrame> {
    let mut frames = Vec::new();
    for _ in 0..CATCHUP_ROUNDS {
        publisher.poll_io(Instant::now());
        loop {
            match client.next_frame() {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return frames,
                Err(e) => panic!("read failed after {} frames: {e}", frames.len()),
            }
        }
    }
    panic!("connection not closed; {} frames read", frames.len());
}

fn assert_book_equals_mirror(publisher: &Publisher, book: &ClientBook, depth: usize) {
    let Some((bids, asks)) = book.levels(LOCATE) else {
        panic!("client has no book for locate {LOCATE}");
    };
    assert_eq!(bids, mirror_levels(publisher, LOCATE, Side::Buy, depth).as_slice(), "bids");
    assert_eq!(asks, mirror_levels(publisher, LOCATE, Side::Sell, depth).as_slice(), "asks");
}

/// Runs the feed until `acted` returns true, reading the fast client every 64 events.
fn pump_until(
    publisher: &mut Publisher,
    feed: &mut Feed,
    fast: &mut Client,
    fast_book: &mut ClientBook,
    acted: impl Fn(&Publisher) -> bool,
) {
    let mut frames = Vec::new();
    let mut events = 0;
    while !acted(publisher) {
        assert!(events < MAX_EVENTS, "policy did not act after {events} events");
        feed.send(publisher);
        events += 1;
        publisher.poll_io(Instant::now());
        if events % 64 == 0 {
            read_ready(fast, fast_book, &mut frames);
            frames.clear();
        }
    }
}

fn small_queue_config() -> PublisherConfig {
    PublisherConfig {
        queue_bytes: 64 * 1024,
        conflation_staleness: Duration::from_secs(600),
        close_timeout: Duration::from_secs(30),
        ..config()
    }
}

#[test]
fn conflate_catches_up_with_correct_book() {
    let mut publisher = bind(&small_queue_config());
    publisher.on_event(&directory(1, LOCATE, SYMBOL));
    let mut slow = connect_small_buffer(&mut publisher);
    slow.set_policy(SlowConsumerPolicy::Conflate).expect("send set policy");
    let mut slow_book = subscribe(&mut publisher, &mut slow, 0);
    let mut fast = connect(&mut publisher);
    let mut fast_book = subscribe(&mut publisher, &mut fast, 0);

    let mut feed = Feed::new();
    pump_until(&mut publisher, &mut feed, &mut fast, &mut fast_book, |p| {
        p.stats().policy.conflated_updates >= 5000 && p.stats().policy.dropped_trades > 0
    });

    let frames = catch_up(&mut publisher, &mut slow, &mut slow_book);
    catch_up(&mut publisher, &mut fast, &mut fast_book);

    let stats = publisher.stats();
    assert_eq!(stats.slow_consumer_disconnects, 0);
    assert!(stats.policy.catchups >= 1);
    assert_eq!(slow_book.gaps(), 0);
    assert!(slow_book.catchups() >= 1);
    assert!(slow_book.conflated_updates() > 0);
    assert!(slow_book.dropped_trades() > 0);
    assert!(frames.iter().any(|f| matches!(f, OwnedFrame::Catchup(_))));
    assert_book_equals_mirror(&publisher, &slow_book, 0);

    assert_eq!(fast_book.gaps(), 0);
    assert_eq!(fast_book.catchups(), 0);
    assert_book_equals_mirror(&publisher, &fast_book, 0);
}

#[test]
fn conflate_at_depth_keeps_top_levels() {
    let mut publisher = bind(&small_queue_config());
    publisher.on_event(&directory(1, LOCATE, SYMBOL));
    let mut slow = connect_small_buffer(&mut publisher);
    slow.set_policy(SlowConsumerPolicy::Conflate).expect("send set policy");
    let mut slow_book = subscribe(&mut publisher, &mut slow, 3);
    let mut fast = connect(&mut publisher);
    let mut fast_book = subscribe(&mut publisher, &mut fast, 3);

    let mut feed = Feed::new();
    pump_until(&mut publisher, &mut feed, &mut fast, &mut fast_book, |p| {
        p.stats().policy.conflated_updates >= 2000
    });
    catch_up(&mut publisher, &mut slow, &mut slow_book);
    catch_up(&mut publisher, &mut fast, &mut fast_book);

    assert_eq!(publisher.stats().slow_consumer_disconnects, 0);
    assert_eq!(slow_book.gaps(), 0);
    assert_book_equals_mirror(&publisher, &slow_book, 3);
    assert_book_equals_mirror(&publisher, &fast_book, 3);
}

#[test]
fn resnapshot_sends_fresh_snapshot() {
    let mut publisher = bind(&small_queue_config());
    publisher.on_event(&directory(1, LOCATE, SYMBOL));
    let mut slow = connect_small_buffer(&mut publisher);
    slow.set_policy(SlowConsumerPolicy::Resnapshot).expect("send set policy");
    let mut slow_book = subscribe(&mut publisher, &mut slow, 5);
    let mut fast = connect(&mut publisher);
    let mut fast_book = subscribe(&mut publisher, &mut fast, 0);

    let mut feed = Feed::new();
    pump_until(&mut publisher, &mut feed, &mut fast, &mut fast_book, |p| {
        p.stats().policy.resnapshot_dropped_frames >= 1000
    });
    let frames = catch_up(&mut publisher, &mut slow, &mut slow_book);
    catch_up(&mut publisher, &mut fast, &mut fast_book);

    let stats = publisher.stats();
    assert_eq!(stats.slow_consumer_disconnects, 0);
    assert!(stats.policy.resnapshots >= 1);
    assert!(frames.iter().any(|f| matches!(f, OwnedFrame::Snapshot(_))), "no fresh snapshot");
    assert_eq!(slow_book.gaps(), 0);
    assert_book_equals_mirror(&publisher, &slow_book, 5);
    assert_eq!(fast_book.gaps(), 0);
    assert_book_equals_mirror(&publisher, &fast_book, 0);
}

#[test]
fn disconnect_policy_sends_goodbye() {
    let mut publisher = bind(&small_queue_config());
    publisher.on_event(&directory(1, LOCATE, SYMBOL));
    let mut slow = connect_small_buffer(&mut publisher);
    slow.set_policy(SlowConsumerPolicy::Disconnect).expect("send set policy");
    subscribe(&mut publisher, &mut slow, 0);
    let mut fast = connect(&mut publisher);
    let mut fast_book = subscribe(&mut publisher, &mut fast, 0);

    let mut feed = Feed::new();
    pump_until(&mut publisher, &mut feed, &mut fast, &mut fast_book, |p| p.stats().slow_consumer_disconnects > 0);
    let frames = read_to_end(&mut publisher, &mut slow);
    catch_up(&mut publisher, &mut fast, &mut fast_book);

    let stats = publisher.stats();
    assert_eq!(stats.slow_consumer_disconnects, 1);
    assert!(stats.policy.disconnect_dropped_frames > 0);
    assert!(
        matches!(frames.last(), Some(OwnedFrame::Goodbye { reason: GoodbyeReason::SlowConsumer, .. })),
        "last frame {:?}",
        frames.last()
    );
    assert_eq!(fast_book.gaps(), 0);
    assert_book_equals_mirror(&publisher, &fast_book, 0);
}

/// Runs a slow consumer under `policy` until the policy has acted and the consumer is behind,
/// changes the feed quality then, and returns the consumer's book after it caught up. The check
/// runs right after each event and before the poll, because a resnapshot connection is behind only
/// until the next poll queues its fresh snapshots.
fn quality_while_behind(policy: SlowConsumerPolicy, acted: impl Fn(&Publisher) -> bool) -> (Publisher, ClientBook) {
    let mut publisher = bind(&small_queue_config());
    publisher.on_event(&directory(1, LOCATE, SYMBOL));
    let mut slow = connect_small_buffer(&mut publisher);
    slow.set_policy(policy).expect("send set policy");
    let mut slow_book = subscribe(&mut publisher, &mut slow, 0);
    let mut fast = connect(&mut publisher);
    let mut fast_book = subscribe(&mut publisher, &mut fast, 0);

    let recovering = FeedQuality { state: QualityState::Recovering, since: 50 };
    publisher.on_event(&envelope(60, BookEvent::Quality { quality: recovering }));
    let mut feed = Feed::new();
    let mut frames = Vec::new();
    let mut events = 0;
    loop {
        assert!(events < MAX_EVENTS, "policy did not act after {events} events");
        feed.send(&mut publisher);
        events += 1;
        if acted(&publisher) && publisher.subscriber_stats().iter().any(|s| s.behind) {
            break;
        }
        publisher.poll_io(Instant::now());
        if events % 64 == 0 {
            read_ready(&mut fast, &mut fast_book, &mut frames);
            frames.clear();
        }
    }
    let stale = FeedQuality { state: QualityState::Stale, since: 50 };
    publisher.on_event(&envelope(feed.step, BookEvent::Quality { quality: stale }));

    catch_up(&mut publisher, &mut slow, &mut slow_book);
    catch_up(&mut publisher, &mut fast, &mut fast_book);
    assert_eq!(fast_book.quality(), stale, "fast client quality");
    (publisher, slow_book)
}

#[test]
fn resnapshot_ends_with_latest_quality() {
    let (publisher, book) =
        quality_while_behind(SlowConsumerPolicy::Resnapshot, |p| p.stats().policy.resnapshot_dropped_frames > 0);
    assert!(publisher.stats().policy.resnapshots >= 1);
    assert_eq!(book.gaps(), 0);
    assert_eq!(book.quality(), FeedQuality { state: QualityState::Stale, since: 50 });
    assert_eq!(book.is_trustworthy(SYMBOL), Some(false));
}

#[test]
fn conflate_ends_with_latest_quality() {
    let (publisher, book) =
        quality_while_behind(SlowConsumerPolicy::Conflate, |p| p.stats().policy.conflated_updates >= 2000);
    assert!(publisher.stats().policy.catchups >= 1);
    assert_eq!(book.gaps(), 0);
    assert_eq!(book.quality(), FeedQuality { state: QualityState::Stale, since: 50 });
}

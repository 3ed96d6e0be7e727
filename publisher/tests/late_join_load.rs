//! Late joiners and resnapshots under full load. One thread feeds level events into a publisher as
//! fast as it can while clients connect, subscribe, request resnapshots and leave. Every client's
//! per-connection sequence must stay contiguous across its snapshots, and the clients that stay to
//! the end must hold the server's books.
//!
//! Short-lived clients are checked through periodic Digest frames: `ClientBook` compares each one
//! with its own book, so a digest match means the book equaled the server's mirror at the feed
//! sequence number the Digest carries.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{config, directory, envelope, level, mirror_levels};
use mdfh_feed::itch::Side;
use mdfh_matcher::BookEvent;
use mdfh_publisher::{Client, ClientBook, OwnedFrame, ProtocolError, Publisher, PublisherConfig};

/// Level events fed after the directory.
const EVENTS: u64 = 200_000;
/// Locate codes and symbols of the instruments.
const INSTRUMENTS: [(u16, &str); 3] = [(1, "AAPL"), (2, "MSFT"), (3, "QQQ")];
/// Price slots per side of each instrument. Slot `i` is `i + 1` cents away from the base price.
const SLOTS: usize = 64;
/// One cent in ITCH price units (1/10000 dollars).
const CENT: u32 = 100;
/// Level events between two `poll_io` calls of the feeding thread.
const EVENTS_PER_POLL: u64 = 16;
/// Depth of the symbol subscriptions. Subscriptions to every instrument take the full book.
const SYMBOL_DEPTH: u16 = 5;
/// Trading state fed after the last level event, so that a client knows it has every update.
const END_STATE: u8 = b'H';
/// Clients that connect and leave again and again while the feed runs.
const SHORT_LIVED_CLIENTS: u64 = 6;
/// Connections each short-lived client opens at most.
const MAX_VISITS: usize = 200;
/// Wall-clock limit of every loop in the test, so that a bug fails the test instead of hanging it.
const TEST_LIMIT: Duration = Duration::from_secs(20);

/// SplitMix64: a small deterministic generator, so that a failing event sequence can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Returns a value in `0..bound`.
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// What a client subscribes to.
#[derive(Debug, Clone, Copy)]
enum Subscription {
    /// One symbol at [`SYMBOL_DEPTH`].
    Symbol(&'static str),
    /// Every instrument at full depth.
    All,
}

impl Subscription {
    fn symbol(self) -> Option<&'static str> {
        match self {
            Subscription::Symbol(symbol) => Some(symbol),
            Subscription::All => None,
        }
    }

    fn depth(self) -> u16 {
        match self {
            Subscription::Symbol(_) => SYMBOL_DEPTH,
            Subscription::All => 0,
        }
    }

    /// Returns the number of snapshots one Subscribe or Resnapshot request brings.
    fn snapshots_per_request(self) -> usize {
        match self {
            Subscription::Symbol(_) => 1,
            Subscription::All => INSTRUMENTS.len(),
        }
    }
}

/// What one connection received.
#[derive(Debug)]
struct Visit {
    subscription: Subscription,
    book: ClientBook,
    snapshots: usize,
    resnapshots_requested: usize,
    /// Frames that a correct server never sends here (Error, Goodbye, SubscribeReject, protocol
    /// errors other than sequence gaps and digest mismatches), at most 4.
    unexpected: Vec<String>,
    /// Whether a Heartbeat confirmed that the client had read every data frame after the feed ended.
    drained: bool,
}

impl Visit {
    fn connect(addr: std::net::SocketAddr, subscription: Subscription) -> (Client, Visit) {
        let mut client = Client::connect(addr, Duration::from_secs(5)).expect("connect to publisher");
        client.set_read_timeout(Duration::from_millis(2)).expect("set read timeout");
        client.subscribe(subscription.symbol(), subscription.depth()).expect("send subscribe");
        let visit = Visit {
            subscription,
            book: ClientBook::new(),
            snapshots: 0,
            resnapshots_requested: 0,
            unexpected: Vec::new(),
            drained: false,
        };
        (client, visit)
    }

    /// Reads and applies one frame, if one arrives within the read timeout. Returns it.
    fn read(&mut self, client: &mut Client) -> Option<OwnedFrame> {
        let frame = match client.next_frame() {
            Ok(frame) => frame?,
            Err(e) => {
                self.note(format!("read failed: {e}"));
                return None;
            }
        };
        match &frame {
            OwnedFrame::Snapshot(_) => self.snapshots += 1,
            OwnedFrame::Error { .. } | OwnedFrame::Goodbye { .. } | OwnedFrame::SubscribeReject { .. } => {
                self.note(format!("unexpected frame {frame:?}"));
            }
            _ => {}
        }
        // Sequence gaps and digest mismatches are counted by the book and asserted at the end.
        if let Err(e) = self.book.apply(&frame) {
            if !matches!(e, ProtocolError::SequenceGap { .. } | ProtocolError::DigestMismatch { .. }) {
                self.note(format!("applying {frame:?} failed: {e}"));
            }
        }
        Some(frame)
    }

    fn request_resnapshot(&mut self, client: &mut Client) {
        client.request_resnapshot(self.subscription.symbol()).expect("send resnapshot request");
        self.resnapshots_requested += 1;
    }

    /// Returns the number of snapshots the requests sent so far bring.
    fn snapshots_owed(&self) -> usize {
        (1 + self.resnapshots_requested) * self.subscription.snapshots_per_request()
    }

    fn note(&mut self, text: String) {
        if self.unexpected.len() < 4 {
            self.unexpected.push(text);
        }
    }
}

/// Feeds [`EVENTS`] random level events and then an [`END_STATE`] trading state per instrument,
/// polling I/O every [`EVENTS_PER_POLL`] events. Then serves I/O until `stop` or [`TEST_LIMIT`].
fn feed(mut publisher: Publisher, feed_done: &AtomicBool, stop: &AtomicBool, start: Instant) -> Publisher {
    let mut rng = Rng(0x5eed_0001);
    // Shares per price slot, indexed by instrument, side (0 bid, 1 ask) and slot.
    let mut shares = [[[0u64; SLOTS]; 2]; INSTRUMENTS.len()];
    let mut feed_seq = INSTRUMENTS.len() as u64;

    for _ in 0..EVENTS {
        feed_seq += 1;
        let instrument = rng.below(INSTRUMENTS.len() as u64) as usize;
        let side_index = rng.below(2) as usize;
        let slot = rng.below(SLOTS as u64) as usize;
        let (locate, _) = INSTRUMENTS[instrument];
        let current = &mut shares[instrument][side_index][slot];
        // A third of the events on an existing level remove it. The others add or resize a level.
        let new_shares = if *current != 0 && rng.below(3) == 0 { 0 } else { (1 + rng.below(10)) * 100 };
        *current = new_shares;
        let orders = if new_shares == 0 { 0 } else { 1 + rng.below(5) as u32 };

        let base = 1_000_000 * u32::from(locate);
        let offset = CENT * (slot as u32 + 1);
        let (side, price) = if side_index == 0 { (Side::Buy, base - offset) } else { (Side::Sell, base + offset) };
        publisher.on_event(&level(feed_seq, locate, side, price, new_shares, orders));
        if feed_seq.is_multiple_of(EVENTS_PER_POLL) {
            publisher.poll_io(Instant::now());
        }
    }
    for (locate, _) in INSTRUMENTS {
        feed_seq += 1;
        publisher.on_event(&envelope(feed_seq, BookEvent::TradingState { locate, state: END_STATE }));
    }
    feed_done.store(true, Ordering::Release);

    while !stop.load(Ordering::Acquire) && start.elapsed() < TEST_LIMIT {
        if publisher.poll_io(Instant::now()) == 0 {
            thread::sleep(Duration::from_millis(1));
        }
    }
    publisher
}

/// Connects again and again until the feed ends: each connection subscribes, reads for a random
/// 1 to 30 ms (and at least until every snapshot it is owed arrived), sometimes requests a
/// resnapshot, then closes.
fn visit_repeatedly(addr: std::net::SocketAddr, seed: u64, feed_done: &AtomicBool, start: Instant) -> Vec<Visit> {
    let mut rng = Rng(seed);
    let mut visits = Vec::new();
    while visits.len() < MAX_VISITS && !feed_done.load(Ordering::Acquire) && start.elapsed() < TEST_LIMIT {
        let subscription = match rng.below(4) {
            0 => Subscription::All,
            n => Subscription::Symbol(INSTRUMENTS[n as usize - 1].1),
        };
        let (mut client, mut visit) = Visit::connect(addr, subscription);
        let stay = Duration::from_millis(1 + rng.below(30));
        let resnapshot_at = (rng.below(2) == 0).then(|| Duration::from_millis(rng.below(30)));
        let visit_start = Instant::now();

        loop {
            let elapsed = visit_start.elapsed();
            if resnapshot_at.is_some_and(|at| elapsed >= at) && visit.resnapshots_requested == 0 && visit.snapshots > 0 {
                visit.request_resnapshot(&mut client);
            }
            let owed = visit.snapshots < visit.snapshots_owed() || (resnapshot_at.is_some() && visit.resnapshots_requested == 0);
            if (elapsed >= stay && !owed) || !visit.unexpected.is_empty() || start.elapsed() >= TEST_LIMIT {
                break;
            }
            visit.read(&mut client);
        }
        visits.push(visit);
    }
    visits
}

/// Stays connected for the whole feed, requesting a resnapshot every 10,000 frames (5 at most)
/// while it runs. After every subscribed book shows [`END_STATE`], reads until a Heartbeat reports
/// the last sequence number the client has, which means nothing is left in flight.
fn stay_to_end(addr: std::net::SocketAddr, subscription: Subscription, feed_done: &AtomicBool, start: Instant) -> Visit {
    let (mut client, mut visit) = Visit::connect(addr, subscription);
    let expected_books = subscription.snapshots_per_request();
    let mut frames = 0u64;

    while visit.unexpected.is_empty() && start.elapsed() < TEST_LIMIT {
        let Some(frame) = visit.read(&mut client) else {
            continue;
        };
        frames += 1;
        if frames.is_multiple_of(10_000) && visit.resnapshots_requested < 5 && !feed_done.load(Ordering::Acquire) {
            visit.request_resnapshot(&mut client);
        }

        let ended = visit.book.instrument_count() == expected_books
            && INSTRUMENTS.iter().filter_map(|(locate, _)| visit.book.book(*locate)).all(|b| b.trading_state == END_STATE);
        if let OwnedFrame::Heartbeat { last_seq, .. } = frame {
            if ended && last_seq == visit.book.last_seq() && visit.snapshots >= visit.snapshots_owed() {
                visit.drained = true;
                break;
            }
        }
    }
    visit
}

#[test]
fn late_joiners_stay_contiguous_under_load() {
    let cfg = PublisherConfig {
        // Room for every frame of the run, so that no client is disconnected as a slow consumer.
        queue_bytes: 64 * 1024 * 1024,
        heartbeat_interval: Duration::from_millis(10),
        digest_interval: 50,
        // Every level, cut to each subscription's depth.
        digest_depth: 0,
        ..config()
    };
    let mut publisher = Publisher::bind(&cfg).expect("bind publisher on 127.0.0.1");
    for (feed_seq, (locate, symbol)) in (1..).zip(INSTRUMENTS) {
        publisher.on_event(&directory(feed_seq, locate, symbol));
    }
    let addr = publisher.local_addr();
    let feed_done = &AtomicBool::new(false);
    let stop = &AtomicBool::new(false);
    let start = Instant::now();

    let (publisher, long_lived, short_lived) = thread::scope(|scope| {
        let feeder = scope.spawn(|| feed(publisher, feed_done, stop, start));
        let long_lived: Vec<_> = [Subscription::All, Subscription::Symbol("MSFT")]
            .into_iter()
            .map(|subscription| scope.spawn(move || stay_to_end(addr, subscription, feed_done, start)))
            .collect();
        let short_lived: Vec<_> = (0..SHORT_LIVED_CLIENTS)
            .map(|index| scope.spawn(move || visit_repeatedly(addr, 0x5eed_1000 + index, feed_done, start)))
            .collect();

        let long_lived: Vec<_> = long_lived.into_iter().map(|h| h.join()).collect();
        let short_lived: Vec<_> = short_lived.into_iter().map(|h| h.join()).collect();
        // The feeder serves I/O until every client is done, and stops even if one panicked.
        stop.store(true, Ordering::Release);
        let publisher = feeder.join().expect("feeding thread panicked");
        let long_lived: Vec<Visit> = long_lived.into_iter().map(|r| r.expect("long-lived client panicked")).collect();
        let short_lived: Vec<Visit> =
            short_lived.into_iter().flat_map(|r| r.expect("short-lived client panicked")).collect();
        (publisher, long_lived, short_lived)
    });

    assert!(feed_done.load(Ordering::Acquire), "feed did not finish within {TEST_LIMIT:?}");
    let stats = publisher.stats();
    assert_eq!(stats.slow_consumer_disconnects, 0, "stats: {stats:?}");
    assert_eq!(stats.malformed_requests, 0, "stats: {stats:?}");
    assert_eq!(stats.rejected_requests, 0, "stats: {stats:?}");

    for (index, visit) in short_lived.iter().enumerate() {
        let context = format!("short-lived visit {index} ({:?})", visit.subscription);
        assert_eq!(visit.unexpected, Vec::<String>::new(), "{context}");
        assert_eq!(visit.book.gaps(), 0, "{context}: {:?}", visit.book.last_gap());
        assert_eq!(visit.book.digest_mismatches(), 0, "{context}");
        assert!(visit.snapshots >= visit.snapshots_owed(), "{context}: {} snapshots", visit.snapshots);
    }
    let resnapshot_visits = short_lived.iter().filter(|v| v.resnapshots_requested > 0).count();
    assert!(short_lived.len() >= SHORT_LIVED_CLIENTS as usize, "visits: {}", short_lived.len());
    assert!(resnapshot_visits > 0, "no short-lived visit requested a resnapshot");

    for visit in &long_lived {
        let context = format!("long-lived client ({:?})", visit.subscription);
        assert_eq!(visit.unexpected, Vec::<String>::new(), "{context}");
        assert!(visit.drained, "{context} did not drain within {TEST_LIMIT:?}, last seq {}", visit.book.last_seq());
        assert_eq!(visit.book.gaps(), 0, "{context}: {:?}", visit.book.last_gap());
        assert_eq!(visit.book.digest_mismatches(), 0, "{context}");
        assert!(visit.book.digests_checked() > 0, "{context} checked no digest");
        assert!(visit.resnapshots_requested > 0, "{context} requested no resnapshot");
        assert_eq!(visit.snapshots, visit.snapshots_owed(), "{context}");
        if matches!(visit.subscription, Subscription::All) {
            // Every level event reaches a subscriber to all instruments as one data frame.
            assert!(visit.book.last_seq() > EVENTS, "{context}: last seq {}", visit.book.last_seq());
        }

        let depth = usize::from(visit.subscription.depth());
        for (locate, symbol) in INSTRUMENTS {
            if visit.subscription.symbol().is_some_and(|s| s != symbol) {
                assert!(visit.book.book(locate).is_none(), "{context} has a book of unsubscribed {symbol}");
                continue;
            }
            let Some((bids, asks)) = visit.book.levels(locate) else {
                panic!("{context} has no book of {symbol}");
            };
            assert_eq!(bids, mirror_levels(&publisher, locate, Side::Buy, depth), "{context}: {symbol} bids");
            assert_eq!(asks, mirror_levels(&publisher, locate, Side::Sell, depth), "{context}: {symbol} asks");
        }
    }
}

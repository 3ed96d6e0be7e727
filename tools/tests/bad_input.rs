//! Bad input to a running `mdfh run`: crafted MoldUDP64 datagrams on its UDP input and malformed
//! requests on its subscriber port. Each case checks the exact counter in `GET /stats` and the log
//! line that names the problem. A valid packet sent afterwards must still be applied and reach a
//! subscriber. Each test ends by checking that the handler still serves its stats and exits 0 on
//! SIGTERM.
//!
//! Each test runs its own handler, because the handler logs each kind of error at most once a
//! second and a stale book stays stale until the next session.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mdfh_feed::itch::{AddOrder, Header, Message, OrderDelete, Side, Stock};
use mdfh_feed::moldudp64::{PacketHeader, SessionId};
use mdfh_feed::udp::UdpSender;
use mdfh_matcher::BookStatus;
use mdfh_publisher::protocol::{ErrorCode, GoodbyeReason, Level};
use mdfh_publisher::{Client, ClientBook, OwnedFrame};
use serde_json::Value;
use support::{
    counter, handler_config, temp_dir, wait_until, Handler, BOOK_ERROR_COUNTERS, DECODE_ERROR_COUNTERS, UDP_INPUT, WAIT,
};

/// The instrument of every valid message: NASDAQ's test symbol, on locate 1.
const SYMBOL: &str = "ZVZZT";
const LOCATE: u16 = 1;
const SESSION: SessionId = *b"TEST000001";
/// 09:30 New York time, in nanoseconds since midnight.
const TIMESTAMP: u64 = 34_200_000_000_000;
/// Bytes of an ITCH `A` message.
const ADD_LEN: usize = 36;

#[test]
fn short_datagram_is_dropped() {
    let mut fixture = Fixture::start("short_datagram");

    fixture.feed.send_datagram(&SESSION);

    let stats = fixture.handler.wait_counter("feed.short_packets", 1);
    assert_no_other_errors(&stats, "feed.short_packets");
    fixture.expect_log(&[
        "WARN",
        "dropped a MoldUDP64 packet",
        "is 10 bytes, shorter than the 20-byte header",
    ]);
    fixture.send_add_and_wait();
    fixture.finish();
}

#[test]
fn block_past_end_drops_rest_of_packet() {
    let mut fixture = Fixture::start("block_past_end");
    let (price, shares) = fixture.next_level();
    let add = fixture.next_add(price, shares);

    // Block 0 is a valid add. Block 1 claims 500 bytes, but only 10 follow. Block 1 starts at
    // byte 20 (header) + 2 (length prefix) + 36 (add) = 58.
    let mut blocks = block(&add);
    blocks.extend_from_slice(&500u16.to_be_bytes());
    blocks.extend_from_slice(&[0u8; 10]);
    fixture.feed.send_blocks(2, &blocks);

    fixture.watcher.wait_level(price, shares);
    let stats = fixture.handler.wait_counter("feed.blocks_past_end", 1);
    assert_no_other_errors(&stats, "feed.blocks_past_end");
    fixture.expect_log(&[
        "dropped the rest of a MoldUDP64 packet",
        "message block 1 at byte offset 58: length 500 runs past the end of the packet (10 bytes left)",
    ]);
    fixture.send_add_and_wait();
    assert_eq!(
        counter(&fixture.handler.stats(), "feed.gaps"),
        Some(0),
        "the packet's count was consumed"
    );
    fixture.finish();
}

#[test]
fn unknown_message_type_is_skipped() {
    let mut fixture = Fixture::start("unknown_message_type");
    let (price, shares) = fixture.next_level();
    let add = fixture.next_add(price, shares);
    let sequence = fixture.feed.next_seq;

    // `z` is not an ITCH 5.0 message type, and the add in the next block must still decode.
    let mut unknown = vec![b'z'];
    unknown.extend_from_slice(&[0u8; 19]);
    let mut blocks = block(&unknown);
    blocks.extend_from_slice(&block(&add));
    fixture.feed.send_blocks(2, &blocks);

    fixture.watcher.wait_level(price, shares);
    let stats = fixture.handler.wait_counter("feed.unknown_message_types", 1);
    assert_no_other_errors(&stats, "feed.unknown_message_types");
    fixture.expect_log(&[
        "dropped an ITCH message",
        "unknown ITCH message type 0x7a",
        &format!("sequence={sequence}"),
    ]);
    fixture.send_add_and_wait();
    fixture.finish();
}

#[test]
fn truncated_message_is_dropped() {
    let mut fixture = Fixture::start("truncated_message");
    let (price, shares) = fixture.next_level();
    let add = fixture.next_add(price, shares);

    fixture.feed.send_messages(&[&add[..20]]);

    let stats = fixture.handler.wait_counter("feed.truncated_messages", 1);
    assert_no_other_errors(&stats, "feed.truncated_messages");
    fixture.expect_log(&[
        "dropped an ITCH message",
        "ITCH message type 'A'",
        "is 20 bytes, expected 36",
    ]);
    fixture.send_add_and_wait();
    fixture.finish();
}

#[test]
fn unknown_order_marks_book_stale() {
    let mut fixture = Fixture::start("unknown_order");

    fixture.feed.send_messages(&[&delete_order(999_999)]);

    fixture.watcher.wait_status(BookStatus::Stale);
    let stats = fixture.handler.wait_counter("book.unknown_orders", 1);
    assert_no_other_errors(&stats, "book.unknown_orders");
    fixture.expect_log(&[
        "book integrity problem; book marked stale",
        "order 999999 not found on the book",
    ]);
    fixture.handler.wait_stats("the book summary marked stale", |stats| {
        book_summary(stats)["stale"] == true
    });
    fixture.send_add_and_wait();
    fixture.finish();
}

#[test]
fn add_for_locate_zero_is_rejected() {
    let mut fixture = Fixture::start("locate_zero");
    let (price, shares) = fixture.next_level();
    let order_ref = fixture.next_ref();

    fixture.feed.send_messages(&[&add_order(0, order_ref, price, shares)]);

    let stats = fixture.handler.wait_counter("book.unknown_instruments", 1);
    assert_no_other_errors(&stats, "book.unknown_instruments");
    fixture.expect_log(&[
        "book integrity problem",
        "ignored ITCH 'A' message: stock locate 0 names no instrument",
    ]);
    fixture.send_add_and_wait();
    // The opening add and the last one count, because the rejected add is on no book.
    let stats = fixture.handler.wait_stats("2 messages on the book summary", |stats| {
        book_summary(stats)["messages"] == 2
    });
    assert_eq!(
        book_summary(&stats)["stale"],
        false,
        "locate 0 names no book to mark stale: {stats}"
    );
    fixture.finish();
}

#[test]
fn sequence_gap_marks_books_stale() {
    let mut fixture = Fixture::start("sequence_gap");
    let (price, shares) = fixture.next_level();
    let add = fixture.next_add(price, shares);
    let expected = fixture.feed.next_seq;

    // Messages expected..expected + 5 never arrive.
    fixture.feed.next_seq += 5;
    fixture.feed.send_messages(&[&add]);

    fixture.watcher.wait_status(BookStatus::Stale);
    fixture.watcher.wait_level(price, shares);
    let stats = fixture.handler.wait_counter("feed.gaps", 1);
    assert_eq!(counter(&stats, "feed.messages_missed"), Some(5), "stats: {stats}");
    assert_no_other_errors(&stats, "feed.gaps");
    fixture.expect_log(&[
        "sequence gap; books marked stale",
        &format!("expected={expected}"),
        &format!("received={}", expected + 5),
        "missed=5",
    ]);
    fixture.send_add_and_wait();
    fixture.finish();
}

#[test]
fn duplicate_packet_is_not_applied_twice() {
    let mut fixture = Fixture::start("duplicate_packet");
    let (price, shares) = fixture.next_level();
    let add = fixture.next_add(price, shares);
    let sequence = fixture.feed.next_seq;

    let packet = fixture.feed.send_messages(&[&add]);
    fixture.watcher.wait_level(price, shares);
    fixture.feed.send_datagram(&packet);

    let stats = fixture.handler.wait_counter("feed.duplicate_packets", 1);
    assert_eq!(counter(&stats, "feed.duplicate_messages"), Some(1), "stats: {stats}");
    assert_no_other_errors(&stats, "feed.duplicate_packets");
    fixture.expect_log(&[
        "dropped a duplicate MoldUDP64 packet",
        "session=TEST000001",
        &format!("sequence={sequence}"),
    ]);

    // The next add's update comes after anything the duplicate could have caused.
    fixture.send_add_and_wait();
    let bids = fixture.watcher.bids();
    let level = bids.iter().find(|level| level.price == price);
    assert_eq!(
        level.map(|l| (l.shares, l.orders)),
        Some((u64::from(shares), 1)),
        "bids: {bids:?}"
    );
    let stats = fixture.handler.wait_counter("book.messages_applied", 3);
    assert_counters_zero(&stats, &BOOK_ERROR_COUNTERS);
    fixture.finish();
}

#[test]
fn new_session_resets_books() {
    let mut fixture = Fixture::start("new_session");
    let before = fixture.handler.wait_counter("book.messages_applied", 1);
    let session_changes = counter(&before, "feed.session_changes").unwrap_or(0);
    let resets = counter(&before, "book.resets").unwrap_or(0);

    // The current session ends, then the new one numbers from 1 again, and order references
    // may repeat.
    fixture.feed.send_blocks(0xFFFF, &[]);
    fixture.feed.session = *b"TEST000002";
    fixture.feed.next_seq = 1;
    let (price, shares) = fixture.next_level();
    fixture.feed.send_messages(&[&add_order(LOCATE, 1, price, shares)]);

    fixture
        .watcher
        .wait_frame("a Reset frame", |frame| matches!(frame, OwnedFrame::Reset { .. }));
    fixture.watcher.wait_level(price, shares);
    let bids = fixture.watcher.bids();
    assert_eq!(bids.len(), 1, "only the new session's order may rest: {bids:?}");
    let stats = fixture
        .handler
        .wait_counter("feed.session_changes", session_changes + 1);
    assert_eq!(counter(&stats, "book.resets"), Some(resets + 1), "stats: {stats}");
    assert_no_other_errors(&stats, "feed.session_changes");
    fixture.expect_log(&[
        "new MoldUDP64 session; books reset",
        "session=TEST000002",
        "previous=TEST000001",
    ]);
    fixture.send_add_and_wait();
    fixture.finish();
}

#[test]
fn stray_session_packet_is_dropped() {
    let mut fixture = Fixture::start("stray_session");
    let before = fixture.handler.wait_counter("book.messages_applied", 1);
    let resets = counter(&before, "book.resets").unwrap_or(0);

    // One packet of another session while the current one is open: dropped, no reset.
    let current = fixture.feed.session;
    let next_seq = fixture.feed.next_seq;
    fixture.feed.session = *b"FORGED\n\x1b[m";
    fixture.feed.next_seq = 1;
    let (price, shares) = fixture.next_level();
    fixture.feed.send_messages(&[&add_order(LOCATE, 999_999, price, shares)]);
    let stats = fixture.handler.wait_counter("feed.foreign_session_packets", 1);
    assert_eq!(counter(&stats, "book.resets"), Some(resets), "stats: {stats}");
    assert_eq!(counter(&stats, "feed.session_changes"), Some(0), "stats: {stats}");
    // The session id is logged escaped, so control bytes cannot reach the terminal.
    fixture.expect_log(&["dropped a packet of another MoldUDP64 session", "session=FORGED\\n\\x1b[m"]);

    fixture.feed.session = current;
    fixture.feed.next_seq = next_seq;
    fixture.send_add_and_wait();
    fixture.finish();
}

#[test]
fn bad_datagram_flood_is_rate_limited() {
    const FLOOD: u64 = 1_000;
    let mut fixture = Fixture::start("bad_datagram_flood");
    let drop_line = ["dropped a MoldUDP64 packet", "shorter than the 20-byte header"];

    let started = Instant::now();
    for _ in 0..FLOOD {
        fixture.feed.send_datagram(&SESSION);
    }
    fixture.handler.wait_counter("feed.short_packets", FLOOD);
    let flood_handled = Instant::now();
    let elapsed = started.elapsed();
    fixture.expect_log(&drop_line);
    let lines = fixture.handler.process.stderr.count_containing(&drop_line);
    // The first line, then at most one per second started since.
    let allowed = 1 + elapsed.as_secs() as usize + 1;
    assert!(
        (1..=allowed).contains(&lines),
        "{lines} log lines for {FLOOD} bad datagrams in {elapsed:?}"
    );

    // Every flood line was logged before the counter reached FLOOD, so a bad datagram a second
    // later is logged again. Its line reports how many were suppressed meanwhile, so that the
    // lines and their suppressed counts add up to every bad datagram.
    std::thread::sleep(Duration::from_millis(1_100).saturating_sub(flood_handled.elapsed()));
    fixture.feed.send_datagram(&SESSION);
    fixture.handler.wait_counter("feed.short_packets", FLOOD + 1);
    let log = &fixture.handler.process.stderr;
    wait_until(WAIT, "the log line after the flood", || {
        (log.count_containing(&drop_line) > lines).then_some(())
    });
    let logged: Vec<String> = log
        .snapshot()
        .into_iter()
        .filter(|line| drop_line.iter().all(|part| line.contains(part)))
        .collect();
    let suppressed: u64 = logged.iter().map(|line| suppressed_count(line)).sum();
    assert_eq!(
        logged.len() as u64 + suppressed,
        FLOOD + 1,
        "log lines:\n{}",
        logged.join("\n")
    );

    fixture.send_add_and_wait();
    fixture.finish();
}

#[test]
fn malformed_requests_get_error_or_goodbye() {
    let mut fixture = Fixture::start("malformed_requests");
    let addr = fixture.handler.subscribers;

    // Unknown type `Z` with a length that fits: an Error frame, and the connection goes on.
    let mut unknown = raw_client(addr);
    send_raw(&mut unknown, &[2, 0, 0, 0, b'Z', 0]);
    let frame = next_frame(&mut unknown, "an Error frame for type Z");
    assert!(
        matches!(
            frame,
            OwnedFrame::Error {
                code: ErrorCode::UnknownType,
                ..
            }
        ),
        "frame: {frame:?}"
    );
    unknown
        .subscribe(Some(SYMBOL), 5)
        .unwrap_or_else(|e| panic!("subscribe after the error: {e}"));
    let frame = next_frame(&mut unknown, "the SubscribeAck after the error");
    assert!(matches!(frame, OwnedFrame::SubscribeAck(_)), "frame: {frame:?}");
    fixture.handler.wait_counter("publish.malformed_requests", 1);

    // A length far above any request: the stream cannot be resynchronized, so Goodbye.
    let mut oversized = raw_client(addr);
    send_raw(&mut oversized, &[0x00, 0x00, 0x10, 0x00, b's']);
    expect_protocol_goodbye(&mut oversized);
    fixture.handler.wait_counter("publish.malformed_requests", 2);

    // Text instead of frames: "GET " read as a length is above the maximum too.
    let mut garbage = raw_client(addr);
    send_raw(&mut garbage, b"GET /stats HTTP/1.0\r\n\r\n");
    expect_protocol_goodbye(&mut garbage);

    let stats = fixture.handler.wait_counter("publish.malformed_requests", 3);
    assert_eq!(
        counter(&stats, "publish.slow_consumer_disconnects"),
        Some(0),
        "stats: {stats}"
    );
    // The subscriber connected all along still receives updates.
    fixture.send_add_and_wait();
    assert!(
        !fixture
            .watcher
            .frames
            .iter()
            .any(|frame| matches!(frame, OwnedFrame::Goodbye { .. } | OwnedFrame::Error { .. })),
        "the well-behaved subscriber received: {:?}",
        fixture.watcher.frames
    );
    fixture.finish();
}

/// A handler with UDP input, a subscriber to [`SYMBOL`] and one order resting on the book.
struct Fixture {
    handler: Handler,
    feed: Feed,
    watcher: Watcher,
    last_ref: u64,
    levels: u32,
}

impl Fixture {
    fn start(test_name: &str) -> Fixture {
        let dir = temp_dir(test_name);
        let handler = Handler::start(&dir, &handler_config(UDP_INPUT));
        let watcher = Watcher::connect(handler.subscribers);
        let feed = Feed::new(handler.feed_addr());
        let mut fixture = Fixture {
            handler,
            feed,
            watcher,
            last_ref: 0,
            levels: 0,
        };
        fixture.send_add_and_wait();
        fixture
    }

    fn next_ref(&mut self) -> u64 {
        self.last_ref += 1;
        self.last_ref
    }

    /// Returns a bid price and size no earlier call returned: $10.00, $10.01, ... with 101, 102,
    /// ... shares.
    fn next_level(&mut self) -> (u32, u32) {
        self.levels += 1;
        (100_000 + 100 * self.levels, 100 + self.levels)
    }

    fn next_add(&mut self, price: u32, shares: u32) -> Vec<u8> {
        let order_ref = self.next_ref();
        add_order(LOCATE, order_ref, price, shares)
    }

    /// Sends a valid add in a packet of its own and waits until the subscriber receives its level.
    fn send_add_and_wait(&mut self) {
        let (price, shares) = self.next_level();
        let add = self.next_add(price, shares);
        self.feed.send_messages(&[&add]);
        self.watcher.wait_level(price, shares);
    }

    fn expect_log(&self, parts: &[&str]) {
        self.handler.process.stderr.wait_for(parts);
    }

    /// Stops the handler, which must still serve its stats and exit 0, and checks that the
    /// subscriber gets the shutdown Goodbye.
    fn finish(mut self) {
        let status = self.handler.stop();
        assert!(
            status.success(),
            "mdfh run exited with {status}; stderr:\n{}",
            self.handler.process.stderr.text()
        );
        self.watcher.wait_frame("the shutdown Goodbye", |frame| {
            matches!(
                frame,
                OwnedFrame::Goodbye {
                    reason: GoodbyeReason::Shutdown,
                    ..
                }
            )
        });
    }
}

/// The sending side of the feed: MoldUDP64 datagrams to the handler's input.
struct Feed {
    sender: UdpSender,
    target: SocketAddr,
    session: SessionId,
    next_seq: u64,
}

impl Feed {
    fn new(target: SocketAddr) -> Feed {
        let sender = UdpSender::localhost().unwrap_or_else(|e| panic!("cannot open a UDP socket on 127.0.0.1: {e}"));
        Feed {
            sender,
            target,
            session: SESSION,
            next_seq: 1,
        }
    }

    fn send_datagram(&self, bytes: &[u8]) {
        let sent = self
            .sender
            .send_to(bytes, self.target)
            .unwrap_or_else(|e| panic!("send to {}: {e}", self.target));
        assert_eq!(sent, bytes.len(), "datagram cut short");
    }

    /// Sends one packet of `messages` at the next sequence number and returns its bytes.
    fn send_messages(&mut self, messages: &[&[u8]]) -> Vec<u8> {
        let blocks: Vec<u8> = messages.iter().flat_map(|message| block(message)).collect();
        let count =
            u16::try_from(messages.len()).unwrap_or_else(|_| panic!("{} messages in one packet", messages.len()));
        self.send_blocks(count, &blocks)
    }

    /// Sends a packet whose header claims `count` messages, followed by the raw `blocks`, and
    /// returns its bytes. The next packet's sequence number follows the `count` messages.
    fn send_blocks(&mut self, count: u16, blocks: &[u8]) -> Vec<u8> {
        let header = PacketHeader {
            session: self.session,
            sequence: self.next_seq,
            count,
        };
        let mut packet = header.encode().to_vec();
        packet.extend_from_slice(blocks);
        self.send_datagram(&packet);
        self.next_seq += u64::from(count);
        packet
    }
}

/// A subscriber to [`SYMBOL`] at full depth, keeping every frame and the book they build.
struct Watcher {
    client: Client,
    book: ClientBook,
    frames: Vec<OwnedFrame>,
    /// Index of the first frame that `wait_frame` has not matched or passed yet.
    cursor: usize,
}

impl Watcher {
    fn connect(addr: SocketAddr) -> Watcher {
        let mut client = Client::connect(addr, WAIT).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        client
            .set_read_timeout(Duration::from_millis(50))
            .unwrap_or_else(|e| panic!("set the read timeout: {e}"));
        client
            .subscribe(Some(SYMBOL), 0)
            .unwrap_or_else(|e| panic!("subscribe to {SYMBOL}: {e}"));
        let mut watcher = Watcher {
            client,
            book: ClientBook::new(),
            frames: Vec::new(),
            cursor: 0,
        };
        watcher.wait_frame("the SubscribeAck", |frame| matches!(frame, OwnedFrame::SubscribeAck(_)));
        watcher
    }

    /// Reads frames until one after the last matched frame satisfies `matches`, and returns it.
    /// Frames before it count as passed, so a series of waits checks the order of frames. Every
    /// frame read is applied to the book, which must accept it.
    fn wait_frame(&mut self, what: &str, matches: impl Fn(&OwnedFrame) -> bool) -> OwnedFrame {
        let deadline = Instant::now() + WAIT;
        loop {
            while let Some(frame) = self.frames.get(self.cursor) {
                self.cursor += 1;
                if matches(frame) {
                    return frame.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; frames: {:?}",
                self.frames
            );
            match self.client.next_frame() {
                Ok(Some(frame)) => {
                    if let Err(error) = self.book.apply(&frame) {
                        panic!(
                            "the client book rejected {frame:?}: {error}; frames before: {:?}",
                            self.frames
                        );
                    }
                    self.frames.push(frame);
                }
                Ok(None) => {}
                Err(error) => panic!(
                    "reading frames while waiting for {what}: {error}; frames: {:?}",
                    self.frames
                ),
            }
        }
    }

    /// Waits for the update (or snapshot) that shows `shares` shares on the bid at `price`.
    fn wait_level(&mut self, price: u32, shares: u32) {
        let shares = u64::from(shares);
        let what = format!("a bid level of {shares} shares at {price}");
        self.wait_frame(&what, |frame| match frame {
            OwnedFrame::LevelUpdate(update) => {
                update.locate == LOCATE && update.level.price == price && update.level.shares == shares
            }
            OwnedFrame::Snapshot(snapshot) => snapshot
                .bids
                .iter()
                .any(|level| level.price == price && level.shares == shares),
            _ => false,
        });
    }

    fn wait_status(&mut self, status: BookStatus) {
        self.wait_frame(&format!("book status {status:?}"), |frame| {
            matches!(frame, OwnedFrame::BookStatus(update) if update.locate == LOCATE && update.status == status)
        });
    }

    /// Returns the subscriber's bids of [`SYMBOL`], best first.
    fn bids(&self) -> Vec<Level> {
        self.book
            .book(SYMBOL)
            .map(|book| book.bids().to_vec())
            .unwrap_or_default()
    }
}

fn add_order(locate: u16, order_ref: u64, price: u32, shares: u32) -> Vec<u8> {
    let message = Message::AddOrder(AddOrder {
        header: Header {
            stock_locate: locate,
            tracking_number: 0,
            timestamp: TIMESTAMP,
        },
        order_ref,
        side: Side::Buy,
        shares,
        stock: Stock::new(SYMBOL),
        price,
        attribution: None,
    });
    let mut bytes = Vec::new();
    message.encode(&mut bytes);
    assert_eq!(bytes.len(), ADD_LEN, "encoded add");
    bytes
}

fn delete_order(order_ref: u64) -> Vec<u8> {
    let message = Message::OrderDelete(OrderDelete {
        header: Header {
            stock_locate: LOCATE,
            tracking_number: 0,
            timestamp: TIMESTAMP,
        },
        order_ref,
    });
    let mut bytes = Vec::new();
    message.encode(&mut bytes);
    bytes
}

/// Returns `message` as a MoldUDP64 message block: big-endian u16 length, then the bytes.
fn block(message: &[u8]) -> Vec<u8> {
    let len = u16::try_from(message.len()).unwrap_or_else(|_| panic!("{}-byte message", message.len()));
    let mut bytes = len.to_be_bytes().to_vec();
    bytes.extend_from_slice(message);
    bytes
}

/// Returns the stats summary of the [`SYMBOL`] book, or `null` while there is none.
fn book_summary(stats: &Value) -> Value {
    let books = stats["books"].as_array().cloned().unwrap_or_default();
    books
        .into_iter()
        .find(|book| book["symbol"] == SYMBOL)
        .unwrap_or(Value::Null)
}

/// Asserts that every decode and book error counter, and the gap counter, is 0, except
/// `expected`.
fn assert_no_other_errors(stats: &Value, expected: &str) {
    let others: Vec<&str> = DECODE_ERROR_COUNTERS
        .into_iter()
        .chain(BOOK_ERROR_COUNTERS)
        .chain(["feed.gaps"])
        .filter(|path| *path != expected)
        .collect();
    assert_counters_zero(stats, &others);
}

fn assert_counters_zero(stats: &Value, paths: &[&str]) {
    support::assert_counters(stats, paths, 0);
}

/// Returns the `suppressed=N` field of a rate-limited log line; 0 when it has none.
fn suppressed_count(line: &str) -> u64 {
    line.split_once("suppressed=")
        .and_then(|(_, rest)| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn raw_client(addr: SocketAddr) -> Client {
    let mut client = Client::connect(addr, WAIT).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    client
        .set_read_timeout(Duration::from_millis(50))
        .unwrap_or_else(|e| panic!("set the read timeout: {e}"));
    client
}

fn send_raw(client: &mut Client, bytes: &[u8]) {
    client.send_raw(bytes).unwrap_or_else(|e| panic!("send {bytes:?}: {e}"));
}

fn next_frame(client: &mut Client, what: &str) -> OwnedFrame {
    wait_until(WAIT, what, || match client.next_frame() {
        Ok(frame) => frame,
        Err(error) => panic!("reading {what}: {error}"),
    })
}

/// Expects a protocol-violation Goodbye and then the end of the connection.
fn expect_protocol_goodbye(client: &mut Client) {
    let frame = next_frame(client, "a Goodbye");
    assert!(
        matches!(
            frame,
            OwnedFrame::Goodbye {
                reason: GoodbyeReason::ProtocolViolation,
                ..
            }
        ),
        "frame: {frame:?}"
    );
    let end = wait_until(WAIT, "the end of the connection", || match client.next_frame() {
        Ok(Some(frame)) => panic!("frame after the Goodbye: {frame:?}"),
        Ok(None) => None,
        Err(error) => Some(error.kind()),
    });
    assert!(
        matches!(
            end,
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
        ),
        "the connection ended with {end:?}"
    );
}

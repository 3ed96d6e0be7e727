//! Bad input on the recovery path of `mdfh run`, end to end on 127.0.0.1. The test plays the
//! exchange: it sends line A packets built from the converted LOBSTER AAPL sample, reads the
//! handler's retransmission requests on a UDP socket of its own and responds badly, late or
//! never, and plays SoupBinTCP fallbacks that fail. Every case checks the recovery
//! counters, that no message is applied twice, and that the handler goes on and exits 0.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use mdfh_feed::moldudp64::{self, PacketBuilder, SessionId};
use mdfh_feed::recovery::request::{Request, REQUEST_LEN};
use mdfh_feed::soupbintcp::{ClientPacket, ServerPacket};
use serde_json::Value;
use support::{
    assert_counters, book_rows, convert_lobster_sample, counter, handler_config, mdfh_command, path_str,
    start_book_subscriber, stop_and_compare_books, temp_dir, Handler, Process, BOOK_ERROR_COUNTERS,
    DECODE_ERROR_COUNTERS, WAIT,
};

/// Session of every packet the test sends as the exchange.
const SESSION: SessionId = *b"BADINPUT01";
/// A session the handler never saw.
const OTHER_SESSION: SessionId = *b"OTHERSESS1";
/// Messages in each line A packet.
const PER_PACKET: u64 = 5;
/// Index (from 0) of the line A packet that the test leaves out: messages 101..=105 when the
/// numbering starts at 1.
const LOST_PACKET: u64 = 20;
/// Book levels compared with `mdfh book`.
const LEVELS: u16 = 10;

/// The sample's messages and the files of one test.
struct Feed {
    dir: PathBuf,
    file: PathBuf,
    /// Raw ITCH messages in file order.
    messages: Vec<Vec<u8>>,
    /// Sequence number of the first message.
    first_sequence: u64,
}

impl Feed {
    /// Converts the LOBSTER sample into `temp_dir(test_name)` and reads its messages back.
    fn load(test_name: &str, first_sequence: u64) -> Feed {
        let dir = temp_dir(test_name);
        let file = convert_lobster_sample(&dir);
        let opened = mdfh_feed::file::open(&file).unwrap_or_else(|e| panic!("cannot open {}: {e}", file.display()));
        let messages: Vec<Vec<u8>> = opened
            .messages()
            .map(|m| m.map(|m| m.bytes.to_vec()))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("cannot read the messages of {}: {e}", file.display()));
        assert!(messages.len() > 200, "{} holds {} messages", file.display(), messages.len());
        Feed { dir, file, messages, first_sequence }
    }

    /// Number of messages: the sample's 600 events and the system and directory messages
    /// before them.
    fn total(&self) -> u64 {
        self.messages.len() as u64
    }

    /// Sequence number after the last message.
    fn end_sequence(&self) -> u64 {
        self.first_sequence + self.total()
    }

    /// Returns the messages `first..end` of the line (sequence numbers) as one MoldUDP64 packet
    /// of `session`, numbered from `number_as`.
    fn packet_as(&self, session: SessionId, first: u64, end: u64, number_as: u64) -> Vec<u8> {
        let mut builder = PacketBuilder::new(session, number_as, usize::from(u16::MAX));
        for sequence in first..end {
            let index = usize::try_from(sequence - self.first_sequence).unwrap_or(usize::MAX);
            let message = self.messages.get(index).unwrap_or_else(|| panic!("no message with sequence {sequence}"));
            assert!(builder.try_push(message), "message {sequence} does not fit a packet");
        }
        builder.finish().to_vec()
    }

    /// Returns the messages `first..end` as one packet of `session` with their own numbers.
    fn packet(&self, session: SessionId, first: u64, end: u64) -> Vec<u8> {
        self.packet_as(session, first, end, first)
    }

    /// Returns the sequence range of line A packet `index`.
    fn range(&self, index: u64) -> (u64, u64) {
        let first = self.first_sequence + index * PER_PACKET;
        (first, (first + PER_PACKET).min(self.end_sequence()))
    }

    /// Number of line A packets.
    fn packet_count(&self) -> u64 {
        self.total().div_ceil(PER_PACKET)
    }
}

/// A handler under test, its book subscriber, and the sockets of the test's exchange.
struct Exchange {
    feed: Feed,
    handler: Handler,
    subscriber: Process,
    line_a: UdpSocket,
    /// The retransmission server, when the handler's configuration names it.
    server: UdpSocket,
}

impl Exchange {
    /// Starts `mdfh run` on line A with `recovery`, the keys of its `[recovery]` section, where
    /// `{server}` is replaced by the test's retransmission server address, and a book subscriber.
    fn start(feed: Feed, recovery: &str) -> Exchange {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("cannot bind the retransmission server: {e}"));
        server.set_read_timeout(Some(WAIT)).unwrap_or_else(|e| panic!("cannot set the read timeout: {e}"));
        let server_addr = server.local_addr().unwrap_or_else(|e| panic!("no server address: {e}"));

        let mut config = handler_config(support::UDP_INPUT);
        config.push_str("\n[recovery]\n");
        config.push_str(&recovery.replace("{server}", &server_addr.to_string()));
        let handler = Handler::start(&feed.dir, &config);
        let subscriber = start_book_subscriber(handler.subscribers, "AAPL", LEVELS);

        let line_a = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("cannot bind the line A sender: {e}"));
        line_a.connect(handler.feed_addr()).unwrap_or_else(|e| panic!("cannot connect line A: {e}"));
        Exchange { feed, handler, subscriber, line_a, server }
    }

    /// Sends line A packets `indexes` in order, skipping `skip`. Pauses briefly every few packets
    /// so that the handler's receive buffer never overflows.
    fn send_line(&self, indexes: std::ops::Range<u64>, skip: Option<u64>) {
        for index in indexes.filter(|i| Some(*i) != skip) {
            let (first, end) = self.feed.range(index);
            self.send_on_line(&self.feed.packet(SESSION, first, end));
            if index % 10 == 9 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    fn send_on_line(&self, datagram: &[u8]) {
        self.line_a.send(datagram).unwrap_or_else(|e| panic!("cannot send on line A: {e}"));
    }

    /// Reads the next datagram on the retransmission server socket, asserts that it is a request
    /// for `count` messages of the test session from `sequence`, and returns where it came from.
    fn expect_request(&self, sequence: u64, count: u16) -> SocketAddr {
        let mut buf = [0u8; 64];
        let (len, from) = self.server.recv_from(&mut buf).unwrap_or_else(|e| panic!("no retransmission request within {WAIT:?}: {e}"));
        let bytes = buf.get(..len).unwrap_or_default();
        assert_eq!(len, REQUEST_LEN, "request length; bytes {bytes:?}");
        let request = Request::decode(bytes).unwrap_or_else(|e| panic!("invalid request {bytes:?}: {e}"));
        assert_eq!(request.session, SESSION, "request session");
        assert_eq!(request.sequence, sequence, "request sequence");
        assert_eq!(request.count, count, "request count");
        from
    }

    /// Sends `datagram` from the retransmission server to `to`.
    fn respond(&self, datagram: &[u8], to: SocketAddr) {
        self.server.send_to(datagram, to).unwrap_or_else(|e| panic!("cannot send a response to {to}: {e}"));
    }

    /// Stops the handler and the subscriber and asserts that both exit 0.
    fn stop(mut self) {
        let status = self.handler.stop();
        assert!(status.success(), "mdfh run exited with {status}; stderr:\n{}", self.handler.process.stderr.text());
        let status = self.subscriber.wait_exit(WAIT);
        assert!(status.success(), "mdfh subscribe exited with {status}; stderr:\n{}", self.subscriber.stderr.text());
        let _ = std::fs::remove_dir_all(&self.feed.dir);
    }

    /// Stops the handler and checks the subscriber's books against a lossless `mdfh book`.
    fn stop_and_compare(mut self) {
        let expected = book_rows(&self.feed.file, "AAPL", LEVELS);
        stop_and_compare_books(&mut self.handler, &mut self.subscriber, &expected);
        let _ = std::fs::remove_dir_all(&self.feed.dir);
    }
}

/// Returns the `stale` flags of the book summaries in a stats document.
fn stale_flags(stats: &Value) -> Vec<bool> {
    let books = stats.get("books").and_then(Value::as_array).cloned().unwrap_or_default();
    books.iter().map(|b| b.get("stale").and_then(Value::as_bool).unwrap_or(false)).collect()
}

/// Waits until the stats list at least one book and every listed book is stale.
fn wait_books_stale(handler: &Handler) -> Value {
    handler.wait_stats("every book stale", |stats| {
        let flags = stale_flags(stats);
        !flags.is_empty() && flags.iter().all(|stale| *stale)
    })
}

/// Checks the end of a run in which the gap at `LOST_PACKET` was filled: every message applied
/// once, no error, no book stale.
fn assert_filled_run(exchange: &Exchange) -> Value {
    let handler = &exchange.handler;
    let total = exchange.feed.total();
    let stats = handler.wait_published(total);
    assert_counters(&stats, &DECODE_ERROR_COUNTERS, 0);
    assert_counters(&stats, &BOOK_ERROR_COUNTERS, 0);
    assert_counters(&stats, &["recovery.gaps", "recovery.gaps_filled"], 1);
    assert_counters(&stats, &["recovery.gave_up", "recovery.messages_given_up", "feed.gaps", "feed.messages_lost"], 0);
    assert_eq!(counter(&stats, "book.messages_applied"), Some(total), "stats {stats}");
    assert_eq!(counter(&stats, "recovery.retransmitted_messages"), Some(PER_PACKET), "stats {stats}");
    assert!(stale_flags(&stats).iter().all(|stale| !stale), "no book stale; stats {stats}");
    stats
}

/// Sends every line A packet but `LOST_PACKET`, and waits for the first request for it.
/// Returns the handler's request address.
fn open_gap(exchange: &Exchange) -> SocketAddr {
    exchange.send_line(0..exchange.feed.packet_count(), Some(LOST_PACKET));
    let (first, _) = exchange.feed.range(LOST_PACKET);
    let from = exchange.expect_request(first, PER_PACKET as u16);
    let printed = exchange.handler.process.stdout.wait_for(&["mdfh: feed: retransmission requests to"]);
    assert!(printed.ends_with(&format!(" from {from}")), "requests come from the printed address: {printed:?} vs {from}");
    from
}

#[test]
fn bad_responses_counted_then_gap_filled() {
    // The gap must outlive the bad responses, which the test checks one by one at the stats
    // refresh rate (0.2 s), so give-up is later here than in the other cases.
    let exchange = Exchange::start(Feed::load("bad_responses", 1), "retransmit = \"{server}\"\ngive_up_ms = 10000\n");
    let handler_addr = open_gap(&exchange);
    let feed = &exchange.feed;
    let handler = &exchange.handler;
    let (gap_first, gap_end) = feed.range(LOST_PACKET);
    let correct_response = feed.packet(SESSION, gap_first, gap_end);

    // A range that no request covers: the last line packet, already held.
    let (last_first, last_end) = feed.range(feed.packet_count() - 1);
    exchange.respond(&feed.packet(SESSION, last_first, last_end), handler_addr);
    handler.wait_counter("recovery.unrequested_responses", 1);

    // A heartbeat response carries no message.
    let mut heartbeat = Vec::new();
    moldudp64::heartbeat(SESSION, gap_first, &mut heartbeat);
    exchange.respond(&heartbeat, handler_addr);
    handler.wait_counter("recovery.unrequested_responses", 2);

    // The correct response, but from another port than the server's.
    let impostor = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("cannot bind a second socket: {e}"));
    impostor.send_to(&correct_response, handler_addr).unwrap_or_else(|e| panic!("cannot send from the second socket: {e}"));
    handler.wait_counter("recovery.stray_datagrams", 1);

    exchange.respond(&feed.packet(OTHER_SESSION, gap_first, gap_end), handler_addr);
    handler.wait_counter("recovery.foreign_responses", 1);

    // Messages 1..=5, applied long ago.
    exchange.respond(&feed.packet(SESSION, 1, 1 + PER_PACKET), handler_addr);
    handler.wait_counter("recovery.late_responses", 1);

    exchange.respond(b"garbage", handler_addr);
    handler.wait_counter("recovery.malformed_responses", 1);

    let stats = handler.stats();
    assert_eq!(counter(&stats, "recovery.gaps_filled"), Some(0), "no bad response filled the gap; stats {stats}");
    assert_eq!(counter(&stats, "recovery.retransmitted_messages"), Some(0), "stats {stats}");
    assert_eq!(counter(&stats, "feed.messages"), Some(gap_first - 1), "held packets wait for the gap; stats {stats}");

    // Two applied messages and the first missing one: only the missing one is new.
    exchange.respond(&feed.packet(SESSION, gap_first - 2, gap_first + 1), handler_addr);
    handler.wait_counter("recovery.retransmitted_messages", 1);
    handler.wait_counter("feed.duplicate_messages", 2);

    // The correct response overlaps the message just applied, which is skipped.
    exchange.respond(&correct_response, handler_addr);
    let stats = assert_filled_run(&exchange);
    assert_eq!(counter(&stats, "feed.messages"), Some(exchange.feed.total()), "each message decoded once; stats {stats}");
    assert_eq!(counter(&stats, "feed.duplicate_messages"), Some(3), "stats {stats}");
    assert_counters(&stats, &["recovery.unrequested_responses"], 2);
    assert_counters(&stats, &["recovery.stray_datagrams", "recovery.foreign_responses", "recovery.late_responses", "recovery.malformed_responses"], 1);
    exchange.stop_and_compare();
}

#[test]
fn stray_and_unrequested_counted_apart() {
    let exchange = Exchange::start(Feed::load("foreign_address_first", 1), "retransmit = \"{server}\"\ngive_up_ms = 10000\n");
    let handler_addr = open_gap(&exchange);
    let feed = &exchange.feed;
    let handler = &exchange.handler;
    let (gap_first, gap_end) = feed.range(LOST_PACKET);

    let impostor = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("cannot bind a second socket: {e}"));
    impostor
        .send_to(&feed.packet(SESSION, gap_first, gap_end), handler_addr)
        .unwrap_or_else(|e| panic!("cannot send from the second socket: {e}"));
    handler.wait_counter("recovery.stray_datagrams", 1);

    let (last_first, last_end) = feed.range(feed.packet_count() - 1);
    exchange.respond(&feed.packet(SESSION, last_first, last_end), handler_addr);
    handler.wait_counter("recovery.unrequested_responses", 1);

    exchange.respond(&feed.packet(SESSION, gap_first, gap_end), handler_addr);
    assert_filled_run(&exchange);
    exchange.stop_and_compare();
}

#[test]
fn response_missing_blocks_is_malformed() {
    let exchange = Exchange::start(Feed::load("response_missing_blocks", 1), "retransmit = \"{server}\"\ngive_up_ms = 10000\n");
    let handler_addr = open_gap(&exchange);
    let feed = &exchange.feed;
    let handler = &exchange.handler;
    let (gap_first, gap_end) = feed.range(LOST_PACKET);

    // The header of the correct response, with one message block instead of five.
    let mut truncated = feed.packet(SESSION, gap_first, gap_first + 1);
    let full_header = feed.packet(SESSION, gap_first, gap_end);
    if let (Some(dst), Some(src)) = (truncated.get_mut(..moldudp64::HEADER_LEN), full_header.get(..moldudp64::HEADER_LEN)) {
        dst.copy_from_slice(src);
    }
    exchange.respond(&truncated, handler_addr);
    handler.wait_counter("recovery.malformed_responses", 1);

    exchange.respond(&full_header, handler_addr);
    let stats = assert_filled_run(&exchange);
    assert_eq!(counter(&stats, "feed.messages"), Some(exchange.feed.total()), "stats {stats}");
    exchange.stop_and_compare();
}

#[test]
fn slow_server_retry_fills_gap() {
    let exchange = Exchange::start(
        Feed::load("slow_server", 1),
        "retransmit = \"{server}\"\nrequest_timeout_ms = 20\ngive_up_ms = 5000\n",
    );
    let (gap_first, gap_end) = exchange.feed.range(LOST_PACKET);
    let first_from = open_gap(&exchange);

    // The first request gets no response. The retry gets the correct one.
    let retry_from = exchange.expect_request(gap_first, PER_PACKET as u16);
    assert_eq!(retry_from, first_from, "the retry leaves from the same socket");
    exchange.respond(&exchange.feed.packet(SESSION, gap_first, gap_end), retry_from);

    let stats = assert_filled_run(&exchange);
    assert!(counter(&stats, "recovery.requests_retried").unwrap_or(0) >= 1, "stats {stats}");
    assert!(counter(&stats, "recovery.requests_sent").unwrap_or(0) >= 2, "stats {stats}");
    assert_eq!(counter(&stats, "feed.messages"), Some(exchange.feed.total()), "stats {stats}");
    assert_counters(&stats, &["recovery.late_responses", "recovery.unrequested_responses", "feed.duplicate_messages"], 0);
    exchange.stop_and_compare();
}

#[test]
fn silent_server_gives_up_books_stale() {
    let exchange = Exchange::start(Feed::load("silent_server", 1), "retransmit = \"{server}\"\ngive_up_ms = 200\n");
    let (gap_first, _) = exchange.feed.range(LOST_PACKET);
    let half = exchange.feed.packet_count() / 2;
    exchange.send_line(0..half, Some(LOST_PACKET));
    exchange.expect_request(gap_first, PER_PACKET as u16);

    let handler = &exchange.handler;
    let stats = handler.wait_counter("recovery.gave_up", 1);
    assert_eq!(counter(&stats, "recovery.messages_given_up"), Some(PER_PACKET), "stats {stats}");
    assert_eq!(counter(&stats, "recovery.gaps_filled"), Some(0), "stats {stats}");
    assert_eq!(counter(&stats, "recovery.fallbacks"), Some(0), "stats {stats}");
    wait_books_stale(handler);
    let subscriber_err = &exchange.subscriber.stderr;
    subscriber_err.wait_for(&["mdfh subscribe: feed quality recovering", &format!("since={gap_first}")]);
    subscriber_err.wait_for(&["mdfh subscribe: feed quality stale", &format!("since={gap_first}")]);

    // Later packets are still applied, and the books stay stale until the next session.
    exchange.send_line(half..exchange.feed.packet_count(), None);
    let stats = handler.wait_published(exchange.feed.total() - PER_PACKET);
    assert_eq!(counter(&stats, "book.messages_applied"), Some(exchange.feed.total() - PER_PACKET), "stats {stats}");
    assert_eq!(counter(&stats, "recovery.gave_up"), Some(1), "stats {stats}");
    assert_counters(&stats, &DECODE_ERROR_COUNTERS, 0);
    let flags = stale_flags(&stats);
    assert!(!flags.is_empty() && flags.iter().all(|stale| *stale), "books still stale; stats {stats}");
    exchange.stop();
}

/// Starts `mdfh sim FILE --soup 127.0.0.1:0 --credentials USER:PASSWORD` and returns it with the
/// address it serves on.
fn start_soup_sim(file: &std::path::Path, credentials: &str) -> (Process, SocketAddr) {
    let process = Process::spawn(
        "mdfh sim --soup",
        mdfh_command().args(["sim", path_str(file), "--soup", "127.0.0.1:0", "--credentials", credentials]),
    );
    let prefix = "as SoupBinTCP session SIM0000001 on ";
    let line = process.stderr.wait_for(&["mdfh sim: serving", prefix]);
    let text = line.split_once(prefix).map_or("", |(_, rest)| rest);
    let text = text.split(' ').next().unwrap_or("");
    let addr = text.parse().unwrap_or_else(|e| panic!("invalid address {text:?} in {line:?}: {e}"));
    (process, addr)
}

/// Checks a run whose fallback failed: the gap was given up after the fallback timeout, the
/// books are stale, and the later packets are applied.
fn assert_failed_fallback(exchange: &Exchange, replayed: u64) {
    let handler = &exchange.handler;
    let stats = handler.wait_counter("recovery.gave_up", 1);
    assert_eq!(counter(&stats, "recovery.fallbacks"), Some(1), "stats {stats}");
    assert!(counter(&stats, "recovery.fallback_failures").unwrap_or(0) >= 1, "stats {stats}");
    assert_eq!(counter(&stats, "recovery.fallback_messages"), Some(replayed), "stats {stats}");
    assert_eq!(counter(&stats, "recovery.messages_given_up"), Some(PER_PACKET - replayed), "stats {stats}");
    wait_books_stale(handler);
    exchange.subscriber.stderr.wait_for(&["mdfh subscribe: feed quality stale"]);

    let half = exchange.feed.packet_count() / 2;
    exchange.send_line(half..exchange.feed.packet_count(), None);
    let stats = handler.wait_published(exchange.feed.total() - PER_PACKET + replayed);
    assert_counters(&stats, &DECODE_ERROR_COUNTERS, 0);
    assert_eq!(counter(&stats, "recovery.gave_up"), Some(1), "stats {stats}");
}

#[test]
fn fallback_login_rejected_gives_up() {
    let feed = Feed::load("fallback_login_rejected", 1);
    let (mut sim, soup) = start_soup_sim(&feed.file, "user:secret");
    let recovery = format!(
        "fallback = \"{soup}\"\nfallback_username = \"user\"\nfallback_password = \"wrong\"\nfallback_timeout_ms = 1000\n"
    );
    let exchange = Exchange::start(feed, &recovery);
    exchange.send_line(0..exchange.feed.packet_count() / 2, Some(LOST_PACKET));
    assert_failed_fallback(&exchange, 0);
    exchange.handler.process.stderr.wait_for(&["SoupBinTCP fallback connection problem"]);
    exchange.stop();

    sim.terminate();
    let status = sim.wait_exit(WAIT);
    assert!(status.success(), "mdfh sim exited with {status}; stderr:\n{}", sim.stderr.text());
    let summary = sim.stderr.wait_for(&["mdfh sim:", "connections,"]);
    assert!(!summary.contains(" 0 connections"), "the handler connected to the fallback: {summary}");
    assert!(summary.contains(" 0 messages sent"), "a rejected login gets no message: {summary}");
}

/// A SoupBinTCP server that accepts each login and closes the connection: after replaying
/// `replay` messages from the requested sequence on the first connection, at once on later ones.
struct DroppingServer {
    addr: SocketAddr,
    /// Session and sequence of each Login Request received.
    logins: Arc<Mutex<Vec<(SessionId, u64)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DroppingServer {
    fn start(messages: Vec<Vec<u8>>, first_sequence: u64, replay: u64) -> DroppingServer {
        DroppingServer::start_accepting(messages, first_sequence, replay, |session, sequence| (session, sequence))
    }

    /// Like `start`, with `accept` choosing the session and sequence of each Login Accepted from
    /// those requested.
    fn start_accepting(
        messages: Vec<Vec<u8>>,
        first_sequence: u64,
        replay: u64,
        accept: fn(SessionId, u64) -> (SessionId, u64),
    ) -> DroppingServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("cannot bind the fallback: {e}"));
        listener.set_nonblocking(true).unwrap_or_else(|e| panic!("cannot make the fallback non-blocking: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("no fallback address: {e}"));
        let logins = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_logins, thread_stop) = (Arc::clone(&logins), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !thread_stop.load(Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let Some((session, sequence)) = read_login(stream.try_clone().ok()) else { continue };
                let first_connection = {
                    let mut logins = thread_logins.lock().unwrap_or_else(|e| e.into_inner());
                    logins.push((session, sequence));
                    logins.len() == 1
                };
                if first_connection {
                    let (session, sequence) = accept(session, sequence);
                    replay_then_close(stream, &messages, first_sequence, session, sequence, replay);
                }
            }
        });
        DroppingServer { addr, logins, stop, thread: Some(thread) }
    }

    fn logins(&self) -> Vec<(SessionId, u64)> {
        self.logins.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for DroppingServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads the Login Request that opens a SoupBinTCP connection.
fn read_login(stream: Option<TcpStream>) -> Option<(SessionId, u64)> {
    let mut stream = stream?;
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut prefix = [0u8; 2];
    stream.read_exact(&mut prefix).ok()?;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
    stream.read_exact(&mut body).ok()?;
    match ClientPacket::decode(&body, 0) {
        Ok(ClientPacket::LoginRequest(login)) => Some((login.session, login.sequence)),
        _ => None,
    }
}

/// Accepts the login, sends `replay` messages from `sequence`, and closes the connection.
fn replay_then_close(mut stream: TcpStream, messages: &[Vec<u8>], first_sequence: u64, session: SessionId, sequence: u64, replay: u64) {
    let mut out = Vec::new();
    let _ = ServerPacket::LoginAccepted { session, sequence }.encode(&mut out);
    for offset in 0..replay {
        let index = usize::try_from(sequence + offset - first_sequence).unwrap_or(usize::MAX);
        if let Some(message) = messages.get(index) {
            let _ = ServerPacket::SequencedData(message).encode(&mut out);
        }
    }
    let _ = stream.write_all(&out);
    let _ = stream.flush();
}

#[test]
fn fallback_dropped_mid_replay_gives_up() {
    const REPLAYED: u64 = 2;
    let feed = Feed::load("fallback_drops_connection", 1);
    let server = DroppingServer::start(feed.messages.clone(), feed.first_sequence, REPLAYED);
    let recovery = format!("fallback = \"{}\"\nfallback_timeout_ms = 1000\n", server.addr);
    let exchange = Exchange::start(feed, &recovery);
    let (gap_first, _) = exchange.feed.range(LOST_PACKET);
    exchange.send_line(0..exchange.feed.packet_count() / 2, Some(LOST_PACKET));
    assert_failed_fallback(&exchange, REPLAYED);

    let logins = server.logins();
    assert!(logins.len() >= 2, "the handler logged in again after the drop: {logins:?}");
    assert_eq!(logins.first(), Some(&(SESSION, gap_first)), "first login asks for the gap");
    for login in logins.iter().skip(1) {
        assert_eq!(*login, (SESSION, gap_first + REPLAYED), "later logins resume after the replayed messages");
    }
    exchange.stop();
}

/// Runs a fallback whose Login Accepted cannot fill the gap: the handler applies none of its
/// messages and gives up at once, long before the fallback timeout.
fn assert_fallback_rejected(name: &str, accept: fn(SessionId, u64) -> (SessionId, u64)) {
    let feed = Feed::load(name, 1);
    let server = DroppingServer::start_accepting(feed.messages.clone(), feed.first_sequence, PER_PACKET, accept);
    let recovery = format!("fallback = \"{}\"\nfallback_timeout_ms = 600000\n", server.addr);
    let exchange = Exchange::start(feed, &recovery);
    exchange.send_line(0..exchange.feed.packet_count() / 2, Some(LOST_PACKET));
    assert_failed_fallback(&exchange, 0);
    exchange.handler.process.stderr.wait_for(&["the SoupBinTCP fallback cannot replay the gap"]);
    exchange.stop();
}

#[test]
fn fallback_of_another_session_rejected() {
    assert_fallback_rejected("fallback_other_session", |_, sequence| (OTHER_SESSION, sequence));
}

#[test]
fn fallback_starting_late_rejected() {
    assert_fallback_rejected("fallback_starts_late", |session, sequence| (session, sequence + 3));
}

#[test]
fn repeated_sequence_3_not_applied_twice() {
    let exchange = Exchange::start(Feed::load("sequence_repeat", 1), "retransmit = \"{server}\"\ngive_up_ms = 200\n");
    exchange.send_line(0..exchange.feed.packet_count(), None);
    exchange.handler.wait_published(exchange.feed.total());

    // Messages 3..=7 again, inside the line's window of remembered sequence numbers.
    exchange.send_on_line(&exchange.feed.packet(SESSION, 3, 3 + PER_PACKET));
    let stats = exchange.handler.wait_counter("lines.0.duplicate_packets", 1);
    assert_eq!(counter(&stats, "feed.messages"), Some(exchange.feed.total()), "stats {stats}");
    assert_eq!(counter(&stats, "book.messages_applied"), Some(exchange.feed.total()), "stats {stats}");
    assert!(counter(&stats, "recovery.arbitration_drops").unwrap_or(0) >= 1, "stats {stats}");
    assert_counters(&stats, &["recovery.gaps", "recovery.requests_sent", "lines.0.backwards_packets"], 0);
    exchange.stop_and_compare();
}

#[test]
fn sequence_below_window_counted_backwards() {
    // The line remembers the last 2^20 sequence numbers, so the session starts above that for
    // sequence 3 to lie below the window.
    let first_sequence = (1 << 21) + 1;
    let exchange = Exchange::start(Feed::load("sequence_backwards", first_sequence), "retransmit = \"{server}\"\ngive_up_ms = 200\n");
    exchange.send_line(0..exchange.feed.packet_count(), None);
    exchange.handler.wait_published(exchange.feed.total());

    // The session's messages 3..=7 again, inside the window.
    let repeat_first = first_sequence + 2;
    exchange.send_on_line(&exchange.feed.packet(SESSION, repeat_first, repeat_first + PER_PACKET));
    exchange.handler.wait_counter("lines.0.duplicate_packets", 1);

    // Real messages numbered 3..=7: far below the window.
    exchange.send_on_line(&exchange.feed.packet_as(SESSION, first_sequence, first_sequence + PER_PACKET, 3));
    let stats = exchange.handler.wait_counter("lines.0.backwards_packets", 1);
    assert_eq!(counter(&stats, "feed.messages"), Some(exchange.feed.total()), "stats {stats}");
    assert_eq!(counter(&stats, "book.messages_applied"), Some(exchange.feed.total()), "stats {stats}");
    assert_eq!(counter(&stats, "recovery.arbitration_drops"), Some(2), "stats {stats}");
    assert_counters(&stats, &["recovery.gaps", "recovery.requests_sent", "recovery.gave_up"], 0);
    assert_counters(&stats, &DECODE_ERROR_COUNTERS, 0);
    assert_counters(&stats, &BOOK_ERROR_COUNTERS, 0);

    // The handler goes on with the next message after the repeats.
    let end = exchange.feed.end_sequence();
    let mut heartbeat = Vec::new();
    moldudp64::heartbeat(SESSION, end, &mut heartbeat);
    exchange.send_on_line(&heartbeat);
    exchange.handler.wait_counter("lines.0.heartbeats", 1);
    exchange.stop();
}

#[test]
fn forged_session_change_marks_books_stale() {
    let exchange = Exchange::start(Feed::load("forged_session_change", 1), "retransmit = \"{server}\"\ngive_up_ms = 200\n");
    let half = exchange.feed.packet_count() / 2;
    exchange.send_line(0..half, None);
    let (first, end) = exchange.feed.range(half);
    exchange.handler.wait_counter("feed.messages", first - 1);

    // Three packets of another session in a row: the tracker takes it for a session change.
    for _ in 0..3 {
        exchange.send_on_line(&exchange.feed.packet(OTHER_SESSION, first, end));
    }
    exchange.handler.wait_counter("feed.session_changes", 1);
    // The real session goes on: its packets are now late packets of a replaced session, and
    // enough of them make the handler doubt the change.
    for _ in 0..2 {
        exchange.send_line(half..exchange.feed.packet_count(), None);
    }
    exchange.handler.process.stderr.wait_for(&["packets of the replaced MoldUDP64 session keep arriving"]);
    wait_books_stale(&exchange.handler);
    exchange.subscriber.stderr.wait_for(&["mdfh subscribe: feed quality stale"]);
    exchange.stop();
}

#[test]
fn late_join_is_recovered() {
    let exchange = Exchange::start(Feed::load("late_join", 1), "retransmit = \"{server}\"\ngive_up_ms = 10000\n");
    // The handler starts listening after the first four packets went out.
    let joined = 4;
    let (join_first, _) = exchange.feed.range(joined);
    exchange.send_line(joined..exchange.feed.packet_count(), None);
    let from = exchange.expect_request(1, u16::try_from(join_first - 1).unwrap_or(u16::MAX));
    exchange.respond(&exchange.feed.packet(SESSION, 1, join_first), from);
    let stats = exchange.handler.wait_published(exchange.feed.total());
    assert_counters(&stats, &["feed.gaps", "feed.messages_missed", "recovery.gave_up"], 0);
    assert_eq!(counter(&stats, "recovery.retransmitted_messages"), Some(join_first - 1), "stats {stats}");
    assert!(stale_flags(&stats).iter().all(|stale| !stale), "no book stale: {stats}");
    exchange.stop_and_compare();
}

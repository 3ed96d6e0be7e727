//! End to end on 127.0.0.1: `mdfh sim` replays a real file into `mdfh run` as MoldUDP64 over UDP
//! or as SoupBinTCP, and `mdfh subscribe` prints the book it rebuilds from the published frames.
//! The subscriber's rows must pass through every book that `mdfh book` computes from the same
//! file, and end on its last.

mod support;

use std::net::{SocketAddr, TcpListener};

use support::{
    assert_counters, book_rows, convert_lobster_sample, counter, handler_config, mdfh_command, message_count, path_str,
    pcap, run_udp_sim, start_book_subscriber, stop_and_compare_books, temp_dir, Handler, Process, BOOK_ERROR_COUNTERS,
    DECODE_ERROR_COUNTERS, UDP_INPUT, WAIT,
};

/// Levels per side in the compared rows: the depth of the LOBSTER sample's orderbook file.
const LEVELS: u16 = 10;

#[test]
fn lobster_over_udp_matches_book() {
    let dir = temp_dir("lobster_over_udp");
    let itch = convert_lobster_sample(&dir);
    let expected_rows = book_rows(&itch, "AAPL", LEVELS);
    let messages = message_count(&itch);

    let mut handler = Handler::start(&dir, &handler_config(UDP_INPUT));
    let mut subscriber = start_book_subscriber(handler.subscribers, "AAPL", LEVELS);
    run_udp_sim(&itch, handler.feed_addr(), messages);

    let stats = handler.wait_published(messages);
    assert_counters(
        &stats,
        &["feed.gaps", "feed.messages_missed", "feed.duplicate_packets"],
        0,
    );
    assert_counters(&stats, &DECODE_ERROR_COUNTERS, 0);
    assert_counters(&stats, &BOOK_ERROR_COUNTERS, 0);
    assert_eq!(
        counter(&stats, "book.messages_applied"),
        Some(messages),
        "stats: {stats}"
    );
    assert_eq!(counter(&stats, "publish.subscribers"), Some(1), "stats: {stats}");
    // `mdfh sim` ends its pass with a heartbeat and three end-of-session packets.
    handler.wait_counter("feed.end_of_session", 3);
    handler
        .process
        .stderr
        .wait_for(&["MoldUDP64 end of session", "session=SIM0000001"]);

    stop_and_compare_books(&mut handler, &mut subscriber, &expected_rows);
}

#[test]
fn pcap_over_udp_matches_meta_book() {
    let dir = temp_dir("pcap_over_udp");
    let capture = pcap("Nasdaq.Equities.TotalView.Itch.v5.0/Multiple.Packets.pcap");
    let expected_rows = book_rows(&capture, "META", LEVELS);
    let messages = message_count(&capture);
    assert_eq!(
        messages, 39,
        "the capture has a `D` in its first packet and 38 adds in its second"
    );

    let mut handler = Handler::start(&dir, &handler_config(UDP_INPUT));
    let mut subscriber = start_book_subscriber(handler.subscribers, "META", LEVELS);
    run_udp_sim(&capture, handler.feed_addr(), messages);

    let stats = handler.wait_published(messages);
    assert_counters(&stats, &["feed.gaps", "feed.messages_missed"], 0);
    assert_counters(&stats, &DECODE_ERROR_COUNTERS, 0);
    // The capture starts with a `D` for order 23485802 (locate 2737), whose add came before the
    // capture, so exactly one book error is right.
    assert_eq!(counter(&stats, "book.unknown_orders"), Some(1), "stats: {stats}");
    let other_book_errors: Vec<&str> = BOOK_ERROR_COUNTERS
        .into_iter()
        .filter(|c| *c != "book.unknown_orders")
        .collect();
    assert_counters(&stats, &other_book_errors, 0);
    let meta = stats["books"]
        .as_array()
        .and_then(|books| books.iter().find(|book| book["symbol"] == "META"))
        .unwrap_or_else(|| panic!("no META book in stats: {stats}"));
    assert_eq!(
        meta["stale"], false,
        "the error on locate 2737 must not mark META stale: {meta}"
    );
    handler.wait_counter("feed.end_of_session", 3);

    stop_and_compare_books(&mut handler, &mut subscriber, &expected_rows);
}

#[test]
fn lobster_over_soupbintcp_matches_book() {
    let dir = temp_dir("lobster_over_soupbintcp");
    let itch = convert_lobster_sample(&dir);
    let expected_rows = book_rows(&itch, "AAPL", LEVELS);
    let messages = message_count(&itch);

    // The handler connects as soon as it starts, so the server starts only after the subscriber
    // is connected, and the handler retries the connection meanwhile. The test picks the port by
    // binding port 0 once and releasing it.
    let server_addr = free_tcp_port();
    let input = format!("[input]\nkind = \"soupbintcp\"\nconnect = \"{server_addr}\"\nsilence_timeout_secs = 5.0\n");
    let mut handler = Handler::start(&dir, &handler_config(&input));
    handler
        .process
        .stdout
        .wait_for(&["mdfh: feed: SoupBinTCP from", &server_addr.to_string()]);
    let mut subscriber = start_book_subscriber(handler.subscribers, "AAPL", LEVELS);

    let server = server_addr.to_string();
    let mut sim = Process::spawn(
        "mdfh sim --soup",
        mdfh_command().args(["sim", path_str(&itch), "--soup", &server, "--rate", "20000"]),
    );
    sim.stderr
        .wait_for(&["mdfh sim: serving", "as SoupBinTCP session SIM0000001"]);

    let stats = handler.wait_published(messages);
    assert_counters(
        &stats,
        &["feed.gaps", "feed.messages_missed", "feed.duplicate_messages"],
        0,
    );
    assert_counters(&stats, &DECODE_ERROR_COUNTERS, 0);
    assert_counters(&stats, &BOOK_ERROR_COUNTERS, 0);
    handler
        .process
        .stderr
        .wait_for(&["SoupBinTCP login accepted", "session=SIM0000001"]);

    stop_and_compare_books(&mut handler, &mut subscriber, &expected_rows);

    sim.terminate();
    let status = sim.wait_exit(WAIT);
    assert!(
        status.success(),
        "mdfh sim exited with {status}; stderr:\n{}",
        sim.stderr.text()
    );
    let summary = format!("{messages} messages sent");
    assert_eq!(
        sim.stderr.count_containing(&["mdfh sim: 1 connections", &summary]),
        1,
        "stderr:\n{}",
        sim.stderr.text()
    );
}

/// Returns a 127.0.0.1 address whose TCP port was free a moment ago.
fn free_tcp_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("cannot read the bound address: {e}"))
}

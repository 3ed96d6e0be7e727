//! End to end on 127.0.0.1: `mdfh run` reads SoupBinTCP from `mdfh sim`, which serves the
//! converted LOBSTER sample as session DAY1 and ends it with End of Session. A second `mdfh sim`
//! on the same address then serves the same file as session DAY2, whose sequence numbers start
//! at 1 again. The handler must follow to DAY2, reset its books and rebuild them from DAY2's
//! first message, so a book-csv subscriber shows every book of `mdfh book` twice, in order.

mod support;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use support::{
    assert_counters, book_rows, convert_lobster_sample, counter, handler_config, mdfh_command, message_count, path_str,
    start_book_subscriber, stop_and_compare_books, temp_dir, Handler, Process, BOOK_ERROR_COUNTERS,
    DECODE_ERROR_COUNTERS, WAIT,
};

/// Levels per side in the compared rows: the depth of the LOBSTER sample's orderbook file.
const LEVELS: u16 = 10;

#[test]
fn soupbintcp_follows_new_session() {
    let dir = temp_dir("soup_session");
    let itch = convert_lobster_sample(&dir);
    let expected_rows = book_rows(&itch, "AAPL", LEVELS);
    let messages = message_count(&itch);

    let server_addr = free_tcp_port();
    let server = server_addr.to_string();
    let input = format!("[input]\nkind = \"soupbintcp\"\nconnect = \"{server}\"\nsilence_timeout_secs = 5.0\n");
    let mut handler = Handler::start(&dir, &handler_config(&input));
    handler.process.stdout.wait_for(&["mdfh: feed: SoupBinTCP from", &server]);
    let mut subscriber = start_book_subscriber(handler.subscribers, "AAPL", LEVELS);

    let mut day1 = start_sim(&itch, &server, "DAY1", true);
    let stats = handler.wait_counter("feed.end_of_session", 1);
    assert_eq!(counter(&stats, "feed.messages"), Some(messages), "stats: {stats}");
    assert_eq!(counter(&stats, "feed.session_changes"), Some(0), "stats: {stats}");
    stop_sim(&mut day1);

    // The handler's first look for the next session comes after its maximum reconnect wait.
    let mut day2 = start_sim(&itch, &server, "DAY2", false);
    let stats = handler.wait_published(2 * messages);
    assert_eq!(counter(&stats, "feed.session_changes"), Some(1), "stats: {stats}");
    assert_eq!(counter(&stats, "book.resets"), Some(2), "one reset per session; stats: {stats}");
    assert_eq!(
        counter(&stats, "book.messages_applied"),
        Some(2 * messages),
        "stats: {stats}"
    );
    assert_counters(
        &stats,
        &["feed.gaps", "feed.messages_missed", "feed.duplicate_messages", "feed.foreign_session_packets"],
        0,
    );
    assert_counters(&stats, &DECODE_ERROR_COUNTERS, 0);
    // Without the reset, DAY2's adds would collide with DAY1's orders.
    assert_counters(&stats, &BOOK_ERROR_COUNTERS, 0);
    handler
        .process
        .stderr
        .wait_for(&["new SoupBinTCP session; books reset", "session=DAY2", "previous=DAY1"]);

    let mut twice = expected_rows.clone();
    twice.extend(expected_rows.iter().cloned());
    stop_and_compare_books(&mut handler, &mut subscriber, &twice);

    stop_sim(&mut day2);
    let summary = format!("{messages} messages sent");
    assert_eq!(
        day2.stderr.count_containing(&["mdfh sim: 1 connections", &summary]),
        1,
        "DAY2 serves the handler once; stderr:\n{}",
        day2.stderr.text()
    );
}

/// Starts `mdfh sim FILE --soup ADDR --session SESSION` at 20000 messages per second and waits
/// until it serves.
fn start_sim(itch: &Path, server: &str, session: &str, end_of_session: bool) -> Process {
    let mut command = mdfh_command();
    command.args(["sim", path_str(itch), "--soup", server, "--rate", "20000", "--session", session]);
    if end_of_session {
        command.arg("--end-of-session");
    }
    let sim = Process::spawn(&format!("mdfh sim --session {session}"), &mut command);
    sim.stderr
        .wait_for(&["mdfh sim: serving", &format!("as SoupBinTCP session {session} ")]);
    sim
}

/// Stops `sim` with SIGTERM and asserts that it exits 0.
fn stop_sim(sim: &mut Process) {
    sim.terminate();
    let status = sim.wait_exit(WAIT);
    assert!(
        status.success(),
        "mdfh sim exited with {status}; stderr:\n{}",
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

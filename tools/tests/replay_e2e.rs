//! End to end on 127.0.0.1: `mdfh replay` runs recorded files through the pipeline while
//! `mdfh subscribe --format book-csv`, or a client inside the test, rebuilds the book from the
//! published frames. The subscriber's rows must be the same at every speed, and show the books
//! that `mdfh book` computes from the same file: at the end, at a start point, and after each
//! step.

mod replay_support;
mod support;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::Write;

use mdfh_feed::moldudp64;
use mdfh_feed::session::{SessionCounters, SessionTracker};
use replay_support::{directory_locate, file_messages, row_after, BookClient, Replay};
use support::{
    assert_counters, assert_same_books, book_rows, convert_lobster_sample, counter, path_str, pcap, start_book_subscriber,
    temp_dir, Process, BOOK_ERROR_COUNTERS, DECODE_ERROR_COUNTERS, WAIT,
};

/// Levels per side in the compared rows: the depth of the LOBSTER sample's orderbook file.
const LEVELS: u16 = 10;

/// Waits for `replay` to exit 0 and for `subscriber` to report the Goodbye and exit 0, and
/// returns the subscriber's rows.
fn finish(replay: &mut Replay, subscriber: &mut Process) -> Vec<String> {
    let status = replay.process.wait_exit(WAIT);
    assert!(status.success(), "mdfh replay exited with {status}; stderr:\n{}", replay.process.stderr.text());
    let status = subscriber.wait_exit(WAIT);
    let stderr = subscriber.stderr.text();
    assert!(status.success(), "mdfh subscribe exited with {status}; stderr:\n{stderr}");
    assert!(stderr.contains("goodbye from the handler: Shutdown"), "no Goodbye reported; stderr:\n{stderr}");
    subscriber.stdout.snapshot()
}

/// Returns the counters of a session tracker fed the MoldUDP64 headers of every packet of
/// `capture`, in order.
fn track_session(capture: &std::path::Path) -> SessionCounters {
    let bytes = std::fs::read(capture).unwrap_or_else(|e| panic!("cannot read {}: {e}", capture.display()));
    let mut tracker = SessionTracker::new();
    for datagram in mdfh_feed::pcap::datagrams(&bytes).unwrap_or_else(|e| panic!("{}: {e}", capture.display())) {
        let datagram = datagram.unwrap_or_else(|e| panic!("{}: {e}", capture.display()));
        let packet = moldudp64::parse(datagram.payload).unwrap_or_else(|e| panic!("{}: {e}", capture.display()));
        tracker.on_header(&packet.header);
    }
    *tracker.counters()
}

fn hash_rows(rows: &[String]) -> u64 {
    let mut hasher = DefaultHasher::new();
    rows.hash(&mut hasher);
    hasher.finish()
}

#[test]
fn lobster_same_output_at_max_and_10x() {
    let dir = temp_dir("replay_lobster_speeds");
    let itch = convert_lobster_sample(&dir);
    let expected_rows = book_rows(&itch, "AAPL", LEVELS);
    let messages = file_messages(&itch).len();

    // Both replays run at once; each waits for its subscriber before it starts.
    let max_dir = dir.join("max");
    let fast_dir = dir.join("10x");
    for sub in [&max_dir, &fast_dir] {
        std::fs::create_dir_all(sub).unwrap_or_else(|e| panic!("cannot create {}: {e}", sub.display()));
    }
    let common = [path_str(&itch), "--wait-subscribers", "1", "--hold", "0.2", "--speed"];
    let mut max = Replay::start(&max_dir, &[&common[..], &["max"]].concat());
    let mut fast = Replay::start(&fast_dir, &[&common[..], &["10x"]].concat());
    let mut max_subscriber = start_book_subscriber(max.subscribers, "AAPL", LEVELS);
    let mut fast_subscriber = start_book_subscriber(fast.subscribers, "AAPL", LEVELS);

    let max_rows = finish(&mut max, &mut max_subscriber);
    let fast_rows = finish(&mut fast, &mut fast_subscriber);

    let first_difference = max_rows.iter().zip(&fast_rows).position(|(a, b)| a != b);
    assert_eq!(
        hash_rows(&max_rows),
        hash_rows(&fast_rows),
        "subscriber output differs between --speed max ({} rows) and 10x ({} rows); first differing row: {first_difference:?}",
        max_rows.len(),
        fast_rows.len()
    );
    assert_eq!(max_rows.last(), expected_rows.last(), "final book of the replay (left) and of mdfh book (right)");
    assert_same_books(&max_rows, &expected_rows);

    // One packet per message, and the end of the BinaryFILE's session.
    let packets = messages + 1;
    let summary = format!("mdfh: replay: {messages} messages in {packets} packets from 1 file(s); end of the files");
    for replay in [&max, &fast] {
        replay.process.stdout.wait_for(&[&summary]);
    }
}

#[test]
fn pcap_replay_matches_meta_book() {
    let dir = temp_dir("replay_pcap");
    let capture = pcap("Nasdaq.Equities.TotalView.Itch.v5.0/Multiple.Packets.pcap");
    let expected_rows = book_rows(&capture, "META", LEVELS);

    // The two packets were captured 38.9 s apart: 100x paces them 0.39 s apart.
    let mut replay = Replay::start(&dir, &[path_str(&capture), "--speed", "100x", "--wait-subscribers", "1", "--hold", "60"]);
    let mut subscriber = start_book_subscriber(replay.subscribers, "META", LEVELS);
    replay.process.stdout.wait_for(&["mdfh: replay: end of the files"]);

    let stats = replay.wait_counter("book.messages_applied", 39);
    assert_eq!(counter(&stats, "feed.packets"), Some(2), "stats: {stats}");
    assert_eq!(counter(&stats, "feed.messages"), Some(39), "stats: {stats}");
    // Packet 1 is sequence 14764496 and packet 2 starts at 19009117. The replay must report the
    // gaps that the session tracker finds in the captured headers, as live input would.
    let tracker = track_session(&capture);
    assert!(tracker.gaps >= 1, "the tracker finds no gap in the capture: {tracker:?}");
    assert_eq!(counter(&stats, "feed.gaps"), Some(tracker.gaps), "stats: {stats}");
    assert_eq!(counter(&stats, "feed.messages_missed"), Some(tracker.messages_missed), "stats: {stats}");
    assert_counters(&stats, &DECODE_ERROR_COUNTERS, 0);
    // The `D` of packet 1 deletes an order added before the capture.
    assert_eq!(counter(&stats, "book.unknown_orders"), Some(1), "stats: {stats}");

    // SIGTERM during the hold ends the replay as it ends `mdfh run`.
    replay.process.terminate();
    let rows = finish(&mut replay, &mut subscriber);
    assert_eq!(rows.last(), expected_rows.last(), "final META book of the replay (left) and of mdfh book (right)");
    assert_same_books(&rows, &expected_rows);
    replay
        .process
        .stdout
        .wait_for(&["mdfh: replay: 39 messages in 2 packets from 1 file(s); end of the files"]);
}

/// Replays the LOBSTER sample in step mode with no standard input from the start point `option`
/// `value`, so the replay ends right after rebuilding the books, and checks that the subscriber
/// ends on the book `mdfh book` shows before message `first_paced`.
fn check_start_point(test_name: &str, option: &str, value: &str, first_paced: impl Fn(&[replay_support::FileMessage]) -> usize) {
    let dir = temp_dir(test_name);
    let itch = convert_lobster_sample(&dir);
    let expected_rows = book_rows(&itch, "AAPL", LEVELS);
    let messages = file_messages(&itch);
    let locate = directory_locate(&itch, "AAPL");
    let start_index = first_paced(&messages);
    let start = messages[start_index];
    let row = row_after(&messages, start_index, locate).expect("the start point is after the first AAPL message");

    let mut replay = Replay::start(&dir, &[path_str(&itch), "--speed", "step", option, value, "--wait-subscribers", "1", "--hold", "0.2"]);
    let mut subscriber = start_book_subscriber(replay.subscribers, "AAPL", LEVELS);
    let rows = finish(&mut replay, &mut subscriber);

    replay
        .process
        .stdout
        .wait_for(&[&format!("mdfh: replay: pacing starts at sequence number {}", start.sequence)]);
    replay.process.stdout.wait_for(&[&format!(
        "mdfh: replay: {start_index} messages in {start_index} packets from 1 file(s); standard input closed"
    )]);
    assert_eq!(
        rows.last(),
        expected_rows.get(row),
        "book at the start point: the subscriber's last row (left) and mdfh book row {} (right)",
        row + 1
    );
}

#[test]
fn start_seq_rebuilds_books_first() {
    check_start_point("replay_start_seq", "--start-seq", "300", |_| 299);
}

#[test]
fn start_time_rebuilds_books_first() {
    // 09:30:10 New York time, in nanoseconds since midnight.
    let start_ns = 34_210_000_000_000;
    check_start_point("replay_start_time", "--start-time", "09:30:10", |messages| {
        messages
            .iter()
            .position(|m| m.timestamp >= start_ns)
            .expect("the sample runs past 09:30:10")
    });
}

/// Returns the number of messages to rebuild before stepping: the first one from message 200 on
/// after which the next `steps` messages each change the AAPL book that `mdfh book` prints, so
/// that every step shows.
fn stepping_point(messages: &[replay_support::FileMessage], rows: &[String], locate: u16, steps: usize) -> usize {
    (200..messages.len() - steps)
        .find(|&applied| {
            (applied..applied + steps).all(|i| {
                let before = row_after(messages, i, locate);
                let after = row_after(messages, i + 1, locate);
                messages[i].locate == locate && before.map(|r| &rows[r]) != after.map(|r| &rows[r])
            })
        })
        .expect("the sample has three messages in a row that each change the book")
}

#[test]
fn step_mode_follows_stdin_lines() {
    const STEPS: usize = 3;
    let dir = temp_dir("replay_step");
    let itch = convert_lobster_sample(&dir);
    let expected_rows = book_rows(&itch, "AAPL", LEVELS);
    let messages = file_messages(&itch);
    let locate = directory_locate(&itch, "AAPL");
    let rebuilt = stepping_point(&messages, &expected_rows, locate, STEPS);

    let fifo = dir.join("steps");
    let start_seq = messages[rebuilt].sequence.to_string();
    let (mut replay, mut input) = Replay::start_with_fifo(
        &dir,
        &[path_str(&itch), "--speed", "step", "--start-seq", &start_seq, "--wait-subscribers", "1", "--hold", "0.2"],
        &fifo,
    );
    let mut subscriber = BookClient::connect(replay.subscribers, "AAPL", LEVELS);

    for step in 0..=STEPS {
        let applied = rebuilt + step;
        let row = row_after(&messages, applied, locate).expect("the stepping point is after the first AAPL message");
        subscriber.wait_for_row(&expected_rows[row], &format!("the book after {applied} messages (mdfh book row {})", row + 1));
        // The stats refresh every 0.2 s: a replay that ran ahead of the lines would show more.
        replay.wait_counter("feed.messages", applied as u64);
        if step < STEPS {
            input.write_all(b"\n").unwrap_or_else(|e| panic!("cannot write to {}: {e}", fifo.display()));
        }
    }
    drop(input);

    let last = row_after(&messages, rebuilt + STEPS, locate).map(|r| expected_rows[r].clone());
    assert_eq!(subscriber.wait_for_goodbye(), last, "book after the last step (left) and mdfh book (right)");
    let status = replay.process.wait_exit(WAIT);
    assert!(status.success(), "mdfh replay exited with {status}; stderr:\n{}", replay.process.stderr.text());
    let handed_on = rebuilt + STEPS;
    replay.process.stdout.wait_for(&[&format!(
        "mdfh: replay: {handed_on} messages in {handed_on} packets from 1 file(s); standard input closed"
    )]);
}

/// A replay of the same file twice: each BinaryFILE is a session of its own, so the books are
/// reset in between and the final book is the file's last.
#[test]
fn two_binary_files_are_two_sessions() {
    let dir = temp_dir("replay_two_files");
    let itch = convert_lobster_sample(&dir);
    let expected_rows = book_rows(&itch, "AAPL", LEVELS);
    let messages = file_messages(&itch).len();
    let copy = dir.join("copy.itch");
    std::fs::copy(&itch, &copy).unwrap_or_else(|e| panic!("cannot copy {}: {e}", itch.display()));

    let mut replay = Replay::start(
        &dir,
        &[path_str(&itch), path_str(&copy), "--speed", "max", "--wait-subscribers", "1", "--hold", "60"],
    );
    let mut subscriber = start_book_subscriber(replay.subscribers, "AAPL", LEVELS);
    replay.process.stdout.wait_for(&["mdfh: replay: end of the files"]);

    let total = 2 * messages as u64;
    let stats = replay.wait_counter("book.messages_applied", total);
    assert_eq!(counter(&stats, "feed.messages"), Some(total), "stats: {stats}");
    assert_eq!(counter(&stats, "feed.end_of_session"), Some(2), "each file ends its session; stats: {stats}");
    assert_eq!(counter(&stats, "feed.session_changes"), Some(1), "stats: {stats}");
    assert_eq!(counter(&stats, "book.resets"), Some(2), "the books reset at each session start; stats: {stats}");
    assert_counters(&stats, &BOOK_ERROR_COUNTERS, 0);

    replay.process.terminate();
    let rows = finish(&mut replay, &mut subscriber);
    assert_eq!(rows.last(), expected_rows.last(), "final book after the second file");
    let packets = total + 2;
    replay
        .process
        .stdout
        .wait_for(&[&format!("mdfh: replay: {total} messages in {packets} packets from 2 file(s); end of the files")]);
}

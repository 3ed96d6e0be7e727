//! Recovery end to end on 127.0.0.1. `mdfh sim` sends the real LOBSTER AAPL sample on lines A and
//! B with seeded faults, and serves retransmission requests and a SoupBinTCP fallback. `mdfh run`
//! recovers. A subscriber's book must pass through every book of a lossless `mdfh book` of the
//! same file and end on its last, and the handler's per-line counters must equal the faults the
//! simulator reports having injected.

mod support;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{
    assert_counters, book_rows, convert_lobster_sample, counter, handler_config, mdfh_ok, message_count, path_str,
    start_book_subscriber, stop_and_compare_books, temp_dir, Handler, BOOK_ERROR_COUNTERS, DECODE_ERROR_COUNTERS,
};

const LEVELS: u16 = 10;

/// Returns a 127.0.0.1 UDP address that was free a moment ago.
fn free_udp() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("a free UDP port on 127.0.0.1")
}

/// Returns a 127.0.0.1 TCP address that was free a moment ago.
fn free_tcp() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("a free TCP port on 127.0.0.1")
}

/// What a scenario sets up.
struct Scenario<'a> {
    name: &'a str,
    /// Faults and server options for `mdfh sim`.
    sim_args: &'a [&'a str],
    line_b: bool,
    retransmit: bool,
    fallback: bool,
    /// Extra keys of the handler's `[recovery]` section.
    recovery: &'a str,
    /// Messages per second sent by the simulator.
    rate: u32,
    /// Instrument a subscriber follows from the start; `None` starts none.
    follow: Option<&'a str>,
}

impl<'a> Scenario<'a> {
    /// Returns the usual scenario: the LOBSTER sample at 5,000 messages per second on lines A and
    /// B, with a retransmission server, no fallback, and a subscriber following AAPL.
    fn lobster(name: &'a str, sim_args: &'a [&'a str]) -> Scenario<'a> {
        Scenario {
            name,
            sim_args,
            line_b: true,
            retransmit: true,
            fallback: false,
            recovery: "",
            rate: 5000,
            follow: Some("AAPL"),
        }
    }
}

/// A finished scenario: the handler still runs, the simulator has ended.
struct Run {
    dir: PathBuf,
    file: PathBuf,
    handler: Handler,
    subscriber: Option<support::Process>,
    report: Value,
    messages: u64,
}

fn line_b_addr(handler: &Handler) -> SocketAddr {
    let line = handler.process.stdout.wait_for(&["mdfh: feed: line B on "]);
    let text = line.split_once("line B on ").map_or("", |(_, rest)| rest);
    let text = text.split([' ', ',']).next().unwrap_or("");
    text.parse().unwrap_or_else(|e| panic!("invalid line B address in {line:?}: {e}"))
}

fn run(scenario: &Scenario<'_>, file: Option<&Path>) -> Run {
    let dir = temp_dir(scenario.name);
    let file = match file {
        Some(file) => file.to_path_buf(),
        None => convert_lobster_sample(&dir),
    };
    let messages = message_count(&file);
    let retransmit = free_udp();
    let soup = free_tcp();

    let mut input = String::from("[input]\nkind = \"udp\"\nbind = \"127.0.0.1:0\"\n");
    if scenario.line_b {
        input.push_str("bind_b = \"127.0.0.1:0\"\n");
    }
    let mut config = handler_config(&input);
    config.push_str("\n[recovery]\n");
    if scenario.retransmit {
        config.push_str(&format!("retransmit = \"{retransmit}\"\n"));
    }
    if scenario.fallback {
        config.push_str(&format!("fallback = \"{soup}\"\n"));
    }
    config.push_str(scenario.recovery);
    let handler = Handler::start(&dir, &config);
    let subscriber = scenario.follow.map(|symbol| start_book_subscriber(handler.subscribers, symbol, LEVELS));

    let report_path = dir.join("report.json");
    let line_a = handler.feed_addr().to_string();
    let rate = scenario.rate.to_string();
    let mut args: Vec<String> = ["sim", path_str(&file), "--rate", &rate, "--udp", &line_a, "--seed", "7"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if scenario.line_b {
        args.extend(["--udp-b".to_string(), line_b_addr(&handler).to_string()]);
    }
    if scenario.retransmit {
        args.extend(["--retransmit".to_string(), retransmit.to_string()]);
    }
    if scenario.fallback {
        args.extend(["--soup".to_string(), soup.to_string()]);
    }
    args.extend(["--linger", "2", "--report", path_str(&report_path)].map(String::from));
    args.extend(scenario.sim_args.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    mdfh_ok(&args);
    let text = std::fs::read_to_string(&report_path).unwrap_or_else(|e| panic!("no report at {}: {e}", report_path.display()));
    let report: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("invalid report {text}: {e}"));
    Run { dir, file, handler, subscriber, report, messages }
}

fn report_u64(report: &Value, pointer: &str) -> u64 {
    report.pointer(pointer).and_then(Value::as_u64).unwrap_or_else(|| panic!("no {pointer} in the report {report}"))
}

/// Asserts that the handler's counters of line `index` equal what the simulator injected on it.
fn assert_line_counters(stats: &Value, report: &Value, index: usize, report_line: &str) {
    let line = |name: &str| counter(stats, &format!("lines.{index}.{name}"));
    let injected = |name: &str| report_u64(report, &format!("/{report_line}/{name}"));
    assert_eq!(line("duplicate_packets"), Some(injected("duplicated_packets")), "line {index} duplicates; stats {stats}; report {report}");
    assert_eq!(line("missing_messages"), Some(injected("lost_messages")), "line {index} missing messages; stats {stats}; report {report}");
    assert_eq!(line("reordered_packets"), Some(injected("reordered_packets")), "line {index} reordered; stats {stats}; report {report}");
    let received = line("packets").unwrap_or(0) - line("heartbeats").unwrap_or(0);
    let end_of_session = injected("end_of_session_sent");
    assert_eq!(received, injected("packets_sent") + end_of_session, "line {index} packets; stats {stats}; report {report}");
}

/// Waits until every message is applied and published and no gap is open, then checks the
/// books against a lossless `mdfh book` of the same file.
fn finish_and_compare(mut run: Run) -> Value {
    let expected = book_rows(&run.file, "AAPL", LEVELS);
    let stats = wait_recovered(&run);
    let mut subscriber = run.subscriber.take().expect("a subscriber that followed AAPL from the start");
    stop_and_compare_books(&mut run.handler, &mut subscriber, &expected);
    let _ = std::fs::remove_dir_all(&run.dir);
    stats
}

/// Waits until every message is applied and published, then checks that nothing was lost or
/// given up and returns the stats.
fn wait_recovered(run: &Run) -> Value {
    let stats = run.handler.wait_published(run.messages);
    assert_counters(&stats, &DECODE_ERROR_COUNTERS, 0);
    assert_counters(&stats, &BOOK_ERROR_COUNTERS, 0);
    assert_counters(&stats, &["feed.gaps", "feed.messages_missed", "recovery.gave_up", "recovery.messages_given_up"], 0);
    assert_eq!(counter(&stats, "book.messages_applied"), Some(run.messages), "stats: {stats}");
    assert_eq!(counter(&stats, "recovery.gaps"), counter(&stats, "recovery.gaps_filled"), "every gap filled; stats {stats}");
    stats
}

#[test]
fn line_a_faults_filled_from_line_b() {
    let run = run(
        &Scenario::lobster("recovery_line_a_faults", &["--loss", "0.01", "--reorder", "0.005", "--duplicate", "0.01", "--faults", "a"]),
        None,
    );
    let report = run.report.clone();
    assert!(report_u64(&report, "/line_a/lost_packets") > 0, "the seed injects losses: {report}");
    let stats = finish_and_compare(run);
    assert_line_counters(&stats, &report, 0, "line_a");
    assert_line_counters(&stats, &report, 1, "line_b");
    assert_eq!(counter(&stats, "lines.1.missing_messages"), Some(0));
}

#[test]
fn faults_on_both_lines_recover() {
    let run = run(
        &Scenario::lobster("recovery_both_lines_faults", &["--loss", "0.01", "--reorder", "0.005", "--duplicate", "0.01", "--faults", "both"]),
        None,
    );
    let report = run.report.clone();
    let stats = finish_and_compare(run);
    assert_line_counters(&stats, &report, 0, "line_a");
    assert_line_counters(&stats, &report, 1, "line_b");
}

#[test]
fn burst_of_100_packets_retransmitted() {
    let run = run(
        &Scenario::lobster("recovery_burst", &["--burst", "100", "--burst-at", "150", "--faults", "both"]),
        None,
    );
    let report = run.report.clone();
    assert_eq!(report_u64(&report, "/line_a/burst_lost_packets"), 100, "report {report}");
    let stats = finish_and_compare(run);
    assert_line_counters(&stats, &report, 0, "line_a");
    assert_line_counters(&stats, &report, 1, "line_b");
    let lost = report_u64(&report, "/line_a/lost_messages");
    assert_eq!(counter(&stats, "recovery.retransmitted_messages"), Some(lost), "stats {stats}");
    assert!(counter(&stats, "recovery.requests_sent").unwrap_or(0) > 0, "stats {stats}");
    assert_eq!(counter(&stats, "recovery.fallbacks"), Some(0), "stats {stats}");
}

#[test]
fn single_line_loss_retransmitted() {
    let run = run(
        &Scenario {
            line_b: false,
            ..Scenario::lobster("recovery_single_line", &["--loss", "0.01", "--reorder", "0.005", "--duplicate", "0.01"])
        },
        None,
    );
    let report = run.report.clone();
    let stats = finish_and_compare(run);
    assert_line_counters(&stats, &report, 0, "line_a");
    assert_eq!(
        counter(&stats, "recovery.retransmitted_messages"),
        Some(report_u64(&report, "/line_a/lost_messages")),
        "stats {stats}"
    );
}

#[test]
fn stopped_server_falls_back_to_soupbintcp() {
    let run = run(
        &Scenario {
            fallback: true,
            recovery: "give_up_ms = 300\n",
            ..Scenario::lobster("recovery_server_stopped", &["--burst", "40", "--burst-at", "200", "--faults", "both", "--retransmit-stop-after", "100"])
        },
        None,
    );
    let report = run.report.clone();
    assert!(report_u64(&report, "/retransmit/ignored_while_stopped") > 0, "report {report}");
    let stats = finish_and_compare(run);
    assert!(counter(&stats, "recovery.fallbacks").unwrap_or(0) >= 1, "stats {stats}");
    assert!(counter(&stats, "recovery.fallback_messages").unwrap_or(0) >= report_u64(&report, "/line_a/lost_messages"), "stats {stats}");
}

#[test]
fn gap_beyond_window_uses_soupbintcp() {
    let run = run(
        &Scenario {
            fallback: true,
            recovery: "give_up_ms = 300\n",
            ..Scenario::lobster("recovery_beyond_window", &["--burst", "100", "--burst-at", "150", "--faults", "both", "--retransmit-window", "20"])
        },
        None,
    );
    let report = run.report.clone();
    assert!(report_u64(&report, "/retransmit/beyond_window") > 0, "report {report}");
    let stats = finish_and_compare(run);
    assert!(counter(&stats, "recovery.fallbacks").unwrap_or(0) >= 1, "stats {stats}");
}

/// One million synthetic messages over four instruments, with 1% loss, 0.5% reordering and 1%
/// duplication on both lines. Every message is recovered and the counters equal the injected
/// faults. A subscriber that joins at the end gets the books a lossless `mdfh book` ends with.
#[test]
fn million_message_flow_recovers() {
    let dir = temp_dir("recovery_million_flow");
    let file = dir.join("flow.itch");
    mdfh_ok(&["generate", "-o", path_str(&file), "--messages", "1000000", "--instruments", "4", "--seed", "11"]);
    let mut run = run(
        &Scenario {
            name: "recovery_million",
            sim_args: &["--loss", "0.01", "--reorder", "0.005", "--duplicate", "0.01", "--faults", "both"],
            line_b: true,
            retransmit: true,
            fallback: false,
            recovery: "",
            rate: 100_000,
            follow: None,
        },
        Some(&file),
    );
    assert!(run.messages > 1_000_000, "{} messages", run.messages);
    let report = run.report.clone();
    let stats = wait_recovered(&run);
    assert_line_counters(&stats, &report, 0, "line_a");
    assert_line_counters(&stats, &report, 1, "line_b");
    assert!(counter(&stats, "recovery.retransmitted_messages").unwrap_or(0) > 0, "stats {stats}");

    let symbols = ["SYN1", "SYN4"];
    let mut late: Vec<support::Process> = symbols.iter().map(|symbol| start_book_subscriber(run.handler.subscribers, symbol, LEVELS)).collect();
    run.handler.wait_counter("publish.subscribers", 2);
    // Quiet again: both snapshots written.
    run.handler.wait_published(run.messages);
    let status = run.handler.stop();
    assert!(status.success(), "mdfh run exited with {status}");
    for (symbol, subscriber) in symbols.iter().zip(late.iter_mut()) {
        let status = subscriber.wait_exit(support::WAIT);
        assert!(status.success(), "mdfh subscribe {symbol} exited with {status}");
        let expected = book_rows(&file, symbol, LEVELS);
        assert_eq!(subscriber.stdout.snapshot().last(), expected.last(), "final book of {symbol}: late subscriber (left), mdfh book (right)");
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&run.dir);
}

/// Runs a scenario whose losses cannot be recovered and checks that the books are flagged stale
/// and that the subscriber receives the quality change.
fn assert_unrecoverable_is_stale(scenario: &Scenario<'_>) -> Value {
    let mut run = run(scenario, None);
    let report = run.report.clone();
    let lost = report_u64(&report, "/line_a/lost_messages");
    assert!(lost > 0, "the seed injects losses: {report}");
    let stats = run.handler.wait_counter("feed.messages", run.messages - lost);
    assert_eq!(counter(&stats, "feed.messages_missed"), Some(lost), "stats {stats}");
    let books = stats["books"].as_array().cloned().unwrap_or_default();
    assert!(!books.is_empty() && books.iter().all(|b| b["stale"] == true), "every book stale: {stats}");
    let subscriber = run.subscriber.as_ref().expect("a subscriber");
    subscriber.stderr.wait_for(&["mdfh subscribe: feed quality stale since="]);
    let status = run.handler.stop();
    assert!(status.success(), "mdfh run exited with {status}");
    let _ = std::fs::remove_dir_all(&run.dir);
    stats
}

#[test]
fn no_recovery_marks_books_stale() {
    assert_unrecoverable_is_stale(&Scenario {
        line_b: false,
        retransmit: false,
        ..Scenario::lobster("recovery_none_single_line", &["--loss", "0.02"])
    });
}

#[test]
fn unrecoverable_gap_on_both_lines_is_stale() {
    let stats = assert_unrecoverable_is_stale(&Scenario {
        retransmit: false,
        ..Scenario::lobster("recovery_none_both_lines", &["--burst", "5", "--burst-at", "100", "--faults", "both"])
    });
    assert_eq!(counter(&stats, "recovery.gave_up"), Some(1), "stats {stats}");
}

/// `mdfh run` alone: its built-in simulator sends lines A and B with faults and serves the
/// retransmission and SoupBinTCP addresses of the handler's `[recovery]` section.
#[test]
fn embedded_simulator_feeds_both_lines() {
    let dir = temp_dir("recovery_embedded");
    let input = "[input]\nkind = \"udp\"\nbind = \"127.0.0.1:0\"\nbind_b = \"127.0.0.1:0\"\n";
    let config = handler_config(input).replace("[simulator]\nenabled = false\n", "")
        + &format!(
            "\n[simulator]\nenabled = true\nrepeat = false\nrate = 5000\nloss = 0.02\nreorder = 0.01\nduplicate = 0.01\nfaults = \"both\"\nseed = 3\n\n[recovery]\nretransmit = \"{}\"\nfallback = \"{}\"\n",
            free_udp(),
            free_tcp()
        );
    let mut handler = Handler::start(&dir, &config);
    handler.process.stdout.wait_for(&["mdfh: simulator: line B to "]);
    // The bundled sample converted at start: 627 messages.
    let stats = handler.wait_counter("feed.messages", 627);
    assert_counters(&stats, &["feed.gaps", "recovery.gave_up"], 0);
    assert!(counter(&stats, "lines.1.packets").unwrap_or(0) > 0, "line B received packets; stats {stats}");
    assert!(counter(&stats, "recovery.arbitration_drops").unwrap_or(0) > 0, "stats {stats}");
    let status = handler.stop();
    assert!(status.success(), "mdfh run exited with {status}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A receive buffer far too small for a full-speed sender: the kernel drops datagrams, and the
/// handler counts them (Linux reports the count with each datagram) and detects the gaps they
/// leave.
#[test]
fn kernel_drops_are_counted() {
    let dir = temp_dir("recovery_kernel_drops");
    let file = dir.join("flow.itch");
    mdfh_ok(&["generate", "-o", path_str(&file), "--messages", "200000", "--instruments", "4", "--seed", "5"]);
    let input = "[input]\nkind = \"udp\"\nbind = \"127.0.0.1:0\"\nrecv_buffer_bytes = 4096\n";
    let mut handler = Handler::start(&dir, &handler_config(input));
    let target = handler.feed_addr().to_string();
    mdfh_ok(&["sim", path_str(&file), "--rate", "0", "--udp", &target]);
    let stats = handler.wait_stats("kernel drops counted", |stats| counter(stats, "feed.kernel_drops").unwrap_or(0) > 0);
    let drops = counter(&stats, "feed.kernel_drops").unwrap_or(0);
    assert_eq!(counter(&stats, "lines.0.kernel_drops"), Some(drops), "stats {stats}");
    assert!(counter(&stats, "feed.gaps").unwrap_or(0) > 0, "dropped datagrams leave gaps; stats {stats}");
    let status = handler.stop();
    assert!(status.success(), "mdfh run exited with {status}");
    let _ = std::fs::remove_dir_all(&dir);
}

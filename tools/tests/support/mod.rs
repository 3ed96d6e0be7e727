//! Helpers shared by the end-to-end tests, which run the `mdfh` binary as child processes on
//! 127.0.0.1. [`Process`] collects a child's output lines and kills its process group when a test
//! fails. [`Handler`] starts `mdfh run` on free ports and reads its stats endpoint.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `mdfh` binary under test.
pub const MDFH: &str = env!("CARGO_BIN_EXE_mdfh");
/// Folder of the real test data, shared by the workspace.
pub const DATA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data");
/// Root of the workspace.
pub const REPO_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
/// Maximum wait for anything a test expects a child process to do.
pub const WAIT: Duration = Duration::from_secs(10);
/// Pause between two checks of a condition that a test waits for.
const POLL: Duration = Duration::from_millis(20);

/// Returns the message file of the LOBSTER AAPL sample: 600 events.
pub fn lobster_message_csv() -> PathBuf {
    Path::new(DATA_DIR).join("lobster/AAPL_2012-06-21_34200000_57600000_message_10.csv")
}

/// Returns the orderbook file of the LOBSTER AAPL sample: the 10-level book after each event.
pub fn lobster_orderbook_csv() -> PathBuf {
    Path::new(DATA_DIR).join("lobster/AAPL_2012-06-21_34200000_57600000_orderbook_10.csv")
}

/// Returns the path of a capture under `tests/data/itch-pcaps/`.
pub fn pcap(relative: &str) -> PathBuf {
    Path::new(DATA_DIR).join("itch-pcaps").join(relative)
}

/// Creates an empty folder for one test's files under the cargo temp dir.
pub fn temp_dir(test_name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e").join(test_name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("cannot clear {}: {e}", dir.display()));
    }
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// Returns a `mdfh` command with plain-text logs at info level, whatever the caller's environment.
pub fn mdfh_command() -> Command {
    let mut command = Command::new(MDFH);
    command.env("NO_COLOR", "1").env("MDFH_LOG", "info");
    command
}

/// Runs `mdfh` with `args` to completion, asserts that it exited 0 and returns its stdout and
/// stderr.
pub fn mdfh_ok(args: &[&str]) -> (String, String) {
    let output = mdfh_command()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot start mdfh {args:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "mdfh {args:?} exited with {}; stderr:\n{stderr}",
        output.status
    );
    (stdout, stderr)
}

/// Converts the LOBSTER AAPL sample into an ITCH BinaryFILE in `dir` with `mdfh convert lobster`
/// and returns its path.
pub fn convert_lobster_sample(dir: &Path) -> PathBuf {
    let output = dir.join("aapl.itch");
    mdfh_ok(&[
        "convert",
        "lobster",
        path_str(&lobster_message_csv()),
        path_str(&lobster_orderbook_csv()),
        "-o",
        path_str(&output),
        "--symbol",
        "AAPL",
    ]);
    output
}

/// Returns the rows `mdfh book FILE --symbol SYMBOL --levels LEVELS` prints: the book of
/// `symbol` after each message about it, one LOBSTER orderbook row each.
pub fn book_rows(file: &Path, symbol: &str, levels: u16) -> Vec<String> {
    let levels = levels.to_string();
    let (stdout, _) = mdfh_ok(&["book", path_str(file), "--symbol", symbol, "--levels", &levels]);
    let rows: Vec<String> = stdout.lines().map(str::to_string).collect();
    assert!(
        !rows.is_empty(),
        "mdfh book printed no row for {symbol} in {}",
        file.display()
    );
    rows
}

/// Asserts that `subscriber_rows` ends with the last of `book_rows` and passes through every
/// book state of `book_rows` in order. The subscriber may print more rows, because it prints one
/// after every frame and one message can change several levels.
pub fn assert_same_books(subscriber_rows: &[String], book_rows: &[String]) {
    assert_eq!(
        subscriber_rows.last(),
        book_rows.last(),
        "final book of the subscriber (left) and of mdfh book (right)"
    );
    let mut remaining = subscriber_rows.iter();
    for (index, row) in book_rows.iter().enumerate() {
        if index > 0 && book_rows.get(index - 1) == Some(row) {
            continue;
        }
        assert!(
            remaining.any(|seen| seen == row),
            "the subscriber never showed the book of mdfh book row {}, or showed it out of order: {row}",
            index + 1
        );
    }
}

/// Returns the number of ITCH messages in a BinaryFILE or pcap, read by the feed crate.
pub fn message_count(file: &Path) -> u64 {
    let feed = mdfh_feed::file::open(file).unwrap_or_else(|e| panic!("cannot open {}: {e}", file.display()));
    feed.messages().count() as u64
}

pub fn path_str(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("test path {} is not UTF-8", path.display()))
}

/// Calls `check` every few milliseconds until it returns `Some`, and returns that value. Panics
/// with `what` when `timeout` passes first.
pub fn wait_until<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}

/// Removes ANSI escape sequences (colors), in case a log line carries them.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        // CSI sequence: ESC '[' parameters, ended by a byte in 0x40..=0x7E.
        if chars.next() == Some('[') {
            for end in chars.by_ref() {
                if ('\u{40}'..='\u{7e}').contains(&end) {
                    break;
                }
            }
        }
    }
    out
}

/// The lines a child process writes to one pipe, collected by a thread as they arrive.
#[derive(Clone)]
pub struct Lines {
    lines: Arc<Mutex<Vec<String>>>,
    closed: Arc<AtomicBool>,
}

impl Lines {
    /// Starts a thread that reads `reader` line by line until end of file.
    fn collect(reader: impl Read + Send + 'static) -> Lines {
        let lines = Lines {
            lines: Arc::new(Mutex::new(Vec::new())),
            closed: Arc::new(AtomicBool::new(false)),
        };
        let sink = lines.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(reader);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&buf);
                        let line = strip_ansi(text.trim_end_matches(['\n', '\r']));
                        sink.lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                    }
                }
            }
            sink.closed.store(true, Ordering::Release);
        });
        lines
    }

    /// Returns a copy of the lines read so far.
    pub fn snapshot(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Returns the lines read so far, joined, for failure messages.
    pub fn text(&self) -> String {
        self.snapshot().join("\n")
    }

    /// Returns the number of lines read so far that contain every one of `parts`.
    pub fn count_containing(&self, parts: &[&str]) -> usize {
        self.snapshot()
            .iter()
            .filter(|line| parts.iter().all(|p| line.contains(p)))
            .count()
    }

    /// Waits until a line contains every one of `parts` and returns the first such line.
    pub fn wait_for(&self, parts: &[&str]) -> String {
        let found = wait_until_or_none(WAIT, || {
            self.snapshot()
                .into_iter()
                .find(|line| parts.iter().all(|p| line.contains(p)))
        });
        found.unwrap_or_else(|| {
            panic!(
                "no line containing {parts:?} within {WAIT:?}; lines so far:\n{}",
                self.text()
            )
        })
    }

    /// Waits until the writer closed the pipe, so that every line has been read.
    pub fn wait_closed(&self) {
        wait_until(WAIT, "the end of a child's output", || {
            self.closed.load(Ordering::Acquire).then_some(())
        });
    }
}

fn wait_until_or_none<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// A child process in a process group of its own, with its stdout and stderr collected line by
/// line. Dropping it before the child was reaped kills whatever still runs in that group with
/// SIGKILL, so a failed test leaves no process behind.
pub struct Process {
    name: String,
    child: Child,
    /// Set once `wait_exit` has reaped the child. Its pid may be reused from then on.
    exit_status: Option<ExitStatus>,
    pub stdout: Lines,
    pub stderr: Lines,
}

impl Process {
    /// Starts `command` with stdin closed and both outputs collected. `name` labels failures.
    pub fn spawn(name: &str, command: &mut Command) -> Process {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = child.stdout.take().map(Lines::collect);
        let stderr = child.stderr.take().map(Lines::collect);
        let (Some(stdout), Some(stderr)) = (stdout, stderr) else {
            panic!("{name}: the child's output pipes are missing");
        };
        Process {
            name: name.to_string(),
            child,
            exit_status: None,
            stdout,
            stderr,
        }
    }

    fn pid(&self) -> libc::pid_t {
        libc::pid_t::try_from(self.child.id())
            .unwrap_or_else(|_| panic!("{}: pid {} out of range", self.name, self.child.id()))
    }

    /// Sends SIGTERM to the child, which must not have been reaped yet.
    pub fn terminate(&self) {
        assert!(
            self.exit_status.is_none(),
            "{}: SIGTERM after the child was reaped",
            self.name
        );
        // SAFETY: kill(2) takes a pid and a signal number and touches no memory of this process.
        // The child is not reaped (checked above), so its pid still names it and no other process.
        let result = unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        assert_eq!(
            result,
            0,
            "{}: SIGTERM failed: {}",
            self.name,
            std::io::Error::last_os_error()
        );
    }

    /// Waits for the child to exit and for both of its outputs to close, and returns its exit
    /// status. Panics, printing its stderr, when it is still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(status) = self.exit_status {
            return status;
        }
        let status = wait_until_or_none(timeout, || self.child.try_wait().ok().flatten());
        let Some(status) = status else {
            panic!(
                "{} still running after {timeout:?}; stderr:\n{}",
                self.name,
                self.stderr.text()
            );
        };
        self.exit_status = Some(status);
        self.stdout.wait_closed();
        self.stderr.wait_closed();
        status
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.exit_status.is_some() {
            return;
        }
        // SAFETY: as in `terminate`. A negative pid names the process group the child leads,
        // because `process_group(0)` made its pid the group id, so the child's own children die
        // with it.
        unsafe {
            libc::kill(-self.pid(), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// The `[input]` section of a handler that reads MoldUDP64 on 127.0.0.1, port chosen by the
/// system.
pub const UDP_INPUT: &str = "[input]\nkind = \"udp\"\nbind = \"127.0.0.1:0\"\n";

/// Returns a complete `mdfh run` configuration around `input`, a TOML `[input]` section. The
/// built-in simulator is off, and subscribers and stats listen on 127.0.0.1 ports chosen by the
/// system. Stats refresh every 0.2 s, and idle stages back off, so tests leave the cores to each
/// other.
pub fn handler_config(input: &str) -> String {
    format!(
        "{input}
[simulator]
enabled = false

[publisher]
listen = \"127.0.0.1:0\"

[ws]
listen = \"127.0.0.1:0\"

[stats]
interval_secs = 0.2
http = \"127.0.0.1:0\"

[pipeline]
ring_capacity = 4096
order_capacity = 65536

[pipeline.idle]
receive = \"backoff\"
book = \"backoff\"
publish = \"backoff\"
"
    )
}

/// A running `mdfh run` with the addresses it printed at start.
pub struct Handler {
    pub process: Process,
    /// The MoldUDP64 input, for UDP input only.
    pub feed: Option<SocketAddr>,
    pub subscribers: SocketAddr,
    pub stats: SocketAddr,
}

impl Handler {
    /// Writes `config` to `dir/mdfh.toml`, starts `mdfh run` on it and waits for its address lines.
    pub fn start(dir: &Path, config: &str) -> Handler {
        let path = dir.join("mdfh.toml");
        std::fs::write(&path, config).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        let process = Process::spawn("mdfh run", mdfh_command().args(["run", "--config", path_str(&path)]));

        let subscribers = address_after(&process, "mdfh: subscribers connect to ");
        let stats_line = process.stdout.wait_for(&["mdfh: stats at http://"]);
        let stats = parse_address(&stats_line, "mdfh: stats at http://");
        let feed = process
            .stdout
            .snapshot()
            .iter()
            .find(|line| line.starts_with("mdfh: feed: MoldUDP64 on "))
            .map(|line| parse_address(line, "mdfh: feed: MoldUDP64 on "));
        Handler {
            process,
            feed,
            subscribers,
            stats,
        }
    }

    /// Returns the UDP input address, which a UDP handler printed at start.
    pub fn feed_addr(&self) -> SocketAddr {
        self.feed.unwrap_or_else(|| {
            panic!(
                "mdfh run printed no MoldUDP64 input; stdout:\n{}",
                self.process.stdout.text()
            )
        })
    }

    /// Fetches `GET /stats` and returns the JSON document. Panics when the endpoint fails.
    pub fn stats(&self) -> Value {
        fetch_stats(self.stats).unwrap_or_else(|e| panic!("GET /stats on {} failed: {e}", self.stats))
    }

    /// Polls `GET /stats` until `check` accepts the document, and returns it.
    pub fn wait_stats(&self, what: &str, mut check: impl FnMut(&Value) -> bool) -> Value {
        let found = wait_until_or_none(WAIT, || fetch_stats(self.stats).ok().filter(|stats| check(stats)));
        found.unwrap_or_else(|| panic!("timed out waiting for stats with {what}; last stats: {}", self.stats()))
    }

    /// Waits until counter `path` (for example `feed.gaps`) equals `expected`, and returns the
    /// stats document.
    pub fn wait_counter(&self, path: &str, expected: u64) -> Value {
        self.wait_stats(&format!("{path} = {expected}"), |stats| {
            counter(stats, path) == Some(expected)
        })
    }

    /// Waits until the stats show `messages` messages received and every book event of them
    /// handed to the subscriber server, with no frame sent since the previous refresh. Returns
    /// the last stats document.
    pub fn wait_published(&self, messages: u64) -> Value {
        let mut previous: Option<(u64, u64)> = None;
        self.wait_stats(&format!("{messages} messages received and published"), |stats| {
            let done = counter(stats, "feed.messages") == Some(messages)
                && counter(stats, "publish.events").is_some()
                && counter(stats, "publish.events") == counter(stats, "book.events");
            let refreshed_at = stats.get("unix_time_ns").and_then(Value::as_u64).unwrap_or(0);
            let frames = counter(stats, "publish.frames_sent").unwrap_or(0);
            let quiet = matches!(previous, Some((at, sent)) if at != refreshed_at && sent == frames);
            if previous.is_none_or(|(at, _)| at != refreshed_at) {
                previous = Some((refreshed_at, frames));
            }
            done && quiet
        })
    }

    /// Checks that `GET /stats` still returns the counters, sends SIGTERM and returns the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let stats = self.stats();
        assert!(
            counter(&stats, "feed.packets").is_some(),
            "the stats document has no counters: {stats}"
        );
        self.process.terminate();
        self.process.wait_exit(WAIT)
    }
}

fn address_after(process: &Process, prefix: &str) -> SocketAddr {
    let line = process.stdout.wait_for(&[prefix]);
    parse_address(&line, prefix)
}

/// Parses the socket address that follows `prefix` in `line`, up to a space, comma or slash.
fn parse_address(line: &str, prefix: &str) -> SocketAddr {
    let rest = line.split_once(prefix).map_or("", |(_, rest)| rest);
    let text = rest.split([' ', ',', '/']).next().unwrap_or("");
    text.parse()
        .unwrap_or_else(|e| panic!("invalid address {text:?} in line {line:?}: {e}"))
}

/// Sends `GET /stats` over HTTP/1.0 and parses the JSON body.
pub fn fetch_stats(addr: SocketAddr) -> Result<Value, String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| format!("set timeout: {e}"))?;
    stream
        .write_all(b"GET /stats HTTP/1.0\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| format!("read: {e}"))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no header end in {response:?}"))?;
    if !head.starts_with("HTTP/1.") || !head.contains(" 200 ") {
        return Err(format!("unexpected response head {head:?}"));
    }
    serde_json::from_str(body).map_err(|e| format!("invalid JSON {body:?}: {e}"))
}

/// Returns counter `path` of a stats document, such as `feed.messages` for
/// `counters.feed.messages`, or `None` when the document has no such counter yet.
pub fn counter(stats: &Value, path: &str) -> Option<u64> {
    let pointer = format!("/counters/{}", path.replace('.', "/"));
    stats.pointer(&pointer).and_then(Value::as_u64)
}

/// Counters of messages or packets stage 1 could not decode.
pub const DECODE_ERROR_COUNTERS: [&str; 6] = [
    "feed.truncated_datagrams",
    "feed.short_packets",
    "feed.blocks_past_end",
    "feed.unknown_message_types",
    "feed.truncated_messages",
    "feed.invalid_fields",
];

/// Counters of messages that did not fit the order books.
pub const BOOK_ERROR_COUNTERS: [&str; 6] = [
    "book.unknown_orders",
    "book.over_executions",
    "book.duplicate_orders",
    "book.crossed_books",
    "book.unknown_instruments",
    "book.other_errors",
];

/// Asserts that every counter in `paths` is `expected`, naming the first that is not.
pub fn assert_counters(stats: &Value, paths: &[&str], expected: u64) {
    for path in paths {
        assert_eq!(counter(stats, path), Some(expected), "counter {path} in stats {stats}");
    }
}

/// Starts `mdfh subscribe ADDR --symbol SYMBOL --depth DEPTH --format book-csv` and waits for
/// its "connected" line.
pub fn start_book_subscriber(addr: SocketAddr, symbol: &str, depth: u16) -> Process {
    let addr = addr.to_string();
    let depth = depth.to_string();
    let process = Process::spawn(
        "mdfh subscribe",
        mdfh_command().args([
            "subscribe",
            &addr,
            "--symbol",
            symbol,
            "--depth",
            &depth,
            "--format",
            "book-csv",
        ]),
    );
    process.stderr.wait_for(&["mdfh subscribe: connected to"]);
    process
}

/// Runs `mdfh sim FILE --rate RATE --udp TARGET` to completion and asserts that it sent
/// `messages` messages.
pub fn run_udp_sim(file: &Path, target: SocketAddr, messages: u64) {
    let target = target.to_string();
    let (_, stderr) = mdfh_ok(&["sim", path_str(file), "--rate", "20000", "--udp", &target]);
    let sent = format!("sent {messages} messages");
    assert!(
        stderr.contains(&sent),
        "mdfh sim did not report {sent:?}; stderr:\n{stderr}"
    );
}

/// Stops `handler` with SIGTERM and checks the end of a book-csv subscriber: the handler exits 0,
/// the subscriber reports the handler's Goodbye and exits 0, and its rows show the books of
/// `book_rows` (see [`assert_same_books`]).
pub fn stop_and_compare_books(handler: &mut Handler, subscriber: &mut Process, book_rows: &[String]) {
    let status = handler.stop();
    assert!(
        status.success(),
        "mdfh run exited with {status}; stderr:\n{}",
        handler.process.stderr.text()
    );

    let status = subscriber.wait_exit(WAIT);
    let stderr = subscriber.stderr.text();
    assert!(
        status.success(),
        "mdfh subscribe exited with {status}; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("goodbye from the handler: Shutdown"),
        "no Goodbye reported; stderr:\n{stderr}"
    );
    assert_same_books(&subscriber.stdout.snapshot(), book_rows);
}

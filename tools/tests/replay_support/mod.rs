//! Helpers of the `mdfh replay` tests, on top of the shared `support` module: starting a replay
//! on free ports, and working out from a recorded file which `mdfh book` row shows the book
//! after a given message.

#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use std::time::{Duration, Instant};

use mdfh_feed::itch::{Message, Stock};
use mdfh_publisher::{Client, ClientBook, OwnedFrame};

use serde_json::Value;

use crate::support::{counter, fetch_stats, handler_config, mdfh_command, path_str, wait_until, Process, UDP_INPUT, WAIT};

/// Writes a configuration with the subscriber server and the stats endpoint on free 127.0.0.1
/// ports to `dir/replay.toml` and returns its path. Its `[input]` section is ignored by
/// `mdfh replay`.
pub fn write_config(dir: &Path) -> PathBuf {
    let path = dir.join("replay.toml");
    std::fs::write(&path, handler_config(UDP_INPUT)).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

/// Returns the arguments `replay --config CONFIG` followed by `args`.
fn replay_args(config: &Path, args: &[&str]) -> Vec<String> {
    let mut all = vec!["replay".to_string(), "--config".to_string(), path_str(config).to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    all
}

/// A running `mdfh replay` with the addresses it printed.
pub struct Replay {
    pub process: Process,
    pub subscribers: SocketAddr,
    /// The stats endpoint, which the configuration of [`write_config`] turns on.
    pub stats: SocketAddr,
}

impl Replay {
    /// Starts `mdfh replay ARGS` with a configuration on free ports in `dir`, and waits for its
    /// subscriber address.
    pub fn start(dir: &Path, args: &[&str]) -> Replay {
        let config = write_config(dir);
        let process = Process::spawn("mdfh replay", mdfh_command().args(replay_args(&config, args)));
        Replay::from_process(process)
    }

    /// Creates the FIFO `fifo`, starts `mdfh replay ARGS` with its standard input read from it
    /// (through `sh`, because `Process` gives its child no standard input), and returns the
    /// replay with the writing end of the FIFO. Closing that end ends step mode.
    pub fn start_with_fifo(dir: &Path, args: &[&str], fifo: &Path) -> (Replay, File) {
        let status = Command::new("mkfifo").arg(fifo).status().unwrap_or_else(|e| panic!("cannot run mkfifo: {e}"));
        assert!(status.success(), "mkfifo {} failed with {status}", fifo.display());
        let config = write_config(dir);
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(r#"input="$1"; shift; exec "$@" < "$input""#)
            .arg("sh")
            .arg(fifo)
            .arg(crate::support::MDFH)
            .args(replay_args(&config, args))
            .env("NO_COLOR", "1")
            .env("MDFH_LOG", "info");
        let process = Process::spawn("mdfh replay", &mut command);
        // The shell's open for reading waits for a writer. A non-blocking open for writing fails
        // until that open has begun, and then completes both.
        let input = wait_until(WAIT, "the replay to open its end of the FIFO", || {
            OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(fifo).ok()
        });
        (Replay::from_process(process), input)
    }

    fn from_process(process: Process) -> Replay {
        let subscribers = address_after(&process, "mdfh: subscribers connect to ");
        let stats = address_after(&process, "mdfh: stats at http://");
        Replay { process, subscribers, stats }
    }

    /// Waits until the stats endpoint shows counter `path` (such as `feed.messages`) equal to
    /// `expected`, and returns the stats document.
    pub fn wait_counter(&self, path: &str, expected: u64) -> Value {
        wait_until(WAIT, &format!("{path} = {expected} in the stats"), || {
            fetch_stats(self.stats).ok().filter(|stats| counter(stats, path) == Some(expected))
        })
    }
}

/// Parses the socket address that follows `prefix` in a line of the process's stdout, up to a
/// slash or the end of the line.
fn address_after(process: &Process, prefix: &str) -> SocketAddr {
    let line = process.stdout.wait_for(&[prefix]);
    let rest = line.split_once(prefix).map_or("", |(_, rest)| rest);
    let text = rest.split('/').next().unwrap_or_default().trim();
    text.parse().unwrap_or_else(|e| panic!("invalid address {text:?} in {line:?}: {e}"))
}

/// Runs `mdfh replay ARGS` to completion, with a configuration on free ports in `dir` and no
/// standard input, and returns its output whatever the exit status.
pub fn run_replay(dir: &Path, args: &[&str]) -> Output {
    let config = write_config(dir);
    mdfh_command()
        .args(replay_args(&config, args))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run mdfh replay {args:?}: {e}"))
}

/// One ITCH message of a recorded file, as the replay numbers it.
#[derive(Debug, Clone, Copy)]
pub struct FileMessage {
    /// Feed sequence number: the MoldUDP64 one in a capture, from 1 in a BinaryFILE.
    pub sequence: u64,
    pub locate: u16,
    /// ITCH timestamp, nanoseconds since midnight.
    pub timestamp: u64,
}

/// Reads every message of a BinaryFILE or capture with the feed crate.
pub fn file_messages(file: &Path) -> Vec<FileMessage> {
    let feed = mdfh_feed::file::open(file).unwrap_or_else(|e| panic!("cannot open {}: {e}", file.display()));
    feed.messages()
        .enumerate()
        .map(|(index, item)| {
            let item = item.unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let message = item.decode().unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            FileMessage {
                sequence: item.moldudp64_sequence.unwrap_or(index as u64 + 1),
                locate: message.header().stock_locate,
                timestamp: message.header().timestamp,
            }
        })
        .collect()
}

/// Returns the stock locate of `symbol` from the file's stock directory message.
pub fn directory_locate(file: &Path, symbol: &str) -> u16 {
    let feed = mdfh_feed::file::open(file).unwrap_or_else(|e| panic!("cannot open {}: {e}", file.display()));
    let stock = Stock::new(symbol);
    feed.messages()
        .filter_map(|item| item.ok()?.decode().ok())
        .find_map(|message| match message {
            Message::StockDirectory(directory) if directory.stock == stock => Some(directory.header.stock_locate),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{} has no stock directory message for {symbol}", file.display()))
}

/// Returns the index of the `mdfh book` row that shows the book after the first `applied`
/// messages of `messages`: `mdfh book` prints one row per message of `locate`. `None` when none
/// of those messages is about `locate`.
pub fn row_after(messages: &[FileMessage], applied: usize, locate: u16) -> Option<usize> {
    let rows = messages.iter().take(applied).filter(|m| m.locate == locate).count();
    rows.checked_sub(1)
}

/// LOBSTER's placeholder prices for empty levels, as `mdfh book` prints them.
const EMPTY_ASK: &str = "9999999999";
const EMPTY_BID: &str = "-9999999999";

/// A subscriber inside the test process that keeps the L2 book of one symbol and shows it as an
/// `mdfh book` row. `mdfh subscribe` buffers its output, so a test that watches the book while
/// the replay runs uses this instead.
pub struct BookClient {
    client: Client,
    book: ClientBook,
    symbol: String,
    levels: u16,
    goodbye: bool,
}

impl BookClient {
    /// Connects to `addr` and subscribes to `symbol` at depth `levels`.
    pub fn connect(addr: SocketAddr, symbol: &str, levels: u16) -> BookClient {
        let mut client = Client::connect(addr, Duration::from_secs(2)).unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
        client
            .set_read_timeout(Duration::from_millis(50))
            .unwrap_or_else(|e| panic!("cannot set the read timeout: {e}"));
        client.subscribe(Some(symbol), levels).unwrap_or_else(|e| panic!("cannot subscribe to {symbol}: {e}"));
        BookClient { client, book: ClientBook::new(), symbol: symbol.to_string(), levels, goodbye: false }
    }

    /// Returns the book as `mdfh book --levels LEVELS` prints it, or `None` before the snapshot.
    pub fn row(&self) -> Option<String> {
        let (bids, asks) = self.book.levels(self.symbol.as_str())?;
        let mut fields = Vec::new();
        for i in 0..usize::from(self.levels) {
            match asks.get(i) {
                Some(level) => fields.extend([level.price.to_string(), level.shares.to_string()]),
                None => fields.extend([EMPTY_ASK.to_string(), "0".to_string()]),
            }
            match bids.get(i) {
                Some(level) => fields.extend([level.price.to_string(), level.shares.to_string()]),
                None => fields.extend([EMPTY_BID.to_string(), "0".to_string()]),
            }
        }
        Some(fields.join(","))
    }

    /// Reads and applies frames until `done` accepts the client, or panics naming `what` after
    /// [`WAIT`].
    fn read_until(&mut self, what: &str, done: impl Fn(&BookClient) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out after {WAIT:?} waiting for {what}; book now: {:?}", self.row());
            match self.client.next_frame() {
                Ok(Some(frame)) => {
                    self.goodbye |= matches!(frame, OwnedFrame::Goodbye { .. });
                    if let Err(e) = self.book.apply(&frame) {
                        panic!("invalid frame sequence from the replay: {e}");
                    }
                }
                Ok(None) => {}
                Err(e) => panic!("reading from the replay failed while waiting for {what}: {e}"),
            }
        }
    }

    /// Waits until the book equals `expected`, an `mdfh book` row.
    pub fn wait_for_row(&mut self, expected: &str, what: &str) {
        self.read_until(what, |client| client.row().as_deref() == Some(expected));
    }

    /// Reads until the server's Goodbye and returns the final book.
    pub fn wait_for_goodbye(&mut self) -> Option<String> {
        self.read_until("the Goodbye frame", |client| client.goodbye);
        self.row()
    }
}

//! Stage 1 input from recorded files, for `mdfh replay`: pcap and pcapng captures of MoldUDP64,
//! and ITCH 5.0 BinaryFILEs, one after the other, handed to stage 1 as MoldUDP64 packets.
//!
//! [`ReplaySource`] runs inside stage 1. Each call of [`ReplaySource::poll`] hands on the units
//! that are due and returns, so stage 1 waits only for a full ring, as live, and for a file to
//! load. The command that runs the replay steers it through a shared [`ReplayControl`], which
//! opens the start gate, grants steps, and reports when the files are done.
//!
//! Files are read whole into memory, one at a time, when the replay reaches them. Stage 1 waits
//! while a file loads.

mod files;
mod options;
mod pacing;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mdfh_feed::file::Format;
use mdfh_feed::pcap::{CaptureSummary, PcapError};
use mdfh_feed::udp::monotonic_ns;

use files::{Granularity, LoadedFile, Unit, UnitBytes};
use pacing::Pacer;

pub use options::{format_time_of_day, parse_time_of_day, Speed, StartPoint};

/// Units handed on per call of [`ReplaySource::poll`], so that one stage cycle stays short.
const BATCH: usize = 64;

/// Errors that make a file, or the whole replay, impossible.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("failed to read {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    #[error("{} is not a regular file", path.display())]
    NotAFile { path: PathBuf },

    #[error("cannot replay {}: {source}", path.display())]
    Capture { path: PathBuf, source: PcapError },

    #[error("{} is neither a pcap or pcapng capture nor an ITCH 5.0 BinaryFILE: {reason}", path.display())]
    NotAFeed { path: PathBuf, reason: String },

    #[error("the {start} is past the end of the replay: {last}")]
    StartPastEnd { start: StartPoint, last: String },
}

/// Totals of one replayed file.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub path: PathBuf,
    pub format: Format,
    /// Packets handed to stage 1: captured packets, or one per BinaryFILE message and one for
    /// the end of its session.
    pub packets: u64,
    /// ITCH messages in those packets.
    pub messages: u64,
    /// Capture counts: frames read, UDP datagrams, frames skipped by kind. `None` for a
    /// BinaryFILE.
    pub capture: Option<CaptureSummary>,
    /// Capture records and BinaryFILE messages that could not be framed, each reported on the
    /// log with its byte offset.
    pub errors: u64,
}

impl FileReport {
    fn new(path: &Path, format: Format) -> FileReport {
        FileReport { path: path.to_owned(), format, packets: 0, messages: 0, capture: None, errors: 0 }
    }
}

/// Result of a replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayOutcome {
    /// One report per file read, in replay order.
    pub files: Vec<FileReport>,
    /// Files that could not be read when the replay reached them, with the reason.
    pub unreadable: Vec<String>,
    /// True when the replay reached the end of its last file.
    pub complete: bool,
    /// True when step mode ended because standard input closed.
    pub ended_by_input: bool,
    /// Why the replay failed, when it did: no message could be read, or the start point was
    /// never reached.
    pub error: Option<String>,
}

impl ReplayOutcome {
    /// Returns the ITCH messages handed on from every file.
    pub fn messages(&self) -> u64 {
        self.files.iter().map(|f| f.messages).sum()
    }

    /// Returns the packets handed on from every file.
    pub fn packets(&self) -> u64 {
        self.files.iter().map(|f| f.packets).sum()
    }
}

/// State shared by a [`ReplaySource`] and the command that runs it.
#[derive(Debug, Default)]
pub struct ReplayControl {
    started: AtomicBool,
    steps_granted: AtomicU64,
    input_closed: AtomicBool,
    finished: AtomicBool,
    outcome: Mutex<Option<ReplayOutcome>>,
}

impl ReplayControl {
    /// Opens the start gate: the source hands nothing on before this.
    pub fn start(&self) {
        self.started.store(true, Ordering::Release);
    }

    pub fn is_started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    /// Lets step mode hand on one more message.
    pub fn grant_step(&self) {
        self.steps_granted.fetch_add(1, Ordering::Release);
    }

    /// Ends step mode once the steps granted so far are used.
    pub fn close_input(&self) {
        self.input_closed.store(true, Ordering::Release);
    }

    /// Returns true once the source has handed on its last unit.
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// Returns how the replay ended, once the source has finished or been dropped.
    pub fn outcome(&self) -> Option<ReplayOutcome> {
        self.outcome.lock().ok().and_then(|outcome| outcome.clone())
    }
}

/// Checks every file of a replay before it starts; see `files::check_file`. Returns the files
/// that passed, in order, and the errors of the others.
pub fn check_files(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<ReplayError>) {
    let mut usable = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match files::check_file(path) {
            Ok(()) => usable.push(path.clone()),
            Err(error) => errors.push(error),
        }
    }
    (usable, errors)
}

/// The first message at or after a start point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartLocation {
    pub path: PathBuf,
    /// Byte offset of the message in the file.
    pub offset: usize,
    pub sequence: u64,
    pub timestamp: Option<u64>,
}

/// Finds the first message of `paths` at or after `start`, reading the files in order as the
/// replay will. Fails with [`ReplayError::StartPastEnd`] when no message reaches it. Files that
/// cannot be read are passed over, as the replay passes them over.
pub fn locate_start(paths: &[PathBuf], start: StartPoint) -> Result<StartLocation, ReplayError> {
    let mut last: Option<(StartLocation, &Path)> = None;
    for (index, path) in paths.iter().enumerate() {
        let Ok(mut file) = LoadedFile::load(path, index, false) else { continue };
        while let Some(unit) = file.next_unit(Granularity::Message, Some(start)) {
            if unit.messages == 0 {
                continue;
            }
            let location = StartLocation {
                path: path.clone(),
                offset: unit.offset,
                sequence: unit.sequence,
                timestamp: unit.timestamp,
            };
            if unit.reaches_start {
                return Ok(location);
            }
            last = Some((location, path));
        }
    }
    let last = match last {
        None => "the files contain no ITCH message".to_string(),
        Some((location, path)) => format!(
            "the last message is sequence number {} at {} (byte offset {} of {})",
            location.sequence,
            location.timestamp.map_or_else(|| "an unknown time".to_string(), format_time_of_day),
            location.offset,
            path.display()
        ),
    };
    Err(ReplayError::StartPastEnd { start, last })
}

/// Stage 1 input that replays recorded files. See the module documentation.
pub struct ReplaySource {
    paths: Vec<PathBuf>,
    /// Index in `paths` of the next file to load.
    next_path: usize,
    file: Option<LoadedFile>,
    speed: Speed,
    granularity: Granularity,
    /// The start point while it has not been reached.
    start: Option<StartPoint>,
    pacer: Pacer,
    /// A unit read but not yet due.
    pending: Option<Unit>,
    steps_used: u64,
    /// Buffer of the packet built for a [`UnitBytes::Blocks`] unit; reused.
    scratch: Vec<u8>,
    control: Arc<ReplayControl>,
    outcome: ReplayOutcome,
    finished: bool,
}

impl ReplaySource {
    /// Creates a source that replays `paths` in order at `speed`, from `start` if set.
    pub fn new(paths: Vec<PathBuf>, speed: Speed, start: Option<StartPoint>, control: Arc<ReplayControl>) -> ReplaySource {
        ReplaySource {
            paths,
            next_path: 0,
            file: None,
            speed,
            granularity: if speed == Speed::Step { Granularity::Message } else { Granularity::Packet },
            start,
            pacer: Pacer::new(match speed {
                Speed::Factor(factor) => factor,
                Speed::Max | Speed::Step => 1.0,
            }),
            pending: None,
            steps_used: 0,
            scratch: Vec::with_capacity(2048),
            control,
            outcome: ReplayOutcome::default(),
            finished: false,
        }
    }

    /// Passes the units that are due to `hand_on`, each with the monotonic time it was handed
    /// on, and returns how many there were. Before the start gate opens it only loads the first
    /// file.
    pub(crate) fn poll(&mut self, mut hand_on: impl FnMut(&[u8], u64)) -> usize {
        if self.finished {
            return 0;
        }
        if self.file.is_none() && !self.open_next_file() {
            self.outcome.complete = true;
            self.finish();
            return 0;
        }
        if !self.control.is_started() {
            return 0;
        }
        let mut handed = 0;
        while handed < BATCH {
            let unit = match self.pending.take().or_else(|| self.next_unit()) {
                Some(unit) => unit,
                None => {
                    self.outcome.complete = true;
                    self.finish();
                    break;
                }
            };
            match self.readiness(&unit) {
                Readiness::Due => {
                    self.hand_on(&unit, &mut hand_on);
                    handed += 1;
                }
                Readiness::Later => {
                    self.pending = Some(unit);
                    break;
                }
                Readiness::EndOfInput => {
                    self.outcome.ended_by_input = true;
                    self.finish();
                    break;
                }
            }
        }
        handed
    }

    /// Returns the next unit of the files, loading the next file when one ends.
    fn next_unit(&mut self) -> Option<Unit> {
        loop {
            if let Some(file) = &mut self.file {
                if let Some(unit) = file.next_unit(self.granularity, self.start) {
                    return Some(unit);
                }
                self.close_file();
            }
            if !self.open_next_file() {
                return None;
            }
        }
    }

    /// Loads the next readable file. Returns false when none is left.
    fn open_next_file(&mut self) -> bool {
        while let Some(path) = self.paths.get(self.next_path) {
            let index = self.next_path;
            self.next_path += 1;
            match LoadedFile::load(path, index, true) {
                Ok(file) => {
                    tracing::info!(file = %path.display(), format = ?file.report.format, "replaying file");
                    self.file = Some(file);
                    return true;
                }
                Err(error) => {
                    tracing::error!("{error}; the replay goes on with the next file");
                    self.outcome.unreadable.push(error.to_string());
                }
            }
        }
        false
    }

    fn close_file(&mut self) {
        let Some(file) = self.file.take() else { return };
        let report = file.report;
        let path = report.path.display();
        match report.capture {
            Some(capture) => tracing::info!(
                file = %path,
                packets = report.packets,
                messages = report.messages,
                errors = report.errors,
                frames = capture.frames,
                skipped_non_ipv4 = capture.skipped_non_ipv4,
                skipped_non_udp = capture.skipped_non_udp,
                skipped_fragments = capture.skipped_fragments,
                skipped_unsupported_link = capture.skipped_unsupported_link,
                "capture replayed"
            ),
            None => tracing::info!(file = %path, messages = report.messages, errors = report.errors, "BinaryFILE replayed"),
        }
        self.outcome.files.push(report);
    }

    /// Decides whether `unit` is handed on now. Units before the start point always are.
    fn readiness(&mut self, unit: &Unit) -> Readiness {
        if let Some(start) = self.start {
            if !unit.reaches_start {
                return Readiness::Due;
            }
            self.start = None;
            tracing::info!(%start, sequence = unit.sequence, "books rebuilt up to the start point; pacing starts");
        }
        match self.speed {
            Speed::Max => Readiness::Due,
            Speed::Factor(_) => {
                let now = monotonic_ns();
                if self.pacer.due_ns(unit.clock, now) <= now {
                    Readiness::Due
                } else {
                    Readiness::Later
                }
            }
            Speed::Step => {
                if unit.messages == 0 {
                    return Readiness::Due;
                }
                // Read the closed flag before the count: steps granted before the input closed
                // are then all counted.
                let closed = self.control.input_closed.load(Ordering::Acquire);
                if self.steps_used < self.control.steps_granted.load(Ordering::Acquire) {
                    self.steps_used += 1;
                    Readiness::Due
                } else if closed {
                    Readiness::EndOfInput
                } else {
                    Readiness::Later
                }
            }
        }
    }

    fn hand_on(&mut self, unit: &Unit, hand_on: &mut impl FnMut(&[u8], u64)) {
        let Some(file) = &mut self.file else { return };
        let now = monotonic_ns();
        match unit.bytes {
            UnitBytes::Packet { start, end } => hand_on(file.slice(start, end), now),
            UnitBytes::Blocks { start, end, header } => {
                self.scratch.clear();
                self.scratch.extend_from_slice(&header.encode());
                self.scratch.extend_from_slice(file.slice(start, end));
                hand_on(&self.scratch, now);
            }
        }
        file.report.packets += 1;
        file.report.messages += u64::from(unit.messages);
    }

    /// Records the outcome and marks the replay finished in the control.
    fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.close_file();
        if let Some(start) = self.start.filter(|_| self.outcome.complete) {
            self.outcome.error = Some(format!("the {start} is past the end of the replay"));
        } else if self.outcome.complete && self.outcome.messages() == 0 {
            self.outcome.error = Some("no ITCH message could be read from the files".to_string());
        }
        tracing::info!(
            packets = self.outcome.packets(),
            messages = self.outcome.messages(),
            files = self.outcome.files.len(),
            unreadable_files = self.outcome.unreadable.len(),
            "replay finished"
        );
        if let Ok(mut outcome) = self.control.outcome.lock() {
            *outcome = Some(self.outcome.clone());
        }
        self.control.finished.store(true, Ordering::Release);
    }
}

impl Drop for ReplaySource {
    /// Records the outcome of a replay stopped before its end, by a signal for example.
    fn drop(&mut self) {
        self.finish();
    }
}

enum Readiness {
    Due,
    Later,
    EndOfInput,
}


//! The writer thread: takes captures from the tap's ring, wraps each in Ethernet, IPv4 and UDP
//! headers and appends it to the current pcap file, rotating by size and age.
//!
//! I/O errors never stop the thread. A failed write abandons the file under its `.part` name
//! (its tail may be torn) and counts the packets that did not reach it as lost. The next file is
//! created no sooner than [`RETRY_INTERVAL`] later, and packets that arrive meanwhile are lost
//! too. Every error is counted and logged, at most one line per second.

use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mdfh_feed::udp::monotonic_ns;

use super::file::{PcapFile, PCAP_RECORD_HEADER_LEN};
use super::frame::{write_frame, FRAME_HEADER_LEN, MAX_DATAGRAM_LEN};
use super::tap::{Capture, CaptureQueue};
use super::{RecordConfig, RecordCounters, RecordError};
use crate::ratelimit::{RateLimit, DEFAULT_PERIOD_NS};

/// Sleep of the writer thread when the ring is empty. The ring absorbs what arrives meanwhile:
/// 8192 slots last 8 ms at a million datagrams per second.
const IDLE_SLEEP: Duration = Duration::from_millis(1);
/// Captures handled between two checks of the stop flag and the drop counter.
const BATCH: usize = 256;
/// Encoded bytes that trigger a write to the file.
const FLUSH_BYTES: usize = 256 << 10;
/// Max time encoded records wait for a write to the file while the writer is idle.
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// Wait after a failed file creation or write before the next file is created.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// Shortest time between two log lines about ring-full drops.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// The files a writer thread produced.
#[derive(Debug, Default)]
pub(super) struct WriterReport {
    /// Complete files, in the order they were written.
    pub files: Vec<PathBuf>,
    /// Files left with their `.part` name after an I/O error.
    pub abandoned: Vec<PathBuf>,
}

/// State shared by the writer thread and the [`super::Recorder`].
#[derive(Default)]
pub(super) struct WriterShared {
    pub counters: Arc<RecordCounters>,
    /// The `.part` path of the file being written.
    pub current_file: Mutex<Option<PathBuf>>,
    /// Set by `Recorder::finish`: drain the ring, close the file, exit.
    pub stop: AtomicBool,
}

pub(super) struct Writer {
    dir: PathBuf,
    prefix: String,
    snaplen: u32,
    /// 0 = no size limit.
    rotate_bytes: u64,
    rotate_age: Option<Duration>,
    queue: CaptureQueue,
    shared: Arc<WriterShared>,
    file: Option<PcapFile>,
    next_index: u32,
    /// Scratch buffer of one frame: headers plus datagram.
    frame: Vec<u8>,
    retry_at: Option<Instant>,
    last_flush: Instant,
    error_limit: RateLimit,
    drops_logged: u64,
    last_drop_log: Option<Instant>,
    report: WriterReport,
}

impl Writer {
    pub fn new(config: &RecordConfig, queue: CaptureQueue, shared: Arc<WriterShared>) -> Writer {
        Writer {
            dir: config.dir.clone(),
            prefix: config.prefix.clone(),
            snaplen: config.snaplen,
            rotate_bytes: config.rotate_bytes,
            rotate_age: (config.rotate_secs > 0).then(|| Duration::from_secs(config.rotate_secs)),
            queue,
            shared,
            file: None,
            next_index: 0,
            frame: Vec::with_capacity(config.snaplen as usize),
            retry_at: None,
            last_flush: Instant::now(),
            error_limit: RateLimit::default(),
            drops_logged: 0,
            last_drop_log: None,
            report: WriterReport::default(),
        }
    }

    /// Creates the first file and sends the outcome on `opened`, then records until the stop
    /// flag is set and the ring is empty. Returns the files written.
    pub fn run(mut self, opened: SyncSender<Result<(), RecordError>>) -> WriterReport {
        match PcapFile::create(&self.dir, &self.prefix, &mut self.next_index, self.snaplen) {
            Ok(file) => {
                self.set_file(file);
                // The receiver waits in `start`; if it is gone, recording goes on regardless.
                let _ = opened.send(Ok(()));
            }
            Err(error) => {
                let _ = opened.send(Err(error));
                return self.report;
            }
        }

        loop {
            // Read before draining: whatever the tap pushed before `finish` set the flag is in
            // the ring by the time the drain below finds it empty.
            let stopping = self.shared.stop.load(Ordering::Acquire);
            let mut handled = 0;
            while handled < BATCH {
                let Some(capture) = self.queue.pop() else { break };
                self.record(&capture);
                self.queue.recycle(capture.buffer);
                handled += 1;
            }
            self.log_drops(false);
            if handled == 0 {
                if stopping {
                    break;
                }
                self.on_idle();
                std::thread::sleep(IDLE_SLEEP);
            }
        }
        self.close_file();
        self.log_drops(true);
        self.report
    }

    fn counters(&self) -> &RecordCounters {
        &self.shared.counters
    }

    /// Appends one capture to the current file, rotating or creating the file first as needed.
    fn record(&mut self, capture: &Capture) {
        let record_len = PCAP_RECORD_HEADER_LEN + (FRAME_HEADER_LEN + capture.stored) as u64;
        if let Some(file) = &self.file {
            let too_big = self.rotate_bytes > 0 && file.packets() > 0 && file.len() + record_len > self.rotate_bytes;
            if too_big || self.is_too_old(file) {
                self.close_file();
            }
        }
        if self.file.is_none() {
            self.open_file();
        }
        let Some(file) = self.file.as_mut() else {
            self.shared.counters.lost.incr();
            return;
        };

        write_frame(&mut self.frame, capture.stored_bytes(), capture.datagram_len, capture.src, capture.dst);
        let orig_len = u32::try_from(FRAME_HEADER_LEN + capture.datagram_len.min(MAX_DATAGRAM_LEN)).unwrap_or(u32::MAX);
        if let Err(error) = file.push(capture.wall_ns, orig_len, &self.frame) {
            // pcap-file checks the record before it encodes anything, so the file is intact. It
            // rejects a time after 2106 (seconds past u32) and a frame longer than the snaplen,
            // which the tap's buffer size rules out.
            self.counters().lost.incr();
            self.on_error(&error, capture.src, capture.dst);
            return;
        }
        if capture.stored < capture.datagram_len {
            self.shared.counters.truncated.incr();
        }
        if file.pending_len() >= FLUSH_BYTES {
            self.flush_file();
        }
    }

    fn is_too_old(&self, file: &PcapFile) -> bool {
        file.packets() > 0 && self.rotate_age.is_some_and(|age| file.age() >= age)
    }

    /// Closes a file past its age limit and writes pending records once they are
    /// [`FLUSH_INTERVAL`] old, so an idle feed still reaches the disk.
    fn on_idle(&mut self) {
        let Some(file) = &self.file else { return };
        if self.is_too_old(file) {
            // The next file is created when the next packet arrives, so it is named after it.
            self.close_file();
            return;
        }
        if file.pending_len() > 0 && self.last_flush.elapsed() >= FLUSH_INTERVAL {
            self.flush_file();
        }
    }

    /// Creates the next file unless an error happened less than [`RETRY_INTERVAL`] ago.
    fn open_file(&mut self) {
        let now = Instant::now();
        if self.retry_at.is_some_and(|at| now < at) {
            return;
        }
        match PcapFile::create(&self.dir, &self.prefix, &mut self.next_index, self.snaplen) {
            Ok(file) => {
                self.retry_at = None;
                self.set_file(file);
            }
            Err(error) => {
                self.counters().write_errors.incr();
                self.retry_at = Some(now + RETRY_INTERVAL);
                self.log_error(&error, "recording paused for a second");
            }
        }
    }

    fn set_file(&mut self, file: PcapFile) {
        tracing::info!(file = %file.part_path().display(), "recording file created");
        self.set_current(Some(file.part_path().to_path_buf()));
        self.last_flush = Instant::now();
        self.file = Some(file);
    }

    fn set_current(&self, path: Option<PathBuf>) {
        let mut current = self.shared.current_file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *current = path;
    }

    /// Writes the pending records of the current file; abandons the file if that fails.
    fn flush_file(&mut self) {
        let Some(file) = self.file.as_mut() else { return };
        let pending_packets = file.pending_packets();
        self.last_flush = Instant::now();
        match file.flush() {
            Ok(flushed) => {
                self.counters().packets.add(flushed.packets);
                self.counters().bytes.add(flushed.bytes);
            }
            Err(error) => {
                self.counters().lost.add(pending_packets);
                self.abandon_file(&error);
            }
        }
    }

    /// Drops the current file after `error`, leaving it under its `.part` name.
    fn abandon_file(&mut self, error: &RecordError) {
        let Some(file) = self.file.take() else { return };
        self.counters().write_errors.incr();
        self.retry_at = Some(Instant::now() + RETRY_INTERVAL);
        let part = file.part_path().to_path_buf();
        drop(file);
        self.log_error(error, "the file keeps its .part name and recording pauses for a second");
        self.report.abandoned.push(part);
        self.set_current(None);
    }

    /// Flushes the current file, syncs it and renames it to its final name.
    fn close_file(&mut self) {
        self.flush_file();
        let Some(file) = self.file.take() else { return };
        let packets = file.packets();
        let bytes = file.len();
        self.set_current(None);
        match file.finish() {
            Ok(path) => {
                self.counters().files.incr();
                tracing::info!(file = %path.display(), packets, bytes, "recording file complete");
                self.report.files.push(path);
            }
            Err((part, error)) => {
                self.counters().write_errors.incr();
                self.log_error(&error, "the file keeps its .part name");
                self.report.abandoned.push(part);
            }
        }
    }

    fn on_error(&mut self, error: &RecordError, src: SocketAddrV4, dst: SocketAddrV4) {
        self.counters().write_errors.incr();
        let now = monotonic_ns();
        if let Some(suppressed) = self.error_limit.check(now, DEFAULT_PERIOD_NS) {
            tracing::error!(%error, %src, %dst, suppressed, "packet not recorded");
        }
    }

    fn log_error(&mut self, error: &RecordError, consequence: &str) {
        let now = monotonic_ns();
        if let Some(suppressed) = self.error_limit.check(now, DEFAULT_PERIOD_NS) {
            tracing::error!(%error, suppressed, "recording failed; {consequence}");
        }
    }

    /// Logs the datagrams the tap dropped since the last line, at most once per
    /// [`DROP_LOG_INTERVAL`] unless `last` is set.
    fn log_drops(&mut self, last: bool) {
        let dropped = self.counters().dropped.get();
        if dropped == self.drops_logged {
            return;
        }
        let now = Instant::now();
        if !last && self.last_drop_log.is_some_and(|at| now.duration_since(at) < DROP_LOG_INTERVAL) {
            return;
        }
        tracing::error!(
            dropped = dropped - self.drops_logged,
            total = dropped,
            "recording ring full: datagrams not recorded; raise record.ring_slots or use a faster disk"
        );
        self.drops_logged = dropped;
        self.last_drop_log = Some(now);
    }
}

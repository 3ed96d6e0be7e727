//! Recording of received MoldUDP64 datagrams to nanosecond pcap files.
//!
//! [`start`] returns a [`RecordTap`] for the thread that reads the socket and a [`Recorder`] for
//! the owner. The tap copies each datagram into a preallocated slot of a bounded ring and never
//! waits: when the ring is full, the datagram is not recorded and the `dropped` counter grows.
//! The writer thread logs such drops at most once a second and writes nothing in their place.
//! The receive path is never slowed by the disk, and every loss is counted.
//!
//! The writer thread wraps each datagram in synthesized Ethernet II, IPv4 and UDP headers with
//! its source and destination addresses and writes it as one record of a classic pcap file with
//! nanosecond timestamps (magic 0xa1b23c4d) and link type 1 (Ethernet). The record's timestamp
//! is the receive time. tcpdump, Wireshark, `mdfh inspect` and `mdfh replay` read the files.
//!
//! Files are named `{dir}/{prefix}-{UTC yyyymmddThhmmss}-{n:04}.pcap`, with the creation time
//! and a counter, so their names sort in recording order. A file carries a `.part` suffix until
//! it is complete, synced and renamed, so a crash or a disk error never leaves a file that looks
//! complete. A new file starts when the next record would take the current one past
//! `rotate_bytes`, and when a file with packets is `rotate_secs` old.
//!
//! Counters (see [`RecordStats`]): every datagram offered to the tap ends up in exactly one of
//! `packets` (written to a file), `dropped` (ring full) or `lost` (an I/O error kept it from a
//! file), once the writer has flushed it.

#![forbid(unsafe_code)]

mod clock;
mod file;
mod frame;
mod tap;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::counters::Counter;

pub use clock::{system_time_ns, utc_compact, WallClock};
pub use file::{PART_SUFFIX, PCAP_HEADER_LEN};
pub use frame::{FRAME_HEADER_LEN, MAX_DATAGRAM_LEN};
pub use tap::RecordTap;

use writer::{Writer, WriterShared};

/// Smallest snaplen: the synthesized headers plus a MoldUDP64 header (20 bytes).
pub const MIN_SNAPLEN: u32 = FRAME_HEADER_LEN as u32 + 20;
/// Largest snaplen, the limit of libpcap and tcpdump (262,144 bytes).
pub const MAX_SNAPLEN: u32 = 262_144;
/// Largest `ring_slots`. Each slot has a buffer of `snaplen - 42` bytes.
pub const MAX_RING_SLOTS: usize = 1 << 20;

/// The `[record]` section of the `mdfh run` configuration, and the settings of `mdfh record`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordConfig {
    /// Record every datagram stage 1 receives (`mdfh run` only).
    pub enabled: bool,
    /// Folder of the pcap files; created when missing.
    pub dir: PathBuf,
    /// Start of every file name.
    pub prefix: String,
    /// Size of a file in bytes after which the next record starts a new file; 0 = no limit. A
    /// file contains at least one record, so a record larger than this makes a larger file.
    pub rotate_bytes: u64,
    /// Age of a file in seconds after which the next record starts a new file; 0 = no limit.
    pub rotate_secs: u64,
    /// Capacity in datagrams of the ring between the receive thread and the writer (rounded up
    /// to a power of two). Memory: `ring_slots * (snaplen - 42)` bytes, allocated at start.
    pub ring_slots: usize,
    /// Max bytes of one recorded frame, synthesized headers (42 bytes) included. A longer
    /// datagram is recorded truncated, with its full length in the record, and counted.
    pub snaplen: u32,
}

impl Default for RecordConfig {
    fn default() -> Self {
        RecordConfig {
            enabled: false,
            dir: PathBuf::from("recordings"),
            prefix: "mdfh".to_string(),
            rotate_bytes: 1 << 30,
            rotate_secs: 3600,
            ring_slots: 8192,
            snaplen: 2048,
        }
    }
}

impl RecordConfig {
    /// Checks the settings that [`start`] cannot work with.
    pub fn validate(&self) -> Result<(), RecordError> {
        if !(MIN_SNAPLEN..=MAX_SNAPLEN).contains(&self.snaplen) {
            return Err(RecordError::InvalidConfig {
                key: "snaplen",
                reason: format!("{} is outside {MIN_SNAPLEN}..={MAX_SNAPLEN} bytes", self.snaplen),
            });
        }
        if !(1..=MAX_RING_SLOTS).contains(&self.ring_slots) {
            return Err(RecordError::InvalidConfig {
                key: "ring_slots",
                reason: format!("{} is outside 1..={MAX_RING_SLOTS}", self.ring_slots),
            });
        }
        let bad_prefix = self.prefix.is_empty()
            || self.prefix == "."
            || self.prefix == ".."
            || self.prefix.contains(['/', '\\', '\0']);
        if bad_prefix {
            return Err(RecordError::InvalidConfig {
                key: "prefix",
                reason: format!("{:?} must be a non-empty file name without path separators", self.prefix),
            });
        }
        Ok(())
    }
}

/// Errors of the recorder. Each names the file or setting involved.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("invalid record.{key}: {reason}")]
    InvalidConfig { key: &'static str, reason: String },

    #[error("failed to create the recording folder {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: std::io::Error },

    #[error("failed to create the recording file {}: {source}", path.display())]
    CreateFile { path: PathBuf, source: std::io::Error },

    #[error("failed to write the recording file {} at byte offset {offset}: {source}", path.display())]
    Write { path: PathBuf, offset: u64, source: std::io::Error },

    #[error("failed to sync the recording file {} to disk: {source}", path.display())]
    Sync { path: PathBuf, source: std::io::Error },

    #[error("failed to rename the recording file {} to {}: {source}", from.display(), to.display())]
    Rename { from: PathBuf, to: PathBuf, source: std::io::Error },

    #[error("no free file name for prefix {prefix:?} in {} after {attempts} attempts", dir.display())]
    NoFreeName { dir: PathBuf, prefix: String, attempts: u32 },
}

/// Counters of a recorder. `dropped` is written by the tap, the others by the writer thread;
/// any thread may read them.
#[derive(Debug, Default, Serialize)]
pub struct RecordCounters {
    /// Datagrams written to a file (counted when they reach the file).
    pub packets: Counter,
    /// Bytes written to files, pcap headers included.
    pub bytes: Counter,
    /// Files completed and renamed to their final name.
    pub files: Counter,
    /// Datagrams not recorded because the ring was full.
    pub dropped: Counter,
    /// Datagrams recorded truncated to the snaplen; also counted in `packets`.
    pub truncated: Counter,
    /// I/O errors: file creation, write, sync, rename.
    pub write_errors: Counter,
    /// Datagrams not recorded because of an I/O error.
    pub lost: Counter,
}

/// A snapshot of a recorder's counters and current file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecordStats {
    pub packets: u64,
    pub bytes: u64,
    pub files: u64,
    pub dropped: u64,
    pub truncated: u64,
    pub write_errors: u64,
    pub lost: u64,
    /// The `.part` path of the file being written, if any.
    pub current_file: Option<PathBuf>,
}

/// The files a recorder wrote and its final counters, returned by [`Recorder::finish`].
#[derive(Debug, Clone, Default)]
pub struct RecordSummary {
    /// Complete files, in recording order.
    pub files: Vec<PathBuf>,
    /// Files left under their `.part` name after an I/O error; their tail may be torn.
    pub abandoned: Vec<PathBuf>,
    pub stats: RecordStats,
}

/// The owner's handle on the writer thread. Dropping it without [`Recorder::finish`] still
/// stops the thread and completes the current file.
pub struct Recorder {
    shared: Arc<WriterShared>,
    thread: Option<JoinHandle<writer::WriterReport>>,
}

/// Creates `config.dir` and the first file, and spawns the writer thread. Returns the tap for
/// the receive thread and the recorder handle.
pub fn start(config: &RecordConfig) -> anyhow::Result<(RecordTap, Recorder)> {
    config.validate()?;
    std::fs::create_dir_all(&config.dir).map_err(|source| RecordError::CreateDir {
        path: config.dir.clone(),
        source,
    })?;

    let shared = Arc::new(WriterShared::default());
    let buffer_bytes = config.snaplen as usize - FRAME_HEADER_LEN;
    let (tap, queue) = tap::channel(config.ring_slots, buffer_bytes, shared.counters.clone());
    let (opened_sender, opened) = std::sync::mpsc::sync_channel(1);
    let writer_config = config.clone();
    let writer_shared = shared.clone();
    // The writer is built on its thread because the file it will hold is not `Send`.
    let thread = std::thread::Builder::new()
        .name("mdfh-record".into())
        .spawn(move || Writer::new(&writer_config, queue, writer_shared).run(opened_sender))
        .context("failed to spawn the recording thread")?;
    let mut recorder = Recorder {
        shared,
        thread: Some(thread),
    };

    match opened.recv() {
        Ok(Ok(())) => Ok((tap, recorder)),
        Ok(Err(error)) => {
            recorder.stop_and_join();
            Err(error.into())
        }
        Err(_) => {
            recorder.stop_and_join();
            anyhow::bail!("the recording thread exited before it created its first file")
        }
    }
}

impl Recorder {
    /// Returns the counters, for a stats endpoint.
    pub fn counters(&self) -> Arc<RecordCounters> {
        self.shared.counters.clone()
    }

    /// Returns a snapshot of the counters and the current file.
    pub fn stats(&self) -> RecordStats {
        let counters = &self.shared.counters;
        let current_file = self
            .shared
            .current_file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        RecordStats {
            packets: counters.packets.get(),
            bytes: counters.bytes.get(),
            files: counters.files.get(),
            dropped: counters.dropped.get(),
            truncated: counters.truncated.get(),
            write_errors: counters.write_errors.get(),
            lost: counters.lost.get(),
            current_file,
        }
    }

    /// Stops the writer thread once it has written everything the tap offered so far, closes and
    /// renames the current file, and returns what was written. Call it after the receive thread
    /// has stopped offering: datagrams offered later are neither written nor counted.
    pub fn finish(mut self) -> anyhow::Result<RecordSummary> {
        let report = self.stop_and_join().context("the recording thread panicked")?;
        Ok(RecordSummary {
            files: report.files,
            abandoned: report.abandoned,
            stats: self.stats(),
        })
    }

    /// Sets the stop flag and waits for the writer thread; `None` if it panicked or was joined.
    fn stop_and_join(&mut self) -> Option<writer::WriterReport> {
        self.shared.stop.store(true, Ordering::Release);
        self.thread.take()?.join().ok()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_and_recorder_are_send() {
        // Stage 1 owns the tap on its own thread, and the recorder may move to another.
        fn assert_send<T: Send>() {}
        assert_send::<RecordTap>();
        assert_send::<Recorder>();
    }

    #[test]
    fn defaults_match_documentation() {
        let config = RecordConfig::default();
        assert!(!config.enabled);
        assert_eq!(config.dir, PathBuf::from("recordings"));
        assert_eq!(config.prefix, "mdfh");
        assert_eq!(config.rotate_bytes, 1 << 30);
        assert_eq!(config.rotate_secs, 3600);
        assert_eq!(config.ring_slots, 8192);
        assert_eq!(config.snaplen, 2048);
        config.validate().unwrap();
    }

    #[test]
    fn toml_section_parses_and_rejects_unknown_keys() {
        let config: RecordConfig = toml::from_str("enabled = true\ndir = \"/tmp/x\"\nrotate_secs = 0\n").unwrap();
        assert!(config.enabled);
        assert_eq!(config.dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.rotate_secs, 0);
        assert_eq!(config.snaplen, 2048, "unset keys keep their default");
        let error = toml::from_str::<RecordConfig>("rotate_minutes = 5\n").unwrap_err();
        assert!(error.to_string().contains("rotate_minutes"), "{error}");
    }

    #[test]
    fn invalid_settings_are_rejected() {
        let cases = [
            (RecordConfig { snaplen: MIN_SNAPLEN - 1, ..RecordConfig::default() }, "snaplen"),
            (RecordConfig { snaplen: MAX_SNAPLEN + 1, ..RecordConfig::default() }, "snaplen"),
            (RecordConfig { ring_slots: 0, ..RecordConfig::default() }, "ring_slots"),
            (RecordConfig { prefix: String::new(), ..RecordConfig::default() }, "prefix"),
            (RecordConfig { prefix: "a/b".into(), ..RecordConfig::default() }, "prefix"),
            (RecordConfig { prefix: "..".into(), ..RecordConfig::default() }, "prefix"),
        ];
        for (config, key) in cases {
            let error = config.validate().unwrap_err();
            assert!(error.to_string().contains(&format!("record.{key}")), "{error}");
        }
    }
}

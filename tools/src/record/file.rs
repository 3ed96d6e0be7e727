//! One pcap file being recorded: created as `NAME.pcap.part`, renamed to `NAME.pcap` once
//! complete, so a file without the suffix is always a whole capture.
//!
//! `pcap_file::PcapWriter` encodes the file header and the records. It gives no access to its
//! writer before the end, so it writes into a [`PendingBytes`] buffer that this module shares
//! with it. This module moves the buffer to the file in chunks: on a size threshold, when the
//! writer thread is idle, and at close. Each chunk holds whole records, so after a successful write the counters
//! know exactly which packets reached the file.

use std::cell::Cell;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};

use super::clock::utc_compact;
use super::RecordError;

/// Bytes of the pcap file header.
pub const PCAP_HEADER_LEN: u64 = 24;
/// Bytes of a pcap record header: seconds, nanoseconds, captured length, original length.
pub const PCAP_RECORD_HEADER_LEN: u64 = 16;
/// Suffix of a file still being written.
pub const PART_SUFFIX: &str = ".part";
/// File names tried for one new file before giving up, when earlier names are taken.
const NAME_ATTEMPTS: u32 = 10_000;

/// Bytes encoded by `PcapWriter` and not yet written to the file. One handle lives in the
/// `PcapWriter`, one in the [`PcapFile`]; both are used by the writer thread only.
#[derive(Clone, Default)]
struct PendingBytes(Rc<Cell<Vec<u8>>>);

impl PendingBytes {
    /// Runs `f` on the buffer. `Cell::take` moves the vector out and back, so no borrow can
    /// conflict and nothing is allocated.
    fn with<R>(&self, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        let mut bytes = self.0.take();
        let result = f(&mut bytes);
        self.0.set(bytes);
        result
    }
}

impl Write for PendingBytes {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.with(|bytes| bytes.extend_from_slice(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Packets and bytes that a successful [`PcapFile::flush`] moved to the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flushed {
    pub packets: u64,
    pub bytes: u64,
}

/// A pcap file open for writing under its `.part` name.
pub struct PcapFile {
    final_path: PathBuf,
    part_path: PathBuf,
    file: File,
    writer: PcapWriter<PendingBytes>,
    pending: PendingBytes,
    /// Packets encoded into `pending` and not yet written to the file.
    pending_packets: u64,
    /// Bytes already written to the file.
    written_bytes: u64,
    /// Packets in the file and in `pending`.
    packets: u64,
    opened: Instant,
}

impl PcapFile {
    /// Creates `{dir}/{prefix}-{UTC yyyymmddThhmmss}-{index:04}.pcap.part`, with the first index
    /// from `*next_index` on whose final and `.part` names are both free, and encodes the pcap
    /// header: nanosecond timestamps (magic 0xa1b23c4d), link type 1 (Ethernet), `snaplen`, in
    /// this machine's byte order. Advances `*next_index` past the index used.
    pub fn create(dir: &Path, prefix: &str, next_index: &mut u32, snaplen: u32) -> Result<PcapFile, RecordError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        PcapFile::create_at(dir, prefix, next_index, snaplen, now.as_secs())
    }

    /// Creates a file as [`PcapFile::create`] does, with `unix_secs` as the time in its name.
    fn create_at(dir: &Path, prefix: &str, next_index: &mut u32, snaplen: u32, unix_secs: u64) -> Result<PcapFile, RecordError> {
        let stamp = utc_compact(unix_secs);
        for _ in 0..NAME_ATTEMPTS {
            let index = *next_index;
            *next_index = next_index.wrapping_add(1);
            let final_path = dir.join(format!("{prefix}-{stamp}-{index:04}.pcap"));
            let part_path = part_path(&final_path);
            if final_path.exists() {
                continue;
            }
            let file = match OpenOptions::new().write(true).create_new(true).open(&part_path) {
                Ok(file) => file,
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(RecordError::CreateFile { path: part_path, source }),
            };
            return PcapFile::start(final_path, part_path, file, snaplen);
        }
        Err(RecordError::NoFreeName {
            dir: dir.to_path_buf(),
            prefix: prefix.to_string(),
            attempts: NAME_ATTEMPTS,
        })
    }

    fn start(final_path: PathBuf, part_path: PathBuf, file: File, snaplen: u32) -> Result<PcapFile, RecordError> {
        let header = PcapHeader {
            snaplen,
            datalink: DataLink::ETHERNET,
            ts_resolution: TsResolution::NanoSecond,
            endianness: Endianness::native(),
            ..PcapHeader::default()
        };
        let pending = PendingBytes::default();
        let writer = PcapWriter::with_header(pending.clone(), header).map_err(|error| RecordError::Write {
            path: part_path.clone(),
            offset: 0,
            source: pcap_io_error(error),
        })?;
        Ok(PcapFile {
            final_path,
            part_path,
            file,
            writer,
            pending,
            pending_packets: 0,
            written_bytes: 0,
            packets: 0,
            opened: Instant::now(),
        })
    }

    /// Encodes one record: `frame`, captured at `ts_ns` nanoseconds since the Unix epoch, whose
    /// frame on the wire was `orig_len` bytes. The bytes reach the file at the next flush.
    pub fn push(&mut self, ts_ns: u64, orig_len: u32, frame: &[u8]) -> Result<(), RecordError> {
        let packet = PcapPacket::new(Duration::from_nanos(ts_ns), orig_len, frame);
        self.writer.write_packet(&packet).map_err(|error| RecordError::Write {
            path: self.part_path.clone(),
            offset: self.len(),
            source: pcap_io_error(error),
        })?;
        self.pending_packets += 1;
        self.packets += 1;
        Ok(())
    }

    /// Writes the encoded records to the file. On failure the file contains an unknown part of
    /// them, and the caller should abandon it. The error names the offset where writing stopped.
    pub fn flush(&mut self) -> Result<Flushed, RecordError> {
        let file = &mut self.file;
        let result = self.pending.with(|bytes| {
            let result = write_all_counted(file, bytes);
            bytes.clear();
            result
        });
        let packets = std::mem::take(&mut self.pending_packets);
        match result {
            Ok(bytes) => {
                self.written_bytes += bytes;
                Ok(Flushed { packets, bytes })
            }
            Err((written, source)) => Err(RecordError::Write {
                path: self.part_path.clone(),
                offset: self.written_bytes + written,
                source,
            }),
        }
    }

    /// Syncs the file to disk and renames it to its final name, which it returns. Records not
    /// yet flushed are left out, so call [`PcapFile::flush`] first. On failure the file keeps
    /// its `.part` name, which the error carries.
    pub fn finish(self) -> Result<PathBuf, (PathBuf, RecordError)> {
        if let Err(source) = self.file.sync_all() {
            let error = RecordError::Sync { path: self.part_path.clone(), source };
            return Err((self.part_path, error));
        }
        if let Err(source) = std::fs::rename(&self.part_path, &self.final_path) {
            let error = RecordError::Rename {
                from: self.part_path.clone(),
                to: self.final_path.clone(),
                source,
            };
            return Err((self.part_path, error));
        }
        Ok(self.final_path)
    }

    /// Returns the file size once every encoded record is written.
    pub fn len(&self) -> u64 {
        self.written_bytes + self.pending.with(|bytes| bytes.len() as u64)
    }

    /// Returns the bytes encoded and not yet written to the file.
    pub fn pending_len(&self) -> usize {
        self.pending.with(|bytes| bytes.len())
    }

    /// Returns the packets recorded in this file, written or pending.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Returns the packets encoded and not yet written to the file.
    pub fn pending_packets(&self) -> u64 {
        self.pending_packets
    }

    /// Returns the time since the file was created.
    pub fn age(&self) -> Duration {
        self.opened.elapsed()
    }

    /// Returns the name the file has while it is written.
    pub fn part_path(&self) -> &Path {
        &self.part_path
    }
}

/// Writes all of `bytes` to `file` and returns their count, or the bytes written before the
/// error and the error.
fn write_all_counted(file: &mut File, bytes: &[u8]) -> Result<u64, (u64, io::Error)> {
    let mut written = 0;
    while let Some(rest) = bytes.get(written..).filter(|rest| !rest.is_empty()) {
        match file.write(rest) {
            Ok(0) => return Err((written as u64, io::Error::from(io::ErrorKind::WriteZero))),
            Ok(n) => written += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err((written as u64, error)),
        }
    }
    Ok(written as u64)
}

/// Returns `path` with [`PART_SUFFIX`] appended.
pub fn part_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(PART_SUFFIX);
    PathBuf::from(name)
}

/// Converts an error of the `pcap-file` crate into an I/O error.
fn pcap_io_error(error: pcap_file::PcapError) -> io::Error {
    match error {
        pcap_file::PcapError::IoError(error) => error,
        other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mdfh-record-file-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn file_is_part_until_closed() {
        let dir = temp_dir("part");
        let mut next_index = 0;
        let mut file = PcapFile::create(&dir, "test", &mut next_index, 2048).unwrap();
        assert_eq!(next_index, 1);
        let part = file.part_path().to_path_buf();
        assert!(part.to_string_lossy().ends_with(".pcap.part"), "{}", part.display());
        assert!(part.exists());

        file.push(1_692_711_000_000_059_094, 60, &[0x11; 60]).unwrap();
        assert_eq!(file.len(), PCAP_HEADER_LEN + PCAP_RECORD_HEADER_LEN + 60);
        assert_eq!(file.pending_packets(), 1);
        assert_eq!(file.flush().unwrap(), Flushed { packets: 1, bytes: 24 + 16 + 60 });
        assert_eq!(file.pending_len(), 0);
        let path = file.finish().unwrap();
        assert!(!part.exists(), "the .part file is still there");

        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 100);
        assert_eq!(u32::from_ne_bytes(bytes[0..4].try_into().unwrap()), 0xa1b2_3c4d, "nanosecond magic");
        assert_eq!(u32::from_ne_bytes(bytes[16..20].try_into().unwrap()), 2048, "snaplen");
        assert_eq!(u32::from_ne_bytes(bytes[20..24].try_into().unwrap()), 1, "link type Ethernet");
        assert_eq!(u32::from_ne_bytes(bytes[24..28].try_into().unwrap()), 1_692_711_000, "seconds");
        assert_eq!(u32::from_ne_bytes(bytes[28..32].try_into().unwrap()), 59_094, "nanoseconds");
        assert_eq!(u32::from_ne_bytes(bytes[32..36].try_into().unwrap()), 60, "captured length");
        assert_eq!(u32::from_ne_bytes(bytes[36..40].try_into().unwrap()), 60, "original length");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn taken_names_are_skipped() {
        let dir = temp_dir("names");
        let second = 1_692_711_000;
        let mut next_index = 0;
        let first = PcapFile::create_at(&dir, "test", &mut next_index, 2048, second).unwrap();
        assert!(first.part_path().ends_with("test-20230822T133000-0000.pcap.part"), "{}", first.part_path().display());

        // Index 1 is still being written by another recorder, and index 2 is complete.
        let mut other_index = 1;
        let _other = PcapFile::create_at(&dir, "test", &mut other_index, 2048, second).unwrap();
        std::fs::write(dir.join("test-20230822T133000-0002.pcap"), b"").unwrap();

        let third = PcapFile::create_at(&dir, "test", &mut next_index, 2048, second).unwrap();
        assert!(third.part_path().ends_with("test-20230822T133000-0003.pcap.part"), "{}", third.part_path().display());
        assert_eq!(next_index, 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! The recorder through its library API. Datagrams offered to the tap come back from the pcap
//! files, read by the feed crate's capture reader, with their bytes, times and addresses. Files
//! rotate by size and age, and the file being written has a `.part` name.

mod support;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};

use mdfh::record::{self, RecordConfig, RecordTap, FRAME_HEADER_LEN, PART_SUFFIX, PCAP_HEADER_LEN};
use support::{temp_dir, wait_until, WAIT};

const SRC: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 7), 40_001);
const DST: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(233, 54, 12, 111), 26_477);
/// A receive time in 2023, in nanoseconds since the Unix epoch.
const BASE_NS: u64 = 1_692_711_000_000_059_094;

fn config(dir: &Path) -> RecordConfig {
    RecordConfig {
        enabled: true,
        dir: dir.to_path_buf(),
        prefix: "test".to_string(),
        ..RecordConfig::default()
    }
}

/// Returns datagram `i` of a test: `len` bytes that encode `i`.
fn datagram(i: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![(i % 251) as u8; len];
    if let Some(head) = bytes.get_mut(..8) {
        head.copy_from_slice(&i.to_be_bytes());
    }
    bytes
}

fn offer_all(tap: &mut RecordTap, count: u64, len: usize) {
    for i in 0..count {
        tap.offer(&datagram(i, len), BASE_NS + i * 1_000, SRC, DST);
    }
}

/// One record as the feed crate's capture reader returns it.
#[derive(Debug, PartialEq, Eq)]
struct Record {
    ts_ns: u64,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload: Vec<u8>,
}

/// Reads every record of a recorded file; a record the reader rejects is an `Err` with its text.
fn read_records(path: &Path) -> Vec<Result<Record, String>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let datagrams = mdfh_feed::pcap::datagrams(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    datagrams
        .map(|item| {
            item.map(|d| Record {
                ts_ns: d.ts_ns,
                src: d.src,
                dst: d.dst,
                payload: d.payload.to_vec(),
            })
            .map_err(|e| e.to_string())
        })
        .collect()
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn records_read_back_exactly() {
    let dir = temp_dir("record_read_back");
    let (mut tap, recorder) = record::start(&config(&dir)).unwrap();
    offer_all(&mut tap, 1_000, 200);
    let summary = recorder.finish().unwrap();

    assert_eq!(summary.files.len(), 1, "{summary:?}");
    assert!(summary.abandoned.is_empty(), "{summary:?}");
    assert_eq!(summary.stats.packets, 1_000);
    assert_eq!(summary.stats.dropped, 0);
    assert_eq!(summary.stats.lost, 0);
    assert_eq!(summary.stats.files, 1);
    assert_eq!(summary.stats.current_file, None);
    let file_len = std::fs::metadata(&summary.files[0]).unwrap().len();
    assert_eq!(file_len, PCAP_HEADER_LEN + 1_000 * (16 + FRAME_HEADER_LEN as u64 + 200));
    assert_eq!(summary.stats.bytes, file_len);

    let records = read_records(&summary.files[0]);
    assert_eq!(records.len(), 1_000);
    for (i, record) in (0u64..).zip(records) {
        let expected = Record {
            ts_ns: BASE_NS + i * 1_000,
            src: SRC,
            dst: DST,
            payload: datagram(i, 200),
        };
        assert_eq!(record, Ok(expected), "record {i}");
    }
}

#[test]
fn part_file_renamed_at_finish() {
    let dir = temp_dir("record_part_file");
    let (mut tap, recorder) = record::start(&config(&dir)).unwrap();
    let current = recorder.stats().current_file.expect("no current file after start");
    assert!(current.to_string_lossy().ends_with(".pcap.part"), "{}", current.display());
    assert!(current.exists(), "{} does not exist while recording", current.display());
    assert_eq!(file_names(&dir).len(), 1);

    offer_all(&mut tap, 3, 100);
    let summary = recorder.finish().unwrap();
    assert!(!current.exists(), "{} still exists after finish", current.display());
    let expected = PathBuf::from(current.to_string_lossy().trim_end_matches(PART_SUFFIX));
    assert_eq!(summary.files, vec![expected]);
    assert_eq!(read_records(&summary.files[0]).len(), 3);
}

#[test]
fn size_rotation_splits_in_order() {
    let dir = temp_dir("record_size_rotation");
    // Room for the file header and three records of 100-byte datagrams.
    let record_len = 16 + FRAME_HEADER_LEN as u64 + 100;
    let config = RecordConfig {
        rotate_bytes: PCAP_HEADER_LEN + 3 * record_len,
        ..config(&dir)
    };
    let (mut tap, recorder) = record::start(&config).unwrap();
    offer_all(&mut tap, 10, 100);
    let summary = recorder.finish().unwrap();

    let per_file: Vec<usize> = summary.files.iter().map(|f| read_records(f).len()).collect();
    assert_eq!(per_file, vec![3, 3, 3, 1]);
    assert_eq!(summary.stats.files, 4);
    let mut sorted = summary.files.clone();
    sorted.sort();
    assert_eq!(sorted, summary.files, "file names do not sort in recording order");

    let payloads: Vec<Vec<u8>> = summary
        .files
        .iter()
        .flat_map(|f| read_records(f))
        .map(|r| r.unwrap().payload)
        .collect();
    let expected: Vec<Vec<u8>> = (0..10).map(|i| datagram(i, 100)).collect();
    assert_eq!(payloads, expected);
}

#[test]
fn age_rotation_closes_idle_file() {
    let dir = temp_dir("record_age_rotation");
    let config = RecordConfig {
        rotate_secs: 1,
        ..config(&dir)
    };
    let (mut tap, recorder) = record::start(&config).unwrap();
    offer_all(&mut tap, 2, 100);
    // The writer closes a file with packets once it is a second old, even with no new packet.
    wait_until(WAIT, "the first file to be closed by age", || (recorder.stats().files == 1).then_some(()));
    assert_eq!(recorder.stats().current_file, None);

    tap.offer(b"after the rotation", BASE_NS + 2_000_000_000, SRC, DST);
    let summary = recorder.finish().unwrap();
    assert_eq!(summary.files.len(), 2, "{summary:?}");
    assert_eq!(read_records(&summary.files[0]).len(), 2);
    let second = read_records(&summary.files[1]);
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].as_ref().map(|r| r.payload.as_slice()), Ok(&b"after the rotation"[..]));
}

#[test]
fn long_datagram_truncated_to_snaplen() {
    let dir = temp_dir("record_truncated");
    let config = RecordConfig {
        snaplen: 128,
        ..config(&dir)
    };
    let (mut tap, recorder) = record::start(&config).unwrap();
    tap.offer(&datagram(0, 500), BASE_NS, SRC, DST);
    tap.offer(&datagram(1, 50), BASE_NS + 1, SRC, DST);
    let summary = recorder.finish().unwrap();
    assert_eq!(summary.stats.packets, 2);
    assert_eq!(summary.stats.truncated, 1);

    let path = &summary.files[0];
    let bytes = std::fs::read(path).unwrap();
    let field = |at: usize| u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!(field(16), 128, "snaplen in the file header");
    assert_eq!(field(24 + 8), 128, "captured length of the long datagram");
    assert_eq!(field(24 + 12), FRAME_HEADER_LEN as u32 + 500, "original length of the long datagram");

    // The feed crate's reader rejects the truncated record by its offset and reads on.
    let records = read_records(path);
    assert_eq!(records.len(), 2);
    let error = records[0].as_ref().unwrap_err();
    assert!(error.contains("byte offset 24"), "{error}");
    assert_eq!(records[1].as_ref().map(|r| r.payload.clone()), Ok(datagram(1, 50)));
}

#[test]
fn unwritable_dir_fails_start() {
    let dir = temp_dir("record_unwritable");
    let blocker = dir.join("not-a-folder");
    std::fs::write(&blocker, b"a file where the folder should be").unwrap();
    let target = blocker.join("recordings");
    let error = match record::start(&config(&target)) {
        Ok(_) => panic!("start succeeded in {}", target.display()),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains("failed to create the recording folder"), "{error}");
    assert!(error.contains(&target.display().to_string()), "{error}");
}

#[test]
fn finish_without_packets_keeps_empty_capture() {
    let dir = temp_dir("record_empty");
    let (_tap, recorder) = record::start(&config(&dir)).unwrap();
    let summary = recorder.finish().unwrap();
    assert_eq!(summary.files.len(), 1);
    assert_eq!(std::fs::metadata(&summary.files[0]).unwrap().len(), PCAP_HEADER_LEN);
    assert!(read_records(&summary.files[0]).is_empty());
}

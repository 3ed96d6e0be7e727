//! Bad input to `mdfh replay`: truncated and damaged files, frames that are not UDP over IPv4,
//! an unsupported link type, files that are not feeds, and start points past the end. Each case
//! checks the exit status, the summary line and the error that names the file and byte offset.

mod replay_support;
mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use replay_support::run_replay;
use support::{convert_lobster_sample, lobster_message_csv, path_str, pcap, temp_dir};

/// Byte offset of the link type in the pcap global header.
const LINK_TYPE_OFFSET: usize = 20;
/// Length of the pcap global header.
const PCAP_HEADER_LEN: usize = 24;
/// Byte offset of the second record of `Multiple.Packets.pcap`: the header and one 87-byte frame.
const SECOND_RECORD_OFFSET: usize = 127;

fn multiple_packets() -> Vec<u8> {
    let path = pcap("Nasdaq.Equities.TotalView.Itch.v5.0/Multiple.Packets.pcap");
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

/// Returns a pcap record (nanosecond timestamps, little-endian) around an Ethernet `frame`.
fn pcap_record(frame: &[u8]) -> Vec<u8> {
    let len = u32::try_from(frame.len()).expect("test frames are small");
    let mut record = Vec::new();
    record.extend_from_slice(&1_692_711_000u32.to_le_bytes());
    record.extend_from_slice(&0u32.to_le_bytes());
    record.extend_from_slice(&len.to_le_bytes());
    record.extend_from_slice(&len.to_le_bytes());
    record.extend_from_slice(frame);
    record
}

/// Returns an Ethernet frame that carries an ARP request: not IPv4.
fn arp_frame() -> Vec<u8> {
    let mut frame = vec![0xff; 6];
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    frame.extend_from_slice(&[0x08, 0x06]);
    // Ethernet, IPv4, hardware and protocol address lengths, request; then the addresses.
    frame.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 127, 0, 0, 2]);
    frame
}

/// Returns an Ethernet frame that carries a TCP segment over IPv4: IPv4 but not UDP.
fn tcp_frame() -> Vec<u8> {
    let mut frame = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
    // IPv4: version 4, IHL 5, total length 40, no fragmentation, TTL 64, protocol 6 (TCP).
    frame.extend_from_slice(&[0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 127, 0, 0, 1, 127, 0, 0, 2]);
    // TCP: ports 1000 and 2000, data offset 5 words, SYN.
    frame.extend_from_slice(&[0x03, 0xe8, 0x07, 0xd0, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    frame
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_success(output: &Output) {
    assert!(output.status.success(), "mdfh replay exited with {}; stderr:\n{}", output.status, stderr(output));
}

fn assert_failure(output: &Output) {
    assert_eq!(output.status.code(), Some(1), "mdfh replay should fail; stderr:\n{}", stderr(output));
}

fn assert_contains(text: &str, part: &str) {
    assert!(text.contains(part), "expected {part:?} in:\n{text}");
}

#[test]
fn truncated_pcap_replays_what_it_can() {
    let dir = temp_dir("replay_truncated_pcap");
    let bytes = multiple_packets();
    let file = write(&dir, "truncated.pcap", &bytes[..1000]);

    let output = run_replay(&dir, &[path_str(&file), "--speed", "max", "--hold", "0"]);

    assert_success(&output);
    assert_contains(&stderr(&output), &format!("capture record at byte offset {SECOND_RECORD_OFFSET} runs past the end of the file"));
    assert_contains(&stderr(&output), path_str(&file));
    assert_contains(
        &stdout(&output),
        &format!(
            "mdfh: replay: 1 messages in 1 packets from 1 file(s); end of the files; {}: 1 frames, 1 UDP datagrams, skipped 0 non-IPv4, 0 non-UDP, 0 fragments, 0 on unsupported links, 1 errors",
            file.display()
        ),
    );
}

#[test]
fn non_udp_frames_are_skipped_and_counted() {
    let dir = temp_dir("replay_non_udp");
    let original = multiple_packets();
    let mut bytes = original[..PCAP_HEADER_LEN].to_vec();
    bytes.extend(pcap_record(&arp_frame()));
    bytes.extend(pcap_record(&tcp_frame()));
    bytes.extend_from_slice(&original[PCAP_HEADER_LEN..]);
    let file = write(&dir, "mixed.pcap", &bytes);

    let output = run_replay(&dir, &[path_str(&file), "--speed", "max", "--hold", "0"]);

    assert_success(&output);
    assert_contains(
        &stdout(&output),
        &format!(
            "mdfh: replay: 39 messages in 2 packets from 1 file(s); end of the files; {}: 4 frames, 2 UDP datagrams, skipped 1 non-IPv4, 1 non-UDP, 0 fragments, 0 on unsupported links, 0 errors",
            file.display()
        ),
    );
}

#[test]
fn capture_without_udp_is_an_error() {
    let dir = temp_dir("replay_no_udp");
    let mut bytes = multiple_packets()[..PCAP_HEADER_LEN].to_vec();
    bytes.extend(pcap_record(&arp_frame()));
    let file = write(&dir, "arp.pcap", &bytes);

    let output = run_replay(&dir, &[path_str(&file), "--speed", "max", "--hold", "0"]);

    assert_failure(&output);
    assert_contains(&stderr(&output), "mdfh: error: no ITCH message could be read from the files");
    assert_contains(&stdout(&output), &format!("{}: 1 frames, 0 UDP datagrams, skipped 1 non-IPv4", file.display()));
}

#[test]
fn unknown_link_type_is_rejected() {
    let dir = temp_dir("replay_link_type");
    let mut bytes = multiple_packets();
    // 147 is LINKTYPE_USER0, which the reader does not support.
    bytes[LINK_TYPE_OFFSET..LINK_TYPE_OFFSET + 4].copy_from_slice(&147u32.to_le_bytes());
    let bad = write(&dir, "user0.pcap", &bytes);

    let alone = run_replay(&dir, &[path_str(&bad), "--speed", "max", "--hold", "0"]);
    assert_failure(&alone);
    assert_contains(
        &stderr(&alone),
        &format!("no file can be replayed: cannot replay {}: unsupported link type 147 at byte offset {LINK_TYPE_OFFSET}", bad.display()),
    );

    // With a readable file after it, the replay goes on without the bad one.
    let good = pcap("Nasdaq.Equities.TotalView.Itch.v5.0/Multiple.Packets.pcap");
    let both = run_replay(&dir, &[path_str(&bad), path_str(&good), "--speed", "max", "--hold", "0"]);
    assert_success(&both);
    assert_contains(&stderr(&both), &format!("cannot replay {}: unsupported link type 147", bad.display()));
    assert_contains(&stdout(&both), "mdfh: replay: 39 messages in 2 packets from 1 file(s); end of the files");
}

#[test]
fn truncated_binary_file_replays_what_it_can() {
    let dir = temp_dir("replay_truncated_binary");
    let itch = convert_lobster_sample(&dir);
    let bytes = std::fs::read(&itch).unwrap_or_else(|e| panic!("cannot read {}: {e}", itch.display()));
    let feed = mdfh_feed::file::open(&itch).unwrap_or_else(|e| panic!("cannot open {}: {e}", itch.display()));
    let messages: Vec<_> = feed.messages().map(|m| m.expect("the converted sample frames")).collect();
    let last = messages.last().expect("the converted sample has messages");
    // Cut the last message in half: its length prefix starts 2 bytes before it.
    let prefix_offset = last.offset - 2;
    let file = write(&dir, "truncated.itch", &bytes[..last.offset + last.bytes.len() / 2]);

    let output = run_replay(&dir, &[path_str(&file), "--speed", "max", "--hold", "0"]);

    assert_success(&output);
    let complete = messages.len() - 1;
    // One packet per complete message, and the end of the BinaryFILE's session.
    let packets = complete + 1;
    assert_contains(
        &stderr(&output),
        &format!("BinaryFILE message at byte offset {prefix_offset}: length {} runs past the end of the file", last.bytes.len()),
    );
    assert_contains(
        &stdout(&output),
        &format!("mdfh: replay: {complete} messages in {packets} packets from 1 file(s); end of the files; {}: 1 errors", file.display()),
    );
}

#[test]
fn start_past_end_is_rejected() {
    let dir = temp_dir("replay_start_past_end");
    let itch = convert_lobster_sample(&dir);
    let capture = pcap("Nasdaq.Equities.TotalView.Itch.v5.0/Multiple.Packets.pcap");
    let last_of = |file: &Path| {
        let feed = mdfh_feed::file::open(file).unwrap_or_else(|e| panic!("cannot open {}: {e}", file.display()));
        let count = feed.messages().count() as u64;
        let last = feed.messages().last().expect("the file has messages").expect("the file frames");
        (last.moldudp64_sequence.unwrap_or(count), last.offset)
    };

    let (itch_last, itch_offset) = last_of(&itch);
    let output = run_replay(&dir, &[path_str(&itch), "--start-seq", "100000"]);
    assert_failure(&output);
    assert_contains(
        &stderr(&output),
        &format!(
            "mdfh: error: the start sequence number 100000 is past the end of the replay: the last message is sequence number {itch_last} at 09:30:27.437330595 (byte offset {itch_offset} of {})",
            itch.display()
        ),
    );

    let (capture_last, capture_offset) = last_of(&capture);
    let output = run_replay(&dir, &[path_str(&capture), "--start-time", "16:00:00"]);
    assert_failure(&output);
    assert_contains(
        &stderr(&output),
        &format!(
            "mdfh: error: the start time 16:00:00.000000000 is past the end of the replay: the last message is sequence number {capture_last}"
        ),
    );
    assert_contains(&stderr(&output), &format!("(byte offset {capture_offset} of {})", capture.display()));
}

#[test]
fn files_that_are_not_feeds_are_rejected() {
    let dir = temp_dir("replay_not_feeds");
    let csv = lobster_message_csv();
    let missing = dir.join("missing.pcap");
    let empty = write(&dir, "empty.itch", &[]);
    let cases = [
        (csv.clone(), format!("{} is neither a pcap or pcapng capture nor an ITCH 5.0 BinaryFILE", csv.display())),
        (missing.clone(), format!("failed to read {}", missing.display())),
        (empty.clone(), format!("{} is neither a pcap or pcapng capture nor an ITCH 5.0 BinaryFILE: the file is empty", empty.display())),
        (dir.clone(), format!("{} is not a regular file", dir.display())),
    ];
    for (file, expected) in cases {
        let output = run_replay(&dir, &[path_str(&file), "--speed", "max"]);
        assert_failure(&output);
        assert_contains(&stderr(&output), &format!("mdfh: error: no file can be replayed: {expected}"));
    }
}

#[test]
fn invalid_options_are_rejected() {
    let dir = temp_dir("replay_invalid_options");
    let capture = pcap("Nasdaq.Equities.TotalView.Itch.v5.0/Multiple.Packets.pcap");
    let cases: [(&[&str], &str); 4] = [
        (&["--speed", "fast"], "invalid speed \"fast\""),
        (&["--speed", "0x"], "invalid speed \"0x\""),
        (&["--start-time", "9:30"], "invalid time \"9:30\""),
        (&["--start-seq", "5", "--start-time", "09:30:00"], "cannot be used with"),
    ];
    for (options, expected) in cases {
        let args: Vec<&str> = [&[path_str(&capture)], options].concat();
        let output = run_replay(&dir, &args);
        assert_eq!(output.status.code(), Some(2), "clap rejects {options:?}; stderr:\n{}", stderr(&output));
        assert_contains(&stderr(&output), expected);
    }
}

//! `mdfh record` end to end: `mdfh sim` sends a real feed over UDP on 127.0.0.1 to the recorder,
//! and `mdfh inspect` on the recorded pcap files must print the same ITCH messages as on the
//! source file. Also: size rotation, the `.part` name while recording, the pcap file header, and
//! the exit status after a bad folder or a write error.

mod support;

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value};
use support::{
    convert_lobster_sample, mdfh_command, mdfh_ok, message_count, path_str, pcap, temp_dir, Process, WAIT,
};

/// Keys of `mdfh inspect` output that describe the capture rather than the message: the byte
/// offset in the file, the MoldUDP64 framing (the simulator numbers its own session) and the
/// capture time.
const CAPTURE_KEYS: [&str; 4] = ["offset", "moldudp64_sequence", "session", "capture_ts_ns"];

const START_LINE: &str = "mdfh record: recording MoldUDP64 on ";

/// Starts `mdfh record --bind 127.0.0.1:0 --dir DIR` with `extra` arguments and returns it with
/// the address it listens on.
fn start_recorder(dir: &Path, extra: &[&str]) -> (Process, SocketAddr) {
    start_recorder_with(mdfh_command(), dir, extra)
}

fn start_recorder_with(mut command: Command, dir: &Path, extra: &[&str]) -> (Process, SocketAddr) {
    command.args(["record", "--bind", "127.0.0.1:0", "--dir", path_str(dir), "--prefix", "test"]);
    command.args(extra);
    let process = Process::spawn("mdfh record", &mut command);
    let line = process.stderr.wait_for(&[START_LINE]);
    let rest = line.split_once(START_LINE).map_or("", |(_, rest)| rest);
    let text = rest.split([' ', ',']).next().unwrap_or("");
    let addr = text
        .parse()
        .unwrap_or_else(|e| panic!("invalid address {text:?} in {line:?}: {e}"));
    (process, addr)
}

/// Runs `mdfh sim FILE --udp TARGET` to completion and returns the number of packets it sent.
fn send(file: &Path, target: SocketAddr) -> u64 {
    let target = target.to_string();
    let (_, stderr) = mdfh_ok(&["sim", path_str(file), "--rate", "20000", "--udp", &target]);
    let packets = stderr
        .split_once(" messages in ")
        .and_then(|(_, rest)| rest.split(' ').next())
        .and_then(|n| n.parse().ok());
    packets.unwrap_or_else(|| panic!("no packet count in the mdfh sim output:\n{stderr}"))
}

/// Stops the recorder with SIGTERM, asserts that it exited 0 and returns the files it printed.
fn stop_recorder(process: &mut Process) -> Vec<PathBuf> {
    process.terminate();
    let status = process.wait_exit(WAIT);
    assert!(status.success(), "mdfh record exited with {status}; stderr:\n{}", process.stderr.text());
    process.stdout.snapshot().iter().map(PathBuf::from).collect()
}

/// Returns the messages `mdfh inspect` prints for each of `files`, in order, without the
/// capture keys, and asserts that it reported no decode error.
fn inspect_messages(files: &[PathBuf]) -> Vec<Map<String, Value>> {
    let mut messages = Vec::new();
    for file in files {
        let (stdout, stderr) = mdfh_ok(&["inspect", path_str(file)]);
        assert!(stderr.contains("decode errors: 0"), "mdfh inspect {}:\n{stderr}", file.display());
        for line in stdout.lines() {
            let Ok(Value::Object(mut object)) = serde_json::from_str(line) else {
                panic!("mdfh inspect printed a line that is not a JSON object: {line}");
            };
            for key in CAPTURE_KEYS {
                object.remove(key);
            }
            messages.push(object);
        }
    }
    messages
}

/// Returns the names in `dir`, sorted.
fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Asserts that `messages` and `expected` are equal, naming the first message that differs.
fn assert_same_messages(messages: &[Map<String, Value>], expected: &[Map<String, Value>]) {
    for (i, (got, want)) in messages.iter().zip(expected).enumerate() {
        assert_eq!(got, want, "message {i} of the recording (left) and of the source (right)");
    }
    assert_eq!(messages.len(), expected.len(), "messages in the recording and in the source");
}

#[test]
fn lobster_sample_round_trip() {
    let dir = temp_dir("record_lobster");
    let source = convert_lobster_sample(&dir);
    let recordings = dir.join("recordings");
    let (mut recorder, addr) = start_recorder(&recordings, &[]);
    send(&source, addr);
    let files = stop_recorder(&mut recorder);

    assert_eq!(files.len(), 1, "files printed: {files:?}");
    let expected = inspect_messages(std::slice::from_ref(&source));
    assert_eq!(expected.len() as u64, message_count(&source));
    assert_same_messages(&inspect_messages(&files), &expected);

    // Nanosecond pcap, written in this machine's byte order: magic 0xa1b23c4d, version 2.4,
    // snaplen 2048, link type 1 (Ethernet).
    let bytes = std::fs::read(&files[0]).unwrap();
    let word = |at: usize| u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!(word(0), 0xa1b2_3c4d, "magic");
    assert_eq!(word(4), 2 | 4 << 16, "version 2.4");
    assert_eq!(word(16), 2048, "snaplen");
    assert_eq!(word(20), 1, "link type");
}

#[test]
fn nasdaq_pcap_round_trip() {
    let dir = temp_dir("record_nasdaq_pcap");
    let source = pcap("Nasdaq.Equities.TotalView.Itch.v5.0/Multiple.Packets.pcap");
    let recordings = dir.join("recordings");
    // Ends by itself: the simulator needs a fraction of a second for this capture's messages.
    let (mut recorder, addr) = start_recorder(&recordings, &["--duration", "3"]);
    send(&source, addr);
    let status = recorder.wait_exit(WAIT);
    assert!(status.success(), "mdfh record exited with {status}; stderr:\n{}", recorder.stderr.text());
    let files: Vec<PathBuf> = recorder.stdout.snapshot().iter().map(PathBuf::from).collect();

    let expected = inspect_messages(std::slice::from_ref(&source));
    assert!(!expected.is_empty());
    assert_eq!(expected.len() as u64, message_count(&source));
    assert_same_messages(&inspect_messages(&files), &expected);
}

#[test]
fn size_rotation_keeps_every_packet_once() {
    let dir = temp_dir("record_rotation");
    let source = convert_lobster_sample(&dir);
    let recordings = dir.join("recordings");
    let (mut recorder, addr) = start_recorder(&recordings, &["--rotate-bytes", "4000"]);
    let packets_sent = send(&source, addr);
    let files = stop_recorder(&mut recorder);

    assert!(files.len() >= 3, "only {} files: {files:?}", files.len());
    let printed: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(printed, file_names(&recordings), "printed files and the folder, in name order");

    // Every datagram once: the simulator's data packets, the heartbeat after the last one and
    // its three end-of-session packets.
    let mut datagrams = 0;
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        assert!(bytes.len() <= 4000, "{} has {} bytes", file.display(), bytes.len());
        let reader = mdfh_feed::pcap::datagrams(&bytes).unwrap();
        for item in reader {
            item.unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            datagrams += 1;
        }
    }
    assert_eq!(datagrams, packets_sent + 4);

    // Every message once, in order: the simulator numbers them 1, 2, 3, ...
    let mut sequences = Vec::new();
    for file in &files {
        let (stdout, _) = mdfh_ok(&["inspect", path_str(file)]);
        for line in stdout.lines() {
            let object: Value = serde_json::from_str(line).unwrap();
            sequences.push(object["moldudp64_sequence"].as_u64().unwrap());
        }
    }
    let expected: Vec<u64> = (1..=message_count(&source)).collect();
    assert_eq!(sequences, expected);
}

#[test]
fn part_file_while_recording() {
    let dir = temp_dir("record_part");
    let recordings = dir.join("recordings");
    let (mut recorder, _) = start_recorder(&recordings, &[]);
    let names = file_names(&recordings);
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with("test-"), "{names:?}");
    assert!(names[0].ends_with(".pcap.part"), "{names:?}");

    let files = stop_recorder(&mut recorder);
    let complete = names[0].trim_end_matches(".part").to_string();
    assert_eq!(file_names(&recordings), vec![complete.clone()]);
    assert_eq!(files, vec![recordings.join(complete)]);
}

#[test]
fn unwritable_dir_exits_with_error() {
    let dir = temp_dir("record_bad_dir");
    let blocker = dir.join("not-a-folder");
    std::fs::write(&blocker, b"a file where the folder should be").unwrap();
    let target = blocker.join("recordings");
    let output = mdfh_command()
        .args(["record", "--bind", "127.0.0.1:0", "--dir", path_str(&target)])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "mdfh record succeeded; stderr:\n{stderr}");
    assert!(stderr.contains("failed to create the recording folder"), "{stderr}");
    assert!(stderr.contains(path_str(&target)), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn write_error_leaves_part_file() {
    const FILE_SIZE_LIMIT: u64 = 3000;
    let dir = temp_dir("record_write_error");
    let source = convert_lobster_sample(&dir);
    let recordings = dir.join("recordings");
    let mut command = mdfh_command();
    // SAFETY: the closure runs in the child between fork and exec and calls only setrlimit and
    // signal, which are async-signal-safe, on a struct on its own stack.
    unsafe {
        command.pre_exec(|| {
            // Writes past 3000 bytes fail with EFBIG instead of killing the process with SIGXFSZ.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit { rlim_cur: FILE_SIZE_LIMIT, rlim_max: FILE_SIZE_LIMIT };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (mut recorder, addr) = start_recorder_with(command, &recordings, &["--rotate-bytes", "0"]);
    send(&source, addr);
    recorder.terminate();
    let status = recorder.wait_exit(WAIT);
    let stderr = recorder.stderr.text();

    assert!(!status.success(), "mdfh record exited 0 after a write error; stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(recorder.stdout.snapshot().is_empty(), "complete files were printed: {:?}", recorder.stdout.snapshot());
    let names = file_names(&recordings);
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].ends_with(".pcap.part"), "the incomplete file lost its .part name: {names:?}");
    let part = recordings.join(&names[0]);
    assert_eq!(std::fs::metadata(&part).unwrap().len(), FILE_SIZE_LIMIT);
    assert!(
        stderr.contains(&format!("failed to write the recording file {} at byte offset {FILE_SIZE_LIMIT}", part.display())),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("incomplete file left after an I/O error: {}", part.display())), "{stderr}");
    assert!(stderr.contains("datagrams were not recorded"), "{stderr}");
}

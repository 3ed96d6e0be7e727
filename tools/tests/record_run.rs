//! `mdfh run` with a `[record]` section: stage 1 hands every received datagram to the recorder,
//! and the recording contains the same ITCH messages as the file the simulator sent.

mod support;

use std::path::PathBuf;

use support::{
    convert_lobster_sample, counter, handler_config, message_count, mdfh_ok, path_str, run_udp_sim, temp_dir, Handler,
    UDP_INPUT,
};

#[test]
fn run_records_every_received_packet() {
    let dir = temp_dir("record_run");
    let source = convert_lobster_sample(&dir);
    let recordings = dir.join("recordings");
    let config = format!(
        "{}\n[record]\nenabled = true\ndir = \"{}\"\n",
        handler_config(UDP_INPUT),
        path_str(&recordings)
    );
    let mut handler = Handler::start(&dir, &config);
    let messages = message_count(&source);
    run_udp_sim(&source, handler.feed.expect("UDP input"), messages);
    let stats = handler.wait_published(messages);
    let packets = counter(&stats, "feed.packets").expect("feed.packets");
    let status = handler.stop();
    assert!(status.success(), "mdfh run exited with {status}");

    let files: Vec<PathBuf> = handler
        .process
        .stdout
        .snapshot()
        .iter()
        .filter_map(|line| line.strip_prefix("mdfh: recorded ").map(PathBuf::from))
        .collect();
    assert_eq!(files.len(), 1, "recorded files: {files:?}");
    let (json, stderr) = mdfh_ok(&["inspect", path_str(&files[0])]);
    assert!(stderr.contains("decode errors: 0"), "{stderr}");
    assert_eq!(json.lines().count() as u64, messages, "messages in the recording");
    // Every packet stage 1 read is in the file: the data packets and the end of session.
    let recorded_packets = std::fs::read(&files[0]).map(|bytes| count_pcap_records(&bytes)).unwrap();
    assert_eq!(recorded_packets, packets, "records in the pcap and packets received");
}

/// Counts the records of a classic pcap file.
fn count_pcap_records(bytes: &[u8]) -> u64 {
    let mut offset = 24;
    let mut records = 0;
    while offset + 16 <= bytes.len() {
        let captured = u32::from_ne_bytes(bytes[offset + 8..offset + 12].try_into().unwrap()) as usize;
        offset += 16 + captured;
        records += 1;
    }
    records
}

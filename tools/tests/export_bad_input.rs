//! `mdfh export` on damaged input and impossible requests: a clear error naming the file and
//! the byte offset, no panic, and no output file that looks complete.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use support::{mdfh_command, mdfh_ok, path_str, pcap, temp_dir, DATA_DIR};

const MULTIPLE_PACKETS: &str = "Nasdaq.Equities.TotalView.Itch.v5.0/Multiple.Packets.pcap";

fn dbn_sample(name: &str) -> PathBuf {
    Path::new(DATA_DIR).join("dbn").join(name)
}

fn run(args: &[&str]) -> (Output, String) {
    let output = mdfh_command()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot start mdfh {args:?}: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "mdfh panicked: {stderr}");
    (output, stderr)
}

/// Runs an export that must fail, and returns its stderr.
fn export_fails(args: &[&str]) -> String {
    let (output, stderr) = run(args);
    assert!(!output.status.success(), "mdfh {args:?} succeeded; stderr:\n{stderr}");
    stderr
}

/// Returns the names of the files in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Writes `bytes` to `dir/name` and returns the path.
fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn truncated_dbn_record_is_reported() {
    let dir = temp_dir("export_truncated_dbn");
    let bytes = std::fs::read(dbn_sample("test_data.mbo.v3.dbn")).unwrap();
    // The second record starts at byte 416 and is 56 bytes long.
    let input = write(&dir, "cut.dbn", &bytes[..440]);
    let out = dir.join("orders.csv");

    let (_, stderr) = mdfh_ok(&["export", "--keep-going", path_str(&input), "--to", "csv", "--what", "orders", "-o", path_str(&out)]);
    assert!(stderr.contains("cut.dbn: byte offset 416: truncated record: 56 bytes needed, 24 left"), "{stderr}");
    assert!(stderr.contains("input errors: 1"), "{stderr}");
    let rows = std::fs::read_to_string(&out).unwrap();
    assert_eq!(rows.lines().count(), 2, "the header and the first cancel: {rows}");
}

#[test]
fn corrupt_dbn_record_length_is_reported() {
    let dir = temp_dir("export_corrupt_dbn");
    let mut bytes = std::fs::read(dbn_sample("test_data.mbo.v3.dbn")).unwrap();
    bytes[416] = 1;
    let input = write(&dir, "corrupt.dbn", &bytes);
    let out = dir.join("bbo.csv");

    let (_, stderr) = mdfh_ok(&["export", "--keep-going", path_str(&input), "--to", "csv", "--what", "bbo", "-o", path_str(&out)]);
    assert!(stderr.contains("byte offset 416: invalid record length 4"), "{stderr}");
    assert!(stderr.contains("input errors: 1"), "{stderr}");
}

#[test]
fn damaged_dbn_headers_are_errors() {
    let dir = temp_dir("export_dbn_headers");
    let mbo = std::fs::read(dbn_sample("test_data.mbo.v3.dbn")).unwrap();
    let zstd = std::fs::read(dbn_sample("test_data.mbp-10.v3.dbn.zst")).unwrap();
    let mut version_9 = mbo.clone();
    version_9[3] = 9;
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("version.dbn", version_9, "DBN version 9 is not supported"),
        ("metadata.dbn", mbo[..100].to_vec(), "byte offset 8: the metadata is 352 bytes long but the stream ends after 92"),
        ("cut.dbn.zst", zstd[..zstd.len() / 2].to_vec(), "invalid zstd data"),
    ];
    for (name, bytes, expected) in cases {
        let input = write(&dir, name, &bytes);
        let out = dir.join("out.parquet");
        let stderr =
            export_fails(&["export", path_str(&input), "--to", "parquet", "--what", "bbo", "-o", path_str(&out)]);
        assert!(stderr.contains(expected), "{name}: {stderr}");
        assert!(stderr.contains(path_str(&input)), "{name}: the error names the file: {stderr}");
        assert!(!out.exists(), "{name}: an output was written");
    }
    assert_eq!(listing(&dir), ["cut.dbn.zst", "metadata.dbn", "version.dbn"], "files left behind");
}

#[test]
fn unwritable_output_leaves_nothing() {
    let dir = temp_dir("export_unwritable");
    let input = dbn_sample("test_data.mbo.v3.dbn");
    let missing = dir.join("missing").join("out.csv");
    let stderr = export_fails(&["export", path_str(&input), "--to", "csv", "--what", "bbo", "-o", path_str(&missing)]);
    assert!(stderr.contains("cannot create a temporary file for"), "{stderr}");
    assert!(stderr.contains(path_str(&missing)), "{stderr}");

    let stderr = export_fails(&["export", path_str(&input), "--to", "csv", "--what", "bbo", "-o", path_str(&dir)]);
    assert!(stderr.contains("is not a safe output"), "{stderr}");
    assert!(listing(&dir).is_empty(), "files left behind: {:?}", listing(&dir));
}

#[test]
fn failed_export_keeps_the_previous_output() {
    let dir = temp_dir("export_keeps_previous");
    let out = write(&dir, "out.dbn", b"previous export");
    let itch = pcap(MULTIPLE_PACKETS);
    // DBN output of ITCH input needs the trading date.
    let stderr = export_fails(&["export", path_str(&itch), "--to", "dbn", "--what", "bbo", "-o", path_str(&out)]);
    assert!(stderr.contains("pass --date YYYY-MM-DD"), "{stderr}");
    // DBN has no 5-level records.
    let stderr = export_fails(&[
        "export", path_str(&itch), "--to", "dbn", "--what", "levels:5", "--date", "2023-08-22", "-o", path_str(&out),
    ]);
    assert!(stderr.contains("not levels:5"), "{stderr}");
    assert_eq!(std::fs::read(&out).unwrap(), b"previous export");
    assert_eq!(listing(&dir), ["out.dbn"]);
}

#[test]
fn invalid_requests_are_rejected() {
    let dir = temp_dir("export_invalid_requests");
    let itch = pcap(MULTIPLE_PACKETS);
    let out = dir.join("out.csv");
    let base = ["export", path_str(&itch), "--to", "csv", "-o", path_str(&out)];

    let stderr = export_fails(&[&base[..], &["--what", "depth"]].concat());
    assert!(stderr.contains("unknown export \"depth\""), "{stderr}");
    let stderr = export_fails(&[&base[..], &["--what", "levels:0"]].concat());
    assert!(stderr.contains("unknown export \"levels:0\""), "{stderr}");
    let stderr = export_fails(&[&base[..], &["--what", "trades", "--every", "1s"]].concat());
    assert!(stderr.contains("--every samples books"), "{stderr}");
    let stderr = export_fails(&[&base[..], &["--what", "bbo", "--every", "1 week"]].concat());
    assert!(stderr.contains("invalid duration"), "{stderr}");
    let stderr = export_fails(&[&base[..], &["--what", "bbo", "--symbol", "AAPL"]].concat());
    assert!(stderr.contains("symbol \"AAPL\" not found"), "{stderr}");
    assert!(stderr.contains("META (locate 6514)"), "{stderr}");
    let stderr = export_fails(&["export", path_str(&itch), "--to", "xlsx", "--what", "bbo", "-o", path_str(&out)]);
    assert!(stderr.contains("unknown output format \"xlsx\""), "{stderr}");
    assert!(listing(&dir).is_empty(), "files left behind: {:?}", listing(&dir));
}

#[test]
fn truncated_pcap_is_reported_and_export_goes_on() {
    let dir = temp_dir("export_truncated_pcap");
    let bytes = std::fs::read(pcap(MULTIPLE_PACKETS)).unwrap();
    let input = write(&dir, "cut.pcap", &bytes[..bytes.len() - 10]);
    let out = dir.join("orders.csv");

    let (_, stderr) = mdfh_ok(&["export", "--keep-going", path_str(&input), "--to", "csv", "--what", "orders", "-o", path_str(&out)]);
    assert!(stderr.contains("runs past the end of the file"), "{stderr}");
    assert!(stderr.contains("input errors: 1"), "{stderr}");
    let rows = std::fs::read_to_string(&out).unwrap();
    assert!(rows.lines().count() > 1, "the frames before the cut are exported: {rows}");
}

#[test]
fn unknown_link_type_is_an_error() {
    let dir = temp_dir("export_link_type");
    let mut bytes = std::fs::read(pcap(MULTIPLE_PACKETS)).unwrap();
    // The link type is the little-endian u32 at byte 20 of the file header.
    bytes[20..24].copy_from_slice(&147u32.to_le_bytes());
    let input = write(&dir, "link.pcap", &bytes);
    let out = dir.join("bbo.csv");

    let stderr = export_fails(&["export", path_str(&input), "--to", "csv", "--what", "bbo", "-o", path_str(&out)]);
    assert!(stderr.contains("unsupported link type 147 at byte offset 20"), "{stderr}");
    assert!(stderr.contains("link.pcap"), "{stderr}");
    assert_eq!(listing(&dir), ["link.pcap"]);
}

#[test]
fn frames_without_udp_over_ipv4_are_skipped() {
    let dir = temp_dir("export_non_ipv4");
    let original = pcap(MULTIPLE_PACKETS);
    let mut bytes = std::fs::read(&original).unwrap();
    // One Ethernet frame carrying ARP (ether type 0x0806), 42 bytes, with a pcap record header:
    // seconds, nanoseconds, captured length, original length.
    let mut frame = vec![0xff; 6];
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x08, 0x06]);
    frame.extend_from_slice(&[0; 28]);
    for field in [1_692_711_000u32, 0, frame.len() as u32, frame.len() as u32] {
        bytes.extend_from_slice(&field.to_le_bytes());
    }
    bytes.extend_from_slice(&frame);
    let input = write(&dir, "arp.pcap", &bytes);

    let with_arp = dir.join("with-arp.csv");
    let without = dir.join("without.csv");
    let (_, stderr) = mdfh_ok(&["export", "--keep-going", path_str(&input), "--to", "csv", "--what", "orders", "-o", path_str(&with_arp)]);
    // The capture deletes one order it never added, which the books report.
    assert!(stderr.contains("input errors: 0, book errors: 1, skipped frames: 1"), "{stderr}");
    mdfh_ok(&["export", "--keep-going", path_str(&original), "--to", "csv", "--what", "orders", "-o", path_str(&without)]);
    assert_eq!(std::fs::read_to_string(&with_arp).unwrap(), std::fs::read_to_string(&without).unwrap());
}

#[test]
fn incomplete_input_fails_without_keep_going() {
    let dir = temp_dir("export_strict");
    let mut bytes = std::fs::read(dbn_sample("test_data.mbo.v3.dbn")).unwrap();
    let len = bytes.len();
    bytes.truncate(len - 30);
    let input = write(&dir, "cut.dbn", &bytes);
    let out = dir.join("orders.csv");
    std::fs::write(&out, "previous export\n").unwrap();
    let stderr = export_fails(&["export", path_str(&input), "--to", "csv", "--what", "orders", "-o", path_str(&out)]);
    assert!(stderr.contains("1 input errors"), "{stderr}");
    assert!(stderr.contains("--keep-going"), "{stderr}");
    // The earlier output is untouched and no temporary file is left.
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "previous export\n");
    assert_eq!(listing(&dir).len(), 2, "files: {:?}", listing(&dir));
}

#[test]
fn output_that_is_the_input_or_a_symlink_is_rejected() {
    let dir = temp_dir("export_unsafe_output");
    let input = dir.join("copy.dbn");
    std::fs::copy(dbn_sample("test_data.mbo.v3.dbn"), &input).unwrap();
    let before = std::fs::read(&input).unwrap();
    let stderr = export_fails(&["export", path_str(&input), "--to", "csv", "--what", "orders", "-o", path_str(&input)]);
    assert!(stderr.contains("it is the input file"), "{stderr}");
    assert_eq!(std::fs::read(&input).unwrap(), before);

    let target = dir.join("target.csv");
    std::fs::write(&target, "kept\n").unwrap();
    let link = dir.join("link.csv");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let stderr = export_fails(&["export", path_str(&input), "--to", "csv", "--what", "orders", "-o", path_str(&link)]);
    assert!(stderr.contains("not a regular file"), "{stderr}");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "kept\n");
}

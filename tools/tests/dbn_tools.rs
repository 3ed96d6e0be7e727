//! DBN files as input to `mdfh book` and `mdfh replay`: Databento's MBP-10 test records replayed
//! through the books give the levels the official decoder lists for the last record, and MBO
//! cancels of orders the file never added are reported as book errors while the replay goes on.

mod support;

use serde_json::Value;
use support::{mdfh_command, mdfh_ok, temp_dir};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/dbn/");

/// Returns the decoded JSON of one DBN sample.
fn decoded(name: &str) -> Value {
    let text = std::fs::read_to_string(format!("{DATA}{name}")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn book_of_mbp10_matches_decoded_levels() {
    let file = format!("{DATA}test_data.mbp-10.v3.dbn.zst");
    let (stdout, stderr) = mdfh_ok(&["book", &file, "--levels", "10"]);
    assert!(stderr.contains("book errors: 0"), "{stderr}");
    let last = stdout.lines().last().expect("at least one row");
    let fields: Vec<i64> = last.split(',').map(|f| f.parse().unwrap()).collect();
    assert_eq!(fields.len(), 40);

    let json = decoded("test_data.mbp-10.v3.decoded.json");
    let record = json["records"].as_array().unwrap().last().unwrap().clone();
    let levels = record["levels"].as_array().unwrap();
    // DBN prices are in 1e-9 units; mdfh's in 1/10000 dollars.
    let px = |v: &Value| v.as_i64().unwrap() / 100_000;
    for (i, level) in levels.iter().enumerate() {
        assert_eq!(fields[4 * i], px(&level["ask_px"]), "ask price of level {}", i + 1);
        assert_eq!(fields[4 * i + 1], level["ask_sz"].as_i64().unwrap(), "ask size of level {}", i + 1);
        assert_eq!(fields[4 * i + 2], px(&level["bid_px"]), "bid price of level {}", i + 1);
        assert_eq!(fields[4 * i + 3], level["bid_sz"].as_i64().unwrap(), "bid size of level {}", i + 1);
    }
}

#[test]
fn book_of_mbo_reports_unknown_orders() {
    let file = format!("{DATA}test_data.mbo.v3.dbn");
    let (stdout, stderr) = mdfh_ok(&["book", &file, "--levels", "1"]);
    // Both records cancel orders added before the sample starts.
    assert!(stderr.contains("book errors: 2"), "{stderr}");
    assert!(stderr.contains("order 647784973705 not found"), "{stderr}");
    assert!(stdout.lines().count() >= 2, "{stdout}");
}

#[test]
fn replay_runs_a_dbn_file() {
    let dir = temp_dir("dbn_replay");
    let config = dir.join("replay.toml");
    std::fs::write(&config, "[publisher]\nlisten = \"127.0.0.1:0\"\n[stats]\nhttp = \"off\"\n[ws]\nenabled = false\n").unwrap();
    let file = format!("{DATA}test_data.mbp-10.v3.dbn.zst");
    let output = mdfh_command()
        .args(["replay", &file, "--speed", "max", "--hold", "0", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "exit {}; stderr:\n{}", output.status, String::from_utf8_lossy(&output.stderr));
    // The 10 levels of each side of the first record, then one change per later record.
    assert!(stdout.contains("mdfh: replay: 23 messages"), "{stdout}");
}

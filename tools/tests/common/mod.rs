//! Helpers shared by the tests that run the `mdfh` binary on the files in `tests/data/`.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Folder of the real test data, shared by the workspace.
pub const DATA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data");

/// Returns the message file of the LOBSTER AAPL sample: 600 events.
pub fn lobster_message_csv() -> PathBuf {
    Path::new(DATA_DIR).join("lobster/AAPL_2012-06-21_34200000_57600000_message_10.csv")
}

/// Returns the orderbook file of the LOBSTER AAPL sample: the 10-level book after each event.
pub fn lobster_orderbook_csv() -> PathBuf {
    Path::new(DATA_DIR).join("lobster/AAPL_2012-06-21_34200000_57600000_orderbook_10.csv")
}

/// Returns the path of a capture under `tests/data/itch-pcaps/`.
pub fn pcap(relative: &str) -> PathBuf {
    Path::new(DATA_DIR).join("itch-pcaps").join(relative)
}

/// Creates an empty folder for one test's files under the cargo temp dir.
pub fn temp_dir(test_name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{test_name}-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `mdfh` with `args` and returns its exit status and output.
pub fn mdfh<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_mdfh")).args(args).output().unwrap()
}

/// Runs `mdfh` with `args`, asserts that it succeeded and returns its stdout.
pub fn mdfh_ok<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let output = mdfh(args);
    assert!(
        output.status.success(),
        "mdfh failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Converts the LOBSTER sample into `dir/AAPL.itch` and returns that path.
pub fn convert_lobster_sample(dir: &Path) -> PathBuf {
    let out = dir.join("AAPL.itch");
    let message_csv = lobster_message_csv();
    let orderbook_csv = lobster_orderbook_csv();
    mdfh_ok([
        OsStr::new("convert"),
        OsStr::new("lobster"),
        message_csv.as_os_str(),
        orderbook_csv.as_os_str(),
        OsStr::new("-o"),
        out.as_os_str(),
    ]);
    out
}

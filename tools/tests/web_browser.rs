//! The web terminal in a real browser: `mdfh replay` plays the real LOBSTER AAPL sample (converted
//! to ITCH) with the web terminal on; Debian's chromium, driven by playwright-core, opens the
//! page and selects AAPL; when the replay has ended, the ladder on the page must equal the last
//! row of `mdfh book` for the same file. A screenshot is saved under target/.
//!
//! Needs `/usr/bin/chromium` (or `CHROMIUM`), node, and `npm ci` run in tools/tests/browser
//! (`.ci/run` does all three); without them the test prints why it skipped.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use support::{book_rows, convert_lobster_sample, handler_config, mdfh_command, path_str, temp_dir, Process, UDP_INPUT};

const BROWSER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");

/// Kills the browser script when the test fails before it exits.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Returns why the browser test cannot run here, if it cannot.
fn missing_browser() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!("{chromium} is not installed (apt-get install chromium)"));
    }
    if !Path::new(BROWSER_DIR).join("node_modules/playwright-core").exists() {
        return Some(format!("playwright-core is not installed (npm ci in {BROWSER_DIR})"));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node is not installed".into());
    }
    None
}

#[test]
fn ladder_in_browser_equals_book() {
    if let Some(reason) = missing_browser() {
        println!("skipped: browser test: {reason}");
        return;
    }
    let dir = temp_dir("web_browser");
    let itch = convert_lobster_sample(&dir);
    let expected = book_rows(&itch, "AAPL", 10);
    let expected: Vec<i64> = expected.last().expect("mdfh book printed rows").split(',').map(|f| f.parse().unwrap()).collect();

    let config = dir.join("replay.toml");
    std::fs::write(&config, handler_config(UDP_INPUT)).unwrap();
    let replay = Process::spawn(
        "mdfh replay",
        mdfh_command().args(["replay", path_str(&itch), "--speed", "20x", "--hold", "60", "--config", path_str(&config)]),
    );
    let line = replay.stdout.wait_for(&["mdfh: web terminal at http://"]);
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).expect("web terminal URL").to_string();

    let screenshot = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/web-terminal.png"));
    let mut node = KillOnDrop(Command::new("node")
        .current_dir(BROWSER_DIR)
        .args(["ladder.mjs", &url, "AAPL", path_str(&screenshot)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start node"));
    let (lines_tx, lines) = mpsc::channel();
    let stdout = node.0.stdout.take().expect("node stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = |what: &str| {
        lines.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|e| panic!("no {what} from the browser script: {e}"))
    };
    assert_eq!(next_line("ready line"), "ready");

    // The sample spans 27 s of exchange time: about 1.4 s at 20x.
    replay.stdout.wait_for(&["mdfh: replay: end of the files"]);
    let mut stdin = node.0.stdin.take().expect("node stdin");
    writeln!(stdin, "done").expect("write to the browser script");
    let ladder: Value = serde_json::from_str(&next_line("ladder")).expect("ladder JSON");
    drop(stdin);
    let status = node.0.wait().expect("node exit");
    assert!(status.success(), "browser script exited with {status}");
    replay.terminate();

    // `mdfh book` rows: ask price, ask size, bid price, bid size per level, best first.
    for (side, offset) in [("asks", 0), ("bids", 2)] {
        let levels = ladder[side].as_array().expect("levels");
        assert_eq!(levels.len(), 10, "{side} on the page: {levels:?}");
        for (i, level) in levels.iter().enumerate() {
            let price = level[0].as_i64().unwrap();
            let size = level[1].as_i64().unwrap();
            assert_eq!(price, expected[4 * i + offset], "{side} level {} price", i + 1);
            assert_eq!(size, expected[4 * i + offset + 1], "{side} level {} size", i + 1);
        }
    }
    assert_eq!(ladder["quality"], "ok", "the feed quality badge after a replay without gaps");
    assert!(screenshot.exists(), "no screenshot at {}", screenshot.display());
}

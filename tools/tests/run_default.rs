//! `mdfh run` on its embedded default configuration and on the example file, and its rejection
//! of an unknown configuration key.
//!
//! The default configuration binds fixed ports on 127.0.0.1: UDP 26400 (the feed), TCP 9100
//! (subscribers), TCP 9101 (stats) and TCP 8081 (web terminal). A test that needs them prints why it skipped and passes
//! when one is taken, and the tests of this file take turns on them.

mod support;

use std::net::{TcpListener, UdpSocket};
use std::sync::Mutex;
use std::time::Duration;

use support::{mdfh_command, path_str, temp_dir, Process, REPO_DIR};

/// Held by each test that binds the default ports, so that the tests of this file do not run
/// `mdfh run` on them at the same time.
static DEFAULT_PORTS: Mutex<()> = Mutex::new(());

/// The four latency stages, as the log names them.
const STAGES: [&str; 4] = [
    "receive_to_decoded",
    "decoded_to_book",
    "book_to_written",
    "receive_to_written",
];

/// Maximum time a `--duration` run may take beyond its duration to start and shut down.
const SHUTDOWN_MARGIN: Duration = Duration::from_secs(10);

#[test]
fn default_run_reports_every_stage() {
    let _ports = DEFAULT_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(reason) = default_ports_free() {
        println!("skipped: the default configuration needs its ports on 127.0.0.1 ({reason})");
        return;
    }
    let mut run = Process::spawn("mdfh run --duration 4", mdfh_command().args(["run", "--duration", "4"]));
    let status = run.wait_exit(Duration::from_secs(4) + SHUTDOWN_MARGIN);
    if let Some(reason) = port_taken_meanwhile(&run) {
        println!("skipped: {reason}");
        return;
    }
    let stderr = run.stderr.text();
    assert!(status.success(), "mdfh run exited with {status}; stderr:\n{stderr}");

    let stdout = run.stdout.text();
    for line in [
        "mdfh: feed: MoldUDP64 on 127.0.0.1:26400",
        "mdfh: subscribers connect to 127.0.0.1:9100",
        "mdfh: stats at http://127.0.0.1:9101/stats",
        "mdfh: web terminal at http://127.0.0.1:8081/",
        "mdfh: simulator: 627 messages of the bundled LOBSTER AAPL sample at 1000 msg/s to 127.0.0.1:26400",
    ] {
        assert!(stdout.contains(line), "stdout has no line {line:?}:\n{stdout}");
    }

    let lines = run.stderr.snapshot();
    for stage in STAGES {
        let field = format!("stage=\"{stage}\"");
        let samples: Vec<u64> = lines
            .iter()
            .filter(|line| line.contains(&field) && !line.contains("latency since start"))
            .filter_map(|line| sample_count(line))
            .collect();
        assert!(
            samples.iter().any(|&n| n > 0),
            "no interval latency line with samples for {stage}; stderr:\n{stderr}"
        );

        let totals: Vec<&String> = lines
            .iter()
            .filter(|line| line.contains(&field) && line.contains("latency since start"))
            .collect();
        assert_eq!(
            totals.len(),
            1,
            "expected one final latency line for {stage}; stderr:\n{stderr}"
        );
        let total_samples = totals.first().and_then(|line| sample_count(line));
        assert!(
            total_samples.is_some_and(|n| n > 0),
            "final latency of {stage} has no samples; stderr:\n{stderr}"
        );
    }
    assert!(
        lines.iter().any(|line| line.contains("book AAPL (locate 1): bid ")),
        "no book line; stderr:\n{stderr}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.contains("feed: ") && line.contains(" 0 gaps (0 missed)")),
        "no feed counter line without gaps; stderr:\n{stderr}"
    );
}

#[test]
fn example_config_runs() {
    let _ports = DEFAULT_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(reason) = default_ports_free() {
        println!("skipped: the example configuration needs the default ports on 127.0.0.1 ({reason})");
        return;
    }
    let example = format!("{REPO_DIR}/config/mdfh.example.toml");
    let mut run = Process::spawn(
        "mdfh run --config config/mdfh.example.toml",
        mdfh_command().args(["run", "--config", &example, "--duration", "2"]),
    );
    let status = run.wait_exit(Duration::from_secs(2) + SHUTDOWN_MARGIN);
    if let Some(reason) = port_taken_meanwhile(&run) {
        println!("skipped: {reason}");
        return;
    }
    let stderr = run.stderr.text();
    assert!(status.success(), "mdfh run exited with {status}; stderr:\n{stderr}");
    let stdout = run.stdout.text();
    assert!(
        stdout.contains("mdfh: subscribers connect to 127.0.0.1:9100"),
        "stdout:\n{stdout}"
    );
    assert!(stdout.contains("mdfh: simulator: 627 messages"), "stdout:\n{stdout}");
    assert!(
        run.stderr.count_containing(&["latency since start"]) == STAGES.len(),
        "stderr:\n{stderr}"
    );
}

#[test]
fn unknown_config_key_fails() {
    let dir = temp_dir("unknown_config_key");
    let path = dir.join("typo.toml");
    // `max_subscriber` is a typo of `max_subscribers`.
    std::fs::write(&path, "[publisher]\nlisten = \"127.0.0.1:0\"\nmax_subscriber = 4\n")
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));

    let mut run = Process::spawn(
        "mdfh run --config typo.toml",
        mdfh_command().args(["run", "--config", path_str(&path)]),
    );
    let status = run.wait_exit(Duration::from_secs(10));
    let stderr = run.stderr.text();
    assert_eq!(status.code(), Some(1), "exit status; stderr:\n{stderr}");
    assert!(stderr.contains("mdfh: error: invalid config file"), "stderr:\n{stderr}");
    assert!(
        stderr.contains(path_str(&path)),
        "the error does not name the file; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("unknown field `max_subscriber`"),
        "the error does not name the key; stderr:\n{stderr}"
    );
    assert!(
        run.stdout.snapshot().is_empty(),
        "nothing may start; stdout:\n{}",
        run.stdout.text()
    );
}

/// Returns why one of the default ports cannot be bound right now, if one cannot.
fn default_ports_free() -> Result<(), String> {
    UdpSocket::bind("127.0.0.1:26400").map_err(|e| format!("UDP 127.0.0.1:26400: {e}"))?;
    TcpListener::bind("127.0.0.1:9100").map_err(|e| format!("TCP 127.0.0.1:9100: {e}"))?;
    TcpListener::bind("127.0.0.1:9101").map_err(|e| format!("TCP 127.0.0.1:9101: {e}"))?;
    TcpListener::bind("127.0.0.1:8081").map_err(|e| format!("TCP 127.0.0.1:8081: {e}"))?;
    Ok(())
}

/// Returns a skip reason when the run failed because another process took a default port
/// between the check and the start.
fn port_taken_meanwhile(run: &Process) -> Option<String> {
    let stderr = run.stderr.text();
    stderr
        .contains("Address already in use")
        .then(|| format!("a default port was taken after the check; stderr:\n{stderr}"))
}

/// Returns `n` of a latency line such as `latency n=627 p50=16.0us ...`, or `None` for a line
/// without it (`latency no samples`).
fn sample_count(line: &str) -> Option<u64> {
    let (_, rest) = line.split_once("latency ")?;
    let rest = rest.strip_prefix("since start ").unwrap_or(rest);
    rest.strip_prefix("n=")?.split(' ').next()?.parse().ok()
}

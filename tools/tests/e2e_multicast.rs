//! End to end over UDP multicast: `mdfh sim` sends the converted LOBSTER AAPL sample to group
//! 239.1.2.3, `mdfh run` joins the group on the loopback interface, and a `mdfh subscribe` in
//! book-csv mode must show the books `mdfh book` computes from the same file.
//!
//! Every process runs inside a private network namespace that the test creates with `unshare -n`,
//! so that no multicast datagram reaches a real network. That needs root. Without it the test
//! prints why it skipped and passes.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{assert_same_books, book_rows, convert_lobster_sample, message_count, path_str, temp_dir, Process, MDFH};

/// Maximum time of the whole script: namespace setup, handler, subscriber, replay, shutdown.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Shell script run inside the namespace. Its arguments are the mdfh binary, the test folder, the
/// file to replay and its message count. Each wait loop gives up after 10 s (100 rounds of 0.1 s).
const SCRIPT: &str = r#"
set -eu
mdfh="$1"; dir="$2"; file="$3"; messages="$4"
run=""; subscriber=""
# On a failed step, stop what was started before the shell exits.
trap 'for pid in $run $subscriber; do kill -KILL "$pid" 2>/dev/null || true; done' EXIT

# A new network namespace has only a loopback interface, down and without multicast.
ip link set lo up multicast on
ip route add 239.0.0.0/8 dev lo

wait_for() {  # FILE PATTERN: wait until FILE has a line matching PATTERN
    for _ in $(seq 100); do
        if grep -q -- "$2" "$1" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "timed out waiting for '$2' in $1" >&2
    return 1
}

NO_COLOR=1 MDFH_LOG=info "$mdfh" run --config "$dir/mdfh.toml" > "$dir/run.out" 2> "$dir/run.err" &
run=$!
wait_for "$dir/run.out" "mdfh: subscribers connect to"

NO_COLOR=1 "$mdfh" subscribe 127.0.0.1:9100 --symbol AAPL --depth 10 --format book-csv \
    > "$dir/subscriber.out" 2> "$dir/subscriber.err" &
subscriber=$!
wait_for "$dir/subscriber.err" "mdfh subscribe: connected to"

NO_COLOR=1 "$mdfh" sim "$file" --rate 20000 --udp 239.1.2.3:26477 2> "$dir/sim.err"

# The stats line every 0.2 s gives the number of messages received so far.
wait_for "$dir/run.err" "feed: .* $messages messages, 0 gaps"
sleep 0.5

kill -TERM "$run"
status=0; wait "$run" || status=$?
echo "mdfh run exit status: $status"
status=0; wait "$subscriber" || status=$?
echo "mdfh subscribe exit status: $status"
run=""; subscriber=""
"#;

#[test]
fn multicast_in_namespace_matches_book() {
    if let Err(reason) = namespace_available() {
        println!("skipped: multicast end-to-end test needs root to create a network namespace ({reason})");
        return;
    }
    let dir = temp_dir("multicast_in_namespace");
    let itch = convert_lobster_sample(&dir);
    let expected_rows = book_rows(&itch, "AAPL", 10);
    let messages = message_count(&itch).to_string();

    // The namespace is new and empty, so the fixed ports are free.
    let config = "[input]
bind = \"0.0.0.0:26477\"
multicast_group = \"239.1.2.3\"
interface = \"127.0.0.1\"

[simulator]
enabled = false

[publisher]
listen = \"127.0.0.1:9100\"

[stats]
interval_secs = 0.2
http = \"127.0.0.1:9101\"

[pipeline.idle]
receive = \"backoff\"
book = \"backoff\"
publish = \"backoff\"
";
    let config_path = dir.join("mdfh.toml");
    std::fs::write(&config_path, config).unwrap_or_else(|e| panic!("cannot write {}: {e}", config_path.display()));

    let mut script = Process::spawn(
        "unshare -n sh",
        Command::new("unshare").args([
            "-n",
            "sh",
            "-c",
            SCRIPT,
            "sh",
            MDFH,
            path_str(&dir),
            path_str(&itch),
            &messages,
        ]),
    );
    let status = script.wait_exit(SCRIPT_TIMEOUT);
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let report = format!(
        "script stdout:\n{}\nscript stderr:\n{}\nrun.err:\n{}\nsubscriber.err:\n{}",
        script.stdout.text(),
        script.stderr.text(),
        read("run.err"),
        read("subscriber.err")
    );
    assert!(status.success(), "the namespace script exited with {status}\n{report}");

    let run_out = read("run.out");
    assert!(
        run_out.contains("mdfh: feed: MoldUDP64 on 0.0.0.0:26477, group 239.1.2.3"),
        "run.out:\n{run_out}\n{report}"
    );
    assert_eq!(
        script.stdout.count_containing(&["mdfh run exit status: 0"]),
        1,
        "{report}"
    );
    assert_eq!(
        script.stdout.count_containing(&["mdfh subscribe exit status: 0"]),
        1,
        "{report}"
    );
    assert!(
        read("subscriber.err").contains("goodbye from the handler: Shutdown"),
        "{report}"
    );
    assert!(
        read("run.err").contains(&format!(
            "{messages} messages, 0 gaps (0 missed), 0 duplicate packets, 0 decode errors, 0 book errors"
        )),
        "{report}"
    );

    let subscriber_rows: Vec<String> = read("subscriber.out").lines().map(str::to_string).collect();
    assert_same_books(&subscriber_rows, &expected_rows);
}

/// Returns why a private network namespace cannot be created here, if it cannot.
fn namespace_available() -> Result<(), String> {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| format!("`id -u` failed: {e}"))?;
    let uid = String::from_utf8_lossy(&uid.stdout).trim().to_string();
    if uid != "0" {
        return Err(format!("running as uid {uid}"));
    }
    let status = Command::new("unshare")
        .args(["-n", "true"])
        .status()
        .map_err(|e| format!("`unshare` is missing: {e}"))?;
    if !status.success() {
        return Err(format!("`unshare -n true` exited with {status}"));
    }
    let status = Command::new("ip")
        .arg("-V")
        .output()
        .map_err(|e| format!("`ip` is missing: {e}"))?
        .status;
    if !status.success() {
        return Err(format!("`ip -V` exited with {status}"));
    }
    Ok(())
}

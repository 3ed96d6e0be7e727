//! Replay and export benchmark, all on the same BinaryFILE in one run:
//! - decode only: frame and decode every ITCH message of the file;
//! - decode and books: the same, applied to `Books` (what `mdfh book` does, without printing);
//! - replay at max speed through the full pipeline (stage 1 to stage 3 with one subscriber),
//!   as `mdfh replay --speed max` runs it;
//! - export: `levels:10` rows to CSV and to Parquet, and `trades` to Parquet.
//!
//! The file is the synthetic flow of `mdfh_benches::synthetic_flow` (the message mix of the real
//! LOBSTER AAPL sample), written to a temp file first.
//!
//! Run: `cargo bench -p mdfh-benches --bench replay` (env `REPLAY_MESSAGES`, default 1000000).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mdfh::config::Config;
use mdfh::export::{export, ExportOptions, OutputFormat, What};
use mdfh::pipeline::replay::{ReplayControl, ReplaySource, Speed};
use mdfh::pipeline::{Pipeline, Source};
use mdfh_feed::binaryfile;
use mdfh_feed::file;
use mdfh_feed::itch;
use mdfh_matcher::Books;

fn main() -> anyhow::Result<()> {
    let count: usize = std::env::var("REPLAY_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("mdfh-replay-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("synthetic.itch");
    let mut bytes = Vec::with_capacity(count * 40);
    for msg in mdfh_benches::synthetic_flow(count, 8, 42) {
        binaryfile::write_message(&mut bytes, &msg);
    }
    std::fs::write(&path, &bytes)?;
    let messages = (count + 8) as u64;
    println!("replay benchmark: {messages} messages ({} bytes) of a synthetic flow on 8 instruments", bytes.len());
    println!("{:<44} {:>14} {:>10}", "run", "per second", "seconds");

    let feed = file::open(&path)?;
    let start = Instant::now();
    let mut decoded = 0u64;
    for message in feed.messages().flatten() {
        if itch::decode(message.bytes).is_ok() {
            decoded += 1;
        }
    }
    report("decode only (messages)", decoded, start.elapsed());

    let start = Instant::now();
    let mut books = Books::with_capacity(1 << 20, 16);
    let mut applied = 0u64;
    for message in feed.messages().flatten() {
        if let Ok(msg) = itch::decode(message.bytes) {
            let _ = books.apply(&msg, &mut |_| {});
            applied += 1;
        }
    }
    report("decode and books (messages)", applied, start.elapsed());

    let (replayed, elapsed) = replay_max(&path, messages)?;
    report("replay --speed max, full pipeline (messages)", replayed, elapsed);

    for (label, format, what, name) in [
        ("export levels:10 to CSV (rows)", OutputFormat::Csv, What::Levels(10), "levels.csv"),
        ("export levels:10 to Parquet (rows)", OutputFormat::Parquet, What::Levels(10), "levels.parquet"),
        ("export trades to Parquet (rows)", OutputFormat::Parquet, What::Trades, "trades.parquet"),
    ] {
        let options = ExportOptions {
            input: path.clone(),
            output: dir.join(name),
            format,
            what,
            every_ns: None,
            symbol: None,
            date: None,
            dataset: None,
            keep_going: false,
        };
        let start = Instant::now();
        let summary = export(&options, &mut |_| {})?;
        report(label, summary.rows, start.elapsed());
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn report(label: &str, count: u64, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    println!("{label:<44} {:>14.0} {secs:>10.3}", count as f64 / secs.max(1e-9));
}

/// Replays `path` at max speed through the pipeline with one subscriber to everything, and
/// returns the messages applied and the time from start until the last was published.
fn replay_max(path: &Path, messages: u64) -> anyhow::Result<(u64, Duration)> {
    let mut config = Config::default();
    config.simulator.enabled = false;
    config.stats.http = None;
    config.ws.enabled = false;
    config.publisher.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let control = Arc::new(ReplayControl::default());
    let source = ReplaySource::new(vec![path.to_path_buf()], Speed::Max, None, control.clone());
    let pipeline = Pipeline::start(&config, Source::Replay(Box::new(source)))?;

    let subscriber = mdfh_benches::Subscriber::start(pipeline.subscriber_addr);

    let counters = &pipeline.shared.counters;
    let start = Instant::now();
    control.start();
    let deadline = start + Duration::from_secs(120);
    while counters.book.messages_applied.get() < messages || counters.publish.events.get() < counters.book.events.get() {
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let elapsed = start.elapsed();
    let applied = counters.book.messages_applied.get();
    pipeline.stop();
    pipeline.join();
    subscriber.stop();
    Ok((applied, elapsed))
}

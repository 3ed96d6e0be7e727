//! `mdfh replay`: replays recorded files through the same pipeline as `mdfh run`, with the
//! subscriber server, the stats endpoint and the latency log. The pace is the recorded speed, a
//! multiple of it, as fast as the pipeline goes, or one message per line of standard input.
//!
//! Subscribers receive the same frames at every speed, because every message goes through the
//! same stages in the same order and nothing is dropped. That holds for subscribers that are
//! subscribed before the replay starts; `--wait-subscribers` makes sure of it.

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::config::Config;
use crate::pipeline::replay::{self, ReplayControl, ReplayOutcome, ReplaySource, Speed, StartPoint};
use crate::pipeline::{Pipeline, Shared, Source};
use crate::stats::{self, Reporter};

/// How long the subscriber count must stay at `--wait-subscribers` before the replay starts.
/// Stage 3 refreshes the count every 100 ms, and `mdfh subscribe` sends its Subscribe request
/// right after it connects, so the request is normally served well within this time.
const SUBSCRIBE_SETTLE: Duration = Duration::from_millis(500);

/// Arguments of `mdfh replay`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Recorded files, replayed in the order given: pcap or pcapng captures of MoldUDP64, and
    /// ITCH 5.0 BinaryFILEs such as `mdfh convert lobster` writes. The format of each is
    /// detected from its first bytes. Each BinaryFILE is a session of its own, with its messages
    /// numbered from 1.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Pacing. `1x` keeps the recorded intervals: capture times, else ITCH timestamps. `Nx`
    /// divides them by N (`10x`, `0.5x`). `max` goes as fast as the pipeline. `step` hands on one
    /// message per line read from standard input and ends at end of file.
    #[arg(long, default_value = "1x")]
    pub speed: Speed,
    /// Start pacing at the first message with this feed sequence number or a later one: the
    /// MoldUDP64 sequence number in a capture, the message number from 1 in a BinaryFILE. Every
    /// message before it is applied at once to rebuild the books.
    #[arg(long, conflicts_with = "start_time")]
    pub start_seq: Option<u64>,
    /// Start pacing at the first message whose ITCH timestamp (exchange time since midnight) is
    /// at or after HH:MM:SS[.fffffffff]. Every message before it is applied at once.
    #[arg(long, value_parser = replay::parse_time_of_day)]
    pub start_time: Option<u64>,
    /// TOML configuration file, as for `mdfh run`. Only `[publisher]`, `[stats]` and
    /// `[pipeline]` apply: the input and the simulator are not used.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Wait until this many subscribers are connected before the replay starts, so that their
    /// output is complete.
    #[arg(long, default_value_t = 0)]
    pub wait_subscribers: u64,
    /// Seconds to keep serving subscribers after the end of the files; then the handler shuts
    /// down as on SIGTERM, with a Goodbye to every subscriber.
    #[arg(long, default_value_t = 1.0)]
    pub hold: f64,
}

/// Runs `mdfh replay`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.hold.is_finite() && args.hold >= 0.0, "--hold must be a number of seconds, 0 or more");
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let start = match (args.start_seq, args.start_time) {
        (Some(sequence), _) => Some(StartPoint::Sequence(sequence)),
        (None, Some(ns)) => Some(StartPoint::Time(ns)),
        (None, None) => None,
    };

    let (files, errors) = replay::check_files(&args.files);
    if files.is_empty() {
        let reasons: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::bail!("no file can be replayed: {}", reasons.join("; "));
    }
    for error in &errors {
        tracing::error!("{error}; the replay goes on without this file");
    }
    if let Some(start) = start {
        let location = replay::locate_start(&files, start)?;
        println!(
            "mdfh: replay: pacing starts at sequence number {}{}, byte offset {} of {}",
            location.sequence,
            location.timestamp.map(|ns| format!(" (ITCH time {})", replay::format_time_of_day(ns))).unwrap_or_default(),
            location.offset,
            location.path.display()
        );
    }

    let terminate = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, terminate.clone()).context("failed to install the signal handler")?;
    }

    let control = Arc::new(ReplayControl::default());
    let source = ReplaySource::new(files.clone(), args.speed, start, control.clone());
    let pipeline = Pipeline::start(&config, Source::Replay(Box::new(source)))?;
    println!("mdfh: subscribers connect to {}", pipeline.subscriber_addr);
    if let Some(addr) = pipeline.web_addr {
        println!("mdfh: web terminal at http://{addr}/ (WebSocket /ws, SSE /sse)");
    }
    let mut reporter = Reporter::new(pipeline.shared.clone());
    if let Some(addr) = config.stats.http {
        let bound = stats::serve_http(addr, reporter.json_handle())?;
        println!("mdfh: stats at http://{bound}/stats");
    }
    if args.speed == Speed::Step {
        spawn_step_reader(control.clone())?;
    }
    println!(
        "mdfh: replay: {} file(s) at speed {}{}",
        files.len(),
        args.speed,
        if args.wait_subscribers > 0 { format!(", waiting for {} subscriber(s)", args.wait_subscribers) } else { String::new() }
    );

    let mut gate = SubscriberGate { required: args.wait_subscribers, reached_at: None };
    let hold = Duration::from_secs_f64(args.hold);
    let mut hold_until: Option<Instant> = None;
    stats::run_reporter(&mut reporter, config.stats_interval(), || {
        pipeline.refresh_web_stats();
        let now = Instant::now();
        if !control.is_started() && gate.is_open(&pipeline.shared, now) {
            control.start();
            println!("mdfh: replay: started");
        }
        if control.is_finished() && hold_until.is_none() {
            hold_until = Some(now + hold);
            println!("mdfh: replay: end of the files; serving subscribers for {} s more", args.hold);
        }
        if terminate.load(Ordering::Relaxed) || hold_until.is_some_and(|until| now >= until) {
            pipeline.stop();
        }
        pipeline.is_finished()
    });
    tracing::info!("shutting down");
    pipeline.join();

    let outcome = control.outcome().unwrap_or_default();
    println!("mdfh: replay: {}", describe(&outcome));
    match outcome.error {
        Some(error) => anyhow::bail!("{error}"),
        None => Ok(()),
    }
}

/// Decides when the replay may start: once `required` subscribers have been connected for
/// [`SUBSCRIBE_SETTLE`], and at least `required` frames went out (each subscriber's
/// SubscribeAck).
struct SubscriberGate {
    required: u64,
    /// When the count of connected subscribers last reached `required`.
    reached_at: Option<Instant>,
}

impl SubscriberGate {
    fn is_open(&mut self, shared: &Shared, now: Instant) -> bool {
        if self.required == 0 {
            return true;
        }
        let publish = &shared.counters.publish;
        if publish.subscribers.get() < self.required {
            self.reached_at = None;
            return false;
        }
        // NOTE: the subscriber count includes connections that have not subscribed yet, so the
        // settle time and the frame count only make a late Subscribe request unlikely. A count
        // of subscribed connections from the publisher would make the gate exact.
        let reached_at = *self.reached_at.get_or_insert(now);
        now.duration_since(reached_at) >= SUBSCRIBE_SETTLE && publish.frames_sent.get() >= self.required
    }
}

/// Starts the thread that grants one step per line of standard input and closes the input at
/// end of file.
fn spawn_step_reader(control: Arc<ReplayControl>) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("mdfh-step-input".into())
        .spawn(move || {
            let mut input = std::io::stdin().lock();
            let mut line = Vec::new();
            loop {
                line.clear();
                match input.read_until(b'\n', &mut line) {
                    Ok(0) => break,
                    Ok(_) => control.grant_step(),
                    Err(error) => {
                        tracing::error!(%error, "failed to read standard input; step mode ends");
                        break;
                    }
                }
            }
            control.close_input();
        })
        .context("failed to spawn the standard input thread")?;
    Ok(())
}

/// Describes the outcome in one line: totals, how the replay ended, and what went wrong.
fn describe(outcome: &ReplayOutcome) -> String {
    let mut text = format!(
        "{} messages in {} packets from {} file(s)",
        outcome.messages(),
        outcome.packets(),
        outcome.files.len()
    );
    let ending = if outcome.complete {
        "; end of the files"
    } else if outcome.ended_by_input {
        "; standard input closed"
    } else {
        "; stopped before the end of the files"
    };
    text.push_str(ending);
    for file in &outcome.files {
        if let Some(capture) = file.capture {
            let skipped = capture.skipped_non_ipv4 + capture.skipped_non_udp + capture.skipped_fragments + capture.skipped_unsupported_link;
            if skipped > 0 || file.errors > 0 {
                text.push_str(&format!(
                    "; {}: {} frames, {} UDP datagrams, skipped {} non-IPv4, {} non-UDP, {} fragments, {} on unsupported links, {} errors",
                    file.path.display(),
                    capture.frames,
                    capture.udp_datagrams,
                    capture.skipped_non_ipv4,
                    capture.skipped_non_udp,
                    capture.skipped_fragments,
                    capture.skipped_unsupported_link,
                    file.errors
                ));
            }
        } else if file.errors > 0 {
            text.push_str(&format!("; {}: {} errors", file.path.display(), file.errors));
        }
    }
    for reason in &outcome.unreadable {
        text.push_str(&format!("; unreadable: {reason}"));
    }
    text
}

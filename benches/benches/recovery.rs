//! Recovery benchmark: the time the handler takes to fill a sequence gap at 1% packet loss, and
//! the latency that A/B line arbitration adds to healthy traffic.
//!
//! Each run starts a fresh pipeline with one TCP subscriber and sends the synthetic flow of
//! `mdfh_benches::synthetic_flow` as MoldUDP64 over UDP on 127.0.0.1 from the in-process
//! simulator. Recovery uses the default `[recovery]` settings, so the first retransmission
//! request of a gap waits `request_delay_us` (1 ms) for line B or a reordered packet to fill it.
//!
//! Runs:
//! - recovery: 1% of line A's packets lost, one line, with the retransmission server. This runs
//!   first with the default request delay, then with none, which leaves the retransmission round
//!   trip alone. Then 1% lost on each of lines A and B (independent seeded draws), with the server.
//! - arbitration, no faults, repeated for several rounds with the order of the cases rotated:
//!   (a) one line through `Source::Udp`, (b) one line through `Source::Lines` (sequencer, no
//!   line B), (c) lines A and B through `Source::Lines`.
//!
//! Run: `cargo bench -p mdfh-benches --bench recovery`. Environment:
//! - `RECOVERY_MESSAGES`: messages per run (default 200000);
//! - `RECOVERY_RATE`: messages per second (default 100000);
//! - `RECOVERY_ROUNDS`: rounds of the arbitration cases (default 5).

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mdfh::config::{Config, RecoverySection};
use mdfh::latency::{format_ns, LatencyBook, Percentiles, Stage};
use mdfh::pipeline::{Lines, Pipeline, Source};
use mdfh::sim::{FaultConfig, FaultTarget, Messages, RetransmitConfig, SimReport, UdpSim, UdpSimConfig};
use mdfh_feed::udp::{UdpConfig, UdpReceiver};

/// Seed of the synthetic flow and of the fault generators.
const SEED: u64 = 42;
/// Probability that a data packet is lost on a faulted line.
const LOSS: f64 = 0.01;
/// Time the simulator keeps the retransmission server up after the last message, so that a gap
/// at the end of the flow can still be filled.
const LINGER: Duration = Duration::from_millis(300);
/// Maximum wait for the pipeline to apply every message once the simulator has finished.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The input of stage 1 in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    /// Line A through `Source::Udp`: no sequencer.
    Udp,
    /// Line A through `Source::Lines`.
    LineA,
    /// Lines A and B through `Source::Lines`.
    LinesAB,
}

/// One run's settings.
#[derive(Debug, Clone, Copy)]
struct Case {
    name: &'static str,
    input: Input,
    /// Lines the loss applies to; `None` for no faults.
    loss_on: Option<FaultTarget>,
    retransmit: bool,
    /// `request_delay_us` of the `[recovery]` settings; `None` keeps the default.
    request_delay_us: Option<u64>,
}

/// Figures of one run.
struct Outcome {
    sim: SimReport,
    received: u64,
    elapsed: Duration,
    gaps: u64,
    gaps_filled: u64,
    retransmitted_messages: u64,
    arbitration_drops: u64,
    gave_up: u64,
    recovery_time: Percentiles,
    decode: Percentiles,
    end_to_end: Percentiles,
}

fn open_line() -> anyhow::Result<UdpReceiver> {
    let udp = UdpConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        multicast_group: None,
        interface: std::net::Ipv4Addr::UNSPECIFIED,
        recv_buffer_bytes: 8 << 20,
        batch: 32,
    };
    Ok(UdpReceiver::open(&udp)?)
}

/// Runs `case` once on a fresh pipeline and collects its figures.
fn run_case(messages: &Messages, rate: u64, case: &Case) -> anyhow::Result<Outcome> {
    let line_a = open_line()?;
    let line_b = if case.input == Input::LinesAB { Some(open_line()?) } else { None };
    let target = line_a.local_addr()?;
    let target_b = line_b.as_ref().map(UdpReceiver::local_addr).transpose()?;

    let faults = match case.loss_on {
        Some(target) => FaultConfig { seed: SEED, target, loss: LOSS, ..FaultConfig::default() },
        None => FaultConfig::default(),
    };
    let sim_config = UdpSimConfig {
        target_b,
        rate,
        faults,
        retransmit: case.retransmit.then(RetransmitConfig::default),
        linger: if case.retransmit { LINGER } else { Duration::ZERO },
        ..UdpSimConfig::new(target)
    };
    let sim = UdpSim::start(messages, &sim_config)?;

    let mut config = Config::default();
    config.simulator.enabled = false;
    config.stats.http = None;
    config.ws.enabled = false;
    config.publisher.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.recovery = RecoverySection { retransmit: sim.retransmit_addr(), ..RecoverySection::default() };
    if let Some(delay) = case.request_delay_us {
        config.recovery.request_delay_us = delay;
    }
    let source = match case.input {
        Input::Udp => Source::Udp(line_a),
        Input::LineA | Input::LinesAB => Source::Lines(Box::new(Lines::new(line_a, line_b, &config.recovery)?)),
    };
    let pipeline = Pipeline::start(&config, source)?;
    let subscriber = mdfh_benches::Subscriber::start(pipeline.subscriber_addr);

    let started = Instant::now();
    let stop = AtomicBool::new(false);
    let sim_report = sim.run(&stop)?;
    let elapsed = started.elapsed();

    let counters = &pipeline.shared.counters;
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while (counters.feed.messages.get() < sim_report.messages || counters.publish.events.get() < counters.book.events.get())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let shared = pipeline.shared.clone();
    pipeline.stop();
    pipeline.join();
    subscriber.stop();

    let mut latency = LatencyBook::new(shared.latency.clone());
    latency.roll();
    let mut recovery_time = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    shared.recovery_time.take_into(&mut recovery_time);
    let counters = &shared.counters;
    Ok(Outcome {
        sim: sim_report,
        received: counters.feed.messages.get(),
        elapsed,
        gaps: counters.recovery.gaps.get(),
        gaps_filled: counters.recovery.gaps_filled.get(),
        retransmitted_messages: counters.recovery.retransmitted_messages.get(),
        arbitration_drops: counters.recovery.arbitration_drops.get(),
        gave_up: counters.recovery.gave_up.get(),
        recovery_time: Percentiles::of(&recovery_time),
        decode: latency.total(Stage::Decode),
        end_to_end: latency.total(Stage::EndToEnd),
    })
}

fn print_recovery(case: &Case, outcome: &Outcome) {
    let lost_a = outcome.sim.line_a.lost_packets;
    let lost_b = outcome.sim.line_b.as_ref().map_or(0, |line| line.lost_packets);
    let requests = outcome.sim.retransmit.as_ref().map_or(0, |server| server.requests);
    println!(
        "{}: sent {} messages in {} packets in {:.2} s; received {}; lost packets A {lost_a} B {lost_b}; gaps {} filled {} gave up {}; retransmission requests {requests}, messages retransmitted {}; copies dropped by arbitration {}",
        case.name,
        outcome.sim.messages,
        outcome.sim.packets,
        outcome.elapsed.as_secs_f64(),
        outcome.received,
        outcome.gaps,
        outcome.gaps_filled,
        outcome.gave_up,
        outcome.retransmitted_messages,
        outcome.arbitration_drops,
    );
    let p = outcome.recovery_time;
    println!(
        "  recovery time: count {} p50 {} p99 {} p99.9 {} max {}",
        p.count,
        format_ns(p.p50),
        format_ns(p.p99),
        format_ns(p.p999),
        format_ns(p.max)
    );
}

/// A figure of an [`Outcome`] compared between cases: its label and how to read it.
type Metric = (&'static str, fn(&Outcome) -> u64);

/// The latency figures of the arbitration cases, in the order of the printed table.
const METRICS: [Metric; 6] = [
    ("receive->decoded p50", |o| o.decode.p50),
    ("receive->decoded p99", |o| o.decode.p99),
    ("receive->decoded p99.9", |o| o.decode.p999),
    ("end to end p50", |o| o.end_to_end.p50),
    ("end to end p99", |o| o.end_to_end.p99),
    ("end to end p99.9", |o| o.end_to_end.p999),
];

/// Prints, for each metric, the ratios of cases (b) and (c) to case (a) of the same round.
/// `outcomes[round][case]` follows the order of the arbitration cases.
fn print_ratios(outcomes: &[Vec<Option<Outcome>>]) {
    println!("ratios against (a) in the same round: min / median / max over {} rounds", outcomes.len());
    for (metric, value) in METRICS {
        for (index, label) in [(1, "(b)/(a)"), (2, "(c)/(a)")] {
            let mut ratios: Vec<f64> = outcomes
                .iter()
                .filter_map(|row| match (row.first(), row.get(index)) {
                    (Some(Some(base)), Some(Some(other))) => Some(value(other) as f64 / value(base).max(1) as f64),
                    _ => None,
                })
                .collect();
            let (min, median, max) = spread(&mut ratios);
            println!("  {metric:<24} {label}: {min:.2} / {median:.2} / {max:.2}");
        }
    }
}

/// Prints each arbitration case's median over the rounds of every latency figure.
fn print_medians(cases: &[Case], outcomes: &[Vec<Option<Outcome>>]) {
    println!("median over {} rounds", outcomes.len());
    for (index, case) in cases.iter().enumerate() {
        let figures: Vec<String> = METRICS
            .iter()
            .map(|(_, value)| {
                let mut values: Vec<f64> = outcomes
                    .iter()
                    .filter_map(|row| row.get(index).and_then(Option::as_ref).map(|o| value(o) as f64))
                    .collect();
                let (_, median, _) = spread(&mut values);
                format!("{:>9}", format_ns(median as u64))
            })
            .collect();
        println!("{:<6} {:<30} {:>9} {}", "median", case.name, "", figures.join(" "));
    }
}

/// Returns the smallest, the median and the largest of `values` (sorted in place).
fn spread(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let min = values.first().copied().unwrap_or(f64::NAN);
    let max = values.last().copied().unwrap_or(f64::NAN);
    let median = values.get(values.len() / 2).copied().unwrap_or(f64::NAN);
    (min, median, max)
}

fn main() -> anyhow::Result<()> {
    let count: usize = env_or("RECOVERY_MESSAGES", 200_000);
    let rate: u64 = env_or("RECOVERY_RATE", 100_000);
    let rounds: usize = env_or("RECOVERY_ROUNDS", 5).max(1);

    let mut messages = Messages::default();
    let mut buf = Vec::with_capacity(64);
    for msg in mdfh_benches::synthetic_flow(count, 8, SEED) {
        buf.clear();
        msg.encode(&mut buf);
        messages.push(&buf);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "recovery benchmark: synthetic flow of {} messages on 8 instruments at {rate} msg/s over UDP on 127.0.0.1, one TCP subscriber, {cores} cores, default idle strategy and [recovery] settings",
        messages.len()
    );
    // Other processes on the machine show in the tails: the load average puts the figures in context.
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average at start (1, 5, 15 min): {}", load.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    }

    let recovery_cases = [
        Case { name: "1% loss on line A, one line, retransmission", input: Input::LineA, loss_on: Some(FaultTarget::A), retransmit: true, request_delay_us: None },
        Case {
            name: "1% loss on line A, one line, retransmission, request_delay_us 0",
            input: Input::LineA,
            loss_on: Some(FaultTarget::A),
            retransmit: true,
            request_delay_us: Some(0),
        },
        Case { name: "1% loss on lines A and B, retransmission", input: Input::LinesAB, loss_on: Some(FaultTarget::Both), retransmit: true, request_delay_us: None },
    ];
    for case in &recovery_cases {
        let outcome = run_case(&messages, rate, case)?;
        print_recovery(case, &outcome);
    }

    let healthy = [
        Case { name: "(a) line A, Source::Udp", input: Input::Udp, loss_on: None, retransmit: false, request_delay_us: None },
        Case { name: "(b) line A, Source::Lines", input: Input::LineA, loss_on: None, retransmit: false, request_delay_us: None },
        Case { name: "(c) lines A+B, Source::Lines", input: Input::LinesAB, loss_on: None, retransmit: false, request_delay_us: None },
    ];
    println!();
    println!("arbitration cost, no faults, {rounds} rounds (the case order rotates each round)");
    println!(
        "{:<6} {:<30} {:>9} {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9}",
        "round", "case", "received", "dec p50", "dec p99", "dec p99.9", "e2e p50", "e2e p99", "e2e p99.9"
    );
    // outcomes[round][case index in `healthy`]
    let mut outcomes: Vec<Vec<Option<Outcome>>> = Vec::new();
    for round in 0..rounds {
        let mut row: Vec<Option<Outcome>> = (0..healthy.len()).map(|_| None).collect();
        for step in 0..healthy.len() {
            let index = (round + step) % healthy.len();
            let (Some(case), Some(slot)) = (healthy.get(index), row.get_mut(index)) else { continue };
            let outcome = run_case(&messages, rate, case)?;
            let (d, e) = (outcome.decode, outcome.end_to_end);
            println!(
                "{:<6} {:<30} {:>9} {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9}",
                round + 1,
                case.name,
                outcome.received,
                format_ns(d.p50),
                format_ns(d.p99),
                format_ns(d.p999),
                format_ns(e.p50),
                format_ns(e.p99),
                format_ns(e.p999)
            );
            *slot = Some(outcome);
        }
        outcomes.push(row);
    }

    println!();
    print_medians(&healthy, &outcomes);
    println!();
    print_ratios(&outcomes);
    Ok(())
}

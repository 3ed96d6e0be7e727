//! `mdfh run`: the feed handler.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use mdfh_feed::soupbintcp::{SoupClient, SoupClientConfig};
use mdfh_feed::udp::{UdpConfig, UdpReceiver};

use crate::config::{Config, InputKind};
use crate::pipeline::{Lines, Pipeline, Recording, Source};
use crate::record::{Recorder, WallClock};
use crate::sim::{self, Messages, UdpSimConfig};
use crate::stats::{self, Reporter};

/// Arguments of `mdfh run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// TOML configuration file; without it the embedded default runs: the built-in simulator
    /// replays the bundled LOBSTER AAPL sample over UDP on 127.0.0.1 into the handler.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Stop by itself after this many seconds (default: run until SIGINT or SIGTERM).
    #[arg(long)]
    pub duration: Option<f64>,
}

/// Runs `mdfh run`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let terminate = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, terminate.clone()).context("failed to install the signal handler")?;
    }

    let (source, feed_addr, line_b_addr) = open_source(&config)?;
    let (recording, recorder) = start_recorder(&config, feed_addr)?;
    let pipeline = Pipeline::start_recording(&config, source, recording)?;
    println!("mdfh: subscribers connect to {}", pipeline.subscriber_addr);
    if let Some(addr) = pipeline.web_addr {
        println!("mdfh: web terminal at http://{addr}/ (WebSocket /ws, SSE /sse)");
    }

    let mut reporter = Reporter::new(pipeline.shared.clone());
    if let Some(recorder) = &recorder {
        reporter.set_record_counters(recorder.counters());
    }
    if let Some(addr) = config.stats.http {
        let bound = stats::serve_http(addr, reporter.json_handle())?;
        println!("mdfh: stats at http://{bound}/stats");
    }

    let sim_stop = Arc::new(AtomicBool::new(false));
    let simulator = if config.simulator.enabled {
        Some(start_simulator(&config, feed_addr, line_b_addr, sim_stop.clone())?)
    } else {
        None
    };

    let deadline = args.duration.map(|secs| Instant::now() + Duration::from_secs_f64(secs.max(0.0)));
    stats::run_reporter(&mut reporter, config.stats_interval(), || {
        pipeline.refresh_web_stats();
        let expired = deadline.is_some_and(|d| Instant::now() >= d);
        if terminate.load(Ordering::Relaxed) || expired {
            sim_stop.store(true, Ordering::Relaxed);
            pipeline.stop();
        }
        pipeline.is_finished()
    });
    tracing::info!("shutting down");
    sim_stop.store(true, Ordering::Relaxed);
    let shared = pipeline.shared.clone();
    pipeline.join();
    if let Some(handle) = simulator {
        match handle.join() {
            Ok(Ok(report)) => tracing::info!(passes = report.passes, packets = report.packets, messages = report.messages, "simulator stopped"),
            Ok(Err(error)) => tracing::error!("simulator failed: {error:#}"),
            Err(_) => tracing::error!("simulator thread panicked"),
        }
    }
    if let Some(recorder) = recorder {
        let summary = recorder.finish().context("failed to complete the recording")?;
        for file in &summary.files {
            println!("mdfh: recorded {}", file.display());
        }
        let stats = &summary.stats;
        if stats.dropped > 0 || stats.lost > 0 || stats.write_errors > 0 {
            tracing::error!(dropped = stats.dropped, lost = stats.lost, write_errors = stats.write_errors, "the recording is incomplete");
        }
    }
    anyhow::ensure!(!shared.failed.load(Ordering::Acquire), "a pipeline stage failed; see the log above");
    Ok(())
}

/// Opens the configured input; returns it with the addresses the simulator should send line A
/// and line B to.
fn open_source(config: &Config) -> anyhow::Result<(Source, std::net::SocketAddr, Option<std::net::SocketAddr>)> {
    let input = &config.input;
    match input.kind {
        InputKind::Udp => {
            let udp = UdpConfig {
                bind: input.bind,
                multicast_group: input.multicast_group,
                interface: input.interface,
                recv_buffer_bytes: input.recv_buffer_bytes,
                batch: input.batch,
            };
            let receiver = UdpReceiver::open(&udp).with_context(|| format!("failed to open the UDP input on {}", input.bind))?;
            let local = receiver.local_addr().context("failed to read the UDP input address")?;
            let target = match input.multicast_group {
                Some(group) => std::net::SocketAddr::from((group, local.port())),
                None => local,
            };
            println!(
                "mdfh: feed: MoldUDP64 on {local}{} (receive buffer: the kernel reports {} bytes, twice the usable size)",
                input.multicast_group.map(|g| format!(", group {g}")).unwrap_or_default(),
                receiver.recv_buffer_granted()
            );
            let recovery = &config.recovery;
            if !recovery.is_active(input) {
                return Ok((Source::Udp(receiver), target, None));
            }
            let line_b = match input.bind_b {
                Some(bind) => {
                    let udp_b = UdpConfig { bind, multicast_group: input.multicast_group_b, ..udp };
                    let receiver_b = UdpReceiver::open(&udp_b).with_context(|| format!("failed to open line B on {bind}"))?;
                    let local_b = receiver_b.local_addr().context("failed to read the line B address")?;
                    println!(
                        "mdfh: feed: line B on {local_b}{} (receive buffer: the kernel reports {} bytes, twice the usable size)",
                        input.multicast_group_b.map(|g| format!(", group {g}")).unwrap_or_default(),
                        receiver_b.recv_buffer_granted()
                    );
                    let target_b = match input.multicast_group_b {
                        Some(group) => std::net::SocketAddr::from((group, local_b.port())),
                        None => local_b,
                    };
                    Some((receiver_b, target_b))
                }
                None => None,
            };
            let target_b = line_b.as_ref().map(|(_, target)| *target);
            let line_b = line_b.map(|(receiver, _)| receiver);
            let lines = Lines::new(receiver, line_b, recovery).context("failed to set up feed recovery")?;
            match (recovery.retransmit, lines.request_addr()) {
                (Some(server), Some(local)) => println!("mdfh: feed: retransmission requests to {server} from {local}"),
                _ => println!("mdfh: feed: no retransmission server; an unfilled gap goes to the fallback or marks books stale"),
            }
            if let Some(fallback) = recovery.fallback {
                println!("mdfh: feed: SoupBinTCP fallback at {fallback}");
            }
            Ok((Source::Lines(Box::new(lines)), target, target_b))
        }
        InputKind::Soupbintcp => {
            let server = input.connect.context("input.connect is required for SoupBinTCP")?;
            let client = SoupClient::new(SoupClientConfig {
                server,
                username: input.username.clone(),
                password: input.password.clone(),
                session: input.session.clone(),
                silence_timeout: Duration::from_secs_f64(input.silence_timeout_secs),
                ..SoupClientConfig::default()
            })
            .context("invalid SoupBinTCP login settings")?;
            println!("mdfh: feed: SoupBinTCP from {server}");
            Ok((Source::Soup(Box::new(client)), server, None))
        }
    }
}

fn start_simulator(
    config: &Config,
    feed_addr: std::net::SocketAddr,
    line_b_addr: Option<std::net::SocketAddr>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<sim::SimReport>>> {
    anyhow::ensure!(config.input.kind == InputKind::Udp, "the built-in simulator feeds UDP input only; set simulator.enabled = false");
    let messages = match &config.simulator.file {
        Some(path) => Messages::load(path)?,
        None => Messages::embedded_sample()?,
    };
    let sim_config = UdpSimConfig {
        target: config.simulator.target.unwrap_or(feed_addr),
        rate: config.simulator.rate,
        repeat: config.simulator.repeat,
        pause_between_passes: Duration::from_millis(500),
        target_b: line_b_addr,
        faults: sim::FaultConfig {
            seed: config.simulator.seed,
            target: config.simulator.faults,
            loss: config.simulator.loss,
            reorder: config.simulator.reorder,
            duplicate: config.simulator.duplicate,
            ..sim::FaultConfig::default()
        },
        // The exchange's recovery side, on the addresses the handler's recovery uses.
        retransmit: config.recovery.retransmit.map(|bind| sim::RetransmitConfig { bind, ..sim::RetransmitConfig::default() }),
        soup: config.recovery.fallback,
        ..UdpSimConfig::new(feed_addr)
    };
    sim_config.validate()?;
    println!(
        "mdfh: simulator: {} messages{} at {} msg/s to {}{}",
        messages.len(),
        config.simulator.file.as_ref().map(|p| format!(" from {}", p.display())).unwrap_or_else(|| " of the bundled LOBSTER AAPL sample".into()),
        sim_config.rate,
        sim_config.target,
        if sim_config.repeat { ", repeated, each pass a new session" } else { "" }
    );
    if let Some(b) = sim_config.target_b {
        println!("mdfh: simulator: line B to {b}");
    }
    let f = &sim_config.faults;
    if f.loss > 0.0 || f.reorder > 0.0 || f.duplicate > 0.0 {
        println!("mdfh: simulator: faults on line(s) {:?}: loss {}, reorder {}, duplicate {} (seed {})", f.target, f.loss, f.reorder, f.duplicate, f.seed);
    }
    std::thread::Builder::new()
        .name("mdfh-sim".into())
        .spawn(move || sim::run_udp(&messages, &sim_config, &stop))
        .context("failed to spawn the simulator thread")
}

/// Starts the recorder when `[record]` enables it; stage 1 then hands it every UDP datagram.
fn start_recorder(config: &Config, feed_addr: std::net::SocketAddr) -> anyhow::Result<(Option<Recording>, Option<Recorder>)> {
    if !config.record.enabled {
        return Ok((None, None));
    }
    anyhow::ensure!(config.input.kind == InputKind::Udp, "record.enabled needs UDP input: SoupBinTCP input cannot be recorded yet");
    let (tap, recorder) = crate::record::start(&config.record)?;
    let dst = match feed_addr {
        std::net::SocketAddr::V4(addr) => addr,
        std::net::SocketAddr::V6(_) => anyhow::bail!("record.enabled needs an IPv4 input address"),
    };
    println!("mdfh: recording received packets to {}", config.record.dir.display());
    Ok((Some(Recording { tap, clock: WallClock::new(), dst }), Some(recorder)))
}

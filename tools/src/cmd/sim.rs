//! `mdfh sim`: serve a recorded file as a live feed, as MoldUDP64 over UDP (lines A and B, with
//! seeded faults, a retransmission server and a SoupBinTCP fallback) or as a SoupBinTCP server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use mdfh_feed::soupbintcp::{SoupServer, SoupServerConfig};

use crate::sim::{FaultConfig, FaultTarget, Messages, RetransmitConfig, SimReport, UdpSim, UdpSimConfig};

/// Arguments of `mdfh sim`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("output").required(true).multiple(true).args(["udp", "soup"])))]
pub struct Args {
    /// BinaryFILE, pcap or pcapng to replay.
    pub file: PathBuf,
    /// Messages per second; 0 sends as fast as possible.
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Send MoldUDP64 datagrams to this address as line A (unicast, or a multicast group).
    #[arg(long, value_name = "ADDR")]
    pub udp: Option<SocketAddr>,
    /// UDP: also send every packet to this address as line B.
    #[arg(long, value_name = "ADDR", requires = "udp")]
    pub udp_b: Option<SocketAddr>,
    /// Serve the file as a SoupBinTCP session on this address. With --udp, serve each UDP pass's
    /// session at full speed as the fallback for recovery.
    #[arg(long, value_name = "ADDR")]
    pub soup: Option<SocketAddr>,
    /// UDP: replay the file again after each pass, each pass a new session, until interrupted.
    #[arg(long)]
    pub repeat: bool,
    /// UDP: seed of the fault generators; the same seed and packetization give the same faults.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub seed: u64,
    /// UDP: probability (0 to 1) that a data packet is lost.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub loss: f64,
    /// UDP: probability (0 to 1) that a data packet is sent after the next one.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub reorder: f64,
    /// UDP: probability (0 to 1) that a data packet is sent twice in a row.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub duplicate: f64,
    /// UDP: probability (0 to 1) that a data packet is sent --delay-us late.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub delay: f64,
    /// UDP: delay of a delayed packet, in microseconds.
    #[arg(long, default_value_t = 1_000, value_name = "N")]
    pub delay_us: u64,
    /// UDP: number of consecutive data packets lost in one burst.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub burst: u64,
    /// UDP: index (from 0) of the line's first data packet lost in the burst.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub burst_at: u64,
    /// UDP: lines the faults apply to.
    #[arg(long, value_enum, value_name = "LINES", default_value_t = FaultTarget::A)]
    pub faults: FaultTarget,
    /// UDP: start a retransmission server on this address (serves MoldUDP64 retransmission requests).
    #[arg(long, value_name = "ADDR", requires = "udp")]
    pub retransmit: Option<SocketAddr>,
    /// Retransmission server: number of messages of history served.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub retransmit_window: u64,
    /// Retransmission server: maximum number of messages sent in response to one request.
    #[arg(long, default_value_t = 500, value_name = "N")]
    pub retransmit_max: u16,
    /// Retransmission server: stop responding once N messages of the pass are sent.
    #[arg(long, value_name = "N")]
    pub retransmit_stop_after: Option<u64>,
    /// UDP: seconds the servers stay up after the last message, with heartbeats, before the end
    /// of session [default: 3 with --retransmit or --soup, else 0].
    #[arg(long, value_name = "SECS")]
    pub linger: Option<f64>,
    /// UDP: write the report (packets, injected faults, server counters) as JSON to FILE at the end.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// SoupBinTCP alone: the session id announced at login (up to 10 characters).
    #[arg(long, default_value = "SIM0000001")]
    pub session: String,
    /// SoupBinTCP alone: require this user name and password at login, as USER:PASSWORD.
    #[arg(long, value_name = "USER:PASSWORD")]
    pub credentials: Option<String>,
    /// SoupBinTCP alone: send End of Session after the last message and close the connection.
    #[arg(long)]
    pub end_of_session: bool,
}

/// Runs `mdfh sim`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let messages = Messages::load(&args.file)?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).context("failed to install the signal handler")?;
    }
    match args.udp {
        Some(target) => run_udp(args, &messages, target, &stop),
        None => run_soup(args, &messages, &stop),
    }
}

/// Linger of `mdfh sim` when a server runs and `--linger` is not given, in seconds: time for a
/// handler to recover a lost tail.
const DEFAULT_SERVER_LINGER_SECS: f64 = 3.0;

fn udp_config(args: &Args, target: SocketAddr) -> anyhow::Result<UdpSimConfig> {
    let has_server = args.retransmit.is_some() || args.soup.is_some();
    let linger = args.linger.unwrap_or(if has_server { DEFAULT_SERVER_LINGER_SECS } else { 0.0 });
    anyhow::ensure!(
        linger.is_finite() && linger >= 0.0,
        "invalid --linger {linger}: expected a number of seconds of 0 or more"
    );
    let faults = FaultConfig {
        seed: args.seed,
        target: args.faults,
        loss: args.loss,
        reorder: args.reorder,
        duplicate: args.duplicate,
        delay: args.delay,
        delay_us: args.delay_us,
        burst_len: args.burst,
        burst_at: args.burst_at,
    };
    let retransmit = args.retransmit.map(|bind| RetransmitConfig {
        bind,
        window_messages: args.retransmit_window,
        max_messages_per_response: args.retransmit_max,
        ..RetransmitConfig::default()
    });
    let config = UdpSimConfig {
        target_b: args.udp_b,
        rate: args.rate,
        repeat: args.repeat,
        faults,
        retransmit,
        retransmit_stop_after: args.retransmit_stop_after,
        soup: args.soup,
        linger: Duration::from_secs_f64(linger),
        ..UdpSimConfig::new(target)
    };
    config.validate()?;
    Ok(config)
}

fn run_udp(args: &Args, messages: &Messages, target: SocketAddr, stop: &AtomicBool) -> anyhow::Result<()> {
    let config = udp_config(args, target)?;
    let sim = UdpSim::start(messages, &config)?;
    let mut serving = format!("line A udp://{target}");
    if let Some(b) = config.target_b {
        serving.push_str(&format!(", line B udp://{b}"));
    }
    if let Some(addr) = sim.retransmit_addr() {
        serving.push_str(&format!(", retransmission requests on udp://{addr}"));
    }
    if let Some(addr) = sim.soup_addr() {
        serving.push_str(&format!(", SoupBinTCP fallback on tcp://{addr}"));
    }
    eprintln!(
        "mdfh sim: {} messages from {} at {}: {serving}",
        messages.len(),
        args.file.display(),
        rate_text(args.rate)
    );
    let report = sim.run(stop)?;
    let passes = if report.passes == 1 { "1 pass".to_string() } else { format!("{} passes", report.passes) };
    eprintln!("mdfh sim: sent {} messages in {} packets ({passes})", report.messages, report.packets);
    print_faults(&report);
    if let Some(path) = &args.report {
        let json = serde_json::to_string_pretty(&report).context("failed to serialize the report")?;
        std::fs::write(path, json).with_context(|| format!("failed to write the report to {}", path.display()))?;
    }
    Ok(())
}

fn print_faults(report: &SimReport) {
    let lines = [Some(("A", &report.line_a)), report.line_b.as_ref().map(|b| ("B", b))];
    for (name, line) in lines.into_iter().flatten() {
        eprintln!(
            "mdfh sim: line {name}: {} packets sent, {} lost ({} messages, {} in the burst), {} duplicated, {} reordered, {} delayed",
            line.packets_sent,
            line.lost_packets,
            line.lost_messages,
            line.burst_lost_packets,
            line.duplicated_packets,
            line.reordered_packets,
            line.delayed_packets
        );
    }
    if let Some(r) = &report.retransmit {
        eprintln!(
            "mdfh sim: retransmission server: {} requests, {} answered with {} messages, {} ignored while stopped, {} beyond the window, {} for another session, {} malformed",
            r.requests, r.answered, r.messages_sent, r.ignored_while_stopped, r.beyond_window, r.other_session, r.malformed
        );
    }
    if let Some(s) = &report.soup {
        eprintln!("mdfh sim: SoupBinTCP fallback: {} logins, {} messages sent", s.logins_accepted, s.messages_sent);
    }
}

fn run_soup(args: &Args, messages: &Messages, stop: &AtomicBool) -> anyhow::Result<()> {
    let Some(bind) = args.soup else {
        anyhow::bail!("one of --udp or --soup is required");
    };
    let credentials = match &args.credentials {
        Some(text) => {
            let (user, password) = text.split_once(':').context("--credentials must be USER:PASSWORD")?;
            Some((user.to_string(), password.to_string()))
        }
        None => None,
    };
    let config = SoupServerConfig {
        bind,
        session: args.session.clone(),
        credentials,
        messages_per_second: args.rate,
        end_of_session: args.end_of_session,
        ..SoupServerConfig::default()
    };
    let server = SoupServer::start(config, messages.to_shared()).with_context(|| format!("failed to start the SoupBinTCP server on {bind}"))?;
    eprintln!(
        "mdfh sim: serving {} messages from {} as SoupBinTCP session {} on {} at {}; Ctrl-C stops",
        messages.len(),
        args.file.display(),
        args.session,
        server.local_addr(),
        rate_text(args.rate)
    );
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    server.stop();
    let counters = server.counters();
    eprintln!("mdfh sim: {} connections, {} messages sent", counters.connections, counters.messages_sent);
    Ok(())
}

fn rate_text(rate: u64) -> String {
    match rate {
        0 => "full speed".to_string(),
        n => format!("{n} msg/s"),
    }
}

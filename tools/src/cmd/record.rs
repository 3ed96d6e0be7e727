//! `mdfh record`: a standalone recorder. It reads MoldUDP64 datagrams from a UDP socket (unicast
//! or multicast) and writes them to rotating nanosecond pcap files through the recorder of
//! [`crate::record`]. It builds no books.
//!
//! Each datagram's timestamp is read from the system clock right after the `recvmmsg` call that
//! received it, so datagrams of one call share a timestamp. When the socket is idle the loop
//! backs off (spin, yield, then park up to [`MAX_PARK`]), so the first datagram after a silence
//! is stamped up to that late.
//!
//! SIGINT or SIGTERM stops reading: the socket is drained, the current file is completed and
//! renamed, and the paths of the files written are printed on stdout, one per line. The exit
//! status is 1 when any datagram was not recorded or any I/O error happened.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use mdfh_feed::udp::{monotonic_ns, UdpConfig, UdpReceiver};

use crate::idle::{IdleStrategy, Idler};
use crate::ratelimit::{RateLimit, DEFAULT_PERIOD_NS};
use crate::record::{self, RecordConfig, RecordStats, RecordTap, WallClock, MAX_DATAGRAM_LEN};

/// Max park of the receive loop when the socket is idle.
const MAX_PARK: Duration = Duration::from_micros(50);
/// Receive calls made after a stop request to take what the socket still holds. The drain ends
/// earlier as soon as a call finds the socket empty.
const MAX_DRAIN_CALLS: usize = 10_000;
/// Seconds between two progress lines in the log.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);
/// The source address written into a record whose sender is unknown or not IPv4.
const UNKNOWN_SOURCE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);

/// Arguments of `mdfh record`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to bind: IP:PORT for unicast, 0.0.0.0:PORT or GROUP:PORT for multicast. Port 0
    /// picks a free port, which the start line names. IPv4 only.
    #[arg(long, value_name = "ADDR")]
    pub bind: SocketAddr,
    /// Multicast group to join.
    #[arg(long, value_name = "GROUP")]
    pub group: Option<Ipv4Addr>,
    /// Address of the interface to join the group on; 0.0.0.0 lets the kernel choose.
    #[arg(long, value_name = "IP", default_value_t = Ipv4Addr::UNSPECIFIED, requires = "group")]
    pub interface: Ipv4Addr,
    /// Folder of the pcap files; created when missing.
    #[arg(long, default_value_os_t = RecordConfig::default().dir)]
    pub dir: PathBuf,
    /// Start of every file name: PREFIX-yyyymmddThhmmss-NNNN.pcap (UTC).
    #[arg(long, default_value_t = RecordConfig::default().prefix)]
    pub prefix: String,
    /// Start a new file when the next record would take the current one past this many bytes;
    /// 0 = no limit.
    #[arg(long, value_name = "BYTES", default_value_t = RecordConfig::default().rotate_bytes)]
    pub rotate_bytes: u64,
    /// Start a new file when the current one is this many seconds old; 0 = no limit.
    #[arg(long, value_name = "SECS", default_value_t = RecordConfig::default().rotate_secs)]
    pub rotate_secs: u64,
    /// Capacity in datagrams of the ring to the writer thread. A datagram that finds it full is
    /// not recorded, and is counted.
    #[arg(long, value_name = "N", default_value_t = RecordConfig::default().ring_slots)]
    pub ring_slots: usize,
    /// Max bytes of one recorded frame, 42 bytes of Ethernet, IPv4 and UDP headers included.
    #[arg(long, value_name = "BYTES", default_value_t = RecordConfig::default().snaplen)]
    pub snaplen: u32,
    /// Receive buffer size requested with SO_RCVBUF, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 8 << 20)]
    pub recv_buffer_bytes: usize,
    /// Stop by itself after this many seconds (default: run until SIGINT or SIGTERM).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
}

impl Args {
    fn record_config(&self) -> RecordConfig {
        RecordConfig {
            enabled: true,
            dir: self.dir.clone(),
            prefix: self.prefix.clone(),
            rotate_bytes: self.rotate_bytes,
            rotate_secs: self.rotate_secs,
            ring_slots: self.ring_slots,
            snaplen: self.snaplen,
        }
    }
}

/// Runs `mdfh record`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.bind.is_ipv4(), "mdfh record reads IPv4 only, but --bind {} is IPv6", args.bind);
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).context("failed to install the signal handler")?;
    }

    let udp = UdpConfig {
        bind: args.bind,
        multicast_group: args.group,
        interface: args.interface,
        recv_buffer_bytes: args.recv_buffer_bytes,
        batch: 32,
    };
    // Slots of the longest datagram, so the kernel truncates nothing and the recorder's snaplen
    // alone decides what is kept.
    let mut receiver = UdpReceiver::open_with_slot_bytes(&udp, MAX_DATAGRAM_LEN)
        .with_context(|| format!("failed to open the UDP socket on {}", args.bind))?;
    let local = receiver.local_addr().context("failed to read the UDP socket address")?;
    let destination = match (args.group, local) {
        (Some(group), _) => SocketAddrV4::new(group, local.port()),
        (None, SocketAddr::V4(v4)) => v4,
        (None, SocketAddr::V6(_)) => anyhow::bail!("the UDP socket on {local} is not IPv4"),
    };

    let config = args.record_config();
    let (tap, recorder) = record::start(&config)?;
    eprintln!(
        "mdfh record: recording MoldUDP64 on {local}{} into {} (receive buffer {} bytes granted); SIGINT or SIGTERM stops",
        args.group.map(|g| format!(", group {g}")).unwrap_or_default(),
        config.dir.display(),
        receiver.recv_buffer_granted()
    );

    let deadline = args.duration.map(|secs| Instant::now() + Duration::from_secs_f64(secs.max(0.0)));
    let mut input = Input {
        receiver: &mut receiver,
        tap,
        clock: WallClock::new(),
        destination,
        errors: RateLimit::default(),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Two busy threads: this loop and the writer.
    let mut idler = Idler::new(IdleStrategy::Auto.resolve(cores, 2), MAX_PARK);
    let mut next_progress = Instant::now() + PROGRESS_INTERVAL;
    loop {
        let now = Instant::now();
        if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| now >= d) {
            break;
        }
        if now >= next_progress {
            next_progress = now + PROGRESS_INTERVAL;
            let stats = recorder.stats();
            tracing::info!("recording: {}", progress(&stats));
        }
        let received = input.receive();
        idler.idle(received);
    }

    for _ in 0..MAX_DRAIN_CALLS {
        if input.receive() == 0 {
            break;
        }
    }
    drop(input);

    let summary = recorder.finish()?;
    for file in &summary.files {
        println!("{}", file.display());
    }
    for file in &summary.abandoned {
        eprintln!("mdfh record: incomplete file left after an I/O error: {}", file.display());
    }
    let stats = &summary.stats;
    eprintln!("mdfh record: {}", progress(stats));
    let missing = stats.dropped + stats.lost;
    anyhow::ensure!(
        missing == 0,
        "{missing} datagrams were not recorded: {} found the ring full (raise --ring-slots), {} were lost to I/O errors",
        stats.dropped,
        stats.lost
    );
    anyhow::ensure!(stats.write_errors == 0, "{} I/O errors while recording; the log names the files", stats.write_errors);
    Ok(())
}

/// The receive side: the socket, the tap and what a record needs besides the datagram.
struct Input<'a> {
    receiver: &'a mut UdpReceiver,
    tap: RecordTap,
    clock: WallClock,
    destination: SocketAddrV4,
    errors: RateLimit,
}

impl Input<'_> {
    /// Receives one batch and offers each datagram to the tap; returns the datagrams received.
    fn receive(&mut self) -> usize {
        let Input { receiver, tap, clock, destination, .. } = self;
        let result = receiver.recv_batch_from(|datagram, recv_ns, source| {
            let source = match source {
                Some(SocketAddr::V4(source)) => source,
                _ => UNKNOWN_SOURCE,
            };
            tap.offer(datagram, clock.wall_ns(recv_ns), source, *destination);
        });
        match result {
            Ok(received) => received,
            Err(error) => {
                if let Some(suppressed) = self.errors.check(monotonic_ns(), DEFAULT_PERIOD_NS) {
                    tracing::warn!(%error, suppressed, "UDP receive failed");
                }
                0
            }
        }
    }
}

/// Formats the counters for the progress and summary lines.
fn progress(stats: &RecordStats) -> String {
    format!(
        "{} packets, {} bytes, {} files complete; {} dropped (ring full), {} lost (I/O errors), {} truncated, {} I/O errors",
        stats.packets, stats.bytes, stats.files, stats.dropped, stats.lost, stats.truncated, stats.write_errors
    )
}

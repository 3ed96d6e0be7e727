//! Pipeline benchmark: drives the whole handler (UDP receive and decode, books, publish to one
//! TCP subscriber) at a chosen message rate and prints p50 / p99 / p99.9 / max of every stage.
//!
//! The feed is the synthetic flow of `mdfh_benches::synthetic_flow` (message mix of the real
//! LOBSTER AAPL sample) sent as MoldUDP64 over UDP to 127.0.0.1 by the simulator, or a recorded
//! file. Everything stays on loopback.
//!
//! Run: `cargo bench -p mdfh-benches --bench pipeline`. Environment:
//! - `PIPELINE_RATE`: messages per second (default 100000);
//! - `PIPELINE_SECS`: seconds of feed (default 10);
//! - `PIPELINE_FILE`: a BinaryFILE or pcap to send instead of the synthetic flow (repeated, each
//!   pass a new session);
//! - `PIPELINE_IDLE`: idle strategy of every stage (`auto`, `busy-spin`, `spin-yield`, `backoff`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mdfh::config::Config;
use mdfh::idle::IdleStrategy;
use mdfh::latency::{LatencyBook, Stage};
use mdfh::pipeline::{Pipeline, Source};
use mdfh::sim::{self, Messages, UdpSimConfig};
use mdfh_feed::udp::{UdpConfig, UdpReceiver};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn idle_from_env() -> IdleStrategy {
    match std::env::var("PIPELINE_IDLE").as_deref() {
        Ok("busy-spin") => IdleStrategy::BusySpin,
        Ok("spin-yield") => IdleStrategy::SpinYield,
        Ok("backoff") => IdleStrategy::Backoff,
        _ => IdleStrategy::Auto,
    }
}

fn main() -> anyhow::Result<()> {
    let rate: u64 = env_or("PIPELINE_RATE", 100_000);
    let secs: f64 = env_or("PIPELINE_SECS", 10.0);
    let idle = idle_from_env();

    let (messages, repeat, what) = match std::env::var("PIPELINE_FILE") {
        Ok(path) => (Messages::load(std::path::Path::new(&path))?, true, path),
        Err(_) => {
            let count = (rate as f64 * secs) as usize;
            let mut messages = Messages::default();
            let mut buf = Vec::with_capacity(64);
            for msg in mdfh_benches::synthetic_flow(count, 8, 42) {
                buf.clear();
                msg.encode(&mut buf);
                messages.push(&buf);
            }
            (messages, false, format!("synthetic flow of {count} messages on 8 instruments"))
        }
    };

    let mut config = Config::default();
    config.simulator.enabled = false;
    config.stats.http = None;
    config.ws.enabled = false;
    config.publisher.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.pipeline.idle.receive = idle;
    config.pipeline.idle.book = idle;
    config.pipeline.idle.publish = idle;
    let udp = UdpConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        multicast_group: None,
        interface: std::net::Ipv4Addr::UNSPECIFIED,
        recv_buffer_bytes: 8 << 20,
        batch: 32,
    };
    let receiver = UdpReceiver::open(&udp)?;
    let feed_addr = receiver.local_addr()?;
    let pipeline = Pipeline::start(&config, Source::Udp(receiver))?;

    let subscriber = mdfh_benches::Subscriber::start(pipeline.subscriber_addr);

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "pipeline benchmark: {what} at {rate} msg/s for {secs} s over UDP on loopback, one TCP subscriber (all instruments, depth 10), idle {:?} on {cores} cores",
        idle.resolve(cores, 3)
    );
    let stop = AtomicBool::new(false);
    let sim_config = UdpSimConfig {
        target: feed_addr,
        rate,
        repeat,
        pause_between_passes: Duration::ZERO,
        ..UdpSimConfig::new(feed_addr)
    };
    let started = Instant::now();
    let report = std::thread::scope(|scope| {
        let sender = scope.spawn(|| sim::run_udp(&messages, &sim_config, &stop));
        if repeat {
            std::thread::sleep(Duration::from_secs_f64(secs));
            stop.store(true, Ordering::Relaxed);
        }
        sender.join()
    });
    let sent = match report {
        Ok(Ok(report)) => report.messages,
        Ok(Err(error)) => return Err(error),
        Err(_) => anyhow::bail!("simulator thread panicked"),
    };
    let sending = started.elapsed().as_secs_f64();
    // Let the last packets through before stopping.
    let deadline = Instant::now() + Duration::from_secs(5);
    while pipeline.shared.counters.publish.events.get() < pipeline.shared.counters.book.events.get()
        || pipeline.shared.counters.feed.messages.get() < sent
    {
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let shared = pipeline.shared.clone();
    pipeline.stop();
    pipeline.join();
    let frames = subscriber.stop();

    let mut latency = LatencyBook::new(shared.latency.clone());
    latency.roll();
    let counters = &shared.counters;
    println!(
        "sent {sent} messages in {sending:.2} s ({:.0} msg/s); received {}; gaps {}; decode errors {}; book errors {}; ring-full waits {}/{}; subscriber frames {}; slow-consumer disconnects {}",
        sent as f64 / sending,
        counters.feed.messages.get(),
        counters.feed.gaps.get(),
        counters.feed.unknown_message_types.get() + counters.feed.truncated_messages.get() + counters.feed.short_packets.get(),
        counters.book.unknown_orders.get() + counters.book.over_executions.get() + counters.book.duplicate_orders.get(),
        counters.feed.ring_full_waits.get(),
        counters.book.ring_full_waits.get(),
        frames,
        counters.publish.slow_consumer_disconnects.get(),
    );
    println!("{:<20} {:>10} {:>10} {:>10} {:>10} {:>10}", "stage", "count", "p50 ns", "p99 ns", "p99.9 ns", "max ns");
    for stage in Stage::ALL {
        let p = latency.total(stage);
        println!("{:<20} {:>10} {:>10} {:>10} {:>10} {:>10}", stage.name(), p.count, p.p50, p.p99, p.p999, p.max);
    }
    Ok(())
}

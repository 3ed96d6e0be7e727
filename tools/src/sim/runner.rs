//! The UDP simulator's send loop: packetization at a steady rate, lines A and B with their
//! faults, heartbeats, and the retransmission and SoupBinTCP servers that follow each pass.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use mdfh_feed::moldudp64::{PacketBuilder, SessionId};
use mdfh_feed::recovery::server::RetransmitServer;
use mdfh_feed::soupbintcp::{SoupServer, SoupServerConfig};

use super::faults::{LineId, Verdict};
use super::lines::Line;
use super::report::{RetransmitReport, SimReport, SoupReport};
use super::{session_id, Messages, UdpSimConfig};

/// Shortest sleep of the simulator between two sends.
const MIN_SLEEP: Duration = Duration::from_micros(50);

/// Maximum sleep while lingering or pausing, so that `stop` is checked at least this often.
const POLL_SLEEP: Duration = Duration::from_millis(10);

/// Number of end-of-session packets sent at the end of a pass.
const END_OF_SESSION_REPEATS: usize = 3;

/// A simulator with its lines open and its servers started, ready to [`run`](UdpSim::run).
pub struct UdpSim<'a> {
    messages: &'a Messages,
    config: UdpSimConfig,
    lines: Vec<Line>,
    /// Sequence number the live feed sends next, shared with the retransmission server.
    published: Arc<AtomicU64>,
    retransmit: Option<RetransmitServer>,
    soup: Option<SoupServer>,
    /// The SoupBinTCP server's resolved address, so that the server of the next pass binds it.
    soup_addr: Option<SocketAddr>,
    shared_messages: Arc<[Box<[u8]>]>,
    report: SimReport,
}

impl<'a> UdpSim<'a> {
    /// Checks the configuration, opens the lines and starts the servers of pass 1.
    pub fn start(messages: &'a Messages, config: &UdpSimConfig) -> anyhow::Result<UdpSim<'a>> {
        anyhow::ensure!(!messages.is_empty(), "nothing to send");
        config.validate()?;
        let mut lines = vec![Line::open(LineId::A, config.target, &config.faults)?];
        if let Some(target_b) = config.target_b {
            lines.push(Line::open(LineId::B, target_b, &config.faults)?);
        }
        let needs_list = config.retransmit.is_some() || config.soup.is_some();
        let shared_messages = if needs_list { messages.to_shared() } else { Arc::from(Vec::new()) };
        let published = Arc::new(AtomicU64::new(1));
        let retransmit = match &config.retransmit {
            Some(retransmit) => Some(
                RetransmitServer::start(retransmit.clone(), session_id(1), Arc::clone(&shared_messages), Arc::clone(&published))
                    .with_context(|| format!("failed to start the retransmission server on {}", retransmit.bind))?,
            ),
            None => None,
        };
        let mut sim = UdpSim {
            messages,
            config: config.clone(),
            lines,
            published,
            retransmit,
            soup: None,
            soup_addr: config.soup,
            shared_messages,
            report: SimReport::default(),
        };
        sim.start_soup(session_id(1))?;
        Ok(sim)
    }

    /// Returns the address of the retransmission server, when there is one.
    pub fn retransmit_addr(&self) -> Option<SocketAddr> {
        self.retransmit.as_ref().map(RetransmitServer::local_addr)
    }

    /// Returns the address of the SoupBinTCP fallback server, when there is one.
    pub fn soup_addr(&self) -> Option<SocketAddr> {
        self.soup.as_ref().map(SoupServer::local_addr)
    }

    /// Sends the messages until done (or `stop` is set) and returns the report. The servers stop
    /// when this returns.
    pub fn run(mut self, stop: &AtomicBool) -> anyhow::Result<SimReport> {
        let mut pass = 1u64;
        loop {
            let session = session_id(pass);
            if pass > 1 {
                self.begin_pass(session)?;
            }
            let finished = self.send_pass(session, stop)?;
            if !finished || !self.config.repeat {
                break;
            }
            let pause_end = Instant::now() + self.config.pause_between_passes;
            while Instant::now() < pause_end && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(POLL_SLEEP);
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
            pass += 1;
        }
        Ok(self.finish())
    }

    /// Points the servers at the new pass's session, from sequence 1.
    fn begin_pass(&mut self, session: SessionId) -> anyhow::Result<()> {
        self.published.store(1, Ordering::Release);
        if let Some(server) = &self.retransmit {
            server.set_session(session);
            server.set_answering(true);
        }
        self.start_soup(session)
    }

    /// Starts (or restarts, for a new session) the SoupBinTCP fallback server.
    fn start_soup(&mut self, session: SessionId) -> anyhow::Result<()> {
        let Some(bind) = self.soup_addr else {
            return Ok(());
        };
        if let Some(old) = self.soup.take() {
            self.add_soup_counters(&old);
            drop(old);
        }
        // NOTE: the server streams the whole file at full speed, messages not yet sent on UDP
        // included, so the handler's fallback catches up sooner than a real exchange allows.
        let config = SoupServerConfig {
            bind,
            session: String::from_utf8_lossy(&session).into_owned(),
            messages_per_second: 0,
            ..SoupServerConfig::default()
        };
        let server = SoupServer::start(config, Arc::clone(&self.shared_messages))
            .with_context(|| format!("failed to start the SoupBinTCP server on {bind}"))?;
        self.soup_addr = Some(server.local_addr());
        self.soup = Some(server);
        Ok(())
    }

    fn add_soup_counters(&mut self, server: &SoupServer) {
        let report = self.report.soup.get_or_insert_with(|| SoupReport::new(server.local_addr()));
        report.add(&server.counters());
    }

    /// Sends one pass as `session`. Returns false when `stop` cut it short.
    fn send_pass(&mut self, session: SessionId, stop: &AtomicBool) -> anyhow::Result<bool> {
        let messages = self.messages;
        let rate = self.config.rate;
        let interval = self.config.heartbeat_interval;
        let mut builder = PacketBuilder::new(session, 1, self.config.max_packet_bytes);
        let mut pass_messages = 0u64;
        let start = Instant::now();
        let mut next = 0usize;
        while next < messages.len() {
            if stop.load(Ordering::Relaxed) {
                self.release_held()?;
                return Ok(false);
            }
            let due = due_count(rate, start.elapsed(), messages.len());
            if due <= next {
                for line in &mut self.lines {
                    line.heartbeat_if_idle(interval, session, builder.next_sequence())?;
                }
                let send_at = start + Duration::from_secs_f64((next as f64 + 1.0) / rate.max(1) as f64);
                let heartbeat_at = self.lines.iter().map(|l| l.heartbeat_due(interval)).min().unwrap_or(send_at);
                wait_until(send_at.min(heartbeat_at));
                continue;
            }
            while next < due {
                let Some(message) = messages.get(next) else { break };
                if !builder.try_push(message) {
                    let count = u64::from(builder.count());
                    self.send_data(builder.finish(), count, pass_messages + count)?;
                    pass_messages += count;
                    if !builder.try_push(message) {
                        anyhow::bail!("message {next} ({} bytes) does not fit a MoldUDP64 packet", message.len());
                    }
                }
                next += 1;
                self.report.messages += 1;
            }
            if !builder.is_empty() {
                let count = u64::from(builder.count());
                self.send_data(builder.finish(), count, pass_messages + count)?;
                pass_messages += count;
            }
        }

        // The tail: held packets, a heartbeat right away so that a lost last packet shows as a
        // gap, heartbeats while lingering, then the end of session.
        let end_sequence = builder.next_sequence();
        self.release_held()?;
        for line in &mut self.lines {
            line.heartbeat(session, end_sequence)?;
        }
        let linger_end = Instant::now() + self.config.linger;
        while Instant::now() < linger_end {
            if stop.load(Ordering::Relaxed) {
                return Ok(false);
            }
            for line in &mut self.lines {
                line.heartbeat_if_idle(interval, session, end_sequence)?;
            }
            std::thread::sleep(POLL_SLEEP.min(linger_end.saturating_duration_since(Instant::now())));
        }
        for _ in 0..END_OF_SESSION_REPEATS {
            for line in &mut self.lines {
                line.end_of_session(session, end_sequence)?;
            }
        }
        self.report.passes += 1;
        Ok(true)
    }

    /// Sends one data packet to every line. `pass_messages` counts the messages of the pass up
    /// to and including this packet.
    fn send_data(&mut self, packet: &[u8], messages: u64, pass_messages: u64) -> anyhow::Result<()> {
        // The history includes the packet before any fault: a lost packet can be requested.
        self.published.store(pass_messages + 1, Ordering::Release);
        if let (Some(server), Some(limit)) = (&self.retransmit, self.config.retransmit_stop_after) {
            if pass_messages >= limit {
                server.set_answering(false);
            }
        }
        self.report.packets += 1;

        // Lines whose copy is not delayed go first, so that a delay on one line does not hold
        // this packet on the other.
        // NOTE: one thread sends both lines, so a delay also holds the other line's next packets.
        let mut verdicts = [Verdict::default(); 2];
        for (line, verdict) in self.lines.iter_mut().zip(verdicts.iter_mut()) {
            *verdict = line.roll();
        }
        for delayed in [false, true] {
            for (line, verdict) in self.lines.iter_mut().zip(verdicts) {
                if verdict.delay == delayed {
                    line.send_data(packet, messages, verdict)?;
                }
            }
        }
        Ok(())
    }

    fn release_held(&mut self) -> anyhow::Result<()> {
        for line in &mut self.lines {
            line.release_held()?;
        }
        Ok(())
    }

    /// Collects the line counts and the server counters, and stops the servers.
    fn finish(mut self) -> SimReport {
        let mut lines = std::mem::take(&mut self.lines).into_iter();
        if let Some(line) = lines.next() {
            self.report.line_a = line.report;
        }
        self.report.line_b = lines.next().map(|line| line.report);
        if let Some(server) = self.retransmit.take() {
            server.stop();
            self.report.retransmit = Some(RetransmitReport::new(server.local_addr(), server.counters()));
        }
        if let Some(server) = self.soup.take() {
            server.stop();
            self.add_soup_counters(&server);
        }
        self.report
    }
}

/// Returns how many of `total` messages are due `elapsed` after the start at `rate` per second.
pub(super) fn due_count(rate: u64, elapsed: Duration, total: usize) -> usize {
    if rate == 0 {
        return total;
    }
    let due = (elapsed.as_secs_f64() * rate as f64) as usize + 1;
    due.min(total)
}

/// Sleeps until `deadline`, but at least [`MIN_SLEEP`]: messages that fall due meanwhile leave
/// together in one packet, as on a real feed, and the simulator does not hold a core spinning.
fn wait_until(deadline: Instant) {
    let left = deadline.saturating_duration_since(Instant::now());
    std::thread::sleep(left.max(MIN_SLEEP));
}

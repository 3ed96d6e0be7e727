//! One output line of the simulator: a UDP destination, its fault generator and its counts.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use mdfh_feed::moldudp64::{self, SessionId};
use mdfh_feed::udp::UdpSender;

use super::faults::{FaultConfig, FaultRoller, LineId, Verdict};
use super::report::LineReport;

/// A data packet held back by a reorder fault.
#[derive(Debug, Default)]
struct Held {
    bytes: Vec<u8>,
    messages: u64,
    verdict: Verdict,
    /// A packet is held.
    active: bool,
}

/// One line (A or B).
pub(super) struct Line {
    sender: UdpSender,
    roller: FaultRoller,
    delay: Duration,
    held: Held,
    /// When the line last sent a packet, or lost one: a lost packet counts as sent by the
    /// exchange and dropped by the network, so it does not bring a heartbeat forward.
    last_send: Instant,
    control: Vec<u8>,
    pub report: LineReport,
}

impl Line {
    pub fn open(id: LineId, target: SocketAddr, faults: &FaultConfig) -> anyhow::Result<Line> {
        let sender = UdpSender::for_target(target).with_context(|| format!("failed to open a UDP socket towards {target}"))?;
        Ok(Line {
            sender,
            roller: FaultRoller::new(faults, id),
            delay: faults.delay_duration(),
            held: Held::default(),
            last_send: Instant::now(),
            control: Vec::with_capacity(moldudp64::HEADER_LEN),
            report: LineReport::new(target),
        })
    }

    /// Decides the faults of the line's next data packet.
    pub fn roll(&mut self) -> Verdict {
        self.roller.roll()
    }

    /// Sends one data packet carrying `messages` messages with the faults of `verdict`.
    pub fn send_data(&mut self, packet: &[u8], messages: u64, verdict: Verdict) -> anyhow::Result<()> {
        self.last_send = Instant::now();
        if verdict.lost {
            self.report.lost_packets += 1;
            self.report.lost_messages += messages;
            if verdict.burst {
                self.report.burst_lost_packets += 1;
            }
            return Ok(());
        }
        if verdict.reorder && !self.held.active {
            self.held.bytes.clear();
            self.held.bytes.extend_from_slice(packet);
            self.held.messages = messages;
            self.held.verdict = verdict;
            self.held.active = true;
            return Ok(());
        }
        self.send_copies(packet, verdict)?;
        if self.held.active {
            self.held.active = false;
            self.report.reordered_packets += 1;
            let held = std::mem::take(&mut self.held.bytes);
            let result = self.send_copies(&held, self.held.verdict);
            self.held.bytes = held;
            result?;
        }
        Ok(())
    }

    /// Sends a held packet, in order since nothing followed it: not counted as reordered.
    pub fn release_held(&mut self) -> anyhow::Result<()> {
        if !self.held.active {
            return Ok(());
        }
        self.held.active = false;
        let held = std::mem::take(&mut self.held.bytes);
        let result = self.send_copies(&held, self.held.verdict);
        self.held.bytes = held;
        result
    }

    fn send_copies(&mut self, packet: &[u8], verdict: Verdict) -> anyhow::Result<()> {
        if verdict.delay {
            self.report.delayed_packets += 1;
            std::thread::sleep(self.delay);
        }
        let copies = if verdict.duplicate { 2 } else { 1 };
        if verdict.duplicate {
            self.report.duplicated_packets += 1;
        }
        for _ in 0..copies {
            self.sender
                .send_to(packet, self.report.target)
                .with_context(|| format!("failed to send a packet to {}", self.report.target))?;
            self.report.packets_sent += 1;
        }
        self.last_send = Instant::now();
        Ok(())
    }

    /// Returns when the line is due for a heartbeat.
    pub fn heartbeat_due(&self, interval: Duration) -> Instant {
        self.last_send + interval
    }

    /// Sends a heartbeat when the line has sent nothing for `interval`.
    pub fn heartbeat_if_idle(&mut self, interval: Duration, session: SessionId, next_sequence: u64) -> anyhow::Result<()> {
        if Instant::now() >= self.heartbeat_due(interval) {
            self.heartbeat(session, next_sequence)?;
        }
        Ok(())
    }

    /// Sends a heartbeat now.
    pub fn heartbeat(&mut self, session: SessionId, next_sequence: u64) -> anyhow::Result<()> {
        moldudp64::heartbeat(session, next_sequence, &mut self.control);
        self.send_control()?;
        self.report.heartbeats_sent += 1;
        Ok(())
    }

    /// Sends an end-of-session packet.
    pub fn end_of_session(&mut self, session: SessionId, next_sequence: u64) -> anyhow::Result<()> {
        moldudp64::end_of_session(session, next_sequence, &mut self.control);
        self.send_control()?;
        self.report.end_of_session_sent += 1;
        Ok(())
    }

    fn send_control(&mut self) -> anyhow::Result<()> {
        self.sender
            .send_to(&self.control, self.report.target)
            .with_context(|| format!("failed to send a control packet to {}", self.report.target))?;
        self.last_send = Instant::now();
        Ok(())
    }
}

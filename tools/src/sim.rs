//! The simulator: replays recorded ITCH messages as a live MoldUDP64 feed over UDP at a steady
//! rate. `mdfh run` embeds it (on the bundled LOBSTER AAPL sample) and `mdfh sim` runs it alone.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use mdfh_feed::file;
use mdfh_feed::session::{FileSequence, FileVerdict};
use mdfh_feed::moldudp64::{self, PacketBuilder};
use mdfh_feed::udp::UdpSender;

/// The bundled real sample: LOBSTER's AAPL 2012-06-21 message and 10-level orderbook files (first
/// 600 events), converted to ITCH 5.0 at start.
const SAMPLE_MESSAGES: &str = include_str!("../../tests/data/lobster/AAPL_2012-06-21_34200000_57600000_message_10.csv");
const SAMPLE_ORDERBOOK: &str = include_str!("../../tests/data/lobster/AAPL_2012-06-21_34200000_57600000_orderbook_10.csv");

/// Shortest sleep of the simulator between two sends.
const MIN_SLEEP: Duration = Duration::from_micros(50);

/// Largest MoldUDP64 packet the simulator sends, in bytes (fits a 1500-byte Ethernet MTU).
pub const MAX_PACKET_BYTES: usize = 1400;

/// Raw ITCH messages, in order, in one buffer.
#[derive(Debug, Clone, Default)]
pub struct Messages {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Messages {
    /// Reads every message of a BinaryFILE, pcap or pcapng file. Messages that fail to frame are
    /// reported on the log and left out.
    pub fn load(path: &Path) -> anyhow::Result<Messages> {
        let feed = file::open(path).with_context(|| format!("failed to open {}", path.display()))?;
        let mut messages = Messages::default();
        let mut errors = 0u64;
        let mut sequence = FileSequence::default();
        for item in feed.messages() {
            match item {
                Ok(message) => {
                    // A capture can hold the same packet twice (both lines, or a resend):
                    // replaying it twice would apply its executions twice.
                    if sequence.check(message.session, message.moldudp64_sequence) != FileVerdict::Duplicate {
                        messages.push(message.bytes);
                    }
                }
                Err(error) => {
                    errors += 1;
                    if errors <= 10 {
                        tracing::warn!(file = %path.display(), %error, "message left out of the replay");
                    }
                }
            }
        }
        if sequence.duplicates > 0 || sequence.gaps > 0 {
            tracing::warn!(
                file = %path.display(),
                duplicates = sequence.duplicates,
                gaps = sequence.gaps,
                missed = sequence.missed,
                "the capture's MoldUDP64 sequence numbers have duplicates (left out) or gaps"
            );
        }
        if errors > 10 {
            tracing::warn!(file = %path.display(), errors, "messages left out of the replay in all");
        }
        anyhow::ensure!(!messages.is_empty(), "{} contains no ITCH message", path.display());
        Ok(messages)
    }

    /// Converts the bundled LOBSTER AAPL sample to ITCH.
    pub fn embedded_sample() -> anyhow::Result<Messages> {
        let options = crate::lobster::ConvertOptions {
            symbol: "AAPL".to_string(),
            ..crate::lobster::ConvertOptions::default()
        };
        let itch = crate::lobster::convert(SAMPLE_MESSAGES, SAMPLE_ORDERBOOK, &options)
            .context("failed to convert the bundled LOBSTER sample")?;
        Messages::from_binary_file(&itch)
    }

    /// Reads the messages of a BinaryFILE held in memory.
    pub fn from_binary_file(bytes: &[u8]) -> anyhow::Result<Messages> {
        let mut messages = Messages::default();
        for item in mdfh_feed::binaryfile::Reader::new(bytes) {
            let (_, message) = item?;
            messages.push(message);
        }
        Ok(messages)
    }

    pub fn push(&mut self, message: &[u8]) {
        self.bytes.extend_from_slice(message);
        self.ends.push(self.bytes.len());
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Returns message `i`.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.bytes.get(start..end)
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

/// Settings of the UDP simulator.
#[derive(Debug, Clone)]
pub struct UdpSimConfig {
    pub target: SocketAddr,
    /// Messages per second; 0 sends as fast as the socket takes them.
    pub rate: u64,
    /// Start again, as a new session, after each pass.
    pub repeat: bool,
    /// Seconds to wait after a pass before the next one (heartbeats meanwhile).
    pub pause_between_passes: Duration,
}

/// Totals of one simulator run.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimReport {
    pub passes: u64,
    pub packets: u64,
    pub messages: u64,
}

/// Returns the session id of pass `pass`: 10 ASCII characters.
pub fn session_id(pass: u64) -> moldudp64::SessionId {
    let text = format!("SIM{:07}", pass % 10_000_000);
    let mut id = [b' '; 10];
    id.copy_from_slice(&text.as_bytes()[..10]);
    id
}

/// Sends `messages` as MoldUDP64 to `config.target` until done (or `stop` is set): each pass is a
/// new session numbered from sequence 1 and ends with an end-of-session packet. Messages due at
/// the same moment share a packet, up to [`MAX_PACKET_BYTES`].
pub fn run_udp(messages: &Messages, config: &UdpSimConfig, stop: &AtomicBool) -> anyhow::Result<SimReport> {
    anyhow::ensure!(!messages.is_empty(), "nothing to send");
    let sender = UdpSender::for_target(config.target).with_context(|| format!("failed to open a UDP socket towards {}", config.target))?;
    let mut report = SimReport::default();
    let mut control = Vec::with_capacity(64);
    let mut pass = 1u64;
    loop {
        let session = session_id(pass);
        let mut builder = PacketBuilder::new(session, 1, MAX_PACKET_BYTES);
        let start = Instant::now();
        let mut next = 0usize;
        while next < messages.len() {
            if stop.load(Ordering::Relaxed) {
                return Ok(report);
            }
            let due = due_count(config.rate, start.elapsed(), messages.len());
            if due <= next {
                wait_until(start + Duration::from_secs_f64((next as f64 + 1.0) / config.rate.max(1) as f64));
                continue;
            }
            while next < due {
                let Some(message) = messages.get(next) else { break };
                if !builder.try_push(message) {
                    send(&sender, config.target, builder.finish(), &mut report)?;
                    if !builder.try_push(message) {
                        anyhow::bail!("message {next} ({} bytes) does not fit a MoldUDP64 packet", message.len());
                    }
                }
                next += 1;
                report.messages += 1;
            }
            send(&sender, config.target, builder.finish(), &mut report)?;
        }
        control.clear();
        moldudp64::end_of_session(session, messages.len() as u64 + 1, &mut control);
        // Not through `send`, which skips header-only packets: an end of session is one.
        sender
            .send_to(&control, config.target)
            .with_context(|| format!("failed to send the end of session to {}", config.target))?;
        report.passes += 1;
        if !config.repeat {
            return Ok(report);
        }
        let pause_end = Instant::now() + config.pause_between_passes;
        while Instant::now() < pause_end {
            if stop.load(Ordering::Relaxed) {
                return Ok(report);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        pass += 1;
    }
}

fn send(sender: &UdpSender, target: SocketAddr, packet: &[u8], report: &mut SimReport) -> anyhow::Result<()> {
    if packet.len() <= moldudp64::HEADER_LEN {
        return Ok(());
    }
    sender.send_to(packet, target).with_context(|| format!("failed to send a packet to {target}"))?;
    report.packets += 1;
    Ok(())
}

/// Returns how many of `total` messages are due `elapsed` after the start at `rate` per second.
fn due_count(rate: u64, elapsed: Duration, total: usize) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_sample_converts() {
        let messages = Messages::embedded_sample().unwrap();
        // Seed and directory first, then one message per LOBSTER row after the first.
        assert!(messages.len() > 599, "{} messages", messages.len());
        for message in messages.iter() {
            mdfh_feed::itch::decode(message).unwrap();
        }
    }

    #[test]
    fn session_ids_are_ten_bytes_and_distinct() {
        assert_eq!(&session_id(1), b"SIM0000001");
        assert_ne!(session_id(1), session_id(2));
    }

    #[test]
    fn due_count_follows_rate() {
        assert_eq!(due_count(1000, Duration::from_millis(0), 600), 1);
        assert_eq!(due_count(1000, Duration::from_millis(100), 600), 101);
        assert_eq!(due_count(1000, Duration::from_secs(10), 600), 600);
        assert_eq!(due_count(0, Duration::ZERO, 600), 600);
    }
}

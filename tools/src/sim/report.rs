//! The simulator's report: totals, faults injected per line and the counters of its servers.
//! It serializes to JSON with the field names below.

use std::net::SocketAddr;

use mdfh_feed::recovery::server::RetransmitCounters;
use mdfh_feed::soupbintcp::ServerCounters;
use serde::{Deserialize, Serialize};

/// Totals of one simulator run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimReport {
    /// Passes over the messages completed.
    pub passes: u64,
    /// Data packets built, each sent to every line (faults aside).
    pub packets: u64,
    /// Messages packed into data packets.
    pub messages: u64,
    pub line_a: LineReport,
    pub line_b: Option<LineReport>,
    pub retransmit: Option<RetransmitReport>,
    pub soup: Option<SoupReport>,
}

/// Packets sent and faults injected on one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineReport {
    pub target: SocketAddr,
    /// Copies of data packets sent: duplicates count twice, lost packets not at all.
    /// Heartbeats and end-of-session packets are not counted here.
    pub packets_sent: u64,
    /// Data packets lost, bursts included.
    pub lost_packets: u64,
    /// Messages in the lost packets.
    pub lost_messages: u64,
    /// Data packets lost in the burst (also counted in `lost_packets`).
    pub burst_lost_packets: u64,
    /// Data packets sent twice in a row.
    pub duplicated_packets: u64,
    /// Data packets sent after a data packet with a higher sequence number.
    pub reordered_packets: u64,
    /// Data packets sent late.
    pub delayed_packets: u64,
    pub heartbeats_sent: u64,
    pub end_of_session_sent: u64,
}

impl LineReport {
    pub fn new(target: SocketAddr) -> LineReport {
        LineReport {
            target,
            packets_sent: 0,
            lost_packets: 0,
            lost_messages: 0,
            burst_lost_packets: 0,
            duplicated_packets: 0,
            reordered_packets: 0,
            delayed_packets: 0,
            heartbeats_sent: 0,
            end_of_session_sent: 0,
        }
    }
}

impl Default for LineReport {
    fn default() -> Self {
        LineReport::new(SocketAddr::from(([127, 0, 0, 1], 0)))
    }
}

/// Counters of the retransmission server at the end of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetransmitReport {
    pub address: SocketAddr,
    pub requests: u64,
    pub answered: u64,
    pub messages_sent: u64,
    pub packets_sent: u64,
    pub beyond_window: u64,
    pub other_session: u64,
    pub malformed: u64,
    pub ignored_while_stopped: u64,
    pub send_errors: u64,
}

impl RetransmitReport {
    pub fn new(address: SocketAddr, c: RetransmitCounters) -> RetransmitReport {
        RetransmitReport {
            address,
            requests: c.requests,
            answered: c.answered,
            messages_sent: c.messages_sent,
            packets_sent: c.packets_sent,
            beyond_window: c.beyond_window,
            other_session: c.other_session,
            malformed: c.malformed,
            ignored_while_stopped: c.ignored_while_stopped,
            send_errors: c.send_errors,
        }
    }
}

/// Counters of the SoupBinTCP fallback server at the end of the run, summed over passes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoupReport {
    pub address: SocketAddr,
    pub connections: u64,
    pub logins_accepted: u64,
    pub logins_rejected: u64,
    pub messages_sent: u64,
    pub heartbeats_sent: u64,
    pub malformed_frames: u64,
    pub client_timeouts: u64,
}

impl SoupReport {
    pub fn new(address: SocketAddr) -> SoupReport {
        SoupReport {
            address,
            connections: 0,
            logins_accepted: 0,
            logins_rejected: 0,
            messages_sent: 0,
            heartbeats_sent: 0,
            malformed_frames: 0,
            client_timeouts: 0,
        }
    }

    /// Adds the counters of one server (one pass).
    pub fn add(&mut self, c: &ServerCounters) {
        self.connections += c.connections;
        self.logins_accepted += c.logins_accepted;
        self.logins_rejected += c.logins_rejected;
        self.messages_sent += c.messages_sent;
        self.heartbeats_sent += c.heartbeats_sent;
        self.malformed_frames += c.malformed_frames;
        self.client_timeouts += c.client_timeouts;
    }
}

//! The sequencer's settings, its output and its counters.

use crate::moldudp64::SessionId;
use crate::recovery::request::Request;

/// Default of [`SequencerConfig::max_jump_messages`] and of the line counters' jump bound.
pub const DEFAULT_MAX_JUMP_MESSAGES: u64 = 1_000_000;

/// Settings of a [`Sequencer`](super::Sequencer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequencerConfig {
    /// Packets held back while a gap is open.
    pub buffer_packets: usize,
    /// Largest packet held, in bytes. A longer packet is released when it is next in sequence;
    /// otherwise it is counted in `oversized_packets` and handled like a full buffer.
    pub max_packet_bytes: usize,
    /// Maximum number of messages requested at once (the server's limit).
    pub max_request_messages: u16,
    /// Maximum number of requests in flight.
    pub max_outstanding: usize,
    /// Wait after a gap opens before the first request, in ns, so that the other line or a
    /// reordered packet can fill it first.
    pub request_delay_ns: u64,
    /// Wait for a response before requesting again, in ns. Doubles on each retry up to
    /// `max_backoff_ns`.
    pub request_timeout_ns: u64,
    /// Maximum wait between retries of one request, in ns.
    pub max_backoff_ns: u64,
    /// Time in ns the oldest gap may go without progress before retransmission is abandoned.
    /// It counts from the gap's opening or from the last advance of `next`, whichever is later.
    /// The gap then goes to the fallback when there is one; otherwise the sequencer gives up.
    pub give_up_ns: u64,
    /// Whether a fallback (SoupBinTCP) exists.
    pub fallback: bool,
    /// Time the fallback has to close every gap before the sequencer gives up, in ns.
    pub fallback_timeout_ns: u64,
    /// Largest forward jump, in messages past the horizon (the highest sequence known), that
    /// a line packet or heartbeat may make on its own. A packet that jumps further is dropped
    /// and counted in `implausible_packets` until a second line packet confirms the jump, so
    /// that one corrupt or forged sequence number cannot open a gap of millions of messages.
    /// Set it above the most messages a session can lose between two packets that arrive.
    pub max_jump_messages: u64,
}

impl Default for SequencerConfig {
    fn default() -> Self {
        SequencerConfig {
            buffer_packets: 8192,
            max_packet_bytes: crate::udp::DEFAULT_SLOT_BYTES,
            max_request_messages: 500,
            max_outstanding: 8,
            request_delay_ns: 1_000_000,
            request_timeout_ns: 20_000_000,
            max_backoff_ns: 500_000_000,
            give_up_ns: 2_000_000_000,
            fallback: false,
            fallback_timeout_ns: 10_000_000_000,
            max_jump_messages: DEFAULT_MAX_JUMP_MESSAGES,
        }
    }
}

/// Source of a packet passed to [`Sequencer::on_packet`](super::Sequencer::on_packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A live multicast line, numbered by the owner (0 for A, 1 for B).
    Line(u8),
    /// A response of the retransmission server.
    Retransmission,
    /// The SoupBinTCP fallback stream, each message wrapped as a one-message MoldUDP64 packet.
    Fallback,
}

/// Output of a [`Sequencer`](super::Sequencer), implemented by the receive stage.
pub trait SequencerOutput {
    /// Receives a packet for the session tracker, in sequence order (whole datagram, header included).
    fn release(&mut self, datagram: &[u8], recv_ns: u64);
    /// Sends a retransmission request to the server.
    fn request(&mut self, request: &Request);
    /// Receives a change of the recovery state, for book quality, stats and fallback control.
    fn event(&mut self, event: RecoveryEvent);
}

/// Changes of the recovery state, passed to [`SequencerOutput::event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryEvent {
    /// Messages first..end (end excluded) are missing; packets after them are held.
    GapOpened { first: u64, end: u64, now_ns: u64 },
    /// The gap opened at detected_ns with these bounds has been released in full. A gap that
    /// lost messages to a give-up gets [`RecoveryEvent::GaveUp`] instead.
    GapFilled { first: u64, end: u64, detected_ns: u64, now_ns: u64 },
    /// No gap is open any more: everything up to `next` has been released in order. Also sent
    /// after a give-up, once the held packets were released with the gaps in them.
    Recovered { next: u64 },
    /// Connect the fallback for `session`, starting at sequence `first`.
    FallbackStart { session: SessionId, first: u64 },
    /// The fallback is no longer needed (caught up with the live lines), or gave up: disconnect it.
    FallbackEnd { caught_up: bool },
    /// Recovery of first..end was abandoned; the held packets were released with the gap in them.
    GaveUp { first: u64, end: u64 },
}

/// Running totals of a [`Sequencer`](super::Sequencer).
///
/// Every gap opened (`gaps`) ends in exactly one of four ways. It is released in full
/// (`gaps_filled`, one [`GapFilled`](super::RecoveryEvent::GapFilled) each), released with
/// messages given up (`gave_up`), dropped by a reset (`reset_gaps`), or merged into the newest
/// gap because the gap list was full (`merged_gaps`). So after every call,
/// `gaps == gaps_filled + gave_up + reset_gaps + merged_gaps + open_gaps()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SequencerCounters {
    pub released_packets: u64,
    /// Copies dropped because their messages were released or held already (the other line's
    /// copy, repeats, overlapping responses), and held packets made redundant by a larger one.
    pub arbitration_drops: u64,
    /// Gaps opened, and the messages missing in them when they opened.
    pub gaps: u64,
    pub gap_messages: u64,
    /// Gaps released in full.
    pub gaps_filled: u64,
    /// Gaps dropped by [`Sequencer::reset`](super::Sequencer::reset) while open.
    pub reset_gaps: u64,
    /// Gaps merged into the newest open gap because the gap list was full.
    pub merged_gaps: u64,
    /// Requests sent (retries included), retries alone, and the messages in all of them.
    pub requests_sent: u64,
    pub requests_retried: u64,
    pub messages_requested: u64,
    /// New messages (not seen before) released from retransmission responses / the fallback.
    pub retransmitted_messages: u64,
    pub fallback_messages: u64,
    /// Fallback connections started.
    pub fallbacks: u64,
    /// Gaps that lost messages to a give-up, and the messages given up. One gap can have
    /// several [`GaveUp`](super::RecoveryEvent::GaveUp) events, one per range abandoned in it.
    pub gave_up: u64,
    pub messages_given_up: u64,
    /// Packets that did not fit the hold-back buffer.
    pub buffer_overflows: u64,
    /// Responses dropped as unrequested: those that overlap no outstanding request or extend
    /// past the end of every request they overlap. Fallback packets that start past the horizon
    /// and heartbeats or end-of-session packets from either source count here too. Then
    /// responses of another session, and responses wholly below what was already released.
    pub unrequested_responses: u64,
    pub foreign_responses: u64,
    pub late_responses: u64,
    /// Packets longer than `max_packet_bytes` that had to be held.
    pub oversized_packets: u64,
    /// Held packets dropped by [`Sequencer::reset`](super::Sequencer::reset).
    pub reset_drops: u64,
    /// Line packets and heartbeats dropped because they jumped more than `max_jump_messages`
    /// past the horizon without confirmation.
    pub implausible_packets: u64,
    /// Ends of session withdrawn because a data packet carried messages at or after the end's
    /// sequence.
    pub revoked_ends: u64,
}

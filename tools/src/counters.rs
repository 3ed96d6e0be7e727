//! Counters shared between the stages and the reporter. Each counter has exactly one writer (the
//! stage that owns it), so an increment is a relaxed load and store with no locked instruction;
//! readers see a value at most one increment old.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// A counter written by one thread and read by any.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning stage calls this, so load-then-store loses nothing.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    #[inline]
    pub fn incr(&self) {
        self.add(1);
    }

    /// Overwrites the value, for counters mirrored from a component that keeps its own.
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Serialize for Counter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.get())
    }
}

/// Stage 1: receive, framing, session and decode.
#[derive(Debug, Default, Serialize)]
pub struct FeedCounters {
    pub packets: Counter,
    pub bytes: Counter,
    pub messages: Counter,
    pub heartbeats: Counter,
    pub end_of_session: Counter,
    pub session_changes: Counter,
    pub duplicate_packets: Counter,
    pub duplicate_messages: Counter,
    pub gaps: Counter,
    /// Messages inside sequence gaps (never received).
    pub messages_missed: Counter,
    /// Sequenced messages received but not applied because they could not be framed or decoded
    /// (an unknown message type excepted); each marks the books stale like a gap.
    pub messages_lost: Counter,
    /// Packets of another MoldUDP64 session than the current one, dropped.
    pub foreign_session_packets: Counter,
    /// Packets with a sequence number of 0 or beyond any real feed's range, dropped.
    pub invalid_sequences: Counter,
    /// Datagrams larger than the receive buffer, dropped by the kernel's truncation.
    pub truncated_datagrams: Counter,
    /// Datagrams the kernel dropped because a socket receive buffer was full, on every line, as
    /// far as the kernel reports them (Linux). A drop shows once a later datagram arrives.
    pub kernel_drops: Counter,
    /// Packets shorter than the MoldUDP64 header.
    pub short_packets: Counter,
    /// Message blocks whose length runs past the end of the packet.
    pub blocks_past_end: Counter,
    pub unknown_message_types: Counter,
    pub truncated_messages: Counter,
    pub invalid_fields: Counter,
    /// Times stage 1 found the ring to stage 2 full and waited.
    pub ring_full_waits: Counter,
    /// SoupBinTCP: connections made.
    pub soup_connects: Counter,
    /// SoupBinTCP: connections lost (closed by the server, silent too long, malformed or
    /// unexpected data, or a rejected login).
    pub soup_disconnects: Counter,
}

/// Stage 2: order books.
#[derive(Debug, Default, Serialize)]
pub struct BookCounters {
    pub messages_applied: Counter,
    pub events: Counter,
    pub unknown_orders: Counter,
    pub over_executions: Counter,
    pub duplicate_orders: Counter,
    pub crossed_books: Counter,
    pub unknown_instruments: Counter,
    pub other_errors: Counter,
    pub resets: Counter,
    pub ring_full_waits: Counter,
}

/// Stage 3: subscribers, mirrored from the publisher.
#[derive(Debug, Default, Serialize)]
pub struct PublishCounters {
    pub events: Counter,
    pub subscribers: Counter,
    pub connections_accepted: Counter,
    pub slow_consumer_disconnects: Counter,
    pub malformed_requests: Counter,
    pub frames_sent: Counter,
    pub bytes_sent: Counter,
    /// Level updates replaced by conflated catch-ups for clients that fell behind.
    pub conflated_updates: Counter,
    /// Fresh snapshots sent to resnapshot clients that fell behind.
    pub resnapshots: Counter,
    pub digests_sent: Counter,
}

/// Recovery of lost messages (stage 1), mirrored from its sequencer. All zero when the input
/// does not use recovery.
#[derive(Debug, Default, Serialize)]
pub struct RecoveryCounters {
    /// Gaps opened after merging the lines, and the messages in them.
    pub gaps: Counter,
    pub gap_messages: Counter,
    /// Gaps closed with every message applied in order.
    pub gaps_filled: Counter,
    pub requests_sent: Counter,
    pub requests_retried: Counter,
    pub messages_requested: Counter,
    /// New messages applied from retransmission responses.
    pub retransmitted_messages: Counter,
    /// Copies dropped because the other line (or a response) had delivered them first.
    pub arbitration_drops: Counter,
    pub fallbacks: Counter,
    /// New messages applied from the SoupBinTCP fallback.
    pub fallback_messages: Counter,
    /// Fallback connections that failed or were lost before the gap closed.
    pub fallback_failures: Counter,
    /// Gaps that lost messages to a give-up (books marked stale), and the messages lost.
    pub gave_up: Counter,
    pub messages_given_up: Counter,
    /// Packets that did not fit the hold-back buffer.
    pub buffer_overflows: Counter,
    /// Responses that match no outstanding request, name another session, or repeat messages
    /// already applied.
    pub unrequested_responses: Counter,
    pub foreign_responses: Counter,
    pub late_responses: Counter,
    /// Datagrams from the retransmission server that are not whole MoldUDP64 packets.
    pub malformed_responses: Counter,
    /// Datagrams on the retransmission socket from an address other than the server's.
    pub stray_datagrams: Counter,
    /// Requests the socket refused to send.
    pub request_send_errors: Counter,
    /// Held packets dropped because a new session started (the books reset with them).
    pub reset_drops: Counter,
    /// Packets too long for a hold-back slot, handled like a full buffer.
    pub oversized_packets: Counter,
    /// Packets dropped because their sequence jumped more than `max_jump_messages` ahead, until a
    /// second packet confirmed the jump.
    pub implausible_packets: Counter,
    /// Ends of session withdrawn because the session went on to send messages.
    pub revoked_ends: Counter,
    /// Gaps merged into a neighbour (each then ends with it), and gaps dropped by a new session.
    /// `gaps` = `gaps_filled` + `gave_up` + `merged_gaps` + `reset_gaps` + gaps still open.
    pub merged_gaps: Counter,
    pub reset_gaps: Counter,
}

/// Counts of what one line (A or B) delivered, independent of the other.
#[derive(Debug, Default, Serialize)]
pub struct LineCounters {
    pub packets: Counter,
    pub messages: Counter,
    pub heartbeats: Counter,
    /// Packets this line had delivered before.
    pub duplicate_packets: Counter,
    /// Packets that arrived after later ones on this line.
    pub reordered_packets: Counter,
    /// Forward jumps in this line's sequence numbers.
    pub gaps: Counter,
    /// Messages of the current session this line never delivered, up to its highest sequence.
    pub missing_messages: Counter,
    /// Packets older than the line's window of sequence numbers (a jump backwards).
    pub backwards_packets: Counter,
    /// Packets with sequence 0, beyond any real feed's range, or jumping too far ahead.
    pub invalid_packets: Counter,
    /// Times the line fell silent.
    pub silences: Counter,
    /// Datagrams the kernel dropped on this line's socket (full receive buffer).
    pub kernel_drops: Counter,
}

/// Every counter of the pipeline.
#[derive(Debug, Default, Serialize)]
pub struct Counters {
    pub feed: FeedCounters,
    pub book: BookCounters,
    pub publish: PublishCounters,
    pub recovery: RecoveryCounters,
    /// Line A and line B.
    pub lines: [LineCounters; 2],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_adds_and_serializes() {
        let counters = Counters::default();
        counters.feed.gaps.incr();
        counters.feed.messages_missed.add(5);
        let json = serde_json::to_value(&counters).unwrap();
        assert_eq!(json["feed"]["gaps"], 1);
        assert_eq!(json["feed"]["messages_missed"], 5);
        assert_eq!(json["book"]["unknown_orders"], 0);
    }
}

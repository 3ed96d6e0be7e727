//! Sequencer: merges lines A and B, retransmission responses and a SoupBinTCP fallback into one
//! stream of MoldUDP64 packets released in sequence order, each message once.
//!
//! The sequencer does no I/O and allocates nothing after [`Sequencer::new`]. Held packets are
//! copied into pre-allocated slots. The index of held packets, the open gaps and the outstanding
//! requests are collections reserved to their bounds at construction. Time is passed in as
//! monotonic nanoseconds, so behaviour is deterministic.
//!
//! Invariants:
//! - `next <= horizon`.
//! - Every held packet has `sequence > next` and `end <= horizon`.
//! - Held packets are ordered by sequence and none contains another, so both their sequences and
//!   their ends strictly increase.
//! - Every missing message in `next..horizon` lies in an open gap.
//!
//! Hostile input: a line packet or heartbeat that jumps more than `max_jump_messages` past the
//! horizon is dropped until a second one confirms the jump (see `screen.rs`). Retransmission
//! responses are accepted only inside the outstanding requests they overlap, and fallback packets
//! only up to the horizon, so neither moves the horizon. A data packet at or after an end of
//! session revokes the end.

mod requests;
mod screen;
mod types;

use std::collections::VecDeque;

use crate::moldudp64::{PacketHeader, SessionId, END_OF_SESSION, HEADER_LEN, HEARTBEAT};
use crate::session::MAX_SEQUENCE;

pub use types::{
    Origin, RecoveryEvent, SequencerConfig, SequencerCounters, SequencerOutput, DEFAULT_MAX_JUMP_MESSAGES,
};

/// A packet copied into a slot of the hold-back buffer.
#[derive(Debug, Clone, Copy)]
struct Held {
    sequence: u64,
    /// Sequence after the packet's last message.
    end: u64,
    slot: usize,
    len: usize,
    recv_ns: u64,
    origin: Origin,
}

/// A packet passed in that could not be held, released in order by a give-up.
#[derive(Clone, Copy)]
struct Incoming<'a> {
    sequence: u64,
    end: u64,
    datagram: &'a [u8],
    recv_ns: u64,
    origin: Origin,
}

/// A range of messages found missing, kept until `next` passes its end.
#[derive(Debug, Clone, Copy)]
struct Gap {
    first: u64,
    end: u64,
    detected_ns: u64,
    /// Some of its messages were given up, so it gets no `GapFilled`.
    abandoned: bool,
}

/// A request sent whose messages have not all arrived.
#[derive(Debug, Clone, Copy)]
struct Outstanding {
    sequence: u64,
    end: u64,
    sent_ns: u64,
    timeout_ns: u64,
}

/// An end-of-session packet held until `next` reaches its sequence.
#[derive(Debug, Clone, Copy)]
struct PendingEnd {
    header: [u8; HEADER_LEN],
    sequence: u64,
    recv_ns: u64,
}

/// Orders packets of one MoldUDP64 session from several sources, holds packets back behind
/// gaps, requests the missing messages, and releases every message once, in order.
pub struct Sequencer {
    config: SequencerConfig,
    session: Option<SessionId>,
    /// Whether the session ended, in which case packets are released as they come.
    ended: bool,
    /// Sequence of the end of session that set `ended`. A data packet with a message at or
    /// after it revokes the end.
    end_sequence: u64,
    /// Sequence of the last line packet dropped as an implausible forward jump.
    jump_candidate: Option<u64>,
    /// Sequence of the next message to release.
    next: u64,
    /// Highest sequence known: the maximum end of any packet and sequence of any heartbeat.
    horizon: u64,
    /// A gap was opened and `Recovered` has not been sent since.
    recovering: bool,
    /// `buffer_packets` slots of `max_packet_bytes` bytes each.
    storage: Vec<u8>,
    free_slots: Vec<usize>,
    held: VecDeque<Held>,
    gaps: VecDeque<Gap>,
    requests: Vec<Outstanding>,
    pending_end: Option<PendingEnd>,
    /// Start time of the active fallback, in ns.
    fallback_since: Option<u64>,
    /// Time before which `poll` has nothing to do, in ns.
    poll_at: u64,
    /// When `next` last advanced, in ns.
    advanced_ns: u64,
    counters: SequencerCounters,
}

impl Sequencer {
    /// Creates a sequencer with every buffer allocated. `buffer_packets`, `max_request_messages`
    /// and `max_outstanding` are raised to at least 1.
    pub fn new(mut config: SequencerConfig) -> Sequencer {
        config.buffer_packets = config.buffer_packets.max(1);
        config.max_outstanding = config.max_outstanding.max(1);
        // 0xFFFF is the end-of-session count, so a request never has that count.
        config.max_request_messages = config.max_request_messages.clamp(1, END_OF_SESSION - 1);
        let slots = config.buffer_packets;
        let storage = vec![0u8; slots.saturating_mul(config.max_packet_bytes)];
        Sequencer {
            session: None,
            ended: false,
            end_sequence: 0,
            jump_candidate: None,
            next: 0,
            horizon: 0,
            recovering: false,
            storage,
            free_slots: (0..slots).rev().collect(),
            held: VecDeque::with_capacity(slots),
            gaps: VecDeque::with_capacity(slots),
            requests: Vec::with_capacity(config.max_outstanding),
            pending_end: None,
            fallback_since: None,
            poll_at: u64::MAX,
            advanced_ns: 0,
            counters: SequencerCounters::default(),
            config,
        }
    }

    /// Returns the current session; `None` before `reset` was first called.
    pub fn session(&self) -> Option<SessionId> {
        self.session
    }

    /// Returns the sequence of the next message to release.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Returns whether a gap is open (packets held or messages missing).
    pub fn is_recovering(&self) -> bool {
        self.next < self.horizon || !self.held.is_empty()
    }

    /// Returns whether a fallback is active.
    pub fn in_fallback(&self) -> bool {
        self.fallback_since.is_some()
    }

    /// Returns the running totals.
    pub fn counters(&self) -> &SequencerCounters {
        &self.counters
    }

    /// Returns the number of gaps open, the last term of the identity in [`SequencerCounters`].
    pub fn open_gaps(&self) -> usize {
        self.gaps.len()
    }

    /// Follows the session tracker: called by the owner when the tracker started a session (or
    /// on the first packet). Drops everything held (counted in `reset_drops`), cancels requests
    /// and the fallback (sending `FallbackEnd { caught_up: false }` when one was active), and
    /// continues from `next`. `ended` is the tracker's `is_ended()`: packets of an ended session
    /// are released as they come, because nothing after the end of session can fill a gap.
    pub fn reset(&mut self, session: SessionId, next: u64, ended: bool, out: &mut impl SequencerOutput) {
        let dropped = self.held.len() + usize::from(self.pending_end.is_some());
        self.counters.reset_drops += dropped as u64;
        self.counters.reset_gaps += self.gaps.len() as u64;
        self.held.clear();
        self.free_slots.clear();
        self.free_slots.extend((0..self.config.buffer_packets).rev());
        self.pending_end = None;
        self.gaps.clear();
        self.requests.clear();
        if self.fallback_since.take().is_some() {
            out.event(RecoveryEvent::FallbackEnd { caught_up: false });
        }
        self.session = Some(session);
        self.ended = ended;
        self.end_sequence = next;
        self.jump_candidate = None;
        self.next = next;
        self.horizon = next;
        self.recovering = false;
        self.poll_at = u64::MAX;
        self.advanced_ns = 0;
    }

    /// Takes one packet of the current session (the owner passes packets of other sessions
    /// straight to the tracker and calls `reset` when the tracker switched). `datagram` includes
    /// the header. Packets that arrive before the first `reset`, line packets of another session
    /// and packets with an invalid sequence are released unchanged for the tracker to classify.
    ///
    /// Returns false when the packet was dropped as an unconfirmed forward jump, counted in
    /// `implausible_packets`, so that the owner can leave it out of the line's statistics.
    /// Returns true for every other packet, whether released, held or dropped as a copy.
    pub fn on_packet(
        &mut self,
        origin: Origin,
        header: &PacketHeader,
        datagram: &[u8],
        recv_ns: u64,
        now_ns: u64,
        out: &mut impl SequencerOutput,
    ) -> bool {
        let Some(session) = self.session else {
            release(&mut self.counters, out, datagram, recv_ns);
            return true;
        };
        if header.session != session {
            if origin == Origin::Retransmission {
                self.counters.foreign_responses += 1;
            } else {
                release(&mut self.counters, out, datagram, recv_ns);
            }
            return true;
        }
        if header.sequence == 0 || header.sequence > MAX_SEQUENCE {
            release(&mut self.counters, out, datagram, recv_ns);
            return true;
        }
        if !self.is_plausible(origin, header.sequence) {
            return false;
        }
        match header.count {
            // Neither source sends these, and their sequence could move the horizon.
            HEARTBEAT | END_OF_SESSION if !matches!(origin, Origin::Line(_)) => {
                self.counters.unrequested_responses += 1;
            }
            HEARTBEAT => self.on_heartbeat(header.sequence, datagram, recv_ns, now_ns, out),
            END_OF_SESSION => self.on_end_of_session(header.sequence, datagram, recv_ns, now_ns, out),
            count => {
                let packet = Incoming {
                    sequence: header.sequence,
                    end: header.sequence.saturating_add(u64::from(count)),
                    datagram,
                    recv_ns,
                    origin,
                };
                self.on_messages(packet, now_ns, out);
            }
        }
        true
    }

    /// Ends the active fallback at once, as if it had timed out: releases the held packets with
    /// the gaps in them (`GaveUp`) and sends `FallbackEnd { caught_up: false }`. The owner calls
    /// it when the fallback cannot deliver the missing messages, e.g. when the server accepted a
    /// login for another session or starting after the requested sequence. Does nothing when no
    /// fallback is active.
    pub fn fallback_failed(&mut self, now_ns: u64, out: &mut impl SequencerOutput) {
        if self.fallback_since.is_some() {
            self.give_up(None, now_ns, out);
        }
    }

    /// Runs the timers: first requests after `request_delay_ns`, retries with backoff and a
    /// bounded number outstanding, give-up or fallback start, fallback timeout. Returns at once
    /// when no timer is due, so it can be called on every loop of the receive thread.
    pub fn poll(&mut self, now_ns: u64, out: &mut impl SequencerOutput) {
        if now_ns < self.poll_at {
            return;
        }
        self.poll_at = u64::MAX;
        if !self.is_recovering() {
            return;
        }

        if let Some(since) = self.fallback_since {
            let deadline = since.saturating_add(self.config.fallback_timeout_ns);
            if now_ns >= deadline {
                self.give_up(None, now_ns, out);
            } else {
                self.poll_at = deadline;
            }
            return;
        }

        if let Some(oldest) = self.gaps.front() {
            // Counted from the last advance too: while the lines keep filling the oldest gap from
            // below (a far packet, forged or real, opened it), nothing is abandoned.
            let deadline = oldest.detected_ns.max(self.advanced_ns).saturating_add(self.config.give_up_ns);
            if now_ns >= deadline {
                self.abandon_retransmission(None, now_ns, out);
                return;
            }
            self.poll_at = deadline;
        }

        self.retry_requests(now_ns, out);
        self.request_holes(now_ns, out);
    }

    fn on_heartbeat(&mut self, sequence: u64, datagram: &[u8], recv_ns: u64, now_ns: u64, out: &mut impl SequencerOutput) {
        if self.ended {
            release(&mut self.counters, out, datagram, recv_ns);
            return;
        }
        if sequence > self.horizon {
            // Tail loss: the messages before the heartbeat's sequence never arrived. The
            // heartbeat itself carries no message, so it is dropped while the gap is open.
            self.open_gap(self.horizon, sequence, now_ns, out);
            self.horizon = sequence;
            return;
        }
        if !self.is_recovering() {
            release(&mut self.counters, out, datagram, recv_ns);
        }
    }

    fn on_end_of_session(&mut self, sequence: u64, datagram: &[u8], recv_ns: u64, now_ns: u64, out: &mut impl SequencerOutput) {
        if self.ended {
            release(&mut self.counters, out, datagram, recv_ns);
            return;
        }
        if sequence < self.horizon {
            // Messages at or after the end's sequence were seen already, so the end is false.
            self.counters.revoked_ends += 1;
            return;
        }
        if sequence > self.horizon {
            self.open_gap(self.horizon, sequence, now_ns, out);
            self.horizon = sequence;
        }
        if sequence <= self.next || !self.is_recovering() {
            release(&mut self.counters, out, datagram, recv_ns);
            self.ended = true;
            self.end_sequence = sequence;
            return;
        }
        let mut header = [0u8; HEADER_LEN];
        if let Some(bytes) = datagram.get(..HEADER_LEN) {
            header.copy_from_slice(bytes);
        }
        self.pending_end = Some(PendingEnd { header, sequence, recv_ns });
    }

    fn on_messages(&mut self, packet: Incoming<'_>, now_ns: u64, out: &mut impl SequencerOutput) {
        if !self.is_within_request(&packet) {
            return;
        }
        self.revoke_end(packet.end);
        if packet.end <= self.next {
            self.counters.arbitration_drops += 1;
            return;
        }
        if self.ended || packet.sequence <= self.next {
            self.release_incoming(&packet, out);
            self.horizon = self.horizon.max(self.next);
            self.drain_held(out);
            self.after_advance(now_ns, out);
            return;
        }

        // The packet starts beyond `next`: hold it.
        if self.is_covered(packet.sequence, packet.end) {
            self.counters.arbitration_drops += 1;
            return;
        }
        if packet.sequence > self.horizon {
            self.open_gap(self.horizon, packet.sequence, now_ns, out);
        }
        self.horizon = self.horizon.max(packet.end);
        if packet.datagram.len() > self.config.max_packet_bytes {
            self.counters.oversized_packets += 1;
            self.on_overflow(packet, now_ns, out);
            return;
        }
        let Some(slot) = self.free_slots.pop() else {
            self.counters.buffer_overflows += 1;
            self.on_overflow(packet, now_ns, out);
            return;
        };
        self.hold(slot, &packet);
    }

    /// Copies `packet` into `slot` and inserts it in sequence order, dropping held packets that
    /// it contains. The caller checked that no held packet contains it.
    fn hold(&mut self, slot: usize, packet: &Incoming<'_>) {
        let start = slot * self.config.max_packet_bytes;
        let len = packet.datagram.len();
        if let Some(dst) = self.storage.get_mut(start..start + len) {
            dst.copy_from_slice(packet.datagram);
        }
        let position = self.held.partition_point(|h| h.sequence < packet.sequence);
        while let Some(contained) = self.held.get(position).filter(|h| h.end <= packet.end).copied() {
            self.held.remove(position);
            self.free_slots.push(contained.slot);
            self.counters.arbitration_drops += 1;
        }
        let held = Held {
            sequence: packet.sequence,
            end: packet.end,
            slot,
            len,
            recv_ns: packet.recv_ns,
            origin: packet.origin,
        };
        self.held.insert(position, held);
    }

    /// Returns whether the messages `sequence..end` were released or are all held.
    fn is_covered(&self, sequence: u64, end: u64) -> bool {
        let mut cursor = sequence.max(self.next);
        if cursor >= end {
            return true;
        }
        // Held ends strictly increase, so this finds the first held packet past `cursor`.
        let mut index = self.held.partition_point(|h| h.end <= cursor);
        while let Some(h) = self.held.get(index) {
            if h.sequence > cursor {
                return false;
            }
            cursor = h.end;
            if cursor >= end {
                return true;
            }
            index += 1;
        }
        false
    }

    /// Handles a packet that must be held but does not fit: starts the fallback, which carries
    /// the packet too, or gives up and releases it in order with the held packets.
    fn on_overflow(&mut self, packet: Incoming<'_>, now_ns: u64, out: &mut impl SequencerOutput) {
        if self.fallback_since.is_some() {
            return;
        }
        self.abandon_retransmission(Some(packet), now_ns, out);
    }

    /// Stops retransmission: starts the fallback when one is configured, otherwise gives up.
    fn abandon_retransmission(&mut self, packet: Option<Incoming<'_>>, now_ns: u64, out: &mut impl SequencerOutput) {
        let Some(session) = self.session.filter(|_| self.config.fallback) else {
            self.give_up(packet, now_ns, out);
            return;
        };
        self.fallback_since = Some(now_ns);
        self.counters.fallbacks += 1;
        self.requests.clear();
        out.event(RecoveryEvent::FallbackStart { session, first: self.next });
        self.poll_at = self.poll_at.min(now_ns.saturating_add(self.config.fallback_timeout_ns));
    }

    /// Releases every held packet, and `packet` when given, in sequence order with the holes
    /// left in them, and continues from the horizon.
    fn give_up(&mut self, mut packet: Option<Incoming<'_>>, now_ns: u64, out: &mut impl SequencerOutput) {
        while let Some(held) = self.held.pop_front() {
            if let Some(incoming) = packet.filter(|p| p.sequence < held.sequence) {
                packet = None;
                self.force_release(incoming, now_ns, out);
            }
            self.free_slots.push(held.slot);
            if held.end <= self.next {
                self.counters.arbitration_drops += 1;
                continue;
            }
            if held.sequence > self.next {
                self.abandon(self.next, held.sequence, out);
            }
            self.release_held(held, out);
            self.close_filled_gaps(now_ns, out);
        }
        if let Some(incoming) = packet {
            self.force_release(incoming, now_ns, out);
        }
        if self.horizon > self.next {
            self.abandon(self.next, self.horizon, out);
            self.next = self.horizon;
        }
        self.requests.clear();
        if self.fallback_since.take().is_some() {
            out.event(RecoveryEvent::FallbackEnd { caught_up: false });
        }
        self.after_advance(now_ns, out);
    }

    /// Releases a packet passed in during a give-up, after abandoning the hole before it.
    fn force_release(&mut self, packet: Incoming<'_>, now_ns: u64, out: &mut impl SequencerOutput) {
        if packet.end <= self.next {
            self.counters.arbitration_drops += 1;
            return;
        }
        if packet.sequence > self.next {
            self.abandon(self.next, packet.sequence, out);
        }
        self.release_incoming(&packet, out);
        self.close_filled_gaps(now_ns, out);
    }

    /// Records that `first..end` is given up and moves `next` past it.
    fn abandon(&mut self, first: u64, end: u64, out: &mut impl SequencerOutput) {
        self.counters.messages_given_up += end - first;
        for gap in self.gaps.iter_mut().filter(|g| g.first < end && first < g.end) {
            gap.abandoned = true;
        }
        out.event(RecoveryEvent::GaveUp { first, end });
        self.next = end;
    }

    /// Releases a packet that starts at or before `next` without copying it.
    fn release_incoming(&mut self, packet: &Incoming<'_>, out: &mut impl SequencerOutput) {
        self.count_new_messages(packet.origin, packet.sequence, packet.end);
        release(&mut self.counters, out, packet.datagram, packet.recv_ns);
        self.next = self.next.max(packet.end);
    }

    /// Releases a held packet from its slot.
    fn release_held(&mut self, held: Held, out: &mut impl SequencerOutput) {
        self.count_new_messages(held.origin, held.sequence, held.end);
        let start = held.slot * self.config.max_packet_bytes;
        let datagram = self.storage.get(start..start + held.len).unwrap_or_default();
        release(&mut self.counters, out, datagram, held.recv_ns);
        self.next = self.next.max(held.end);
    }

    fn count_new_messages(&mut self, origin: Origin, sequence: u64, end: u64) {
        let new = end.saturating_sub(sequence.max(self.next));
        match origin {
            Origin::Line(_) => {}
            Origin::Retransmission => self.counters.retransmitted_messages += new,
            Origin::Fallback => self.counters.fallback_messages += new,
        }
    }

    /// Releases the held packets that have become contiguous with `next`, and drops those that
    /// were released in full meanwhile.
    fn drain_held(&mut self, out: &mut impl SequencerOutput) {
        while let Some(held) = self.held.front().filter(|h| h.sequence <= self.next).copied() {
            self.held.pop_front();
            self.free_slots.push(held.slot);
            if held.end <= self.next {
                self.counters.arbitration_drops += 1;
            } else {
                self.release_held(held, out);
            }
        }
    }

    /// Sends `GapFilled` for the gaps that `next` has passed.
    fn close_filled_gaps(&mut self, now_ns: u64, out: &mut impl SequencerOutput) {
        while let Some(gap) = self.gaps.front().filter(|g| g.end <= self.next).copied() {
            self.gaps.pop_front();
            if gap.abandoned {
                self.counters.gave_up += 1;
            } else {
                self.counters.gaps_filled += 1;
                out.event(RecoveryEvent::GapFilled {
                    first: gap.first,
                    end: gap.end,
                    detected_ns: gap.detected_ns,
                    now_ns,
                });
            }
        }
    }

    /// Updates gaps, requests, the end of session and the recovery state after `next` moved.
    fn after_advance(&mut self, now_ns: u64, out: &mut impl SequencerOutput) {
        self.advanced_ns = now_ns;
        self.close_filled_gaps(now_ns, out);
        let outstanding = self.requests.len();
        let next = self.next;
        self.requests.retain(|r| r.end > next);
        if self.requests.len() < outstanding {
            // A request slot was freed: the next poll may send a request that waited for it.
            self.poll_at = 0;
        }
        if let Some(end) = self.pending_end.filter(|e| e.sequence <= self.next) {
            self.pending_end = None;
            release(&mut self.counters, out, &end.header, end.recv_ns);
            self.ended = true;
            self.end_sequence = end.sequence;
        }
        if self.recovering && !self.is_recovering() {
            self.recovering = false;
            // Every gap ends at or below the horizon, so close_filled_gaps closed them all.
            self.gaps.clear();
            self.requests.clear();
            self.poll_at = u64::MAX;
            out.event(RecoveryEvent::Recovered { next: self.next });
            if self.fallback_since.take().is_some() {
                out.event(RecoveryEvent::FallbackEnd { caught_up: true });
            }
        }
    }

    fn open_gap(&mut self, first: u64, end: u64, now_ns: u64, out: &mut impl SequencerOutput) {
        self.counters.gaps += 1;
        self.counters.gap_messages += end - first;
        self.recovering = true;
        out.event(RecoveryEvent::GapOpened { first, end, now_ns });
        if self.gaps.len() < self.gaps.capacity() {
            self.gaps.push_back(Gap { first, end, detected_ns: now_ns, abandoned: false });
        } else if let Some(last) = self.gaps.back_mut() {
            // NOTE: with the gap list full, the new gap is merged into the newest one, so its
            // GapFilled reports the merged bounds and the older detection time.
            last.end = end;
            self.counters.merged_gaps += 1;
        }
        self.poll_at = self.poll_at.min(now_ns.saturating_add(self.config.request_delay_ns));
    }
}

/// Hands one packet to the owner and counts it.
fn release(counters: &mut SequencerCounters, out: &mut impl SequencerOutput, datagram: &[u8], recv_ns: u64) {
    counters.released_packets += 1;
    out.release(datagram, recv_ns);
}

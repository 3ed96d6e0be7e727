//! Per-line counters: what one multicast line delivered, independent of the other line.
//!
//! [`LineStats`] keeps a bitmap of the sequence numbers seen in a window below the line's highest
//! sequence. The bitmap is a ring indexed by sequence modulo its size, allocated once, so
//! observing a packet allocates nothing.
//!
//! A packet whose sequence jumps more than the jump bound past the line's highest end is
//! counted in `invalid_packets` and ignored until a second packet confirms the jump. So one
//! corrupt sequence number cannot turn the rest of the session into missing or backwards
//! messages. The rule matches the sequencer's `max_jump_messages`.

use crate::moldudp64::{SessionId, END_OF_SESSION, HEARTBEAT};
use crate::recovery::sequencer::DEFAULT_MAX_JUMP_MESSAGES;
use crate::session::MAX_SEQUENCE;

/// Totals of one line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineCounters {
    /// Every packet observed, heartbeats, end-of-session and invalid packets included.
    pub packets: u64,
    /// Messages carried by those packets, repeats included.
    pub messages: u64,
    pub heartbeats: u64,
    /// Packets whose first message this line delivered before (exact repeats on this line).
    pub duplicate_packets: u64,
    /// Packets that arrived after a packet with higher sequence numbers, not seen before.
    pub reordered_packets: u64,
    /// Forward jumps past the line's highest sequence, by a data packet, a heartbeat or an end
    /// of session.
    pub gaps: u64,
    /// Packets older than the line's window (a sequence that jumped backwards beyond it).
    pub backwards_packets: u64,
    /// Times the line fell silent (see [`LineStats::check_silence`]).
    pub silences: u64,
    /// Packets ignored: a sequence of 0 or above [`MAX_SEQUENCE`], or an unconfirmed jump of
    /// more than the jump bound past the line's highest end. They count in `packets` only.
    pub invalid_packets: u64,
}

/// Sequence bookkeeping of one line: a window of seen sequence numbers and the counters.
#[derive(Debug, Clone)]
pub struct LineStats {
    /// One bit per sequence number, at index `sequence & mask`.
    seen: Vec<u64>,
    /// Number of bits in `seen` minus one; the bit count is a power of two.
    mask: u64,
    session: Option<SessionId>,
    /// First sequence seen in the session (lowered by reordered packets within the window).
    first: u64,
    /// Sequence after the highest message seen in the session, raised by heartbeats and ends of
    /// session beyond it; 0 before the first message.
    highest_end: u64,
    /// Largest forward jump past `highest_end` believed without confirmation, in messages.
    max_jump: u64,
    /// Sequence of the last packet ignored as an unconfirmed jump.
    jump_candidate: Option<u64>,
    /// Distinct messages seen in the session.
    distinct: u64,
    last_packet_ns: Option<u64>,
    silent: bool,
    counters: LineCounters,
}

impl LineStats {
    /// Creates the statistics of one line, remembering the last `window_messages` sequence
    /// numbers (rounded up to a power of two of at least 64), e.g. `1 << 20`.
    pub fn new(window_messages: usize) -> LineStats {
        let bits = window_messages.max(64).checked_next_power_of_two().unwrap_or(1 << 62);
        LineStats {
            seen: vec![0; bits / 64],
            mask: bits as u64 - 1,
            session: None,
            first: 0,
            highest_end: 0,
            max_jump: DEFAULT_MAX_JUMP_MESSAGES,
            jump_candidate: None,
            distinct: 0,
            last_packet_ns: None,
            silent: false,
            counters: LineCounters::default(),
        }
    }

    /// Sets the largest forward jump past the line's highest end that one packet may make
    /// without confirmation, in messages. The default is [`DEFAULT_MAX_JUMP_MESSAGES`].
    pub fn set_max_jump_messages(&mut self, messages: u64) {
        self.max_jump = messages;
    }

    /// Records one packet of `session`. `sequence` and `count` are the MoldUDP64 header fields.
    /// A data packet of a new session clears the window; the counters go on. A heartbeat or end
    /// of session of the current session past the highest end counts a gap and raises the
    /// highest end, so that messages lost at the tail count as missing.
    pub fn observe(&mut self, session: &SessionId, sequence: u64, count: u16, now_ns: u64) {
        self.last_packet_ns = Some(now_ns);
        self.silent = false;
        self.counters.packets += 1;
        if sequence == 0 || sequence > MAX_SEQUENCE {
            self.counters.invalid_packets += 1;
            return;
        }
        let is_data = count != HEARTBEAT && count != END_OF_SESSION;
        if is_data && self.session.as_ref() != Some(session) {
            self.session = Some(*session);
            self.seen.fill(0);
            self.first = sequence;
            self.highest_end = sequence;
            self.distinct = 0;
            self.jump_candidate = None;
        }
        let in_session = self.session.as_ref() == Some(session);
        if in_session && !self.is_plausible(sequence) {
            self.counters.invalid_packets += 1;
            return;
        }
        if !is_data {
            if count == HEARTBEAT {
                self.counters.heartbeats += 1;
            }
            if in_session && sequence > self.highest_end {
                self.counters.gaps += 1;
                self.clear_range(self.highest_end, sequence);
                self.highest_end = sequence;
            }
            return;
        }
        self.counters.messages += u64::from(count);

        let end = sequence.saturating_add(u64::from(count));
        let window = self.mask + 1;
        let old_highest = self.highest_end;
        if sequence < old_highest.saturating_sub(window) {
            self.counters.backwards_packets += 1;
            return;
        }
        if sequence < old_highest {
            if self.is_seen(sequence) {
                self.counters.duplicate_packets += 1;
            } else {
                self.counters.reordered_packets += 1;
            }
        } else if sequence > old_highest {
            self.counters.gaps += 1;
        }

        // Messages below the old highest end are inside the window: new only if their bit is clear.
        for message in sequence..end.min(old_highest) {
            if self.mark(message) {
                self.distinct += 1;
            }
        }
        // Messages above it are new. The window moves up to `end`, and only its last `window`
        // sequence numbers get a bit.
        if end > old_highest {
            let from = sequence.max(old_highest);
            self.distinct += end - from;
            self.clear_range(old_highest, end);
            for message in from.max(end.saturating_sub(window))..end {
                self.mark(message);
            }
            self.highest_end = end;
        }
        self.first = self.first.min(sequence);
    }

    /// Returns the running totals.
    pub fn counters(&self) -> &LineCounters {
        &self.counters
    }

    /// Returns the messages of the current session, from the first sequence seen up to the
    /// line's highest sequence, that never arrived on this line.
    pub fn missing_messages(&self) -> u64 {
        self.highest_end.saturating_sub(self.first).saturating_sub(self.distinct)
    }

    /// Returns true once when the line has had no packet for `silence_ns`: it counts `silences`
    /// and returns true at the moment the line falls silent, then false until a packet arrives
    /// and the line falls silent again. Never true before the first packet.
    pub fn check_silence(&mut self, now_ns: u64, silence_ns: u64) -> bool {
        let Some(last) = self.last_packet_ns else {
            return false;
        };
        if self.silent || now_ns.saturating_sub(last) < silence_ns {
            return false;
        }
        self.silent = true;
        self.counters.silences += 1;
        true
    }

    /// Returns the receive time of the last packet, in the caller's ns clock.
    pub fn last_packet_ns(&self) -> Option<u64> {
        self.last_packet_ns
    }

    /// Applies the jump bound to a packet of the current session. Returns false for a jump of
    /// more than `max_jump` past the highest end. A packet at or after the last ignored jump and
    /// within `max_jump` of it confirms that jump, and returns true.
    fn is_plausible(&mut self, sequence: u64) -> bool {
        if sequence <= self.highest_end.saturating_add(self.max_jump) {
            self.jump_candidate = None;
            return true;
        }
        let confirms = self
            .jump_candidate
            .is_some_and(|candidate| sequence >= candidate && sequence - candidate <= self.max_jump);
        if confirms {
            self.jump_candidate = None;
            return true;
        }
        self.jump_candidate = Some(sequence);
        false
    }

    fn is_seen(&self, sequence: u64) -> bool {
        let bit = sequence & self.mask;
        self.seen
            .get((bit / 64) as usize)
            .is_some_and(|word| word & (1 << (bit % 64)) != 0)
    }

    /// Sets the bit of `sequence` and returns whether it was clear.
    fn mark(&mut self, sequence: u64) -> bool {
        let bit = sequence & self.mask;
        let Some(word) = self.seen.get_mut((bit / 64) as usize) else {
            return false;
        };
        let flag = 1 << (bit % 64);
        let was_clear = *word & flag == 0;
        *word |= flag;
        was_clear
    }

    /// Clears the bits of `first..end` before the window moves over them, so that bits left
    /// from sequences one window size earlier do not read as seen.
    fn clear_range(&mut self, first: u64, end: u64) {
        if end - first > self.mask {
            self.seen.fill(0);
            return;
        }
        for sequence in first..end {
            let bit = sequence & self.mask;
            if let Some(word) = self.seen.get_mut((bit / 64) as usize) {
                *word &= !(1 << (bit % 64));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: SessionId = *b"LINE000001";

    /// Deterministic pseudo-random numbers (Knuth's MMIX LCG).
    struct Lcg(u64);

    impl Lcg {
        fn chance(&mut self, percent: u64) -> bool {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 33) % 100 < percent
        }
    }

    #[test]
    fn counters_match_injected_faults() {
        let mut rng = Lcg(5);
        // Packets of 1 to 3 messages from sequence 1.
        let mut packets = Vec::new();
        let mut sequence = 1u64;
        for index in 0..2000u64 {
            let count = (index % 3 + 1) as u16;
            packets.push((sequence, count));
            sequence += u64::from(count);
        }

        let (mut lost_messages, mut repeated, mut swapped) = (0u64, 0u64, 0u64);
        let mut arrivals = Vec::new();
        let mut index = 0;
        while let Some(&(sequence, count)) = packets.get(index) {
            // The last packet always arrives, so that every loss is below the highest sequence.
            let is_last = index + 1 == packets.len();
            if !is_last && rng.chance(10) {
                lost_messages += u64::from(count);
                index += 1;
                continue;
            }
            match packets.get(index + 1) {
                Some(&successor) if index + 2 < packets.len() && rng.chance(10) => {
                    arrivals.push(successor);
                    arrivals.push((sequence, count));
                    swapped += 1;
                    index += 2;
                }
                _ => {
                    arrivals.push((sequence, count));
                    index += 1;
                }
            }
            if rng.chance(5) {
                let repeat = arrivals.last().copied().unwrap_or((sequence, count));
                arrivals.push(repeat);
                repeated += 1;
            }
        }
        // Forward jumps, counted from the arrival order.
        let mut expected_gaps = 0;
        let mut highest_end = 1;
        for &(sequence, count) in &arrivals {
            if sequence > highest_end {
                expected_gaps += 1;
            }
            highest_end = highest_end.max(sequence + u64::from(count));
        }

        let mut line = LineStats::new(1 << 12);
        for (now, &(sequence, count)) in arrivals.iter().enumerate() {
            line.observe(&SESSION, sequence, count, now as u64);
        }
        line.observe(&SESSION, highest_end, HEARTBEAT, arrivals.len() as u64);

        let counters = *line.counters();
        assert!(lost_messages > 0);
        assert!(repeated > 0);
        assert!(swapped > 0);
        assert_eq!(line.missing_messages(), lost_messages);
        assert_eq!(counters.duplicate_packets, repeated);
        assert_eq!(counters.reordered_packets, swapped);
        assert_eq!(counters.gaps, expected_gaps);
        assert_eq!(counters.packets, arrivals.len() as u64 + 1);
        assert_eq!(counters.heartbeats, 1);
        let carried: u64 = arrivals.iter().map(|&(_, count)| u64::from(count)).sum();
        assert_eq!(counters.messages, carried);
        assert_eq!(counters.backwards_packets, 0);
        assert_eq!(line.last_packet_ns(), Some(arrivals.len() as u64));
    }

    #[test]
    fn old_sequence_counts_as_backwards() {
        let mut line = LineStats::new(64);
        line.observe(&SESSION, 1, 10, 0);
        line.observe(&SESSION, 11, 200, 0);
        // 211 is the highest end and the window is 64, so sequence 100 is out of it.
        line.observe(&SESSION, 100, 1, 0);
        line.observe(&SESSION, 150, 1, 0);
        let counters = *line.counters();
        assert_eq!(counters.backwards_packets, 1);
        assert_eq!(counters.duplicate_packets, 1);
        assert_eq!(line.missing_messages(), 0);
    }

    #[test]
    fn window_reuse_does_not_read_old_bits() {
        let mut line = LineStats::new(64);
        line.observe(&SESSION, 1, 1, 0);
        // Sequence 65 shares a bit with 1; 2..=64 are lost.
        line.observe(&SESSION, 65, 1, 0);
        assert_eq!(line.counters().duplicate_packets, 0);
        assert_eq!(line.counters().gaps, 1);
        assert_eq!(line.missing_messages(), 63);
    }

    #[test]
    fn new_session_clears_window_keeps_counters() {
        let mut line = LineStats::new(1024);
        line.observe(&SESSION, 1, 5, 0);
        line.observe(&SESSION, 10, 5, 0);
        assert_eq!(line.missing_messages(), 4);
        line.observe(b"LINE000002", 1, 3, 0);
        assert_eq!(line.missing_messages(), 0);
        line.observe(b"LINE000002", 1, 3, 0);
        let counters = *line.counters();
        assert_eq!(counters.duplicate_packets, 1);
        assert_eq!(counters.gaps, 1);
        assert_eq!(counters.packets, 4);
        assert_eq!(counters.messages, 16);
    }

    #[test]
    fn invalid_sequence_is_ignored() {
        let mut line = LineStats::new(64);
        line.observe(&SESSION, 1, 2, 0);
        line.observe(&SESSION, 0, 5, 0);
        line.observe(&SESSION, MAX_SEQUENCE + 1, 1, 0);
        line.observe(&SESSION, 0, HEARTBEAT, 0);
        line.observe(&SESSION, 3, 1, 0);
        let counters = *line.counters();
        assert_eq!(counters.invalid_packets, 3);
        assert_eq!(counters.packets, 5);
        assert_eq!(counters.heartbeats, 0);
        assert_eq!(counters.messages, 3);
        assert_eq!(counters.gaps, 0);
        assert_eq!(counters.backwards_packets, 0);
        assert_eq!(line.missing_messages(), 0);
    }

    #[test]
    fn heartbeat_and_end_reveal_tail_loss() {
        let mut line = LineStats::new(64);
        line.observe(&SESSION, 1, 5, 0);
        // Messages 6..=9 are lost, and the heartbeat carries 10 as the next sequence.
        line.observe(&SESSION, 10, HEARTBEAT, 0);
        assert_eq!(line.counters().gaps, 1);
        assert_eq!(line.missing_messages(), 4);
        // Message 8 arrives late: it is reordered, not a repeat.
        line.observe(&SESSION, 8, 1, 0);
        assert_eq!(line.counters().reordered_packets, 1);
        assert_eq!(line.missing_messages(), 3);
        line.observe(&SESSION, 12, END_OF_SESSION, 0);
        let counters = *line.counters();
        assert_eq!(counters.gaps, 2);
        assert_eq!(counters.heartbeats, 1);
        assert_eq!(line.missing_messages(), 5);
        // A heartbeat of another session leaves the window alone.
        line.observe(b"LINE000002", 500, HEARTBEAT, 0);
        assert_eq!(line.counters().gaps, 2);
        assert_eq!(line.missing_messages(), 5);
    }

    #[test]
    fn far_jump_needs_confirmation() {
        let mut line = LineStats::new(64);
        line.set_max_jump_messages(1000);
        line.observe(&SESSION, 1, 10, 0);
        // One forged sequence far ahead, as data and as a heartbeat.
        line.observe(&SESSION, 1_000_000_000, 1, 0);
        line.observe(&SESSION, 11, 10, 0);
        line.observe(&SESSION, 2_000_000_000, HEARTBEAT, 0);
        line.observe(&SESSION, 21, 10, 0);
        let counters = *line.counters();
        assert_eq!(counters.invalid_packets, 2);
        assert_eq!(counters.gaps, 0);
        assert_eq!(counters.backwards_packets, 0);
        assert_eq!(counters.heartbeats, 0);
        assert_eq!(counters.messages, 30);
        assert_eq!(line.missing_messages(), 0);

        // A real jump: the second packet confirms it and the skipped messages count as missing.
        line.observe(&SESSION, 5031, 1, 0);
        line.observe(&SESSION, 5032, 1, 0);
        let counters = *line.counters();
        assert_eq!(counters.invalid_packets, 3);
        assert_eq!(counters.gaps, 1);
        assert_eq!(line.missing_messages(), 5032 - 31);
    }

    #[test]
    fn silence_is_edge_triggered() {
        let mut line = LineStats::new(64);
        assert!(!line.check_silence(1_000_000, 10));
        line.observe(&SESSION, 1, 1, 100);
        assert!(!line.check_silence(105, 10));
        assert!(line.check_silence(110, 10));
        assert!(!line.check_silence(200, 10));
        line.observe(&SESSION, 2, 1, 250);
        assert!(!line.check_silence(255, 10));
        assert!(line.check_silence(400, 10));
        assert_eq!(line.counters().silences, 2);
    }
}

//! Checks that keep one corrupt or forged packet from taking over the sequencer: the forward
//! jump bound for line packets, the request bounds for responses and fallback packets, and the
//! revocation of an end of session contradicted by data.

use super::{Incoming, Origin, Sequencer};

impl Sequencer {
    /// Returns whether a packet of the current session may be handled, counting it in
    /// `implausible_packets` otherwise.
    ///
    /// A line packet or heartbeat whose sequence lies more than `max_jump_messages` past the
    /// horizon is dropped and kept as the jump candidate. A later line packet at or after the
    /// candidate and within `max_jump_messages` of it confirms the jump and is handled, so the
    /// gap up to it (the dropped candidate included) is recovered. A line packet within the
    /// bound clears the candidate. Retransmission and fallback packets pass, because
    /// `is_within_request` bounds them.
    pub(super) fn is_plausible(&mut self, origin: Origin, sequence: u64) -> bool {
        if !matches!(origin, Origin::Line(_)) {
            return true;
        }
        let bound = self.config.max_jump_messages;
        if sequence <= self.horizon.saturating_add(bound) {
            self.jump_candidate = None;
            return true;
        }
        let confirms = self
            .jump_candidate
            .is_some_and(|candidate| sequence >= candidate && sequence - candidate <= bound);
        if confirms {
            self.jump_candidate = None;
            return true;
        }
        self.jump_candidate = Some(sequence);
        self.counters.implausible_packets += 1;
        false
    }

    /// Returns whether a data packet may be handled, counting it otherwise. Line packets pass.
    /// A retransmission response must end within the outstanding requests it overlaps (at or
    /// before the highest end among them), and a fallback packet must start at or before the
    /// horizon, so that neither moves the horizon past messages never requested.
    pub(super) fn is_within_request(&mut self, packet: &Incoming<'_>) -> bool {
        match packet.origin {
            Origin::Line(_) => true,
            Origin::Retransmission => {
                if packet.end <= self.next {
                    self.counters.late_responses += 1;
                    return false;
                }
                let max_end = self
                    .requests
                    .iter()
                    .filter(|r| r.sequence < packet.end && packet.sequence < r.end)
                    .map(|r| r.end)
                    .max();
                if max_end.is_some_and(|max_end| packet.end <= max_end) {
                    return true;
                }
                self.counters.unrequested_responses += 1;
                false
            }
            Origin::Fallback => {
                if packet.sequence <= self.horizon {
                    return true;
                }
                self.counters.unrequested_responses += 1;
                false
            }
        }
    }

    /// Withdraws the end of session, released or pending, when a data packet ending at `end`
    /// carries a message at or after the end's sequence, so that recovery resumes.
    pub(super) fn revoke_end(&mut self, end: u64) {
        if self.ended && end > self.end_sequence {
            self.ended = false;
            self.counters.revoked_ends += 1;
        }
        if self.pending_end.is_some_and(|pending| end > pending.sequence) {
            self.pending_end = None;
            self.counters.revoked_ends += 1;
        }
    }
}

//! Retransmission requests: the first request for each hole, retries with backoff, and the
//! bound on requests in flight.

use super::{Outstanding, Sequencer, SequencerOutput};
use crate::recovery::request::Request;

impl Sequencer {
    /// Resends requests whose timeout passed, for the part not yet received, and drops those
    /// whose messages are all held.
    pub(super) fn retry_requests(&mut self, now_ns: u64, out: &mut impl SequencerOutput) {
        let Some(session) = self.session else { return };
        let mut index = 0;
        while let Some(request) = self.requests.get(index).copied() {
            let deadline = request.sent_ns.saturating_add(request.timeout_ns);
            if now_ns < deadline {
                self.poll_at = self.poll_at.min(deadline);
                index += 1;
                continue;
            }
            if self.is_covered(request.sequence, request.end) {
                self.requests.swap_remove(index);
                continue;
            }
            let sequence = request.sequence.max(self.next);
            let count = u16::try_from(request.end - sequence).unwrap_or(self.config.max_request_messages);
            out.request(&Request { session, sequence, count });
            self.counters.requests_sent += 1;
            self.counters.requests_retried += 1;
            self.counters.messages_requested += u64::from(count);
            let timeout_ns = request.timeout_ns.saturating_mul(2).min(self.config.max_backoff_ns);
            let retried = Outstanding { sequence, end: request.end, sent_ns: now_ns, timeout_ns };
            self.poll_at = self.poll_at.min(now_ns.saturating_add(timeout_ns));
            if let Some(slot) = self.requests.get_mut(index) {
                *slot = retried;
            }
            index += 1;
        }
    }

    /// Sends requests for the holes whose gap is older than `request_delay_ns` and that no
    /// outstanding request covers, oldest first, while fewer than `max_outstanding` are in flight.
    pub(super) fn request_holes(&mut self, now_ns: u64, out: &mut impl SequencerOutput) {
        let mut cursor = self.next;
        let mut index = 0;
        while self.requests.len() < self.config.max_outstanding {
            while let Some(h) = self.held.get(index).filter(|h| h.sequence <= cursor) {
                cursor = cursor.max(h.end);
                index += 1;
            }
            if cursor >= self.horizon {
                return;
            }
            let hole_end = self.held.get(index).map_or(self.horizon, |h| h.sequence);
            // Gaps open in sequence order, so later holes are never older than this one.
            let gap = self.gaps.partition_point(|g| g.end <= cursor);
            let detected_ns = self.gaps.get(gap).map_or(now_ns, |g| g.detected_ns);
            let due = detected_ns.saturating_add(self.config.request_delay_ns);
            if now_ns < due {
                self.poll_at = self.poll_at.min(due);
                return;
            }
            self.request_range(cursor, hole_end, now_ns, out);
            cursor = hole_end;
        }
    }

    /// Requests the parts of `first..end` that no outstanding request covers, in requests of at
    /// most `max_request_messages`, while fewer than `max_outstanding` are in flight.
    fn request_range(&mut self, first: u64, end: u64, now_ns: u64, out: &mut impl SequencerOutput) {
        let Some(session) = self.session else { return };
        let mut cursor = first;
        while cursor < end {
            if let Some(covering) = self.requests.iter().find(|r| r.sequence <= cursor && cursor < r.end) {
                cursor = covering.end;
                continue;
            }
            let stop = self
                .requests
                .iter()
                .filter(|r| r.sequence > cursor)
                .map(|r| r.sequence)
                .fold(end, u64::min);
            while cursor < stop {
                if self.requests.len() >= self.config.max_outstanding {
                    return;
                }
                let limit = u64::from(self.config.max_request_messages);
                let count = u16::try_from((stop - cursor).min(limit)).unwrap_or(self.config.max_request_messages);
                out.request(&Request { session, sequence: cursor, count });
                self.counters.requests_sent += 1;
                self.counters.messages_requested += u64::from(count);
                let timeout_ns = self.config.request_timeout_ns;
                let request_end = cursor + u64::from(count);
                self.requests.push(Outstanding { sequence: cursor, end: request_end, sent_ns: now_ns, timeout_ns });
                self.poll_at = self.poll_at.min(now_ns.saturating_add(timeout_ns));
                cursor = request_end;
            }
        }
    }
}

//! MoldUDP64 session and sequence tracking, with no I/O and no allocation.
//!
//! A MoldUDP64 packet names its session (10 ASCII bytes), the sequence number of its first
//! message and a message count. Count 0 is a heartbeat and count 0xFFFF the end of the session.
//! Both carry the sequence number of the next message the server will send. [`SessionTracker`]
//! compares each packet with the next sequence number it expects and returns a [`PacketAction`]
//! naming the messages the caller delivers.
//!
//! SoupBinTCP input uses the same tracker: pass Login Accepted to
//! [`SessionTracker::on_login_accepted`] and each sequenced message to
//! [`SessionTracker::on_message`].

use crate::moldudp64::{PacketHeader, SessionId, END_OF_SESSION, HEARTBEAT};

/// Session id used by [`SessionTracker::on_message`] when no session was named before it.
pub const UNNAMED_SESSION: SessionId = [b' '; 10];

/// Highest sequence number accepted. No feed comes near it in a day, and packets above it would
/// overflow the sequence arithmetic, so they are rejected as invalid.
pub const MAX_SEQUENCE: u64 = 1 << 62;

/// Consecutive packets a different session must send, while the current one has not ended,
/// before the tracker switches to it. A stray or forged packet therefore cannot reset the books,
/// while a real session change whose end-of-session packet was lost still takes effect.
pub const SESSION_CONFIRM_PACKETS: u32 = 3;

/// Sessions remembered after they were replaced; their late packets are dropped as stale.
const RECENT_SESSIONS: usize = 4;

/// Decision on the messages of one packet. A gap is the range of sequence numbers
/// `expected..received` (end excluded) that never arrived. The tracker passes each gap to its
/// [`GapHandler`] before it returns the action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketAction {
    /// Deliver the packet's messages except the first `skip`, which were delivered before.
    Deliver { skip: u16 },
    /// Every message in the packet was delivered before: deliver none.
    Duplicate,
    /// Messages `expected..received` were lost before this packet: deliver all of its messages.
    Gap { expected: u64, received: u64 },
    /// The packet starts a session: deliver all of its messages. `previous` is `None` for the
    /// first session seen; otherwise the caller resets its books, because sequence numbers and
    /// order references start over. `gap` is `Some((1, sequence))` when the session is joined
    /// after its first message, which the books then lack. Heartbeat and end-of-session packets
    /// of a new session also return this, with no messages to deliver, and
    /// [`SessionTracker::is_ended`] then distinguishes an end of session.
    NewSession { previous: Option<SessionId>, gap: Option<(u64, u64)> },
    /// A packet of another session while the current one is still open, not yet confirmed by
    /// [`SESSION_CONFIRM_PACKETS`] consecutive packets: deliver none.
    ForeignSession,
    /// A late packet of a session that was replaced: deliver none.
    StaleSession,
    /// A sequence number of 0 or above [`MAX_SEQUENCE`]: deliver none.
    Invalid,
    /// A heartbeat. `gap` is `Some((expected, received))` when its sequence number shows that
    /// messages were lost.
    Heartbeat { gap: Option<(u64, u64)> },
    /// The server ended the session. Messages lost just before the end are counted and passed
    /// to the [`GapHandler`] like any gap.
    EndOfSession,
}

/// Running totals of a [`SessionTracker`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionCounters {
    /// Every packet passed in, heartbeats and end-of-session packets included.
    pub packets: u64,
    /// Messages the tracker returned for delivery.
    pub messages: u64,
    /// Packets whose messages had all been delivered before.
    pub duplicate_packets: u64,
    /// Messages not delivered because they had been delivered before, from duplicate packets and
    /// from the overlapping head of partly new packets.
    pub duplicate_messages: u64,
    /// Gaps detected, each reported once.
    pub gaps: u64,
    /// Messages inside those gaps.
    pub messages_missed: u64,
    /// Heartbeat packets.
    pub heartbeats: u64,
    /// Packets of another session not (yet) switched to, and late packets of replaced sessions.
    pub foreign_session_packets: u64,
    /// Packets with a sequence number of 0 or above [`MAX_SEQUENCE`].
    pub invalid_packets: u64,
    /// End-of-session packets. Servers repeat them, so one session can count several.
    pub end_of_session: u64,
    /// Changes from one session id to another. The first session seen is not a change.
    pub session_changes: u64,
    /// Ends of session withdrawn because the session went on to send messages after them.
    pub revoked_ends: u64,
}

/// Receiver of each gap the tracker finds. The default, [`MarkStale`], records that books can no
/// longer be trusted and lets the stream go on. A retransmission client would implement this
/// trait to request the missing range.
pub trait GapHandler {
    /// Called once per gap of messages `expected..received`, before the tracker returns the
    /// action that reports it.
    fn on_gap(&mut self, session: &SessionId, expected: u64, received: u64);
}

/// Gap policy that marks every book stale and goes on. A lost message can belong to any
/// instrument, so every book is affected. The pipeline reads and clears the mark with
/// [`MarkStale::take_stale`].
#[derive(Debug, Clone, Copy, Default)]
pub struct MarkStale {
    stale: bool,
    last_gap: Option<(u64, u64)>,
}

impl MarkStale {
    /// Returns whether a gap was found since the last call, and clears the mark.
    pub fn take_stale(&mut self) -> bool {
        std::mem::take(&mut self.stale)
    }

    /// Returns the most recent gap as `(expected, received)`, if any was found.
    pub fn last_gap(&self) -> Option<(u64, u64)> {
        self.last_gap
    }
}

impl GapHandler for MarkStale {
    fn on_gap(&mut self, _session: &SessionId, expected: u64, received: u64) {
        self.stale = true;
        self.last_gap = Some((expected, received));
    }
}

/// Sequence state of one feed: the current session, the next expected sequence number and the
/// counters. Sequence numbers are those of MoldUDP64 and SoupBinTCP: the first message of a
/// session is 1.
#[derive(Debug, Clone, Default)]
pub struct SessionTracker<H: GapHandler = MarkStale> {
    session: Option<SessionId>,
    next_expected: u64,
    ended: bool,
    /// A different session seen while the current one is open, and its consecutive packets.
    candidate: Option<(SessionId, u32)>,
    /// Sessions replaced most recently, oldest overwritten first.
    recent: [Option<SessionId>; RECENT_SESSIONS],
    recent_next: usize,
    counters: SessionCounters,
    handler: H,
}

impl SessionTracker<MarkStale> {
    /// Creates a tracker that has seen no session yet, with the [`MarkStale`] gap policy.
    pub fn new() -> Self {
        Self::with_handler(MarkStale::default())
    }
}

impl<H: GapHandler> SessionTracker<H> {
    /// Creates a tracker that has seen no session yet and passes gaps to `handler`.
    pub fn with_handler(handler: H) -> Self {
        SessionTracker {
            session: None,
            next_expected: 0,
            ended: false,
            candidate: None,
            recent: [None; RECENT_SESSIONS],
            recent_next: 0,
            counters: SessionCounters::default(),
            handler,
        }
    }

    /// Classifies one MoldUDP64 packet from its header fields and updates the state.
    /// `sequence` is the sequence number of the packet's first message, or of the next message
    /// for a heartbeat (`count` 0) or end of session (`count` 0xFFFF).
    pub fn on_packet(&mut self, session: &SessionId, sequence: u64, count: u16) -> PacketAction {
        self.counters.packets += 1;
        match count {
            HEARTBEAT => self.counters.heartbeats += 1,
            END_OF_SESSION => self.counters.end_of_session += 1,
            _ => {}
        }

        if sequence == 0 || sequence > MAX_SEQUENCE {
            self.counters.invalid_packets += 1;
            return PacketAction::Invalid;
        }

        if self.session.as_ref() != Some(session) {
            return self.on_other_session(session, sequence, count);
        }
        self.candidate = None;

        match count {
            HEARTBEAT => PacketAction::Heartbeat {
                gap: self.advance_to(session, sequence),
            },
            END_OF_SESSION => {
                self.ended = true;
                self.advance_to(session, sequence);
                PacketAction::EndOfSession
            }
            _ => self.on_messages(session, sequence, count),
        }
    }

    /// Classifies one MoldUDP64 packet from its parsed header; see [`SessionTracker::on_packet`].
    pub fn on_header(&mut self, header: &PacketHeader) -> PacketAction {
        self.on_packet(&header.session, header.sequence, header.count)
    }

    /// Classifies one SoupBinTCP sequenced message, numbered by the client from Login Accepted,
    /// within the current session ([`UNNAMED_SESSION`] when none was named before).
    pub fn on_message(&mut self, sequence: u64) -> PacketAction {
        let session = self.session.unwrap_or(UNNAMED_SESSION);
        self.on_packet(&session, sequence, 1)
    }

    /// Records a SoupBinTCP Login Accepted: like a heartbeat, it names the session and the next
    /// sequence number, so a reconnect that resumes past the expected number reveals a gap.
    /// Counted as a heartbeat packet.
    pub fn on_login_accepted(&mut self, session: &SessionId, sequence: u64) -> PacketAction {
        self.on_packet(session, sequence, HEARTBEAT)
    }

    /// Returns the sequence number of the next new message; 0 before the first session.
    pub fn next_expected(&self) -> u64 {
        self.next_expected
    }

    /// Returns the current session id, `None` before the first packet.
    pub fn session(&self) -> Option<SessionId> {
        self.session
    }

    /// Returns whether the current session has ended.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Returns the running totals.
    pub fn counters(&self) -> &SessionCounters {
        &self.counters
    }

    /// Records that a packet of the current session arrived but was kept by someone else (a
    /// sequencer holding it back): a different session's packets seen before it are no longer
    /// consecutive, so they do not count towards [`SESSION_CONFIRM_PACKETS`].
    pub fn clear_candidate(&mut self) {
        self.candidate = None;
    }

    /// Returns the gap handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// Returns the gap handler for changes, such as clearing [`MarkStale`].
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }

    /// Decides whether a packet of a session other than the current one starts a new session.
    fn on_other_session(&mut self, session: &SessionId, sequence: u64, count: u16) -> PacketAction {
        if self.recent.iter().flatten().any(|recent| recent == session) {
            self.counters.foreign_session_packets += 1;
            return PacketAction::StaleSession;
        }
        if self.session.is_some() && !self.ended {
            let seen = match self.candidate {
                Some((candidate, seen)) if &candidate == session => seen + 1,
                _ => 1,
            };
            self.candidate = Some((*session, seen));
            if seen < SESSION_CONFIRM_PACKETS {
                self.counters.foreign_session_packets += 1;
                return PacketAction::ForeignSession;
            }
        }
        self.start_session(session, sequence, count)
    }

    fn start_session(&mut self, session: &SessionId, sequence: u64, count: u16) -> PacketAction {
        self.candidate = None;
        let previous = self.session.replace(*session);
        if let Some(previous) = previous {
            self.counters.session_changes += 1;
            self.recent[self.recent_next] = Some(previous);
            self.recent_next = (self.recent_next + 1) % RECENT_SESSIONS;
        }
        self.ended = count == END_OF_SESSION;
        self.next_expected = 1;
        let gap = (sequence > 1).then(|| self.record_gap(session, sequence));
        self.next_expected = sequence;
        if count != HEARTBEAT && count != END_OF_SESSION {
            self.next_expected = sequence.saturating_add(u64::from(count));
            self.counters.messages += u64::from(count);
        }
        PacketAction::NewSession { previous, gap }
    }

    fn on_messages(&mut self, session: &SessionId, sequence: u64, count: u16) -> PacketAction {
        let end = sequence.saturating_add(u64::from(count));
        if self.ended && end > self.next_expected {
            // New messages after the end: that end was forged or corrupted, and honouring it
            // would let a single packet of another session replace this one.
            self.ended = false;
            self.counters.revoked_ends += 1;
        }

        if end <= self.next_expected {
            // Wholly below the next expected number: a repeat, or a jump backwards.
            self.counters.duplicate_packets += 1;
            self.counters.duplicate_messages += u64::from(count);
            return PacketAction::Duplicate;
        }

        if sequence <= self.next_expected {
            // `next_expected - sequence` < `count` here, because `end` > `next_expected`.
            let skip = u16::try_from(self.next_expected - sequence).unwrap_or(count);
            self.counters.duplicate_messages += u64::from(skip);
            self.counters.messages += u64::from(count - skip);
            self.next_expected = end;
            return PacketAction::Deliver { skip };
        }

        let (expected, received) = self.record_gap(session, sequence);
        self.counters.messages += u64::from(count);
        self.next_expected = end;
        PacketAction::Gap { expected, received }
    }

    /// Moves the expected number up to `sequence` for a packet that carries no messages, and
    /// returns the gap that move reveals. A lower `sequence` is stale and changes nothing.
    fn advance_to(&mut self, session: &SessionId, sequence: u64) -> Option<(u64, u64)> {
        if sequence <= self.next_expected {
            return None;
        }
        let gap = self.record_gap(session, sequence);
        self.next_expected = sequence;
        Some(gap)
    }

    /// Counts the gap from the expected number up to `received` and passes it to the handler.
    fn record_gap(&mut self, session: &SessionId, received: u64) -> (u64, u64) {
        let expected = self.next_expected;
        self.counters.gaps += 1;
        self.counters.messages_missed += received.saturating_sub(expected);
        self.handler.on_gap(session, expected, received);
        (expected, received)
    }
}

/// Decision of [`FileSequence::check`] on one message of a recorded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileVerdict {
    /// The next message, or one without a sequence number: apply it.
    Apply,
    /// Seen before (a repeated packet, or a second line's copy): skip it.
    Duplicate,
    /// Messages `expected..received` are missing before this one, which is applied.
    Gap { expected: u64, received: u64 },
}

/// Sequence checking for messages read from a recorded capture, where each message carries its
/// MoldUDP64 session and sequence number. Captures with zeroed headers (sequence 0) and
/// BinaryFILE messages (no sequence) are applied as they come.
#[derive(Debug, Clone, Default)]
pub struct FileSequence {
    session: Option<SessionId>,
    next: u64,
    pub duplicates: u64,
    pub gaps: u64,
    pub missed: u64,
}

impl FileSequence {
    /// Checks one message; a new session restarts the numbering.
    pub fn check(&mut self, session: Option<SessionId>, sequence: Option<u64>) -> FileVerdict {
        let (Some(session), Some(sequence)) = (session, sequence) else {
            return FileVerdict::Apply;
        };
        if sequence == 0 {
            return FileVerdict::Apply;
        }
        if self.session != Some(session) {
            self.session = Some(session);
            self.next = sequence.saturating_add(1);
            return FileVerdict::Apply;
        }
        if sequence < self.next {
            self.duplicates += 1;
            return FileVerdict::Duplicate;
        }
        let expected = self.next;
        self.next = sequence.saturating_add(1);
        if sequence > expected {
            self.gaps += 1;
            self.missed += sequence - expected;
            return FileVerdict::Gap { expected, received: sequence };
        }
        FileVerdict::Apply
    }
}

#[cfg(test)]
mod file_sequence_tests {
    use super::*;

    #[test]
    fn file_sequence_skips_duplicates_and_reports_gaps() {
        let s = Some(*b"000010059B");
        let mut f = FileSequence::default();
        assert_eq!(f.check(s, Some(10)), FileVerdict::Apply);
        assert_eq!(f.check(s, Some(11)), FileVerdict::Apply);
        assert_eq!(f.check(s, Some(11)), FileVerdict::Duplicate);
        assert_eq!(f.check(s, Some(5)), FileVerdict::Duplicate);
        assert_eq!(f.check(s, Some(14)), FileVerdict::Gap { expected: 12, received: 14 });
        assert_eq!((f.duplicates, f.gaps, f.missed), (2, 1, 2));
    }

    #[test]
    fn file_sequence_applies_unsequenced_messages() {
        let mut f = FileSequence::default();
        let zero = Some([0u8; 10]);
        assert_eq!(f.check(zero, Some(0)), FileVerdict::Apply);
        assert_eq!(f.check(zero, Some(0)), FileVerdict::Apply);
        assert_eq!(f.check(None, None), FileVerdict::Apply);
    }
}

//! MoldUDP64 and SoupBinTCP sequence tracking: every `PacketAction`, the counters behind it and
//! the gap handler seam.

use mdfh_feed::moldudp64::{PacketHeader, END_OF_SESSION, HEARTBEAT};
use mdfh_feed::session::{GapHandler, PacketAction, SessionTracker, MAX_SEQUENCE, SESSION_CONFIRM_PACKETS, UNNAMED_SESSION};

const S1: &[u8; 10] = b"000010059B";
const S2: &[u8; 10] = b"000010059C";

/// Returns a tracker that has delivered messages 1..=10 of session S1.
fn tracker_at_11() -> SessionTracker {
    let mut t = SessionTracker::new();
    assert_eq!(t.on_packet(S1, 1, 10), PacketAction::NewSession { previous: None, gap: None });
    assert_eq!(t.next_expected(), 11);
    t
}

#[test]
fn first_packet_at_one_starts_session_without_gap() {
    let mut t = SessionTracker::new();
    assert_eq!(t.session(), None);
    assert_eq!(t.on_packet(S1, 1, 3), PacketAction::NewSession { previous: None, gap: None });
    assert_eq!(t.session(), Some(*S1));
    assert_eq!(t.next_expected(), 4);
    assert_eq!(t.counters().gaps, 0);
    assert_eq!(t.counters().session_changes, 0);
    assert_eq!(t.counters().messages, 3);
    assert!(!t.handler_mut().take_stale());
}

#[test]
fn late_join_reports_gap_from_one() {
    let mut t = SessionTracker::new();
    assert_eq!(
        t.on_packet(S1, 14757721, 3),
        PacketAction::NewSession { previous: None, gap: Some((1, 14757721)) }
    );
    assert_eq!(t.next_expected(), 14757724);
    assert_eq!(t.counters().gaps, 1);
    assert_eq!(t.counters().messages_missed, 14757720);
    assert!(t.handler_mut().take_stale());
}

#[test]
fn parsed_header_same_as_fields() {
    let mut t = tracker_at_11();
    let header = PacketHeader { session: *S1, sequence: 11, count: 2 };
    assert_eq!(t.on_header(&header), PacketAction::Deliver { skip: 0 });
    assert_eq!(t.on_header(&header), PacketAction::Duplicate);
}

#[test]
fn in_order_packet_delivers_all() {
    let mut t = tracker_at_11();
    assert_eq!(t.on_packet(S1, 11, 5), PacketAction::Deliver { skip: 0 });
    assert_eq!(t.next_expected(), 16);
    assert_eq!(t.counters().messages, 15);
    assert_eq!(t.counters().packets, 2);
}

#[test]
fn duplicate_packet_delivers_none() {
    let mut t = tracker_at_11();
    assert_eq!(t.on_packet(S1, 1, 10), PacketAction::Duplicate);
    assert_eq!(t.on_packet(S1, 6, 5), PacketAction::Duplicate);
    assert_eq!(t.next_expected(), 11);
    assert_eq!(t.counters().duplicate_packets, 2);
    assert_eq!(t.counters().duplicate_messages, 15);
    assert_eq!(t.counters().messages, 10);
}

#[test]
fn backwards_jump_counted_as_duplicate() {
    let mut t = tracker_at_11();
    assert_eq!(t.on_packet(S1, 11, 20), PacketAction::Deliver { skip: 0 });
    assert_eq!(t.on_packet(S1, 3, 1), PacketAction::Duplicate);
    assert_eq!(t.next_expected(), 31, "a backwards jump must not move the expected number back");
    assert_eq!(t.counters().duplicate_packets, 1);
    assert_eq!(t.counters().duplicate_messages, 1);
    assert_eq!(t.counters().gaps, 0);
}

#[test]
fn partial_overlap_skips_seen_messages() {
    let mut t = tracker_at_11();
    assert_eq!(t.on_packet(S1, 8, 6), PacketAction::Deliver { skip: 3 });
    assert_eq!(t.next_expected(), 14);
    assert_eq!(t.counters().duplicate_messages, 3);
    assert_eq!(t.counters().messages, 13);
    assert_eq!(t.counters().duplicate_packets, 0);
}

#[test]
fn gap_reported_then_delivered() {
    let mut t = tracker_at_11();
    assert_eq!(t.on_packet(S1, 15, 2), PacketAction::Gap { expected: 11, received: 15 });
    assert_eq!(t.next_expected(), 17);
    assert_eq!(t.counters().gaps, 1);
    assert_eq!(t.counters().messages_missed, 4);
    assert_eq!(t.counters().messages, 12);
    assert_eq!(t.handler().last_gap(), Some((11, 15)));
    assert!(t.handler_mut().take_stale());
    assert!(!t.handler_mut().take_stale(), "take_stale must clear the mark");
}

#[test]
fn late_packet_after_gap_is_duplicate() {
    // Without retransmission the tracker moves past a gap; the late packet then counts as seen.
    let mut t = tracker_at_11();
    assert!(matches!(t.on_packet(S1, 15, 1), PacketAction::Gap { .. }));
    assert_eq!(t.on_packet(S1, 11, 4), PacketAction::Duplicate);
}

#[test]
fn heartbeat_at_expected_has_no_gap() {
    let mut t = tracker_at_11();
    assert_eq!(t.on_packet(S1, 11, HEARTBEAT), PacketAction::Heartbeat { gap: None });
    assert_eq!(t.on_packet(S1, 5, HEARTBEAT), PacketAction::Heartbeat { gap: None });
    assert_eq!(t.next_expected(), 11);
    assert_eq!(t.counters().heartbeats, 2);
    assert_eq!(t.counters().gaps, 0);
}

#[test]
fn heartbeat_beyond_expected_reveals_gap() {
    let mut t = tracker_at_11();
    assert_eq!(t.on_packet(S1, 20, HEARTBEAT), PacketAction::Heartbeat { gap: Some((11, 20)) });
    assert_eq!(t.next_expected(), 20);
    assert_eq!(t.counters().gaps, 1);
    assert_eq!(t.counters().messages_missed, 9);
    assert_eq!(t.on_packet(S1, 20, 1), PacketAction::Deliver { skip: 0 });
}

#[test]
fn new_session_after_end_switches_at_once() {
    let mut t = tracker_at_11();
    assert_eq!(t.on_packet(S1, 11, END_OF_SESSION), PacketAction::EndOfSession);
    assert_eq!(t.on_packet(S2, 1, 2), PacketAction::NewSession { previous: Some(*S1), gap: None });
    assert_eq!(t.session(), Some(*S2));
    assert_eq!(t.next_expected(), 3);
    assert_eq!(t.counters().session_changes, 1);
    assert_eq!(t.counters().gaps, 0);
    assert_eq!(t.on_packet(S2, 3, 1), PacketAction::Deliver { skip: 0 });
}

#[test]
fn open_session_switches_only_when_confirmed() {
    let mut t = tracker_at_11();
    for seq in 1..SESSION_CONFIRM_PACKETS as u64 {
        assert_eq!(t.on_packet(S2, seq, 1), PacketAction::ForeignSession);
        assert_eq!(t.session(), Some(*S1));
    }
    // The messages of the unconfirmed packets were dropped, so the switch reports them lost.
    let seq = SESSION_CONFIRM_PACKETS as u64;
    assert_eq!(t.on_packet(S2, seq, 1), PacketAction::NewSession { previous: Some(*S1), gap: Some((1, seq)) });
    assert_eq!(t.counters().foreign_session_packets, u64::from(SESSION_CONFIRM_PACKETS - 1));
    assert_eq!(t.counters().session_changes, 1);
}

#[test]
fn packet_of_current_session_resets_confirmation() {
    let mut t = tracker_at_11();
    assert_eq!(t.on_packet(S2, 1, 1), PacketAction::ForeignSession);
    assert_eq!(t.on_packet(S2, 2, 1), PacketAction::ForeignSession);
    assert_eq!(t.on_packet(S1, 11, 1), PacketAction::Deliver { skip: 0 });
    assert_eq!(t.on_packet(S2, 3, 1), PacketAction::ForeignSession);
    assert_eq!(t.session(), Some(*S1));
}

#[test]
fn stray_sessions_never_reset_an_open_session() {
    let mut t = tracker_at_11();
    for i in 0..1000u32 {
        let mut session = *b"FORGED0000";
        session[6..].copy_from_slice(format!("{:04}", i % 10_000).as_bytes());
        assert_eq!(t.on_packet(&session, 1, 1), PacketAction::ForeignSession);
    }
    assert_eq!(t.session(), Some(*S1));
    assert_eq!(t.counters().session_changes, 0);
    assert_eq!(t.counters().foreign_session_packets, 1000);
}

#[test]
fn late_packet_of_replaced_session_is_stale() {
    let mut t = tracker_at_11();
    assert_eq!(t.on_packet(S1, 11, END_OF_SESSION), PacketAction::EndOfSession);
    assert_eq!(t.on_packet(S2, 1, 1), PacketAction::NewSession { previous: Some(*S1), gap: None });
    assert_eq!(t.on_packet(S1, 5, 1), PacketAction::StaleSession);
    assert_eq!(t.session(), Some(*S2));
    assert_eq!(t.counters().foreign_session_packets, 1);
}

#[test]
fn new_session_heartbeat_sets_expected() {
    let mut t = tracker_at_11();
    assert_eq!(t.on_packet(S1, 11, END_OF_SESSION), PacketAction::EndOfSession);
    assert_eq!(t.on_packet(S2, 7, HEARTBEAT), PacketAction::NewSession { previous: Some(*S1), gap: Some((1, 7)) });
    assert_eq!(t.next_expected(), 7);
    assert_eq!(t.counters().heartbeats, 1);
    assert_eq!(t.counters().messages, 10);
}

#[test]
fn end_of_session_reported() {
    let mut t = tracker_at_11();
    assert!(!t.is_ended());
    assert_eq!(t.on_packet(S1, 11, END_OF_SESSION), PacketAction::EndOfSession);
    assert!(t.is_ended());
    assert_eq!(t.counters().end_of_session, 1);
    assert_eq!(t.next_expected(), 11);
}

#[test]
fn end_of_session_beyond_expected_reveals_gap() {
    let mut t = tracker_at_11();
    assert_eq!(t.on_packet(S1, 13, END_OF_SESSION), PacketAction::EndOfSession);
    assert_eq!(t.counters().gaps, 1);
    assert_eq!(t.counters().messages_missed, 2);
    assert_eq!(t.handler().last_gap(), Some((11, 13)));
}

#[test]
fn end_of_new_session_marks_ended() {
    let mut t = tracker_at_11();
    assert_eq!(t.on_packet(S1, 11, END_OF_SESSION), PacketAction::EndOfSession);
    assert_eq!(t.on_packet(S2, 1, END_OF_SESSION), PacketAction::NewSession { previous: Some(*S1), gap: None });
    assert!(t.is_ended());
    assert_eq!(t.counters().end_of_session, 2);
}

#[test]
fn absurd_sequence_numbers_are_invalid() {
    let mut t = tracker_at_11();
    assert_eq!(t.on_packet(S1, 0, 1), PacketAction::Invalid);
    assert_eq!(t.on_packet(S1, MAX_SEQUENCE + 1, 2), PacketAction::Invalid);
    assert_eq!(t.on_packet(S1, u64::MAX - 1, 2), PacketAction::Invalid);
    assert_eq!(t.counters().invalid_packets, 3);
    assert_eq!(t.next_expected(), 11);
    assert_eq!(t.on_packet(S1, 11, 1), PacketAction::Deliver { skip: 0 });
}

#[test]
fn soup_messages_and_relogin() {
    let mut t = SessionTracker::new();
    assert_eq!(t.on_login_accepted(b"  SIM00001", 1), PacketAction::NewSession { previous: None, gap: None });
    assert_eq!(t.on_message(1), PacketAction::Deliver { skip: 0 });
    assert_eq!(t.on_message(2), PacketAction::Deliver { skip: 0 });
    assert_eq!(t.on_message(2), PacketAction::Duplicate);
    // A reconnect that resumes at the expected number is seamless.
    assert_eq!(t.on_login_accepted(b"  SIM00001", 3), PacketAction::Heartbeat { gap: None });
    // One that resumes further on reveals the messages in between as lost.
    assert_eq!(t.on_login_accepted(b"  SIM00001", 6), PacketAction::Heartbeat { gap: Some((3, 6)) });
    assert_eq!(t.on_message(7), PacketAction::Gap { expected: 6, received: 7 });
    assert_eq!(t.counters().messages, 3);
    assert_eq!(t.counters().gaps, 2);
}

#[test]
fn soup_message_without_login_uses_unnamed_session() {
    let mut t = SessionTracker::new();
    assert_eq!(t.on_message(1), PacketAction::NewSession { previous: None, gap: None });
    assert_eq!(t.session(), Some(UNNAMED_SESSION));
    assert_eq!(t.on_message(2), PacketAction::Deliver { skip: 0 });
}

/// A handler standing in for a retransmission client: it records the ranges it would request.
#[derive(Default)]
struct RecordGaps(Vec<([u8; 10], u64, u64)>);

impl GapHandler for RecordGaps {
    fn on_gap(&mut self, session: &[u8; 10], expected: u64, received: u64) {
        self.0.push((*session, expected, received));
    }
}

#[test]
fn custom_handler_sees_each_gap_once() {
    let mut t = SessionTracker::with_handler(RecordGaps::default());
    t.on_packet(S1, 1, 1);
    t.on_packet(S1, 4, 1);
    t.on_packet(S1, 9, HEARTBEAT);
    t.on_packet(S1, 9, HEARTBEAT);
    t.on_packet(S1, 12, END_OF_SESSION);
    let expected = vec![(*S1, 2, 4), (*S1, 5, 9), (*S1, 9, 12)];
    assert_eq!(t.handler().0, expected);
    assert_eq!(t.counters().messages_missed, 2 + 4 + 3);
}

#[test]
fn data_after_end_revokes_the_end() {
    let mut t = tracker_at_11();
    assert_eq!(t.on_packet(S1, 11, END_OF_SESSION), PacketAction::EndOfSession);
    assert!(t.is_ended());
    // A repeat of applied messages does not revoke it.
    assert_eq!(t.on_packet(S1, 5, 2), PacketAction::Duplicate);
    assert!(t.is_ended());
    assert_eq!(t.on_packet(S1, 11, 2), PacketAction::Deliver { skip: 0 });
    assert!(!t.is_ended());
    assert_eq!(t.counters().revoked_ends, 1);
    // With the end revoked, one packet of another session no longer replaces this one.
    assert_eq!(t.on_packet(S2, 1, 1), PacketAction::ForeignSession);
    assert_eq!(t.session(), Some(*S1));
}

#[test]
fn clear_candidate_breaks_a_run_of_foreign_packets() {
    let mut t = tracker_at_11();
    for _ in 1..SESSION_CONFIRM_PACKETS {
        assert_eq!(t.on_packet(S2, 1, 1), PacketAction::ForeignSession);
        // A packet of the current session held elsewhere in between.
        t.clear_candidate();
    }
    assert_eq!(t.on_packet(S2, 1, 1), PacketAction::ForeignSession);
    assert_eq!(t.session(), Some(*S1));
}

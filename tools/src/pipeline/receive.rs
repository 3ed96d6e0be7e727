//! Stage 1: read packets, track the session and sequence, decode ITCH messages, hand them on.

use std::sync::atomic::Ordering;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use mdfh_feed::moldudp64::{self, Packet};
use mdfh_feed::session::{PacketAction, SessionTracker};
use mdfh_feed::soupbintcp::frame::trim;
use mdfh_feed::soupbintcp::{SessionId, SoupClient, SoupEvent};
use mdfh_feed::udp::{monotonic_ns, UdpReceiver};
use mdfh_feed::{itch, DecodeError};

use super::lines::Lines;
use super::replay::ReplaySource;
use super::ring::Producer;
use super::{Agent, FeedItem, Shared};
use crate::counters::FeedCounters;
use crate::record::{RecordTap, WallClock};
use crate::latency::{LatencyRecorder, Stage};
use crate::ratelimit::RateLimit;
use crate::{info_limited, warn_limited};

/// Late packets of a replaced session after which the change is doubted and the books marked stale.
const REPLACED_SESSION_ALARM: u64 = 100;

/// Where stage 1 reads from.
pub enum Source {
    /// MoldUDP64 datagrams, unicast or multicast.
    Udp(UdpReceiver),
    /// A SoupBinTCP session.
    Soup(Box<SoupClient>),
    /// Recorded files, handed on as MoldUDP64 packets.
    Replay(Box<ReplaySource>),
    /// Lines A and B with retransmission requests and a SoupBinTCP fallback.
    Lines(Box<Lines>),
}

/// Rate limits of the errors stage 1 logs, one per kind.
#[derive(Default)]
struct Limits {
    short_packet: RateLimit,
    block_past_end: RateLimit,
    unknown_type: RateLimit,
    truncated: RateLimit,
    invalid_field: RateLimit,
    gap: RateLimit,
    kernel_drops: RateLimit,
    duplicate: RateLimit,
    io: RateLimit,
    soup: RateLimit,
    session: RateLimit,
    foreign_session: RateLimit,
    invalid_sequence: RateLimit,
    truncated_datagram: RateLimit,
}

impl Limits {
    /// Returns the rate limit of the kind of `error`.
    fn for_error(&mut self, error: &DecodeError) -> &mut RateLimit {
        match error {
            DecodeError::ShortPacket { .. } => &mut self.short_packet,
            DecodeError::BlockPastEnd { .. } | DecodeError::FilePastEnd { .. } => &mut self.block_past_end,
            DecodeError::UnknownType { .. } => &mut self.unknown_type,
            DecodeError::Truncated { .. } | DecodeError::EmptyMessage { .. } => &mut self.truncated,
            _ => &mut self.invalid_field,
        }
    }
}

/// Decodes and hands on; kept apart from the source so both can be borrowed at once.
pub(super) struct Decoder {
    pub(super) shared: Arc<Shared>,
    ring: Producer<FeedItem>,
    pub(super) tracker: SessionTracker,
    limits: Limits,
    latency: LatencyRecorder,
    record: Option<Recording>,
    /// Packets of a replaced session since the last session change.
    replaced_session_packets: u64,
}

/// The recording tap of stage 1, with what it needs to stamp each datagram.
pub struct Recording {
    pub tap: RecordTap,
    pub clock: WallClock,
    /// Destination written into the recorded frames: the input's address or group.
    pub dst: SocketAddrV4,
}

pub(crate) struct ReceiveStage {
    source: Source,
    decoder: Decoder,
}

impl ReceiveStage {
    pub(crate) fn new(source: Source, shared: Arc<Shared>, ring: Producer<FeedItem>, record: Option<Recording>) -> ReceiveStage {
        ReceiveStage {
            source,
            decoder: Decoder {
                ring,
                tracker: SessionTracker::new(),
                limits: Limits::default(),
                latency: LatencyRecorder::new(shared.latency[Stage::Decode as usize].clone()),
                record,
                replaced_session_packets: 0,
                shared,
            },
        }
    }
}

impl Agent for ReceiveStage {
    fn do_work(&mut self) -> usize {
        if self.decoder.shared.stop.load(Ordering::Relaxed) {
            return 0;
        }
        let decoder = &mut self.decoder;
        let work = match &mut self.source {
            Source::Udp(receiver) => match receiver.recv_batch_from(|datagram, recv_ns, source| decoder.on_packet_from(datagram, recv_ns, source)) {
                Ok(n) => {
                    if let Some(drops) = receiver.kernel_drops() {
                        decoder.on_kernel_drops(drops, 0);
                    }
                    let truncated = receiver.truncated_datagrams();
                    if truncated != decoder.shared.counters.feed.truncated_datagrams.get() {
                        decoder.shared.counters.feed.truncated_datagrams.set(truncated);
                        let now = monotonic_ns();
                        warn_limited!(
                            decoder.limits.truncated_datagram, now, total = truncated,
                            "dropped a datagram longer than the {}-byte receive slot", mdfh_feed::udp::DEFAULT_SLOT_BYTES
                        );
                    }
                    n
                }
                Err(error) => {
                    let now = monotonic_ns();
                    warn_limited!(decoder.limits.io, now, %error, "UDP receive failed");
                    0
                }
            },
            Source::Soup(client) => {
                let n = client.poll_events(monotonic_ns(), |event| decoder.on_soup_event(event));
                decoder.on_soup_counters(client);
                n
            }
            Source::Replay(replay) => replay.poll(|packet, recv_ns| decoder.on_packet(packet, recv_ns)),
            Source::Lines(lines) => lines.poll(decoder),
        };
        decoder.latency.maybe_flush(monotonic_ns(), false);
        work
    }

    fn is_done(&mut self) -> bool {
        self.decoder.shared.stop.load(Ordering::Relaxed)
    }

    fn on_close(&mut self) {
        if let Source::Lines(lines) = &mut self.source {
            lines.close(&mut self.decoder);
        }
        self.decoder.latency.maybe_flush(monotonic_ns(), true);
        self.decoder.shared.receive_done.store(true, Ordering::Release);
        tracing::info!("receive stage stopped");
    }
}

impl Decoder {
    fn counters(&self) -> &FeedCounters {
        &self.shared.counters.feed
    }

    /// Handles one MoldUDP64 datagram read at `recv_ns` from a sender that is not known.
    pub(super) fn on_packet(&mut self, datagram: &[u8], recv_ns: u64) {
        self.on_packet_from(datagram, recv_ns, None);
    }

    /// Handles one MoldUDP64 datagram read at `recv_ns` from `source`. A recording writes
    /// 0.0.0.0:0 as the source of a datagram whose IPv4 sender is not known.
    pub(super) fn on_packet_from(&mut self, datagram: &[u8], recv_ns: u64, source: Option<SocketAddr>) {
        if let Some(record) = &mut self.record {
            let wall_ns = record.clock.wall_ns(recv_ns);
            let source = match source {
                Some(SocketAddr::V4(source)) => source,
                _ => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
            };
            record.tap.offer(datagram, wall_ns, source, record.dst);
        }
        self.counters().packets.incr();
        self.counters().bytes.add(datagram.len() as u64);
        let packet = match moldudp64::parse(datagram) {
            Ok(packet) => packet,
            Err(error) => {
                self.count_decode_error(&error);
                warn_limited!(self.limits.for_error(&error), recv_ns, %error, len = datagram.len(), "dropped a MoldUDP64 packet");
                return;
            }
        };
        let header = packet.header;
        // Servers repeat the end of session (and line B repeats line A): log only the first.
        let already_ended = self.tracker.is_ended() && self.tracker.session() == Some(header.session);
        let action = self.tracker.on_packet(&header.session, header.sequence, header.count);
        if matches!(action, PacketAction::NewSession { .. }) {
            self.replaced_session_packets = 0;
        }
        match action {
            PacketAction::Deliver { skip } => {
                self.counters().duplicate_messages.add(u64::from(skip));
                self.deliver(&packet, skip, recv_ns);
            }
            PacketAction::Duplicate => {
                self.counters().duplicate_packets.incr();
                self.counters().duplicate_messages.add(u64::from(header.count));
                warn_limited!(
                    self.limits.duplicate, recv_ns,
                    session = %header.session.escape_ascii(), sequence = header.sequence, count = header.count,
                    "dropped a duplicate MoldUDP64 packet"
                );
            }
            PacketAction::Gap { expected, received } => {
                self.on_gap(&header.session, expected, received, recv_ns);
                self.deliver(&packet, 0, recv_ns);
            }
            PacketAction::NewSession { previous, gap } => {
                if previous.is_some() {
                    self.counters().session_changes.incr();
                }
                // The first session is not a change, so it does not use up the rate limit.
                if previous.is_none() {
                    tracing::info!(session = %header.session.escape_ascii(), sequence = header.sequence, "MoldUDP64 session started");
                } else {
                    info_limited!(
                        self.limits.session, recv_ns,
                        session = %header.session.escape_ascii(),
                        previous = %previous.map(|p| p.escape_ascii().to_string()).unwrap_or_default(),
                        sequence = header.sequence,
                        "new MoldUDP64 session; books reset"
                    );
                }
                self.push(FeedItem::SessionStart);
                if let Some((expected, received)) = gap {
                    self.on_gap(&header.session, expected, received, recv_ns);
                }
                self.deliver(&packet, 0, recv_ns);
            }
            PacketAction::ForeignSession | PacketAction::StaleSession => {
                self.counters().foreign_session_packets.incr();
                if matches!(action, PacketAction::StaleSession) {
                    self.on_replaced_session_packet();
                }
                warn_limited!(
                    self.limits.foreign_session, recv_ns,
                    session = %header.session.escape_ascii(),
                    current = %self.tracker.session().map(|s| s.escape_ascii().to_string()).unwrap_or_default(),
                    sequence = header.sequence,
                    "dropped a packet of another MoldUDP64 session"
                );
            }
            PacketAction::Invalid => {
                self.counters().invalid_sequences.incr();
                warn_limited!(
                    self.limits.invalid_sequence, recv_ns,
                    session = %header.session.escape_ascii(), sequence = header.sequence, count = header.count,
                    "dropped a MoldUDP64 packet with an invalid sequence number"
                );
            }
            PacketAction::Heartbeat { gap } => {
                self.counters().heartbeats.incr();
                if let Some((expected, received)) = gap {
                    self.on_gap(&header.session, expected, received, recv_ns);
                }
            }
            PacketAction::EndOfSession => {
                self.counters().end_of_session.incr();
                if !already_ended {
                    tracing::info!(session = %header.session.escape_ascii(), "MoldUDP64 end of session");
                }
            }
        }
    }

    fn on_gap(&mut self, session: &[u8; 10], expected: u64, received: u64, now_ns: u64) {
        let missed = received.saturating_sub(expected);
        self.counters().gaps.incr();
        self.counters().messages_missed.add(missed);
        warn_limited!(
            self.limits.gap, now_ns,
            session = %session.escape_ascii(), expected, received, missed,
            "sequence gap; books marked stale"
        );
        // Without `[recovery]` (or once recovery gave up on these messages) the gap can only
        // mark the books stale.
        self.push(FeedItem::Gap { first: expected, count: missed });
    }

    /// Mirrors the kernel's count of datagrams dropped on the socket of line `index` (0 for A, 1
    /// for B) because its receive buffer was full, and logs an increase, rate-limited.
    pub(super) fn on_kernel_drops(&mut self, total: u64, index: usize) {
        let lines = &self.shared.counters.lines;
        let Some(counter) = lines.get(index).map(|line| &line.kernel_drops) else { return };
        let previous = counter.get();
        if total == previous {
            return;
        }
        counter.set(total);
        let line = if index == 0 { "A" } else { "B" };
        self.counters().kernel_drops.set(lines[0].kernel_drops.get() + lines[1].kernel_drops.get());
        let now = monotonic_ns();
        warn_limited!(
            self.limits.kernel_drops, now, line, total, new = total.saturating_sub(previous),
            "the kernel dropped datagrams because the socket receive buffer was full; raise input.recv_buffer_bytes (and net.core.rmem_max)"
        );
    }

    /// Counts a late packet of a session the tracker replaced. A few come after every real
    /// session change. A steady stream means that the old session is still live and the change
    /// was forged or mistaken, so the books are marked stale (once per change) and an error logged.
    fn on_replaced_session_packet(&mut self) {
        self.replaced_session_packets += 1;
        if self.replaced_session_packets != REPLACED_SESSION_ALARM {
            return;
        }
        let next = self.tracker.next_expected();
        tracing::error!(
            packets = REPLACED_SESSION_ALARM,
            session = %self.tracker.session().map(|s| s.escape_ascii().to_string()).unwrap_or_default(),
            "packets of the replaced MoldUDP64 session keep arriving, so the session change may be forged; books marked stale"
        );
        self.push(FeedItem::Gap { first: next, count: 0 });
    }

    /// Counts and logs a packet of line `line` dropped whole because it cannot be framed.
    pub(super) fn reject_packet(&mut self, error: &DecodeError, len: usize, recv_ns: u64, line: &str) {
        self.counters().packets.incr();
        self.counters().bytes.add(len as u64);
        self.count_decode_error(error);
        warn_limited!(self.limits.for_error(error), recv_ns, %error, len, line, "dropped a MoldUDP64 packet that does not frame; recovering it like a lost one");
    }

    /// Decodes the message blocks of `packet` after the first `skip` and hands them on.
    fn deliver(&mut self, packet: &Packet<'_>, skip: u16, recv_ns: u64) {
        let first_seq = packet.header.sequence;
        let count = u64::from(packet.header.message_count());
        let mut blocks = packet.messages();
        let mut index = 0u64;
        while let Some(block) = blocks.next_with_offset() {
            let seq = first_seq + index;
            index += 1;
            let (offset, bytes) = match block {
                Ok(block) => block,
                Err(error) => {
                    // The rest of the packet cannot be framed: its messages are lost like a gap.
                    self.count_decode_error(&error);
                    warn_limited!(self.limits.for_error(&error), recv_ns, %error, sequence = seq, "dropped the rest of a MoldUDP64 packet");
                    self.on_lost(seq, count + 1 - index);
                    break;
                }
            };
            if index <= u64::from(skip) {
                continue;
            }
            self.decode_one(seq, bytes, offset, recv_ns);
        }
    }

    /// Counts `count` sequenced messages from `first` that arrived but could not be applied, and
    /// marks the books stale, since they may have changed them.
    fn on_lost(&mut self, first: u64, count: u64) {
        self.counters().messages_lost.add(count);
        self.push(FeedItem::Gap { first, count });
    }

    fn on_soup_event(&mut self, event: SoupEvent<'_>) {
        match event {
            SoupEvent::Message { sequence, message, recv_ns } => self.on_sequenced(sequence, message, recv_ns),
            SoupEvent::LoginAccepted { session, sequence } => self.on_soup_login(&session, sequence),
            SoupEvent::SessionEnded { session, next_sequence } => self.on_soup_session_ended(&session, next_sequence),
        }
    }

    /// Passes a SoupBinTCP Login Accepted to the tracker. A new session resets the books, and a
    /// login that resumes past the next expected number reveals a gap.
    fn on_soup_login(&mut self, session: &SessionId, sequence: u64) {
        let now = monotonic_ns();
        // Unlike a UDP packet, a Login Accepted comes on the connection the client logged in on.
        // A different session in it therefore means that the tracker's session is over.
        if let Some(current) = self.tracker.session() {
            if current != *session && !self.tracker.is_ended() {
                self.on_soup_session_ended(&current, self.tracker.next_expected());
            }
        }
        match self.tracker.on_login_accepted(session, sequence) {
            PacketAction::NewSession { previous, gap } => {
                if let Some(previous) = previous {
                    self.counters().session_changes.incr();
                    info_limited!(
                        self.limits.session, now,
                        session = %trim(session).escape_ascii(), previous = %trim(&previous).escape_ascii(), sequence,
                        "new SoupBinTCP session; books reset"
                    );
                }
                self.push(FeedItem::SessionStart);
                if let Some((expected, received)) = gap {
                    self.on_gap(session, expected, received, now);
                }
            }
            PacketAction::Heartbeat { gap } => {
                if let Some((expected, received)) = gap {
                    self.on_gap(session, expected, received, now);
                }
            }
            PacketAction::ForeignSession | PacketAction::StaleSession => {
                // NOTE: only a server that reuses one of the last few session names gets here.
                // The tracker keeps its session, so the messages that follow are checked against
                // its numbers, and those below its next expected number are dropped as duplicates.
                self.counters().foreign_session_packets.incr();
                warn_limited!(
                    self.limits.foreign_session, now,
                    session = %trim(session).escape_ascii(), sequence,
                    "SoupBinTCP login to an earlier session; its messages are checked against the current session's sequence numbers"
                );
            }
            PacketAction::Invalid => {
                self.counters().invalid_sequences.incr();
                warn_limited!(
                    self.limits.invalid_sequence, now,
                    session = %trim(session).escape_ascii(), sequence,
                    "SoupBinTCP Login Accepted with an invalid sequence number"
                );
            }
            PacketAction::Deliver { .. } | PacketAction::Duplicate | PacketAction::Gap { .. } | PacketAction::EndOfSession => {}
        }
    }

    /// Marks the tracker's SoupBinTCP session ended, so that the next Login Accepted starts a new
    /// session even if its numbers restart at 1. The client logs the end.
    fn on_soup_session_ended(&mut self, session: &SessionId, next_sequence: u64) {
        if self.tracker.on_packet(session, next_sequence, moldudp64::END_OF_SESSION) == PacketAction::EndOfSession {
            self.counters().end_of_session.incr();
        }
    }

    /// Handles one SoupBinTCP sequenced message.
    fn on_sequenced(&mut self, seq: u64, bytes: &[u8], recv_ns: u64) {
        self.counters().packets.incr();
        self.counters().bytes.add(bytes.len() as u64);
        match self.tracker.on_message(seq) {
            PacketAction::Deliver { .. } => self.decode_one(seq, bytes, 0, recv_ns),
            PacketAction::Gap { expected, received } => {
                let session = self.tracker.session().unwrap_or([b' '; 10]);
                self.on_gap(&session, expected, received, recv_ns);
                self.decode_one(seq, bytes, 0, recv_ns);
            }
            PacketAction::NewSession { previous, gap } => {
                if previous.is_some() {
                    self.counters().session_changes.incr();
                }
                self.push(FeedItem::SessionStart);
                if let Some((expected, received)) = gap {
                    let session = self.tracker.session().unwrap_or([b' '; 10]);
                    self.on_gap(&session, expected, received, recv_ns);
                }
                self.decode_one(seq, bytes, 0, recv_ns);
            }
            PacketAction::Duplicate => {
                self.counters().duplicate_messages.incr();
            }
            PacketAction::Invalid => {
                self.counters().invalid_sequences.incr();
            }
            PacketAction::ForeignSession
            | PacketAction::StaleSession
            | PacketAction::Heartbeat { .. }
            | PacketAction::EndOfSession => {}
        }
    }

    /// Copies the SoupBinTCP client's counters and logs its newest error, rate-limited.
    fn on_soup_counters(&mut self, client: &SoupClient) {
        let counters = client.counters();
        let feed = &self.shared.counters.feed;
        let disconnects = counters.disconnects + counters.timeouts + counters.malformed_frames + counters.login_rejects + counters.unexpected_packets;
        if counters.connects != feed.soup_connects.get() || disconnects != feed.soup_disconnects.get() {
            feed.soup_connects.set(counters.connects);
            feed.soup_disconnects.set(disconnects);
            if let Some(error) = client.last_error() {
                let now = monotonic_ns();
                warn_limited!(self.limits.soup, now, %error, "SoupBinTCP session problem");
            }
        }
    }

    /// Decodes one message found at byte `offset` of its packet (0 for SoupBinTCP) and hands it on.
    fn decode_one(&mut self, seq: u64, bytes: &[u8], offset: usize, recv_ns: u64) {
        match itch::decode(bytes) {
            Ok(msg) => {
                self.counters().messages.incr();
                let decoded_ns = monotonic_ns();
                self.latency.record(recv_ns, decoded_ns);
                self.push(FeedItem::Message { seq, recv_ns, decoded_ns, msg });
            }
            Err(error) => {
                let error = error.at(offset);
                self.count_decode_error(&error);
                warn_limited!(self.limits.for_error(&error), recv_ns, %error, sequence = seq, "dropped an ITCH message");
                // ITCH allows new message types to be added, so an unknown type is skipped;
                // any other undecodable message may have changed a book.
                if !matches!(error, DecodeError::UnknownType { .. }) {
                    self.on_lost(seq, 1);
                }
            }
        }
    }

    fn count_decode_error(&self, error: &DecodeError) {
        let c = self.counters();
        match error {
            DecodeError::UnknownType { .. } => c.unknown_message_types.incr(),
            DecodeError::Truncated { .. } | DecodeError::EmptyMessage { .. } => c.truncated_messages.incr(),
            DecodeError::InvalidField { .. } => c.invalid_fields.incr(),
            DecodeError::ShortPacket { .. } => c.short_packets.incr(),
            DecodeError::BlockPastEnd { .. } | DecodeError::FilePastEnd { .. } => c.blocks_past_end.incr(),
            _ => c.invalid_fields.incr(),
        }
    }

    /// Hands `item` to stage 2, waiting while the ring is full. Waiting keeps every accepted
    /// message; the kernel's socket buffer absorbs the input meanwhile (and counts what it drops).
    pub(super) fn push(&mut self, mut item: FeedItem) {
        loop {
            match self.ring.push(item) {
                Ok(()) => return,
                Err(back) => {
                    item = back;
                    self.shared.counters.feed.ring_full_waits.incr();
                    if self.shared.book_done.load(Ordering::Acquire) || self.shared.failed.load(Ordering::Acquire) {
                        return;
                    }
                    std::hint::spin_loop();
                    std::thread::yield_now();
                }
            }
        }
    }
}

//! Stage 1 input with recovery: lines A and B, retransmission requests and a SoupBinTCP fallback.
//!
//! Every packet of the current session goes through a [`Sequencer`], which releases packets in
//! sequence order to the decoder (and its session tracker), each message once. Packets of another
//! session go straight to the tracker, which decides whether the session changed; the sequencer
//! then follows it.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use mdfh_feed::moldudp64::{self, PacketHeader, SessionId};
use mdfh_feed::recovery::line::LineStats;
use mdfh_feed::recovery::request::Request;
use mdfh_feed::recovery::sequencer::{Origin, RecoveryEvent, Sequencer, SequencerConfig, SequencerOutput};
use mdfh_feed::soupbintcp::{SoupClient, SoupClientConfig, SoupEvent};
use mdfh_feed::udp::{monotonic_ns, UdpReceiver, DEFAULT_SLOT_BYTES};

use super::receive::Decoder;
use super::FeedItem;
use crate::config::RecoverySection;
use crate::latency::LatencyRecorder;
use crate::ratelimit::RateLimit;
use crate::{info_limited, warn_limited};

/// Sequence numbers each line remembers, to tell a repeat from a late packet.
const LINE_WINDOW_MESSAGES: usize = 1 << 20;
/// Retransmission responses read per loop at most, so that the lines are read in between.
const RESPONSES_PER_POLL: usize = 64;
/// How often the request socket is read while no gap is open.
const IDLE_RESPONSE_READ_NS: u64 = 10_000_000;
/// How often the counters are copied to the shared stats.
const MIRROR_EVERY_NS: u64 = 1_000_000;
/// Names of the lines in logs.
const LINE_NAMES: [&str; 2] = ["A", "B"];

/// The socket that sends retransmission requests and receives the responses.
struct RequestLink {
    socket: UdpSocket,
    server: SocketAddr,
}

/// The SoupBinTCP fallback: its settings, and the client while a fallback runs.
struct Fallback {
    template: SoupClientConfig,
    client: Option<Box<SoupClient>>,
    /// The first missing sequence the current client asked for.
    first: u64,
    /// Connection problems of the current client already counted.
    problems_seen: u64,
}

/// Fallback action requested by the sequencer during one call.
#[derive(Clone, Copy)]
enum FallbackCommand {
    Start { session: SessionId, first: u64 },
    End { caught_up: bool },
}

/// Rate limits of the recovery logs, one per kind.
#[derive(Default)]
struct Limits {
    io: RateLimit,
    implausible: RateLimit,
    gap: RateLimit,
    gave_up: RateLimit,
    response: RateLimit,
    stray: RateLimit,
    malformed: RateLimit,
    socket: RateLimit,
    request: RateLimit,
    fallback: RateLimit,
    fallback_info: RateLimit,
    silence: [RateLimit; 2],
}

/// Lines A and B with recovery, as one input of stage 1.
pub struct Lines {
    receivers: Vec<(usize, UdpReceiver)>,
    request: Option<RequestLink>,
    response_buf: Box<[u8]>,
    fallback: Option<Fallback>,
    sequencer: Sequencer,
    stats: [LineStats; 2],
    silence_ns: u64,
    recovery_time: Option<LatencyRecorder>,
    /// A fallback message wrapped as a one-message MoldUDP64 packet.
    wrap: Vec<u8>,
    limits: Limits,
    last_mirror_ns: u64,
    /// When the first poll ran, and whether each line was reported for never sending anything.
    started_ns: Option<u64>,
    never_heard: [bool; 2],
    /// When the request socket was last read.
    last_response_read_ns: u64,
    /// `max_jump_messages`: also the most messages a late join recovers.
    max_jump: u64,
}

impl Lines {
    /// Builds the input from line A, an optional line B and the recovery settings. Opens the
    /// request socket when a retransmission server is configured.
    pub fn new(line_a: UdpReceiver, line_b: Option<UdpReceiver>, config: &RecoverySection) -> anyhow::Result<Lines> {
        let millis_to_ns = |millis: u64| millis.saturating_mul(1_000_000);
        let sequencer = Sequencer::new(SequencerConfig {
            buffer_packets: config.buffer_packets,
            max_packet_bytes: DEFAULT_SLOT_BYTES,
            max_request_messages: config.max_request_messages,
            max_outstanding: config.max_outstanding,
            request_delay_ns: config.request_delay_us.saturating_mul(1000),
            request_timeout_ns: millis_to_ns(config.request_timeout_ms),
            max_backoff_ns: millis_to_ns(config.max_backoff_ms),
            // Without a server to ask, waiting only delays the stale mark; reordering still gets
            // the request delay to settle.
            give_up_ns: if config.retransmit.is_some() { millis_to_ns(config.give_up_ms) } else { config.request_delay_us.saturating_mul(1000) },
            fallback: config.fallback.is_some(),
            fallback_timeout_ns: millis_to_ns(config.fallback_timeout_ms),
            max_jump_messages: config.max_jump_messages,
        });
        let request = match config.retransmit {
            Some(server) => {
                // Responses return to the address the requests are sent from.
                let bind = SocketAddr::new(
                    match (server.is_ipv4(), server.ip().is_loopback()) {
                        (true, true) => std::net::Ipv4Addr::LOCALHOST.into(),
                        (true, false) => std::net::Ipv4Addr::UNSPECIFIED.into(),
                        (false, true) => std::net::Ipv6Addr::LOCALHOST.into(),
                        (false, false) => std::net::Ipv6Addr::UNSPECIFIED.into(),
                    },
                    0,
                );
                let socket = UdpSocket::bind(bind)?;
                socket.set_nonblocking(true)?;
                Some(RequestLink { socket, server })
            }
            None => None,
        };
        let fallback = config.fallback.map(|server| Fallback {
            template: SoupClientConfig {
                username: config.fallback_username.clone(),
                password: config.fallback_password.clone(),
                connect_timeout: Duration::from_millis(200),
                reconnect_backoff_min: Duration::from_millis(50),
                reconnect_backoff_max: Duration::from_secs(1),
                max_reconnect_attempts: 0,
                ..SoupClientConfig::new(server)
            },
            client: None,
            first: 0,
            problems_seen: 0,
        });
        let mut receivers = vec![(0, line_a)];
        if let Some(b) = line_b {
            receivers.push((1, b));
        }
        Ok(Lines {
            receivers,
            request,
            response_buf: vec![0u8; DEFAULT_SLOT_BYTES].into_boxed_slice(),
            fallback,
            sequencer,
            stats: [0, 1].map(|_| {
                let mut stats = LineStats::new(LINE_WINDOW_MESSAGES);
                stats.set_max_jump_messages(config.max_jump_messages);
                stats
            }),
            silence_ns: millis_to_ns(config.line_silence_ms),
            recovery_time: None,
            wrap: Vec::with_capacity(DEFAULT_SLOT_BYTES + moldudp64::HEADER_LEN + 2),
            limits: Limits::default(),
            last_mirror_ns: 0,
            started_ns: None,
            never_heard: [false; 2],
            last_response_read_ns: 0,
            max_jump: config.max_jump_messages,
        })
    }

    /// Returns the local address of the request socket, when there is one.
    pub fn request_addr(&self) -> Option<SocketAddr> {
        self.request.as_ref().and_then(|link| link.socket.local_addr().ok())
    }

    /// Reads every line, the responses and the fallback once, runs the timers, and returns the
    /// number of datagrams and messages taken.
    pub(super) fn poll(&mut self, decoder: &mut Decoder) -> usize {
        let Lines {
            receivers,
            request,
            response_buf,
            fallback,
            sequencer,
            stats,
            silence_ns,
            recovery_time,
            wrap,
            limits,
            last_mirror_ns,
            started_ns,
            never_heard,
            last_response_read_ns,
            max_jump,
        } = self;
        let recorder = recovery_time.get_or_insert_with(|| LatencyRecorder::new(decoder.shared.recovery_time.clone()));
        let mut command = None;
        let mut work = 0;
        let mut out = Out { decoder, request: request.as_ref(), recorder, command: &mut command, limits };

        for (line, receiver) in receivers.iter_mut() {
            let line = *line;
            let Some(line_stats) = stats.get_mut(line) else { continue };
            match receiver.recv_batch(|datagram, recv_ns| on_line_packet(line, datagram, recv_ns, line_stats, sequencer, *max_jump, &mut out)) {
                Ok(n) => {
                    work += n;
                    if let Some(drops) = receiver.kernel_drops() {
                        out.decoder.on_kernel_drops(drops, line);
                    }
                }
                Err(error) => {
                    let now = monotonic_ns();
                    warn_limited!(out.limits.io, now, %error, line = LINE_NAMES[line], "UDP receive failed");
                }
            }
        }

        // Responses arrive only while a gap is open. Otherwise the socket is read every 10 ms to
        // count and clear stray datagrams, which saves a system call per loop.
        let responses_due = sequencer.is_recovering() || monotonic_ns().saturating_sub(*last_response_read_ns) >= IDLE_RESPONSE_READ_NS;
        if let Some(link) = request.as_ref().filter(|_| responses_due) {
            *last_response_read_ns = monotonic_ns();
            work += read_responses(link, response_buf, sequencer, &mut out);
        }
        if let Some(fallback) = fallback.as_mut() {
            work += poll_fallback(fallback, sequencer, wrap, &mut out);
        }

        let now = monotonic_ns();
        sequencer.poll(now, &mut out);
        if let Some(command) = command {
            run_command(command, fallback.as_mut(), limits, decoder);
        }

        let started = *started_ns.get_or_insert(now);
        // After the end of the session, silence is expected.
        if !decoder.tracker.is_ended() {
            for &(line, _) in receivers.iter() {
                report_silence(line, stats, never_heard, started, now, *silence_ns, limits, decoder);
            }
        }

        if now.saturating_sub(*last_mirror_ns) >= MIRROR_EVERY_NS {
            *last_mirror_ns = now;
            mirror(sequencer, stats, decoder);
        }
        recorder_flush(recovery_time, now, false);
        work
    }

    /// Copies the counters to the shared stats and flushes the recovery times, for shutdown.
    pub(super) fn close(&mut self, decoder: &mut Decoder) {
        mirror(&self.sequencer, &self.stats, decoder);
        recorder_flush(&mut self.recovery_time, monotonic_ns(), true);
    }
}

/// Reads what the retransmission socket holds, up to [`RESPONSES_PER_POLL`] datagrams, and
/// hands each to the sequencer. Returns the number read.
fn read_responses(link: &RequestLink, response_buf: &mut [u8], sequencer: &mut Sequencer, out: &mut Out<'_>) -> usize {
    let mut work = 0;
    for _ in 0..RESPONSES_PER_POLL {
        match link.socket.recv_from(response_buf) {
            Ok((len, from)) => {
                work += 1;
                let recv_ns = monotonic_ns();
                let datagram = response_buf.get(..len).unwrap_or_default();
                on_response(datagram, from, link.server, recv_ns, sequencer, out);
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(error) => {
                // ICMP port unreachable from a server that is down surfaces here.
                let now = monotonic_ns();
                warn_limited!(out.limits.socket, now, %error, server = %link.server, "retransmission socket error");
                break;
            }
        }
    }
    work
}

/// Polls the fallback's SoupBinTCP client, when one runs: its messages go to the sequencer, and
/// a login that cannot fill the gap, or a connection problem, is counted and logged. Returns the
/// number of events handled.
fn poll_fallback(fallback: &mut Fallback, sequencer: &mut Sequencer, wrap: &mut Vec<u8>, out: &mut Out<'_>) -> usize {
    let Some(client) = fallback.client.as_mut() else { return 0 };
    let session = sequencer.session().unwrap_or([b' '; 10]);
    let requested = fallback.first;
    // A server that logs the fallback in to another session, or past the first
    // missing message, cannot fill the gap: nothing it sends is applied.
    let mut rejected: Option<(SessionId, u64)> = None;
    let work = client.poll_events(monotonic_ns(), |event| match event {
        SoupEvent::LoginAccepted { session: accepted, sequence } => {
            if accepted != session || sequence > requested {
                rejected = Some((accepted, sequence));
            }
        }
        SoupEvent::SessionEnded { session: ended, next_sequence } => rejected = Some((ended, next_sequence)),
        SoupEvent::Message { sequence, message, recv_ns } => {
            if rejected.is_none() && wrap_message(wrap, session, sequence, message) {
                let header = PacketHeader { session, sequence, count: 1 };
                sequencer.on_packet(Origin::Fallback, &header, wrap, recv_ns, monotonic_ns(), out);
            }
        }
    });

    if let Some((accepted, sequence)) = rejected {
        out.decoder.shared.counters.recovery.fallback_failures.incr();
        let now = monotonic_ns();
        warn_limited!(
            out.limits.fallback, now,
            server = %fallback.template.server,
            expected_session = %session.escape_ascii(), session = %accepted.escape_ascii(),
            requested, sequence,
            "the SoupBinTCP fallback cannot replay the gap (another session, a later start, or the session ended); giving up"
        );
        sequencer.fallback_failed(now, out);
    }

    let c = client.counters();
    let problems = c.connect_failures + c.login_rejects + c.disconnects + c.timeouts + c.malformed_frames;
    if problems != fallback.problems_seen {
        out.decoder.shared.counters.recovery.fallback_failures.add(problems.saturating_sub(fallback.problems_seen));
        fallback.problems_seen = problems;
        let now = monotonic_ns();
        let error = client.last_error().map(|e| e.to_string()).unwrap_or_default();
        warn_limited!(out.limits.fallback, now, error, server = %fallback.template.server, "SoupBinTCP fallback connection problem; retrying");
    }
    work
}

/// Counts and logs line `line` when it falls silent, or when it has sent nothing a silence
/// after start (reported once).
#[allow(clippy::too_many_arguments)]
fn report_silence(
    line: usize,
    stats: &mut [LineStats; 2],
    never_heard: &mut [bool; 2],
    started: u64,
    now: u64,
    silence_ns: u64,
    limits: &mut Limits,
    decoder: &Decoder,
) {
    let Some(line_stats) = stats.get_mut(line) else { return };
    let fell_silent = line_stats.check_silence(now, silence_ns);
    let never = line_stats.last_packet_ns().is_none() && !never_heard[line] && now.saturating_sub(started) >= silence_ns;
    if never {
        never_heard[line] = true;
    }
    if fell_silent || never {
        decoder.shared.counters.lines[line].silences.incr();
        let message = if never { "feed line has sent nothing since start" } else { "feed line is silent" };
        warn_limited!(limits.silence[line], now, line = LINE_NAMES[line], silent_ms = silence_ns / 1_000_000, "{message}");
    }
}

fn recorder_flush(recorder: &mut Option<LatencyRecorder>, now: u64, force: bool) {
    if let Some(recorder) = recorder {
        recorder.maybe_flush(now, force);
    }
}

/// Handles one datagram of line `line`.
fn on_line_packet(
    line: usize,
    datagram: &[u8],
    recv_ns: u64,
    stats: &mut LineStats,
    sequencer: &mut Sequencer,
    max_jump: u64,
    out: &mut Out<'_>,
) {
    let header = match moldudp64::parse(datagram).and_then(|packet| packet.check_blocks().map(|()| packet.header)) {
        Ok(header) => header,
        Err(error) => {
            // Dropped whole, so the sequencer detects a gap that the other line or a
            // retransmission can fill, rather than applying part of the packet.
            out.decoder.reject_packet(&error, datagram.len(), recv_ns, LINE_NAMES[line]);
            return;
        }
    };
    if sequencer.session().is_none() && out.decoder.tracker.session().is_none() && is_recoverable_join(&header, max_jump) {
        // Joined after the session started: the messages before this packet are recovered like
        // any gap (requests, then the fallback), so the books can start complete.
        sequencer.reset(header.session, 1, false, out);
    }
    if sequencer.session() == Some(header.session) {
        // The tracker does not see packets the sequencer holds; tell it one of its session came.
        out.decoder.tracker.clear_candidate();
        if sequencer.on_packet(Origin::Line(line as u8), &header, datagram, recv_ns, monotonic_ns(), out) {
            stats.observe(&header.session, header.sequence, header.count, recv_ns);
        } else {
            warn_limited!(
                out.limits.implausible, recv_ns,
                line = LINE_NAMES[line], sequence = header.sequence, count = header.count, next = sequencer.next(),
                "dropped a packet whose sequence jumps too far ahead; a second one confirms the jump"
            );
        }
        return;
    }
    // Another session: the tracker decides whether it replaces the current one. Only a session
    // the tracker accepts enters the line's counters, so forged packets cannot reset them.
    out.decoder.on_packet(datagram, recv_ns);
    let tracker = &out.decoder.tracker;
    if let Some(session) = tracker.session() {
        if sequencer.session() != Some(session) {
            let (next, ended) = (tracker.next_expected(), tracker.is_ended());
            sequencer.reset(session, next, ended, out);
        }
    }
    if sequencer.session() == Some(header.session) {
        stats.observe(&header.session, header.sequence, header.count, recv_ns);
    }
}

/// Returns whether the first packet seen, `header`, starts late in its session by at most
/// `max_jump` messages, so that the messages before it are worth recovering.
fn is_recoverable_join(header: &PacketHeader, max_jump: u64) -> bool {
    header.count != moldudp64::END_OF_SESSION
        && header.sequence > 1
        && header.sequence <= mdfh_feed::session::MAX_SEQUENCE
        && header.sequence - 1 <= max_jump
}

/// Handles one datagram from the request socket.
fn on_response(datagram: &[u8], from: SocketAddr, server: SocketAddr, recv_ns: u64, sequencer: &mut Sequencer, out: &mut Out<'_>) {
    let recovery = &out.decoder.shared.counters.recovery;
    if from != server {
        recovery.stray_datagrams.incr();
        warn_limited!(out.limits.stray, recv_ns, %from, %server, "dropped a datagram on the retransmission socket from an address other than the server");
        return;
    }
    let header = match moldudp64::parse(datagram).and_then(|packet| packet.check_blocks().map(|()| packet.header)) {
        Ok(header) => header,
        Err(error) => {
            recovery.malformed_responses.incr();
            warn_limited!(out.limits.malformed, recv_ns, %error, %from, "dropped a malformed retransmission response");
            return;
        }
    };
    let before = *sequencer.counters();
    sequencer.on_packet(Origin::Retransmission, &header, datagram, recv_ns, monotonic_ns(), out);
    let after = sequencer.counters();
    let drop_reasons = [
        (after.foreign_responses > before.foreign_responses, "of another session"),
        (after.unrequested_responses > before.unrequested_responses, "for a range not requested"),
        (after.late_responses > before.late_responses, "for messages already applied"),
    ];
    if let Some((_, reason)) = drop_reasons.iter().find(|(dropped, _)| *dropped) {
        warn_limited!(
            out.limits.response, recv_ns,
            session = %header.session.escape_ascii(), sequence = header.sequence, count = header.count,
            "dropped a retransmission response {reason}"
        );
    }
}

/// Writes `bytes` as message `seq` of `session` into a one-message MoldUDP64 packet in `wrap`.
/// Returns false when the message is too long for a block.
fn wrap_message(wrap: &mut Vec<u8>, session: SessionId, seq: u64, bytes: &[u8]) -> bool {
    let Ok(len) = u16::try_from(bytes.len()) else { return false };
    wrap.clear();
    wrap.extend_from_slice(&PacketHeader { session, sequence: seq, count: 1 }.encode());
    wrap.extend_from_slice(&len.to_be_bytes());
    wrap.extend_from_slice(bytes);
    true
}

/// Starts or ends the fallback as the sequencer asked.
fn run_command(command: FallbackCommand, fallback: Option<&mut Fallback>, limits: &mut Limits, decoder: &mut Decoder) {
    let Some(fallback) = fallback else { return };
    let now = monotonic_ns();
    match command {
        FallbackCommand::Start { session, first } => {
            let name = String::from_utf8_lossy(mdfh_feed::soupbintcp::frame::trim(&session)).into_owned();
            let config = SoupClientConfig { session: name, first_sequence: first, ..fallback.template.clone() };
            match SoupClient::new(config) {
                Ok(client) => {
                    info_limited!(
                        limits.fallback_info, now,
                        server = %fallback.template.server, session = %session.escape_ascii(), first,
                        "gap not filled by retransmission; replaying from the SoupBinTCP fallback"
                    );
                    fallback.client = Some(Box::new(client));
                    fallback.first = first;
                    fallback.problems_seen = 0;
                }
                Err(error) => {
                    decoder.shared.counters.recovery.fallback_failures.incr();
                    warn_limited!(limits.fallback, now, %error, "cannot start the SoupBinTCP fallback");
                }
            }
        }
        FallbackCommand::End { caught_up } => {
            if let Some(mut client) = fallback.client.take() {
                client.logout(now);
                if caught_up {
                    info_limited!(limits.fallback_info, now, next = client.next_sequence(), "fallback caught up with the live lines; back to UDP");
                } else {
                    warn_limited!(limits.fallback, now, "SoupBinTCP fallback stopped before the gap was filled (gave up, or the session changed)");
                }
            }
        }
    }
}

/// Copies the sequencer's and the lines' counters into the shared stats.
fn mirror(sequencer: &Sequencer, stats: &[LineStats; 2], decoder: &Decoder) {
    let shared = &decoder.shared.counters;
    let c = sequencer.counters();
    let r = &shared.recovery;
    r.gaps.set(c.gaps);
    r.gap_messages.set(c.gap_messages);
    r.requests_sent.set(c.requests_sent);
    r.requests_retried.set(c.requests_retried);
    r.messages_requested.set(c.messages_requested);
    r.retransmitted_messages.set(c.retransmitted_messages);
    r.arbitration_drops.set(c.arbitration_drops);
    r.fallbacks.set(c.fallbacks);
    r.fallback_messages.set(c.fallback_messages);
    r.gave_up.set(c.gave_up);
    r.messages_given_up.set(c.messages_given_up);
    r.buffer_overflows.set(c.buffer_overflows);
    r.unrequested_responses.set(c.unrequested_responses);
    r.foreign_responses.set(c.foreign_responses);
    r.late_responses.set(c.late_responses);

    r.reset_drops.set(c.reset_drops);
    r.oversized_packets.set(c.oversized_packets);
    r.implausible_packets.set(c.implausible_packets);
    r.revoked_ends.set(c.revoked_ends);
    r.merged_gaps.set(c.merged_gaps);
    r.reset_gaps.set(c.reset_gaps);
    r.gaps_filled.set(c.gaps_filled);

    for (line, counters) in stats.iter().enumerate() {
        let l = counters.counters();
        let s = &shared.lines[line];
        s.packets.set(l.packets);
        s.messages.set(l.messages);
        s.heartbeats.set(l.heartbeats);
        s.duplicate_packets.set(l.duplicate_packets);
        s.reordered_packets.set(l.reordered_packets);
        s.gaps.set(l.gaps);
        s.missing_messages.set(counters.missing_messages());
        s.backwards_packets.set(l.backwards_packets);
        s.invalid_packets.set(l.invalid_packets);
    }
}

/// The receive stage's side of the sequencer.
struct Out<'a> {
    decoder: &'a mut Decoder,
    request: Option<&'a RequestLink>,
    recorder: &'a mut LatencyRecorder,
    command: &'a mut Option<FallbackCommand>,
    limits: &'a mut Limits,
}

impl SequencerOutput for Out<'_> {
    fn release(&mut self, datagram: &[u8], recv_ns: u64) {
        self.decoder.on_packet(datagram, recv_ns);
    }

    fn request(&mut self, request: &Request) {
        let Some(link) = self.request else { return };
        if let Err(error) = link.socket.send_to(&request.encode(), link.server) {
            self.decoder.shared.counters.recovery.request_send_errors.incr();
            let now = monotonic_ns();
            warn_limited!(self.limits.request, now, %error, server = %link.server, "failed to send a retransmission request");
        }
    }

    fn event(&mut self, event: RecoveryEvent) {
        match event {
            RecoveryEvent::GapOpened { first, end, now_ns } => {
                warn_limited!(self.limits.gap, now_ns, first, end, missing = end.saturating_sub(first), "sequence gap; recovering");
                self.decoder.push(FeedItem::Recovering { first });
            }
            RecoveryEvent::GapFilled { detected_ns, now_ns, .. } => self.recorder.record(detected_ns, now_ns),
            RecoveryEvent::Recovered { next } => self.decoder.push(FeedItem::Recovered { next }),
            RecoveryEvent::FallbackStart { session, first } => *self.command = Some(FallbackCommand::Start { session, first }),
            RecoveryEvent::FallbackEnd { caught_up } => *self.command = Some(FallbackCommand::End { caught_up }),
            RecoveryEvent::GaveUp { first, end } => {
                let now = monotonic_ns();
                warn_limited!(self.limits.gave_up, now, first, end, missing = end.saturating_sub(first), "gap not recovered; books marked stale");
                // The tracker counts the gap when the next packet passes it; the books learn now.
                self.decoder.push(FeedItem::Gap { first, count: end.saturating_sub(first) });
            }
        }
    }
}

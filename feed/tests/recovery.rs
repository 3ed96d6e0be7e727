//! Sequencer behaviour: line arbitration, hold-back, retransmission requests, fallback and
//! give-up, checked by passing every released packet through a real `SessionTracker` and
//! decoding the ITCH messages it delivers.

use mdfh_feed::itch::{self, AddOrder, Header, Message, Side, Stock};
use mdfh_feed::moldudp64::{self, PacketBuilder, PacketHeader, SessionId};
use mdfh_feed::recovery::request::Request;
use mdfh_feed::recovery::sequencer::{
    Origin, RecoveryEvent, Sequencer, SequencerConfig, SequencerOutput,
};
use mdfh_feed::session::{PacketAction, SessionTracker};

const SESSION: SessionId = *b"TEST000001";
const OTHER_SESSION: SessionId = *b"TEST000002";
const MS: u64 = 1_000_000;

/// Deterministic pseudo-random numbers (Knuth's MMIX LCG), so failures reproduce.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    /// Returns true with probability `percent` / 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Encodes an Add Order whose order reference is its sequence number, so delivery order can be
/// read back from the decoded messages.
fn message_bytes(sequence: u64) -> Vec<u8> {
    let message = Message::AddOrder(AddOrder {
        header: Header { stock_locate: 7, tracking_number: 0, timestamp: 34_200_000_000_000 + sequence },
        order_ref: sequence,
        side: if sequence.is_multiple_of(2) { Side::Buy } else { Side::Sell },
        shares: 100,
        stock: Stock::new("AAPL"),
        price: 1_500_000,
        attribution: None,
    });
    let mut out = Vec::new();
    message.encode(&mut out);
    out
}

/// Builds packets of `count` messages each, `first..end`, of at most `per_packet` messages.
fn build_packets(first: u64, end: u64, per_packet: &mut dyn FnMut() -> u64) -> Vec<Vec<u8>> {
    let mut builder = PacketBuilder::new(SESSION, first, 1400);
    let mut packets = Vec::new();
    let mut sequence = first;
    while sequence < end {
        let count = per_packet().max(1).min(end - sequence);
        for _ in 0..count {
            assert!(builder.try_push(&message_bytes(sequence)));
            sequence += 1;
        }
        packets.push(builder.finish().to_vec());
    }
    packets
}

fn header_of(datagram: &[u8]) -> PacketHeader {
    moldudp64::parse(datagram).unwrap().header
}

fn heartbeat(session: SessionId, next: u64) -> Vec<u8> {
    let mut out = Vec::new();
    moldudp64::heartbeat(session, next, &mut out);
    out
}

fn end_of_session(next: u64) -> Vec<u8> {
    let mut out = Vec::new();
    moldudp64::end_of_session(SESSION, next, &mut out);
    out
}

/// The owner side: passes every released packet to a session tracker, decodes the delivered
/// messages and records requests and events.
struct Recorder {
    tracker: SessionTracker,
    delivered: Vec<u64>,
    released: Vec<PacketHeader>,
    requests: Vec<(u64, Request)>,
    events: Vec<RecoveryEvent>,
    now_ns: u64,
}

impl Recorder {
    fn new() -> Recorder {
        let mut tracker = SessionTracker::new();
        tracker.on_login_accepted(&SESSION, 1);
        Recorder {
            tracker,
            delivered: Vec::new(),
            released: Vec::new(),
            requests: Vec::new(),
            events: Vec::new(),
            now_ns: 0,
        }
    }

    fn gave_up(&self) -> Vec<(u64, u64)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                RecoveryEvent::GaveUp { first, end } => Some((*first, *end)),
                _ => None,
            })
            .collect()
    }

    fn count_events(&self, wanted: fn(&RecoveryEvent) -> bool) -> usize {
        self.events.iter().filter(|e| wanted(e)).count()
    }
}

impl SequencerOutput for Recorder {
    fn release(&mut self, datagram: &[u8], _recv_ns: u64) {
        let packet = moldudp64::parse(datagram).unwrap();
        self.released.push(packet.header);
        let skip = match self.tracker.on_header(&packet.header) {
            PacketAction::Deliver { skip } => usize::from(skip),
            PacketAction::Gap { .. } | PacketAction::NewSession { .. } => 0,
            _ => return,
        };
        for block in packet.messages().skip(skip) {
            match itch::decode(block.unwrap()).unwrap() {
                Message::AddOrder(order) => self.delivered.push(order.order_ref),
                other => panic!("unexpected message {other:?}"),
            }
        }
    }

    fn request(&mut self, request: &Request) {
        self.requests.push((self.now_ns, *request));
    }

    fn event(&mut self, event: RecoveryEvent) {
        self.events.push(event);
    }
}

fn config() -> SequencerConfig {
    SequencerConfig {
        buffer_packets: 64,
        request_delay_ns: MS,
        request_timeout_ns: 20 * MS,
        max_backoff_ns: 80 * MS,
        give_up_ns: 1_000 * MS,
        fallback_timeout_ns: 500 * MS,
        ..SequencerConfig::default()
    }
}

fn started(config: SequencerConfig, out: &mut Recorder) -> Sequencer {
    let mut sequencer = Sequencer::new(config);
    sequencer.reset(SESSION, 1, false, out);
    sequencer
}

/// Passes one packet to the sequencer and returns whether it was accepted (not an unconfirmed jump).
fn feed(sequencer: &mut Sequencer, origin: Origin, datagram: &[u8], out: &mut Recorder) -> bool {
    let header = header_of(datagram);
    let now = out.now_ns;
    sequencer.on_packet(origin, &header, datagram, now, now, out)
}

/// Asserts that every gap opened is filled, given up, dropped by a reset, merged or still open.
fn assert_gaps_accounted(sequencer: &Sequencer, context: &str) {
    let c = sequencer.counters();
    let ended = c.gaps_filled + c.gave_up + c.reset_gaps + c.merged_gaps + sequencer.open_gaps() as u64;
    assert_eq!(c.gaps, ended, "{context}: {c:?}");
}

/// Builds the response of a retransmission server to `request`: packets of up to 4 messages,
/// numbered from the request's sequence.
fn response(request: &Request, last: u64) -> Vec<Vec<u8>> {
    let end = request.end().min(last + 1);
    build_packets(request.sequence, end, &mut || 4)
}

fn all(last: u64) -> Vec<u64> {
    (1..=last).collect()
}

#[test]
fn in_order_releases_each_packet_once() {
    let mut out = Recorder::new();
    let mut sequencer = started(config(), &mut out);
    let mut rng = Lcg(1);
    let packets = build_packets(1, 101, &mut || rng.next() % 3 + 1);

    for packet in &packets {
        feed(&mut sequencer, Origin::Line(0), packet, &mut out);
        sequencer.poll(out.now_ns, &mut out);
        out.now_ns += 10_000;
    }

    assert_eq!(out.delivered, all(100));
    assert_eq!(out.released.len(), packets.len());
    assert_eq!(sequencer.counters().released_packets, packets.len() as u64);
    assert_eq!(sequencer.next(), 101);
    assert!(out.events.is_empty());
    assert!(out.requests.is_empty());
    assert!(!sequencer.is_recovering());
}

#[test]
fn line_b_fills_line_a_losses_without_requests() {
    let mut out = Recorder::new();
    let mut sequencer = started(config(), &mut out);
    let mut rng = Lcg(7);
    let packets = build_packets(1, 2001, &mut || rng.next() % 4 + 1);
    // Line B runs 3 packets behind line A. Each line loses 10% of packets independently, but
    // never both copies of one packet, so the other line can always fill a hole.
    let lost_on_a: Vec<bool> = packets.iter().map(|_| rng.chance(10)).collect();
    let lost_on_b: Vec<bool> = lost_on_a.iter().map(|&lost_a| !lost_a && rng.chance(10)).collect();
    let lag = 3;
    let mut copies = 0u64;
    for step in 0..packets.len() + lag {
        if let (Some(packet), Some(false)) = (packets.get(step), lost_on_a.get(step)) {
            feed(&mut sequencer, Origin::Line(0), packet, &mut out);
            copies += 1;
        }
        let behind = step.checked_sub(lag).unwrap_or(usize::MAX);
        if let (Some(packet), Some(false)) = (packets.get(behind), lost_on_b.get(behind)) {
            feed(&mut sequencer, Origin::Line(1), packet, &mut out);
            copies += 1;
        }
        out.now_ns += 50_000;
        sequencer.poll(out.now_ns, &mut out);
    }

    let counters = *sequencer.counters();
    assert_eq!(out.delivered, all(2000));
    assert!(out.requests.is_empty(), "requests: {:?}", out.requests);
    assert_eq!(out.tracker.counters().gaps, 0);
    assert!(counters.gaps > 0, "no gap was exercised");
    assert_eq!(counters.released_packets + counters.arbitration_drops, copies);
    assert_eq!(out.count_events(|e| matches!(e, RecoveryEvent::GapFilled { .. })) as u64, counters.gaps);
    assert_eq!(out.count_events(|e| matches!(e, RecoveryEvent::GapOpened { .. })) as u64, counters.gaps);
    assert!(!sequencer.is_recovering());
}

/// Packets of one line after loss, reordering and duplication, decided by `rng`.
fn mangle(packets: &[Vec<u8>], rng: &mut Lcg, loss: u64, swap: u64, duplicate: u64) -> Vec<Vec<u8>> {
    let mut line = Vec::new();
    let mut index = 0;
    while let Some(packet) = packets.get(index) {
        if rng.chance(loss) {
            index += 1;
            continue;
        }
        if let Some(successor) = packets.get(index + 1).filter(|_| rng.chance(swap)) {
            line.push(successor.clone());
            line.push(packet.clone());
            index += 2;
        } else {
            line.push(packet.clone());
            index += 1;
        }
        if rng.chance(duplicate) {
            line.push(packet.clone());
        }
    }
    line
}

/// A retransmission server double: responds to `response_percent` of requests from the message
/// list, `0..max_delay_ns` after the request. When the sequencer starts a fallback, it also
/// plays the fallback: every message from the sequencer's `next` to `last`, one per packet,
/// 5 ms later.
struct Server {
    last: u64,
    response_percent: u64,
    max_delay_ns: u64,
    seen_requests: usize,
    fallbacks_served: u64,
    pending: Vec<(u64, Origin, Vec<u8>)>,
    rng: Lcg,
}

impl Server {
    fn new(last: u64, response_percent: u64, max_delay_ns: u64, seed: u64) -> Server {
        Server { last, response_percent, max_delay_ns, seen_requests: 0, fallbacks_served: 0, pending: Vec::new(), rng: Lcg(seed) }
    }

    /// Schedules responses to the requests made since the last call, then feeds the responses due.
    fn serve(&mut self, sequencer: &mut Sequencer, out: &mut Recorder) {
        while let Some((_, request)) = out.requests.get(self.seen_requests).copied() {
            self.seen_requests += 1;
            assert_eq!(request.session, SESSION);
            assert!(request.count >= 1, "request {request:?}");
            assert!(request.count <= 500, "request {request:?}");
            if !self.rng.chance(self.response_percent) {
                continue;
            }
            let due = out.now_ns + self.rng.next() % self.max_delay_ns.max(1);
            for packet in response(&request, self.last) {
                self.pending.push((due, Origin::Retransmission, packet));
            }
        }
        if sequencer.in_fallback() && self.fallbacks_served < sequencer.counters().fallbacks {
            self.fallbacks_served = sequencer.counters().fallbacks;
            for packet in build_packets(sequencer.next(), self.last + 1, &mut || 1) {
                self.pending.push((out.now_ns + 5 * MS, Origin::Fallback, packet));
            }
        }
        let now = out.now_ns;
        let (due, later): (Vec<_>, Vec<_>) = self.pending.drain(..).partition(|(at, _, _)| *at <= now);
        self.pending = later;
        for (_, origin, packet) in due {
            feed(sequencer, origin, &packet, out);
        }
    }
}

/// Feeds `arrivals` one every `step_ns`, polling and serving after each, then runs the clock in
/// 1 ms steps until nothing is open or pending, at most `limit_ms`.
fn drive(
    sequencer: &mut Sequencer,
    out: &mut Recorder,
    server: &mut Server,
    arrivals: &[(Origin, Vec<u8>)],
    step_ns: u64,
    limit_ms: u64,
) {
    for (origin, packet) in arrivals {
        feed(sequencer, *origin, packet, out);
        out.now_ns += step_ns;
        sequencer.poll(out.now_ns, out);
        server.serve(sequencer, out);
    }
    for _ in 0..limit_ms {
        if !sequencer.is_recovering() && server.pending.is_empty() {
            break;
        }
        out.now_ns += MS;
        sequencer.poll(out.now_ns, out);
        server.serve(sequencer, out);
    }
}

#[test]
fn single_line_recovers_by_retransmission() {
    let mut out = Recorder::new();
    let mut sequencer = started(config(), &mut out);
    let mut rng = Lcg(11);
    let packets = build_packets(1, 3001, &mut || rng.next() % 3 + 1);
    let mut arrivals: Vec<(Origin, Vec<u8>)> =
        mangle(&packets, &mut rng, 10, 10, 5).into_iter().map(|p| (Origin::Line(0), p)).collect();
    // A heartbeat reveals losses at the tail.
    arrivals.push((Origin::Line(0), heartbeat(SESSION, 3001)));
    let mut server = Server::new(3000, 100, 2 * MS, 12);

    drive(&mut sequencer, &mut out, &mut server, &arrivals, 100_000, 2_000);

    let counters = *sequencer.counters();
    assert_eq!(out.delivered, all(3000));
    assert_eq!(out.tracker.counters().gaps, 0);
    assert!(counters.requests_sent > 0);
    assert!(counters.retransmitted_messages > 0);
    assert!(counters.retransmitted_messages <= counters.gap_messages);
    assert_eq!(counters.gave_up, 0);
    assert!(out.gave_up().is_empty());
    assert!(!sequencer.is_recovering());
    assert_eq!(sequencer.next(), 3001);
    let opened = out.count_events(|e| matches!(e, RecoveryEvent::GapOpened { .. }));
    assert!(opened > 0);
    assert_eq!(out.count_events(|e| matches!(e, RecoveryEvent::GapFilled { .. })), opened);
}

/// Packets of messages 1..=30, 3 messages each (packet `i` contains `3i+1..=3i+3`).
fn thirty() -> Vec<Vec<u8>> {
    build_packets(1, 31, &mut || 3)
}

#[test]
fn silent_server_retries_with_backoff_then_gives_up() {
    let mut out = Recorder::new();
    let mut sequencer = started(config(), &mut out);
    let packets = thirty();
    // Packet 2 (messages 7..=9) is lost.
    for (index, packet) in packets.iter().enumerate() {
        if index != 2 {
            feed(&mut sequencer, Origin::Line(0), packet, &mut out);
        }
    }
    assert_eq!(out.delivered, all(6));
    assert_eq!(out.events, vec![RecoveryEvent::GapOpened { first: 7, end: 10, now_ns: 0 }]);
    assert!(sequencer.is_recovering());

    while out.now_ns < 1_000 * MS {
        out.now_ns += MS;
        sequencer.poll(out.now_ns, &mut out);
    }

    let times: Vec<u64> = out.requests.iter().map(|(at, _)| *at / MS).collect();
    // First at the 1 ms request delay, then timeouts of 20, 40, 80, 80... ms.
    assert_eq!(&times[..5], &[1, 21, 61, 141, 221]);
    for pair in times.windows(2).skip(3) {
        assert_eq!(pair[1] - pair[0], 80);
    }
    for (_, request) in &out.requests {
        assert_eq!((request.sequence, request.count), (7, 3));
    }
    let counters = *sequencer.counters();
    assert_eq!(counters.requests_sent, out.requests.len() as u64);
    assert_eq!(counters.requests_retried, out.requests.len() as u64 - 1);
    assert_eq!(out.gave_up(), vec![(7, 10)]);
    assert_eq!((counters.gave_up, counters.messages_given_up), (1, 3));
    let expected: Vec<u64> = (1..=30).filter(|s| !(7..10).contains(s)).collect();
    assert_eq!(out.delivered, expected);
    assert_eq!(out.tracker.counters().gaps, 1);
    assert_eq!(out.tracker.counters().messages_missed, 3);
    assert_eq!(out.events.last(), Some(&RecoveryEvent::Recovered { next: 31 }));
    assert!(!out.events.iter().any(|e| matches!(e, RecoveryEvent::GapFilled { .. })));
    assert!(!sequencer.is_recovering());
    assert_eq!(sequencer.next(), 31);

    // Nothing is due any more.
    let requests = out.requests.len();
    sequencer.poll(out.now_ns + 10_000 * MS, &mut out);
    assert_eq!(out.requests.len(), requests);
}

#[test]
fn fallback_fills_gap_and_ends_caught_up() {
    let mut out = Recorder::new();
    let mut sequencer = started(SequencerConfig { fallback: true, ..config() }, &mut out);
    let packets = thirty();
    for (index, packet) in packets.iter().enumerate().take(8) {
        if index != 2 {
            feed(&mut sequencer, Origin::Line(0), packet, &mut out);
        }
    }
    while !sequencer.in_fallback() && out.now_ns < 2_000 * MS {
        out.now_ns += MS;
        sequencer.poll(out.now_ns, &mut out);
    }
    assert_eq!(out.now_ns, 1_000 * MS);
    assert!(out.events.contains(&RecoveryEvent::FallbackStart { session: SESSION, first: 7 }));
    assert_eq!(sequencer.counters().fallbacks, 1);
    let requests = out.requests.len();
    assert!(requests > 0);

    // No request while the fallback runs; the live line goes on meanwhile.
    for packet in &packets[8..] {
        out.now_ns += MS;
        feed(&mut sequencer, Origin::Line(0), packet, &mut out);
        sequencer.poll(out.now_ns, &mut out);
    }
    assert_eq!(out.requests.len(), requests);
    assert_eq!(out.delivered, all(6));

    // The fallback stream: one-message packets from message 7 on.
    for packet in build_packets(7, 31, &mut || 1) {
        feed(&mut sequencer, Origin::Fallback, &packet, &mut out);
    }
    assert_eq!(out.delivered, all(30));
    assert_eq!(out.tracker.counters().gaps, 0);
    assert!(!sequencer.in_fallback());
    assert!(out.events.contains(&RecoveryEvent::FallbackEnd { caught_up: true }));
    assert!(out.events.contains(&RecoveryEvent::GapFilled { first: 7, end: 10, detected_ns: 0, now_ns: out.now_ns }));
    assert_eq!(sequencer.counters().fallback_messages, 3);
    assert_eq!(sequencer.counters().gave_up, 0);
}

#[test]
fn fallback_timeout_gives_up() {
    let mut out = Recorder::new();
    let mut sequencer = started(SequencerConfig { fallback: true, ..config() }, &mut out);
    let packets = thirty();
    for (index, packet) in packets.iter().enumerate() {
        if index != 2 && index != 5 {
            feed(&mut sequencer, Origin::Line(0), packet, &mut out);
        }
    }
    while out.now_ns < 1_600 * MS {
        out.now_ns += MS;
        sequencer.poll(out.now_ns, &mut out);
    }
    // The fallback delivers message 7 only, then stalls.
    let fallback_start = out.events.iter().position(|e| matches!(e, RecoveryEvent::FallbackStart { .. }));
    assert!(fallback_start.is_some());
    assert_eq!(out.gave_up(), vec![(7, 10), (16, 19)]);
    assert!(out.events.contains(&RecoveryEvent::FallbackEnd { caught_up: false }));
    assert!(!sequencer.in_fallback());
    let counters = *sequencer.counters();
    assert_eq!((counters.gave_up, counters.messages_given_up), (2, 6));
    let expected: Vec<u64> = (1..=30).filter(|s| !(7..10).contains(s) && !(16..19).contains(s)).collect();
    assert_eq!(out.delivered, expected);
}

#[test]
fn fallback_partial_then_timeout_gives_up_the_rest() {
    let mut out = Recorder::new();
    let mut sequencer = started(SequencerConfig { fallback: true, ..config() }, &mut out);
    for (index, packet) in thirty().iter().enumerate() {
        if index != 2 {
            feed(&mut sequencer, Origin::Line(0), packet, &mut out);
        }
    }
    out.now_ns = 1_000 * MS;
    sequencer.poll(out.now_ns, &mut out);
    assert!(sequencer.in_fallback());
    for packet in build_packets(7, 8, &mut || 1) {
        feed(&mut sequencer, Origin::Fallback, &packet, &mut out);
    }
    assert_eq!(sequencer.next(), 8);
    out.now_ns = 1_499 * MS;
    sequencer.poll(out.now_ns, &mut out);
    assert!(sequencer.in_fallback());
    out.now_ns = 1_500 * MS;
    sequencer.poll(out.now_ns, &mut out);
    assert!(!sequencer.in_fallback());
    assert_eq!(out.gave_up(), vec![(8, 10)]);
    assert_eq!(sequencer.counters().fallback_messages, 1);
    let expected: Vec<u64> = (1..=30).filter(|s| !(8..10).contains(s)).collect();
    assert_eq!(out.delivered, expected);
}

#[test]
fn buffer_overflow_gives_up_in_order() {
    let mut out = Recorder::new();
    let mut sequencer = started(SequencerConfig { buffer_packets: 4, ..config() }, &mut out);
    let packets = thirty();
    // Packet 1 (messages 4..=6) is lost; packets 2..=5 fill the buffer and packet 6 overflows.
    for (index, packet) in packets.iter().enumerate() {
        if index != 1 {
            feed(&mut sequencer, Origin::Line(0), packet, &mut out);
        }
        if index == 5 {
            assert_eq!(out.delivered, all(3));
        }
    }
    let counters = *sequencer.counters();
    assert_eq!(counters.buffer_overflows, 1);
    assert_eq!(out.gave_up(), vec![(4, 7)]);
    let expected: Vec<u64> = (1..=30).filter(|s| !(4..7).contains(s)).collect();
    assert_eq!(out.delivered, expected);
    assert!(!sequencer.is_recovering());
}

#[test]
fn overflow_with_packet_inside_held_range_keeps_order() {
    let mut out = Recorder::new();
    let mut sequencer = started(SequencerConfig { buffer_packets: 2, ..config() }, &mut out);
    let packets = thirty();
    // Packets 0, 2, 4 arrive; then packet 3 fits between the held ones but the buffer is full.
    for index in [0, 2, 4, 3] {
        feed(&mut sequencer, Origin::Line(0), &packets[index], &mut out);
    }
    assert_eq!(sequencer.counters().buffer_overflows, 1);
    assert_eq!(out.gave_up(), vec![(4, 7)]);
    let expected: Vec<u64> = (1..=15).filter(|s| !(4..7).contains(s)).collect();
    assert_eq!(out.delivered, expected);
}

#[test]
fn buffer_overflow_starts_fallback_and_drops_line_packets() {
    let mut out = Recorder::new();
    let mut sequencer = started(SequencerConfig { buffer_packets: 4, fallback: true, ..config() }, &mut out);
    let packets = thirty();
    for (index, packet) in packets.iter().enumerate() {
        if index != 1 {
            feed(&mut sequencer, Origin::Line(0), packet, &mut out);
        }
    }
    assert!(sequencer.in_fallback());
    assert!(out.events.contains(&RecoveryEvent::FallbackStart { session: SESSION, first: 4 }));
    // Packets 6..=9 did not fit: 4 overflows, all dropped.
    assert_eq!(sequencer.counters().buffer_overflows, 4);
    assert_eq!(out.delivered, all(3));

    for packet in build_packets(4, 31, &mut || 1) {
        feed(&mut sequencer, Origin::Fallback, &packet, &mut out);
    }
    assert_eq!(out.delivered, all(30));
    assert!(out.events.contains(&RecoveryEvent::FallbackEnd { caught_up: true }));
    assert!(!sequencer.in_fallback());
    assert_eq!(sequencer.counters().gave_up, 0);
}

#[test]
fn oversized_packet_is_released_when_next() {
    let mut out = Recorder::new();
    let mut sequencer = started(SequencerConfig { max_packet_bytes: 100, ..config() }, &mut out);
    let packets = thirty();
    assert!(packets[0].len() > 100);
    feed(&mut sequencer, Origin::Line(0), &packets[0], &mut out);
    assert_eq!(out.delivered, all(3));
    // Packet 2 cannot be held: with no fallback the sequencer gives up on packet 1.
    feed(&mut sequencer, Origin::Line(0), &packets[2], &mut out);
    assert_eq!(sequencer.counters().oversized_packets, 1);
    assert_eq!(out.gave_up(), vec![(4, 7)]);
    assert_eq!(out.delivered, vec![1, 2, 3, 7, 8, 9]);
}

#[test]
fn stray_responses_are_counted_and_dropped() {
    let mut out = Recorder::new();
    let mut sequencer = started(config(), &mut out);
    let packets = thirty();
    for index in [0, 1, 3, 4] {
        feed(&mut sequencer, Origin::Line(0), &packets[index], &mut out);
    }
    let released = out.released.len();

    // Before any request: unrequested.
    feed(&mut sequencer, Origin::Retransmission, &packets[2], &mut out);
    assert_eq!(sequencer.counters().unrequested_responses, 1);
    assert_eq!(out.released.len(), released);

    out.now_ns = MS;
    sequencer.poll(out.now_ns, &mut out);
    assert_eq!(out.requests.len(), 1);
    assert_eq!((out.requests[0].1.sequence, out.requests[0].1.count), (7, 3));

    // Another session, and a packet below what was released: foreign and late.
    let mut foreign = PacketBuilder::new(OTHER_SESSION, 7, 1400);
    assert!(foreign.try_push(&message_bytes(7)));
    let foreign = foreign.finish().to_vec();
    feed(&mut sequencer, Origin::Retransmission, &foreign, &mut out);
    feed(&mut sequencer, Origin::Retransmission, &packets[1], &mut out);
    // A range past the outstanding request: unrequested.
    feed(&mut sequencer, Origin::Retransmission, &packets[6], &mut out);
    let counters = *sequencer.counters();
    assert_eq!(counters.foreign_responses, 1);
    assert_eq!(counters.late_responses, 1);
    assert_eq!(counters.unrequested_responses, 2);
    assert_eq!(out.released.len(), released);
    assert_eq!(out.delivered, all(6));

    // The real response is released with the held packets behind it.
    feed(&mut sequencer, Origin::Retransmission, &packets[2], &mut out);
    assert_eq!(out.delivered, all(15));
    assert_eq!(sequencer.counters().retransmitted_messages, 3);
    // A repeat of the response is late now.
    feed(&mut sequencer, Origin::Retransmission, &packets[2], &mut out);
    assert_eq!(sequencer.counters().late_responses, 2);
}

#[test]
fn heartbeat_reveals_tail_gap() {
    let mut out = Recorder::new();
    let mut sequencer = started(config(), &mut out);
    let packets = thirty();
    for packet in &packets[..9] {
        feed(&mut sequencer, Origin::Line(0), packet, &mut out);
    }
    // A heartbeat with no gap open is released.
    let released = out.released.len();
    feed(&mut sequencer, Origin::Line(0), &heartbeat(SESSION, 28), &mut out);
    assert_eq!(out.released.len(), released + 1);
    assert!(out.events.is_empty());

    let heartbeats_before = out.tracker.counters().heartbeats;
    feed(&mut sequencer, Origin::Line(0), &heartbeat(SESSION, 31), &mut out);
    assert_eq!(out.events, vec![RecoveryEvent::GapOpened { first: 28, end: 31, now_ns: 0 }]);
    feed(&mut sequencer, Origin::Line(1), &heartbeat(SESSION, 31), &mut out);
    // Heartbeats are not released while the gap is open.
    assert_eq!(out.tracker.counters().heartbeats, heartbeats_before);
    assert!(sequencer.is_recovering());

    out.now_ns = MS;
    sequencer.poll(out.now_ns, &mut out);
    assert_eq!(out.requests.len(), 1);
    assert_eq!((out.requests[0].1.sequence, out.requests[0].1.count), (28, 3));
    feed(&mut sequencer, Origin::Retransmission, &packets[9], &mut out);
    assert_eq!(out.delivered, all(30));
    assert!(!sequencer.is_recovering());
    assert_eq!(out.events.last(), Some(&RecoveryEvent::Recovered { next: 31 }));

    feed(&mut sequencer, Origin::Line(0), &heartbeat(SESSION, 31), &mut out);
    assert_eq!(out.tracker.counters().heartbeats, heartbeats_before + 1);
    assert_eq!(out.tracker.counters().gaps, 0);
}

#[test]
fn end_of_session_waits_behind_gap() {
    let mut out = Recorder::new();
    let mut sequencer = started(config(), &mut out);
    let packets = thirty();
    for (index, packet) in packets.iter().enumerate() {
        if index != 4 {
            feed(&mut sequencer, Origin::Line(0), packet, &mut out);
        }
    }
    feed(&mut sequencer, Origin::Line(0), &end_of_session(31), &mut out);
    assert!(!out.tracker.is_ended());
    assert_eq!(out.delivered, all(12));

    out.now_ns = MS;
    sequencer.poll(out.now_ns, &mut out);
    assert_eq!(out.requests.len(), 1);
    feed(&mut sequencer, Origin::Retransmission, &packets[4], &mut out);
    assert_eq!(out.delivered, all(30));
    assert!(out.tracker.is_ended());
    let last = out.released.last().copied();
    assert_eq!(last.map(|h| h.count), Some(0xFFFF));
    assert_eq!(out.tracker.counters().end_of_session, 1);
}

#[test]
fn end_of_session_beyond_horizon_opens_gap() {
    let mut out = Recorder::new();
    let mut sequencer = started(config(), &mut out);
    let packets = thirty();
    for packet in &packets[..9] {
        feed(&mut sequencer, Origin::Line(0), packet, &mut out);
    }
    feed(&mut sequencer, Origin::Line(0), &end_of_session(31), &mut out);
    assert_eq!(out.events, vec![RecoveryEvent::GapOpened { first: 28, end: 31, now_ns: 0 }]);
    assert!(!out.tracker.is_ended());
    feed(&mut sequencer, Origin::Line(1), &packets[9], &mut out);
    assert!(out.tracker.is_ended());
    assert_eq!(out.delivered, all(30));
}

#[test]
fn reset_drops_held_packets() {
    let mut out = Recorder::new();
    let mut sequencer = started(SequencerConfig { fallback: true, ..config() }, &mut out);
    let packets = thirty();
    for index in [0, 2, 3] {
        feed(&mut sequencer, Origin::Line(0), &packets[index], &mut out);
    }
    out.now_ns = 1_000 * MS;
    sequencer.poll(out.now_ns, &mut out);
    assert!(sequencer.in_fallback());

    sequencer.reset(OTHER_SESSION, 1, false, &mut out);
    assert_eq!(sequencer.counters().reset_drops, 2);
    assert_eq!(out.events.last(), Some(&RecoveryEvent::FallbackEnd { caught_up: false }));
    assert_eq!(sequencer.session(), Some(OTHER_SESSION));
    assert_eq!(sequencer.next(), 1);
    assert!(!sequencer.is_recovering());
    assert!(!sequencer.in_fallback());
    assert_eq!(out.delivered, all(3));

    // Nothing held before the reset comes out later, and the new session starts clean.
    let released = out.released.len();
    sequencer.poll(out.now_ns + 5_000 * MS, &mut out);
    assert_eq!(out.released.len(), released);
    let mut builder = PacketBuilder::new(OTHER_SESSION, 1, 1400);
    assert!(builder.try_push(&message_bytes(1)));
    let first = builder.finish().to_vec();
    feed(&mut sequencer, Origin::Line(0), &first, &mut out);
    assert_eq!(sequencer.next(), 2);
    assert_eq!(out.released.len(), released + 1);
}

#[test]
fn random_loss_reorder_duplication_releases_in_order_once() {
    let (mut seeds_giving_up, mut seeds_in_fallback) = (0u64, 0u64);
    let (mut fallback_messages, mut retransmitted_messages) = (0u64, 0u64);
    for seed in 0..40u64 {
        let mut rng = Lcg(seed * 7919 + 3);
        let buffer_packets = [8, 64, 512][(seed % 3) as usize];
        let fallback = seed % 5 == 4;
        let config = SequencerConfig {
            buffer_packets,
            max_request_messages: 5,
            max_outstanding: 3,
            give_up_ns: 200 * MS,
            fallback,
            ..config()
        };
        let mut out = Recorder::new();
        let mut sequencer = started(config, &mut out);
        let last = 400 + rng.next() % 400;
        let packets = build_packets(1, last + 1, &mut || rng.next() % 4 + 1);
        let line_a = mangle(&packets, &mut rng, 15, 15, 10);
        let line_b = mangle(&packets, &mut rng, 15, 15, 10);

        // Interleave the lines at random, with heartbeats after some packets.
        let mut arrivals = Vec::new();
        let (mut a, mut b) = (0, 0);
        while a < line_a.len() || b < line_b.len() {
            let take_a = b >= line_b.len() || (a < line_a.len() && rng.chance(50));
            let (origin, packet) = if take_a {
                a += 1;
                (Origin::Line(0), &line_a[a - 1])
            } else {
                b += 1;
                (Origin::Line(1), &line_b[b - 1])
            };
            arrivals.push((origin, packet.clone()));
            if rng.chance(5) {
                arrivals.push((origin, heartbeat(SESSION, header_of(packet).next_sequence())));
            }
        }
        arrivals.push((Origin::Line(0), heartbeat(SESSION, last + 1)));
        let mut server = Server::new(last, 70, 30 * MS, seed);

        drive(&mut sequencer, &mut out, &mut server, &arrivals, 20_000, 3_000);
        // A last heartbeat shows the tracker any messages given up at the tail.
        feed(&mut sequencer, Origin::Line(1), &heartbeat(SESSION, last + 1), &mut out);

        let counters = *sequencer.counters();
        assert!(!sequencer.is_recovering(), "seed {seed}");
        assert_eq!(sequencer.next(), last + 1, "seed {seed}");
        assert!(out.delivered.windows(2).all(|w| w[0] < w[1]), "seed {seed}: out of order or repeated");
        assert_eq!(out.delivered.len() as u64 + counters.messages_given_up, last, "seed {seed}");
        let given_up: u64 = out.gave_up().iter().map(|(first, end)| end - first).sum();
        assert_eq!(given_up, counters.messages_given_up, "seed {seed}");
        assert_eq!(out.tracker.counters().messages_missed, counters.messages_given_up, "seed {seed}");
        assert_eq!(out.tracker.counters().duplicate_packets, 0, "seed {seed}");
        if counters.gave_up == 0 {
            assert_eq!(out.delivered, all(last), "seed {seed}");
        }
        assert_gaps_accounted(&sequencer, &format!("seed {seed}"));
        let filled = out.count_events(|e| matches!(e, RecoveryEvent::GapFilled { .. }));
        assert_eq!(filled as u64, counters.gaps_filled, "seed {seed}");
        seeds_giving_up += u64::from(counters.gave_up > 0);
        seeds_in_fallback += u64::from(counters.fallbacks > 0);
        fallback_messages += counters.fallback_messages;
        retransmitted_messages += counters.retransmitted_messages;
    }
    // The seeds exercise every path.
    assert!(seeds_giving_up > 0);
    assert!(seeds_in_fallback > 0);
    assert!(fallback_messages > 0);
    assert!(retransmitted_messages > 0);
}

#[test]
fn far_forward_packet_is_dropped_until_confirmed() {
    let mut out = Recorder::new();
    let mut sequencer = started(SequencerConfig { max_jump_messages: 100, ..config() }, &mut out);
    let packets = thirty();
    let forged_data = build_packets(1_000_000_000, 1_000_000_001, &mut || 1);
    for packet in &packets[..5] {
        assert!(feed(&mut sequencer, Origin::Line(0), packet, &mut out));
    }
    assert!(!feed(&mut sequencer, Origin::Line(1), &forged_data[0], &mut out));
    for packet in &packets[5..7] {
        assert!(feed(&mut sequencer, Origin::Line(0), packet, &mut out));
    }
    assert!(!feed(&mut sequencer, Origin::Line(0), &heartbeat(SESSION, 2_000_000_000), &mut out));
    for packet in &packets[7..] {
        assert!(feed(&mut sequencer, Origin::Line(0), packet, &mut out));
    }
    while out.now_ns < 3_000 * MS {
        out.now_ns += MS;
        sequencer.poll(out.now_ns, &mut out);
    }
    let counters = *sequencer.counters();
    assert_eq!(counters.implausible_packets, 2);
    assert!(out.events.is_empty(), "events: {:?}", out.events);
    assert!(out.requests.is_empty());
    assert_eq!(out.delivered, all(30));
    assert_eq!(sequencer.next(), 31);
    assert_eq!(counters.arbitration_drops, 0);

    // A real jump: messages 31..=230 are lost on the line. The first packet after them is
    // dropped, the second confirms the jump, and retransmission recovers both.
    let after = build_packets(31, 261, &mut || 1);
    for (index, packet) in after.iter().enumerate().skip(200) {
        let accepted = feed(&mut sequencer, Origin::Line(0), packet, &mut out);
        assert_eq!(accepted, index != 200, "message {}", 31 + index);
        if index == 201 {
            assert_eq!(out.events.last(), Some(&RecoveryEvent::GapOpened { first: 31, end: 232, now_ns: out.now_ns }));
        }
    }
    let mut server = Server::new(260, 100, 2 * MS, 3);
    drive(&mut sequencer, &mut out, &mut server, &[], 0, 2_000);
    let counters = *sequencer.counters();
    assert_eq!(out.delivered, all(260));
    assert_eq!(counters.implausible_packets, 3);
    assert_eq!(counters.retransmitted_messages, 201);
    assert_eq!(counters.gave_up, 0);
    assert_eq!(out.tracker.counters().gaps, 0);
    assert!(!sequencer.is_recovering());
}

#[test]
fn forged_end_of_session_is_revoked() {
    let mut out = Recorder::new();
    let mut sequencer = started(config(), &mut out);
    let packets = thirty();
    for packet in &packets[..5] {
        feed(&mut sequencer, Origin::Line(0), packet, &mut out);
    }
    // An end of session at 16 while the session goes on; packet 5 (messages 16..=18) is lost.
    feed(&mut sequencer, Origin::Line(0), &end_of_session(16), &mut out);
    assert!(out.tracker.is_ended());
    for packet in &packets[6..] {
        feed(&mut sequencer, Origin::Line(0), packet, &mut out);
    }
    assert_eq!(sequencer.counters().revoked_ends, 1);
    assert_eq!(out.events, vec![RecoveryEvent::GapOpened { first: 16, end: 19, now_ns: 0 }]);
    assert_eq!(out.delivered, all(15));

    out.now_ns = MS;
    sequencer.poll(out.now_ns, &mut out);
    assert_eq!(out.requests.len(), 1);
    assert_eq!((out.requests[0].1.sequence, out.requests[0].1.count), (16, 3));
    feed(&mut sequencer, Origin::Retransmission, &packets[5], &mut out);
    assert_eq!(out.delivered, all(30));
    assert!(!out.tracker.is_ended());
    assert_eq!(out.tracker.counters().gaps, 0);
    assert!(!sequencer.is_recovering());
}

#[test]
fn end_of_session_contradicted_by_data_is_dropped() {
    let mut out = Recorder::new();
    let mut sequencer = started(config(), &mut out);
    let packets = thirty();
    // Packet 2 (messages 7..=9) is lost, so packets after it are held.
    for index in [0, 1, 3] {
        feed(&mut sequencer, Origin::Line(0), &packets[index], &mut out);
    }
    // Held until the gap fills, then revoked by packet 4, which carries message 13.
    feed(&mut sequencer, Origin::Line(0), &end_of_session(13), &mut out);
    feed(&mut sequencer, Origin::Line(0), &packets[4], &mut out);
    assert_eq!(sequencer.counters().revoked_ends, 1);
    // Below the horizon (16) on arrival: dropped at once.
    feed(&mut sequencer, Origin::Line(0), &end_of_session(14), &mut out);
    assert_eq!(sequencer.counters().revoked_ends, 2);

    out.now_ns = MS;
    sequencer.poll(out.now_ns, &mut out);
    feed(&mut sequencer, Origin::Retransmission, &packets[2], &mut out);
    assert_eq!(out.delivered, all(15));
    assert!(!out.tracker.is_ended());
    assert_eq!(out.tracker.counters().end_of_session, 0);
    assert!(!sequencer.is_recovering());
}

#[test]
fn response_past_request_end_is_dropped() {
    let mut out = Recorder::new();
    let mut sequencer = started(config(), &mut out);
    let packets = thirty();
    for index in [0, 1, 3, 4] {
        feed(&mut sequencer, Origin::Line(0), &packets[index], &mut out);
    }
    out.now_ns = MS;
    sequencer.poll(out.now_ns, &mut out);
    assert_eq!(out.requests.len(), 1);
    assert_eq!((out.requests[0].1.sequence, out.requests[0].1.count), (7, 3));

    // One response packet of messages 7..=30 overlaps the request but runs past its end.
    let oversized = build_packets(7, 31, &mut || 24);
    assert_eq!(oversized.len(), 1);
    feed(&mut sequencer, Origin::Retransmission, &oversized[0], &mut out);
    assert_eq!(sequencer.counters().unrequested_responses, 1);
    assert_eq!(out.delivered, all(6));

    feed(&mut sequencer, Origin::Retransmission, &packets[2], &mut out);
    assert_eq!(out.delivered, all(15));
    for packet in &packets[5..] {
        feed(&mut sequencer, Origin::Line(0), packet, &mut out);
    }
    assert_eq!(out.delivered, all(30));
    assert_eq!(sequencer.counters().retransmitted_messages, 3);
    assert_eq!(out.tracker.counters().gaps, 0);
}

#[test]
fn fallback_failed_gives_up_at_once() {
    let mut out = Recorder::new();
    let mut sequencer = started(SequencerConfig { fallback: true, ..config() }, &mut out);
    // Without a fallback running, nothing happens.
    sequencer.fallback_failed(0, &mut out);
    assert!(out.events.is_empty());

    let packets = thirty();
    for (index, packet) in packets.iter().enumerate() {
        if index != 2 {
            feed(&mut sequencer, Origin::Line(0), packet, &mut out);
        }
    }
    out.now_ns = 1_000 * MS;
    sequencer.poll(out.now_ns, &mut out);
    assert!(sequencer.in_fallback());

    // A fallback stream that starts past the horizon (31) does not move it.
    for packet in build_packets(40, 42, &mut || 1) {
        feed(&mut sequencer, Origin::Fallback, &packet, &mut out);
    }
    assert_eq!(sequencer.counters().unrequested_responses, 2);
    assert_eq!(out.delivered, all(6));

    out.now_ns += MS;
    sequencer.fallback_failed(out.now_ns, &mut out);
    assert!(!sequencer.in_fallback());
    assert!(!sequencer.is_recovering());
    assert_eq!(out.gave_up(), vec![(7, 10)]);
    assert!(out.events.contains(&RecoveryEvent::FallbackEnd { caught_up: false }));
    assert_eq!(out.events.last(), Some(&RecoveryEvent::Recovered { next: 31 }));
    let expected: Vec<u64> = (1..=30).filter(|s| !(7..10).contains(s)).collect();
    assert_eq!(out.delivered, expected);
    assert_eq!(sequencer.counters().gave_up, 1);
    assert_gaps_accounted(&sequencer, "after fallback_failed");
}

#[test]
fn gap_accounting_covers_merges_and_resets() {
    let mut out = Recorder::new();
    let mut sequencer = started(SequencerConfig { buffer_packets: 2, ..config() }, &mut out);
    // Each heartbeat reveals a new tail gap; the small gap list fills and later gaps merge.
    for step in 1..=20u64 {
        feed(&mut sequencer, Origin::Line(0), &heartbeat(SESSION, 1 + 5 * step), &mut out);
        assert_gaps_accounted(&sequencer, &format!("heartbeat {step}"));
    }
    let counters = *sequencer.counters();
    assert_eq!(counters.gaps, 20);
    assert!(counters.merged_gaps > 0);
    assert!(sequencer.open_gaps() > 0);

    let open = sequencer.open_gaps() as u64;
    sequencer.reset(OTHER_SESSION, 1, false, &mut out);
    assert_eq!(sequencer.counters().reset_gaps, open);
    assert_eq!(sequencer.open_gaps(), 0);
    assert_gaps_accounted(&sequencer, "after reset");
}

#[test]
fn gap_filled_from_below_is_not_given_up() {
    // A packet within the jump bound but far ahead (forged, or early) opens a gap that the line
    // keeps filling from below: nothing is given up while it does, however long it takes.
    let mut out = Recorder::new();
    let mut sequencer = started(config(), &mut out);
    let packets = build_packets(1, 401, &mut || 1);
    for packet in &packets[..10] {
        assert!(feed(&mut sequencer, Origin::Line(0), packet, &mut out));
    }
    let far = build_packets(400, 401, &mut || 1);
    assert!(feed(&mut sequencer, Origin::Line(1), &far[0], &mut out));
    // One message every 20 ms: 390 messages take 7.8 s, beyond give_up_ns.
    for packet in &packets[10..399] {
        out.now_ns += 20 * MS;
        sequencer.poll(out.now_ns, &mut out);
        assert!(feed(&mut sequencer, Origin::Line(0), packet, &mut out));
    }
    let counters = *sequencer.counters();
    assert_eq!(counters.gave_up, 0, "events: {:?}", out.events);
    assert_eq!(out.delivered, all(400));
    assert_eq!(out.tracker.counters().gaps, 0);
}

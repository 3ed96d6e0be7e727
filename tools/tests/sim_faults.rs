//! The simulator's exchange side on real loopback sockets: seeded faults on lines A and B
//! compared packet by packet with what a receiver saw, the retransmission server, and
//! `mdfh sim` with faults and `--report`.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mdfh::sim::{FaultConfig, FaultTarget, LineReport, Messages, RetransmitConfig, SimReport, UdpSim, UdpSimConfig};
use mdfh_feed::moldudp64::{self, SessionId};
use mdfh_feed::recovery::request::Request;
use mdfh_feed::recovery::server::{RetransmitCounters, RetransmitServer};
use mdfh_feed::soupbintcp::{SoupClient, SoupClientConfig};
use mdfh_feed::udp::monotonic_ns;
use socket2::{Domain, Protocol, Socket, Type};
use support::{convert_lobster_sample, mdfh_command, path_str, temp_dir};

const SESSION: SessionId = *b"SIM0000001";

/// Small packets, so that the 600-event sample makes a few hundred of them.
const SMALL_PACKET_BYTES: usize = 120;

/// What a receiver saw on one line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Capture {
    /// First sequence number and message count of each data packet, in arrival order.
    data: Vec<(u64, u16)>,
    /// Messages by sequence number, first copy.
    messages: BTreeMap<u64, Vec<u8>>,
    heartbeats: u64,
    end_of_session: u64,
}

/// Counts derived from a capture, to compare with a [`LineReport`].
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    packets: u64,
    missing_messages: u64,
    repeats: u64,
    out_of_order: u64,
}

fn observe(capture: &Capture, total_messages: u64) -> Observed {
    let mut starts = HashSet::new();
    let mut next_expected = 1u64;
    let mut repeats = 0;
    let mut out_of_order = 0;
    for &(sequence, count) in &capture.data {
        if !starts.insert(sequence) {
            repeats += 1;
            continue;
        }
        if sequence < next_expected {
            out_of_order += 1;
        }
        next_expected = next_expected.max(sequence + u64::from(count));
    }
    let missing = (1..=total_messages).filter(|s| !capture.messages.contains_key(s)).count() as u64;
    Observed { packets: capture.data.len() as u64, missing_messages: missing, repeats, out_of_order }
}

fn expected(line: &LineReport) -> Observed {
    Observed {
        packets: line.packets_sent,
        missing_messages: line.lost_messages,
        repeats: line.duplicated_packets,
        out_of_order: line.reordered_packets,
    }
}

/// Binds a receiver on 127.0.0.1 with a receive buffer large enough for a whole run at full
/// speed, so that the kernel drops nothing.
fn bind_receiver() -> (UdpSocket, SocketAddr) {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    socket.set_recv_buffer_size(4 << 20).unwrap();
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
    let socket: UdpSocket = socket.into();
    socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

fn record_packet(capture: &mut Capture, bytes: &[u8]) {
    let packet = moldudp64::parse(bytes).unwrap();
    let header = packet.header;
    if header.is_heartbeat() {
        capture.heartbeats += 1;
        return;
    }
    if header.is_end_of_session() {
        capture.end_of_session += 1;
        return;
    }
    capture.data.push((header.sequence, header.count));
    for (i, message) in packet.messages().enumerate() {
        let message = message.unwrap();
        capture.messages.entry(header.sequence + i as u64).or_insert_with(|| message.to_vec());
    }
}

/// Receives on `socket` until three end-of-session packets arrived (or 30 s passed).
fn capture_until_end(socket: UdpSocket) -> JoinHandle<Capture> {
    std::thread::spawn(move || {
        let mut capture = Capture::default();
        let mut buf = [0u8; 2048];
        let deadline = Instant::now() + Duration::from_secs(30);
        while capture.end_of_session < 3 && Instant::now() < deadline {
            if let Ok(len) = socket.recv(&mut buf) {
                record_packet(&mut capture, &buf[..len]);
            }
        }
        capture
    })
}

fn faulty_config(target: SocketAddr, target_b: SocketAddr, seed: u64) -> UdpSimConfig {
    UdpSimConfig {
        target_b: Some(target_b),
        max_packet_bytes: SMALL_PACKET_BYTES,
        faults: FaultConfig {
            seed,
            target: FaultTarget::Both,
            loss: 0.05,
            reorder: 0.05,
            duplicate: 0.05,
            delay: 0.02,
            delay_us: 200,
            burst_len: 4,
            burst_at: 20,
        },
        ..UdpSimConfig::new(target)
    }
}

/// Runs the sample through the simulator with faults on both lines and captures both lines.
fn run_faulty(seed: u64) -> (SimReport, Capture, Capture) {
    let messages = Messages::embedded_sample().unwrap();
    let (socket_a, addr_a) = bind_receiver();
    let (socket_b, addr_b) = bind_receiver();
    let receiver_a = capture_until_end(socket_a);
    let receiver_b = capture_until_end(socket_b);
    let report = mdfh::sim::run_udp(&messages, &faulty_config(addr_a, addr_b, seed), &AtomicBool::new(false)).unwrap();
    (report, receiver_a.join().unwrap(), receiver_b.join().unwrap())
}

#[test]
fn received_packets_match_report() {
    let (report, a, b) = run_faulty(7);
    let total = report.messages;
    let line_a = &report.line_a;
    let line_b = report.line_b.as_ref().unwrap();

    assert_eq!(observe(&a, total), expected(line_a));
    assert_eq!(observe(&b, total), expected(line_b));

    // Every kind of fault happened, so the comparison above covers each of them.
    for line in [line_a, line_b] {
        assert_eq!(line.burst_lost_packets, 4);
        assert!(line.lost_packets > line.burst_lost_packets, "{line:?}");
        assert!(line.duplicated_packets > 0, "{line:?}");
        assert!(line.reordered_packets > 0, "{line:?}");
        assert!(line.delayed_packets > 0, "{line:?}");
        assert_eq!(line.packets_sent, report.packets - line.lost_packets + line.duplicated_packets);
        assert_eq!(line.end_of_session_sent, 3);
    }
    assert_eq!(a.end_of_session, 3);
    assert_eq!(a.heartbeats, line_a.heartbeats_sent);
    assert!(a.heartbeats >= 1, "the tail heartbeat is missing");
    // The lines draw from different streams.
    assert_ne!(a.data, b.data);
}

/// Returns `report` with the line addresses cleared: each run's receivers get new ports.
fn without_targets(report: &SimReport) -> SimReport {
    let mut report = report.clone();
    let cleared = SocketAddr::from(([127, 0, 0, 1], 0));
    report.line_a.target = cleared;
    if let Some(line_b) = report.line_b.as_mut() {
        line_b.target = cleared;
    }
    report
}

#[test]
fn same_seed_same_faults() {
    let (report_1, a_1, b_1) = run_faulty(11);
    let (report_2, a_2, b_2) = run_faulty(11);
    assert_eq!(without_targets(&report_1), without_targets(&report_2));
    assert_eq!(a_1.data, a_2.data);
    assert_eq!(b_1.data, b_2.data);

    let (report_3, a_3, _) = run_faulty(12);
    assert_ne!(without_targets(&report_1).line_a, without_targets(&report_3).line_a);
    assert_ne!(a_1.data, a_3.data);
}

#[test]
fn unfaulted_line_gets_everything() {
    let messages = Messages::embedded_sample().unwrap();
    let (socket_a, addr_a) = bind_receiver();
    let (socket_b, addr_b) = bind_receiver();
    let receiver_a = capture_until_end(socket_a);
    let receiver_b = capture_until_end(socket_b);
    let mut config = faulty_config(addr_a, addr_b, 3);
    config.faults.target = FaultTarget::A;
    let report = mdfh::sim::run_udp(&messages, &config, &AtomicBool::new(false)).unwrap();
    let a = receiver_a.join().unwrap();
    let b = receiver_b.join().unwrap();

    let line_b = report.line_b.unwrap();
    assert_eq!(line_b.packets_sent, report.packets);
    assert_eq!(line_b.lost_packets + line_b.duplicated_packets + line_b.reordered_packets + line_b.delayed_packets, 0);
    assert_eq!(b.messages.len(), messages.len());
    for (i, source) in messages.iter().enumerate() {
        assert_eq!(b.messages.get(&(i as u64 + 1)).map(Vec::as_slice), Some(source), "message {}", i + 1);
    }
    assert!(report.line_a.lost_packets > 0);
    assert_eq!(observe(&a, report.messages), expected(&report.line_a));
}

/// A client of the retransmission server that reads the responses on its own socket.
struct Requester {
    socket: UdpSocket,
    server: SocketAddr,
}

impl Requester {
    fn new(server: SocketAddr) -> Requester {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Requester { socket, server }
    }

    fn send(&self, bytes: &[u8]) {
        self.socket.send_to(bytes, self.server).unwrap();
    }

    /// Receives response packets until `count` messages arrived; returns (sequence, message) pairs.
    fn receive_messages(&self, count: usize) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        while out.len() < count {
            let len = self.socket.recv(&mut buf).expect("no answer from the retransmission server");
            let packet = moldudp64::parse(&buf[..len]).unwrap();
            assert_eq!(packet.header.session, SESSION);
            assert!(len <= 1400, "answer packet of {len} bytes");
            for (i, message) in packet.messages().enumerate() {
                out.push((packet.header.sequence + i as u64, message.unwrap().to_vec()));
            }
        }
        out
    }
}

fn wait_for_requests(server: &RetransmitServer, requests: u64) {
    support::wait_until(support::WAIT, "the retransmission server to read the request", || {
        (server.counters().requests >= requests).then_some(())
    });
}

fn assert_answer(answer: &[(u64, Vec<u8>)], first: u64, count: usize, source: &[Box<[u8]>]) {
    assert_eq!(answer.len(), count);
    for (i, (sequence, message)) in answer.iter().enumerate() {
        assert_eq!(*sequence, first + i as u64);
        assert_eq!(message.as_slice(), &*source[(*sequence - 1) as usize], "message {sequence}");
    }
}

#[test]
fn retransmit_server_answers_and_counts() {
    let source = Messages::embedded_sample().unwrap().to_shared();
    // Published up to sequence 300 with a window of 200: sequences 101..=300 are served.
    let published = Arc::new(AtomicU64::new(301));
    let config = RetransmitConfig { window_messages: 200, max_messages_per_response: 50, ..RetransmitConfig::default() };
    let server = RetransmitServer::start(config, SESSION, source.clone(), Arc::clone(&published)).unwrap();
    let client = Requester::new(server.local_addr());
    let request = |sequence: u64, count: u16| Request { session: SESSION, sequence, count }.encode();

    client.send(&request(150, 20));
    assert_answer(&client.receive_messages(20), 150, 20, &source);

    client.send(&request(120, 400));
    assert_answer(&client.receive_messages(50), 120, 50, &source);

    // Beyond the window on both sides, another session, malformed.
    client.send(&request(100, 10));
    client.send(&request(301, 1));
    client.send(&Request { session: *b"SIM0000002", sequence: 150, count: 1 }.encode());
    client.send(&request(150, 1)[..19]);
    let mut zero_count = request(150, 1);
    zero_count[18..].copy_from_slice(&[0, 0]);
    client.send(&zero_count);
    let mut zero_sequence = request(150, 1);
    zero_sequence[10..18].copy_from_slice(&[0; 8]);
    client.send(&zero_sequence);
    wait_for_requests(&server, 8);

    server.set_answering(false);
    client.send(&request(150, 1));
    wait_for_requests(&server, 9);
    server.set_answering(true);

    // Publishing more moves the window: 101 is now too old and 301 is served.
    published.store(311, Ordering::Release);
    client.send(&request(301, 5));
    // The server sent nothing for the ignored requests, so the next packet responds to this one.
    assert_answer(&client.receive_messages(5), 301, 5, &source);

    // The server counts a packet once `send_to` returns, which can be after the client read it.
    let counters = support::wait_until(support::WAIT, "the last response to be counted", || {
        let counters = server.counters();
        (counters.messages_sent >= 75).then_some(counters)
    });
    assert_eq!(
        counters,
        RetransmitCounters {
            requests: 10,
            answered: 3,
            messages_sent: 75,
            packets_sent: counters.packets_sent,
            beyond_window: 2,
            other_session: 1,
            malformed: 3,
            ignored_while_stopped: 1,
            send_errors: 0,
        }
    );
    // Each of the three answers takes at least one packet.
    assert!(counters.packets_sent >= 3);
}

/// Groups sorted sequence numbers into (first, count) runs.
fn runs(sequences: &[u64]) -> Vec<(u64, u16)> {
    let mut out: Vec<(u64, u16)> = Vec::new();
    for &s in sequences {
        match out.last_mut() {
            Some((first, count)) if *first + u64::from(*count) == s && *count < 500 => *count += 1,
            _ => out.push((s, 1)),
        }
    }
    out
}

#[test]
fn lost_messages_recovered_from_sim() {
    let messages = Messages::embedded_sample().unwrap();
    let source = messages.to_shared();
    let total = messages.len() as u64;
    let (socket, addr) = bind_receiver();
    let config = UdpSimConfig {
        max_packet_bytes: SMALL_PACKET_BYTES,
        faults: FaultConfig { loss: 0.1, burst_len: 3, burst_at: 10, ..FaultConfig::default() },
        retransmit: Some(RetransmitConfig::default()),
        // Long enough for any machine; the test stops the simulator once it has recovered.
        linger: Duration::from_secs(60),
        ..UdpSimConfig::new(addr)
    };
    let stop = AtomicBool::new(false);
    let sim = UdpSim::start(&messages, &config).unwrap();
    let server = sim.retransmit_addr().unwrap();

    let (report, requests, recovered) = std::thread::scope(|scope| {
        let running = scope.spawn(|| sim.run(&stop));
        let mut capture = Capture::default();
        let mut buf = [0u8; 2048];
        // The heartbeat right after the last message ends the live data.
        while capture.heartbeats == 0 {
            if let Ok(len) = socket.recv(&mut buf) {
                record_packet(&mut capture, &buf[..len]);
            }
        }
        let missing: Vec<u64> = (1..=total).filter(|s| !capture.messages.contains_key(s)).collect();
        let requests = runs(&missing);
        for &(sequence, count) in &requests {
            socket.send_to(&Request { session: SESSION, sequence, count }.encode(), server).unwrap();
        }
        let mut recovered = BTreeMap::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while recovered.len() < missing.len() && Instant::now() < deadline {
            let Ok(len) = socket.recv(&mut buf) else { continue };
            let packet = moldudp64::parse(&buf[..len]).unwrap();
            for (i, message) in packet.messages().enumerate() {
                recovered.insert(packet.header.sequence + i as u64, message.unwrap().to_vec());
            }
        }
        stop.store(true, Ordering::Relaxed);
        (running.join().unwrap().unwrap(), requests, recovered)
    });

    assert_eq!(recovered.len() as u64, report.line_a.lost_messages);
    for (sequence, message) in &recovered {
        assert_eq!(message.as_slice(), &*source[(*sequence - 1) as usize], "message {sequence}");
    }
    let counters = report.retransmit.unwrap();
    assert_eq!(counters.requests, requests.len() as u64);
    assert_eq!(counters.answered, requests.len() as u64);
    assert_eq!(counters.messages_sent, report.line_a.lost_messages);
}

#[test]
fn retransmit_stops_after_limit() {
    let messages = Messages::embedded_sample().unwrap();
    let (socket, addr) = bind_receiver();
    let config = UdpSimConfig {
        retransmit: Some(RetransmitConfig::default()),
        retransmit_stop_after: Some(100),
        linger: Duration::from_secs(60),
        ..UdpSimConfig::new(addr)
    };
    let stop = AtomicBool::new(false);
    let sim = UdpSim::start(&messages, &config).unwrap();
    let server = sim.retransmit_addr().unwrap();
    let report = std::thread::scope(|scope| {
        let running = scope.spawn(|| sim.run(&stop));
        let mut capture = Capture::default();
        let mut buf = [0u8; 2048];
        while capture.heartbeats == 0 {
            if let Ok(len) = socket.recv(&mut buf) {
                record_packet(&mut capture, &buf[..len]);
            }
        }
        socket.send_to(&Request { session: SESSION, sequence: 1, count: 10 }.encode(), server).unwrap();
        // The next linger heartbeat comes a heartbeat interval (1 s) later. The server reads the
        // request long before, so any data packet that arrives first is an answer.
        let mut answered = false;
        loop {
            let len = socket.recv(&mut buf).unwrap_or(0);
            if len == 0 {
                continue;
            }
            if moldudp64::parse(&buf[..len]).unwrap().header.is_heartbeat() {
                break;
            }
            answered = true;
        }
        stop.store(true, Ordering::Relaxed);
        assert!(!answered, "the stopped server answered");
        running.join().unwrap().unwrap()
    });
    let counters = report.retransmit.unwrap();
    assert_eq!(counters.requests, 1);
    assert_eq!(counters.ignored_while_stopped, 1);
    assert_eq!(counters.answered, 0);
}

#[test]
fn cli_report_matches_receivers() {
    let dir = temp_dir("sim_faults_cli");
    let file = convert_lobster_sample(&dir);
    let report_path = dir.join("report.json");
    let (socket_a, addr_a) = bind_receiver();
    let (socket_b, addr_b) = bind_receiver();
    let receiver_a = capture_until_end(socket_a);
    let receiver_b = capture_until_end(socket_b);
    let (addr_a, addr_b) = (addr_a.to_string(), addr_b.to_string());
    let args = [
        "sim", path_str(&file), "--rate", "0", "--udp", &addr_a, "--udp-b", &addr_b, "--seed", "5", "--loss", "0.2",
        "--duplicate", "0.1", "--burst", "2", "--burst-at", "1", "--faults", "both", "--retransmit", "127.0.0.1:0",
        "--linger", "0.1", "--report", path_str(&report_path),
    ];
    let output = mdfh_command().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "mdfh sim failed:\n{stderr}");
    assert!(stderr.contains(&format!("line A udp://{addr_a}")), "{stderr}");
    assert!(stderr.contains("retransmission requests on udp://127.0.0.1:"), "{stderr}");

    let report: SimReport = serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(report.passes, 1);
    assert_eq!(report.messages, support::message_count(&file));
    let a = receiver_a.join().unwrap();
    let b = receiver_b.join().unwrap();
    let line_b = report.line_b.as_ref().unwrap();
    assert_eq!(observe(&a, report.messages), expected(&report.line_a));
    assert_eq!(observe(&b, report.messages), expected(line_b));
    assert_eq!(report.line_a.burst_lost_packets, 2);
    assert_eq!(line_b.burst_lost_packets, 2);
    assert!(report.line_a.lost_packets > 2);
    assert_eq!(report.retransmit.as_ref().map(|r| r.requests), Some(0));
    assert!(report.soup.is_none());
}

#[test]
fn cli_rejects_bad_fault_settings() {
    let dir = temp_dir("sim_faults_cli_invalid");
    let file = convert_lobster_sample(&dir);
    let cases: [(&[&str], &str); 2] = [
        (&["--udp", "127.0.0.1:9", "--loss", "1.5"], "invalid loss probability 1.5"),
        (&["--udp", "127.0.0.1:9", "--udp-b", "127.0.0.1:9"], "line A and line B both use 127.0.0.1:9"),
    ];
    for (extra, message) in cases {
        let output = mdfh_command().arg("sim").arg(&file).args(extra).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "mdfh sim {extra:?} succeeded");
        assert!(stderr.contains(message), "mdfh sim {extra:?}: expected {message:?} in:\n{stderr}");
    }
}

#[test]
fn soup_fallback_replays_session() {
    let messages = Messages::embedded_sample().unwrap();
    let source = messages.to_shared();
    let total = messages.len() as u64;
    // Bound so that the data packets have a destination; the test reads the SoupBinTCP side only.
    let (_socket, addr) = bind_receiver();
    let config = UdpSimConfig {
        soup: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        linger: Duration::from_secs(60),
        ..UdpSimConfig::new(addr)
    };
    let stop = AtomicBool::new(false);
    let sim = UdpSim::start(&messages, &config).unwrap();
    let soup = sim.soup_addr().unwrap();
    let first = total - 20;

    let (report, received, session) = std::thread::scope(|scope| {
        let running = scope.spawn(|| sim.run(&stop));
        let mut client = SoupClient::new(SoupClientConfig {
            session: "SIM0000001".to_owned(),
            first_sequence: first,
            ..SoupClientConfig::new(soup)
        })
        .unwrap();
        let mut received: Vec<(u64, Vec<u8>)> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while (received.len() as u64) <= total - first && Instant::now() < deadline {
            let work = client.poll(monotonic_ns(), |sequence, message, _| received.push((sequence, message.to_vec())));
            if work == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let session = client.session().copied();
        client.logout(monotonic_ns());
        stop.store(true, Ordering::Relaxed);
        (running.join().unwrap().unwrap(), received, session)
    });

    assert_eq!(session, Some(SESSION));
    assert_eq!(received.len() as u64, total - first + 1);
    for (sequence, message) in &received {
        assert_eq!(message.as_slice(), &*source[(*sequence - 1) as usize], "message {sequence}");
    }
    assert_eq!(received.first().map(|(s, _)| *s), Some(first));
    let soup_report = report.soup.unwrap();
    assert_eq!(soup_report.logins_accepted, 1);
    assert!(soup_report.messages_sent > total - first);
}

#[test]
fn servers_follow_pass_session() {
    let messages = Messages::embedded_sample().unwrap();
    let (socket, addr) = bind_receiver();
    let config = UdpSimConfig {
        // About 0.3 s per pass, so that requests arrive while pass 2 runs.
        rate: 2_000,
        repeat: true,
        pause_between_passes: Duration::ZERO,
        retransmit: Some(RetransmitConfig::default()),
        ..UdpSimConfig::new(addr)
    };
    let stop = AtomicBool::new(false);
    let sim = UdpSim::start(&messages, &config).unwrap();
    let server = sim.retransmit_addr().unwrap();
    let session_2 = *b"SIM0000002";

    let (report, answer) = std::thread::scope(|scope| {
        let running = scope.spawn(|| sim.run(&stop));
        let mut buf = [0u8; 2048];
        // Wait for pass 2's first data packet: its sequence 1 is then published.
        loop {
            let Ok(len) = socket.recv(&mut buf) else { continue };
            let header = moldudp64::parse(&buf[..len]).unwrap().header;
            if header.session == session_2 && header.count > 0 && !header.is_end_of_session() {
                break;
            }
        }
        socket.send_to(&Request { session: SESSION, sequence: 1, count: 1 }.encode(), server).unwrap();
        socket.send_to(&Request { session: session_2, sequence: 1, count: 1 }.encode(), server).unwrap();
        let mut answer = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        while answer.is_none() && Instant::now() < deadline {
            let Ok((len, from)) = socket.recv_from(&mut buf) else { continue };
            if from == server {
                let packet = moldudp64::parse(&buf[..len]).unwrap();
                answer = Some((packet.header, packet.messages().next().unwrap().unwrap().to_vec()));
            }
        }
        stop.store(true, Ordering::Relaxed);
        (running.join().unwrap().unwrap(), answer)
    });

    let (header, message) = answer.expect("no answer for pass 2");
    assert_eq!(header.session, session_2);
    assert_eq!(header.sequence, 1);
    assert_eq!(Some(message.as_slice()), messages.get(0));
    assert!(report.passes >= 1);
    let counters = report.retransmit.unwrap();
    assert_eq!(counters.other_session, 1);
    assert_eq!(counters.answered, 1);
}

//! SoupBinTCP client and server over real TCP connections on 127.0.0.1, serving real ITCH
//! messages from the NASDAQ captures. Fake servers are plain `TcpListener`s in the test.

mod net_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use mdfh_feed::itch;
use mdfh_feed::soupbintcp::frame::session_id;
use mdfh_feed::soupbintcp::{
    ClientPacket, ClientState, RejectReason, ServerPacket, SoupClient, SoupClientConfig, SoupError, SoupServer,
    SoupServerConfig,
};
use mdfh_feed::udp::monotonic_ns;
use net_support::{real_itch_messages, wait_for};

const LIMIT: Duration = Duration::from_secs(20);

fn messages() -> Arc<[Box<[u8]>]> {
    real_itch_messages().into_iter().map(Vec::into_boxed_slice).collect()
}

fn server(config: SoupServerConfig, messages: Arc<[Box<[u8]>]>) -> SoupServer {
    SoupServer::start(config, messages).unwrap()
}

/// Client settings with short reconnect waits, so that tests that reconnect stay quick.
fn client_config(addr: SocketAddr) -> SoupClientConfig {
    SoupClientConfig {
        reconnect_backoff_min: Duration::from_millis(5),
        reconnect_backoff_max: Duration::from_millis(50),
        ..SoupClientConfig::new(addr)
    }
}

/// Received `(sequence, message)` pairs.
type Received = Vec<(u64, Vec<u8>)>;

/// Polls `client` until `done` holds, collecting what it delivers.
fn poll_until(client: &mut SoupClient, received: &mut Received, what: &str, mut done: impl FnMut(&SoupClient, &Received) -> bool) {
    wait_for(what, LIMIT, || {
        client.poll(monotonic_ns(), |seq, msg, _| received.push((seq, msg.to_vec())));
        done(client, received)
    });
}

/// Asserts that `received` contains exactly messages `first..` of `sent`, in order.
fn assert_exact_range(received: &Received, sent: &[Box<[u8]>], first: u64) {
    let sequences: Vec<u64> = received.iter().map(|(s, _)| *s).collect();
    let expected: Vec<u64> = (first..=sent.len() as u64).collect();
    assert_eq!(sequences, expected, "sequence numbers received");
    for (seq, msg) in received {
        assert!(msg[..] == sent[*seq as usize - 1][..], "message {seq} differs from the one served");
        assert!(itch::decode(msg).is_ok(), "message {seq} does not decode as ITCH");
    }
}

#[test]
fn login_from_one_receives_all() {
    let sent = messages();
    let srv = server(SoupServerConfig { end_of_session: true, ..SoupServerConfig::default() }, sent.clone());
    let mut client = SoupClient::new(client_config(srv.local_addr())).unwrap();
    let mut received = Vec::new();

    poll_until(&mut client, &mut received, "end of session", |c, _| c.state() == ClientState::EndOfSession);

    assert_exact_range(&received, &sent, 1);
    assert_eq!(client.next_sequence(), sent.len() as u64 + 1);
    assert_eq!(client.session(), Some(&session_id("SIM0000001").unwrap()));
    let counters = client.counters();
    assert_eq!(counters.messages, sent.len() as u64);
    assert_eq!(counters.logins, 1);
    assert_eq!(counters.connects, 1);
    assert_eq!(counters.malformed_frames, 0);
    assert_eq!(srv.counters().messages_sent, sent.len() as u64);
    assert_eq!(srv.counters().end_of_session_sent, 1);
    assert_eq!(client.poll(monotonic_ns(), |_, _, _| panic!("message after end of session")), 0);
}

#[test]
fn login_from_k_starts_at_k() {
    let sent = messages();
    let srv = server(SoupServerConfig { end_of_session: true, ..SoupServerConfig::default() }, sent.clone());
    let k = 17;
    let config = SoupClientConfig { first_sequence: k, ..client_config(srv.local_addr()) };
    let mut client = SoupClient::new(config).unwrap();
    let mut received = Vec::new();

    poll_until(&mut client, &mut received, "end of session", |c, _| c.state() == ClientState::EndOfSession);

    assert_exact_range(&received, &sent, k);
    assert_eq!(srv.counters().messages_sent, sent.len() as u64 - (k - 1));
}

#[test]
fn reconnect_resumes_without_gap_or_duplicate() {
    let sent = messages();
    assert!(sent.len() > 80, "the test needs more than 80 messages");
    // Paced so that the server is mid-stream when the test cuts the connections.
    let config = SoupServerConfig {
        messages_per_second: 500,
        end_of_session: true,
        ..SoupServerConfig::default()
    };
    let srv = server(config, sent.clone());
    let mut client = SoupClient::new(client_config(srv.local_addr())).unwrap();
    let mut received = Vec::new();

    for cut_after in [20, 60] {
        poll_until(&mut client, &mut received, "messages before the cut", |_, r| r.len() >= cut_after);
        assert!(srv.disconnect_clients() >= 1, "no open connection to cut");
    }
    poll_until(&mut client, &mut received, "end of session", |c, _| c.state() == ClientState::EndOfSession);

    assert_exact_range(&received, &sent, 1);
    let counters = client.counters();
    assert_eq!(counters.connects, 3);
    assert_eq!(counters.reconnects, 2);
    assert_eq!(counters.logins, 3);
    assert_eq!(srv.counters().logins_accepted, 3);
    assert_eq!(srv.counters().end_of_session_sent, 1);
}

#[test]
fn wrong_password_rejected_and_retried() {
    let config = SoupServerConfig {
        credentials: Some(("user".to_owned(), "secret".to_owned())),
        ..SoupServerConfig::default()
    };
    let srv = server(config, messages());
    let config = SoupClientConfig {
        username: "user".to_owned(),
        password: "wrong".to_owned(),
        ..client_config(srv.local_addr())
    };
    let mut client = SoupClient::new(config).unwrap();
    let mut received = Vec::new();

    poll_until(&mut client, &mut received, "two rejects", |c, _| c.counters().login_rejects >= 2);

    assert_eq!(client.last_error(), Some(&SoupError::LoginRejected { reason: RejectReason::NotAuthorized }));
    assert!(received.is_empty());
    assert_eq!(client.counters().logins, 0);
    assert!(client.counters().connects >= 2, "the client must retry after a reject");
    assert!(srv.counters().logins_rejected >= 2);
    assert_eq!(srv.counters().logins_accepted, 0);
}

#[test]
fn right_password_accepted() {
    let config = SoupServerConfig {
        credentials: Some(("user".to_owned(), "secret".to_owned())),
        end_of_session: true,
        ..SoupServerConfig::default()
    };
    let sent = messages();
    let srv = server(config, sent.clone());
    let config = SoupClientConfig {
        username: "user".to_owned(),
        password: "secret".to_owned(),
        ..client_config(srv.local_addr())
    };
    let mut client = SoupClient::new(config).unwrap();
    let mut received = Vec::new();
    poll_until(&mut client, &mut received, "end of session", |c, _| c.state() == ClientState::EndOfSession);
    assert_exact_range(&received, &sent, 1);
}

#[test]
fn unknown_session_rejected() {
    let srv = server(SoupServerConfig::default(), messages());
    let config = SoupClientConfig { session: "OTHER".to_owned(), ..client_config(srv.local_addr()) };
    let mut client = SoupClient::new(config).unwrap();
    let mut received = Vec::new();

    poll_until(&mut client, &mut received, "a reject", |c, _| c.counters().login_rejects >= 1);

    assert_eq!(
        client.last_error(),
        Some(&SoupError::LoginRejected { reason: RejectReason::SessionNotAvailable })
    );
}

#[test]
fn heartbeats_flow_when_idle() {
    // No messages and no end of session: only heartbeats cross the connection.
    let config = SoupServerConfig {
        heartbeat_interval: Duration::from_millis(10),
        ..SoupServerConfig::default()
    };
    let srv = server(config, Arc::from(Vec::new()));
    let config = SoupClientConfig {
        heartbeat_interval: Duration::from_millis(10),
        ..client_config(srv.local_addr())
    };
    let mut client = SoupClient::new(config).unwrap();
    let mut received = Vec::new();

    poll_until(&mut client, &mut received, "heartbeats both ways", |c, _| {
        c.counters().heartbeats_received >= 3 && c.counters().heartbeats_sent >= 3
    });
    wait_for("server to count client heartbeats", LIMIT, || srv.counters().heartbeats_received >= 3);

    assert_eq!(client.state(), ClientState::Active);
    assert_eq!(client.counters().connects, 1, "an idle but live link must not reconnect");
    assert_eq!(client.counters().timeouts, 0);
    assert!(srv.counters().heartbeats_sent >= 3);
    assert!(received.is_empty());
}

/// Accepts `replies.len()` connections. On each it reads the 49-byte Login Request, writes the
/// reply bytes, then keeps the connection open until the client closes it. Returns the Login
/// Requests received.
fn fake_server(replies: Vec<Vec<u8>>) -> (SocketAddr, thread::JoinHandle<Vec<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let mut logins = Vec::new();
        for reply in replies {
            let (mut stream, _) = listener.accept().unwrap();
            let mut login = [0u8; 49];
            stream.read_exact(&mut login).unwrap();
            logins.push(login.to_vec());
            stream.write_all(&reply).unwrap();
            // Wait for the client to close; errors mean the same.
            let mut sink = [0u8; 256];
            while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
        }
        logins
    });
    (addr, handle)
}

fn login_accepted(session: &str, sequence: u64) -> Vec<u8> {
    let mut out = Vec::new();
    ServerPacket::LoginAccepted { session: session_id(session).unwrap(), sequence }
        .encode(&mut out)
        .unwrap();
    out
}

#[test]
fn garbage_from_server_is_malformed_frame() {
    let mut bad_number = vec![0x00, 31, b'A'];
    bad_number.extend_from_slice(b"   SESSION");
    bad_number.extend_from_slice(b"          12x4567890");
    let mut after_login = login_accepted("SESSION", 1);
    after_login.extend_from_slice(&[0x00, 0x00, 0xFF, 0xFF]);
    let replies = vec![
        vec![0x00, 0x00, b'g', b'a', b'r', b'b'],
        vec![0x00, 0x04, b'Q', 1, 2, 3],
        bad_number,
        after_login,
    ];
    let (addr, fake) = fake_server(replies);
    let mut client = SoupClient::new(client_config(addr)).unwrap();
    let mut received = Vec::new();
    let mut errors = Vec::new();

    for expected in 1..=4 {
        poll_until(&mut client, &mut received, "a malformed frame", |c, _| c.counters().malformed_frames >= expected);
        errors.push(client.last_error().cloned());
    }

    assert!(matches!(errors[0], Some(SoupError::EmptyPacket { offset: 0 })), "{:?}", errors[0]);
    assert!(matches!(errors[1], Some(SoupError::UnknownType { offset: 0, packet_type: b'Q' })), "{:?}", errors[1]);
    assert!(matches!(errors[2], Some(SoupError::InvalidNumber { offset: 0, packet_type: b'A', .. })), "{:?}", errors[2]);
    assert!(matches!(errors[3], Some(SoupError::EmptyPacket { offset: 33 })), "{:?}", errors[3]);
    assert!(received.is_empty());
    assert_eq!(client.counters().malformed_frames, 4);
    assert_eq!(client.counters().logins, 1);
    let logins = fake.join().unwrap();
    assert_eq!(logins.len(), 4);
    for login in &logins {
        assert!(matches!(ClientPacket::decode(&login[2..], 0), Ok(ClientPacket::LoginRequest(_))));
    }
}

#[test]
fn login_accepted_at_invalid_sequence_fails() {
    let replies = vec![login_accepted("SESSION", 0), login_accepted("SESSION", u64::MAX)];
    let (addr, fake) = fake_server(replies);
    let mut client = SoupClient::new(client_config(addr)).unwrap();
    let mut received = Vec::new();
    let mut errors = Vec::new();
    for expected in 1..=2 {
        poll_until(&mut client, &mut received, "an invalid login sequence", |c, _| c.counters().malformed_frames >= expected);
        errors.push(client.last_error().cloned());
    }
    assert!(matches!(errors[0], Some(SoupError::InvalidLoginSequence { sequence: 0, .. })), "{:?}", errors[0]);
    assert!(matches!(errors[1], Some(SoupError::InvalidLoginSequence { sequence: u64::MAX, .. })), "{:?}", errors[1]);
    assert!(received.is_empty());
    assert_eq!(client.counters().logins, 0);
    assert_eq!(fake.join().unwrap().len(), 2);
}

#[test]
fn silent_server_times_out_and_resumes() {
    // Login Accepted names session FAKE and sequence 5, then the fake server sends nothing more.
    let (addr, fake) = fake_server(vec![login_accepted("FAKE", 5), login_accepted("FAKE", 5)]);
    let config = SoupClientConfig {
        silence_timeout: Duration::from_millis(50),
        heartbeat_interval: Duration::from_millis(10),
        ..client_config(addr)
    };
    let mut client = SoupClient::new(config).unwrap();
    let mut received = Vec::new();

    poll_until(&mut client, &mut received, "two timeouts", |c, _| c.counters().timeouts >= 2);

    assert!(matches!(client.last_error(), Some(SoupError::ServerTimeout { .. })), "{:?}", client.last_error());
    assert_eq!(client.counters().connects, 2);
    let logins = fake.join().unwrap();
    let Ok(ClientPacket::LoginRequest(first)) = ClientPacket::decode(&logins[0][2..], 0) else {
        panic!("first packet is not a Login Request");
    };
    let Ok(ClientPacket::LoginRequest(second)) = ClientPacket::decode(&logins[1][2..], 0) else {
        panic!("second packet is not a Login Request");
    };
    assert_eq!(first.sequence, 1);
    assert_eq!(first.session, *b"          ");
    assert_eq!(second.sequence, 5, "the reconnect must ask for the next expected sequence number");
    assert_eq!(second.session, session_id("FAKE").unwrap(), "the reconnect must ask for the same session");
}

#[test]
fn gives_up_after_max_attempts() {
    // A port with no listener: bind, read the address, close.
    let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let config = SoupClientConfig { max_reconnect_attempts: 3, ..client_config(addr) };
    let mut client = SoupClient::new(config).unwrap();
    let mut received = Vec::new();

    poll_until(&mut client, &mut received, "the client to give up", |c, _| c.state() == ClientState::GaveUp);

    assert_eq!(client.counters().connect_attempts, 3);
    assert_eq!(client.counters().connect_failures, 3);
    assert!(matches!(client.last_error(), Some(SoupError::Connect { .. })));
}

#[test]
fn server_closes_on_malformed_client_frame() {
    let srv = server(SoupServerConfig::default(), messages());
    let mut stream = TcpStream::connect(srv.local_addr()).unwrap();
    stream.write_all(&[0x00, 0x02, b'X', b'Y']).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    let mut buf = [0u8; 64];
    let closed = matches!(stream.read(&mut buf), Ok(0) | Err(_));
    assert!(closed, "the server must close the connection after a malformed frame");
    wait_for("the server to count the frame", LIMIT, || srv.counters().malformed_frames == 1);
    assert_eq!(srv.counters().logins_accepted, 0);
}

#[test]
fn logout_stops_client() {
    let srv = server(SoupServerConfig::default(), Arc::from(Vec::new()));
    let mut client = SoupClient::new(client_config(srv.local_addr())).unwrap();
    let mut received = Vec::new();
    poll_until(&mut client, &mut received, "login", |c, _| c.state() == ClientState::Active);

    client.logout(monotonic_ns());

    assert_eq!(client.state(), ClientState::LoggedOut);
    assert_eq!(client.poll(monotonic_ns(), |_, _, _| {}), 0);
    assert_eq!(client.counters().connects, 1);
}

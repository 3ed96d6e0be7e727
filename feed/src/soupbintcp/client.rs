//! A non-blocking SoupBinTCP client, driven by [`SoupClient::poll`] from the input thread.
//!
//! The client connects, logs in with the next sequence number it expects, numbers sequenced
//! data from the number in Login Accepted, sends a heartbeat after an interval without sending,
//! and treats a silent server as a lost link. After a lost link or a rejected login it waits
//! (doubling the wait each time, up to a maximum), reconnects and resumes from the next expected
//! number, so the messages passed on have no gap and no duplicate across reconnects.
//!
//! A server ends a session with End of Session, or by rejecting a login to it as "session not
//! available" after a restart. A client that follows new sessions (see
//! [`SoupClientConfig::follow_new_sessions`]) then logs in to the server's current session from
//! sequence 1, and [`SoupClient::poll_events`] reports the end and the new Login Accepted before
//! the new session's first message.

use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use super::frame::{trim, ClientPacket, FrameReader, LoginRequest, RejectReason, ServerPacket, SessionId};
use super::SoupError;
use crate::udp::monotonic_ns;

/// Settings of a [`SoupClient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoupClientConfig {
    /// Server address. The default, 127.0.0.1 port 0, is a placeholder that no connect reaches.
    pub server: SocketAddr,
    /// Up to 6 ASCII characters.
    pub username: String,
    /// Up to 10 ASCII characters.
    pub password: String,
    /// Up to 10 ASCII characters. Empty logs into the server's current session. After the first
    /// login the client requests the session the server named.
    pub session: String,
    /// Whether the client logs in to the server's current session, from sequence 1, after its
    /// session ended (End of Session, or a login rejected as "session not available"). `None`
    /// follows new sessions only when `session` is empty, so a client configured with a session
    /// name stays with that session.
    pub follow_new_sessions: Option<bool>,
    /// Sequence number requested at the first login. 1 is the start of the session.
    pub first_sequence: u64,
    /// Maximum time one connect may block `poll`.
    pub connect_timeout: Duration,
    /// The client sends a heartbeat after this long without sending.
    pub heartbeat_interval: Duration,
    /// The link counts as lost after this long without a packet from the server.
    pub silence_timeout: Duration,
    /// Wait before the first reconnect after a failure. Each further failure doubles it.
    pub reconnect_backoff_min: Duration,
    /// Upper bound of the doubling wait.
    pub reconnect_backoff_max: Duration,
    /// Consecutive failures (connect failures, rejects, lost links) with no Login Accepted in
    /// between, after which the client gives up. 0 retries forever.
    pub max_reconnect_attempts: u32,
}

impl SoupClientConfig {
    /// Returns the settings for `server` with blank credentials, any session (following new
    /// sessions), sequence 1, the protocol's usual 1 s heartbeat and 15 s timeout, and reconnect
    /// waits from 100 ms to 5 s.
    pub fn new(server: SocketAddr) -> Self {
        SoupClientConfig {
            server,
            username: String::new(),
            password: String::new(),
            session: String::new(),
            follow_new_sessions: None,
            first_sequence: 1,
            connect_timeout: Duration::from_secs(1),
            heartbeat_interval: Duration::from_secs(1),
            silence_timeout: Duration::from_secs(15),
            reconnect_backoff_min: Duration::from_millis(100),
            reconnect_backoff_max: Duration::from_secs(5),
            max_reconnect_attempts: 0,
        }
    }
}

impl Default for SoupClientConfig {
    /// Returns [`SoupClientConfig::new`] for 127.0.0.1 port 0. Set `server` before use.
    fn default() -> Self {
        Self::new(SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)))
    }
}

/// Connection state of a [`SoupClient`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// No connection. The next `poll` after the reconnect wait connects.
    Disconnected,
    /// Connected and Login Request sent, waiting for Login Accepted or Login Rejected.
    LoggingIn,
    /// Logged in, with sequenced data flowing.
    Active,
    /// The server sent End of Session. A client that follows new sessions logs in to the next one
    /// after `reconnect_backoff_max`. Any other client stays disconnected.
    EndOfSession,
    /// [`SoupClient::logout`] was called.
    LoggedOut,
    /// `max_reconnect_attempts` consecutive attempts failed.
    GaveUp,
}

/// Running totals of a [`SoupClient`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientCounters {
    pub connect_attempts: u64,
    /// Successful TCP connects.
    pub connects: u64,
    /// Successful TCP connects after the first.
    pub reconnects: u64,
    pub connect_failures: u64,
    /// Login Accepted packets, except those naming a session that already ended.
    pub logins: u64,
    /// Login Accepted packets naming a session other than the one before.
    pub session_changes: u64,
    /// Login Accepted packets naming the session that ended with End of Session, while the client
    /// waits for the next one. Each closes the connection and counts as a failed attempt.
    pub ended_session_logins: u64,
    /// Login Rejected packets.
    pub login_rejects: u64,
    /// Connections the server closed.
    pub disconnects: u64,
    /// Links declared lost after `silence_timeout` of silence.
    pub timeouts: u64,
    pub heartbeats_sent: u64,
    pub heartbeats_received: u64,
    /// Sequenced messages passed to the `poll` callback.
    pub messages: u64,
    /// Packets that failed to decode. Each also ends the connection.
    pub malformed_frames: u64,
    /// Well-formed packets that made no sense in the state, such as data before Login Accepted.
    pub unexpected_packets: u64,
    pub debug_packets: u64,
}

/// An event passed to the [`SoupClient::poll_events`] callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoupEvent<'a> {
    /// Login Accepted: the session logged in to and the sequence number of its next message.
    /// Reported after every login, before the messages it numbers.
    LoginAccepted { session: SessionId, sequence: u64 },
    /// `session` ended: the server sent End of Session, or rejected a login to it as "session
    /// not available" while the client follows new sessions. `next_sequence` follows the last
    /// message received. After a reject, a later Login Accepted may name the same session again.
    SessionEnded { session: SessionId, next_sequence: u64 },
    /// One sequenced message, numbered from Login Accepted, and the [`monotonic_ns`] time at
    /// which it was read.
    Message { sequence: u64, message: &'a [u8], recv_ns: u64 },
}

/// Session id of all spaces: in a Login Request, the server's current session.
const CURRENT_SESSION: SessionId = [b' '; 10];

/// A SoupBinTCP client. Not thread-safe by design: one input thread owns and polls it.
pub struct SoupClient {
    config: SoupClientConfig,
    /// The Login Request of the current or last attempt. Its session starts as the configured one.
    login: LoginRequest,
    follow_new_sessions: bool,
    /// Whether the next login requests the server's current session from sequence 1, because
    /// the client follows new sessions and its session ended or was rejected as not available.
    request_current: bool,
    /// The session that ended with End of Session and is not to be logged in to again, while
    /// the client looks for the next one.
    ended_session: Option<SessionId>,
    stream: Option<TcpStream>,
    reader: FrameReader,
    /// Packets queued for sending; `out[out_sent..]` is not yet written.
    out: Vec<u8>,
    out_sent: usize,
    state: ClientState,
    session: Option<SessionId>,
    next_sequence: u64,
    last_send_ns: u64,
    last_recv_ns: u64,
    retry_at_ns: u64,
    /// Consecutive failed attempts since the last Login Accepted.
    failures: u32,
    counters: ClientCounters,
    last_error: Option<SoupError>,
}

impl SoupClient {
    /// Creates a disconnected client. The first [`poll`](SoupClient::poll) connects. Fails when
    /// a credential or the session does not fit its field.
    pub fn new(config: SoupClientConfig) -> Result<Self, SoupError> {
        let login = LoginRequest::new(&config.username, &config.password, &config.session, config.first_sequence)?;
        let follow_new_sessions = config.follow_new_sessions.unwrap_or(config.session.is_empty());
        Ok(SoupClient {
            next_sequence: config.first_sequence,
            config,
            login,
            follow_new_sessions,
            request_current: false,
            ended_session: None,
            stream: None,
            reader: FrameReader::new(),
            out: Vec::with_capacity(256),
            out_sent: 0,
            state: ClientState::Disconnected,
            session: None,
            last_send_ns: 0,
            last_recv_ns: 0,
            retry_at_ns: 0,
            failures: 0,
            counters: ClientCounters::default(),
            last_error: None,
        })
    }

    /// Does the work that is due, like [`poll_events`](SoupClient::poll_events), and calls
    /// `f(sequence, message, recv_timestamp_ns)` for each sequenced message only.
    pub fn poll(&mut self, now_ns: u64, mut f: impl FnMut(u64, &[u8], u64)) -> usize {
        self.poll_events(now_ns, |event| {
            if let SoupEvent::Message { sequence, message, recv_ns } = event {
                f(sequence, message, recv_ns);
            }
        })
    }

    /// Does the work that is due: connects when the reconnect wait is over, reads once and calls
    /// `f` for each event, sends heartbeats and checks the server timeout. `now_ns` comes from
    /// [`monotonic_ns`], as do the receive timestamps. Returns the number of packets and link
    /// events handled, and 0 when idle. Only the connect blocks, for at most `connect_timeout`.
    pub fn poll_events(&mut self, now_ns: u64, mut f: impl FnMut(SoupEvent<'_>)) -> usize {
        match self.state {
            ClientState::Disconnected => self.connect_when_due(now_ns),
            ClientState::EndOfSession if self.follow_new_sessions => self.connect_when_due(now_ns),
            ClientState::LoggingIn | ClientState::Active => {
                let mut work = self.receive(now_ns, &mut f);
                if self.stream.is_some() {
                    work += self.check_timers(now_ns);
                }
                self.flush(now_ns);
                work
            }
            ClientState::EndOfSession | ClientState::LoggedOut | ClientState::GaveUp => 0,
        }
    }

    /// Sends Logout Request, closes the connection and stops. Afterwards `poll` does nothing.
    pub fn logout(&mut self, now_ns: u64) {
        if self.stream.is_some() {
            self.queue(now_ns, ClientPacket::LogoutRequest);
            self.flush(now_ns);
        }
        self.close();
        self.state = ClientState::LoggedOut;
    }

    /// Returns the sequence number of the next sequenced message.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    pub fn state(&self) -> ClientState {
        self.state
    }

    /// Returns the session named by the last Login Accepted.
    pub fn session(&self) -> Option<&SessionId> {
        self.session.as_ref()
    }

    /// Returns whether the client logs in to the server's current session after its session ended.
    pub fn follows_new_sessions(&self) -> bool {
        self.follow_new_sessions
    }

    pub fn counters(&self) -> &ClientCounters {
        &self.counters
    }

    /// Returns the error that ended the last connection or attempt.
    pub fn last_error(&self) -> Option<&SoupError> {
        self.last_error.as_ref()
    }

    fn connect_when_due(&mut self, now_ns: u64) -> usize {
        if now_ns < self.retry_at_ns {
            return 0;
        }
        self.connect(now_ns);
        1
    }

    fn connect(&mut self, now_ns: u64) {
        let addr = self.config.server;
        self.counters.connect_attempts += 1;
        let stream = match TcpStream::connect_timeout(&addr, self.config.connect_timeout)
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
        {
            Ok(stream) => stream,
            Err(e) => {
                self.counters.connect_failures += 1;
                self.fail(now_ns, SoupError::Connect { addr, kind: e.kind() });
                return;
            }
        };
        // Small packets must leave at once. A failure here costs latency, not correctness.
        let _ = stream.set_nodelay(true);

        self.counters.connects += 1;
        if self.counters.connects > 1 {
            self.counters.reconnects += 1;
        }
        self.stream = Some(stream);
        self.reader.reset();
        self.state = ClientState::LoggingIn;
        self.last_recv_ns = now_ns;

        // After its session ended the client requests the current session from its start.
        // Otherwise it resumes the session it logged in to, or the configured one before that.
        if self.request_current {
            self.login.session = CURRENT_SESSION;
            self.login.sequence = 1;
        } else {
            if let Some(session) = self.session {
                self.login.session = session;
            }
            self.login.sequence = self.next_sequence;
        }
        tracing::info!(
            %addr,
            session = %trim(&self.login.session).escape_ascii(),
            sequence = self.login.sequence,
            "SoupBinTCP connected, logging in"
        );
        self.queue(now_ns, ClientPacket::LoginRequest(self.login));
        self.flush(now_ns);
    }

    /// Reads once and handles every whole packet read. Returns the number of packets handled,
    /// plus one when the link ended.
    fn receive(&mut self, now_ns: u64, f: &mut impl FnMut(SoupEvent<'_>)) -> usize {
        let Some(stream) = self.stream.as_mut() else {
            return 0;
        };
        let read = self.reader.read_from(stream);
        let recv_ns = monotonic_ns();
        match read {
            Ok(0) => {
                self.counters.disconnects += 1;
                let error = SoupError::ServerClosed {
                    addr: self.config.server,
                    next_sequence: self.next_sequence,
                };
                self.fail(now_ns, error);
                return 1;
            }
            Ok(_) => self.last_recv_ns = now_ns,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => return 0,
            Err(e) => {
                self.fail(now_ns, SoupError::Io { addr: self.config.server, kind: e.kind() });
                return 1;
            }
        }

        let mut work = 0;
        let ended = loop {
            let (offset, body) = match self.reader.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break None,
                Err(e) => break Some(e),
            };
            let packet_type = body.first().copied().unwrap_or(0);
            let packet = match ServerPacket::decode(body, offset) {
                Ok(packet) => packet,
                Err(e) => break Some(e),
            };
            work += 1;

            match (self.state, packet) {
                (ClientState::Active, ServerPacket::SequencedData(message)) => {
                    f(SoupEvent::Message { sequence: self.next_sequence, message, recv_ns });
                    // The login sequence is at most MAX_SEQUENCE, so this cannot reach u64::MAX
                    // in any real session; saturating keeps a hostile stream from wrapping it.
                    self.next_sequence = self.next_sequence.saturating_add(1);
                    self.counters.messages += 1;
                }
                (_, ServerPacket::Heartbeat) => self.counters.heartbeats_received += 1,
                (_, ServerPacket::Debug(_)) => self.counters.debug_packets += 1,
                (ClientState::LoggingIn, ServerPacket::LoginAccepted { session, sequence }) => {
                    if sequence == 0 || sequence > crate::session::MAX_SEQUENCE {
                        break Some(SoupError::InvalidLoginSequence { addr: self.config.server, sequence });
                    }
                    if self.ended_session == Some(session) {
                        self.counters.ended_session_logins += 1;
                        break Some(SoupError::SessionEnded { addr: self.config.server, session });
                    }
                    self.on_login_accepted(session, sequence);
                    f(SoupEvent::LoginAccepted { session, sequence });
                }
                (ClientState::LoggingIn, ServerPacket::LoginRejected(reason)) => {
                    self.counters.login_rejects += 1;
                    if reason == RejectReason::SessionNotAvailable {
                        self.on_session_not_available(f);
                    }
                    break Some(SoupError::LoginRejected { reason });
                }
                (ClientState::Active, ServerPacket::EndOfSession) => {
                    self.on_end_of_session(now_ns, f);
                    return work;
                }
                (state, _) => {
                    self.counters.unexpected_packets += 1;
                    break Some(SoupError::UnexpectedPacket { offset, packet_type, state });
                }
            }
        };

        if let Some(error) = ended {
            if error.is_malformed() {
                self.counters.malformed_frames += 1;
            }
            self.fail(now_ns, error);
            work += 1;
        }
        work
    }

    fn on_login_accepted(&mut self, session: SessionId, sequence: u64) {
        tracing::info!(
            addr = %self.config.server,
            session = %trim(&session).escape_ascii(),
            sequence,
            "SoupBinTCP login accepted"
        );
        if self.session.is_some_and(|previous| previous != session) {
            self.counters.session_changes += 1;
        }
        self.request_current = false;
        self.ended_session = None;
        self.session = Some(session);
        self.next_sequence = sequence;
        self.state = ClientState::Active;
        self.failures = 0;
        self.counters.logins += 1;
    }

    /// Handles a login rejected as "session not available". A client that follows new sessions
    /// and requested a named session requests the current one next, and reports the end when it
    /// had logged in to the rejected one. The caller then fails the attempt, so the next login
    /// waits as usual. A server may offer the rejected session again later, and the client then
    /// accepts it, unlike a session ended by End of Session.
    fn on_session_not_available(&mut self, f: &mut impl FnMut(SoupEvent<'_>)) {
        let requested = self.login.session;
        if !self.follow_new_sessions || self.request_current || requested == CURRENT_SESSION {
            return;
        }
        tracing::info!(
            addr = %self.config.server,
            session = %trim(&requested).escape_ascii(),
            "SoupBinTCP session not available; logging in to the current session from sequence 1"
        );
        self.request_current = true;
        if self.session == Some(requested) {
            f(SoupEvent::SessionEnded { session: requested, next_sequence: self.next_sequence });
        }
    }

    /// Handles End of Session: closes the connection, reports the end and, when following new
    /// sessions, schedules the login to the next one. A server usually starts that session much
    /// later (the next trading day) or after a restart, so the first look waits the maximum backoff.
    fn on_end_of_session(&mut self, now_ns: u64, f: &mut impl FnMut(SoupEvent<'_>)) {
        let session = self.session.unwrap_or(CURRENT_SESSION);
        tracing::info!(
            addr = %self.config.server,
            session = %trim(&session).escape_ascii(),
            next_sequence = self.next_sequence,
            follow_new_sessions = self.follow_new_sessions,
            "SoupBinTCP end of session"
        );
        self.close();
        self.state = ClientState::EndOfSession;
        f(SoupEvent::SessionEnded { session, next_sequence: self.next_sequence });
        if self.follow_new_sessions {
            self.request_current = true;
            self.ended_session = Some(session);
            self.retry_at_ns = now_ns.saturating_add(duration_ns(self.config.reconnect_backoff_max));
        }
    }

    /// Sends a heartbeat when due and declares the link lost after `silence_timeout` of silence.
    fn check_timers(&mut self, now_ns: u64) -> usize {
        let silent_ns = now_ns.saturating_sub(self.last_recv_ns);
        if silent_ns >= duration_ns(self.config.silence_timeout) {
            self.counters.timeouts += 1;
            let error = SoupError::ServerTimeout {
                addr: self.config.server,
                silent_ms: silent_ns / 1_000_000,
            };
            self.fail(now_ns, error);
            return 1;
        }
        let idle_ns = now_ns.saturating_sub(self.last_send_ns);
        if self.state == ClientState::Active && idle_ns >= duration_ns(self.config.heartbeat_interval) {
            self.queue(now_ns, ClientPacket::Heartbeat);
            self.counters.heartbeats_sent += 1;
            return 1;
        }
        0
    }

    fn queue(&mut self, now_ns: u64, packet: ClientPacket<'_>) {
        // Client packets sent here have fixed, small payloads, so encoding cannot fail.
        if packet.encode(&mut self.out).is_ok() {
            self.last_send_ns = now_ns;
        }
    }

    fn flush(&mut self, now_ns: u64) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        while let Some(pending) = self.out.get(self.out_sent..).filter(|p| !p.is_empty()) {
            match stream.write(pending) {
                Ok(0) => {
                    self.fail(now_ns, SoupError::Io { addr: self.config.server, kind: io::ErrorKind::WriteZero });
                    return;
                }
                Ok(n) => self.out_sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.fail(now_ns, SoupError::Io { addr: self.config.server, kind: e.kind() });
                    return;
                }
            }
        }
        self.out.clear();
        self.out_sent = 0;
    }

    /// Closes the connection after `error` and schedules the next attempt, or gives up.
    fn fail(&mut self, now_ns: u64, error: SoupError) {
        self.close();
        self.failures = self.failures.saturating_add(1);
        let limit = self.config.max_reconnect_attempts;
        if limit > 0 && self.failures >= limit {
            tracing::error!(addr = %self.config.server, %error, attempts = self.failures, "SoupBinTCP client gave up");
            self.state = ClientState::GaveUp;
        } else {
            let wait = self.backoff();
            tracing::warn!(
                addr = %self.config.server,
                %error,
                retry_in_ms = wait.as_millis() as u64,
                "SoupBinTCP connection failed or ended; reconnecting after the wait"
            );
            self.state = ClientState::Disconnected;
            self.retry_at_ns = now_ns.saturating_add(duration_ns(wait));
        }
        self.last_error = Some(error);
    }

    /// Returns the wait before the next attempt: the minimum doubled once per consecutive
    /// failure after the first, capped at the maximum.
    fn backoff(&self) -> Duration {
        let doublings = self.failures.saturating_sub(1).min(31);
        self.config
            .reconnect_backoff_min
            .saturating_mul(1 << doublings)
            .min(self.config.reconnect_backoff_max)
    }

    fn close(&mut self) {
        if let Some(stream) = self.stream.take() {
            // The socket closes on drop anyway; an error here (already closed) changes nothing.
            let _ = stream.shutdown(Shutdown::Both);
        }
        self.reader.reset();
        self.out.clear();
        self.out_sent = 0;
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::path::Path;
    use std::sync::Arc;
    use std::thread;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::soupbintcp::frame::session_id;
    use crate::soupbintcp::{SoupServer, SoupServerConfig};

    const LIMIT: Duration = Duration::from_secs(20);

    /// An event with its message copied out, and the message checked against the served list.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Seen {
        Login(SessionId, u64),
        Ended(SessionId, u64),
        Message(u64, Vec<u8>),
    }

    /// Returns the 39 ITCH messages of a real NASDAQ capture.
    fn real_messages() -> Arc<[Box<[u8]>]> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/itch-pcaps/Nasdaq.Equities.TotalView.Itch.v5.0/Multiple.Packets.pcap");
        let file = crate::file::open(Path::new(path)).unwrap();
        let messages: Vec<Box<[u8]>> = file.messages().map(|m| Box::from(m.unwrap().bytes)).collect();
        assert_eq!(messages.len(), 39, "messages in {path}");
        messages.into()
    }

    fn start_server(addr: SocketAddr, session: &str, end_of_session: bool, messages: &Arc<[Box<[u8]>]>) -> SoupServer {
        let config = SoupServerConfig { bind: addr, session: session.to_owned(), end_of_session, ..SoupServerConfig::default() };
        SoupServer::start(config, Arc::clone(messages)).unwrap()
    }

    /// Client settings for `addr` with reconnect waits of 5 to 50 ms, so that tests stay quick.
    fn quick_config(addr: SocketAddr) -> SoupClientConfig {
        SoupClientConfig {
            reconnect_backoff_min: Duration::from_millis(5),
            reconnect_backoff_max: Duration::from_millis(50),
            ..SoupClientConfig::new(addr)
        }
    }

    /// Polls `client` on the real clock until `done` holds, collecting the events. The limit only
    /// keeps a broken test from hanging.
    fn poll_until(client: &mut SoupClient, seen: &mut Vec<Seen>, what: &str, mut done: impl FnMut(&SoupClient, &[Seen]) -> bool) {
        let deadline = Instant::now() + LIMIT;
        while !done(client, seen) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}; events so far: {}", seen.len());
            client.poll_events(monotonic_ns(), |event| seen.push(copy_event(event)));
            thread::sleep(Duration::from_micros(200));
        }
    }

    fn copy_event(event: SoupEvent<'_>) -> Seen {
        match event {
            SoupEvent::LoginAccepted { session, sequence } => Seen::Login(session, sequence),
            SoupEvent::SessionEnded { session, next_sequence } => Seen::Ended(session, next_sequence),
            SoupEvent::Message { sequence, message, .. } => Seen::Message(sequence, message.to_vec()),
        }
    }

    fn ended_count(seen: &[Seen]) -> usize {
        seen.iter().filter(|e| matches!(e, Seen::Ended(..))).count()
    }

    /// Returns the events of one whole session: login at 1, every message, then the end.
    fn whole_session(session: &str, messages: &[Box<[u8]>]) -> Vec<Seen> {
        let id = session_id(session).unwrap();
        let mut events = vec![Seen::Login(id, 1)];
        for (index, message) in messages.iter().enumerate() {
            events.push(Seen::Message(index as u64 + 1, message.to_vec()));
        }
        events.push(Seen::Ended(id, messages.len() as u64 + 1));
        events
    }

    #[test]
    fn follows_new_session_after_end_of_session() {
        let messages = real_messages();
        let first = start_server(SocketAddr::from(([127, 0, 0, 1], 0)), "DAY1", true, &messages);
        let addr = first.local_addr();
        let mut client = SoupClient::new(quick_config(addr)).unwrap();
        assert!(client.follows_new_sessions(), "an empty session follows new sessions by default");
        let mut seen = Vec::new();

        poll_until(&mut client, &mut seen, "end of DAY1", |_, s| ended_count(s) == 1);
        assert_eq!(client.state(), ClientState::EndOfSession);

        // The server still offers the ended session: the client must not replay it.
        poll_until(&mut client, &mut seen, "a login to the ended DAY1", |c, _| c.counters().ended_session_logins >= 1);
        assert!(
            matches!(client.last_error(), Some(SoupError::SessionEnded { session, .. }) if *session == session_id("DAY1").unwrap()),
            "{:?}",
            client.last_error()
        );
        drop(first);

        let second = start_server(addr, "DAY2", true, &messages);
        poll_until(&mut client, &mut seen, "end of DAY2", |_, s| ended_count(s) == 2);

        let mut expected = whole_session("DAY1", &messages);
        expected.extend(whole_session("DAY2", &messages));
        assert_eq!(seen.len(), expected.len(), "number of events");
        for (index, (got, want)) in seen.iter().zip(&expected).enumerate() {
            assert_eq!(got, want, "event {index}");
        }
        let counters = client.counters();
        assert_eq!(counters.logins, 2);
        assert_eq!(counters.session_changes, 1);
        assert_eq!(counters.messages, 2 * messages.len() as u64);
        assert_eq!(client.session(), Some(&session_id("DAY2").unwrap()));
        assert_eq!(second.counters().logins_accepted, 1);
    }

    #[test]
    fn follows_new_session_after_session_not_available() {
        let messages = real_messages();
        // No End of Session: the first server keeps the connection open after the last message.
        let first = start_server(SocketAddr::from(([127, 0, 0, 1], 0)), "DAY1", false, &messages);
        let addr = first.local_addr();
        let mut client = SoupClient::new(quick_config(addr)).unwrap();
        let mut seen = Vec::new();
        let all = messages.len() + 1;
        poll_until(&mut client, &mut seen, "every DAY1 message", |_, s| s.len() == all);
        drop(first);

        // A restarted server with a new session rejects the login to DAY1 at its next number.
        let second = start_server(addr, "DAY2", true, &messages);
        poll_until(&mut client, &mut seen, "end of DAY2", |_, s| ended_count(s) == 2);

        let mut expected = whole_session("DAY1", &messages);
        expected.extend(whole_session("DAY2", &messages));
        assert_eq!(seen.len(), expected.len(), "number of events");
        for (index, (got, want)) in seen.iter().zip(&expected).enumerate() {
            assert_eq!(got, want, "event {index}");
        }
        let counters = client.counters();
        assert_eq!(counters.login_rejects, 1);
        assert_eq!(counters.session_changes, 1);
        assert_eq!(counters.ended_session_logins, 0);
        assert_eq!(second.counters().logins_rejected, 1);
        assert_eq!(second.counters().logins_accepted, 1);
    }

    #[test]
    fn named_session_stays_after_end_of_session() {
        let messages = real_messages();
        let server = start_server(SocketAddr::from(([127, 0, 0, 1], 0)), "DAY1", true, &messages);
        let config = SoupClientConfig { session: "DAY1".to_owned(), ..quick_config(server.local_addr()) };
        let mut client = SoupClient::new(config).unwrap();
        assert!(!client.follows_new_sessions(), "a named session is not left by default");
        let mut seen = Vec::new();

        poll_until(&mut client, &mut seen, "end of DAY1", |_, s| ended_count(s) == 1);

        assert_eq!(seen, whole_session("DAY1", &messages));
        // An hour later by the clock passed in, the client has still not reconnected.
        let hour_later = monotonic_ns() + 3_600_000_000_000;
        assert_eq!(client.poll_events(hour_later, |event| panic!("event after end of session: {event:?}")), 0);
        assert_eq!(client.state(), ClientState::EndOfSession);
        assert_eq!(client.counters().connect_attempts, 1);
    }

    /// Accepts `logins` connections. On each it reads the 49-byte Login Request, rejects it with
    /// reason `S` and waits for the client to close. Returns the Login Requests received.
    fn rejecting_server(logins: usize) -> (SocketAddr, thread::JoinHandle<Vec<LoginRequest>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = thread::spawn(move || {
            let mut requests = Vec::new();
            for _ in 0..logins {
                let (mut stream, _) = listener.accept().unwrap();
                let mut packet = [0u8; 49];
                stream.read_exact(&mut packet).unwrap();
                match ClientPacket::decode(&packet[2..], 0) {
                    Ok(ClientPacket::LoginRequest(login)) => requests.push(login),
                    other => panic!("expected a Login Request, got {other:?}"),
                }
                let mut reply = Vec::new();
                ServerPacket::LoginRejected(RejectReason::SessionNotAvailable).encode(&mut reply).unwrap();
                stream.write_all(&reply).unwrap();
                let mut sink = [0u8; 64];
                while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
            }
            requests
        });
        (addr, handle)
    }

    #[test]
    fn rejected_logins_back_off() {
        let (addr, server) = rejecting_server(5);
        let config = SoupClientConfig {
            session: "DAY1".to_owned(),
            follow_new_sessions: Some(true),
            reconnect_backoff_min: Duration::from_secs(1),
            reconnect_backoff_max: Duration::from_secs(4),
            ..SoupClientConfig::new(addr)
        };
        let mut client = SoupClient::new(config).unwrap();
        let second = 1_000_000_000;
        // The clock passed in does not advance while the reject crosses the socket, so each
        // wait below is measured on that clock alone.
        let mut now = 1_000 * second;
        let mut no_events = |event: SoupEvent<'_>| panic!("unexpected event {event:?}");

        for (attempt, wait) in [0, 1, 2, 4, 4].into_iter().enumerate() {
            let attempts = attempt as u64;
            if wait > 0 {
                assert_eq!(client.poll_events(now + wait * second - 1, &mut no_events), 0, "attempt {attempt} before its wait");
                assert_eq!(client.counters().connect_attempts, attempts, "attempt {attempt} before its wait");
                now += wait * second;
            }
            assert_eq!(client.poll_events(now, &mut no_events), 1, "attempt {attempt} connects");
            let deadline = Instant::now() + LIMIT;
            while client.counters().login_rejects == attempts {
                assert!(Instant::now() < deadline, "timed out waiting for reject {attempt}");
                client.poll_events(now, &mut no_events);
                thread::sleep(Duration::from_micros(200));
            }
            assert_eq!(client.state(), ClientState::Disconnected, "after reject {attempt}");
        }

        assert_eq!(client.last_error(), Some(&SoupError::LoginRejected { reason: RejectReason::SessionNotAvailable }));
        let counters = client.counters();
        assert_eq!(counters.connect_attempts, 5);
        assert_eq!(counters.logins, 0);
        let requests = server.join().unwrap();
        assert_eq!(requests.len(), 5);
        assert_eq!((requests[0].session, requests[0].sequence), (session_id("DAY1").unwrap(), 1));
        for request in &requests[1..] {
            assert_eq!((request.session, request.sequence), (CURRENT_SESSION, 1), "after DAY1 was rejected");
        }
    }
}

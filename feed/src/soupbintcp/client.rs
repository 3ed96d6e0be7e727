//! A non-blocking SoupBinTCP client, driven by [`SoupClient::poll`] from the input thread.
//!
//! The client connects, logs in with the next sequence number it expects, numbers sequenced
//! data from the number in Login Accepted, sends a heartbeat after an interval without sending,
//! and treats a silent server as a lost link. After a lost link or a rejected login it waits
//! (doubling the wait each time, up to a maximum), reconnects and resumes from the next expected
//! number, so the messages passed on have no gap and no duplicate across reconnects.

use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use super::frame::{ClientPacket, FrameReader, LoginRequest, ServerPacket, SessionId};
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
    /// Returns the settings for `server` with blank credentials, any session, sequence 1, the
    /// protocol's usual 1 s heartbeat and 15 s timeout, and reconnect waits from 100 ms to 5 s.
    pub fn new(server: SocketAddr) -> Self {
        SoupClientConfig {
            server,
            username: String::new(),
            password: String::new(),
            session: String::new(),
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
    /// The server sent End of Session. The client stays disconnected.
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
    /// Login Accepted packets.
    pub logins: u64,
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

/// A SoupBinTCP client. Not thread-safe by design: one input thread owns and polls it.
pub struct SoupClient {
    config: SoupClientConfig,
    login: LoginRequest,
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
        Ok(SoupClient {
            next_sequence: config.first_sequence,
            config,
            login,
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

    /// Does the work that is due: connects when the reconnect wait is over, reads once and calls
    /// `f(sequence, message, recv_timestamp_ns)` for each sequenced message, sends heartbeats
    /// and checks the server timeout. `now_ns` comes from [`monotonic_ns`], as do the receive
    /// timestamps. Returns the number of events handled, and 0 when idle. Only the connect blocks,
    /// for at most `connect_timeout`.
    pub fn poll(&mut self, now_ns: u64, mut f: impl FnMut(u64, &[u8], u64)) -> usize {
        match self.state {
            ClientState::Disconnected => {
                if now_ns < self.retry_at_ns {
                    return 0;
                }
                self.connect(now_ns);
                1
            }
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

    pub fn counters(&self) -> &ClientCounters {
        &self.counters
    }

    /// Returns the error that ended the last connection or attempt.
    pub fn last_error(&self) -> Option<&SoupError> {
        self.last_error.as_ref()
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

        if let Some(session) = self.session {
            self.login.session = session;
        }
        self.login.sequence = self.next_sequence;
        tracing::info!(%addr, sequence = self.next_sequence, "SoupBinTCP connected, logging in");
        self.queue(now_ns, ClientPacket::LoginRequest(self.login));
        self.flush(now_ns);
    }

    /// Reads once and handles every whole packet read. Returns the number of packets handled,
    /// plus one when the link ended.
    fn receive(&mut self, now_ns: u64, f: &mut impl FnMut(u64, &[u8], u64)) -> usize {
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
                    f(self.next_sequence, message, recv_ns);
                    self.next_sequence += 1;
                    self.counters.messages += 1;
                }
                (_, ServerPacket::Heartbeat) => self.counters.heartbeats_received += 1,
                (_, ServerPacket::Debug(_)) => self.counters.debug_packets += 1,
                (ClientState::LoggingIn, ServerPacket::LoginAccepted { session, sequence }) => {
                    tracing::info!(
                        addr = %self.config.server,
                        session = %String::from_utf8_lossy(&session),
                        sequence,
                        "SoupBinTCP login accepted"
                    );
                    self.session = Some(session);
                    self.next_sequence = sequence;
                    self.state = ClientState::Active;
                    self.failures = 0;
                    self.counters.logins += 1;
                }
                (ClientState::LoggingIn, ServerPacket::LoginRejected(reason)) => {
                    self.counters.login_rejects += 1;
                    break Some(SoupError::LoginRejected { reason });
                }
                (ClientState::Active, ServerPacket::EndOfSession) => {
                    tracing::info!(addr = %self.config.server, next_sequence = self.next_sequence, "SoupBinTCP end of session");
                    self.close();
                    self.state = ClientState::EndOfSession;
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

//! A SoupBinTCP server that replays a fixed list of messages as one session, for the simulator
//! and tests. One thread accepts connections and one thread serves each client. None of this is
//! on the latency path.
//!
//! Each connection streams from the sequence number its login requests, at the configured rate
//! counted from the login, so two clients that log in at different times both receive every
//! message from their own starting point.

use std::io::{self, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::frame::{self, trim, ClientPacket, FrameReader, RejectReason, ServerPacket, SessionId, MAX_PAYLOAD};
use super::SoupError;

/// Settings of a [`SoupServer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoupServerConfig {
    /// Address to listen on. Port 0 lets the system choose (see [`SoupServer::local_addr`]).
    pub bind: SocketAddr,
    /// Session id sent in Login Accepted, up to 10 ASCII characters.
    pub session: String,
    /// Username and password a login must carry. `None` accepts any login.
    pub credentials: Option<(String, String)>,
    /// Messages sent per second on each connection. 0 sends as fast as the client reads.
    pub messages_per_second: u64,
    /// The server sends a heartbeat after this long without sending.
    pub heartbeat_interval: Duration,
    /// A connection is closed after this long without a packet from the client.
    pub client_timeout: Duration,
    /// Whether to send End of Session after the last message and close. Otherwise the
    /// connection stays open with heartbeats.
    pub end_of_session: bool,
}

impl Default for SoupServerConfig {
    fn default() -> Self {
        SoupServerConfig {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            session: "SIM0000001".to_owned(),
            credentials: None,
            messages_per_second: 0,
            heartbeat_interval: Duration::from_secs(1),
            client_timeout: Duration::from_secs(15),
            end_of_session: false,
        }
    }
}

/// Totals over every connection of a [`SoupServer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerCounters {
    pub connections: u64,
    pub logins_accepted: u64,
    pub logins_rejected: u64,
    /// Sequenced messages sent.
    pub messages_sent: u64,
    pub heartbeats_sent: u64,
    pub heartbeats_received: u64,
    /// Client packets that failed to decode. Each closed its connection.
    pub malformed_frames: u64,
    /// Connections closed after `client_timeout` of silence.
    pub client_timeouts: u64,
    pub end_of_session_sent: u64,
}

#[derive(Default)]
struct AtomicCounters {
    connections: AtomicU64,
    logins_accepted: AtomicU64,
    logins_rejected: AtomicU64,
    messages_sent: AtomicU64,
    heartbeats_sent: AtomicU64,
    heartbeats_received: AtomicU64,
    malformed_frames: AtomicU64,
    client_timeouts: AtomicU64,
    end_of_session_sent: AtomicU64,
}

fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// State shared by the accept thread and the connection threads.
struct Shared {
    config: SoupServerConfig,
    session: SessionId,
    messages: Arc<[Box<[u8]>]>,
    stop: AtomicBool,
    counters: AtomicCounters,
    /// Clones of the open connections, so that [`SoupServer::disconnect_clients`] and `stop`
    /// can shut them down from outside their threads.
    open: Mutex<Vec<(u64, TcpStream)>>,
}

/// A running server. Dropping it stops it and joins its threads.
pub struct SoupServer {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    accept_thread: Option<JoinHandle<()>>,
}

impl SoupServer {
    /// Binds, then serves `messages` (message `i` has sequence number `i + 1`) until stopped.
    /// Fails when the session id does not fit its field, a message is longer than a SoupBinTCP
    /// payload, or the bind fails.
    pub fn start(config: SoupServerConfig, messages: Arc<[Box<[u8]>]>) -> io::Result<SoupServer> {
        let invalid = |e: SoupError| io::Error::new(io::ErrorKind::InvalidInput, e);
        let session = frame::session_id(&config.session).map_err(invalid)?;
        if let Some(m) = messages.iter().find(|m| m.len() > MAX_PAYLOAD) {
            return Err(invalid(SoupError::PayloadTooLong { len: m.len() }));
        }

        let listener = TcpListener::bind(config.bind)?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            session,
            messages,
            stop: AtomicBool::new(false),
            counters: AtomicCounters::default(),
            open: Mutex::new(Vec::new()),
        });
        let accept_shared = Arc::clone(&shared);
        let accept_thread = thread::Builder::new()
            .name("soup-accept".to_owned())
            .spawn(move || accept_loop(&listener, &accept_shared))?;
        tracing::info!(%local_addr, "SoupBinTCP server listening");
        Ok(SoupServer {
            shared,
            local_addr,
            accept_thread: Some(accept_thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Returns a snapshot of the counters.
    pub fn counters(&self) -> ServerCounters {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ServerCounters {
            connections: get(&c.connections),
            logins_accepted: get(&c.logins_accepted),
            logins_rejected: get(&c.logins_rejected),
            messages_sent: get(&c.messages_sent),
            heartbeats_sent: get(&c.heartbeats_sent),
            heartbeats_received: get(&c.heartbeats_received),
            malformed_frames: get(&c.malformed_frames),
            client_timeouts: get(&c.client_timeouts),
            end_of_session_sent: get(&c.end_of_session_sent),
        }
    }

    /// Shuts down every open connection, as a broken link would, and keeps accepting new ones.
    /// Returns the number of connections shut down.
    pub fn disconnect_clients(&self) -> usize {
        shutdown_open(&self.shared)
    }

    /// Asks the threads to stop. Dropping the server waits for them.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
    }
}

impl Drop for SoupServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(handle) = self.accept_thread.take() {
            // A panicked accept thread has nothing left to clean up.
            let _ = handle.join();
        }
    }
}

fn shutdown_open(shared: &Shared) -> usize {
    let open = match shared.open.lock() {
        Ok(open) => open,
        Err(poisoned) => poisoned.into_inner(),
    };
    for (_, stream) in open.iter() {
        // The connection thread gets an error or end of stream from the shutdown, and exits.
        let _ = stream.shutdown(Shutdown::Both);
    }
    open.len()
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    let mut next_id = 0u64;
    while !shared.stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, peer)) => {
                next_id += 1;
                bump(&shared.counters.connections, 1);
                tracing::info!(%peer, connection = next_id, "SoupBinTCP client connected");
                let conn_shared = Arc::clone(shared);
                let id = next_id;
                let spawned = thread::Builder::new()
                    .name(format!("soup-conn-{id}"))
                    .spawn(move || serve(stream, id, &conn_shared));
                match spawned {
                    Ok(handle) => threads.push(handle),
                    Err(e) => tracing::error!(%peer, error = %e, "SoupBinTCP connection thread failed to start"),
                }
                threads.retain(|t| !t.is_finished());
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(2)),
            Err(e) => {
                tracing::warn!(error = %e, "SoupBinTCP accept failed");
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
    shutdown_open(shared);
    for handle in threads {
        let _ = handle.join();
    }
    tracing::info!("SoupBinTCP server stopped");
}

/// Runs one connection to its end, then removes it from the open list.
fn serve(stream: TcpStream, id: u64, shared: &Shared) {
    let registered = stream.try_clone().map(|clone| {
        if let Ok(mut open) = shared.open.lock() {
            open.push((id, clone));
        }
    });
    let result = registered.and_then(|()| Connection::new(stream, shared).run());
    match result {
        Ok(()) => tracing::info!(connection = id, "SoupBinTCP connection closed"),
        Err(e) => tracing::warn!(connection = id, error = %e, "SoupBinTCP connection closed on error"),
    }
    if let Ok(mut open) = shared.open.lock() {
        open.retain(|(open_id, _)| *open_id != id);
    }
}

/// Outcome of handling client packets: go on, or close once the queued packets are written.
enum Step {
    Continue,
    Close,
}

struct Connection<'a> {
    stream: TcpStream,
    shared: &'a Shared,
    reader: FrameReader,
    out: Vec<u8>,
    out_sent: usize,
    /// Index into `messages` of the next message to send, once logged in.
    next_index: Option<usize>,
    /// When the login was accepted, and how many messages were sent since, for pacing.
    stream_start: Instant,
    sent_since_start: u64,
    last_send: Instant,
    last_recv: Instant,
    /// Close once `out` is written: after Login Rejected, End of Session or Logout Request.
    closing: bool,
}

impl<'a> Connection<'a> {
    fn new(stream: TcpStream, shared: &'a Shared) -> Connection<'a> {
        let now = Instant::now();
        Connection {
            stream,
            shared,
            reader: FrameReader::new(),
            out: Vec::with_capacity(64 << 10),
            out_sent: 0,
            next_index: None,
            stream_start: now,
            sent_since_start: 0,
            last_send: now,
            last_recv: now,
            closing: false,
        }
    }

    fn run(mut self) -> io::Result<()> {
        self.stream.set_nonblocking(true)?;
        self.stream.set_nodelay(true)?;
        let shared = self.shared;
        let config = &shared.config;
        while !shared.stop.load(Ordering::Acquire) {
            let mut work = 0;
            if !self.closing {
                match self.receive()? {
                    Some(Step::Close) => self.closing = true,
                    Some(Step::Continue) => work += 1,
                    None => {}
                }
            }
            if self.next_index.is_some() && !self.closing {
                work += self.queue_due_messages();
            }
            if !self.closing && self.last_send.elapsed() >= config.heartbeat_interval {
                self.queue(&ServerPacket::Heartbeat);
                bump(&shared.counters.heartbeats_sent, 1);
            }
            if !self.closing && self.last_recv.elapsed() >= config.client_timeout {
                bump(&shared.counters.client_timeouts, 1);
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no packet from the client within the timeout"));
            }
            if !self.flush()? {
                continue;
            }
            if self.closing {
                return Ok(());
            }
            if work == 0 {
                thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(())
    }

    /// Reads once and handles every whole client packet. Returns `None` when nothing arrived.
    fn receive(&mut self) -> io::Result<Option<Step>> {
        match self.reader.read_from(&mut self.stream) {
            Ok(0) => return Ok(Some(Step::Close)),
            Ok(_) => self.last_recv = Instant::now(),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => return Ok(None),
            Err(e) => return Err(e),
        }
        loop {
            let (offset, body) = match self.reader.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(Some(Step::Continue)),
                Err(e) => return Err(self.malformed(e)),
            };
            let packet = match ClientPacket::decode(body, offset) {
                Ok(packet) => packet,
                Err(e) => return Err(self.malformed(e)),
            };
            match packet {
                ClientPacket::LoginRequest(login) if self.next_index.is_none() => {
                    if let Step::Close = self.login(login.username, login.password, login.session, login.sequence) {
                        return Ok(Some(Step::Close));
                    }
                }
                ClientPacket::Heartbeat => bump(&self.shared.counters.heartbeats_received, 1),
                ClientPacket::LogoutRequest => return Ok(Some(Step::Close)),
                ClientPacket::Debug(_) | ClientPacket::UnsequencedData(_) => {}
                ClientPacket::LoginRequest(_) => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "second Login Request on one connection"));
                }
            }
        }
    }

    fn malformed(&self, error: SoupError) -> io::Error {
        bump(&self.shared.counters.malformed_frames, 1);
        io::Error::new(io::ErrorKind::InvalidData, error)
    }

    fn login(&mut self, username: [u8; 6], password: [u8; 10], session: SessionId, sequence: u64) -> Step {
        let shared = self.shared;
        if let Some((user, pass)) = &shared.config.credentials {
            if trim(&username) != user.as_bytes() || trim(&password) != pass.as_bytes() {
                return self.reject(RejectReason::NotAuthorized);
            }
        }
        let requested = trim(&session);
        if !requested.is_empty() && requested != trim(&shared.session) {
            return self.reject(RejectReason::SessionNotAvailable);
        }

        // Sequence 0 requests new messages only, but each connection here replays the session
        // from the start, so 0 starts at the first message. A number past the end starts after
        // the last message, and Login Accepted tells the client so.
        let last = shared.messages.len() as u64;
        let first = sequence.clamp(1, last + 1);
        self.next_index = usize::try_from(first - 1).ok();
        self.stream_start = Instant::now();
        self.sent_since_start = 0;
        bump(&shared.counters.logins_accepted, 1);
        self.queue(&ServerPacket::LoginAccepted { session: shared.session, sequence: first });
        Step::Continue
    }

    fn reject(&mut self, reason: RejectReason) -> Step {
        bump(&self.shared.counters.logins_rejected, 1);
        self.queue(&ServerPacket::LoginRejected(reason));
        Step::Close
    }

    /// Queues the messages due by the rate, at most 64 KiB of packets per call. After the last
    /// message it queues End of Session when configured. Returns the number of packets queued.
    fn queue_due_messages(&mut self) -> usize {
        let shared = self.shared;
        let Some(mut index) = self.next_index else {
            return 0;
        };
        let rate = shared.config.messages_per_second;
        let due = if rate == 0 {
            u64::MAX
        } else {
            let elapsed_ns = self.stream_start.elapsed().as_nanos();
            let allowed = elapsed_ns.saturating_mul(u128::from(rate)) / 1_000_000_000;
            u64::try_from(allowed).unwrap_or(u64::MAX).saturating_sub(self.sent_since_start)
        };

        let mut queued = 0;
        while (queued as u64) < due && self.out.len() < (64 << 10) {
            let Some(message) = shared.messages.get(index) else {
                break;
            };
            self.queue(&ServerPacket::SequencedData(message));
            index += 1;
            queued += 1;
        }
        self.next_index = Some(index);
        self.sent_since_start += queued as u64;
        bump(&shared.counters.messages_sent, queued as u64);

        if index >= shared.messages.len() && shared.config.end_of_session {
            self.queue(&ServerPacket::EndOfSession);
            bump(&shared.counters.end_of_session_sent, 1);
            self.closing = true;
            queued += 1;
        }
        queued
    }

    fn queue(&mut self, packet: &ServerPacket<'_>) {
        // Payload lengths were checked in `SoupServer::start`, so encoding cannot fail.
        if packet.encode(&mut self.out).is_ok() {
            self.last_send = Instant::now();
        }
    }

    /// Writes what the socket takes now. Returns whether everything queued was written.
    fn flush(&mut self) -> io::Result<bool> {
        while let Some(pending) = self.out.get(self.out_sent..).filter(|p| !p.is_empty()) {
            match self.stream.write(pending) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out_sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    thread::sleep(Duration::from_millis(1));
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.out_sent = 0;
        Ok(true)
    }
}

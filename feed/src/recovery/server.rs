//! A MoldUDP64 retransmission server, for the simulator and tests.
//!
//! One thread reads [`Request`]s from a UDP socket and responds to each with ordinary MoldUDP64
//! packets (the same session, the original sequence numbers) sent to the request's source
//! address. Only the last `window_messages` messages before `published` are served. Requests for
//! other sequences or another session, and malformed requests, are counted and get no response.
//! None of this is on the latency path.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::request::Request;
use crate::moldudp64::{PacketBuilder, SessionId, HEADER_LEN};

/// Maximum time the server thread blocks in one read, so that it checks `stop` at least this often.
const READ_TIMEOUT: Duration = Duration::from_millis(20);

/// Length of a message block's length prefix.
const BLOCK_PREFIX_LEN: usize = 2;

/// Settings of a [`RetransmitServer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetransmitConfig {
    /// Address to listen on. Port 0 lets the system choose (see [`RetransmitServer::local_addr`]).
    pub bind: SocketAddr,
    /// Number of messages of history served, counted back from the newest message published.
    pub window_messages: u64,
    /// Maximum number of messages sent in response to one request. A request for more gets the
    /// first `max_messages_per_response` messages only.
    pub max_messages_per_response: u16,
    /// Maximum size of a response packet in bytes, MoldUDP64 header included.
    pub max_packet_bytes: usize,
}

impl Default for RetransmitConfig {
    fn default() -> Self {
        RetransmitConfig {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            window_messages: 100_000,
            max_messages_per_response: 500,
            max_packet_bytes: 1400,
        }
    }
}

/// Totals of a [`RetransmitServer`]. Every datagram received counts in `requests` and in exactly
/// one of `answered`, `beyond_window`, `other_session`, `malformed` and `ignored_while_stopped`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetransmitCounters {
    /// Datagrams received.
    pub requests: u64,
    /// Requests answered with at least one message.
    pub answered: u64,
    /// Messages sent in responses.
    pub messages_sent: u64,
    /// MoldUDP64 packets sent in responses.
    pub packets_sent: u64,
    /// Requests whose first sequence number is outside the served window.
    pub beyond_window: u64,
    /// Requests for a session other than the one served.
    pub other_session: u64,
    /// Datagrams that are not a valid request: wrong length, sequence 0, count 0 or 0xFFFF.
    pub malformed: u64,
    /// Requests received while answering was turned off.
    pub ignored_while_stopped: u64,
    /// Response packets that the socket failed to send.
    pub send_errors: u64,
}

#[derive(Default)]
struct AtomicCounters {
    requests: AtomicU64,
    answered: AtomicU64,
    messages_sent: AtomicU64,
    packets_sent: AtomicU64,
    beyond_window: AtomicU64,
    other_session: AtomicU64,
    malformed: AtomicU64,
    ignored_while_stopped: AtomicU64,
    send_errors: AtomicU64,
}

fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// State shared by the server thread and the handle.
struct Shared {
    config: RetransmitConfig,
    session: Mutex<SessionId>,
    /// `messages[i]` is message sequence `i + 1`.
    messages: Arc<[Box<[u8]>]>,
    /// Sequence number the live feed sends next: messages before it may be served.
    published: Arc<AtomicU64>,
    answering: AtomicBool,
    stop: AtomicBool,
    counters: AtomicCounters,
}

/// A running retransmission server. Dropping it stops it and joins its thread.
pub struct RetransmitServer {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl RetransmitServer {
    /// Binds and serves `messages` of `session`: `messages[i]` is message sequence `i + 1`.
    /// `published` is the next sequence number the live feed will send, and the caller advances
    /// it as it sends. Only sequences in `[published - window_messages, published)` are served.
    ///
    /// Fails when the bind fails, or with `InvalidInput` when a message does not fit a response
    /// packet of `max_packet_bytes` or `max_messages_per_response` is 0.
    pub fn start(
        config: RetransmitConfig,
        session: SessionId,
        messages: Arc<[Box<[u8]>]>,
        published: Arc<AtomicU64>,
    ) -> io::Result<Self> {
        let longest = messages.iter().map(|m| m.len()).max().unwrap_or(0);
        if HEADER_LEN + BLOCK_PREFIX_LEN + longest > config.max_packet_bytes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a {longest}-byte message does not fit a retransmission packet of max_packet_bytes {}",
                    config.max_packet_bytes
                ),
            ));
        }
        if config.max_messages_per_response == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "max_messages_per_response must be at least 1"));
        }

        let socket = UdpSocket::bind(config.bind)?;
        socket.set_read_timeout(Some(READ_TIMEOUT))?;
        let local_addr = socket.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            session: Mutex::new(session),
            messages,
            published,
            answering: AtomicBool::new(true),
            stop: AtomicBool::new(false),
            counters: AtomicCounters::default(),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("retransmit".to_owned())
            .spawn(move || serve(&socket, &thread_shared))?;
        tracing::info!(%local_addr, "retransmission server listening");
        Ok(RetransmitServer { shared, local_addr, thread: Mutex::new(Some(thread)) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Turns answering off or on. While off, requests are still read and counted in
    /// `ignored_while_stopped`.
    pub fn set_answering(&self, on: bool) {
        self.shared.answering.store(on, Ordering::Release);
    }

    /// Changes the session served, for a feed that starts a new session over the same messages.
    pub fn set_session(&self, session: SessionId) {
        *lock_session(&self.shared) = session;
    }

    /// Returns a snapshot of the counters.
    pub fn counters(&self) -> RetransmitCounters {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RetransmitCounters {
            requests: get(&c.requests),
            answered: get(&c.answered),
            messages_sent: get(&c.messages_sent),
            packets_sent: get(&c.packets_sent),
            beyond_window: get(&c.beyond_window),
            other_session: get(&c.other_session),
            malformed: get(&c.malformed),
            ignored_while_stopped: get(&c.ignored_while_stopped),
            send_errors: get(&c.send_errors),
        }
    }

    /// Stops the thread and waits for it (at most about one read timeout, 20 ms), so that the
    /// counters read afterwards are final.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        let handle = match self.thread.lock() {
            Ok(mut thread) => thread.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(handle) = handle {
            // A panicked server thread has nothing left to clean up.
            let _ = handle.join();
        }
    }
}

impl Drop for RetransmitServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock_session(shared: &Shared) -> std::sync::MutexGuard<'_, SessionId> {
    match shared.session.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn serve(socket: &UdpSocket, shared: &Shared) {
    // Larger than any request, so that a longer datagram reads as its real (wrong) length.
    let mut buf = [0u8; 512];
    while !shared.stop.load(Ordering::Acquire) {
        let (len, peer) = match socket.recv_from(&mut buf) {
            Ok(received) => received,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted) => continue,
            Err(error) => {
                tracing::warn!(%error, "retransmission server: receive failed");
                thread::sleep(READ_TIMEOUT);
                continue;
            }
        };
        let counters = &shared.counters;
        bump(&counters.requests, 1);
        if !shared.answering.load(Ordering::Acquire) {
            bump(&counters.ignored_while_stopped, 1);
            continue;
        }
        let Some(request) = buf.get(..len).and_then(|bytes| Request::decode(bytes).ok()) else {
            bump(&counters.malformed, 1);
            continue;
        };
        let session = *lock_session(shared);
        if request.session != session {
            bump(&counters.other_session, 1);
            continue;
        }
        let Some((first, end)) = served_range(&request, shared) else {
            bump(&counters.beyond_window, 1);
            continue;
        };
        bump(&counters.answered, 1);
        send_response(socket, peer, session, first, end, shared);
    }
}

/// Returns the sequence range `[first, end)` to send for `request`, or `None` when its first
/// sequence is outside the served window. The range is cut at the newest message published, at
/// the end of the message list and at `max_messages_per_response` messages.
fn served_range(request: &Request, shared: &Shared) -> Option<(u64, u64)> {
    let available = u64::try_from(shared.messages.len()).unwrap_or(u64::MAX);
    let published = shared.published.load(Ordering::Acquire).min(available.saturating_add(1));
    let oldest = published.saturating_sub(shared.config.window_messages).max(1);
    if request.sequence < oldest || request.sequence >= published {
        return None;
    }
    let count = request.count.min(shared.config.max_messages_per_response);
    let end = request.sequence.saturating_add(u64::from(count)).min(published);
    Some((request.sequence, end))
}

fn send_response(
    socket: &UdpSocket,
    peer: SocketAddr,
    session: SessionId,
    first: u64,
    end: u64,
    shared: &Shared,
) {
    let counters = &shared.counters;
    let mut builder = PacketBuilder::new(session, first, shared.config.max_packet_bytes);
    let send = |packet: &[u8], messages: u64| match socket.send_to(packet, peer) {
        Ok(_) => {
            bump(&counters.packets_sent, 1);
            bump(&counters.messages_sent, messages);
        }
        Err(error) => {
            bump(&counters.send_errors, 1);
            tracing::warn!(%peer, %error, "retransmission server: send failed");
        }
    };
    for sequence in first..end {
        let index = usize::try_from(sequence - 1).unwrap_or(usize::MAX);
        let Some(message) = shared.messages.get(index) else { break };
        if !builder.try_push(message) {
            let count = u64::from(builder.count());
            send(builder.finish(), count);
            // `start` checked that every message fits an empty packet.
            if !builder.try_push(message) {
                break;
            }
        }
    }
    if !builder.is_empty() {
        let count = u64::from(builder.count());
        send(builder.finish(), count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(n: usize) -> Arc<[Box<[u8]>]> {
        (0..n).map(|i| vec![b'M'; 10 + i % 7].into_boxed_slice()).collect()
    }

    fn shared(published: u64, window: u64, max: u16) -> Shared {
        Shared {
            config: RetransmitConfig { window_messages: window, max_messages_per_response: max, ..RetransmitConfig::default() },
            session: Mutex::new(*b"SIM0000001"),
            messages: messages(100),
            published: Arc::new(AtomicU64::new(published)),
            answering: AtomicBool::new(true),
            stop: AtomicBool::new(false),
            counters: AtomicCounters::default(),
        }
    }

    fn request(sequence: u64, count: u16) -> Request {
        Request { session: *b"SIM0000001", sequence, count }
    }

    #[test]
    fn served_range_stays_in_window() {
        // Published up to sequence 50, window of 20: sequences 31..=50 are served.
        let shared = shared(51, 20, 500);
        assert_eq!(served_range(&request(31, 5), &shared), Some((31, 36)));
        assert_eq!(served_range(&request(30, 5), &shared), None);
        assert_eq!(served_range(&request(51, 1), &shared), None);
        assert_eq!(served_range(&request(45, 100), &shared), Some((45, 51)));
    }

    #[test]
    fn served_range_caps_count_and_list_end() {
        let shared = shared(1_000, 10_000, 8);
        assert_eq!(served_range(&request(1, 100), &shared), Some((1, 9)));
        // Only 100 messages exist, even with `published` beyond them.
        assert_eq!(served_range(&request(98, 8), &shared), Some((98, 101)));
        assert_eq!(served_range(&request(101, 1), &shared), None);
    }

    #[test]
    fn start_rejects_message_longer_than_packet() {
        let config = RetransmitConfig { max_packet_bytes: 30, ..RetransmitConfig::default() };
        let result = RetransmitServer::start(config, *b"SIM0000001", messages(10), Arc::new(AtomicU64::new(1)));
        assert!(matches!(result, Err(e) if e.kind() == io::ErrorKind::InvalidInput));
    }
}

//! The TCP publisher: accepts subscribers, serves their requests and fans book events out to them.
//!
//! [`Publisher::on_event`] updates the mirror and queues frames without any syscall;
//! [`Publisher::poll_io`] does all socket work with non-blocking calls. Both run on the publisher
//! stage's thread. Each connection has a bounded outbound queue: a frame that does not fit
//! disconnects that connection as a slow consumer instead of slowing the pipeline.

mod connection;
mod fanout;
mod policy;
mod quality;
mod requests;

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mdfh_matcher::FeedQuality;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};

use crate::encode::encode_heartbeat;
use crate::mirror::Mirror;
use crate::protocol::{GoodbyeReason, SlowConsumerPolicy};
pub use connection::PolicyCounters;
use connection::{ConnState, Connection, Counters};
use fanout::Routes;

/// Token of the listening socket; connection `slot` uses `Token(slot + 1)`.
const LISTENER: Token = Token(0);
/// Connections accepted per `poll_io` call at most, so a connection storm cannot starve the rest.
const ACCEPT_BUDGET: usize = 32;
/// Bytes read from one connection per `poll_io` call at most.
const READ_BUDGET: usize = 64 * 1024;
/// Readiness events handled per `poll_io` call at most; the rest come on the next call.
const EVENT_CAPACITY: usize = 256;
/// Maximum sleep of [`Publisher::close_all`] between two flush attempts.
const CLOSE_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Settings of a [`Publisher`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Open subscriber connections at most; a connection past it gets a Goodbye (server full).
    pub max_subscribers: usize,
    /// Unsent bytes per connection at most; a frame that would go past it disconnects the
    /// connection as a slow consumer. An empty queue takes one frame of any size, so that a large
    /// snapshot can still go out.
    pub queue_bytes: usize,
    /// Idle time after which a connection gets a Heartbeat.
    pub heartbeat_interval: Duration,
    /// Largest subscription depth accepted; 0 means no limit. With a limit, depth 0 (the full
    /// book) is rejected too.
    pub max_depth: u16,
    /// Symbol subscriptions per connection at most.
    pub max_subscriptions: usize,
    /// How long a closing connection may take to flush its Goodbye before it is dropped; also the
    /// longest wait of [`Publisher::close_all`].
    pub close_timeout: Duration,
    /// Slow-consumer policies a client may choose with SetPolicy. Connections start with
    /// `Disconnect` whatever this contains.
    pub allowed_policies: Vec<SlowConsumerPolicy>,
    /// Staleness target of the conflate policy: a connection whose outbound queue has not been
    /// empty for this long starts conflating.
    pub conflation_staleness: Duration,
    /// Level events of one instrument between two periodic Digest frames; 0 turns them off.
    pub digest_interval: u32,
    /// Levels per side that periodic Digest frames cover, cut to each subscription's depth;
    /// 0 means every level.
    pub digest_depth: u16,
}

impl Default for PublisherConfig {
    fn default() -> PublisherConfig {
        PublisherConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9100)),
            max_subscribers: 64,
            queue_bytes: 4 * 1024 * 1024,
            heartbeat_interval: Duration::from_secs(1),
            max_depth: 0,
            max_subscriptions: 1024,
            close_timeout: Duration::from_secs(1),
            allowed_policies: SlowConsumerPolicy::ALL.to_vec(),
            // NOTE: 100 ms is a starting value, not one measured against real subscribers.
            conflation_staleness: Duration::from_millis(100),
            digest_interval: 0,
            digest_depth: 10,
        }
    }
}

/// Counters of a [`Publisher`], for the caller to report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublisherStats {
    pub connections_accepted: u64,
    /// Connections closed right after accept because `max_subscribers` were open.
    pub connections_rejected: u64,
    /// Open subscriber connections.
    pub active: usize,
    pub slow_consumer_disconnects: u64,
    /// Requests that could not be decoded, or were of a server-to-client type.
    pub malformed_requests: u64,
    pub rejected_subscriptions: u64,
    /// Frames completely written to sockets.
    pub frames_sent: u64,
    pub bytes_sent: u64,
    /// Level events that removed a price the mirror did not have.
    pub unmatched_level_events: u64,
    /// Number of errors recorded; when it grows, `last_error` contains the newest one.
    pub errors: u64,
    /// Text of the last error, with the peer address when one is involved.
    pub last_error: Option<String>,
    /// Slow-consumer handling summed over every connection, closed ones included.
    pub policy: PolicyCounters,
    /// Digest frames queued, periodic and requested.
    pub digests_sent: u64,
    /// SetPolicy, Resnapshot and DigestRequest requests answered with an Error.
    pub rejected_requests: u64,
}

/// Slow-consumer state and counters of one open connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberStats {
    pub peer: SocketAddr,
    pub policy: SlowConsumerPolicy,
    /// Whether the connection is conflating or waiting for fresh snapshots.
    pub behind: bool,
    /// Sequence number of the last data frame queued.
    pub last_seq: u64,
    pub counters: PolicyCounters,
}

/// The subscriber server. See the module documentation.
#[derive(Debug)]
pub struct Publisher {
    cfg: PublisherConfig,
    poll: Poll,
    events: Events,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    accept_pending: bool,
    /// Connection slots; a closed connection leaves `None` for reuse.
    conns: Vec<Option<Connection>>,
    mirror: Mirror,
    routes: Routes,
    /// Feed sequence number of the last event applied, stamped on snapshots.
    last_feed_seq: u64,
    /// Current feed-wide quality, and the feed sequence number of the event that set it.
    quality: FeedQuality,
    quality_feed_seq: u64,
    /// Encoding buffers reused for every frame.
    scratch: Vec<u8>,
    entering_scratch: Vec<u8>,
    counters: Counters,
}

impl Publisher {
    /// Binds the listening socket. Port 0 picks a free port; see [`Publisher::local_addr`].
    pub fn bind(cfg: &PublisherConfig) -> io::Result<Publisher> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(cfg.listen)?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let local_addr = listener.local_addr()?;
        Ok(Publisher {
            cfg: cfg.clone(),
            poll,
            events: Events::with_capacity(EVENT_CAPACITY),
            listener: Some(listener),
            local_addr,
            accept_pending: true,
            conns: Vec::new(),
            mirror: Mirror::new(),
            routes: Routes::default(),
            last_feed_seq: 0,
            quality: FeedQuality::OK,
            quality_feed_seq: 0,
            scratch: Vec::with_capacity(4096),
            entering_scratch: Vec::with_capacity(64),
            counters: Counters::default(),
        })
    }

    /// Returns the address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Returns the number of open subscriber connections (closing ones excluded).
    pub fn subscriber_count(&self) -> usize {
        self.conns.iter().flatten().filter(|c| c.is_open()).count()
    }

    /// Returns the server's L2 mirror of every book.
    pub fn mirror(&self) -> &Mirror {
        &self.mirror
    }

    pub fn stats(&self) -> PublisherStats {
        let c = &self.counters;
        PublisherStats {
            connections_accepted: c.accepted,
            connections_rejected: c.rejected_connections,
            active: self.subscriber_count(),
            slow_consumer_disconnects: c.slow_consumer_disconnects,
            malformed_requests: c.malformed_requests,
            rejected_subscriptions: c.rejected_subscriptions,
            frames_sent: c.frames_sent,
            bytes_sent: c.bytes_sent,
            unmatched_level_events: c.unmatched_level_events,
            errors: c.errors,
            last_error: c.last_error.clone(),
            policy: c.policy,
            digests_sent: c.digests_sent,
            rejected_requests: c.rejected_requests,
        }
    }

    /// Returns the slow-consumer state and counters of every open connection.
    pub fn subscriber_stats(&self) -> Vec<SubscriberStats> {
        self.conns
            .iter()
            .flatten()
            .filter(|c| c.is_open())
            .map(|c| SubscriberStats {
                peer: c.peer,
                policy: c.policy,
                behind: c.is_behind(),
                last_seq: c.last_seq,
                counters: c.policy_counters,
            })
            .collect()
    }

    /// Accepts new connections, reads and serves requests, sends heartbeats and writes queued
    /// bytes, all without blocking. Returns the amount of work done (connections accepted,
    /// requests served, heartbeats queued and writes), 0 when there was nothing to do.
    pub fn poll_io(&mut self, now: Instant) -> usize {
        self.poll_events(Some(Duration::ZERO));
        let mut work = 0;
        if self.accept_pending {
            work += self.accept(now);
        }
        for slot in 0..self.conns.len() {
            work += self.service(slot, now);
        }
        work
    }

    /// Sends a Goodbye with `reason` to every connection, stops accepting, tries to flush for at
    /// most `close_timeout`, then closes every connection.
    pub fn close_all(&mut self, reason: &str) {
        for conn in self.conns.iter_mut().flatten() {
            conn.begin_close(GoodbyeReason::Shutdown, reason);
        }
        if let Some(mut listener) = self.listener.take() {
            // The listener is dropped right after; a failed deregistration changes nothing.
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.accept_pending = false;

        let start = Instant::now();
        let deadline = start + self.cfg.close_timeout;
        loop {
            let now = Instant::now();
            for slot in 0..self.conns.len() {
                self.service(slot, now);
            }
            let all_flushed = self.conns.iter().flatten().all(|c| {
                matches!(c.state, ConnState::Closing { write_shut: true, .. })
            });
            if all_flushed || now >= deadline {
                break;
            }
            self.poll_events(Some(CLOSE_POLL_INTERVAL.min(deadline - now)));
        }
        for slot in 0..self.conns.len() {
            self.drop_connection(slot);
        }
    }

    /// Waits up to `timeout` for readiness and marks the connections that have some.
    fn poll_events(&mut self, timeout: Option<Duration>) {
        if let Err(e) = self.poll.poll(&mut self.events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                self.counters.record_error(None, format_args!("epoll wait failed: {e}"));
            }
            return;
        }
        for event in self.events.iter() {
            if event.token() == LISTENER {
                self.accept_pending = true;
                continue;
            }
            let slot = event.token().0.wrapping_sub(1);
            if let Some(Some(conn)) = self.conns.get_mut(slot) {
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    conn.readable = true;
                }
                if event.is_writable() || event.is_write_closed() || event.is_error() {
                    conn.writable = true;
                }
            }
        }
    }

    /// Accepts up to [`ACCEPT_BUDGET`] connections. Returns how many it accepted.
    fn accept(&mut self, now: Instant) -> usize {
        let Some(listener) = &self.listener else {
            return 0;
        };
        let mut accepted = 0;
        while accepted < ACCEPT_BUDGET {
            let (mut stream, peer) = match listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.accept_pending = false;
                    return accepted;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of file descriptors and similar: retried on the next call.
                    self.counters.record_error(None, format_args!("accept failed: {e}"));
                    return accepted;
                }
            };
            accepted += 1;
            self.counters.accepted += 1;

            let slot = match self.conns.iter().position(Option::is_none) {
                Some(free) => free,
                None => {
                    self.conns.push(None);
                    self.conns.len() - 1
                }
            };
            // Without Nagle's algorithm, small frames go out at once; latency matters more here.
            if let Err(e) = stream.set_nodelay(true) {
                self.counters.record_error(Some(peer), format_args!("setting TCP_NODELAY failed: {e}"));
            }
            if let Err(e) = self.poll.registry().register(
                &mut stream,
                Token(slot + 1),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                self.counters.record_error(Some(peer), format_args!("registering the connection failed: {e}"));
                continue;
            }

            let full = self.subscriber_count() >= self.cfg.max_subscribers;
            let mut conn = Connection::new(stream, peer, self.cfg.queue_bytes, now);
            if full {
                self.counters.rejected_connections += 1;
                let text = format!("server full: {} subscribers connected", self.cfg.max_subscribers);
                conn.begin_close(GoodbyeReason::ServerFull, &text);
            } else {
                let feed_seq = self.quality_feed_seq;
                quality::queue_current_quality(&mut conn, self.quality, feed_seq, &mut self.scratch, &mut self.counters);
            }
            if let Some(entry) = self.conns.get_mut(slot) {
                *entry = Some(conn);
            }
        }
        accepted
    }

    /// Does the socket work of one connection. Returns the amount of work done.
    fn service(&mut self, slot: usize, now: Instant) -> usize {
        let mut work = self.read_requests(slot);
        work += self.run_policy(slot, now);
        let interval = self.cfg.heartbeat_interval;
        let close_timeout = self.cfg.close_timeout;
        let Some(Some(conn)) = self.conns.get_mut(slot) else {
            return work;
        };

        if conn.is_open() && conn.out.is_empty() && now.duration_since(conn.last_write) >= interval {
            self.scratch.clear();
            encode_heartbeat(&mut self.scratch, conn.last_seq, wall_clock_ns());
            conn.queue_session(&self.scratch, &mut self.counters);
            conn.last_write = now;
            work += 1;
        }

        let mut broken = None;
        match conn.flush(now, &mut self.counters) {
            Ok(0) => {}
            Ok(_) => work += 1,
            Err(e) => broken = Some(e),
        }
        if let Some(e) = &broken {
            self.counters.record_error(Some(conn.peer), format_args!("write failed, connection closed: {e}"));
        }

        if let ConnState::Closing { deadline, write_shut } = conn.state {
            let deadline = deadline.unwrap_or(now + close_timeout);
            conn.state = ConnState::Closing { deadline: Some(deadline), write_shut };
            conn.shut_write_when_flushed();
            let done = conn.peer_closed && matches!(conn.state, ConnState::Closing { write_shut: true, .. });
            let detached = conn.detached;
            if broken.is_some() || done || now >= deadline {
                self.drop_connection(slot);
            } else if !detached {
                self.detach(slot);
            }
        } else if broken.is_some() {
            self.drop_connection(slot);
        }
        work
    }

    /// Closes the connection in `slot`, if any, and removes its routes.
    fn drop_connection(&mut self, slot: usize) {
        self.detach(slot);
        if let Some(entry) = self.conns.get_mut(slot) {
            if let Some(mut conn) = entry.take() {
                // The socket is closed right after; a failed deregistration changes nothing.
                let _ = self.poll.registry().deregister(&mut conn.stream);
            }
        }
    }
}

/// Returns wall-clock nanoseconds since the Unix epoch; 0 if the clock is before the epoch.
/// `SystemTime::now` reads the clock through the vDSO on Linux, without a syscall.
pub(crate) fn wall_clock_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

// The pipeline moves the publisher into its own thread.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<Publisher>();
};

//! One subscriber connection: its input buffer, outbound queue, subscriptions and close state.

use std::collections::HashSet;
use std::fmt::{self, Write as _};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Instant;

use mdfh_feed::itch::Stock;
use mio::net::TcpStream;

use crate::encode::encode_goodbye;
use crate::protocol::{
    GoodbyeReason, SlowConsumerPolicy, FRAME_HEADER_LEN, MAX_REQUEST_LEN, MAX_TEXT_LEN,
};
use crate::queue::OutQueue;

/// Size in bytes of the per-connection input buffer, at least one request of the maximum length.
const INPUT_CAPACITY: usize = 4096;
const _: () = assert!(INPUT_CAPACITY >= FRAME_HEADER_LEN + MAX_REQUEST_LEN as usize);

/// Counters shared by all connections, and the text of the last error.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub accepted: u64,
    pub rejected_connections: u64,
    pub slow_consumer_disconnects: u64,
    pub malformed_requests: u64,
    pub rejected_subscriptions: u64,
    pub frames_sent: u64,
    pub bytes_sent: u64,
    pub unmatched_level_events: u64,
    pub errors: u64,
    pub last_error: Option<String>,
    pub policy: PolicyCounters,
    pub digests_sent: u64,
    /// SetPolicy, Resnapshot and DigestRequest requests answered with an Error.
    pub rejected_requests: u64,
}

/// Counters of slow-consumer handling, kept per connection and summed over all connections.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PolicyCounters {
    /// Level updates not sent because a conflated catch-up replaced them.
    pub conflated_updates: u64,
    /// Conflated catch-up batches sent.
    pub catchups: u64,
    /// Trades dropped while a conflating connection was behind.
    pub dropped_trades: u64,
    /// Fresh snapshots sent because a resnapshot connection fell behind.
    pub resnapshots: u64,
    /// Data frames dropped from the queue or never queued while a resnapshot was pending.
    pub resnapshot_dropped_frames: u64,
    /// Data frames dropped from the queue by a slow-consumer disconnect.
    pub disconnect_dropped_frames: u64,
}

impl PolicyCounters {
    /// Adds `other` to every counter.
    pub fn add(&mut self, other: &PolicyCounters) {
        self.conflated_updates += other.conflated_updates;
        self.catchups += other.catchups;
        self.dropped_trades += other.dropped_trades;
        self.resnapshots += other.resnapshots;
        self.resnapshot_dropped_frames += other.resnapshot_dropped_frames;
        self.disconnect_dropped_frames += other.disconnect_dropped_frames;
    }
}

/// Conflation state of a connection with the conflate policy, allocated when the policy is set.
#[derive(Debug)]
pub(crate) struct Conflation {
    /// Changed levels not sent yet, as keys of [`level_key`]. Created with `capacity`, so marking
    /// a level allocates nothing.
    pub dirty: HashSet<u64>,
    /// Keys `dirty` holds at most; one more disconnects the connection.
    pub capacity: usize,
    /// Level updates replaced since the current batch began.
    pub conflated: u64,
    /// Trades dropped since the current batch began.
    pub dropped_trades: u64,
}

/// Returns the key of a level in [`Conflation::dirty`]: locate in bits 40..56, side byte in bits
/// 32..40, price in bits 0..32.
pub(crate) fn level_key(locate: u16, side_byte: u8, price: u32) -> u64 {
    (u64::from(locate) << 40) | (u64::from(side_byte) << 32) | u64::from(price)
}

/// Splits a key of [`level_key`] into locate, side byte and price.
pub(crate) fn split_level_key(key: u64) -> (u16, u8, u32) {
    ((key >> 40) as u16, (key >> 32) as u8, key as u32)
}

impl Counters {
    /// Counts an error and keeps its text, prefixed with the peer address when there is one. The
    /// text buffer is reused, so a repeated error allocates nothing once it has grown.
    pub fn record_error(&mut self, peer: Option<SocketAddr>, message: fmt::Arguments<'_>) {
        self.errors += 1;
        let text = self.last_error.get_or_insert_with(String::new);
        text.clear();
        // Writing to a String cannot fail.
        let _ = match peer {
            Some(peer) => write!(text, "{peer}: {message}"),
            None => text.write_fmt(message),
        };
    }
}

/// One symbol subscription of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SymbolSub {
    pub stock: Stock,
    /// Levels per side; 0 means the full book.
    pub depth: u16,
    /// The instrument the symbol resolved to; `None` while it is pending.
    pub locate: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnState {
    Open,
    /// A Goodbye is queued. The connection is dropped once the queue is flushed and the write
    /// side shut down, or at the deadline (set by the first poll after the close began).
    Closing { deadline: Option<Instant>, write_shut: bool },
}

#[derive(Debug)]
pub(crate) struct Connection {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    input: Vec<u8>,
    input_len: usize,
    /// Stream offset of `input[0]`, for error messages.
    input_offset: usize,
    pub out: OutQueue,
    /// Sequence number of the last data frame queued; 0 before the first.
    pub last_seq: u64,
    /// Depth of the "all instruments" subscription, if the connection has one.
    pub all_depth: Option<u16>,
    pub subs: Vec<SymbolSub>,
    pub state: ConnState,
    /// Whether the connection's routes were removed from the fan-out tables.
    pub detached: bool,
    /// Whether the socket may have input that was not read yet.
    pub readable: bool,
    /// Whether the last write did not stop on `WouldBlock`.
    pub writable: bool,
    pub peer_closed: bool,
    /// When bytes were last written to the socket; heartbeats measure idleness from here.
    pub last_write: Instant,
    pub policy: SlowConsumerPolicy,
    /// Unsent bytes above which the connection counts as behind: half of `queue_bytes`.
    pub high_water: usize,
    /// Unsent bytes at or below which a connection that is behind gets its catch-up batch or
    /// fresh snapshots: an eighth of `queue_bytes`.
    pub low_water: usize,
    /// `Some` under the conflate policy.
    pub conflation: Option<Box<Conflation>>,
    /// Whether level updates are being conflated instead of queued.
    pub conflating: bool,
    /// Whether queued frames were dropped and fresh snapshots are owed (resnapshot policy).
    pub resnapshot_pending: bool,
    /// When the outbound queue was last seen empty, or the last catch-up batch was queued; the
    /// staleness target is measured from here.
    pub drained_at: Instant,
    pub policy_counters: PolicyCounters,
    /// Whether a FeedQuality frame was ever queued, so the client may hold a quality other than
    /// Ok that a later change must correct.
    pub quality_queued: bool,
}

impl Connection {
    pub fn new(stream: TcpStream, peer: SocketAddr, queue_bytes: usize, now: Instant) -> Connection {
        Connection {
            stream,
            peer,
            input: vec![0; INPUT_CAPACITY],
            input_len: 0,
            input_offset: 0,
            out: OutQueue::new(queue_bytes),
            last_seq: 0,
            all_depth: None,
            subs: Vec::new(),
            state: ConnState::Open,
            detached: false,
            readable: true,
            writable: true,
            peer_closed: false,
            last_write: now,
            policy: SlowConsumerPolicy::Disconnect,
            high_water: queue_bytes / 2,
            low_water: queue_bytes / 8,
            conflation: None,
            conflating: false,
            resnapshot_pending: false,
            drained_at: now,
            policy_counters: PolicyCounters::default(),
            quality_queued: false,
        }
    }

    /// Returns the depth of the connection's subscription that covers `locate`, or `None` when
    /// no subscription routes it.
    pub fn depth_of(&self, locate: u16) -> Option<u16> {
        match self.all_depth {
            Some(depth) => Some(depth),
            None => self.subs.iter().find(|s| s.locate == Some(locate)).map(|s| s.depth),
        }
    }

    pub fn is_open(&self) -> bool {
        self.state == ConnState::Open
    }

    pub fn has_subscriptions(&self) -> bool {
        self.all_depth.is_some() || !self.subs.is_empty()
    }

    /// Queues a data frame with the next sequence number. A frame that does not fit disconnects
    /// the connection as a slow consumer. Returns whether the frame was queued.
    pub fn queue_data(&mut self, frame: &[u8], counters: &mut Counters) -> bool {
        if !self.is_open() {
            return false;
        }
        let seq = self.last_seq + 1;
        if self.out.push_data(frame, seq) {
            self.last_seq = seq;
            true
        } else {
            self.disconnect_slow(frame.len(), counters);
            false
        }
    }

    /// Queues a session frame (no sequence number), with the same overflow rule as data frames.
    pub fn queue_session(&mut self, frame: &[u8], counters: &mut Counters) -> bool {
        if !self.is_open() {
            return false;
        }
        if self.out.push(frame) {
            true
        } else {
            self.disconnect_slow(frame.len(), counters);
            false
        }
    }

    /// Queues a Goodbye after what is already queued and starts closing.
    pub fn begin_close(&mut self, reason: GoodbyeReason, text: &str) {
        if !self.is_open() {
            return;
        }
        let mut goodbye = Vec::with_capacity(FRAME_HEADER_LEN + 10 + MAX_TEXT_LEN);
        encode_goodbye(&mut goodbye, reason, self.last_seq, text);
        self.out.force_push(&goodbye);
        self.state = ConnState::Closing { deadline: None, write_shut: false };
    }

    /// Drops the frames not yet started, queues a slow-consumer Goodbye and starts closing.
    fn disconnect_slow(&mut self, frame_len: usize, counters: &mut Counters) {
        let unsent = self.out.unsent_len();
        let text = format!("outbound queue full with {unsent} bytes unsent; unsent frames were dropped");
        self.disconnect_slow_with(&text, frame_len, counters);
    }

    /// Drops the frames not yet started, queues a slow-consumer Goodbye with `text` and starts
    /// closing.
    pub fn disconnect_slow_with(&mut self, text: &str, frame_len: usize, counters: &mut Counters) {
        let unsent = self.out.unsent_len();
        counters.slow_consumer_disconnects += 1;
        counters.record_error(
            Some(self.peer),
            format_args!("slow consumer disconnected: {unsent} bytes unsent, next frame {frame_len} bytes"),
        );
        let dropped = self.out.drop_unstarted();
        self.policy_counters.disconnect_dropped_frames += dropped;
        counters.policy.disconnect_dropped_frames += dropped;
        self.begin_close(GoodbyeReason::SlowConsumer, text);
    }

    /// Reads once into the free part of the input buffer. Returns the bytes read, 0 at end of
    /// stream; `WouldBlock` when there is nothing to read.
    pub fn read_once(&mut self) -> io::Result<usize> {
        let free = self.input.get_mut(self.input_len..).unwrap_or(&mut []);
        if free.is_empty() {
            // The caller decodes before reading again, so a full buffer means it must drop input.
            return Err(io::Error::new(io::ErrorKind::OutOfMemory, "request input buffer is full"));
        }
        let n = self.stream.read(free)?;
        self.input_len += n;
        Ok(n)
    }

    /// Returns the bytes read but not yet decoded.
    pub fn input(&self) -> &[u8] {
        self.input.get(..self.input_len).unwrap_or(&[])
    }

    /// Returns the stream offset of the first byte of [`Connection::input`].
    pub fn input_offset(&self) -> usize {
        self.input_offset
    }

    /// Drops the first `n` bytes of the input; all of it when `n` is larger.
    pub fn consume_input(&mut self, n: usize) {
        let n = n.min(self.input_len);
        self.input.copy_within(n..self.input_len, 0);
        self.input_len -= n;
        self.input_offset += n;
    }

    /// Writes queued bytes until the queue is empty or the socket would block. Returns the bytes
    /// written; an error means the connection is broken.
    pub fn flush(&mut self, now: Instant, counters: &mut Counters) -> io::Result<usize> {
        let mut total = 0;
        while self.writable && !self.out.is_empty() {
            match self.stream.write(self.out.unsent()) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "socket accepted no bytes")),
                Ok(n) => {
                    counters.frames_sent += self.out.consume(n);
                    counters.bytes_sent += n as u64;
                    self.last_write = now;
                    total += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }

    /// Shuts down the write side once a closing connection's queue is empty, so the peer reads
    /// the Goodbye and then end of stream.
    pub fn shut_write_when_flushed(&mut self) {
        if let ConnState::Closing { write_shut: write_shut @ false, .. } = &mut self.state {
            if self.out.is_empty() {
                // An error here means the peer is gone, which the next read or write reports.
                let _ = self.stream.shutdown(Shutdown::Write);
                *write_shut = true;
            }
        }
    }
}

//! One subscriber connection: its input buffer, outbound queue, subscriptions and close state.

use std::fmt::{self, Write as _};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Instant;

use mdfh_feed::itch::Stock;
use mio::net::TcpStream;

use crate::encode::encode_goodbye;
use crate::protocol::{GoodbyeReason, FRAME_HEADER_LEN, MAX_REQUEST_LEN, MAX_TEXT_LEN};
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
        counters.slow_consumer_disconnects += 1;
        counters.record_error(
            Some(self.peer),
            format_args!("slow consumer disconnected: {unsent} bytes unsent, next frame {frame_len} bytes"),
        );
        self.out.drop_unstarted();
        let text = format!("outbound queue full with {unsent} bytes unsent; unsent frames were dropped");
        self.begin_close(GoodbyeReason::SlowConsumer, &text);
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

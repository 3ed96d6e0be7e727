//! A blocking subscriber client, used by `mdfh subscribe` and by tests.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use mdfh_feed::itch::Stock;
use mdfh_matcher::FeedQuality;

use crate::decode::decode_frame;
use crate::encode::{
    encode_client_heartbeat, encode_digest_request, encode_resnapshot, encode_set_policy,
    encode_subscribe, encode_unsubscribe,
};
use crate::protocol::{is_valid_symbol, Frame, OwnedFrame, SlowConsumerPolicy, Target, LENGTH_PREFIX_LEN};

/// Initial size of the receive buffer; it grows to hold the largest frame received.
const INITIAL_BUFFER: usize = 64 * 1024;

/// A connection to a [`crate::Publisher`]. Requests are written with blocking writes; frames are
/// read with the read timeout set at connect time.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    /// Received bytes; `buf[start..end]` is not decoded yet.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Stream offset of `buf[start]`, for error messages.
    offset: usize,
    request: Vec<u8>,
    /// Quality of the last FeedQuality frame read; Ok before the first and after a Reset.
    quality: FeedQuality,
}

impl Client {
    /// Connects to `addr`, waiting at most `timeout`, and uses `timeout` as the read timeout of
    /// [`Client::next_frame`].
    pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        Client::from_stream(stream, timeout)
    }

    /// Wraps a connected stream, for a caller that set socket options before connecting.
    pub fn from_stream(stream: TcpStream, read_timeout: Duration) -> io::Result<Client> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(read_timeout))?;
        Ok(Client {
            stream,
            buf: vec![0; INITIAL_BUFFER],
            start: 0,
            end: 0,
            offset: 0,
            request: Vec::with_capacity(64),
            quality: FeedQuality::OK,
        })
    }

    /// Returns the local address of the connection, which the server reports as the peer in
    /// [`crate::server::SubscriberStats`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// Returns the feed quality of the last FeedQuality frame [`Client::next_frame`] returned: Ok
    /// before the first and after a Reset. Combine it with each book's status, as
    /// [`crate::ClientBook::is_trustworthy`] does.
    pub fn quality(&self) -> FeedQuality {
        self.quality
    }

    /// Sets how long [`Client::next_frame`] waits for data. A zero duration is rejected by the
    /// standard library with `InvalidInput`.
    pub fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.stream.set_read_timeout(Some(timeout))
    }

    /// Sends a Subscribe for `symbol`, or for every instrument when it is `None`. `depth` is the
    /// number of levels per side; 0 requests the full book.
    pub fn subscribe(&mut self, symbol: Option<&str>, depth: u16) -> io::Result<()> {
        let target = target_of(symbol)?;
        self.request.clear();
        encode_subscribe(&mut self.request, target, depth);
        self.stream.write_all(&self.request)
    }

    /// Sends an Unsubscribe for `symbol`, or for every subscription when it is `None`.
    pub fn unsubscribe(&mut self, symbol: Option<&str>) -> io::Result<()> {
        let target = target_of(symbol)?;
        self.request.clear();
        encode_unsubscribe(&mut self.request, target);
        self.stream.write_all(&self.request)
    }

    /// Sends a SetPolicy request. The server accepts it only before the first Subscribe (or after
    /// unsubscribing from everything) and answers a rejected one with an Error.
    pub fn set_policy(&mut self, policy: SlowConsumerPolicy) -> io::Result<()> {
        self.request.clear();
        encode_set_policy(&mut self.request, policy);
        self.stream.write_all(&self.request)
    }

    /// Sends a Resnapshot request for `symbol`, or for every subscription when it is `None`.
    pub fn request_resnapshot(&mut self, symbol: Option<&str>) -> io::Result<()> {
        let target = target_of(symbol)?;
        self.request.clear();
        encode_resnapshot(&mut self.request, target);
        self.stream.write_all(&self.request)
    }

    /// Sends a DigestRequest for `symbol` over `depth` levels per side; 0 requests the
    /// subscription's depth.
    pub fn request_digest(&mut self, symbol: &str, depth: u16) -> io::Result<()> {
        let Target::Symbol(stock) = target_of(Some(symbol))? else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a digest request names one symbol"));
        };
        self.request.clear();
        encode_digest_request(&mut self.request, stock, depth);
        self.stream.write_all(&self.request)
    }

    /// Sends a client Heartbeat.
    pub fn send_heartbeat(&mut self) -> io::Result<()> {
        self.request.clear();
        encode_client_heartbeat(&mut self.request);
        self.stream.write_all(&self.request)
    }

    /// Writes raw bytes, for tests of the server's handling of malformed input.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Returns the next frame, or `None` when the read timeout passed first.
    ///
    /// Errors: `UnexpectedEof` when the server closed the connection, `InvalidData` with the
    /// [`crate::ProtocolError`] when a frame is malformed (the frame is skipped when its length
    /// can be trusted, so the next call goes on), and the socket's own errors.
    pub fn next_frame(&mut self) -> io::Result<Option<OwnedFrame>> {
        loop {
            let pending = self.buf.get(self.start..self.end).unwrap_or(&[]);
            match decode_frame(pending) {
                Ok(Some((frame, consumed))) => {
                    match frame {
                        Frame::FeedQuality(update) => self.quality = update.quality,
                        Frame::Reset { .. } => self.quality = FeedQuality::OK,
                        _ => {}
                    }
                    let owned = frame.to_owned_frame();
                    self.advance(consumed);
                    return Ok(Some(owned));
                }
                Ok(None) => {}
                Err(e) => {
                    let e = e.at(self.offset);
                    match e.skip_len() {
                        Some(skip) => self.advance(skip),
                        None => self.advance(usize::MAX),
                    }
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
            if !self.read_more()? {
                return Ok(None);
            }
        }
    }

    /// Reads once into the buffer, making room for the frame being received. Returns `false` when
    /// the read timed out.
    fn read_more(&mut self) -> io::Result<bool> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let needed = self
            .buf
            .get(..LENGTH_PREFIX_LEN)
            .filter(|_| self.end >= LENGTH_PREFIX_LEN)
            .and_then(|prefix| prefix.try_into().ok())
            .map_or(0, |prefix| LENGTH_PREFIX_LEN + u32::from_le_bytes(prefix) as usize);
        if self.end == self.buf.len() || needed > self.buf.len() {
            // The decoder has checked the length against its maximum, so this growth is bounded.
            let size = needed.max(self.buf.len() * 2);
            self.buf.resize(size, 0);
        }

        loop {
            let free = self.buf.get_mut(self.end..).unwrap_or(&mut []);
            match self.stream.read(free) {
                Ok(0) => {
                    let text = if self.end == 0 {
                        "server closed the connection"
                    } else {
                        "server closed the connection inside a frame"
                    };
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, text));
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Ok(false)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Drops `n` decoded bytes, or everything buffered when `n` is larger.
    fn advance(&mut self, n: usize) {
        let n = n.min(self.end - self.start);
        self.start += n;
        self.offset += n;
    }
}

/// Returns the request target for a symbol argument, or `InvalidInput` for a symbol that is not
/// 1 to 8 printable ASCII characters starting with a non-space.
fn target_of(symbol: Option<&str>) -> io::Result<Target> {
    let Some(symbol) = symbol else {
        return Ok(Target::All);
    };
    let stock = Stock::new(symbol);
    if symbol.is_empty() || symbol.len() > 8 || !is_valid_symbol(&stock.0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid symbol {symbol:?}: expected 1 to 8 printable ASCII characters, not starting with a space"),
        ));
    }
    Ok(Target::Symbol(stock))
}

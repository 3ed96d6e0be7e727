//! SoupBinTCP packet encoding and decoding, and a streaming decoder for bytes read from TCP.
//!
//! A decoder here takes the packet body: the type byte and the payload, which is what the
//! length prefix counts. Text fields are ASCII padded with spaces to a fixed width: username and
//! password are left-justified, the session and sequence numbers right-justified. Decoders
//! accept spaces on either side, and [`trim`] strips them for comparisons.

use std::io::{self, Read};

use super::SoupError;

/// A session id: 10 ASCII bytes, space-padded. All spaces in a login request mean "any session".
pub type SessionId = [u8; 10];

/// Size of the length prefix.
pub const LENGTH_PREFIX: usize = 2;

/// Largest packet on the wire: the prefix plus a body of `u16::MAX` bytes.
pub const MAX_FRAME: usize = LENGTH_PREFIX + u16::MAX as usize;

/// Largest payload: the body is at most `u16::MAX` bytes, one of which is the type byte.
pub const MAX_PAYLOAD: usize = u16::MAX as usize - 1;

/// Payload lengths of the fixed-size packets.
const LOGIN_ACCEPTED_PAYLOAD: usize = 10 + 20;
const LOGIN_REJECTED_PAYLOAD: usize = 1;
const LOGIN_REQUEST_PAYLOAD: usize = 6 + 10 + 10 + 20;

/// Reason code of a Login Rejected packet (one byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// `A`: invalid username or password.
    NotAuthorized,
    /// `S`: the requested session is not available.
    SessionNotAvailable,
    /// Any other code, kept as received.
    Other(u8),
}

impl RejectReason {
    fn from_byte(b: u8) -> RejectReason {
        match b {
            b'A' => RejectReason::NotAuthorized,
            b'S' => RejectReason::SessionNotAvailable,
            other => RejectReason::Other(other),
        }
    }

    fn as_byte(self) -> u8 {
        match self {
            RejectReason::NotAuthorized => b'A',
            RejectReason::SessionNotAvailable => b'S',
            RejectReason::Other(b) => b,
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RejectReason::NotAuthorized => f.write_str("not authorized (A)"),
            RejectReason::SessionNotAvailable => f.write_str("session not available (S)"),
            RejectReason::Other(b) => write!(f, "unknown reason code 0x{b:02x}"),
        }
    }
}

/// A packet sent by the server. Slices borrow from the decoder's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerPacket<'a> {
    /// `+`: free text for humans.
    Debug(&'a [u8]),
    /// `A`: the session logged into and the sequence number of the next sequenced message.
    LoginAccepted { session: SessionId, sequence: u64 },
    /// `J`: the login failed, and the server closes the connection.
    LoginRejected(RejectReason),
    /// `S`: one message, numbered by the client.
    SequencedData(&'a [u8]),
    /// `H`: sent after one second without other packets.
    Heartbeat,
    /// `Z`: no more messages in this session.
    EndOfSession,
}

/// The payload of a Login Request packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginRequest {
    /// Left-justified, space-padded.
    pub username: [u8; 6],
    /// Left-justified, space-padded.
    pub password: [u8; 10],
    /// Right-justified and space-padded. All spaces request the current session.
    pub session: SessionId,
    /// Sequence number of the next message the client requests. 0 requests only new messages.
    pub sequence: u64,
}

impl LoginRequest {
    /// Builds a request from text fields, padding each with spaces. Fails when a field is
    /// longer than its width or contains bytes outside printable ASCII.
    pub fn new(username: &str, password: &str, session: &str, sequence: u64) -> Result<Self, SoupError> {
        Ok(LoginRequest {
            username: pad_left_justified("username", username)?,
            password: pad_left_justified("password", password)?,
            session: pad_right_justified("session", session)?,
            sequence,
        })
    }
}

/// A packet sent by the client. Slices borrow from the decoder's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientPacket<'a> {
    /// `+`: free text for humans.
    Debug(&'a [u8]),
    /// `L`: the first packet of every connection.
    LoginRequest(LoginRequest),
    /// `U`: a message to the server, not sequenced.
    UnsequencedData(&'a [u8]),
    /// `R`: sent after one second without other packets.
    Heartbeat,
    /// `O`: the client ends the connection.
    LogoutRequest,
}

impl<'a> ServerPacket<'a> {
    /// Decodes a body (type byte and payload). `offset` is the stream offset of the packet's
    /// length prefix, used in errors.
    pub fn decode(body: &'a [u8], offset: u64) -> Result<Self, SoupError> {
        let (&packet_type, payload) = body.split_first().ok_or(SoupError::EmptyPacket { offset })?;
        let packet = match packet_type {
            b'+' => ServerPacket::Debug(payload),
            b'S' => ServerPacket::SequencedData(payload),
            b'A' => {
                let fields = fixed::<LOGIN_ACCEPTED_PAYLOAD>(body, offset)?;
                let (session, sequence) = fields.split_at(10);
                ServerPacket::LoginAccepted {
                    session: array(session),
                    sequence: parse_number(sequence, offset, packet_type, "sequence number")?,
                }
            }
            b'J' => {
                let [code] = fixed::<LOGIN_REJECTED_PAYLOAD>(body, offset)?;
                ServerPacket::LoginRejected(RejectReason::from_byte(code))
            }
            b'H' => {
                fixed::<0>(body, offset)?;
                ServerPacket::Heartbeat
            }
            b'Z' => {
                fixed::<0>(body, offset)?;
                ServerPacket::EndOfSession
            }
            _ => return Err(SoupError::UnknownType { offset, packet_type }),
        };
        Ok(packet)
    }

    /// Appends the packet, length prefix included, to `out`. Fails only for a payload longer
    /// than [`MAX_PAYLOAD`].
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), SoupError> {
        match self {
            ServerPacket::Debug(text) => put_packet(out, b'+', &[text]),
            ServerPacket::SequencedData(message) => put_packet(out, b'S', &[message]),
            ServerPacket::LoginAccepted { session, sequence } => {
                put_packet(out, b'A', &[session, &format_number(*sequence)])
            }
            ServerPacket::LoginRejected(reason) => put_packet(out, b'J', &[&[reason.as_byte()]]),
            ServerPacket::Heartbeat => put_packet(out, b'H', &[]),
            ServerPacket::EndOfSession => put_packet(out, b'Z', &[]),
        }
    }
}

impl<'a> ClientPacket<'a> {
    /// Decodes a body (type byte and payload). `offset` is the stream offset of the packet's
    /// length prefix, used in errors.
    pub fn decode(body: &'a [u8], offset: u64) -> Result<Self, SoupError> {
        let (&packet_type, payload) = body.split_first().ok_or(SoupError::EmptyPacket { offset })?;
        let packet = match packet_type {
            b'+' => ClientPacket::Debug(payload),
            b'U' => ClientPacket::UnsequencedData(payload),
            b'L' => {
                let fields = fixed::<LOGIN_REQUEST_PAYLOAD>(body, offset)?;
                let (username, rest) = fields.split_at(6);
                let (password, rest) = rest.split_at(10);
                let (session, sequence) = rest.split_at(10);
                ClientPacket::LoginRequest(LoginRequest {
                    username: array(username),
                    password: array(password),
                    session: array(session),
                    sequence: parse_number(sequence, offset, packet_type, "requested sequence number")?,
                })
            }
            b'R' => {
                fixed::<0>(body, offset)?;
                ClientPacket::Heartbeat
            }
            b'O' => {
                fixed::<0>(body, offset)?;
                ClientPacket::LogoutRequest
            }
            _ => return Err(SoupError::UnknownType { offset, packet_type }),
        };
        Ok(packet)
    }

    /// Appends the packet, length prefix included, to `out`. Fails only for a payload longer
    /// than [`MAX_PAYLOAD`].
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), SoupError> {
        match self {
            ClientPacket::Debug(text) => put_packet(out, b'+', &[text]),
            ClientPacket::UnsequencedData(message) => put_packet(out, b'U', &[message]),
            ClientPacket::LoginRequest(login) => put_packet(
                out,
                b'L',
                &[&login.username, &login.password, &login.session, &format_number(login.sequence)],
            ),
            ClientPacket::Heartbeat => put_packet(out, b'R', &[]),
            ClientPacket::LogoutRequest => put_packet(out, b'O', &[]),
        }
    }
}

/// Returns `field` without leading and trailing spaces.
pub fn trim(field: &[u8]) -> &[u8] {
    let start = field.iter().position(|&b| b != b' ').unwrap_or(field.len());
    let end = field.iter().rposition(|&b| b != b' ').map_or(start, |i| i + 1);
    field.get(start..end).unwrap_or(&[])
}

/// Streaming decoder that takes bytes as they arrive from a TCP stream and yields whole packet
/// bodies. The buffer is allocated once. Consumed space is reclaimed by moving the unread tail
/// to the front, so a packet never wraps and is always one contiguous slice.
pub struct FrameReader {
    buf: Box<[u8]>,
    /// Start of the first unread byte.
    start: usize,
    /// End of the bytes read so far.
    end: usize,
    /// Stream offset of `buf[start]`.
    offset: u64,
}

impl Default for FrameReader {
    fn default() -> Self {
        Self::with_capacity(2 * MAX_FRAME)
    }
}

impl FrameReader {
    /// Creates a reader with the default buffer of two maximum-size packets (128 KiB).
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates a reader with a buffer of `capacity` bytes, raised to [`MAX_FRAME`] so that any
    /// legal packet fits.
    pub fn with_capacity(capacity: usize) -> Self {
        FrameReader {
            buf: vec![0; capacity.max(MAX_FRAME)].into_boxed_slice(),
            start: 0,
            end: 0,
            offset: 0,
        }
    }

    /// Reads once from `source` into the free space, and returns what `read` returned, so
    /// `Ok(0)` means end of stream.
    pub fn read_from(&mut self, source: &mut impl Read) -> io::Result<usize> {
        self.make_room();
        let spare = self.buf.get_mut(self.end..).unwrap_or(&mut []);
        if spare.is_empty() {
            // Only possible when the caller reads again without taking the buffered packets.
            // A read into no space would return 0 and look like the end of the stream.
            return Err(io::Error::other("SoupBinTCP read buffer is full: take buffered packets first"));
        }
        let n = source.read(spare)?;
        self.end = (self.end + n).min(self.buf.len());
        Ok(n)
    }

    /// Copies as much of `bytes` as fits into the free space, and returns how many bytes it took.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        self.make_room();
        let spare = self.buf.get_mut(self.end..).unwrap_or(&mut []);
        let n = spare.len().min(bytes.len());
        if let (Some(dst), Some(src)) = (spare.get_mut(..n), bytes.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.end += n;
        n
    }

    /// Returns the next whole packet as `(stream offset, body)`, or `None` until more bytes
    /// arrive. After an error the stream is out of step, so close the connection and call
    /// [`reset`].
    ///
    /// [`reset`]: FrameReader::reset
    pub fn next_frame(&mut self) -> Result<Option<(u64, &[u8])>, SoupError> {
        let unread = self.buf.get(self.start..self.end).unwrap_or(&[]);
        let Some(&[hi, lo]) = unread.get(..LENGTH_PREFIX) else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        let offset = self.offset;
        if len == 0 {
            return Err(SoupError::EmptyPacket { offset });
        }
        let Some(body) = unread.get(LENGTH_PREFIX..LENGTH_PREFIX + len) else {
            return Ok(None);
        };
        self.start += LENGTH_PREFIX + len;
        self.offset += (LENGTH_PREFIX + len) as u64;
        Ok(Some((offset, body)))
    }

    /// Returns the number of bytes read but not yet returned as packets.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Returns the stream offset of the next unread byte.
    pub fn stream_offset(&self) -> u64 {
        self.offset
    }

    /// Drops buffered bytes and restarts stream offsets at 0, for a new connection.
    pub fn reset(&mut self) {
        self.start = 0;
        self.end = 0;
        self.offset = 0;
    }

    /// Moves the unread bytes to the front when less than one maximum-size packet of space
    /// is left behind them. The buffer has at least [`MAX_FRAME`] bytes, and the unread bytes
    /// are less than a whole packet when the caller has taken every packet before reading. So a
    /// read then always has room.
    fn make_room(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            return;
        }
        if self.buf.len() - self.end >= MAX_FRAME || self.start == 0 {
            return;
        }
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
    }
}

/// Returns the payload of a fixed-size packet, or a length error.
fn fixed<const N: usize>(body: &[u8], offset: u64) -> Result<[u8; N], SoupError> {
    let packet_type = body.first().copied().unwrap_or(0);
    body.get(1..)
        .and_then(|payload| <[u8; N]>::try_from(payload).ok())
        .ok_or(SoupError::WrongLength {
            offset,
            packet_type,
            len: body.len(),
            expected: N + 1,
        })
}

/// Copies a slice whose length the caller has fixed into an array.
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [b' '; N];
    for (dst, src) in out.iter_mut().zip(bytes) {
        *dst = *src;
    }
    out
}

/// Parses a 20-byte numeric field: decimal digits with spaces on either side.
fn parse_number(field: &[u8], offset: u64, packet_type: u8, name: &'static str) -> Result<u64, SoupError> {
    let invalid = || SoupError::InvalidNumber {
        offset,
        packet_type,
        field: name,
        value: array(field),
    };
    let digits = trim(field);
    if digits.is_empty() {
        return Err(invalid());
    }
    let mut value: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return Err(invalid());
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or_else(invalid)?;
    }
    Ok(value)
}

/// Formats a sequence number as a 20-byte right-justified numeric field. `u64::MAX` has 20
/// digits, so every value fits.
fn format_number(mut value: u64) -> [u8; 20] {
    let mut out = [b' '; 20];
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out
}

fn pad_left_justified<const N: usize>(field: &'static str, text: &str) -> Result<[u8; N], SoupError> {
    check_text::<N>(field, text)?;
    Ok(array(text.as_bytes()))
}

fn pad_right_justified<const N: usize>(field: &'static str, text: &str) -> Result<[u8; N], SoupError> {
    check_text::<N>(field, text)?;
    let mut out = [b' '; N];
    let bytes = text.as_bytes();
    if let Some(dst) = out.get_mut(N - bytes.len()..) {
        dst.copy_from_slice(bytes);
    }
    Ok(out)
}

fn check_text<const N: usize>(field: &'static str, text: &str) -> Result<(), SoupError> {
    if text.len() > N || !text.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Err(SoupError::InvalidField {
            field,
            value: text.to_owned(),
            max: N,
        });
    }
    Ok(())
}

/// Appends a length prefix, a type byte and the concatenated `parts`.
fn put_packet(out: &mut Vec<u8>, packet_type: u8, parts: &[&[u8]]) -> Result<(), SoupError> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len > MAX_PAYLOAD {
        return Err(SoupError::PayloadTooLong { len });
    }
    // `len + 1` <= u16::MAX by the check above.
    let body_len = (len + 1) as u16;
    out.extend_from_slice(&body_len.to_be_bytes());
    out.push(packet_type);
    for part in parts {
        out.extend_from_slice(part);
    }
    Ok(())
}

/// Returns the session id for `text`, right-justified and space-padded, as Login Accepted and
/// Login Request carry it.
pub fn session_id(text: &str) -> Result<SessionId, SoupError> {
    pad_right_justified("session", text)
}

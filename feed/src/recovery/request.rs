//! MoldUDP64 retransmission requests.
//!
//! A request is a 20-byte packet laid out like a MoldUDP64 header: the session (10 ASCII bytes),
//! the sequence number of the first message wanted (u64, big-endian) and the number of messages
//! wanted (u16, big-endian). The server responds with ordinary MoldUDP64 packets sent back to the
//! requester's address.

use crate::moldudp64::{SessionId, HEADER_LEN};

/// Length of a request packet in bytes.
pub const REQUEST_LEN: usize = HEADER_LEN;

/// One retransmission request: `count` messages from `sequence` of `session`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub session: SessionId,
    pub sequence: u64,
    pub count: u16,
}

/// Reason bytes are not a valid request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("retransmission request of {len} bytes; a request is {REQUEST_LEN} bytes")]
    Length { len: usize },
    #[error("retransmission request for sequence 0 or a count of 0 or 0xFFFF (sequence {sequence}, count {count})")]
    Range { sequence: u64, count: u16 },
}

impl Request {
    /// Returns the request's wire form.
    pub fn encode(&self) -> [u8; REQUEST_LEN] {
        let mut out = [0u8; REQUEST_LEN];
        out[..10].copy_from_slice(&self.session);
        out[10..18].copy_from_slice(&self.sequence.to_be_bytes());
        out[18..20].copy_from_slice(&self.count.to_be_bytes());
        out
    }

    /// Parses a request. Anything but exactly [`REQUEST_LEN`] bytes, a sequence number of 0, or a
    /// count of 0 (heartbeat) or 0xFFFF (end of session) is refused.
    pub fn decode(bytes: &[u8]) -> Result<Request, RequestError> {
        let Some(fixed) = <&[u8; REQUEST_LEN]>::try_from(bytes).ok() else {
            return Err(RequestError::Length { len: bytes.len() });
        };
        let (session, rest) = fixed.split_at(10);
        let (sequence, count) = rest.split_at(8);
        let mut id = [0u8; 10];
        id.copy_from_slice(session);
        let mut seq = [0u8; 8];
        seq.copy_from_slice(sequence);
        let request = Request {
            session: id,
            sequence: u64::from_be_bytes(seq),
            count: u16::from_be_bytes([count[0], count[1]]),
        };
        if request.sequence == 0 || request.count == 0 || request.count == u16::MAX {
            return Err(RequestError::Range { sequence: request.sequence, count: request.count });
        }
        Ok(request)
    }

    /// Returns the sequence number after the last message requested.
    pub fn end(&self) -> u64 {
        self.sequence.saturating_add(u64::from(self.count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let request = Request { session: *b"SIM0000001", sequence: 0x0102_0304_0506_0708, count: 0x0A0B };
        let bytes = request.encode();
        assert_eq!(&bytes[..10], b"SIM0000001");
        assert_eq!(&bytes[10..18], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&bytes[18..], &[0x0A, 0x0B]);
        assert_eq!(Request::decode(&bytes), Ok(request));
        assert_eq!(request.end(), 0x0102_0304_0506_0708 + 0x0A0B);
    }

    #[test]
    fn refuses_wrong_length_and_empty_ranges() {
        let request = Request { session: *b"SIM0000001", sequence: 5, count: 3 };
        let bytes = request.encode();
        assert_eq!(Request::decode(&bytes[..19]), Err(RequestError::Length { len: 19 }));
        let mut long = bytes.to_vec();
        long.push(0);
        assert_eq!(Request::decode(&long), Err(RequestError::Length { len: 21 }));
        let zero_count = Request { count: 0, ..request }.encode();
        assert_eq!(Request::decode(&zero_count), Err(RequestError::Range { sequence: 5, count: 0 }));
        let end = Request { count: u16::MAX, ..request }.encode();
        assert!(Request::decode(&end).is_err());
        let zero_seq = Request { sequence: 0, ..request }.encode();
        assert!(Request::decode(&zero_seq).is_err());
    }
}

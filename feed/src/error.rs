//! Errors of the feed crate. Every variant names the byte offset it was found at, so a bad frame
//! in a file or a packet can be found with a hex dump.

/// Why a frame or message could not be decoded. Offsets count from the start of the buffer the
/// caller passed (a packet, a file), after [`DecodeError::at`] has added the caller's position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("empty ITCH message at byte offset {offset}")]
    EmptyMessage { offset: usize },

    #[error("unknown ITCH message type 0x{msg_type:02x} at byte offset {offset}")]
    UnknownType { offset: usize, msg_type: u8 },

    #[error("ITCH message type '{}' at byte offset {offset} is {len} bytes, expected {expected}", *msg_type as char)]
    Truncated { offset: usize, msg_type: u8, len: usize, expected: usize },

    #[error("ITCH message type '{}' at byte offset {offset}: invalid {field} 0x{value:x}", *msg_type as char)]
    InvalidField { offset: usize, msg_type: u8, field: &'static str, value: u64 },

    #[error("MoldUDP64 packet at byte offset {offset} is {len} bytes, shorter than the 20-byte header")]
    ShortPacket { offset: usize, len: usize },

    #[error("MoldUDP64 message block {index} at byte offset {offset}: length {len} runs past the end of the packet ({remaining} bytes left)")]
    BlockPastEnd { offset: usize, index: u16, len: usize, remaining: usize },

    #[error("MoldUDP64 {what} packet has {len} unexpected bytes after its header, at byte offset {offset}")]
    /// A heartbeat or end-of-session packet followed by bytes, which MoldUDP64 never sends.
    BytesAfterHeader { offset: usize, what: &'static str, len: usize },

    #[error("BinaryFILE message at byte offset {offset}: length {len} runs past the end of the file ({remaining} bytes left)")]
    FilePastEnd { offset: usize, len: usize, remaining: usize },
}

impl DecodeError {
    /// Returns the error with `base` added to its offset, for a caller that decoded a slice which
    /// starts at `base` in a larger buffer.
    pub fn at(mut self, base: usize) -> DecodeError {
        match &mut self {
            DecodeError::EmptyMessage { offset }
            | DecodeError::UnknownType { offset, .. }
            | DecodeError::Truncated { offset, .. }
            | DecodeError::InvalidField { offset, .. }
            | DecodeError::ShortPacket { offset, .. }
            | DecodeError::BlockPastEnd { offset, .. }
            | DecodeError::BytesAfterHeader { offset, .. }
            | DecodeError::FilePastEnd { offset, .. } => *offset += base,
        }
        self
    }

    /// Returns the byte offset the error was found at.
    pub fn offset(&self) -> usize {
        match self {
            DecodeError::EmptyMessage { offset }
            | DecodeError::UnknownType { offset, .. }
            | DecodeError::Truncated { offset, .. }
            | DecodeError::InvalidField { offset, .. }
            | DecodeError::ShortPacket { offset, .. }
            | DecodeError::BlockPastEnd { offset, .. }
            | DecodeError::BytesAfterHeader { offset, .. }
            | DecodeError::FilePastEnd { offset, .. } => *offset,
        }
    }
}

//! Errors of the publisher crate: malformed frames, and sequence problems a client detects.

use crate::protocol::{ErrorCode, LENGTH_PREFIX_LEN};

/// Error of a malformed frame, or a sequence problem a client detected. Offsets count from the start of
/// the buffer passed to the decoder, after [`ProtocolError::at`] has added the caller's position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    #[error("frame at byte offset {offset} has length {len}, above the maximum {max}; the stream cannot be resynchronized")]
    FrameTooLong { offset: usize, len: u32, max: u32 },

    #[error("frame at byte offset {offset} has length 0, so it has no type byte")]
    EmptyFrame { offset: usize },

    #[error("frame at byte offset {offset} has unknown type 0x{frame_type:02x}")]
    UnknownType { offset: usize, frame_type: u8, len: u32 },

    #[error("frame type '{}' at byte offset {offset} has length {len}, expected {expected}", *frame_type as char)]
    BadLength { offset: usize, frame_type: u8, len: u32, expected: &'static str },

    #[error("frame type '{}' at byte offset {offset}: invalid {field} 0x{value:x}", *frame_type as char)]
    InvalidField { offset: usize, frame_type: u8, len: u32, field: &'static str, value: u64 },

    #[error("frame type '{}' at byte offset {offset}: text is not valid UTF-8", *frame_type as char)]
    InvalidText { offset: usize, frame_type: u8, len: u32 },

    #[error("sequence gap: expected data frame {expected}, received {received}")]
    SequenceGap { expected: u64, received: u64 },

    #[error("data frame {seq} updates locate {locate}, which has no snapshot")]
    UpdateBeforeSnapshot { locate: u16, seq: u64 },

    #[error("digest mismatch in data frame {seq} for locate {locate} at depth {depth}: server 0x{expected:08x}, client book 0x{computed:08x}; request a resnapshot")]
    DigestMismatch { locate: u16, seq: u64, depth: u16, expected: u32, computed: u32 },
}

impl ProtocolError {
    /// Returns the error with `base` added to its offset, for a caller that decoded a slice which
    /// starts at `base` in a larger buffer.
    pub fn at(mut self, base: usize) -> ProtocolError {
        match &mut self {
            ProtocolError::FrameTooLong { offset, .. }
            | ProtocolError::EmptyFrame { offset }
            | ProtocolError::UnknownType { offset, .. }
            | ProtocolError::BadLength { offset, .. }
            | ProtocolError::InvalidField { offset, .. }
            | ProtocolError::InvalidText { offset, .. } => *offset += base,
            ProtocolError::SequenceGap { .. }
            | ProtocolError::UpdateBeforeSnapshot { .. }
            | ProtocolError::DigestMismatch { .. } => {}
        }
        self
    }

    /// Returns how many bytes to discard to reach the next frame, or `None` when the length field
    /// cannot be trusted (too long) or the error is not about one frame.
    pub fn skip_len(&self) -> Option<usize> {
        match *self {
            ProtocolError::EmptyFrame { .. } => Some(LENGTH_PREFIX_LEN),
            ProtocolError::UnknownType { len, .. }
            | ProtocolError::BadLength { len, .. }
            | ProtocolError::InvalidField { len, .. }
            | ProtocolError::InvalidText { len, .. } => Some(LENGTH_PREFIX_LEN + len as usize),
            ProtocolError::FrameTooLong { .. }
            | ProtocolError::SequenceGap { .. }
            | ProtocolError::UpdateBeforeSnapshot { .. }
            | ProtocolError::DigestMismatch { .. } => None,
        }
    }

    /// Returns the code the server puts in the Error frame it sends back for this error.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            ProtocolError::UnknownType { .. } => ErrorCode::UnknownType,
            ProtocolError::FrameTooLong { .. }
            | ProtocolError::EmptyFrame { .. }
            | ProtocolError::BadLength { .. } => ErrorCode::BadLength,
            ProtocolError::InvalidField { .. }
            | ProtocolError::InvalidText { .. }
            | ProtocolError::SequenceGap { .. }
            | ProtocolError::UpdateBeforeSnapshot { .. }
            | ProtocolError::DigestMismatch { .. } => ErrorCode::InvalidField,
        }
    }
}

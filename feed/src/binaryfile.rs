//! NASDAQ BinaryFILE: the format of NASDAQ's end-of-day ITCH files. Each message is preceded by
//! its length as a big-endian u16, and nothing else separates or follows the messages.

use crate::error::DecodeError;
use crate::itch::Message;

/// Length of the big-endian u16 length prefix before each message.
pub const PREFIX_LEN: usize = 2;

/// Iterator over the messages of a BinaryFILE held in memory. Each item is the byte offset of
/// the message's length prefix and the message bytes, without the prefix.
///
/// A zero length yields [`DecodeError::EmptyMessage`] at the prefix's offset, and reading goes
/// on after it. A length that runs past the end of the buffer yields [`DecodeError::FilePastEnd`]
/// and ends the iteration. The same happens to a single byte left over at the end, reported with
/// `len` 2, the size of the prefix it should have started.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0, done: false }
    }

    /// Returns the byte offset of the next length prefix.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<(usize, &'a [u8]), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let offset = self.pos;
        let rest = self.buf.get(offset..).unwrap_or_default();
        if rest.is_empty() {
            self.done = true;
            return None;
        }

        let Some((prefix, after_prefix)) = rest.split_first_chunk::<PREFIX_LEN>() else {
            self.done = true;
            return Some(Err(DecodeError::FilePastEnd {
                offset,
                len: PREFIX_LEN,
                remaining: rest.len(),
            }));
        };
        let len = usize::from(u16::from_be_bytes(*prefix));
        let Some(message) = after_prefix.get(..len) else {
            self.done = true;
            return Some(Err(DecodeError::FilePastEnd {
                offset,
                len,
                remaining: after_prefix.len(),
            }));
        };

        self.pos = offset + PREFIX_LEN + len;
        if message.is_empty() {
            return Some(Err(DecodeError::EmptyMessage { offset }));
        }
        Some(Ok((offset, message)))
    }
}

/// Appends `msg` to `out` in BinaryFILE form: its encoded length as a big-endian u16, then the
/// encoded message.
pub fn write_message(out: &mut Vec<u8>, msg: &Message) {
    // ITCH 5.0 messages are at most 50 bytes, so the length always fits a u16.
    let len = u16::try_from(msg.encoded_len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    msg.encode(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_trailing_byte_is_past_end() {
        let buf = [0, 1, b'S', 7];
        let mut reader = Reader::new(&buf);
        assert_eq!(reader.next(), Some(Ok((0, &b"S"[..]))));
        assert_eq!(reader.next(), Some(Err(DecodeError::FilePastEnd { offset: 3, len: 2, remaining: 1 })));
        assert_eq!(reader.next(), None);
    }

    #[test]
    fn empty_buffer_yields_nothing() {
        assert_eq!(Reader::new(&[]).next(), None);
    }
}

//! The bounded outbound byte queue of one connection.
//!
//! Frames are appended whole and written out by non-blocking writes that may stop anywhere. The
//! queue tracks where the partly written frame ends, so that it can count frames sent and, on a
//! slow-consumer disconnect, drop every frame not yet started while keeping the byte stream framed.

use crate::protocol::{is_data_frame, LENGTH_PREFIX_LEN, SEQ_RANGE};

#[derive(Debug)]
pub(crate) struct OutQueue {
    buf: Vec<u8>,
    /// Offset in `buf` of the first byte not yet written to the socket.
    sent: usize,
    /// Offset in `buf` of the frame that contains `sent`; equal to `sent` at a frame boundary.
    frame_start: usize,
    /// Maximum unsent bytes.
    limit: usize,
    /// Sequence number of the last data frame whose first byte was written; 0 before the first.
    started_seq: u64,
}

impl OutQueue {
    pub fn new(limit: usize) -> OutQueue {
        OutQueue { buf: Vec::new(), sent: 0, frame_start: 0, limit, started_seq: 0 }
    }

    /// Returns the bytes not yet written.
    pub fn unsent(&self) -> &[u8] {
        self.buf.get(self.sent..).unwrap_or(&[])
    }

    pub fn unsent_len(&self) -> usize {
        self.buf.len() - self.sent
    }

    pub fn is_empty(&self) -> bool {
        self.sent == self.buf.len()
    }

    /// Appends `frame` if the unsent bytes stay within the limit, or if the queue is empty (so a
    /// snapshot larger than the limit can still go out alone). Returns whether it was appended.
    pub fn push(&mut self, frame: &[u8]) -> bool {
        if !self.is_empty() && self.unsent_len() + frame.len() > self.limit {
            return false;
        }
        self.append(frame);
        true
    }

    /// Appends a data frame like [`OutQueue::push`] and writes `seq` into its sequence field.
    pub fn push_data(&mut self, frame: &[u8], seq: u64) -> bool {
        if !self.push(frame) {
            return false;
        }
        // Compute the position after the push, which may have moved the queue's contents.
        let at = self.buf.len() - frame.len();
        let range = at + SEQ_RANGE.start..at + SEQ_RANGE.end;
        if let Some(field) = self.buf.get_mut(range) {
            field.copy_from_slice(&seq.to_le_bytes());
        }
        true
    }

    /// Appends `frame` whatever the limit; used for the Goodbye that ends a connection.
    pub fn force_push(&mut self, frame: &[u8]) {
        self.append(frame);
    }

    /// Returns the sequence number of the last data frame whose first byte was written, which is
    /// the last one the peer receives after [`OutQueue::drop_unstarted`]; 0 before the first.
    pub fn started_seq(&self) -> u64 {
        self.started_seq
    }

    /// Drops every frame whose first byte has not been written, keeping the rest of the frame
    /// being written so that the peer still receives whole frames. Returns the number of data
    /// frames dropped.
    pub fn drop_unstarted(&mut self) -> u64 {
        let keep = if self.frame_start == self.sent {
            self.sent
        } else {
            self.frame_end(self.frame_start).unwrap_or(self.buf.len())
        };
        let mut dropped = 0;
        let mut at = keep;
        while let Some(end) = self.frame_end(at) {
            if self.buf.get(at + LENGTH_PREFIX_LEN).is_some_and(|&t| is_data_frame(t)) {
                dropped += 1;
            }
            at = end;
        }
        self.buf.truncate(keep);
        dropped
    }

    /// Records that the first `written` unsent bytes reached the socket. Returns the number of
    /// frames that are now completely written.
    pub fn consume(&mut self, written: usize) -> u64 {
        self.sent = (self.sent + written).min(self.buf.len());
        let mut completed = 0;
        while self.frame_start < self.sent {
            self.note_started(self.frame_start);
            let Some(end) = self.frame_end(self.frame_start) else {
                break;
            };
            if end > self.sent {
                break;
            }
            completed += 1;
            self.frame_start = end;
        }
        if self.is_empty() {
            self.buf.clear();
            self.sent = 0;
            self.frame_start = 0;
        }
        completed
    }

    fn append(&mut self, frame: &[u8]) {
        // Move the unsent bytes to the front instead of growing, once a prefix has been written.
        if self.frame_start > 0 && self.buf.len() + frame.len() > self.buf.capacity() {
            self.buf.copy_within(self.frame_start.., 0);
            self.buf.truncate(self.buf.len() - self.frame_start);
            self.sent -= self.frame_start;
            self.frame_start = 0;
        }
        self.buf.extend_from_slice(frame);
    }

    /// Records the sequence number of the frame at `start` if it is a data frame.
    fn note_started(&mut self, start: usize) {
        if !self.buf.get(start + LENGTH_PREFIX_LEN).is_some_and(|&t| is_data_frame(t)) {
            return;
        }
        let field = self.buf.get(start + SEQ_RANGE.start..start + SEQ_RANGE.end);
        if let Some(seq) = field.and_then(|b| b.try_into().ok()).map(u64::from_le_bytes) {
            self.started_seq = seq;
        }
    }

    /// Returns the end of the frame that starts at `start`, or `None` past the last frame.
    fn frame_end(&self, start: usize) -> Option<usize> {
        let prefix = self.buf.get(start..start + LENGTH_PREFIX_LEN)?;
        let len = u32::from_le_bytes(prefix.try_into().ok()?);
        Some(start + LENGTH_PREFIX_LEN + len as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{encode_heartbeat, encode_reset};

    fn reset_frame() -> Vec<u8> {
        let mut frame = Vec::new();
        encode_reset(&mut frame, 0, 0);
        frame
    }

    #[test]
    fn push_respects_limit() {
        let frame = reset_frame();
        let mut queue = OutQueue::new(frame.len() * 2);
        assert!(queue.push(&frame));
        assert!(queue.push(&frame));
        assert!(!queue.push(&frame));
        assert_eq!(queue.unsent_len(), frame.len() * 2);
    }

    #[test]
    fn empty_queue_takes_oversized_frame() {
        let frame = reset_frame();
        let mut queue = OutQueue::new(4);
        assert!(queue.push(&frame));
        assert!(!queue.push(&frame));
    }

    #[test]
    fn push_data_writes_sequence() {
        let mut queue = OutQueue::new(1024);
        assert!(queue.push_data(&reset_frame(), 0x0102_0304_0506_0708));
        assert_eq!(queue.unsent().get(SEQ_RANGE), Some(&0x0102_0304_0506_0708u64.to_le_bytes()[..]));
    }

    #[test]
    fn consume_counts_whole_frames() {
        let frame = reset_frame();
        let mut queue = OutQueue::new(1024);
        queue.push(&frame);
        queue.push(&frame);
        assert_eq!(queue.consume(frame.len() - 1), 0);
        assert_eq!(queue.consume(1), 1);
        assert_eq!(queue.consume(frame.len()), 1);
        assert!(queue.is_empty());
    }

    #[test]
    fn drop_unstarted_keeps_partial_frame() {
        let frame = reset_frame();
        let mut queue = OutQueue::new(1024);
        for _ in 0..3 {
            queue.push(&frame);
        }
        queue.consume(3);
        assert_eq!(queue.drop_unstarted(), 2);
        assert_eq!(queue.unsent_len(), frame.len() - 3);

        let mut goodbye = Vec::new();
        encode_heartbeat(&mut goodbye, 1, 2);
        queue.force_push(&goodbye);
        assert_eq!(queue.consume(queue.unsent_len()), 2);
    }

    #[test]
    fn started_seq_follows_first_byte() {
        let frame = reset_frame();
        let mut queue = OutQueue::new(1024);
        assert!(queue.push_data(&frame, 7));
        assert!(queue.push_data(&frame, 8));
        assert_eq!(queue.started_seq(), 0);
        queue.consume(1);
        assert_eq!(queue.started_seq(), 7);
        queue.consume(frame.len());
        assert_eq!(queue.started_seq(), 8);
    }

    #[test]
    fn drop_unstarted_at_boundary_drops_all() {
        let frame = reset_frame();
        let mut queue = OutQueue::new(1024);
        queue.push(&frame);
        queue.push(&frame);
        queue.consume(frame.len());
        queue.drop_unstarted();
        assert!(queue.is_empty());
    }

    #[test]
    fn compaction_keeps_bytes_in_order() {
        let mut queue = OutQueue::new(1 << 20);
        let mut expected = Vec::new();
        let mut written = Vec::new();
        for seq in 1..=200u64 {
            let frame = reset_frame();
            assert!(queue.push_data(&frame, seq));
            let mut with_seq = frame.clone();
            with_seq[SEQ_RANGE].copy_from_slice(&seq.to_le_bytes());
            expected.extend_from_slice(&with_seq);

            // Write an odd number of bytes each round, so writes stop inside frames.
            let take = queue.unsent_len().min(13);
            written.extend_from_slice(&queue.unsent()[..take]);
            queue.consume(take);
        }
        written.extend_from_slice(queue.unsent());
        assert_eq!(written, expected);
    }
}

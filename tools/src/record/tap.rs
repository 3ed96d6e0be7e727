//! The receive-side half of the recorder: [`RecordTap`] copies each datagram into a preallocated
//! buffer and hands it to the writer thread through a bounded ring.
//!
//! Two SPSC rings of the same capacity connect the tap and the writer. `filled` carries
//! [`Capture`]s from the tap to the writer; `free` carries their buffers back. There are exactly
//! as many buffers as ring slots, all allocated up front, so the tap never allocates. It takes a
//! buffer from `free`. When none is free because the writer is behind, it counts the datagram as
//! dropped and returns.

use std::net::SocketAddrV4;
use std::sync::Arc;

use crate::pipeline::ring::{ring, Consumer, Producer};

use super::RecordCounters;

/// One received datagram on its way to the writer thread.
pub(super) struct Capture {
    /// A buffer of the pool; the first `stored` bytes are the start of the datagram.
    pub buffer: Box<[u8]>,
    /// Bytes of the datagram copied into `buffer`: all of it unless it was longer than the buffer.
    pub stored: usize,
    /// Length of the received datagram in bytes.
    pub datagram_len: usize,
    /// Receive time, in nanoseconds since the Unix epoch.
    pub wall_ns: u64,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
}

impl Capture {
    /// Returns the stored bytes of the datagram.
    pub fn stored_bytes(&self) -> &[u8] {
        self.buffer.get(..self.stored).unwrap_or(&self.buffer)
    }
}

/// The handle the receive thread records through. It is `Send`, so it can move to the thread
/// that owns the socket, and it is not `Clone`: one thread offers datagrams.
pub struct RecordTap {
    filled: Producer<Capture>,
    free: Consumer<Box<[u8]>>,
    counters: Arc<RecordCounters>,
}

/// The writer-thread half of the two rings.
pub(super) struct CaptureQueue {
    filled: Consumer<Capture>,
    free: Producer<Box<[u8]>>,
}

/// Creates the two rings with room for at least `slots` datagrams (rounded up to a power of two),
/// each buffer `buffer_bytes` long, and returns their two ends.
pub(super) fn channel(slots: usize, buffer_bytes: usize, counters: Arc<RecordCounters>) -> (RecordTap, CaptureQueue) {
    let (filled_producer, filled_consumer) = ring(slots);
    let (mut free_producer, free_consumer) = ring(slots);
    for _ in 0..filled_producer.capacity() {
        // A nonzero fill makes the allocator write every page now, so the tap's first copy into a
        // buffer takes no page fault.
        let buffer = vec![0xa5u8; buffer_bytes].into_boxed_slice();
        if free_producer.push(buffer).is_err() {
            // Unreachable: both rings have the same capacity, and this loop fills `free` once.
            break;
        }
    }
    let tap = RecordTap {
        filled: filled_producer,
        free: free_consumer,
        counters,
    };
    let queue = CaptureQueue {
        filled: filled_consumer,
        free: free_producer,
    };
    (tap, queue)
}

impl RecordTap {
    /// Copies `datagram`, received from `src` on `dst` at `wall_ns` (nanoseconds since the Unix
    /// epoch), into a free slot for the writer thread. Never blocks, allocates, locks or logs.
    /// When every slot is in use the datagram is not recorded, and the `dropped` counter grows.
    /// A datagram longer than a slot (the snaplen less the synthesized headers) is recorded
    /// truncated, with its full length.
    #[inline]
    pub fn offer(&mut self, datagram: &[u8], wall_ns: u64, src: SocketAddrV4, dst: SocketAddrV4) {
        let Some(mut buffer) = self.free.pop() else {
            self.counters.dropped.incr();
            return;
        };
        let stored = datagram.len().min(buffer.len());
        if let (Some(to), Some(from)) = (buffer.get_mut(..stored), datagram.get(..stored)) {
            to.copy_from_slice(from);
        }
        let capture = Capture {
            buffer,
            stored,
            datagram_len: datagram.len(),
            wall_ns,
            src,
            dst,
        };
        if self.filled.push(capture).is_err() {
            // Unreachable: a buffer was free, so `filled` has a free slot too. Counted anyway,
            // because the datagram is not recorded.
            self.counters.dropped.incr();
        }
    }

    /// Returns the number of datagrams the ring can hold.
    pub fn capacity(&self) -> usize {
        self.filled.capacity()
    }
}

impl CaptureQueue {
    /// Removes the oldest capture, or returns `None` when the tap has offered nothing new.
    pub fn pop(&mut self) -> Option<Capture> {
        self.filled.pop()
    }

    /// Returns a capture's buffer to the tap.
    pub fn recycle(&mut self, buffer: Box<[u8]>) {
        // Cannot fail: there are as many buffers as slots in `free`.
        let _ = self.free.push(buffer);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const SRC: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40_000);
    const DST: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 26_400);

    #[test]
    fn full_ring_counts_drops_without_blocking() {
        let counters = Arc::new(RecordCounters::default());
        let (mut tap, mut queue) = channel(4, 64, counters.clone());
        assert_eq!(tap.capacity(), 4);

        // No thread drains the queue: the first four fit, the other six are dropped, and every
        // call returns (a blocking tap would hang this test).
        for i in 0..10u8 {
            tap.offer(&[i; 10], u64::from(i), SRC, DST);
        }
        assert_eq!(counters.dropped.get(), 6);

        for i in 0..4u8 {
            let capture = queue.pop().unwrap();
            assert_eq!(capture.stored_bytes(), &[i; 10]);
            assert_eq!(capture.wall_ns, u64::from(i));
            queue.recycle(capture.buffer);
        }
        assert!(queue.pop().is_none(), "a dropped datagram reached the writer");

        // Recycled buffers make room again.
        tap.offer(b"after", 99, SRC, DST);
        assert_eq!(counters.dropped.get(), 6);
        let capture = queue.pop().unwrap();
        assert_eq!(capture.stored_bytes(), b"after");
        assert_eq!((capture.src, capture.dst), (SRC, DST));
    }

    #[test]
    fn long_datagram_is_truncated_to_buffer() {
        let counters = Arc::new(RecordCounters::default());
        let (mut tap, mut queue) = channel(2, 8, counters.clone());
        let datagram: Vec<u8> = (0..20).collect();
        tap.offer(&datagram, 1, SRC, DST);
        let capture = queue.pop().unwrap();
        assert_eq!(capture.stored_bytes(), &datagram[..8]);
        assert_eq!(capture.datagram_len, 20);
        assert_eq!(counters.dropped.get(), 0);
    }
}

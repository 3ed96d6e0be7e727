//! The bounded ring between two stages. It is crossbeam's `ArrayQueue`: the ring benchmark
//! (`cargo bench -p mdfh-benches --bench ring`) compares it with crossbeam's bounded channel in
//! the same run, and BENCHMARKS.md records the figures. A failed push hands the item back so the
//! producer decides what to do (the stages wait and count the wait).

use crossbeam_queue::ArrayQueue;

/// A bounded lock-free queue used with one producer and one consumer.
pub struct Ring<T> {
    queue: ArrayQueue<T>,
}

impl<T> Ring<T> {
    /// Creates a ring with room for `capacity` items (at least 1).
    pub fn new(capacity: usize) -> Ring<T> {
        Ring {
            queue: ArrayQueue::new(capacity.max(1)),
        }
    }

    /// Appends `item`, or returns it when the ring is full.
    #[inline]
    pub fn push(&self, item: T) -> Result<(), T> {
        self.queue.push(item)
    }

    /// Removes the oldest item.
    #[inline]
    pub fn pop(&self) -> Option<T> {
        self.queue.pop()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }
}

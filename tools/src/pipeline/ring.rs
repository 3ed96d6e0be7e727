//! The bounded single-producer single-consumer ring between two stages.
//!
//! [`ring`] returns a [`Producer`] and a [`Consumer`]. Neither can be cloned, so exactly one
//! thread pushes and one pops, which is what lets both sides work with plain loads and stores:
//!
//! - `tail` (written by the producer only) is the number of items ever pushed; `head` (written by
//!   the consumer only) is the number ever popped. Slot `i & mask` contains item `i`. Both counters
//!   grow without wrapping in practice (2^64 items).
//! - The producer writes the slot, then publishes it with a `Release` store of `tail`; the
//!   consumer's `Acquire` load of `tail` makes the slot's contents visible before it reads them.
//!   The same pairing on `head` tells the producer a slot is free again.
//! - Each side keeps a cached copy of the other side's counter and rereads the shared one only
//!   when the cache says the ring is full (producer) or empty (consumer), so in steady state a
//!   push or pop touches no cache line the other side writes.
//! - `head` and `tail` sit on separate cache lines (`CachePadded`) so the two threads do not
//!   invalidate each other's line on every operation.
//!
//! A failed push hands the item back, so the producer chooses what to do (the stages wait and
//! count the wait). The ring benchmark (`cargo bench -p mdfh-benches --bench ring`) compares this
//! ring with crossbeam's `ArrayQueue` and bounded channel in the same run; BENCHMARKS.md has the
//! figures.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_utils::CachePadded;

struct Shared<T> {
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    mask: usize,
    /// Items popped so far; written by the consumer only.
    head: CachePadded<AtomicUsize>,
    /// Items pushed so far; written by the producer only.
    tail: CachePadded<AtomicUsize>,
}

// SAFETY: the slots are accessed by at most one producer and one consumer (the handles are not
// Clone), and the head/tail protocol above gives each slot to exactly one of them at a time, so
// sharing `Shared` between the two threads only needs the items themselves to be `Send`.
unsafe impl<T: Send> Sync for Shared<T> {}
// SAFETY: as above; `Shared` owns its items and hands them between threads.
unsafe impl<T: Send> Send for Shared<T> {}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        let head = *self.head.get_mut();
        let tail = *self.tail.get_mut();
        for i in head..tail {
            // SAFETY: slots `head..tail` were written by pushes and not yet read by pops, and
            // `&mut self` means no handle can touch them any more.
            unsafe { (*self.slots[i & self.mask].get()).assume_init_drop() };
        }
    }
}

/// The pushing end of a ring.
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
    tail: usize,
    cached_head: usize,
}

/// The popping end of a ring.
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    head: usize,
    cached_tail: usize,
}

/// Creates a ring with room for `capacity` items, rounded up to a power of two (at least 2).
pub fn ring<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let capacity = capacity.max(2).next_power_of_two();
    let slots = (0..capacity).map(|_| UnsafeCell::new(MaybeUninit::uninit())).collect();
    let shared = Arc::new(Shared {
        slots,
        mask: capacity - 1,
        head: CachePadded::new(AtomicUsize::new(0)),
        tail: CachePadded::new(AtomicUsize::new(0)),
    });
    let producer = Producer {
        shared: shared.clone(),
        tail: 0,
        cached_head: 0,
    };
    let consumer = Consumer {
        shared,
        head: 0,
        cached_tail: 0,
    };
    (producer, consumer)
}

impl<T> Producer<T> {
    /// Appends `item`, or returns it when the ring is full.
    #[inline]
    pub fn push(&mut self, item: T) -> Result<(), T> {
        let capacity = self.shared.mask + 1;
        if self.tail - self.cached_head == capacity {
            self.cached_head = self.shared.head.load(Ordering::Acquire);
            if self.tail - self.cached_head == capacity {
                return Err(item);
            }
        }

        let slot = &self.shared.slots[self.tail & self.shared.mask];
        // SAFETY: `tail - head < capacity`, so slot `tail & mask` is not among the slots the
        // consumer may read (`head..tail`), and only this producer writes slots.
        unsafe { (*slot.get()).write(item) };

        self.tail += 1;
        self.shared.tail.store(self.tail, Ordering::Release);
        Ok(())
    }

    /// Returns the ring's capacity.
    pub fn capacity(&self) -> usize {
        self.shared.mask + 1
    }
}

impl<T> Consumer<T> {
    /// Removes the oldest item, or returns `None` when the ring is empty.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        if self.head == self.cached_tail {
            self.cached_tail = self.shared.tail.load(Ordering::Acquire);
            if self.head == self.cached_tail {
                return None;
            }
        }

        let slot = &self.shared.slots[self.head & self.shared.mask];
        // SAFETY: `head < tail` as loaded with Acquire, so the producer's write of this slot
        // happened before, and the producer will not write it again until `head` moves past it.
        let item = unsafe { (*slot.get()).assume_init_read() };

        self.head += 1;
        self.shared.head.store(self.head, Ordering::Release);
        Some(item)
    }

    /// Returns true when no item is waiting.
    pub fn is_empty(&self) -> bool {
        self.head == self.shared.tail.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_rounds_to_power_of_two() {
        assert_eq!(ring::<u8>(0).0.capacity(), 2);
        assert_eq!(ring::<u8>(3).0.capacity(), 4);
        assert_eq!(ring::<u8>(1024).0.capacity(), 1024);
    }

    #[test]
    fn full_ring_hands_item_back() {
        let (mut producer, mut consumer) = ring(4);
        for i in 0..4 {
            assert_eq!(producer.push(i), Ok(()));
        }
        assert_eq!(producer.push(99), Err(99));
        assert_eq!(consumer.pop(), Some(0));
        assert_eq!(producer.push(4), Ok(()));
        assert_eq!((1..=4).map(|_| consumer.pop().unwrap()).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
        assert_eq!(consumer.pop(), None);
        assert!(consumer.is_empty());
    }

    #[test]
    fn two_threads_keep_order_and_lose_nothing() {
        const N: u64 = 200_000;
        let (mut producer, mut consumer) = ring::<u64>(64);
        let writer = std::thread::spawn(move || {
            for i in 0..N {
                let mut item = i;
                while let Err(back) = producer.push(item) {
                    item = back;
                    std::hint::spin_loop();
                }
            }
        });
        let mut expected = 0;
        while expected < N {
            if let Some(v) = consumer.pop() {
                assert_eq!(v, expected);
                expected += 1;
            }
        }
        writer.join().unwrap();
        assert_eq!(consumer.pop(), None);
    }

    #[test]
    fn items_left_in_ring_are_dropped() {
        let marker = Arc::new(());
        {
            let (mut producer, mut consumer) = ring(8);
            for _ in 0..5 {
                producer.push(marker.clone()).unwrap();
            }
            drop(consumer.pop());
            assert_eq!(Arc::strong_count(&marker), 5);
        }
        assert_eq!(Arc::strong_count(&marker), 1);
    }
}

//! The publish stage's end of the bridge: a bounded lock-free ring of copied envelopes, and the
//! resynchronisation that replaces the bridge's books after the ring overflowed.
//!
//! Every envelope the ring drops is counted. Once per cycle the publish stage calls
//! [`WsTap::resync`], which, when drops are not yet covered, pushes a copy of the TCP publisher's
//! [`Mirror`] into the same ring. That copy reflects every envelope handed to the tap before it, so
//! the bridge replaces its books with it at that point of the stream. The copy covers the
//! envelopes dropped before it, and the envelopes behind it in the ring apply on top.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;
use mdfh_matcher::FeedQuality;

use crate::envelope::Envelope;
use crate::mirror::Mirror;
use crate::Publisher;

/// An item of the ring: an envelope, or a copy of the publisher's state at that point.
#[derive(Debug)]
pub(crate) enum TapItem {
    Event(Envelope),
    /// Boxed so that the ring's slots stay the size of an envelope.
    Resync(Box<Resync>),
}

/// The publisher's state after the envelopes handed to the tap before this item.
#[derive(Debug)]
pub(crate) struct Resync {
    /// Books, statuses, trading states and the directory.
    pub mirror: Mirror,
    pub quality: FeedQuality,
    /// Feed sequence number snapshots are stamped with, as [`Publisher::last_feed_seq`].
    pub last_feed_seq: u64,
    /// Value of [`TapShared::dropped`] when the copy was made: every drop counted up to it
    /// happened before this item.
    pub drops_covered: u64,
}

/// State the tap shares with the bridge task.
#[derive(Debug)]
pub(crate) struct TapShared {
    pub ring: ArrayQueue<TapItem>,
    /// Envelopes dropped because the ring was full.
    pub dropped: AtomicU64,
    /// Resyncs the bridge has applied.
    pub resyncs: AtomicU64,
}

impl TapShared {
    pub fn new(capacity: usize) -> TapShared {
        TapShared { ring: ArrayQueue::new(capacity.max(1)), dropped: AtomicU64::new(0), resyncs: AtomicU64::new(0) }
    }
}

/// Result of [`WsTap::resync`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResyncOutcome {
    /// No envelope was dropped since the last queued resync, or the bridge has not applied that
    /// one yet.
    NotNeeded,
    /// A copy of the publisher's state is in the ring.
    Queued,
    /// The ring is still full; call again on a later cycle.
    RingFull,
}

/// The handle the publish stage feeds every envelope into, next to `Publisher::on_event`.
#[derive(Debug)]
pub struct WsTap {
    shared: Arc<TapShared>,
    /// Drop count carried by the last queued resync.
    drops_covered: u64,
    /// Resyncs pushed into the ring so far.
    resyncs_queued: u64,
}

impl WsTap {
    pub(crate) fn new(shared: Arc<TapShared>) -> WsTap {
        WsTap { shared, drops_covered: 0, resyncs_queued: 0 }
    }

    /// Copies `env` into the ring. Never blocks, locks, allocates or logs. When the ring is full
    /// the envelope is dropped and counted, and the bridge marks every book stale until the
    /// resync that [`WsTap::resync`] queues reaches it.
    pub fn on_event(&mut self, env: &Envelope) {
        if self.shared.ring.push(TapItem::Event(*env)).is_err() {
            self.shared.dropped.fetch_add(1, Ordering::Release);
        }
    }

    /// Returns the number of envelopes dropped so far because the ring was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Returns true when envelopes were dropped since the last queued resync. Costs two atomic
    /// loads, so the publish stage can call it once per cycle.
    pub fn resync_needed(&self) -> bool {
        self.dropped() > self.drops_covered
    }

    /// Queues a copy of `publisher`'s mirror, quality and feed sequence number for the bridge
    /// when envelopes were dropped since the last resync. `publisher` must have been fed the same
    /// envelopes as this tap, in the same order, so that the copy matches the stream position.
    ///
    /// Never blocks: when the ring is full, nothing is copied and the caller retries on a later
    /// cycle. At most one resync is in the ring at a time, so a ring that keeps overflowing costs
    /// one copy per bridge drain at most. The copy allocates two vectors per book, which is why
    /// it belongs outside the per-envelope path.
    pub fn resync(&mut self, publisher: &Publisher) -> ResyncOutcome {
        let dropped = self.dropped();
        if dropped <= self.drops_covered || self.shared.resyncs.load(Ordering::Acquire) < self.resyncs_queued {
            return ResyncOutcome::NotNeeded;
        }
        // Only this thread pushes, so a ring with room now still has room at the push below.
        if self.shared.ring.is_full() {
            return ResyncOutcome::RingFull;
        }
        let resync = Resync {
            mirror: copy_mirror(publisher.mirror()),
            quality: publisher.quality(),
            last_feed_seq: publisher.last_feed_seq(),
            drops_covered: dropped,
        };
        if self.shared.ring.push(TapItem::Resync(Box::new(resync))).is_err() {
            return ResyncOutcome::RingFull;
        }
        self.drops_covered = dropped;
        self.resyncs_queued += 1;
        ResyncOutcome::Queued
    }
}

/// Returns a copy of every book of `source` and its directory.
fn copy_mirror(source: &Mirror) -> Mirror {
    let mut copy = Mirror::new();
    // Books are stored densely from locate 0, so the first missing locate ends them.
    for locate in 0..=u16::MAX {
        let Some(book) = source.book(locate) else {
            break;
        };
        let target = copy.book_mut(locate);
        *target = book.clone();
        // `bind` below sets the name together with the directory entry.
        target.stock = None;
        if let Some(stock) = book.stock {
            copy.bind(locate, stock);
        }
    }
    copy
}

//! The publish stage's end of the bridge: a bounded lock-free ring of copied envelopes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::envelope::Envelope;

/// State the tap shares with the bridge task.
#[derive(Debug)]
pub(crate) struct TapShared {
    pub ring: ArrayQueue<Envelope>,
    /// Set by the tap when it dropped an envelope; the bridge clears it and resnapshots.
    pub overflowed: AtomicBool,
    /// Envelopes dropped because the ring was full.
    pub dropped: AtomicU64,
}

impl TapShared {
    pub fn new(capacity: usize) -> TapShared {
        TapShared {
            ring: ArrayQueue::new(capacity.max(1)),
            overflowed: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        }
    }
}

/// The handle the publish stage feeds every envelope into, next to `Publisher::on_event`.
#[derive(Debug)]
pub struct WsTap {
    shared: Arc<TapShared>,
}

impl WsTap {
    pub(crate) fn new(shared: Arc<TapShared>) -> WsTap {
        WsTap { shared }
    }

    /// Copies `env` into the ring. Never blocks, locks, allocates or logs. When the ring is full
    /// the envelope is dropped and counted, and the bridge marks every book stale and resends
    /// snapshots, so that no WebSocket client misses an update without being told.
    pub fn on_event(&mut self, env: &Envelope) {
        if self.shared.ring.push(*env).is_err() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            self.shared.overflowed.store(true, Ordering::Release);
        }
    }

    /// Returns the number of envelopes dropped so far because the ring was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

//! Slow-consumer policies: what a connection whose outbound queue falls behind receives instead of
//! every frame.
//!
//! A connection is behind when its unsent bytes would pass `high_water` (half of `queue_bytes`)
//! or, under the conflate policy, when its queue has not been empty for the staleness target.
//! - Conflate: level updates mark (locate, side, price) in a preallocated set instead of being
//!   queued, and trades are dropped and counted. Once the unsent bytes fall to `low_water` (an
//!   eighth of `queue_bytes`), one batch between two Catchup frames carries the mirror's current
//!   state of every marked level. Sequence numbers stay contiguous because nothing is dropped
//!   from the queue.
//! - Resnapshot: frames not yet started are dropped, the sequence number rewinds to the last frame
//!   the client receives, and events are skipped until the queue falls to `low_water`. Then a
//!   fresh Snapshot of every subscription is queued.
//! - Disconnect: a frame that does not fit closes the connection with a Goodbye.

use std::time::{Duration, Instant};

use mdfh_feed::itch::Side;

use super::connection::{level_key, split_level_key, Connection, Counters};
use super::fanout::queue_snapshot;
use super::quality::queue_current_quality;
use super::{wall_clock_ns, Publisher};
use crate::encode::{encode_catchup, encode_level_update};
use crate::mirror::Mirror;
use crate::protocol::{Catchup, CatchupPhase, Level, LevelUpdate, SlowConsumerPolicy};

/// Bytes of a LevelUpdate frame.
const LEVEL_UPDATE_FRAME_LEN: usize = 48;
/// Bytes of a Catchup frame.
const CATCHUP_FRAME_LEN: usize = 34;
/// Upper bound of a conflation set, so a very large `queue_bytes` does not allocate without bound.
const MAX_DIRTY_LEVELS: usize = 1 << 20;

/// Returns how many changed levels a conflating connection can hold: as many LevelUpdates as fit
/// between the low-water mark and `queue_bytes` with the two Catchup frames, so the catch-up
/// batch always fits in the queue.
pub(super) fn dirty_capacity(queue_bytes: usize) -> usize {
    let room = queue_bytes - queue_bytes / 8;
    (room.saturating_sub(2 * CATCHUP_FRAME_LEN) / LEVEL_UPDATE_FRAME_LEN).clamp(1, MAX_DIRTY_LEVELS)
}

impl Connection {
    /// Queues or conflates the LevelUpdate in `frame` for the level (locate, side, price),
    /// following the connection's policy. Returns whether the connection still follows the
    /// instrument: the frame was queued or its level marked.
    pub(super) fn offer_level(
        &mut self,
        frame: &[u8],
        locate: u16,
        side: Side,
        price: u32,
        counters: &mut Counters,
    ) -> bool {
        match self.policy {
            SlowConsumerPolicy::Disconnect => self.queue_data(frame, counters),
            SlowConsumerPolicy::Conflate => {
                if !self.conflating && self.out.unsent_len() + frame.len() > self.high_water {
                    self.conflating = true;
                }
                if !self.conflating {
                    return self.queue_data(frame, counters);
                }
                self.mark_dirty(level_key(locate, side.as_byte(), price), counters)
            }
            SlowConsumerPolicy::Resnapshot => self.offer_resnapshot(frame, counters),
        }
    }

    /// Queues a Trade, BookStatus, TradingState or Digest frame following the connection's
    /// policy: a conflating connection drops trades (counted) and queues the rest. Returns whether
    /// the frame was queued.
    pub(super) fn offer_other(&mut self, frame: &[u8], is_trade: bool, counters: &mut Counters) -> bool {
        match self.policy {
            SlowConsumerPolicy::Disconnect => self.queue_data(frame, counters),
            SlowConsumerPolicy::Conflate => {
                if !self.conflating && self.out.unsent_len() + frame.len() > self.high_water {
                    self.conflating = true;
                }
                if self.conflating && is_trade {
                    if let Some(conflation) = self.conflation.as_mut() {
                        conflation.dropped_trades += 1;
                    }
                    self.policy_counters.dropped_trades += 1;
                    counters.policy.dropped_trades += 1;
                    return false;
                }
                self.queue_data(frame, counters)
            }
            SlowConsumerPolicy::Resnapshot => self.offer_resnapshot(frame, counters),
        }
    }

    /// Returns whether the connection's book is known to lag the mirror: it is conflating or
    /// waiting for fresh snapshots.
    pub(super) fn is_behind(&self) -> bool {
        self.conflating || self.resnapshot_pending
    }

    /// Forgets the conflated levels, because a Reset cleared every book.
    pub(super) fn clear_conflation(&mut self) {
        if let Some(conflation) = self.conflation.as_mut() {
            conflation.dirty.clear();
        }
    }

    fn offer_resnapshot(&mut self, frame: &[u8], counters: &mut Counters) -> bool {
        if !self.resnapshot_pending && self.out.unsent_len() + frame.len() > self.high_water {
            let dropped = self.out.drop_unstarted();
            // Dropped frames never reach the client, so numbering resumes after the last one
            // that does.
            self.last_seq = self.out.started_seq();
            self.resnapshot_pending = true;
            self.count_resnapshot_drops(dropped, counters);
        }
        if self.resnapshot_pending {
            self.count_resnapshot_drops(1, counters);
            return false;
        }
        self.queue_data(frame, counters)
    }

    fn count_resnapshot_drops(&mut self, frames: u64, counters: &mut Counters) {
        self.policy_counters.resnapshot_dropped_frames += frames;
        counters.policy.resnapshot_dropped_frames += frames;
    }

    /// Marks a level as changed. A full set disconnects the connection, because the catch-up
    /// batch would not fit in its queue.
    fn mark_dirty(&mut self, key: u64, counters: &mut Counters) -> bool {
        let Some(conflation) = self.conflation.as_mut() else {
            return false;
        };
        if conflation.dirty.len() >= conflation.capacity && !conflation.dirty.contains(&key) {
            let text = format!(
                "{} changed levels to conflate, the maximum for this queue size; unsent frames were dropped",
                conflation.capacity
            );
            self.disconnect_slow_with(&text, LEVEL_UPDATE_FRAME_LEN, counters);
            return false;
        }
        conflation.dirty.insert(key);
        conflation.conflated += 1;
        self.policy_counters.conflated_updates += 1;
        counters.policy.conflated_updates += 1;
        true
    }
}

impl Publisher {
    /// Runs the policy work of connection `slot` for this poll: starts conflating on staleness,
    /// and queues the catch-up batch or the fresh snapshots once the queue has drained to the
    /// low-water mark. Returns the amount of work done.
    pub(super) fn run_policy(&mut self, slot: usize, now: Instant) -> usize {
        let staleness = self.cfg.conflation_staleness;
        let Publisher { conns, mirror, scratch, counters, last_feed_seq, quality, quality_feed_seq, .. } = self;
        let Some(Some(conn)) = conns.get_mut(slot) else {
            return 0;
        };
        if !conn.is_open() {
            return 0;
        }
        if conn.out.is_empty() {
            conn.drained_at = now;
        }
        if conn.policy == SlowConsumerPolicy::Conflate
            && !conn.conflating
            && is_stale(now, conn.drained_at, staleness)
        {
            conn.conflating = true;
        }
        if conn.out.unsent_len() > conn.low_water {
            return 0;
        }
        if conn.conflating {
            queue_catchup(conn, mirror, *last_feed_seq, scratch, counters);
            conn.drained_at = now;
            return 1;
        }
        if conn.resnapshot_pending {
            conn.resnapshot_pending = false;
            conn.policy_counters.resnapshots += 1;
            counters.policy.resnapshots += 1;
            queue_all_snapshots(conn, mirror, *last_feed_seq, scratch, counters);
            // Quality frames were skipped while the snapshots were owed, and a queued one may
            // have been dropped with the other unsent frames.
            queue_current_quality(conn, *quality, *quality_feed_seq, scratch, counters);
            return 1;
        }
        0
    }
}

fn is_stale(now: Instant, drained_at: Instant, staleness: Duration) -> bool {
    now.saturating_duration_since(drained_at) >= staleness
}

/// Queues a fresh Snapshot of every instrument the connection's subscriptions cover.
pub(super) fn queue_all_snapshots(
    conn: &mut Connection,
    mirror: &Mirror,
    feed_seq: u64,
    scratch: &mut Vec<u8>,
    counters: &mut Counters,
) {
    if let Some(depth) = conn.all_depth {
        for locate in mirror.named_locates() {
            queue_snapshot(conn, mirror, locate, depth, feed_seq, scratch, counters);
        }
        return;
    }
    for index in 0..conn.subs.len() {
        let Some(sub) = conn.subs.get(index).copied() else {
            break;
        };
        if let Some(locate) = sub.locate {
            queue_snapshot(conn, mirror, locate, sub.depth, feed_seq, scratch, counters);
        }
    }
}

/// Queues the catch-up batch of a conflating connection: Catchup Begin, a LevelUpdate with
/// shares 0 for every marked level that is gone or now below the subscription's depth, a
/// LevelUpdate with the current state of every other marked level, and Catchup End. Removals
/// go first so that a client that keeps only its top N levels never drops a level it needs.
fn queue_catchup(
    conn: &mut Connection,
    mirror: &Mirror,
    feed_seq: u64,
    scratch: &mut Vec<u8>,
    counters: &mut Counters,
) {
    let Some(mut conflation) = conn.conflation.take() else {
        conn.conflating = false;
        return;
    };
    // Levels of instruments the connection no longer receives are left out.
    let levels = conflation.dirty.iter().filter(|&&key| conn.depth_of(split_level_key(key).0).is_some()).count();
    let mut mark = Catchup {
        seq: 0,
        phase: CatchupPhase::Begin,
        levels: u32::try_from(levels).unwrap_or(u32::MAX),
        conflated: conflation.conflated,
        dropped_trades: conflation.dropped_trades,
    };
    scratch.clear();
    encode_catchup(scratch, &mark);
    let mut queued = conn.queue_data(scratch, counters);

    let send_ns = wall_clock_ns();
    for removals in [true, false] {
        for &key in &conflation.dirty {
            if !queued {
                break;
            }
            let (locate, side_byte, price) = split_level_key(key);
            let Some(depth) = conn.depth_of(locate) else {
                continue;
            };
            let side = if side_byte == b'B' { Side::Buy } else { Side::Sell };
            let current = mirror
                .book(locate)
                .and_then(|book| book.find(side, price))
                .filter(|&(rank, _)| depth == 0 || rank < usize::from(depth))
                .map(|(_, level)| level);
            if current.is_some() == removals {
                continue;
            }
            let level = current.unwrap_or(Level { price, shares: 0, orders: 0 });
            let update = LevelUpdate { seq: 0, locate, side, level, feed_seq, send_ns };
            scratch.clear();
            encode_level_update(scratch, &update);
            queued = conn.queue_data(scratch, counters);
        }
    }

    if queued {
        mark.phase = CatchupPhase::End;
        scratch.clear();
        encode_catchup(scratch, &mark);
        conn.queue_data(scratch, counters);
    }
    conn.policy_counters.catchups += 1;
    counters.policy.catchups += 1;
    conflation.dirty.clear();
    conflation.conflated = 0;
    conflation.dropped_trades = 0;
    conn.conflation = Some(conflation);
    conn.conflating = false;
}

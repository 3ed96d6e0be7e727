//! Feed quality on the TCP protocol. Every change goes to every open connection, with or without
//! subscriptions, because it applies to every book. A connection that connects or subscribes
//! while the quality is not Ok gets the current quality after its snapshots.
//!
//! Slow-consumer policies keep the latest quality, which the policy tests check. Disconnect and
//! Conflate queue the frame in order, and Conflate never conflates it. Resnapshot skips every
//! frame while fresh snapshots are owed, so it queues the current quality after those snapshots.
//! A Disconnect that closes the connection ends its quality frames too.

use mdfh_matcher::FeedQuality;

use super::connection::{Connection, Counters};
use super::Publisher;
use crate::encode::encode_feed_quality;
use crate::protocol::QualityUpdate;

impl Publisher {
    /// Returns the current feed quality, as last sent to subscribers.
    pub fn quality(&self) -> FeedQuality {
        self.quality
    }

    /// Records a feed quality change and queues a FeedQuality frame for every open connection.
    /// A quality equal to the current one changes nothing, so a `Quality { Ok }` event right
    /// after a Reset (which already set Ok) sends no second frame.
    pub(super) fn on_quality(&mut self, quality: FeedQuality, feed_seq: u64) {
        if quality == self.quality {
            return;
        }
        self.quality = quality;
        self.quality_feed_seq = feed_seq;

        let Publisher { conns, scratch, counters, .. } = self;
        scratch.clear();
        encode_feed_quality(scratch, &QualityUpdate { seq: 0, feed_seq, quality });
        for conn in conns.iter_mut().flatten() {
            if conn.offer_other(scratch, false, counters) {
                conn.quality_queued = true;
            }
        }
    }
}

/// Queues the current quality for one connection when the client may not know it: the quality
/// is not Ok, or the connection was sent a FeedQuality frame before (which a resnapshot may have
/// dropped). Called after snapshots and on connect.
pub(super) fn queue_current_quality(
    conn: &mut Connection,
    quality: FeedQuality,
    feed_seq: u64,
    scratch: &mut Vec<u8>,
    counters: &mut Counters,
) {
    if quality == FeedQuality::OK && !conn.quality_queued {
        return;
    }
    scratch.clear();
    encode_feed_quality(scratch, &QualityUpdate { seq: 0, feed_seq, quality });
    if conn.queue_data(scratch, counters) {
        conn.quality_queued = true;
    }
}

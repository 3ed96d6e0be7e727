//! Applying book events to the mirror and queueing the frames they cause for each subscriber.
//!
//! Depth rule: a subscriber with depth N gets a level change only when the level's rank (0 = best)
//! is below N. When a level inside its top N is removed and the side still has N levels, it also
//! gets the level that moved up to rank N-1. A level pushed down to rank N by an insert is not
//! sent, because clients keep at most N levels per side and drop what falls below.

use std::collections::HashMap;

use mdfh_feed::itch::{Side, Stock};
use mdfh_matcher::{BookEvent, BookStatus, FeedQuality, LevelChange};

use super::connection::{Connection, Counters};
use super::{wall_clock_ns, Publisher};
use crate::digest::effective_depth;
use crate::encode::{
    encode_book_status, encode_digest, encode_level_update, encode_reset, encode_snapshot, encode_trade,
    encode_trading_state,
};
use crate::envelope::Envelope;
use crate::mirror::Mirror;
use crate::protocol::{
    DigestUpdate, Level, LevelUpdate, SnapshotHeader, StatusUpdate, TradeUpdate, TradingStateUpdate,
};

/// A connection that receives an instrument's events, and the depth it receives them at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Route {
    pub slot: usize,
    /// Levels per side; 0 means the full book.
    pub depth: u16,
}

/// Fan-out tables: the connections that receive each instrument's events.
#[derive(Debug, Default)]
pub(super) struct Routes {
    /// Symbol subscriptions, indexed by locate.
    by_locate: Vec<Vec<Route>>,
    /// Subscriptions to every instrument.
    pub all: Vec<Route>,
    /// Connection slots with a symbol subscription that the directory does not resolve yet.
    pending: HashMap<Stock, Vec<usize>>,
}

impl Routes {
    pub fn for_locate(&self, locate: u16) -> &[Route] {
        self.by_locate.get(usize::from(locate)).map_or(&[], Vec::as_slice)
    }

    pub fn add(&mut self, locate: u16, route: Route) {
        let index = usize::from(locate);
        if index >= self.by_locate.len() {
            self.by_locate.resize_with(index + 1, Vec::new);
        }
        if let Some(list) = self.by_locate.get_mut(index) {
            list.push(route);
        }
    }

    pub fn add_pending(&mut self, stock: Stock, slot: usize) {
        self.pending.entry(stock).or_default().push(slot);
    }

    /// Removes every route of connection `slot` for its current subscriptions.
    pub fn remove_connection(&mut self, slot: usize, conn: &Connection) {
        for sub in &conn.subs {
            match sub.locate {
                Some(locate) => self.remove(locate, slot),
                None => self.remove_pending(&sub.stock, slot),
            }
        }
        if conn.all_depth.is_some() {
            self.all.retain(|r| r.slot != slot);
        }
    }

    pub fn remove(&mut self, locate: u16, slot: usize) {
        if let Some(list) = self.by_locate.get_mut(usize::from(locate)) {
            list.retain(|r| r.slot != slot);
        }
    }

    pub fn remove_pending(&mut self, stock: &Stock, slot: usize) {
        if let Some(slots) = self.pending.get_mut(stock) {
            slots.retain(|&s| s != slot);
            if slots.is_empty() {
                self.pending.remove(stock);
            }
        }
    }
}

impl Publisher {
    /// Applies one event to the mirror and queues the frames it causes for every interested
    /// subscriber. Makes no syscall, and allocates nothing for level, trade, status and trading
    /// state events once buffers have grown; directory events and resets may allocate.
    pub fn on_event(&mut self, env: &Envelope) {
        if env.feed_seq != 0 {
            self.last_feed_seq = env.feed_seq;
        }
        let feed_seq = env.feed_seq;
        match env.event {
            BookEvent::Level { locate, change, .. } => self.fan_level(locate, change, feed_seq),
            BookEvent::Trade { locate, trade } => {
                if self.has_routes(locate) {
                    let update = TradeUpdate { seq: 0, locate, trade, feed_seq, send_ns: wall_clock_ns() };
                    self.scratch.clear();
                    encode_trade(&mut self.scratch, &update);
                    self.fan_out(locate, true);
                }
            }
            BookEvent::Directory { locate, stock } => self.on_directory(locate, stock),
            BookEvent::TradingState { locate, state } => {
                self.mirror.book_mut(locate).trading_state = state;
                if self.has_routes(locate) {
                    let update = TradingStateUpdate { seq: 0, locate, state, feed_seq };
                    self.scratch.clear();
                    encode_trading_state(&mut self.scratch, &update);
                    self.fan_out(locate, false);
                }
            }
            BookEvent::Status { locate, status } => self.on_status(locate, status, feed_seq),
            BookEvent::Reset => self.on_reset(feed_seq),
            BookEvent::Quality { quality } => self.on_quality(quality, feed_seq),
        }
    }

    /// Returns the feed sequence number snapshots are stamped with: that of the last event with a
    /// nonzero one, or the Reset's since the last Reset.
    pub fn last_feed_seq(&self) -> u64 {
        self.last_feed_seq
    }

    /// Removes the routes of connection `slot` for good, because it is closing or closed.
    pub(super) fn detach(&mut self, slot: usize) {
        let Some(Some(conn)) = self.conns.get_mut(slot) else {
            return;
        };
        if !conn.detached {
            self.routes.remove_connection(slot, conn);
            conn.detached = true;
        }
    }

    /// Returns whether any connection receives the events of `locate`. Subscribers to all
    /// instruments receive an instrument's events only after its snapshot, which is sent when the
    /// directory names it.
    fn has_routes(&self, locate: u16) -> bool {
        !self.routes.for_locate(locate).is_empty()
            || (!self.routes.all.is_empty() && self.is_named(locate))
    }

    fn is_named(&self, locate: u16) -> bool {
        self.mirror.book(locate).is_some_and(|b| b.stock.is_some())
    }

    /// Queues the data frame in `scratch` for every connection that receives `locate`, following
    /// each connection's slow-consumer policy.
    fn fan_out(&mut self, locate: u16, is_trade: bool) {
        let named = self.is_named(locate);
        let Publisher { conns, routes, scratch, counters, .. } = self;
        let all: &[Route] = if named { &routes.all } else { &[] };
        for route in routes.for_locate(locate).iter().chain(all) {
            if let Some(Some(conn)) = conns.get_mut(route.slot) {
                conn.offer_other(scratch, is_trade, counters);
            }
        }
    }

    fn fan_level(&mut self, locate: u16, change: LevelChange, feed_seq: u64) {
        let Some(applied) = self.mirror.apply_level(locate, &change) else {
            self.counters.unmatched_level_events += 1;
            self.counters.record_error(
                None,
                format_args!(
                    "level removal at locate {locate}, {:?} price {}, which the mirror does not have",
                    change.side, change.price
                ),
            );
            return;
        };
        if !self.has_routes(locate) {
            return;
        }

        let named = self.is_named(locate);
        let Publisher { conns, mirror, routes, scratch, entering_scratch, counters, .. } = self;
        let Some(book) = mirror.book(locate) else {
            return;
        };
        let level = Level { price: change.price, shares: change.shares, orders: change.orders };
        let mut update =
            LevelUpdate { seq: 0, locate, side: change.side, level, feed_seq, send_ns: wall_clock_ns() };
        scratch.clear();
        encode_level_update(scratch, &update);

        let all: &[Route] = if named { &routes.all } else { &[] };
        for route in routes.for_locate(locate).iter().chain(all) {
            let Some(Some(conn)) = conns.get_mut(route.slot) else {
                continue;
            };
            let depth = usize::from(route.depth);
            if depth != 0 && applied.rank >= depth {
                continue;
            }
            if !conn.offer_level(scratch, locate, change.side, change.price, counters) {
                continue;
            }
            // A level inside the top N went away, so the level now at rank N-1 enters the view.
            if applied.removed && depth != 0 && applied.depth_after >= depth {
                if let Some(entering) = book.level_at_rank(change.side, depth - 1) {
                    update.level = entering;
                    entering_scratch.clear();
                    encode_level_update(entering_scratch, &update);
                    conn.offer_level(entering_scratch, locate, change.side, entering.price, counters);
                }
            }
        }
        if self.cfg.digest_interval != 0 {
            self.count_for_digest(locate, feed_seq);
        }
    }

    /// Counts a level event of `locate` and, every `digest_interval` events, queues a Digest for
    /// every connection that receives the instrument and is not behind.
    fn count_for_digest(&mut self, locate: u16, feed_seq: u64) {
        let interval = self.cfg.digest_interval;
        let digest_depth = self.cfg.digest_depth;
        let named = self.is_named(locate);
        let book = self.mirror.book_mut(locate);
        book.updates_since_digest += 1;
        if book.updates_since_digest < interval {
            return;
        }
        book.updates_since_digest = 0;

        let Publisher { conns, mirror, routes, scratch, counters, .. } = self;
        let Some(book) = mirror.book(locate) else {
            return;
        };
        let all: &[Route] = if named { &routes.all } else { &[] };
        for route in routes.for_locate(locate).iter().chain(all) {
            let Some(Some(conn)) = conns.get_mut(route.slot) else {
                continue;
            };
            if conn.is_behind() {
                continue;
            }
            let depth = effective_depth(digest_depth, route.depth);
            let digest = DigestUpdate { seq: 0, locate, depth, feed_seq, crc: book.digest(depth) };
            scratch.clear();
            encode_digest(scratch, &digest);
            if conn.offer_other(scratch, false, counters) {
                counters.digests_sent += 1;
            }
        }
    }

    fn on_status(&mut self, locate: u16, status: BookStatus, feed_seq: u64) {
        self.mirror.book_mut(locate).status = status;
        if self.has_routes(locate) {
            let update = StatusUpdate { seq: 0, locate, status, feed_seq };
            self.scratch.clear();
            encode_book_status(&mut self.scratch, &update);
            self.fan_out(locate, false);
        }
    }

    fn on_directory(&mut self, locate: u16, stock: Stock) {
        let Some(rebind) = self.mirror.bind(locate, stock) else {
            return;
        };
        // Symbol subscriptions follow the symbol: those routed to a locate that lost its name
        // wait for the symbol to appear again.
        if rebind.old_stock_of_locate.is_some() {
            self.unroute_locate(locate);
        }
        if let Some(old_locate) = rebind.old_locate_of_stock {
            self.unroute_locate(old_locate);
        }

        let Publisher { conns, mirror, routes, scratch, counters, last_feed_seq, .. } = self;
        for slot in routes.pending.remove(&stock).unwrap_or_default() {
            let Some(Some(conn)) = conns.get_mut(slot) else {
                continue;
            };
            let Some(sub) = conn.subs.iter_mut().find(|s| s.stock == stock) else {
                continue;
            };
            sub.locate = Some(locate);
            let depth = sub.depth;
            routes.add(locate, Route { slot, depth });
            // A connection waiting for fresh snapshots gets this one with the others.
            if !conn.resnapshot_pending {
                queue_snapshot(conn, mirror, locate, depth, *last_feed_seq, scratch, counters);
            }
        }
        for route in &routes.all {
            if let Some(Some(conn)) = conns.get_mut(route.slot) {
                if !conn.resnapshot_pending {
                    queue_snapshot(conn, mirror, locate, route.depth, *last_feed_seq, scratch, counters);
                }
            }
        }
    }

    /// Moves the symbol subscriptions routed to `locate` back to pending.
    fn unroute_locate(&mut self, locate: u16) {
        let Publisher { conns, routes, .. } = self;
        let Some(list) = routes.by_locate.get_mut(usize::from(locate)) else {
            return;
        };
        for route in list.drain(..) {
            let Some(Some(conn)) = conns.get_mut(route.slot) else {
                continue;
            };
            for sub in conn.subs.iter_mut().filter(|s| s.locate == Some(locate)) {
                sub.locate = None;
                routes.pending.entry(sub.stock).or_default().push(route.slot);
            }
        }
    }

    fn on_reset(&mut self, feed_seq: u64) {
        self.mirror.clear();
        self.last_feed_seq = feed_seq;
        for locate in 0..self.routes.by_locate.len() {
            if let Ok(locate) = u16::try_from(locate) {
                self.unroute_locate(locate);
            }
        }

        let Publisher { conns, scratch, counters, .. } = self;
        scratch.clear();
        encode_reset(scratch, 0, feed_seq);
        for conn in conns.iter_mut().flatten() {
            conn.clear_conflation();
            if conn.has_subscriptions() {
                conn.queue_data(scratch, counters);
            }
        }
        // A new session starts with nothing lost, and clients without subscriptions get no Reset
        // frame, so a quality other than Ok is corrected here for every connection.
        self.on_quality(FeedQuality::OK, feed_seq);
    }
}

/// Queues a Snapshot of `locate` cut to `depth` levels per side (0 = all). Does nothing when the
/// instrument has no symbol yet.
pub(super) fn queue_snapshot(
    conn: &mut Connection,
    mirror: &Mirror,
    locate: u16,
    depth: u16,
    feed_seq: u64,
    scratch: &mut Vec<u8>,
    counters: &mut Counters,
) -> bool {
    let Some(book) = mirror.book(locate) else {
        return false;
    };
    let Some(stock) = book.stock else {
        return false;
    };
    let header = SnapshotHeader {
        seq: 0,
        locate,
        stock,
        status: book.status,
        trading_state: book.trading_state,
        feed_seq,
        depth,
    };
    // NOTE: a side with more than MAX_SNAPSHOT_LEVELS (65535) levels is cut, and nothing tells a
    // full-depth client that its book lacks the levels past that.
    let limit = if depth == 0 { usize::MAX } else { usize::from(depth) };
    scratch.clear();
    encode_snapshot(
        scratch,
        &header,
        book.levels(Side::Buy).take(limit),
        book.levels(Side::Sell).take(limit),
    );
    conn.queue_data(scratch, counters)
}

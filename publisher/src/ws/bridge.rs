//! The bridge task: drains the tap's ring into its own mirror, encodes each update once and queues
//! the shared bytes for the WebSocket clients subscribed to the instrument.
//!
//! Depth rule (the same as on TCP): a subscription with depth N gets a level change only when the
//! level's rank (0 = best) is below N, and when a level inside its top N is removed while the side
//! still has N levels, it also gets the level that moved up to rank N-1. Clients keep at most N
//! levels per side and drop what falls below.
//!
//! Rate rule: each subscription has a token bucket of `rate` tokens refilled at `rate` per second.
//! An event that finds the bucket empty is not sent and the subscription turns conflating. Every
//! [`FLUSH_INTERVAL`], a conflating subscription with a token gets one fresh snapshot (marked
//! `"conflated":true`) of its depth, which carries the latest state of every level it holds.
//!
//! Pause rule: every [`FLUSH_INTERVAL`] the bridge reads each client's queued bytes. A client
//! whose queue contains more than `pause_queue_bytes` at two checks in a row is paused. The bridge
//! then queues no level, bbo, trade, snapshot or stats message for it, so a client that stopped
//! reading costs one flag check per event routed to it. Rare control messages (status, reset,
//! quality, directory, errors) are still queued, so that they keep their order. A paused client
//! whose queue drained to a quarter of `pause_queue_bytes` or less gets a conflated snapshot of
//! each subscription and resumes. One paused longer than `max_pause` is disconnected as slow.
//! Two checks in a row spare a client that reads but was handed one burst larger than the
//! threshold, as long as it drains the burst within one interval.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use mdfh_feed::itch::Stock;
use mdfh_matcher::{BookEvent, BookStatus, FeedQuality, LevelChange, TradeEvent};
use tokio::sync::{broadcast, mpsc, watch, Notify};
use tokio::time::MissedTickBehavior;

use super::json::{self, Request};
use super::tap::{Resync, TapItem, TapShared};
use super::Counters;
use crate::envelope::Envelope;
use crate::mirror::Mirror;
use crate::protocol::Level;

/// How often the bridge drains the ring. It bounds the latency the bridge adds.
const DRAIN_INTERVAL: Duration = Duration::from_millis(1);
/// How often conflating subscriptions are flushed.
const FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// How often `stats` messages (and the directory, when it changed) go out.
const STATS_INTERVAL: Duration = Duration::from_secs(1);
/// Maximum symbol length in a subscribe request, because ITCH stock fields are 8 bytes.
const MAX_SYMBOL_LEN: usize = 8;

/// Limits the bridge applies per client.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub client_queue_bytes: usize,
    /// Queued bytes above which a client is paused.
    pub pause_queue_bytes: usize,
    /// Maximum pause before the client is disconnected as slow.
    pub max_pause: Duration,
    /// Maximum updates per second per subscription; 0 means no limit.
    pub max_rate: u32,
    pub default_depth: u16,
}

/// The bridge's handle on one client task.
#[derive(Debug, Clone)]
pub(crate) struct ClientLink {
    pub id: u64,
    pub tx: mpsc::UnboundedSender<Utf8Bytes>,
    /// Bytes queued in `tx` and not yet written; the client task subtracts what it writes.
    pub queued_bytes: Arc<AtomicUsize>,
    /// Notified once when the client is over `client_queue_bytes`; the client task then closes.
    pub kill: Arc<Notify>,
    pub killed: Arc<AtomicBool>,
}

/// A message from a client task to the bridge.
#[derive(Debug)]
pub(crate) enum Command {
    Join(ClientLink),
    Leave(u64),
    Request(u64, Request),
}

/// An item for SSE clients: the event name, the symbol it is about and the JSON data.
#[derive(Debug, Clone)]
pub(crate) struct SseItem {
    pub event: &'static str,
    pub symbol: Option<Stock>,
    pub data: Utf8Bytes,
}

#[derive(Debug)]
struct Subscription {
    stock: Stock,
    /// `None` while the directory does not name the symbol (after a reset or a rebind).
    locate: Option<u16>,
    /// Levels per side; 0 means the full book.
    depth: u16,
    /// Updates per second; 0 means no limit.
    rate: u32,
    tokens: f64,
    refilled_at: Instant,
    conflating: bool,
}

impl Subscription {
    /// Takes one token, refilling the bucket first. Returns false when the bucket is empty.
    fn take_token(&mut self, now: Instant) -> bool {
        if self.rate == 0 {
            return true;
        }
        let rate = f64::from(self.rate);
        let elapsed = now.saturating_duration_since(self.refilled_at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.refilled_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
struct Client {
    link: ClientLink,
    subs: Vec<Subscription>,
    /// True when the queue held more than `pause_queue_bytes` at the last check.
    behind: bool,
    /// When the client was paused; `None` while it gets every update.
    paused_since: Option<Instant>,
}

/// Bridge state; runs as one task on the server's runtime.
pub(crate) struct Bridge {
    limits: Limits,
    tap: Arc<TapShared>,
    counters: Arc<Counters>,
    sse: broadcast::Sender<SseItem>,
    stats_json: Arc<Mutex<String>>,
    mirror: Mirror,
    last_feed_seq: u64,
    /// Set when the tap dropped envelopes: the mirror may differ from the pipeline's books until
    /// the next resync or Reset, so every book is reported stale.
    lost_events: bool,
    /// The tap's drop count the bridge has handled, by marking books stale or by a resync.
    drops_handled: u64,
    clients: HashMap<u64, Client>,
    /// Client ids with a resolved subscription, indexed by locate.
    routes: Vec<Vec<u64>>,
    directory_changed: bool,
    /// Current feed-wide quality.
    quality: FeedQuality,
    /// The `quality` message of the current quality, sent to each client that joins and read by
    /// each SSE stream when it starts.
    quality_message: watch::Sender<Utf8Bytes>,
}

impl Bridge {
    pub fn new(
        limits: Limits,
        tap: Arc<TapShared>,
        counters: Arc<Counters>,
        sse: broadcast::Sender<SseItem>,
        stats_json: Arc<Mutex<String>>,
        quality_message: watch::Sender<Utf8Bytes>,
    ) -> Bridge {
        Bridge {
            limits,
            tap,
            counters,
            sse,
            stats_json,
            quality: FeedQuality::OK,
            quality_message,
            mirror: Mirror::new(),
            last_feed_seq: 0,
            lost_events: false,
            drops_handled: 0,
            clients: HashMap::new(),
            routes: Vec::new(),
            directory_changed: false,
        }
    }

    /// Runs until `shutdown` turns true or every client task and the server are gone.
    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>, mut shutdown: watch::Receiver<bool>) {
        let mut drain = tokio::time::interval(DRAIN_INTERVAL);
        drain.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut flush = tokio::time::interval(FLUSH_INTERVAL);
        flush.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut stats = tokio::time::interval(STATS_INTERVAL);
        stats.set_missed_tick_behavior(MissedTickBehavior::Skip);

        loop {
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return;
                    }
                }
                command = commands.recv() => match command {
                    // Drain first, so that a snapshot reflects every event the tap has accepted.
                    Some(command) => {
                        self.drain();
                        self.on_command(command);
                    }
                    None => return,
                },
                _ = drain.tick() => self.drain(),
                _ = flush.tick() => {
                    self.check_queues();
                    self.flush_conflated();
                }
                _ = stats.tick() => self.send_stats(),
            }
        }
    }

    fn drain(&mut self) {
        while let Some(item) = self.tap.ring.pop() {
            match item {
                TapItem::Event(env) => self.on_envelope(&env),
                TapItem::Resync(resync) => self.on_resync(*resync),
            }
        }
        let dropped = self.tap.dropped.load(Ordering::Acquire);
        if dropped > self.drops_handled {
            self.drops_handled = dropped;
            self.on_overflow();
        }
    }

    fn on_envelope(&mut self, env: &Envelope) {
        if env.feed_seq != 0 {
            self.last_feed_seq = env.feed_seq;
        }
        let feed_seq = env.feed_seq;
        match env.event {
            BookEvent::Level { locate, change, top_changed } => self.on_level(locate, change, top_changed, feed_seq),
            BookEvent::Trade { locate, trade } => self.on_trade(locate, &trade, feed_seq),
            BookEvent::Directory { locate, stock } => self.on_directory(locate, stock),
            BookEvent::TradingState { locate, state } => {
                self.mirror.book_mut(locate).trading_state = state;
                self.send_status(locate, feed_seq);
            }
            BookEvent::Status { locate, status } => {
                self.mirror.book_mut(locate).status = status;
                self.send_status(locate, feed_seq);
            }
            BookEvent::Reset => self.on_reset(feed_seq),
            BookEvent::Quality { quality } => self.on_quality(quality, feed_seq),
        }
    }

    fn on_level(&mut self, locate: u16, change: LevelChange, top_changed: bool, feed_seq: u64) {
        let Some(applied) = self.mirror.apply_level(locate, &change) else {
            self.counters.unmatched_level_events.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some(book) = self.mirror.book(locate) else {
            return;
        };
        let symbol = book.stock.map(|s| s.to_string()).unwrap_or_default();

        let bbo = top_changed.then(|| json::bbo(&symbol, book, feed_seq));
        if let (Some(bbo), true) = (&bbo, self.sse.receiver_count() > 0) {
            let item = SseItem { event: "bbo", symbol: book.stock, data: bbo.clone() };
            let _ = self.sse.send(item);
        }
        let Some(ids) = self.routes.get(usize::from(locate)).filter(|ids| !ids.is_empty()) else {
            return;
        };

        let level = Level { price: change.price, shares: change.shares, orders: change.orders };
        let message = json::level(&symbol, change.side, level, feed_seq);
        let now = Instant::now();
        let mut skipped = 0u64;
        for id in ids {
            let Some(client) = self.clients.get_mut(id) else {
                continue;
            };
            if client.paused_since.is_some() {
                skipped += 1;
                continue;
            }
            let Some(sub) = client.subs.iter_mut().find(|s| s.locate == Some(locate)) else {
                continue;
            };
            let depth = usize::from(sub.depth);
            if depth != 0 && applied.rank >= depth {
                continue;
            }
            if sub.conflating || !sub.take_token(now) {
                sub.conflating = true;
                self.counters.conflated.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            push(&client.link, &message, self.limits, &self.counters);
            if applied.removed && depth != 0 && applied.depth_after >= depth {
                if let Some(moved_up) = book.level_at_rank(change.side, depth - 1) {
                    push(&client.link, &json::level(&symbol, change.side, moved_up, feed_seq), self.limits, &self.counters);
                }
            }
            if let Some(bbo) = &bbo {
                push(&client.link, bbo, self.limits, &self.counters);
            }
        }
        if skipped > 0 {
            self.counters.paused_updates.fetch_add(skipped, Ordering::Relaxed);
        }
    }

    fn on_trade(&mut self, locate: u16, trade: &TradeEvent, feed_seq: u64) {
        let Some(ids) = self.routes.get(usize::from(locate)).filter(|ids| !ids.is_empty()) else {
            return;
        };
        let symbol = self.mirror.book(locate).and_then(|b| b.stock).map(|s| s.to_string()).unwrap_or_default();
        let message = json::trade(&symbol, trade, feed_seq);
        let now = Instant::now();
        let mut skipped = 0u64;
        for id in ids {
            let Some(client) = self.clients.get_mut(id) else {
                continue;
            };
            if client.paused_since.is_some() {
                skipped += 1;
                continue;
            }
            let Some(sub) = client.subs.iter_mut().find(|s| s.locate == Some(locate)) else {
                continue;
            };
            // NOTE: trades over the rate are skipped, not replayed: the conflated snapshot that
            // ends the stretch carries levels only.
            if sub.conflating || !sub.take_token(now) {
                sub.conflating = true;
                self.counters.conflated.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            push(&client.link, &message, self.limits, &self.counters);
        }
        if skipped > 0 {
            self.counters.paused_updates.fetch_add(skipped, Ordering::Relaxed);
        }
    }

    /// Sends a `status` message, which is never rate limited, to every subscriber of `locate`.
    /// A stale status gives the reason "feed" when the pipeline marked the book, and
    /// "bridge_overflow" otherwise.
    fn send_status(&mut self, locate: u16, feed_seq: u64) {
        let Some(ids) = self.routes.get(usize::from(locate)).filter(|ids| !ids.is_empty()) else {
            return;
        };
        let Some(book) = self.mirror.book(locate) else {
            return;
        };
        let symbol = book.stock.map(|s| s.to_string()).unwrap_or_default();
        let (status, reason) = match (book.status, self.lost_events) {
            (BookStatus::Stale, _) => (BookStatus::Stale, Some("feed")),
            (BookStatus::Ok, true) => (BookStatus::Stale, Some("bridge_overflow")),
            (BookStatus::Ok, false) => (BookStatus::Ok, None),
        };
        let message = json::status(&symbol, book, status, reason, feed_seq);
        for id in ids {
            if let Some(client) = self.clients.get(id) {
                push(&client.link, &message, self.limits, &self.counters);
            }
        }
    }

    fn on_directory(&mut self, locate: u16, stock: Stock) {
        if self.mirror.bind(locate, stock).is_none() {
            return;
        }
        self.directory_changed = true;
        self.resolve_subscriptions();
    }

    fn on_reset(&mut self, feed_seq: u64) {
        self.mirror.clear();
        self.lost_events = false;
        self.directory_changed = true;
        let message = json::reset(feed_seq);
        for client in self.clients.values() {
            push(&client.link, &message, self.limits, &self.counters);
        }
        self.resolve_subscriptions();
        // A new session starts with nothing lost.
        self.on_quality(FeedQuality::OK, feed_seq);
    }

    /// Sends a `quality` message, which is never rate limited, to every client and SSE stream.
    /// A quality equal to the current one sends nothing.
    fn on_quality(&mut self, quality: FeedQuality, feed_seq: u64) {
        if quality == self.quality {
            return;
        }
        self.quality = quality;
        let message = json::quality(quality, feed_seq);
        for client in self.clients.values() {
            push(&client.link, &message, self.limits, &self.counters);
        }
        let _ = self.sse.send(SseItem { event: "quality", symbol: None, data: message.clone() });
        self.quality_message.send_replace(message);
    }

    /// Marks every book stale and resends every subscription's snapshot, because the tap dropped
    /// envelopes this mirror never saw. The books stay stale until the resync that the publish
    /// stage queues for these drops, or the next Reset.
    fn on_overflow(&mut self) {
        self.lost_events = true;
        tracing::warn!(dropped = self.drops_handled, "WebSocket bridge ring overflowed; books marked stale until resync");
        // A paused client gets its snapshots when it resumes.
        for client in self.clients.values_mut().filter(|c| c.paused_since.is_none()) {
            for sub in &mut client.subs {
                if let Some(locate) = sub.locate {
                    sub.conflating = false;
                    send_snapshot(&self.mirror, locate, sub, &client.link, self.last_feed_seq, true, false, self.limits, &self.counters);
                }
            }
        }
    }

    /// Replaces the mirror with the publisher's copy and sends every subscription a fresh
    /// snapshot. The books are trusted again unless the tap dropped envelopes after the copy was
    /// made, which the next resync covers.
    fn on_resync(&mut self, resync: Resync) {
        self.mirror = resync.mirror;
        self.last_feed_seq = resync.last_feed_seq;
        let dropped = self.tap.dropped.load(Ordering::Acquire);
        self.drops_handled = self.drops_handled.max(dropped);
        self.lost_events = dropped > resync.drops_covered;
        self.directory_changed = true;
        self.tap.resyncs.fetch_add(1, Ordering::Release);
        tracing::info!(
            drops_covered = resync.drops_covered,
            dropped,
            feed_seq = self.last_feed_seq,
            stale = self.lost_events,
            "WebSocket bridge resynchronised from the publisher's books"
        );

        for client in self.clients.values_mut() {
            let paused = client.paused_since.is_some();
            for sub in &mut client.subs {
                sub.locate = self.mirror.locate_of(&sub.stock);
                // A paused client gets its snapshots when it resumes.
                if let (Some(locate), false) = (sub.locate, paused) {
                    sub.conflating = false;
                    send_snapshot(&self.mirror, locate, sub, &client.link, self.last_feed_seq, self.lost_events, false, self.limits, &self.counters);
                }
            }
        }
        self.rebuild_routes();
        self.on_quality(resync.quality, self.last_feed_seq);
    }

    /// Re-resolves every subscription's locate after a directory change or reset, sends a
    /// snapshot to each one that gained or changed its locate, and rebuilds the routes.
    fn resolve_subscriptions(&mut self) {
        for client in self.clients.values_mut() {
            let paused = client.paused_since.is_some();
            for sub in &mut client.subs {
                let locate = self.mirror.locate_of(&sub.stock);
                if locate != sub.locate {
                    sub.locate = locate;
                    if let (Some(locate), false) = (locate, paused) {
                        sub.conflating = false;
                        send_snapshot(&self.mirror, locate, sub, &client.link, self.last_feed_seq, self.lost_events, false, self.limits, &self.counters);
                    }
                }
            }
        }
        self.rebuild_routes();
    }

    fn rebuild_routes(&mut self) {
        for ids in &mut self.routes {
            ids.clear();
        }
        for (id, client) in &self.clients {
            for locate in client.subs.iter().filter_map(|s| s.locate) {
                let index = usize::from(locate);
                if index >= self.routes.len() {
                    self.routes.resize_with(index + 1, Vec::new);
                }
                if let Some(ids) = self.routes.get_mut(index) {
                    ids.push(*id);
                }
            }
        }
    }

    fn flush_conflated(&mut self) {
        let now = Instant::now();
        for client in self.clients.values_mut().filter(|c| c.paused_since.is_none()) {
            for sub in client.subs.iter_mut().filter(|s| s.conflating) {
                let Some(locate) = sub.locate else {
                    continue;
                };
                if sub.take_token(now) {
                    sub.conflating = false;
                    let stale = self.lost_events;
                    send_snapshot(&self.mirror, locate, sub, &client.link, self.last_feed_seq, stale, true, self.limits, &self.counters);
                }
            }
        }
    }

    /// Applies the pause rule to every client: pauses the ones behind at this check and the last,
    /// resumes paused ones whose queue drained, and disconnects ones paused past `max_pause`.
    fn check_queues(&mut self) {
        let now = Instant::now();
        let resume_at = self.limits.pause_queue_bytes / 4;
        for client in self.clients.values_mut() {
            let queued = client.link.queued_bytes.load(Ordering::Relaxed);
            let Some(since) = client.paused_since else {
                let behind = queued > self.limits.pause_queue_bytes;
                if behind && client.behind {
                    client.paused_since = Some(now);
                    self.counters.client_pauses.fetch_add(1, Ordering::Relaxed);
                }
                client.behind = behind;
                continue;
            };
            if queued <= resume_at {
                client.paused_since = None;
                client.behind = false;
                self.counters.client_resumes.fetch_add(1, Ordering::Relaxed);
                for sub in &mut client.subs {
                    if let Some(locate) = sub.locate {
                        sub.conflating = false;
                        let stale = self.lost_events;
                        send_snapshot(&self.mirror, locate, sub, &client.link, self.last_feed_seq, stale, true, self.limits, &self.counters);
                    }
                }
            } else if now.saturating_duration_since(since) > self.limits.max_pause {
                disconnect(&client.link, queued, &self.counters);
            }
        }
    }

    fn send_stats(&mut self) {
        if self.directory_changed {
            self.directory_changed = false;
            let message = self.directory_message();
            for client in self.clients.values() {
                push(&client.link, &message, self.limits, &self.counters);
            }
        }
        let document = match self.stats_json.lock() {
            Ok(document) => json::stats(&document),
            Err(_) => None,
        };
        let Some(message) = document else {
            return;
        };
        // A paused client gets the next document after it resumes.
        for client in self.clients.values().filter(|c| c.paused_since.is_none()) {
            push(&client.link, &message, self.limits, &self.counters);
        }
        let _ = self.sse.send(SseItem { event: "stats", symbol: None, data: message });
    }

    fn directory_message(&self) -> Utf8Bytes {
        let mut symbols: Vec<String> = self
            .mirror
            .named_locates()
            .filter_map(|locate| self.mirror.book(locate).and_then(|b| b.stock))
            .map(|stock| stock.to_string())
            .collect();
        symbols.sort_unstable();
        json::directory(&symbols)
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Join(link) => {
                push(&link, &self.directory_message(), self.limits, &self.counters);
                let quality = self.quality_message.borrow().clone();
                push(&link, &quality, self.limits, &self.counters);
                self.clients.insert(link.id, Client { link, subs: Vec::new(), behind: false, paused_since: None });
            }
            Command::Leave(id) => {
                if self.clients.remove(&id).is_some_and(|c| c.subs.iter().any(|s| s.locate.is_some())) {
                    self.rebuild_routes();
                }
            }
            Command::Request(id, Request::Subscribe { symbol, depth, max_rate }) => {
                self.subscribe(id, &symbol, depth, max_rate);
            }
            Command::Request(id, Request::Unsubscribe { symbol }) => self.unsubscribe(id, &symbol),
        }
    }

    fn reply_error(&self, id: u64, symbol: &str, message: &str) {
        self.counters.protocol_errors.fetch_add(1, Ordering::Relaxed);
        if let Some(client) = self.clients.get(&id) {
            push(&client.link, &json::error(Some(symbol), message), self.limits, &self.counters);
        }
    }

    fn subscribe(&mut self, id: u64, symbol: &str, depth: Option<u16>, max_rate: Option<u32>) {
        if symbol.is_empty() || symbol.len() > MAX_SYMBOL_LEN || !symbol.bytes().all(|b| b.is_ascii_graphic()) {
            self.reply_error(id, symbol, "invalid symbol: expected 1 to 8 printable ASCII characters");
            return;
        }
        let stock = Stock::new(symbol);
        let Some(locate) = self.mirror.locate_of(&stock) else {
            self.reply_error(id, symbol, "unknown symbol: not in the directory; see the directory message");
            return;
        };
        let rate = match (max_rate, self.limits.max_rate) {
            (Some(requested), 0) => requested,
            (Some(0), limit) | (None, limit) => limit,
            (Some(requested), limit) => requested.min(limit),
        };
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        client.subs.retain(|s| s.stock != stock);
        let mut sub = Subscription {
            stock,
            locate: Some(locate),
            depth: depth.unwrap_or(self.limits.default_depth),
            rate,
            tokens: f64::from(rate),
            refilled_at: Instant::now(),
            conflating: false,
        };
        // A paused client gets this snapshot, conflated, when it resumes.
        if client.paused_since.is_none() {
            send_snapshot(&self.mirror, locate, &mut sub, &client.link, self.last_feed_seq, self.lost_events, false, self.limits, &self.counters);
        }
        client.subs.push(sub);
        self.rebuild_routes();
    }

    fn unsubscribe(&mut self, id: u64, symbol: &str) {
        let stock = Stock::new(symbol);
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let before = client.subs.len();
        client.subs.retain(|s| s.stock != stock);
        if client.subs.len() == before {
            self.reply_error(id, symbol, "not subscribed to this symbol");
            return;
        }
        push(&client.link, &json::unsubscribed(symbol), self.limits, &self.counters);
        self.rebuild_routes();
    }
}

#[allow(clippy::too_many_arguments)]
fn send_snapshot(
    mirror: &Mirror,
    locate: u16,
    sub: &mut Subscription,
    link: &ClientLink,
    feed_seq: u64,
    lost_events: bool,
    conflated: bool,
    limits: Limits,
    counters: &Counters,
) {
    let Some(book) = mirror.book(locate) else {
        return;
    };
    let status = if lost_events { BookStatus::Stale } else { book.status };
    let symbol = sub.stock.to_string();
    let message = json::snapshot(&symbol, locate, book, status, sub.depth, feed_seq, conflated);
    push(link, &message, limits, counters);
}

/// Queues `message` for one client, or disconnects the client when its queue would pass
/// `client_queue_bytes`. The bytes are shared, not copied.
fn push(link: &ClientLink, message: &Utf8Bytes, limits: Limits, counters: &Counters) {
    if link.killed.load(Ordering::Relaxed) {
        return;
    }
    let len = message.as_str().len();
    let queued = link.queued_bytes.fetch_add(len, Ordering::Relaxed) + len;
    if queued > limits.client_queue_bytes {
        disconnect(link, queued, counters);
        return;
    }
    if link.tx.send(message.clone()).is_err() {
        link.queued_bytes.fetch_sub(len, Ordering::Relaxed);
    }
}

/// Tells the client task to close with 1008 and counts a slow-client disconnect, once per client.
fn disconnect(link: &ClientLink, queued: usize, counters: &Counters) {
    if link.killed.swap(true, Ordering::Relaxed) {
        return;
    }
    link.kill.notify_one();
    counters.slow_client_disconnects.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(client = link.id, queued, "WebSocket client too slow; disconnecting");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(rate: u32) -> Subscription {
        Subscription {
            stock: Stock::new("AAPL"),
            locate: Some(1),
            depth: 0,
            rate,
            tokens: f64::from(rate),
            refilled_at: Instant::now(),
            conflating: false,
        }
    }

    #[test]
    fn token_bucket_empties_and_refills() {
        let mut sub = subscription(2);
        let start = sub.refilled_at;
        assert!(sub.take_token(start));
        assert!(sub.take_token(start));
        assert!(!sub.take_token(start));
        assert!(sub.take_token(start + Duration::from_millis(500)));
        assert!(!sub.take_token(start + Duration::from_millis(500)));
    }

    #[test]
    fn rate_zero_never_limits() {
        let mut sub = subscription(0);
        let now = Instant::now();
        assert!((0..10_000).all(|_| sub.take_token(now)));
    }
}

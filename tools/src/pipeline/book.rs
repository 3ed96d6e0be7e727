//! Stage 2: apply decoded messages to the order books and hand the book events on.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use mdfh_feed::udp::monotonic_ns;
use mdfh_matcher::{BookError, BookEvent, BookStatus, Books, FeedQuality, QualityState};
use mdfh_publisher::Envelope;
use serde::Serialize;

use super::ring::{Consumer, Producer};
use super::{Agent, FeedItem, Shared};
use crate::config::Config;
use crate::latency::{LatencyRecorder, Stage};
use crate::ratelimit::RateLimit;
use crate::warn_limited;

/// Items taken from the ring per cycle, so that one cycle stays short.
const BATCH: usize = 256;
/// How often the top-of-book summary for the log is refreshed.
const SUMMARY_EVERY_NS: u64 = 250_000_000;
/// Stock locates are u16, so the per-instrument message counts fit a fixed table.
const LOCATES: usize = 1 << 16;

/// Top of book of one instrument, for the periodic log line and the stats endpoint.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TopOfBookSummary {
    pub locate: u16,
    pub symbol: String,
    pub bid_price: Option<u32>,
    pub bid_shares: u64,
    pub ask_price: Option<u32>,
    pub ask_shares: u64,
    pub stale: bool,
    pub messages: u64,
}

pub(crate) struct BookStage {
    shared: Arc<Shared>,
    input: Consumer<FeedItem>,
    output: Producer<Envelope>,
    books: Books,
    /// Events of the message being applied; reused, so it allocates only while warming up.
    events: Vec<BookEvent>,
    latency: LatencyRecorder,
    messages_per_locate: Vec<u64>,
    last_summary_ns: u64,
    books_shown: usize,
    limit: RateLimit,
    /// Feed-wide quality, which applies to every book.
    quality: FeedQuality,
}

impl BookStage {
    pub(crate) fn new(config: &Config, shared: Arc<Shared>, input: Consumer<FeedItem>, output: Producer<Envelope>) -> BookStage {
        let latency = LatencyRecorder::new(shared.latency[Stage::Book as usize].clone());
        BookStage {
            shared,
            input,
            output,
            books: Books::with_capacity(config.pipeline.order_capacity, 1024),
            events: Vec::with_capacity(64),
            latency,
            messages_per_locate: vec![0; LOCATES],
            last_summary_ns: 0,
            books_shown: config.stats.books_shown,
            limit: RateLimit::default(),
            quality: FeedQuality { state: QualityState::Ok, since: 0 },
        }
    }

    /// Moves the feed quality to `state` and reports the change. Stale lasts until the next
    /// session: a gap filled later does not repair books that missed messages.
    fn set_quality(&mut self, state: QualityState, since: u64) {
        let stale = self.quality.state == QualityState::Stale;
        let next = match state {
            QualityState::Ok => FeedQuality { state, since: 0 },
            QualityState::Stale if stale => return,
            QualityState::Stale => FeedQuality { state, since },
            _ if stale => return,
            QualityState::Recovering if self.quality.state == QualityState::Recovering => return,
            QualityState::Recovering => FeedQuality { state, since },
            QualityState::Recovered => FeedQuality { state, since: 0 },
        };
        if next != self.quality {
            self.quality = next;
            self.events.push(BookEvent::Quality { quality: next });
        }
    }

    fn apply(&mut self, item: FeedItem) {
        self.events.clear();
        let mut sink = |event| self.events.push(event);
        let (seq, recv_ns) = match item {
            FeedItem::Message { seq, recv_ns, decoded_ns, msg } => {
                let result = self.books.apply(&msg, &mut sink);
                let booked_ns = monotonic_ns();
                self.latency.record(decoded_ns, booked_ns);
                self.shared.counters.book.messages_applied.incr();
                let locate = msg.header().stock_locate;
                self.messages_per_locate[usize::from(locate)] += 1;
                if let Err(error) = result {
                    self.on_error(&error, seq, booked_ns);
                }
                (seq, recv_ns)
            }
            FeedItem::SessionStart => {
                self.books.reset(&mut sink);
                self.messages_per_locate.fill(0);
                self.shared.counters.book.resets.incr();
                self.set_quality(QualityState::Ok, 0);
                (0, monotonic_ns())
            }
            FeedItem::Gap { first, .. } => {
                self.books.mark_stale(None, &mut sink);
                self.set_quality(QualityState::Stale, first);
                (first, monotonic_ns())
            }
            FeedItem::Recovering { first } => {
                self.set_quality(QualityState::Recovering, first);
                (first, monotonic_ns())
            }
            FeedItem::Recovered { next } => {
                self.set_quality(QualityState::Recovered, 0);
                (next.saturating_sub(1), monotonic_ns())
            }
        };
        let booked_ns = monotonic_ns();
        for i in 0..self.events.len() {
            let event = self.events[i];
            self.push(Envelope { feed_seq: seq, recv_ns, booked_ns, event });
        }
        self.shared.counters.book.events.add(self.events.len() as u64);
    }

    fn on_error(&mut self, error: &BookError, seq: u64, now_ns: u64) {
        let c = &self.shared.counters.book;
        match error {
            BookError::UnknownOrder { .. } => c.unknown_orders.incr(),
            BookError::OverExecution { .. } | BookError::OverCancel { .. } => c.over_executions.incr(),
            BookError::DuplicateOrder { .. } | BookError::ReplaceToExisting { .. } => c.duplicate_orders.incr(),
            BookError::Crossed { .. } => c.crossed_books.incr(),
            BookError::InvalidLocate { .. } | BookError::LocateMismatch { .. } => c.unknown_instruments.incr(),
            _ => c.other_errors.incr(),
        }
        warn_limited!(self.limit, now_ns, %error, sequence = seq, "book integrity problem; book marked stale");
    }

    /// Hands `envelope` to stage 3, waiting while the ring is full: the publisher never blocks on
    /// subscribers, so a full ring only means stage 3 is briefly behind.
    fn push(&mut self, mut envelope: Envelope) {
        loop {
            match self.output.push(envelope) {
                Ok(()) => return,
                Err(back) => {
                    envelope = back;
                    self.shared.counters.book.ring_full_waits.incr();
                    if self.shared.failed.load(Ordering::Acquire) {
                        return;
                    }
                    std::hint::spin_loop();
                    std::thread::yield_now();
                }
            }
        }
    }

    fn refresh_summary(&mut self, now_ns: u64) {
        if now_ns.saturating_sub(self.last_summary_ns) < SUMMARY_EVERY_NS {
            return;
        }
        self.last_summary_ns = now_ns;
        let mut busiest: Vec<(u64, u16)> = self
            .messages_per_locate
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(locate, &n)| (n, locate as u16))
            .collect();
        busiest.sort_unstable_by(|a, b| b.cmp(a));
        let summary: Vec<TopOfBookSummary> = busiest
            .iter()
            .take(self.books_shown)
            .filter_map(|&(messages, locate)| {
                let book = self.books.book(locate)?;
                let bid = book.best_bid();
                let ask = book.best_ask();
                Some(TopOfBookSummary {
                    locate,
                    symbol: book.stock().map(|s| s.as_str().to_string()).unwrap_or_default(),
                    bid_price: bid.map(|l| l.price),
                    bid_shares: bid.map_or(0, |l| l.shares),
                    ask_price: ask.map(|l| l.price),
                    ask_shares: ask.map_or(0, |l| l.shares),
                    stale: book.status() == BookStatus::Stale,
                    messages,
                })
            })
            .collect();
        if let Ok(mut shared) = self.shared.books.lock() {
            *shared = summary;
        }
    }
}

impl Agent for BookStage {
    fn do_work(&mut self) -> usize {
        let mut work = 0;
        while work < BATCH {
            let Some(item) = self.input.pop() else { break };
            self.apply(item);
            work += 1;
        }
        let now = monotonic_ns();
        self.latency.maybe_flush(now, false);
        self.refresh_summary(now);
        work
    }

    fn is_done(&mut self) -> bool {
        self.shared.receive_done.load(Ordering::Acquire) && self.input.is_empty()
    }

    fn on_close(&mut self) {
        let now = monotonic_ns();
        self.latency.maybe_flush(now, true);
        self.last_summary_ns = 0;
        self.refresh_summary(now);
        self.shared.book_done.store(true, Ordering::Release);
        tracing::info!("book stage stopped");
    }
}

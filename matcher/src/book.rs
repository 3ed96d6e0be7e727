//! One instrument's book: price levels per side, the top of book, and whether it can be trusted.

use mdfh_feed::itch::{Side, Stock};

use crate::error::{BookError, ErrorCounts};
use crate::event::{BookEvent, BookStatus, LevelChange};
use crate::level::{Ladder, Level};

/// Trading state of a book before any `H` (stock trading action) message arrived.
pub const TRADING_STATE_UNKNOWN: u8 = 0;

/// The aggregated levels (L2) and top of book (L1) of one instrument. The orders themselves (L3)
/// live in [`crate::Books`], because ITCH order references are unique across instruments.
#[derive(Debug, Clone)]
pub struct Book {
    locate: u16,
    stock: Option<Stock>,
    trading_state: u8,
    bids: Ladder,
    asks: Ladder,
    status: BookStatus,
    /// Best bid at or above best ask. Clears by itself when the book uncrosses.
    crossed: bool,
    /// An integrity problem other than crossing, or a sequence gap, was seen. Only a reset of
    /// the books clears it.
    damaged: bool,
    errors: ErrorCounts,
}

impl Book {
    /// Creates an empty book with room for `levels` price levels per side before it allocates.
    pub(crate) fn new(locate: u16, levels: usize) -> Book {
        Book {
            locate,
            stock: None,
            trading_state: TRADING_STATE_UNKNOWN,
            bids: Ladder::with_capacity(Side::Buy, levels),
            asks: Ladder::with_capacity(Side::Sell, levels),
            status: BookStatus::Ok,
            crossed: false,
            damaged: false,
            errors: ErrorCounts::default(),
        }
    }

    /// Returns the ITCH stock locate of the instrument.
    pub fn locate(&self) -> u16 {
        self.locate
    }

    /// Returns the symbol, from the stock directory or from the first add order, if either
    /// arrived.
    pub fn stock(&self) -> Option<Stock> {
        self.stock
    }

    /// Returns the trading state of the last `H` message (`H` halted, `P` paused, `Q` quotation
    /// only, `T` trading), or [`TRADING_STATE_UNKNOWN`] before the first.
    pub fn trading_state(&self) -> u8 {
        self.trading_state
    }

    pub fn best_bid(&self) -> Option<Level> {
        self.bids.best()
    }

    pub fn best_ask(&self) -> Option<Level> {
        self.asks.best()
    }

    /// Returns the levels of `side`, best price first.
    pub fn levels(
        &self,
        side: Side,
    ) -> impl ExactSizeIterator<Item = Level> + DoubleEndedIterator + '_ {
        self.ladder(side).iter()
    }

    /// Returns at most `depth` levels of `side`, best price first.
    pub fn top_levels(&self, side: Side, depth: usize) -> impl Iterator<Item = Level> + '_ {
        self.levels(side).take(depth)
    }

    /// Returns the level of `side` at `price` (1/10000 dollars), if any order rests there.
    pub fn level_at(&self, side: Side, price: u32) -> Option<Level> {
        self.ladder(side).get(price)
    }

    /// Returns the number of price levels on `side`.
    pub fn depth(&self, side: Side) -> usize {
        self.ladder(side).len()
    }

    /// Returns `Stale` while the book is crossed or after an integrity problem or a sequence gap
    /// (until the books are reset), and `Ok` otherwise.
    pub fn status(&self) -> BookStatus {
        self.status
    }

    /// Returns whether the best bid is at or above the best ask.
    pub fn is_crossed(&self) -> bool {
        self.crossed
    }

    /// Returns the integrity problems counted against this instrument since it was created.
    pub fn errors(&self) -> &ErrorCounts {
        &self.errors
    }

    fn ladder(&self, side: Side) -> &Ladder {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    fn ladder_mut(&mut self, side: Side) -> &mut Ladder {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    pub(crate) fn set_stock(&mut self, stock: Stock) {
        self.stock = Some(stock);
    }

    pub(crate) fn set_trading_state(&mut self, state: u8) {
        self.trading_state = state;
    }

    /// Adds an order of `shares` at `price` and emits the level change.
    pub(crate) fn add_order(
        &mut self,
        side: Side,
        price: u32,
        shares: u32,
        sink: &mut impl FnMut(BookEvent),
    ) {
        let before = self.ladder(side).best();
        let level = self.ladder_mut(side).add_order(price, u64::from(shares));
        self.emit_level(side, level, before, sink);
    }

    /// Takes `shares` off an order at `price` (the whole order when `order_removed`) and emits
    /// the level change.
    pub(crate) fn remove_shares(
        &mut self,
        side: Side,
        price: u32,
        shares: u32,
        order_removed: bool,
        sink: &mut impl FnMut(BookEvent),
    ) {
        let before = self.ladder(side).best();
        let level = self
            .ladder_mut(side)
            .remove_shares(price, u64::from(shares), order_removed);
        self.emit_level(side, level, before, sink);
    }

    /// Changes one order at `price` from `old_shares` to `new_shares` and emits the level change.
    pub(crate) fn resize_order(
        &mut self,
        side: Side,
        price: u32,
        old_shares: u32,
        new_shares: u32,
        sink: &mut impl FnMut(BookEvent),
    ) {
        let before = self.ladder(side).best();
        let level =
            self.ladder_mut(side)
                .resize_order(price, u64::from(old_shares), u64::from(new_shares));
        self.emit_level(side, level, before, sink);
    }

    fn emit_level(
        &self,
        side: Side,
        level: Level,
        before: Option<Level>,
        sink: &mut impl FnMut(BookEvent),
    ) {
        let change = LevelChange {
            side,
            price: level.price,
            shares: level.shares,
            orders: level.orders,
        };
        let top_changed = self.ladder(side).best() != before;
        sink(BookEvent::Level {
            locate: self.locate,
            change,
            top_changed,
        });
    }

    /// Recomputes whether the book is crossed after order `order_ref` changed it. Returns
    /// [`BookError::Crossed`], already counted, when the book has just become crossed.
    pub(crate) fn check_crossed(
        &mut self,
        order_ref: u64,
        sink: &mut impl FnMut(BookEvent),
    ) -> Option<BookError> {
        let crossing = match (self.bids.best(), self.asks.best()) {
            (Some(bid), Some(ask)) if bid.price >= ask.price => Some((bid.price, ask.price)),
            _ => None,
        };
        if crossing.is_some() == self.crossed {
            return None;
        }
        self.crossed = crossing.is_some();
        self.update_status(sink);
        let (bid, ask) = crossing?;
        let error = BookError::Crossed {
            locate: self.locate,
            order_ref,
            bid,
            ask,
        };
        self.errors.count(&error);
        Some(error)
    }

    /// Counts `error` and marks the book stale until the next reset. Crossing is counted by
    /// [`Book::check_crossed`] instead, because it clears when the book uncrosses.
    pub(crate) fn record_error(&mut self, error: &BookError, sink: &mut impl FnMut(BookEvent)) {
        self.errors.count(error);
        self.mark_stale(sink);
    }

    /// Marks the book stale until the next reset, emitting a status event if it was `Ok`.
    pub(crate) fn mark_stale(&mut self, sink: &mut impl FnMut(BookEvent)) {
        self.damaged = true;
        self.update_status(sink);
    }

    fn update_status(&mut self, sink: &mut impl FnMut(BookEvent)) {
        let status = if self.crossed || self.damaged {
            BookStatus::Stale
        } else {
            BookStatus::Ok
        };
        if status != self.status {
            self.status = status;
            sink(BookEvent::Status {
                locate: self.locate,
                status,
            });
        }
    }
}

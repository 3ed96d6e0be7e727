//! The publisher's own L2 copy of every book, built from [`BookEvent::Level`] events, and the
//! symbol directory built from [`BookEvent::Directory`] events.
//!
//! Each side is a vector sorted so that the best level is at the end: bids by ascending price,
//! asks by descending price. Most changes happen near the top of the book, so inserts and removals
//! there move few elements, and rank `r` (0 = best) is index `len - 1 - r`.
//!
//! [`BookEvent::Level`]: mdfh_matcher::BookEvent::Level
//! [`BookEvent::Directory`]: mdfh_matcher::BookEvent::Directory

use std::collections::HashMap;

use mdfh_feed::itch::{Side, Stock};
use mdfh_matcher::{BookStatus, LevelChange};

use crate::protocol::{Level, TRADING_STATE_UNKNOWN};

/// Instruments the directory reserves room for up front, so that a start-of-day directory burst
/// of a NASDAQ-sized universe (about 12,000 symbols) does not rehash.
const DIRECTORY_CAPACITY: usize = 16 * 1024;

/// The L2 book of one instrument.
#[derive(Debug, Clone)]
pub struct Book {
    /// Symbol from the directory; `None` until a Directory event names the locate.
    pub stock: Option<Stock>,
    pub status: BookStatus,
    /// ITCH trading state letter, or [`TRADING_STATE_UNKNOWN`].
    pub trading_state: u8,
    /// Ascending price: the best bid is last.
    bids: Vec<Level>,
    /// Descending price: the best ask is last.
    asks: Vec<Level>,
    /// Level events applied since the last periodic Digest of this instrument.
    pub(crate) updates_since_digest: u32,
}

impl Default for Book {
    fn default() -> Book {
        Book {
            stock: None,
            status: BookStatus::Ok,
            trading_state: TRADING_STATE_UNKNOWN,
            bids: Vec::new(),
            asks: Vec::new(),
            updates_since_digest: 0,
        }
    }
}

impl Book {
    /// Iterates over one side, best first.
    pub fn levels(&self, side: Side) -> impl ExactSizeIterator<Item = Level> + '_ {
        self.side(side).iter().rev().copied()
    }

    /// Returns the level at `rank` (0 = best) of one side.
    pub fn level_at_rank(&self, side: Side, rank: usize) -> Option<Level> {
        let levels = self.side(side);
        let index = levels.len().checked_sub(rank + 1)?;
        levels.get(index).copied()
    }

    /// Returns the rank (0 = best) and state of the level at `price` on one side.
    pub fn find(&self, side: Side, price: u32) -> Option<(usize, Level)> {
        let levels = self.side(side);
        let index = match side {
            Side::Buy => levels.binary_search_by(|l| l.price.cmp(&price)),
            Side::Sell => levels.binary_search_by(|l| price.cmp(&l.price)),
        }
        .ok()?;
        Some((levels.len() - 1 - index, *levels.get(index)?))
    }

    /// Returns the digest of the top `depth` levels per side (0 = all); see [`crate::digest`].
    pub fn digest(&self, depth: u16) -> u32 {
        crate::digest::book_digest(self.levels(Side::Sell), self.levels(Side::Buy), depth)
    }

    /// Returns the number of levels on one side.
    pub fn depth(&self, side: Side) -> usize {
        self.side(side).len()
    }

    fn side(&self, side: Side) -> &Vec<Level> {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }
}

/// Result of applying one level change: the level's rank and the side's new depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LevelApplied {
    /// Rank of the level (0 = best): after the change for an insert or update, before it for a
    /// removal.
    pub rank: usize,
    pub removed: bool,
    /// Levels on the side after the change.
    pub depth_after: usize,
}

/// Symbol bindings a Directory event undid, so that subscriptions can follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Rebind {
    /// The symbol the locate had before, if it was another one.
    pub old_stock_of_locate: Option<Stock>,
    /// The locate the symbol had before, if it was another one.
    pub old_locate_of_stock: Option<u16>,
}

/// Books indexed by locate code, and the symbol directory.
#[derive(Debug, Default)]
pub struct Mirror {
    books: Vec<Book>,
    directory: HashMap<Stock, u16>,
}

impl Mirror {
    pub fn new() -> Mirror {
        Mirror { books: Vec::new(), directory: HashMap::with_capacity(DIRECTORY_CAPACITY) }
    }

    /// Returns the book of `locate`, if any event has been about it since the last reset.
    pub fn book(&self, locate: u16) -> Option<&Book> {
        self.books.get(usize::from(locate))
    }

    /// Returns the locate the directory maps `stock` to.
    pub fn locate_of(&self, stock: &Stock) -> Option<u16> {
        self.directory.get(stock).copied()
    }

    /// Iterates over the locates that have a symbol, in locate order.
    pub fn named_locates(&self) -> impl Iterator<Item = u16> + '_ {
        self.books
            .iter()
            .enumerate()
            .filter(|(_, book)| book.stock.is_some())
            .filter_map(|(locate, _)| u16::try_from(locate).ok())
    }

    /// Returns the book of `locate`, creating empty books up to it. Allocates only the first time
    /// a locate above every earlier one appears.
    pub(crate) fn book_mut(&mut self, locate: u16) -> &mut Book {
        let index = usize::from(locate);
        if index >= self.books.len() {
            self.books.resize_with(index + 1, Book::default);
        }
        // In bounds: the vector was just resized to include `index`.
        &mut self.books[index]
    }

    /// Applies one level change. Returns `None` when the change removes a price the mirror does
    /// not have, which means the events and the mirror disagree.
    pub(crate) fn apply_level(&mut self, locate: u16, change: &LevelChange) -> Option<LevelApplied> {
        let book = self.book_mut(locate);
        let levels = match change.side {
            Side::Buy => &mut book.bids,
            Side::Sell => &mut book.asks,
        };
        let search = match change.side {
            Side::Buy => levels.binary_search_by(|l| l.price.cmp(&change.price)),
            Side::Sell => levels.binary_search_by(|l| change.price.cmp(&l.price)),
        };
        let level = Level { price: change.price, shares: change.shares, orders: change.orders };

        match search {
            Ok(index) if change.shares == 0 => {
                let rank = levels.len() - 1 - index;
                levels.remove(index);
                Some(LevelApplied { rank, removed: true, depth_after: levels.len() })
            }
            Ok(index) => {
                let slot = levels.get_mut(index)?;
                *slot = level;
                Some(LevelApplied { rank: levels.len() - 1 - index, removed: false, depth_after: levels.len() })
            }
            Err(_) if change.shares == 0 => None,
            Err(index) => {
                levels.insert(index, level);
                Some(LevelApplied { rank: levels.len() - 1 - index, removed: false, depth_after: levels.len() })
            }
        }
    }

    /// Names `locate` `stock`. Returns `None` when it already had that name, or the bindings it
    /// replaced: the locate's old symbol and the symbol's old locate lose their names.
    pub(crate) fn bind(&mut self, locate: u16, stock: Stock) -> Option<Rebind> {
        if self.book(locate).and_then(|b| b.stock) == Some(stock) {
            return None;
        }
        let mut rebind = Rebind::default();

        if let Some(old_stock) = self.book_mut(locate).stock.take() {
            self.directory.remove(&old_stock);
            rebind.old_stock_of_locate = Some(old_stock);
        }
        if let Some(old_locate) = self.directory.insert(stock, locate) {
            self.book_mut(old_locate).stock = None;
            rebind.old_locate_of_stock = Some(old_locate);
        }
        self.book_mut(locate).stock = Some(stock);
        Some(rebind)
    }

    /// Clears every book and the directory, keeping the memory for the next session.
    pub(crate) fn clear(&mut self) {
        for book in &mut self.books {
            book.stock = None;
            book.status = BookStatus::Ok;
            book.trading_state = TRADING_STATE_UNKNOWN;
            book.bids.clear();
            book.asks.clear();
            book.updates_since_digest = 0;
        }
        self.directory.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(side: Side, price: u32, shares: u64) -> LevelChange {
        LevelChange { side, price, shares, orders: u32::from(shares > 0) }
    }

    #[test]
    fn bids_best_first_and_ranks() {
        let mut mirror = Mirror::new();
        for price in [100, 300, 200] {
            mirror.apply_level(7, &change(Side::Buy, price, 10));
        }
        let prices: Vec<u32> = mirror.book(7).map(|b| b.levels(Side::Buy).map(|l| l.price).collect()).unwrap_or_default();
        assert_eq!(prices, [300, 200, 100]);

        let applied = mirror.apply_level(7, &change(Side::Buy, 250, 5));
        assert_eq!(applied, Some(LevelApplied { rank: 1, removed: false, depth_after: 4 }));
        let removed = mirror.apply_level(7, &change(Side::Buy, 300, 0));
        assert_eq!(removed, Some(LevelApplied { rank: 0, removed: true, depth_after: 3 }));
    }

    #[test]
    fn asks_best_first_and_ranks() {
        let mut mirror = Mirror::new();
        for price in [500, 300, 400] {
            mirror.apply_level(1, &change(Side::Sell, price, 10));
        }
        let prices: Vec<u32> = mirror.book(1).map(|b| b.levels(Side::Sell).map(|l| l.price).collect()).unwrap_or_default();
        assert_eq!(prices, [300, 400, 500]);
        assert_eq!(mirror.book(1).and_then(|b| b.level_at_rank(Side::Sell, 2)).map(|l| l.price), Some(500));
        assert_eq!(mirror.book(1).and_then(|b| b.level_at_rank(Side::Sell, 3)), None);
    }

    #[test]
    fn removal_of_unknown_price_is_none() {
        let mut mirror = Mirror::new();
        mirror.apply_level(1, &change(Side::Sell, 300, 10));
        assert_eq!(mirror.apply_level(1, &change(Side::Sell, 301, 0)), None);
        assert_eq!(mirror.book(1).map(|b| b.depth(Side::Sell)), Some(1));
    }

    #[test]
    fn bind_moves_names() {
        let mut mirror = Mirror::new();
        let aapl = Stock::new("AAPL");
        let msft = Stock::new("MSFT");
        assert_eq!(mirror.bind(1, aapl), Some(Rebind::default()));
        assert_eq!(mirror.bind(1, aapl), None);

        // AAPL moves to locate 2: locate 1 loses its name.
        let rebind = mirror.bind(2, aapl);
        assert_eq!(rebind, Some(Rebind { old_stock_of_locate: None, old_locate_of_stock: Some(1) }));
        assert_eq!(mirror.book(1).and_then(|b| b.stock), None);
        assert_eq!(mirror.locate_of(&aapl), Some(2));

        // Locate 2 is renamed MSFT: AAPL leaves the directory.
        let rebind = mirror.bind(2, msft);
        assert_eq!(rebind, Some(Rebind { old_stock_of_locate: Some(aapl), old_locate_of_stock: None }));
        assert_eq!(mirror.locate_of(&aapl), None);
        assert_eq!(mirror.named_locates().collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn clear_empties_books_and_directory() {
        let mut mirror = Mirror::new();
        mirror.bind(3, Stock::new("IBM"));
        mirror.apply_level(3, &change(Side::Buy, 100, 1));
        mirror.clear();
        assert_eq!(mirror.locate_of(&Stock::new("IBM")), None);
        assert_eq!(mirror.book(3).map(|b| b.depth(Side::Buy)), Some(0));
        assert_eq!(mirror.named_locates().count(), 0);
    }
}

//! Every instrument's book, indexed by ITCH stock locate, and the order map they share.

use std::collections::HashMap;

use mdfh_feed::itch::Stock;

use crate::book::Book;
use crate::error::{BookError, ErrorCounts};
use crate::event::BookEvent;
use crate::order::{Order, OrderMap};

mod apply;
#[cfg(test)]
mod tests;

/// Price levels per side that a new book reserves before its first allocation. A side with
/// more levels grows its vector by doubling.
pub const DEFAULT_LEVELS_PER_SIDE: usize = 16;

/// All books of one feed session, kept up to date by [`Books::apply`].
///
/// Books are created on first use: by a stock directory, a trading action, an add order, or an
/// error counted against their locate. Nothing allocates per message once the order map, the
/// book table and each book's levels have grown to their working size, which
/// [`Books::with_capacity`] reserves up front.
#[derive(Debug, Clone)]
pub struct Books {
    slots: BookSlots,
    orders: OrderMap,
    symbols: HashMap<Stock, u16>,
    errors: ErrorCounts,
}

/// The books indexed by locate, split from [`Books`] so that a book and the order map can be
/// borrowed mutably at the same time.
#[derive(Debug, Clone)]
struct BookSlots {
    books: Vec<Option<Book>>,
    levels_per_side: usize,
    /// Set by a sequence gap that names no instrument: a book created afterwards may have missed
    /// messages in the gap, so it starts stale.
    gap: bool,
}

impl BookSlots {
    /// Returns the book of `locate`, creating it if needed. A book created after a gap starts
    /// stale and emits its status.
    fn entry(&mut self, locate: u16, sink: &mut impl FnMut(BookEvent)) -> &mut Book {
        let index = usize::from(locate);
        if index >= self.books.len() {
            self.books.resize_with(index + 1, || None);
        }
        let levels_per_side = self.levels_per_side;
        let gap = self.gap;
        // In bounds: the vector was resized above to hold `index`.
        let slot = &mut self.books[index];
        let created = slot.is_none();
        let book = slot.get_or_insert_with(|| Book::new(locate, levels_per_side));
        if created && gap {
            book.mark_stale(sink);
        }
        book
    }

    fn get(&self, locate: u16) -> Option<&Book> {
        self.books.get(usize::from(locate))?.as_ref()
    }
}

impl Default for Books {
    fn default() -> Books {
        Books::with_capacity(0, 0)
    }
}

impl Books {
    /// Creates empty books with room for `orders` resting orders and locates up to
    /// `instruments - 1` before the order map or the book table allocates.
    pub fn with_capacity(orders: usize, instruments: usize) -> Books {
        let mut orders_map = OrderMap::default();
        orders_map.reserve(orders);
        Books {
            slots: BookSlots {
                books: Vec::with_capacity(instruments),
                levels_per_side: DEFAULT_LEVELS_PER_SIDE,
                gap: false,
            },
            orders: orders_map,
            symbols: HashMap::with_capacity(instruments),
            errors: ErrorCounts::default(),
        }
    }

    /// Sets the price levels per side that books created from now on reserve.
    pub fn with_levels_per_side(mut self, levels: usize) -> Books {
        self.slots.levels_per_side = levels;
        self
    }

    /// Returns the book of `locate`, if one was created.
    pub fn book(&self, locate: u16) -> Option<&Book> {
        self.slots.get(locate)
    }

    /// Returns every book, in locate order.
    pub fn iter(&self) -> impl Iterator<Item = &Book> + '_ {
        self.slots.books.iter().flatten()
    }

    /// Returns the locate of the book named `symbol` (without padding, case-sensitive).
    pub fn locate_of(&self, symbol: &str) -> Option<u16> {
        if symbol.len() > 8 {
            return None;
        }
        self.symbols.get(&Stock::new(symbol)).copied()
    }

    /// Returns the number of resting orders across all books.
    pub fn order_count(&self) -> usize {
        self.orders.len()
    }

    /// Returns the resting order `order_ref`.
    pub fn order(&self, order_ref: u64) -> Option<Order> {
        self.orders.get(&order_ref).copied()
    }

    /// Returns every resting order with its reference, in no particular order.
    pub fn orders(&self) -> impl Iterator<Item = (u64, Order)> + '_ {
        self.orders
            .iter()
            .map(|(&order_ref, &order)| (order_ref, order))
    }

    /// Returns the integrity problems counted since these books were created, over all
    /// instruments, including books a reset has since removed and messages with locate 0.
    pub fn errors(&self) -> &ErrorCounts {
        &self.errors
    }

    /// Removes every book and order, because a new feed session starts, and emits
    /// [`BookEvent::Reset`]. The capacity of the order map and the book table is kept. The
    /// totals of [`Books::errors`] are kept too.
    pub fn reset(&mut self, sink: &mut impl FnMut(BookEvent)) {
        self.orders.clear();
        self.symbols.clear();
        for slot in &mut self.slots.books {
            *slot = None;
        }
        self.slots.gap = false;
        sink(BookEvent::Reset);
    }

    /// Marks the book of `locate` stale, or every book when `locate` is `None`, after the
    /// session layer lost messages. Emits a status event for each book that was `Ok`.
    ///
    /// `None` also makes books created later start stale, since the lost messages may have been
    /// about instruments not seen yet. A book named by `Some(locate)` is created if needed.
    /// Locate 0 names no instrument and is ignored. Only [`Books::reset`] clears the mark.
    pub fn mark_stale(&mut self, locate: Option<u16>, sink: &mut impl FnMut(BookEvent)) {
        match locate {
            Some(0) => {}
            Some(locate) => self.slots.entry(locate, sink).mark_stale(sink),
            None => {
                self.slots.gap = true;
                for book in self.slots.books.iter_mut().flatten() {
                    book.mark_stale(sink);
                }
            }
        }
    }

    /// Names the book of `locate` `stock`, keeping the symbol index in step, and emits
    /// [`BookEvent::Directory`].
    fn set_stock(&mut self, locate: u16, stock: Stock, sink: &mut impl FnMut(BookEvent)) {
        let book = self.slots.entry(locate, sink);
        if let Some(old) = book.stock() {
            if old != stock && self.symbols.get(&old) == Some(&locate) {
                self.symbols.remove(&old);
            }
        }
        book.set_stock(stock);
        self.symbols.insert(stock, locate);
        sink(BookEvent::Directory { locate, stock });
    }

    /// Counts `error` in the totals and, unless it has locate 0, on its book, which it marks
    /// stale. Returns the error for `apply` to pass on.
    fn record_error(&mut self, error: BookError, sink: &mut impl FnMut(BookEvent)) -> BookError {
        self.errors.count(&error);
        if let Some(locate) = error.locate().filter(|&locate| locate != 0) {
            self.slots.entry(locate, sink).record_error(&error, sink);
        }
        error
    }
}

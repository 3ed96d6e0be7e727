//! Aggregated price levels (L2) of one side of a book.

use mdfh_feed::itch::Side;

/// One aggregated price level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    /// Price in 1/10000 dollars.
    pub price: u32,
    /// Sum of the remaining shares of the orders resting at `price`.
    pub shares: u64,
    /// Number of orders resting at `price`.
    pub orders: u32,
}

/// The price levels of one side, sorted so that the best price is the last element: bids
/// ascending, asks descending. Most updates happen at or near the top of the book, so inserting
/// or removing a level there shifts few elements, and reading the best level is `last()`.
///
/// Invariant: prices are unique, and every stored level has `shares > 0` and `orders > 0`.
#[derive(Debug, Clone)]
pub(crate) struct Ladder {
    side: Side,
    levels: Vec<Level>,
}

impl Ladder {
    pub(crate) fn with_capacity(side: Side, capacity: usize) -> Ladder {
        Ladder {
            side,
            levels: Vec::with_capacity(capacity),
        }
    }

    /// Finds `price`: `Ok(index)` of its level, or `Err(index)` where a level for it would go.
    fn position(&self, price: u32) -> Result<usize, usize> {
        match self.side {
            Side::Buy => self
                .levels
                .binary_search_by(|level| level.price.cmp(&price)),
            Side::Sell => self
                .levels
                .binary_search_by(|level| price.cmp(&level.price)),
        }
    }

    pub(crate) fn best(&self) -> Option<Level> {
        self.levels.last().copied()
    }

    /// Returns the levels best first.
    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = Level> + DoubleEndedIterator + '_ {
        self.levels.iter().rev().copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.levels.len()
    }

    pub(crate) fn get(&self, price: u32) -> Option<Level> {
        let index = self.position(price).ok()?;
        self.levels.get(index).copied()
    }

    /// Adds one order of `shares` at `price`, creating the level if needed, and returns the
    /// level's new state.
    pub(crate) fn add_order(&mut self, price: u32, shares: u64) -> Level {
        match self.position(price) {
            Ok(index) => match self.levels.get_mut(index) {
                Some(level) => {
                    level.shares += shares;
                    level.orders += 1;
                    *level
                }
                None => Level {
                    price,
                    shares: 0,
                    orders: 0,
                },
            },
            Err(index) => {
                let level = Level {
                    price,
                    shares,
                    orders: 1,
                };
                self.levels.insert(index, level);
                level
            }
        }
    }

    /// Takes `shares` off the level at `price` and, when `order_removed`, one order. Removes the
    /// level when no order or share is left. Returns the level's new state, with 0 shares and 0
    /// orders when the level went away.
    pub(crate) fn remove_shares(&mut self, price: u32, shares: u64, order_removed: bool) -> Level {
        let removed_level = Level {
            price,
            shares: 0,
            orders: 0,
        };
        let Ok(index) = self.position(price) else {
            // Every resting order is counted on its level, so this means a bug in this crate.
            debug_assert!(false, "no {:?} level at price {price}", self.side);
            return removed_level;
        };
        let Some(level) = self.levels.get_mut(index) else {
            return removed_level;
        };
        level.shares = level.shares.saturating_sub(shares);
        if order_removed {
            level.orders = level.orders.saturating_sub(1);
        }
        if level.shares == 0 || level.orders == 0 {
            self.levels.remove(index);
            return removed_level;
        }
        *level
    }

    /// Replaces `old_shares` of one order at `price` with `new_shares`, keeping the order count.
    /// Returns the level's new state.
    pub(crate) fn resize_order(&mut self, price: u32, old_shares: u64, new_shares: u64) -> Level {
        match self
            .position(price)
            .ok()
            .and_then(|index| self.levels.get_mut(index))
        {
            Some(level) => {
                level.shares = level.shares.saturating_sub(old_shares) + new_shares;
                *level
            }
            None => {
                debug_assert!(false, "no {:?} level at price {price}", self.side);
                Level {
                    price,
                    shares: 0,
                    orders: 0,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prices(ladder: &Ladder) -> Vec<u32> {
        ladder.iter().map(|level| level.price).collect()
    }

    #[test]
    fn bids_iterate_highest_first() {
        let mut bids = Ladder::with_capacity(Side::Buy, 4);
        for price in [100, 300, 200, 250] {
            bids.add_order(price, 10);
        }
        assert_eq!(prices(&bids), vec![300, 250, 200, 100]);
        assert_eq!(bids.best().map(|level| level.price), Some(300));
    }

    #[test]
    fn asks_iterate_lowest_first() {
        let mut asks = Ladder::with_capacity(Side::Sell, 4);
        for price in [300, 100, 250, 200] {
            asks.add_order(price, 10);
        }
        assert_eq!(prices(&asks), vec![100, 200, 250, 300]);
        assert_eq!(asks.best().map(|level| level.price), Some(100));
    }

    #[test]
    fn add_order_aggregates_same_price() {
        let mut bids = Ladder::with_capacity(Side::Buy, 4);
        assert_eq!(
            bids.add_order(100, 10),
            Level {
                price: 100,
                shares: 10,
                orders: 1
            }
        );
        assert_eq!(
            bids.add_order(100, 5),
            Level {
                price: 100,
                shares: 15,
                orders: 2
            }
        );
        assert_eq!(bids.len(), 1);
    }

    #[test]
    fn remove_shares_keeps_or_drops_level() {
        let mut asks = Ladder::with_capacity(Side::Sell, 4);
        asks.add_order(100, 10);
        asks.add_order(100, 5);

        assert_eq!(
            asks.remove_shares(100, 3, false),
            Level {
                price: 100,
                shares: 12,
                orders: 2
            }
        );
        assert_eq!(
            asks.remove_shares(100, 7, true),
            Level {
                price: 100,
                shares: 5,
                orders: 1
            }
        );
        assert_eq!(
            asks.remove_shares(100, 5, true),
            Level {
                price: 100,
                shares: 0,
                orders: 0
            }
        );
        assert_eq!(asks.len(), 0);
        assert_eq!(asks.get(100), None);
    }

    #[test]
    fn resize_order_keeps_order_count() {
        let mut bids = Ladder::with_capacity(Side::Buy, 4);
        bids.add_order(100, 10);
        bids.add_order(100, 20);
        assert_eq!(
            bids.resize_order(100, 10, 4),
            Level {
                price: 100,
                shares: 24,
                orders: 2
            }
        );
    }
}

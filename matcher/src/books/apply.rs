//! Applying one ITCH message to the books.

use std::collections::hash_map::Entry;

use mdfh_feed::itch::{AddOrder, Message, OrderReplace};

use super::Books;
use crate::error::BookError;
use crate::event::{BookEvent, TradeEvent, TradeKind};
use crate::order::Order;

/// The change an `E`, `C`, `X` or `D` makes to a resting order.
#[derive(Debug, Clone, Copy)]
enum Reduction {
    /// An `E` when `price` is `None`, which trades at the order's own price, or a `C` with its
    /// execution price. A `C` with printable `N` has `printable` false and emits no trade.
    Execute {
        shares: u32,
        price: Option<u32>,
        match_number: u64,
        printable: bool,
    },
    /// `X`.
    Cancel { shares: u32 },
    /// `D`.
    Delete,
}

impl Reduction {
    fn msg_type(&self) -> u8 {
        match self {
            Reduction::Execute { price: None, .. } => b'E',
            Reduction::Execute { price: Some(_), .. } => b'C',
            Reduction::Cancel { .. } => b'X',
            Reduction::Delete => b'D',
        }
    }
}

impl Books {
    /// Applies one ITCH message and passes the resulting events to `sink`, in order.
    ///
    /// `A`/`F` add an order. `E`, `C`, `X` and `D` reduce or remove one, and `E` and `C` also
    /// emit the trade. `U` replaces an order with a new reference, price and size on the same
    /// side and instrument. `P` and `Q` emit trades without touching the book. `R` names a book,
    /// `H` sets its trading state. Other message types change nothing and return `Ok`.
    ///
    /// # Errors
    ///
    /// Returns the first [`BookError`] the message caused. Every error is counted (per book and
    /// in [`Books::errors`]) and marks its book stale before this returns, and what could be
    /// applied was applied: see each variant.
    pub fn apply(
        &mut self,
        msg: &Message,
        sink: &mut impl FnMut(BookEvent),
    ) -> Result<(), BookError> {
        let locate = msg.header().stock_locate;
        match msg {
            Message::AddOrder(add) => self.add(add, msg.msg_type(), sink),
            Message::OrderExecuted(exec) => {
                let reduction = Reduction::Execute {
                    shares: exec.executed_shares,
                    price: None,
                    match_number: exec.match_number,
                    printable: true,
                };
                self.reduce(locate, exec.order_ref, reduction, sink)
            }
            Message::OrderExecutedWithPrice(exec) => {
                let reduction = Reduction::Execute {
                    shares: exec.executed_shares,
                    price: Some(exec.execution_price),
                    match_number: exec.match_number,
                    printable: exec.printable != b'N',
                };
                self.reduce(locate, exec.order_ref, reduction, sink)
            }
            Message::OrderCancel(cancel) => {
                let reduction = Reduction::Cancel {
                    shares: cancel.cancelled_shares,
                };
                self.reduce(locate, cancel.order_ref, reduction, sink)
            }
            Message::OrderDelete(delete) => {
                self.reduce(locate, delete.order_ref, Reduction::Delete, sink)
            }
            Message::OrderReplace(replace) => self.replace(replace, sink),
            Message::Trade(trade) => {
                if locate == 0 {
                    let error = BookError::InvalidLocate {
                        msg_type: b'P',
                        order_ref: Some(trade.order_ref),
                    };
                    return Err(self.record_error(error, sink));
                }
                let trade = TradeEvent {
                    price: trade.price,
                    shares: u64::from(trade.shares),
                    match_number: trade.match_number,
                    resting_side: Some(trade.side),
                    kind: TradeKind::NonDisplayed,
                };
                sink(BookEvent::Trade { locate, trade });
                Ok(())
            }
            Message::CrossTrade(cross) => {
                if locate == 0 {
                    let error = BookError::InvalidLocate {
                        msg_type: b'Q',
                        order_ref: None,
                    };
                    return Err(self.record_error(error, sink));
                }
                let trade = TradeEvent {
                    price: cross.cross_price,
                    shares: cross.shares,
                    match_number: cross.match_number,
                    resting_side: None,
                    kind: TradeKind::Cross,
                };
                sink(BookEvent::Trade { locate, trade });
                Ok(())
            }
            Message::StockDirectory(directory) => {
                if locate == 0 {
                    let error = BookError::InvalidLocate {
                        msg_type: b'R',
                        order_ref: None,
                    };
                    return Err(self.record_error(error, sink));
                }
                self.set_stock(locate, directory.stock, sink);
                Ok(())
            }
            Message::StockTradingAction(action) => {
                if locate == 0 {
                    let error = BookError::InvalidLocate {
                        msg_type: b'H',
                        order_ref: None,
                    };
                    return Err(self.record_error(error, sink));
                }
                self.slots
                    .entry(locate, sink)
                    .set_trading_state(action.trading_state);
                sink(BookEvent::TradingState {
                    locate,
                    state: action.trading_state,
                });
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Applies an `A` or `F`. The first add on a book with no symbol yet also names the book.
    fn add(
        &mut self,
        add: &AddOrder,
        msg_type: u8,
        sink: &mut impl FnMut(BookEvent),
    ) -> Result<(), BookError> {
        let locate = add.header.stock_locate;
        if locate == 0 {
            let error = BookError::InvalidLocate {
                msg_type,
                order_ref: Some(add.order_ref),
            };
            return Err(self.record_error(error, sink));
        }
        if add.shares == 0 {
            let error = BookError::ZeroShares {
                locate,
                order_ref: add.order_ref,
                msg_type,
            };
            return Err(self.record_error(error, sink));
        }

        let order = Order {
            locate,
            side: add.side,
            price: add.price,
            shares: add.shares,
        };
        let resting_locate = match self.orders.entry(add.order_ref) {
            Entry::Occupied(resting) => Some(resting.get().locate),
            Entry::Vacant(slot) => {
                slot.insert(order);
                None
            }
        };
        if let Some(resting_locate) = resting_locate {
            let error = BookError::DuplicateOrder {
                locate,
                order_ref: add.order_ref,
                resting_locate,
            };
            return Err(self.record_error(error, sink));
        }

        if self
            .slots
            .get(locate)
            .and_then(|book| book.stock())
            .is_none()
        {
            self.set_stock(locate, add.stock, sink);
        }
        let book = self.slots.entry(locate, sink);
        book.add_order(add.side, add.price, add.shares, sink);
        match book.check_crossed(add.order_ref, sink) {
            Some(crossed) => {
                self.errors.count(&crossed);
                Err(crossed)
            }
            None => Ok(()),
        }
    }

    /// Applies an `E`, `C`, `X` or `D` to the order's own book, whatever locate the message
    /// carries. An execution or cancel of more shares than remain removes the order, and the
    /// trade still reports the shares the message gives.
    fn reduce(
        &mut self,
        locate: u16,
        order_ref: u64,
        reduction: Reduction,
        sink: &mut impl FnMut(BookEvent),
    ) -> Result<(), BookError> {
        let msg_type = reduction.msg_type();
        let Some(resting) = self.orders.get_mut(&order_ref) else {
            let error = BookError::UnknownOrder {
                locate,
                order_ref,
                msg_type,
            };
            return Err(self.record_error(error, sink));
        };
        let remaining = resting.shares;
        let requested = match reduction {
            Reduction::Execute { shares, .. } | Reduction::Cancel { shares } => shares,
            Reduction::Delete => remaining,
        };
        let removed_shares = requested.min(remaining);
        resting.shares = remaining - removed_shares;
        let order = *resting;
        let order_removed = order.shares == 0;
        if order_removed {
            self.orders.remove(&order_ref);
        }

        if let Reduction::Execute {
            price,
            match_number,
            printable: true,
            ..
        } = reduction
        {
            let trade = TradeEvent {
                price: price.unwrap_or(order.price),
                shares: u64::from(requested),
                match_number,
                resting_side: Some(order.side),
                kind: TradeKind::Execution,
            };
            sink(BookEvent::Trade {
                locate: order.locate,
                trade,
            });
        }
        let book = self.slots.entry(order.locate, sink);
        book.remove_shares(order.side, order.price, removed_shares, order_removed, sink);
        // Taking shares away can only uncross a book, which returns no error.
        let _ = book.check_crossed(order_ref, sink);

        let mut first_error = None;
        if order.locate != locate {
            let error = BookError::LocateMismatch {
                locate: order.locate,
                message_locate: locate,
                order_ref,
                msg_type,
            };
            first_error.get_or_insert(self.record_error(error, sink));
        }
        if requested > remaining {
            let error = match reduction {
                Reduction::Cancel { .. } => BookError::OverCancel {
                    locate: order.locate,
                    order_ref,
                    cancelled: requested,
                    remaining,
                },
                _ => BookError::OverExecution {
                    locate: order.locate,
                    order_ref,
                    executed: requested,
                    remaining,
                },
            };
            first_error.get_or_insert(self.record_error(error, sink));
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Applies a `U`: removes the original order and adds the new one on the original's side
    /// and book. A replace at the original price changes that level once, so it emits one level
    /// event instead of a removal and an add.
    ///
    /// NOTE: the new order loses time priority on the exchange, but the books keep no queue
    /// order within a level, so nothing here records that.
    fn replace(
        &mut self,
        replace: &OrderReplace,
        sink: &mut impl FnMut(BookEvent),
    ) -> Result<(), BookError> {
        let locate = replace.header.stock_locate;
        let Some(original) = self.orders.remove(&replace.original_order_ref) else {
            let error = BookError::UnknownOrder {
                locate,
                order_ref: replace.original_order_ref,
                msg_type: b'U',
            };
            return Err(self.record_error(error, sink));
        };

        let rejection = if replace.shares == 0 {
            Some(BookError::ZeroShares {
                locate: original.locate,
                order_ref: replace.new_order_ref,
                msg_type: b'U',
            })
        } else {
            let order = Order {
                price: replace.price,
                shares: replace.shares,
                ..original
            };
            match self.orders.entry(replace.new_order_ref) {
                Entry::Occupied(_) => Some(BookError::ReplaceToExisting {
                    locate: original.locate,
                    original_order_ref: replace.original_order_ref,
                    new_order_ref: replace.new_order_ref,
                }),
                Entry::Vacant(slot) => {
                    slot.insert(order);
                    None
                }
            }
        };

        let book = self.slots.entry(original.locate, sink);
        let side = original.side;
        if rejection.is_some() {
            book.remove_shares(side, original.price, original.shares, true, sink);
        } else if replace.price == original.price {
            book.resize_order(side, original.price, original.shares, replace.shares, sink);
        } else {
            book.remove_shares(side, original.price, original.shares, true, sink);
            book.add_order(side, replace.price, replace.shares, sink);
        }

        let mut first_error = None;
        if let Some(crossed) = book.check_crossed(replace.new_order_ref, sink) {
            self.errors.count(&crossed);
            first_error = Some(crossed);
        }
        if original.locate != locate {
            let error = BookError::LocateMismatch {
                locate: original.locate,
                message_locate: locate,
                order_ref: replace.original_order_ref,
                msg_type: b'U',
            };
            first_error.get_or_insert(self.record_error(error, sink));
        }
        if let Some(error) = rejection {
            first_error.get_or_insert(self.record_error(error, sink));
        }
        first_error.map_or(Ok(()), Err)
    }
}

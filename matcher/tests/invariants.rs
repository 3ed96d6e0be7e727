//! Book invariants over random sequences of adds, executions, cancels, deletes and replaces on
//! three instruments, checked against a plain model of the resting orders after every message.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use mdfh_feed::itch::{
    AddOrder, Header, Message, OrderCancel, OrderDelete, OrderExecuted, OrderExecutedWithPrice,
    OrderReplace, Side, Stock,
};
use mdfh_matcher::{BookError, BookEvent, BookStatus, Books, Level, Order};
use proptest::prelude::*;

/// Lowest price used, in 1/10000 dollars. Bids use ticks 0..20 above it and asks ticks 10..30,
/// so books often cross and uncross.
const BASE_PRICE: u32 = 1_000_000;
const TICK: u32 = 100;

#[derive(Debug, Clone)]
enum Op {
    Add {
        locate: u16,
        side: Side,
        tick: u32,
        shares: u32,
        reuse: Option<usize>,
    },
    Execute {
        pick: usize,
        shares: u32,
    },
    ExecuteAt {
        pick: usize,
        shares: u32,
        printable: bool,
    },
    Cancel {
        pick: usize,
        shares: u32,
    },
    Delete {
        pick: usize,
    },
    Replace {
        pick: usize,
        tick: u32,
        shares: u32,
        reuse: Option<usize>,
    },
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

/// Generates an index into the live orders. Values past the end name an order that does not
/// exist.
fn pick() -> impl Strategy<Value = usize> {
    0usize..1000
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u16..=3, side(), 0u32..20, 0u32..500, prop::option::weighted(0.05, pick()))
            .prop_map(|(locate, side, tick, shares, reuse)| Op::Add { locate, side, tick, shares, reuse }),
        2 => (pick(), 1u32..400).prop_map(|(pick, shares)| Op::Execute { pick, shares }),
        1 => (pick(), 1u32..400, any::<bool>())
            .prop_map(|(pick, shares, printable)| Op::ExecuteAt { pick, shares, printable }),
        2 => (pick(), 1u32..400).prop_map(|(pick, shares)| Op::Cancel { pick, shares }),
        2 => pick().prop_map(|pick| Op::Delete { pick }),
        2 => (pick(), 0u32..20, 0u32..500, prop::option::weighted(0.05, pick()))
            .prop_map(|(pick, tick, shares, reuse)| Op::Replace { pick, tick, shares, reuse }),
    ]
}

fn price(side: Side, tick: u32) -> u32 {
    match side {
        Side::Buy => BASE_PRICE + tick * TICK,
        Side::Sell => BASE_PRICE + (tick + 10) * TICK,
    }
}

fn header(locate: u16) -> Header {
    Header {
        stock_locate: locate,
        tracking_number: 0,
        timestamp: 0,
    }
}

/// The test's own record of the resting orders and the next fresh order reference.
#[derive(Default)]
struct Model {
    orders: HashMap<u64, Order>,
    next_ref: u64,
}

impl Model {
    /// Returns the reference of live order `pick` (in reference order), or a reference that was
    /// never used when `pick` is past the end. Picks are folded so that about one in eight is
    /// unknown.
    fn order_ref(&self, pick: usize) -> u64 {
        let mut refs: Vec<u64> = self.orders.keys().copied().collect();
        refs.sort_unstable();
        let slots = refs.len() + refs.len() / 8 + 1;
        refs.get(pick % slots)
            .copied()
            .unwrap_or(u64::MAX - pick as u64)
    }

    fn fresh_ref(&mut self) -> u64 {
        self.next_ref += 1;
        self.next_ref
    }

    /// Returns the ITCH message for `op` and the error class the model expects from it, without
    /// crossing, which the books check themselves.
    fn message(&mut self, op: &Op) -> (Message, Option<&'static str>) {
        match *op {
            Op::Add {
                locate,
                side,
                tick,
                shares,
                reuse,
            } => {
                let order_ref = match reuse {
                    Some(pick) if !self.orders.is_empty() => self.order_ref(pick),
                    _ => self.fresh_ref(),
                };
                let price = price(side, tick);
                let expected = if shares == 0 {
                    Some("zero shares")
                } else if let Entry::Vacant(slot) = self.orders.entry(order_ref) {
                    slot.insert(Order {
                        locate,
                        side,
                        price,
                        shares,
                    });
                    None
                } else {
                    Some("duplicate")
                };
                let msg = Message::AddOrder(AddOrder {
                    header: header(locate),
                    order_ref,
                    side,
                    shares,
                    stock: Stock::new(
                        ["", "AAA", "BBB", "CCC"]
                            .get(usize::from(locate))
                            .copied()
                            .unwrap_or(""),
                    ),
                    price,
                    attribution: None,
                });
                (msg, expected)
            }
            Op::Execute { pick, shares } => {
                let order_ref = self.order_ref(pick);
                let (locate, expected) = self.reduce(order_ref, Some(shares));
                let msg = Message::OrderExecuted(OrderExecuted {
                    header: header(locate),
                    order_ref,
                    executed_shares: shares,
                    match_number: 1,
                });
                (msg, expected)
            }
            Op::ExecuteAt {
                pick,
                shares,
                printable,
            } => {
                let order_ref = self.order_ref(pick);
                let (locate, expected) = self.reduce(order_ref, Some(shares));
                let msg = Message::OrderExecutedWithPrice(OrderExecutedWithPrice {
                    header: header(locate),
                    order_ref,
                    executed_shares: shares,
                    match_number: 2,
                    printable: if printable { b'Y' } else { b'N' },
                    execution_price: BASE_PRICE,
                });
                (msg, expected)
            }
            Op::Cancel { pick, shares } => {
                let order_ref = self.order_ref(pick);
                let (locate, expected) = self.reduce(order_ref, Some(shares));
                let msg = Message::OrderCancel(OrderCancel {
                    header: header(locate),
                    order_ref,
                    cancelled_shares: shares,
                });
                (msg, expected)
            }
            Op::Delete { pick } => {
                let order_ref = self.order_ref(pick);
                let (locate, expected) = self.reduce(order_ref, None);
                let msg = Message::OrderDelete(OrderDelete {
                    header: header(locate),
                    order_ref,
                });
                (msg, expected)
            }
            Op::Replace {
                pick,
                tick,
                shares,
                reuse,
            } => {
                let original_order_ref = self.order_ref(pick);
                let new_order_ref = match reuse {
                    Some(pick) if !self.orders.is_empty() => self.order_ref(pick),
                    _ => self.fresh_ref(),
                };
                let original = self.orders.remove(&original_order_ref);
                let locate = original.map_or(1, |order| order.locate);
                let side = original.map_or(Side::Buy, |order| order.side);
                let price = price(side, tick);
                let expected = match original {
                    None => Some("unknown"),
                    Some(_) if shares == 0 => Some("zero shares"),
                    Some(_) if self.orders.contains_key(&new_order_ref) => {
                        Some("replace to existing")
                    }
                    Some(original) => {
                        self.orders.insert(
                            new_order_ref,
                            Order {
                                price,
                                shares,
                                ..original
                            },
                        );
                        None
                    }
                };
                let msg = Message::OrderReplace(OrderReplace {
                    header: header(locate),
                    original_order_ref,
                    new_order_ref,
                    shares,
                    price,
                });
                (msg, expected)
            }
        }
    }

    /// Takes `shares` (all when `None`) off `order_ref` and returns its locate and the expected
    /// error class.
    fn reduce(&mut self, order_ref: u64, shares: Option<u32>) -> (u16, Option<&'static str>) {
        let Some(order) = self.orders.get_mut(&order_ref) else {
            return (1, Some("unknown"));
        };
        let locate = order.locate;
        let requested = shares.unwrap_or(order.shares);
        let expected = (requested > order.shares).then_some("too many shares");
        order.shares = order.shares.saturating_sub(requested);
        if order.shares == 0 {
            self.orders.remove(&order_ref);
        }
        (locate, expected)
    }
}

fn error_class(error: &BookError) -> &'static str {
    match error {
        BookError::UnknownOrder { .. } => "unknown",
        BookError::DuplicateOrder { .. } => "duplicate",
        BookError::ReplaceToExisting { .. } => "replace to existing",
        BookError::OverExecution { .. } | BookError::OverCancel { .. } => "too many shares",
        BookError::ZeroShares { .. } => "zero shares",
        BookError::Crossed { .. } => "crossed",
        other => panic!("unexpected error {other:?}"),
    }
}

type LevelKey = (u16, bool, u32);

fn key(locate: u16, side: Side, price: u32) -> LevelKey {
    (locate, side == Side::Buy, price)
}

/// Returns every level of every book, keyed by (locate, is bid, price).
fn maintained_levels(books: &Books) -> BTreeMap<LevelKey, (u64, u32)> {
    let mut levels = BTreeMap::new();
    for book in books.iter() {
        for side in [Side::Buy, Side::Sell] {
            for level in book.levels(side) {
                levels.insert(
                    key(book.locate(), side, level.price),
                    (level.shares, level.orders),
                );
            }
        }
    }
    levels
}

/// Builds the levels again from the order map alone.
fn levels_from_orders(books: &Books) -> BTreeMap<LevelKey, (u64, u32)> {
    let mut levels: BTreeMap<LevelKey, (u64, u32)> = BTreeMap::new();
    for (_, order) in books.orders() {
        let level = levels
            .entry(key(order.locate, order.side, order.price))
            .or_default();
        level.0 += u64::from(order.shares);
        level.1 += 1;
    }
    levels
}

/// Returns the best (price, shares) of `side` of book `locate` as the level events describe it.
fn shadow_best(
    shadow: &BTreeMap<LevelKey, (u64, u32)>,
    locate: u16,
    side: Side,
) -> Option<(u32, u64)> {
    let mut prices = shadow
        .iter()
        .filter(|((level_locate, is_bid, _), _)| {
            *level_locate == locate && *is_bid == (side == Side::Buy)
        })
        .map(|((_, _, price), (shares, _))| (*price, *shares));
    match side {
        Side::Buy => prices.next_back(),
        Side::Sell => prices.next(),
    }
}

fn check_book_shape(books: &Books) -> Result<(), TestCaseError> {
    for book in books.iter() {
        let bids: Vec<Level> = book.levels(Side::Buy).collect();
        let asks: Vec<Level> = book.levels(Side::Sell).collect();
        for pair in bids.windows(2) {
            prop_assert!(
                pair[0].price > pair[1].price,
                "bids not descending: {bids:?}"
            );
        }
        for pair in asks.windows(2) {
            prop_assert!(
                pair[0].price < pair[1].price,
                "asks not ascending: {asks:?}"
            );
        }
        for level in bids.iter().chain(&asks) {
            prop_assert!(level.shares > 0, "empty level {level:?}");
            prop_assert!(level.orders > 0, "level without orders {level:?}");
        }
        prop_assert_eq!(book.best_bid(), bids.first().copied());
        prop_assert_eq!(book.best_ask(), asks.first().copied());

        let crossed = matches!((book.best_bid(), book.best_ask()), (Some(bid), Some(ask)) if bid.price >= ask.price);
        prop_assert_eq!(book.is_crossed(), crossed, "locate {}", book.locate());
        if crossed {
            prop_assert_eq!(book.status(), BookStatus::Stale);
        }
        if book.errors().total() > book.errors().crossed {
            prop_assert_eq!(
                book.status(),
                BookStatus::Stale,
                "an integrity error keeps the book stale"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn books_match_model_after_every_message(ops in prop::collection::vec(op(), 1..250)) {
        let mut books = Books::with_capacity(256, 4);
        let mut model = Model::default();
        let mut shadow: BTreeMap<LevelKey, (u64, u32)> = BTreeMap::new();

        for op in &ops {
            let (msg, expected) = model.message(op);
            let mut events = Vec::new();
            let result = books.apply(&msg, &mut |event| events.push(event));

            match (&result, expected) {
                (Ok(()), None) => {}
                (Err(error), None) => prop_assert_eq!(error_class(error), "crossed", "{:?}", op),
                (Err(error), Some(class)) => prop_assert_eq!(error_class(error), class, "{:?}", op),
                (Ok(()), Some(class)) => prop_assert!(false, "{:?}: expected a {} error", op, class),
            }

            for event in &events {
                if let BookEvent::Level { locate, change, top_changed } = *event {
                    let before = shadow_best(&shadow, locate, change.side);
                    let level_key = key(locate, change.side, change.price);
                    if change.orders == 0 {
                        prop_assert_eq!(change.shares, 0);
                        shadow.remove(&level_key);
                    } else {
                        shadow.insert(level_key, (change.shares, change.orders));
                    }
                    let after = shadow_best(&shadow, locate, change.side);
                    prop_assert_eq!(top_changed, before != after, "{:?} on {:?}", event, op);
                }
            }

            prop_assert_eq!(books.order_count(), model.orders.len());
            for (order_ref, order) in &model.orders {
                prop_assert_eq!(books.order(*order_ref), Some(*order));
            }
            check_book_shape(&books)?;
            let maintained = maintained_levels(&books);
            prop_assert_eq!(&maintained, &levels_from_orders(&books), "after {:?}", op);
            prop_assert_eq!(&maintained, &shadow, "level events after {:?}", op);
        }

        let per_book: u64 = books.iter().map(|book| book.errors().total()).sum();
        prop_assert_eq!(per_book, books.errors().total());
    }
}

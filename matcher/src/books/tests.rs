//! The effect of each message type and each integrity problem on the books, with the exact events.

use mdfh_feed::itch::{
    AddOrder, BrokenTrade, CrossTrade, Header, Message, OrderCancel, OrderDelete, OrderExecuted,
    OrderExecutedWithPrice, OrderReplace, Side, Stock, StockDirectory, StockTradingAction,
    SystemEvent, Trade,
};

use super::Books;
use crate::error::BookError;
use crate::event::{BookEvent, BookStatus, LevelChange, TradeEvent, TradeKind};
use crate::level::Level;
use crate::order::Order;

fn header(locate: u16) -> Header {
    Header {
        stock_locate: locate,
        tracking_number: 0,
        timestamp: 34_200_000_000_000,
    }
}

fn add(locate: u16, order_ref: u64, side: Side, shares: u32, price: u32) -> Message {
    Message::AddOrder(AddOrder {
        header: header(locate),
        order_ref,
        side,
        shares,
        stock: Stock::new("AAPL"),
        price,
        attribution: None,
    })
}

fn execute(locate: u16, order_ref: u64, shares: u32, match_number: u64) -> Message {
    Message::OrderExecuted(OrderExecuted {
        header: header(locate),
        order_ref,
        executed_shares: shares,
        match_number,
    })
}

fn execute_at(locate: u16, order_ref: u64, shares: u32, printable: u8, price: u32) -> Message {
    Message::OrderExecutedWithPrice(OrderExecutedWithPrice {
        header: header(locate),
        order_ref,
        executed_shares: shares,
        match_number: 77,
        printable,
        execution_price: price,
    })
}

fn cancel(locate: u16, order_ref: u64, shares: u32) -> Message {
    Message::OrderCancel(OrderCancel {
        header: header(locate),
        order_ref,
        cancelled_shares: shares,
    })
}

fn delete(locate: u16, order_ref: u64) -> Message {
    Message::OrderDelete(OrderDelete {
        header: header(locate),
        order_ref,
    })
}

fn replace(
    locate: u16,
    original_order_ref: u64,
    new_order_ref: u64,
    shares: u32,
    price: u32,
) -> Message {
    Message::OrderReplace(OrderReplace {
        header: header(locate),
        original_order_ref,
        new_order_ref,
        shares,
        price,
    })
}

fn directory(locate: u16, symbol: &str) -> Message {
    Message::StockDirectory(StockDirectory {
        header: header(locate),
        stock: Stock::new(symbol),
        market_category: b'Q',
        financial_status_indicator: b'N',
        round_lot_size: 100,
        round_lots_only: b'N',
        issue_classification: b'C',
        issue_sub_type: *b"Z ",
        authenticity: b'P',
        short_sale_threshold_indicator: b'N',
        ipo_flag: b'N',
        luld_reference_price_tier: b'1',
        etp_flag: b'N',
        etp_leverage_factor: 0,
        inverse_indicator: b'N',
    })
}

fn trading_action(locate: u16, state: u8) -> Message {
    Message::StockTradingAction(StockTradingAction {
        header: header(locate),
        stock: Stock::new("AAPL"),
        trading_state: state,
        reserved: 0,
        reason: *b"    ",
    })
}

/// Applies `msg` and returns what `apply` returned with the events it emitted.
fn apply(books: &mut Books, msg: Message) -> (Result<(), BookError>, Vec<BookEvent>) {
    let mut events = Vec::new();
    let result = books.apply(&msg, &mut |event| events.push(event));
    (result, events)
}

/// Applies `msg`, asserts that it succeeded, and returns its events.
fn apply_ok(books: &mut Books, msg: Message) -> Vec<BookEvent> {
    let (result, events) = apply(books, msg);
    assert_eq!(result, Ok(()), "apply({msg:?})");
    events
}

fn level(
    locate: u16,
    side: Side,
    price: u32,
    shares: u64,
    orders: u32,
    top_changed: bool,
) -> BookEvent {
    BookEvent::Level {
        locate,
        change: LevelChange {
            side,
            price,
            shares,
            orders,
        },
        top_changed,
    }
}

fn status(locate: u16, status: BookStatus) -> BookEvent {
    BookEvent::Status { locate, status }
}

fn execution(locate: u16, price: u32, shares: u64, match_number: u64, side: Side) -> BookEvent {
    BookEvent::Trade {
        locate,
        trade: TradeEvent {
            price,
            shares,
            match_number,
            resting_side: Some(side),
            kind: TradeKind::Execution,
        },
    }
}

/// Books with locate 1 named AAPL and one bid (ref 1, 100 @ 1000000) and one ask (ref 2,
/// 200 @ 1010000).
fn two_sided() -> Books {
    let mut books = Books::with_capacity(64, 8);
    apply_ok(&mut books, directory(1, "AAPL"));
    apply_ok(&mut books, add(1, 1, Side::Buy, 100, 1_000_000));
    apply_ok(&mut books, add(1, 2, Side::Sell, 200, 1_010_000));
    books
}

#[test]
fn first_add_names_book_and_adds_level() {
    let mut books = Books::default();
    let events = apply_ok(&mut books, add(1, 10, Side::Buy, 100, 1_000_000));

    let expected = vec![
        BookEvent::Directory {
            locate: 1,
            stock: Stock::new("AAPL"),
        },
        level(1, Side::Buy, 1_000_000, 100, 1, true),
    ];
    assert_eq!(events, expected);
    assert_eq!(books.locate_of("AAPL"), Some(1));
    let book = books.book(1).expect("book 1 exists");
    assert_eq!(book.stock(), Some(Stock::new("AAPL")));
    assert_eq!(
        book.best_bid(),
        Some(Level {
            price: 1_000_000,
            shares: 100,
            orders: 1
        })
    );
    assert_eq!(book.best_ask(), None);
    assert_eq!(book.status(), BookStatus::Ok);
    let order = Order {
        locate: 1,
        side: Side::Buy,
        price: 1_000_000,
        shares: 100,
    };
    assert_eq!(books.order(10), Some(order));
    assert_eq!(books.order_count(), 1);
}

#[test]
fn add_aggregates_and_flags_top_changes() {
    let mut books = two_sided();

    let same_price = apply_ok(&mut books, add(1, 3, Side::Buy, 50, 1_000_000));
    assert_eq!(
        same_price,
        vec![level(1, Side::Buy, 1_000_000, 150, 2, true)]
    );

    let below_best = apply_ok(&mut books, add(1, 4, Side::Buy, 70, 990_000));
    assert_eq!(below_best, vec![level(1, Side::Buy, 990_000, 70, 1, false)]);

    let new_best_ask = apply_ok(&mut books, add(1, 5, Side::Sell, 30, 1_005_000));
    assert_eq!(
        new_best_ask,
        vec![level(1, Side::Sell, 1_005_000, 30, 1, true)]
    );

    let book = books.book(1).expect("book 1 exists");
    let bids: Vec<Level> = book.levels(Side::Buy).collect();
    let expected_bids = vec![
        Level {
            price: 1_000_000,
            shares: 150,
            orders: 2,
        },
        Level {
            price: 990_000,
            shares: 70,
            orders: 1,
        },
    ];
    assert_eq!(bids, expected_bids);
    let asks: Vec<u32> = book.levels(Side::Sell).map(|level| level.price).collect();
    assert_eq!(asks, vec![1_005_000, 1_010_000]);
    assert_eq!(book.top_levels(Side::Sell, 1).count(), 1);
    assert_eq!(book.depth(Side::Sell), 2);
    assert_eq!(
        book.level_at(Side::Buy, 990_000),
        Some(Level {
            price: 990_000,
            shares: 70,
            orders: 1
        })
    );
}

#[test]
fn add_with_attribution_is_an_add() {
    let mut books = Books::default();
    let msg = Message::AddOrder(AddOrder {
        header: header(2),
        order_ref: 9,
        side: Side::Sell,
        shares: 300,
        stock: Stock::new("MSFT"),
        price: 2_500_000,
        attribution: Some(*b"GSCO"),
    });
    let events = apply_ok(&mut books, msg);

    assert_eq!(events.len(), 2);
    assert_eq!(
        events.get(1),
        Some(&level(2, Side::Sell, 2_500_000, 300, 1, true))
    );
    assert_eq!(books.locate_of("MSFT"), Some(2));
}

#[test]
fn execute_trades_at_order_price() {
    let mut books = two_sided();

    let partial = apply_ok(&mut books, execute(1, 1, 40, 500));
    let expected = vec![
        execution(1, 1_000_000, 40, 500, Side::Buy),
        level(1, Side::Buy, 1_000_000, 60, 1, true),
    ];
    assert_eq!(partial, expected);
    assert_eq!(books.order(1).map(|order| order.shares), Some(60));

    let rest = apply_ok(&mut books, execute(1, 1, 60, 501));
    let expected = vec![
        execution(1, 1_000_000, 60, 501, Side::Buy),
        level(1, Side::Buy, 1_000_000, 0, 0, true),
    ];
    assert_eq!(rest, expected);
    assert_eq!(books.order(1), None);
    assert_eq!(books.order_count(), 1);
    assert_eq!(books.book(1).and_then(|book| book.best_bid()), None);
}

#[test]
fn execute_with_price_trades_at_execution_price() {
    let mut books = two_sided();
    let events = apply_ok(&mut books, execute_at(1, 2, 50, b'Y', 1_009_000));

    let expected = vec![
        execution(1, 1_009_000, 50, 77, Side::Sell),
        level(1, Side::Sell, 1_010_000, 150, 1, true),
    ];
    assert_eq!(events, expected);
}

#[test]
fn non_printable_execution_emits_no_trade() {
    let mut books = two_sided();
    let events = apply_ok(&mut books, execute_at(1, 2, 50, b'N', 1_009_000));

    assert_eq!(events, vec![level(1, Side::Sell, 1_010_000, 150, 1, true)]);
    assert_eq!(books.order(2).map(|order| order.shares), Some(150));
}

#[test]
fn cancel_reduces_order() {
    let mut books = two_sided();
    apply_ok(&mut books, add(1, 3, Side::Sell, 10, 1_020_000));

    let events = apply_ok(&mut books, cancel(1, 3, 4));
    assert_eq!(events, vec![level(1, Side::Sell, 1_020_000, 6, 1, false)]);
    assert_eq!(books.order(3).map(|order| order.shares), Some(6));

    let events = apply_ok(&mut books, cancel(1, 3, 6));
    assert_eq!(events, vec![level(1, Side::Sell, 1_020_000, 0, 0, false)]);
    assert_eq!(books.order(3), None);
}

#[test]
fn delete_removes_order() {
    let mut books = two_sided();
    apply_ok(&mut books, add(1, 3, Side::Buy, 25, 1_000_000));

    let events = apply_ok(&mut books, delete(1, 1));
    assert_eq!(events, vec![level(1, Side::Buy, 1_000_000, 25, 1, true)]);
    assert_eq!(books.order(1), None);
    assert_eq!(books.order_count(), 2);
}

#[test]
fn replace_moves_order_to_new_price() {
    let mut books = two_sided();
    let events = apply_ok(&mut books, replace(1, 1, 11, 80, 1_001_000));

    let expected = vec![
        level(1, Side::Buy, 1_000_000, 0, 0, true),
        level(1, Side::Buy, 1_001_000, 80, 1, true),
    ];
    assert_eq!(events, expected);
    assert_eq!(books.order(1), None);
    let order = Order {
        locate: 1,
        side: Side::Buy,
        price: 1_001_000,
        shares: 80,
    };
    assert_eq!(books.order(11), Some(order));
    assert_eq!(books.order_count(), 2);
}

#[test]
fn replace_at_same_price_emits_one_level() {
    let mut books = two_sided();
    apply_ok(&mut books, add(1, 3, Side::Sell, 40, 1_010_000));

    let events = apply_ok(&mut books, replace(1, 2, 12, 150, 1_010_000));
    assert_eq!(events, vec![level(1, Side::Sell, 1_010_000, 190, 2, true)]);
    assert_eq!(books.order(12).map(|order| order.side), Some(Side::Sell));
}

#[test]
fn non_displayed_trade_leaves_book() {
    let mut books = Books::default();
    let msg = Message::Trade(Trade {
        header: header(4),
        order_ref: 0,
        side: Side::Sell,
        shares: 120,
        stock: Stock::new("QQQ"),
        price: 4_000_000,
        match_number: 900,
    });
    let events = apply_ok(&mut books, msg);

    let trade = TradeEvent {
        price: 4_000_000,
        shares: 120,
        match_number: 900,
        resting_side: Some(Side::Sell),
        kind: TradeKind::NonDisplayed,
    };
    assert_eq!(events, vec![BookEvent::Trade { locate: 4, trade }]);
    assert!(books.book(4).is_none());
}

#[test]
fn cross_trade_leaves_book() {
    let mut books = two_sided();
    let msg = Message::CrossTrade(CrossTrade {
        header: header(1),
        shares: 1_000_000,
        stock: Stock::new("AAPL"),
        cross_price: 1_005_000,
        match_number: 901,
        cross_type: b'O',
    });
    let events = apply_ok(&mut books, msg);

    let trade = TradeEvent {
        price: 1_005_000,
        shares: 1_000_000,
        match_number: 901,
        resting_side: None,
        kind: TradeKind::Cross,
    };
    assert_eq!(events, vec![BookEvent::Trade { locate: 1, trade }]);
    assert_eq!(books.order_count(), 2);
}

#[test]
fn directory_names_book() {
    let mut books = Books::default();
    let events = apply_ok(&mut books, directory(7, "IBM"));
    let expected = BookEvent::Directory {
        locate: 7,
        stock: Stock::new("IBM"),
    };
    assert_eq!(events, vec![expected]);
    assert_eq!(books.locate_of("IBM"), Some(7));
    assert_eq!(
        books.book(7).and_then(|book| book.stock()),
        Some(Stock::new("IBM"))
    );

    apply_ok(&mut books, directory(7, "IBMX"));
    assert_eq!(books.locate_of("IBM"), None);
    assert_eq!(books.locate_of("IBMX"), Some(7));
    assert_eq!(books.locate_of("IBMXLONGNAME"), None);
}

#[test]
fn add_keeps_directory_name() {
    let mut books = Books::default();
    apply_ok(&mut books, directory(1, "AAPL.W"));
    let events = apply_ok(&mut books, add(1, 1, Side::Buy, 100, 1_000_000));

    assert_eq!(events, vec![level(1, Side::Buy, 1_000_000, 100, 1, true)]);
    assert_eq!(
        books.book(1).and_then(|book| book.stock()),
        Some(Stock::new("AAPL.W"))
    );
}

#[test]
fn trading_action_sets_state() {
    let mut books = Books::default();
    assert_eq!(books.book(1).map(|book| book.trading_state()), None);

    let events = apply_ok(&mut books, trading_action(1, b'H'));
    assert_eq!(
        events,
        vec![BookEvent::TradingState {
            locate: 1,
            state: b'H'
        }]
    );
    assert_eq!(books.book(1).map(|book| book.trading_state()), Some(b'H'));

    apply_ok(&mut books, trading_action(1, b'T'));
    assert_eq!(books.book(1).map(|book| book.trading_state()), Some(b'T'));
}

#[test]
fn other_messages_change_nothing() {
    let mut books = two_sided();
    let system = Message::SystemEvent(SystemEvent {
        header: header(0),
        event_code: b'O',
    });
    let broken = Message::BrokenTrade(BrokenTrade {
        header: header(1),
        match_number: 500,
    });
    for msg in [system, broken] {
        assert_eq!(apply_ok(&mut books, msg), vec![]);
    }
    assert_eq!(books.order_count(), 2);
    assert_eq!(books.errors().total(), 0);
}

#[test]
fn unknown_order_marks_stale() {
    let messages = [
        (execute(3, 99, 10, 1), b'E'),
        (execute_at(3, 99, 10, b'Y', 5), b'C'),
        (cancel(3, 99, 10), b'X'),
        (delete(3, 99), b'D'),
        (replace(3, 99, 100, 10, 5), b'U'),
    ];
    for (msg, msg_type) in messages {
        let mut books = two_sided();
        let (result, events) = apply(&mut books, msg);

        let expected = BookError::UnknownOrder {
            locate: 3,
            order_ref: 99,
            msg_type,
        };
        assert_eq!(result, Err(expected));
        assert_eq!(
            events,
            vec![status(3, BookStatus::Stale)],
            "type {}",
            msg_type as char
        );
        let book = books.book(3).expect("the error created book 3");
        assert_eq!(book.errors().unknown_order, 1);
        assert_eq!(book.status(), BookStatus::Stale);
        assert_eq!(books.errors().unknown_order, 1);
        assert_eq!(
            books.book(1).map(|book| book.status()),
            Some(BookStatus::Ok)
        );
        assert_eq!(books.order(100), None);
    }
}

#[test]
fn duplicate_add_keeps_resting_order() {
    let mut books = two_sided();
    let (result, events) = apply(&mut books, add(1, 1, Side::Sell, 5, 2_000_000));

    let expected = BookError::DuplicateOrder {
        locate: 1,
        order_ref: 1,
        resting_locate: 1,
    };
    assert_eq!(result, Err(expected));
    assert_eq!(events, vec![status(1, BookStatus::Stale)]);
    assert_eq!(books.order(1).map(|order| order.side), Some(Side::Buy));
    assert_eq!(books.book(1).map(|book| book.depth(Side::Sell)), Some(1));
    assert_eq!(
        books.book(1).map(|book| book.errors().duplicate_order),
        Some(1)
    );
}

#[test]
fn over_execution_removes_order() {
    let mut books = two_sided();
    let (result, events) = apply(&mut books, execute(1, 1, 130, 502));

    let expected = BookError::OverExecution {
        locate: 1,
        order_ref: 1,
        executed: 130,
        remaining: 100,
    };
    assert_eq!(result, Err(expected));
    let expected_events = vec![
        execution(1, 1_000_000, 130, 502, Side::Buy),
        level(1, Side::Buy, 1_000_000, 0, 0, true),
        status(1, BookStatus::Stale),
    ];
    assert_eq!(events, expected_events);
    assert_eq!(books.order(1), None);
    assert_eq!(
        books.book(1).map(|book| book.errors().over_execution),
        Some(1)
    );
}

#[test]
fn over_cancel_removes_order() {
    let mut books = two_sided();
    let (result, events) = apply(&mut books, cancel(1, 2, 250));

    let expected = BookError::OverCancel {
        locate: 1,
        order_ref: 2,
        cancelled: 250,
        remaining: 200,
    };
    assert_eq!(result, Err(expected));
    let expected_events = vec![
        level(1, Side::Sell, 1_010_000, 0, 0, true),
        status(1, BookStatus::Stale),
    ];
    assert_eq!(events, expected_events);
    assert_eq!(books.order(2), None);
    assert_eq!(books.book(1).map(|book| book.errors().over_cancel), Some(1));
}

#[test]
fn replace_to_existing_removes_original() {
    let mut books = two_sided();
    let (result, events) = apply(&mut books, replace(1, 1, 2, 10, 1_000_000));

    let expected = BookError::ReplaceToExisting {
        locate: 1,
        original_order_ref: 1,
        new_order_ref: 2,
    };
    assert_eq!(result, Err(expected));
    let expected_events = vec![
        level(1, Side::Buy, 1_000_000, 0, 0, true),
        status(1, BookStatus::Stale),
    ];
    assert_eq!(events, expected_events);
    assert_eq!(books.order(1), None);
    assert_eq!(books.order(2).map(|order| order.side), Some(Side::Sell));
    assert_eq!(
        books.book(1).map(|book| book.errors().replace_to_existing),
        Some(1)
    );
}

#[test]
fn zero_share_add_not_added() {
    let mut books = Books::default();
    let (result, events) = apply(&mut books, add(1, 5, Side::Buy, 0, 1_000_000));

    let expected = BookError::ZeroShares {
        locate: 1,
        order_ref: 5,
        msg_type: b'A',
    };
    assert_eq!(result, Err(expected));
    assert_eq!(events, vec![status(1, BookStatus::Stale)]);
    assert_eq!(books.order(5), None);
    assert_eq!(books.book(1).map(|book| book.depth(Side::Buy)), Some(0));
}

#[test]
fn zero_share_replace_removes_original() {
    let mut books = two_sided();
    let (result, events) = apply(&mut books, replace(1, 2, 20, 0, 1_010_000));

    let expected = BookError::ZeroShares {
        locate: 1,
        order_ref: 20,
        msg_type: b'U',
    };
    assert_eq!(result, Err(expected));
    let expected_events = vec![
        level(1, Side::Sell, 1_010_000, 0, 0, true),
        status(1, BookStatus::Stale),
    ];
    assert_eq!(events, expected_events);
    assert_eq!(books.order(2), None);
    assert_eq!(books.order(20), None);
}

#[test]
fn crossed_book_recovers_when_uncrossed() {
    let mut books = two_sided();

    let (result, events) = apply(&mut books, add(1, 3, Side::Buy, 10, 1_010_000));
    let expected = BookError::Crossed {
        locate: 1,
        order_ref: 3,
        bid: 1_010_000,
        ask: 1_010_000,
    };
    assert_eq!(result, Err(expected));
    let expected_events = vec![
        level(1, Side::Buy, 1_010_000, 10, 1, true),
        status(1, BookStatus::Stale),
    ];
    assert_eq!(events, expected_events);
    let book = books.book(1).expect("book 1 exists");
    assert!(book.is_crossed());
    assert_eq!(book.errors().crossed, 1);

    // Still crossed: no new error, no status event.
    let events = apply_ok(&mut books, add(1, 4, Side::Buy, 10, 1_020_000));
    assert_eq!(events, vec![level(1, Side::Buy, 1_020_000, 10, 1, true)]);
    let events = apply_ok(&mut books, delete(1, 4));
    assert_eq!(events, vec![level(1, Side::Buy, 1_020_000, 0, 0, true)]);

    let events = apply_ok(&mut books, delete(1, 3));
    let expected_events = vec![
        level(1, Side::Buy, 1_010_000, 0, 0, true),
        status(1, BookStatus::Ok),
    ];
    assert_eq!(events, expected_events);
    let book = books.book(1).expect("book 1 exists");
    assert!(!book.is_crossed());
    assert_eq!(book.status(), BookStatus::Ok);
    assert_eq!(book.errors().crossed, 1);
    assert_eq!(books.errors().crossed, 1);
}

#[test]
fn replace_can_cross_book() {
    let mut books = two_sided();
    let (result, events) = apply(&mut books, replace(1, 2, 22, 200, 990_000));

    let expected = BookError::Crossed {
        locate: 1,
        order_ref: 22,
        bid: 1_000_000,
        ask: 990_000,
    };
    assert_eq!(result, Err(expected));
    let expected_events = vec![
        level(1, Side::Sell, 1_010_000, 0, 0, true),
        level(1, Side::Sell, 990_000, 200, 1, true),
        status(1, BookStatus::Stale),
    ];
    assert_eq!(events, expected_events);
}

#[test]
fn crossed_and_damaged_stays_stale() {
    let mut books = two_sided();
    let (crossing, _) = apply(&mut books, add(1, 3, Side::Buy, 10, 1_015_000));
    assert!(matches!(crossing, Err(BookError::Crossed { .. })));

    let (unknown, events) = apply(&mut books, cancel(1, 99, 1));
    assert!(matches!(unknown, Err(BookError::UnknownOrder { .. })));
    assert_eq!(events, vec![], "the book was already stale");

    let events = apply_ok(&mut books, delete(1, 3));
    assert_eq!(events, vec![level(1, Side::Buy, 1_015_000, 0, 0, true)]);
    let book = books.book(1).expect("book 1 exists");
    assert!(!book.is_crossed());
    assert_eq!(book.status(), BookStatus::Stale);
}

#[test]
fn locate_zero_is_rejected() {
    let mut books = Books::default();
    let add_zero = add(0, 1, Side::Buy, 100, 1_000_000);
    let cross_zero = Message::CrossTrade(CrossTrade {
        header: header(0),
        shares: 10,
        stock: Stock::new("AAPL"),
        cross_price: 1,
        match_number: 1,
        cross_type: b'C',
    });
    let cases = [
        (add_zero, b'A', Some(1)),
        (directory(0, "AAPL"), b'R', None),
        (trading_action(0, b'T'), b'H', None),
        (cross_zero, b'Q', None),
    ];
    for (msg, msg_type, order_ref) in cases {
        let (result, events) = apply(&mut books, msg);
        assert_eq!(
            result,
            Err(BookError::InvalidLocate {
                msg_type,
                order_ref
            })
        );
        assert_eq!(events, vec![], "type {}", msg_type as char);
    }
    assert_eq!(books.errors().invalid_locate, 4);
    assert_eq!(books.iter().count(), 0);
    assert_eq!(books.order_count(), 0);
}

#[test]
fn locate_mismatch_applies_to_order_book() {
    let mut books = two_sided();
    let (result, events) = apply(&mut books, cancel(5, 1, 30));

    let expected = BookError::LocateMismatch {
        locate: 1,
        message_locate: 5,
        order_ref: 1,
        msg_type: b'X',
    };
    assert_eq!(result, Err(expected));
    let expected_events = vec![
        level(1, Side::Buy, 1_000_000, 70, 1, true),
        status(1, BookStatus::Stale),
    ];
    assert_eq!(events, expected_events);
    assert!(books.book(5).is_none());
    assert_eq!(
        books.book(1).map(|book| book.errors().locate_mismatch),
        Some(1)
    );
}

#[test]
fn reset_clears_books_and_orders() {
    let mut books = two_sided();
    let _ = apply(&mut books, delete(1, 99));

    let mut events = Vec::new();
    books.reset(&mut |event| events.push(event));

    assert_eq!(events, vec![BookEvent::Reset]);
    assert_eq!(books.order_count(), 0);
    assert_eq!(books.order(1), None);
    assert!(books.book(1).is_none());
    assert_eq!(books.iter().count(), 0);
    assert_eq!(books.locate_of("AAPL"), None);
    assert_eq!(books.errors().unknown_order, 1, "totals survive a reset");

    // The same references are valid again in the new session.
    let events = apply_ok(&mut books, add(1, 1, Side::Buy, 100, 1_000_000));
    assert_eq!(events.len(), 2);
    assert_eq!(
        books.book(1).map(|book| book.status()),
        Some(BookStatus::Ok)
    );
}

#[test]
fn mark_stale_one_book() {
    let mut books = two_sided();
    apply_ok(&mut books, directory(2, "MSFT"));
    let mut events = Vec::new();

    books.mark_stale(Some(1), &mut |event| events.push(event));
    assert_eq!(events, vec![status(1, BookStatus::Stale)]);
    assert_eq!(
        books.book(2).map(|book| book.status()),
        Some(BookStatus::Ok)
    );

    events.clear();
    books.mark_stale(Some(1), &mut |event| events.push(event));
    assert_eq!(events, vec![], "already stale");

    books.mark_stale(Some(0), &mut |event| events.push(event));
    assert_eq!(events, vec![]);

    books.mark_stale(Some(9), &mut |event| events.push(event));
    assert_eq!(events, vec![status(9, BookStatus::Stale)]);
}

#[test]
fn mark_stale_all_books_and_later_ones() {
    let mut books = two_sided();
    apply_ok(&mut books, directory(2, "MSFT"));
    let mut events = Vec::new();

    books.mark_stale(None, &mut |event| events.push(event));
    assert_eq!(
        events,
        vec![status(1, BookStatus::Stale), status(2, BookStatus::Stale)]
    );

    let events = apply_ok(&mut books, directory(3, "IBM"));
    let expected = vec![
        status(3, BookStatus::Stale),
        BookEvent::Directory {
            locate: 3,
            stock: Stock::new("IBM"),
        },
    ];
    assert_eq!(events, expected);

    let mut events = Vec::new();
    books.reset(&mut |event| events.push(event));
    let events = apply_ok(&mut books, directory(4, "ORCL"));
    assert_eq!(events.len(), 1, "a reset ends the gap: {events:?}");
    assert_eq!(
        books.book(4).map(|book| book.status()),
        Some(BookStatus::Ok)
    );
}

#[test]
fn error_counts_sum_per_book_and_total() {
    let mut books = two_sided();
    let _ = apply(&mut books, delete(1, 99));
    let _ = apply(&mut books, delete(2, 98));
    let _ = apply(&mut books, cancel(1, 2, 500));
    let _ = apply(&mut books, add(0, 50, Side::Buy, 1, 1));

    assert_eq!(books.book(1).map(|book| book.errors().total()), Some(2));
    assert_eq!(books.book(2).map(|book| book.errors().total()), Some(1));
    assert_eq!(books.errors().total(), 4);
    assert_eq!(books.errors().unknown_order, 2);
    assert_eq!(books.errors().over_cancel, 1);
    assert_eq!(books.errors().invalid_locate, 1);
}

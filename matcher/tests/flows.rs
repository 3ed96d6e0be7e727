//! Typical message flows of a trading day, encoded to ITCH bytes, decoded again and applied, so
//! that the books see exactly what the decoder produces from the wire.

use mdfh_feed::itch::{
    self, AddOrder, BrokenTrade, CrossTrade, Header, Message, OrderCancel, OrderDelete,
    OrderExecuted, OrderExecutedWithPrice, OrderReplace, Side, Stock, StockDirectory,
    StockTradingAction, SystemEvent, Trade,
};
use mdfh_matcher::{
    BookError, BookEvent, BookStatus, Books, Level, LevelChange, TradeEvent, TradeKind,
};

const AAPL: u16 = 13;
const MSFT: u16 = 42;

fn header(locate: u16, timestamp: u64) -> Header {
    Header {
        stock_locate: locate,
        tracking_number: 1,
        timestamp,
    }
}

fn stock(locate: u16) -> Stock {
    match locate {
        AAPL => Stock::new("AAPL"),
        MSFT => Stock::new("MSFT"),
        _ => Stock::default(),
    }
}

fn directory(locate: u16) -> Message {
    Message::StockDirectory(StockDirectory {
        header: header(locate, 1),
        stock: stock(locate),
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

fn trading(locate: u16) -> Message {
    Message::StockTradingAction(StockTradingAction {
        header: header(locate, 2),
        stock: stock(locate),
        trading_state: b'T',
        reserved: b' ',
        reason: *b"    ",
    })
}

fn add(locate: u16, order_ref: u64, side: Side, shares: u32, price: u32) -> Message {
    Message::AddOrder(AddOrder {
        header: header(locate, 3),
        order_ref,
        side,
        shares,
        stock: stock(locate),
        price,
        attribution: None,
    })
}

fn execute(locate: u16, order_ref: u64, shares: u32, match_number: u64) -> Message {
    Message::OrderExecuted(OrderExecuted {
        header: header(locate, 4),
        order_ref,
        executed_shares: shares,
        match_number,
    })
}

/// Returns a morning on two instruments: directory, trading state, adds on both sides, executions
/// with and without price, a non-printable execution, a cancel, a replace, a delete, a
/// non-displayed trade, an opening cross and a broken trade.
fn morning() -> Vec<Message> {
    vec![
        Message::SystemEvent(SystemEvent {
            header: header(0, 0),
            event_code: b'O',
        }),
        directory(AAPL),
        directory(MSFT),
        trading(AAPL),
        trading(MSFT),
        add(AAPL, 1001, Side::Buy, 100, 1_500_000),
        add(AAPL, 1002, Side::Buy, 200, 1_499_900),
        Message::AddOrder(AddOrder {
            header: header(AAPL, 3),
            order_ref: 1003,
            side: Side::Sell,
            shares: 300,
            stock: stock(AAPL),
            price: 1_500_100,
            attribution: Some(*b"GSCO"),
        }),
        add(AAPL, 1004, Side::Sell, 100, 1_500_200),
        add(AAPL, 1005, Side::Buy, 50, 1_500_000),
        add(MSFT, 2001, Side::Buy, 500, 3_000_000),
        add(MSFT, 2002, Side::Sell, 500, 3_000_500),
        Message::CrossTrade(CrossTrade {
            header: header(MSFT, 5),
            shares: 20_000,
            stock: stock(MSFT),
            cross_price: 3_000_200,
            match_number: 4,
            cross_type: b'O',
        }),
        execute(AAPL, 1001, 100, 1),
        Message::OrderExecutedWithPrice(OrderExecutedWithPrice {
            header: header(AAPL, 6),
            order_ref: 1003,
            executed_shares: 100,
            match_number: 2,
            printable: b'Y',
            execution_price: 1_500_050,
        }),
        Message::OrderExecutedWithPrice(OrderExecutedWithPrice {
            header: header(AAPL, 7),
            order_ref: 1003,
            executed_shares: 50,
            match_number: 6,
            printable: b'N',
            execution_price: 1_500_050,
        }),
        Message::OrderCancel(OrderCancel {
            header: header(AAPL, 8),
            order_ref: 1002,
            cancelled_shares: 50,
        }),
        Message::OrderReplace(OrderReplace {
            header: header(AAPL, 9),
            original_order_ref: 1004,
            new_order_ref: 1006,
            shares: 100,
            price: 1_500_150,
        }),
        Message::OrderDelete(OrderDelete {
            header: header(AAPL, 10),
            order_ref: 1005,
        }),
        Message::Trade(Trade {
            header: header(AAPL, 11),
            order_ref: 0,
            side: Side::Buy,
            shares: 10,
            stock: stock(AAPL),
            price: 1_500_050,
            match_number: 3,
        }),
        Message::BrokenTrade(BrokenTrade {
            header: header(AAPL, 12),
            match_number: 2,
        }),
        execute(MSFT, 2002, 500, 5),
    ]
}

/// Frames `messages` as NASDAQ BinaryFILE (a big-endian u16 length before each message) and
/// decodes them back.
fn through_wire(messages: &[Message]) -> Vec<Message> {
    let mut bytes = Vec::new();
    for msg in messages {
        let mut body = Vec::new();
        msg.encode(&mut body);
        let len = u16::try_from(body.len()).expect("ITCH messages are shorter than 64 KiB");
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(&body);
    }

    let mut decoded = Vec::new();
    let mut rest = bytes.as_slice();
    while let [high, low, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*high, *low]));
        let (body, next) = tail.split_at(len);
        decoded.push(itch::decode(body).expect("encoded message decodes"));
        rest = next;
    }
    decoded
}

/// Applies every message, asserting that none fails, and returns all events.
fn apply_all(books: &mut Books, messages: &[Message]) -> Vec<BookEvent> {
    let mut events = Vec::new();
    for msg in messages {
        let result = books.apply(msg, &mut |event| events.push(event));
        assert_eq!(result, Ok(()), "apply({msg:?})");
    }
    events
}

fn levels(books: &Books, locate: u16, side: Side) -> Vec<Level> {
    books
        .book(locate)
        .map(|book| book.levels(side).collect())
        .unwrap_or_default()
}

#[test]
fn morning_builds_expected_books() {
    let messages = through_wire(&morning());
    assert_eq!(messages, morning(), "the wire round trip changed a message");
    let mut books = Books::with_capacity(1024, 64);
    apply_all(&mut books, &messages);

    let aapl_bids = vec![Level {
        price: 1_499_900,
        shares: 150,
        orders: 1,
    }];
    let aapl_asks = vec![
        Level {
            price: 1_500_100,
            shares: 150,
            orders: 1,
        },
        Level {
            price: 1_500_150,
            shares: 100,
            orders: 1,
        },
    ];
    assert_eq!(levels(&books, AAPL, Side::Buy), aapl_bids);
    assert_eq!(levels(&books, AAPL, Side::Sell), aapl_asks);
    assert_eq!(
        levels(&books, MSFT, Side::Buy),
        vec![Level {
            price: 3_000_000,
            shares: 500,
            orders: 1
        }]
    );
    assert_eq!(levels(&books, MSFT, Side::Sell), vec![]);

    assert_eq!(books.order_count(), 4);
    for order_ref in [1002, 1003, 1006, 2001] {
        assert!(books.order(order_ref).is_some(), "order {order_ref} rests");
    }
    assert_eq!(books.order(1004), None);
    assert_eq!(books.order(1006).map(|order| order.side), Some(Side::Sell));

    assert_eq!(books.locate_of("AAPL"), Some(AAPL));
    assert_eq!(books.locate_of("MSFT"), Some(MSFT));
    for book in books.iter() {
        assert_eq!(book.status(), BookStatus::Ok, "locate {}", book.locate());
        assert_eq!(book.trading_state(), b'T');
    }
    assert_eq!(books.iter().count(), 2);
    assert_eq!(books.errors().total(), 0);
}

#[test]
fn morning_emits_expected_trades() {
    let mut books = Books::with_capacity(1024, 64);
    let events = apply_all(&mut books, &through_wire(&morning()));

    let trades: Vec<(u16, TradeEvent)> = events
        .iter()
        .filter_map(|event| match *event {
            BookEvent::Trade { locate, trade } => Some((locate, trade)),
            _ => None,
        })
        .collect();
    let trade = |price, shares, match_number, resting_side, kind| TradeEvent {
        price,
        shares,
        match_number,
        resting_side,
        kind,
    };
    let expected = vec![
        (MSFT, trade(3_000_200, 20_000, 4, None, TradeKind::Cross)),
        (
            AAPL,
            trade(1_500_000, 100, 1, Some(Side::Buy), TradeKind::Execution),
        ),
        (
            AAPL,
            trade(1_500_050, 100, 2, Some(Side::Sell), TradeKind::Execution),
        ),
        (
            AAPL,
            trade(1_500_050, 10, 3, Some(Side::Buy), TradeKind::NonDisplayed),
        ),
        (
            MSFT,
            trade(3_000_500, 500, 5, Some(Side::Sell), TradeKind::Execution),
        ),
    ];
    assert_eq!(trades, expected);

    let statuses = events
        .iter()
        .filter(|event| matches!(event, BookEvent::Status { .. }))
        .count();
    assert_eq!(statuses, 0);
    let directories: Vec<BookEvent> = events
        .iter()
        .filter(|event| matches!(event, BookEvent::Directory { .. }))
        .copied()
        .collect();
    let expected_directories = vec![
        BookEvent::Directory {
            locate: AAPL,
            stock: stock(AAPL),
        },
        BookEvent::Directory {
            locate: MSFT,
            stock: stock(MSFT),
        },
    ];
    assert_eq!(directories, expected_directories);
}

#[test]
fn morning_top_of_book_changes() {
    let mut books = Books::with_capacity(1024, 64);
    let events = apply_all(&mut books, &through_wire(&morning()));

    // The AAPL level changes that moved the best bid or ask, in order.
    let top_changes: Vec<LevelChange> = events
        .iter()
        .filter_map(|event| match *event {
            BookEvent::Level {
                locate: AAPL,
                change,
                top_changed: true,
            } => Some(change),
            _ => None,
        })
        .collect();
    let change = |side, price, shares, orders| LevelChange {
        side,
        price,
        shares,
        orders,
    };
    let expected = vec![
        change(Side::Buy, 1_500_000, 100, 1),
        change(Side::Sell, 1_500_100, 300, 1),
        change(Side::Buy, 1_500_000, 150, 2),
        change(Side::Buy, 1_500_000, 50, 1),
        change(Side::Sell, 1_500_100, 200, 1),
        change(Side::Sell, 1_500_100, 150, 1),
        change(Side::Buy, 1_500_000, 0, 0),
    ];
    assert_eq!(top_changes, expected);
}

#[test]
fn gap_then_new_session() {
    let mut books = Books::with_capacity(1024, 64);
    let morning = through_wire(&morning());
    let (before_gap, after_gap) = morning.split_at(8);
    apply_all(&mut books, before_gap);

    let mut events = Vec::new();
    books.mark_stale(None, &mut |event| events.push(event));
    let expected = vec![
        BookEvent::Status {
            locate: AAPL,
            status: BookStatus::Stale,
        },
        BookEvent::Status {
            locate: MSFT,
            status: BookStatus::Stale,
        },
    ];
    assert_eq!(events, expected);

    // The adds of orders 1004 and 1005 were lost in the gap.
    let (_, after_lost) = after_gap.split_at(2);
    let mut errors = Vec::new();
    for msg in after_lost {
        if let Err(error) = books.apply(msg, &mut |_| {}) {
            errors.push(error);
        }
    }
    let expected_errors = vec![
        BookError::UnknownOrder {
            locate: AAPL,
            order_ref: 1004,
            msg_type: b'U',
        },
        BookError::UnknownOrder {
            locate: AAPL,
            order_ref: 1005,
            msg_type: b'D',
        },
    ];
    assert_eq!(errors, expected_errors);
    assert_eq!(
        books.book(AAPL).map(|book| book.status()),
        Some(BookStatus::Stale)
    );
    assert_eq!(
        books.book(AAPL).map(|book| book.errors().unknown_order),
        Some(2)
    );

    // A new session starts from empty books, and the same order references are valid again.
    let mut events = Vec::new();
    books.reset(&mut |event| events.push(event));
    assert_eq!(events, vec![BookEvent::Reset]);
    let events = apply_all(&mut books, &morning);
    let statuses = events
        .iter()
        .filter(|event| matches!(event, BookEvent::Status { .. }))
        .count();
    assert_eq!(statuses, 0);
    assert_eq!(books.order_count(), 4);
    assert_eq!(
        books.book(AAPL).map(|book| book.status()),
        Some(BookStatus::Ok)
    );
    assert_eq!(books.errors().unknown_order, 2, "totals survive the reset");
}

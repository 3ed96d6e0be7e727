//! `mdfh::lobster::convert_with_report` on the event types and errors that the AAPL sample does
//! not contain. The rows start from the sample's first rows and add partial cancels, crosses
//! and halt indicators in the layout LOBSTER documents for them.

mod common;

use common::{lobster_message_csv, lobster_orderbook_csv};
use mdfh::lobster::{convert_with_report, ConvertOptions, CsvFile, LobsterError, SeedWarning};
use mdfh_feed::binaryfile;
use mdfh_feed::itch::{self, Message, Side};

fn options() -> ConvertOptions {
    ConvertOptions { symbol: "AAPL".to_owned(), locate: 1 }
}

fn sample_lines(path: std::path::PathBuf, count: usize) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().take(count).map(str::to_owned).collect()
}

/// Returns the first two sample events followed by `extra` events, and as many copies of
/// orderbook row 1.
fn files_with(extra: &[&str]) -> (String, String) {
    let mut messages = sample_lines(lobster_message_csv(), 2);
    messages.extend(extra.iter().map(|line| (*line).to_owned()));
    let row1 = sample_lines(lobster_orderbook_csv(), 1).remove(0);
    let books = vec![row1; messages.len()];
    (messages.join("\n") + "\n", books.join("\n") + "\n")
}

fn decode_all(bytes: &[u8]) -> Vec<Message> {
    binaryfile::Reader::new(bytes).map(|item| itch::decode(item.unwrap().1).unwrap()).collect()
}

#[test]
fn cancel_cross_and_halt_rows_map_to_itch() {
    let (messages, books) = files_with(&[
        "34200.005,2,16113584,8,5853200,1",
        "34200.006,6,-1,1000,5855000,-1",
        "34200.007,6,-2,10,5855000,-1",
        "34200.008,7,0,0,-1,-1",
        "34200.009,7,0,0,0,-1",
        "34200.01,7,0,0,1,-1",
    ]);
    let conversion = convert_with_report(&messages, &books, &options()).unwrap();
    assert_eq!(conversion.event_messages, 7);
    let decoded = decode_all(&conversion.binary_file);
    let events = &decoded[decoded.len() - 7..];

    let Message::AddOrder(add) = &events[0] else { panic!("{:?}", events[0]) };
    assert_eq!((add.order_ref, add.side, add.shares, add.price), (16113584, Side::Buy, 18, 5853200));

    let Message::OrderCancel(cancel) = &events[1] else { panic!("{:?}", events[1]) };
    assert_eq!((cancel.order_ref, cancel.cancelled_shares), (16113584, 8));
    assert_eq!(cancel.header.timestamp, 34_200_005_000_000);

    let Message::CrossTrade(opening) = &events[2] else { panic!("{:?}", events[2]) };
    assert_eq!((opening.shares, opening.cross_price, opening.cross_type), (1000, 5855000, b'O'));
    assert_eq!(opening.match_number, 1);
    assert_eq!(opening.stock.as_str(), "AAPL");

    let Message::CrossTrade(closing) = &events[3] else { panic!("{:?}", events[3]) };
    assert_eq!((closing.cross_type, closing.match_number), (b'C', 2));

    let states: Vec<u8> = events[4..]
        .iter()
        .map(|message| match message {
            Message::StockTradingAction(action) => action.trading_state,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(states, b"HQT");
    assert_eq!(events[6].header().timestamp, 34_200_010_000_000);
}

#[test]
fn halt_as_first_event_sets_initial_state() {
    let mut messages = vec!["34200.001,7,0,0,-1,-1".to_owned()];
    messages.extend(sample_lines(lobster_message_csv(), 3).into_iter().skip(1));
    let row1 = sample_lines(lobster_orderbook_csv(), 1).remove(0);
    let books = vec![row1; messages.len()].join("\n");

    let conversion = convert_with_report(&messages.join("\n"), &books, &options()).unwrap();
    let decoded = decode_all(&conversion.binary_file);
    let Message::StockTradingAction(initial) = &decoded[2] else { panic!("{:?}", decoded[2]) };
    assert_eq!(initial.trading_state, b'H');
    assert_eq!(initial.header.timestamp, 34_200_001_000_000);
}

#[test]
fn order_outside_row_1_is_seeded_with_warning() {
    // Order 99 is deleted without an add, at a bid price below the tenth level of row 1.
    let (messages, books) = files_with(&["34200.005,3,99,40,5800000,1"]);
    let conversion = convert_with_report(&messages, &books, &options()).unwrap();
    assert_eq!(
        conversion.warnings,
        vec![SeedWarning::OutsideVisibleLevels { line: 3, order_ref: 99, side: Side::Buy, price: 5800000, shares: 40 }]
    );
    let seeded = decode_all(&conversion.binary_file).into_iter().find_map(|message| match message {
        Message::AddOrder(add) if add.order_ref == 99 => Some(add),
        _ => None,
    });
    let seeded = seeded.expect("order 99 is seeded");
    assert_eq!((seeded.shares, seeded.price, seeded.side), (40, 5800000, Side::Buy));
}

#[test]
fn pre_window_order_takes_shares_from_its_level() {
    // Row 1 has 200 shares on the ask at 5859400. Order 77 loses 30 there, so the seed is
    // order 77 with 30 shares and one fresh order with the other 170.
    let (messages, books) = files_with(&["34200.005,4,77,30,5859400,-1"]);
    let conversion = convert_with_report(&messages, &books, &options()).unwrap();
    assert!(conversion.warnings.is_empty(), "{:?}", conversion.warnings);

    let seed: Vec<_> = decode_all(&conversion.binary_file)
        .into_iter()
        .filter_map(|message| match message {
            Message::AddOrder(add) if add.side == Side::Sell && add.price == 5859400 => Some(add),
            _ => None,
        })
        .collect();
    let shares: Vec<(bool, u32)> = seed.iter().map(|add| (add.order_ref == 77, add.shares)).collect();
    assert_eq!(shares, vec![(false, 170), (true, 30)]);
    // The fresh reference is above every order id of the message file.
    assert!(seed[0].order_ref > 16113584, "fresh order ref {}", seed[0].order_ref);
}

#[test]
fn invalid_rows_are_typed_errors() {
    let cases: [(&str, LobsterError); 5] = [
        (
            "34200.005,1,100,0,5853300,1",
            LobsterError::InvalidValue {
                file: CsvFile::Message,
                line: 3,
                column: 4,
                field: "size",
                value: "0".to_owned(),
                reason: "expected shares from 1 to 4294967295",
            },
        ),
        (
            "34200.005,6,5,10,5855000,-1",
            LobsterError::InvalidValue {
                file: CsvFile::Message,
                line: 3,
                column: 3,
                field: "order id",
                value: "5".to_owned(),
                reason: "a cross (type 6) needs -1 opening, -2 closing, -3 IPO or halt, or -4 intraday",
            },
        ),
        (
            "34200.005,7,0,0,2,-1",
            LobsterError::InvalidValue {
                file: CsvFile::Message,
                line: 3,
                column: 5,
                field: "price",
                value: "2".to_owned(),
                reason: "a halt indicator (type 7) needs -1 halted, 0 quoting or 1 trading",
            },
        ),
        (
            "34200.005,1,100,18,5853300,0",
            LobsterError::InvalidValue {
                file: CsvFile::Message,
                line: 3,
                column: 6,
                field: "direction",
                value: "0".to_owned(),
                reason: "expected 1 (buy) or -1 (sell)",
            },
        ),
        (
            "86400.5,1,100,18,5853300,1",
            LobsterError::InvalidValue {
                file: CsvFile::Message,
                line: 3,
                column: 1,
                field: "time",
                value: "86400.5".to_owned(),
                reason: "not within one day (86400 seconds)",
            },
        ),
    ];
    for (row, expected) in cases {
        let (messages, books) = files_with(&[row]);
        assert_eq!(convert_with_report(&messages, &books, &options()), Err(expected), "row {row}");
    }
}

#[test]
fn mismatched_files_and_options_are_rejected() {
    let (messages, books) = files_with(&["34200.005,3,16113584,18,5853200,1"]);
    let short_books: String = books.lines().take(2).map(|line| format!("{line}\n")).collect();
    assert_eq!(
        convert_with_report(&messages, &short_books, &options()),
        Err(LobsterError::RowCountMismatch { message_rows: 3, orderbook_rows: 2 })
    );

    let long_symbol = ConvertOptions { symbol: "TOOLONGSYM".to_owned(), locate: 1 };
    assert_eq!(
        convert_with_report(&messages, &books, &long_symbol),
        Err(LobsterError::InvalidSymbol { symbol: "TOOLONGSYM".to_owned() })
    );

    let locate_zero = ConvertOptions { symbol: "AAPL".to_owned(), locate: 0 };
    assert_eq!(convert_with_report(&messages, &books, &locate_zero), Err(LobsterError::InvalidLocate));

    assert_eq!(
        convert_with_report("", &books, &options()),
        Err(LobsterError::Empty { file: CsvFile::Message })
    );
}

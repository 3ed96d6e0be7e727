//! `mdfh convert lobster` on the LOBSTER AAPL sample, checked against the sample's own 10-level
//! orderbook file by replaying the output through `mdfh book`.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::OnceLock;

use common::{convert_lobster_sample, lobster_message_csv, lobster_orderbook_csv, mdfh, mdfh_ok, stderr, temp_dir};
use mdfh_feed::binaryfile;
use mdfh_feed::itch::{self, Message, Side};

/// LOBSTER events in the sample; the output has one ITCH message for each after the first.
const EVENTS: usize = 600;

/// One row of the message file, parsed independently of the converter.
#[derive(Debug, Clone)]
struct LobsterEvent {
    time_ns: u64,
    kind: u8,
    order_id: i64,
    size: u32,
    price: i64,
    side: Side,
}

fn time_ns(text: &str) -> u64 {
    let (seconds, fraction) = text.split_once('.').unwrap_or((text, ""));
    let seconds: u64 = seconds.parse().unwrap();
    let nanos: u64 = format!("{fraction:0<9}").parse().unwrap();
    seconds * 1_000_000_000 + nanos
}

fn read_events() -> Vec<LobsterEvent> {
    let text = std::fs::read_to_string(lobster_message_csv()).unwrap();
    text.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            LobsterEvent {
                time_ns: time_ns(fields[0]),
                kind: fields[1].parse().unwrap(),
                order_id: fields[2].parse().unwrap(),
                size: fields[3].parse().unwrap(),
                price: fields[4].parse().unwrap(),
                side: if fields[5] == "1" { Side::Buy } else { Side::Sell },
            }
        })
        .collect()
}

/// The non-empty levels of one book row, best first, with prices in 1/10000 dollars.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BookRow {
    asks: Vec<(u32, u64)>,
    bids: Vec<(u32, u64)>,
    /// Levels per side in the row, empty ones included.
    depth: usize,
}

impl BookRow {
    /// Parses a row in LOBSTER's orderbook layout, which `mdfh book` also prints.
    fn parse(line: &str) -> BookRow {
        let values: Vec<i64> = line.split(',').map(|v| v.parse().unwrap()).collect();
        assert_eq!(values.len() % 4, 0, "row {line:?}");
        let mut row = BookRow { asks: Vec::new(), bids: Vec::new(), depth: values.len() / 4 };
        for level in values.chunks(4) {
            if level[0] != 9_999_999_999 {
                row.asks.push((u32::try_from(level[0]).unwrap(), u64::try_from(level[1]).unwrap()));
            }
            if level[2] != -9_999_999_999 {
                row.bids.push((u32::try_from(level[2]).unwrap(), u64::try_from(level[3]).unwrap()));
            }
        }
        row
    }

    fn side(&self, side: Side) -> &[(u32, u64)] {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    fn shares_at(&self, side: Side, price: u32) -> u64 {
        self.side(side).iter().find(|(p, _)| *p == price).map_or(0, |(_, shares)| *shares)
    }

    /// Tells whether the row shows every level of `side` at `price` or better: true when the
    /// side has fewer levels than the row's depth, or `price` is not worse than the last level.
    fn shows(&self, side: Side, price: u32) -> bool {
        let levels = self.side(side);
        match levels.last() {
            Some(&(worst, _)) if levels.len() == self.depth => match side {
                Side::Buy => price >= worst,
                Side::Sell => price <= worst,
            },
            _ => true,
        }
    }
}

fn read_lobster_rows() -> Vec<BookRow> {
    let text = std::fs::read_to_string(lobster_orderbook_csv()).unwrap();
    text.lines().map(BookRow::parse).collect()
}

/// Prices of orders that events 2..N cancel, delete or execute before adding them, at a
/// (side, price) that orderbook row 1 does not list. Such orders entered the book out of the
/// visible ten levels, so LOBSTER has no add for them. The converter seeds them at row 1, where
/// the real book did not have them yet.
fn prices_seeded_beyond_row_1(events: &[LobsterEvent], row1: &BookRow) -> BTreeSet<(u8, u32)> {
    let mut added = HashSet::new();
    let mut prices = BTreeSet::new();
    for event in &events[1..] {
        let price = u32::try_from(event.price).unwrap();
        match event.kind {
            1 => {
                added.insert(event.order_id);
            }
            2..=4 if !added.contains(&event.order_id) && row1.shares_at(event.side, price) == 0 => {
                prices.insert((event.side.as_byte(), price));
            }
            _ => {}
        }
    }
    prices
}

/// The converted sample and what `mdfh book` prints for it, computed once for all tests here.
struct Converted {
    path: PathBuf,
    messages: Vec<Message>,
    /// Rows of `mdfh book --levels 10`.
    book_rows: Vec<BookRow>,
}

fn converted() -> &'static Converted {
    static CONVERTED: OnceLock<Converted> = OnceLock::new();
    CONVERTED.get_or_init(|| {
        let dir = temp_dir("convert_lobster_sample");
        let path = convert_lobster_sample(&dir);
        let bytes = std::fs::read(&path).unwrap();
        let messages = binaryfile::Reader::new(&bytes)
            .map(|item| itch::decode(item.unwrap().1).unwrap())
            .collect();
        let stdout = mdfh_ok([OsStr::new("book"), path.as_os_str(), OsStr::new("--levels"), OsStr::new("10")]);
        let book_rows = stdout.lines().map(BookRow::parse).collect();
        Converted { path, messages, book_rows }
    })
}

#[test]
fn output_starts_with_system_directory_and_trading() {
    let messages = &converted().messages;
    let first_time = read_events()[0].time_ns;

    let Message::SystemEvent(system) = &messages[0] else { panic!("message 0: {:?}", messages[0]) };
    assert_eq!(system.event_code, b'O');
    assert_eq!(system.header.stock_locate, 0);
    assert_eq!(system.header.timestamp, first_time);

    let Message::StockDirectory(directory) = &messages[1] else { panic!("message 1: {:?}", messages[1]) };
    assert_eq!(directory.stock.as_str(), "AAPL");
    assert_eq!(directory.header.stock_locate, 1);

    let Message::StockTradingAction(trading) = &messages[2] else { panic!("message 2: {:?}", messages[2]) };
    assert_eq!(trading.trading_state, b'T');
    assert_eq!(trading.header.stock_locate, 1);
}

#[test]
fn one_message_per_event_after_seed() {
    let messages = &converted().messages;
    let events = read_events();
    assert_eq!(events.len(), EVENTS);
    let seed_end = messages.len() - (EVENTS - 1);

    for (index, message) in messages[3..seed_end].iter().enumerate() {
        let Message::AddOrder(add) = message else { panic!("seed message {index} is not an add: {message:?}") };
        assert_eq!(add.header.timestamp, events[0].time_ns, "seed message {index}");
        assert_eq!(add.header.stock_locate, 1, "seed message {index}");
    }

    let mut match_number = 0;
    for (row, (message, event)) in messages[seed_end..].iter().zip(&events[1..]).enumerate() {
        let line = row + 2;
        assert_eq!(message.header().timestamp, event.time_ns, "line {line}");
        assert_eq!(message.header().stock_locate, 1, "line {line}");
        let order_ref = u64::try_from(event.order_id).unwrap_or(0);
        match (event.kind, message) {
            (1, Message::AddOrder(add)) => {
                assert_eq!(add.order_ref, order_ref, "line {line}");
                assert_eq!(add.side, event.side, "line {line}");
                assert_eq!(add.shares, event.size, "line {line}");
                assert_eq!(i64::from(add.price), event.price, "line {line}");
                assert_eq!(add.stock.as_str(), "AAPL", "line {line}");
            }
            (3, Message::OrderDelete(delete)) => assert_eq!(delete.order_ref, order_ref, "line {line}"),
            (4, Message::OrderExecuted(executed)) => {
                match_number += 1;
                assert_eq!(executed.order_ref, order_ref, "line {line}");
                assert_eq!(executed.executed_shares, event.size, "line {line}");
                assert_eq!(executed.match_number, match_number, "line {line}");
            }
            (5, Message::Trade(trade)) => {
                match_number += 1;
                assert_eq!(trade.order_ref, 0, "line {line}");
                assert_eq!(trade.side, event.side, "line {line}");
                assert_eq!(trade.shares, event.size, "line {line}");
                assert_eq!(i64::from(trade.price), event.price, "line {line}");
                assert_eq!(trade.match_number, match_number, "line {line}");
            }
            (kind, message) => panic!("line {line}: LOBSTER type {kind} became {message:?}"),
        }
    }
}

#[test]
fn seed_reproduces_orderbook_row_1() {
    let messages = &converted().messages;
    let events = read_events();
    let row1 = &read_lobster_rows()[0];
    let seed_end = messages.len() - (EVENTS - 1);

    let mut seeded: BTreeMap<(u8, u32), u64> = BTreeMap::new();
    let mut order_refs = HashSet::new();
    for message in &messages[3..seed_end] {
        let Message::AddOrder(add) = message else { panic!("seed message is not an add: {message:?}") };
        *seeded.entry((add.side.as_byte(), add.price)).or_default() += u64::from(add.shares);
        assert!(order_refs.insert(add.order_ref), "seed order {} added twice", add.order_ref);
    }

    for side in [Side::Sell, Side::Buy] {
        for &(price, shares) in row1.side(side) {
            let got = seeded.remove(&(side.as_byte(), price));
            assert_eq!(got, Some(shares), "{side:?} level {price} of row 1");
        }
    }
    // What is left are levels that row 1 does not list: only the out-of-view orders.
    let extra: BTreeSet<(u8, u32)> = seeded.keys().copied().collect();
    assert_eq!(extra, prices_seeded_beyond_row_1(&events, row1));
}

#[test]
fn book_rows_match_lobster_where_both_are_known() {
    let converted = converted();
    let lobster = read_lobster_rows();
    let events = read_events();
    let seeded_beyond_row_1 = prices_seeded_beyond_row_1(&events, &lobster[0]);
    assert!(converted.book_rows.len() >= EVENTS - 1, "{} book rows", converted.book_rows.len());
    let ours = &converted.book_rows[converted.book_rows.len() - (EVENTS - 1)..];

    // The message file leaves out events at prices out of view, so once a price has left
    // LOBSTER's visible ten levels, the converted book may miss orders there. A price is
    // therefore compared only while it has been in view in every row since row 1. On each side
    // these are the prices at or better than the worst 10th level seen so far.
    let mut worst_ask_seen = u32::MAX;
    let mut worst_bid_seen = 0u32;
    let mut compared = 0;
    let mut mismatches = Vec::new();
    for (index, theirs) in lobster.iter().enumerate() {
        if theirs.asks.len() == theirs.depth {
            worst_ask_seen = worst_ask_seen.min(theirs.asks.last().unwrap().0);
        }
        if theirs.bids.len() == theirs.depth {
            worst_bid_seen = worst_bid_seen.max(theirs.bids.last().unwrap().0);
        }
        let Some(our_row) = index.checked_sub(1).map(|i| &ours[i]) else { continue };
        let line = index + 1;
        for side in [Side::Sell, Side::Buy] {
            let always_in_view = |price: u32| match side {
                Side::Sell => price <= worst_ask_seen,
                Side::Buy => price >= worst_bid_seen,
            };
            let prices: BTreeSet<u32> =
                our_row.side(side).iter().chain(theirs.side(side)).map(|&(price, _)| price).collect();
            for price in prices {
                let comparable = always_in_view(price)
                    && theirs.shows(side, price)
                    && our_row.shows(side, price)
                    && !seeded_beyond_row_1.contains(&(side.as_byte(), price));
                if !comparable {
                    continue;
                }
                compared += 1;
                let (want, got) = (theirs.shares_at(side, price), our_row.shares_at(side, price));
                if want != got {
                    mismatches.push(format!("orderbook line {line} {side:?} {price}: LOBSTER {want} shares, mdfh {got}"));
                }
            }
        }
    }
    assert!(mismatches.is_empty(), "{} mismatches, first: {}", mismatches.len(), mismatches[0]);
    // The visible ten levels drift with the price, so many levels leave the view at some point.
    // When this test was written, 4710 of the 11980 visible levels of rows 2..600 were compared.
    assert!(compared >= 4_000, "only {compared} levels compared");
}

#[test]
fn book_changes_by_each_event() {
    let converted = converted();
    let lobster = read_lobster_rows();
    let events = read_events();
    let ours = &converted.book_rows[converted.book_rows.len() - EVENTS..];

    // `ours[0]` is the book after the last seed order, the state of LOBSTER row 1. At the price
    // of each add, cancel, delete or execution, the size changes in LOBSTER and in mdfh the
    // same way wherever both rows of both books show that price.
    let mut checked = 0;
    for k in 1..EVENTS {
        let event = &events[k];
        if !(1..=4).contains(&event.kind) {
            continue;
        }
        let price = u32::try_from(event.price).unwrap();
        let side = event.side;
        let rows = [&lobster[k - 1], &lobster[k], &ours[k - 1], &ours[k]];
        if !rows.iter().all(|row| row.shows(side, price)) {
            continue;
        }
        checked += 1;
        let delta = |before: &BookRow, after: &BookRow| {
            i128::from(after.shares_at(side, price)) - i128::from(before.shares_at(side, price))
        };
        let expected = if event.kind == 1 { i128::from(event.size) } else { -i128::from(event.size) };
        assert_eq!(delta(&lobster[k - 1], &lobster[k]), expected, "LOBSTER line {}", k + 1);
        assert_eq!(delta(&ours[k - 1], &ours[k]), expected, "mdfh row for LOBSTER line {}", k + 1);
    }
    assert!(checked >= 500, "only {checked} events checked");
}

/// Writes `lines` as a file in `dir` and returns its path.
fn write_lines(dir: &std::path::Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

#[test]
fn bad_csv_fails_with_line_and_no_output() {
    let messages: Vec<String> =
        std::fs::read_to_string(lobster_message_csv()).unwrap().lines().map(str::to_owned).collect();
    let books: Vec<String> =
        std::fs::read_to_string(lobster_orderbook_csv()).unwrap().lines().map(str::to_owned).collect();

    let bad_ask_price = format!("abc{}", &books[2][books[2].find(',').unwrap()..]);
    // (case, damage the message file rather than the orderbook file, 1-based line, new line,
    // text expected on stderr)
    let cases: [(&str, bool, usize, &str, &str); 6] = [
        ("missing column", true, 5, "34200.025579546,1,16120480,18,5859200", "message file line 5: expected 6 columns, found 5"),
        ("non-numeric size", true, 7, "34200.03,1,16120500,1x8,5859100,-1", "message file line 7 column 4 (size)"),
        ("unknown type", true, 9, "34200.04,8,16120501,18,5859100,-1", "message file line 9 column 2 (type)"),
        ("time with 10 decimals", true, 11, "34200.0400000001,1,16120502,18,5859100,-1", "message file line 11 column 1 (time)"),
        ("non-numeric ask price", false, 3, &bad_ask_price, "orderbook file line 3 column 1 (ask price)"),
        ("short orderbook row", false, 4, "5859400,200,5853300,18", "orderbook file line 4: expected 40 columns, found 4"),
    ];
    for (case, damage_messages, line, replacement, expected) in cases {
        let dir = temp_dir(&format!("convert_bad_csv_{}", case.replace(' ', "_")));
        let (mut message_lines, mut book_lines) = (messages.clone(), books.clone());
        let target = if damage_messages { &mut message_lines } else { &mut book_lines };
        target[line - 1] = replacement.to_owned();
        let message_csv = write_lines(&dir, "AAPL_message_10.csv", &message_lines);
        let orderbook_csv = write_lines(&dir, "AAPL_orderbook_10.csv", &book_lines);
        let out = dir.join("out.itch");

        let output = mdfh([
            OsStr::new("convert"),
            OsStr::new("lobster"),
            message_csv.as_os_str(),
            orderbook_csv.as_os_str(),
            OsStr::new("-o"),
            out.as_os_str(),
        ]);

        assert!(!output.status.success(), "{case}: exit status {}", output.status);
        assert!(stderr(&output).contains(expected), "{case}: stderr {:?}", stderr(&output));
        assert!(!out.exists(), "{case}: output file written");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 2, "{case}: files left in the output folder: {left:?}");
    }
}

#[test]
fn symbol_and_locate_options_apply() {
    let dir = temp_dir("convert_symbol_and_locate");
    let out = dir.join("renamed.itch");
    let message_csv = lobster_message_csv();
    let orderbook_csv = lobster_orderbook_csv();
    mdfh_ok([
        OsStr::new("convert"),
        OsStr::new("lobster"),
        message_csv.as_os_str(),
        orderbook_csv.as_os_str(),
        OsStr::new("-o"),
        out.as_os_str(),
        OsStr::new("--symbol"),
        OsStr::new("AAPL.X"),
        OsStr::new("--locate"),
        OsStr::new("4242"),
    ]);

    let bytes = std::fs::read(&out).unwrap();
    let messages: Vec<Message> =
        binaryfile::Reader::new(&bytes).map(|item| itch::decode(item.unwrap().1).unwrap()).collect();
    let Message::StockDirectory(directory) = &messages[1] else { panic!("message 1: {:?}", messages[1]) };
    assert_eq!(directory.stock.as_str(), "AAPL.X");
    for message in &messages[1..] {
        assert_eq!(message.header().stock_locate, 4242, "{message:?}");
    }
    let converted_default = std::fs::read(&converted().path).unwrap();
    assert_eq!(bytes.len(), converted_default.len());
}

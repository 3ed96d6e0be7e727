//! `mdfh book` on real NASDAQ captures: choosing the instrument, the row layout and book errors.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;

use common::{mdfh, mdfh_ok, pcap, stderr};
use mdfh_feed::file;
use mdfh_feed::itch::{Message, Side};

const MULTIPLE_PACKETS: &str = "Nasdaq.Equities.TotalView.Itch.v5.0/Multiple.Packets.pcap";

/// META's locate in `Multiple.Packets.pcap`, whose other instrument (locate 2737) has only a `D`.
const META_LOCATE: u16 = 6514;

#[test]
fn several_instruments_need_symbol() {
    let path = pcap(MULTIPLE_PACKETS);
    let output = mdfh([OsStr::new("book"), path.as_os_str()]);

    assert!(!output.status.success(), "exit status {}", output.status);
    assert!(output.stdout.is_empty(), "stdout: {}", String::from_utf8_lossy(&output.stdout));
    let errors = stderr(&output);
    assert!(errors.contains("choose one with --symbol"), "stderr: {errors}");
    assert!(errors.contains("META (locate 6514)"), "stderr: {errors}");
    assert!(errors.contains("locate 2737 (no symbol)"), "stderr: {errors}");
}

#[test]
fn unknown_symbol_is_error() {
    let path = pcap(MULTIPLE_PACKETS);
    let output = mdfh([OsStr::new("book"), path.as_os_str(), OsStr::new("--symbol"), OsStr::new("AAPL")]);

    assert!(!output.status.success(), "exit status {}", output.status);
    let errors = stderr(&output);
    assert!(errors.contains("symbol \"AAPL\" not found"), "stderr: {errors}");
    assert!(errors.contains("META (locate 6514)"), "stderr: {errors}");
}

#[test]
fn symbol_picks_one_instrument() {
    let path = pcap(MULTIPLE_PACKETS);
    let stdout = mdfh_ok([
        OsStr::new("book"),
        path.as_os_str(),
        OsStr::new("--symbol"),
        OsStr::new("META"),
        OsStr::new("--levels"),
        OsStr::new("5"),
    ]);
    let rows: Vec<Vec<i64>> =
        stdout.lines().map(|line| line.split(',').map(|v| v.parse().unwrap()).collect()).collect();

    // Build META's book from its add orders, independently of the matcher. The capture has
    // only adds for META, so each level is the sum of the adds at its price.
    let feed = file::open(&path).unwrap();
    let mut expected_rows = 0;
    let mut levels: BTreeMap<(u8, u32), u64> = BTreeMap::new();
    for message in feed.messages().map(|m| m.unwrap().decode().unwrap()) {
        if message.header().stock_locate != META_LOCATE {
            continue;
        }
        expected_rows += 1;
        let Message::AddOrder(add) = message else { panic!("META message other than an add: {message:?}") };
        *levels.entry((add.side.as_byte(), add.price)).or_default() += u64::from(add.shares);
    }
    assert_eq!(rows.len(), expected_rows);

    let side_levels = |side: Side| -> Vec<(i64, i64)> {
        let mut side_levels: Vec<(i64, i64)> = levels
            .iter()
            .filter(|((s, _), _)| *s == side.as_byte())
            .map(|(&(_, price), &shares)| (i64::from(price), i64::try_from(shares).unwrap()))
            .collect();
        if side == Side::Buy {
            side_levels.reverse();
        }
        side_levels
    };
    let (asks, bids) = (side_levels(Side::Sell), side_levels(Side::Buy));
    let last = rows.last().unwrap();
    assert_eq!(last.len(), 20);
    for level in 0..5 {
        let ask = asks.get(level).copied().unwrap_or((9_999_999_999, 0));
        let bid = bids.get(level).copied().unwrap_or((-9_999_999_999, 0));
        assert_eq!((last[level * 4], last[level * 4 + 1]), ask, "ask level {}", level + 1);
        assert_eq!((last[level * 4 + 2], last[level * 4 + 3]), bid, "bid level {}", level + 1);
    }
    // The first META message is the add of 1 share bid at 805200, alone on the book.
    assert_eq!(rows[0][..4], [9_999_999_999, 0, 805200, 1]);
}

#[test]
fn single_instrument_needs_no_symbol() {
    let path = pcap("Nasdaq.Equities.TotalView.Itch.v5.0/AddOrderNoMpidAttributionMessage.pcap");
    let stdout = mdfh_ok([OsStr::new("book"), path.as_os_str(), OsStr::new("--levels"), OsStr::new("2")]);

    assert_eq!(stdout, "9999999999,0,873900,1600,9999999999,0,-9999999999,0\n");
}

#[test]
fn unknown_order_is_reported_and_replay_goes_on() {
    let path = pcap("Nasdaq.Equities.TotalView.Itch.v5.0/OrderDeleteMessage.pcap");
    let output = mdfh([OsStr::new("book"), path.as_os_str(), OsStr::new("--levels"), OsStr::new("1")]);

    assert!(output.status.success(), "exit status {}", output.status);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "9999999999,0,-9999999999,0\n");
    let errors = stderr(&output);
    assert!(errors.contains("byte offset 108"), "stderr: {errors}");
    assert!(errors.contains("order 23497686 not found"), "stderr: {errors}");
    assert!(errors.contains("book errors: 1"), "stderr: {errors}");
}

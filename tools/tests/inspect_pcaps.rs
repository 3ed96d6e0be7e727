//! `mdfh inspect` on the real NASDAQ and BX captures in `tests/data/itch-pcaps/`, and on damaged
//! copies of them.

mod common;

use std::ffi::OsStr;
use std::path::Path;

use common::{mdfh, mdfh_ok, pcap, stderr, temp_dir};
use mdfh_feed::binaryfile;
use mdfh_feed::file;
use serde_json::{json, Value};

fn inspect(path: &Path) -> Vec<Value> {
    let stdout = mdfh_ok([OsStr::new("inspect"), path.as_os_str()]);
    stdout.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

/// Asserts that `object` has each of `expected`'s keys with the same value.
fn assert_fields(object: &Value, expected: &Value, context: &str) {
    for (key, want) in expected.as_object().unwrap() {
        assert_eq!(object.get(key), Some(want), "{context}: key {key} in {object}");
    }
}

#[test]
fn add_order_anchor() {
    let lines = inspect(&pcap("Nasdaq.Equities.TotalView.Itch.v5.0/AddOrderNoMpidAttributionMessage.pcap"));
    assert_eq!(lines.len(), 1);
    let expected = json!({
        "type": "A",
        "moldudp64_sequence": 14757721,
        "session": "000010059B",
        "stock_locate": 5528,
        "tracking_number": 0,
        "timestamp": 34199999894278u64,
        "order_ref": 23508286,
        "side": "B",
        "shares": 1600,
        "stock": "IVOO",
        "price": 873900,
    });
    assert_fields(&lines[0], &expected, "AddOrderNoMpidAttributionMessage.pcap");
}

#[test]
fn order_executed_anchor() {
    let lines = inspect(&pcap("Nasdaq.Equities.TotalView.Itch.v5.0/OrderExecutedMessage.pcap"));
    assert_eq!(lines.len(), 1);
    let expected = json!({
        "type": "E",
        "moldudp64_sequence": 14757745,
        "stock_locate": 2345,
        "tracking_number": 2,
        "timestamp": 34199999934561u64,
        "order_ref": 23499418,
        "executed_shares": 25,
        "match_number": 255547,
    });
    assert_fields(&lines[0], &expected, "OrderExecutedMessage.pcap");
}

#[test]
fn order_replace_anchor() {
    let lines = inspect(&pcap("Nasdaq.Equities.TotalView.Itch.v5.0/OrderReplaceMessage.pcap"));
    assert_eq!(lines.len(), 1);
    let expected = json!({
        "type": "U",
        "moldudp64_sequence": 14757701,
        "stock_locate": 7603,
        "timestamp": 34199999836649u64,
        "order_ref": 15108479,
        "original_order_ref": 15108479,
        "new_order_ref": 21361351,
        "shares": 100,
        "price": 1062600,
    });
    assert_fields(&lines[0], &expected, "OrderReplaceMessage.pcap");
}

#[test]
fn multiple_packets_anchor() {
    let lines = inspect(&pcap("Nasdaq.Equities.TotalView.Itch.v5.0/Multiple.Packets.pcap"));
    let expected_delete = json!({
        "type": "D",
        "moldudp64_sequence": 14764496,
        "order_ref": 23485802,
        "stock_locate": 2737,
    });
    assert_fields(&lines[0], &expected_delete, "packet 1");
    let expected_add = json!({
        "type": "A",
        "moldudp64_sequence": 19009117,
        "stock_locate": 6514,
        "order_ref": 7942047,
        "side": "B",
        "shares": 1,
        "stock": "META",
        "price": 805200,
    });
    assert_fields(&lines[1], &expected_add, "packet 2, message 1");
    // Messages of one packet are numbered on from the packet's sequence number.
    for (index, line) in lines[1..].iter().enumerate() {
        assert_eq!(line["moldudp64_sequence"], json!(19009117 + index as u64), "packet 2, message {}", index + 1);
    }
}

/// Every capture of the inventory in `tests/data/itch-pcaps/SOURCE.md` with its message types
/// and counts.
const INVENTORY: &[(&str, &[(&str, usize)])] = &[
    ("Bx.Equities.TotalView.Itch.v5.0.20230822/AddOrderMpidAttributionMessage.pcap", &[("F", 5)]),
    ("Bx.Equities.TotalView.Itch.v5.0.20230822/AddOrderNoMpidAttributionMessage.pcap", &[("A", 5)]),
    ("Bx.Equities.TotalView.Itch.v5.0.20230822/NonCrossTradeMessage.pcap", &[("P", 5)]),
    ("Bx.Equities.TotalView.Itch.v5.0.20230822/OrderCancelMessage.pcap", &[("X", 5)]),
    ("Bx.Equities.TotalView.Itch.v5.0.20230822/OrderDeleteMessage.pcap", &[("D", 5)]),
    ("Bx.Equities.TotalView.Itch.v5.0.20230822/OrderExecutedMessage.pcap", &[("E", 5)]),
    ("Bx.Equities.TotalView.Itch.v5.0.20230822/OrderExecutedWithPriceMessage.pcap", &[("C", 5)]),
    ("Bx.Equities.TotalView.Itch.v5.0.20230822/OrderReplaceMessage.pcap", &[("U", 5)]),
    ("Bx.Equities.TotalView.Itch.v5.0.20230822/RegShoShortSalePriceTestRestrictedIndicatorMessage.pcap", &[("Y", 5)]),
    ("Bx.Equities.TotalView.Itch.v5.0.20230822/RetailInterestMessage.pcap", &[("N", 5)]),
    ("Bx.Equities.TotalView.Itch.v5.0.20230822/StockTradingActionMessage.pcap", &[("H", 5)]),
    ("Bx.Equities.TotalView.Itch.v5.0.20230822/SystemEventMessage.pcap", &[("S", 1)]),
    ("Bx.Equities.TotalView.Itch.v5.0/AddOrderNoMpidAttributionMessage.pcap", &[("A", 1)]),
    ("Bx.Equities.TotalView.Itch.v5.0/OrderDeleteMessage.pcap", &[("D", 1)]),
    ("Bx.Equities.TotalView.Itch.v5.0/OrderReplaceMessage.pcap", &[("U", 1)]),
    ("Nasdaq.Equities.TotalView.Itch.v5.0.20230822/AddOrderNoMPID.pcap", &[("A", 5)]),
    ("Nasdaq.Equities.TotalView.Itch.v5.0.20230822/AddOrderWithMPID.pcap", &[("F", 5)]),
    ("Nasdaq.Equities.TotalView.Itch.v5.0.20230822/CrossTrade.pcap", &[("Q", 5)]),
    ("Nasdaq.Equities.TotalView.Itch.v5.0.20230822/LULDAuctionCollar.pcap", &[("J", 5)]),
    ("Nasdaq.Equities.TotalView.Itch.v5.0.20230822/MarketParticipantPosition.pcap", &[("L", 5)]),
    ("Nasdaq.Equities.TotalView.Itch.v5.0.20230822/NetOrderImbalanceIndicator.pcap", &[("I", 5)]),
    ("Nasdaq.Equities.TotalView.Itch.v5.0.20230822/NonCrossTrade.pcap", &[("P", 5)]),
    ("Nasdaq.Equities.TotalView.Itch.v5.0.20230822/OrderCancel.pcap", &[("X", 5)]),
    ("Nasdaq.Equities.TotalView.Itch.v5.0.20230822/OrderDelete.pcap", &[("D", 5)]),
    ("Nasdaq.Equities.TotalView.Itch.v5.0.20230822/OrderExecuted.pcap", &[("E", 5)]),
    ("Nasdaq.Equities.TotalView.Itch.v5.0.20230822/OrderExecutedWithPrice.pcap", &[("C", 5)]),
    ("Nasdaq.Equities.TotalView.Itch.v5.0.20230822/OrderReplace.pcap", &[("U", 5)]),
    ("Nasdaq.Equities.TotalView.Itch.v5.0.20230822/RegSHORestriction.pcap", &[("Y", 5)]),
    ("Nasdaq.Equities.TotalView.Itch.v5.0.20230822/StockTradingAction.pcap", &[("H", 5)]),
    ("Nasdaq.Equities.TotalView.Itch.v5.0.20230822/SystemEvent.pcap", &[("S", 1)]),
    ("Nasdaq.Equities.TotalView.Itch.v5.0/AddOrderNoMpidAttributionMessage.pcap", &[("A", 1)]),
    ("Nasdaq.Equities.TotalView.Itch.v5.0/MarketParticipantPositionMessage.pcap", &[("L", 1)]),
    ("Nasdaq.Equities.TotalView.Itch.v5.0/Multiple.Packets.pcap", &[("A", 36), ("D", 1), ("F", 2)]),
    ("Nasdaq.Equities.TotalView.Itch.v5.0/NetOrderImbalanceIndicatorMessage.pcap", &[("I", 1)]),
    ("Nasdaq.Equities.TotalView.Itch.v5.0/OrderDeleteMessage.pcap", &[("D", 1)]),
    ("Nasdaq.Equities.TotalView.Itch.v5.0/OrderExecutedMessage.pcap", &[("E", 1)]),
    ("Nasdaq.Equities.TotalView.Itch.v5.0/OrderReplaceMessage.pcap", &[("U", 1)]),
    ("Nasdaq.Equities.TotalView.Itch.v5.0/StockTradingActionMessage.pcap", &[("H", 1)]),
];

/// Keys each message type carries besides the common ones.
fn type_keys(msg_type: &str) -> &'static [&'static str] {
    match msg_type {
        "S" => &["event_code"],
        "H" => &["stock", "trading_state", "reserved", "reason"],
        "Y" => &["stock", "reg_sho_action"],
        "L" => &["mpid", "stock", "primary_market_maker", "market_maker_mode", "market_participant_state"],
        "J" => &["stock", "auction_collar_reference_price", "upper_auction_collar_price", "lower_auction_collar_price", "auction_collar_extension"],
        "A" => &["order_ref", "side", "shares", "stock", "price"],
        "F" => &["order_ref", "side", "shares", "stock", "price", "attribution"],
        "E" => &["order_ref", "executed_shares", "match_number"],
        "C" => &["order_ref", "executed_shares", "match_number", "printable", "execution_price"],
        "X" => &["order_ref", "cancelled_shares"],
        "D" => &["order_ref"],
        "U" => &["order_ref", "new_order_ref", "shares", "price"],
        "P" => &["order_ref", "side", "shares", "stock", "price", "match_number"],
        "Q" => &["shares", "stock", "cross_price", "match_number", "cross_type"],
        "I" => &["paired_shares", "imbalance_shares", "imbalance_direction", "stock", "far_price", "near_price", "current_reference_price", "cross_type", "price_variation_indicator"],
        "N" => &["stock", "interest_flag"],
        other => panic!("type {other} is not in the inventory"),
    }
}

#[test]
fn every_capture_has_inventory_counts_and_keys() {
    const COMMON_KEYS: &[&str] = &["type", "stock_locate", "tracking_number", "timestamp", "moldudp64_sequence", "session", "offset"];
    for (relative, counts) in INVENTORY {
        let lines = inspect(&pcap(relative));
        let expected_total: usize = counts.iter().map(|(_, count)| count).sum();
        assert_eq!(lines.len(), expected_total, "{relative}: message count");
        for (msg_type, count) in *counts {
            let found = lines.iter().filter(|line| line["type"] == json!(msg_type)).count();
            assert_eq!(found, *count, "{relative}: messages of type {msg_type}");
        }
        for line in &lines {
            let msg_type = line["type"].as_str().unwrap();
            for key in COMMON_KEYS.iter().chain(type_keys(msg_type)) {
                assert!(line.get(key).is_some(), "{relative}: key {key} missing in {line}");
            }
        }
    }
}

#[test]
fn truncated_capture_keeps_good_messages() {
    let dir = temp_dir("inspect_truncated_capture");
    let original = std::fs::read(pcap("Nasdaq.Equities.TotalView.Itch.v5.0/Multiple.Packets.pcap")).unwrap();
    let truncated = dir.join("Multiple.Packets.truncated.pcap");
    // Packet 1 (one `D`) ends at byte 127; the cut falls inside the record of packet 2.
    std::fs::write(&truncated, &original[..1000]).unwrap();

    let output = mdfh([OsStr::new("inspect"), truncated.as_os_str()]);
    assert!(output.status.success(), "exit status {}", output.status);
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    let lines: Vec<Value> = stdout.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert_eq!(lines[0]["order_ref"], json!(23485802));
    let errors = stderr(&output);
    assert!(errors.contains("byte offset 127"), "stderr: {errors}");
    assert!(errors.contains(truncated.to_str().unwrap()), "stderr: {errors}");
    assert!(errors.contains("messages: 1, decode errors: 1"), "stderr: {errors}");
}

#[test]
fn damaged_binary_file_keeps_good_messages() {
    let dir = temp_dir("inspect_damaged_binary_file");
    let capture = file::open(&pcap("Nasdaq.Equities.TotalView.Itch.v5.0/Multiple.Packets.pcap")).unwrap();
    let messages: Vec<_> = capture.messages().map(|m| m.unwrap().decode().unwrap()).collect();

    // The real `D`, an unknown type `Z`, the real first `A`, then a length prefix of 36 with
    // only 10 bytes after it.
    let mut bytes = Vec::new();
    binaryfile::write_message(&mut bytes, &messages[0]);
    let unknown_offset = bytes.len() + 2;
    bytes.extend_from_slice(&[0, 12, b'Z', 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    binaryfile::write_message(&mut bytes, &messages[1]);
    let past_end_offset = bytes.len();
    bytes.extend_from_slice(&[0, 36]);
    bytes.extend_from_slice(&[b'A'; 10]);
    let path = dir.join("damaged.itch");
    std::fs::write(&path, &bytes).unwrap();

    let output = mdfh([OsStr::new("inspect"), path.as_os_str()]);
    assert!(output.status.success(), "exit status {}", output.status);
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    let lines: Vec<Value> = stdout.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let types: Vec<&str> = lines.iter().map(|line| line["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["D", "A"]);
    assert_eq!(lines[1]["order_ref"], json!(7942047));
    assert!(lines[0].get("moldudp64_sequence").is_none(), "BinaryFILE has no sequence: {}", lines[0]);

    let errors = stderr(&output);
    assert!(errors.contains(&format!("unknown ITCH message type 0x5a at byte offset {unknown_offset}")), "stderr: {errors}");
    assert!(errors.contains(&format!("byte offset {past_end_offset}: length 36 runs past the end")), "stderr: {errors}");
    assert!(errors.contains("messages: 2, decode errors: 2"), "stderr: {errors}");
}

#[test]
fn unreadable_file_fails() {
    let dir = temp_dir("inspect_unreadable_file");
    let output = mdfh([OsStr::new("inspect"), dir.join("missing.pcap").as_os_str()]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("missing.pcap"), "stderr: {}", stderr(&output));
}

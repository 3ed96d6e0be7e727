//! `mdfh export` of a real NASDAQ capture: rows carry the capture time and the MoldUDP64
//! sequence number of their message, as `mdfh inspect` decodes them.

mod support;

use serde_json::Value;
use support::{mdfh_ok, path_str, pcap, temp_dir};

#[test]
fn rows_carry_capture_time_and_sequence() {
    let dir = temp_dir("export_pcap_rows");
    let input = pcap("Nasdaq.Equities.TotalView.Itch.v5.0/Multiple.Packets.pcap");
    let out = dir.join("orders.csv");
    mdfh_ok(&["export", "--keep-going", path_str(&input), "--to", "csv", "--what", "orders", "--symbol", "META", "-o", path_str(&out)]);

    // The META messages of the capture, as `mdfh inspect` decodes them.
    let (inspected, _) = mdfh_ok(&["inspect", path_str(&input)]);
    let expected: Vec<Value> = inspected
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|message| message["stock_locate"] == 6514)
        .collect();

    let mut reader = csv::Reader::from_path(&out).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), expected.len());
    assert!(!rows.is_empty());
    for (row, message) in rows.iter().zip(&expected) {
        // exchange_ts, receive_ts, locate, symbol, sequence, msg_type, order_ref
        assert_eq!(&row[0], message["timestamp"].to_string(), "{row:?}");
        assert_eq!(&row[1], message["capture_ts_ns"].to_string(), "{row:?}");
        assert_eq!(&row[2], "6514", "{row:?}");
        assert_eq!(&row[3], "META", "{row:?}");
        assert_eq!(&row[4], message["moldudp64_sequence"].to_string(), "{row:?}");
        assert_eq!(&row[5], message["type"].as_str().unwrap(), "{row:?}");
        assert_eq!(&row[6], message["order_ref"].to_string(), "{row:?}");
    }
}

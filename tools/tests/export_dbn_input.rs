//! DBN input: Databento's sample files decode to the values Databento's own decoder gives (the
//! `*.decoded.json` next to them), and DBN records convert to the ITCH messages the module
//! documentation of `mdfh::export::dbn_convert` promises.

use std::ffi::c_char;
use std::path::{Path, PathBuf};

use dbn::encode::{DbnEncoder, EncodeRecord};
use dbn::{BidAskPair, FlagSet, MboMsg, Metadata, RecordHeader, SType, Schema, TradeMsg};
use mdfh::export::dbn_convert::DbnMessage;
use mdfh::export::dbn_input::{self, DbnError, DbnFile, DbnRecord};
use mdfh_feed::itch::{Message, Side};
use serde_json::Value;

const DATA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/dbn");

fn data(name: &str) -> PathBuf {
    Path::new(DATA_DIR).join(name)
}

fn expected(name: &str) -> Value {
    let text = std::fs::read_to_string(data(name)).unwrap_or_else(|e| panic!("cannot read {name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("invalid JSON in {name}: {e}"))
}

fn open(name: &str) -> DbnFile {
    dbn_input::open(&data(name)).unwrap_or_else(|e| panic!("cannot open {name}: {e}"))
}

fn records(file: &DbnFile) -> Vec<DbnRecord> {
    file.records().map(|item| item.map(|(_, record)| record).unwrap()).collect()
}

fn uint(value: &Value, field: &str) -> u64 {
    value.get(field).and_then(Value::as_u64).unwrap_or_else(|| panic!("no unsigned {field} in {value}"))
}

fn int(value: &Value, field: &str) -> i64 {
    value.get(field).and_then(Value::as_i64).unwrap_or_else(|| panic!("no integer {field} in {value}"))
}

fn letter(value: &Value, field: &str) -> char {
    let text = value.get(field).and_then(Value::as_str).unwrap_or_else(|| panic!("no {field} in {value}"));
    text.chars().next().unwrap_or_else(|| panic!("empty {field} in {value}"))
}

fn char_of(raw: c_char) -> char {
    char::from(raw as u8)
}

/// Asserts every metadata field the JSON lists.
fn assert_metadata(metadata: &Metadata, json: &Value) {
    let expected = json.get("metadata").unwrap();
    assert_eq!(u64::from(metadata.version), uint(expected, "version"), "version");
    assert_eq!(metadata.dataset, expected["dataset"].as_str().unwrap(), "dataset");
    assert_eq!(metadata.schema.map(|s| s.as_str()), expected["schema"].as_str(), "schema");
    assert_eq!(metadata.start, uint(expected, "start"), "start");
    assert_eq!(metadata.end.map(u64::from), expected["end"].as_u64(), "end");
    assert_eq!(metadata.limit.map(u64::from), expected["limit"].as_u64(), "limit");
    assert_eq!(metadata.stype_in.map(|s| s.as_str()), expected["stype_in"].as_str(), "stype_in");
    assert_eq!(metadata.stype_out.as_str(), expected["stype_out"].as_str().unwrap(), "stype_out");
    assert_eq!(metadata.ts_out, expected["ts_out"].as_bool().unwrap(), "ts_out");
    let strings = |field: &str| -> Vec<String> {
        expected[field].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(metadata.symbols, strings("symbols"), "symbols");
    assert_eq!(metadata.partial, strings("partial"), "partial");
    assert_eq!(metadata.not_found, strings("not_found"), "not_found");

    let mappings = expected["mappings"].as_object().unwrap();
    assert_eq!(metadata.mappings.len(), mappings.len(), "number of mappings");
    for mapping in &metadata.mappings {
        let intervals = mappings[&mapping.raw_symbol].as_array().unwrap();
        assert_eq!(mapping.intervals.len(), intervals.len(), "intervals of {}", mapping.raw_symbol);
        for (interval, json) in mapping.intervals.iter().zip(intervals) {
            assert_eq!(interval.start_date.to_string(), json["start_date"].as_str().unwrap(), "start_date");
            assert_eq!(interval.end_date.to_string(), json["end_date"].as_str().unwrap(), "end_date");
            assert_eq!(interval.symbol, json["symbol"].as_str().unwrap(), "mapped symbol");
        }
    }
}

/// Asserts the header fields and the fields the Python decoder derives from them.
fn assert_header(header: &RecordHeader, ts_recv: u64, json: &Value) {
    assert_eq!(u64::from(header.rtype), uint(json, "rtype"), "rtype");
    assert_eq!(u64::from(header.publisher_id), uint(json, "publisher_id"), "publisher_id");
    assert_eq!(u64::from(header.instrument_id), uint(json, "instrument_id"), "instrument_id");
    assert_eq!(header.ts_event, uint(json, "ts_event"), "ts_event");
    assert_eq!(ts_recv, uint(json, "ts_recv"), "ts_recv");
    // The index timestamp of these schemas is ts_recv, and the files carry no send time.
    assert_eq!(ts_recv, uint(json, "ts_index"), "ts_index");
    assert_eq!(u64::MAX, uint(json, "ts_out"), "ts_out");
}

/// Asserts the fields MBP-1, MBP-10 and trade records share.
#[allow(clippy::too_many_arguments)]
fn assert_market_fields(
    json: &Value,
    price: i64,
    size: u32,
    action: c_char,
    side: c_char,
    flags: FlagSet,
    depth: u8,
    ts_in_delta: i32,
    sequence: u32,
) {
    assert_eq!(price, int(json, "price"), "price");
    assert_eq!(u64::from(size), uint(json, "size"), "size");
    assert_eq!(char_of(action), letter(json, "action"), "action");
    assert_eq!(char_of(side), letter(json, "side"), "side");
    assert_eq!(u64::from(flags.raw()), uint(json, "flags"), "flags");
    assert_eq!(u64::from(depth), uint(json, "depth"), "depth");
    assert_eq!(i64::from(ts_in_delta), int(json, "ts_in_delta"), "ts_in_delta");
    assert_eq!(u64::from(sequence), uint(json, "sequence"), "sequence");
}

/// Asserts the levels both as the `levels` list and as the flat `bid_px_00` fields.
fn assert_levels(levels: &[BidAskPair], json: &Value) {
    let expected = json["levels"].as_array().unwrap();
    assert_eq!(levels.len(), expected.len(), "number of levels");
    for (index, (level, json_level)) in levels.iter().zip(expected).enumerate() {
        for (value, field) in [(level.bid_px, "bid_px"), (level.ask_px, "ask_px")] {
            assert_eq!(value, int(json_level, field), "{field} of level {index}");
            assert_eq!(value, int(json, &format!("{field}_{index:02}")), "{field}_{index:02}");
        }
        let counts = [
            (level.bid_sz, "bid_sz"),
            (level.ask_sz, "ask_sz"),
            (level.bid_ct, "bid_ct"),
            (level.ask_ct, "ask_ct"),
        ];
        for (value, field) in counts {
            assert_eq!(u64::from(value), uint(json_level, field), "{field} of level {index}");
            assert_eq!(u64::from(value), uint(json, &format!("{field}_{index:02}")), "{field}_{index:02}");
        }
    }
}

fn json_records(json: &Value) -> &Vec<Value> {
    json["records"].as_array().unwrap()
}

#[test]
fn mbo_sample_decodes_as_databento() {
    let file = open("test_data.mbo.v3.dbn");
    let json = expected("test_data.mbo.v3.decoded.json");
    assert!(!file.is_compressed());
    assert_metadata(file.metadata(), &json);

    let records = records(&file);
    assert_eq!(records.len(), json_records(&json).len());
    for (record, json) in records.iter().zip(json_records(&json)) {
        let DbnRecord::Mbo(mbo) = record else { panic!("not an MBO record: {record:?}") };
        assert_header(&mbo.hd, mbo.ts_recv, json);
        assert_eq!(mbo.order_id, uint(json, "order_id"), "order_id");
        assert_eq!(mbo.price, int(json, "price"), "price");
        assert_eq!(u64::from(mbo.size), uint(json, "size"), "size");
        assert_eq!(u64::from(mbo.flags.raw()), uint(json, "flags"), "flags");
        assert_eq!(u64::from(mbo.channel_id), uint(json, "channel_id"), "channel_id");
        assert_eq!(char_of(mbo.action), letter(json, "action"), "action");
        assert_eq!(char_of(mbo.side), letter(json, "side"), "side");
        assert_eq!(i64::from(mbo.ts_in_delta), int(json, "ts_in_delta"), "ts_in_delta");
        assert_eq!(u64::from(mbo.sequence), uint(json, "sequence"), "sequence");
    }
}

#[test]
fn mbp1_sample_decodes_as_databento() {
    let file = open("test_data.mbp-1.v3.dbn.zst");
    let json = expected("test_data.mbp-1.v3.decoded.json");
    assert!(file.is_compressed());
    assert_metadata(file.metadata(), &json);

    let records = records(&file);
    assert_eq!(records.len(), json_records(&json).len());
    for (record, json) in records.iter().zip(json_records(&json)) {
        let DbnRecord::Mbp1(r) = record else { panic!("not an MBP-1 record: {record:?}") };
        assert_header(&r.hd, r.ts_recv, json);
        assert_market_fields(json, r.price, r.size, r.action, r.side, r.flags, r.depth, r.ts_in_delta, r.sequence);
        assert_levels(&r.levels, json);
    }
}

#[test]
fn mbp10_sample_decodes_as_databento() {
    let file = open("test_data.mbp-10.v3.dbn.zst");
    let json = expected("test_data.mbp-10.v3.decoded.json");
    assert_metadata(file.metadata(), &json);

    let records = records(&file);
    assert_eq!(records.len(), json_records(&json).len());
    for (record, json) in records.iter().zip(json_records(&json)) {
        let DbnRecord::Mbp10(r) = record else { panic!("not an MBP-10 record: {record:?}") };
        assert_header(&r.hd, r.ts_recv, json);
        assert_market_fields(json, r.price, r.size, r.action, r.side, r.flags, r.depth, r.ts_in_delta, r.sequence);
        assert_levels(&r.levels, json);
    }
}

#[test]
fn trades_sample_decodes_as_databento() {
    let file = open("test_data.trades.v3.dbn.zst");
    let json = expected("test_data.trades.v3.decoded.json");
    assert_metadata(file.metadata(), &json);

    let records = records(&file);
    assert_eq!(records.len(), json_records(&json).len());
    for (record, json) in records.iter().zip(json_records(&json)) {
        let DbnRecord::Trade(r) = record else { panic!("not a trade record: {record:?}") };
        assert_header(&r.hd, r.ts_recv, json);
        assert_market_fields(json, r.price, r.size, r.action, r.side, r.flags, r.depth, r.ts_in_delta, r.sequence);
    }
}

#[test]
fn record_offsets_follow_the_metadata() {
    // 8 bytes of prefix, 352 of metadata, then 56-byte MBO records.
    let file = open("test_data.mbo.v3.dbn");
    let offsets: Vec<usize> = file.records().map(|item| item.unwrap().0).collect();
    assert_eq!(offsets, [360, 416]);
    assert_eq!(file.len(), 472);
}

fn messages(file: &DbnFile) -> Vec<DbnMessage> {
    file.messages().map(|item| item.unwrap()).collect()
}

#[test]
fn sample_cancels_become_itch_cancels() {
    let file = open("test_data.mbo.v3.dbn");
    let messages = messages(&file);
    assert_eq!(messages.len(), 3, "{messages:?}");

    let Message::StockDirectory(directory) = messages[0].message else { panic!("{:?}", messages[0]) };
    assert_eq!(directory.header.stock_locate, 1);
    assert_eq!(directory.stock.as_str(), "ESH1");

    // The orders were added before the sample starts, so the cancels are partial cancels of
    // unknown orders.
    for (message, (order_ref, ts_event, ts_recv, sequence)) in messages[1..].iter().zip([
        (647_784_973_705, 1_609_160_400_000_429_831, 1_609_160_400_000_704_060, 1_170_352),
        (647_784_973_631, 1_609_160_400_000_431_665, 1_609_160_400_000_711_344, 1_170_353),
    ]) {
        let Message::OrderCancel(cancel) = message.message else { panic!("{message:?}") };
        assert_eq!(cancel.order_ref, order_ref);
        assert_eq!(cancel.cancelled_shares, 1);
        assert_eq!(cancel.header.stock_locate, 1);
        assert_eq!(cancel.header.timestamp, ts_event);
        assert_eq!(message.ts_event, ts_event);
        assert_eq!(message.ts_recv, Some(ts_recv));
        assert_eq!(message.sequence, sequence);
        assert_eq!(message.instrument_id, 5482);
        assert_eq!(message.publisher_id, 1);
        assert!(message.last_of_record);
    }
}

#[test]
fn sample_trades_become_p_on_the_resting_side() {
    let file = open("test_data.trades.v3.dbn.zst");
    let trades: Vec<_> = messages(&file)
        .into_iter()
        .filter_map(|m| match m.message {
            Message::Trade(trade) => Some(trade),
            _ => None,
        })
        .collect();
    assert_eq!(trades.len(), 2);
    // Side A is a sell aggressor, which hits a resting buy order. 3720.25 is 37202500 / 10000.
    for (trade, shares) in trades.iter().zip([5, 21]) {
        assert_eq!(trade.side, Side::Buy);
        assert_eq!(trade.price, 37_202_500);
        assert_eq!(trade.shares, shares);
        assert_eq!(trade.stock.as_str(), "ESH1");
    }
}

/// The type letter and order reference of an `A` or `D`, with the side, price and shares of an
/// `A`.
type LevelMessage = (u8, u64, Option<(Side, u32, u32)>);

#[test]
fn sample_mbp1_levels_become_level_orders() {
    let file = open("test_data.mbp-1.v3.dbn.zst");
    let kinds: Vec<LevelMessage> = messages(&file)
        .into_iter()
        .skip(1)
        .map(|m| match m.message {
            Message::AddOrder(add) => (b'A', add.order_ref, Some((add.side, add.price, add.shares))),
            Message::OrderDelete(delete) => (b'D', delete.order_ref, None),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    // Record 1: bid 3720.25 x 24 and ask 3720.50 x 11. Record 2: the ask grows to 12.
    assert_eq!(
        kinds,
        [
            (b'A', 1, Some((Side::Buy, 37_202_500, 24))),
            (b'A', 2, Some((Side::Sell, 37_205_000, 11))),
            (b'D', 2, None),
            (b'A', 3, Some((Side::Sell, 37_205_000, 12))),
        ]
    );
}

/// Writes MBO records for instrument 7 ("TEST") to a DBN file and returns its path.
fn write_mbo(name: &str, records: &[MboMsg]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("export_dbn_input");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let metadata = Metadata::builder()
        .dataset("TEST.MBO")
        .schema(Some(Schema::Mbo))
        .start(1_000)
        .stype_in(Some(SType::RawSymbol))
        .stype_out(SType::InstrumentId)
        .mappings(vec![dbn::SymbolMapping {
            raw_symbol: "TEST".to_owned(),
            intervals: vec![dbn::MappingInterval {
                start_date: mapping_date(2),
                end_date: mapping_date(3),
                symbol: "7".to_owned(),
            }],
        }])
        .build();
    let mut bytes = Vec::new();
    {
        let mut encoder = DbnEncoder::new(&mut bytes, &metadata).unwrap();
        for record in records {
            encoder.encode_record(record).unwrap();
        }
    }
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Returns 2024-01-`day`, a date of the synthetic files' symbol mapping.
fn mapping_date(day: u8) -> time::Date {
    time::Date::from_calendar_date(2024, time::Month::January, day).unwrap()
}

fn mbo(action: u8, side: u8, order_id: u64, price: i64, size: u32, sequence: u32) -> MboMsg {
    MboMsg {
        hd: RecordHeader::new::<MboMsg>(dbn::rtype::MBO, 9, 7, 2_000 + u64::from(sequence)),
        order_id,
        price,
        size,
        flags: FlagSet::new(dbn::flags::LAST),
        channel_id: 0,
        action: action as c_char,
        side: side as c_char,
        ts_recv: 3_000 + u64::from(sequence),
        ts_in_delta: 0,
        sequence,
    }
}

/// $12.34 in 1e-9 units.
const PRICE: i64 = 12_340_000_000;

#[test]
fn mbo_actions_convert_as_documented() {
    let path = write_mbo(
        "actions.dbn",
        &[
            mbo(b'A', b'B', 1, PRICE, 100, 1),
            mbo(b'A', b'A', 2, PRICE + 10_000_000, 50, 2),
            mbo(b'C', b'B', 1, PRICE, 40, 3),
            mbo(b'C', b'B', 1, PRICE, 60, 4),
            mbo(b'M', b'A', 2, PRICE + 20_000_000, 70, 5),
            mbo(b'A', b'B', 3, PRICE, 10, 6),
            mbo(b'R', b'N', 0, dbn::UNDEF_PRICE, 0, 7),
            mbo(b'T', b'B', 0, PRICE, 5, 8),
            mbo(b'F', b'A', 4, PRICE, 5, 9),
            mbo(b'T', b'N', 0, PRICE, 8, 10),
            mbo(b'N', b'N', 0, dbn::UNDEF_PRICE, 0, 11),
        ],
    );
    let file = dbn_input::open(&path).unwrap();
    let converted = messages(&file);
    let summary: Vec<String> = converted
        .iter()
        .map(|m| match m.message {
            Message::StockDirectory(d) => format!("R {}", d.stock),
            Message::AddOrder(a) => format!("A {} {:?} {} {}", a.order_ref, a.side, a.price, a.shares),
            Message::OrderCancel(x) => format!("X {} {}", x.order_ref, x.cancelled_shares),
            Message::OrderDelete(d) => format!("D {}", d.order_ref),
            Message::Trade(p) => format!("P {} {:?} {} {}", p.order_ref, p.side, p.price, p.shares),
            Message::CrossTrade(q) => format!("Q {} {} {}", q.cross_price, q.shares, char::from(q.cross_type)),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        summary,
        [
            "R TEST",
            "A 1 Buy 123400 100",
            "A 2 Sell 123500 50",
            // A partial cancel, then the cancel of the rest.
            "X 1 40",
            "D 1",
            // A modify of a resting order.
            "D 2",
            "A 2 Sell 123600 70",
            "A 3 Buy 123400 10",
            // The clear deletes every resting order of the instrument, in order id order.
            "D 2",
            "D 3",
            // A buy aggressor hits a resting sell order; a fill carries the resting side.
            "P 0 Sell 123400 5",
            "P 4 Sell 123400 5",
            "Q 123400 8  ",
        ]
    );
    let directory = &converted[0];
    assert_eq!((directory.instrument_id, directory.publisher_id), (7, 9));
    // The modify gives two messages; only the second ends its record.
    let modify: Vec<bool> = converted.iter().filter(|m| m.sequence == 5).map(|m| m.last_of_record).collect();
    assert_eq!(modify, [false, true]);
}

#[test]
fn unrepresentable_prices_are_errors() {
    let path = write_mbo(
        "prices.dbn",
        &[
            mbo(b'A', b'B', 1, -PRICE, 100, 1),
            mbo(b'A', b'B', 2, PRICE + 1, 100, 2),
            mbo(b'A', b'B', 3, 500_000_000_000_000, 100, 3),
            mbo(b'A', b'X', 4, PRICE, 100, 4),
            mbo(b'Z', b'B', 5, PRICE, 100, 5),
            mbo(b'A', b'B', 6, PRICE, 100, 6),
        ],
    );
    let file = dbn_input::open(&path).unwrap();
    let items: Vec<Result<DbnMessage, DbnError>> = file.messages().collect();
    let errors: Vec<&DbnError> = items.iter().filter_map(|item| item.as_ref().err()).collect();
    assert_eq!(errors.len(), 5, "{errors:?}");
    assert!(matches!(errors[0], DbnError::PriceOutOfRange { price, instrument_id: 7, .. } if *price == -PRICE));
    assert!(matches!(errors[1], DbnError::PricePrecision { price, .. } if *price == PRICE + 1));
    assert!(matches!(errors[2], DbnError::PriceOutOfRange { price: 500_000_000_000_000, .. }));
    assert!(matches!(errors[3], DbnError::InvalidSide { side: 'X', order_id: 4, .. }));
    assert!(matches!(errors[4], DbnError::InvalidAction { action: 'Z', order_id: 5, .. }));
    // Records come after a 8-byte prefix and the metadata, 56 bytes each.
    let first_offset = errors[0].offset().unwrap();
    assert_eq!(errors[4].offset(), Some(first_offset + 4 * 56));
    assert!(errors[0].to_string().contains(&format!("byte offset {first_offset}")), "{}", errors[0]);

    // Reading goes on after each error: the last add converts.
    let last = items.last().unwrap().as_ref().unwrap();
    let Message::AddOrder(add) = last.message else { panic!("{last:?}") };
    assert_eq!(add.order_ref, 6);
    assert_eq!(add.price, 123_400);
}

#[test]
fn trade_records_keep_their_fields() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("export_dbn_input");
    std::fs::create_dir_all(&dir).unwrap();
    let record = TradeMsg {
        hd: RecordHeader::new::<TradeMsg>(dbn::rtype::MBP_0, 1, 7, 5_000),
        price: PRICE,
        size: 300,
        action: b'T' as c_char,
        side: b'A' as c_char,
        flags: FlagSet::new(dbn::flags::LAST),
        depth: 0,
        ts_recv: dbn::UNDEF_TIMESTAMP,
        ts_in_delta: 0,
        sequence: 42,
    };
    let metadata = Metadata::builder()
        .dataset("TEST.TRADES")
        .schema(Some(Schema::Trades))
        .start(1_000)
        .stype_in(Some(SType::InstrumentId))
        .stype_out(SType::InstrumentId)
        .build();
    let mut bytes = Vec::new();
    DbnEncoder::new(&mut bytes, &metadata).unwrap().encode_record(&record).unwrap();

    let file = DbnFile::from_bytes(bytes).unwrap();
    let converted = messages(&file);
    // Without a mapping, the symbol is the instrument id.
    let Message::StockDirectory(directory) = converted[0].message else { panic!("{converted:?}") };
    assert_eq!(directory.stock.as_str(), "7");
    let trade = &converted[1];
    assert_eq!(trade.ts_recv, None, "an undefined ts_recv");
    assert_eq!(trade.sequence, 42);
    let Message::Trade(p) = trade.message else { panic!("{trade:?}") };
    assert_eq!(p.side, Side::Buy, "side A is a sell aggressor, which hits a resting buy");
    assert_eq!(p.shares, 300);
    assert_eq!(p.price, 123_400);
}

//! `mdfh export` on the LOBSTER AAPL sample converted to ITCH. The book rows equal `mdfh book`,
//! and the trades equal LOBSTER's executions. Parquet equals CSV, and pyarrow reads it. Sampled
//! rows are the book at the end of each interval. DBN output decodes to the same values with
//! the `dbn` crate.

mod support;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use arrow_array::cast::AsArray;
use arrow_array::types::{UInt16Type, UInt32Type, UInt64Type};
use arrow_array::Array;
use arrow_schema::DataType;
use dbn::decode::{DbnMetadata, DecodeRecord, DynDecoder};
use dbn::{MboMsg, Mbp10Msg, Mbp1Msg, TradeMsg};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::{FileReader, SerializedFileReader};
use support::{book_rows, convert_lobster_sample, lobster_message_csv, mdfh_ok, path_str, temp_dir, REPO_DIR};

/// Midnight of 2012-06-21 in New York (04:00 UTC, daylight time), in ns since the Unix epoch.
const MIDNIGHT_2012_06_21: u64 = 1_340_251_200_000_000_000;

/// Rows of a CSV file with a header row: the header, then each row's fields.
struct Csv {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Csv {
    fn read(path: &Path) -> Csv {
        let mut reader = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let header = reader.headers().unwrap().iter().map(str::to_owned).collect();
        let rows = reader
            .records()
            .map(|record| record.unwrap().iter().map(str::to_owned).collect())
            .collect();
        Csv { header, rows }
    }

    fn column(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|column| column == name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.header))
    }

    fn value<'a>(&self, row: &'a [String], name: &str) -> &'a str {
        &row[self.column(name)]
    }

    /// Returns `levels` levels of `row` in the layout of `mdfh book`, with its empty-level
    /// prices for null prices.
    fn book_row(&self, row: &[String], levels: usize, suffix: impl Fn(usize) -> String) -> String {
        let mut fields = Vec::new();
        for level in 1..=levels {
            let suffix = suffix(level);
            for (side, empty) in [("ask", "9999999999"), ("bid", "-9999999999")] {
                let price = self.value(row, &format!("{side}_price{suffix}"));
                fields.push(if price.is_empty() { empty.to_owned() } else { price.to_owned() });
                fields.push(self.value(row, &format!("{side}_shares{suffix}")).to_owned());
            }
        }
        fields.join(",")
    }
}

fn export(input: &Path, output: &Path, format: &str, what: &str, extra: &[&str]) -> String {
    let mut args = vec!["export", path_str(input), "--to", format, "--what", what, "-o", path_str(output)];
    args.extend_from_slice(extra);
    let (_, stderr) = mdfh_ok(&args);
    assert!(stderr.contains("input errors: 0, book errors: 0"), "stderr: {stderr}");
    assert!(output.exists(), "{} was not written", output.display());
    stderr
}

fn sample(test: &str) -> (PathBuf, PathBuf) {
    let dir = temp_dir(test);
    let itch = convert_lobster_sample(&dir);
    (dir, itch)
}

#[test]
fn csv_levels_equal_book_rows() {
    let (dir, itch) = sample("export_csv_levels");
    let out = dir.join("levels.csv");
    export(&itch, &out, "csv", "levels:10", &[]);

    let csv = Csv::read(&out);
    let book = book_rows(&itch, "AAPL", 10);
    assert_eq!(csv.rows.len(), book.len());
    for (index, (row, book_row)) in csv.rows.iter().zip(&book).enumerate() {
        assert_eq!(&csv.book_row(row, 10, |level| format!("_{level}")), book_row, "row {}", index + 1);
        assert_eq!(csv.value(row, "symbol"), "AAPL");
        assert_eq!(csv.value(row, "locate"), "1");
        assert_eq!(csv.value(row, "receive_ts"), "", "a BinaryFILE has no capture time");
    }
    // The header names 5 common columns and 6 per level.
    assert_eq!(csv.header.len(), 5 + 6 * 10);
}

#[test]
fn csv_bbo_equals_book_top() {
    let (dir, itch) = sample("export_csv_bbo");
    let out = dir.join("bbo.csv");
    export(&itch, &out, "csv", "bbo", &["--symbol", "AAPL"]);

    let csv = Csv::read(&out);
    let book = book_rows(&itch, "AAPL", 1);
    assert_eq!(csv.rows.len(), book.len());
    for (index, (row, book_row)) in csv.rows.iter().zip(&book).enumerate() {
        assert_eq!(&csv.book_row(row, 1, |_| String::new()), book_row, "row {}", index + 1);
    }
    // Sequence numbers of a BinaryFILE are message positions, so they grow.
    let sequences: Vec<u64> = csv.rows.iter().map(|row| csv.value(row, "sequence").parse().unwrap()).collect();
    assert!(sequences.windows(2).all(|pair| pair[0] < pair[1]), "{sequences:?}");
}

/// Returns LOBSTER's executions (types 4 and 5) as (ns since midnight, shares, price, side).
fn lobster_executions() -> Vec<(u64, u64, u32, &'static str, &'static str)> {
    let text = std::fs::read_to_string(lobster_message_csv()).unwrap();
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let msg_type = match fields[1] {
                "4" => "E",
                "5" => "P",
                _ => return None,
            };
            let (seconds, fraction) = fields[0].split_once('.').unwrap();
            let fraction_ns: u64 = format!("{fraction:0<9}").parse().unwrap();
            let ns = seconds.parse::<u64>().unwrap() * 1_000_000_000 + fraction_ns;
            let side = if fields[5] == "1" { "B" } else { "S" };
            Some((ns, fields[3].parse().unwrap(), fields[4].parse().unwrap(), side, msg_type))
        })
        .collect()
}

#[test]
fn csv_trades_equal_lobster_executions() {
    let (dir, itch) = sample("export_csv_trades");
    let out = dir.join("trades.csv");
    export(&itch, &out, "csv", "trades", &[]);

    let csv = Csv::read(&out);
    let expected = lobster_executions();
    assert_eq!(csv.rows.len(), expected.len());
    assert_eq!(expected.len(), 107, "71 visible and 36 hidden executions");
    for (index, (row, (ns, shares, price, side, msg_type))) in csv.rows.iter().zip(&expected).enumerate() {
        let at = format!("trade {}", index + 1);
        assert_eq!(csv.value(row, "exchange_ts"), ns.to_string(), "{at}");
        assert_eq!(csv.value(row, "shares"), shares.to_string(), "{at}");
        assert_eq!(csv.value(row, "price"), price.to_string(), "{at}");
        assert_eq!(csv.value(row, "side"), *side, "{at}");
        assert_eq!(csv.value(row, "msg_type"), *msg_type, "{at}");
    }
}

#[test]
fn csv_orders_follow_the_file() {
    let (dir, itch) = sample("export_csv_orders");
    let out = dir.join("orders.csv");
    export(&itch, &out, "csv", "orders", &[]);

    // Count the order messages of the file with the feed crate alone.
    let feed = mdfh_feed::file::open(&itch).unwrap();
    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    for message in feed.messages().map(|m| m.unwrap().decode().unwrap()) {
        if b"AFECXDU".contains(&message.msg_type()) {
            *expected.entry(char::from(message.msg_type()).to_string()).or_default() += 1;
        }
    }
    let csv = Csv::read(&out);
    let mut counted: BTreeMap<String, usize> = BTreeMap::new();
    for row in &csv.rows {
        *counted.entry(csv.value(row, "msg_type").to_owned()).or_default() += 1;
        match csv.value(row, "msg_type") {
            "A" | "F" => assert_eq!(csv.value(row, "shares_before"), "", "{row:?}"),
            "D" => assert_eq!(csv.value(row, "shares"), csv.value(row, "shares_before"), "{row:?}"),
            "E" => {
                assert_eq!(csv.value(row, "execution_price"), csv.value(row, "price"), "{row:?}");
                assert!(!csv.value(row, "match_number").is_empty(), "{row:?}");
            }
            _ => {}
        }
        // The converted sample has no unknown orders, so every side is known.
        assert!(["B", "S"].contains(&csv.value(row, "side")), "{row:?}");
    }
    assert_eq!(counted, expected);
}

/// Reads a Parquet file into text fields as the CSV export writes them, with its column names.
fn read_parquet(path: &Path) -> (Vec<String>, Vec<DataType>, Vec<Vec<String>>) {
    let file = File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
    let mut names = Vec::new();
    let mut types = Vec::new();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let schema = batch.schema();
        names = schema.fields().iter().map(|field| field.name().clone()).collect();
        types = schema.fields().iter().map(|field| field.data_type().clone()).collect();
        for row in 0..batch.num_rows() {
            let fields = batch
                .columns()
                .iter()
                .map(|column| {
                    if column.is_null(row) {
                        return String::new();
                    }
                    match column.data_type() {
                        DataType::UInt16 => column.as_primitive::<UInt16Type>().value(row).to_string(),
                        DataType::UInt32 => column.as_primitive::<UInt32Type>().value(row).to_string(),
                        DataType::UInt64 => column.as_primitive::<UInt64Type>().value(row).to_string(),
                        DataType::Utf8 => column.as_string::<i32>().value(row).to_owned(),
                        DataType::Boolean => column.as_boolean().value(row).to_string(),
                        other => panic!("unexpected column type {other}"),
                    }
                })
                .collect();
            rows.push(fields);
        }
    }
    (names, types, rows)
}

#[test]
fn parquet_equals_csv_for_every_export() {
    let (dir, itch) = sample("export_parquet_csv");
    for what in ["bbo", "levels:10", "trades", "orders"] {
        let name = what.replace(':', "");
        let csv_path = dir.join(format!("{name}.csv"));
        let parquet_path = dir.join(format!("{name}.parquet"));
        export(&itch, &csv_path, "csv", what, &[]);
        export(&itch, &parquet_path, "parquet", what, &[]);

        let csv = Csv::read(&csv_path);
        let (names, types, rows) = read_parquet(&parquet_path);
        assert_eq!(names, csv.header, "{what}: columns");
        assert_eq!(rows.len(), csv.rows.len(), "{what}: rows");
        for (index, (parquet_row, csv_row)) in rows.iter().zip(&csv.rows).enumerate() {
            assert_eq!(parquet_row, csv_row, "{what}: row {}", index + 1);
        }
        assert_eq!(types[0], DataType::UInt64, "{what}: exchange_ts");
        assert_eq!(types[2], DataType::UInt16, "{what}: locate");
        assert_eq!(types[3], DataType::Utf8, "{what}: symbol");
    }
}

#[test]
fn parquet_metadata_names_the_units() {
    let (dir, itch) = sample("export_parquet_metadata");
    let out = dir.join("bbo.parquet");
    export(&itch, &out, "parquet", "bbo", &[]);

    let reader = SerializedFileReader::new(File::open(&out).unwrap()).unwrap();
    let metadata: BTreeMap<String, String> = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .unwrap()
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default()))
        .collect();
    assert_eq!(metadata["mdfh.export"], "bbo");
    assert_eq!(metadata["mdfh.exchange_ts"], "nanoseconds since midnight, America/New_York");
    assert_eq!(metadata["mdfh.receive_ts"], "nanoseconds since the Unix epoch");
    assert!(metadata["mdfh.price"].starts_with("1/10000"), "{}", metadata["mdfh.price"]);
}

#[test]
fn pyarrow_reads_parquet_as_book() {
    let probe = Command::new("python3").args(["-c", "import pyarrow"]).output();
    match probe {
        Ok(output) if output.status.success() => {}
        Ok(output) => {
            let reason = String::from_utf8_lossy(&output.stderr);
            println!("skipped: pyarrow is not installed ({})", reason.trim().lines().last().unwrap_or(""));
            return;
        }
        Err(err) => {
            println!("skipped: pyarrow is not installed (python3 cannot be started: {err})");
            return;
        }
    }
    let (dir, itch) = sample("export_pyarrow");
    let out = dir.join("levels.parquet");
    export(&itch, &out, "parquet", "levels:10", &[]);
    let book_csv = dir.join("book.csv");
    std::fs::write(&book_csv, book_rows(&itch, "AAPL", 10).join("\n") + "\n").unwrap();

    let script = Path::new(REPO_DIR).join("tools/tests/python/check_parquet.py");
    let output = Command::new("python3").arg(&script).arg(&out).arg(&book_csv).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "check_parquet.py failed: {stdout}{stderr}");
    assert!(stdout.contains("626 rows match mdfh book"), "stdout: {stdout}");

    // The checker fails on a book with other rows.
    std::fs::write(&book_csv, book_rows(&itch, "AAPL", 10)[1..].join("\n") + "\n").unwrap();
    let output = Command::new("python3").arg(&script).arg(&out).arg(&book_csv).output().unwrap();
    assert!(!output.status.success(), "check_parquet.py accepted a book with a row missing");
}

#[test]
fn sampled_bbo_is_book_at_interval_end() {
    let (dir, itch) = sample("export_sampled_bbo");
    let every_row = dir.join("bbo.csv");
    let sampled = dir.join("bbo-1s.csv");
    export(&itch, &every_row, "csv", "bbo", &[]);
    export(&itch, &sampled, "csv", "bbo", &["--every", "1s"]);

    let all = Csv::read(&every_row);
    let samples = Csv::read(&sampled);
    let ts = |csv: &Csv, row: &[String]| -> u64 { csv.value(row, "exchange_ts").parse().unwrap() };
    let mut intervals: Vec<u64> = all.rows.iter().map(|row| ts(&all, row) / 1_000_000_000 + 1).collect();
    intervals.dedup();
    assert_eq!(samples.rows.len(), intervals.len(), "one row per second with messages");

    for (row, interval) in samples.rows.iter().zip(&intervals) {
        let end = ts(&samples, row);
        assert_eq!(end, interval * 1_000_000_000, "the row's time is its interval's end");
        let last = all.rows.iter().rfind(|r| ts(&all, r) < end).unwrap();
        let values = |csv: &Csv, r: &[String]| -> Vec<String> {
            ["sequence", "ask_price", "ask_shares", "ask_orders", "bid_price", "bid_shares", "bid_orders"]
                .iter()
                .map(|name| csv.value(r, name).to_owned())
                .collect()
        };
        assert_eq!(values(&samples, row), values(&all, last), "sample at {end}");
    }
}

/// Decodes a DBN file, plain or zstd, with the `dbn` crate's own decoder.
fn decode<R: Clone + dbn::HasRType<Header = dbn::RecordHeader>>(path: &Path) -> (dbn::Metadata, Vec<R>) {
    let mut decoder = DynDecoder::from_file(path, dbn::VersionUpgradePolicy::AsIs)
        .unwrap_or_else(|e| panic!("cannot decode {}: {e}", path.display()));
    let metadata = decoder.metadata().clone();
    let mut records = Vec::new();
    while let Some(record) = decoder.decode_record::<R>().unwrap() {
        records.push(record.clone());
    }
    (metadata, records)
}

fn dbn_price(text: &str) -> i64 {
    if text.is_empty() {
        dbn::UNDEF_PRICE
    } else {
        text.parse::<i64>().unwrap() * 100_000
    }
}

#[test]
fn dbn_levels_decode_to_csv_values() {
    let (dir, itch) = sample("export_dbn_levels");
    let csv_path = dir.join("levels.csv");
    let dbn_path = dir.join("levels.mbp-10.dbn.zst");
    export(&itch, &csv_path, "csv", "levels:10", &[]);
    export(&itch, &dbn_path, "dbn", "levels:10", &["--date", "2012-06-21"]);

    let csv = Csv::read(&csv_path);
    let (metadata, records) = decode::<Mbp10Msg>(&dbn_path);
    assert_eq!(metadata.dataset, "XNAS.ITCH");
    assert_eq!(metadata.schema, Some(dbn::Schema::Mbp10));
    assert_eq!(metadata.start, MIDNIGHT_2012_06_21);
    let mapping = &metadata.mappings[0];
    assert_eq!(mapping.raw_symbol, "AAPL");
    assert_eq!(mapping.intervals[0].symbol, "1");
    assert_eq!(mapping.intervals[0].start_date.to_string(), "2012-06-21");

    assert_eq!(records.len(), csv.rows.len());
    for (index, (record, row)) in records.iter().zip(&csv.rows).enumerate() {
        let at = format!("row {}", index + 1);
        let exchange_ts: u64 = csv.value(row, "exchange_ts").parse().unwrap();
        assert_eq!(record.hd.ts_event, MIDNIGHT_2012_06_21 + exchange_ts, "{at}");
        assert_eq!(record.ts_recv, record.hd.ts_event, "{at}: no capture time, so ts_recv is ts_event");
        assert_eq!(record.flags.raw(), dbn::flags::LAST | dbn::flags::BAD_TS_RECV, "{at}");
        assert_eq!(record.hd.instrument_id, 1, "{at}");
        assert_eq!(record.sequence.to_string(), csv.value(row, "sequence"), "{at}");
        for (level, pair) in record.levels.iter().enumerate() {
            let n = level + 1;
            assert_eq!(pair.ask_px, dbn_price(csv.value(row, &format!("ask_price_{n}"))), "{at} level {n}");
            assert_eq!(pair.bid_px, dbn_price(csv.value(row, &format!("bid_price_{n}"))), "{at} level {n}");
            assert_eq!(pair.ask_sz.to_string(), csv.value(row, &format!("ask_shares_{n}")), "{at} level {n}");
            assert_eq!(pair.bid_sz.to_string(), csv.value(row, &format!("bid_shares_{n}")), "{at} level {n}");
            assert_eq!(pair.ask_ct.to_string(), csv.value(row, &format!("ask_orders_{n}")), "{at} level {n}");
            assert_eq!(pair.bid_ct.to_string(), csv.value(row, &format!("bid_orders_{n}")), "{at} level {n}");
        }
    }
}

#[test]
fn dbn_bbo_trades_and_orders_decode() {
    let (dir, itch) = sample("export_dbn_records");
    let date = ["--date", "2012-06-21"];

    let bbo_csv = dir.join("bbo.csv");
    let bbo_dbn = dir.join("bbo.dbn");
    export(&itch, &bbo_csv, "csv", "bbo", &[]);
    export(&itch, &bbo_dbn, "dbn", "bbo", &date);
    let csv = Csv::read(&bbo_csv);
    let (metadata, records) = decode::<Mbp1Msg>(&bbo_dbn);
    assert_eq!(metadata.schema, Some(dbn::Schema::Mbp1));
    assert_eq!(records.len(), csv.rows.len());
    for (record, row) in records.iter().zip(&csv.rows) {
        assert_eq!(record.levels[0].ask_px, dbn_price(csv.value(row, "ask_price")));
        assert_eq!(record.levels[0].bid_sz.to_string(), csv.value(row, "bid_shares"));
        assert_eq!(record.action as u8, b'N');
    }

    let trades_csv = dir.join("trades.csv");
    let trades_dbn = dir.join("trades.dbn");
    export(&itch, &trades_csv, "csv", "trades", &[]);
    export(&itch, &trades_dbn, "dbn", "trades", &date);
    let csv = Csv::read(&trades_csv);
    let (metadata, records) = decode::<TradeMsg>(&trades_dbn);
    assert_eq!(metadata.schema, Some(dbn::Schema::Trades));
    assert_eq!(records.len(), csv.rows.len());
    for (record, row) in records.iter().zip(&csv.rows) {
        assert_eq!(record.price, dbn_price(csv.value(row, "price")));
        assert_eq!(record.size.to_string(), csv.value(row, "shares"));
        // DBN gives the aggressor's side: the one opposite the resting order.
        let aggressor = if csv.value(row, "side") == "B" { b'A' } else { b'B' };
        assert_eq!(record.side as u8, aggressor);
        assert_eq!(record.action as u8, b'T');
    }

    let orders_csv = dir.join("orders.csv");
    let orders_dbn = dir.join("orders.dbn");
    export(&itch, &orders_csv, "csv", "orders", &[]);
    export(&itch, &orders_dbn, "dbn", "orders", &date);
    let csv = Csv::read(&orders_csv);
    let (metadata, records) = decode::<MboMsg>(&orders_dbn);
    assert_eq!(metadata.schema, Some(dbn::Schema::Mbo));
    // Executions are a fill and a cancel; adds and deletes are one record each.
    let mut expected = Vec::new();
    for row in &csv.rows {
        let order_id: u64 = csv.value(row, "order_ref").parse().unwrap();
        let shares: u32 = csv.value(row, "shares").parse().unwrap();
        match csv.value(row, "msg_type") {
            "A" => expected.push((b'A', order_id, shares)),
            "D" => expected.push((b'C', order_id, shares)),
            "E" => {
                expected.push((b'F', order_id, shares));
                expected.push((b'C', order_id, shares));
            }
            other => panic!("the sample has no {other} order events"),
        }
    }
    let decoded: Vec<(u8, u64, u32)> = records.iter().map(|r| (r.action as u8, r.order_id, r.size)).collect();
    assert_eq!(decoded, expected);
    let last_flags = records.iter().filter(|r| r.flags.is_last()).count();
    assert_eq!(last_flags, csv.rows.len(), "one LAST record per order event");
}

"""Check a `mdfh export --what levels:N --to parquet` file against `mdfh book` rows.

Usage: python3 check_parquet.py OUT.parquet BOOK.csv

BOOK.csv contains the rows `mdfh book FILE --levels N --symbol S` prints, one per message of the
instrument, in LOBSTER's orderbook layout: for each level the ask price, ask shares, bid price
and bid shares, with 9999999999 and -9999999999 as the prices of empty levels. The Parquet file
must hold the same rows in the same order, with null prices for empty levels.

The script reads the file with pyarrow alone, as a quant would, and exits with status 1 and
one line per problem on the first mismatching row, or prints the number of rows checked.
"""

import csv
import sys

import pyarrow as pa
import pyarrow.parquet as pq

EMPTY_ASK_PRICE = 9999999999
EMPTY_BID_PRICE = -9999999999

EXPECTED_TYPES = {
    "exchange_ts": pa.uint64(),
    "receive_ts": pa.uint64(),
    "locate": pa.uint16(),
    "symbol": pa.string(),
    "sequence": pa.uint64(),
}

EXPECTED_METADATA = [b"mdfh.exchange_ts", b"mdfh.receive_ts", b"mdfh.price", b"mdfh.export"]


def fail(message):
    print(f"check_parquet: {message}", file=sys.stderr)
    sys.exit(1)


def book_value(value, empty):
    """Return a Parquet level price as `mdfh book` prints it."""
    return empty if value is None else value


def main():
    if len(sys.argv) != 3:
        fail("usage: check_parquet.py OUT.parquet BOOK.csv")
    parquet_path, book_path = sys.argv[1], sys.argv[2]

    table = pq.read_table(parquet_path)
    with open(book_path, newline="") as book_file:
        book_rows = [[int(field) for field in row] for row in csv.reader(book_file)]
    if not book_rows:
        fail(f"{book_path} has no rows")
    levels = len(book_rows[0]) // 4

    for name, expected in EXPECTED_TYPES.items():
        if name not in table.column_names:
            fail(f"column {name} is missing")
        if table.schema.field(name).type != expected:
            fail(f"column {name} has type {table.schema.field(name).type}, expected {expected}")
    metadata = pq.read_metadata(parquet_path).metadata or {}
    for key in EXPECTED_METADATA:
        if key not in metadata:
            fail(f"key-value metadata {key.decode()} is missing")
    if metadata[b"mdfh.export"] != f"levels:{levels}".encode():
        fail(f"mdfh.export is {metadata[b'mdfh.export'].decode()}, expected levels:{levels}")

    if table.num_rows != len(book_rows):
        fail(f"{table.num_rows} Parquet rows, {len(book_rows)} mdfh book rows")

    columns = {name: table.column(name).to_pylist() for name in table.column_names}
    for index, book_row in enumerate(book_rows):
        parquet_row = []
        for level in range(1, levels + 1):
            parquet_row.append(book_value(columns[f"ask_price_{level}"][index], EMPTY_ASK_PRICE))
            parquet_row.append(columns[f"ask_shares_{level}"][index])
            parquet_row.append(book_value(columns[f"bid_price_{level}"][index], EMPTY_BID_PRICE))
            parquet_row.append(columns[f"bid_shares_{level}"][index])
        if parquet_row != book_row:
            fail(f"row {index + 1}: Parquet {parquet_row}, mdfh book {book_row}")
        if index > 0 and columns["sequence"][index] <= columns["sequence"][index - 1]:
            fail(f"row {index + 1}: sequence {columns['sequence'][index]} does not grow")

    print(f"check_parquet: {table.num_rows} rows match mdfh book")


if __name__ == "__main__":
    main()

//! CSV output: a header row with the column names, then one line per row. A null is an empty
//! field, a side is `B` or `S`, a boolean is `true` or `false`.

use std::fmt::Write as _;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use super::error::ExportError;
use super::rows::{Column, Row, Value};
use super::RowWriter;

pub(crate) struct CsvWriter {
    out: csv::Writer<BufWriter<File>>,
    /// The temporary path being written, for error messages.
    path: PathBuf,
    depth: usize,
    /// Text of the field being written, reused from row to row.
    field: String,
}

impl CsvWriter {
    /// Writes the header row of `columns` to `file`.
    pub(crate) fn new(file: File, path: PathBuf, columns: &[Column], depth: usize) -> Result<CsvWriter, ExportError> {
        let mut out = csv::Writer::from_writer(BufWriter::new(file));
        out.write_record(columns.iter().map(|column| column.name.as_str()))
            .map_err(|source| ExportError::Csv { path: path.clone(), source })?;
        Ok(CsvWriter { out, path, depth, field: String::new() })
    }
}

impl RowWriter for CsvWriter {
    fn write(&mut self, row: &Row<'_>) -> Result<(), ExportError> {
        let mut result = Ok(());
        let (out, field) = (&mut self.out, &mut self.field);
        row.visit_values(self.depth, &mut |value| {
            field.clear();
            // Writing to a String cannot fail.
            let _ = match value {
                Value::UInt16(v) => write!(field, "{v}"),
                Value::UInt32(Some(v)) => write!(field, "{v}"),
                Value::UInt64(Some(v)) => write!(field, "{v}"),
                Value::Utf8(Some(v)) => write!(field, "{v}"),
                Value::Boolean(Some(v)) => write!(field, "{v}"),
                Value::UInt32(None) | Value::UInt64(None) | Value::Utf8(None) | Value::Boolean(None) => Ok(()),
            };
            if result.is_ok() {
                result = out.write_field(field.as_bytes());
            }
        });
        result
            .and_then(|()| out.write_record(None::<&[u8]>))
            .map_err(|source| ExportError::Csv { path: self.path.clone(), source })
    }

    fn finish(mut self: Box<Self>) -> Result<(), ExportError> {
        self.out.flush().map_err(|source| ExportError::Write { path: self.path.clone(), source })
    }
}

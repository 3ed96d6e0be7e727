//! Parquet output through the `arrow` and `parquet` crates: zstd-compressed columns, one row
//! group per [`BATCH_ROWS`] rows, and file metadata that names the units.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, StringBuilder, UInt16Builder, UInt32Builder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use super::error::ExportError;
use super::rows::{Column, ColumnType, Row, Value};
use super::RowWriter;

/// Rows gathered in Arrow builders before they are written as one record batch.
const BATCH_ROWS: usize = 65_536;

/// One Arrow builder per column.
enum ColumnBuilder {
    UInt16(UInt16Builder),
    UInt32(UInt32Builder),
    UInt64(UInt64Builder),
    Utf8(StringBuilder),
    Boolean(BooleanBuilder),
}

impl ColumnBuilder {
    fn new(column_type: ColumnType) -> ColumnBuilder {
        match column_type {
            ColumnType::UInt16 => ColumnBuilder::UInt16(UInt16Builder::with_capacity(BATCH_ROWS)),
            ColumnType::UInt32 => ColumnBuilder::UInt32(UInt32Builder::with_capacity(BATCH_ROWS)),
            ColumnType::UInt64 => ColumnBuilder::UInt64(UInt64Builder::with_capacity(BATCH_ROWS)),
            ColumnType::Utf8 => ColumnBuilder::Utf8(StringBuilder::new()),
            ColumnType::Boolean => ColumnBuilder::Boolean(BooleanBuilder::with_capacity(BATCH_ROWS)),
        }
    }

    /// Appends `value`. [`Row::visit_values`] yields values in the types of
    /// [`super::rows::columns`], so a value of another type than the builder's does not occur.
    /// It would be appended as a null.
    fn append(&mut self, value: Value<'_>) {
        match (self, value) {
            (ColumnBuilder::UInt16(b), Value::UInt16(v)) => b.append_value(v),
            (ColumnBuilder::UInt32(b), Value::UInt32(v)) => b.append_option(v),
            (ColumnBuilder::UInt64(b), Value::UInt64(v)) => b.append_option(v),
            (ColumnBuilder::Utf8(b), Value::Utf8(v)) => b.append_option(v),
            (ColumnBuilder::Boolean(b), Value::Boolean(v)) => b.append_option(v),
            (ColumnBuilder::UInt16(b), _) => b.append_null(),
            (ColumnBuilder::UInt32(b), _) => b.append_null(),
            (ColumnBuilder::UInt64(b), _) => b.append_null(),
            (ColumnBuilder::Utf8(b), _) => b.append_null(),
            (ColumnBuilder::Boolean(b), _) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::UInt16(b) => Arc::new(b.finish()),
            ColumnBuilder::UInt32(b) => Arc::new(b.finish()),
            ColumnBuilder::UInt64(b) => Arc::new(b.finish()),
            ColumnBuilder::Utf8(b) => Arc::new(b.finish()),
            ColumnBuilder::Boolean(b) => Arc::new(b.finish()),
        }
    }
}

pub(crate) struct ParquetWriter {
    writer: ArrowWriter<File>,
    schema: SchemaRef,
    builders: Vec<ColumnBuilder>,
    rows: usize,
    depth: usize,
    /// The temporary path being written, for error messages.
    path: PathBuf,
}

impl ParquetWriter {
    /// Starts a Parquet file of `columns` in `file`. `metadata` goes into the file's key-value
    /// metadata.
    pub(crate) fn new(
        file: File,
        path: PathBuf,
        columns: &[Column],
        depth: usize,
        metadata: Vec<(String, String)>,
    ) -> Result<ParquetWriter, ExportError> {
        let fields: Vec<Field> = columns
            .iter()
            .map(|column| Field::new(column.name.clone(), data_type(column.column_type), column.nullable))
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let key_values = metadata.into_iter().map(|(key, value)| KeyValue::new(key, value)).collect();
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_key_value_metadata(Some(key_values))
            .build();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(properties))
            .map_err(|source| ExportError::Parquet { path: path.clone(), source })?;
        let builders = columns.iter().map(|column| ColumnBuilder::new(column.column_type)).collect();
        Ok(ParquetWriter { writer, schema, builders, rows: 0, depth, path })
    }

    /// Writes the gathered rows as one record batch.
    fn flush_batch(&mut self) -> Result<(), ExportError> {
        if self.rows == 0 {
            return Ok(());
        }
        let arrays: Vec<ArrayRef> = self.builders.iter_mut().map(ColumnBuilder::finish).collect();
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)
            .map_err(|source| ExportError::Arrow { path: self.path.clone(), source })?;
        self.writer
            .write(&batch)
            .map_err(|source| ExportError::Parquet { path: self.path.clone(), source })?;
        self.rows = 0;
        Ok(())
    }
}

impl RowWriter for ParquetWriter {
    fn write(&mut self, row: &Row<'_>) -> Result<(), ExportError> {
        let mut builders = self.builders.iter_mut();
        row.visit_values(self.depth, &mut |value| {
            if let Some(builder) = builders.next() {
                builder.append(value);
            }
        });
        self.rows += 1;
        if self.rows >= BATCH_ROWS {
            self.flush_batch()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), ExportError> {
        self.flush_batch()?;
        let path = self.path;
        self.writer.close().map(drop).map_err(|source| ExportError::Parquet { path, source })
    }
}

fn data_type(column_type: ColumnType) -> DataType {
    match column_type {
        ColumnType::UInt16 => DataType::UInt16,
        ColumnType::UInt32 => DataType::UInt32,
        ColumnType::UInt64 => DataType::UInt64,
        ColumnType::Utf8 => DataType::Utf8,
        ColumnType::Boolean => DataType::Boolean,
    }
}

//! Reading of Databento DBN files, plain or zstd-compressed, through the `dbn` crate.
//!
//! A DBN stream is the prefix `DBN` and a version byte, a little-endian u32 metadata length, the
//! metadata, then records back to back. Every record starts with a 16-byte header whose first
//! byte is the record length in units of 4 bytes. Versions 1 to 3 are read; their record header
//! and the MBO, MBP-1, MBP-10 and trade records are the same in all three.
//!
//! The whole file is decompressed into memory, as [`mdfh_feed::file`] does with ITCH files.
//! Byte offsets in errors count from the start of the decompressed stream, which is the file
//! itself when it is not compressed.
//!
//! [`DbnFile::messages`] turns the records into ITCH 5.0 messages (see [`super::dbn_convert`]),
//! so that `mdfh book` and `mdfh export` replay DBN files through the same order books as ITCH.

use std::io::Read;
use std::path::{Path, PathBuf};

use dbn::decode::dbn::{MetadataDecoder, RecordDecoder};
use dbn::{rtype, MboMsg, Mbp10Msg, Mbp1Msg, Metadata, RecordHeader, TradeMsg, VersionUpgradePolicy};

use super::dbn_convert::{Converter, DbnInstrument, DbnMessage};

/// Length of the stream prefix: `DBN`, the version byte and the u32 metadata length.
const PREFIX_LEN: usize = 8;
/// Length of the record header every DBN record of versions 1 to 3 starts with.
const RECORD_HEADER_LEN: usize = std::mem::size_of::<RecordHeader>();
/// The first four bytes of a zstd frame (magic number 0xFD2FB528, little-endian).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
/// Highest DBN version this module reads.
pub const MAX_VERSION: u8 = 3;

/// Errors from reading a DBN file or converting its records.
#[derive(Debug, thiserror::Error)]
pub enum DbnError {
    #[error("failed to read DBN file {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    #[error("invalid zstd data after {decompressed} decompressed bytes: {source}")]
    Decompress { decompressed: usize, source: std::io::Error },

    #[error("not a DBN stream: it starts with {start:?} instead of \"DBN\"")]
    NotDbn { start: String },

    #[error("DBN version {version} is not supported; mdfh reads versions 1 to {MAX_VERSION}")]
    UnsupportedVersion { version: u8 },

    #[error("byte offset {PREFIX_LEN}: the metadata is {declared} bytes long but the stream ends after {available}")]
    TruncatedMetadata { declared: usize, available: usize },

    #[error("invalid DBN metadata: {source}")]
    Metadata { source: dbn::Error },

    #[error("byte offset {offset}: truncated record: {length} bytes needed, {available} left in the stream")]
    TruncatedRecord { offset: usize, length: usize, available: usize },

    #[error("byte offset {offset}: invalid record length {length} (the 16-byte header alone is longer)")]
    RecordLength { offset: usize, length: usize },

    #[error("byte offset {offset}: invalid record (rtype {rtype:#04x}): {source}")]
    Record { offset: usize, rtype: u8, source: dbn::Error },

    #[error(
        "byte offset {offset}: instrument {instrument_id}: price {price} (1e-9 units) does not fit a u32 in 1/10000"
    )]
    PriceOutOfRange { offset: usize, instrument_id: u32, price: i64 },

    #[error(
        "byte offset {offset}: instrument {instrument_id}: price {price} (1e-9 units) is not a whole number of 1/10000"
    )]
    PricePrecision { offset: usize, instrument_id: u32, price: i64 },

    #[error("byte offset {offset}: instrument {instrument_id}, order {order_id}: invalid side {side:?} for action {action:?}")]
    InvalidSide { offset: usize, instrument_id: u32, order_id: u64, side: char, action: char },

    #[error("byte offset {offset}: instrument {instrument_id}, order {order_id}: invalid action {action:?}")]
    InvalidAction { offset: usize, instrument_id: u32, order_id: u64, action: char },

    #[error("byte offset {offset}: instrument {instrument_id}: size {size} of a level does not fit an ITCH order (u32)")]
    LevelSize { offset: usize, instrument_id: u32, size: u64 },

    #[error("byte offset {offset}: instrument {instrument_id} is one more than the 65535 instruments an ITCH locate can number")]
    TooManyInstruments { offset: usize, instrument_id: u32 },
}

impl DbnError {
    /// Returns the byte offset in the decompressed stream the error was found at, or `None` when
    /// the error is not about one place.
    pub fn offset(&self) -> Option<usize> {
        match self {
            DbnError::TruncatedMetadata { .. } => Some(PREFIX_LEN),
            DbnError::TruncatedRecord { offset, .. }
            | DbnError::RecordLength { offset, .. }
            | DbnError::Record { offset, .. }
            | DbnError::PriceOutOfRange { offset, .. }
            | DbnError::PricePrecision { offset, .. }
            | DbnError::InvalidSide { offset, .. }
            | DbnError::InvalidAction { offset, .. }
            | DbnError::LevelSize { offset, .. }
            | DbnError::TooManyInstruments { offset, .. } => Some(*offset),
            _ => None,
        }
    }
}

/// Returns whether `bytes`, the start of a file, look like DBN: the `DBN` prefix, or a zstd
/// frame, which is taken as compressed DBN because no other format mdfh reads starts with one.
pub fn is_dbn(bytes: &[u8]) -> bool {
    bytes.starts_with(b"DBN") || bytes.starts_with(&ZSTD_MAGIC)
}

/// Converts DBN bytes (plain or zstd) to an ITCH 5.0 BinaryFILE in memory, so that every tool
/// that reads BinaryFILEs (`mdfh book`, `mdfh replay`) reads DBN too. Records that cannot be
/// converted are passed to `on_error` and left out. One DBN record can become two messages (a
/// modify is a delete and an add).
pub fn to_binary_file(bytes: Vec<u8>, on_error: &mut dyn FnMut(&DbnError)) -> Result<Vec<u8>, DbnError> {
    let file = DbnFile::from_bytes(bytes)?;
    let mut out = Vec::new();
    for item in file.messages() {
        match item {
            Ok(message) => mdfh_feed::binaryfile::write_message(&mut out, &message.message),
            Err(error) => on_error(&error),
        }
    }
    Ok(out)
}

/// A DBN file, decompressed and held in memory, with its decoded metadata.
#[derive(Debug)]
pub struct DbnFile {
    /// The decompressed stream: prefix, metadata and records.
    bytes: Vec<u8>,
    metadata: Metadata,
    version: u8,
    compressed: bool,
}

/// Reads the DBN file at `path`, plain or zstd-compressed, into memory and decodes its metadata.
pub fn open(path: &Path) -> Result<DbnFile, DbnError> {
    let bytes = std::fs::read(path).map_err(|source| DbnError::Io { path: path.to_owned(), source })?;
    DbnFile::from_bytes(bytes)
}

impl DbnFile {
    /// Decompresses `bytes` when they start with a zstd frame and decodes the metadata. Damage
    /// after the metadata is reported while reading the records.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<DbnFile, DbnError> {
        let compressed = bytes.starts_with(&ZSTD_MAGIC);
        let bytes = if compressed { decompress(&bytes)? } else { bytes };

        let Some(prefix) = bytes.get(..PREFIX_LEN).filter(|prefix| prefix.starts_with(b"DBN")) else {
            let start = String::from_utf8_lossy(bytes.get(..3).unwrap_or(&bytes)).into_owned();
            return Err(DbnError::NotDbn { start });
        };
        let version = prefix.get(3).copied().unwrap_or(0);
        if !(1..=MAX_VERSION).contains(&version) {
            return Err(DbnError::UnsupportedVersion { version });
        }
        let declared = prefix
            .get(4..PREFIX_LEN)
            .and_then(|length| <[u8; 4]>::try_from(length).ok())
            .map_or(0, |length| u32::from_le_bytes(length) as usize);
        let available = bytes.len() - PREFIX_LEN;
        if declared > available {
            return Err(DbnError::TruncatedMetadata { declared, available });
        }
        let metadata_end = PREFIX_LEN + declared;
        let metadata = MetadataDecoder::new(bytes.get(..metadata_end).unwrap_or(&[]))
            .decode()
            .map_err(|source| DbnError::Metadata { source })?;
        Ok(DbnFile { bytes, metadata, version, compressed })
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Returns whether the file was zstd-compressed.
    pub fn is_compressed(&self) -> bool {
        self.compressed
    }

    /// Returns the length of the decompressed stream in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Returns whether the decompressed stream is empty, which a decoded file never is.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Returns an iterator over the records, in file order.
    ///
    /// A record whose length runs past the end of the stream, or is shorter than its header,
    /// ends the iteration with an error, because the records after it cannot be framed. A
    /// record of a known type that is too short for that type is yielded as an error, and
    /// reading goes on with the next record.
    pub fn records(&self) -> DbnRecords<'_> {
        let start = PREFIX_LEN + self.declared_metadata_len();
        let records = self.bytes.get(start..).unwrap_or(&[]);
        let decoder = RecordDecoder::with_version(records, self.version, VersionUpgradePolicy::AsIs, self.metadata.ts_out);
        DbnRecords { bytes: &self.bytes, offset: start, decoder: decoder.ok(), failed: false }
    }

    /// Returns an iterator over the records converted to ITCH 5.0 messages: see
    /// [`super::dbn_convert`] for the mapping. Errors of one record are yielded and reading goes
    /// on, except for the framing errors that end [`DbnFile::records`].
    pub fn messages(&self) -> DbnMessages<'_> {
        DbnMessages {
            records: self.records(),
            converter: Converter::new(&self.metadata),
            pending: std::collections::VecDeque::new(),
        }
    }

    fn declared_metadata_len(&self) -> usize {
        self.bytes
            .get(4..PREFIX_LEN)
            .and_then(|length| <[u8; 4]>::try_from(length).ok())
            .map_or(0, |length| u32::from_le_bytes(length) as usize)
    }
}

/// Decompresses a whole zstd stream, which may hold several frames. A stream cut inside a frame
/// is an error, unlike in the `dbn` crate's streaming decoder, which ends quietly there.
fn decompress(bytes: &[u8]) -> Result<Vec<u8>, DbnError> {
    let mut decompressed = Vec::with_capacity(bytes.len().saturating_mul(4));
    let mut decoder = dbn::decode::DynReader::with_buffer(bytes, dbn::Compression::Zstd)
        .map_err(|err| DbnError::Decompress { decompressed: 0, source: std::io::Error::other(err.to_string()) })?;
    match decoder.read_to_end(&mut decompressed) {
        Ok(_) => Ok(decompressed),
        Err(source) => Err(DbnError::Decompress { decompressed: decompressed.len(), source }),
    }
}

/// One DBN record of a type mdfh replays, copied out of the stream.
#[derive(Debug, Clone)]
pub enum DbnRecord {
    Mbo(MboMsg),
    Mbp1(Mbp1Msg),
    /// Boxed, because it is more than four times the size of the others.
    Mbp10(Box<Mbp10Msg>),
    Trade(TradeMsg),
    /// A record of another type (definitions, statistics, status, symbol mappings, ...),
    /// which replay skips.
    Other { rtype: u8, instrument_id: u32 },
}

/// Iterator over the records of a [`DbnFile`]: each with the byte offset of its first byte.
pub struct DbnRecords<'a> {
    bytes: &'a [u8],
    /// Offset of the next record's first byte.
    offset: usize,
    /// `None` when the decoder could not be built, which does not occur for a version that
    /// [`DbnFile::from_bytes`] accepted.
    decoder: Option<RecordDecoder<&'a [u8]>>,
    failed: bool,
}

impl Iterator for DbnRecords<'_> {
    type Item = Result<(usize, DbnRecord), DbnError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let offset = self.offset;
        let rest = self.bytes.get(offset..).unwrap_or(&[]);
        if rest.is_empty() {
            return None;
        }
        // Check the framing here, because the `dbn` decoder ends without an error on a record
        // cut short by the end of the stream.
        let length = usize::from(rest.first().copied().unwrap_or(0)) * 4;
        if rest.len() < RECORD_HEADER_LEN || rest.len() < length {
            self.failed = true;
            let length = length.max(RECORD_HEADER_LEN);
            return Some(Err(DbnError::TruncatedRecord { offset, length, available: rest.len() }));
        }
        if length < RECORD_HEADER_LEN {
            self.failed = true;
            return Some(Err(DbnError::RecordLength { offset, length }));
        }
        self.offset += length;

        let rtype = rest.get(1).copied().unwrap_or(0);
        let decoder = self.decoder.as_mut()?;
        let record = match decoder.decode_ref() {
            Ok(Some(record)) => record,
            Ok(None) => {
                self.failed = true;
                return Some(Err(DbnError::TruncatedRecord { offset, length, available: rest.len() }));
            }
            Err(source) => {
                self.failed = true;
                return Some(Err(DbnError::Record { offset, rtype, source }));
            }
        };
        let copied = match rtype {
            rtype::MBO => record.try_get::<MboMsg>().map(|r| DbnRecord::Mbo(r.clone())),
            rtype::MBP_1 => record.try_get::<Mbp1Msg>().map(|r| DbnRecord::Mbp1(r.clone())),
            rtype::MBP_10 => record.try_get::<Mbp10Msg>().map(|r| DbnRecord::Mbp10(Box::new(r.clone()))),
            rtype::MBP_0 => record.try_get::<TradeMsg>().map(|r| DbnRecord::Trade(r.clone())),
            _ => Ok(DbnRecord::Other { rtype, instrument_id: record.header().instrument_id }),
        };
        Some(copied.map(|record| (offset, record)).map_err(|source| DbnError::Record { offset, rtype, source }))
    }
}

/// Iterator over the ITCH messages a [`DbnFile`] converts to. One record can give several
/// messages (a modify gives a delete and an add), or none (a record of another type).
pub struct DbnMessages<'a> {
    records: DbnRecords<'a>,
    converter: Converter,
    pending: std::collections::VecDeque<DbnMessage>,
}

impl DbnMessages<'_> {
    /// Returns the instruments met so far, in the order their locates were given.
    pub fn instruments(&self) -> &[DbnInstrument] {
        self.converter.instruments()
    }
}

impl Iterator for DbnMessages<'_> {
    type Item = Result<DbnMessage, DbnError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(message) = self.pending.pop_front() {
                return Some(Ok(message));
            }
            let (offset, record) = match self.records.next()? {
                Ok(item) => item,
                Err(err) => return Some(Err(err)),
            };
            if let Err(err) = self.converter.convert(offset, &record, &mut self.pending) {
                return Some(Err(err));
            }
        }
    }
}

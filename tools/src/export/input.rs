//! The input of an export: an ITCH file (BinaryFILE, pcap or pcapng) or a DBN file, read as one
//! sequence of ITCH messages with their timestamps, sequence numbers and instruments.

use std::collections::BTreeMap;
use std::path::Path;

use mdfh_feed::session::{FileSequence, FileVerdict};
use mdfh_feed::file::{FeedFile, FileError, FileMessages};
use mdfh_feed::itch::Message;
use mdfh_feed::DecodeError;

use super::dbn_input::{self, DbnError, DbnFile, DbnMessages};
use super::error::ExportError;

/// Origin of the exchange timestamps of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBase {
    /// ITCH: nanoseconds since midnight in New York.
    NewYorkMidnight,
    /// DBN: nanoseconds since the Unix epoch.
    UnixEpoch,
}

/// A recorded file to export.
pub(crate) enum InputFile {
    Itch(FeedFile),
    Dbn(Box<DbnFile>),
}

/// One ITCH message of the input with what an exported row needs besides the book.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InputEvent {
    pub message: Message,
    /// Byte offset of the message (ITCH) or record (DBN, in the decompressed stream).
    pub offset: usize,
    /// Exchange time in nanoseconds: see [`TimeBase`].
    pub exchange_ts: u64,
    /// Capture time in nanoseconds since the Unix epoch: the pcap frame time, or DBN `ts_recv`.
    pub receive_ts: Option<u64>,
    /// MoldUDP64 sequence number (pcap), position from 1 (BinaryFILE), or DBN `sequence`.
    pub sequence: u64,
    /// Whether the books are consistent after this message: always for ITCH, and after the
    /// last message converted from a DBN record.
    pub ends_record: bool,
    /// MoldUDP64 sequence numbers `expected..received` missing just before this message.
    pub gap: Option<(u64, u64)>,
}

/// An instrument of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Instrument {
    pub locate: u16,
    /// Symbol without padding; empty when no message names the instrument.
    pub symbol: String,
    /// DBN instrument id; the locate for ITCH input.
    pub instrument_id: u32,
    /// DBN publisher id; `None` for ITCH input.
    pub publisher_id: Option<u16>,
}

/// An error in one message or record of the input. Reading goes on after it unless the file
/// cannot be framed further.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InputError {
    #[error(transparent)]
    Feed(#[from] FileError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Dbn(#[from] DbnError),
}

impl InputFile {
    /// Reads `path` into memory. The format is detected from the first bytes: DBN (plain or
    /// zstd), else an ITCH capture or BinaryFILE.
    pub(crate) fn open(path: &Path) -> Result<InputFile, ExportError> {
        let bytes = std::fs::read(path).map_err(|source| ExportError::Read { path: path.to_owned(), source })?;
        if dbn_input::is_dbn(&bytes) {
            let dbn = DbnFile::from_bytes(bytes)
                .map_err(|source| ExportError::Dbn { path: path.to_owned(), source })?;
            return Ok(InputFile::Dbn(Box::new(dbn)));
        }
        let feed = FeedFile::from_bytes(bytes).map_err(|source| ExportError::Feed { path: path.to_owned(), source })?;
        Ok(InputFile::Itch(feed))
    }

    pub(crate) fn time_base(&self) -> TimeBase {
        match self {
            InputFile::Itch(_) => TimeBase::NewYorkMidnight,
            InputFile::Dbn(_) => TimeBase::UnixEpoch,
        }
    }

    /// Returns an iterator over the messages of the file, in file order.
    pub(crate) fn events(&self) -> InputEvents<'_> {
        match self {
            InputFile::Itch(feed) => InputEvents::Itch { messages: feed.messages(), position: 0, sequence: FileSequence::default() },
            InputFile::Dbn(dbn) => InputEvents::Dbn(dbn.messages()),
        }
    }

    /// Returns every instrument of the file by locate, read in one pass over the messages.
    ///
    /// An ITCH instrument takes its symbol from its stock directory message, or else from the
    /// first message that carries a symbol. A DBN instrument takes the one the metadata maps.
    pub(crate) fn instruments(&self) -> BTreeMap<u16, Instrument> {
        let mut events = self.events();
        let mut instruments: BTreeMap<u16, Instrument> = BTreeMap::new();
        let mut named_by_directory: Vec<u16> = Vec::new();
        for event in events.by_ref().flatten() {
            let locate = event.message.header().stock_locate;
            if locate == 0 {
                continue;
            }
            let instrument = instruments.entry(locate).or_insert_with(|| Instrument {
                locate,
                symbol: String::new(),
                instrument_id: u32::from(locate),
                publisher_id: None,
            });
            if let Message::StockDirectory(directory) = &event.message {
                if !named_by_directory.contains(&locate) {
                    named_by_directory.push(locate);
                    instrument.symbol = directory.stock.as_str().to_owned();
                }
            } else if instrument.symbol.is_empty() {
                if let Some(stock) = event.message.stock() {
                    instrument.symbol = stock.as_str().to_owned();
                }
            }
        }
        if let InputEvents::Dbn(messages) = &events {
            for dbn in messages.instruments() {
                instruments.insert(
                    dbn.locate,
                    Instrument {
                        locate: dbn.locate,
                        symbol: dbn.symbol.clone(),
                        instrument_id: dbn.instrument_id,
                        publisher_id: Some(dbn.publisher_id),
                    },
                );
            }
        }
        instruments
    }
}

/// Iterator over the messages of an [`InputFile`].
// There is one per export, so the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum InputEvents<'a> {
    Itch {
        messages: FileMessages<'a>,
        /// Messages framed so far, which numbers the messages of a BinaryFILE.
        position: u64,
        /// Capture sequence checking: repeated packets are skipped, gaps reported.
        sequence: FileSequence,
    },
    Dbn(DbnMessages<'a>),
}

impl InputEvents<'_> {
    /// Returns the capture frames skipped so far because they hold no UDP over IPv4 datagram
    /// (ARP, IPv6, TCP, IPv4 fragments, unsupported pcapng interfaces); 0 for other inputs.
    /// Returns the repeated capture messages skipped so far.
    pub(crate) fn duplicates(&self) -> u64 {
        match self {
            InputEvents::Itch { sequence, .. } => sequence.duplicates,
            InputEvents::Dbn(_) => 0,
        }
    }

    pub(crate) fn skipped_frames(&self) -> u64 {
        let InputEvents::Itch { messages, .. } = self else {
            return 0;
        };
        messages.capture_summary().map_or(0, |summary| {
            summary.skipped_non_ipv4
                + summary.skipped_non_udp
                + summary.skipped_fragments
                + summary.skipped_unsupported_link
        })
    }
}

impl Iterator for InputEvents<'_> {
    type Item = Result<InputEvent, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            InputEvents::Itch { messages, position, sequence } => {
                let (file_message, gap) = loop {
                    let file_message = match messages.next()? {
                        Ok(file_message) => file_message,
                        Err(err) => return Some(Err(err.into())),
                    };
                    // A capture can hold a packet twice (both feed lines, or a resend); applying
                    // it twice would execute orders twice, as `mdfh book` and the live path avoid.
                    match sequence.check(file_message.session, file_message.moldudp64_sequence) {
                        FileVerdict::Duplicate => continue,
                        FileVerdict::Apply => break (file_message, None),
                        FileVerdict::Gap { expected, received } => break (file_message, Some((expected, received))),
                    }
                };
                *position += 1;
                let message = match file_message.decode() {
                    Ok(message) => message,
                    Err(err) => return Some(Err(err.into())),
                };
                Some(Ok(InputEvent {
                    message,
                    offset: file_message.offset,
                    exchange_ts: message.header().timestamp,
                    receive_ts: file_message.capture_ts_ns,
                    sequence: file_message.moldudp64_sequence.unwrap_or(*position),
                    ends_record: true,
                    gap,
                }))
            }
            InputEvents::Dbn(messages) => Some(match messages.next()? {
                Ok(dbn) => Ok(InputEvent {
                    message: dbn.message,
                    offset: dbn.offset,
                    exchange_ts: dbn.ts_event,
                    receive_ts: dbn.ts_recv,
                    sequence: u64::from(dbn.sequence),
                    ends_record: dbn.last_of_record,
                    gap: None,
                }),
                Err(err) => Err(err.into()),
            }),
        }
    }
}


//! One reader over every recorded feed format: NASDAQ BinaryFILE, and pcap or pcapng captures of
//! MoldUDP64 over UDP. The format is detected from the first bytes of the file.
//!
//! Every UDP datagram in a capture is read as a MoldUDP64 packet: filter captures that
//! contain other traffic before reading them here.

use std::path::{Path, PathBuf};

use crate::binaryfile;
use crate::error::DecodeError;
use crate::itch::{self, Message};
use crate::moldudp64::{self, MessageBlocks, PacketHeader, SessionId};
use crate::pcap::{self, CaptureFormat, CaptureSummary, Datagrams, PcapError};

/// Recorded feed formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// NASDAQ BinaryFILE: a big-endian u16 length before each ITCH message.
    BinaryFile,
    /// Classic libpcap capture of MoldUDP64 packets.
    Pcap,
    /// pcapng capture of MoldUDP64 packets.
    PcapNg,
}

impl Format {
    /// Detects the format from the first bytes of a file. Files that start with neither the
    /// pcap nor the pcapng magic number are taken as BinaryFILE. The two cannot be confused:
    /// read as a BinaryFILE length, each magic number gives 2573 bytes or more, and no ITCH 5.0
    /// message is longer than 50.
    pub fn detect(bytes: &[u8]) -> Format {
        match CaptureFormat::detect(bytes) {
            Some(CaptureFormat::Pcap) => Format::Pcap,
            Some(CaptureFormat::PcapNg) => Format::PcapNg,
            None => Format::BinaryFile,
        }
    }
}

/// Errors from opening or reading a recorded feed file.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("failed to read feed file {}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    #[error(transparent)]
    Capture(#[from] PcapError),

    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl FileError {
    /// Returns the byte offset in the file the error was found at, or `None` for an I/O error.
    pub fn offset(&self) -> Option<usize> {
        match self {
            FileError::Io { .. } => None,
            FileError::Capture(err) => Some(err.offset()),
            FileError::Decode(err) => Some(err.offset()),
        }
    }
}

/// A recorded feed file, held in memory.
#[derive(Clone, Debug)]
pub struct FeedFile {
    bytes: Vec<u8>,
    format: Format,
}

/// Reads the whole file at `path` into memory and detects its format.
///
/// NOTE: the file is read whole, so a full-day NASDAQ file needs as much memory as its size.
pub fn open(path: &Path) -> Result<FeedFile, FileError> {
    let bytes = std::fs::read(path).map_err(|source| FileError::Io { path: path.to_owned(), source })?;
    FeedFile::from_bytes(bytes)
}

impl FeedFile {
    /// Detects the format of `bytes`. Fails when a capture's file header is invalid or names an
    /// unsupported link type. Damage after the header is reported while reading.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<FeedFile, FileError> {
        let format = Format::detect(&bytes);
        if format != Format::BinaryFile {
            pcap::datagrams(&bytes)?;
        }
        Ok(FeedFile { bytes, format })
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Returns the whole file.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Returns an iterator over the ITCH messages of the file, in file order.
    ///
    /// An error in one capture frame or MoldUDP64 packet is yielded, and reading goes on with
    /// the next frame. In a BinaryFILE, a length that runs past the end of the file ends the
    /// iteration.
    pub fn messages(&self) -> FileMessages<'_> {
        let source = match self.format {
            Format::BinaryFile => Source::BinaryFile(binaryfile::Reader::new(&self.bytes)),
            Format::Pcap | Format::PcapNg => match pcap::datagrams(&self.bytes) {
                Ok(datagrams) => Source::Capture { datagrams, packet: None },
                // `from_bytes` checked the header, so this does not occur.
                Err(err) => Source::Failed(Some(err)),
            },
        };
        FileMessages { source }
    }

    /// Returns an iterator over the UDP datagrams of a capture, each containing one MoldUDP64
    /// packet with its capture time, or `None` for a BinaryFILE.
    pub fn packets(&self) -> Option<Datagrams<'_>> {
        match self.format {
            Format::BinaryFile => None,
            Format::Pcap | Format::PcapNg => pcap::datagrams(&self.bytes).ok(),
        }
    }
}

/// One ITCH message from a recorded file, not yet decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMessage<'a> {
    /// Byte offset in the file of the message's first byte (its type letter).
    pub offset: usize,
    /// MoldUDP64 sequence number of the message: the packet's sequence number plus the index of
    /// the message in the packet. `None` for BinaryFILE.
    pub moldudp64_sequence: Option<u64>,
    /// MoldUDP64 session of the packet. `None` for BinaryFILE.
    pub session: Option<SessionId>,
    /// Capture time in nanoseconds since the Unix epoch. `None` for BinaryFILE.
    pub capture_ts_ns: Option<u64>,
    /// The raw ITCH message.
    pub bytes: &'a [u8],
}

impl FileMessage<'_> {
    /// Decodes the message. Offsets in the error count from the start of the file.
    pub fn decode(&self) -> Result<Message, DecodeError> {
        itch::decode(self.bytes).map_err(|err| err.at(self.offset))
    }
}

/// Iterator over the ITCH messages of a [`FeedFile`].
pub struct FileMessages<'a> {
    source: Source<'a>,
}

enum Source<'a> {
    BinaryFile(binaryfile::Reader<'a>),
    Capture {
        datagrams: Datagrams<'a>,
        /// The packet whose message blocks are being read.
        packet: Option<OpenPacket<'a>>,
    },
    /// A capture whose header failed to parse, which yields the error once.
    Failed(Option<PcapError>),
}

struct OpenPacket<'a> {
    header: PacketHeader,
    blocks: MessageBlocks<'a>,
    /// Byte offset in the file of the packet's first byte.
    offset: usize,
    ts_ns: u64,
}

impl FileMessages<'_> {
    /// Returns the counts of what has been read from a capture so far, or `None` for BinaryFILE.
    pub fn capture_summary(&self) -> Option<CaptureSummary> {
        match &self.source {
            Source::Capture { datagrams, .. } => Some(*datagrams.summary()),
            Source::BinaryFile(_) | Source::Failed(_) => None,
        }
    }
}

impl<'a> Iterator for FileMessages<'a> {
    type Item = Result<FileMessage<'a>, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.source {
            Source::BinaryFile(reader) => Some(match reader.next()? {
                Ok((prefix_offset, bytes)) => Ok(FileMessage {
                    offset: prefix_offset + binaryfile::PREFIX_LEN,
                    moldudp64_sequence: None,
                    session: None,
                    capture_ts_ns: None,
                    bytes,
                }),
                Err(err) => Err(FileError::Decode(err)),
            }),
            Source::Capture { datagrams, packet } => next_captured(datagrams, packet),
            Source::Failed(err) => err.take().map(|err| Err(FileError::Capture(err))),
        }
    }
}

fn next_captured<'a>(
    datagrams: &mut Datagrams<'a>,
    packet: &mut Option<OpenPacket<'a>>,
) -> Option<Result<FileMessage<'a>, FileError>> {
    loop {
        if let Some(open) = packet {
            let index = open.blocks.index();
            match open.blocks.next_with_offset() {
                Some(Ok((offset_in_packet, bytes))) => {
                    return Some(Ok(FileMessage {
                        offset: open.offset + offset_in_packet,
                        moldudp64_sequence: Some(open.header.sequence.wrapping_add(u64::from(index))),
                        session: Some(open.header.session),
                        capture_ts_ns: Some(open.ts_ns),
                        bytes,
                    }));
                }
                Some(Err(err)) => return Some(Err(FileError::Decode(err.at(open.offset)))),
                None => *packet = None,
            }
        }

        let datagram = match datagrams.next()? {
            Ok(datagram) => datagram,
            Err(err) => return Some(Err(FileError::Capture(err))),
        };
        match moldudp64::parse(datagram.payload) {
            Ok(parsed) => {
                *packet = Some(OpenPacket {
                    header: parsed.header,
                    blocks: parsed.messages(),
                    offset: datagram.payload_offset,
                    ts_ns: datagram.ts_ns,
                });
            }
            Err(err) => return Some(Err(FileError::Decode(err.at(datagram.payload_offset)))),
        }
    }
}

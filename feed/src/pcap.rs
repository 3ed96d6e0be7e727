//! UDP datagrams from pcap and pcapng captures held in memory.
//!
//! Records and blocks are framed by the `pcap-file` crate and frames are sliced by `etherparse`.
//! Supported link types: Ethernet II (1) with zero, one or two 802.1Q / 802.1ad VLAN tags,
//! Linux cooked capture v1 (113), and raw IP (101 and 228). Only UDP over IPv4 is yielded, with
//! the IPv4 header length taken from IHL. Other frames (ARP, IPv6, TCP, IPv4 fragments) are
//! skipped and counted in a [`CaptureSummary`].
//!
//! A corrupt record or frame is yielded as a [`PcapError`] that names its byte offset in the
//! file, and reading goes on with the next record. Reading ends at a record that runs past the
//! end of the file, or a pcapng block whose length fields disagree, because nothing after it
//! can be located.

mod pcapng;

use std::net::SocketAddrV4;

use etherparse::err::packet::SliceError;
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use pcap_file::pcap::PcapParser;
use pcap_file::{DataLink, TsResolution};

use pcapng::PcapNgState;

/// Length of a pcap record header: seconds, fraction, captured length, original length.
const PCAP_RECORD_HEADER_LEN: usize = 16;
/// Offset of the link type field in the pcap global header.
const PCAP_LINK_TYPE_OFFSET: usize = 20;
const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// One UDP datagram from a capture, borrowing its payload from the file buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpDatagram<'a> {
    /// Capture time in nanoseconds since the Unix epoch. 0 for a pcapng simple packet block,
    /// which carries no time.
    pub ts_ns: u64,
    /// Byte offset in the file of the pcap record header or pcapng block that contains the frame.
    pub record_offset: usize,
    /// Byte offset in the file of the first byte of `payload`.
    pub payload_offset: usize,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    /// The UDP payload, bounded by the UDP length field (Ethernet padding excluded).
    pub payload: &'a [u8],
}

/// Capture container formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureFormat {
    /// Classic libpcap, with microsecond or nanosecond times, in either byte order.
    Pcap,
    /// pcapng, with any number of sections and interfaces.
    PcapNg,
}

impl CaptureFormat {
    /// Returns the capture format whose magic number `file` starts with, or `None` for any other
    /// bytes. The pcap magic is 0xa1b2c3d4 (microseconds) or 0xa1b23c4d (nanoseconds) in the
    /// writer's byte order, and the pcapng section header block type is 0x0a0d0d0a.
    pub fn detect(file: &[u8]) -> Option<CaptureFormat> {
        match file.first_chunk::<4>()? {
            [0xa1, 0xb2, 0xc3, 0xd4] | [0xd4, 0xc3, 0xb2, 0xa1] => Some(CaptureFormat::Pcap),
            [0xa1, 0xb2, 0x3c, 0x4d] | [0x4d, 0x3c, 0xb2, 0xa1] => Some(CaptureFormat::Pcap),
            [0x0a, 0x0d, 0x0d, 0x0a] => Some(CaptureFormat::PcapNg),
            _ => None,
        }
    }
}

/// Counts of what a [`Datagrams`] iterator has read so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureSummary {
    /// Frames read: pcap records, and pcapng enhanced, simple and obsolete packet blocks.
    pub frames: u64,
    /// UDP over IPv4 datagrams yielded.
    pub udp_datagrams: u64,
    /// Frames without IPv4: ARP, IPv6 and other ether types, and frames with more than two
    /// VLAN tags.
    pub skipped_non_ipv4: u64,
    /// IPv4 frames that carry something other than UDP.
    pub skipped_non_udp: u64,
    /// IPv4 fragments, which are not reassembled.
    pub skipped_fragments: u64,
    /// Frames on a pcapng interface whose link type is not supported.
    pub skipped_unsupported_link: u64,
    /// pcapng blocks that contain no packet: statistics, name resolution and others.
    pub skipped_blocks: u64,
    /// Errors yielded.
    pub errors: u64,
}

/// Errors in a capture file. Offsets count from the start of the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PcapError {
    #[error("invalid capture file header at byte offset {offset}: {reason}")]
    InvalidHeader { offset: usize, reason: &'static str },

    #[error("unsupported link type {link_type} at byte offset {offset}: supported link types are Ethernet (1), Linux cooked capture (113) and raw IP (101, 228)")]
    UnsupportedLinkType { offset: usize, link_type: u32 },

    #[error("capture record at byte offset {offset} runs past the end of the file ({available} bytes left)")]
    TruncatedRecord { offset: usize, available: usize },

    #[error("invalid capture record at byte offset {offset}: {reason}")]
    InvalidRecord { offset: usize, reason: &'static str },

    #[error("pcapng packet block at byte offset {offset} names interface {interface_id}, but its section describes {interfaces} interfaces")]
    UnknownInterface { offset: usize, interface_id: u32, interfaces: usize },

    #[error("malformed frame in the capture record at byte offset {offset}: {source}")]
    MalformedFrame { offset: usize, source: SliceError },
}

impl PcapError {
    /// Returns the byte offset in the file the error was found at.
    pub fn offset(&self) -> usize {
        match self {
            PcapError::InvalidHeader { offset, .. }
            | PcapError::UnsupportedLinkType { offset, .. }
            | PcapError::TruncatedRecord { offset, .. }
            | PcapError::InvalidRecord { offset, .. }
            | PcapError::UnknownInterface { offset, .. }
            | PcapError::MalformedFrame { offset, .. } => *offset,
        }
    }

    /// Converts an error of the `pcap-file` crate about the record or block at `offset`.
    /// `available` is the number of bytes from `offset` to the end of the file.
    fn from_pcap_file(err: pcap_file::PcapError, offset: usize, available: usize) -> PcapError {
        match err {
            pcap_file::PcapError::IncompleteBuffer => PcapError::TruncatedRecord { offset, available },
            pcap_file::PcapError::InvalidField(reason) => PcapError::InvalidRecord { offset, reason },
            pcap_file::PcapError::Utf8Error(_) | pcap_file::PcapError::FromUtf8Error(_) => {
                PcapError::InvalidRecord { offset, reason: "option text is not valid UTF-8" }
            }
            pcap_file::PcapError::InvalidInterfaceId(_) => PcapError::InvalidRecord { offset, reason: "invalid interface id" },
            pcap_file::PcapError::IoError(_) => PcapError::InvalidRecord { offset, reason: "read failed" },
        }
    }
}

/// Link layer of the frames of a pcap file or a pcapng interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    Ethernet,
    LinuxSll,
    RawIp,
}

impl Link {
    fn from_data_link(data_link: DataLink) -> Option<Link> {
        match data_link {
            DataLink::ETHERNET => Some(Link::Ethernet),
            DataLink::LINUX_SLL => Some(Link::LinuxSll),
            DataLink::RAW | DataLink::IPV4 => Some(Link::RawIp),
            _ => None,
        }
    }
}

/// Content of one frame, found by slicing its headers.
enum FrameContent<'a> {
    Udp { src: SocketAddrV4, dst: SocketAddrV4, payload: &'a [u8] },
    NonIpv4,
    NonUdp,
    Fragment,
}

fn slice_frame(link: Link, frame: &[u8]) -> Result<FrameContent<'_>, SliceError> {
    let sliced = match link {
        Link::Ethernet => SlicedPacket::from_ethernet(frame)?,
        Link::LinuxSll => SlicedPacket::from_linux_sll(frame)?,
        Link::RawIp => SlicedPacket::from_ip(frame)?,
    };
    let Some(NetSlice::Ipv4(ipv4)) = &sliced.net else {
        return Ok(FrameContent::NonIpv4);
    };
    if ipv4.is_payload_fragmented() {
        return Ok(FrameContent::Fragment);
    }
    let Some(TransportSlice::Udp(udp)) = &sliced.transport else {
        return Ok(FrameContent::NonUdp);
    };
    let header = ipv4.header();
    Ok(FrameContent::Udp {
        src: SocketAddrV4::new(header.source_addr(), udp.source_port()),
        dst: SocketAddrV4::new(header.destination_addr(), udp.destination_port()),
        payload: udp.payload(),
    })
}

/// Returns the offset of `inner` from the start of `outer`. `inner` is a subslice of `outer`.
fn offset_in(outer: &[u8], inner: &[u8]) -> usize {
    debug_assert!(outer.as_ptr_range().contains(&inner.as_ptr()) || inner.is_empty());
    (inner.as_ptr() as usize).wrapping_sub(outer.as_ptr() as usize)
}

/// One captured frame, before slicing.
struct Frame<'a> {
    record_offset: usize,
    ts_ns: u64,
    /// `None` for a pcapng interface whose link type is not supported.
    link: Option<Link>,
    data: &'a [u8],
}

/// Outcome of reading one record or block.
enum Step<'a> {
    Frame(Frame<'a>),
    /// A pcapng section header or interface description, read into the reader's state.
    Other,
    /// A pcapng block of a type that contains no packet, passed over unread.
    SkippedBlock,
    Error(PcapError),
}

/// Iterator over the UDP datagrams of a capture. Create it with [`datagrams`].
pub struct Datagrams<'a> {
    file: &'a [u8],
    /// Offset of the next record or block.
    pos: usize,
    done: bool,
    container: Container,
    summary: CaptureSummary,
}

enum Container {
    Pcap { parser: PcapParser, link: Link },
    PcapNg(PcapNgState),
}

/// Checks the file header of a pcap or pcapng capture and returns an iterator over its UDP
/// datagrams.
///
/// Fails when the file starts with neither magic number, when its header is invalid, and for a
/// pcap file whose link type is not supported. For pcapng, unsupported link types are reported
/// by the iterator at the interface description block that declares them.
pub fn datagrams(file: &[u8]) -> Result<Datagrams<'_>, PcapError> {
    let (container, pos) = match CaptureFormat::detect(file) {
        Some(CaptureFormat::Pcap) => {
            let (rest, parser) = PcapParser::new(file).map_err(|err| match err {
                pcap_file::PcapError::IncompleteBuffer => PcapError::InvalidHeader {
                    offset: 0,
                    reason: "file is shorter than the 24-byte pcap header",
                },
                other => PcapError::from_pcap_file(other, 0, file.len()),
            })?;
            let data_link = parser.header().datalink;
            let Some(link) = Link::from_data_link(data_link) else {
                return Err(PcapError::UnsupportedLinkType {
                    offset: PCAP_LINK_TYPE_OFFSET,
                    link_type: u32::from(data_link),
                });
            };
            (Container::Pcap { parser, link }, file.len() - rest.len())
        }
        Some(CaptureFormat::PcapNg) => {
            let mut state = PcapNgState::new();
            match state.read_block(file, 0) {
                (Step::Error(err), _) => {
                    let reason = match err {
                        PcapError::InvalidRecord { reason, .. } => reason,
                        _ => "file ends inside the section header block",
                    };
                    return Err(PcapError::InvalidHeader { offset: 0, reason });
                }
                (_, next_pos) => (Container::PcapNg(state), next_pos.unwrap_or(file.len())),
            }
        }
        None => {
            return Err(PcapError::InvalidHeader {
                offset: 0,
                reason: "no pcap or pcapng magic number",
            })
        }
    };
    Ok(Datagrams { file, pos, done: false, container, summary: CaptureSummary::default() })
}

impl<'a> Datagrams<'a> {
    /// Returns the counts of what has been read so far.
    pub fn summary(&self) -> &CaptureSummary {
        &self.summary
    }

    /// Returns the container format of the file.
    pub fn format(&self) -> CaptureFormat {
        match self.container {
            Container::Pcap { .. } => CaptureFormat::Pcap,
            Container::PcapNg(_) => CaptureFormat::PcapNg,
        }
    }

    /// Reads the next record or block. Returns `None` at the end of the file.
    fn next_step(&mut self) -> Option<Step<'a>> {
        let rest = self.file.get(self.pos..).unwrap_or_default();
        if rest.is_empty() {
            return None;
        }
        let offset = self.pos;
        let (step, next_pos) = match &mut self.container {
            Container::Pcap { parser, link } => read_pcap_record(parser, *link, self.file, offset),
            Container::PcapNg(state) => state.read_block(self.file, offset),
        };
        match next_pos {
            Some(next_pos) => self.pos = next_pos,
            None => self.done = true,
        }
        Some(step)
    }

    fn datagram_from_frame(&mut self, frame: Frame<'a>) -> Option<Result<UdpDatagram<'a>, PcapError>> {
        self.summary.frames += 1;
        let Some(link) = frame.link else {
            self.summary.skipped_unsupported_link += 1;
            return None;
        };
        match slice_frame(link, frame.data) {
            Ok(FrameContent::Udp { src, dst, payload }) => {
                self.summary.udp_datagrams += 1;
                Some(Ok(UdpDatagram {
                    ts_ns: frame.ts_ns,
                    record_offset: frame.record_offset,
                    payload_offset: offset_in(self.file, payload),
                    src,
                    dst,
                    payload,
                }))
            }
            Ok(FrameContent::NonIpv4) => {
                self.summary.skipped_non_ipv4 += 1;
                None
            }
            Ok(FrameContent::NonUdp) => {
                self.summary.skipped_non_udp += 1;
                None
            }
            Ok(FrameContent::Fragment) => {
                self.summary.skipped_fragments += 1;
                None
            }
            Err(source) => Some(Err(PcapError::MalformedFrame { offset: frame.record_offset, source })),
        }
    }
}

impl<'a> Iterator for Datagrams<'a> {
    type Item = Result<UdpDatagram<'a>, PcapError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let item = match self.next_step() {
                None => {
                    self.done = true;
                    return None;
                }
                Some(Step::Frame(frame)) => self.datagram_from_frame(frame),
                Some(Step::Other) => None,
                Some(Step::SkippedBlock) => {
                    self.summary.skipped_blocks += 1;
                    None
                }
                Some(Step::Error(err)) => Some(Err(err)),
            };
            if let Some(item) = item {
                if item.is_err() {
                    self.summary.errors += 1;
                }
                return Some(item);
            }
        }
        None
    }
}

/// Reads the pcap record at `offset`. Returns the step and the offset of the next record, or
/// `None` when no further record can be located.
fn read_pcap_record<'a>(parser: &PcapParser, link: Link, file: &'a [u8], offset: usize) -> (Step<'a>, Option<usize>) {
    let rest = file.get(offset..).unwrap_or_default();
    let (next_pos, raw) = match parser.next_raw_packet(rest) {
        Ok((after, raw)) => (file.len() - after.len(), raw),
        Err(err) => return (Step::Error(PcapError::from_pcap_file(err, offset, rest.len())), None),
    };

    let nanosecond = parser.header().ts_resolution == TsResolution::NanoSecond;
    let (frac_limit, frac_to_ns) = if nanosecond { (NANOS_PER_SECOND, 1) } else { (1_000_000, 1_000) };
    let frac = u64::from(raw.ts_frac);
    if frac >= frac_limit {
        let reason = "timestamp fraction is one second or more";
        return (Step::Error(PcapError::InvalidRecord { offset, reason }), Some(next_pos));
    }
    let ts_ns = u64::from(raw.ts_sec) * NANOS_PER_SECOND + frac * frac_to_ns;

    let data = file.get(offset + PCAP_RECORD_HEADER_LEN..next_pos).unwrap_or_default();
    let frame = Frame { record_offset: offset, ts_ns, link: Some(link), data };
    (Step::Frame(frame), Some(next_pos))
}

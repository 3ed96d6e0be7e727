//! pcapng blocks: section headers, interface descriptions and the three packet block types.

use std::borrow::Cow;

use byteorder_slice::{BigEndian, ByteOrder, LittleEndian};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption};
use pcap_file::pcapng::blocks::packet::PacketBlock;
use pcap_file::pcapng::blocks::section_header::SectionHeaderBlock;
use pcap_file::pcapng::blocks::simple_packet::SimplePacketBlock;
use pcap_file::pcapng::blocks::{
    ENHANCED_PACKET_BLOCK, INTERFACE_DESCRIPTION_BLOCK, PACKET_BLOCK, SECTION_HEADER_BLOCK, SIMPLE_PACKET_BLOCK,
};
use pcap_file::pcapng::{PcapNgBlock, RawBlock};
use pcap_file::Endianness;

use super::{Frame, Link, PcapError, Step, NANOS_PER_SECOND};

/// Link layer and clock of one pcapng interface.
#[derive(Clone, Copy, Debug)]
struct Interface {
    link: Option<Link>,
    /// Timestamp ticks per second: 10^6 unless the interface's `if_tsresol` option sets another.
    ticks_per_second: u128,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset_seconds: i64,
}

impl Interface {
    fn from_block(block: &InterfaceDescriptionBlock<'_>) -> Result<Interface, &'static str> {
        let mut interface = Interface {
            link: Link::from_data_link(block.linktype),
            ticks_per_second: 1_000_000,
            offset_seconds: 0,
        };
        for option in &block.options {
            match option {
                InterfaceDescriptionOption::IfTsResol(resolution) => {
                    // The high bit selects a power of two, otherwise a power of ten.
                    let exponent = u32::from(resolution & 0x7f);
                    let base: u128 = if resolution & 0x80 == 0 { 10 } else { 2 };
                    interface.ticks_per_second = base
                        .checked_pow(exponent)
                        .ok_or("if_tsresol is too fine to represent")?;
                }
                InterfaceDescriptionOption::IfTsOffset(seconds) => {
                    // pcap-file reads the field as u64, but the format defines it as signed.
                    interface.offset_seconds = i64::from_ne_bytes(seconds.to_ne_bytes());
                }
                _ => {}
            }
        }
        Ok(interface)
    }

    /// Converts a timestamp in ticks to nanoseconds since the Unix epoch, saturating at the
    /// bounds of u64.
    fn ts_ns(&self, ticks: u64) -> u64 {
        let ns = u128::from(ticks) * u128::from(NANOS_PER_SECOND) / self.ticks_per_second.max(1);
        let offset_ns = i128::from(self.offset_seconds) * i128::from(NANOS_PER_SECOND);
        let total = i128::try_from(ns).unwrap_or(i128::MAX).saturating_add(offset_ns);
        u64::try_from(total.max(0)).unwrap_or(u64::MAX)
    }
}

/// State of a pcapng reader: the byte order and interfaces of the current section.
pub(super) struct PcapNgState {
    big_endian: bool,
    interfaces: Vec<Interface>,
}

impl PcapNgState {
    pub(super) fn new() -> PcapNgState {
        PcapNgState { big_endian: false, interfaces: Vec::new() }
    }

    /// Reads the block at `offset`. Returns the step and the offset of the next block, or
    /// `None` when no further block can be located.
    pub(super) fn read_block<'a>(&mut self, file: &'a [u8], offset: usize) -> (Step<'a>, Option<usize>) {
        if self.big_endian {
            self.read_block_in::<BigEndian>(file, offset)
        } else {
            self.read_block_in::<LittleEndian>(file, offset)
        }
    }

    fn read_block_in<'a, B: ByteOrder>(&mut self, file: &'a [u8], offset: usize) -> (Step<'a>, Option<usize>) {
        let rest = file.get(offset..).unwrap_or_default();
        // The section header block type reads the same in both byte orders, and `RawBlock`
        // finds the byte order of a section header from its own magic number.
        let (after, raw) = match RawBlock::from_slice::<B>(rest) {
            Ok(parsed) => parsed,
            Err(err) => return (Step::Error(PcapError::from_pcap_file(err, offset, rest.len())), None),
        };
        let next_pos = Some(file.len() - after.len());
        let body = borrowed(&raw.body);
        let invalid = |err| (Step::Error(PcapError::from_pcap_file(err, offset, rest.len())), next_pos);

        // Blocks of other types contain no packet (statistics, name resolution, ...) and are
        // counted without being parsed.
        let step = match raw.type_ {
            SECTION_HEADER_BLOCK => match SectionHeaderBlock::from_slice::<BigEndian>(body) {
                Ok((_, section)) => {
                    self.big_endian = section.endianness == Endianness::Big;
                    self.interfaces.clear();
                    Step::Other
                }
                Err(err) => return invalid(err),
            },
            INTERFACE_DESCRIPTION_BLOCK => match InterfaceDescriptionBlock::from_slice::<B>(body) {
                Ok((_, block)) => self.add_interface(offset, &block),
                Err(err) => return invalid(err),
            },
            ENHANCED_PACKET_BLOCK => match EnhancedPacketBlock::from_slice::<B>(body) {
                Ok((_, block)) => {
                    // pcap-file stores the raw tick count as nanoseconds, whatever the
                    // interface's resolution, so `as_nanos` returns the ticks unchanged.
                    let ticks = u64::try_from(block.timestamp.as_nanos()).unwrap_or(u64::MAX);
                    self.frame(offset, block.interface_id, Some(ticks), borrowed(&block.data))
                }
                Err(err) => return invalid(err),
            },
            SIMPLE_PACKET_BLOCK => match SimplePacketBlock::from_slice::<B>(body) {
                Ok((_, block)) => {
                    // The block's data runs to the end of the block, padding included, so the
                    // original length bounds the frame.
                    let data = borrowed(&block.data);
                    let len = usize::try_from(block.original_len).unwrap_or(usize::MAX).min(data.len());
                    self.frame(offset, 0, None, data.get(..len).unwrap_or_default())
                }
                Err(err) => return invalid(err),
            },
            PACKET_BLOCK => match PacketBlock::from_slice::<B>(body) {
                Ok((_, block)) => {
                    let interface_id = u32::from(block.interface_id);
                    self.frame(offset, interface_id, Some(block.timestamp), borrowed(&block.data))
                }
                Err(err) => return invalid(err),
            },
            _ => Step::SkippedBlock,
        };
        (step, next_pos)
    }

    fn add_interface<'a>(&mut self, offset: usize, block: &InterfaceDescriptionBlock<'_>) -> Step<'a> {
        let interface = match Interface::from_block(block) {
            Ok(interface) => interface,
            Err(reason) => return Step::Error(PcapError::InvalidRecord { offset, reason }),
        };
        // The interface is recorded even when its link type is not supported, so that the
        // interface ids of later blocks keep their meaning.
        self.interfaces.push(interface);
        if interface.link.is_none() {
            let link_type = u32::from(block.linktype);
            return Step::Error(PcapError::UnsupportedLinkType { offset, link_type });
        }
        Step::Other
    }

    fn frame<'a>(&self, offset: usize, interface_id: u32, ticks: Option<u64>, data: &'a [u8]) -> Step<'a> {
        let interface = usize::try_from(interface_id).ok().and_then(|id| self.interfaces.get(id));
        let Some(interface) = interface else {
            let interfaces = self.interfaces.len();
            return Step::Error(PcapError::UnknownInterface { offset, interface_id, interfaces });
        };
        let ts_ns = ticks.map_or(0, |ticks| interface.ts_ns(ticks));
        Step::Frame(Frame { record_offset: offset, ts_ns, link: interface.link, data })
    }
}

/// Returns the bytes of `data`. The blocks of pcap-file parsed from a slice always borrow it, so
/// the owned case does not occur.
fn borrowed<'a>(data: &Cow<'a, [u8]>) -> &'a [u8] {
    match data {
        Cow::Borrowed(bytes) => bytes,
        Cow::Owned(_) => &[],
    }
}

//! Capture reading. The frames of a real NASDAQ capture are rewritten as pcapng, as big-endian
//! microsecond pcap, and with other link layers and IPv4 headers, and each result is compared
//! with the original. Other tests cover frames to skip and damaged files.

mod framing_support;

use std::borrow::Cow;
use std::time::Duration;

use framing_support::{decode_all, read_frames, write_pcap, Decoded, RawFrame};
use mdfh_feed::file::{FeedFile, FileError, Format};
use mdfh_feed::pcap::{self, CaptureFormat, CaptureSummary, PcapError};
use pcap_file::pcap::PcapHeader;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption};
use pcap_file::pcapng::blocks::unknown::UnknownBlock;
use pcap_file::pcapng::{Block, PcapNgWriter};
use pcap_file::{DataLink, Endianness, TsResolution};

const MULTIPLE_PACKETS: &str = "Nasdaq.Equities.TotalView.Itch.v5.0/Multiple.Packets.pcap";
/// Offset of the IPv4 header in the real frames: Ethernet II (14 bytes) and one VLAN tag (4).
const IPV4_OFFSET: usize = 18;

/// Reads the real capture's header and frames, and decodes its messages.
fn original() -> (PcapHeader, Vec<RawFrame>, Vec<Decoded>) {
    let (header, frames) = read_frames(MULTIPLE_PACKETS);
    for frame in &frames {
        assert_eq!(frame.data[12..14], [0x81, 0x00], "real frames carry one 802.1Q tag");
        assert_eq!(frame.data[16..18], [0x08, 0x00], "real frames carry IPv4");
    }
    let feed = FeedFile::from_bytes(write_pcap(header, &frames)).unwrap();
    let (decoded, errors) = decode_all(&feed);
    assert!(errors.is_empty(), "errors: {errors:?}");
    assert_eq!(decoded.len(), 39);
    (header, frames, decoded)
}

/// Reads every message of `bytes`, which must decode without error.
fn decode_clean(bytes: Vec<u8>) -> (Vec<Decoded>, CaptureSummary) {
    let feed = FeedFile::from_bytes(bytes).unwrap();
    let (decoded, errors) = decode_all(&feed);
    assert!(errors.is_empty(), "errors: {errors:?}");
    let mut messages = feed.messages();
    messages.by_ref().for_each(drop);
    (decoded, messages.capture_summary().unwrap())
}

/// Writes `frames` as pcapng on one interface of `link`. With `ts_resolution` 9 the clock
/// counts nanoseconds; with `None` the interface has no `if_tsresol` option, so the clock counts
/// microseconds.
fn write_pcapng(frames: &[RawFrame], endianness: Endianness, link: DataLink, ts_resolution: Option<u8>) -> Vec<u8> {
    let mut writer = PcapNgWriter::with_endianness(Vec::new(), endianness).unwrap();
    let mut interface = InterfaceDescriptionBlock::new(link, 65535);
    if let Some(resolution) = ts_resolution {
        interface.options.push(InterfaceDescriptionOption::IfTsResol(resolution));
    }
    writer.write_pcapng_block(interface).unwrap();
    for frame in frames {
        let ticks = match ts_resolution {
            Some(9) => frame.timestamp.as_nanos(),
            None => frame.timestamp.as_micros(),
            Some(other) => panic!("no tick conversion for resolution {other}"),
        };
        // pcap-file writes the nanosecond count of this field as the raw tick count.
        let block = EnhancedPacketBlock {
            interface_id: 0,
            timestamp: Duration::from_nanos(ticks as u64),
            original_len: frame.data.len() as u32,
            data: Cow::Borrowed(&frame.data),
            options: vec![],
        };
        writer.write_pcapng_block(block).unwrap();
    }
    writer.into_inner()
}

/// Applies `edit` to the data of every frame.
fn edit_frames(frames: &[RawFrame], edit: impl Fn(&[u8]) -> Vec<u8>) -> Vec<RawFrame> {
    frames.iter().map(|f| RawFrame { timestamp: f.timestamp, data: edit(&f.data) }).collect()
}

fn ipv4_header_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for (i, pair) in header.chunks(2).enumerate() {
        if i != 5 {
            sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[test]
fn pcapng_decodes_like_pcap() {
    let (_, frames, expected) = original();
    for endianness in [Endianness::Little, Endianness::Big] {
        let bytes = write_pcapng(&frames, endianness, DataLink::ETHERNET, Some(9));
        assert_eq!(Format::detect(&bytes), Format::PcapNg);
        let (decoded, summary) = decode_clean(bytes);
        assert_eq!(decoded, expected, "{endianness:?} pcapng");
        assert_eq!(summary, CaptureSummary { frames: 2, udp_datagrams: 2, ..CaptureSummary::default() });
    }
}

#[test]
fn pcapng_default_clock_is_microseconds() {
    let (_, frames, expected) = original();
    let (decoded, _) = decode_clean(write_pcapng(&frames, Endianness::Little, DataLink::ETHERNET, None));
    assert_eq!(decoded.len(), expected.len());
    for (got, want) in decoded.iter().zip(&expected) {
        let want_ts = want.capture_ts_ns.unwrap() / 1000 * 1000;
        assert_eq!(got.capture_ts_ns, Some(want_ts));
        assert_eq!(got.message, want.message);
    }
    assert_ne!(expected[0].capture_ts_ns.unwrap() % 1000, 0, "the real capture has sub-microsecond times");
}

#[test]
fn pcapng_skips_non_packet_blocks() {
    let (_, frames, expected) = original();
    let mut writer = PcapNgWriter::with_endianness(Vec::new(), Endianness::Little).unwrap();
    let mut interface = InterfaceDescriptionBlock::new(DataLink::ETHERNET, 65535);
    interface.options.push(InterfaceDescriptionOption::IfTsResol(9));
    writer.write_pcapng_block(interface).unwrap();
    writer.write_block(&Block::Unknown(UnknownBlock::new(0x0000_0BAD, 16, &[1, 2, 3, 4]))).unwrap();
    let single = write_pcapng(&frames, Endianness::Little, DataLink::ETHERNET, Some(9));
    let mut bytes = writer.into_inner();
    // Append the packet blocks of a one-interface file: everything after its first two blocks.
    let first_two = block_offsets(&single)[2];
    bytes.extend_from_slice(&single[first_two..]);

    let (decoded, summary) = decode_clean(bytes);
    assert_eq!(decoded, expected);
    assert_eq!(summary.skipped_blocks, 1);
}

/// Returns the offset of every block of a little-endian pcapng file.
fn block_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        offsets.push(pos);
        pos += u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
    }
    offsets
}

#[test]
fn pcapng_unknown_interface_is_error() {
    let (_, frames, _) = original();
    let mut bytes = write_pcapng(&frames, Endianness::Little, DataLink::ETHERNET, Some(9));
    let first_packet = block_offsets(&bytes)[2];
    bytes[first_packet + 8..first_packet + 12].copy_from_slice(&3u32.to_le_bytes());

    let feed = FeedFile::from_bytes(bytes).unwrap();
    let (decoded, errors) = decode_all(&feed);
    assert_eq!(decoded.len(), 38, "the second packet still decodes");
    assert_eq!(errors.len(), 1, "errors: {errors:?}");
    let expected = PcapError::UnknownInterface { offset: first_packet, interface_id: 3, interfaces: 1 };
    assert!(matches!(&errors[0], FileError::Capture(err) if *err == expected), "got {:?}", errors[0]);
}

#[test]
fn pcapng_unsupported_link_is_reported_once() {
    let (_, frames, _) = original();
    let bytes = write_pcapng(&frames, Endianness::Little, DataLink::USB_LINUX, Some(9));
    let interface_offset = block_offsets(&bytes)[1];
    let feed = FeedFile::from_bytes(bytes).unwrap();
    let mut messages = feed.messages();
    let items: Vec<_> = messages.by_ref().collect();
    assert_eq!(items.len(), 1);
    let expected = PcapError::UnsupportedLinkType { offset: interface_offset, link_type: 189 };
    assert!(matches!(&items[0], Err(FileError::Capture(err)) if *err == expected), "got {:?}", items[0]);
    assert_eq!(messages.capture_summary().unwrap().skipped_unsupported_link, 2);
}

#[test]
fn microsecond_big_endian_pcap() {
    let (header, frames, expected) = original();
    let header = PcapHeader { endianness: Endianness::Big, ts_resolution: TsResolution::MicroSecond, ..header };
    let bytes = write_pcap(header, &frames);
    assert_eq!(bytes[..4], [0xa1, 0xb2, 0xc3, 0xd4]);
    assert_eq!(CaptureFormat::detect(&bytes), Some(CaptureFormat::Pcap));

    let (decoded, _) = decode_clean(bytes);
    assert_eq!(decoded.len(), expected.len());
    for (got, want) in decoded.iter().zip(&expected) {
        assert_eq!(got.capture_ts_ns, Some(want.capture_ts_ns.unwrap() / 1000 * 1000));
        assert_eq!((got.sequence, got.session, got.message), (want.sequence, want.session, want.message));
    }
}

#[test]
fn double_vlan_tag() {
    let (header, frames, expected) = original();
    let tagged = edit_frames(&frames, |data| {
        // An 802.1ad service tag (VLAN 100) before the original 802.1Q tag.
        [&data[..12], &[0x88, 0xa8, 0x00, 0x64], &data[12..]].concat()
    });
    let (decoded, _) = decode_clean(write_pcap(header, &tagged));
    assert_eq!(decoded, expected);
}

#[test]
fn ipv4_header_with_options() {
    let (header, frames, expected) = original();
    let with_options = edit_frames(&frames, |data| {
        let ip_end = IPV4_OFFSET + 20;
        // Three no-operation options and an end-of-options byte: IHL 6 instead of 5.
        let mut out = [&data[..ip_end], &[1, 1, 1, 0], &data[ip_end..]].concat();
        out[IPV4_OFFSET] = 0x46;
        let total_len = u16::from_be_bytes([out[IPV4_OFFSET + 2], out[IPV4_OFFSET + 3]]) + 4;
        out[IPV4_OFFSET + 2..IPV4_OFFSET + 4].copy_from_slice(&total_len.to_be_bytes());
        let checksum = ipv4_header_checksum(&out[IPV4_OFFSET..ip_end + 4]);
        out[IPV4_OFFSET + 10..IPV4_OFFSET + 12].copy_from_slice(&checksum.to_be_bytes());
        out
    });
    let (decoded, _) = decode_clean(write_pcap(header, &with_options));
    assert_eq!(decoded, expected);
}

#[test]
fn linux_cooked_capture() {
    let (header, frames, expected) = original();
    let cooked = edit_frames(&frames, |data| {
        // Packet type 2 (multicast), ARPHRD_ETHER, 6-byte source address padded to 8, IPv4.
        let sll_header = [0, 2, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
        [&sll_header[..], &data[IPV4_OFFSET..]].concat()
    });
    let header = PcapHeader { datalink: DataLink::LINUX_SLL, ..header };
    let (decoded, _) = decode_clean(write_pcap(header, &cooked));
    assert_eq!(decoded, expected);
}

#[test]
fn raw_ip_link() {
    let (header, frames, expected) = original();
    let raw = edit_frames(&frames, |data| data[IPV4_OFFSET..].to_vec());
    let header = PcapHeader { datalink: DataLink::RAW, ..header };
    let (decoded, _) = decode_clean(write_pcap(header, &raw));
    assert_eq!(decoded, expected);
}

#[test]
fn non_udp_frames_are_skipped() {
    let (header, frames, expected) = original();
    let timestamp = frames[0].timestamp;
    let build = |builder: etherparse::PacketBuilderStep<etherparse::UdpHeader>| {
        let mut out = Vec::new();
        builder.write(&mut out, b"not MoldUDP64").unwrap();
        out
    };
    let mut tcp = Vec::new();
    etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(40000, 80, 1, 1024)
        .write(&mut tcp, b"GET / HTTP/1.1\r\n")
        .unwrap();
    let ipv6_udp = build(etherparse::PacketBuilder::ethernet2([1; 6], [2; 6]).ipv6([1; 16], [2; 16], 64).udp(5000, 26477));
    let mut fragment = build(etherparse::PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4([10, 0, 0, 1], [233, 54, 12, 111], 64).udp(5000, 26477));
    // Set "more fragments" on the IPv4 header (after the 14-byte Ethernet header).
    fragment[14 + 6] |= 0x20;
    let checksum = ipv4_header_checksum(&fragment[14..34]);
    fragment[14 + 10..14 + 12].copy_from_slice(&checksum.to_be_bytes());
    // An ARP request: ether type 0x0806 and a 28-byte body.
    let arp = [&[0xff; 6][..], &[1; 6], &[0x08, 0x06], &[0, 1, 8, 0, 6, 4, 0, 1], &[0; 20]].concat();

    let mut mixed = vec![frames[0].clone()];
    for data in [tcp, ipv6_udp, fragment, arp] {
        mixed.push(RawFrame { timestamp, data });
    }
    mixed.push(frames[1].clone());

    let (decoded, summary) = decode_clean(write_pcap(header, &mixed));
    assert_eq!(decoded, expected);
    let expected_summary = CaptureSummary {
        frames: 6,
        udp_datagrams: 2,
        skipped_non_ipv4: 2,
        skipped_non_udp: 1,
        skipped_fragments: 1,
        ..CaptureSummary::default()
    };
    assert_eq!(summary, expected_summary);
}

#[test]
fn truncated_record_ends_reading() {
    let (header, frames, _) = original();
    let mut bytes = write_pcap(header, &frames);
    let second_record = 24 + 16 + frames[0].data.len();
    bytes.truncate(bytes.len() - 100);
    let available = bytes.len() - second_record;

    let feed = FeedFile::from_bytes(bytes).unwrap();
    let (decoded, errors) = decode_all(&feed);
    assert_eq!(decoded.len(), 1, "the first packet decodes");
    assert_eq!(errors.len(), 1, "errors: {errors:?}");
    let expected = PcapError::TruncatedRecord { offset: second_record, available };
    assert!(matches!(&errors[0], FileError::Capture(err) if *err == expected), "got {:?}", errors[0]);
}

#[test]
fn truncated_frame_is_skipped_with_error() {
    let (header, mut frames, _) = original();
    frames[0].data.truncate(IPV4_OFFSET + 12);
    let feed = FeedFile::from_bytes(write_pcap(header, &frames)).unwrap();
    let (decoded, errors) = decode_all(&feed);
    assert_eq!(decoded.len(), 38, "the second frame decodes");
    assert_eq!(errors.len(), 1, "errors: {errors:?}");
    assert!(matches!(&errors[0], FileError::Capture(PcapError::MalformedFrame { offset: 24, .. })), "got {:?}", errors[0]);
    assert_eq!(errors[0].offset(), Some(24));
}

#[test]
fn datagram_offsets_point_into_file() {
    let (header, frames, _) = original();
    let bytes = write_pcap(header, &frames);
    let datagrams: Vec<_> = pcap::datagrams(&bytes).unwrap().map(Result::unwrap).collect();
    assert_eq!(datagrams.len(), 2);
    assert_eq!(datagrams[0].record_offset, 24);
    assert_eq!(datagrams[1].record_offset, 24 + 16 + frames[0].data.len());
    for (datagram, frame) in datagrams.iter().zip(&frames) {
        // Ethernet, VLAN tag, 20-byte IPv4 header and UDP header precede the payload.
        assert_eq!(datagram.payload_offset, datagram.record_offset + 16 + IPV4_OFFSET + 20 + 8);
        let udp_len = u16::from_be_bytes([frame.data[IPV4_OFFSET + 24], frame.data[IPV4_OFFSET + 25]]);
        assert_eq!(datagram.payload.len(), usize::from(udp_len) - 8);
        assert_eq!(datagram.ts_ns, frame.timestamp.as_nanos() as u64);
    }
}

#[test]
fn unsupported_pcap_link_type() {
    let (header, frames, _) = original();
    let header = PcapHeader { datalink: DataLink::USB_LINUX, ..header };
    let err = FeedFile::from_bytes(write_pcap(header, &frames)).unwrap_err();
    let expected = PcapError::UnsupportedLinkType { offset: 20, link_type: 189 };
    assert!(matches!(&err, FileError::Capture(e) if *e == expected), "got {err:?}");
    assert!(err.to_string().contains("unsupported link type 189"), "message: {err}");
}

#[test]
fn short_capture_header() {
    let err = FeedFile::from_bytes(vec![0x4d, 0x3c, 0xb2, 0xa1, 2, 0, 4, 0]).unwrap_err();
    assert!(matches!(err, FileError::Capture(PcapError::InvalidHeader { offset: 0, .. })), "got {err:?}");

    let err = FeedFile::from_bytes(vec![0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0]).unwrap_err();
    assert!(matches!(err, FileError::Capture(PcapError::InvalidHeader { offset: 0, .. })), "got {err:?}");
}

//! Ethernet II + IPv4 + UDP headers around a received datagram, so that the recorded frame looks
//! like what a capture on the wire would have held.

use std::net::SocketAddrV4;

use etherparse::{EtherType, Ethernet2Header, IpNumber, Ipv4Header, UdpHeader};

/// Bytes of the synthesized headers: Ethernet II (14), IPv4 without options (20), UDP (8).
pub const FRAME_HEADER_LEN: usize = Ethernet2Header::LEN + Ipv4Header::MIN_LEN + UdpHeader::LEN;

/// The longest UDP payload an IPv4 packet can carry: 65,535 minus the IPv4 and UDP headers.
pub const MAX_DATAGRAM_LEN: usize = u16::MAX as usize - Ipv4Header::MIN_LEN - UdpHeader::LEN;

/// TTL written into the IPv4 header. The received TTL is not known to a socket reader.
const TTL: u8 = 64;

/// Writes into `frame` (cleared first) the Ethernet, IPv4 and UDP headers of a datagram of
/// `datagram_len` bytes from `src` to `dst`, followed by `stored`, the first bytes of the
/// datagram (all of it unless the capture truncated it).
///
/// The IPv4 total length and UDP length describe the whole datagram, and the IPv4 header
/// checksum is filled. The UDP checksum is computed when `stored` is the whole datagram and is 0
/// ("no checksum", which IPv4 allows) otherwise. The source MAC is 0, and the destination MAC
/// is the IPv4 multicast MAC (01:00:5e plus the low 23 bits of the group) for a multicast `dst`,
/// 0 otherwise. `datagram_len` is capped at [`MAX_DATAGRAM_LEN`].
pub fn write_frame(frame: &mut Vec<u8>, stored: &[u8], datagram_len: usize, src: SocketAddrV4, dst: SocketAddrV4) {
    let datagram_len = datagram_len.clamp(stored.len(), MAX_DATAGRAM_LEN);
    let stored = stored.get(..datagram_len).unwrap_or(stored);
    // Fits: MAX_DATAGRAM_LEN + UDP header = u16::MAX - IPv4 header.
    let udp_len = u16::try_from(UdpHeader::LEN + datagram_len).unwrap_or(u16::MAX);

    let ethernet = Ethernet2Header {
        source: [0; 6],
        destination: destination_mac(dst),
        ether_type: EtherType::IPV4,
    };
    // Never the default: `udp_len` is at most u16::MAX - 20, the limit `Ipv4Header::new` checks.
    let mut ip = Ipv4Header::new(udp_len, TTL, IpNumber::UDP, src.ip().octets(), dst.ip().octets()).unwrap_or_default();
    ip.header_checksum = ip.calc_header_checksum();
    let mut udp = UdpHeader {
        source_port: src.port(),
        destination_port: dst.port(),
        length: udp_len,
        checksum: 0,
    };
    if stored.len() == datagram_len {
        if let Ok(checksum) = udp.calc_checksum_ipv4(&ip, stored) {
            udp.checksum = checksum;
        }
    }

    frame.clear();
    frame.extend_from_slice(&ethernet.to_bytes());
    frame.extend_from_slice(&ip.to_bytes());
    frame.extend_from_slice(&udp.to_bytes());
    frame.extend_from_slice(stored);
}

/// Returns the Ethernet destination of a frame to `dst`: the IPv4 multicast MAC for a group,
/// all zeros for any other address.
fn destination_mac(dst: SocketAddrV4) -> [u8; 6] {
    if !dst.ip().is_multicast() {
        return [0; 6];
    }
    let [_, b, c, d] = dst.ip().octets();
    [0x01, 0x00, 0x5e, b & 0x7f, c, d]
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    use super::*;

    const SRC: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 1, 2, 3), 40_000);

    #[test]
    fn frame_parses_back_with_valid_checksums() {
        let dst = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 26_400);
        let payload: Vec<u8> = (0..=255).collect();
        let mut frame = Vec::new();
        write_frame(&mut frame, &payload, payload.len(), SRC, dst);
        assert_eq!(frame.len(), FRAME_HEADER_LEN + payload.len());

        let sliced = SlicedPacket::from_ethernet(&frame).unwrap();
        let Some(NetSlice::Ipv4(ip)) = &sliced.net else {
            panic!("no IPv4 header in {:?}", sliced.net);
        };
        let ip_header = ip.header().to_header();
        assert_eq!(ip_header.source, SRC.ip().octets());
        assert_eq!(ip_header.destination, dst.ip().octets());
        assert_eq!(usize::from(ip_header.total_len), 20 + 8 + payload.len());
        assert_eq!(ip_header.header_checksum, ip_header.calc_header_checksum());
        assert_ne!(ip_header.header_checksum, 0);

        let Some(TransportSlice::Udp(udp)) = &sliced.transport else {
            panic!("no UDP header in {:?}", sliced.transport);
        };
        assert_eq!(udp.source_port(), SRC.port());
        assert_eq!(udp.destination_port(), dst.port());
        assert_eq!(udp.payload(), payload.as_slice());
        let udp_header = udp.to_header();
        assert_eq!(udp_header.checksum, udp_header.calc_checksum_ipv4(&ip_header, &payload).unwrap());
        assert_ne!(udp_header.checksum, 0);
    }

    #[test]
    fn truncated_frame_keeps_full_lengths() {
        let dst = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 26_400);
        let mut frame = Vec::new();
        write_frame(&mut frame, &[7; 100], 1_000, SRC, dst);
        assert_eq!(frame.len(), FRAME_HEADER_LEN + 100);
        let total_len = u16::from_be_bytes([frame[16], frame[17]]);
        assert_eq!(total_len, 20 + 8 + 1_000);
        let udp_len = u16::from_be_bytes([frame[38], frame[39]]);
        assert_eq!(udp_len, 8 + 1_000);
        let udp_checksum = u16::from_be_bytes([frame[40], frame[41]]);
        assert_eq!(udp_checksum, 0, "no UDP checksum without the whole payload");
    }

    #[test]
    fn multicast_destination_gets_group_mac() {
        let group = SocketAddrV4::new(Ipv4Addr::new(233, 54, 12, 111), 26_477);
        let mut frame = Vec::new();
        write_frame(&mut frame, b"x", 1, SRC, group);
        // 233.54.12.111: low 23 bits of the address are 0x36 & 0x7f, 0x0c, 0x6f.
        assert_eq!(&frame[..6], &[0x01, 0x00, 0x5e, 0x36, 0x0c, 0x6f]);
        assert_eq!(&frame[6..12], &[0; 6]);
        assert_eq!(&frame[12..14], &[0x08, 0x00], "EtherType IPv4");
    }
}

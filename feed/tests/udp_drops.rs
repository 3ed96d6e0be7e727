//! Kernel drop counts and sender addresses of `UdpReceiver`, over real sockets on 127.0.0.1 and
//! ::1.

mod net_support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use mdfh_feed::udp::{UdpConfig, UdpReceiver, UdpSender};
use net_support::{real_datagrams, wait_for};

const LIMIT: Duration = Duration::from_secs(10);

fn receiver_on(ip: IpAddr, recv_buffer_bytes: usize) -> UdpReceiver {
    let config = UdpConfig {
        bind: SocketAddr::new(ip, 0),
        recv_buffer_bytes,
        batch: 32,
        ..UdpConfig::default()
    };
    UdpReceiver::open(&config).unwrap()
}

/// Builds datagram `index`: the index as a big-endian u32, then a real MoldUDP64 packet.
fn numbered(index: u32, packet: &[u8]) -> Vec<u8> {
    let mut datagram = index.to_be_bytes().to_vec();
    datagram.extend_from_slice(packet);
    datagram
}

fn index_of(datagram: &[u8]) -> u32 {
    let prefix: [u8; 4] = datagram.get(..4).and_then(|b| b.try_into().ok()).unwrap();
    u32::from_be_bytes(prefix)
}

#[cfg(target_os = "linux")]
#[test]
fn overflow_drops_are_counted() {
    const FLOOD: u32 = 2_000;
    let packets = real_datagrams();
    assert!(!packets.is_empty(), "expected the captures to contain datagrams");
    // A 4 KiB receive buffer has room for a few datagrams, so most of the flood is dropped.
    let mut receiver = receiver_on(IpAddr::V4(Ipv4Addr::LOCALHOST), 4096);
    let to = receiver.local_addr().unwrap();
    let sender = UdpSender::localhost().unwrap();

    for (index, packet) in (0..FLOOD).zip(packets.iter().cycle()) {
        let datagram = numbered(index, packet);
        assert_eq!(sender.send_to(&datagram, to).unwrap(), datagram.len());
    }

    // Drops after the newest received datagram are reported only with a later one, so the test
    // drains the socket and then ends on a marker datagram. A marker can itself be dropped when
    // the kernel delivers flood datagrams late, so markers are sent until the newest one sent
    // arrives. Everything sent before it was then either received first or counted in its drop
    // count.
    let mut received: Vec<u32> = Vec::new();
    let mut sent = FLOOD;
    let deadline = Instant::now() + LIMIT;
    loop {
        assert!(Instant::now() < deadline, "timed out waiting for the marker datagram");
        while receiver.recv_batch(|d, _| received.push(index_of(d))).unwrap() > 0 {}
        let marker = sent;
        let datagram = numbered(marker, &[]);
        assert_eq!(sender.send_to(&datagram, to).unwrap(), datagram.len());
        sent += 1;

        let poll_until = Instant::now() + Duration::from_millis(200);
        while !received.contains(&marker) && Instant::now() < poll_until {
            let n = receiver.recv_batch(|d, _| received.push(index_of(d))).unwrap();
            if n == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        if received.contains(&marker) {
            break;
        }
    }

    let drops = receiver.kernel_drops().expect("kernel_drops() returned None, so the kernel rejected SO_RXQ_OVFL");
    assert!(drops > 0, "a 4 KiB buffer flooded with {FLOOD} datagrams reported no drops");
    assert_eq!(received.len() as u64 + drops, u64::from(sent), "received plus dropped must equal sent");
    assert!(received.windows(2).all(|w| w[0] < w[1]), "datagrams arrived out of order: {received:?}");
    assert_eq!(receiver.datagrams(), received.len() as u64);
}

#[cfg(target_os = "linux")]
#[test]
fn kernel_drops_zero_without_overflow() {
    let mut receiver = receiver_on(IpAddr::V4(Ipv4Addr::LOCALHOST), 1 << 20);
    assert_eq!(receiver.kernel_drops(), Some(0), "a new socket has dropped nothing");
    let to = receiver.local_addr().unwrap();
    let sender = UdpSender::localhost().unwrap();
    let packets = real_datagrams();
    for packet in packets.iter().take(10) {
        sender.send_to(packet, to).unwrap();
    }

    let mut count = 0;
    wait_for("10 datagrams", LIMIT, || {
        receiver.recv_batch(|_, _| count += 1).unwrap();
        count >= 10
    });
    assert_eq!(count, 10);
    assert_eq!(receiver.kernel_drops(), Some(0));
}

#[test]
fn recv_batch_from_reports_ipv4_sender() {
    let mut receiver = receiver_on(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
    let to = receiver.local_addr().unwrap();
    let first = UdpSender::localhost().unwrap();
    let second = UdpSender::localhost().unwrap();
    first.send_to(b"from first", to).unwrap();
    second.send_to(b"from second", to).unwrap();

    let mut got: Vec<(Vec<u8>, Option<SocketAddr>)> = Vec::new();
    wait_for("2 datagrams", LIMIT, || {
        receiver.recv_batch_from(|d, _, source| got.push((d.to_vec(), source))).unwrap();
        got.len() >= 2
    });

    let expected = vec![
        (b"from first".to_vec(), Some(first.local_addr().unwrap())),
        (b"from second".to_vec(), Some(second.local_addr().unwrap())),
    ];
    assert_eq!(got, expected);
}

#[test]
fn recv_batch_from_reports_ipv6_sender() {
    let ip = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let mut receiver = receiver_on(ip, 0);
    let to = receiver.local_addr().unwrap();
    let sender = UdpSender::open(SocketAddr::new(ip, 0)).unwrap();
    let packets = real_datagrams();
    let packet = packets.first().unwrap();
    sender.send_to(packet, to).unwrap();

    let mut got: Vec<(Vec<u8>, Option<SocketAddr>)> = Vec::new();
    wait_for("1 datagram", LIMIT, || {
        receiver.recv_batch_from(|d, _, source| got.push((d.to_vec(), source))).unwrap();
        !got.is_empty()
    });

    assert_eq!(got, vec![(packet.clone(), Some(sender.local_addr().unwrap()))]);
}

//! UDP receive over real sockets: unicast on 127.0.0.1, and multicast inside a private network
//! namespace that the test creates, so no multicast datagram leaves this machine's sandbox.

mod net_support;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use mdfh_feed::udp::{UdpConfig, UdpReceiver, UdpSender, DEFAULT_SLOT_BYTES};
use net_support::{real_datagrams, split_moldudp64, wait_for};

const LIMIT: Duration = Duration::from_secs(10);

fn unicast_receiver(batch: usize) -> UdpReceiver {
    let config = UdpConfig {
        bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        batch,
        ..UdpConfig::default()
    };
    UdpReceiver::open(&config).unwrap()
}

#[test]
fn unicast_batches_keep_order_and_bytes() {
    let datagrams = real_datagrams();
    assert!(datagrams.len() > 40, "expected the captures to hold more than 40 datagrams");
    let mut receiver = unicast_receiver(8);
    let to = receiver.local_addr().unwrap();
    let sender = UdpSender::localhost().unwrap();

    // Everything is queued before the first receive, so calls can fill whole batches.
    for d in &datagrams {
        assert_eq!(sender.send_to(d, to).unwrap(), d.len());
    }

    let mut received: Vec<Vec<u8>> = Vec::new();
    let mut timestamps = Vec::new();
    let mut largest_batch = 0;
    wait_for("all datagrams", LIMIT, || {
        let n = receiver
            .recv_batch(|d, ts| {
                received.push(d.to_vec());
                timestamps.push(ts);
            })
            .unwrap();
        largest_batch = largest_batch.max(n);
        received.len() >= datagrams.len()
    });

    assert_eq!(received.len(), datagrams.len());
    let first_mismatch = received.iter().zip(&datagrams).position(|(got, sent)| got != sent);
    assert_eq!(first_mismatch, None, "received datagram differs from the one sent at that position");
    assert!(largest_batch > 1, "no call returned more than one datagram");
    assert!(largest_batch <= 8, "a call returned {largest_batch} datagrams, more than the batch of 8");
    assert!(timestamps.windows(2).all(|w| w[0] <= w[1]), "receive timestamps went backwards");
    assert_eq!(receiver.datagrams(), datagrams.len() as u64);
    assert_eq!(receiver.truncated_datagrams(), 0);

    // The NASDAQ capture of two packets keeps its real header: 38 messages in the second.
    let (header, messages) = split_moldudp64(&received[1]);
    assert_eq!(&header.session, b"000010059B");
    assert_eq!(header.sequence, 19009117);
    assert_eq!(header.count, 38);
    assert_eq!(messages.len(), 38);
}

#[test]
fn sender_for_loopback_target() {
    let mut receiver = unicast_receiver(4);
    let to = receiver.local_addr().unwrap();
    let sender = UdpSender::for_target(to).unwrap();
    assert!(sender.local_addr().unwrap().ip().is_loopback());
    sender.send_to(b"ping", to).unwrap();

    let mut received: Vec<Vec<u8>> = Vec::new();
    wait_for("one datagram", LIMIT, || {
        receiver.recv_batch(|d, _| received.push(d.to_vec())).unwrap();
        !received.is_empty()
    });
    assert_eq!(received, vec![b"ping".to_vec()]);
}

#[test]
fn empty_socket_returns_zero() {
    let mut receiver = unicast_receiver(4);
    let mut calls = 0;
    let n = receiver.recv_batch(|_, _| calls += 1).unwrap();
    assert_eq!(n, 0);
    assert_eq!(calls, 0);
}

#[test]
fn oversized_datagram_counted_not_delivered() {
    let mut receiver = unicast_receiver(4);
    let to = receiver.local_addr().unwrap();
    let sender = UdpSender::localhost().unwrap();
    sender.send_to(b"before", to).unwrap();
    sender.send_to(&vec![0xAB; DEFAULT_SLOT_BYTES + 1], to).unwrap();
    sender.send_to(b"after", to).unwrap();

    let mut received: Vec<Vec<u8>> = Vec::new();
    let mut taken = 0;
    wait_for("three datagrams", LIMIT, || {
        taken += receiver.recv_batch(|d, _| received.push(d.to_vec())).unwrap();
        taken >= 3
    });

    assert_eq!(received, vec![b"before".to_vec(), b"after".to_vec()]);
    assert_eq!(receiver.truncated_datagrams(), 1);
    assert_eq!(receiver.datagrams(), 2);
}

#[cfg(target_os = "linux")]
#[test]
fn receive_buffer_at_least_kernel_grant() {
    let requested = 1 << 20;
    let config = UdpConfig {
        recv_buffer_bytes: requested,
        ..UdpConfig::default()
    };
    let receiver = UdpReceiver::open(&config).unwrap();
    let rmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Linux grants min(request, rmem_max) without privileges, more with SO_RCVBUFFORCE, and
    // reports twice the usable size.
    let floor = 2 * requested.min(rmem_max);
    assert!(
        receiver.recv_buffer_granted() >= floor,
        "granted {} bytes, expected at least {floor}",
        receiver.recv_buffer_granted()
    );
}

/// Set in the child process that runs inside the private network namespace.
const IN_NAMESPACE: &str = "MDFH_TEST_IN_PRIVATE_NETNS";
const INNER_DONE: &str = "multicast datagrams received in the private namespace";

#[test]
fn multicast_in_private_namespace() {
    if std::env::var_os(IN_NAMESPACE).is_some() {
        multicast_inside_namespace();
        println!("{INNER_DONE}");
        return;
    }

    let uid = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if uid.as_deref().ok() != Some("0") {
        println!("skipped: multicast test needs root to create a network namespace (id -u is not 0)");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let output = Command::new("unshare")
        .arg("-n")
        .arg(&exe)
        .args(["multicast_in_private_namespace", "--exact", "--nocapture", "--test-threads=1"])
        .env(IN_NAMESPACE, "1")
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) => {
            println!("skipped: multicast test needs root to create a network namespace (unshare: {e})");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() && stderr.starts_with("unshare:") {
        println!("skipped: multicast test needs root to create a network namespace ({})", stderr.trim());
        return;
    }
    assert!(output.status.success(), "multicast test failed in the namespace:\n{stdout}\n{stderr}");
    assert!(stdout.contains(INNER_DONE), "the namespace run did not reach the test body:\n{stdout}");
}

/// Two receivers on one port, each joined to its own group on 127.0.0.1. Each must receive only
/// its group's datagram, which also checks that IP_MULTICAST_ALL is off.
fn multicast_inside_namespace() {
    // /proc/net/dev lists the interfaces of this process's network namespace (/sys/class/net
    // would show those of the namespace sysfs was mounted in). Its first two lines are headers.
    let interfaces: Vec<String> = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .skip(2)
        .filter_map(|line| line.split(':').next())
        .map(|name| name.trim().to_owned())
        .collect();
    assert_eq!(interfaces, vec!["lo".to_owned()], "refusing to send multicast outside a private namespace");
    run(&["ip", "link", "set", "lo", "up", "multicast", "on"]);
    run(&["ip", "route", "add", "239.0.0.0/8", "dev", "lo"]);

    let group_a = Ipv4Addr::new(239, 1, 1, 1);
    let group_b = Ipv4Addr::new(239, 1, 1, 2);
    let mut a = multicast_receiver(group_a, 0);
    let port = a.local_addr().unwrap().port();
    let mut b = multicast_receiver(group_b, port);

    // for_target sets the outgoing interface 127.0.0.1, TTL 1 and loopback for a group.
    let sender = UdpSender::for_target(SocketAddr::from((group_a, port))).unwrap();
    assert!(sender.local_addr().unwrap().ip().is_loopback());
    let datagrams = real_datagrams();
    sender.send_to(&datagrams[0], SocketAddr::from((group_a, port))).unwrap();
    sender.send_to(&datagrams[1], SocketAddr::from((group_b, port))).unwrap();

    let mut got_a: Vec<Vec<u8>> = Vec::new();
    let mut got_b: Vec<Vec<u8>> = Vec::new();
    wait_for("one datagram on each group", LIMIT, || {
        a.recv_batch(|d, _| got_a.push(d.to_vec())).unwrap();
        b.recv_batch(|d, _| got_b.push(d.to_vec())).unwrap();
        !got_a.is_empty() && !got_b.is_empty()
    });
    // Anything misrouted was queued together with the expected datagram, so drain it too.
    a.recv_batch(|d, _| got_a.push(d.to_vec())).unwrap();
    b.recv_batch(|d, _| got_b.push(d.to_vec())).unwrap();

    assert_eq!(got_a.len(), 1, "the socket joined to {group_a} received datagrams of other groups");
    assert_eq!(got_b.len(), 1, "the socket joined to {group_b} received datagrams of other groups");
    assert!(got_a[0] == datagrams[0], "wrong datagram on {group_a}");
    assert!(got_b[0] == datagrams[1], "wrong datagram on {group_b}");
}

fn multicast_receiver(group: Ipv4Addr, port: u16) -> UdpReceiver {
    let config = UdpConfig {
        bind: SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
        multicast_group: Some(group),
        interface: Ipv4Addr::LOCALHOST,
        ..UdpConfig::default()
    };
    UdpReceiver::open(&config).unwrap()
}

fn run(argv: &[&str]) {
    let status = Command::new(argv[0]).args(&argv[1..]).status().unwrap();
    assert!(status.success(), "{argv:?} failed: {status}");
}

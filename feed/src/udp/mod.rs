//! MoldUDP64 receive over UDP unicast and multicast, and a sender for the simulator.
//!
//! [`UdpReceiver`] owns one non-blocking socket and a fixed set of receive slots allocated in
//! [`UdpReceiver::open`]. On Linux, [`UdpReceiver::recv_batch_from`] fills up to `batch` slots
//! with one `recvmmsg(2)` call. Other systems call `recvmsg` once per datagram. Nothing is
//! allocated per call. Timestamps come from [`monotonic_ns`], the clock the whole pipeline
//! shares.
//!
//! # Sender addresses
//! [`UdpReceiver::recv_batch_from`] passes each datagram's source address, IPv4 or IPv6, which
//! the kernel writes into a preallocated `sockaddr_storage` per slot.
//!
//! # Kernel drops
//! A datagram that arrives while the socket's receive buffer is full is dropped by the kernel,
//! and no receive call returns it. On Linux the receiver sets `SO_RXQ_OVFL` at open. The kernel then
//! attaches to each received datagram a control message with the socket's cumulative drop count
//! when that datagram was queued, and [`UdpReceiver::kernel_drops`] returns the total. Three
//! limits follow from how the kernel reports it:
//! - Drops after the newest received datagram show up only once a later datagram is received.
//! - The kernel counts every datagram it drops on this socket. A full receive buffer is the usual
//!   cause, but checksum failures count too.
//! - Other systems, and a Linux kernel that rejects the option, report nothing: `kernel_drops`
//!   returns `None`, not `Some(0)`.

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::Instant;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Size of one receive slot in bytes unless [`UdpReceiver::open_with_slot_bytes`] sets another.
/// MoldUDP64 packets fit in one Ethernet frame, so 2048 bytes leave room. The kernel truncates
/// a longer datagram, and the receiver drops it.
pub const DEFAULT_SLOT_BYTES: usize = 2048;

/// Returns nanoseconds since the first call in this process, from a monotonic clock. Every
/// receive timestamp in the pipeline comes from here, so differences between them are latencies.
pub fn monotonic_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Socket settings of a [`UdpReceiver`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpConfig {
    /// Local address to bind: `127.0.0.1:port` for unicast; `0.0.0.0:port` or `group:port` for
    /// multicast.
    pub bind: SocketAddr,
    /// Multicast group to join (IP_ADD_MEMBERSHIP); `None` for unicast.
    pub multicast_group: Option<Ipv4Addr>,
    /// Address of the interface to join the group on; `0.0.0.0` lets the kernel choose.
    pub interface: Ipv4Addr,
    /// Requested SO_RCVBUF in bytes; 0 keeps the system default.
    pub recv_buffer_bytes: usize,
    /// Maximum number of datagrams one [`UdpReceiver::recv_batch`] call receives (at least 1).
    pub batch: usize,
}

impl Default for UdpConfig {
    fn default() -> Self {
        UdpConfig {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            multicast_group: None,
            interface: Ipv4Addr::UNSPECIFIED,
            recv_buffer_bytes: 4 << 20,
            batch: 32,
        }
    }
}

/// A bound, non-blocking UDP socket with preallocated receive slots.
pub struct UdpReceiver {
    socket: Socket,
    slot_bytes: usize,
    /// `batch * slot_bytes` bytes; slot `i` starts at `i * slot_bytes`.
    buffers: Box<[u8]>,
    #[cfg(target_os = "linux")]
    mmsg: linux::Batch,
    /// `None` when the kernel rejected SO_RXQ_OVFL.
    #[cfg(target_os = "linux")]
    kernel_drops: Option<linux::DropCounter>,
    recv_buffer_granted: usize,
    datagrams: u64,
    truncated_datagrams: u64,
}

impl UdpReceiver {
    /// Opens the socket with receive slots of [`DEFAULT_SLOT_BYTES`]: SO_REUSEADDR and
    /// SO_REUSEPORT (where the system has it) for multicast only, SO_RCVBUF, SO_RXQ_OVFL on
    /// Linux, bind, the multicast join when a group is set, non-blocking mode. A rejected
    /// SO_RXQ_OVFL is not an error, and [`UdpReceiver::kernel_drops`] then returns `None`.
    pub fn open(config: &UdpConfig) -> io::Result<Self> {
        Self::open_with_slot_bytes(config, DEFAULT_SLOT_BYTES)
    }

    /// Opens the socket like [`UdpReceiver::open`], with receive slots of `slot_bytes` (at
    /// least 1). Longer datagrams are counted as truncated and dropped.
    pub fn open_with_slot_bytes(config: &UdpConfig, slot_bytes: usize) -> io::Result<Self> {
        let batch = config.batch.max(1);
        let slot_bytes = slot_bytes.max(1);
        let socket = Socket::new(Domain::for_address(config.bind), Type::DGRAM, Some(Protocol::UDP))?;
        // Address and port reuse let several receivers join one multicast group; a unicast
        // socket keeps its port to itself, so a second handler on it fails to start instead of
        // silently taking part of the feed.
        if config.multicast_group.is_some() {
            socket.set_reuse_address(true)?;
            #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))))]
            socket.set_reuse_port(true)?;
        }
        if config.recv_buffer_bytes > 0 {
            socket.set_recv_buffer_size(config.recv_buffer_bytes)?;
            #[cfg(target_os = "linux")]
            linux::force_recv_buffer(&socket, config.recv_buffer_bytes);
        }
        // Set before bind, so the count covers every datagram since open.
        #[cfg(target_os = "linux")]
        let kernel_drops = linux::enable_drop_count(&socket).then(linux::DropCounter::default);
        socket.bind(&SockAddr::from(config.bind))?;
        if let Some(group) = config.multicast_group {
            // Without this, Linux also delivers datagrams of groups that other sockets on the
            // machine joined on the same port.
            #[cfg(target_os = "linux")]
            socket.set_multicast_all_v4(false)?;
            socket.join_multicast_v4(&group, &config.interface)?;
        }
        socket.set_nonblocking(true)?;
        let recv_buffer_granted = socket.recv_buffer_size()?;

        let mut buffers = vec![0u8; batch * slot_bytes].into_boxed_slice();
        #[cfg(target_os = "linux")]
        let mmsg = linux::Batch::new(&mut buffers, slot_bytes);
        Ok(UdpReceiver {
            socket,
            slot_bytes,
            buffers,
            #[cfg(target_os = "linux")]
            mmsg,
            #[cfg(target_os = "linux")]
            kernel_drops,
            recv_buffer_granted,
            datagrams: 0,
            truncated_datagrams: 0,
        })
    }

    /// Receives what is waiting, up to `batch` datagrams, without blocking, and calls
    /// `f(datagram, recv_timestamp_ns)` for each complete one in arrival order. The timestamp is
    /// read from [`monotonic_ns`] right after the receive call returns. Returns the number of
    /// datagrams taken from the socket, truncated ones included; 0 when none was waiting.
    pub fn recv_batch(&mut self, mut f: impl FnMut(&[u8], u64)) -> io::Result<usize> {
        self.recv_batch_from(|datagram, recv_ns, _| f(datagram, recv_ns))
    }

    /// Receives like [`UdpReceiver::recv_batch`], and also passes each datagram's sender:
    /// `f(datagram, recv_timestamp_ns, source)`. `source` is `None` when the system returned no
    /// IPv4 or IPv6 address. On Linux the call also updates [`UdpReceiver::kernel_drops`].
    pub fn recv_batch_from(&mut self, f: impl FnMut(&[u8], u64, Option<SocketAddr>)) -> io::Result<usize> {
        #[cfg(target_os = "linux")]
        let received = self.recv_batch_mmsg(f);
        #[cfg(not(target_os = "linux"))]
        let received = self.recv_batch_loop(f);
        received
    }

    /// Returns the number of datagrams the kernel dropped on this socket since open, as of the
    /// newest datagram received. `None` where the system does not report drops: other systems
    /// than Linux, or a kernel that rejected SO_RXQ_OVFL.
    pub fn kernel_drops(&self) -> Option<u64> {
        #[cfg(target_os = "linux")]
        let drops = self.kernel_drops.as_ref().map(linux::DropCounter::total);
        #[cfg(not(target_os = "linux"))]
        let drops = None;
        drops
    }

    /// Returns the SO_RCVBUF size the kernel reports after the request. Linux reports twice the
    /// usable size, because it counts its own bookkeeping.
    pub fn recv_buffer_granted(&self) -> usize {
        self.recv_buffer_granted
    }

    /// Returns the bound address, with the port the system chose for port 0.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "UDP socket has a non-IP local address"))
    }

    /// Returns the number of datagrams passed to callers.
    pub fn datagrams(&self) -> u64 {
        self.datagrams
    }

    /// Returns the number of datagrams dropped because they were longer than a slot.
    pub fn truncated_datagrams(&self) -> u64 {
        self.truncated_datagrams
    }

    #[cfg(target_os = "linux")]
    fn recv_batch_mmsg(&mut self, mut f: impl FnMut(&[u8], u64, Option<SocketAddr>)) -> io::Result<usize> {
        use std::os::fd::AsRawFd;

        let received = match self.mmsg.recv(self.socket.as_raw_fd()) {
            Ok(n) => n,
            Err(e) if is_retry(&e) => return Ok(0),
            Err(e) => return Err(e),
        };
        let now = monotonic_ns();
        if let Some(drops) = self.kernel_drops.as_mut() {
            if let Some(count) = self.mmsg.newest_drop_count(received) {
                drops.update(count);
            }
        }

        for i in 0..received {
            let (len, truncated) = self.mmsg.result(i);
            if truncated {
                self.truncated_datagrams += 1;
                continue;
            }
            let start = i * self.slot_bytes;
            if let Some(datagram) = self.buffers.get(start..start + len.min(self.slot_bytes)) {
                self.datagrams += 1;
                f(datagram, now, self.mmsg.source(i));
            }
        }
        Ok(received)
    }

    /// Receives with one `recvmsg` per datagram; used where `recvmmsg` does not exist, and by the
    /// unit tests below on Linux. It reads no control messages, so it reports no kernel drops.
    #[cfg_attr(target_os = "linux", allow(dead_code))]
    fn recv_batch_loop(&mut self, mut f: impl FnMut(&[u8], u64, Option<SocketAddr>)) -> io::Result<usize> {
        let batch = self.buffers.len() / self.slot_bytes;
        let mut received = 0;
        while received < batch {
            let Some(slot) = self.buffers.get_mut(..self.slot_bytes) else {
                break;
            };
            let slot_len = slot.len();
            // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and the slice covers exactly the
            // initialized `slot`. socket2 documents that `recv_from_vectored` never writes
            // uninitialized bytes through the slice, so `slot` stays initialized.
            let uninit = unsafe { std::slice::from_raw_parts_mut(slot.as_mut_ptr().cast::<MaybeUninit<u8>>(), slot_len) };
            let (len, flags, source) = match self.socket.recv_from_vectored(&mut [socket2::MaybeUninitSlice::new(uninit)]) {
                Ok(result) => result,
                Err(e) if is_retry(&e) => break,
                Err(e) => return Err(e),
            };
            let now = monotonic_ns();
            received += 1;
            if flags.is_truncated() {
                self.truncated_datagrams += 1;
                continue;
            }
            if let Some(datagram) = self.buffers.get(..len) {
                self.datagrams += 1;
                f(datagram, now, source.as_socket());
            }
        }
        Ok(received)
    }
}

/// Returns whether a receive error only means "nothing waiting now".
fn is_retry(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted)
}

#[cfg(target_os = "linux")]
mod linux;

/// A UDP socket that sends datagrams, for the simulator and tests.
pub struct UdpSender {
    socket: Socket,
}

impl UdpSender {
    /// Opens a blocking UDP socket bound to `bind`, for example `127.0.0.1:0`.
    pub fn open(bind: SocketAddr) -> io::Result<Self> {
        let socket = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP))?;
        socket.bind(&SockAddr::from(bind))?;
        Ok(UdpSender { socket })
    }

    /// Opens a sender bound to 127.0.0.1 on a port the system chooses.
    pub fn localhost() -> io::Result<Self> {
        Self::open(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
    }

    /// Opens a sender for `target` on a port the system chooses. A loopback or IPv4 multicast
    /// target gets a socket bound to loopback. Multicast then leaves through 127.0.0.1 with TTL 1
    /// and loopback on, so it reaches receivers on this machine and goes no further than the
    /// local link. Any other target gets a socket bound to the unspecified address of its family.
    pub fn for_target(target: SocketAddr) -> io::Result<Self> {
        let local_only = target.ip().is_loopback() || target.ip().is_multicast();
        let bind = match (target, local_only) {
            (SocketAddr::V4(_), true) => SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            (SocketAddr::V4(_), false) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            (SocketAddr::V6(_), true) => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0)),
            (SocketAddr::V6(_), false) => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
        };
        let sender = Self::open(bind)?;
        if let SocketAddr::V4(v4) = target {
            if v4.ip().is_multicast() {
                sender.set_multicast_interface(Ipv4Addr::LOCALHOST)?;
                sender.set_multicast_ttl(1)?;
                sender.set_multicast_loop(true)?;
            }
        }
        Ok(sender)
    }

    /// Sets the IP TTL of multicast datagrams; 1 keeps them on the local network.
    pub fn set_multicast_ttl(&self, ttl: u32) -> io::Result<()> {
        self.socket.set_multicast_ttl_v4(ttl)
    }

    /// Sets whether multicast datagrams are looped back to receivers on this machine.
    pub fn set_multicast_loop(&self, enabled: bool) -> io::Result<()> {
        self.socket.set_multicast_loop_v4(enabled)
    }

    /// Sets the address of the interface that multicast datagrams leave through.
    pub fn set_multicast_interface(&self, interface: Ipv4Addr) -> io::Result<()> {
        self.socket.set_multicast_if_v4(&interface)
    }

    /// Sends one datagram to `to`; returns the number of bytes sent.
    pub fn send_to(&self, datagram: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.socket.send_to(datagram, &SockAddr::from(to))
    }

    /// Returns the bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "UDP socket has a non-IP local address"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `recv` loop is the path of systems without `recvmmsg`; run it here so it stays tested.
    #[test]
    fn recv_loop_receives_and_drops_truncated() {
        let config = UdpConfig {
            batch: 4,
            ..UdpConfig::default()
        };
        let mut receiver = UdpReceiver::open_with_slot_bytes(&config, 64).unwrap();
        let to = receiver.local_addr().unwrap();
        let sender = UdpSender::localhost().unwrap();
        sender.send_to(b"first", to).unwrap();
        sender.send_to(&[7u8; 65], to).unwrap();
        sender.send_to(b"third", to).unwrap();

        let mut got = Vec::new();
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        while got.len() < 2 && Instant::now() < deadline {
            receiver.recv_batch_loop(|d, _, _| got.push(d.to_vec())).unwrap();
        }
        assert_eq!(got, vec![b"first".to_vec(), b"third".to_vec()]);
        assert_eq!(receiver.truncated_datagrams(), 1);
    }

    #[test]
    fn recv_loop_reports_source() {
        let config = UdpConfig {
            batch: 4,
            ..UdpConfig::default()
        };
        let mut receiver = UdpReceiver::open(&config).unwrap();
        let to = receiver.local_addr().unwrap();
        let sender = UdpSender::localhost().unwrap();
        sender.send_to(b"one", to).unwrap();

        let mut got = Vec::new();
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        while got.is_empty() && Instant::now() < deadline {
            receiver.recv_batch_loop(|d, _, source| got.push((d.to_vec(), source))).unwrap();
        }
        assert_eq!(got, vec![(b"one".to_vec(), Some(sender.local_addr().unwrap()))]);
    }

    #[test]
    fn monotonic_ns_never_goes_back() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(b >= a);
    }
}

//! `recvmmsg(2)` with headers that point into the receiver's slots, sender addresses and
//! control buffers, and the `SO_RXQ_OVFL` drop counter.

use std::io;
use std::mem::size_of;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};

/// Bytes of control buffer per slot: room for one `SO_RXQ_OVFL` message, the only control
/// message this socket enables. Enabling another one (a timestamp, for example) needs more
/// room, or the kernel sets MSG_CTRUNC and may cut off the drop count.
// SAFETY: `CMSG_SPACE` only does arithmetic on its argument and on `size_of::<cmsghdr>()`.
const CONTROL_BYTES: usize = unsafe { libc::CMSG_SPACE(size_of::<u32>() as libc::c_uint) } as usize;

/// Control buffer of one slot, aligned like `cmsghdr` as `CMSG_FIRSTHDR` requires.
#[repr(C)]
#[derive(Clone, Copy)]
struct Control {
    _align: [libc::cmsghdr; 0],
    bytes: [u8; CONTROL_BYTES],
}

/// One `mmsghdr`, `iovec`, `sockaddr_storage` and control buffer per slot. Each `iovec` points at
/// its slot in the receiver's buffer, and each header points at its `iovec`, address and control
/// buffer. The arrays and the buffer are boxed and never replaced, so the pointers stay valid
/// while the receiver exists, even when it moves.
pub(super) struct Batch {
    headers: Box<[libc::mmsghdr]>,
    _iovecs: Box<[libc::iovec]>,
    _names: Box<[libc::sockaddr_storage]>,
    _controls: Box<[Control]>,
}

// SAFETY: the raw pointers inside refer only to heap memory owned by the same `UdpReceiver`,
// which is used from one thread at a time (`recv_batch_from` takes `&mut self`).
unsafe impl Send for Batch {}

impl Batch {
    pub(super) fn new(buffers: &mut [u8], slot_bytes: usize) -> Batch {
        let mut iovecs: Box<[libc::iovec]> = buffers
            .chunks_exact_mut(slot_bytes)
            .map(|slot| libc::iovec {
                iov_base: slot.as_mut_ptr().cast(),
                iov_len: slot.len(),
            })
            .collect();
        let slots = iovecs.len();
        // SAFETY: `sockaddr_storage` is a plain C struct of integers, for which all-zero bytes
        // are a valid value (family AF_UNSPEC).
        let empty_name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut names = vec![empty_name; slots].into_boxed_slice();
        let empty_control = Control {
            _align: [],
            bytes: [0; CONTROL_BYTES],
        };
        let mut controls = vec![empty_control; slots].into_boxed_slice();

        let headers = iovecs
            .iter_mut()
            .zip(names.iter_mut())
            .zip(controls.iter_mut())
            .map(|((iov, name), control)| {
                // SAFETY: `mmsghdr` is a plain C struct of integers and pointers, for which
                // all-zero bytes are a valid value (null pointers, zero lengths).
                let mut header: libc::mmsghdr = unsafe { std::mem::zeroed() };
                header.msg_hdr.msg_iov = iov;
                header.msg_hdr.msg_iovlen = 1;
                header.msg_hdr.msg_name = std::ptr::from_mut(name).cast();
                header.msg_hdr.msg_control = control.bytes.as_mut_ptr().cast();
                header
            })
            .collect();
        Batch {
            headers,
            _iovecs: iovecs,
            _names: names,
            _controls: controls,
        }
    }

    /// Receives up to one datagram per slot without waiting, and returns how many arrived.
    pub(super) fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        // The kernel overwrites the address and control lengths with what it wrote, so each call
        // starts by offering the full buffers again.
        for header in self.headers.iter_mut() {
            header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_hdr.msg_controllen = CONTROL_BYTES as _;
            header.msg_hdr.msg_flags = 0;
            header.msg_len = 0;
        }
        let vlen = u32::try_from(self.headers.len()).unwrap_or(u32::MAX);
        // SAFETY: `headers` contains `vlen` valid `mmsghdr`s whose iovecs, addresses and control
        // buffers point at live memory of the lengths given (see `Batch`). The kernel writes at
        // most `iov_len` bytes per slot, `msg_namelen` bytes of address and `msg_controllen`
        // bytes of control messages, and fills `msg_len` and `msg_hdr.msg_flags`. A null timeout
        // means none.
        let n = unsafe {
            libc::recvmmsg(fd, self.headers.as_mut_ptr(), vlen, libc::MSG_DONTWAIT as _, std::ptr::null_mut())
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Returns the length and the MSG_TRUNC flag of the datagram in slot `i` after `recv`.
    pub(super) fn result(&self, i: usize) -> (usize, bool) {
        match self.headers.get(i) {
            Some(h) => (h.msg_len as usize, h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0),
            None => (0, true),
        }
    }

    /// Returns the sender of the datagram in slot `i` after `recv`, or `None` when the kernel
    /// wrote no IPv4 or IPv6 address there.
    pub(super) fn source(&self, i: usize) -> Option<SocketAddr> {
        let header = self.headers.get(i)?;
        let name = header.msg_hdr.msg_name.cast_const().cast::<libc::sockaddr_storage>();
        // SAFETY: `msg_name` points at this slot's `sockaddr_storage` in `_names`, which lives as
        // long as `self` and is only written by the kernel during `recv`, which takes `&mut self`.
        let storage = unsafe { &*name };
        socket_addr(storage, header.msg_hdr.msg_namelen)
    }

    /// Returns the newest `SO_RXQ_OVFL` count among the first `received` datagrams: the
    /// socket's cumulative drop count when the latest of them was queued. `None` when none of
    /// them carries one, which the kernel does while the count is 0.
    pub(super) fn newest_drop_count(&self, received: usize) -> Option<u32> {
        let received = self.headers.get(..received)?;
        received.iter().rev().find_map(|header| drop_count(&header.msg_hdr))
    }
}

/// Returns the `SO_RXQ_OVFL` value among the control messages of `msg`, as filled by the kernel.
fn drop_count(msg: &libc::msghdr) -> Option<u32> {
    // SAFETY: `CMSG_LEN` only does arithmetic.
    let min_len = unsafe { libc::CMSG_LEN(size_of::<u32>() as libc::c_uint) } as usize;
    let control_start = msg.msg_control as usize;
    // `msg_controllen` is a `size_t` on glibc but a `socklen_t` on musl.
    #[allow(clippy::unnecessary_cast)]
    let control_end = control_start + msg.msg_controllen as usize;

    // SAFETY: `msg` is a live `msghdr` whose `msg_control` points at a control buffer of at
    // least `msg_controllen` bytes (the kernel lowers `msg_controllen` to what it wrote).
    // `CMSG_FIRSTHDR` returns null or a pointer to the start of that buffer, aligned for
    // `cmsghdr` (see `Control`).
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(msg) };
    while !cmsg.is_null() {
        // SAFETY: `CMSG_FIRSTHDR` and `CMSG_NXTHDR` return either null or a pointer to a whole
        // `cmsghdr` inside the buffer of `msg_controllen` bytes.
        let header = unsafe { &*cmsg };
        if header.cmsg_level == libc::SOL_SOCKET
            && header.cmsg_type == libc::SO_RXQ_OVFL
            && header.cmsg_len as usize >= min_len
            && cmsg as usize + min_len <= control_end
        {
            // SAFETY: the checks above put the header and 4 data bytes inside the control
            // buffer. The data may be unaligned for `u32`, so it is read unaligned.
            let count = unsafe { libc::CMSG_DATA(cmsg).cast::<u32>().read_unaligned() };
            return Some(count);
        }
        // SAFETY: `msg` and `cmsg` are the buffer and a header in it, as `CMSG_NXTHDR` requires.
        // It returns null when the next header would end past `msg_controllen`.
        cmsg = unsafe { libc::CMSG_NXTHDR(msg, cmsg) };
    }
    None
}

/// Converts an address the kernel wrote into `storage` with length `len` to a `SocketAddr`.
fn socket_addr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family is AF_INET and the kernel wrote a whole `sockaddr_in`.
            // `sockaddr_storage` is at least as large and as aligned as any socket address.
            let sin = unsafe { &*std::ptr::from_ref(storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for AF_INET6 and `sockaddr_in6`.
            let sin6 = unsafe { &*std::ptr::from_ref(storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            let port = u16::from_be(sin6.sin6_port);
            Some(SocketAddr::V6(SocketAddrV6::new(ip, port, sin6.sin6_flowinfo, sin6.sin6_scope_id)))
        }
        _ => None,
    }
}

/// Total of datagrams the kernel dropped on a socket, from the `SO_RXQ_OVFL` counts it reports.
/// The kernel's counter is a u32 that wraps, so the total adds the wrapping difference from the
/// previous count.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct DropCounter {
    last_count: u32,
    total: u64,
}

impl DropCounter {
    /// Adds the drops since the previous count. `count` is the kernel's cumulative counter.
    pub(super) fn update(&mut self, count: u32) {
        self.total += u64::from(count.wrapping_sub(self.last_count));
        self.last_count = count;
    }

    pub(super) fn total(&self) -> u64 {
        self.total
    }
}

/// Sets SO_RXQ_OVFL, so that each received datagram carries the socket's drop count, and
/// returns whether the kernel accepted it.
pub(super) fn enable_drop_count(socket: &socket2::Socket) -> bool {
    let on: libc::c_int = 1;
    // SAFETY: `on` is a live c_int and the length passed is its size, and SO_RXQ_OVFL reads
    // exactly one c_int.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RXQ_OVFL,
            std::ptr::from_ref(&on).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    result == 0
}

/// Raises SO_RCVBUF past `net.core.rmem_max` with SO_RCVBUFFORCE when the kernel granted less
/// than `bytes`. That needs CAP_NET_ADMIN; without it the call fails and the size granted by
/// SO_RCVBUF stays, which `recv_buffer_granted` then reports.
pub(super) fn force_recv_buffer(socket: &socket2::Socket, bytes: usize) {
    // Linux reports twice the size it was asked for, so half the report is the usable size.
    let granted = socket.recv_buffer_size().map(|b| b / 2).unwrap_or(0);
    if granted >= bytes {
        return;
    }
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: `value` is a live c_int and the length passed is its size; SO_RCVBUFFORCE
    // reads exactly one c_int.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            std::ptr::from_ref(&value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_counter_adds_across_wrap() {
        let mut drops = DropCounter::default();
        drops.update(10);
        assert_eq!(drops.total(), 10);
        drops.update(u32::MAX - 1);
        assert_eq!(drops.total(), u64::from(u32::MAX) - 1);
        drops.update(3);
        assert_eq!(drops.total(), u64::from(u32::MAX) + 4);
        drops.update(3);
        assert_eq!(drops.total(), u64::from(u32::MAX) + 4, "a repeated count must add nothing");
    }

    #[test]
    fn socket_addr_rejects_short_and_unknown() {
        // SAFETY: all-zero bytes are a valid `sockaddr_storage`.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        assert_eq!(socket_addr(&storage, 0), None, "AF_UNSPEC has no socket address");
        storage.ss_family = libc::AF_INET as libc::sa_family_t;
        let short = (size_of::<libc::sockaddr_in>() - 1) as libc::socklen_t;
        assert_eq!(socket_addr(&storage, short), None, "a cut-off sockaddr_in must be rejected");
    }
}

//! Book digests: a CRC-32 over the top levels of one instrument, so that a client can check that
//! its copy of a book equals the server's.
//!
//! The checksummed bytes are, for each level of the asks (best, lowest price first) and then for
//! each level of the bids (best, highest price first), at most `depth` levels per side (0 = all):
//!
//! | size | type | field |
//! |---|---|---|
//! | 1 | u8 | side: `S` ask, `B` bid |
//! | 4 | u32 LE | price |
//! | 8 | u64 LE | shares |
//! | 4 | u32 LE | orders |
//!
//! An empty book hashes zero bytes, whose CRC-32 is 0. The checksum is CRC-32 as in zlib, Ethernet
//! and the `crc32fast` crate: reflected polynomial 0xEDB88320, initial value and final XOR
//! 0xFFFFFFFF.

use crate::protocol::Level;

/// Incremental CRC-32 (IEEE), computed by `crc32fast`.
#[derive(Debug, Clone, Default)]
pub struct Crc32 {
    hasher: crc32fast::Hasher,
}

impl Crc32 {
    pub fn new() -> Crc32 {
        Crc32::default()
    }

    /// Adds `bytes` to the checksum.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
    }

    /// Returns the checksum of the bytes added so far.
    pub fn finish(self) -> u32 {
        self.hasher.finalize()
    }
}

/// Computes the digest of a book from its asks and bids, each given best first. `depth` limits
/// the levels per side; 0 means every level.
pub fn book_digest(
    asks: impl IntoIterator<Item = Level>,
    bids: impl IntoIterator<Item = Level>,
    depth: u16,
) -> u32 {
    let limit = if depth == 0 { usize::MAX } else { usize::from(depth) };
    let mut crc = Crc32::new();
    for level in asks.into_iter().take(limit) {
        add_level(&mut crc, b'S', &level);
    }
    for level in bids.into_iter().take(limit) {
        add_level(&mut crc, b'B', &level);
    }
    crc.finish()
}

fn add_level(crc: &mut Crc32, side: u8, level: &Level) {
    crc.update(&[side]);
    crc.update(&level.price.to_le_bytes());
    crc.update(&level.shares.to_le_bytes());
    crc.update(&level.orders.to_le_bytes());
}

/// Returns the depth a digest covers for a request of `requested` levels on a subscription of
/// `subscribed` levels (0 = full book in both): the smaller of the two, because the client holds
/// no more than its subscription's depth.
pub fn effective_depth(requested: u16, subscribed: u16) -> u16 {
    match (requested, subscribed) {
        (r, 0) => r,
        (0, s) => s,
        (r, s) => r.min(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_standard_check_value() {
        let mut crc = Crc32::new();
        crc.update(b"123456789");
        assert_eq!(crc.finish(), 0xCBF4_3926);
    }

    #[test]
    fn empty_book_digest_is_zero() {
        assert_eq!(book_digest([], [], 0), 0);
    }

    #[test]
    fn digest_covers_layout_bytes() {
        let ask = Level { price: 101, shares: 7, orders: 2 };
        let bid = Level { price: 99, shares: 5, orders: 1 };
        let mut bytes = vec![b'S'];
        bytes.extend_from_slice(&101u32.to_le_bytes());
        bytes.extend_from_slice(&7u64.to_le_bytes());
        bytes.extend_from_slice(&2u32.to_le_bytes());
        bytes.push(b'B');
        bytes.extend_from_slice(&99u32.to_le_bytes());
        bytes.extend_from_slice(&5u64.to_le_bytes());
        bytes.extend_from_slice(&1u32.to_le_bytes());
        let mut crc = Crc32::new();
        crc.update(&bytes);
        assert_eq!(book_digest([ask], [bid], 0), crc.finish());
    }

    #[test]
    fn depth_limits_levels() {
        let levels = [Level { price: 1, shares: 1, orders: 1 }, Level { price: 2, shares: 1, orders: 1 }];
        assert_eq!(book_digest(levels, [], 1), book_digest([levels[0]], [], 0));
        assert_ne!(book_digest(levels, [], 2), book_digest([levels[0]], [], 0));
    }

    #[test]
    fn effective_depth_takes_smaller() {
        assert_eq!(effective_depth(0, 0), 0);
        assert_eq!(effective_depth(5, 0), 5);
        assert_eq!(effective_depth(0, 3), 3);
        assert_eq!(effective_depth(5, 3), 3);
        assert_eq!(effective_depth(2, 3), 2);
    }
}

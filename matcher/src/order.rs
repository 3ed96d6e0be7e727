//! Resting orders (L3) and the map from order reference to order.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use mdfh_feed::itch::Side;

/// One resting order as the books store it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    /// Stock locate of the instrument the order was added to.
    pub locate: u16,
    pub side: Side,
    /// Price in 1/10000 dollars.
    pub price: u32,
    /// Shares not yet executed or cancelled. An order in the map always has more than 0.
    pub shares: u32,
}

/// Order reference to resting order, for every instrument. ITCH order references are unique
/// across the whole feed for a day, so one map serves all books.
pub(crate) type OrderMap = HashMap<u64, Order, BuildHasherDefault<OrderRefHasher>>;

/// A hasher for u64 order references: one 64x64->128-bit multiply by an odd constant, folded
/// by XOR of the two halves. Exchanges hand out order references in increasing runs, often
/// with a fixed stride, and the fold spreads such runs over both the low bits (bucket index)
/// and the high bits (control byte) that `HashMap` uses. It is not resistant to chosen keys,
/// which is acceptable for a feed from one exchange.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OrderRefHasher(u64);

/// 2^64 divided by the golden ratio (the Fibonacci hashing constant), an odd number.
const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for OrderRefHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only used for keys other than u64, which the order map does not have.
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, value: u64) {
        let product = u128::from(self.0 ^ value) * u128::from(MULTIPLIER);
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    fn hash(value: u64) -> u64 {
        BuildHasherDefault::<OrderRefHasher>::default().hash_one(value)
    }

    #[test]
    fn hasher_spreads_strided_references() {
        // References 4 apart: a plain multiply would leave the low 2 bits of every hash equal.
        let low_bits: HashSet<u64> = (0..1024u64)
            .map(|i| hash(1_000_000 + 4 * i) & 1023)
            .collect();
        assert!(
            low_bits.len() > 512,
            "only {} of 1024 buckets used",
            low_bits.len()
        );

        let control_bytes: HashSet<u64> = (0..1024u64)
            .map(|i| hash(1_000_000 + 4 * i) >> 57)
            .collect();
        assert!(
            control_bytes.len() > 100,
            "only {} of 128 control values used",
            control_bytes.len()
        );
    }

    #[test]
    fn order_map_finds_inserted_orders() {
        let mut map = OrderMap::default();
        for order_ref in 0..1000u64 {
            let order = Order {
                locate: 1,
                side: Side::Buy,
                price: 100,
                shares: order_ref as u32 + 1,
            };
            map.insert(order_ref * 8, order);
        }
        assert_eq!(map.len(), 1000);
        assert_eq!(map.get(&(999 * 8)).map(|order| order.shares), Some(1000));
        assert_eq!(map.get(&1), None);
    }
}

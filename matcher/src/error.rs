//! Integrity problems found while applying ITCH messages to the books, and their counters.
//!
//! None of these stops processing. [`crate::Books::apply`] applies what it can, counts the
//! problem on the instrument's book, marks the book stale and returns the error so that the
//! caller can count and log it.

/// An ITCH message that does not fit the books as they stand. Prices are in 1/10000 dollars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BookError {
    /// An `E`, `C`, `X`, `D` or `U` names an order that is not resting, for example because its
    /// add was lost. The message was ignored.
    #[error("ignored ITCH '{}' message for locate {locate}: order {order_ref} not found on the book", *msg_type as char)]
    UnknownOrder {
        locate: u16,
        order_ref: u64,
        msg_type: u8,
    },

    /// An add reuses the reference of an order that is still resting. The new add was ignored and
    /// the resting order kept.
    #[error("ignored add order for locate {locate}: order {order_ref} already rests on locate {resting_locate}")]
    DuplicateOrder {
        locate: u16,
        order_ref: u64,
        resting_locate: u16,
    },

    /// A replace gives a new reference that is already resting. The original order was removed
    /// and the new one was not added.
    #[error("removed order {original_order_ref} for locate {locate} without adding its replacement: new order {new_order_ref} already rests")]
    ReplaceToExisting {
        locate: u16,
        original_order_ref: u64,
        new_order_ref: u64,
    },

    /// An `E` or `C` executes more shares than the order has left. The remaining shares were
    /// executed and the order removed.
    #[error("removed order {order_ref} for locate {locate}: {executed} shares executed, but only {remaining} remained")]
    OverExecution {
        locate: u16,
        order_ref: u64,
        executed: u32,
        remaining: u32,
    },

    /// An `X` cancels more shares than the order has left. The order was removed.
    #[error("removed order {order_ref} for locate {locate}: {cancelled} shares cancelled, but only {remaining} remained")]
    OverCancel {
        locate: u16,
        order_ref: u64,
        cancelled: u32,
        remaining: u32,
    },

    /// An add or replace with 0 shares, which would leave an empty order on a level. The order
    /// was not added (a replace still removed its original).
    #[error("did not add order {order_ref} for locate {locate} from ITCH '{}' message: invalid size of 0 shares", *msg_type as char)]
    ZeroShares {
        locate: u16,
        order_ref: u64,
        msg_type: u8,
    },

    /// The message's stock locate differs from the locate the order was added with. The message
    /// was applied to the order's own book, which is the one `locate` counts against.
    #[error("applied ITCH '{}' message for order {order_ref} to locate {locate}, where the order rests, but the message carries locate {message_locate}", *msg_type as char)]
    LocateMismatch {
        locate: u16,
        message_locate: u16,
        order_ref: u64,
        msg_type: u8,
    },

    /// The best bid is at or above the best ask after order `order_ref` was applied. Reported
    /// once when the book becomes crossed, not again for each message while it stays crossed.
    #[error(
        "book of locate {locate} crossed by order {order_ref}: best bid {bid} >= best ask {ask}"
    )]
    Crossed {
        locate: u16,
        order_ref: u64,
        bid: u32,
        ask: u32,
    },

    /// A message that needs an instrument has stock locate 0, which names none. The message was
    /// ignored. `order_ref` is `None` for message types without an order reference.
    #[error("ignored ITCH '{}' message: stock locate 0 names no instrument", *msg_type as char)]
    InvalidLocate {
        msg_type: u8,
        order_ref: Option<u64>,
    },
}

impl BookError {
    /// Returns the instrument the error is counted against, or `None` for
    /// [`BookError::InvalidLocate`].
    pub fn locate(&self) -> Option<u16> {
        match *self {
            BookError::UnknownOrder { locate, .. }
            | BookError::DuplicateOrder { locate, .. }
            | BookError::ReplaceToExisting { locate, .. }
            | BookError::OverExecution { locate, .. }
            | BookError::OverCancel { locate, .. }
            | BookError::ZeroShares { locate, .. }
            | BookError::LocateMismatch { locate, .. }
            | BookError::Crossed { locate, .. } => Some(locate),
            BookError::InvalidLocate { .. } => None,
        }
    }
}

/// Counts of [`BookError`]s, one field per variant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    pub unknown_order: u64,
    pub duplicate_order: u64,
    pub replace_to_existing: u64,
    pub over_execution: u64,
    pub over_cancel: u64,
    pub zero_shares: u64,
    pub locate_mismatch: u64,
    pub crossed: u64,
    pub invalid_locate: u64,
}

impl ErrorCounts {
    /// Adds one to the counter of `error`'s variant.
    pub fn count(&mut self, error: &BookError) {
        let counter = match error {
            BookError::UnknownOrder { .. } => &mut self.unknown_order,
            BookError::DuplicateOrder { .. } => &mut self.duplicate_order,
            BookError::ReplaceToExisting { .. } => &mut self.replace_to_existing,
            BookError::OverExecution { .. } => &mut self.over_execution,
            BookError::OverCancel { .. } => &mut self.over_cancel,
            BookError::ZeroShares { .. } => &mut self.zero_shares,
            BookError::LocateMismatch { .. } => &mut self.locate_mismatch,
            BookError::Crossed { .. } => &mut self.crossed,
            BookError::InvalidLocate { .. } => &mut self.invalid_locate,
        };
        *counter += 1;
    }

    /// Returns the sum of all counters.
    pub fn total(&self) -> u64 {
        self.unknown_order
            + self.duplicate_order
            + self.replace_to_existing
            + self.over_execution
            + self.over_cancel
            + self.zero_shares
            + self.locate_mismatch
            + self.crossed
            + self.invalid_locate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_values() {
        let error = BookError::OverExecution {
            locate: 13,
            order_ref: 1001,
            executed: 300,
            remaining: 100,
        };
        assert_eq!(
            error.to_string(),
            "removed order 1001 for locate 13: 300 shares executed, but only 100 remained"
        );
        let error = BookError::InvalidLocate {
            msg_type: b'R',
            order_ref: None,
        };
        assert_eq!(
            error.to_string(),
            "ignored ITCH 'R' message: stock locate 0 names no instrument"
        );
    }

    #[test]
    fn counts_add_up() {
        let mut counts = ErrorCounts::default();
        counts.count(&BookError::UnknownOrder {
            locate: 1,
            order_ref: 2,
            msg_type: b'D',
        });
        counts.count(&BookError::Crossed {
            locate: 1,
            order_ref: 3,
            bid: 10,
            ask: 10,
        });
        assert_eq!(counts.unknown_order, 1);
        assert_eq!(counts.crossed, 1);
        assert_eq!(counts.total(), 2);
    }
}

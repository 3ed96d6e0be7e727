//! The unit the pipeline hands to the publisher stage.

use mdfh_matcher::BookEvent;

/// A book event with the feed position and the pipeline timestamps it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope {
    /// Feed sequence number of the ITCH message the event came from (MoldUDP64 or SoupBinTCP
    /// sequence, or the message index for files); 0 for events not caused by a message.
    pub feed_seq: u64,
    /// Monotonic nanoseconds at which the packet carrying the message was read.
    pub recv_ns: u64,
    /// Monotonic nanoseconds at which the book was updated.
    pub booked_ns: u64,
    pub event: BookEvent,
}

//! [`ClientBook`]: the subscriber's side of the protocol. It applies data frames into L2 books and
//! checks the per-connection sequence numbers.

use std::collections::HashMap;

use mdfh_feed::itch::{Side, Stock};
use mdfh_matcher::{BookStatus, FeedQuality};

use crate::error::ProtocolError;
use crate::digest::book_digest;
use crate::protocol::{
    Catchup, CatchupPhase, DigestUpdate, Level, LevelUpdate, OwnedFrame, OwnedSnapshot,
};

/// The L2 book of one instrument as a subscriber receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstrumentBook {
    pub stock: Stock,
    pub status: BookStatus,
    /// ITCH trading state letter, or [`crate::protocol::TRADING_STATE_UNKNOWN`].
    pub trading_state: u8,
    /// Levels per side the subscription carries; 0 means the full book.
    pub depth: u16,
    /// Descending price: best bid first.
    bids: Vec<Level>,
    /// Ascending price: best ask first.
    asks: Vec<Level>,
}

impl InstrumentBook {
    /// Returns the bids, best first.
    pub fn bids(&self) -> &[Level] {
        &self.bids
    }

    /// Returns the asks, best first.
    pub fn asks(&self) -> &[Level] {
        &self.asks
    }

    fn apply(&mut self, update: &LevelUpdate) {
        let price = update.level.price;
        let search = match update.side {
            Side::Buy => self.bids.binary_search_by(|l| price.cmp(&l.price)),
            Side::Sell => self.asks.binary_search_by(|l| l.price.cmp(&price)),
        };
        let levels = match update.side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        match search {
            Ok(index) if update.level.shares == 0 => {
                levels.remove(index);
            }
            Ok(index) => {
                if let Some(level) = levels.get_mut(index) {
                    *level = update.level;
                }
            }
            Err(_) if update.level.shares == 0 => {}
            Err(index) => levels.insert(index, update.level),
        }
        if self.depth != 0 {
            levels.truncate(usize::from(self.depth));
        }
    }
}

/// Lookup key of [`ClientBook::levels`]: a locate code or a symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstrumentKey<'a> {
    Locate(u16),
    /// Symbol without padding, as in `"AAPL"`.
    Symbol(&'a str),
}

impl From<u16> for InstrumentKey<'_> {
    fn from(locate: u16) -> Self {
        InstrumentKey::Locate(locate)
    }
}

impl<'a> From<&'a str> for InstrumentKey<'a> {
    fn from(symbol: &'a str) -> Self {
        InstrumentKey::Symbol(symbol)
    }
}

/// Per-instrument L2 books built from Snapshot, LevelUpdate, BookStatus, TradingState and Reset
/// frames, with sequence gap detection, Digest verification, conflated catch-up tracking and the
/// latest feed quality (FeedQuality frames).
#[derive(Debug, Default)]
pub struct ClientBook {
    books: HashMap<u16, InstrumentBook>,
    locates: HashMap<Stock, u16>,
    last_seq: u64,
    gaps: u64,
    last_gap: Option<ProtocolError>,
    digests_checked: u64,
    digest_mismatches: u64,
    /// Whether a Catchup Begin arrived without its End yet.
    in_catchup: bool,
    catchups: u64,
    conflated_updates: u64,
    dropped_trades: u64,
    /// Latest feed quality: Ok until a FeedQuality frame changes it, and Ok again after a Reset.
    quality: FeedQuality,
    /// Feed sequence number of the FeedQuality frame that set `quality`.
    quality_feed_seq: u64,
}

impl ClientBook {
    pub fn new() -> ClientBook {
        ClientBook::default()
    }

    /// Applies one frame. Returns [`ProtocolError::SequenceGap`] when the frame's sequence number
    /// (or a Heartbeat's or Goodbye's last sequence number) shows lost frames; the frame is
    /// applied all the same. Returns [`ProtocolError::UpdateBeforeSnapshot`] for an update of an
    /// instrument that has no snapshot, and ignores that update. Session frames and trades leave
    /// the books unchanged.
    pub fn apply(&mut self, frame: &OwnedFrame) -> Result<(), ProtocolError> {
        let gap = self.check_sequence(frame);
        let applied = match frame {
            OwnedFrame::Snapshot(snapshot) => {
                self.apply_snapshot(snapshot);
                Ok(())
            }
            OwnedFrame::LevelUpdate(update) => self.book_mut(update.locate, update.seq).map(|b| b.apply(update)),
            OwnedFrame::BookStatus(update) => {
                self.book_mut(update.locate, update.seq).map(|b| b.status = update.status)
            }
            OwnedFrame::TradingState(update) => {
                self.book_mut(update.locate, update.seq).map(|b| b.trading_state = update.state)
            }
            OwnedFrame::Reset { feed_seq, .. } => {
                self.books.clear();
                self.locates.clear();
                self.quality = FeedQuality::OK;
                self.quality_feed_seq = *feed_seq;
                Ok(())
            }
            OwnedFrame::FeedQuality(update) => {
                self.quality = update.quality;
                self.quality_feed_seq = update.feed_seq;
                Ok(())
            }
            OwnedFrame::Digest(digest) => self.verify_digest(digest),
            OwnedFrame::Catchup(mark) => {
                self.apply_catchup(mark);
                Ok(())
            }
            _ => Ok(()),
        };
        gap.and(applied)
    }

    /// Returns the digest of the client's book of `locate` over `depth` levels per side (0 =
    /// all), in the layout of [`crate::digest`]; `None` when the instrument has no book.
    pub fn digest(&self, locate: u16, depth: u16) -> Option<u32> {
        let book = self.books.get(&locate)?;
        Some(book_digest(book.asks.iter().copied(), book.bids.iter().copied(), depth))
    }

    /// Returns the number of Digest frames checked.
    pub fn digests_checked(&self) -> u64 {
        self.digests_checked
    }

    /// Returns the number of Digest frames that did not match the client's book.
    pub fn digest_mismatches(&self) -> u64 {
        self.digest_mismatches
    }

    /// Returns whether a conflated catch-up batch has begun and not ended, so the book is not
    /// current yet.
    pub fn in_catchup(&self) -> bool {
        self.in_catchup
    }

    /// Returns the number of conflated catch-up batches completed.
    pub fn catchups(&self) -> u64 {
        self.catchups
    }

    /// Returns the number of level updates the server replaced with catch-up batches.
    pub fn conflated_updates(&self) -> u64 {
        self.conflated_updates
    }

    /// Returns the number of trades the server dropped while this connection was behind.
    pub fn dropped_trades(&self) -> u64 {
        self.dropped_trades
    }

    /// Gives the book direct access to one instrument's levels, for tests that corrupt a copy
    /// on purpose to check that Digest frames detect it.
    #[doc(hidden)]
    pub fn levels_mut(&mut self, locate: u16, side: Side) -> Option<&mut Vec<Level>> {
        let book = self.books.get_mut(&locate)?;
        Some(match side {
            Side::Buy => &mut book.bids,
            Side::Sell => &mut book.asks,
        })
    }

    fn verify_digest(&mut self, digest: &DigestUpdate) -> Result<(), ProtocolError> {
        let Some(computed) = self.digest(digest.locate, digest.depth) else {
            return Err(ProtocolError::UpdateBeforeSnapshot { locate: digest.locate, seq: digest.seq });
        };
        self.digests_checked += 1;
        if computed == digest.crc {
            return Ok(());
        }
        self.digest_mismatches += 1;
        Err(ProtocolError::DigestMismatch {
            locate: digest.locate,
            seq: digest.seq,
            depth: digest.depth,
            expected: digest.crc,
            computed,
        })
    }

    fn apply_catchup(&mut self, mark: &Catchup) {
        match mark.phase {
            CatchupPhase::Begin => self.in_catchup = true,
            CatchupPhase::End => {
                self.in_catchup = false;
                self.catchups += 1;
                self.conflated_updates += mark.conflated;
                self.dropped_trades += mark.dropped_trades;
            }
        }
    }

    /// Returns the latest feed quality, which applies to every book.
    pub fn quality(&self) -> FeedQuality {
        self.quality
    }

    /// Returns the feed sequence number of the FeedQuality or Reset frame that set the quality.
    pub fn quality_feed_seq(&self) -> u64 {
        self.quality_feed_seq
    }

    /// Returns whether the book of an instrument can be trusted: its own status is Ok and the
    /// feed quality is Ok or Recovered. `None` when the instrument has no book. A book inside a
    /// conflated catch-up batch ([`ClientBook::in_catchup`]) is behind until the batch ends.
    pub fn is_trustworthy<'k>(&self, key: impl Into<InstrumentKey<'k>>) -> Option<bool> {
        let book = self.book(key)?;
        Some(book.status == BookStatus::Ok && self.quality.is_trustworthy())
    }

    /// Returns the bids and asks of an instrument, best first.
    pub fn levels<'k>(&self, key: impl Into<InstrumentKey<'k>>) -> Option<(&[Level], &[Level])> {
        self.book(key).map(|b| (b.bids(), b.asks()))
    }

    /// Returns the book of an instrument.
    pub fn book<'k>(&self, key: impl Into<InstrumentKey<'k>>) -> Option<&InstrumentBook> {
        let locate = match key.into() {
            InstrumentKey::Locate(locate) => locate,
            InstrumentKey::Symbol(symbol) => *self.locates.get(&Stock::new(symbol))?,
        };
        self.books.get(&locate)
    }

    /// Returns the number of instruments with a book.
    pub fn instrument_count(&self) -> usize {
        self.books.len()
    }

    /// Returns the sequence number of the last data frame applied.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Returns the number of sequence gaps seen.
    pub fn gaps(&self) -> u64 {
        self.gaps
    }

    /// Returns the last sequence gap seen.
    pub fn last_gap(&self) -> Option<&ProtocolError> {
        self.last_gap.as_ref()
    }

    fn check_sequence(&mut self, frame: &OwnedFrame) -> Result<(), ProtocolError> {
        let expected = self.last_seq + 1;
        let gap = match *frame {
            OwnedFrame::Heartbeat { last_seq, .. } | OwnedFrame::Goodbye { last_seq, .. } => {
                (last_seq > self.last_seq).then_some(last_seq)
            }
            _ => match frame.seq() {
                Some(seq) => {
                    self.last_seq = seq;
                    (seq != expected).then_some(seq)
                }
                None => None,
            },
        };
        match gap {
            Some(received) => {
                let error = ProtocolError::SequenceGap { expected, received };
                self.gaps += 1;
                self.last_gap = Some(error.clone());
                Err(error)
            }
            None => Ok(()),
        }
    }

    fn apply_snapshot(&mut self, snapshot: &OwnedSnapshot) {
        let header = &snapshot.header;
        if let Some(old) = self.books.get(&header.locate) {
            if old.stock != header.stock {
                self.locates.remove(&old.stock);
            }
        }
        self.locates.insert(header.stock, header.locate);
        self.books.insert(
            header.locate,
            InstrumentBook {
                stock: header.stock,
                status: header.status,
                trading_state: header.trading_state,
                depth: header.depth,
                bids: snapshot.bids.clone(),
                asks: snapshot.asks.clone(),
            },
        );
    }

    fn book_mut(&mut self, locate: u16, seq: u64) -> Result<&mut InstrumentBook, ProtocolError> {
        self.books.get_mut(&locate).ok_or(ProtocolError::UpdateBeforeSnapshot { locate, seq })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{QualityUpdate, SnapshotHeader, StatusUpdate, TRADING_STATE_UNKNOWN};
    use mdfh_matcher::QualityState;

    fn snapshot(seq: u64, depth: u16, bids: &[(u32, u64)], asks: &[(u32, u64)]) -> OwnedFrame {
        let level = |&(price, shares): &(u32, u64)| Level { price, shares, orders: 1 };
        OwnedFrame::Snapshot(OwnedSnapshot {
            header: SnapshotHeader {
                seq,
                locate: 5,
                stock: Stock::new("ZVZZT"),
                status: BookStatus::Ok,
                trading_state: TRADING_STATE_UNKNOWN,
                feed_seq: 1,
                depth,
            },
            bids: bids.iter().map(level).collect(),
            asks: asks.iter().map(level).collect(),
        })
    }

    fn update(seq: u64, side: Side, price: u32, shares: u64) -> OwnedFrame {
        OwnedFrame::LevelUpdate(LevelUpdate {
            seq,
            locate: 5,
            side,
            level: Level { price, shares, orders: u32::from(shares > 0) },
            feed_seq: 2,
            send_ns: 0,
        })
    }

    fn prices(levels: &[Level]) -> Vec<u32> {
        levels.iter().map(|l| l.price).collect()
    }

    #[test]
    fn updates_keep_order_and_depth() {
        let mut book = ClientBook::new();
        assert_eq!(book.apply(&snapshot(1, 2, &[(100, 1), (90, 1)], &[(110, 1)])), Ok(()));
        assert_eq!(book.apply(&update(2, Side::Buy, 95, 3)), Ok(()));
        assert_eq!(book.apply(&update(3, Side::Sell, 105, 3)), Ok(()));
        assert_eq!(book.apply(&update(4, Side::Sell, 120, 3)), Ok(()));

        let Some((bids, asks)) = book.levels("ZVZZT") else {
            panic!("no book for ZVZZT");
        };
        assert_eq!(prices(bids), [100, 95]);
        assert_eq!(prices(asks), [105, 110]);
        assert_eq!(book.apply(&update(5, Side::Buy, 100, 0)), Ok(()));
        assert_eq!(book.levels(5).map(|(b, _)| prices(b)), Some(vec![95]));
    }

    #[test]
    fn gap_is_counted_and_applied() {
        let mut book = ClientBook::new();
        assert_eq!(book.apply(&snapshot(1, 0, &[], &[])), Ok(()));
        let gap = book.apply(&update(3, Side::Buy, 100, 1));
        assert_eq!(gap, Err(ProtocolError::SequenceGap { expected: 2, received: 3 }));
        assert_eq!(book.gaps(), 1);
        assert_eq!(book.levels(5).map(|(b, _)| b.len()), Some(1));
        assert_eq!(book.apply(&update(4, Side::Buy, 101, 1)), Ok(()));
    }

    #[test]
    fn heartbeat_ahead_is_gap() {
        let mut book = ClientBook::new();
        assert_eq!(book.apply(&OwnedFrame::Heartbeat { last_seq: 0, send_ns: 1 }), Ok(()));
        let gap = book.apply(&OwnedFrame::Heartbeat { last_seq: 2, send_ns: 1 });
        assert_eq!(gap, Err(ProtocolError::SequenceGap { expected: 1, received: 2 }));
    }

    #[test]
    fn update_before_snapshot_is_error() {
        let mut book = ClientBook::new();
        let result = book.apply(&update(1, Side::Buy, 100, 1));
        assert_eq!(result, Err(ProtocolError::UpdateBeforeSnapshot { locate: 5, seq: 1 }));
        assert_eq!(book.instrument_count(), 0);
    }

    #[test]
    fn digest_detects_changed_level() {
        let mut book = ClientBook::new();
        assert_eq!(book.apply(&snapshot(1, 0, &[(100, 5)], &[(110, 7)])), Ok(()));
        let Some(crc) = book.digest(5, 0) else {
            panic!("no digest for locate 5");
        };
        let digest = |seq, crc| OwnedFrame::Digest(DigestUpdate { seq, locate: 5, depth: 0, feed_seq: 1, crc });
        assert_eq!(book.apply(&digest(2, crc)), Ok(()));
        assert_eq!(book.apply(&update(3, Side::Buy, 100, 6)), Ok(()));
        assert!(matches!(book.apply(&digest(4, crc)), Err(ProtocolError::DigestMismatch { seq: 4, .. })));
        assert_eq!(book.digests_checked(), 2);
        assert_eq!(book.digest_mismatches(), 1);
    }

    #[test]
    fn catchup_brackets_are_tracked() {
        let mut book = ClientBook::new();
        let mark = |seq, phase| OwnedFrame::Catchup(Catchup { seq, phase, levels: 0, conflated: 9, dropped_trades: 2 });
        assert_eq!(book.apply(&mark(1, CatchupPhase::Begin)), Ok(()));
        assert!(book.in_catchup());
        assert_eq!(book.apply(&mark(2, CatchupPhase::End)), Ok(()));
        assert!(!book.in_catchup());
        assert_eq!(book.catchups(), 1);
        assert_eq!(book.conflated_updates(), 9);
        assert_eq!(book.dropped_trades(), 2);
    }

    fn quality(seq: u64, state: QualityState, since: u64) -> OwnedFrame {
        OwnedFrame::FeedQuality(QualityUpdate { seq, feed_seq: 40 + seq, quality: FeedQuality { state, since } })
    }

    #[test]
    fn quality_sets_trust() {
        let mut book = ClientBook::new();
        assert_eq!(book.apply(&snapshot(1, 0, &[(100, 1)], &[])), Ok(()));
        assert_eq!(book.quality(), FeedQuality::OK);
        assert_eq!(book.is_trustworthy("ZVZZT"), Some(true));

        assert_eq!(book.apply(&quality(2, QualityState::Recovering, 17)), Ok(()));
        assert_eq!(book.quality(), FeedQuality { state: QualityState::Recovering, since: 17 });
        assert_eq!(book.quality_feed_seq(), 42);
        assert_eq!(book.is_trustworthy("ZVZZT"), Some(false));

        assert_eq!(book.apply(&quality(3, QualityState::Recovered, 0)), Ok(()));
        assert_eq!(book.is_trustworthy("ZVZZT"), Some(true));

        assert_eq!(book.apply(&quality(4, QualityState::Stale, 17)), Ok(()));
        assert_eq!(book.is_trustworthy("ZVZZT"), Some(false));
        assert_eq!(book.is_trustworthy("OTHER"), None);
    }

    #[test]
    fn stale_book_untrusted_when_feed_ok() {
        let mut book = ClientBook::new();
        assert_eq!(book.apply(&snapshot(1, 0, &[(100, 1)], &[])), Ok(()));
        let stale = StatusUpdate { seq: 2, locate: 5, status: BookStatus::Stale, feed_seq: 3 };
        assert_eq!(book.apply(&OwnedFrame::BookStatus(stale)), Ok(()));
        assert_eq!(book.quality(), FeedQuality::OK);
        assert_eq!(book.is_trustworthy(5), Some(false));
    }

    #[test]
    fn reset_restores_ok_quality() {
        let mut book = ClientBook::new();
        assert_eq!(book.apply(&quality(1, QualityState::Stale, 9)), Ok(()));
        assert_eq!(book.apply(&OwnedFrame::Reset { seq: 2, feed_seq: 0 }), Ok(()));
        assert_eq!(book.quality(), FeedQuality::OK);
    }

    #[test]
    fn reset_clears_books() {
        let mut book = ClientBook::new();
        assert_eq!(book.apply(&snapshot(1, 0, &[(100, 1)], &[])), Ok(()));
        assert_eq!(book.apply(&OwnedFrame::Reset { seq: 2, feed_seq: 0 }), Ok(()));
        assert_eq!(book.instrument_count(), 0);
        assert_eq!(book.levels("ZVZZT"), None);
    }
}

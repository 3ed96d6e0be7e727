//! The frame decoder. It does no I/O: it takes bytes and returns a frame with the number of bytes
//! it used, `None` when the buffer holds only part of a frame, or an error naming the offset.

use mdfh_feed::itch::{Side, Stock};
use mdfh_matcher::{BookStatus, FeedQuality, TradeEvent, TradeKind};

use crate::encode::{ALL_SYMBOL, FLAG_ALL};
use crate::error::ProtocolError;
use crate::protocol::{
    frame_type, is_valid_symbol, quality_state_from_byte, AckState, Catchup, CatchupPhase, DigestUpdate, ErrorCode,
    SlowConsumerPolicy, Frame, GoodbyeReason, Level, LevelUpdate,
    Levels, QualityUpdate, Snapshot, SnapshotHeader, StatusUpdate, SubscribeAck, Target, TradeUpdate,
    TradingStateUpdate, LENGTH_PREFIX_LEN, LEVEL_LEN, MAX_FRAME_LEN,
    MAX_TEXT_LEN, SNAPSHOT_FIXED_LEN,
};

/// Decodes the frame at the start of `buf`, accepting any length field up to [`MAX_FRAME_LEN`].
///
/// Returns `Ok(Some((frame, consumed)))`, or `Ok(None)` when `buf` ends inside the frame. After
/// an error other than [`ProtocolError::FrameTooLong`], [`ProtocolError::skip_len`] returns how many
/// bytes to drop to reach the next frame.
pub fn decode_frame(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, ProtocolError> {
    decode_frame_with_limit(buf, MAX_FRAME_LEN)
}

/// Decodes the frame at the start of `buf` like [`decode_frame`], with `max_len` as the largest
/// length field accepted. The server passes [`crate::protocol::MAX_REQUEST_LEN`].
pub fn decode_frame_with_limit(
    buf: &[u8],
    max_len: u32,
) -> Result<Option<(Frame<'_>, usize)>, ProtocolError> {
    let Some(len) = read_u32(buf, 0) else {
        return Ok(None);
    };
    if len > max_len {
        return Err(ProtocolError::FrameTooLong { offset: 0, len, max: max_len });
    }
    if len == 0 {
        return Err(ProtocolError::EmptyFrame { offset: 0 });
    }
    let total = LENGTH_PREFIX_LEN + len as usize;
    let Some(frame) = buf.get(..total) else {
        return Ok(None);
    };
    let frame = FrameBytes { bytes: frame, frame_type: frame.get(LENGTH_PREFIX_LEN).copied().unwrap_or(0), len };
    frame.decode().map(|decoded| Some((decoded, total)))
}

/// Reads the level at the start of `bytes`, which contains at least [`LEVEL_LEN`] bytes.
pub(crate) fn read_level(bytes: &[u8]) -> Level {
    Level {
        price: read_u32(bytes, 0).unwrap_or(0),
        shares: read_u64(bytes, 4).unwrap_or(0),
        orders: read_u32(bytes, 12).unwrap_or(0),
    }
}

/// One complete frame, prefix included. Field offsets below count from the frame start.
struct FrameBytes<'a> {
    bytes: &'a [u8],
    frame_type: u8,
    len: u32,
}

impl<'a> FrameBytes<'a> {
    fn decode(&self) -> Result<Frame<'a>, ProtocolError> {
        match self.frame_type {
            frame_type::SUBSCRIBE => {
                self.expect_len(12, "12")?;
                Ok(Frame::Subscribe { target: self.request_target()?, depth: self.u16(14) })
            }
            frame_type::UNSUBSCRIBE => {
                self.expect_len(10, "10")?;
                Ok(Frame::Unsubscribe { target: self.request_target()? })
            }
            frame_type::CLIENT_HEARTBEAT => {
                self.expect_len(1, "1")?;
                Ok(Frame::ClientHeartbeat)
            }
            frame_type::SET_POLICY => {
                self.expect_len(2, "2")?;
                let byte = self.u8(5);
                let Some(policy) = SlowConsumerPolicy::from_byte(byte) else {
                    return Err(self.invalid(5, "slow-consumer policy", byte.into()));
                };
                Ok(Frame::SetPolicy { policy })
            }
            frame_type::RESNAPSHOT => {
                self.expect_len(10, "10")?;
                Ok(Frame::Resnapshot { target: self.request_target()? })
            }
            frame_type::DIGEST_REQUEST => {
                self.expect_len(12, "12")?;
                match self.request_target()? {
                    Target::Symbol(stock) => Ok(Frame::DigestRequest { stock, depth: self.u16(14) }),
                    Target::All => Err(self.invalid(5, "flags (a digest names one symbol)", FLAG_ALL.into())),
                }
            }
            frame_type::DIGEST => {
                self.expect_len(25, "25")?;
                Ok(Frame::Digest(DigestUpdate {
                    seq: self.u64(5),
                    locate: self.u16(13),
                    depth: self.u16(15),
                    feed_seq: self.u64(17),
                    crc: self.u32(25),
                }))
            }
            frame_type::CATCHUP => {
                self.expect_len(30, "30")?;
                let phase = match self.u8(13) {
                    b'B' => CatchupPhase::Begin,
                    b'E' => CatchupPhase::End,
                    other => return Err(self.invalid(13, "catch-up phase", other.into())),
                };
                Ok(Frame::Catchup(Catchup {
                    seq: self.u64(5),
                    phase,
                    levels: self.u32(14),
                    conflated: self.u64(18),
                    dropped_trades: self.u64(26),
                }))
            }
            frame_type::SUBSCRIBE_ACK => {
                self.expect_len(15, "15")?;
                let state = match self.u8(18) {
                    b'A' => AckState::Active,
                    b'P' => AckState::Pending,
                    other => return Err(self.invalid(18, "ack state", other.into())),
                };
                let target = self.any_target()?;
                Ok(Frame::SubscribeAck(SubscribeAck { target, depth: self.u16(14), locate: self.u16(16), state }))
            }
            frame_type::SUBSCRIBE_REJECT => {
                self.expect_text_len(12, "12 to 267")?;
                let target = self.any_target()?;
                Ok(Frame::SubscribeReject { target, code: self.error_code(14)?, text: self.text(16)? })
            }
            frame_type::ERROR => {
                self.expect_text_len(3, "3 to 258")?;
                Ok(Frame::Error { code: self.error_code(5)?, text: self.text(7)? })
            }
            frame_type::HEARTBEAT => {
                self.expect_len(17, "17")?;
                Ok(Frame::Heartbeat { last_seq: self.u64(5), send_ns: self.u64(13) })
            }
            frame_type::GOODBYE => {
                self.expect_text_len(11, "11 to 266")?;
                let code = self.u16(5);
                let Some(reason) = GoodbyeReason::from_u16(code) else {
                    return Err(self.invalid(5, "goodbye reason", code.into()));
                };
                Ok(Frame::Goodbye { reason, last_seq: self.u64(7), text: self.text(15)? })
            }
            frame_type::SNAPSHOT => self.snapshot(),
            frame_type::LEVEL_UPDATE => {
                self.expect_len(44, "44")?;
                Ok(Frame::LevelUpdate(LevelUpdate {
                    seq: self.u64(5),
                    locate: self.u16(13),
                    side: self.side(15)?,
                    level: read_level(self.bytes.get(16..).unwrap_or(&[])),
                    feed_seq: self.u64(32),
                    send_ns: self.u64(40),
                }))
            }
            frame_type::TRADE => self.trade(),
            frame_type::BOOK_STATUS => {
                self.expect_len(20, "20")?;
                Ok(Frame::BookStatus(StatusUpdate {
                    seq: self.u64(5),
                    locate: self.u16(13),
                    status: self.status(15)?,
                    feed_seq: self.u64(16),
                }))
            }
            frame_type::TRADING_STATE => {
                self.expect_len(20, "20")?;
                Ok(Frame::TradingState(TradingStateUpdate {
                    seq: self.u64(5),
                    locate: self.u16(13),
                    state: self.u8(15),
                    feed_seq: self.u64(16),
                }))
            }
            frame_type::RESET => {
                self.expect_len(17, "17")?;
                Ok(Frame::Reset { seq: self.u64(5), feed_seq: self.u64(13) })
            }
            frame_type::FEED_QUALITY => {
                self.expect_len(26, "26")?;
                let byte = self.u8(21);
                let Some(state) = quality_state_from_byte(byte) else {
                    return Err(self.invalid(21, "quality state", byte.into()));
                };
                Ok(Frame::FeedQuality(QualityUpdate {
                    seq: self.u64(5),
                    feed_seq: self.u64(13),
                    quality: FeedQuality { state, since: self.u64(22) },
                }))
            }
            other => Err(ProtocolError::UnknownType { offset: 0, frame_type: other, len: self.len }),
        }
    }

    fn snapshot(&self) -> Result<Frame<'a>, ProtocolError> {
        if self.len < SNAPSHOT_FIXED_LEN {
            return Err(self.bad_length("at least 35"));
        }
        let bid_count = usize::from(self.u16(35));
        let ask_count = usize::from(self.u16(37));
        let levels_at = LENGTH_PREFIX_LEN + SNAPSHOT_FIXED_LEN as usize;
        let asks_at = levels_at + bid_count * LEVEL_LEN;
        if self.bytes.len() != asks_at + ask_count * LEVEL_LEN {
            return Err(self.bad_length("35 + 16 * (bid count + ask count)"));
        }
        let header = SnapshotHeader {
            seq: self.u64(5),
            locate: self.u16(13),
            stock: Stock(self.array8(15)),
            status: self.status(23)?,
            trading_state: self.u8(24),
            feed_seq: self.u64(25),
            depth: self.u16(33),
        };
        let bids = Levels::new(self.bytes.get(levels_at..asks_at).unwrap_or(&[]));
        let asks = Levels::new(self.bytes.get(asks_at..).unwrap_or(&[]));
        Ok(Frame::Snapshot(Snapshot { header, bids, asks }))
    }

    fn trade(&self) -> Result<Frame<'a>, ProtocolError> {
        self.expect_len(49, "49")?;
        let kind = match self.u8(15) {
            b'E' => TradeKind::Execution,
            b'N' => TradeKind::NonDisplayed,
            b'X' => TradeKind::Cross,
            other => return Err(self.invalid(15, "trade kind", other.into())),
        };
        let resting_side = match self.u8(16) {
            b' ' => None,
            _ => Some(self.side(16)?),
        };
        let trade = TradeEvent {
            price: self.u32(17),
            shares: self.u64(21),
            match_number: self.u64(29),
            resting_side,
            kind,
        };
        Ok(Frame::Trade(TradeUpdate {
            seq: self.u64(5),
            locate: self.u16(13),
            trade,
            feed_seq: self.u64(37),
            send_ns: self.u64(45),
        }))
    }

    fn expect_len(&self, expected: u32, text: &'static str) -> Result<(), ProtocolError> {
        if self.len == expected {
            Ok(())
        } else {
            Err(self.bad_length(text))
        }
    }

    /// Checks the length of a frame that ends with a text field after `fixed` bytes.
    fn expect_text_len(&self, fixed: u32, text: &'static str) -> Result<(), ProtocolError> {
        if self.len >= fixed && (self.len - fixed) as usize <= MAX_TEXT_LEN {
            Ok(())
        } else {
            Err(self.bad_length(text))
        }
    }

    /// Reads the flags byte at 5 and the symbol at 6 of a client request, which must name a
    /// valid symbol or, with the "all" flag, 8 spaces.
    fn request_target(&self) -> Result<Target, ProtocolError> {
        let target = self.any_target()?;
        if let Target::Symbol(stock) = target {
            if !is_valid_symbol(&stock.0) {
                return Err(self.invalid(6, "symbol", u64::from_be_bytes(stock.0)));
            }
        }
        Ok(target)
    }

    fn any_target(&self) -> Result<Target, ProtocolError> {
        let symbol = self.array8(6);
        match self.u8(5) {
            0 => Ok(Target::Symbol(Stock(symbol))),
            FLAG_ALL if symbol == ALL_SYMBOL => Ok(Target::All),
            FLAG_ALL => Err(self.invalid(6, "symbol with the all-instruments flag", u64::from_be_bytes(symbol))),
            other => Err(self.invalid(5, "flags", other.into())),
        }
    }

    fn error_code(&self, at: usize) -> Result<ErrorCode, ProtocolError> {
        let code = self.u16(at);
        ErrorCode::from_u16(code).ok_or_else(|| self.invalid(at, "error code", code.into()))
    }

    fn side(&self, at: usize) -> Result<Side, ProtocolError> {
        match self.u8(at) {
            b'B' => Ok(Side::Buy),
            b'S' => Ok(Side::Sell),
            other => Err(self.invalid(at, "side", other.into())),
        }
    }

    fn status(&self, at: usize) -> Result<BookStatus, ProtocolError> {
        match self.u8(at) {
            b'O' => Ok(BookStatus::Ok),
            b'S' => Ok(BookStatus::Stale),
            other => Err(self.invalid(at, "book status", other.into())),
        }
    }

    fn text(&self, at: usize) -> Result<&'a str, ProtocolError> {
        let bytes = self.bytes.get(at..).unwrap_or(&[]);
        std::str::from_utf8(bytes).map_err(|_| ProtocolError::InvalidText {
            offset: at,
            frame_type: self.frame_type,
            len: self.len,
        })
    }

    fn bad_length(&self, expected: &'static str) -> ProtocolError {
        ProtocolError::BadLength { offset: 0, frame_type: self.frame_type, len: self.len, expected }
    }

    fn invalid(&self, at: usize, field: &'static str, value: u64) -> ProtocolError {
        ProtocolError::InvalidField { offset: at, frame_type: self.frame_type, len: self.len, field, value }
    }

    // The readers below return 0 past the end; every caller has checked the length first.

    fn u8(&self, at: usize) -> u8 {
        self.bytes.get(at).copied().unwrap_or(0)
    }

    fn u16(&self, at: usize) -> u16 {
        self.bytes.get(at..at + 2).and_then(|b| b.try_into().ok()).map_or(0, u16::from_le_bytes)
    }

    fn u32(&self, at: usize) -> u32 {
        read_u32(self.bytes, at).unwrap_or(0)
    }

    fn u64(&self, at: usize) -> u64 {
        read_u64(self.bytes, at).unwrap_or(0)
    }

    fn array8(&self, at: usize) -> [u8; 8] {
        self.bytes.get(at..at + 8).and_then(|b| b.try_into().ok()).unwrap_or([0; 8])
    }
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    bytes.get(at..at + 4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes)
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    bytes.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes)
}

//! NASDAQ TotalView-ITCH 5.0 messages: decoding from a byte slice and encoding back.
//!
//! Every message starts with the same 11 bytes: the type letter, the stock locate (u16), the
//! tracking number (u16) and a timestamp in nanoseconds since midnight New York time (u48). All
//! integers are big-endian. Prices are u32 with four implied decimals (1/10000 dollars) unless a
//! field's documentation gives another scale. Lengths below include the type byte, as the
//! framing's length prefix does.
//!
//! [`decode`] checks the length against the type before it reads any field, copies the fields
//! into a [`Message`] value (no allocation, no borrowed bytes) and never panics.

use crate::error::DecodeError;

/// Length of the header shared by every ITCH message: type, locate, tracking number, timestamp.
pub const HEADER_LEN: usize = 11;

/// Fields every ITCH message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// Locate code of the instrument; 0 for messages about no instrument.
    pub stock_locate: u16,
    /// NASDAQ internal tracking number.
    pub tracking_number: u16,
    /// Nanoseconds since midnight, America/New_York (48 bits on the wire).
    pub timestamp: u64,
}

/// Side of a resting order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    /// Returns the wire letter: `B` or `S`.
    pub fn as_byte(self) -> u8 {
        match self {
            Side::Buy => b'B',
            Side::Sell => b'S',
        }
    }

    fn from_byte(b: u8) -> Option<Side> {
        match b {
            b'B' => Some(Side::Buy),
            b'S' => Some(Side::Sell),
            _ => None,
        }
    }
}

/// An 8-byte, space-padded ASCII stock symbol.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Stock(pub [u8; 8]);

impl Stock {
    /// Builds a symbol from text, padding with spaces; text past 8 bytes is cut.
    pub fn new(symbol: &str) -> Stock {
        let mut bytes = [b' '; 8];
        for (dst, src) in bytes.iter_mut().zip(symbol.bytes()) {
            *dst = src;
        }
        Stock(bytes)
    }

    /// Returns the symbol without its trailing spaces; non-UTF-8 bytes give an empty string.
    pub fn as_str(&self) -> &str {
        let end = self.0.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
        std::str::from_utf8(&self.0[..end]).unwrap_or("")
    }
}

impl std::fmt::Debug for Stock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl std::fmt::Display for Stock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `S`: system event (start of messages, start of market hours, ...), 12 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemEvent {
    pub header: Header,
    pub event_code: u8,
}

/// `R`: stock directory, 39 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockDirectory {
    pub header: Header,
    pub stock: Stock,
    pub market_category: u8,
    pub financial_status_indicator: u8,
    pub round_lot_size: u32,
    pub round_lots_only: u8,
    pub issue_classification: u8,
    pub issue_sub_type: [u8; 2],
    pub authenticity: u8,
    pub short_sale_threshold_indicator: u8,
    pub ipo_flag: u8,
    pub luld_reference_price_tier: u8,
    pub etp_flag: u8,
    pub etp_leverage_factor: u32,
    pub inverse_indicator: u8,
}

/// `H`: stock trading action (halted, paused, quotation only, trading), 25 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockTradingAction {
    pub header: Header,
    pub stock: Stock,
    /// `H` halted, `P` paused, `Q` quotation only, `T` trading.
    pub trading_state: u8,
    pub reserved: u8,
    pub reason: [u8; 4],
}

/// `Y`: Reg SHO short sale price test restriction, 20 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegShoRestriction {
    pub header: Header,
    pub stock: Stock,
    pub reg_sho_action: u8,
}

/// `L`: market participant position, 26 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarketParticipantPosition {
    pub header: Header,
    pub mpid: [u8; 4],
    pub stock: Stock,
    pub primary_market_maker: u8,
    pub market_maker_mode: u8,
    pub market_participant_state: u8,
}

/// `V`: market-wide circuit breaker decline levels, 35 bytes. Prices have eight implied decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MwcbDeclineLevel {
    pub header: Header,
    pub level1: u64,
    pub level2: u64,
    pub level3: u64,
}

/// `W`: market-wide circuit breaker status, 12 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MwcbStatus {
    pub header: Header,
    pub breached_level: u8,
}

/// `K`: IPO quoting period update, 28 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpoQuotingPeriodUpdate {
    pub header: Header,
    pub stock: Stock,
    /// Seconds since midnight.
    pub ipo_quotation_release_time: u32,
    pub ipo_quotation_release_qualifier: u8,
    pub ipo_price: u32,
}

/// `J`: LULD auction collar, 35 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LuldAuctionCollar {
    pub header: Header,
    pub stock: Stock,
    pub auction_collar_reference_price: u32,
    pub upper_auction_collar_price: u32,
    pub lower_auction_collar_price: u32,
    pub auction_collar_extension: u32,
}

/// `h`: operational halt, 21 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationalHalt {
    pub header: Header,
    pub stock: Stock,
    pub market_code: u8,
    pub operational_halt_action: u8,
}

/// `A` (36 bytes) or `F` (40 bytes, with `attribution`): a new resting order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddOrder {
    pub header: Header,
    pub order_ref: u64,
    pub side: Side,
    pub shares: u32,
    pub stock: Stock,
    pub price: u32,
    /// Market participant id; `Some` only for `F`.
    pub attribution: Option<[u8; 4]>,
}

/// `E`: shares of a resting order executed at its own price, 31 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderExecuted {
    pub header: Header,
    pub order_ref: u64,
    pub executed_shares: u32,
    pub match_number: u64,
}

/// `C`: shares of a resting order executed at a price other than its own, 36 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderExecutedWithPrice {
    pub header: Header,
    pub order_ref: u64,
    pub executed_shares: u32,
    pub match_number: u64,
    pub printable: u8,
    pub execution_price: u32,
}

/// `X`: part of a resting order cancelled, 23 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderCancel {
    pub header: Header,
    pub order_ref: u64,
    pub cancelled_shares: u32,
}

/// `D`: a resting order removed whole, 19 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderDelete {
    pub header: Header,
    pub order_ref: u64,
}

/// `U`: an order replaced by a new one with a new reference, 35 bytes. The new order keeps the
/// side and stock of the original and loses its time priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderReplace {
    pub header: Header,
    pub original_order_ref: u64,
    pub new_order_ref: u64,
    pub shares: u32,
    pub price: u32,
}

/// `P`: a trade against a non-displayed order, 44 bytes. It does not change the visible book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trade {
    pub header: Header,
    pub order_ref: u64,
    pub side: Side,
    pub shares: u32,
    pub stock: Stock,
    pub price: u32,
    pub match_number: u64,
}

/// `Q`: the bulk print of an opening, closing, IPO or halt cross, 40 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrossTrade {
    pub header: Header,
    pub shares: u64,
    pub stock: Stock,
    pub cross_price: u32,
    pub match_number: u64,
    pub cross_type: u8,
}

/// `B`: an earlier execution broken, 19 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokenTrade {
    pub header: Header,
    pub match_number: u64,
}

/// `I`: net order imbalance indicator, 50 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Noii {
    pub header: Header,
    pub paired_shares: u64,
    pub imbalance_shares: u64,
    pub imbalance_direction: u8,
    pub stock: Stock,
    pub far_price: u32,
    pub near_price: u32,
    pub current_reference_price: u32,
    pub cross_type: u8,
    pub price_variation_indicator: u8,
}

/// `N`: retail price improvement indicator, 20 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rpii {
    pub header: Header,
    pub stock: Stock,
    pub interest_flag: u8,
}

/// `O`: direct listing with capital raise price discovery, 48 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dlcr {
    pub header: Header,
    pub stock: Stock,
    pub open_eligibility_status: u8,
    pub minimum_allowable_price: u32,
    pub maximum_allowable_price: u32,
    pub near_execution_price: u32,
    /// Nanoseconds since midnight.
    pub near_execution_time: u64,
    pub lower_price_range_collar: u32,
    pub upper_price_range_collar: u32,
}

/// One decoded ITCH 5.0 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    SystemEvent(SystemEvent),
    StockDirectory(StockDirectory),
    StockTradingAction(StockTradingAction),
    RegShoRestriction(RegShoRestriction),
    MarketParticipantPosition(MarketParticipantPosition),
    MwcbDeclineLevel(MwcbDeclineLevel),
    MwcbStatus(MwcbStatus),
    IpoQuotingPeriodUpdate(IpoQuotingPeriodUpdate),
    LuldAuctionCollar(LuldAuctionCollar),
    OperationalHalt(OperationalHalt),
    AddOrder(AddOrder),
    OrderExecuted(OrderExecuted),
    OrderExecutedWithPrice(OrderExecutedWithPrice),
    OrderCancel(OrderCancel),
    OrderDelete(OrderDelete),
    OrderReplace(OrderReplace),
    Trade(Trade),
    CrossTrade(CrossTrade),
    BrokenTrade(BrokenTrade),
    Noii(Noii),
    Rpii(Rpii),
    Dlcr(Dlcr),
}

/// Returns the length in bytes (type byte included) of a message of type `msg_type`, or `None`
/// for a letter ITCH 5.0 does not define.
pub const fn message_len(msg_type: u8) -> Option<usize> {
    Some(match msg_type {
        b'S' => 12,
        b'R' => 39,
        b'H' => 25,
        b'Y' => 20,
        b'L' => 26,
        b'V' => 35,
        b'W' => 12,
        b'K' => 28,
        b'J' => 35,
        b'h' => 21,
        b'A' => 36,
        b'F' => 40,
        b'E' => 31,
        b'C' => 36,
        b'X' => 23,
        b'D' => 19,
        b'U' => 35,
        b'P' => 44,
        b'Q' => 40,
        b'B' => 19,
        b'I' => 50,
        b'N' => 20,
        b'O' => 48,
        _ => return None,
    })
}

/// Decodes one ITCH message from `buf`, which contains exactly the bytes the framing's length prefix
/// covers. Bytes past the length the type defines are ignored, so that fields NASDAQ appends in
/// later versions do not break decoding.
///
/// The offsets in a returned error are relative to `buf`; framers add their own position with
/// [`DecodeError::at`].
pub fn decode(buf: &[u8]) -> Result<Message, DecodeError> {
    let Some(&msg_type) = buf.first() else {
        return Err(DecodeError::EmptyMessage { offset: 0 });
    };
    let Some(expected) = message_len(msg_type) else {
        return Err(DecodeError::UnknownType { offset: 0, msg_type });
    };
    if buf.len() < expected {
        return Err(DecodeError::Truncated {
            offset: 0,
            msg_type,
            len: buf.len(),
            expected,
        });
    }
    // From here on every read is within `expected` bytes, so the fixed offsets below are in bounds.
    let r = Reader(&buf[..expected]);
    let header = Header {
        stock_locate: r.u16(1),
        tracking_number: r.u16(3),
        timestamp: r.u48(5),
    };
    let side = |offset: usize| {
        Side::from_byte(r.u8(offset)).ok_or(DecodeError::InvalidField {
            offset,
            msg_type,
            field: "side",
            value: r.u8(offset) as u64,
        })
    };
    let msg = match msg_type {
        b'S' => Message::SystemEvent(SystemEvent {
            header,
            event_code: r.u8(11),
        }),
        b'R' => Message::StockDirectory(StockDirectory {
            header,
            stock: r.stock(11),
            market_category: r.u8(19),
            financial_status_indicator: r.u8(20),
            round_lot_size: r.u32(21),
            round_lots_only: r.u8(25),
            issue_classification: r.u8(26),
            issue_sub_type: r.bytes(27),
            authenticity: r.u8(29),
            short_sale_threshold_indicator: r.u8(30),
            ipo_flag: r.u8(31),
            luld_reference_price_tier: r.u8(32),
            etp_flag: r.u8(33),
            etp_leverage_factor: r.u32(34),
            inverse_indicator: r.u8(38),
        }),
        b'H' => Message::StockTradingAction(StockTradingAction {
            header,
            stock: r.stock(11),
            trading_state: r.u8(19),
            reserved: r.u8(20),
            reason: r.bytes(21),
        }),
        b'Y' => Message::RegShoRestriction(RegShoRestriction {
            header,
            stock: r.stock(11),
            reg_sho_action: r.u8(19),
        }),
        b'L' => Message::MarketParticipantPosition(MarketParticipantPosition {
            header,
            mpid: r.bytes(11),
            stock: r.stock(15),
            primary_market_maker: r.u8(23),
            market_maker_mode: r.u8(24),
            market_participant_state: r.u8(25),
        }),
        b'V' => Message::MwcbDeclineLevel(MwcbDeclineLevel {
            header,
            level1: r.u64(11),
            level2: r.u64(19),
            level3: r.u64(27),
        }),
        b'W' => Message::MwcbStatus(MwcbStatus {
            header,
            breached_level: r.u8(11),
        }),
        b'K' => Message::IpoQuotingPeriodUpdate(IpoQuotingPeriodUpdate {
            header,
            stock: r.stock(11),
            ipo_quotation_release_time: r.u32(19),
            ipo_quotation_release_qualifier: r.u8(23),
            ipo_price: r.u32(24),
        }),
        b'J' => Message::LuldAuctionCollar(LuldAuctionCollar {
            header,
            stock: r.stock(11),
            auction_collar_reference_price: r.u32(19),
            upper_auction_collar_price: r.u32(23),
            lower_auction_collar_price: r.u32(27),
            auction_collar_extension: r.u32(31),
        }),
        b'h' => Message::OperationalHalt(OperationalHalt {
            header,
            stock: r.stock(11),
            market_code: r.u8(19),
            operational_halt_action: r.u8(20),
        }),
        b'A' | b'F' => Message::AddOrder(AddOrder {
            header,
            order_ref: r.u64(11),
            side: side(19)?,
            shares: r.u32(20),
            stock: r.stock(24),
            price: r.u32(32),
            attribution: (msg_type == b'F').then(|| r.bytes(36)),
        }),
        b'E' => Message::OrderExecuted(OrderExecuted {
            header,
            order_ref: r.u64(11),
            executed_shares: r.u32(19),
            match_number: r.u64(23),
        }),
        b'C' => Message::OrderExecutedWithPrice(OrderExecutedWithPrice {
            header,
            order_ref: r.u64(11),
            executed_shares: r.u32(19),
            match_number: r.u64(23),
            printable: r.u8(31),
            execution_price: r.u32(32),
        }),
        b'X' => Message::OrderCancel(OrderCancel {
            header,
            order_ref: r.u64(11),
            cancelled_shares: r.u32(19),
        }),
        b'D' => Message::OrderDelete(OrderDelete {
            header,
            order_ref: r.u64(11),
        }),
        b'U' => Message::OrderReplace(OrderReplace {
            header,
            original_order_ref: r.u64(11),
            new_order_ref: r.u64(19),
            shares: r.u32(27),
            price: r.u32(31),
        }),
        b'P' => Message::Trade(Trade {
            header,
            order_ref: r.u64(11),
            side: side(19)?,
            shares: r.u32(20),
            stock: r.stock(24),
            price: r.u32(32),
            match_number: r.u64(36),
        }),
        b'Q' => Message::CrossTrade(CrossTrade {
            header,
            shares: r.u64(11),
            stock: r.stock(19),
            cross_price: r.u32(27),
            match_number: r.u64(31),
            cross_type: r.u8(39),
        }),
        b'B' => Message::BrokenTrade(BrokenTrade {
            header,
            match_number: r.u64(11),
        }),
        b'I' => Message::Noii(Noii {
            header,
            paired_shares: r.u64(11),
            imbalance_shares: r.u64(19),
            imbalance_direction: r.u8(27),
            stock: r.stock(28),
            far_price: r.u32(36),
            near_price: r.u32(40),
            current_reference_price: r.u32(44),
            cross_type: r.u8(48),
            price_variation_indicator: r.u8(49),
        }),
        b'N' => Message::Rpii(Rpii {
            header,
            stock: r.stock(11),
            interest_flag: r.u8(19),
        }),
        b'O' => Message::Dlcr(Dlcr {
            header,
            stock: r.stock(11),
            open_eligibility_status: r.u8(19),
            minimum_allowable_price: r.u32(20),
            maximum_allowable_price: r.u32(24),
            near_execution_price: r.u32(28),
            near_execution_time: r.u64(32),
            lower_price_range_collar: r.u32(40),
            upper_price_range_collar: r.u32(44),
        }),
        // `message_len` returned Some, so the type is one of the arms above.
        _ => return Err(DecodeError::UnknownType { offset: 0, msg_type }),
    };
    Ok(msg)
}

impl Message {
    /// Returns the fields every message carries.
    pub fn header(&self) -> &Header {
        match self {
            Message::SystemEvent(m) => &m.header,
            Message::StockDirectory(m) => &m.header,
            Message::StockTradingAction(m) => &m.header,
            Message::RegShoRestriction(m) => &m.header,
            Message::MarketParticipantPosition(m) => &m.header,
            Message::MwcbDeclineLevel(m) => &m.header,
            Message::MwcbStatus(m) => &m.header,
            Message::IpoQuotingPeriodUpdate(m) => &m.header,
            Message::LuldAuctionCollar(m) => &m.header,
            Message::OperationalHalt(m) => &m.header,
            Message::AddOrder(m) => &m.header,
            Message::OrderExecuted(m) => &m.header,
            Message::OrderExecutedWithPrice(m) => &m.header,
            Message::OrderCancel(m) => &m.header,
            Message::OrderDelete(m) => &m.header,
            Message::OrderReplace(m) => &m.header,
            Message::Trade(m) => &m.header,
            Message::CrossTrade(m) => &m.header,
            Message::BrokenTrade(m) => &m.header,
            Message::Noii(m) => &m.header,
            Message::Rpii(m) => &m.header,
            Message::Dlcr(m) => &m.header,
        }
    }

    /// Returns the stock symbol the message carries, for the types that have one.
    pub fn stock(&self) -> Option<Stock> {
        Some(match self {
            Message::StockDirectory(m) => m.stock,
            Message::StockTradingAction(m) => m.stock,
            Message::RegShoRestriction(m) => m.stock,
            Message::MarketParticipantPosition(m) => m.stock,
            Message::IpoQuotingPeriodUpdate(m) => m.stock,
            Message::LuldAuctionCollar(m) => m.stock,
            Message::OperationalHalt(m) => m.stock,
            Message::AddOrder(m) => m.stock,
            Message::Trade(m) => m.stock,
            Message::CrossTrade(m) => m.stock,
            Message::Noii(m) => m.stock,
            Message::Rpii(m) => m.stock,
            Message::Dlcr(m) => m.stock,
            _ => return None,
        })
    }

    /// Returns the ITCH type letter of the message (`A` or `F` for an add order).
    pub fn msg_type(&self) -> u8 {
        match self {
            Message::SystemEvent(_) => b'S',
            Message::StockDirectory(_) => b'R',
            Message::StockTradingAction(_) => b'H',
            Message::RegShoRestriction(_) => b'Y',
            Message::MarketParticipantPosition(_) => b'L',
            Message::MwcbDeclineLevel(_) => b'V',
            Message::MwcbStatus(_) => b'W',
            Message::IpoQuotingPeriodUpdate(_) => b'K',
            Message::LuldAuctionCollar(_) => b'J',
            Message::OperationalHalt(_) => b'h',
            Message::AddOrder(m) if m.attribution.is_some() => b'F',
            Message::AddOrder(_) => b'A',
            Message::OrderExecuted(_) => b'E',
            Message::OrderExecutedWithPrice(_) => b'C',
            Message::OrderCancel(_) => b'X',
            Message::OrderDelete(_) => b'D',
            Message::OrderReplace(_) => b'U',
            Message::Trade(_) => b'P',
            Message::CrossTrade(_) => b'Q',
            Message::BrokenTrade(_) => b'B',
            Message::Noii(_) => b'I',
            Message::Rpii(_) => b'N',
            Message::Dlcr(_) => b'O',
        }
    }

    /// Returns the length of the encoded message, type byte included.
    pub fn encoded_len(&self) -> usize {
        // `message_len` defines a length for the letter of every variant.
        message_len(self.msg_type()).unwrap_or(0)
    }

    /// Appends the wire form of the message to `out`: exactly [`Message::encoded_len`] bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + self.encoded_len(), 0);
        let mut w = Writer(&mut out[start..]);
        let h = self.header();
        w.u8(0, self.msg_type());
        w.u16(1, h.stock_locate);
        w.u16(3, h.tracking_number);
        w.u48(5, h.timestamp);
        match self {
            Message::SystemEvent(m) => w.u8(11, m.event_code),
            Message::StockDirectory(m) => {
                w.bytes(11, &m.stock.0);
                w.u8(19, m.market_category);
                w.u8(20, m.financial_status_indicator);
                w.u32(21, m.round_lot_size);
                w.u8(25, m.round_lots_only);
                w.u8(26, m.issue_classification);
                w.bytes(27, &m.issue_sub_type);
                w.u8(29, m.authenticity);
                w.u8(30, m.short_sale_threshold_indicator);
                w.u8(31, m.ipo_flag);
                w.u8(32, m.luld_reference_price_tier);
                w.u8(33, m.etp_flag);
                w.u32(34, m.etp_leverage_factor);
                w.u8(38, m.inverse_indicator);
            }
            Message::StockTradingAction(m) => {
                w.bytes(11, &m.stock.0);
                w.u8(19, m.trading_state);
                w.u8(20, m.reserved);
                w.bytes(21, &m.reason);
            }
            Message::RegShoRestriction(m) => {
                w.bytes(11, &m.stock.0);
                w.u8(19, m.reg_sho_action);
            }
            Message::MarketParticipantPosition(m) => {
                w.bytes(11, &m.mpid);
                w.bytes(15, &m.stock.0);
                w.u8(23, m.primary_market_maker);
                w.u8(24, m.market_maker_mode);
                w.u8(25, m.market_participant_state);
            }
            Message::MwcbDeclineLevel(m) => {
                w.u64(11, m.level1);
                w.u64(19, m.level2);
                w.u64(27, m.level3);
            }
            Message::MwcbStatus(m) => w.u8(11, m.breached_level),
            Message::IpoQuotingPeriodUpdate(m) => {
                w.bytes(11, &m.stock.0);
                w.u32(19, m.ipo_quotation_release_time);
                w.u8(23, m.ipo_quotation_release_qualifier);
                w.u32(24, m.ipo_price);
            }
            Message::LuldAuctionCollar(m) => {
                w.bytes(11, &m.stock.0);
                w.u32(19, m.auction_collar_reference_price);
                w.u32(23, m.upper_auction_collar_price);
                w.u32(27, m.lower_auction_collar_price);
                w.u32(31, m.auction_collar_extension);
            }
            Message::OperationalHalt(m) => {
                w.bytes(11, &m.stock.0);
                w.u8(19, m.market_code);
                w.u8(20, m.operational_halt_action);
            }
            Message::AddOrder(m) => {
                w.u64(11, m.order_ref);
                w.u8(19, m.side.as_byte());
                w.u32(20, m.shares);
                w.bytes(24, &m.stock.0);
                w.u32(32, m.price);
                if let Some(attribution) = &m.attribution {
                    w.bytes(36, attribution);
                }
            }
            Message::OrderExecuted(m) => {
                w.u64(11, m.order_ref);
                w.u32(19, m.executed_shares);
                w.u64(23, m.match_number);
            }
            Message::OrderExecutedWithPrice(m) => {
                w.u64(11, m.order_ref);
                w.u32(19, m.executed_shares);
                w.u64(23, m.match_number);
                w.u8(31, m.printable);
                w.u32(32, m.execution_price);
            }
            Message::OrderCancel(m) => {
                w.u64(11, m.order_ref);
                w.u32(19, m.cancelled_shares);
            }
            Message::OrderDelete(m) => w.u64(11, m.order_ref),
            Message::OrderReplace(m) => {
                w.u64(11, m.original_order_ref);
                w.u64(19, m.new_order_ref);
                w.u32(27, m.shares);
                w.u32(31, m.price);
            }
            Message::Trade(m) => {
                w.u64(11, m.order_ref);
                w.u8(19, m.side.as_byte());
                w.u32(20, m.shares);
                w.bytes(24, &m.stock.0);
                w.u32(32, m.price);
                w.u64(36, m.match_number);
            }
            Message::CrossTrade(m) => {
                w.u64(11, m.shares);
                w.bytes(19, &m.stock.0);
                w.u32(27, m.cross_price);
                w.u64(31, m.match_number);
                w.u8(39, m.cross_type);
            }
            Message::BrokenTrade(m) => w.u64(11, m.match_number),
            Message::Noii(m) => {
                w.u64(11, m.paired_shares);
                w.u64(19, m.imbalance_shares);
                w.u8(27, m.imbalance_direction);
                w.bytes(28, &m.stock.0);
                w.u32(36, m.far_price);
                w.u32(40, m.near_price);
                w.u32(44, m.current_reference_price);
                w.u8(48, m.cross_type);
                w.u8(49, m.price_variation_indicator);
            }
            Message::Rpii(m) => {
                w.bytes(11, &m.stock.0);
                w.u8(19, m.interest_flag);
            }
            Message::Dlcr(m) => {
                w.bytes(11, &m.stock.0);
                w.u8(19, m.open_eligibility_status);
                w.u32(20, m.minimum_allowable_price);
                w.u32(24, m.maximum_allowable_price);
                w.u32(28, m.near_execution_price);
                w.u64(32, m.near_execution_time);
                w.u32(40, m.lower_price_range_collar);
                w.u32(44, m.upper_price_range_collar);
            }
        }
    }
}

/// Big-endian field reads at fixed offsets. Callers check the slice length first; a read past the
/// end returns zero instead of panicking.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn bytes<const N: usize>(&self, offset: usize) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(src) = self.0.get(offset..offset + N) {
            out.copy_from_slice(src);
        }
        out
    }

    fn u8(&self, offset: usize) -> u8 {
        self.0.get(offset).copied().unwrap_or(0)
    }

    fn u16(&self, offset: usize) -> u16 {
        u16::from_be_bytes(self.bytes(offset))
    }

    fn u32(&self, offset: usize) -> u32 {
        u32::from_be_bytes(self.bytes(offset))
    }

    fn u48(&self, offset: usize) -> u64 {
        let b: [u8; 6] = self.bytes(offset);
        let mut wide = [0u8; 8];
        wide[2..].copy_from_slice(&b);
        u64::from_be_bytes(wide)
    }

    fn u64(&self, offset: usize) -> u64 {
        u64::from_be_bytes(self.bytes(offset))
    }

    fn stock(&self, offset: usize) -> Stock {
        Stock(self.bytes(offset))
    }
}

/// Big-endian field writes at fixed offsets into a buffer sized by `Message::encoded_len`.
struct Writer<'a>(&'a mut [u8]);

impl Writer<'_> {
    fn bytes(&mut self, offset: usize, src: &[u8]) {
        if let Some(dst) = self.0.get_mut(offset..offset + src.len()) {
            dst.copy_from_slice(src);
        }
    }

    fn u8(&mut self, offset: usize, v: u8) {
        self.bytes(offset, &[v]);
    }

    fn u16(&mut self, offset: usize, v: u16) {
        self.bytes(offset, &v.to_be_bytes());
    }

    fn u32(&mut self, offset: usize, v: u32) {
        self.bytes(offset, &v.to_be_bytes());
    }

    fn u48(&mut self, offset: usize, v: u64) {
        self.bytes(offset, &v.to_be_bytes()[2..]);
    }

    fn u64(&mut self, offset: usize, v: u64) {
        self.bytes(offset, &v.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_TYPES: &[u8] = b"SRHYLVWKJhAFECXDUPQBINO";

    #[test]
    fn every_type_has_a_length() {
        for &t in ALL_TYPES {
            assert!(message_len(t).is_some(), "type {}", t as char);
        }
        assert_eq!(message_len(b'Z'), None);
    }

    #[test]
    fn encode_decode_round_trip_every_type() {
        for &t in ALL_TYPES {
            let len = message_len(t).unwrap();
            let mut buf: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(7).wrapping_add(3)).collect();
            buf[0] = t;
            if matches!(t, b'A' | b'F' | b'P') {
                buf[19] = b'S';
            }
            let msg = decode(&buf).unwrap();
            assert_eq!(msg.msg_type(), t);
            let mut out = Vec::new();
            msg.encode(&mut out);
            assert_eq!(out, buf, "type {}", t as char);
        }
    }

    #[test]
    fn short_message_is_truncated_error() {
        for &t in ALL_TYPES {
            let len = message_len(t).unwrap();
            let mut buf = vec![0u8; len - 1];
            buf[0] = t;
            match decode(&buf) {
                Err(DecodeError::Truncated { msg_type, len: got, expected, .. }) => {
                    assert_eq!(msg_type, t);
                    assert_eq!(got, len - 1);
                    assert_eq!(expected, len);
                }
                other => panic!("type {}: {other:?}", t as char),
            }
        }
    }

    #[test]
    fn unknown_type_and_empty_are_errors() {
        assert!(matches!(decode(b"Z0123456789"), Err(DecodeError::UnknownType { msg_type: b'Z', .. })));
        assert!(matches!(decode(b""), Err(DecodeError::EmptyMessage { .. })));
    }

    #[test]
    fn invalid_side_is_error() {
        let mut buf = vec![0u8; 36];
        buf[0] = b'A';
        buf[19] = b'Z';
        assert!(matches!(decode(&buf), Err(DecodeError::InvalidField { field: "side", offset: 19, .. })));
    }

    #[test]
    fn stock_trims_trailing_spaces() {
        assert_eq!(Stock::new("AAPL").as_str(), "AAPL");
        assert_eq!(Stock(*b"IVOO    ").as_str(), "IVOO");
        assert_eq!(Stock(*b"        ").as_str(), "");
    }
}

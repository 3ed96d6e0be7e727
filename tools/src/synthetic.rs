//! A synthetic ITCH order flow, for load beyond the real samples (benchmarks, `mdfh generate`).
//!
//! The flow's message mix follows the bundled LOBSTER AAPL sample, counted at run time from its
//! message file: new orders become `A`, partial cancels `X`, deletes `D`, visible executions `E`,
//! hidden executions `P`. The sample has no replaces and no partial cancels, so each gets a floor
//! share of 5% taken from the deletes (a replace is a delete and an add in one message). Every
//! reference the flow uses names a live order, and bids stay below asks, so a correct book never
//! reports an error on it.

use mdfh_feed::itch::{
    AddOrder, Header, Message, OrderCancel, OrderDelete, OrderExecuted, OrderReplace, Side, Stock, StockDirectory, Trade,
};

const SAMPLE_MESSAGES: &str = include_str!("../../tests/data/lobster/AAPL_2012-06-21_34200000_57600000_message_10.csv");

/// Share of replaces in the synthetic flow, taken from the deletes.
const REPLACE_SHARE: f64 = 0.05;
/// Minimum share of partial cancels, taken from the deletes when the sample has fewer.
const MIN_CANCEL_SHARE: f64 = 0.05;

/// Shares of each message kind, summing to 1.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    pub add: f64,
    pub cancel: f64,
    pub delete: f64,
    pub execute: f64,
    pub hidden_trade: f64,
    pub replace: f64,
}

impl Mix {
    /// Counts the event types of the bundled LOBSTER sample.
    pub fn from_lobster_sample() -> Mix {
        let mut counts = [0u64; 8];
        for line in SAMPLE_MESSAGES.lines() {
            if let Some(kind) = line.split(',').nth(1).and_then(|t| t.parse::<usize>().ok()) {
                if kind < counts.len() {
                    counts[kind] += 1;
                }
            }
        }
        let total = counts[1..=5].iter().sum::<u64>().max(1) as f64;
        let delete = counts[3] as f64 / total;
        let cancel = counts[2] as f64 / total;
        let extra_cancel = (MIN_CANCEL_SHARE - cancel).max(0.0);
        Mix {
            add: counts[1] as f64 / total,
            cancel: cancel + extra_cancel,
            delete: (delete - REPLACE_SHARE - extra_cancel).max(0.0),
            execute: counts[4] as f64 / total,
            hidden_trade: counts[5] as f64 / total,
            replace: REPLACE_SHARE.min(delete),
        }
    }
}

/// A small, fast, deterministic random number generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Clone, Copy)]
struct Live {
    order_ref: u64,
    locate: u16,
    side: Side,
    shares: u32,
}

/// Generates `count` ITCH messages over `instruments` instruments (locates 1..=instruments),
/// stock directory messages first, then the flow. The same seed gives the same flow.
pub fn synthetic_flow(count: usize, instruments: u16, seed: u64) -> Vec<Message> {
    let mix = Mix::from_lobster_sample();
    let mut rng = Rng(seed | 1);
    let instruments = instruments.max(1);
    let mut out = Vec::with_capacity(count + usize::from(instruments));
    let mid = 1_000_000u32; // $100.00
    let tick = 100u32; // $0.01
    let header = |locate: u16, ts: u64| Header { stock_locate: locate, tracking_number: 0, timestamp: ts };
    for locate in 1..=instruments {
        out.push(Message::StockDirectory(StockDirectory {
            header: header(locate, 0),
            stock: Stock::new(&format!("SYN{locate}")),
            market_category: b'Q',
            financial_status_indicator: b'N',
            round_lot_size: 100,
            round_lots_only: b'N',
            issue_classification: b'C',
            issue_sub_type: *b"Z ",
            authenticity: b'P',
            short_sale_threshold_indicator: b'N',
            ipo_flag: b' ',
            luld_reference_price_tier: b'1',
            etp_flag: b'N',
            etp_leverage_factor: 0,
            inverse_indicator: b'N',
        }));
    }
    let mut live: Vec<Live> = Vec::with_capacity(count);
    let mut next_ref = 1u64;
    let mut match_number = 1u64;
    let mut ts = 34_200_000_000_000u64;
    while out.len() < count + usize::from(instruments) {
        ts += 1_000;
        let roll = rng.unit();
        // Keep a resting population: add when the book is thin, whatever the roll.
        let kind = if live.len() < 64 || roll < mix.add {
            0
        } else if roll < mix.add + mix.cancel {
            1
        } else if roll < mix.add + mix.cancel + mix.delete {
            2
        } else if roll < mix.add + mix.cancel + mix.delete + mix.execute {
            3
        } else if roll < mix.add + mix.cancel + mix.delete + mix.execute + mix.hidden_trade {
            4
        } else {
            5
        };
        let locate = 1 + rng.below(u64::from(instruments)) as u16;
        match kind {
            0 => {
                let side = if rng.below(2) == 0 { Side::Buy } else { Side::Sell };
                let offset = (1 + rng.below(20) as u32) * tick;
                let price = if side == Side::Buy { mid - offset } else { mid + offset };
                let shares = 100 * (1 + rng.below(10) as u32);
                let order = Live { order_ref: next_ref, locate, side, shares };
                next_ref += 1;
                live.push(order);
                out.push(Message::AddOrder(AddOrder {
                    header: header(locate, ts),
                    order_ref: order.order_ref,
                    side,
                    shares,
                    stock: Stock::new(&format!("SYN{locate}")),
                    price,
                    attribution: None,
                }));
            }
            4 => {
                let side = if rng.below(2) == 0 { Side::Buy } else { Side::Sell };
                out.push(Message::Trade(Trade {
                    header: header(locate, ts),
                    order_ref: 0,
                    side,
                    shares: 100,
                    stock: Stock::new(&format!("SYN{locate}")),
                    price: mid,
                    match_number,
                }));
                match_number += 1;
            }
            _ => {
                let index = rng.below(live.len() as u64) as usize;
                let order = live[index];
                let h = header(order.locate, ts);
                match kind {
                    1 if order.shares > 1 => {
                        let cancelled = 1 + rng.below(u64::from(order.shares - 1)) as u32;
                        live[index].shares -= cancelled;
                        out.push(Message::OrderCancel(OrderCancel { header: h, order_ref: order.order_ref, cancelled_shares: cancelled }));
                    }
                    3 => {
                        let executed = (1 + rng.below(u64::from(order.shares)) as u32).min(order.shares);
                        out.push(Message::OrderExecuted(OrderExecuted {
                            header: h,
                            order_ref: order.order_ref,
                            executed_shares: executed,
                            match_number,
                        }));
                        match_number += 1;
                        if executed == order.shares {
                            live.swap_remove(index);
                        } else {
                            live[index].shares -= executed;
                        }
                    }
                    5 => {
                        let new_ref = next_ref;
                        next_ref += 1;
                        let offset = (1 + rng.below(20) as u32) * tick;
                        let price = if order.side == Side::Buy { mid - offset } else { mid + offset };
                        let shares = 100 * (1 + rng.below(10) as u32);
                        live[index] = Live { order_ref: new_ref, shares, ..order };
                        out.push(Message::OrderReplace(OrderReplace {
                            header: h,
                            original_order_ref: order.order_ref,
                            new_order_ref: new_ref,
                            shares,
                            price,
                        }));
                    }
                    _ => {
                        live.swap_remove(index);
                        out.push(Message::OrderDelete(OrderDelete { header: h, order_ref: order.order_ref }));
                    }
                }
            }
        }
    }
    out
}

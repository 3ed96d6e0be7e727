//! Depth-limited subscribers over real sockets: after random level changes, including removals
//! inside the top N, each client's book equals the top N of the server's mirror and of an
//! independent model of the book.

mod common;

use std::collections::BTreeMap;

use common::*;
use mdfh_feed::itch::Side;
use mdfh_publisher::protocol::Level;
use mdfh_publisher::{Client, ClientBook, OwnedFrame, Publisher};
use proptest::prelude::*;

const LOCATE: u16 = 42;
const SYMBOL: &str = "DEPTH";
/// Depths of the symbol subscribers; 0 is the full book.
const DEPTHS: [u16; 4] = [1, 3, 5, 0];
/// Depth of the subscriber to all instruments.
const ALL_DEPTH: u16 = 2;
/// Events between two comparisons of the client books with the mirror.
const CHECK_EVERY: usize = 25;

/// One random step: `remove` deletes the level when it exists, otherwise the level is set.
#[derive(Debug, Clone, Copy)]
struct Step {
    buy: bool,
    price_index: u32,
    remove: bool,
    shares: u64,
}

fn step() -> impl Strategy<Value = Step> {
    (any::<bool>(), 0..12u32, prop::bool::weighted(0.4), 1..1000u64)
        .prop_map(|(buy, price_index, remove, shares)| Step { buy, price_index, remove, shares })
}

/// Independent model: price -> level, for one side.
type Model = BTreeMap<u32, Level>;

fn model_top(model: &Model, side: Side, depth: u16) -> Vec<Level> {
    let limit = if depth == 0 { usize::MAX } else { usize::from(depth) };
    match side {
        Side::Buy => model.values().rev().take(limit).copied().collect(),
        Side::Sell => model.values().take(limit).copied().collect(),
    }
}

struct Subscriber {
    client: Client,
    book: ClientBook,
    depth: u16,
}

/// Reads every frame up to and including the Trade stamped `marker_feed_seq`, applying each.
fn read_to_marker(publisher: &mut Publisher, sub: &mut Subscriber, marker_feed_seq: u64) {
    // Each batch carries at most two frames per event, plus heartbeats.
    for _ in 0..4 * CHECK_EVERY + 100 {
        let frame = next_frame(publisher, &mut sub.client);
        sub.book.apply(&frame).expect("frame applies without a gap");
        if matches!(frame, OwnedFrame::Trade(t) if t.feed_seq == marker_feed_seq) {
            return;
        }
    }
    panic!("depth {}: no trade with feed sequence {marker_feed_seq}", sub.depth);
}

/// Subscribes a new client and applies its ack and snapshot.
fn subscribe(publisher: &mut Publisher, symbol: Option<&str>, depth: u16) -> Subscriber {
    let mut client = connect(publisher);
    client.subscribe(symbol, depth).expect("send subscribe");
    let ack = next_frame(publisher, &mut client);
    assert!(matches!(ack, OwnedFrame::SubscribeAck(_)), "got {ack:?}");
    let mut book = ClientBook::new();
    book.apply(&next_frame(publisher, &mut client)).expect("apply snapshot");
    Subscriber { client, book, depth }
}

fn check_books(publisher: &Publisher, subs: &[Subscriber], bids: &Model, asks: &Model) {
    for sub in subs {
        let (client_bids, client_asks) = sub.book.levels(SYMBOL).expect("client has the book");
        let depth = usize::from(sub.depth);
        assert_eq!(client_bids, mirror_levels(publisher, LOCATE, Side::Buy, depth), "bids at depth {depth}");
        assert_eq!(client_asks, mirror_levels(publisher, LOCATE, Side::Sell, depth), "asks at depth {depth}");
        assert_eq!(client_bids, model_top(bids, Side::Buy, sub.depth), "bids at depth {depth} against the model");
        assert_eq!(client_asks, model_top(asks, Side::Sell, sub.depth), "asks at depth {depth} against the model");
    }
}

fn run(steps: &[Step]) {
    let mut publisher = bind(&config());
    publisher.on_event(&directory(1, LOCATE, SYMBOL));

    let mut subs: Vec<Subscriber> = DEPTHS.iter().map(|&depth| subscribe(&mut publisher, Some(SYMBOL), depth)).collect();
    subs.push(subscribe(&mut publisher, None, ALL_DEPTH));

    let mut bids = Model::new();
    let mut asks = Model::new();
    let mut feed_seq = 1;
    for (i, step) in steps.iter().enumerate() {
        let (side, model, price) = if step.buy {
            (Side::Buy, &mut bids, 1_000_000 - 100 * step.price_index)
        } else {
            (Side::Sell, &mut asks, 1_000_100 + 100 * step.price_index)
        };
        let exists = model.contains_key(&price);
        let (shares, orders) = if step.remove && exists { (0, 0) } else { (step.shares, 1 + step.price_index) };
        if shares == 0 {
            model.remove(&price);
        } else {
            model.insert(price, Level { price, shares, orders });
        }
        feed_seq += 1;
        publisher.on_event(&level(feed_seq, LOCATE, side, price, shares, orders));

        if (i + 1) % CHECK_EVERY == 0 || i + 1 == steps.len() {
            // A trade reaches every subscriber whatever its depth, so it marks the end of a batch.
            feed_seq += 1;
            publisher.on_event(&trade(feed_seq, LOCATE, price, 1));
            for sub in &mut subs {
                read_to_marker(&mut publisher, sub, feed_seq);
            }
            check_books(&publisher, &subs, &bids, &asks);
        }
    }
    for sub in &subs {
        assert_eq!(sub.book.gaps(), 0, "gaps at depth {}", sub.depth);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn depth_limited_books_match_mirror(steps in prop::collection::vec(step(), 1..300)) {
        run(&steps);
    }
}

#[test]
fn removal_at_top_brings_next_level() {
    let mut steps = Vec::new();
    // Five bids, then remove the best one twice over: the depth-1 and depth-3 clients must each
    // learn the level that moves into their view.
    for price_index in 0..5 {
        steps.push(Step { buy: true, price_index, remove: false, shares: 10 });
    }
    steps.push(Step { buy: true, price_index: 0, remove: true, shares: 0 });
    steps.push(Step { buy: true, price_index: 1, remove: true, shares: 0 });
    steps.push(Step { buy: true, price_index: 3, remove: true, shares: 0 });
    run(&steps);
}

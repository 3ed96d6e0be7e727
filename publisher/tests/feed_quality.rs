//! Feed quality over real sockets: FeedQuality frames reach every connection on each change,
//! with or without subscriptions, and a client that connects or subscribes while the quality is
//! not Ok gets the current quality after its snapshot.

mod common;

use common::*;
use mdfh_feed::itch::Side;
use mdfh_matcher::{BookEvent, FeedQuality, QualityState};
use mdfh_publisher::protocol::QualityUpdate;
use mdfh_publisher::{ClientBook, Envelope, OwnedFrame};

const LOCATE: u16 = 3;
const SYMBOL: &str = "QUAL";
/// Driver rounds for collecting frames that should already be queued.
const SETTLE_ROUNDS: usize = 50;

fn quality(feed_seq: u64, state: QualityState, since: u64) -> Envelope {
    envelope(feed_seq, BookEvent::Quality { quality: FeedQuality { state, since } })
}

fn quality_frames(frames: &[OwnedFrame]) -> Vec<QualityUpdate> {
    frames
        .iter()
        .filter_map(|f| match f {
            OwnedFrame::FeedQuality(update) => Some(*update),
            _ => None,
        })
        .collect()
}

fn apply_all(book: &mut ClientBook, frames: &[OwnedFrame]) {
    for frame in frames {
        book.apply(frame).unwrap_or_else(|e| panic!("applying {frame:?}: {e}"));
    }
}

#[test]
fn change_reaches_subscribed_and_unsubscribed() {
    let mut publisher = bind(&config());
    publisher.on_event(&directory(1, LOCATE, SYMBOL));
    publisher.on_event(&level(2, LOCATE, Side::Buy, 1_000_000, 100, 1));

    let mut idle = connect(&mut publisher);
    let mut subscribed = connect(&mut publisher);
    subscribed.subscribe(Some(SYMBOL), 0).expect("send subscribe");
    let mut subscribed_book = ClientBook::new();
    apply_all(&mut subscribed_book, &drain(&mut publisher, &mut subscribed, SETTLE_ROUNDS));
    assert_eq!(subscribed_book.instrument_count(), 1);
    let idle_before = drain(&mut publisher, &mut idle, SETTLE_ROUNDS);
    assert!(quality_frames(&idle_before).is_empty(), "no quality frame while Ok: {idle_before:?}");

    publisher.on_event(&quality(10, QualityState::Recovering, 7));
    let idle_frames = drain(&mut publisher, &mut idle, SETTLE_ROUNDS);
    let subscribed_frames = drain(&mut publisher, &mut subscribed, SETTLE_ROUNDS);

    let expected = FeedQuality { state: QualityState::Recovering, since: 7 };
    let idle_quality = quality_frames(&idle_frames);
    assert_eq!(idle_quality.len(), 1, "idle client frames: {idle_frames:?}");
    assert_eq!(idle_quality[0].quality, expected);
    assert_eq!(idle_quality[0].feed_seq, 10);
    assert_eq!(idle_quality[0].seq, 1, "first data frame of a connection without subscriptions");
    assert_eq!(idle.quality(), expected);

    let subscribed_quality = quality_frames(&subscribed_frames);
    assert_eq!(subscribed_quality.len(), 1, "subscribed client frames: {subscribed_frames:?}");
    apply_all(&mut subscribed_book, &subscribed_frames);
    assert_eq!(subscribed_book.gaps(), 0);
    assert_eq!(subscribed_book.quality(), expected);
    assert_eq!(subscribed_book.is_trustworthy(SYMBOL), Some(false));
    assert_eq!(publisher.quality(), expected);

    publisher.on_event(&quality(20, QualityState::Recovered, 0));
    apply_all(&mut subscribed_book, &drain(&mut publisher, &mut subscribed, SETTLE_ROUNDS));
    assert_eq!(subscribed_book.quality().state, QualityState::Recovered);
    assert_eq!(subscribed_book.is_trustworthy(SYMBOL), Some(true));
}

#[test]
fn repeated_quality_sends_once() {
    let mut publisher = bind(&config());
    let mut client = connect(&mut publisher);
    publisher.on_event(&quality(5, QualityState::Stale, 4));
    publisher.on_event(&quality(6, QualityState::Stale, 4));
    let frames = drain(&mut publisher, &mut client, SETTLE_ROUNDS);
    assert_eq!(quality_frames(&frames).len(), 1, "frames: {frames:?}");
}

#[test]
fn connect_while_recovering_gets_quality() {
    let mut publisher = bind(&config());
    publisher.on_event(&directory(1, LOCATE, SYMBOL));
    publisher.on_event(&quality(30, QualityState::Recovering, 25));
    let expected = FeedQuality { state: QualityState::Recovering, since: 25 };

    let mut client = connect(&mut publisher);
    let first = next_frame(&mut publisher, &mut client);
    let OwnedFrame::FeedQuality(update) = first else {
        panic!("expected the current quality right after connecting, got {first:?}");
    };
    assert_eq!(update.quality, expected);
    assert_eq!(update.feed_seq, 30);

    client.subscribe(Some(SYMBOL), 0).expect("send subscribe");
    let ack = next_frame(&mut publisher, &mut client);
    assert!(matches!(ack, OwnedFrame::SubscribeAck(_)), "got {ack:?}");
    let snapshot = next_frame(&mut publisher, &mut client);
    assert!(matches!(snapshot, OwnedFrame::Snapshot(_)), "got {snapshot:?}");
    let after = next_frame(&mut publisher, &mut client);
    let OwnedFrame::FeedQuality(again) = after else {
        panic!("expected the current quality right after the snapshot, got {after:?}");
    };
    assert_eq!(again.quality, expected);

    let mut book = ClientBook::new();
    apply_all(&mut book, &[first, ack, snapshot, after]);
    assert_eq!(book.gaps(), 0);
    assert_eq!(book.is_trustworthy(SYMBOL), Some(false));
}

#[test]
fn reset_restores_ok_for_everyone() {
    let mut publisher = bind(&config());
    publisher.on_event(&directory(1, LOCATE, SYMBOL));
    let mut idle = connect(&mut publisher);
    let mut subscribed = connect(&mut publisher);
    subscribed.subscribe(Some(SYMBOL), 0).expect("send subscribe");
    let mut book = ClientBook::new();
    apply_all(&mut book, &drain(&mut publisher, &mut subscribed, SETTLE_ROUNDS));

    publisher.on_event(&quality(40, QualityState::Stale, 33));
    publisher.on_event(&envelope(0, BookEvent::Reset));
    // The book stage may also report Ok after the Reset; it is not a change.
    publisher.on_event(&quality(0, QualityState::Ok, 0));

    let idle_frames = drain(&mut publisher, &mut idle, SETTLE_ROUNDS);
    let states: Vec<QualityState> = quality_frames(&idle_frames).iter().map(|q| q.quality.state).collect();
    assert_eq!(states, [QualityState::Stale, QualityState::Ok]);
    assert_eq!(idle.quality(), FeedQuality::OK);

    let frames = drain(&mut publisher, &mut subscribed, SETTLE_ROUNDS);
    apply_all(&mut book, &frames);
    let Some(reset_at) = frames.iter().position(|f| matches!(f, OwnedFrame::Reset { .. })) else {
        panic!("no Reset frame: {frames:?}");
    };
    let Some(ok_at) = frames.iter().rposition(|f| matches!(f, OwnedFrame::FeedQuality(_))) else {
        panic!("no FeedQuality frame: {frames:?}");
    };
    assert!(reset_at < ok_at, "Ok quality must follow the Reset: {frames:?}");
    assert_eq!(book.quality(), FeedQuality::OK);
    assert_eq!(publisher.quality(), FeedQuality::OK);
}

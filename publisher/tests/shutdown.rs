//! `close_all` sends a Goodbye with the reason to every subscriber, closes the connections and
//! stops listening.

mod common;

use std::time::Duration;

use common::*;
use mdfh_feed::itch::Side;
use mdfh_publisher::protocol::GoodbyeReason;
use mdfh_publisher::{Client, OwnedFrame};

#[test]
fn close_all_sends_goodbye() {
    let mut publisher = bind(&config());
    publisher.on_event(&directory(1, 1, "BYE"));
    let mut subscribed = connect(&mut publisher);
    subscribed.subscribe(Some("BYE"), 0).expect("send subscribe");
    next_frame(&mut publisher, &mut subscribed);
    next_frame(&mut publisher, &mut subscribed);
    let mut idle = connect(&mut publisher);

    // This update is still queued when close_all starts; it is delivered before the Goodbye.
    publisher.on_event(&level(2, 1, Side::Sell, 2_000_000, 5, 1));
    publisher.close_all("maintenance window");
    assert_eq!(publisher.subscriber_count(), 0);

    let frames = read_until_closed(&mut publisher, &mut subscribed);
    let [OwnedFrame::LevelUpdate(update), OwnedFrame::Goodbye { reason, last_seq, text }] = frames.as_slice() else {
        panic!("subscribed client: expected an update and a Goodbye, got {frames:?}");
    };
    assert_eq!(update.seq, 2);
    assert_eq!((*reason, *last_seq, text.as_str()), (GoodbyeReason::Shutdown, 2, "maintenance window"));

    let frames = read_until_closed(&mut publisher, &mut idle);
    let [OwnedFrame::Goodbye { reason, last_seq, text }] = frames.as_slice() else {
        panic!("idle client: expected a Goodbye, got {frames:?}");
    };
    assert_eq!((*reason, *last_seq, text.as_str()), (GoodbyeReason::Shutdown, 0, "maintenance window"));

    let refused = Client::connect(publisher.local_addr(), Duration::from_secs(1));
    assert!(refused.is_err(), "the listener still accepts connections after close_all");
}

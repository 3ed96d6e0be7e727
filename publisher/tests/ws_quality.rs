//! Feed quality on the WebSocket and SSE interfaces over 127.0.0.1: every client gets the
//! current quality on connect and each change after, without rate limiting.

mod ws_common;

use mdfh_matcher::{BookEvent, FeedQuality, QualityState};
use mdfh_publisher::ws::WsConfig;
use mdfh_publisher::Envelope;
use ws_common::*;

fn quality(feed_seq: u64, state: QualityState, since: u64) -> Envelope {
    envelope(feed_seq, BookEvent::Quality { quality: FeedQuality { state, since } })
}

#[tokio::test]
async fn quality_on_connect_and_change() {
    let (mut tap, server) = start(config());
    let mut socket = connect(&server).await;
    let _ = next_of(&mut socket, &["directory"]).await;
    let initial = next_of(&mut socket, &["quality"]).await;
    assert_eq!(initial["state"], "ok");
    assert_eq!(initial["since"], 0);

    tap.on_event(&quality(15, QualityState::Recovering, 12));
    let change = next_of(&mut socket, &["quality"]).await;
    assert_eq!(change["state"], "recovering");
    assert_eq!(change["since"], 12);
    assert_eq!(change["feed_seq"], 15);

    // A client that connects later gets the current quality, not Ok.
    let mut late = connect(&server).await;
    let current = next_of(&mut late, &["quality"]).await;
    assert_eq!(current["state"], "recovering");
    assert_eq!(current["since"], 12);
}

#[tokio::test]
async fn quality_changes_not_rate_limited() {
    let (mut tap, server) = start(WsConfig { max_rate_per_client: 1, ..config() });
    tap.on_event(&directory(1, "AAPL"));
    let mut socket = connect(&server).await;
    send_json(&mut socket, r#"{"op":"subscribe","symbol":"AAPL"}"#).await;
    let _ = next_of(&mut socket, &["snapshot"]).await;

    let changes = [
        (QualityState::Recovering, 20, "recovering"),
        (QualityState::Recovered, 0, "recovered"),
        (QualityState::Stale, 30, "stale"),
    ];
    for (i, (state, since, _)) in changes.iter().enumerate() {
        tap.on_event(&level(100 + i as u64, 1, mdfh_feed::itch::Side::Buy, 9_990, 10 + i as u64));
        tap.on_event(&quality(100 + i as u64, *state, *since));
    }
    for (_, since, name) in changes {
        let message = next_of(&mut socket, &["quality"]).await;
        assert_eq!(message["state"], name);
        assert_eq!(message["since"], since);
    }

    tap.on_event(&envelope(0, BookEvent::Reset));
    let _ = next_of(&mut socket, &["reset"]).await;
    let after_reset = next_of(&mut socket, &["quality"]).await;
    assert_eq!(after_reset["state"], "ok", "a Reset restores quality Ok");
}

#[tokio::test]
async fn sse_sends_current_quality() {
    let (mut tap, server) = start(config());
    tap.on_event(&quality(8, QualityState::Stale, 5));
    // The bridge drains the ring every millisecond; wait until a WebSocket client sees the change.
    let mut socket = connect(&server).await;
    let mut seen = next_of(&mut socket, &["quality"]).await;
    while seen["state"] != "stale" {
        seen = next_of(&mut socket, &["quality"]).await;
    }

    let addr = server.local_addr();
    let (status, text) =
        tokio::task::spawn_blocking(move || http_get(addr, "/sse HTTP/1.1", "\"since\":5"))
            .await
            .expect("SSE request task");
    assert_eq!(status, 200);
    assert!(text.contains("event: quality"), "response: {text}");
    assert!(text.contains(r#""state":"stale""#), "response: {text}");
}

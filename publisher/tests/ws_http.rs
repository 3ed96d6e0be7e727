//! Plain HTTP routes of the WebSocket server over 127.0.0.1: the page, `/stats` and `/sse`.

mod ws_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};

use mdfh_feed::itch::Side;
use mdfh_publisher::ws::WsConfig;
use ws_common::*;

#[test]
fn page_has_ladder_ids() {
    let (_tap, server) = start(config());
    let (status, page) = http_get(server.local_addr(), "/ HTTP/1.1", "</html>");
    assert_eq!(status, 200);
    for id in ["id=\"ladder\"", "id=\"asks\"", "id=\"bids\"", "id=\"tape\"", "id=\"chart\"", "id=\"quality\"", "data-feed-seq", "/terminal.js"] {
        assert!(page.contains(id), "page lacks {id}");
    }
    assert!(!page.contains("https://"), "page loads no external resource");

    let (status, script) = http_get(server.local_addr(), "/terminal.js HTTP/1.1", "");
    assert_eq!(status, 200);
    assert!(script.contains("dataset.level"), "script sets data-level on ladder rows");
    assert!(script.contains("dataset.feedSeq"), "script sets data-feed-seq");
    assert!(script.contains(r#"case "quality""#), "script handles quality messages");
}

#[test]
fn stats_route_serves_document() {
    let stats = Arc::new(Mutex::new(String::from(r#"{"messages_per_sec":1234}"#)));
    let (_tap, server) = start_with_stats(WsConfig { token: Some("t0k".into()), ..config() }, stats);
    let (status, _) = http_get(server.local_addr(), "/stats HTTP/1.1", "");
    assert_eq!(status, 401);
    let (status, body) = http_get(server.local_addr(), "/stats?token=t0k HTTP/1.1", "");
    assert_eq!(status, 200);
    assert!(body.contains(r#"{"messages_per_sec":1234}"#));
}

#[test]
fn sse_emits_bbo_and_stats() {
    let stats = Arc::new(Mutex::new(String::from(r#"{"messages_per_sec":77}"#)));
    let (mut tap, server) = start_with_stats(config(), stats);
    tap.on_event(&directory(1, "AAPL"));
    tap.on_event(&directory(2, "MSFT"));

    let mut stream = TcpStream::connect(server.local_addr()).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("set read timeout");
    let request = format!("GET /sse?symbol=AAPL HTTP/1.1\r\nHost: {}\r\n\r\n", server.local_addr());
    stream.write_all(request.as_bytes()).expect("send request");

    let mut text = String::new();
    let mut buffer = [0u8; 4096];
    let mut read_until = |text: &mut String, needle: &str| {
        while !text.contains(needle) {
            let n = stream.read(&mut buffer).expect("SSE data before the read timeout");
            assert!(n > 0, "SSE stream ended early: {text}");
            text.push_str(&String::from_utf8_lossy(buffer.get(..n).unwrap_or_default()));
        }
    };
    read_until(&mut text, "\r\n\r\n");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("text/event-stream"), "{text}");

    // The MSFT change comes first and must be filtered out.
    tap.on_event(&level(10, 2, Side::Buy, 3_000_000, 5));
    tap.on_event(&level(11, 1, Side::Buy, 1_500_000, 100));
    read_until(&mut text, "\"feed_seq\":11");
    read_until(&mut text, "event: stats");
    read_until(&mut text, "\"messages_per_sec\":77");

    assert!(text.contains("event: bbo"), "{text}");
    assert!(text.contains(r#""symbol":"AAPL""#), "{text}");
    assert!(!text.contains(r#""symbol":"MSFT""#), "filtered symbol leaked: {text}");
    assert!(text.contains(r#""bid":[1500000,100]"#), "{text}");
    assert_eq!(server.stats().sse_clients, 1);
}

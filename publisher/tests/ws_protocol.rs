//! WebSocket request handling, close codes, access checks and shutdown over 127.0.0.1.

mod ws_common;

use std::time::Duration;

use futures_util::SinkExt;
use mdfh_publisher::ws::WsConfig;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error, Message};
use ws_common::*;

#[tokio::test]
async fn unknown_symbol_gets_error() {
    let (_tap, server) = start(config());
    let mut socket = connect(&server).await;
    send_json(&mut socket, r#"{"op":"subscribe","symbol":"NOPE"}"#).await;
    let error = next_of(&mut socket, &["error", "snapshot"]).await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["symbol"], "NOPE");
    assert!(error["message"].as_str().unwrap_or("").contains("unknown symbol"));
}

#[tokio::test]
async fn invalid_request_keeps_connection() {
    let (mut tap, server) = start(config());
    tap.on_event(&directory(1, "AAPL"));
    let mut socket = connect(&server).await;
    send_json(&mut socket, r#"{"op":"buy","symbol":"AAPL"}"#).await;
    let error = next_of(&mut socket, &["error"]).await;
    assert!(error["message"].as_str().unwrap_or("").starts_with("invalid request"));

    send_json(&mut socket, r#"{"op":"subscribe","symbol":"AAPL"}"#).await;
    let snapshot = next_of(&mut socket, &["snapshot"]).await;
    assert_eq!(snapshot["symbol"], "AAPL");
    assert_eq!(server.stats().protocol_errors, 1);
}

#[tokio::test]
async fn unsubscribe_stops_updates() {
    let (mut tap, server) = start(WsConfig { max_rate_per_client: 0, ..config() });
    tap.on_event(&directory(1, "AAPL"));
    tap.on_event(&directory(2, "MSFT"));
    let mut socket = connect(&server).await;
    send_json(&mut socket, r#"{"op":"subscribe","symbol":"AAPL"}"#).await;
    send_json(&mut socket, r#"{"op":"subscribe","symbol":"MSFT"}"#).await;
    let _ = next_of(&mut socket, &["snapshot"]).await;
    let _ = next_of(&mut socket, &["snapshot"]).await;
    send_json(&mut socket, r#"{"op":"unsubscribe","symbol":"AAPL"}"#).await;
    let reply = next_of(&mut socket, &["unsubscribed"]).await;
    assert_eq!(reply["symbol"], "AAPL");

    tap.on_event(&trade(7, 1, 100));
    tap.on_event(&trade(8, 2, 200));
    let trade = next_of(&mut socket, &["trade"]).await;
    assert_eq!(trade["symbol"], "MSFT", "no AAPL trade after unsubscribe");
    assert_eq!(trade["feed_seq"], 8);
}

#[tokio::test]
async fn malformed_json_closes_1007() {
    let (_tap, server) = start(config());
    let mut socket = connect(&server).await;
    send_json(&mut socket, "{not json").await;
    assert_eq!(close_code(&mut socket).await, 1007);
    assert_eq!(server.stats().protocol_errors, 1);
}

#[tokio::test]
async fn binary_message_closes_1003() {
    let (_tap, server) = start(config());
    let mut socket = connect(&server).await;
    socket.send(Message::binary(vec![1u8, 2, 3])).await.expect("send binary");
    assert_eq!(close_code(&mut socket).await, 1003);
}

#[tokio::test]
async fn oversized_frame_closes_1009() {
    let (_tap, server) = start(WsConfig { max_frame_bytes: 256, ..config() });
    let mut socket = connect(&server).await;
    let symbol = "A".repeat(1000);
    send_json(&mut socket, &format!(r#"{{"op":"subscribe","symbol":"{symbol}"}}"#)).await;
    assert_eq!(close_code(&mut socket).await, 1009);
}

async fn http_status(server: &mdfh_publisher::ws::WsServer, query: &str, headers: &[(&'static str, &str)]) -> u16 {
    let mut request = format!("ws://{}/ws{query}", server.local_addr()).into_client_request().expect("valid URL");
    for (name, value) in headers {
        request.headers_mut().insert(*name, HeaderValue::from_str(value).expect("valid header"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => 101,
        Err(Error::Http(response)) => response.status().as_u16(),
        Err(error) => panic!("unexpected handshake error: {error}"),
    }
}

#[tokio::test]
async fn token_checked_before_upgrade() {
    let (_tap, server) = start(WsConfig { token: Some("s3cret".into()), ..config() });
    assert_eq!(http_status(&server, "", &[]).await, 401);
    assert_eq!(http_status(&server, "?token=wrong", &[]).await, 401);
    assert_eq!(http_status(&server, "", &[("authorization", "Bearer wrong")]).await, 401);
    assert_eq!(http_status(&server, "?token=s3cret", &[]).await, 101);
    assert_eq!(http_status(&server, "", &[("authorization", "Bearer s3cret")]).await, 101);
    assert_eq!(server.stats().auth_failures, 3);
}

#[tokio::test]
async fn origin_checked_before_upgrade() {
    let allowed = WsConfig { allowed_origins: vec!["http://terminal.example".into()], ..config() };
    let (_tap, server) = start(allowed);
    assert_eq!(http_status(&server, "", &[("origin", "http://evil.example")]).await, 403);
    assert_eq!(http_status(&server, "", &[("origin", "http://terminal.example")]).await, 101);
    assert_eq!(http_status(&server, "", &[]).await, 101, "no Origin: not a browser");
    assert_eq!(server.stats().origin_rejections, 1);

    let (_tap, server) = start(config());
    let own = format!("http://{}", server.local_addr());
    assert_eq!(http_status(&server, "", &[("origin", own.as_str())]).await, 101, "own origin");
    assert_eq!(http_status(&server, "", &[("origin", "http://evil.example")]).await, 403);
}

#[tokio::test]
async fn max_clients_rejects_with_503() {
    let (_tap, server) = start(WsConfig { max_clients: 2, ..config() });
    let _first = connect(&server).await;
    let _second = connect(&server).await;
    assert_eq!(http_status(&server, "", &[]).await, 503);
    assert_eq!(server.stats().over_capacity, 1);
}

#[tokio::test]
async fn shutdown_closes_1001() {
    let (_tap, mut server) = start(config());
    let mut socket = connect(&server).await;
    let _ = next_of(&mut socket, &["directory"]).await;
    let closer = tokio::task::spawn_blocking(move || {
        server.shutdown();
        server
    });
    assert_eq!(close_code(&mut socket).await, 1001);
    let server = closer.await.expect("shutdown thread");
    assert_eq!(server.stats().clients, 0);
}

#[tokio::test]
async fn connect_disconnect_1000_times() {
    let (_tap, server) = start(config());
    for _ in 0..1000 {
        let mut socket = connect(&server).await;
        socket.close(None).await.expect("close handshake");
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.stats().clients != 0 {
        assert!(tokio::time::Instant::now() < deadline, "clients still counted: {:?}", server.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.stats().connections_accepted, 1000);

    let mut socket = connect(&server).await;
    let directory = next_of(&mut socket, &["directory"]).await;
    assert!(directory["symbols"].is_array(), "server still serves after the loop");
}

//! Helpers shared by the `ws_*` integration tests: a server on 127.0.0.1 with a free port,
//! WebSocket clients, envelope builders, and a client-side L2 book built from the JSON messages.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use mdfh_feed::itch::{Side, Stock};
use mdfh_matcher::{BookEvent, LevelChange, TradeEvent, TradeKind};
use mdfh_publisher::ws::{self, WsConfig, WsServer, WsTap};
use mdfh_publisher::Envelope;
use serde_json::Value;
use tokio::net::TcpStream as TokioTcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Socket = WebSocketStream<MaybeTlsStream<TokioTcpStream>>;

/// How long a test waits for one expected message before failing.
pub const WAIT: Duration = Duration::from_secs(5);

pub fn config() -> WsConfig {
    WsConfig { listen: SocketAddr::from(([127, 0, 0, 1], 0)), ..WsConfig::default() }
}

pub fn start(cfg: WsConfig) -> (WsTap, WsServer) {
    let stats = Arc::new(Mutex::new(String::from(r#"{"messages_per_sec":0}"#)));
    ws::start(cfg, stats).expect("start the WebSocket server on 127.0.0.1")
}

pub fn start_with_stats(cfg: WsConfig, stats: Arc<Mutex<String>>) -> (WsTap, WsServer) {
    ws::start(cfg, stats).expect("start the WebSocket server on 127.0.0.1")
}

pub fn envelope(feed_seq: u64, event: BookEvent) -> Envelope {
    Envelope { feed_seq, recv_ns: 0, booked_ns: 0, event }
}

pub fn directory(locate: u16, symbol: &str) -> Envelope {
    envelope(0, BookEvent::Directory { locate, stock: Stock::new(symbol) })
}

pub fn level(feed_seq: u64, locate: u16, side: Side, price: u32, shares: u64) -> Envelope {
    let change = LevelChange { side, price, shares, orders: u32::from(shares > 0) };
    envelope(feed_seq, BookEvent::Level { locate, change, top_changed: true })
}

pub fn trade(feed_seq: u64, locate: u16, price: u32) -> Envelope {
    let trade = TradeEvent { price, shares: 1, match_number: feed_seq, resting_side: Some(Side::Buy), kind: TradeKind::Execution };
    envelope(feed_seq, BookEvent::Trade { locate, trade })
}

pub async fn connect(server: &WsServer) -> Socket {
    let url = format!("ws://{}/ws", server.local_addr());
    let (socket, _) = tokio_tungstenite::connect_async(url).await.expect("WebSocket connect");
    socket
}

pub async fn send_json(socket: &mut Socket, text: &str) {
    socket.send(Message::text(text)).await.expect("send request");
}

/// Returns the next text message as JSON, skipping `stats` and `directory` unless `kinds` includes
/// them. Fails the test after [`WAIT`].
pub async fn next_of(socket: &mut Socket, kinds: &[&str]) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .unwrap_or_else(|_| panic!("no {kinds:?} message within {WAIT:?}"))
            .expect("connection open")
            .expect("valid frame");
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(text.as_str()).expect("server sends JSON");
            let kind = value["type"].as_str().unwrap_or("");
            if kinds.contains(&kind) {
                return value;
            }
        }
    }
}

/// Reads until the close frame and returns its code; fails on a plain disconnect.
pub async fn close_code(socket: &mut Socket) -> u16 {
    loop {
        let message = tokio::time::timeout(WAIT, socket.next()).await.expect("close within the wait");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
            Some(Ok(Message::Close(None))) => panic!("close frame without a code"),
            Some(Ok(_)) => continue,
            Some(Err(error)) => panic!("connection failed before a close frame: {error}"),
            None => panic!("connection ended without a close frame"),
        }
    }
}

/// A client-side book built from `snapshot` and `level` messages, truncated to `depth` levels
/// per side as the protocol requires.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ClientBook {
    pub depth: usize,
    pub bids: BTreeMap<u64, u64>,
    pub asks: BTreeMap<u64, u64>,
    pub feed_seq: u64,
    pub status: String,
}

impl ClientBook {
    pub fn apply(&mut self, message: &Value) {
        match message["type"].as_str() {
            Some("snapshot") => {
                self.depth = message["depth"].as_u64().unwrap_or(0) as usize;
                self.bids = triples(&message["bids"]);
                self.asks = triples(&message["asks"]);
                self.status = message["status"].as_str().unwrap_or("").to_string();
                self.feed_seq = message["feed_seq"].as_u64().unwrap_or(0);
            }
            Some("level") => {
                let price = message["price"].as_u64().unwrap_or(0);
                let shares = message["shares"].as_u64().unwrap_or(0);
                let side = if message["side"] == "bid" { &mut self.bids } else { &mut self.asks };
                if shares == 0 {
                    side.remove(&price);
                } else {
                    side.insert(price, shares);
                }
                self.truncate();
                self.feed_seq = message["feed_seq"].as_u64().unwrap_or(0);
            }
            Some("trade") | Some("bbo") => self.feed_seq = message["feed_seq"].as_u64().unwrap_or(0),
            _ => {}
        }
    }

    fn truncate(&mut self) {
        if self.depth == 0 {
            return;
        }
        while self.bids.len() > self.depth {
            self.bids.pop_first();
        }
        while self.asks.len() > self.depth {
            self.asks.pop_last();
        }
    }
}

fn triples(levels: &Value) -> BTreeMap<u64, u64> {
    levels
        .as_array()
        .map(|a| a.iter().map(|l| (l[0].as_u64().unwrap_or(0), l[1].as_u64().unwrap_or(0))).collect())
        .unwrap_or_default()
}

/// The test's own full book, fed the same level changes as the server.
#[derive(Debug, Default)]
pub struct Reference {
    pub bids: BTreeMap<u64, u64>,
    pub asks: BTreeMap<u64, u64>,
}

impl Reference {
    pub fn apply(&mut self, side: Side, price: u32, shares: u64) {
        let book = if side == Side::Buy { &mut self.bids } else { &mut self.asks };
        if shares == 0 {
            book.remove(&u64::from(price));
        } else {
            book.insert(u64::from(price), shares);
        }
    }

    /// Returns the top `depth` levels per side (every level when `depth` is 0).
    pub fn top(&self, depth: usize) -> (BTreeMap<u64, u64>, BTreeMap<u64, u64>) {
        let take = if depth == 0 { usize::MAX } else { depth };
        let bids = self.bids.iter().rev().take(take).map(|(p, s)| (*p, *s)).collect();
        let asks = self.asks.iter().take(take).map(|(p, s)| (*p, *s)).collect();
        (bids, asks)
    }
}

/// A small deterministic generator (xorshift64), so that failures reproduce.
pub struct Xorshift(pub u64);

impl Xorshift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Generates `count` level changes on one instrument that a real book could produce: removals
/// only of prices that rest, bids below 10000 and asks from 10001, both sides non-crossing.
pub fn random_levels(rng: &mut Xorshift, reference: &mut Reference, locate: u16, first_seq: u64, count: usize) -> Vec<Envelope> {
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let side = if rng.below(2) == 0 { Side::Buy } else { Side::Sell };
        let price = match side {
            Side::Buy => 9_960 + rng.below(40) as u32,
            Side::Sell => 10_001 + rng.below(40) as u32,
        };
        let resting = if side == Side::Buy { &reference.bids } else { &reference.asks };
        let shares = if resting.contains_key(&u64::from(price)) && rng.below(3) == 0 { 0 } else { 1 + rng.below(900) };
        reference.apply(side, price, shares);
        out.push(level(first_seq + i as u64, locate, side, price, shares));
    }
    out
}

/// Sends one HTTP/1.1 GET over a plain socket and returns the status code and the response text
/// read until `until` appears or the server closes.
pub fn http_get(addr: SocketAddr, path_and_headers: &str, until: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the server");
    stream.set_read_timeout(Some(WAIT)).expect("set read timeout");
    let request = format!("GET {path_and_headers}\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send request");
    let mut text = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                text.extend_from_slice(buffer.get(..n).unwrap_or_default());
                if !until.is_empty() && String::from_utf8_lossy(&text).contains(until) {
                    break;
                }
            }
            Err(error) => panic!("reading the response failed: {error}"),
        }
    }
    let text = String::from_utf8_lossy(&text).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

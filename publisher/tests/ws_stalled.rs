//! Clients that stop reading, over 127.0.0.1: the other clients keep receiving every update in
//! order, and the stalled client is paused, then either resumes with a conflated snapshot once it
//! reads again or is closed with 1008 when it stays paused past `max_pause`.

mod ws_common;

use std::net::SocketAddr;
use std::time::Duration;

use mdfh_publisher::ws::{WsConfig, WsServer, WsTap};
use serde_json::Value;
use socket2::{Domain, Socket as RawSocket, Type};
use tokio_tungstenite::MaybeTlsStream;
use ws_common::*;

/// Level events per round. With a `bbo` per event, a round queues about 8 KiB for each client,
/// well below the pause threshold of [`stalled_config`], so a client that reads every round is
/// never paused.
const ROUND_EVENTS: usize = 40;
/// Upper bound on rounds while waiting for the stalled client to be paused or closed.
const MAX_ROUNDS: u32 = 5_000;
/// Receive buffer of the stalled client's socket, small so that its kernel buffers fill quickly.
const STALLED_RECV_BUFFER: usize = 4096;

fn stalled_config(max_pause: Duration) -> WsConfig {
    WsConfig { max_rate_per_client: 0, pause_queue_bytes: 64 * 1024, max_pause, ring_capacity: 1 << 18, ..config() }
}

/// Connects a client whose socket has a receive buffer of [`STALLED_RECV_BUFFER`] bytes.
async fn connect_small_buffer(server: &WsServer) -> Socket {
    let addr: SocketAddr = server.local_addr();
    let raw = RawSocket::new(Domain::IPV4, Type::STREAM, None).expect("create a TCP socket");
    raw.set_recv_buffer_size(STALLED_RECV_BUFFER).expect("set SO_RCVBUF");
    raw.connect(&addr.into()).expect("connect to the server");
    raw.set_nonblocking(true).expect("set non-blocking");
    let stream = tokio::net::TcpStream::from_std(raw.into()).expect("register the socket with tokio");
    let url = format!("ws://{addr}/ws");
    let (socket, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream)).await.expect("WebSocket handshake");
    socket
}

/// The test's feed: the reference book, the next `feed_seq` and the generator of level changes.
struct Feed {
    rng: Xorshift,
    reference: Reference,
    next_seq: u64,
}

impl Feed {
    /// Feeds [`ROUND_EVENTS`] level changes and one trade, and returns the trade's `feed_seq`.
    fn round(&mut self, tap: &mut WsTap) -> u64 {
        for env in random_levels(&mut self.rng, &mut self.reference, 1, self.next_seq, ROUND_EVENTS) {
            tap.on_event(&env);
        }
        let trade_seq = self.next_seq + ROUND_EVENTS as u64;
        tap.on_event(&trade(trade_seq, 1, 10_000));
        self.next_seq = trade_seq + 1;
        trade_seq
    }
}

/// A client that reads every message, with the `feed_seq` its next `level` message must carry.
struct Reader {
    socket: Socket,
    book: ClientBook,
    next_level_seq: u64,
}

impl Reader {
    /// Reads up to the trade with `trade_seq`, checking that no level message is missing or out
    /// of order and that no snapshot arrives in between.
    async fn read_round(&mut self, trade_seq: u64) {
        loop {
            let message = next_of(&mut self.socket, &["snapshot", "level", "bbo", "trade"]).await;
            match message["type"].as_str() {
                Some("snapshot") => panic!("unexpected snapshot while reading live updates: {message}"),
                Some("level") => {
                    assert_eq!(message["feed_seq"], self.next_level_seq, "level message missing or out of order");
                    self.next_level_seq += 1;
                }
                _ => {}
            }
            self.book.apply(&message);
            if message["type"] == "trade" && message["feed_seq"] == trade_seq {
                self.next_level_seq = trade_seq + 1;
                return;
            }
        }
    }
}

/// Subscribes `socket` to AAPL at full depth and returns the subscription snapshot.
async fn subscribe(socket: &mut Socket) -> Value {
    send_json(socket, r#"{"op":"subscribe","symbol":"AAPL","depth":0,"max_rate":0}"#).await;
    next_of(socket, &["snapshot"]).await
}

#[tokio::test]
async fn stalled_client_paused_then_resumes() {
    let (mut tap, server) = start(stalled_config(Duration::from_secs(600)));
    tap.on_event(&directory(1, "AAPL"));
    let mut feed = Feed { rng: Xorshift(0x5eed_0f57_a11e), reference: Reference::default(), next_seq: 1 };

    let mut stalled = connect_small_buffer(&server).await;
    let mut normal = Reader { socket: connect(&server).await, book: ClientBook::default(), next_level_seq: 1 };
    normal.book.apply(&subscribe(&mut normal.socket).await);
    let _ = subscribe(&mut stalled).await;

    // The stalled client reads nothing from here on until it is paused and ten more rounds went by.
    let mut rounds_after_pause = 0;
    for _ in 0..MAX_ROUNDS {
        let trade_seq = feed.round(&mut tap);
        normal.read_round(trade_seq).await;
        if server.stats().client_pauses > 0 {
            rounds_after_pause += 1;
            if rounds_after_pause > 10 {
                break;
            }
        }
    }
    let stats = server.stats();
    assert!(stats.client_pauses >= 1, "stalled client never paused: {stats:?}");
    assert!(stats.paused_updates > 0, "no update skipped for the paused client: {stats:?}");
    assert_eq!(stats.slow_client_disconnects, 0);
    assert_eq!(stats.dropped, 0);
    let (bids, asks) = feed.reference.top(0);
    assert_eq!(normal.book.bids, bids, "normal client's bids while the other one stalls");
    assert_eq!(normal.book.asks, asks, "normal client's asks while the other one stalls");

    // The stalled client reads again: first the messages queued before the pause, then one
    // conflated snapshot equal to the current book.
    let last_seq = feed.next_seq - 1;
    let snapshot = loop {
        let message = next_of(&mut stalled, &["snapshot", "level", "bbo", "trade"]).await;
        if message["type"] == "snapshot" {
            break message;
        }
    };
    assert_eq!(snapshot["conflated"], true, "resume snapshot is conflated");
    assert_eq!(snapshot["status"], "ok");
    assert_eq!(snapshot["feed_seq"], last_seq, "resume snapshot reflects every event fed");
    let mut resumed = Reader { socket: stalled, book: ClientBook::default(), next_level_seq: feed.next_seq };
    resumed.book.apply(&snapshot);
    assert_eq!(resumed.book.bids, bids, "resume snapshot bids");
    assert_eq!(resumed.book.asks, asks, "resume snapshot asks");
    assert!(server.stats().client_resumes >= 1);

    // Live updates follow the snapshot, on both clients.
    for _ in 0..3 {
        let trade_seq = feed.round(&mut tap);
        resumed.read_round(trade_seq).await;
        normal.read_round(trade_seq).await;
    }
    let (bids, asks) = feed.reference.top(0);
    assert_eq!(resumed.book.bids, bids, "resumed client's bids after live updates");
    assert_eq!(resumed.book.asks, asks, "resumed client's asks after live updates");
    assert_eq!(normal.book.bids, bids, "normal client's bids at the end");
    assert_eq!(normal.book.asks, asks, "normal client's asks at the end");
    assert_eq!(server.stats().slow_client_disconnects, 0);
}

#[tokio::test]
async fn stalled_client_closed_after_max_pause() {
    let (mut tap, server) = start(stalled_config(Duration::from_millis(200)));
    tap.on_event(&directory(1, "AAPL"));
    let mut feed = Feed { rng: Xorshift(0x00c1_05ed), reference: Reference::default(), next_seq: 1 };

    let mut stalled = connect_small_buffer(&server).await;
    let mut normal = Reader { socket: connect(&server).await, book: ClientBook::default(), next_level_seq: 1 };
    normal.book.apply(&subscribe(&mut normal.socket).await);
    let _ = subscribe(&mut stalled).await;

    for _ in 0..MAX_ROUNDS {
        let trade_seq = feed.round(&mut tap);
        normal.read_round(trade_seq).await;
        if server.stats().slow_client_disconnects > 0 {
            break;
        }
        // Pace the rounds, so that the 200 ms pause limit passes in a bounded number of them.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let stats = server.stats();
    assert_eq!(stats.slow_client_disconnects, 1, "stalled client not disconnected: {stats:?}");
    assert!(stats.client_pauses >= 1, "stalled client was not paused first: {stats:?}");
    assert_eq!(stats.client_resumes, 0, "a client that never reads cannot resume");

    // The close frame follows the messages still buffered for the stalled client.
    assert_eq!(close_code(&mut stalled).await, 1008);

    // The normal client still gets every update, and the server counts one client.
    let trade_seq = feed.round(&mut tap);
    normal.read_round(trade_seq).await;
    let (bids, asks) = feed.reference.top(0);
    assert_eq!(normal.book.bids, bids);
    assert_eq!(normal.book.asks, asks);
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.stats().clients != 1 {
        assert!(tokio::time::Instant::now() < deadline, "closed client still counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

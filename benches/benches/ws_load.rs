//! WebSocket load benchmark: mdfh's bridge (`mdfh_publisher::ws`) against a naive tokio server,
//! both fed the same level events at a fixed rate and read by the same WebSocket clients.
//!
//! One thread feeds `level` events for a few instruments at a fixed rate, through `WsTap::on_event`
//! for mdfh and through a `tokio::sync::broadcast` channel for the naive server. The naive server
//! gives each connection a task that receives every event and JSON-encodes each one it subscribed
//! to with `serde_json`, then sends it as one WebSocket message. mdfh encodes each event once and
//! shares the bytes among the clients.
//! Both servers run on a current-thread tokio runtime on a thread of their own. The clients are
//! tokio-tungstenite tasks on one more current-thread runtime, so the clients take up to one core.
//!
//! Latency is measured from the feeding thread's call to the receipt of the message by a client:
//! the feeding thread stores the send time of each `feed_seq`, and the client looks it up when a
//! `level` message arrives. CPU time is the whole process's (`getrusage(RUSAGE_SELF)`), clients
//! included, from the start of the feed until the last messages drained.
//!
//! Scenarios: every client count of `WS_LOAD_CLIENTS` with mdfh, then with the naive server;
//! then the stalled-client comparison: `WS_LOAD_ROUNDS` rounds, each running mdfh with the first
//! client count of normal clients alone and with `WS_LOAD_STALLED` more clients that subscribe
//! to every symbol and never read. The order inside a round alternates (alone first, then with
//! stalled first), so that a drift of the machine's load over time affects both sides alike. Each
//! round yields the ratio with / without of the normal clients' P99, and the summary is the
//! median of those ratios next to every round's figures, so that the noise is visible.
//!
//! When `expected` exceeds `delivered` with no loss counted, the server or the client runtime fell
//! behind and messages were still queued when the scenario ended.
//!
//! Run: `cargo bench -p mdfh-benches --bench ws_load`. Environment:
//! - `WS_LOAD_RATE`: level events per second (default 20000);
//! - `WS_LOAD_SECS`: seconds of feed per scenario (default 3);
//! - `WS_LOAD_INSTRUMENTS`: instruments the events are spread over, round robin (default 20);
//! - `WS_LOAD_CLIENTS`: comma-separated client counts (default `100,1000`);
//! - `WS_LOAD_STALLED`: clients that never read in the stalled-client comparison (default 10; 0
//!   skips the comparison);
//! - `WS_LOAD_ROUNDS`: rounds of the stalled-client comparison (default 5);
//! - `WS_LOAD_COMPARE_NAIVE`: `0` skips the mdfh / naive scenarios and runs only the stalled-client
//!   comparison (default 1);
//! - `WS_LOAD_SUBSCRIBE`: `one` (client i subscribes to symbol i mod instruments, the default) or
//!   `all` (every client subscribes to every symbol).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use mdfh_feed::itch::{Side, Stock};
use mdfh_matcher::{BookEvent, LevelChange};
use mdfh_publisher::ws::{self, WsConfig, WsTap};
use mdfh_publisher::Envelope;
use tokio::sync::{broadcast, watch, Semaphore};
use tokio_tungstenite::tungstenite::Message;

/// Highest latency the histograms record; larger values are clamped to it.
const LATENCY_MAX_NS: u64 = 60_000_000_000;
/// Time given to the servers to deliver what is queued after the feed stops.
const DRAIN: Duration = Duration::from_millis(300);
/// Clients connecting at once, kept below the listen backlog (128 for std's `TcpListener`).
const CONNECTS_IN_FLIGHT: usize = 64;
/// Capacity of the naive server's broadcast channel, the same as mdfh's default tap ring.
const NAIVE_CHANNEL_CAPACITY: usize = 1 << 16;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[derive(Debug, Clone)]
struct Settings {
    rate: u64,
    secs: f64,
    instruments: u16,
    client_counts: Vec<usize>,
    stalled: usize,
    rounds: usize,
    compare_naive: bool,
    subscribe_all: bool,
}

impl Settings {
    fn from_env() -> Settings {
        let client_counts = std::env::var("WS_LOAD_CLIENTS")
            .ok()
            .map(|list| list.split(',').filter_map(|n| n.trim().parse().ok()).collect::<Vec<usize>>())
            .filter(|counts| !counts.is_empty())
            .unwrap_or_else(|| vec![100, 1000]);
        Settings {
            rate: env_or("WS_LOAD_RATE", 20_000u64).max(1),
            secs: env_or("WS_LOAD_SECS", 3.0f64).max(0.1),
            instruments: env_or("WS_LOAD_INSTRUMENTS", 20u16).clamp(1, 999),
            client_counts,
            stalled: env_or("WS_LOAD_STALLED", 10usize),
            rounds: env_or("WS_LOAD_ROUNDS", 5usize).max(1),
            compare_naive: std::env::var("WS_LOAD_COMPARE_NAIVE").ok().as_deref() != Some("0"),
            subscribe_all: std::env::var("WS_LOAD_SUBSCRIBE").is_ok_and(|v| v == "all"),
        }
    }

    fn symbol(locate: u16) -> String {
        format!("SYM{locate:03}")
    }

    /// Returns the locates client `index` subscribes to.
    fn locates_for(&self, index: usize, all: bool) -> Vec<u16> {
        if all || self.subscribe_all {
            (1..=self.instruments).collect()
        } else {
            vec![1 + (index % usize::from(self.instruments)) as u16]
        }
    }
}

/// Send time of every fed `feed_seq`, in nanoseconds since `epoch` plus 1, so that 0 means not sent.
struct Timeline {
    epoch: Instant,
    sent_ns: Vec<AtomicU64>,
}

impl Timeline {
    fn new(capacity: usize) -> Timeline {
        Timeline { epoch: Instant::now(), sent_ns: (0..capacity).map(|_| AtomicU64::new(0)).collect() }
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64 + 1
    }

    /// Returns the nanoseconds from the feeding of `feed_seq` to now, or `None` if it was not fed.
    fn latency_ns(&self, feed_seq: u64) -> Option<u64> {
        let sent = self.sent_ns.get(usize::try_from(feed_seq).ok()?)?.load(Ordering::Acquire);
        (sent != 0).then(|| self.now_ns().saturating_sub(sent))
    }
}

/// The destination of the feeding thread's events.
enum Sink {
    Mdfh(WsTap),
    Naive(broadcast::Sender<Envelope>),
}

impl Sink {
    fn send(&mut self, env: &Envelope) {
        match self {
            Sink::Mdfh(tap) => tap.on_event(env),
            Sink::Naive(events) => {
                // An error means no receiver is connected, which loses nothing measured.
                let _ = events.send(*env);
            }
        }
    }
}

fn directory_event(locate: u16) -> Envelope {
    let stock = Stock::new(&Settings::symbol(locate));
    Envelope { feed_seq: 0, recv_ns: 0, booked_ns: 0, event: BookEvent::Directory { locate, stock } }
}

/// Returns the level event with sequence `feed_seq`: instruments in turn, bid and ask in turn, ten
/// prices per side, shares never 0 (no level is removed) and no change of the best price reported.
fn level_event(feed_seq: u64, instruments: u16) -> Envelope {
    let locate = 1 + (feed_seq % u64::from(instruments)) as u16;
    let round = feed_seq / u64::from(instruments);
    let rank = (round / 2 % 10) as u32;
    let (side, price) = if round.is_multiple_of(2) { (Side::Buy, 1_000_000 - rank * 100) } else { (Side::Sell, 1_000_100 + rank * 100) };
    let change = LevelChange { side, price, shares: 100 + feed_seq % 50 * 100, orders: 1 + (feed_seq % 5) as u32 };
    Envelope { feed_seq, recv_ns: 0, booked_ns: 0, event: BookEvent::Level { locate, change, top_changed: false } }
}

/// Feeds level events at `settings.rate` for `settings.secs` and returns the count fed per locate.
fn feed(sink: &mut Sink, timeline: &Timeline, settings: &Settings) -> Vec<u64> {
    let mut fed_per_locate = vec![0u64; usize::from(settings.instruments) + 1];
    let started = Instant::now();
    let mut feed_seq = 0u64;
    loop {
        let elapsed = started.elapsed().as_secs_f64();
        if elapsed >= settings.secs {
            break;
        }
        let due = (elapsed * settings.rate as f64) as u64;
        while feed_seq < due {
            feed_seq += 1;
            let Some(slot) = timeline.sent_ns.get(feed_seq as usize) else {
                return fed_per_locate;
            };
            let env = level_event(feed_seq, settings.instruments);
            slot.store(timeline.now_ns(), Ordering::Release);
            sink.send(&env);
            if let Some(count) = env.event.locate().and_then(|l| fed_per_locate.get_mut(usize::from(l))) {
                *count += 1;
            }
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    fed_per_locate
}

/// Messages and latencies one client received.
struct ClientReport {
    latency: Histogram<u64>,
    levels: u64,
    locates: Vec<u16>,
    /// True when the server closed the connection before the end of the scenario.
    closed_early: bool,
}

/// Returns the `feed_seq` of a `level` message, or `None` for any other message.
fn level_feed_seq(text: &str) -> Option<u64> {
    if !text.starts_with(r#"{"type":"level""#) {
        return None;
    }
    let key = r#""feed_seq":"#;
    let digits = text.get(text.rfind(key)? + key.len()..)?;
    digits.bytes().take_while(u8::is_ascii_digit).try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

/// Connects, subscribes to `locates` at full depth, waits for one snapshot per subscription, then
/// records the latency of every `level` message until `stop`. A client with `reading == false`
/// stops reading after the snapshots and keeps the connection open until `stop`.
async fn run_client(
    url: String,
    locates: Vec<u16>,
    reading: bool,
    timeline: Arc<Timeline>,
    connects: Arc<Semaphore>,
    ready: Arc<AtomicUsize>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<ClientReport> {
    let permit = connects.acquire().await?;
    let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str()).await.with_context(|| format!("connecting to {url}"))?;
    drop(permit);
    for &locate in &locates {
        let request = format!(r#"{{"op":"subscribe","symbol":"{}","depth":0}}"#, Settings::symbol(locate));
        socket.send(Message::text(request)).await?;
    }
    let mut snapshots = 0;
    while snapshots < locates.len() {
        match socket.next().await {
            Some(Ok(Message::Text(text))) if text.starts_with(r#"{"type":"snapshot""#) => snapshots += 1,
            Some(Ok(Message::Text(text))) if text.starts_with(r#"{"type":"error""#) => anyhow::bail!("subscribe failed: {}", text.as_str()),
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(error.into()),
            None => anyhow::bail!("connection closed before the subscription snapshots"),
        }
    }
    ready.fetch_add(1, Ordering::Relaxed);

    let mut report = ClientReport { latency: Histogram::new_with_bounds(1, LATENCY_MAX_NS, 3)?, levels: 0, locates, closed_early: false };
    if !reading {
        let _ = stop.changed().await;
        return Ok(report);
    }
    loop {
        tokio::select! {
            _ = stop.changed() => return Ok(report),
            message = socket.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    if let Some(ns) = level_feed_seq(text.as_str()).and_then(|seq| timeline.latency_ns(seq)) {
                        report.latency.saturating_record(ns.max(1));
                        report.levels += 1;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    report.closed_early = true;
                    return Ok(report);
                }
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Starts `reading + stalled` clients on a current-thread runtime of their own thread.
fn start_clients(
    addr: SocketAddr,
    settings: &Settings,
    reading: usize,
    stalled: usize,
    timeline: Arc<Timeline>,
    ready: Arc<AtomicUsize>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<JoinHandle<Vec<anyhow::Result<ClientReport>>>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let url = format!("ws://{addr}/ws");
    let connects = Arc::new(Semaphore::new(CONNECTS_IN_FLIGHT));
    let plans: Vec<(Vec<u16>, bool)> = (0..reading + stalled)
        .map(|i| if i < reading { (settings.locates_for(i, false), true) } else { (settings.locates_for(i, true), false) })
        .collect();
    std::thread::Builder::new().name("ws-load-clients".into()).spawn(move || {
        runtime.block_on(async move {
            let tasks: Vec<_> = plans
                .into_iter()
                .map(|(locates, is_reading)| {
                    let client = run_client(url.clone(), locates, is_reading, timeline.clone(), connects.clone(), ready.clone(), stop.clone());
                    tokio::spawn(client)
                })
                .collect();
            let mut reports = Vec::with_capacity(tasks.len());
            for task in tasks {
                reports.push(task.await.unwrap_or_else(|error| Err(anyhow::anyhow!("client task failed: {error}"))));
            }
            reports
        })
    })
}

/// A subscribe request, as in mdfh's protocol; the naive server ignores every other field.
#[derive(serde::Deserialize)]
struct NaiveRequest {
    op: String,
    symbol: String,
}

/// The `level` message of mdfh's protocol, encoded by the naive server once per client.
#[derive(serde::Serialize)]
struct NaiveLevel<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    symbol: &'a str,
    side: &'static str,
    price: u32,
    shares: u64,
    orders: u32,
    feed_seq: u64,
}

/// The naive reference server: one broadcast channel of envelopes, one task per connection.
struct NaiveServer {
    addr: SocketAddr,
    events: broadcast::Sender<Envelope>,
    /// Events the connection tasks missed because they fell behind the broadcast channel.
    lagged: Arc<AtomicU64>,
    shutdown: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl NaiveServer {
    fn start(instruments: u16) -> std::io::Result<NaiveServer> {
        let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (events, _) = broadcast::channel(NAIVE_CHANNEL_CAPACITY);
        let lagged = Arc::new(AtomicU64::new(0));
        let (shutdown, mut shutdown_rx) = watch::channel(false);
        let symbols: Arc<Vec<String>> = Arc::new((0..=instruments).map(Settings::symbol).collect());
        let (events_tx, lagged_count) = (events.clone(), lagged.clone());
        let thread = std::thread::Builder::new().name("naive-ws".into()).spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                loop {
                    tokio::select! {
                        _ = shutdown_rx.changed() => return,
                        accepted = listener.accept() => if let Ok((stream, _)) = accepted {
                            let connection = naive_connection(stream, events_tx.subscribe(), symbols.clone(), lagged_count.clone(), shutdown_rx.clone());
                            tokio::spawn(connection);
                        },
                    }
                }
            });
        })?;
        Ok(NaiveServer { addr, events, lagged, shutdown, thread: Some(thread) })
    }

    fn stop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn naive_connection(
    stream: tokio::net::TcpStream,
    mut events: broadcast::Receiver<Envelope>,
    symbols: Arc<Vec<String>>,
    lagged: Arc<AtomicU64>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Without TCP_NODELAY, Nagle's algorithm holds back small messages until the peer's delayed ACK.
    let _ = stream.set_nodelay(true);
    let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let mut subscribed = vec![false; symbols.len()];
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            incoming = socket.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let Ok(request) = serde_json::from_str::<NaiveRequest>(text.as_str()) else {
                        continue;
                    };
                    let Some(index) = symbols.iter().position(|s| *s == request.symbol) else {
                        continue;
                    };
                    if let Some(flag) = subscribed.get_mut(index) {
                        *flag = request.op == "subscribe";
                    }
                    let reply = format!(r#"{{"type":"snapshot","symbol":"{}"}}"#, request.symbol);
                    if socket.send(Message::text(reply)).await.is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
            event = events.recv() => match event {
                Ok(Envelope { feed_seq, event: BookEvent::Level { locate, change, .. }, .. }) => {
                    if !subscribed.get(usize::from(locate)).copied().unwrap_or(false) {
                        continue;
                    }
                    let symbol = symbols.get(usize::from(locate)).map_or("", String::as_str);
                    let side = if change.side == Side::Buy { "bid" } else { "ask" };
                    let message = NaiveLevel { kind: "level", symbol, side, price: change.price, shares: change.shares, orders: change.orders, feed_seq };
                    let Ok(text) = serde_json::to_string(&message) else {
                        continue;
                    };
                    if socket.send(Message::text(text)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    lagged.fetch_add(missed, Ordering::Relaxed);
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

/// Returns user plus system CPU seconds of the whole process.
fn process_cpu_secs() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is valid for writes of one `rusage`, which is all getrusage writes.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return f64::NAN;
    }
    // SAFETY: getrusage returned 0, so it filled the struct (which was zeroed before anyway).
    let usage = unsafe { usage.assume_init() };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BridgeKind {
    Mdfh,
    Naive,
}

/// Figures of one scenario. Latencies are in nanoseconds.
struct Outcome {
    delivered: u64,
    expected: u64,
    msgs_per_sec: f64,
    msgs_per_cpu_sec: f64,
    p50_all: u64,
    median_p99: u64,
    worst_p99: u64,
    closed_early: usize,
    /// mdfh: envelopes dropped by the tap, slow-client disconnects and pauses; naive: lagged events.
    server_loss: String,
}

fn run_scenario(kind: BridgeKind, reading: usize, stalled: usize, settings: &Settings) -> anyhow::Result<Outcome> {
    let capacity = (settings.rate as f64 * settings.secs * 1.1) as usize + 1024;
    let timeline = Arc::new(Timeline::new(capacity));
    let (mut sink, addr, mut mdfh, mut naive) = match kind {
        BridgeKind::Mdfh => {
            let cfg = WsConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                max_clients: reading + stalled + 16,
                max_rate_per_client: 0,
                ..WsConfig::default()
            };
            let (tap, server) = ws::start(cfg, Arc::new(Mutex::new(String::from("{}"))))?;
            let addr = server.local_addr();
            (Sink::Mdfh(tap), addr, Some(server), None)
        }
        BridgeKind::Naive => {
            let server = NaiveServer::start(settings.instruments)?;
            (Sink::Naive(server.events.clone()), server.addr, None, Some(server))
        }
    };
    for locate in 1..=settings.instruments {
        sink.send(&directory_event(locate));
    }
    // mdfh's bridge drains its ring every millisecond; subscriptions need the directory first.
    std::thread::sleep(Duration::from_millis(20));

    let ready = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let clients = start_clients(addr, settings, reading, stalled, timeline.clone(), ready.clone(), stop_rx)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while ready.load(Ordering::Relaxed) < reading + stalled {
        if Instant::now() > deadline || clients.is_finished() {
            let _ = stop_tx.send(true);
            let reports = clients.join().unwrap_or_default();
            let first_error = reports.into_iter().find_map(Result::err);
            anyhow::bail!("only {} of {} clients subscribed: {first_error:?}", ready.load(Ordering::Relaxed), reading + stalled);
        }
        std::thread::sleep(Duration::from_millis(10));
    }

    let cpu_before = process_cpu_secs();
    let started = Instant::now();
    let fed_per_locate = feed(&mut sink, &timeline, settings);
    let feed_secs = started.elapsed().as_secs_f64();
    std::thread::sleep(DRAIN);
    let cpu_secs = process_cpu_secs() - cpu_before;
    let _ = stop_tx.send(true);
    let reports = clients.join().map_err(|_| anyhow::anyhow!("client thread panicked"))?;

    let server_loss = match (&mut mdfh, &mut naive) {
        (Some(server), _) => {
            let stats = server.stats();
            server.shutdown();
            format!(
                "tap drops {}, slow-client disconnects {}, pauses {}, paused updates {}",
                stats.dropped, stats.slow_client_disconnects, stats.client_pauses, stats.paused_updates
            )
        }
        (_, Some(server)) => {
            server.stop();
            format!("lagged events {}", server.lagged.load(Ordering::Relaxed))
        }
        _ => String::new(),
    };

    let mut all = Histogram::<u64>::new_with_bounds(1, LATENCY_MAX_NS, 3)?;
    let mut p99s = Vec::with_capacity(reading);
    let (mut delivered, mut expected, mut closed_early) = (0u64, 0u64, 0usize);
    for report in reports.into_iter().take(reading) {
        let report = report?;
        delivered += report.levels;
        expected += report.locates.iter().filter_map(|&l| fed_per_locate.get(usize::from(l))).sum::<u64>();
        closed_early += usize::from(report.closed_early);
        all.add(&report.latency)?;
        if !report.latency.is_empty() {
            p99s.push(report.latency.value_at_quantile(0.99));
        }
    }
    p99s.sort_unstable();
    Ok(Outcome {
        delivered,
        expected,
        msgs_per_sec: delivered as f64 / feed_secs,
        msgs_per_cpu_sec: delivered as f64 / cpu_secs,
        p50_all: all.value_at_quantile(0.5),
        median_p99: p99s.get(p99s.len() / 2).copied().unwrap_or(0),
        worst_p99: p99s.last().copied().unwrap_or(0),
        closed_early,
        server_loss,
    })
}

fn print_header() {
    println!(
        "{:<6} {:>7} {:>7} {:>10} {:>10} {:>11} {:>12} {:>9} {:>14} {:>13}  loss",
        "bridge", "clients", "stalled", "delivered", "expected", "msg/s", "msg/CPU-s", "p50 us", "median P99 us", "worst P99 us"
    );
}

fn print_row(kind: BridgeKind, reading: usize, stalled: usize, o: &Outcome) {
    let us = |ns: u64| ns as f64 / 1000.0;
    println!(
        "{:<6} {:>7} {:>7} {:>10} {:>10} {:>11.0} {:>12.0} {:>9.1} {:>14.1} {:>13.1}  {}; clients closed by the server {}",
        if kind == BridgeKind::Mdfh { "mdfh" } else { "naive" },
        reading,
        stalled,
        o.delivered,
        o.expected,
        o.msgs_per_sec,
        o.msgs_per_cpu_sec,
        us(o.p50_all),
        us(o.median_p99),
        us(o.worst_p99),
        o.server_loss,
        o.closed_early,
    );
}

fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "ws_load: {} level events/s over {} instruments for {} s per scenario, each client subscribed to {} at full depth; \
         server and clients on one current-thread tokio runtime each, {cores} cores; latency from feed call to client receipt",
        settings.rate,
        settings.instruments,
        settings.secs,
        if settings.subscribe_all { "every symbol" } else { "one symbol" },
    );
    print_header();

    let mut results = Vec::new();
    if settings.compare_naive {
        for &count in &settings.client_counts {
            for kind in [BridgeKind::Mdfh, BridgeKind::Naive] {
                let outcome = run_scenario(kind, count, 0, &settings)?;
                print_row(kind, count, 0, &outcome);
                results.push((kind, count, outcome));
            }
        }
    }
    let rounds = match (settings.stalled, settings.client_counts.first()) {
        (0, _) | (_, None) => Vec::new(),
        (stalled, Some(&count)) => run_stalled_rounds(count, stalled, &settings)?,
    };

    println!();
    for &count in &settings.client_counts {
        let find = |kind| results.iter().find(|(k, c, _)| *k == kind && *c == count).map(|(_, _, o)| o);
        if let (Some(mdfh), Some(naive)) = (find(BridgeKind::Mdfh), find(BridgeKind::Naive)) {
            println!(
                "{count} clients, mdfh / naive: msg/s {:.2}, msg/CPU-s {:.2}, median P99 {:.2}, worst P99 {:.2}",
                mdfh.msgs_per_sec / naive.msgs_per_sec,
                mdfh.msgs_per_cpu_sec / naive.msgs_per_cpu_sec,
                mdfh.median_p99 as f64 / naive.median_p99.max(1) as f64,
                mdfh.worst_p99 as f64 / naive.worst_p99.max(1) as f64,
            );
        }
    }
    if let (Some(&count), false) = (settings.client_counts.first(), rounds.is_empty()) {
        print_stalled_summary(count, settings.stalled, &rounds);
    }
    Ok(())
}

/// One round of the stalled-client comparison: the same normal clients alone and with stalled ones.
struct Round {
    without: Outcome,
    with: Outcome,
}

/// Runs `settings.rounds` rounds of `reading` normal clients alone and with `stalled` stalled
/// clients, alternating which of the two goes first, and prints every scenario as it ends.
fn run_stalled_rounds(reading: usize, stalled: usize, settings: &Settings) -> anyhow::Result<Vec<Round>> {
    let mut rounds = Vec::with_capacity(settings.rounds);
    for round in 0..settings.rounds {
        let stalled_first = round % 2 == 1;
        let order = if stalled_first { [stalled, 0] } else { [0, stalled] };
        let mut outcomes = Vec::with_capacity(2);
        for count in order {
            let outcome = run_scenario(BridgeKind::Mdfh, reading, count, settings)?;
            print_row(BridgeKind::Mdfh, reading, count, &outcome);
            outcomes.push(outcome);
        }
        let (Some(second), Some(first)) = (outcomes.pop(), outcomes.pop()) else {
            anyhow::bail!("round {round} ran fewer than two scenarios");
        };
        let (without, with) = if stalled_first { (second, first) } else { (first, second) };
        rounds.push(Round { without, with });
    }
    Ok(rounds)
}

/// Returns the median of `values`, the mean of the two middle ones for an even count.
fn median(values: &mut [f64]) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    let middle = values.len() / 2;
    match (values.len() % 2, values.get(middle), middle.checked_sub(1).and_then(|i| values.get(i))) {
        (1, Some(&m), _) => m,
        (_, Some(&high), Some(&low)) => (high + low) / 2.0,
        _ => f64::NAN,
    }
}

fn print_stalled_summary(reading: usize, stalled: usize, rounds: &[Round]) {
    let us = |ns: u64| ns as f64 / 1000.0;
    let ratio = |with: u64, without: u64| with as f64 / without.max(1) as f64;

    println!("mdfh, {reading} clients alone and with {stalled} stalled ones, per round (P99 of the normal clients):");
    println!("{:>5} {:>22} {:>22} {:>8} {:>21} {:>21} {:>8}", "round", "median P99 us alone", "median P99 us stalled", "ratio", "worst P99 us alone", "worst P99 us stalled", "ratio");
    let (mut median_ratios, mut worst_ratios) = (Vec::new(), Vec::new());
    for (i, round) in rounds.iter().enumerate() {
        let median_ratio = ratio(round.with.median_p99, round.without.median_p99);
        let worst_ratio = ratio(round.with.worst_p99, round.without.worst_p99);
        median_ratios.push(median_ratio);
        worst_ratios.push(worst_ratio);
        println!(
            "{:>5} {:>22.1} {:>22.1} {:>8.3} {:>21.1} {:>21.1} {:>8.3}",
            i + 1,
            us(round.without.median_p99),
            us(round.with.median_p99),
            median_ratio,
            us(round.without.worst_p99),
            us(round.with.worst_p99),
            worst_ratio,
        );
    }

    let median_of_median = median(&mut median_ratios);
    let median_of_worst = median(&mut worst_ratios);
    println!(
        "median ratio with / without stalled clients over {} rounds: median client P99 {:.3} ({:+.1}%), worst client P99 {:.3} ({:+.1}%); goal below +10%",
        rounds.len(),
        median_of_median,
        (median_of_median - 1.0) * 100.0,
        median_of_worst,
        (median_of_worst - 1.0) * 100.0,
    );

    // A round whose run stalled as a whole, for example because other processes took the cores,
    // spoils one ratio, but a median over each side's rounds ignores it unless half the rounds of
    // that side are spoiled.
    let side = |pick: fn(&Round) -> u64| median(&mut rounds.iter().map(|r| pick(r) as f64).collect::<Vec<_>>());
    let alone = side(|r| r.without.median_p99);
    let with_stalled = side(|r| r.with.median_p99);
    println!(
        "median over rounds of the median client P99: {:.1} us alone, {:.1} us with stalled clients, ratio {:.3} ({:+.1}%)",
        alone / 1000.0,
        with_stalled / 1000.0,
        with_stalled / alone.max(1.0),
        (with_stalled / alone.max(1.0) - 1.0) * 100.0,
    );
}

//! HTTP routes, access checks, and the task that serves one WebSocket client.

use std::convert::Infallible;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use futures_util::{SinkExt, Stream};
use mdfh_feed::itch::Stock;
use serde::Deserialize;
use mdfh_feed::udp::monotonic_ns;
use tokio::sync::{broadcast, mpsc, watch, Notify};

use super::bridge::{ClientLink, Command, SseItem};
use super::json::{self, Request};
use super::{Counters, WsConfig};

const PAGE_HTML: &str = include_str!("page/index.html");
const PAGE_JS: &str = include_str!("page/terminal.js");
const PAGE_CSS: &str = include_str!("page/terminal.css");

/// How long a client task tries to deliver its close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Close code and reason for a client the bridge disconnected as slow.
const SLOW_CLOSE_CODE: u16 = 1008;
const SLOW_CLOSE_REASON: &str = "slow consumer: queue over client_queue_bytes or paused over max_pause";
/// Maximum bytes of queued messages a client task writes with one flush (one `write` system call
/// when the socket accepts them all). tungstenite's own write buffer is 128 KiB by default, so a
/// batch never spills into a write of its own before the flush.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// State shared by every request handler.
#[derive(Clone)]
pub(crate) struct App {
    inner: Arc<AppInner>,
}

struct AppInner {
    cfg: WsConfig,
    counters: Arc<Counters>,
    commands: mpsc::Sender<Command>,
    sse: broadcast::Sender<SseItem>,
    shutdown: watch::Receiver<bool>,
    stats_json: Arc<Mutex<String>>,
    /// The `quality` message of the current feed quality, the first event of every SSE stream.
    quality: watch::Receiver<Utf8Bytes>,
    next_id: AtomicU64,
    /// WebSocket and SSE clients connected now, checked against `max_clients`.
    active: Arc<AtomicUsize>,
    /// When a rejected request was last logged, in ms of [`monotonic_ns`]: at most one a second.
    rejection_logged_ms: AtomicU64,
}

impl App {
    pub fn new(
        cfg: WsConfig,
        counters: Arc<Counters>,
        commands: mpsc::Sender<Command>,
        sse: broadcast::Sender<SseItem>,
        shutdown: watch::Receiver<bool>,
        stats_json: Arc<Mutex<String>>,
        quality: watch::Receiver<Utf8Bytes>,
    ) -> App {
        let inner = AppInner {
            cfg,
            counters,
            commands,
            sse,
            shutdown,
            stats_json,
            quality,
            next_id: AtomicU64::new(1),
            active: Arc::new(AtomicUsize::new(0)),
            rejection_logged_ms: AtomicU64::new(0),
        };
        App { inner: Arc::new(inner) }
    }
}

/// Kernel send buffer requested for each client socket, in bytes (Linux doubles it).
const SEND_BUFFER_BYTES: usize = 128 * 1024;

/// Serves the routes on `listener` until `shutdown` turns true, then waits up to two seconds for
/// the client tasks to deliver their close frames.
pub(crate) async fn serve(listener: TcpListener, app: App, mut shutdown: watch::Receiver<bool>) -> std::io::Result<()> {
    // Client tasks already coalesce queued messages into one write per flush, so Nagle's
    // algorithm would only hold each small write until the previous one is acknowledged.
    let listener = tokio::net::TcpListener::from_std(listener)?.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "setting TCP_NODELAY on a WebSocket connection failed");
        }
        // A small kernel send buffer makes a client that stops reading show in its queue, and so
        // get paused, within a fraction of a second instead of after megabytes of data.
        if let Err(error) = socket2::SockRef::from(&*stream).set_send_buffer_size(SEND_BUFFER_BYTES) {
            tracing::debug!(%error, "setting SO_SNDBUF on a WebSocket connection failed");
        }
    });
    let active = app.inner.active.clone();
    let router = Router::new()
        .route("/", get(page))
        .route("/terminal.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], PAGE_JS) }))
        .route("/terminal.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], PAGE_CSS) }))
        .route("/ws", get(websocket))
        .route("/sse", get(sse))
        .route("/stats", get(stats))
        .with_state(app);

    let stop = async move {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
    };
    axum::serve(listener, router).with_graceful_shutdown(stop).await?;

    let deadline = Instant::now() + Duration::from_secs(2);
    while active.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

async fn page() -> Html<&'static str> {
    Html(PAGE_HTML)
}

/// Query parameters every data route accepts.
#[derive(Debug, Deserialize)]
struct AccessQuery {
    token: Option<String>,
    /// `/sse` only: the symbol whose `bbo` events to send; absent means every symbol.
    symbol: Option<String>,
}

/// Compares in time independent of where the inputs first differ, so that response times do not
/// reveal a token prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The reason a request is rejected before any data or upgrade.
#[derive(Debug, Clone, Copy)]
enum Rejection {
    Origin,
    Token,
    Capacity,
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        match self {
            Rejection::Origin => (StatusCode::FORBIDDEN, "Origin not allowed; add it to allowed_origins\n").into_response(),
            Rejection::Token => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "missing or wrong token; send Authorization: Bearer TOKEN or ?token=TOKEN\n",
            )
                .into_response(),
            Rejection::Capacity => (StatusCode::SERVICE_UNAVAILABLE, "too many clients; try again later\n").into_response(),
        }
    }
}

/// Checks the Origin allow-list and the bearer token, counting rejections.
fn check_access(app: &AppInner, headers: &HeaderMap, query_token: Option<&str>) -> Result<(), Rejection> {
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let allowed = if app.cfg.allowed_origins.is_empty() {
            let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
            let authority = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
            authority == Some(host)
        } else {
            app.cfg.allowed_origins.iter().any(|o| o == origin)
        };
        if !allowed {
            app.counters.origin_rejections.fetch_add(1, Ordering::Relaxed);
            if may_log_rejection(app) {
                let total = app.counters.origin_rejections.load(Ordering::Relaxed);
                tracing::warn!(origin, total, "request rejected: Origin not allowed");
            }
            return Err(Rejection::Origin);
        }
    }
    if let Some(token) = &app.cfg.token {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let presented = bearer.or(query_token).unwrap_or("");
        if !constant_time_eq(presented.as_bytes(), token.as_bytes()) {
            app.counters.auth_failures.fetch_add(1, Ordering::Relaxed);
            if may_log_rejection(app) {
                let total = app.counters.auth_failures.load(Ordering::Relaxed);
                tracing::warn!(total, "request rejected: missing or wrong bearer token");
            }
            return Err(Rejection::Token);
        }
    }
    Ok(())
}

/// Returns true when no rejected request was logged in the last second, and takes the slot. The
/// counters keep every rejection; the log keeps a flood of them from drowning everything else.
fn may_log_rejection(app: &AppInner) -> bool {
    let now_ms = monotonic_ns() / 1_000_000;
    let last = app.rejection_logged_ms.load(Ordering::Relaxed);
    (last == 0 || now_ms.saturating_sub(last) >= 1000)
        && app.rejection_logged_ms.compare_exchange(last, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed).is_ok()
}

/// A place among the `max_clients` connected clients, given back on drop.
struct Seat {
    active: Arc<AtomicUsize>,
}

impl Seat {
    fn take(app: &AppInner) -> Result<Seat, Rejection> {
        let before = app.active.fetch_add(1, Ordering::Relaxed);
        let seat = Seat { active: app.active.clone() };
        if before >= app.cfg.max_clients {
            app.counters.over_capacity.fetch_add(1, Ordering::Relaxed);
            return Err(Rejection::Capacity);
        }
        Ok(seat)
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn stats(State(app): State<App>, headers: HeaderMap, Query(query): Query<AccessQuery>) -> Response {
    if let Err(rejection) = check_access(&app.inner, &headers, query.token.as_deref()) {
        return rejection.into_response();
    }
    let document = app.inner.stats_json.lock().map(|d| d.clone()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], document).into_response()
}

async fn sse(State(app): State<App>, headers: HeaderMap, Query(query): Query<AccessQuery>) -> Response {
    let inner = &app.inner;
    if let Err(rejection) = check_access(inner, &headers, query.token.as_deref()) {
        return rejection.into_response();
    }
    let seat = match Seat::take(inner) {
        Ok(seat) => seat,
        Err(rejection) => return rejection.into_response(),
    };
    let filter = query.symbol.as_deref().map(Stock::new);
    let stream = sse_stream(app.clone(), seat, filter);
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

/// State of one SSE stream; dropping it gives back the seat and the SSE client count.
struct SseState {
    app: App,
    receiver: broadcast::Receiver<SseItem>,
    shutdown: watch::Receiver<bool>,
    filter: Option<Stock>,
    /// The current quality, sent before any broadcast item; `None` once sent.
    first: Option<Utf8Bytes>,
    _seat: Seat,
}

impl Drop for SseState {
    fn drop(&mut self) {
        self.app.inner.counters.sse_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

fn sse_stream(app: App, seat: Seat, filter: Option<Stock>) -> impl Stream<Item = Result<Event, Infallible>> {
    app.inner.counters.sse_clients.fetch_add(1, Ordering::Relaxed);
    // Subscribe before reading the current quality, so that a change in between is not lost;
    // it may arrive twice instead.
    let receiver = app.inner.sse.subscribe();
    let first = Some(app.inner.quality.borrow().clone());
    let state = SseState { receiver, shutdown: app.inner.shutdown.clone(), app, filter, first, _seat: seat };
    futures_util::stream::unfold(state, |mut state| async move {
        loop {
            if *state.shutdown.borrow() {
                return None;
            }
            if let Some(quality) = state.first.take() {
                let event = Event::default().event("quality").data(quality.as_str());
                return Some((Ok(event), state));
            }
            let item = tokio::select! {
                item = state.receiver.recv() => item,
                _ = state.shutdown.changed() => return None,
            };
            match item {
                Ok(item) if item.symbol.is_some() && state.filter.is_some() && item.symbol != state.filter => {}
                Ok(item) => {
                    let event = Event::default().event(item.event).data(item.data.as_str());
                    return Some((Ok(event), state));
                }
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    state.app.inner.counters.sse_lagged.fetch_add(skipped, Ordering::Relaxed);
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

async fn websocket(
    State(app): State<App>,
    headers: HeaderMap,
    Query(query): Query<AccessQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let inner = &app.inner;
    if let Err(rejection) = check_access(inner, &headers, query.token.as_deref()) {
        return rejection.into_response();
    }
    let seat = match Seat::take(inner) {
        Ok(seat) => seat,
        Err(rejection) => return rejection.into_response(),
    };
    inner.counters.connections_accepted.fetch_add(1, Ordering::Relaxed);
    let limit = inner.cfg.max_frame_bytes;
    upgrade
        .max_frame_size(limit)
        .max_message_size(limit)
        .on_upgrade(move |socket| run_client(socket, app, seat))
}

/// The way a client task ends.
enum Ending {
    /// Send this close frame first.
    Close(u16, &'static str),
    /// The connection is gone or unusable; just drop it.
    Drop,
}

/// Returns the close code for a read error: 1009 for an oversized frame or message, 1007 for a
/// text message that is not UTF-8, and none for errors that leave nothing to close.
fn ending_for(error: axum::Error) -> Ending {
    let inner = error.into_inner();
    match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => Ending::Close(1009, "message too big"),
        Some(tungstenite::Error::Utf8(_)) => Ending::Close(1007, "text message is not UTF-8"),
        Some(tungstenite::Error::Protocol(_)) => Ending::Close(1002, "WebSocket protocol error"),
        _ => Ending::Drop,
    }
}

async fn run_client(mut socket: WebSocket, app: App, seat: Seat) {
    let inner = &app.inner;
    let counters = &inner.counters;
    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::unbounded_channel::<Utf8Bytes>();
    let link = ClientLink {
        id,
        tx,
        queued_bytes: Arc::new(AtomicUsize::new(0)),
        kill: Arc::new(Notify::new()),
        killed: Arc::new(AtomicBool::new(false)),
    };
    let queued_bytes = link.queued_bytes.clone();
    let kill = link.kill.clone();
    if inner.commands.send(Command::Join(link)).await.is_err() {
        return;
    }
    counters.clients.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(client = id, "WebSocket client connected");

    let mut shutdown = inner.shutdown.clone();
    let ping_interval = inner.cfg.ping_interval;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_interval, ping_interval);
    let mut last_heard = Instant::now();

    let ending = loop {
        if *shutdown.borrow() {
            break Ending::Close(1001, "server shutting down");
        }
        tokio::select! {
            biased;
            _ = shutdown.changed() => {}
            _ = kill.notified() => break Ending::Close(SLOW_CLOSE_CODE, SLOW_CLOSE_REASON),
            outgoing = rx.recv() => {
                // The bridge drops every queue when it stops, which happens only at shutdown.
                let Some(text) = outgoing else {
                    break Ending::Close(1001, "server shutting down");
                };
                // A client that stops reading blocks this write. The bridge pauses it, and notifies
                // `kill` when it stays paused past `max_pause` or its queue passes
                // `client_queue_bytes`. A shutdown lets the write finish, so the close frame
                // follows whole messages; the server waits for that a bounded time.
                let written = tokio::select! {
                    written = write_batch(&mut socket, text, &mut rx, &queued_bytes) => written,
                    // The close frame queues behind the unsent batch; it reaches a client that
                    // reads again within `CLOSE_TIMEOUT`.
                    _ = kill.notified() => break Ending::Close(SLOW_CLOSE_CODE, SLOW_CLOSE_REASON),
                };
                let Some((messages, bytes)) = written else {
                    break Ending::Drop;
                };
                counters.messages_sent.fetch_add(messages, Ordering::Relaxed);
                counters.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
            }
            incoming = socket.recv() => {
                last_heard = Instant::now();
                match incoming {
                    None | Some(Ok(Message::Close(_))) => break Ending::Drop,
                    Some(Err(error)) => {
                        // A connection reset or closed without a close frame is not a protocol
                        // error; the errors that get a close code are.
                        let ending = ending_for(error);
                        if matches!(ending, Ending::Close(..)) {
                            counters.protocol_errors.fetch_add(1, Ordering::Relaxed);
                        }
                        break ending;
                    }
                    Some(Ok(Message::Binary(_))) => {
                        counters.protocol_errors.fetch_add(1, Ordering::Relaxed);
                        break Ending::Close(1003, "binary messages are not supported; send JSON text");
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Text(text))) => {
                        if let Some(ending) = handle_text(inner, id, &text, &mut socket).await {
                            break ending;
                        }
                    }
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > 2 * ping_interval {
                    counters.ping_timeouts.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(client = id, "WebSocket client answered no ping; dropping");
                    break Ending::Drop;
                }
                if socket.send(Message::Ping(bytes::Bytes::new())).await.is_err() {
                    break Ending::Drop;
                }
            }
        }
    };

    if let Ending::Close(code, reason) = ending {
        let frame = CloseFrame { code, reason: Utf8Bytes::from_static(reason) };
        // Wait for the peer's close frame before dropping the socket: closing a socket with unread
        // input sends a TCP reset, which can make the peer discard our close frame unread.
        let handshake = async {
            socket.send(Message::Close(Some(frame))).await.ok()?;
            while let Some(Ok(message)) = socket.recv().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
            Some(())
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, handshake).await;
    }
    let _ = inner.commands.send(Command::Leave(id)).await;
    counters.clients.fetch_sub(1, Ordering::Relaxed);
    tracing::debug!(client = id, "WebSocket client disconnected");
    drop(seat);
}

/// Writes `first` and the messages already queued behind it, up to [`WRITE_BATCH_BYTES`], then
/// flushes once. Subtracts each message from `queued_bytes` as it leaves the queue. Returns the
/// messages and bytes written, or `None` when the socket failed.
async fn write_batch(
    socket: &mut WebSocket,
    first: Utf8Bytes,
    rx: &mut mpsc::UnboundedReceiver<Utf8Bytes>,
    queued_bytes: &AtomicUsize,
) -> Option<(u64, u64)> {
    let mut next = Some(first);
    let (mut messages, mut bytes) = (0u64, 0usize);
    while let Some(text) = next.take() {
        let len = text.as_str().len();
        queued_bytes.fetch_sub(len, Ordering::Relaxed);
        socket.feed(Message::Text(text)).await.ok()?;
        messages += 1;
        bytes += len;
        if bytes < WRITE_BATCH_BYTES {
            next = rx.try_recv().ok();
        }
    }
    socket.flush().await.ok()?;
    Some((messages, bytes as u64))
}

/// Parses one text message and forwards the request to the bridge. Returns the ending when the
/// message is not JSON at all (close code 1007); a JSON message that is not a valid request gets
/// an `error` message and the connection stays open.
async fn handle_text(inner: &AppInner, id: u64, text: &str, socket: &mut WebSocket) -> Option<Ending> {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(_) => {
            inner.counters.protocol_errors.fetch_add(1, Ordering::Relaxed);
            return Some(Ending::Close(1007, "invalid JSON"));
        }
    };
    match Request::deserialize(value) {
        Ok(request) => {
            if inner.commands.send(Command::Request(id, request)).await.is_err() {
                return Some(Ending::Close(1001, "server shutting down"));
            }
            None
        }
        Err(error) => {
            inner.counters.protocol_errors.fetch_add(1, Ordering::Relaxed);
            let message = format!("invalid request: {error}");
            if socket.send(Message::Text(json::error(None, &message))).await.is_err() {
                return Some(Ending::Drop);
            }
            None
        }
    }
}

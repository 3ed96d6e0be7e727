//! The `mdfh run` configuration, read from TOML. Every field has a default, so an empty file (or
//! none at all) is a complete configuration: the embedded simulator feeding the handler over UDP
//! on 127.0.0.1. `config/mdfh.example.toml` documents each field.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use crate::idle::IdleConfig;

const MAX_RING_CAPACITY: usize = 1 << 24;
const MAX_BATCH: usize = 1024;
const MAX_ORDER_CAPACITY: usize = 1 << 28;
const MAX_QUEUE_BYTES: usize = 1 << 30;
const MAX_SUBSCRIBERS: usize = 4096;
const MAX_HELD_PACKETS: usize = 1 << 20;

/// The whole configuration of `mdfh run`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub input: InputConfig,
    pub simulator: SimulatorConfig,
    pub publisher: PublisherSection,
    pub stats: StatsConfig,
    pub pipeline: PipelineConfig,
    pub record: crate::record::RecordConfig,
    pub ws: WsSection,
    pub recovery: RecoverySection,
}

/// Input of stage 1: the feed's transport and address.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InputConfig {
    /// `udp` (MoldUDP64 over UDP, unicast or multicast) or `soupbintcp`.
    pub kind: InputKind,
    /// UDP: the address to bind. For multicast, the group port on 0.0.0.0 or the group address.
    pub bind: SocketAddr,
    /// UDP: the multicast group to join, if any.
    pub multicast_group: Option<Ipv4Addr>,
    /// UDP: the address of the interface to join the group on; 0.0.0.0 lets the kernel choose.
    pub interface: Ipv4Addr,
    /// UDP: the address of line B, which carries the same packets as line A (`bind`); the first
    /// copy of each message wins. None reads one line.
    pub bind_b: Option<SocketAddr>,
    /// UDP: the multicast group of line B, if any.
    pub multicast_group_b: Option<Ipv4Addr>,
    /// UDP: the receive buffer size requested with SO_RCVBUF, in bytes.
    pub recv_buffer_bytes: usize,
    /// UDP: the max datagrams read by one `recvmmsg` call.
    pub batch: usize,
    /// SoupBinTCP: the server address.
    pub connect: Option<SocketAddr>,
    /// SoupBinTCP: the login user name (at most 6 characters).
    pub username: String,
    /// SoupBinTCP: the login password (at most 10 characters).
    pub password: String,
    /// SoupBinTCP: the requested session; empty for the current one.
    pub session: String,
    /// SoupBinTCP: seconds of silence from the server after which the link is considered lost.
    pub silence_timeout_secs: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputKind {
    Udp,
    Soupbintcp,
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            kind: InputKind::Udp,
            bind: SocketAddr::from(([127, 0, 0, 1], 26400)),
            multicast_group: None,
            interface: Ipv4Addr::UNSPECIFIED,
            bind_b: None,
            multicast_group_b: None,
            recv_buffer_bytes: 8 << 20,
            batch: 32,
            connect: None,
            username: String::new(),
            password: String::new(),
            session: String::new(),
            silence_timeout_secs: 15.0,
        }
    }
}

/// Recovery of lost MoldUDP64 messages: retransmission requests, then a SoupBinTCP fallback.
/// Used when line B, a retransmission server or a fallback is configured; otherwise a gap marks the
/// books stale at once.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecoverySection {
    /// The MoldUDP64 retransmission server; none sends no request.
    pub retransmit: Option<SocketAddr>,
    /// Packets held back while a gap is open.
    pub buffer_packets: usize,
    /// Messages asked for by one request at most (the server's limit).
    pub max_request_messages: u16,
    /// Requests in flight at most.
    pub max_outstanding: usize,
    /// Wait after a gap opens before the first request, in microseconds, so that line B or a
    /// reordered packet can fill it first.
    pub request_delay_us: u64,
    /// Wait for a response before a request is sent again, in milliseconds. It doubles on each
    /// retry.
    pub request_timeout_ms: u64,
    /// Upper bound of the doubling wait, in milliseconds.
    pub max_backoff_ms: u64,
    /// Time in milliseconds a gap may go without progress (no message applied) before
    /// retransmission is abandoned for the fallback, or, without one, the books are marked stale.
    pub give_up_ms: u64,
    /// A SoupBinTCP server to replay unfilled gaps from; none marks the books stale instead.
    pub fallback: Option<SocketAddr>,
    /// Fallback login user name (at most 6 characters) and password (at most 10).
    pub fallback_username: String,
    pub fallback_password: String,
    /// Time the fallback has to close every gap, in milliseconds, before the books are marked stale.
    pub fallback_timeout_ms: u64,
    /// A line without a packet for this long, in milliseconds, is reported silent.
    pub line_silence_ms: u64,
    /// A packet whose sequence is more than this many messages past the highest one seen is
    /// dropped until a second packet confirms the jump, so one forged or corrupted packet cannot
    /// move the feed far ahead.
    pub max_jump_messages: u64,
}

impl Default for RecoverySection {
    fn default() -> Self {
        RecoverySection {
            retransmit: None,
            buffer_packets: 8192,
            max_request_messages: 500,
            max_outstanding: 8,
            request_delay_us: 1000,
            request_timeout_ms: 20,
            max_backoff_ms: 500,
            give_up_ms: 2000,
            fallback: None,
            fallback_username: String::new(),
            fallback_password: String::new(),
            fallback_timeout_ms: 10_000,
            line_silence_ms: 5000,
            max_jump_messages: mdfh_feed::recovery::sequencer::DEFAULT_MAX_JUMP_MESSAGES,
        }
    }
}

impl RecoverySection {
    /// Returns whether the input goes through the recovery path: line B, a retransmission server
    /// or a fallback is configured.
    pub fn is_active(&self, input: &InputConfig) -> bool {
        input.bind_b.is_some() || self.retransmit.is_some() || self.fallback.is_some()
    }
}

/// The built-in simulator that `mdfh run` starts when enabled: it replays a file (or the bundled
/// LOBSTER AAPL sample) as MoldUDP64 over UDP to the input address, in a loop, each pass a new
/// session.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulatorConfig {
    pub enabled: bool,
    /// A BinaryFILE or pcap to replay; none replays the bundled sample.
    pub file: Option<PathBuf>,
    /// Messages per second.
    pub rate: u64,
    /// Replay the file again, as a new session, after each pass.
    pub repeat: bool,
    /// Destination of the packets; none sends to the input's bind address (or group).
    pub target: Option<SocketAddr>,
    /// Faults injected, reproducibly from `seed`, on the lines `faults` names ("a", "b" or
    /// "both"): the probability that a data packet is lost, sent after the next one, or sent twice.
    pub loss: f64,
    pub reorder: f64,
    pub duplicate: f64,
    pub seed: u64,
    pub faults: crate::sim::FaultTarget,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            enabled: true,
            file: None,
            rate: 1_000,
            repeat: true,
            target: None,
            loss: 0.0,
            reorder: 0.0,
            duplicate: 0.0,
            seed: 1,
            faults: crate::sim::FaultTarget::A,
        }
    }
}

/// The TCP subscriber server.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PublisherSection {
    /// The address to listen on; port 0 picks a free port (the log names it).
    pub listen: SocketAddr,
    pub max_subscribers: usize,
    /// The outbound queue of one subscriber, in bytes; a subscriber whose queue would overflow is
    /// disconnected with a reason frame.
    pub queue_bytes: usize,
    /// Seconds without data after which a subscriber receives a heartbeat.
    pub heartbeat_secs: f64,
    /// The max depth (levels per side) a subscriber may request; 0 allows the full book.
    pub max_depth: u16,
    /// Slow-consumer policies a client may choose: "conflate", "resnapshot", "disconnect".
    pub allowed_policies: Vec<String>,
    /// A conflating client whose queue has not emptied for this long counts as behind.
    pub conflation_staleness_ms: u64,
    /// A digest frame every this many updates of an instrument; 0 sends digests on request only.
    pub digest_interval: u32,
    /// Levels per side a digest covers.
    pub digest_depth: u16,
}

impl Default for PublisherSection {
    fn default() -> Self {
        PublisherSection {
            listen: SocketAddr::from(([127, 0, 0, 1], 9100)),
            max_subscribers: 64,
            queue_bytes: 4 << 20,
            heartbeat_secs: 1.0,
            max_depth: 0,
            allowed_policies: vec!["conflate".into(), "resnapshot".into(), "disconnect".into()],
            conflation_staleness_ms: 100,
            digest_interval: 0,
            digest_depth: 10,
        }
    }
}

/// The WebSocket bridge, Server-Sent Events and the web terminal page, all on one address.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WsSection {
    pub enabled: bool,
    /// Address of the page (`/`), the WebSocket (`/ws`) and SSE (`/sse`); port 0 picks one.
    pub listen: SocketAddr,
    pub max_clients: usize,
    /// Largest client frame accepted, in bytes; a larger one closes the connection (1009).
    pub max_frame_bytes: usize,
    /// Outbound queue of one client, in bytes; a client that falls further behind is closed.
    pub client_queue_bytes: usize,
    /// Queued bytes above which a client gets no more updates until it catches up; it then gets
    /// conflated snapshots.
    pub pause_queue_bytes: usize,
    /// Maximum pause, in milliseconds, before a client is closed (1008).
    pub max_pause_ms: u64,
    pub ping_interval_ms: u64,
    /// Updates per second one client receives at most; above it, conflated snapshots. 0: no limit.
    pub max_rate_per_client: u32,
    /// Bearer token clients must present (header or `?token=`); none accepts any client.
    pub token: Option<String>,
    /// Origins allowed to connect; empty allows requests without Origin and from the page itself.
    pub allowed_origins: Vec<String>,
    pub default_depth: u16,
    pub ring_capacity: usize,
}

impl Default for WsSection {
    fn default() -> Self {
        let ws = mdfh_publisher::ws::WsConfig::default();
        WsSection {
            enabled: true,
            listen: ws.listen,
            max_clients: ws.max_clients,
            max_frame_bytes: ws.max_frame_bytes,
            client_queue_bytes: ws.client_queue_bytes,
            pause_queue_bytes: ws.pause_queue_bytes,
            max_pause_ms: ws.max_pause.as_millis() as u64,
            ping_interval_ms: ws.ping_interval.as_millis() as u64,
            max_rate_per_client: ws.max_rate_per_client,
            token: ws.token,
            allowed_origins: ws.allowed_origins,
            default_depth: ws.default_depth,
            ring_capacity: ws.ring_capacity,
        }
    }
}

impl WsSection {
    /// Returns the bridge's own configuration.
    pub fn to_ws_config(&self) -> mdfh_publisher::ws::WsConfig {
        mdfh_publisher::ws::WsConfig {
            listen: self.listen,
            max_clients: self.max_clients,
            max_frame_bytes: self.max_frame_bytes,
            client_queue_bytes: self.client_queue_bytes,
            pause_queue_bytes: self.pause_queue_bytes,
            max_pause: Duration::from_millis(self.max_pause_ms),
            ping_interval: Duration::from_millis(self.ping_interval_ms.max(1)),
            max_rate_per_client: self.max_rate_per_client,
            token: self.token.clone(),
            allowed_origins: self.allowed_origins.clone(),
            default_depth: self.default_depth,
            ring_capacity: self.ring_capacity.clamp(2, MAX_RING_CAPACITY),
        }
    }
}

/// Latency and counter reporting.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatsConfig {
    /// Seconds between two latency and book lines in the log.
    pub interval_secs: f64,
    /// The stats HTTP endpoint (`GET /stats` returns JSON); `"off"` in TOML disables it.
    #[serde(deserialize_with = "address_or_off")]
    pub http: Option<SocketAddr>,
    /// How many instruments the periodic book line shows.
    pub books_shown: usize,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            interval_secs: 2.0,
            http: Some(SocketAddr::from(([127, 0, 0, 1], 9101))),
            books_shown: 3,
        }
    }
}

/// Threads, pinning, rings and idle strategies.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Slots in each ring between two stages (rounded up to a power of two).
    pub ring_capacity: usize,
    /// Core pinning of the three stages.
    pub pinning: Pinning,
    /// Idle strategy of each stage; `auto` busy-spins only when there are more cores than stages.
    pub idle: IdleConfig,
    /// Orders the books reserve room for up front.
    pub order_capacity: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            ring_capacity: 65_536,
            pinning: Pinning::default(),
            idle: IdleConfig::default(),
            order_capacity: 1 << 20,
        }
    }
}

/// Core assignment of the three stages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pinning {
    /// No pinning: the OS schedules the threads.
    #[default]
    Off,
    /// Stage threads on cores 1, 2, 3 (core 0 left to the OS) when the machine has more cores than
    /// stages; no pinning otherwise.
    Auto,
    /// Explicit core ids for receive, book and publish.
    Cores { receive: usize, book: usize, publish: usize },
}

/// Reads a socket address, or `"off"` for none.
fn address_or_off<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("invalid address {text:?} ({e}); expected IP:PORT or \"off\"")))
}

impl Config {
    /// Reads and checks a TOML configuration file.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read config file {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    /// Parses and checks a TOML configuration.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let config: Config = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        // Upper bounds keep a typo from asking for terabytes of memory at start.
        let ring = self.pipeline.ring_capacity;
        anyhow::ensure!((2..=MAX_RING_CAPACITY).contains(&ring), "pipeline.ring_capacity {ring} is out of range 2..={MAX_RING_CAPACITY}");
        let batch = self.input.batch;
        anyhow::ensure!((1..=MAX_BATCH).contains(&batch), "input.batch {batch} is out of range 1..={MAX_BATCH}");
        let orders = self.pipeline.order_capacity;
        anyhow::ensure!(orders <= MAX_ORDER_CAPACITY, "pipeline.order_capacity {orders} is above the maximum {MAX_ORDER_CAPACITY}");
        let queue = self.publisher.queue_bytes;
        anyhow::ensure!((1024..=MAX_QUEUE_BYTES).contains(&queue), "publisher.queue_bytes {queue} is out of range 1024..={MAX_QUEUE_BYTES}");
        let subscribers = self.publisher.max_subscribers;
        anyhow::ensure!((1..=MAX_SUBSCRIBERS).contains(&subscribers), "publisher.max_subscribers {subscribers} is out of range 1..={MAX_SUBSCRIBERS}");
        anyhow::ensure!(self.stats.interval_secs > 0.0, "stats.interval_secs must be positive");
        anyhow::ensure!(self.publisher.heartbeat_secs > 0.0, "publisher.heartbeat_secs must be positive");
        self.record.validate()?;
        for policy in &self.publisher.allowed_policies {
            anyhow::ensure!(
                matches!(policy.as_str(), "conflate" | "resnapshot" | "disconnect"),
                "publisher.allowed_policies: unknown policy {policy:?}; expected conflate, resnapshot or disconnect"
            );
        }
        for (name, p) in [("loss", self.simulator.loss), ("reorder", self.simulator.reorder), ("duplicate", self.simulator.duplicate)] {
            anyhow::ensure!((0.0..=1.0).contains(&p), "simulator.{name} {p} is not a probability in 0..=1");
        }
        let recovery = &self.recovery;
        anyhow::ensure!(
            (1..=MAX_HELD_PACKETS).contains(&recovery.buffer_packets),
            "recovery.buffer_packets {} is out of range 1..={MAX_HELD_PACKETS}", recovery.buffer_packets
        );
        anyhow::ensure!(recovery.max_request_messages > 0 && recovery.max_request_messages < u16::MAX, "recovery.max_request_messages must be in 1..=65534");
        anyhow::ensure!((1..=1024).contains(&recovery.max_outstanding), "recovery.max_outstanding {} is out of range 1..=1024", recovery.max_outstanding);
        anyhow::ensure!(recovery.request_timeout_ms > 0 && recovery.max_backoff_ms >= recovery.request_timeout_ms, "recovery.request_timeout_ms must be positive and at most recovery.max_backoff_ms");
        if recovery.is_active(&self.input) {
            anyhow::ensure!(self.input.kind == InputKind::Udp, "recovery (input.bind_b, recovery.retransmit, recovery.fallback) needs UDP input");
        }
        if self.input.kind == InputKind::Soupbintcp {
            anyhow::ensure!(self.input.connect.is_some(), "input.connect is required for input.kind = \"soupbintcp\"");
        }
        Ok(())
    }

    /// Returns the stats interval as a `Duration`.
    pub fn stats_interval(&self) -> Duration {
        Duration::from_secs_f64(self.stats.interval_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_the_embedded_default() {
        let config = Config::parse("").unwrap();
        assert!(config.simulator.enabled);
        assert_eq!(config.input.kind, InputKind::Udp);
        assert!(config.input.bind.ip().is_loopback());
        assert!(config.publisher.listen.ip().is_loopback());
        assert!(config.stats.http.unwrap().ip().is_loopback());
    }

    #[test]
    fn example_config_parses() {
        let text = include_str!("../../config/mdfh.example.toml");
        Config::parse(text).unwrap();
    }

    #[test]
    fn unknown_key_is_rejected() {
        let err = Config::parse("[input]\nbogus = 1\n").unwrap_err();
        assert!(format!("{err:#}").contains("bogus"), "{err:#}");
    }

    #[test]
    fn explicit_pinning_parses() {
        let config = Config::parse("[pipeline.pinning.cores]\nreceive = 1\nbook = 2\npublish = 3\n").unwrap();
        assert_eq!(config.pipeline.pinning, Pinning::Cores { receive: 1, book: 2, publish: 3 });
    }

    #[test]
    fn stats_http_can_be_turned_off() {
        assert_eq!(Config::parse("[stats]\nhttp = \"off\"\n").unwrap().stats.http, None);
        let on = Config::parse("[stats]\nhttp = \"127.0.0.1:0\"\n").unwrap();
        assert_eq!(on.stats.http, Some(SocketAddr::from(([127, 0, 0, 1], 0))));
        assert!(Config::parse("[stats]\nhttp = \"nowhere\"\n").is_err());
    }

    #[test]
    fn huge_sizes_are_rejected() {
        for text in [
            "[input]\nbatch = 100000000\n",
            "[pipeline]\norder_capacity = 100000000000\n",
            "[pipeline]\nring_capacity = 1\n",
            "[publisher]\nqueue_bytes = 10\n",
        ] {
            let err = Config::parse(text).unwrap_err();
            assert!(format!("{err:#}").contains("range") || format!("{err:#}").contains("maximum"), "{text}: {err:#}");
        }
    }

    #[test]
    fn recovery_is_off_by_default_and_bounded() {
        let config = Config::parse("").unwrap();
        assert!(!config.recovery.is_active(&config.input));
        let on = Config::parse("[recovery]\nretransmit = \"127.0.0.1:26410\"\n").unwrap();
        assert!(on.recovery.is_active(&on.input));
        let b = Config::parse("[input]\nbind_b = \"127.0.0.1:26401\"\n").unwrap();
        assert!(b.recovery.is_active(&b.input));
        assert!(Config::parse("[recovery]\nbuffer_packets = 0\n").is_err());
        assert!(Config::parse("[recovery]\nmax_request_messages = 0\n").is_err());
        assert!(Config::parse("[input]\nkind = \"soupbintcp\"\nconnect = \"127.0.0.1:1\"\n[recovery]\nretransmit = \"127.0.0.1:2\"\n").is_err());
    }

    #[test]
    fn soupbintcp_needs_connect() {
        assert!(Config::parse("[input]\nkind = \"soupbintcp\"\n").is_err());
    }
}

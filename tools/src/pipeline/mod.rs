//! The three-stage pipeline: receive and decode, book update, publish. Each stage is a thread
//! (pinned when configured) running an agent loop: do a bounded amount of work, then let the idle
//! strategy wait if there was none. Stages hand items over through bounded single-producer
//! single-consumer rings. Nothing on the per-message path allocates, locks or logs: errors are
//! counted, and logged at most once a second per kind.
//!
//! Shutdown runs front to back: the stop flag ends stage 1, which marks itself done; stage 2 drains
//! its ring and then finishes; stage 3 drains its ring, sends every subscriber a Goodbye frame and
//! finishes.

mod book;
mod lines;
mod publish;
mod receive;
pub mod replay;
pub mod ring;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use mdfh_feed::itch::Message;
use mdfh_publisher::Envelope;

use crate::config::{Config, Pinning};
use crate::counters::Counters;
use crate::idle::{IdleStrategy, Idler};
use crate::latency::SharedLatency;

pub use book::TopOfBookSummary;
pub use receive::Recording;
pub use lines::Lines;
pub use receive::Source;

/// Item stage 1 hands to stage 2.
#[derive(Debug, Clone, Copy)]
pub enum FeedItem {
    /// A decoded message with its feed sequence number and timestamps (monotonic ns).
    Message { seq: u64, recv_ns: u64, decoded_ns: u64, msg: Message },
    /// A new feed session started: every book must be cleared.
    SessionStart,
    /// Messages `[first, first + count)` were lost: the books may be wrong.
    Gap { first: u64, count: u64 },
    /// Messages from `first` are missing and being recovered: the books are behind, not wrong.
    Recovering { first: u64 },
    /// Every gap was filled; every message before `next` has been handed on in order.
    Recovered { next: u64 },
}

/// State every stage and the reporter share.
pub struct Shared {
    pub counters: Counters,
    /// Latency per stage, in [`crate::latency::Stage`] order.
    pub latency: [SharedLatency; 4],
    /// Recovery time of each gap: from the gap opening to its last message applied.
    pub recovery_time: SharedLatency,
    /// Top of book of the busiest instruments, refreshed by stage 2 a few times a second.
    pub books: Mutex<Vec<TopOfBookSummary>>,
    /// Set by a signal or the caller: stage 1 stops reading input.
    pub stop: AtomicBool,
    /// Set by stage 1 when it has stopped: stage 2 finishes once its ring is empty.
    receive_done: AtomicBool,
    /// Set by stage 2 when it has finished: stage 3 finishes once its ring is empty.
    book_done: AtomicBool,
    /// Set when a stage thread panicked: the pipeline stops and the process reports failure.
    pub failed: AtomicBool,
    /// The stats JSON the reporter refreshes; the stats endpoint and the web terminal serve it.
    pub stats_json: Arc<Mutex<String>>,
    /// Sections the reporter adds to the stats JSON as they are: `subscribers` (per TCP
    /// subscriber, from stage 3) and `web` (the WebSocket bridge's counters).
    pub extra_stats: Mutex<serde_json::Map<String, serde_json::Value>>,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            counters: Counters::default(),
            latency: Default::default(),
            recovery_time: SharedLatency::default(),
            books: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            receive_done: AtomicBool::new(false),
            book_done: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            stats_json: Arc::new(Mutex::new(String::from("{}"))),
            extra_stats: Mutex::new(serde_json::Map::new()),
        }
    }
}

/// A running pipeline.
pub struct Pipeline {
    pub shared: Arc<Shared>,
    /// The address subscribers connect to.
    pub subscriber_addr: std::net::SocketAddr,
    /// The address of the web terminal, WebSocket and SSE, when enabled.
    pub web_addr: Option<std::net::SocketAddr>,
    web: Option<mdfh_publisher::ws::WsServer>,
    threads: Vec<(&'static str, JoinHandle<()>)>,
}

/// The stage names, in order, as threads are named.
const STAGES: [&str; 3] = ["mdfh-receive", "mdfh-book", "mdfh-publish"];

impl Pipeline {
    /// Starts the three stages on `source`.
    pub fn start(config: &Config, source: Source) -> anyhow::Result<Pipeline> {
        Pipeline::start_recording(config, source, None)
    }

    /// Starts the three stages on `source`, with stage 1 handing every datagram to `record`.
    pub fn start_recording(config: &Config, source: Source, record: Option<receive::Recording>) -> anyhow::Result<Pipeline> {
        let shared = Arc::new(Shared::default());
        let (feed_tx, feed_rx) = ring::ring::<FeedItem>(config.pipeline.ring_capacity);
        let (book_tx, book_rx) = ring::ring::<Envelope>(config.pipeline.ring_capacity);

        let publisher = publish::bind(config).context("failed to start the subscriber server")?;
        let subscriber_addr = publisher.local_addr();
        let (ws_tap, web) = if config.ws.enabled {
            let (tap, server) = mdfh_publisher::ws::start(config.ws.to_ws_config(), shared.stats_json.clone())
                .with_context(|| format!("failed to start the web terminal on {}", config.ws.listen))?;
            (Some(tap), Some(server))
        } else {
            (None, None)
        };
        let web_addr = web.as_ref().map(|server| server.local_addr());

        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let idle = &config.pipeline.idle;
        let max_park = Duration::from_micros(idle.max_park_us);
        let strategies = [idle.receive, idle.book, idle.publish].map(|s| s.resolve(cores, STAGES.len()));
        let cores_for_stages = pin_plan(&config.pipeline.pinning, cores);
        for (i, name) in STAGES.iter().enumerate() {
            tracing::info!(stage = name, idle = ?strategies[i], core = ?cores_for_stages[i], "stage configured");
        }

        let mut threads = Vec::new();
        let receive = receive::ReceiveStage::new(source, shared.clone(), feed_tx, record);
        threads.push(spawn_stage(0, cores_for_stages[0], Idler::new(strategies[0], max_park), receive, shared.clone())?);
        let book = book::BookStage::new(config, shared.clone(), feed_rx, book_tx);
        threads.push(spawn_stage(1, cores_for_stages[1], Idler::new(strategies[1], max_park), book, shared.clone())?);
        let publish = publish::PublishStage::new(publisher, ws_tap, shared.clone(), book_rx);
        threads.push(spawn_stage(2, cores_for_stages[2], Idler::new(strategies[2], max_park), publish, shared.clone())?);

        Ok(Pipeline {
            shared,
            subscriber_addr,
            web_addr,
            web,
            threads,
        })
    }

    /// Copies the WebSocket bridge's counters into the stats JSON's `web` section.
    pub fn refresh_web_stats(&self) {
        let Some(web) = &self.web else { return };
        let stats = web.stats();
        let value = serde_json::json!({
            "clients": stats.clients,
            "sse_clients": stats.sse_clients,
            "connections_accepted": stats.connections_accepted,
            "messages_sent": stats.messages_sent,
            "bytes_sent": stats.bytes_sent,
            "conflated": stats.conflated,
            "dropped": stats.dropped,
            "protocol_errors": stats.protocol_errors,
            "auth_failures": stats.auth_failures,
            "origin_rejections": stats.origin_rejections,
            "over_capacity": stats.over_capacity,
            "slow_client_disconnects": stats.slow_client_disconnects,
            "resyncs": stats.resyncs,
            "client_pauses": stats.client_pauses,
            "client_resumes": stats.client_resumes,
            "paused_updates": stats.paused_updates,
        });
        if let Ok(mut extra) = self.shared.extra_stats.lock() {
            extra.insert("web".into(), value);
        }
    }

    /// Asks stage 1 to stop reading; the stages then drain and finish.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
    }

    /// Returns true once every stage thread has finished.
    pub fn is_finished(&self) -> bool {
        self.threads.iter().all(|(_, handle)| handle.is_finished())
    }

    /// Waits for every stage to finish, then closes the web clients (close code 1001).
    pub fn join(self) {
        for (name, handle) in self.threads {
            if handle.join().is_err() {
                tracing::error!(stage = name, "stage thread panicked");
            }
        }
        if let Some(mut web) = self.web {
            web.shutdown();
        }
    }
}

/// One stage's loop body.
pub(crate) trait Agent: Send + 'static {
    /// Does a bounded amount of work and returns how much (0 when there was nothing to do).
    fn do_work(&mut self) -> usize;
    /// Returns true when the stage has finished and its thread may end.
    fn is_done(&mut self) -> bool;
    /// Runs once after the loop ends.
    fn on_close(&mut self) {}
}

fn spawn_stage(
    index: usize,
    core: Option<usize>,
    mut idler: Idler,
    mut agent: impl Agent,
    shared: Arc<Shared>,
) -> anyhow::Result<(&'static str, JoinHandle<()>)> {
    let name = STAGES[index];
    let handle = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            if let Some(id) = core {
                if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
                    tracing::warn!(stage = name, core = id, "failed to pin the stage to its core; running unpinned");
                }
            }
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                loop {
                    let work = agent.do_work();
                    if work == 0 && agent.is_done() {
                        break;
                    }
                    idler.idle(work);
                }
                agent.on_close();
            }));
            if run.is_err() {
                // A bug, never bad input: stop everything and let the stages after this one
                // drain and close, so that subscribers get a Goodbye and the process exits
                // with a failure status.
                tracing::error!(stage = name, "stage panicked; shutting down");
                shared.failed.store(true, Ordering::Release);
                shared.stop.store(true, Ordering::Release);
                match index {
                    0 => shared.receive_done.store(true, Ordering::Release),
                    1 => shared.book_done.store(true, Ordering::Release),
                    _ => {}
                }
            }
        })
        .with_context(|| format!("failed to spawn thread {name}"))?;
    Ok((name, handle))
}

/// Returns the core of each stage, or `None` for no pinning.
fn pin_plan(pinning: &Pinning, cores: usize) -> [Option<usize>; 3] {
    match *pinning {
        Pinning::Off => [None; 3],
        Pinning::Auto if cores > STAGES.len() => [Some(1), Some(2), Some(3)].map(|c| c.map(|c| c % cores)),
        Pinning::Auto => [None; 3],
        Pinning::Cores { receive, book, publish } => [Some(receive), Some(book), Some(publish)],
    }
}

/// Resolves an idle strategy for code outside the pipeline (the simulator) in the same way.
pub fn resolve_idle(strategy: IdleStrategy) -> IdleStrategy {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    strategy.resolve(cores, STAGES.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_pinning_leaves_small_machines_unpinned() {
        assert_eq!(pin_plan(&Pinning::Auto, 2), [None; 3]);
        assert_eq!(pin_plan(&Pinning::Auto, 8), [Some(1), Some(2), Some(3)]);
        assert_eq!(pin_plan(&Pinning::Off, 8), [None; 3]);
    }
}

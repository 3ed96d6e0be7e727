//! Stage 3: hand book events to the subscriber server and record when they were written.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mdfh_feed::udp::monotonic_ns;
use mdfh_publisher::protocol::SlowConsumerPolicy;
use mdfh_publisher::ws::{ResyncOutcome, WsTap};
use mdfh_publisher::{Envelope, Publisher, PublisherConfig};

use super::ring::Consumer;
use super::{Agent, Shared};
use crate::config::Config;
use crate::latency::{LatencyRecorder, Stage};

/// Envelopes taken from the ring per cycle.
const BATCH: usize = 256;
/// How often the publisher's counters are copied into the shared counters.
const COUNTERS_EVERY_NS: u64 = 100_000_000;

/// Starts the subscriber server.
pub(crate) fn bind(config: &Config) -> std::io::Result<Publisher> {
    let section = &config.publisher;
    let publisher_config = PublisherConfig {
        listen: section.listen,
        max_subscribers: section.max_subscribers,
        queue_bytes: section.queue_bytes,
        heartbeat_interval: Duration::from_secs_f64(section.heartbeat_secs),
        max_depth: section.max_depth,
        allowed_policies: section
            .allowed_policies
            .iter()
            .filter_map(|name| match name.as_str() {
                "conflate" => Some(SlowConsumerPolicy::Conflate),
                "resnapshot" => Some(SlowConsumerPolicy::Resnapshot),
                "disconnect" => Some(SlowConsumerPolicy::Disconnect),
                _ => None,
            })
            .collect(),
        conflation_staleness: Duration::from_millis(section.conflation_staleness_ms),
        digest_interval: section.digest_interval,
        digest_depth: section.digest_depth,
        ..PublisherConfig::default()
    };
    Publisher::bind(&publisher_config)
}

pub(crate) struct PublishStage {
    shared: Arc<Shared>,
    input: Consumer<Envelope>,
    publisher: Publisher,
    /// The WebSocket bridge's input, when the web terminal is enabled.
    web: Option<WsTap>,
    /// Timestamps of the envelopes of the current cycle: (receive, book updated).
    batch: [(u64, u64); BATCH],
    publish_latency: LatencyRecorder,
    end_to_end_latency: LatencyRecorder,
    last_counters_ns: u64,
    /// Publisher figures at the last copy, to log what changed since.
    last_errors: u64,
    last_active: usize,
}

impl PublishStage {
    pub(crate) fn new(publisher: Publisher, web: Option<WsTap>, shared: Arc<Shared>, input: Consumer<Envelope>) -> PublishStage {
        tracing::info!(address = %publisher.local_addr(), "subscribers: listening");
        PublishStage {
            publish_latency: LatencyRecorder::new(shared.latency[Stage::Publish as usize].clone()),
            end_to_end_latency: LatencyRecorder::new(shared.latency[Stage::EndToEnd as usize].clone()),
            shared,
            input,
            publisher,
            web,
            batch: [(0, 0); BATCH],
            last_counters_ns: 0,
            last_errors: 0,
            last_active: 0,
        }
    }

    /// Sends the WebSocket bridge a copy of the publisher's books after its ring dropped
    /// envelopes. Called once per cycle, after the batch, so the copy reflects every envelope
    /// handed to both. A ring that is still full gets the copy on a later cycle.
    fn resync_web(&mut self) {
        let Some(web) = &mut self.web else { return };
        if !web.resync_needed() {
            return;
        }
        if web.resync(&self.publisher) == ResyncOutcome::Queued {
            tracing::info!(dropped = web.dropped(), "WebSocket bridge ring overflowed; resync queued");
        }
    }

    fn copy_counters(&mut self, now_ns: u64) {
        if now_ns.saturating_sub(self.last_counters_ns) < COUNTERS_EVERY_NS {
            return;
        }
        self.last_counters_ns = now_ns;
        let stats = self.publisher.stats();
        let c = &self.shared.counters.publish;
        c.subscribers.set(self.publisher.subscriber_count() as u64);
        c.connections_accepted.set(stats.connections_accepted);
        c.slow_consumer_disconnects.set(stats.slow_consumer_disconnects);
        c.malformed_requests.set(stats.malformed_requests);
        c.frames_sent.set(stats.frames_sent);
        c.bytes_sent.set(stats.bytes_sent);
        c.conflated_updates.set(stats.policy.conflated_updates);
        c.resnapshots.set(stats.policy.resnapshots);
        c.digests_sent.set(stats.digests_sent);

        let subscribers: Vec<serde_json::Value> = self
            .publisher
            .subscriber_stats()
            .iter()
            .map(|sub| {
                serde_json::json!({
                    "peer": sub.peer.to_string(),
                    "policy": format!("{:?}", sub.policy).to_lowercase(),
                    "behind": sub.behind,
                    "last_seq": sub.last_seq,
                    "conflated_updates": sub.counters.conflated_updates,
                    "catchups": sub.counters.catchups,
                    "dropped_trades": sub.counters.dropped_trades,
                    "resnapshots": sub.counters.resnapshots,
                    "resnapshot_dropped_frames": sub.counters.resnapshot_dropped_frames,
                    "disconnect_dropped_frames": sub.counters.disconnect_dropped_frames,
                })
            })
            .collect();
        if let Ok(mut extra) = self.shared.extra_stats.lock() {
            extra.insert("subscribers".into(), serde_json::Value::Array(subscribers));
        }

        // Logged from here, at most every COUNTERS_EVERY_NS: the publisher itself only counts.
        if stats.active != self.last_active {
            tracing::info!(subscribers = stats.active, accepted = stats.connections_accepted, "subscriber count changed");
            self.last_active = stats.active;
        }
        if stats.errors > self.last_errors {
            let new = stats.errors - self.last_errors;
            self.last_errors = stats.errors;
            tracing::warn!(
                new_errors = new,
                malformed_requests = stats.malformed_requests,
                slow_consumer_disconnects = stats.slow_consumer_disconnects,
                rejected = stats.connections_rejected + stats.rejected_subscriptions,
                "subscriber problem: {}",
                stats.last_error.as_deref().unwrap_or("(no detail)")
            );
        }
    }
}

impl Agent for PublishStage {
    fn do_work(&mut self) -> usize {
        let mut taken = 0;
        while taken < BATCH {
            let Some(envelope) = self.input.pop() else { break };
            self.publisher.on_event(&envelope);
            if let Some(web) = &mut self.web {
                web.on_event(&envelope);
            }
            self.batch[taken] = (envelope.recv_ns, envelope.booked_ns);
            taken += 1;
        }
        self.resync_web();
        let io_work = self.publisher.poll_io(Instant::now());
        let now = monotonic_ns();
        // The writes of this cycle's events have completed (or been queued for subscribers whose
        // socket buffer is full), so this is the written time of every event taken above.
        for &(recv_ns, booked_ns) in &self.batch[..taken] {
            self.publish_latency.record(booked_ns, now);
            self.end_to_end_latency.record(recv_ns, now);
        }
        self.shared.counters.publish.events.add(taken as u64);
        self.publish_latency.maybe_flush(now, false);
        self.end_to_end_latency.maybe_flush(now, false);
        self.copy_counters(now);
        taken + io_work
    }

    fn is_done(&mut self) -> bool {
        self.shared.book_done.load(Ordering::Acquire) && self.input.is_empty()
    }

    fn on_close(&mut self) {
        self.publisher.close_all("shutdown");
        let now = monotonic_ns();
        self.publish_latency.maybe_flush(now, true);
        self.end_to_end_latency.maybe_flush(now, true);
        self.last_counters_ns = 0;
        self.copy_counters(now);
        tracing::info!("publish stage stopped; subscribers closed");
    }
}

//! The reporter: every interval it takes the stages' latency figures, logs p50 / p99 / p99.9 / max
//! per stage, the busiest books and the counters, and refreshes the JSON that the stats HTTP
//! endpoint serves. It runs on its own thread, off the data path.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde_json::json;

use hdrhistogram::Histogram;

use crate::latency::{LatencyBook, Percentiles, Stage};
use crate::pipeline::{Shared, TopOfBookSummary};

/// The reporter's state.
pub struct Reporter {
    shared: Arc<Shared>,
    latency: LatencyBook,
    json: Arc<Mutex<String>>,
    started: Instant,
    last_report: Instant,
    last_messages: u64,
    record: Option<Arc<crate::record::RecordCounters>>,
    /// Every recovery time flushed so far.
    recovery_time: Histogram<u64>,
}

impl Reporter {
    pub fn new(shared: Arc<Shared>) -> Reporter {
        let latency = LatencyBook::new(shared.latency.clone());
        let json = Arc::clone(&shared.stats_json);
        let now = Instant::now();
        Reporter {
            shared,
            latency,
            json,
            started: now,
            last_report: now,
            last_messages: 0,
            record: None,
            recovery_time: crate::latency::new_histogram(),
        }
    }

    /// Adds the recorder's counters to the reports.
    pub fn set_record_counters(&mut self, counters: Arc<crate::record::RecordCounters>) {
        self.record = Some(counters);
    }

    /// Returns the JSON document the HTTP endpoint serves, refreshed by [`Reporter::report`].
    pub fn json_handle(&self) -> Arc<Mutex<String>> {
        self.json.clone()
    }

    /// Takes the figures of the interval that just ended, logs them and refreshes the JSON.
    pub fn report(&mut self) {
        self.latency.roll();
        let now = Instant::now();
        let elapsed = now.duration_since(self.last_report).as_secs_f64().max(1e-9);
        self.last_report = now;
        let counters = &self.shared.counters;
        let messages = counters.feed.messages.get();
        let rate = (messages - self.last_messages.min(messages)) as f64 / elapsed;
        self.last_messages = messages;

        for stage in Stage::ALL {
            tracing::info!(stage = stage.name(), "latency {}", self.latency.interval(stage));
        }
        tracing::info!(
            "feed: {:.0} msg/s, {} messages, {} gaps ({} missed), {} duplicate packets, {} decode errors, {} book errors, {} subscribers, {} slow-consumer disconnects",
            rate,
            messages,
            counters.feed.gaps.get(),
            counters.feed.messages_missed.get(),
            counters.feed.duplicate_packets.get(),
            decode_errors(&self.shared),
            book_errors(&self.shared),
            counters.publish.subscribers.get(),
            counters.publish.slow_consumer_disconnects.get(),
        );
        let recovery = &counters.recovery;
        if recovery.gaps.get() > 0 || recovery.arbitration_drops.get() > 0 {
            tracing::info!(
                "recovery: {} gaps ({} messages), {} filled, {} requests, {} messages retransmitted, {} fallbacks, {} given up, {} copies dropped by A/B arbitration",
                recovery.gaps.get(),
                recovery.gap_messages.get(),
                recovery.gaps_filled.get(),
                recovery.requests_sent.get(),
                recovery.retransmitted_messages.get(),
                recovery.fallbacks.get(),
                recovery.gave_up.get(),
                recovery.arbitration_drops.get(),
            );
        }
        for book in self.books() {
            tracing::info!("book {}", format_book(&book));
        }
        self.refresh_json(rate);
    }

    /// Logs the figures since start, for shutdown.
    pub fn report_totals(&mut self) {
        self.latency.roll();
        for stage in Stage::ALL {
            tracing::info!(stage = stage.name(), "latency since start {}", self.latency.total(stage));
        }
        self.refresh_json(0.0);
    }

    fn books(&self) -> Vec<TopOfBookSummary> {
        self.shared.books.lock().map(|b| b.clone()).unwrap_or_default()
    }

    fn refresh_json(&mut self, rate: f64) {
        self.shared.recovery_time.take_into(&mut self.recovery_time);
        let latency = |total: bool| {
            let mut map = serde_json::Map::new();
            for stage in Stage::ALL {
                let p = if total { self.latency.total(stage) } else { self.latency.interval(stage) };
                map.insert(stage.name().to_string(), json!(p));
            }
            serde_json::Value::Object(map)
        };
        let doc = json!({
            "unix_time_ns": SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64),
            "uptime_secs": self.started.elapsed().as_secs_f64(),
            "messages_per_sec": rate,
            "latency_ns": { "interval": latency(false), "total": latency(true) },
            "recovery_time_ns": Percentiles::of(&self.recovery_time),
            "counters": &self.shared.counters,
            "books": self.books(),
            "record": self.record.as_deref(),
        });
        let mut doc = doc;
        if let (Some(object), Ok(extra)) = (doc.as_object_mut(), self.shared.extra_stats.lock()) {
            for (key, value) in extra.iter() {
                object.insert(key.clone(), value.clone());
            }
        }
        if let Ok(mut json) = self.json.lock() {
            *json = doc.to_string();
        }
    }
}

fn decode_errors(shared: &Shared) -> u64 {
    let f = &shared.counters.feed;
    f.short_packets.get() + f.blocks_past_end.get() + f.unknown_message_types.get() + f.truncated_messages.get() + f.invalid_fields.get()
}

fn book_errors(shared: &Shared) -> u64 {
    let b = &shared.counters.book;
    b.unknown_orders.get() + b.over_executions.get() + b.duplicate_orders.get() + b.crossed_books.get() + b.unknown_instruments.get() + b.other_errors.get()
}

/// Formats a price in 1/10000 dollars as dollars.
pub fn format_price(price: u32) -> String {
    format!("{}.{:04}", price / 10_000, price % 10_000)
}

fn format_book(book: &TopOfBookSummary) -> String {
    let side = |price: Option<u32>, shares: u64| match price {
        Some(p) => format!("{shares} @ {}", format_price(p)),
        None => "-".to_string(),
    };
    format!(
        "{} (locate {}): bid {} | ask {}{} [{} msgs]",
        if book.symbol.is_empty() { "?" } else { &book.symbol },
        book.locate,
        side(book.bid_price, book.bid_shares),
        side(book.ask_price, book.ask_shares),
        if book.stale { " STALE" } else { "" },
        book.messages
    )
}

/// Serves `GET /stats` (and `GET /`) with the reporter's JSON on `addr` from a thread of its own.
/// Returns the bound address.
pub fn serve_http(addr: SocketAddr, json: Arc<Mutex<String>>) -> anyhow::Result<SocketAddr> {
    let server = tiny_http::Server::http(addr).map_err(|e| anyhow::anyhow!("{e}")).with_context(|| format!("failed to bind the stats endpoint on {addr}"))?;
    let bound = server.server_addr().to_ip().unwrap_or(addr);
    std::thread::Builder::new()
        .name("mdfh-stats-http".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                let (status, body) = match (request.method(), request.url()) {
                    (tiny_http::Method::Get, "/stats" | "/") => (200, json.lock().map(|j| j.clone()).unwrap_or_default()),
                    _ => (404, String::from("{\"error\":\"not found; try GET /stats\"}")),
                };
                let header = tiny_http::Header::from_bytes("Content-Type", "application/json").ok();
                let mut response = tiny_http::Response::from_string(body).with_status_code(status);
                if let Some(header) = header {
                    response.add_header(header);
                }
                // A client that went away is not an error worth more than a debug line.
                if let Err(error) = request.respond(response) {
                    tracing::debug!(%error, "stats response not delivered");
                }
            }
        })
        .context("failed to spawn the stats HTTP thread")?;
    Ok(bound)
}

/// Runs the reporter until `done` returns true, reporting every `interval`; then logs totals.
pub fn run_reporter(reporter: &mut Reporter, interval: Duration, mut done: impl FnMut() -> bool) {
    let mut next = Instant::now() + interval;
    loop {
        if done() {
            break;
        }
        let now = Instant::now();
        if now >= next {
            reporter.report();
            next += interval;
            if next < now {
                next = now + interval;
            }
        }
        std::thread::sleep(Duration::from_millis(20).min(next.saturating_duration_since(Instant::now())));
    }
    reporter.report_totals();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::format_ns;

    #[test]
    fn prices_format_as_dollars() {
        assert_eq!(format_price(5_853_300), "585.3300");
        assert_eq!(format_price(1), "0.0001");
        assert_eq!(format_ns(950), "950ns");
    }
}

//! Per-stage latency histograms. Each stage records into a histogram it owns, with no lock and no
//! allocation, and hands its figures over to a shared histogram at most every [`FLUSH_EVERY_NS`];
//! the reporter takes the shared figures every interval.

use std::sync::{Arc, Mutex, MutexGuard};

use hdrhistogram::Histogram;
use serde::Serialize;

/// The stages whose latency is recorded, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Packet read to message decoded.
    Decode,
    /// Message decoded to book updated.
    Book,
    /// Book updated to written to the subscriber sockets.
    Publish,
    /// Packet read to written to the subscriber sockets.
    EndToEnd,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Decode, Stage::Book, Stage::Publish, Stage::EndToEnd];

    /// Returns the short name used in logs and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Decode => "receive_to_decoded",
            Stage::Book => "decoded_to_book",
            Stage::Publish => "book_to_written",
            Stage::EndToEnd => "receive_to_written",
        }
    }
}

/// Highest latency a histogram tracks, in nanoseconds (60 s); larger samples are clamped to it.
const MAX_TRACKABLE_NS: u64 = 60_000_000_000;
/// How often a stage hands its local figures to the shared histogram.
pub const FLUSH_EVERY_NS: u64 = 50_000_000;

pub(crate) fn new_histogram() -> Histogram<u64> {
    // Fixed, valid bounds: 1 ns .. 60 s with three significant digits. Nothing from outside the
    // program reaches this call.
    Histogram::new_with_bounds(1, MAX_TRACKABLE_NS, 3).expect("fixed histogram bounds are valid")
}

/// The shared side of one stage's latency: what the stage flushed since the reporter last took it.
#[derive(Clone)]
pub struct SharedLatency {
    interval: Arc<Mutex<Histogram<u64>>>,
}

impl Default for SharedLatency {
    fn default() -> Self {
        SharedLatency {
            interval: Arc::new(Mutex::new(new_histogram())),
        }
    }
}

impl SharedLatency {
    fn lock(&self) -> MutexGuard<'_, Histogram<u64>> {
        // A stage that panicked while holding the lock leaves valid histogram data behind.
        self.interval.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Moves the figures flushed since the last call into `into`.
    pub fn take_into(&self, into: &mut Histogram<u64>) {
        let mut shared = self.lock();
        // Both histograms have the same bounds, so `add` cannot fail.
        let _ = into.add(&*shared);
        shared.reset();
    }
}

/// The stage-owned recorder.
pub struct LatencyRecorder {
    local: Histogram<u64>,
    shared: SharedLatency,
    last_flush_ns: u64,
}

impl LatencyRecorder {
    pub fn new(shared: SharedLatency) -> LatencyRecorder {
        LatencyRecorder {
            local: new_histogram(),
            shared,
            last_flush_ns: 0,
        }
    }

    /// Records one sample of `end_ns - start_ns` nanoseconds.
    #[inline]
    pub fn record(&mut self, start_ns: u64, end_ns: u64) {
        let sample = end_ns.saturating_sub(start_ns).clamp(1, MAX_TRACKABLE_NS);
        // The sample is within the histogram's bounds, so recording cannot fail.
        let _ = self.local.record(sample);
    }

    /// Hands the local figures to the shared histogram when the last hand-over is older than
    /// [`FLUSH_EVERY_NS`], or when `force` is set. Takes a lock only then.
    pub fn maybe_flush(&mut self, now_ns: u64, force: bool) {
        if !force && now_ns.saturating_sub(self.last_flush_ns) < FLUSH_EVERY_NS {
            return;
        }
        self.last_flush_ns = now_ns;
        if self.local.is_empty() {
            return;
        }
        let mut shared = self.shared.lock();
        let _ = shared.add(&self.local);
        drop(shared);
        self.local.reset();
    }
}

/// The percentiles reported for one stage, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Percentiles {
    pub count: u64,
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.count == 0 {
            return write!(f, "no samples");
        }
        write!(
            f,
            "n={} p50={} p99={} p99.9={} max={}",
            self.count,
            format_ns(self.p50),
            format_ns(self.p99),
            format_ns(self.p999),
            format_ns(self.max)
        )
    }
}

/// Formats nanoseconds with a unit that keeps three significant figures readable.
pub fn format_ns(ns: u64) -> String {
    if ns < 10_000 {
        format!("{ns}ns")
    } else if ns < 10_000_000 {
        format!("{:.1}us", ns as f64 / 1e3)
    } else {
        format!("{:.1}ms", ns as f64 / 1e6)
    }
}

/// The latency figures of every stage, kept by the reporter: the last interval and the total.
pub struct LatencyBook {
    pub shared: [SharedLatency; 4],
    interval: [Histogram<u64>; 4],
    total: [Histogram<u64>; 4],
}

impl LatencyBook {
    pub fn new(shared: [SharedLatency; 4]) -> LatencyBook {
        LatencyBook {
            shared,
            interval: std::array::from_fn(|_| new_histogram()),
            total: std::array::from_fn(|_| new_histogram()),
        }
    }

    /// Takes what the stages flushed as the new interval and adds it to the total.
    pub fn roll(&mut self) {
        for i in 0..4 {
            self.interval[i].reset();
            self.shared[i].take_into(&mut self.interval[i]);
            let _ = self.total[i].add(&self.interval[i]);
        }
    }

    pub fn interval(&self, stage: Stage) -> Percentiles {
        Percentiles::of(&self.interval[stage as usize])
    }

    pub fn total(&self, stage: Stage) -> Percentiles {
        Percentiles::of(&self.total[stage as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_flushes_into_shared_and_book_rolls() {
        let shared: [SharedLatency; 4] = Default::default();
        let mut recorder = LatencyRecorder::new(shared[0].clone());
        for ns in 1..=1000u64 {
            recorder.record(0, ns * 1000);
        }
        let mut book = LatencyBook::new(shared);
        book.roll();
        assert_eq!(book.interval(Stage::Decode).count, 0, "nothing flushed yet");
        recorder.maybe_flush(FLUSH_EVERY_NS, false);
        book.roll();
        let p = book.interval(Stage::Decode);
        assert_eq!(p.count, 1000);
        assert!((499_000..=501_000).contains(&p.p50), "p50 {}", p.p50);
        assert!((989_000..=991_000).contains(&p.p99), "p99 {}", p.p99);
        assert_eq!(book.total(Stage::Decode).count, 1000);
        book.roll();
        assert_eq!(book.interval(Stage::Decode).count, 0);
        assert_eq!(book.total(Stage::Decode).count, 1000);
    }

    #[test]
    fn negative_and_huge_samples_are_clamped() {
        let shared = SharedLatency::default();
        let mut recorder = LatencyRecorder::new(shared.clone());
        recorder.record(10, 5);
        recorder.record(0, u64::MAX);
        recorder.maybe_flush(0, true);
        let mut h = new_histogram();
        shared.take_into(&mut h);
        assert_eq!(h.len(), 2);
        assert_eq!(h.min(), 1);
    }
}

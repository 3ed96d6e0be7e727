//! Ring benchmark: the pipeline's SPSC ring against crossbeam's `ArrayQueue` and bounded channel,
//! in the same run, carrying the real stage-1 item type (`FeedItem`) between two threads.
//!
//! Two measurements per ring:
//! - throughput: one producer pushes ITEMS items as fast as it can, one consumer pops them;
//! - one-way latency at a paced rate: the producer stamps each item with the monotonic clock and
//!   the consumer records the delay, into an hdrhistogram.
//!
//! Run: `cargo bench -p mdfh-benches --bench ring` (env `RING_ITEMS` overrides the item count).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, TrySendError};
use hdrhistogram::Histogram;
use crossbeam_queue::ArrayQueue;
use mdfh::pipeline::ring::{ring, Consumer, Producer};
use mdfh::pipeline::FeedItem;
use mdfh_feed::itch::{Header, Message, OrderDelete};
use mdfh_feed::udp::monotonic_ns;

const CAPACITY: usize = 65_536;
const LATENCY_ITEMS: u64 = 200_000;
/// One item every this many nanoseconds in the latency run (500,000 items per second).
const LATENCY_PACE_NS: u64 = 2_000;

fn item(seq: u64) -> FeedItem {
    let msg = Message::OrderDelete(OrderDelete {
        header: Header { stock_locate: 1, tracking_number: 0, timestamp: seq },
        order_ref: seq,
    });
    FeedItem::Message { seq, recv_ns: monotonic_ns(), decoded_ns: 0, msg }
}

fn stamp(item: &FeedItem) -> u64 {
    match item {
        FeedItem::Message { recv_ns, .. } => *recv_ns,
        _ => 0,
    }
}

/// The pushing side of a queue under test.
trait Tx: Send + 'static {
    fn try_push(&mut self, item: FeedItem) -> Result<(), FeedItem>;
}

/// The popping side of a queue under test.
trait Rx: Send + 'static {
    fn try_pop(&mut self) -> Option<FeedItem>;
}

impl Tx for Producer<FeedItem> {
    fn try_push(&mut self, item: FeedItem) -> Result<(), FeedItem> {
        self.push(item)
    }
}

impl Rx for Consumer<FeedItem> {
    fn try_pop(&mut self) -> Option<FeedItem> {
        self.pop()
    }
}

impl Tx for Arc<ArrayQueue<FeedItem>> {
    fn try_push(&mut self, item: FeedItem) -> Result<(), FeedItem> {
        self.push(item)
    }
}

impl Rx for Arc<ArrayQueue<FeedItem>> {
    fn try_pop(&mut self) -> Option<FeedItem> {
        self.pop()
    }
}

impl Tx for crossbeam_channel::Sender<FeedItem> {
    fn try_push(&mut self, item: FeedItem) -> Result<(), FeedItem> {
        self.try_send(item).map_err(|e| match e {
            TrySendError::Full(item) | TrySendError::Disconnected(item) => item,
        })
    }
}

impl Rx for crossbeam_channel::Receiver<FeedItem> {
    fn try_pop(&mut self) -> Option<FeedItem> {
        self.try_recv().ok()
    }
}

fn throughput(mut tx: impl Tx, mut rx: impl Rx, items: u64) -> f64 {
    let start = Instant::now();
    let consumer = std::thread::spawn(move || {
        let mut received = 0u64;
        let mut checksum = 0u64;
        while received < items {
            if let Some(item) = rx.try_pop() {
                if let FeedItem::Message { seq, .. } = item {
                    checksum = checksum.wrapping_add(seq);
                }
                received += 1;
            } else {
                std::hint::spin_loop();
            }
        }
        black_box(checksum);
    });
    for seq in 0..items {
        let mut pending = item(seq);
        while let Err(back) = tx.try_push(pending) {
            pending = back;
            std::hint::spin_loop();
        }
    }
    let _ = consumer.join();
    items as f64 / start.elapsed().as_secs_f64()
}

fn latency(mut tx: impl Tx, mut rx: impl Rx) -> Histogram<u64> {
    let consumer = std::thread::spawn(move || {
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("valid bounds");
        let mut received = 0u64;
        while received < LATENCY_ITEMS {
            if let Some(item) = rx.try_pop() {
                let _ = histogram.record(monotonic_ns().saturating_sub(stamp(&item)).max(1));
                received += 1;
            } else {
                std::hint::spin_loop();
            }
        }
        histogram
    });
    let start = monotonic_ns();
    for seq in 0..LATENCY_ITEMS {
        let due = start + seq * LATENCY_PACE_NS;
        while monotonic_ns() < due {
            std::hint::spin_loop();
        }
        let mut pending = item(seq);
        while let Err(back) = tx.try_push(pending) {
            pending = back;
            std::hint::spin_loop();
        }
    }
    consumer.join().unwrap_or_else(|_| Histogram::new(3).expect("valid precision"))
}

const CONTENDERS: [&str; 3] = ["mdfh SPSC ring (used)", "crossbeam ArrayQueue", "crossbeam bounded channel"];

/// Runs both measurements on a fresh queue of kind `index` (in `CONTENDERS` order).
fn measure(index: usize, items: u64) -> (f64, Histogram<u64>) {
    match index {
        0 => {
            let (tx, rx) = ring::<FeedItem>(CAPACITY);
            let rate = throughput(tx, rx, items);
            let (tx, rx) = ring::<FeedItem>(CAPACITY);
            (rate, latency(tx, rx))
        }
        1 => {
            let queue = Arc::new(ArrayQueue::new(CAPACITY));
            let rate = throughput(queue.clone(), queue.clone(), items);
            (rate, latency(queue.clone(), queue))
        }
        _ => {
            let (tx, rx) = bounded(CAPACITY);
            let rate = throughput(tx, rx, items);
            let (tx, rx) = bounded(CAPACITY);
            (rate, latency(tx, rx))
        }
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read from the command line.
    let items: u64 = std::env::var("RING_ITEMS").ok().and_then(|v| v.parse().ok()).unwrap_or(5_000_000);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("ring benchmark: {items} items of {} bytes, capacity {CAPACITY}, {cores} cores", std::mem::size_of::<FeedItem>());
    println!("{:<28} {:>14} {:>10} {:>10} {:>10} {:>10}", "ring", "items/s", "p50 ns", "p99 ns", "p99.9 ns", "max ns");

    let mut rates = Vec::new();
    for round in 0..2 {
        for (index, name) in CONTENDERS.iter().enumerate() {
            let (rate, histogram) = measure(index, items);
            if round == 1 {
                println!(
                    "{:<28} {:>14.0} {:>10} {:>10} {:>10} {:>10}",
                    name,
                    rate,
                    histogram.value_at_quantile(0.5),
                    histogram.value_at_quantile(0.99),
                    histogram.value_at_quantile(0.999),
                    histogram.max()
                );
                rates.push(rate);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    if let [spsc, array_queue, channel] = rates[..] {
        println!("throughput ratio SPSC / ArrayQueue: {:.2}, SPSC / channel: {:.2}", spsc / array_queue, spsc / channel);
    }
    println!("(the first round warms up and is not printed)");
}

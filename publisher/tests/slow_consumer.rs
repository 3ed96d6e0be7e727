//! A subscriber that stops reading is disconnected with a slow-consumer Goodbye, while another
//! subscriber keeps receiving every frame.

mod common;

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use mdfh_feed::itch::Side;
use mdfh_publisher::protocol::GoodbyeReason;
use mdfh_publisher::{Client, ClientBook, OwnedFrame, PublisherConfig};
use socket2::{Domain, Socket, Type};

const LOCATE: u16 = 1;
/// Data frames the fast reader may lag behind; 500 level updates are 24 KB, well inside its queue.
const MAX_LAG: u64 = 500;
/// Level events at most before the test gives up on the slow client being disconnected.
const MAX_EVENTS: u64 = 2_000_000;
/// Level events sent after the disconnect, which the fast reader must still receive.
const EVENTS_AFTER: u64 = 1000;

/// Connects a client whose socket has a small receive buffer, so that the server's queue for it
/// fills after little traffic.
fn connect_small_buffer(addr: std::net::SocketAddr) -> Client {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("create socket");
    socket.set_recv_buffer_size(4096).expect("set receive buffer size");
    socket.connect(&addr.into()).expect("connect to publisher");
    let stream: TcpStream = socket.into();
    Client::from_stream(stream, Duration::from_secs(5)).expect("wrap stream")
}

/// Reads frames on its own thread, checking that sequence numbers have no gap, until it has
/// applied data frame `target` (0 = not known yet).
fn spawn_reader(
    mut client: Client,
    mut book: ClientBook,
    applied: Arc<AtomicU64>,
    target: Arc<AtomicU64>,
) -> thread::JoinHandle<ClientBook> {
    thread::spawn(move || {
        loop {
            let goal = target.load(Ordering::Acquire);
            if goal != 0 && book.last_seq() >= goal {
                return book;
            }
            match client.next_frame() {
                Ok(Some(frame)) => {
                    book.apply(&frame).expect("fast reader sees no gap");
                    applied.store(book.last_seq(), Ordering::Release);
                }
                Ok(None) => {}
                Err(e) => panic!("fast reader failed after data frame {}: {e}", book.last_seq()),
            }
        }
    })
}

#[test]
fn slow_consumer_is_disconnected() {
    let cfg = PublisherConfig { queue_bytes: 64 * 1024, close_timeout: Duration::from_secs(30), ..config() };
    let mut publisher = bind(&cfg);
    publisher.on_event(&directory(1, LOCATE, "SLOW"));

    let mut slow = connect_small_buffer(publisher.local_addr());
    slow.set_read_timeout(ROUND).expect("set read timeout");
    let mut fast = connect(&mut publisher);
    let mut books = [ClientBook::new(), ClientBook::new()];
    for (client, book) in [&mut slow, &mut fast].into_iter().zip(&mut books) {
        client.subscribe(None, 0).expect("send subscribe");
        assert!(matches!(next_frame(&mut publisher, client), OwnedFrame::SubscribeAck(_)));
        let snapshot = next_frame(&mut publisher, client);
        assert!(matches!(snapshot, OwnedFrame::Snapshot(_)), "got {snapshot:?}");
        book.apply(&snapshot).expect("apply snapshot");
    }
    let [_, fast_book] = books;
    fast.set_read_timeout(Duration::from_secs(5)).expect("set read timeout");

    let applied = Arc::new(AtomicU64::new(1));
    let target = Arc::new(AtomicU64::new(0));
    let reader = spawn_reader(fast, fast_book, Arc::clone(&applied), Arc::clone(&target));

    // Every level event is one data frame to each subscriber to all instruments at full depth.
    let mut sent: u64 = 1;
    let mut feed_seq = 1;
    let mut pump = |publisher: &mut mdfh_publisher::Publisher, sent: &mut u64| {
        while *sent - applied.load(Ordering::Acquire) >= MAX_LAG {
            assert!(!reader.is_finished(), "fast reader stopped after data frame {}", applied.load(Ordering::Acquire));
            publisher.poll_io(Instant::now());
            thread::yield_now();
        }
        feed_seq += 1;
        let price = 1_000_000 + 100 * (feed_seq % 16) as u32;
        publisher.on_event(&level(feed_seq, LOCATE, Side::Buy, price, feed_seq, 1));
        *sent += 1;
        publisher.poll_io(Instant::now());
    };

    while publisher.stats().slow_consumer_disconnects == 0 {
        assert!(sent < MAX_EVENTS, "slow client not disconnected after {sent} events");
        pump(&mut publisher, &mut sent);
    }
    let stats = publisher.stats();
    assert_eq!(stats.slow_consumer_disconnects, 1);
    assert_eq!(stats.active, 1);
    assert!(stats.last_error.is_some_and(|e| e.contains("slow consumer")));

    // The slow client starts reading now: it gets whole frames, then the Goodbye, then the end.
    let done = Arc::new(AtomicBool::new(false));
    let slow_reader = {
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let mut frames = Vec::new();
            loop {
                match slow.next_frame() {
                    Ok(Some(frame)) => frames.push(frame),
                    Ok(None) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                    Err(e) => panic!("slow client read failed after {} frames: {e}", frames.len()),
                }
            }
            done.store(true, Ordering::Release);
            frames
        })
    };
    for _ in 0..EVENTS_AFTER {
        pump(&mut publisher, &mut sent);
    }
    while !done.load(Ordering::Acquire) {
        publisher.poll_io(Instant::now());
        thread::yield_now();
    }

    let slow_frames = slow_reader.join().expect("slow reader thread");
    let Some((OwnedFrame::Goodbye { reason, last_seq, text }, data)) = slow_frames.split_last() else {
        panic!("slow client's last frame is not a Goodbye: {:?}", slow_frames.last());
    };
    assert_eq!(*reason, GoodbyeReason::SlowConsumer);
    assert!(text.contains("queue full"), "goodbye text {text:?}");
    let received: Vec<u64> = data.iter().filter_map(OwnedFrame::seq).collect();
    let first_level_seq = 2;
    let expected: Vec<u64> = (first_level_seq..first_level_seq + received.len() as u64).collect();
    assert_eq!(received, expected, "slow client's frames before the Goodbye are contiguous");
    assert!(*last_seq >= received.last().copied().unwrap_or(0));

    target.store(sent, Ordering::Release);
    while !reader.is_finished() {
        publisher.poll_io(Instant::now());
        thread::yield_now();
    }
    let book = reader.join().expect("fast reader thread");
    assert_eq!(book.last_seq(), sent);
    assert_eq!(book.gaps(), 0);
    let bids = book.levels(LOCATE).map(|(bids, _)| bids.to_vec());
    assert_eq!(bids, Some(mirror_levels(&publisher, LOCATE, Side::Buy, 0)));
    assert_eq!(publisher.stats().slow_consumer_disconnects, 1);
}

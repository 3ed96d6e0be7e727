//! Shared helpers for the mdfh benchmarks: the synthetic ITCH order flow (from `mdfh::synthetic`)
//! and a TCP subscriber that counts what it receives.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use mdfh_publisher::client::Client;

pub use mdfh::synthetic::{synthetic_flow, Mix};

/// A TCP subscriber to every instrument at depth 10 on its own thread, reading as fast as frames
/// come and counting them, until [`Subscriber::stop`].
pub struct Subscriber {
    pub frames: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    thread: JoinHandle<anyhow::Result<()>>,
}

impl Subscriber {
    /// Connects to `addr` and subscribes; gives the handler 300 ms to send the snapshots.
    pub fn start(addr: SocketAddr) -> Subscriber {
        let frames = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let thread = {
            let frames = frames.clone();
            let done = done.clone();
            std::thread::spawn(move || -> anyhow::Result<()> {
                let mut client = Client::connect(addr, Duration::from_secs(5))?;
                client.set_read_timeout(Duration::from_millis(100))?;
                client.subscribe(None, 10)?;
                while !done.load(Ordering::Relaxed) {
                    match client.next_frame() {
                        Ok(Some(_)) => {
                            frames.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(None) => {}
                        Err(_) => break,
                    }
                }
                Ok(())
            })
        };
        std::thread::sleep(Duration::from_millis(300));
        Subscriber { frames, done, thread }
    }

    /// Stops reading and returns the frames received.
    pub fn stop(self) -> u64 {
        self.done.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        self.frames.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mdfh_matcher::Books;

    #[test]
    fn mix_follows_the_sample() {
        let mix = Mix::from_lobster_sample();
        let sum = mix.add + mix.cancel + mix.delete + mix.execute + mix.hidden_trade + mix.replace;
        assert!((sum - 1.0).abs() < 1e-9, "{sum}");
        // 287 adds of 600 events in the sample.
        assert!((mix.add - 287.0 / 600.0).abs() < 1e-9, "{}", mix.add);
        assert!(mix.replace > 0.0);
    }

    #[test]
    fn synthetic_flow_applies_without_book_errors() {
        let flow = synthetic_flow(50_000, 4, 7);
        assert_eq!(flow.len(), 50_004);
        let mut books = Books::with_capacity(100_000, 8);
        let mut errors = 0;
        for msg in &flow {
            if books.apply(msg, &mut |_| {}).is_err() {
                errors += 1;
            }
        }
        assert_eq!(errors, 0);
        let kinds: std::collections::HashSet<u8> = flow.iter().map(|m| m.msg_type()).collect();
        for t in [b'R', b'A', b'X', b'D', b'E', b'P', b'U'] {
            assert!(kinds.contains(&t), "no '{}' in the flow", t as char);
        }
    }
}

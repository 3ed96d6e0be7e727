//! Idle strategies for the stage loops. A stage calls [`Idler::idle`] after every cycle with the
//! amount of work the cycle did; work resets the strategy, and idle cycles escalate from spinning
//! to yielding to parking, as the configured strategy allows.

use std::time::Duration;

use serde::Deserialize;

/// The configured strategy of each stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdleStrategy {
    /// Busy spin only when the machine has more cores than stages, back off otherwise.
    #[default]
    Auto,
    /// Spin forever: lowest latency, one full core per stage.
    BusySpin,
    /// Spin a while, then yield the core to other threads.
    SpinYield,
    /// Spin, then yield, then park with a sleep that doubles up to a maximum.
    Backoff,
}

/// Idle strategies of the three stages and the backoff bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdleConfig {
    pub receive: IdleStrategy,
    pub book: IdleStrategy,
    pub publish: IdleStrategy,
    /// Maximum park of the backoff strategy, in microseconds.
    pub max_park_us: u64,
}

impl Default for IdleConfig {
    fn default() -> Self {
        IdleConfig {
            receive: IdleStrategy::Auto,
            book: IdleStrategy::Auto,
            publish: IdleStrategy::Auto,
            max_park_us: 100,
        }
    }
}

/// Idle cycles spent spinning before yielding: a cycle of stage 1 or 3 is a syscall, so this is
/// tens of microseconds.
const SPINS: u32 = 50;
/// Idle cycles spent yielding before parking.
const YIELDS: u32 = 10;
const MIN_PARK: Duration = Duration::from_micros(1);

impl IdleStrategy {
    /// Resolves `Auto` for a machine with `cores` cores running `stages` busy threads: busy spin
    /// only when every stage can have a core of its own with one left for everything else.
    pub fn resolve(self, cores: usize, stages: usize) -> IdleStrategy {
        match self {
            IdleStrategy::Auto if cores > stages => IdleStrategy::BusySpin,
            IdleStrategy::Auto => IdleStrategy::Backoff,
            other => other,
        }
    }
}

/// The running state of one stage's idle strategy.
#[derive(Debug)]
pub struct Idler {
    strategy: IdleStrategy,
    max_park: Duration,
    idle_cycles: u32,
    park: Duration,
}

impl Idler {
    /// Builds an idler; `Auto` must have been resolved (it behaves as `Backoff` otherwise).
    pub fn new(strategy: IdleStrategy, max_park: Duration) -> Idler {
        Idler {
            strategy,
            max_park: max_park.max(MIN_PARK),
            idle_cycles: 0,
            park: MIN_PARK,
        }
    }

    /// Waits, as the strategy prescribes, after a cycle that did `work` units of work.
    #[inline]
    pub fn idle(&mut self, work: usize) {
        if work > 0 {
            self.idle_cycles = 0;
            self.park = MIN_PARK;
            return;
        }
        self.idle_cycles = self.idle_cycles.saturating_add(1);
        match self.strategy {
            IdleStrategy::BusySpin => std::hint::spin_loop(),
            IdleStrategy::SpinYield => {
                if self.idle_cycles < SPINS {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
            IdleStrategy::Backoff | IdleStrategy::Auto => {
                if self.idle_cycles < SPINS {
                    std::hint::spin_loop();
                } else if self.idle_cycles < SPINS + YIELDS {
                    std::thread::yield_now();
                } else {
                    std::thread::park_timeout(self.park);
                    self.park = (self.park * 2).min(self.max_park);
                }
            }
        }
    }

    /// Returns the strategy in force.
    pub fn strategy(&self) -> IdleStrategy {
        self.strategy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_never_spins_more_threads_than_cores() {
        assert_eq!(IdleStrategy::Auto.resolve(2, 3), IdleStrategy::Backoff);
        assert_eq!(IdleStrategy::Auto.resolve(3, 3), IdleStrategy::Backoff);
        assert_eq!(IdleStrategy::Auto.resolve(8, 3), IdleStrategy::BusySpin);
        assert_eq!(IdleStrategy::SpinYield.resolve(2, 3), IdleStrategy::SpinYield);
    }

    #[test]
    fn backoff_park_grows_to_max_and_resets_on_work() {
        let mut idler = Idler::new(IdleStrategy::Backoff, Duration::from_micros(8));
        for _ in 0..(SPINS + YIELDS + 10) {
            idler.idle(0);
        }
        assert_eq!(idler.park, Duration::from_micros(8));
        idler.idle(1);
        assert_eq!(idler.park, MIN_PARK);
        assert_eq!(idler.idle_cycles, 0);
    }
}

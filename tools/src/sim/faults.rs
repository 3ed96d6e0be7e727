//! Seeded fault injection per line: loss, bursts of loss, duplication, reordering and delay of
//! MoldUDP64 data packets.
//!
//! Each line draws from its own ChaCha8 generator, seeded with `seed` and using stream 0 for
//! line A and stream 1 for line B, so that the same seed gives the same faults on every platform.
//! For every data packet of a faulted line, the generator draws exactly four numbers in [0, 1),
//! in this order: loss, duplicate, reorder, delay. The faults of data packet `n` then depend only
//! on the seed, the line and `n`, never on the faults of earlier packets. They are decided in
//! this order:
//!
//! 1. Burst: packets `burst_at .. burst_at + burst_len` are lost, and their rolls are not used.
//! 2. Loss: the packet is lost when the loss roll is below `loss`. A lost packet is neither
//!    duplicated, reordered nor delayed.
//! 3. Duplicate: the packet is sent twice in a row.
//! 4. Reorder: the packet is held back and sent right after the next data packet sent on the
//!    line. Only one packet is held at a time, so the roll is ignored while a packet is held.
//!    A held packet that is also duplicated sends both copies when released.
//! 5. Delay: the packet (both copies when duplicated) is sent `delay_us` late.
//!
//! Heartbeats and end-of-session packets are never faulted and take no rolls.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Selection of the lines the faults apply to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultTarget {
    #[default]
    A,
    B,
    Both,
}

/// Line A or line B: the same packets sent to two destinations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineId {
    A,
    B,
}

impl LineId {
    /// Returns the ChaCha8 stream number of the line's generator.
    fn stream(self) -> u64 {
        match self {
            LineId::A => 0,
            LineId::B => 1,
        }
    }
}

/// Fault settings, shared by the lines that [`FaultConfig::target`] selects.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    /// Seed of the per-line generators.
    pub seed: u64,
    pub target: FaultTarget,
    /// Probability that a data packet is lost.
    pub loss: f64,
    /// Probability that a data packet is sent after the next one.
    pub reorder: f64,
    /// Probability that a data packet is sent twice in a row.
    pub duplicate: f64,
    /// Probability that a data packet is sent `delay_us` late.
    pub delay: f64,
    /// Delay of a delayed packet, in microseconds.
    pub delay_us: u64,
    /// Number of consecutive data packets lost in the burst; 0 for no burst.
    pub burst_len: u64,
    /// Index of the first data packet of the burst on the line, from 0.
    pub burst_at: u64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            seed: 1,
            target: FaultTarget::A,
            loss: 0.0,
            reorder: 0.0,
            duplicate: 0.0,
            delay: 0.0,
            delay_us: 1_000,
            burst_len: 0,
            burst_at: 0,
        }
    }
}

impl FaultConfig {
    /// Checks that every probability is in [0, 1].
    pub fn validate(&self) -> anyhow::Result<()> {
        for (name, p) in [("loss", self.loss), ("reorder", self.reorder), ("duplicate", self.duplicate), ("delay", self.delay)] {
            anyhow::ensure!((0.0..=1.0).contains(&p), "invalid {name} probability {p}: expected a number from 0 to 1");
        }
        Ok(())
    }

    /// Returns true when the faults apply to `line`.
    pub fn applies_to(&self, line: LineId) -> bool {
        matches!(
            (self.target, line),
            (FaultTarget::Both, _) | (FaultTarget::A, LineId::A) | (FaultTarget::B, LineId::B)
        )
    }

    /// Returns the delay of a delayed packet.
    pub fn delay_duration(&self) -> Duration {
        Duration::from_micros(self.delay_us)
    }
}

/// The faults decided for one data packet on one line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The packet is not sent.
    pub lost: bool,
    /// The packet is lost as part of the burst (`lost` is also set).
    pub burst: bool,
    pub duplicate: bool,
    pub reorder: bool,
    pub delay: bool,
}

/// The fault generator of one line.
#[derive(Debug, Clone)]
pub struct FaultRoller {
    config: FaultConfig,
    /// `None` on a line the faults do not apply to: every packet is sent once, in order.
    rng: Option<ChaCha8Rng>,
    /// Index of the next data packet on the line, from 0.
    index: u64,
}

impl FaultRoller {
    pub fn new(config: &FaultConfig, line: LineId) -> FaultRoller {
        let rng = config.applies_to(line).then(|| {
            let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
            rng.set_stream(line.stream());
            rng
        });
        FaultRoller { config: config.clone(), rng, index: 0 }
    }

    /// Decides the faults of the line's next data packet.
    pub fn roll(&mut self) -> Verdict {
        let index = self.index;
        self.index += 1;
        let Some(rng) = self.rng.as_mut() else {
            return Verdict::default();
        };
        let loss: f64 = rng.random();
        let duplicate: f64 = rng.random();
        let reorder: f64 = rng.random();
        let delay: f64 = rng.random();

        let config = &self.config;
        let burst_end = config.burst_at.saturating_add(config.burst_len);
        if (config.burst_at..burst_end).contains(&index) {
            return Verdict { lost: true, burst: true, ..Verdict::default() };
        }
        if loss < config.loss {
            return Verdict { lost: true, ..Verdict::default() };
        }
        Verdict {
            lost: false,
            burst: false,
            duplicate: duplicate < config.duplicate,
            reorder: reorder < config.reorder,
            delay: delay < config.delay,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rolls(config: &FaultConfig, line: LineId, n: usize) -> Vec<Verdict> {
        let mut roller = FaultRoller::new(config, line);
        (0..n).map(|_| roller.roll()).collect()
    }

    #[test]
    fn same_seed_same_rolls() {
        let config = FaultConfig { loss: 0.2, duplicate: 0.2, reorder: 0.2, delay: 0.2, target: FaultTarget::Both, ..FaultConfig::default() };
        assert_eq!(rolls(&config, LineId::A, 500), rolls(&config, LineId::A, 500));
        assert_ne!(rolls(&config, LineId::A, 500), rolls(&config, LineId::B, 500));
        let other = FaultConfig { seed: 2, ..config.clone() };
        assert_ne!(rolls(&config, LineId::A, 500), rolls(&other, LineId::A, 500));
    }

    #[test]
    fn burst_loses_exact_range() {
        let config = FaultConfig { burst_at: 3, burst_len: 4, ..FaultConfig::default() };
        let verdicts = rolls(&config, LineId::A, 10);
        let lost: Vec<usize> = verdicts.iter().enumerate().filter(|(_, v)| v.lost).map(|(i, _)| i).collect();
        assert_eq!(lost, vec![3, 4, 5, 6]);
        assert!(verdicts.iter().filter(|v| v.lost).all(|v| v.burst));
    }

    #[test]
    fn lost_packet_has_no_other_fault() {
        let config = FaultConfig { loss: 0.5, duplicate: 1.0, reorder: 1.0, delay: 1.0, ..FaultConfig::default() };
        let verdicts = rolls(&config, LineId::A, 200);
        assert!(verdicts.iter().any(|v| v.lost));
        for v in &verdicts {
            assert_eq!(v.lost, !v.duplicate);
            assert_eq!(v.lost, !v.reorder);
            assert_eq!(v.lost, !v.delay);
        }
    }

    #[test]
    fn unfaulted_line_has_no_faults() {
        let config = FaultConfig { loss: 1.0, burst_len: 5, ..FaultConfig::default() };
        assert!(rolls(&config, LineId::B, 50).iter().all(|v| *v == Verdict::default()));
        assert!(rolls(&config, LineId::A, 50).iter().all(|v| v.lost));
    }

    #[test]
    fn rolls_do_not_depend_on_earlier_outcomes() {
        // The same draws decide packet 7 whatever the probabilities: four draws per packet.
        let low = FaultConfig { loss: 0.0, duplicate: 0.3, ..FaultConfig::default() };
        let high = FaultConfig { loss: 0.0, duplicate: 0.3, burst_at: 0, burst_len: 5, ..FaultConfig::default() };
        assert_eq!(rolls(&low, LineId::A, 20)[5..], rolls(&high, LineId::A, 20)[5..]);
    }

    #[test]
    fn validate_rejects_out_of_range() {
        assert!(FaultConfig::default().validate().is_ok());
        assert!(FaultConfig { loss: 1.5, ..FaultConfig::default() }.validate().is_err());
        assert!(FaultConfig { delay: -0.1, ..FaultConfig::default() }.validate().is_err());
        assert!(FaultConfig { reorder: f64::NAN, ..FaultConfig::default() }.validate().is_err());
    }
}

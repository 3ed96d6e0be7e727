//! Pacing of a replay at a multiple of the recorded speed.

use super::files::{Clock, ClockKind};

/// Maps recorded times to monotonic due times, `factor` times faster than recorded.
///
/// The first unit is due at once. Each later unit is due at the first unit's due time plus its
/// recorded time since the first unit, divided by `factor`. A unit never falls due before the
/// one before it, so a recorded time that steps back is due with the previous unit. A unit
/// without a recorded time is due with the previous unit too. When the clock changes (from
/// capture time to ITCH time, or back) or the time steps back past the anchor, as at the start
/// of another day's file, the schedule starts again from the previous unit's due time.
///
/// Due times are absolute, so a replay that falls behind (a full ring, a slow file load) hands
/// on the late units at once and is back on schedule when it catches up.
#[derive(Debug, Clone)]
pub(super) struct Pacer {
    factor: f64,
    anchor: Option<Anchor>,
    last_due_ns: Option<u64>,
}

/// A recorded time and the monotonic time it is due at.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    kind: ClockKind,
    recorded_ns: u64,
    due_ns: u64,
}

impl Pacer {
    /// Creates a pacer for a speed of `factor` times the recorded speed; `factor` is positive.
    pub(super) fn new(factor: f64) -> Pacer {
        Pacer { factor, anchor: None, last_due_ns: None }
    }

    /// Returns the monotonic time in nanoseconds at which the unit recorded at `clock` is due.
    /// `now_ns` is the current monotonic time. Calling it again for the same unit returns the
    /// same time.
    pub(super) fn due_ns(&mut self, clock: Option<Clock>, now_ns: u64) -> u64 {
        let Some(clock) = clock else {
            return self.last_due_ns.unwrap_or(now_ns);
        };
        let anchor = match self.anchor {
            Some(anchor) if anchor.kind == clock.kind && clock.ns >= anchor.recorded_ns => anchor,
            _ => {
                let anchor = Anchor {
                    kind: clock.kind,
                    recorded_ns: clock.ns,
                    due_ns: self.last_due_ns.unwrap_or(now_ns),
                };
                self.anchor = Some(anchor);
                anchor
            }
        };
        // f64 represents every elapsed time below 2^53 ns (104 days) exactly.
        let scaled = (clock.ns - anchor.recorded_ns) as f64 / self.factor;
        let due = anchor.due_ns.saturating_add(scaled as u64);
        let due = due.max(self.last_due_ns.unwrap_or(0));
        self.last_due_ns = Some(due);
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn capture(ns: u64) -> Option<Clock> {
        Some(Clock { kind: ClockKind::Capture, ns })
    }

    fn exchange(ns: u64) -> Option<Clock> {
        Some(Clock { kind: ClockKind::Exchange, ns })
    }

    #[test]
    fn real_time_keeps_intervals() {
        let mut pacer = Pacer::new(1.0);
        let now = 5_000 * MS;
        assert_eq!(pacer.due_ns(capture(1_000 * MS), now), now);
        assert_eq!(pacer.due_ns(capture(1_001 * MS), now), now + MS);
        assert_eq!(pacer.due_ns(capture(1_004 * MS), now + 2 * MS), now + 4 * MS);
    }

    #[test]
    fn factor_scales_intervals() {
        let mut fast = Pacer::new(10.0);
        assert_eq!(fast.due_ns(exchange(0), 0), 0);
        assert_eq!(fast.due_ns(exchange(30 * MS), 0), 3 * MS);

        let mut slow = Pacer::new(0.5);
        assert_eq!(slow.due_ns(exchange(0), 0), 0);
        assert_eq!(slow.due_ns(exchange(3 * MS), 0), 6 * MS);
    }

    #[test]
    fn same_unit_gets_same_due_time() {
        let mut pacer = Pacer::new(1.0);
        pacer.due_ns(capture(100 * MS), 0);
        let first = pacer.due_ns(capture(107 * MS), 0);
        let again = pacer.due_ns(capture(107 * MS), 50 * MS);
        assert_eq!(first, 7 * MS);
        assert_eq!(again, first);
    }

    #[test]
    fn step_back_is_due_with_previous() {
        let mut pacer = Pacer::new(1.0);
        pacer.due_ns(capture(100 * MS), 0);
        assert_eq!(pacer.due_ns(capture(110 * MS), 0), 10 * MS);
        // Behind the last unit but after the anchor: due with the last unit.
        assert_eq!(pacer.due_ns(capture(105 * MS), 0), 10 * MS);
        // Before the anchor, as in the next day's file: a new schedule from the last due time.
        assert_eq!(pacer.due_ns(capture(MS), 0), 10 * MS);
        assert_eq!(pacer.due_ns(capture(3 * MS), 0), 12 * MS);
    }

    #[test]
    fn clock_change_starts_new_schedule() {
        let mut pacer = Pacer::new(1.0);
        pacer.due_ns(capture(1_000 * MS), 0);
        assert_eq!(pacer.due_ns(capture(1_002 * MS), 0), 2 * MS);
        assert_eq!(pacer.due_ns(exchange(34_200_000 * MS), 0), 2 * MS);
        assert_eq!(pacer.due_ns(exchange(34_200_005 * MS), 0), 7 * MS);
    }

    #[test]
    fn unit_without_time_is_due_with_previous() {
        let mut pacer = Pacer::new(1.0);
        assert_eq!(pacer.due_ns(None, 42), 42);
        pacer.due_ns(capture(0), 0);
        assert_eq!(pacer.due_ns(capture(9 * MS), 0), 9 * MS);
        assert_eq!(pacer.due_ns(None, 0), 9 * MS);
    }
}

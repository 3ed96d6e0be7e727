//! Wall-clock receive times for the recorder, and the UTC time in file names.

use std::time::{SystemTime, UNIX_EPOCH};

use mdfh_feed::udp::monotonic_ns;

const NANOS_PER_SECOND: u64 = 1_000_000_000;
const SECONDS_PER_DAY: u64 = 86_400;

/// Converts the pipeline's monotonic receive timestamps ([`monotonic_ns`]) into nanoseconds since
/// the Unix epoch, so that the receive time stamped by `UdpReceiver` is the time in the pcap.
///
/// The clock reads the system time only when it re-anchors, at most once per second of monotonic
/// time, so a conversion is a subtraction and an addition. A step of the system clock shows up
/// in the converted times at the next re-anchor, up to a second late.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    anchor_monotonic_ns: u64,
    anchor_wall_ns: u64,
}

impl Default for WallClock {
    fn default() -> Self {
        WallClock::new()
    }
}

impl WallClock {
    /// Anchors the clock at the current system time.
    pub fn new() -> WallClock {
        WallClock {
            anchor_monotonic_ns: monotonic_ns(),
            anchor_wall_ns: system_time_ns(),
        }
    }

    /// Returns the wall-clock time, in nanoseconds since the Unix epoch, of the moment the
    /// monotonic clock read `monotonic_ns`.
    #[inline]
    pub fn wall_ns(&mut self, monotonic_ns: u64) -> u64 {
        if monotonic_ns.saturating_sub(self.anchor_monotonic_ns) >= NANOS_PER_SECOND {
            *self = WallClock::new();
        }
        if monotonic_ns >= self.anchor_monotonic_ns {
            self.anchor_wall_ns.saturating_add(monotonic_ns - self.anchor_monotonic_ns)
        } else {
            self.anchor_wall_ns.saturating_sub(self.anchor_monotonic_ns - monotonic_ns)
        }
    }
}

/// Returns the system time in nanoseconds since the Unix epoch; 0 for a clock set before 1970.
pub fn system_time_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
}

/// Formats `unix_secs` (seconds since the Unix epoch) as UTC `yyyymmddThhmmss`.
pub fn utc_compact(unix_secs: u64) -> String {
    let days = unix_secs / SECONDS_PER_DAY;
    let second_of_day = unix_secs % SECONDS_PER_DAY;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// Returns the proleptic Gregorian (year, month, day) of day `days` after 1970-01-01. This is
/// Howard Hinnant's `civil_from_days`, restricted to dates from 1970 on: eras of 400 years
/// (146,097 days) counted from 0000-03-01, so the leap day is the last day of its year.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Days from 0000-03-01 to 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months counted from March: 0 = March, 11 = February.
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_compact_known_instants() {
        assert_eq!(utc_compact(0), "19700101T000000");
        assert_eq!(utc_compact(951_782_400), "20000229T000000");
        assert_eq!(utc_compact(951_868_799), "20000229T235959");
        assert_eq!(utc_compact(1_692_711_000), "20230822T133000");
        assert_eq!(utc_compact(4_102_444_799), "20991231T235959");
    }

    // `u64::is_multiple_of` needs Rust 1.87; the workspace supports 1.80.
    #[allow(clippy::manual_is_multiple_of)]
    fn month_len(year: u64, month: u64) -> u64 {
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        match month {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }

    #[test]
    fn civil_from_days_walks_every_day() {
        // Day by day from 1970 to 2099, each date must be the day after the previous one.
        let mut previous = civil_from_days(0);
        assert_eq!(previous, (1970, 1, 1));
        for days in 1..47_482 {
            let (p_year, p_month, p_day) = previous;
            let expected = if p_day < month_len(p_year, p_month) {
                (p_year, p_month, p_day + 1)
            } else if p_month < 12 {
                (p_year, p_month + 1, 1)
            } else {
                (p_year + 1, 1, 1)
            };
            let date = civil_from_days(days);
            assert_eq!(date, expected, "day {days} after {previous:?}");
            previous = date;
        }
        assert_eq!(previous, (2099, 12, 31));
    }

    #[test]
    fn wall_clock_follows_monotonic_clock() {
        let before = system_time_ns();
        let mut clock = WallClock::new();
        let now_monotonic = monotonic_ns();
        let wall = clock.wall_ns(now_monotonic);
        let after = system_time_ns();
        // The anchor's two clock reads are not simultaneous: allow 1 ms either way.
        assert!(wall + 1_000_000 >= before, "{wall} is before {before}");
        assert!(wall <= after + 1_000_000, "{wall} is after {after}");
        // 1 ms of monotonic time is 1 ms of converted time while the anchor holds.
        assert_eq!(clock.wall_ns(now_monotonic + 1_000_000), wall + 1_000_000);
    }
}

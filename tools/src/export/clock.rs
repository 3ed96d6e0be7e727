//! Trading dates and the conversion of ITCH times to Unix time.
//!
//! ITCH timestamps count nanoseconds since midnight in New York. Writing them as DBN, whose
//! timestamps count nanoseconds since the Unix epoch, needs the trading date and the New York
//! UTC offset at midnight of that date.

use std::fmt;
use std::str::FromStr;

use time::{Date, Month};

/// Nanoseconds in one hour.
const HOUR_NS: u64 = 3_600_000_000_000;
/// Nanoseconds in one day.
pub const DAY_NS: u64 = 24 * HOUR_NS;
/// First year of the US daylight saving rules [`TradingDate::midnight_ns`] applies.
const FIRST_RULE_YEAR: i32 = 2007;

/// A trading date, `YYYY-MM-DD`, in 2007 or later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TradingDate(Date);

impl FromStr for TradingDate {
    type Err = String;

    fn from_str(text: &str) -> Result<TradingDate, String> {
        let invalid = || format!("invalid date {text:?}: expected YYYY-MM-DD, 2007 or later");
        let mut parts = text.splitn(3, '-');
        let (Some(year), Some(month), Some(day)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(invalid());
        };
        let year: i32 = year.parse().map_err(|_| invalid())?;
        let month: u8 = month.parse().map_err(|_| invalid())?;
        let day: u8 = day.parse().map_err(|_| invalid())?;
        let month = Month::try_from(month).map_err(|_| invalid())?;
        let date = Date::from_calendar_date(year, month, day).map_err(|_| invalid())?;
        if year < FIRST_RULE_YEAR {
            return Err(invalid());
        }
        Ok(TradingDate(date))
    }
}

impl fmt::Display for TradingDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (year, month, day) = (self.0.year(), u8::from(self.0.month()), self.0.day());
        write!(f, "{year:04}-{month:02}-{day:02}")
    }
}

impl TradingDate {
    pub fn date(&self) -> Date {
        self.0
    }

    /// Returns midnight of this date in New York, in nanoseconds since the Unix epoch.
    ///
    /// Eastern daylight time (UTC-4) runs from 02:00 on the second Sunday of March to 02:00 on
    /// the first Sunday of November, the US rule since 2007, and standard time (UTC-5) the rest
    /// of the year. Midnight is never inside a change, so the offset at midnight is that of the
    /// whole date's start.
    pub fn midnight_ns(&self) -> u64 {
        let year = self.0.year();
        let daylight_start = nth_sunday(year, Month::March, 2);
        let daylight_end = nth_sunday(year, Month::November, 1);
        let offset_hours = if self.0 > daylight_start && self.0 <= daylight_end { 4 } else { 5 };
        let days = u64::try_from(self.0.to_julian_day() - UNIX_EPOCH_JULIAN_DAY).unwrap_or(0);
        days * DAY_NS + offset_hours * HOUR_NS
    }

    /// Returns the next calendar date, or this one on the last date `time` can represent.
    pub fn next_date(&self) -> Date {
        self.0.next_day().unwrap_or(self.0)
    }
}

/// Julian day number of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;

/// Returns the `n`th Sunday (from 1) of `month` in `year`.
fn nth_sunday(year: i32, month: Month, n: u8) -> Date {
    let first = Date::from_calendar_date(year, month, 1).unwrap_or(Date::MIN);
    let to_sunday = (7 - first.weekday().number_days_from_sunday()) % 7;
    let day = 1 + to_sunday + 7 * (n - 1);
    Date::from_calendar_date(year, month, day).unwrap_or(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Weekday;

    fn midnight(text: &str) -> u64 {
        text.parse::<TradingDate>().map(|date| date.midnight_ns()).unwrap_or(0)
    }

    #[test]
    fn summer_midnight_is_utc_minus_4() {
        // 2012-06-21T04:00:00Z.
        assert_eq!(midnight("2012-06-21"), 1_340_251_200_000_000_000);
    }

    #[test]
    fn winter_midnight_is_utc_minus_5() {
        // 2020-12-28T05:00:00Z.
        assert_eq!(midnight("2020-12-28"), 1_609_131_600_000_000_000);
    }

    #[test]
    fn change_days_take_the_offset_before_2am() {
        // 2024-03-10 is the second Sunday of March: midnight is still standard time.
        assert_eq!(midnight("2024-03-10"), 1_710_046_800_000_000_000);
        // 2024-03-11 starts in daylight time.
        assert_eq!(midnight("2024-03-11"), 1_710_129_600_000_000_000);
        // 2024-11-03 is the first Sunday of November: midnight is still daylight time.
        assert_eq!(midnight("2024-11-03"), 1_730_606_400_000_000_000);
        // 2024-11-04 starts in standard time.
        assert_eq!(midnight("2024-11-04"), 1_730_696_400_000_000_000);
    }

    #[test]
    fn invalid_dates_are_rejected() {
        for text in ["2012-6", "2012-02-30", "1999-01-04", "2012/06/21", "yesterday"] {
            assert!(text.parse::<TradingDate>().is_err(), "{text} was accepted");
        }
    }

    #[test]
    fn nth_sunday_counts_from_the_first() {
        assert_eq!(nth_sunday(2024, Month::March, 2).weekday(), Weekday::Sunday);
        assert_eq!(nth_sunday(2024, Month::March, 2).day(), 10);
        assert_eq!(nth_sunday(2024, Month::November, 1).day(), 3);
    }
}

//! Options of a replay: its pace and its start point.

use std::fmt;
use std::str::FromStr;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// Pace of a replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// A multiple of the recorded speed: 1.0 keeps the recorded intervals, 10.0 divides them by
    /// ten. Always positive and finite.
    Factor(f64),
    /// As fast as the pipeline takes them: stage 1 waits only while its ring is full.
    Max,
    /// One message per step granted through [`super::ReplayControl::grant_step`].
    Step,
}

/// Slowest factor accepted: a second of recorded time then takes about 17 minutes.
const MIN_FACTOR: f64 = 0.001;
/// Fastest factor accepted; beyond it pacing is below the timer's resolution, as `max` is.
const MAX_FACTOR: f64 = 1_000_000.0;

impl FromStr for Speed {
    type Err = String;

    /// Parses `max`, `step`, or a factor followed by `x`, such as `1x`, `10x` or `0.5x`.
    fn from_str(text: &str) -> Result<Speed, String> {
        let invalid = || format!("invalid speed {text:?}: expected 1x, a factor such as 10x or 0.5x, max, or step");
        match text {
            "max" => Ok(Speed::Max),
            "step" => Ok(Speed::Step),
            _ => {
                let factor: f64 = text.strip_suffix('x').ok_or_else(invalid)?.parse().map_err(|_| invalid())?;
                if (MIN_FACTOR..=MAX_FACTOR).contains(&factor) {
                    Ok(Speed::Factor(factor))
                } else {
                    Err(format!("invalid speed {text:?}: the factor must be between {MIN_FACTOR}x and {MAX_FACTOR}x; use max for full speed"))
                }
            }
        }
    }
}

impl fmt::Display for Speed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Speed::Factor(factor) => write!(f, "{factor}x"),
            Speed::Max => f.write_str("max"),
            Speed::Step => f.write_str("step"),
        }
    }
}

/// Point of a replay where pacing starts. Every message before it is handed on at once, so the
/// books are rebuilt up to that point, and the first message at or after it is the first one
/// paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPoint {
    /// The first message whose feed sequence number is at least this: the MoldUDP64 sequence
    /// number in a capture, the message number from 1 in a BinaryFILE.
    Sequence(u64),
    /// The first message whose ITCH timestamp, in nanoseconds since midnight, is at least this.
    Time(u64),
}

impl fmt::Display for StartPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartPoint::Sequence(sequence) => write!(f, "start sequence number {sequence}"),
            StartPoint::Time(ns) => write!(f, "start time {}", format_time_of_day(*ns)),
        }
    }
}

/// Parses a time of day `HH:MM:SS` with up to nine decimals of seconds, such as `09:30:00` or
/// `09:30:10.25`, into nanoseconds since midnight.
pub fn parse_time_of_day(text: &str) -> Result<u64, String> {
    let invalid = |why: &str| format!("invalid time {text:?}: {why}; expected HH:MM:SS or HH:MM:SS.fffffffff");
    let (clock, fraction) = match text.split_once('.') {
        Some((clock, fraction)) => (clock, Some(fraction)),
        None => (text, None),
    };
    let fields: Vec<&str> = clock.split(':').collect();
    let [hours, minutes, seconds] = fields.as_slice() else {
        return Err(invalid("three fields separated by ':' are required"));
    };
    let field = |digits: &str, max: u64, name: &str| -> Result<u64, String> {
        let valid = digits.len() == 2 && digits.bytes().all(|b| b.is_ascii_digit());
        let value = if valid { digits.parse::<u64>().ok() } else { None };
        value.filter(|v| *v <= max).ok_or_else(|| invalid(&format!("{name} must be two digits from 00 to {max:02}")))
    };
    let mut ns = (field(hours, 23, "hours")? * 3600 + field(minutes, 59, "minutes")? * 60 + field(seconds, 59, "seconds")?)
        * NANOS_PER_SECOND;
    if let Some(fraction) = fraction {
        if fraction.is_empty() || fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("the fraction of a second must be 1 to 9 digits"));
        }
        let digits: u64 = fraction.parse().map_err(|_| invalid("the fraction of a second is not a number"))?;
        ns += digits * 10u64.pow(9 - fraction.len() as u32);
    }
    Ok(ns)
}

/// Formats nanoseconds since midnight as `HH:MM:SS.fffffffff`.
pub fn format_time_of_day(ns: u64) -> String {
    let seconds = ns / NANOS_PER_SECOND;
    format!(
        "{:02}:{:02}:{:02}.{:09}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        ns % NANOS_PER_SECOND
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_parses_factors_and_modes() {
        assert_eq!("1x".parse(), Ok(Speed::Factor(1.0)));
        assert_eq!("10x".parse(), Ok(Speed::Factor(10.0)));
        assert_eq!("0.5x".parse(), Ok(Speed::Factor(0.5)));
        assert_eq!("max".parse(), Ok(Speed::Max));
        assert_eq!("step".parse(), Ok(Speed::Step));
        for bad in ["", "x", "10", "0x", "-1x", "infx", "NaNx", "fast"] {
            assert!(bad.parse::<Speed>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn time_of_day_parses_to_nanoseconds() {
        assert_eq!(parse_time_of_day("00:00:00"), Ok(0));
        assert_eq!(parse_time_of_day("09:30:00"), Ok(34_200 * NANOS_PER_SECOND));
        assert_eq!(parse_time_of_day("09:30:10.25"), Ok(34_210 * NANOS_PER_SECOND + 250_000_000));
        assert_eq!(parse_time_of_day("23:59:59.000000001"), Ok(86_399 * NANOS_PER_SECOND + 1));
        for bad in ["9:30:00", "24:00:00", "09:60:00", "09:30", "09:30:00.", "09:30:00.1234567890", "09:30:0a"] {
            assert!(parse_time_of_day(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn time_of_day_formats_back() {
        let ns = parse_time_of_day("09:30:27.437330595").unwrap();
        assert_eq!(format_time_of_day(ns), "09:30:27.437330595");
    }
}

//! Rate limiting for error logs on the data path: at most one line per kind of error per period,
//! and the next line says how many were suppressed in between. Counting happens elsewhere, for
//! every error.

/// How often one kind of error may be logged, in nanoseconds.
pub const DEFAULT_PERIOD_NS: u64 = 1_000_000_000;

/// The state of one error kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct RateLimit {
    last_ns: Option<u64>,
    suppressed: u64,
}

impl RateLimit {
    /// Returns `Some(suppressed)` when a line may be logged now (with the number of errors of this
    /// kind not logged since the last line), `None` when this one must be suppressed.
    #[inline]
    pub fn check(&mut self, now_ns: u64, period_ns: u64) -> Option<u64> {
        match self.last_ns {
            Some(last) if now_ns.saturating_sub(last) < period_ns => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last_ns = Some(now_ns);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// Logs a warning through `tracing` when the rate limit allows it.
#[macro_export]
macro_rules! warn_limited {
    ($limit:expr, $now:expr, $($arg:tt)+) => {
        if let Some(suppressed) = $limit.check($now, $crate::ratelimit::DEFAULT_PERIOD_NS) {
            tracing::warn!(suppressed, $($arg)+);
        }
    };
}

/// Logs an info line through `tracing` when the rate limit allows it.
#[macro_export]
macro_rules! info_limited {
    ($limit:expr, $now:expr, $($arg:tt)+) => {
        if let Some(suppressed) = $limit.check($now, $crate::ratelimit::DEFAULT_PERIOD_NS) {
            tracing::info!(suppressed, $($arg)+);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_with_suppressed_count() {
        let mut limit = RateLimit::default();
        assert_eq!(limit.check(0, 100), Some(0));
        assert_eq!(limit.check(10, 100), None);
        assert_eq!(limit.check(99, 100), None);
        assert_eq!(limit.check(100, 100), Some(2));
        assert_eq!(limit.check(150, 100), None);
        assert_eq!(limit.check(1_000, 100), Some(1));
    }
}

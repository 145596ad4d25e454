//! Milliseconds: times (since the Unix epoch, as every time is stored) and durations.

use std::fmt;
use std::time::Duration;

/// A number of milliseconds: a time since the Unix epoch (UTC), or a duration. Stored as a
/// 64-bit integer; serialised as a number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Millis(pub i64);

impl Millis {
    pub const ZERO: Millis = Millis(0);

    /// A duration, saturating (a duration beyond 292 million years is the maximum).
    pub fn of(d: Duration) -> Millis {
        Millis(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }

    /// So many minutes (hours, days) as milliseconds.
    pub fn minutes(m: u32) -> Millis {
        Millis(i64::from(m) * 60_000)
    }

    pub fn hours(h: u32) -> Millis {
        Millis(i64::from(h) * 3_600_000)
    }

    pub fn as_i64(self) -> i64 {
        self.0
    }

    /// `self + d`, saturating.
    pub fn plus(self, d: Millis) -> Millis {
        Millis(self.0.saturating_add(d.0))
    }

    /// `self - d`, saturating.
    pub fn minus(self, d: Millis) -> Millis {
        Millis(self.0.saturating_sub(d.0))
    }

    /// The time from `earlier` to `self` (negative when `earlier` is later).
    pub fn since(self, earlier: Millis) -> Millis {
        self.minus(earlier)
    }

    /// As days (for the decision's signals).
    pub fn as_days(self) -> f64 {
        self.0 as f64 / 86_400_000.0
    }
}

impl From<i64> for Millis {
    fn from(ms: i64) -> Millis {
        Millis(ms)
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_saturate() {
        assert_eq!(Millis::of(Duration::from_millis(1500)), Millis(1500));
        assert_eq!(Millis::of(Duration::MAX), Millis(i64::MAX));
        assert_eq!(Millis(i64::MAX).plus(Millis(1)), Millis(i64::MAX));
        assert_eq!(Millis(10).since(Millis(4)), Millis(6));
        assert_eq!(Millis::hours(72), Millis(72 * 3_600_000));
    }
}

//! Card and token expiry dates, MMYY on the wire.

use std::fmt;
use time::{Date, Month, OffsetDateTime};

/// A card expiry (month and year). A card is valid through the last day of its month.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Expiry {
    year: u16,
    month: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expiry must be MMYY with a month from 01 to 12")]
pub struct ExpiryError;

impl Expiry {
    /// Parses MMYY (the only form TSH and the card file use).
    pub fn parse_mmyy(input: &str) -> Result<Self, ExpiryError> {
        let b = input.as_bytes();
        if b.len() != 4 || !b.iter().all(u8::is_ascii_digit) {
            return Err(ExpiryError);
        }
        let num = |i: usize| -> u16 {
            b.get(i).map(|d| u16::from(d - b'0')).unwrap_or(0) * 10
                + b.get(i + 1).map(|d| u16::from(d - b'0')).unwrap_or(0)
        };
        let month = num(0);
        let year = 2000 + num(2);
        if !(1..=12).contains(&month) {
            return Err(ExpiryError);
        }
        Ok(Expiry {
            year,
            month: month as u8,
        })
    }

    pub fn mmyy(&self) -> String {
        format!("{:02}{:02}", self.month, self.year % 100)
    }

    /// True when `now` is after the last day of the expiry month (UTC).
    pub fn is_expired_at(&self, now: OffsetDateTime) -> bool {
        let today = now.date();
        (today.year(), today.month() as u8) > (i32::from(self.year), self.month)
    }

    /// Whole days from `now` to the last day of the expiry month (negative once expired).
    pub fn days_left_at(&self, now: OffsetDateTime) -> Option<i64> {
        let month = Month::try_from(self.month).ok()?;
        let last = Date::from_calendar_date(
            i32::from(self.year),
            month,
            month.length(i32::from(self.year)),
        )
        .ok()?;
        Some((last - now.date()).whole_days())
    }

    /// The first day of the expiry month.
    pub fn last_valid_month(&self) -> Option<Date> {
        let month = Month::try_from(self.month).ok()?;
        Date::from_calendar_date(i32::from(self.year), month, 1).ok()
    }
}

impl fmt::Debug for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Expiry({})", self.mmyy())
    }
}

impl fmt::Display for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}/{:02}", self.month, self.year % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn parses_mmyy_and_rejects_the_rest() {
        assert_eq!(Expiry::parse_mmyy("1229").unwrap().mmyy(), "1229");
        for bad in ["1329", "0029", "12/29", "122", "12299", "ab29", ""] {
            assert!(Expiry::parse_mmyy(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn valid_through_the_last_day_of_its_month() {
        let exp = Expiry::parse_mmyy("0626").unwrap();
        assert!(!exp.is_expired_at(datetime!(2026-06-30 23:59 UTC)));
        assert!(exp.is_expired_at(datetime!(2026-07-01 00:00 UTC)));
        assert!(!exp.is_expired_at(datetime!(2025-12-01 00:00 UTC)));
    }
}

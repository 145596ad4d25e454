//! The funding card number. It never leaves this type in clear except through
//! [`Pan::expose_digits`], which callers use only to compute the keyed index.

use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A primary account number: 12 to 19 ASCII digits that pass the Luhn check.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Pan(String);

/// Why a string is not a PAN. Deliberately carries nothing of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PanError {
    #[error("card number must be 12 to 19 digits")]
    Length,
    #[error("card number must contain digits only")]
    NotDigits,
    #[error("card number fails the Luhn check")]
    Luhn,
}

impl Pan {
    /// Parses a PAN. Spaces and dashes are not accepted: TSH sends digits only, and the card
    /// file must hold digits only, so anything else is an error rather than a guess.
    pub fn parse(input: &str) -> Result<Self, PanError> {
        if !input.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PanError::NotDigits);
        }
        if !(12..=19).contains(&input.len()) {
            return Err(PanError::Length);
        }
        if !luhn_valid(input.as_bytes()) {
            return Err(PanError::Luhn);
        }
        Ok(Pan(input.to_owned()))
    }

    /// The digits, for computing the keyed index only. Never log or store the result.
    pub fn expose_digits(&self) -> &str {
        &self.0
    }

    /// The first six digits (the BIN). Not secret under PCI DSS.
    pub fn bin(&self) -> String {
        self.0.chars().take(6).collect()
    }

    /// The last four digits. Not secret under PCI DSS.
    pub fn last4(&self) -> String {
        let skip = self.0.len().saturating_sub(4);
        self.0.chars().skip(skip).collect()
    }

    /// BIN, asterisks and last 4: the widest view PCI DSS allows to display.
    pub fn masked(&self) -> String {
        let hidden = self.0.len().saturating_sub(10);
        format!("{}{}{}", self.bin(), "*".repeat(hidden), self.last4())
    }
}

impl fmt::Debug for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pan({})", self.masked())
    }
}

impl fmt::Display for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// The Luhn (mod 10) check over ASCII digits.
pub fn luhn_valid(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.iter().rev().enumerate() {
        let mut d = u32::from(b.wrapping_sub(b'0'));
        if d > 9 {
            return false;
        }
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

/// A run of digits in an identifier, as a PAN may be written there: digits, possibly broken by
/// spaces or dashes between them (`4111 1111 1111 1111`, `4111-1111-...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigitRun {
    /// Where the run is in the text (bytes), from its first digit to its last.
    pub range: std::ops::Range<usize>,
    /// Its digits, separators left out.
    pub digits: String,
}

impl DigitRun {
    /// True when some window of 12 to 19 consecutive digits of the run, not starting with 0,
    /// passes the Luhn check: a PAN may be inside, glued to other digits or not. (No card
    /// network issues PANs starting with 0, ISO/IEC 7812's industry digit for other uses; and
    /// without that rule every run of twelve zeros, common in padded ids, would count.)
    pub fn may_hold_pan(&self) -> bool {
        let d = self.digits.as_bytes();
        (12..=19.min(d.len())).any(|len| {
            d.windows(len)
                .any(|w| w.first().is_some_and(|&c| c != b'0') && luhn_valid(w))
        })
    }
}

/// The digit runs of `s` (see [`DigitRun`]), in order.
pub fn digit_runs(s: &str) -> Vec<DigitRun> {
    let mut runs = Vec::new();
    let mut current: Option<DigitRun> = None;
    // Separators seen since the last digit of the current run: they belong to the run only if
    // another digit follows.
    let mut pending_separators = false;
    for (i, c) in s.char_indices() {
        if c.is_ascii_digit() {
            match current.as_mut() {
                Some(run) => {
                    run.digits.push(c);
                    run.range.end = i + 1;
                }
                None => {
                    current = Some(DigitRun {
                        range: i..i + 1,
                        digits: c.to_string(),
                    })
                }
            }
            pending_separators = false;
        } else if (c == ' ' || c == '-') && current.is_some() {
            pending_separators = true;
        } else {
            runs.extend(current.take());
            pending_separators = false;
        }
    }
    let _ = pending_separators;
    runs.extend(current);
    runs
}

/// True when `s` holds something that may be a PAN where only an identifier belongs: a run of
/// digits (spaces and dashes between them allowed) with a Luhn-valid window of 12 to 19 digits.
pub fn contains_pan_like(s: &str) -> bool {
    digit_runs(s).iter().any(DigitRun::may_hold_pan)
}

/// Replaces in `id` each digit run for which `hide` answers `Some` by that answer; the rest is
/// kept as it is.
pub fn replace_runs(id: &str, mut hide: impl FnMut(&DigitRun, &str) -> Option<String>) -> String {
    let mut out = String::with_capacity(id.len());
    let mut at = 0;
    for run in digit_runs(id) {
        let (Some(before), Some(text)) = (id.get(at..run.range.start), id.get(run.range.clone()))
        else {
            continue;
        };
        out.push_str(before);
        match hide(&run, text) {
            Some(replacement) => out.push_str(&replacement),
            None => out.push_str(text),
        }
        at = run.range.end;
    }
    out.push_str(id.get(at..).unwrap_or(""));
    out
}

/// A form of an identifier that is safe to log: any run of 12 or more digits (which could be a
/// PAN put where an identifier belongs, spaces or dashes between its digits included) is
/// replaced by its count of digits.
pub fn log_safe(id: &str) -> String {
    replace_runs(id, |run, _| {
        (run.digits.len() >= 12).then(|| format!("[{} digits]", run.digits.len()))
    })
}

/// Appends the Luhn check digit to a digit string (test cards, the simulator, the demo).
pub fn with_luhn_check_digit(body: &str) -> String {
    let mut candidate = format!("{body}0");
    for d in 0..10u8 {
        candidate.pop();
        candidate.push(char::from(b'0' + d));
        if luhn_valid(candidate.as_bytes()) {
            break;
        }
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_digit_runs_are_hidden() {
        assert_eq!(log_safe("enrol-4111111111111111-x"), "enrol-[16 digits]-x");
        assert_eq!(log_safe("abc-123456"), "abc-123456");
        assert_eq!(log_safe("c-14111111111111111"), "c-[17 digits]");
        assert_eq!(log_safe("card 4111 1111 1111 1111."), "card [16 digits].");
        assert_eq!(log_safe("4111-1111-1111-1111 -x"), "[16 digits] -x");
    }

    #[test]
    fn pans_glued_or_broken_up_are_found() {
        for s in [
            "4111111111111111",
            "c-14111111111111111",
            "94111111111111111123",
            "x4111 1111 1111 1111y",
            "4111-1111-1111-1111",
            "3782 822463 10005",
        ] {
            assert!(contains_pan_like(s), "{s}");
        }
        // Fewer than 12 digits in a run: nothing to find.
        for s in [
            "c-20261128-x",
            "12345678901",
            "1234-5678 x 901234",
            "abc",
            "DNITHE000000000000000001",
        ] {
            assert!(!contains_pan_like(s), "{s}");
        }
        assert_eq!(
            digit_runs("a 12 - 34 b5"),
            vec![
                DigitRun {
                    range: 2..9,
                    digits: "1234".into()
                },
                DigitRun {
                    range: 11..12,
                    digits: "5".into()
                },
            ]
        );
    }
    use proptest::prelude::*;

    #[test]
    fn accepts_known_test_pans() {
        for pan in [
            "4111111111111111",
            "5555555555554444",
            "378282246310005",
            "4000056655665556",
        ] {
            assert!(Pan::parse(pan).is_ok(), "{pan}");
        }
    }

    #[test]
    fn rejects_bad_input_with_the_reason() {
        assert_eq!(Pan::parse("4111111111111112"), Err(PanError::Luhn));
        assert_eq!(Pan::parse("41111111111"), Err(PanError::Length));
        assert_eq!(Pan::parse("4111 1111 1111 1111"), Err(PanError::NotDigits));
        assert_eq!(Pan::parse(""), Err(PanError::Length));
        assert_eq!(Pan::parse("41111111111111111111"), Err(PanError::Length));
    }

    #[test]
    fn debug_and_display_show_bin_and_last4_only() {
        let pan = Pan::parse("4111111111111111").unwrap();
        assert_eq!(format!("{pan}"), "411111******1111");
        assert_eq!(format!("{pan:?}"), "Pan(411111******1111)");
    }

    proptest! {
        #[test]
        fn masked_forms_never_contain_the_middle_digits(body in "[0-9]{11,18}") {
            let digits = with_luhn_check_digit(&body);
            let pan = Pan::parse(&digits).unwrap();
            let shown = format!("{pan} {pan:?} {}", pan.masked());
            prop_assert!(!shown.contains(&digits));
            let middle: String = digits.chars().skip(6).take(digits.len() - 10).collect();
            prop_assert!(pan.masked().chars().skip(6).take(middle.len()).all(|c| c == '*'));
        }

        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            let _ = Pan::parse(&s);
        }
    }
}

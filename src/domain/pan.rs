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

/// True when `s` holds a run of 12 to 19 digits that passes the Luhn check: something that may be
/// a PAN, where only an identifier belongs.
pub fn contains_pan_like(s: &str) -> bool {
    s.split(|c: char| !c.is_ascii_digit())
        .any(|run| (12..=19).contains(&run.len()) && luhn_valid(run.as_bytes()))
}

/// A form of an identifier that is safe to log: any run of 12 or more digits (which could be a
/// PAN put where an identifier belongs) is replaced by its length.
pub fn log_safe(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 12 {
            out.push_str(&format!("[{} digits]", run.len()));
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in id.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
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

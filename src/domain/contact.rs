//! Cardholder contact details. Both types print masked; the full value is reachable only through
//! `expose`, which the delivery channels and the at-rest encryption use.

use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A phone number in E.164 form: `+`, then 8 to 15 digits, the first not 0.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Phone(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("phone must be E.164: '+' then 8 to 15 digits")]
pub struct PhoneError;

impl Phone {
    pub fn parse(input: &str) -> Result<Self, PhoneError> {
        let digits = input.strip_prefix('+').ok_or(PhoneError)?;
        let ok = (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if ok {
            Ok(Phone(input.to_owned()))
        } else {
            Err(PhoneError)
        }
    }

    /// The full number, for the SMS channel and the at-rest encryption only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Only the last four digits visible, e.g. `+*******0123`.
    pub fn masked(&self) -> String {
        let digits = self.0.len().saturating_sub(1);
        let hidden = digits.saturating_sub(4);
        let last4: String = self.0.chars().skip(1 + hidden).collect();
        format!("+{}{}", "*".repeat(hidden), last4)
    }

    /// The leading digits of the number, for checks on the calling code. Not secret.
    pub fn leading_digits(&self, n: usize) -> String {
        self.0.chars().skip(1).take(n).collect()
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", self.masked())
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// An e-mail address (a pragmatic check: one `@`, a non-empty local part, a dotted domain,
/// no spaces or control characters, at most 254 characters).
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Email(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("e-mail must look like name@example.com")]
pub struct EmailError;

impl Email {
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        if input.len() > 254 || input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(EmailError);
        }
        let (local, domain) = input.split_once('@').ok_or(EmailError)?;
        let domain_ok = !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..");
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err(EmailError);
        }
        Ok(Email(input.to_owned()))
    }

    /// The full address, for the e-mail channel and the at-rest encryption only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The first character of the local part (two when it is longer than five) and the domain,
    /// e.g. `j***@example.com`, `al***@example.com`.
    pub fn masked(&self) -> String {
        let (local, domain) = self.0.split_once('@').unwrap_or((self.0.as_str(), ""));
        let shown = if local.chars().count() > 5 { 2 } else { 1 };
        let head: String = local.chars().take(shown).collect();
        format!("{head}***@{domain}")
    }

    /// The domain, lower-cased. Not secret on its own.
    pub fn domain(&self) -> String {
        self.0
            .split_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default()
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.masked())
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn phone_masks_all_but_last_four() {
        let p = Phone::parse("+447700900123").unwrap();
        assert_eq!(p.masked(), "+********0123");
        assert_eq!(format!("{p} {p:?}"), "+********0123 Phone(+********0123)");
        for bad in [
            "447700900123",
            "+0447700900",
            "+4477",
            "+44 7700 900123",
            "+1234567890123456",
        ] {
            assert!(Phone::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn email_masks_local_part() {
        assert_eq!(
            Email::parse("jo@example.com").unwrap().masked(),
            "j***@example.com"
        );
        assert_eq!(
            Email::parse("alexandra.smith@bank.co.uk").unwrap().masked(),
            "al***@bank.co.uk"
        );
        for bad in [
            "",
            "no-at.example.com",
            "@example.com",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn masked_phone_never_shows_more_than_four_digits(d in "[1-9][0-9]{7,14}") {
            let full = format!("+{d}");
            let p = Phone::parse(&full).unwrap();
            let m = p.masked();
            prop_assert_eq!(m.chars().filter(char::is_ascii_digit).count(), 4);
            let last4: String = d.chars().skip(d.len() - 4).collect();
            prop_assert!(m.ends_with(&last4));
        }

        #[test]
        fn masked_email_never_shows_the_whole_local_part(local in "[a-z0-9._]{1,30}", dom in "[a-z]{1,10}\\.[a-z]{2,4}") {
            let full = format!("{local}@{dom}");
            let e = Email::parse(&full).unwrap();
            let shown = format!("{} {:?}", e, e);
            prop_assert!(!shown.contains(&full));
            let m = e.masked();
            let head = m.split('@').next().unwrap_or("");
            prop_assert!(head.trim_end_matches('*').chars().count() <= 2);
        }
    }
}

//! The kinds of ID&V method a yellow answer may offer: the two OTP channels (Option B), the
//! bank's own app (Option C) and customer service (Option D).

use super::Channel;
use std::fmt;

/// A kind of ID&V method. Only [`IdvKind::Sms`] and [`IdvKind::Email`] are delivered by the
/// gateway (`sendOTP`); the others are activations outside the OTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdvKind {
    Sms,
    Email,
    BankApp,
    CustomerService,
}

impl IdvKind {
    pub const ALL: [IdvKind; 4] = [
        IdvKind::Sms,
        IdvKind::Email,
        IdvKind::BankApp,
        IdvKind::CustomerService,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Sms => "sms",
            Self::Email => "email",
            Self::BankApp => "bank_app",
            Self::CustomerService => "customer_service",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "bank_app" => Some(Self::BankApp),
            "customer_service" => Some(Self::CustomerService),
            other => Channel::parse(other).map(Self::from),
        }
    }

    /// The OTP channel that delivers this method, if it is an OTP method.
    pub fn channel(&self) -> Option<Channel> {
        match self {
            Self::Sms => Some(Channel::Sms),
            Self::Email => Some(Channel::Email),
            Self::BankApp | Self::CustomerService => None,
        }
    }
}

impl From<Channel> for IdvKind {
    fn from(c: Channel) -> Self {
        match c {
            Channel::Sms => Self::Sms,
            Channel::Email => Self::Email,
        }
    }
}

impl TryFrom<String> for IdvKind {
    type Error = String;
    /// For rows read back from the store, which only ever writes [`IdvKind::as_str`].
    fn try_from(s: String) -> Result<Self, String> {
        IdvKind::parse(&s).ok_or_else(|| format!("'{s}' is not an ID&V method kind"))
    }
}

impl fmt::Display for IdvKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_parses_back_and_only_otp_kinds_have_a_channel() {
        for k in IdvKind::ALL {
            assert_eq!(IdvKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(IdvKind::parse("E-Mail"), Some(IdvKind::Email));
        assert_eq!(IdvKind::parse("fax"), None);
        assert_eq!(IdvKind::Sms.channel(), Some(Channel::Sms));
        assert_eq!(IdvKind::BankApp.channel(), None);
        assert_eq!(IdvKind::CustomerService.channel(), None);
    }
}

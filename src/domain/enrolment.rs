//! Enrolment vocabulary: decisions, channels, token life cycle.

use std::fmt;

/// The issuer's decision in `requestCardDigitization`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LevelOfTrust {
    Green,
    Yellow,
    Red,
}

impl LevelOfTrust {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Green => "green",
            Self::Yellow => "yellow",
            Self::Red => "red",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "green" => Some(Self::Green),
            "yellow" => Some(Self::Yellow),
            "red" => Some(Self::Red),
            _ => None,
        }
    }
}

impl TryFrom<String> for LevelOfTrust {
    type Error = String;
    /// For rows read back from the store, which only ever writes [`LevelOfTrust::as_str`].
    fn try_from(s: String) -> Result<Self, String> {
        LevelOfTrust::parse(&s).ok_or_else(|| format!("'{s}' is not a level of trust"))
    }
}

impl fmt::Display for LevelOfTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What became of one OTP send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SendOutcome {
    /// Claimed and under way (or interrupted by a crash).
    Pending,
    /// The provider accepted the message.
    Accepted,
    /// The provider did not answer in time: it may have delivered the message.
    Timeout,
    /// The provider refused or failed (or the channel was disabled): nothing went out.
    Refused,
}

impl SendOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Timeout => "timeout",
            Self::Refused => "refused",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "accepted" => Some(Self::Accepted),
            "timeout" => Some(Self::Timeout),
            "refused" => Some(Self::Refused),
            _ => None,
        }
    }
}

impl TryFrom<String> for SendOutcome {
    type Error = String;
    /// For rows read back from the store, which only ever writes [`SendOutcome::as_str`].
    fn try_from(s: String) -> Result<Self, String> {
        SendOutcome::parse(&s).ok_or_else(|| format!("'{s}' is not a send outcome"))
    }
}

impl std::fmt::Display for SendOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OTP delivery channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Sms,
    Email,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::Sms, Channel::Email];
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Sms => "sms",
            Self::Email => "email",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sms" => Some(Self::Sms),
            "email" | "e-mail" => Some(Self::Email),
            _ => None,
        }
    }
}

impl TryFrom<String> for Channel {
    type Error = String;
    /// For rows read back from the store, which only ever writes [`Channel::as_str`].
    fn try_from(s: String) -> Result<Self, String> {
        Channel::parse(&s).ok_or_else(|| format!("'{s}' is not a channel"))
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `notifyVirtualCardChange` action. The set is open: unknown actions are kept and recorded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    Activate,
    Suspend,
    Resume,
    Delete,
    DeleteFromApp,
    Update,
    Erase,
    Renew,
    Other(String),
}

impl Action {
    pub fn parse(s: &str) -> Self {
        match s.trim().to_ascii_uppercase().as_str() {
            "ACTIVATE" => Self::Activate,
            "SUSPEND" => Self::Suspend,
            "RESUME" => Self::Resume,
            "DELETE" => Self::Delete,
            "DELETE_FROM_APP" => Self::DeleteFromApp,
            "UPDATE" => Self::Update,
            "ERASE" => Self::Erase,
            "RENEW" => Self::Renew,
            other => Self::Other(other.to_owned()),
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            Self::Activate => "ACTIVATE",
            Self::Suspend => "SUSPEND",
            Self::Resume => "RESUME",
            Self::Delete => "DELETE",
            Self::DeleteFromApp => "DELETE_FROM_APP",
            Self::Update => "UPDATE",
            Self::Erase => "ERASE",
            Self::Renew => "RENEW",
            Self::Other(s) => s,
        }
    }
}

/// The state of a token (virtual card) as we recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenState {
    /// Known from a notice that did not fix its state (UPDATE, RENEW, an unknown action).
    Pending,
    Active,
    Suspended,
    Deleted,
}

impl TokenState {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Deleted => "deleted",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "active" => Some(Self::Active),
            "suspended" => Some(Self::Suspended),
            "deleted" => Some(Self::Deleted),
            _ => None,
        }
    }

    /// The state after `action`, given the current state (`None` for a token not seen before).
    ///
    /// Notices may arrive late or out of order, and carry no timestamp, so the rules are:
    /// deleted is final (a late notice never resurrects a token); ACTIVATE is the first event of
    /// a token's life, so it activates only a token that is new or pending (an ACTIVATE arriving
    /// after a SUSPEND is late and leaves it suspended); SUSPEND and RESUME move between active
    /// and suspended; UPDATE, RENEW and unknown actions leave the state as it is.
    pub fn after(current: Option<TokenState>, action: &Action) -> TokenState {
        use TokenState::*;
        match (current, action) {
            (Some(Deleted), _) => Deleted,
            (_, Action::Delete | Action::DeleteFromApp | Action::Erase) => Deleted,
            (None | Some(Pending), Action::Activate) => Active,
            (None | Some(Pending), Action::Suspend) => Suspended,
            (None | Some(Pending), Action::Resume) => Active,
            (Some(Active), Action::Suspend) => Suspended,
            (Some(Suspended), Action::Resume) => Active,
            (Some(s), _) => s,
            (None, _) => Pending,
        }
    }
}

impl fmt::Display for TokenState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_is_final_and_late_activate_does_not_undo_suspend() {
        use TokenState::*;
        assert_eq!(TokenState::after(None, &Action::Activate), Active);
        assert_eq!(TokenState::after(Some(Active), &Action::Suspend), Suspended);
        assert_eq!(
            TokenState::after(Some(Suspended), &Action::Activate),
            Suspended
        );
        assert_eq!(TokenState::after(Some(Suspended), &Action::Resume), Active);
        assert_eq!(TokenState::after(Some(Active), &Action::Delete), Deleted);
        for a in [
            Action::Activate,
            Action::Resume,
            Action::Suspend,
            Action::Renew,
            Action::Update,
        ] {
            assert_eq!(TokenState::after(Some(Deleted), &a), Deleted);
        }
        assert_eq!(TokenState::after(None, &Action::Renew), Pending);
        assert_eq!(
            TokenState::after(Some(Active), &Action::parse("future_action")),
            Active
        );
    }

    #[test]
    fn actions_parse_case_insensitively_and_keep_unknowns() {
        assert_eq!(Action::parse("Suspend"), Action::Suspend);
        assert_eq!(Action::parse("delete_from_app"), Action::DeleteFromApp);
        assert_eq!(Action::parse("Teleport").as_str(), "TELEPORT");
    }
}

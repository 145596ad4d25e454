//! Life-cycle operations the issuer sends to TSH (its inbound API), and the rule that says which
//! ones a card's status change makes.

use super::CardStatus;
use std::fmt;

/// What an operation is, as TSH names the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    UpdateCardState,
    UpdateCard,
}

impl OpKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::UpdateCardState => "updateCardState",
            Self::UpdateCard => "updateCard",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "updateCardState" => Some(Self::UpdateCardState),
            "updateCard" => Some(Self::UpdateCard),
            _ => None,
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `action` of an `updateCardState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenAction {
    Suspend,
    Resume,
    Delete,
}

impl TokenAction {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Suspend => "SUSPEND",
            Self::Resume => "RESUME",
            Self::Delete => "DELETE",
        }
    }
    /// Case-insensitive.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "SUSPEND" => Some(Self::Suspend),
            "RESUME" => Some(Self::Resume),
            "DELETE" => Some(Self::Delete),
            _ => None,
        }
    }
}

impl fmt::Display for TokenAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of an operation in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpState {
    /// Not sent yet, or being retried: it holds its card's queue.
    Waiting,
    /// Accepted by TSH (200); its notices have not come back yet.
    Sent,
    /// Its notices came back.
    Confirmed,
    /// Retried until `tsh.give_up_after_minutes` without being accepted.
    Failed,
    /// Answered with a 400 that is not retryable.
    Refused,
    /// Cancelled by an operator while waiting.
    Cancelled,
}

impl OpState {
    pub const ALL: [OpState; 6] = [
        Self::Waiting,
        Self::Sent,
        Self::Confirmed,
        Self::Failed,
        Self::Refused,
        Self::Cancelled,
    ];
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Sent => "sent",
            Self::Confirmed => "confirmed",
            Self::Failed => "failed",
            Self::Refused => "refused",
            Self::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl TryFrom<String> for OpState {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        OpState::parse(&s).ok_or_else(|| format!("'{s}' is not an operation state"))
    }
}

impl fmt::Display for OpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a card's status change does to its tokens at TSH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusEffect {
    /// `SUSPEND` of every token of the card, with this reason.
    SuspendAll(&'static str),
    /// `DELETE` of every token of the card (`CARD_CLOSED`).
    DeleteAll,
    /// `RESUME` of each token the status change itself had suspended (`CARD_REACTIVATED`).
    ResumeSuspended,
}

pub const REASON_CARD_REACTIVATED: &str = "CARD_REACTIVATED";
pub const REASON_CARD_CLOSED: &str = "CARD_CLOSED";

/// The operations a status change makes (token-lifecycle.md, section 4.1). A change between two
/// suspending statuses (lost -> stolen) makes none: the tokens are already suspended. A closed
/// card's tokens are deleted, so nothing is resumed after it.
pub fn status_effect(old: CardStatus, new: CardStatus) -> Option<StatusEffect> {
    use CardStatus::*;
    let suspending = |s: CardStatus| matches!(s, Blocked | Lost | Stolen);
    match (old, new) {
        (o, n) if o == n => None,
        (Closed, _) => None,
        (_, Closed) => Some(StatusEffect::DeleteAll),
        (o, n) if suspending(n) && !suspending(o) => Some(StatusEffect::SuspendAll(match n {
            Blocked => "CARD_BLOCKED",
            Lost => "CARD_LOST",
            _ => "CARD_STOLEN",
        })),
        (o, Active) if suspending(o) => Some(StatusEffect::ResumeSuspended),
        _ => None,
    }
}

/// The reasons the spec names; an operator may also give free text (1 to 64 characters).
pub const REASONS: [&str; 8] = [
    "CARD_LOST",
    "CARD_STOLEN",
    "CARD_BLOCKED",
    "CARD_CLOSED",
    "CARD_REACTIVATED",
    "FRAUD_SUSPECTED",
    "CUSTOMER_REQUEST",
    "CARDHOLDER_VERIFIED",
];

/// An operator's reason: 1 to 64 printable characters (spaces allowed), no card number.
pub fn valid_reason(s: &str) -> bool {
    let n = s.chars().count();
    (1..=64).contains(&n) && s.chars().all(|c| !c.is_control()) && !super::contains_pan_like(s)
}

/// TSH `responseCode`s that Thales marks retryable.
pub const RETRYABLE_CODES: [i64; 4] = [221, 321, 322, 921];

/// The wait before attempt `attempt + 1` (1 s doubling to 5 min), before jitter.
pub fn backoff_ms(attempt: u32) -> i64 {
    let exp = attempt.saturating_sub(1).min(20);
    (1_000i64 << exp).min(300_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use CardStatus::*;

    #[test]
    fn status_changes_make_the_operations_of_the_spec() {
        assert_eq!(
            status_effect(Active, Lost),
            Some(StatusEffect::SuspendAll("CARD_LOST"))
        );
        assert_eq!(
            status_effect(Active, Stolen),
            Some(StatusEffect::SuspendAll("CARD_STOLEN"))
        );
        assert_eq!(
            status_effect(Active, Blocked),
            Some(StatusEffect::SuspendAll("CARD_BLOCKED"))
        );
        assert_eq!(status_effect(Lost, Stolen), None);
        assert_eq!(
            status_effect(Lost, Active),
            Some(StatusEffect::ResumeSuspended)
        );
        assert_eq!(status_effect(Lost, Closed), Some(StatusEffect::DeleteAll));
        assert_eq!(status_effect(Active, Closed), Some(StatusEffect::DeleteAll));
        assert_eq!(status_effect(Closed, Active), None);
        assert_eq!(status_effect(Active, Active), None);
    }

    #[test]
    fn backoff_doubles_from_one_second_to_five_minutes() {
        assert_eq!(backoff_ms(1), 1_000);
        assert_eq!(backoff_ms(2), 2_000);
        assert_eq!(backoff_ms(5), 16_000);
        assert_eq!(backoff_ms(9), 256_000);
        assert_eq!(backoff_ms(10), 300_000);
        assert_eq!(backoff_ms(1000), 300_000);
    }

    #[test]
    fn reasons_are_short_text_without_card_numbers() {
        assert!(valid_reason("customer called: phone stolen"));
        assert!(!valid_reason(""));
        assert!(!valid_reason(&"x".repeat(65)));
        assert!(!valid_reason("card 4111111111111111"));
    }
}

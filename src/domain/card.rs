//! The funding card as the issuer knows it.

use super::{Expiry, Millis};
use std::fmt;

/// What the issuer's record says of a card, as the decision sees it: no PAN, and no contact
/// details (those stay sealed in the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    pub card_ref: String,
    pub bin: String,
    pub last4: String,
    /// `None` when the expiry on record cannot be read (the card counts as expired).
    pub expiry: Option<Expiry>,
    pub status: CardStatus,
    pub product_id: String,
    /// When the phone number (e-mail address) on file last changed, epoch milliseconds.
    pub phone_changed_at: Option<Millis>,
    pub email_changed_at: Option<Millis>,
}

/// A card's status in the issuer's registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CardStatus {
    Active,
    Blocked,
    Lost,
    Stolen,
    Closed,
}

impl CardStatus {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "active" => Some(Self::Active),
            "blocked" => Some(Self::Blocked),
            "lost" => Some(Self::Lost),
            "stolen" => Some(Self::Stolen),
            "closed" => Some(Self::Closed),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Blocked => "blocked",
            Self::Lost => "lost",
            Self::Stolen => "stolen",
            Self::Closed => "closed",
        }
    }
}

impl TryFrom<String> for CardStatus {
    type Error = String;
    /// For rows read back from the store, which only ever writes [`CardStatus::as_str`].
    fn try_from(s: String) -> Result<Self, String> {
        CardStatus::parse(&s).ok_or_else(|| format!("'{s}' is not a card status"))
    }
}

impl fmt::Display for CardStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The card profile id returned to TSH (`productId`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductId(String);

impl ProductId {
    pub fn parse(s: &str) -> Option<Self> {
        let ok = (1..=64).contains(&s.len()) && s.chars().all(|c| c.is_ascii_graphic());
        ok.then(|| ProductId(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks an `issuerCardRefId` supplied by the issuer: 1..48 printable ASCII characters.
pub fn valid_card_ref(s: &str) -> bool {
    (1..=48).contains(&s.len()) && s.chars().all(|c| c.is_ascii_graphic())
}

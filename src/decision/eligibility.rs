//! The eligibility rules: what `checkCardEligibility` refuses, and what `requestCardDigitization`
//! answers red before any policy rule, whatever eligibility answered before (or whether it was
//! called at all). `policy explain` applies them too, so that it explains what the server decides.

use crate::domain::{Card, CardStatus, Expiry};
use time::OffsetDateTime;

/// Why a card may not be added, each rule named as digitization records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ineligible {
    NotActive,
    Expired,
    ExpiryMismatch,
    WalletNotEnabled,
}

impl Ineligible {
    /// The rule's name, recorded with digitization's red decision.
    pub fn rule(self) -> &'static str {
        match self {
            Ineligible::NotActive => "card-not-active",
            Ineligible::Expired => "card-expired",
            Ineligible::ExpiryMismatch => "expiry-mismatch",
            Ineligible::WalletNotEnabled => "wallet-not-enabled",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Ineligible::NotActive => "card is not active",
            Ineligible::Expired => "card has expired",
            Ineligible::ExpiryMismatch => "expiry does not match the issuer's record",
            Ineligible::WalletNotEnabled => "card product is not enabled for this wallet",
        }
    }

    /// Digitization's red decision for it.
    pub fn decision(self) -> super::Decision {
        super::Decision {
            outcome: crate::domain::LevelOfTrust::Red,
            rule: self.rule().into(),
            reason: self.message().into(),
            channels: None,
        }
    }
}

/// The card may be added: active, not expired at `now` (and the expiry sent, `sent_exp`, is the
/// one on record), and its product enabled for the wallet (`wallet_enabled`, false only when a
/// wallet was named and the card's list leaves it out). `None`: eligible.
pub fn check(
    card: &Card,
    sent_exp: Option<Expiry>,
    wallet_enabled: bool,
    now: OffsetDateTime,
) -> Option<Ineligible> {
    if card.status != CardStatus::Active {
        return Some(Ineligible::NotActive);
    }
    match card.expiry {
        Some(exp) if !exp.is_expired_at(now) => {}
        _ => return Some(Ineligible::Expired),
    }
    if sent_exp.is_some_and(|sent| Some(sent) != card.expiry) {
        return Some(Ineligible::ExpiryMismatch);
    }
    if !wallet_enabled {
        return Some(Ineligible::WalletNotEnabled);
    }
    None
}

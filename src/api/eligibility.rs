//! `checkCardEligibility` (alias `requestCardEligibility`): is this card eligible, and which
//! reference and profile does it have.

use super::error::{ApiError, Reason};
use super::fields::Fields;
use super::{Audit, Call, Handled, resolve_card};
use crate::decision::eligibility::{self, Ineligible};
use crate::domain::{CardStatus, Expiry};
use crate::state::AppState;
use crate::store::CardRow;
use serde_json::json;

/// The checked fields of a `checkCardEligibility` body.
pub struct Request<'a> {
    pub wallet: Option<&'a str>,
}

/// Checks every field (before any lookup), in the order the contract's codes are answered.
pub fn parse<'a>(body: &Fields<'a>) -> Result<Request<'a>, ApiError> {
    let wallet = body.opt_id("walletProviderId", 1, 128)?;
    body.opt_obj("tokenRequestor")?;
    body.opt_str("captureMethod", 0, 64)?;
    resolve_card::check_fields(body)?;
    Ok(Request { wallet })
}

pub async fn handle(call: &Call<'_>, body: &Fields<'_>) -> Result<Handled, ApiError> {
    let state = call.state;
    let Request { wallet } = parse(body)?;
    let (card, info) = resolve_card::resolve_and_remember(call, body).await?;
    if let Some(why) = ineligible(state, &card, info.as_ref().and_then(|i| i.exp), wallet) {
        let audit = Audit {
            state: Some("ineligible"),
            ..Audit::card(&card.card_ref)
        };
        return Ok(Handled::refused(refusal(why, card.status), audit));
    }
    let audit = Audit {
        wallet: wallet.map(str::to_owned),
        state: Some("eligible"),
        outcome: "eligible".into(),
        ..Audit::card(&card.card_ref)
    };
    Ok(Handled::ok(
        json!({ "issuerCardRefId": card.card_ref, "productId": card.product_id }),
        audit,
    ))
}

/// Eligibility's refusal for a rule (`status`: the card's, which says blocked from closed).
pub fn refusal(why: Ineligible, status: CardStatus) -> ApiError {
    match why {
        Ineligible::NotActive if status == CardStatus::Closed => {
            ApiError::new(Reason::CardClosed, "card is closed")
        }
        Ineligible::NotActive => ApiError::new(Reason::CardBlocked, why.message()),
        Ineligible::Expired => ApiError::new(Reason::CardExpired, why.message()),
        // The expiry sent is part of the envelope's content: answered as unreadable card data
        // (no answer tells a prober which check of the content failed).
        Ineligible::ExpiryMismatch => resolve_card::unreadable("cipheredCardInfo"),
        Ineligible::WalletNotEnabled => ApiError::new(Reason::ProductNotEligible, why.message()),
    }
}

/// The eligibility rules ([`crate::decision::eligibility`]) applied to the card of a call:
/// `sent_exp` is the expiry its card data carried. `None`: eligible.
pub fn ineligible(
    state: &AppState,
    card: &CardRow,
    sent_exp: Option<Expiry>,
    wallet: Option<&str>,
) -> Option<Ineligible> {
    let wallet_enabled = wallet.is_none_or(|w| card.allows_wallet(w));
    eligibility::check(&card.card(), sent_exp, wallet_enabled, state.clock.now())
}

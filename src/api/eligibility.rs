//! `checkCardEligibility` (alias `requestCardEligibility`): is this card eligible, and which
//! reference and profile does it have.

use super::error::{ApiError, Reason};
use super::fields::Fields;
use super::resolve_card::{self, CardInfo};
use super::{Audit, Call, Handled};
use crate::domain::CardStatus;
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
    if let Err(refusal) = check(state, &card, info.as_ref(), wallet) {
        let audit = Audit {
            state: Some("ineligible"),
            ..Audit::card(&card.card_ref)
        };
        return Ok(Handled::refused(refusal, audit));
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

/// The card may be added: active, not expired (and the expiry sent is the one on record), and
/// its product enabled for the wallet.
fn check(
    state: &AppState,
    card: &CardRow,
    info: Option<&CardInfo>,
    wallet: Option<&str>,
) -> Result<(), ApiError> {
    match card.status {
        CardStatus::Active => {}
        CardStatus::Closed => return Err(ApiError::new(Reason::CardClosed, "card is closed")),
        CardStatus::Blocked | CardStatus::Lost | CardStatus::Stolen => {
            return Err(ApiError::new(Reason::CardBlocked, "card is not active"));
        }
    }
    let record_exp = resolve_card::record_expiry(card);
    match record_exp {
        Some(exp) if !exp.is_expired_at(state.clock.now()) => {}
        _ => return Err(ApiError::new(Reason::CardExpired, "card has expired")),
    }
    if let Some(sent) = info.and_then(|i| i.exp) {
        if Some(sent) != record_exp {
            // The expiry sent is part of the envelope's content: answered as unreadable card
            // data (no answer tells a prober which check of the content failed).
            return Err(resolve_card::unreadable("cipheredCardInfo"));
        }
    }
    if let Some(w) = wallet {
        if !card.allows_wallet(w) {
            return Err(ApiError::new(
                Reason::ProductNotEligible,
                "card product is not enabled for this wallet",
            ));
        }
    }
    Ok(())
}

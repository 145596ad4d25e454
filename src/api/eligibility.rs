//! `checkCardEligibility` (alias `requestCardEligibility`): is this card eligible, and which
//! reference and profile does it have.

use super::error::{ApiError, Code};
use super::fields::Fields;
use super::{Call, Operation, Success, resolve_card};
use crate::domain::CardStatus;
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

pub async fn handle(call: &Call<'_>, body: &Fields<'_>) -> Result<Success, ApiError> {
    let state = call.state;
    let Request { wallet } = parse(body)?;
    let (card, info) = resolve_card::resolve_and_remember(call, body).await?;
    let refuse = |code: Code, msg: &str| {
        ApiError::new(code, msg)
            .with_card(&card.card_ref)
            .with_state("ineligible")
    };
    if card.status != CardStatus::Active {
        return Err(refuse(Code::NotActive, "card is not active"));
    }
    let record_exp = resolve_card::record_expiry(&card);
    match record_exp {
        Some(exp) if !exp.is_expired_at(state.clock.now()) => {}
        _ => return Err(refuse(Code::Expired, "card has expired")),
    }
    if let Some(sent) = info.as_ref().and_then(|i| i.exp) {
        if Some(sent) != record_exp {
            return Err(refuse(
                Code::Expired,
                "expiry does not match the issuer's record",
            ));
        }
    }
    if let Some(w) = wallet {
        if !card.allows_wallet(w) {
            return Err(refuse(
                Code::ProductNotEnabled,
                "card product is not enabled for this wallet",
            ));
        }
    }
    let mut rec = call.record(Operation::CheckCardEligibility, 200, "eligible");
    rec.card_ref = Some(&card.card_ref);
    rec.wallet = wallet;
    rec.state = Some("eligible");
    state.store.record_call(&rec).await?;
    Ok(Success {
        body: json!({ "issuerCardRefId": card.card_ref, "productId": card.product_id }),
        outcome: "eligible".into(),
    })
}

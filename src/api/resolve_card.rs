//! Finding the funding card of a call: from the encrypted card data (`cipheredCardInfo`) or
//! from the issuer's reference (`issuerCardRefId`).

use super::Call;
use super::error::{ApiError, Reason};
use super::fields::Fields;
use super::opened_cards::OpenedCards;
use crate::domain::{Expiry, Pan};
use crate::state::AppState;
use crate::store::CardRow;
use serde_json::Value;

/// The card data TSH sent, decrypted and checked. The CVV is checked for form and dropped.
pub struct CardInfo {
    pub pan: Pan,
    pub exp: Option<Expiry>,
}

/// Opens a `cipheredCardInfo` envelope and checks its content.
pub fn open_card_info(state: &AppState, text: &str) -> Result<CardInfo, ApiError> {
    // The RSA private-key operation (about 0.3 ms) runs on the async worker itself, as a TLS
    // handshake's does: handing the worker's queue to another thread meanwhile
    // (`block_in_place`) cost a thread wake-up and park per call, and measured 15-20% fewer
    // eligibility calls per second on 2 CPUs (docs/benchmarks.md).
    let plain = state
        .keys
        .open(text)
        .map_err(|_| unreadable("cipheredCardInfo"))?;
    parse_card_info(&plain)
}

/// Every failure to open an envelope or to read its content gets this one answer (reason
/// `invalid_card_info`, one message per field): AES-CBC has no integrity check, so an answer
/// that told "bad padding" from "no fpan" from "fpan fails Luhn" would let whoever holds a
/// captured envelope learn its plaintext by flipping bits of its IV and watching the answers.
/// Why it failed is not logged either (it would say the same to whoever reads the logs).
pub fn unreadable(field: &str) -> ApiError {
    ApiError::new(
        Reason::InvalidCardInfo,
        format!("{field} could not be opened, or is not valid card data"),
    )
}

/// Checks the decrypted content of a `cipheredCardInfo` envelope (JSON: `fpan`, `exp`, `cvv`).
/// Public so that the fuzz targets drive the same code as the handlers.
pub fn parse_card_info(plain: &[u8]) -> Result<CardInfo, ApiError> {
    let bad = || unreadable("cipheredCardInfo");
    // The decrypted card data is wiped when this returns (the PAN lives on in `Pan` only).
    let value = crate::domain::wipe::WipedJson(serde_json::from_slice(plain).map_err(|_| bad())?);
    let Some(map) = value.0.as_object() else {
        return Err(bad());
    };
    let fields = Fields(map);
    let fpan = match map.get("fpan") {
        Some(Value::String(s)) => s.as_str(),
        _ => return Err(bad()),
    };
    let pan = Pan::parse(fpan).map_err(|_| bad())?;
    let exp = match fields.signal("exp") {
        None => None,
        Some(s) => Some(Expiry::parse_mmyy(&s).map_err(|_| bad())?),
    };
    if let Some(cvv) = map.get("cvv").filter(|v| !v.is_null()) {
        let ok = cvv
            .as_str()
            .is_some_and(|c| (3..=4).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            return Err(bad());
        }
    }
    Ok(CardInfo { pan, exp })
}

/// Finds the card of a call that carries `cipheredCardInfo` and/or `issuerCardRefId` (at least
/// one, 101 otherwise). The encrypted data wins when both are present; a reference that names
/// another card is refused.
/// The card fields of a body, checked: `cipheredCardInfo` (1..8196) and/or `issuerCardRefId`
/// (1..48), at least one (101 otherwise).
pub fn check_fields<'a>(body: &Fields<'a>) -> Result<(Option<&'a str>, Option<&'a str>), ApiError> {
    let ciphered = body.opt_str("cipheredCardInfo", 1, 8196)?;
    let reference = body.opt_id("issuerCardRefId", 1, 48)?;
    if ciphered.is_none() && reference.is_none() {
        return Err(ApiError::new(
            Reason::MissingField,
            "cipheredCardInfo or issuerCardRefId is required",
        ));
    }
    Ok((ciphered, reference))
}

pub async fn resolve(
    state: &AppState,
    body: &Fields<'_>,
) -> Result<(CardRow, Option<CardInfo>), ApiError> {
    let ciphered = body.opt_str("cipheredCardInfo", 1, 8196)?;
    let card_ref = body.opt_id("issuerCardRefId", 1, 48)?;
    match (ciphered, card_ref) {
        (None, None) => Err(ApiError::new(
            Reason::MissingField,
            "cipheredCardInfo or issuerCardRefId is required",
        )),
        (Some(text), reference) => {
            let info = open_card_info(state, text)?;
            let index = state.data_keys.pan_index(&info.pan);
            let card = state
                .store
                .card_by_pan_index(&index)
                .await?
                .ok_or_else(|| {
                    ApiError::new(Reason::UnknownCard, "card is unknown to the issuer")
                })?;
            if reference.is_some_and(|r| r != card.card_ref) {
                return Err(ApiError::new(
                    Reason::UnknownCard,
                    "issuerCardRefId does not match the card data",
                ));
            }
            Ok((card, Some(info)))
        }
        (None, Some(reference)) => {
            let card = state.store.card_by_ref(reference).await?.ok_or_else(|| {
                ApiError::new(
                    Reason::UnknownCard,
                    "issuerCardRefId is unknown to the issuer",
                )
            })?;
            Ok((card, None))
        }
    }
}

/// [`resolve`] for eligibility: also remembers which card the envelope named, for the
/// digitization of the same enrolment (see [`super::opened_cards`]).
pub async fn resolve_and_remember(
    call: &Call<'_>,
    body: &Fields<'_>,
) -> Result<(CardRow, Option<CardInfo>), ApiError> {
    let (state, correlation_id) = (call.state, call.correlation_id);
    let (card, info) = resolve(state, body).await?;
    if info.is_some() {
        if let Ok(Some(text)) = body.opt_str("cipheredCardInfo", 1, 8196) {
            let key = OpenedCards::key(&state.data_keys, correlation_id, text);
            let exp = info.as_ref().and_then(|i| i.exp);
            call.opened_cards.remember(key, &card.card_ref, exp);
        }
    }
    Ok((card, info))
}

/// [`resolve`] for digitization: when eligibility opened a byte-identical `cipheredCardInfo`
/// under the same correlation id, its card is taken from there (read afresh from the database)
/// instead of opening the envelope a second time (see [`super::opened_cards`] for why this is safe).
/// Returns the card and the expiry the card data carried, if any.
pub async fn resolve_reusing(
    call: &Call<'_>,
    body: &Fields<'_>,
) -> Result<(CardRow, Option<Expiry>), ApiError> {
    let (state, correlation_id) = (call.state, call.correlation_id);
    let ciphered = body.opt_str("cipheredCardInfo", 1, 8196)?;
    let reference = body.opt_id("issuerCardRefId", 1, 48)?;
    if let Some(text) = ciphered {
        let key = OpenedCards::key(&state.data_keys, correlation_id, text);
        if let Some(opened) = call.opened_cards.recall(&key) {
            if let Some(card) = state.store.card_by_ref(&opened.card_ref).await? {
                if reference.is_some_and(|r| r != card.card_ref) {
                    return Err(ApiError::new(
                        Reason::UnknownCard,
                        "issuerCardRefId does not match the card data",
                    ));
                }
                crate::metrics::record_envelope_reuse();
                return Ok((card, opened.exp));
            }
        }
    }
    resolve(state, body)
        .await
        .map(|(card, info)| (card, info.and_then(|i| i.exp)))
}

/// The card's expiry on record; a record that cannot be read counts as expired.
pub fn record_expiry(card: &CardRow) -> Option<Expiry> {
    Expiry::parse_mmyy(&card.exp).ok()
}

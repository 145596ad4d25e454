//! `notifyVirtualCardChange`: a token was activated, suspended, resumed, deleted... Recorded
//! idempotently, linked to the enrolment of the same correlation id, answered once durable.

use super::error::{ApiError, Reason};
use super::fields::Fields;
use super::resolve_card::unreadable;
use super::{Audit, Call, Handled};
use crate::domain::{Action, Expiry};
use crate::state::AppState;
use crate::store::{NoticeOutcome, NoticeRecord, Write};
use serde_json::{Value, json};

/// The checked fields of a `notifyVirtualCardChange` body.
pub struct Request<'a> {
    pub card_ref: &'a str,
    pub virtual_card_id: &'a str,
    pub wallet: &'a str,
    pub action: Action,
    pub token_storage_id: Option<&'a str>,
    pub is_primary: Option<bool>,
    pub source: Option<String>,
    pub error_code: Option<i64>,
    /// The encrypted `tokenInfo`, opened by the handler.
    pub token_info: Option<&'a str>,
}

/// Checks every field (before any lookup), in the order the contract's codes are answered.
pub fn parse<'a>(body: &Fields<'a>) -> Result<Request<'a>, ApiError> {
    let card_ref = body.req_id("issuerCardRefId", 1, 48)?;
    let virtual_card_id = body.req_id("virtualCardId", 1, 64)?;
    let wallet = body.req_id("walletProviderId", 1, 128)?;
    let action = Action::parse(body.req_id("action", 1, 64)?);
    let token_storage_id = body.opt_str("tokenStorageId", 1, 128)?;
    let is_primary = body.opt_bool("isPrimary")?;
    for name in [
        "walletCardRefId",
        "walletVirtualCardId",
        "primaryWalletVirtualCardId",
    ] {
        body.opt_str(name, 1, 128)?;
    }
    let source = body.opt_id("source", 1, 32)?.map(str::to_ascii_uppercase);
    let error_code = body.opt_int("errorCode")?;
    body.opt_obj("tokenRequestor")?;
    body.opt_str("deviceBindingReference", 1, 128)?;
    let token_info = body.opt_str("tokenInfo", 1, 8196)?;
    Ok(Request {
        card_ref,
        virtual_card_id,
        wallet,
        action,
        token_storage_id,
        is_primary,
        source,
        error_code,
        token_info,
    })
}

pub async fn handle(call: &Call<'_>, body: &Fields<'_>) -> Result<Handled, ApiError> {
    let state = call.state;
    let Request {
        card_ref,
        virtual_card_id,
        wallet,
        action,
        token_storage_id,
        is_primary,
        source,
        error_code,
        token_info,
    } = parse(body)?;
    // Free-form identifiers are stored in safe form (a PAN-like run becomes its fingerprint).
    let safe = |id: &str| state.data_keys.safe_identifier(id);
    let virtual_card_id = &safe(virtual_card_id);
    let token_storage_id = token_storage_id.map(safe);
    let wallet = &safe(wallet);
    let source = source.map(|s| safe(&s));
    let action = match action {
        Action::Other(unknown) => Action::Other(safe(&unknown)),
        known => known,
    };
    let token = match token_info {
        Some(text) => Some(open_token_info(state, text)?),
        None => None,
    };
    if state.store.card_by_ref(card_ref).await?.is_none() {
        return Err(ApiError::new(
            Reason::UnknownCard,
            "issuerCardRefId is unknown to the issuer",
        ));
    }
    let notice_fp = state.data_keys.fingerprint(
        "notice",
        &[
            call.correlation_id.as_bytes(),
            virtual_card_id.as_bytes(),
            action.as_str().as_bytes(),
            source.as_deref().unwrap_or("").as_bytes(),
            error_code
                .map(|c| c.to_string())
                .unwrap_or_default()
                .as_bytes(),
            card_ref.as_bytes(),
        ],
    );
    let audit = Audit {
        wallet: Some(wallet.clone()),
        outcome: "recorded".into(),
        detail: Some(action.as_str().to_owned()),
        ..Audit::card(card_ref)
    };
    let write = Write::Notice(NoticeRecord {
        virtual_card_id: virtual_card_id.clone(),
        card_ref: card_ref.to_owned(),
        wallet_provider_id: wallet.clone(),
        token_storage_id,
        is_primary,
        action,
        source,
        error_code,
        dpan_last4: token.as_ref().map(|t| t.last4.clone()),
        dpan_exp: token.and_then(|t| t.exp),
        notice_fp,
        tell_cardholder: state.config.notices.token_activated,
        previous_destination_since: {
            let hold = state.config.controls.destination_change_hold_hours;
            (hold > 0).then(|| call.at.minus(crate::domain::Millis::hours(hold)))
        },
    });
    Ok(Handled::ok(json!({}), audit).writing(write))
}

/// The log's outcome of a notice, once recorded: what it changed.
pub fn describe(notice: &NoticeRecord, outcome: &NoticeOutcome) -> String {
    let action = notice.action.as_str();
    match outcome {
        NoticeOutcome::Duplicate => format!("{action} duplicate: nothing changed"),
        NoticeOutcome::Recorded { before, after } => {
            format!("{action} {} -> {after}", before.as_deref().unwrap_or("new"))
        }
    }
}

/// What we keep of the token: the last 4 digits of the DPAN and its expiry.
pub struct TokenInfo {
    pub last4: String,
    pub exp: Option<String>,
}

fn open_token_info(state: &AppState, text: &str) -> Result<TokenInfo, ApiError> {
    let plain = state.keys.open(text).map_err(|_| unreadable("tokenInfo"))?;
    parse_token_info(&plain)
}

/// Checks the decrypted content of a `tokenInfo` envelope (JSON: the token number and its
/// expiry). Public so that the fuzz targets drive the same code as the handler.
pub fn parse_token_info(plain: &[u8]) -> Result<TokenInfo, ApiError> {
    let bad = || unreadable("tokenInfo");
    // The decrypted token data (the DPAN) is wiped when this returns.
    let value = crate::domain::wipe::WipedJson(serde_json::from_slice(plain).map_err(|_| bad())?);
    let Some(map) = value.0.as_object() else {
        return Err(bad());
    };
    let dpan = ["dpan", "tokenValue", "token", "pan"]
        .iter()
        .find_map(|k| map.get(*k).and_then(Value::as_str))
        .ok_or_else(bad)?;
    let ok = (12..=19).contains(&dpan.len()) && dpan.bytes().all(|b| b.is_ascii_digit());
    if !ok {
        return Err(bad());
    }
    let last4: String = dpan.chars().skip(dpan.len() - 4).collect();
    let exp = match ["exp", "expiryDate", "tokenExpiryDate"]
        .iter()
        .find_map(|k| map.get(*k).and_then(Value::as_str))
    {
        None => None,
        Some(e) => Some(Expiry::parse_mmyy(e).map_err(|_| bad())?.mmyy()),
    };
    Ok(TokenInfo { last4, exp })
}

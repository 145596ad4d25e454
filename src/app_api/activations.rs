//! `POST /v1/activations` and `GET /v1/activations/{id}`: the checks before a RESUME
//! (token-lifecycle.md, section 5), in this order:
//!
//! 1. the body: at most `app.max_body_bytes`, no card number anywhere, every field checked;
//! 2. the card (`404 unknown_card`), then its rate limit (`429 rate_limited`);
//! 3. the newest enrolment of that card and wallet answered yellow with the bank-app method
//!    offered (`409 nothing_to_activate`), not completed (`409 enrolment_completed`), inside
//!    `idv.bank_app.valid_for_minutes` of its answer (`410 window_passed`);
//! 4. the token: `virtualCardId` when given, else the one the enrolment's notices named, else
//!    the single `INACTIVE` token of that wallet that `getCardInfo` lists (`409 ambiguous` when
//!    several, `409 nothing_to_activate` when none);
//! 5. `updateCardState RESUME` (reason `CARDHOLDER_VERIFIED`) with its activation record, one
//!    transaction: `202 {"operationId"}`. A repeated request answers the same operation.

use super::AppError;
use crate::domain::lifecycle::{OpKind, TokenAction, valid_reason};
use crate::domain::{IdvKind, Millis, contains_pan_like, log_safe};
use crate::state::SharedState;
use crate::store::{Activated, NewActivation, NewOperation};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// The reason of the RESUME an activation makes.
pub const REASON_CARDHOLDER_VERIFIED: &str = "CARDHOLDER_VERIFIED";

const FIELDS: [&str; 5] = [
    "issuerCardRefId",
    "walletProviderId",
    "virtualCardId",
    "correlationId",
    "verification",
];

/// A checked activation request.
struct Request {
    card_ref: String,
    wallet: String,
    virtual_card_id: Option<String>,
    verification: String,
}

/// `POST /v1/activations`.
pub async fn create(State(state): State<SharedState>, body: Body) -> Result<Response, AppError> {
    let max = state
        .config
        .app
        .as_ref()
        .map(|a| a.max_body_bytes)
        .unwrap_or(4096);
    let bytes = axum::body::to_bytes(body, max).await.map_err(|_| {
        AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is larger than app.max_body_bytes ({max})"),
        )
    })?;
    let r = parse(&bytes)?;
    let now = state.clock.now_ms();
    let answer = activate(&state, &r, now).await;
    match &answer {
        Ok((id, created)) => tracing::info!(
            operation_id = id,
            card_ref = %log_safe(&r.card_ref),
            wallet = %log_safe(&r.wallet),
            new = created,
            "app API: activation accepted"
        ),
        Err(e) => tracing::info!(
            card_ref = %log_safe(&r.card_ref),
            wallet = %log_safe(&r.wallet),
            refusal = e.kind,
            "app API: activation refused"
        ),
    }
    let (id, _) = answer?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "operationId": id }))).into_response())
}

fn pan_refused(message: &str) -> AppError {
    AppError::new(StatusCode::BAD_REQUEST, "pan_refused", message)
}

/// True when a key or value anywhere in `v` looks like a card number.
fn holds_pan(v: &Value) -> bool {
    match v {
        Value::String(s) => contains_pan_like(s),
        Value::Number(n) => contains_pan_like(&n.to_string()),
        Value::Array(a) => a.iter().any(holds_pan),
        Value::Object(m) => m.iter().any(|(k, v)| contains_pan_like(k) || holds_pan(v)),
        Value::Bool(_) | Value::Null => false,
    }
}

/// Every field checked before any lookup. A card number anywhere refuses the whole body, except
/// in `issuerCardRefId`: a card reference is random hex, whose digits may by chance pass for
/// one, so that field is refused only when it is not a reference on file (`activate`).
fn parse(bytes: &[u8]) -> Result<Request, AppError> {
    let map: Map<String, Value> = match serde_json::from_slice(bytes) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err(AppError::bad_request("the body must be a JSON object")),
        Err(_) => return Err(AppError::bad_request("the body is not valid JSON")),
    };
    for (k, v) in &map {
        if contains_pan_like(k) || (k != "issuerCardRefId" && holds_pan(v)) {
            return Err(pan_refused(if k == "virtualCardId" {
                "virtualCardId looks like a card number: the app API never takes one (leave it out: the gateway finds the token)"
            } else {
                "the body holds what looks like a card number: the app API never takes one (name the card by issuerCardRefId)"
            }));
        }
    }
    if let Some(k) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(AppError::bad_request(format!(
            "'{}' is not a field of an activation ({})",
            log_safe(&k.chars().take(32).collect::<String>()),
            FIELDS.join(", ")
        )));
    }
    let field = |name: &str, required: bool, max: usize| -> Result<Option<String>, AppError> {
        match map.get(name) {
            None | Some(Value::Null) if !required => Ok(None),
            Some(Value::String(s))
                if (1..=max).contains(&s.trim().chars().count())
                    && !s.chars().any(char::is_control) =>
            {
                Ok(Some(s.trim().to_owned()))
            }
            _ => Err(AppError::bad_request(format!(
                "{name}{}: a string of 1 to {max} characters",
                if required { " is required" } else { "" }
            ))),
        }
    };
    let card_ref = field("issuerCardRefId", true, 48)?.unwrap_or_default();
    let wallet = field("walletProviderId", true, 128)?.unwrap_or_default();
    let virtual_card_id = field("virtualCardId", false, 64)?;
    field("correlationId", false, 64)?;
    let verification = field("verification", true, 64)?
        .filter(|v| valid_reason(v))
        .ok_or_else(|| {
            AppError::bad_request(
                "verification is required: how the app verified the cardholder (biometric, pin, ...), 1 to 64 characters",
            )
        })?;
    Ok(Request {
        card_ref,
        wallet,
        virtual_card_id,
        verification,
    })
}

/// The checks and the RESUME: the operation's id, and whether this request created it.
async fn activate(state: &SharedState, r: &Request, now: Millis) -> Result<(i64, bool), AppError> {
    let Some(app) = state.config.app.as_ref() else {
        return Err(AppError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the app API is not configured",
        ));
    };
    if state.store.card_by_ref(&r.card_ref).await?.is_none() {
        if contains_pan_like(&r.card_ref) {
            return Err(pan_refused(
                "issuerCardRefId looks like a card number and is no card reference of ours: the app API never takes one",
            ));
        }
        return Err(AppError::new(
            StatusCode::NOT_FOUND,
            "unknown_card",
            "no card with this issuerCardRefId",
        ));
    }
    let window = i64::from(app.card_limit_window_minutes) * 60_000;
    if !state
        .store
        .admit_activation_request(&r.card_ref, Millis(now.0 - window), app.card_limit, now)
        .await?
    {
        return Err(AppError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "more than app.card_limit ({}) activation requests for this card within app.card_limit_window_minutes ({})",
                app.card_limit, app.card_limit_window_minutes
            ),
        ));
    }
    let enrolment = state
        .store
        .enrolments_offering(&r.card_ref, IdvKind::BankApp)
        .await?
        .into_iter()
        .find(|e| {
            e.wallet_provider_id
                .as_deref()
                .is_some_and(|w| w.eq_ignore_ascii_case(&r.wallet))
        })
        .ok_or_else(|| {
            AppError::conflict(
                "nothing_to_activate",
                "no enrolment of this card and wallet was offered the bank's app",
            )
        })?;
    match enrolment.state.as_str() {
        "complete" => {
            return Err(AppError::conflict(
                "enrolment_completed",
                "the enrolment is already complete: its token is active",
            ));
        }
        "failed" => {
            return Err(AppError::conflict(
                "nothing_to_activate",
                "the enrolment failed (its token was deleted)",
            ));
        }
        _ => {}
    }
    let valid = i64::from(state.config.idv.bank_app.valid_for_minutes) * 60_000;
    let answered = enrolment.answered_at.unwrap_or(Millis(0));
    if now.0.saturating_sub(answered.0) > valid {
        return Err(AppError::new(
            StatusCode::GONE,
            "window_passed",
            "the enrolment was answered longer ago than idv.bank_app.valid_for_minutes",
        ));
    }
    let token = find_token(state, r, &enrolment.correlation_id).await?;
    let op = NewOperation {
        card_ref: r.card_ref.clone(),
        kind: OpKind::UpdateCardState,
        action: Some(TokenAction::Resume),
        virtual_card_id: Some(token),
        reason: Some(REASON_CARDHOLDER_VERIFIED.into()),
        operator: None,
        verification: Some(r.verification.clone()),
        cause: "bank_app",
        fpan_details: None,
        new_product_id: None,
    };
    let activation = NewActivation {
        enrolment_id: Some(enrolment.correlation_id.clone()),
        wallet_provider_id: enrolment.wallet_provider_id.clone(),
        method: IdvKind::BankApp,
        verification: Some(r.verification.clone()),
    };
    match state.store.create_activation(&op, &activation, now).await? {
        Activated::Created(id) => Ok((id, true)),
        Activated::Existing(id) => Ok((id, false)),
    }
}

/// The token to resume (its stored, safe form).
async fn find_token(
    state: &SharedState,
    r: &Request,
    enrolment_id: &str,
) -> Result<String, AppError> {
    let nothing = |m: &str| AppError::conflict("nothing_to_activate", m);
    if let Some(v) = &r.virtual_card_id {
        let v = state.data_keys.safe_identifier(v);
        return match state.store.token(&v).await? {
            Some(t) if t.card_ref != r.card_ref => {
                Err(nothing("the token named is not this card's"))
            }
            Some(t) if t.state == "active" || t.state == "deleted" => {
                Err(nothing(&format!("the token named is already {}", t.state)))
            }
            _ => Ok(v),
        };
    }
    let named: Vec<_> = state
        .store
        .enrolment_tokens(enrolment_id)
        .await?
        .into_iter()
        .filter(|t| t.card_ref == r.card_ref)
        .collect();
    if !named.is_empty() {
        let waiting: Vec<_> = named
            .iter()
            .filter(|t| t.state == "pending" || t.state == "suspended")
            .collect();
        return match waiting.as_slice() {
            [one] => Ok(one.virtual_card_id.clone()),
            [] => Err(nothing(
                "the enrolment's token is not waiting for activation",
            )),
            _ => Err(AppError::conflict(
                "ambiguous",
                "the enrolment's notices name several waiting tokens: give virtualCardId",
            )),
        };
    }
    let inactive = inactive_tokens(state, &r.card_ref, &r.wallet).await?;
    match inactive.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(nothing(
            "TSH lists no INACTIVE token of this card and wallet",
        )),
        _ => Err(AppError::conflict(
            "ambiguous",
            "TSH lists several INACTIVE tokens of this card and wallet: give virtualCardId",
        )),
    }
}

/// The `INACTIVE` tokens of the card and wallet that `getCardInfo` lists (safe forms).
async fn inactive_tokens(
    state: &SharedState,
    card_ref: &str,
    wallet: &str,
) -> Result<Vec<String>, AppError> {
    let unavailable =
        |m: String| AppError::new(StatusCode::SERVICE_UNAVAILABLE, "tsh_unavailable", m);
    if !state.config.tsh.configured() {
        return Err(unavailable(
            "no token is known for the enrolment and tsh.base_url is not set to ask TSH: give virtualCardId".into(),
        ));
    }
    let tokens = crate::tsh::card_tokens(&state.config.tsh, &state.config.issuer.id, card_ref)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    Ok(tokens
        .iter()
        .filter(|t| {
            t.wallet
                .as_deref()
                .is_some_and(|w| w.eq_ignore_ascii_case(wallet))
                && t.status.eq_ignore_ascii_case("INACTIVE")
        })
        .map(|t| state.data_keys.safe_identifier(&t.virtual_card_id))
        .collect())
}

/// `GET /v1/activations/{operationId}`: `{"operationId", "state", "enrolmentState"}` of an
/// activation the app made.
pub async fn read(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let not_found = || AppError::new(StatusCode::NOT_FOUND, "not_found", "no such activation");
    if contains_pan_like(&id) {
        return Err(AppError::new(
            StatusCode::BAD_REQUEST,
            "pan_refused",
            "the path holds what looks like a card number: the app API never takes one",
        ));
    }
    let id = id
        .parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(not_found)?;
    let a = state
        .store
        .activation(id)
        .await?
        .filter(|a| a.method == IdvKind::BankApp.as_str())
        .ok_or_else(not_found)?;
    Ok(Json(json!({
        "operationId": a.operation_id,
        "state": a.state,
        "enrolmentState": a.enrolment_state,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_number_anywhere_is_refused_and_fields_are_checked() {
        for pan in [
            &br#"{"issuerCardRefId":"r","walletProviderId":"APPLE_PAY","verification":"4111 1111 1111 1111"}"#[..],
            br#"{"issuerCardRefId":"r","walletProviderId":"APPLE_PAY","verification":"pin","virtualCardId":"4111111111111111"}"#,
            br#"{"issuerCardRefId":"r","walletProviderId":"APPLE_PAY","verification":"pin","x":{"y":[4111111111111111]}}"#,
        ] {
            assert_eq!(parse(pan).err().map(|e| e.kind), Some("pan_refused"));
        }
        // A card reference's digits may pass for a card number: checked against the file later.
        let reference = br#"{"issuerCardRefId":"d38bee92683637148984b085a486d353","walletProviderId":"W","verification":"pin"}"#;
        assert!(parse(reference).is_ok());
        let extra =
            br#"{"issuerCardRefId":"ref","walletProviderId":"W","verification":"pin","pan":"x"}"#;
        assert_eq!(parse(extra).err().map(|e| e.kind), Some("bad_request"));
        let no_verification = br#"{"issuerCardRefId":"ref","walletProviderId":"W"}"#;
        assert!(
            parse(no_verification)
                .err()
                .is_some_and(|e| e.message.contains("verification"))
        );
        let ok = br#"{"issuerCardRefId":"ref","walletProviderId":"W","verification":"biometric"}"#;
        assert!(parse(ok).is_ok());
    }
}

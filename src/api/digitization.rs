//! `requestCardDigitization`: the decision (green / yellow with ID&V methods / red).

use super::error::ApiError;
use super::fields::Fields;
use super::{AppState, Call, Operation, Success, card};
use crate::decision::{self, Decision, Signals};
use crate::domain::{Channel, LevelOfTrust};
use crate::store::{CardRow, DecisionRecord, MethodRecord};
use serde_json::{Value, json};

/// The checked fields of a `requestCardDigitization` body.
pub struct Request<'a> {
    pub wallet: Option<&'a str>,
    pub signals: Signals,
    pub device_language: Option<String>,
}

/// Checks every field (before any lookup), so a malformed call is always a 400 of its own kind
/// (101/102), whatever card it names.
pub fn parse<'a>(body: &Fields<'a>) -> Result<Request<'a>, ApiError> {
    let wallet = body.opt_id("walletProviderId", 1, 128)?;
    for name in [
        "walletCardRefId",
        "publicKeyIdentifier",
        "tokenType",
        "tncAcceptedDate",
    ] {
        body.opt_str(name, 0, 128)?;
    }
    body.opt_str("authenticationValue", 1, 8196)?;
    body.opt_obj("tokenRequestor")?;
    let signals = Signals::from_request(body)?;
    card::check_fields(body)?;
    let device_language = body
        .opt_obj("deviceInformation")?
        .and_then(|d| d.signal("language"))
        .map(|l| normalise_language(&l))
        .filter(|l| !l.is_empty());
    Ok(Request {
        wallet,
        signals,
        device_language,
    })
}

pub async fn handle(call: &Call<'_>, body: &Fields<'_>) -> Result<Success, ApiError> {
    let state = call.state;
    let Request {
        wallet,
        signals,
        device_language,
    } = parse(body)?;
    let card = card::resolve_reusing(state, call.correlation_id, body).await?;
    let active_tokens = if state.policy.uses_active_tokens() {
        state.store.count_active_tokens(&card.card_ref).await?
    } else {
        0
    };
    let signals = signals.with_card(&card, call.at, active_tokens);
    let mut decision = decision::decide(&state.policy, &signals);
    let mut methods = Vec::new();
    if decision.outcome == LevelOfTrust::Yellow {
        methods = offer_methods(state, call.correlation_id, &card, call.at);
        if let Some(allowed) = &decision.channels {
            methods.retain(|m| allowed.iter().any(|c| c.as_str() == m.channel));
        }
        if methods.is_empty() {
            decision = Decision {
                outcome: LevelOfTrust::Red,
                rule: decision::NO_METHOD_RULE.into(),
                reason: "step-up needed but no configured channel has a destination on file".into(),
                channels: None,
            };
        }
    }
    let signals_json = serde_json::to_string(&signals).map_err(ApiError::internal)?;
    let outcome = decision.outcome.as_str();
    let mut rec = call.record(Operation::RequestCardDigitization, 200, outcome);
    rec.card_ref = Some(&card.card_ref);
    rec.wallet = wallet;
    rec.state = Some(outcome);
    rec.detail = Some(&decision.rule);
    state
        .store
        .record_decision(
            &rec,
            &DecisionRecord {
                decision: outcome,
                rule: &decision.rule,
                signals_json: &signals_json,
                device_language: device_language.as_deref(),
                methods: &methods,
            },
        )
        .await?;
    crate::admin::metrics::record_decision(outcome, &decision.rule);
    let level = if state.config.server.level_of_trust_case == "upper" {
        outcome.to_ascii_uppercase()
    } else {
        outcome.to_owned()
    };
    let mut resp = json!({
        "levelOfTrust": level,
        "issuerCardRefId": card.card_ref,
        "productId": card.product_id,
        "cardDetails": { "fpanLastDigits": card.last4, "fpanExpiryDate": card.exp },
    });
    if decision.outcome == LevelOfTrust::Yellow {
        let list: Vec<Value> = methods
            .iter()
            .map(|m| json!({ "id": m.method_id, "type": m.method_type, "value": m.masked_value }))
            .collect();
        if let Some(obj) = resp.as_object_mut() {
            obj.insert("idvMethodList".into(), Value::Array(list));
        }
    }
    Ok(Success {
        body: resp,
        outcome: format!("{outcome} ({})", decision.rule),
    })
}

/// The ID&V methods an enrolment can be offered: channels that are configured, have a
/// destination on file and whose destination did not change within the hold, in the configured
/// preference order. Ids are opaque, unique within the
/// enrolment and stable if the call is repeated.
pub fn offer_methods(
    state: &AppState,
    correlation_id: &str,
    card: &CardRow,
    now_ms: i64,
) -> Vec<MethodRecord> {
    let mut out = Vec::new();
    for channel in &state.channel_preference {
        if !state.delivery.is_enabled(*channel) {
            continue;
        }
        let (masked, changed_at, method_type) = match channel {
            Channel::Sms => (
                card.phone_masked.as_ref(),
                card.phone_changed_at,
                &state.config.idv.sms_type,
            ),
            Channel::Email => (
                card.email_masked.as_ref(),
                card.email_changed_at,
                &state.config.idv.email_type,
            ),
        };
        let Some(masked) = masked else { continue };
        // A destination that changed recently is not offered: sendOTP would refuse it (134).
        if !crate::controls::destination_usable(&state.config.controls, changed_at, now_ms) {
            continue;
        }
        let fp = state.data_keys.fingerprint(
            "idv-method",
            &[correlation_id.as_bytes(), channel.as_str().as_bytes()],
        );
        let id: String = fp.chars().take(16).collect();
        out.push(MethodRecord {
            method_id: id,
            channel: channel.as_str().to_owned(),
            method_type: method_type.clone(),
            masked_value: masked.clone(),
        });
    }
    out
}

/// `en-GB`, `EN_gb`, `en` -> `en`.
pub fn normalise_language(l: &str) -> String {
    l.split(['-', '_'])
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
        .chars()
        .filter(char::is_ascii_alphabetic)
        .take(8)
        .collect()
}

//! `requestCardDigitization`: the decision (green / yellow with ID&V methods / red).

use super::error::ApiError;
use super::fields::Fields;
use super::{Audit, Call, Handled, resolve_card};
use crate::config::LevelOfTrustCase;
use crate::decision::{self, Decision, Signals};
use crate::domain::{Channel, IdvKind, Language, LevelOfTrust, Millis};
use crate::state::AppState;
use crate::store::{CardRow, DecisionRecord, MethodRecord, Write};
use serde_json::{Value, json};

/// The checked fields of a `requestCardDigitization` body.
pub struct Request<'a> {
    pub wallet: Option<&'a str>,
    pub signals: Signals,
    pub device_language: Option<Language>,
    /// `deviceInformation`'s manufacturer and model, cleaned for the activation notice.
    pub device_name: Option<String>,
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
    let signals = signals(body)?;
    resolve_card::check_fields(body)?;
    let device = body.opt_obj("deviceInformation")?;
    let device_language = device
        .as_ref()
        .and_then(|d| d.signal("language"))
        .and_then(|l| Language::parse(&l));
    let device_name = device.as_ref().and_then(|d| {
        crate::delivery::template::device_label(
            d.signal("manufacturer")
                .or_else(|| d.signal("brand"))
                .as_deref(),
            d.signal("model").as_deref(),
        )
    });
    Ok(Request {
        wallet,
        signals,
        device_language,
        device_name,
    })
}

pub async fn handle(call: &Call<'_>, body: &Fields<'_>) -> Result<Handled, ApiError> {
    let state = call.state;
    let Request {
        wallet,
        signals,
        device_language,
        device_name,
    } = parse(body)?;
    let (card, sent_exp) = resolve_card::resolve_reusing(call, body).await?;
    let active_tokens = if state.policy.uses_active_tokens() {
        state.store.count_active_tokens(&card.card_ref).await?
    } else {
        0
    };
    let signals = signals.with_card(&card.card(), call.at, active_tokens);
    // Every eligibility rule applies here too, whatever eligibility answered (or whether it
    // was called at all): a card it would refuse is red, the rule named, whatever the policy.
    let mut decision = match super::eligibility::ineligible(state, &card, sent_exp, wallet) {
        Some(why) => why.decision(),
        None => decision::decide(&state.policy, &signals),
    };
    let mut methods = Vec::new();
    if decision.outcome == LevelOfTrust::Yellow {
        let otp = offer_methods(state, call.correlation_id, &card, call.at).await?;
        let languages: Vec<Language> = [
            device_language.clone(),
            card.language.as_deref().and_then(Language::parse),
        ]
        .into_iter()
        .flatten()
        .collect();
        methods = arrange_methods(
            state,
            call.correlation_id,
            &decision,
            otp,
            wallet,
            &languages,
        );
        if methods.is_empty() {
            decision = Decision {
                outcome: LevelOfTrust::Red,
                rule: decision::NO_METHOD_RULE.into(),
                reason: "step-up needed but no configured channel has a destination on file".into(),
                channels: None,
            };
        }
    }
    // The signals are stored with the decision: their free strings in safe form.
    let mut signals = signals;
    let safe = |id: &str| state.data_keys.safe_identifier(id);
    for field in [
        &mut signals.wallet_provider_id,
        &mut signals.token_requestor_id,
        &mut signals.capture_method,
        &mut signals.tsp_level_of_trust,
        &mut signals.device_country,
    ] {
        *field = field.as_deref().map(safe);
    }
    for code in &mut signals.reason_codes {
        *code = safe(code);
    }
    let signals_json = serde_json::to_string(&signals).map_err(ApiError::internal)?;
    let outcome = decision.outcome.as_str();
    crate::metrics::record_decision(outcome, &decision.rule);
    let level = match state.config.server.level_of_trust_case {
        LevelOfTrustCase::Upper => outcome.to_ascii_uppercase(),
        LevelOfTrustCase::Lower => outcome.to_owned(),
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
            .map(|m| {
                decision::methods::method_json(
                    &state.config.idv,
                    wallet,
                    m.channel,
                    &m.method_id,
                    &m.method_type,
                    &m.masked_value,
                )
            })
            .collect();
        if let Some(obj) = resp.as_object_mut() {
            obj.insert("idvMethodList".into(), Value::Array(list));
        }
    }
    let audit = Audit {
        wallet: wallet.map(str::to_owned),
        state: Some(outcome),
        outcome: outcome.to_owned(),
        detail: Some(decision.rule.clone()),
        log: format!("{outcome} ({})", decision.rule),
        ..Audit::card(&card.card_ref)
    };
    // The decision is about the card it names: a later sendOTP must be for that card.
    let write = Write::Decision(DecisionRecord {
        decision: outcome.to_owned(),
        rule: decision.rule,
        signals_json,
        device_language: device_language.map(|l| l.to_string()),
        device_name,
        methods,
    });
    Ok(Handled::ok(resp, audit).writing(write))
}

/// The ID&V methods an enrolment can be offered: channels that are configured, have a
/// destination on file and whose destination did not change within the hold (and, for SMS, whose
/// SIM was not swapped recently, when `[sim_swap]` is configured), in the configured preference
/// order. Ids are opaque, unique within the enrolment and stable if the call is repeated.
pub async fn offer_methods(
    state: &AppState,
    correlation_id: &str,
    card: &CardRow,
    now_ms: Millis,
) -> Result<Vec<MethodRecord>, ApiError> {
    let mut out = Vec::new();
    for kind in &state.config.idv.channel_preference {
        // The bank's app and customer service are added by `arrange_methods`.
        let Some(channel) = &kind.channel() else {
            continue;
        };
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
        // A number whose SIM changed recently is not offered: sendOTP would refuse it (declined).
        if let (Channel::Sms, Some(check), Some(sealed)) =
            (channel, &state.sim_swap, card.phone_sealed.as_deref())
        {
            let phone = state
                .data_keys
                .unseal_for_card("phone", &card.pan_index, sealed)
                .map_err(ApiError::internal)?;
            let phone = crate::domain::Phone::parse(&phone)
                .map_err(|_| ApiError::internal("stored phone number is invalid"))?;
            let fp = card.phone_fp.as_deref().unwrap_or_default();
            if !check.allows_sms(&phone, fp).await {
                continue;
            }
        }
        out.push(MethodRecord {
            method_id: method_id(state, correlation_id, *kind),
            channel: *kind,
            method_type: method_type.clone(),
            masked_value: masked.clone(),
        });
    }
    Ok(out)
}

/// A method's id: opaque, unique within the enrolment, stable if the call is repeated.
fn method_id(state: &AppState, correlation_id: &str, kind: IdvKind) -> String {
    let fp = state.data_keys.fingerprint(
        "idv-method",
        &[correlation_id.as_bytes(), kind.as_str().as_bytes()],
    );
    fp.chars().take(16).collect()
}

/// The methods a yellow decision offers, in order (`decision::methods::arrange`): the OTP
/// methods that can deliver, the bank's app, customer service.
fn arrange_methods(
    state: &AppState,
    correlation_id: &str,
    decision: &Decision,
    otp: Vec<MethodRecord>,
    wallet: Option<&str>,
    languages: &[Language],
) -> Vec<MethodRecord> {
    let deliverable: Vec<(IdvKind, String)> = otp
        .iter()
        .map(|m| (m.channel, m.masked_value.clone()))
        .collect();
    let ctx = decision::methods::Context { wallet, languages };
    let idv = &state.config.idv;
    decision::methods::arrange(
        idv,
        &state.policy,
        decision.channels.as_deref(),
        &deliverable,
        ctx,
    )
    .into_iter()
    .map(|o| match otp.iter().find(|m| m.channel == o.kind) {
        Some(m) => m.clone(),
        None => MethodRecord {
            method_id: method_id(state, correlation_id, o.kind),
            channel: o.kind,
            method_type: idv.method_type(o.kind).to_owned(),
            masked_value: o.value,
        },
    })
    .collect()
}

/// Reads the signals of a `requestCardDigitization` body. Unreadable signals are absent;
/// only wrongly typed top-level fields are errors. The card's part is filled by
/// [`Signals::with_card`].
/// The signals of a whole body, for `policy explain`: the error is the refusal's message.
pub fn read_signals(body: &serde_json::Map<String, Value>) -> Result<Signals, String> {
    signals(&Fields(body)).map_err(|e| e.message)
}

fn signals(body: &Fields<'_>) -> Result<Signals, ApiError> {
    let capture = body.opt_obj("cardCaptureInformation")?;
    let scoring = body.opt_obj("scoringInformation")?;
    let wallet_user = body.opt_obj("walletUserInformation")?;
    let device = body.opt_obj("deviceInformation")?;
    let token_requestor = body.opt_obj("tokenRequestor")?;
    let capture_method = capture
        .as_ref()
        .and_then(|c| c.signal("captureMethod"))
        .or_else(|| body.signal("captureMethod"))
        .map(|s| s.to_ascii_uppercase());
    let score = |name: &str| scoring.as_ref().and_then(|s| s.signal_num(name));
    let reason_codes = scoring
        .as_ref()
        .and_then(|s| s.0.get("reasonCodes"))
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| match v {
                    serde_json::Value::String(s) => Some(s.trim().to_ascii_uppercase()),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .take(64)
                .collect()
        })
        .unwrap_or_default();
    Ok(Signals {
        tnc_status: body.opt_bool("tncStatus")?,
        cvv_validated: body.opt_bool("cvvValidated")?,
        capture_method,
        tsp_level_of_trust: scoring
            .as_ref()
            .and_then(|s| s.signal("levelOfTrust"))
            .map(|s| s.to_ascii_lowercase()),
        device_score: score("deviceScore"),
        account_score: score("accountScore"),
        wallet_score: score("walletScore"),
        phone_number_score: score("phoneNumberScore"),
        provisioning_attempts_24h: wallet_user
            .as_ref()
            .and_then(|w| w.signal_num("provisioningAttemptsOnDeviceIn24Hours")),
        reason_codes,
        device_country: scoring
            .as_ref()
            .and_then(|s| s.signal("deviceCountry"))
            .or_else(|| device.as_ref().and_then(|d| d.signal("deviceCountry")))
            .map(|s| s.to_ascii_uppercase()),
        wallet_provider_id: body
            .signal("walletProviderId")
            .map(|s| s.to_ascii_uppercase()),
        token_requestor_id: token_requestor.as_ref().and_then(|t| t.signal("id")),
        ..Signals::default()
    })
}
